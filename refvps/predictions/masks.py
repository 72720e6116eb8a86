"""Decoding one predicted mask: a PNG (any nonzero colour value is foreground) or a COCO RLE.

In a PNG, any nonzero value in any colour channel is foreground: greyscale 0/255, palette indices
0/1 and RGB masks all work. Palette PNGs are read as indices (OpenCV would return the palette's
colours). An alpha channel is not a colour channel and is ignored: a mask saved as opaque RGBA would
otherwise be foreground everywhere. Masks are never resized; a size that differs from the frame is
an error naming the file. Common 8-bit PNGs are decoded by :mod:`refvps.dataset.pngfast` (exact,
~1.2x faster than PIL); every other file, and every damaged one, by PIL.

COCO RLE is pycocotools' format (``{"size": [h, w], "counts": ...}``); :func:`check_rle` validates
one against the frame, :func:`rle_counts` decodes a compressed counts string without pycocotools.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from refvps.dataset.images import ImageKind, open_image, read_image_bytes
from refvps.dataset.pngfast import decode_mask
from refvps.errors import PredictionError

PREDICTED_MASK = ImageKind(
    "predicted mask",
    hint="write the mask again (e.g. with refvps.predictions.PredictionWriter)",
    missing_hint="check the predictions folder",
    error=PredictionError,
    container="PNG",
)

RleDict = dict[str, Any]
"""A COCO RLE: ``{"size": [h, w], "counts": bytes}`` once :func:`check_rle` has validated it."""

# --------------------------------------------------------------------------------------------
# PNG
# --------------------------------------------------------------------------------------------

_ALPHA_MODES = {"LA": 1, "La": 1, "PA": 1, "RGBA": 3, "RGBa": 3}


def decode_mask_png(source: str | Path | bytes, shape: tuple[int, int], name: str) -> npt.NDArray[np.bool_]:
    """Decode a predicted mask PNG to a boolean (H, W) array: any nonzero colour value is foreground.

    ``source`` is a path or the PNG's bytes; ``shape`` the frame's (H, W); ``name`` what errors call
    the file. Raises :class:`PredictionError` for a file that is missing, corrupt, truncated, not an
    image, or whose size differs from the frame's.
    """
    raw = decode_mask_png_raw(source, shape, name)
    return raw if raw.dtype == np.bool_ else raw != 0


def decode_mask_png_raw(source: str | Path | bytes, shape: tuple[int, int], name: str) -> npt.NDArray[Any]:
    """Like :func:`decode_mask_png`, but returns a uint8 or bool (H, W) array whose nonzero pixels are
    foreground, without converting it (the scorer counts nonzero bytes directly)."""
    data = bytes(source) if isinstance(source, (bytes, bytearray)) else read_image_bytes(source, PREDICTED_MASK)
    fast = decode_mask(data, shape)
    if fast is not None:
        return fast
    with open_image(data, PREDICTED_MASK, name=name) as image:
        _check_mask_file(image, data, shape, name)
        image.load()
        mode = image.mode
        array = np.asarray(image)
    return _foreground(array, mode)


def _check_mask_file(image: Image.Image, data: bytes, shape: tuple[int, int], name: str) -> None:
    """Refuse a predicted mask that is not a PNG, is not the frame's size, or would be misread."""
    if image.format != "PNG":
        # A JPEG's compression noise turns background pixels nonzero: never score one as a mask.
        raise PredictionError(
            f"predicted mask is a {image.format or 'non-PNG'} file, not a PNG: {name}",
            hint="save masks as PNG (lossless); refvps reads predicted masks only from PNG files",
            path=name,
        )
    width, height = image.size
    if (height, width) != tuple(shape):
        raise PredictionError(
            f"mask size {width}x{height} differs from the frame size {shape[1]}x{shape[0]}: {name}",
            hint="write each mask at its frame's resolution; refvps never resizes masks, "
            "because resizing changes the score",
            path=name,
        )
    if _is_16_bit_colour(data):  # PIL would keep only each sample's high byte; OpenCV declined it
        raise PREDICTED_MASK.undecodable(name, ValueError("16-bit colour PNG that OpenCV cannot decode"))


def _foreground(array: npt.NDArray[Any], mode: str) -> npt.NDArray[Any]:
    """A decoded image as (H, W), nonzero where any colour channel is nonzero (alpha left out)."""
    if array.ndim == 2:
        return array if array.dtype in (np.uint8, np.bool_) else array != 0
    channels = _ALPHA_MODES.get(mode, array.shape[2])
    colour = array[:, :, :channels]
    if colour.dtype == np.uint8:
        return colour[:, :, 0] if channels == 1 else np.bitwise_or.reduce(colour, axis=2)
    return np.asarray(colour.any(axis=2))


def _is_16_bit_colour(data: bytes) -> bool:
    """Whether PNG bytes declare 16-bit RGB, RGBA or grey+alpha samples (IHDR bit depth and colour type)."""
    return data[12:16] == b"IHDR" and data[24:25] == b"\x10" and data[25:26] in (b"\x02", b"\x04", b"\x06")


