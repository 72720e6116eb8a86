"""Reading predictions: PNG trees, zips of PNG trees and COCO-RLE JSON lists (``docs/FORMAT.md``).

:func:`open_predictions` recognises the format and returns the :class:`PredictionSource` of that
format, which knows which ``(clip, expression, frame)`` items exist (``index``) and hands out one
picklable :class:`ClipPredictions` per clip, so that worker processes read their own clips. Each
format is one pair of classes:

* :class:`PngTreeSource` / :class:`PngTreeClipPredictions`: ``<pred>/<clip_id>/<exp_id>/<frame>.png``,
  also under a leading ``Annotations/`` (a Ref-YouTube-VOS submission). Hidden files and folders
  (the writer's ``.done/`` markers) and non-PNG files (``run.json``) are skipped.
* :class:`ZipSource` / :class:`ZipClipPredictions`: the same tree inside a zip, under any one common
  folder prefix.
* :class:`RleSource` / :class:`RleClipPredictions`: a COCO-RLE JSON list
  ``[{"video", "exp_id", "frame", "segmentation": {"size": [h, w], "counts"}}]``.

How one mask is decoded (PNG or RLE) is :mod:`refvps.predictions.masks`.
"""

from __future__ import annotations

import json
import os
import zipfile
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy.typing as npt

from refvps.dataset.format import frame_name
from refvps.errors import PredictionError
from refvps.predictions.masks import PREDICTED_MASK, RleDict, check_rle, decode_mask_png_raw, decode_rle

FORMAT_PNG_TREE = "png-tree"
FORMAT_ZIP = "zip"
FORMAT_RLE = "coco-rle"

PNG_SUFFIX = ".png"
SUBMISSION_DIR = "Annotations"

FORMATS_HINT = (
    "pass a folder of PNGs laid out as <clip_id>/<exp_id>/<frame>.png (optionally under Annotations/), "
    "a .zip of such a folder, or a COCO-RLE .json list of "
    '{"video", "exp_id", "frame", "segmentation": {"size": [h, w], "counts": ...}}'
)

Locators = dict[str, dict[str, Any]]
"""exp_id -> frame name -> where that mask is: a file name, a zip member, or a raw RLE ``segmentation``."""

Index = dict[str, Locators]
"""clip_id -> the clip's :data:`Locators`."""


# --------------------------------------------------------------------------------------------
# One clip's predictions (picklable, sent to worker processes)
# --------------------------------------------------------------------------------------------


@dataclass
class ClipPredictions(ABC):
    """The predictions of one clip, as a worker reads them."""

    clip_id: str
    location: str  # the tree's root folder, the zip file, or the JSON file
    locators: Locators = field(default_factory=dict)

    def has(self, exp_id: str, frame: str) -> bool:
        return frame in self.locators.get(exp_id, {})

    @abstractmethod
    def describe(self, exp_id: str, frame: str) -> str:
        """How error messages name one prediction."""

    @abstractmethod
    def read_raw(self, exp_id: str, frame: str, shape: tuple[int, int]) -> npt.NDArray[Any]:
        """One mask as an (H, W) uint8/bool array whose nonzero pixels are foreground."""


@dataclass
class PngTreeClipPredictions(ClipPredictions):
    """A clip of a PNG tree: ``locators`` hold file names in ``<location>/<clip_id>/<exp_id>/``."""

    def describe(self, exp_id: str, frame: str) -> str:
        return os.path.join(self.location, self.clip_id, exp_id, self.locators[exp_id][frame])

    def read_raw(self, exp_id: str, frame: str, shape: tuple[int, int]) -> npt.NDArray[Any]:
        path = self.describe(exp_id, frame)
        return decode_mask_png_raw(path, shape, path)


_ARCHIVES: dict[str, zipfile.ZipFile] = {}  # open zip files, one per file and process


