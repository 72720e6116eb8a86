"""Reading predictions: PNG trees, zips of PNG trees and COCO-RLE JSON lists (DESIGN §4).

:func:`open_predictions` detects the format and returns a :class:`PredictionSource`, which knows
which ``(clip, expression, frame)`` items exist (:meth:`PredictionSource.index`) and hands out one
picklable :class:`ClipPredictions` per clip, so that worker processes read their own clips.

* PNG tree: ``<pred>/<clip_id>/<exp_id>/<frame>.png``, also under a leading ``Annotations/`` (a
  Ref-YouTube-VOS submission). Hidden files and folders (the writer's ``.done/`` markers) and
  non-PNG files (``run.json``) are skipped.
* ``.zip``: the same tree inside a zip, under any one common folder prefix.
* COCO-RLE JSON: ``[{"video", "exp_id", "frame", "segmentation": {"size": [h, w], "counts"}}]``.

In a PNG, any nonzero value in any colour channel is foreground: greyscale 0/255, palette indices
0/1 and RGB masks all work. Palette PNGs are read as indices with PIL (OpenCV would return the
palette's colours). An alpha channel is not a colour channel and is ignored: a mask saved as opaque
RGBA would otherwise be foreground everywhere. Masks are never resized; a size that differs from the
frame is an error naming the file.
"""

from __future__ import annotations

import io
import json
import os
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from refvps.dataset.format import frame_name
from refvps.dataset.pngfast import decode_mask
from refvps.errors import PredictionError

FORMAT_PNG_TREE = "png-tree"
FORMAT_ZIP = "zip"
FORMAT_RLE = "coco-rle"

PNG_SUFFIX = ".png"
SUBMISSION_DIR = "Annotations"

_FORMATS_HINT = (
    "pass a folder of PNGs laid out as <clip_id>/<exp_id>/<frame>.png (optionally under Annotations/), "
    "a .zip of such a folder, or a COCO-RLE .json list of "
    '{"video", "exp_id", "frame", "segmentation": {"size": [h, w], "counts": ...}}'
)

# Index: clip_id -> exp_id -> frame name -> locator (file name, zip member, or RLE entry number).
Index = dict[str, dict[str, dict[str, Any]]]


# --------------------------------------------------------------------------------------------
# Decoding one mask
# --------------------------------------------------------------------------------------------

_ALPHA_MODES = {"LA": 1, "La": 1, "PA": 1, "RGBA": 3, "RGBa": 3}


def decode_mask_png(source: str | Path | bytes, shape: tuple[int, int], name: str) -> np.ndarray:
    """Decode a predicted mask PNG to a boolean (H, W) array: any nonzero colour value is foreground.

    ``source`` is a path or the PNG's bytes; ``shape`` the frame's (H, W); ``name`` what errors call
    the file. Raises :class:`PredictionError` for a file that is missing, corrupt, truncated, not an
    image, or whose size differs from the frame's.
    """
    raw = decode_mask_png_raw(source, shape, name)
    return raw if raw.dtype == bool else raw != 0