# --------------------------------------------------------------------------------------------
# COCO RLE
# --------------------------------------------------------------------------------------------


def rle_counts(counts: str | bytes) -> np.ndarray:
    """Decode a pycocotools compressed RLE string to its run lengths (int64), vectorised.

    The string is pycocotools' LEB128-like code: 6-bit characters offset by 48, 5 value bits per
    character, bit 0x20 meaning "more characters follow", a sign bit on the last character, and from
    the fourth run on each value stored as the difference to the run two before. Raises
    ``ValueError`` for a string that is not such a code (pycocotools itself does not check).
    """
    data = np.frombuffer(counts.encode("ascii") if isinstance(counts, str) else bytes(counts), np.uint8)
    if data.size == 0:
        return np.zeros(0, np.int64)
    chars = data.astype(np.int64) - 48
    if chars.min() < 0 or chars.max() > 63:
        raise ValueError("characters outside the RLE alphabet")
    more = (chars & 0x20) != 0
    if more[-1]:
        raise ValueError("truncated (the last number is unfinished)")
    ends = np.flatnonzero(~more)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if lengths.max() > 12:
        raise ValueError("a number is too long")
    position = np.arange(chars.size) - np.repeat(starts, lengths)
    values = np.add.reduceat((chars & 0x1F) << (5 * position), starts)
    negative = (chars[ends] & 0x10) != 0
    values = np.where(negative, values - (np.int64(1) << (5 * lengths)), values)
    # Runs from the fourth on are stored as the difference to the run two before: undo by
    # cumulative sums over the odd runs and over the even runs from the third on.
    if values.size > 3:
        values[1::2] = np.cumsum(values[1::2])
        values[2::2] = np.cumsum(values[2::2])
    return values


def check_rle(segmentation: Any, shape: tuple[int, int], name: str) -> RleDict:
    """Validate one ``segmentation`` against the frame's (H, W); return a compressed-RLE dict.

    Accepts compressed (``counts`` a string) and uncompressed (``counts`` a list of ints) RLE.
    Raises :class:`PredictionError` naming ``name`` when it is malformed, its runs do not add up
    to ``h * w``, or its size differs from the frame's.
    """
    if not isinstance(segmentation, dict) or "size" not in segmentation or "counts" not in segmentation:
        raise _invalid_rle(name, 'segmentation must be an object {"size": [h, w], "counts": ...}')
    size = segmentation["size"]
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(_is_count(v) for v in size)):
        raise _invalid_rle(name, f"size must be [height, width], got {size!r}")
    height, width = size
    if (height, width) != tuple(shape):
        raise PredictionError(
            f"mask size {width}x{height} differs from the frame size {shape[1]}x{shape[0]}: {name}",
            hint="encode each mask at its frame's resolution; refvps never resizes masks",
            path=name.split(":")[0],
        )
    counts = segmentation["counts"]
    if isinstance(counts, list):
        if not all(_is_count(v) for v in counts):
            raise _invalid_rle(name, "uncompressed counts must be non-negative integers")
        runs = np.asarray(counts, dtype=np.int64)
        compressed = None
    elif isinstance(counts, (str, bytes)):
        try:
            runs = rle_counts(counts)
        except (ValueError, UnicodeEncodeError) as exc:
            raise _invalid_rle(name, f"counts string is not pycocotools RLE ({exc})") from None
        if runs.size and runs.min() < 0:
            raise _invalid_rle(name, "counts decode to a negative run length")
        compressed = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    else:
        raise _invalid_rle(name, f"counts must be a string or a list of integers, got {type(counts).__name__}")
    total = int(runs.sum())
    if total != height * width:
        raise _invalid_rle(name, f"runs add up to {total} pixels, not {height}x{width} = {height * width}")
    if compressed is None:
        from pycocotools import mask as mask_utils

        compressed = mask_utils.frPyObjects({"size": [height, width], "counts": list(counts)}, height, width)["counts"]
    return {"size": [height, width], "counts": compressed}


def _is_count(value: Any) -> bool:
    """A non-negative JSON integer (``true`` is not a count, although Python's bool is an int)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def decode_rle(rle: RleDict) -> npt.NDArray[np.uint8]:
    """A validated compressed RLE as an (H, W) uint8 mask (pycocotools, without its numpy-2 warning)."""
    from pycocotools import mask as mask_utils

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pycocotools' np.array(copy=False)
        mask: npt.NDArray[np.uint8] = mask_utils.decode(rle)
    return mask


def _invalid_rle(name: str, why: str) -> PredictionError:
    return PredictionError(
        f"invalid RLE in {name}: {why}",
        hint="encode masks with pycocotools.mask.encode(np.asfortranarray(mask.astype(np.uint8))) "
        "and store counts as a str",
        path=name.split(":")[0],
    )