def close_archives() -> None:
    """Close the zip files :class:`ZipClipPredictions` opened in this process."""
    for archive in _ARCHIVES.values():
        archive.close()
    _ARCHIVES.clear()


@dataclass
class ZipClipPredictions(ClipPredictions):
    """A clip of a zipped PNG tree: ``locators`` hold member names of the zip ``location``."""

    def describe(self, exp_id: str, frame: str) -> str:
        return f"{self.location}:{self.locators[exp_id][frame]}"

    def read_raw(self, exp_id: str, frame: str, shape: tuple[int, int]) -> npt.NDArray[Any]:
        archive = _ARCHIVES.get(self.location)
        if archive is None:
            archive = _ARCHIVES[self.location] = zipfile.ZipFile(self.location)
        name = self.describe(exp_id, frame)
        try:
            data = archive.read(self.locators[exp_id][frame])
        except Exception as exc:  # noqa: BLE001 - CRC errors, truncation, zlib.error: the member is damaged
            raise PREDICTED_MASK.undecodable(name, exc) from None
        return decode_mask_png_raw(data, shape, name)


@dataclass
class RleClipPredictions(ClipPredictions):
    """A clip of a COCO-RLE list: ``locators`` hold the raw ``segmentation`` objects, unchecked
    until read; ``entry_numbers`` their positions in the list (for error messages)."""

    entry_numbers: dict[str, dict[str, int]] = field(default_factory=dict)

    def describe(self, exp_id: str, frame: str) -> str:
        number = self.entry_numbers.get(exp_id, {}).get(frame, "?")
        return f"{self.location}: entry {number} (video {self.clip_id!r}, exp_id {exp_id!r}, frame {frame!r})"

    def read_raw(self, exp_id: str, frame: str, shape: tuple[int, int]) -> npt.NDArray[Any]:
        return decode_rle(self.rle(exp_id, frame, shape))

    def rle(self, exp_id: str, frame: str, shape: tuple[int, int]) -> RleDict:
        """The validated compressed RLE of one frame (the scorer computes J on its runs)."""
        return check_rle(self.locators[exp_id][frame], shape, self.describe(exp_id, frame))


# --------------------------------------------------------------------------------------------
# Sources: one class per format
# --------------------------------------------------------------------------------------------


@dataclass
class PredictionSource(ABC):
    """A set of predictions in one of the accepted formats, indexed but not yet decoded."""

    format: ClassVar[str]  # FORMAT_PNG_TREE, FORMAT_ZIP or FORMAT_RLE, recorded in results.json

    path: Path  # what the user passed
    index: Index
    location: str  # where the clips' predictions are read from (the tree's root, the zip, the JSON file)
    ignored: int  # files skipped: hidden, not PNG, or outside the layout

    @property
    def clip_ids(self) -> list[str]:
        return sorted(self.index)

    def n_items(self) -> int:
        return sum(len(frames) for exps in self.index.values() for frames in exps.values())

    @classmethod
    @abstractmethod
    def recognises(cls, path: Path) -> bool:
        """Whether ``path`` (which exists) looks like this format."""

    @classmethod
    @abstractmethod
    def open(cls, path: Path) -> PredictionSource:
        """Index the predictions at ``path``; :class:`PredictionError` when they do not fit the format."""

    @abstractmethod
    def clip(self, clip_id: str) -> ClipPredictions:
        """The picklable reader of one clip (empty when the clip has no predictions)."""