def decode_mask_png_raw(source: str | Path | bytes, shape: tuple[int, int], name: str) -> np.ndarray:
    """Like :func:`decode_mask_png`, but returns a uint8 or bool (H, W) array whose nonzero pixels are
    foreground, without converting it (the scorer counts nonzero bytes directly).

    Common 8-bit PNGs are decoded by :mod:`refvps.dataset.pngfast` (exact, ~1.2x faster than PIL);
    every other file, and every damaged one, by PIL.
    """
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        try:
            with open(source, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            raise PredictionError(
                f"predicted mask not found: {name}", hint="check the predictions folder", path=name
            ) from None
        except OSError as exc:
            raise _corrupt(name, exc) from None
    fast = decode_mask(data, shape)
    if fast is not None:
        return fast
    try:
        handle = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise _corrupt(name, exc) from None
    with handle as image:
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
            raise _corrupt(name, ValueError("16-bit colour PNG that OpenCV cannot decode"))
        try:
            image.load()
            mode = image.mode
            array = np.asarray(image)
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise _corrupt(name, exc) from None
    if array.ndim == 2:
        return array if array.dtype in (np.uint8, np.bool_) else array != 0
    channels = _ALPHA_MODES.get(mode, array.shape[2])
    colour = array[:, :, :channels]
    if colour.dtype == np.uint8:
        return colour[:, :, 0] if channels == 1 else np.bitwise_or.reduce(colour, axis=2)
    return colour.any(axis=2)


def _is_16_bit_colour(data: bytes) -> bool:
    """Whether PNG bytes declare 16-bit RGB, RGBA or grey+alpha samples (IHDR bit depth and colour type)."""
    return data[12:16] == b"IHDR" and data[24:25] == b"\x10" and data[25:26] in (b"\x02", b"\x04", b"\x06")


def _corrupt(name: str, exc: BaseException) -> PredictionError:
    return PredictionError(
        f"predicted mask cannot be decoded (corrupt or truncated PNG?): {name}: {exc}",
        hint="write the mask again (e.g. with refvps.predictions.PredictionWriter)",
        path=name,
    )


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


def check_rle(segmentation: Any, shape: tuple[int, int], name: str) -> dict:
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


def decode_rle(rle: dict) -> np.ndarray:
    """A validated compressed RLE as an (H, W) uint8 mask (pycocotools, without its numpy-2 warning)."""
    from pycocotools import mask as mask_utils

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pycocotools' np.array(copy=False)
        return mask_utils.decode(rle)


def _invalid_rle(name: str, why: str) -> PredictionError:
    return PredictionError(
        f"invalid RLE in {name}: {why}",
        hint="encode masks with pycocotools.mask.encode(np.asfortranarray(mask.astype(np.uint8))) "
        "and store counts as a str",
        path=name.split(":")[0],
    )


# --------------------------------------------------------------------------------------------
# Per-clip readers (picklable, sent to worker processes)
# --------------------------------------------------------------------------------------------


@dataclass
class ClipPredictions:
    """The predictions of one clip, as a worker reads them.

    ``locators[exp_id][frame]`` is a file name (PNG tree), a member name (zip) or a raw
    ``segmentation`` dict (RLE). ``kind`` is the source format.
    """

    kind: str
    clip_id: str
    location: str  # the folder, the zip file, or the JSON file
    locators: dict[str, dict[str, Any]] = field(default_factory=dict)
    entry_numbers: dict[str, dict[str, int]] = field(default_factory=dict)  # RLE: list positions for errors

    def has(self, exp_id: str, frame: str) -> bool:
        return frame in self.locators.get(exp_id, {})

    def describe(self, exp_id: str, frame: str) -> str:
        """How error messages name one prediction."""
        if self.kind == FORMAT_PNG_TREE:
            return str(Path(self.location) / self.clip_id / exp_id / self.locators[exp_id][frame])
        if self.kind == FORMAT_ZIP:
            return f"{self.location}:{self.locators[exp_id][frame]}"
        number = self.entry_numbers.get(exp_id, {}).get(frame, "?")
        return f"{self.location}: entry {number} (video {self.clip_id!r}, exp_id {exp_id!r}, frame {frame!r})"

    def read_raw(self, exp_id: str, frame: str, shape: tuple[int, int], zip_cache: dict) -> np.ndarray:
        """One mask as an (H, W) uint8/bool array whose nonzero pixels are foreground."""
        locator = self.locators[exp_id][frame]
        if self.kind == FORMAT_PNG_TREE:
            path = os.path.join(self.location, self.clip_id, exp_id, locator)
            return decode_mask_png_raw(path, shape, path)
        if self.kind == FORMAT_ZIP:
            archive = zip_cache.get(self.location)
            if archive is None:
                archive = zip_cache[self.location] = zipfile.ZipFile(self.location)
            name = self.describe(exp_id, frame)
            try:
                data = archive.read(locator)
            except Exception as exc:  # noqa: BLE001 - CRC errors, truncation, zlib.error: the member is damaged
                raise _corrupt(name, exc) from None
            return decode_mask_png_raw(data, shape, name)
        return decode_rle(self.rle(exp_id, frame, shape))

    def rle(self, exp_id: str, frame: str, shape: tuple[int, int]) -> dict:
        """The validated compressed RLE of one frame (RLE sources only)."""
        return check_rle(self.locators[exp_id][frame], shape, self.describe(exp_id, frame))


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------


@dataclass
class PredictionSource:
    """A set of predictions in one of the accepted formats, indexed but not yet decoded."""

    format: str
    path: Path
    index: Index
    location: str  # where ClipPredictions read from (the tree's root, the zip, the JSON file)
    ignored: int = 0  # files skipped: hidden, not PNG, or outside the layout
    entry_numbers: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)

    @property
    def clip_ids(self) -> list[str]:
        return sorted(self.index)

    def n_items(self) -> int:
        return sum(len(frames) for exps in self.index.values() for frames in exps.values())

    def clip(self, clip_id: str) -> ClipPredictions:
        """The picklable reader of one clip (empty when the clip has no predictions)."""
        return ClipPredictions(
            self.format,
            clip_id,
            self.location,
            self.index.get(clip_id, {}),
            self.entry_numbers.get(clip_id, {}),
        )


