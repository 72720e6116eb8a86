"""Label maps as 8-bit palette PNGs with the DAVIS palette, and reading masks without colour traps.

The DAVIS palette is the PASCAL VOC colour map: index 0 black, 1 dark red, 2 dark green, ...,
255 light grey (224, 224, 192), which Ref-VPS uses for Ignore. Reading a palette PNG with OpenCV
returns colours, not indices, so label maps are read by :mod:`refvps.dataset.pngfast` (which returns
the indices) or by PIL, never by OpenCV.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from refvps.dataset.images import LABEL_MAP, open_image, read_image_bytes
from refvps.dataset.pngfast import PALETTE, decode_label, read_header
from refvps.errors import DatasetError
from refvps.fileio import atomic_write_bytes

IGNORE_INDEX = 255
BACKGROUND_INDEX = 0
LABEL_MODES = ("P", "L")
"""PIL modes whose pixel values are label indices (palette indices, or grey values)."""


def davis_palette() -> np.ndarray:
    """The 256 × 3 uint8 DAVIS / PASCAL VOC palette (bit-interleaved colour map)."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        value, r, g, b = index, 0, 0, 0
        for shift in range(8):
            r |= ((value >> 0) & 1) << (7 - shift)
            g |= ((value >> 1) & 1) << (7 - shift)
            b |= ((value >> 2) & 1) << (7 - shift)
            value >>= 3
        palette[index] = (r, g, b)
    return palette


DAVIS_PALETTE = davis_palette()
_PALETTE_BYTES = DAVIS_PALETTE.tobytes()


def encode_label_png(label: np.ndarray) -> bytes:
    """Encode a uint8 label map (0 background, k object, 255 Ignore) as a DAVIS-palette PNG."""
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"a label map is 2-D (H, W), got shape {label.shape}")
    if label.dtype != np.uint8:
        if label.size and (label.min() < 0 or label.max() > 255):
            raise ValueError("label values must lie in 0..255")
        label = label.astype(np.uint8)
    # frombytes keeps the raw indices; Image.convert('P') would quantise them as colours.
    image = Image.frombytes("P", (label.shape[1], label.shape[0]), np.ascontiguousarray(label).tobytes())
    image.putpalette(_PALETTE_BYTES)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def write_label_png(path: str | Path, label: np.ndarray) -> Path:
    """Write a label map as an 8-bit DAVIS-palette PNG, atomically."""
    return atomic_write_bytes(path, encode_label_png(label))


@dataclass(frozen=True)
class LabelImage:
    """A decoded label-map PNG: its PIL mode, its (width, height), and its indices when it is a label
    map (mode ``P`` or ``L``; ``None`` for any other mode, whose pixel values are colours)."""

    mode: str
    size: tuple[int, int]
    array: npt.NDArray[np.uint8] | None


def decode_label_image(data: bytes, name: str | Path) -> LabelImage:
    """Decode the bytes of a label-map PNG; ``name`` is what errors call the file.

    8-bit palette and greyscale PNGs without row filters (what PIL and refvps write) take the fast
    road of :mod:`refvps.dataset.pngfast`; every other file is decoded by PIL, which gives the same
    indices (``tests/dataset/test_pngfast.py``). A file that neither can decode raises
    :class:`DatasetError`. The array may be a read-only view (:func:`read_label_png` copies it).
    """
    header = read_header(data)
    fast = decode_label(data, header) if header is not None else None
    if fast is not None and header is not None:
        return LabelImage("P" if header.colour_type == PALETTE else "L", (header.width, header.height), fast)
    with open_image(data, LABEL_MAP, name=name) as image:
        image.load()
        array = np.asarray(image, dtype=np.uint8) if image.mode in LABEL_MODES else None
        return LabelImage(image.mode, image.size, array)


def decode_label_png(data: bytes, name: str | Path) -> npt.NDArray[np.uint8]:
    """The (H, W) uint8 indices of a label-map PNG's bytes (see :func:`decode_label_image`).

    Palette ('P') and greyscale ('L') images give their indices/values; anything else is an error,
    because its pixel values are colours, not labels.
    """
    label = decode_label_image(data, name)
    if label.array is None:
        raise DatasetError(
            f"{LABEL_MAP.what} is a {label.mode} image, not an 8-bit palette PNG: {name}",
            hint="save masks as 8-bit palette PNGs (refvps.dataset.write_label_png does this)",
            path=name,
        )
    return label.array


def read_label_png(path: str | Path) -> npt.NDArray[np.uint8]:
    """Read a label map as writable uint8 indices (H, W) (see :func:`decode_label_png`)."""
    label = decode_label_png(read_image_bytes(path, LABEL_MAP), path)
    return label if label.flags.writeable and label.flags.c_contiguous else label.copy()