@dataclass
class PngTreeSource(PredictionSource):
    """A folder ``<clip_id>/<exp_id>/<frame>.png``, optionally under ``Annotations/``."""

    format: ClassVar[str] = FORMAT_PNG_TREE

    @classmethod
    def recognises(cls, path: Path) -> bool:
        return path.is_dir()

    @classmethod
    def open(cls, path: Path) -> PngTreeSource:
        root = path / SUBMISSION_DIR if (path / SUBMISSION_DIR).is_dir() else path
        index: Index = {}
        ignored = 0
        flat_clips: list[str] = []  # clip folders holding PNGs directly (no expression level)
        for clip_entry in _scandir(root):
            if _hidden(clip_entry.name):
                continue
            if not clip_entry.is_dir():
                ignored += 1
                continue
            expressions, skipped, flat = _index_clip_folder(clip_entry.path)
            ignored += skipped
            if flat:
                flat_clips.append(clip_entry.name)
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
                hint="lay the PNGs out as <clip_id>/<exp_id>/<frame>.png; " + FORMATS_HINT,
                path=path,
            )
        return cls(path, index, str(root), ignored)

    def clip(self, clip_id: str) -> PngTreeClipPredictions:
        return PngTreeClipPredictions(clip_id, self.location, self.index.get(clip_id, {}))


def _index_clip_folder(folder: str) -> tuple[Locators, int, bool]:
    """One clip folder of a PNG tree: its ``exp_id -> frame -> file name``, the number of entries
    skipped, and whether PNGs lie directly in it (a tree without the expression level)."""
    expressions: Locators = {}
    ignored = 0
    flat = False
    for exp_entry in _scandir(folder):
        if _hidden(exp_entry.name):
            continue
        if not exp_entry.is_dir():
            flat = flat or exp_entry.name.lower().endswith(PNG_SUFFIX)
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
    return expressions, ignored, flat


@dataclass
class ZipSource(PredictionSource):
    """A ``.zip`` of one PNG tree, under any one common folder prefix."""

    format: ClassVar[str] = FORMAT_ZIP

    @classmethod
    def recognises(cls, path: Path) -> bool:
        return path.suffix.lower() == ".zip" or zipfile.is_zipfile(path)

    @classmethod
    def open(cls, path: Path) -> ZipSource:
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
            item = (clip_id, exp_id, file_name[: -len(PNG_SUFFIX)], member)
            by_prefix.setdefault(tuple(parts[:-3]), []).append(item)
        index: Index = {}
        for clip_id, exp_id, frame, member in _one_tree(by_prefix, path):
            index.setdefault(clip_id, {}).setdefault(exp_id, {})[frame] = member
        return cls(path, index, str(path), ignored)

    def clip(self, clip_id: str) -> ZipClipPredictions:
        return ZipClipPredictions(clip_id, self.location, self.index.get(clip_id, {}))


def _one_tree(by_prefix: dict[tuple[str, ...], list[tuple[str, str, str, str]]], path: Path) -> list[tuple[str, ...]]:
    """The masks of the one tree in a zip (grouped by the folders above ``<clip>/<exp>/<frame>.png``)."""
    if not by_prefix:
        raise PredictionError(
            f"the zip holds no usable predicted masks: {path}",
            hint="it must contain <clip_id>/<exp_id>/<frame>.png (optionally under one folder such as "
            "Annotations/); " + FORMATS_HINT,
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
    return list(items)


@dataclass
class RleSource(PredictionSource):
    """A COCO-RLE JSON list of per-frame entries."""

    format: ClassVar[str] = FORMAT_RLE

    entry_numbers: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)

    @classmethod
    def recognises(cls, path: Path) -> bool:
        return path.suffix.lower() == ".json" or _looks_like_json(path)

    @classmethod
    def open(cls, path: Path) -> RleSource:
        index: Index = {}
        numbers: dict[str, dict[str, dict[str, int]]] = {}
        for number, entry in enumerate(_read_rle_list(path)):
            clip_id, exp_id, frame = _entry_key(entry, f"{path}: entry {number}", path)
            frames = index.setdefault(clip_id, {}).setdefault(exp_id, {})
            if frame in frames:
                first = numbers[clip_id][exp_id][frame]
                raise _invalid_entry(
                    f"{path}: entry {number}",
                    f"duplicate prediction for video {clip_id!r}, exp_id {exp_id!r}, frame {frame!r} (also entry {first})",
                    path,
                )
            frames[frame] = entry["segmentation"]
            numbers.setdefault(clip_id, {}).setdefault(exp_id, {})[frame] = number
        return cls(path, index, str(path), 0, numbers)

    def clip(self, clip_id: str) -> RleClipPredictions:
        return RleClipPredictions(
            clip_id, self.location, self.index.get(clip_id, {}), self.entry_numbers.get(clip_id, {})
        )