def open_predictions(path: str | Path) -> PredictionSource:
    """Detect the format of ``path`` and index it. Raises :class:`PredictionError` when none fits."""
    path = Path(path)
    if not path.exists():
        raise PredictionError(
            f"predictions not found: {path}",
            hint="check the path; " + _FORMATS_HINT,
            path=path,
        )
    if path.is_dir():
        return _open_png_tree(path)
    suffix = path.suffix.lower()
    if suffix == ".zip" or zipfile.is_zipfile(path):
        return _open_zip(path)
    if suffix == ".json" or _looks_like_json(path):
        return _open_rle_json(path)
    raise PredictionError(f"unknown predictions format: {path}", hint=_FORMATS_HINT, path=path)


def _looks_like_json(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(64).lstrip()
    except OSError:
        return False
    return head[:1] in (b"[", b"{")


def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def _open_png_tree(path: Path) -> PredictionSource:
    root = path / SUBMISSION_DIR if (path / SUBMISSION_DIR).is_dir() else path
    index: Index = {}
    ignored = 0
    flat_clips: list[str] = []
    for clip_entry in _scandir(root):
        if _hidden(clip_entry.name):
            continue
        if not clip_entry.is_dir():
            ignored += 1
            continue
        expressions: dict[str, dict[str, str]] = {}
        for exp_entry in _scandir(clip_entry.path):
            if _hidden(exp_entry.name):
                continue
            if not exp_entry.is_dir():
                if exp_entry.name.lower().endswith(PNG_SUFFIX):
                    flat_clips.append(clip_entry.name)
                ignored += 1
                continue
            frames: dict[str, str] = {}
            for frame_entry in _scandir(exp_entry.path):
                name = frame_entry.name
                if _hidden(name) or not name.lower().endswith(PNG_SUFFIX) or not frame_entry.is_file():
                    ignored += 1
                    continue
                frames[name[: -len(PNG_SUFFIX)]] = name
            if frames:
                expressions[exp_entry.name] = frames
        if expressions:
            index[clip_entry.name] = expressions
    if not index:
        detail = ""
        if flat_clips:
            detail = (
                f" (found PNGs directly in {root / flat_clips[0]}: that is one mask per frame, but a "
                "referring prediction has one folder per expression)"
            )
        raise PredictionError(
            f"no predicted masks found in {path}{detail}",
            hint="lay the PNGs out as <clip_id>/<exp_id>/<frame>.png; " + _FORMATS_HINT,
            path=path,
        )
    return PredictionSource(FORMAT_PNG_TREE, path, index, str(root), ignored)


def _scandir(folder: str | Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=lambda e: e.name)
    except OSError as exc:
        raise PredictionError(
            f"cannot list {folder}: {exc}", hint="check the folder's permissions", path=folder
        ) from None


def _open_zip(path: Path) -> PredictionSource:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise PredictionError(
            f"not a readable zip file (corrupt or truncated?): {path}: {exc}",
            hint="zip the predictions folder again, e.g. cd preds && zip -r ../preds.zip .",
            path=path,
        ) from None
    by_prefix: dict[tuple[str, ...], list[tuple[str, str, str, str]]] = {}
    ignored = 0
    for member in names:
        parts = [p for p in member.split("/") if p]
        if member.endswith("/") or not parts:
            continue
        if any(_hidden(p) for p in parts) or not parts[-1].lower().endswith(PNG_SUFFIX) or len(parts) < 3:
            ignored += 1
            continue
        clip_id, exp_id, file_name = parts[-3:]
        by_prefix.setdefault(tuple(parts[:-3]), []).append((clip_id, exp_id, file_name[: -len(PNG_SUFFIX)], member))
    if not by_prefix:
        raise PredictionError(
            f"the zip holds no usable predicted masks: {path}",
            hint="it must contain <clip_id>/<exp_id>/<frame>.png (optionally under one folder such as "
            "Annotations/); " + _FORMATS_HINT,
            path=path,
        )
    if len(by_prefix) > 1:
        # Masks under several different folders: most likely one tree zipped with extra copies.
        prefixes = sorted("/".join(p) + "/" if p else "(top level)" for p in by_prefix)
        raise PredictionError(
            f"the zip holds mask trees under several folders ({', '.join(prefixes[:4])}): {path}",
            hint="zip exactly one predictions tree",
            path=path,
        )
    (items,) = by_prefix.values()
    index: Index = {}
    for clip_id, exp_id, frame, member in items:
        index.setdefault(clip_id, {}).setdefault(exp_id, {})[frame] = member
    return PredictionSource(FORMAT_ZIP, path, index, str(path), ignored)


def _open_rle_json(path: Path) -> PredictionSource:
    try:
        with open(path, "rb") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as exc:
        raise PredictionError(
            f"predictions JSON does not parse: {path}: line {exc.lineno} column {exc.colno}: {exc.msg}",
            hint="write the file with json.dump; " + _FORMATS_HINT,
            path=path,
        ) from None
    except (UnicodeDecodeError, OSError) as exc:
        raise PredictionError(
            f"predictions JSON cannot be read: {path}: {exc}", hint=_FORMATS_HINT, path=path
        ) from None
    if isinstance(data, dict):
        raise PredictionError(
            f"{path} holds a JSON object; COCO-RLE predictions are a JSON list of per-frame entries",
            hint=_FORMATS_HINT,
            path=path,
        )
    if not isinstance(data, list) or not data:
        raise PredictionError(f"{path} holds no predictions (an empty list)", hint=_FORMATS_HINT, path=path)
    index: Index = {}
    numbers: dict[str, dict[str, dict[str, int]]] = {}
    for number, entry in enumerate(data):
        where = f"{path}: entry {number}"
        if not isinstance(entry, dict):
            raise _invalid_entry(where, f"expected an object, got {type(entry).__name__}", path)
        absent = [k for k in ("video", "exp_id", "frame", "segmentation") if k not in entry]
        if absent:
            raise _invalid_entry(where, f"missing key(s) {', '.join(absent)}", path)
        for key in ("video", "exp_id", "frame"):
            if not isinstance(entry[key], (str, int)) or isinstance(entry[key], bool):
                raise _invalid_entry(where, f"{key} must be a string or an integer, got {entry[key]!r}", path)
        clip_id, exp_id, frame = str(entry["video"]), str(entry["exp_id"]), _frame_key(entry["frame"])
        frames = index.setdefault(clip_id, {}).setdefault(exp_id, {})
        if frame in frames:
            first = numbers[clip_id][exp_id][frame]
            raise _invalid_entry(
                where,
                f"duplicate prediction for video {clip_id!r}, exp_id {exp_id!r}, frame {frame!r} (also entry {first})",
                path,
            )
        frames[frame] = entry["segmentation"]
        numbers.setdefault(clip_id, {}).setdefault(exp_id, {})[frame] = number
    return PredictionSource(FORMAT_RLE, path, index, str(path), 0, numbers)


def _frame_key(frame: Any) -> str:
    """Frame names as the dataset writes them: ints become ``00007``; an extension is dropped."""
    if isinstance(frame, int) and not isinstance(frame, bool):
        return frame_name(frame)
    text = str(frame)
    for suffix in (".png", ".jpg", ".jpeg"):
        if text.lower().endswith(suffix):
            return text[: -len(suffix)]
    return text


def _invalid_entry(where: str, why: str, path: Path) -> PredictionError:
    return PredictionError(f"invalid prediction at {where}: {why}", hint=_FORMATS_HINT, path=path)