def _read_rle_list(path: Path) -> list[Any]:
    """The JSON list of an RLE predictions file (not empty), or a :class:`PredictionError`."""
    try:
        with open(path, "rb") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as exc:
        raise PredictionError(
            f"predictions JSON does not parse: {path}: line {exc.lineno} column {exc.colno}: {exc.msg}",
            hint="write the file with json.dump; " + FORMATS_HINT,
            path=path,
        ) from None
    except (UnicodeDecodeError, OSError) as exc:
        raise PredictionError(f"predictions JSON cannot be read: {path}: {exc}", hint=FORMATS_HINT, path=path) from None
    if isinstance(data, dict):
        raise PredictionError(
            f"{path} holds a JSON object; COCO-RLE predictions are a JSON list of per-frame entries",
            hint=FORMATS_HINT,
            path=path,
        )
    if not isinstance(data, list) or not data:
        raise PredictionError(f"{path} holds no predictions (an empty list)", hint=FORMATS_HINT, path=path)
    return data


def _entry_key(entry: Any, where: str, path: Path) -> tuple[str, str, str]:
    """``(clip_id, exp_id, frame name)`` of one RLE entry, after checking its keys."""
    if not isinstance(entry, dict):
        raise _invalid_entry(where, f"expected an object, got {type(entry).__name__}", path)
    absent = [k for k in ("video", "exp_id", "frame", "segmentation") if k not in entry]
    if absent:
        raise _invalid_entry(where, f"missing key(s) {', '.join(absent)}", path)
    for key in ("video", "exp_id", "frame"):
        if not isinstance(entry[key], (str, int)) or isinstance(entry[key], bool):
            raise _invalid_entry(where, f"{key} must be a string or an integer, got {entry[key]!r}", path)
    return str(entry["video"]), str(entry["exp_id"]), _frame_key(entry["frame"])


def _frame_key(frame: str | int) -> str:
    """Frame names as the dataset writes them: ints become ``00007``; an extension is dropped."""
    if isinstance(frame, int):
        return frame_name(frame)
    for suffix in (".png", ".jpg", ".jpeg"):
        if frame.lower().endswith(suffix):
            return frame[: -len(suffix)]
    return frame


def _invalid_entry(where: str, why: str, path: Path) -> PredictionError:
    return PredictionError(f"invalid prediction at {where}: {why}", hint=FORMATS_HINT, path=path)


# --------------------------------------------------------------------------------------------
# Opening
# --------------------------------------------------------------------------------------------

SOURCE_TYPES: tuple[type[PredictionSource], ...] = (PngTreeSource, ZipSource, RleSource)
"""The formats, in the order :func:`open_predictions` tries them."""


def open_predictions(path: str | Path) -> PredictionSource:
    """Recognise the format of ``path`` and index it. Raises :class:`PredictionError` when none fits."""
    path = Path(path)
    if not path.exists():
        raise PredictionError(f"predictions not found: {path}", hint="check the path; " + FORMATS_HINT, path=path)
    for source_type in SOURCE_TYPES:
        if source_type.recognises(path):
            return source_type.open(path)
    raise PredictionError(f"unknown predictions format: {path}", hint=FORMATS_HINT, path=path)


def _looks_like_json(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(64).lstrip()
    except OSError:
        return False
    return head[:1] in (b"[", b"{")


def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def _scandir(folder: str | Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=lambda e: e.name)
    except OSError as exc:
        raise PredictionError(
            f"cannot list {folder}: {exc}", hint="check the folder's permissions", path=folder
        ) from None
