"""The Ref-VPS dataset format (Ref-YouTube-VOS layout, extended; ``docs/FORMAT.md`` describes it in full).

::

    <root>/
      JPEGImages/<clip_id>/<frame>.jpg    RGB frames at the clip's fps, named 00000.jpg, 00001.jpg, ...
      Annotations/<clip_id>/<frame>.png   8-bit DAVIS-palette PNG: 0 background, k object k, 255 Ignore
      meta_expressions.json               {"videos": {clip_id: {"expressions": {"0": {"exp", "obj_id",
                                          "annotator"}}, "frames": ["00000", ...]}}}
      clips.json                          {"clips": {clip_id: {"concept", "category", "fps", "width",
                                          "height", "source", "trim", "crop", "notes"}}}

Benchmarks converted by ``refvps convert`` extend the clip entry (docs/BENCHMARKS_SUITE.md, "Format
extension"): ``annotated_frames`` lists the frames that carry ground truth when only some do (``[]``:
none, a split whose masks are not public), ``label_ids`` the labels the masks hold besides the
expressions' targets, and an expression's ``obj_id`` may be a list: its target is the union of those
labels. Keys an expression entry has besides ``exp``, ``obj_id`` and ``annotator`` are kept in
:attr:`Expression.extra` (a converted benchmark's class name, annotator run, source ids).

:class:`Dataset` reads it (frames and masks lazily); :class:`DatasetWriter` writes it atomically.
Reading is tolerant (it is how ``validate`` finds problems); :func:`refvps.dataset.validate` is strict.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import numpy.typing as npt
from PIL import Image

from refvps.dataset.images import FRAME, open_image
from refvps.dataset.palette import IGNORE_INDEX, read_label_png, write_label_png
from refvps.errors import DatasetError
from refvps.fileio import atomic_write_json, atomic_write_with, file_lock, read_json

FRAMES_DIR = "JPEGImages"
MASKS_DIR = "Annotations"
EXPRESSIONS_FILE = "meta_expressions.json"
CLIPS_FILE = "clips.json"
FRAME_EXT = ".jpg"
MASK_EXT = ".png"
REFVPS_FPS = 24
ANNOTATED_FRAMES = "annotated_frames"  # clip key: the frames that carry ground truth, when not all do
LABEL_IDS = "label_ids"  # clip key: labels the masks hold besides the expressions' targets


def frame_name(index: int) -> str:
    """The canonical name of frame ``index``: ``00000``, ``00001``, ..."""
    return f"{index:05d}"


@dataclass(frozen=True)
class Expression:
    """One referring expression of a clip.

    ``exp_id`` is the key in ``meta_expressions.json`` ("0".."3" in Ref-VPS), ``obj_id`` the label
    index it refers to in the masks (1 for Ref-VPS), ``annotator`` who wrote it (None if unknown).
    ``labels`` is set when the target is the union of several labels (``obj_id`` is then the first);
    :attr:`target_labels` is what the target is made of either way. ``extra`` keeps the entry's
    other keys (docs/BENCHMARKS_SUITE.md).
    """

    exp_id: str
    text: str
    obj_id: int = 1
    annotator: str | None = None
    labels: tuple[int, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def target_labels(self) -> tuple[int, ...]:
        """The label indices whose union is the target: ``labels``, or ``(obj_id,)``."""
        return self.labels or (self.obj_id,)

    def to_json(self) -> dict[str, Any]:
        obj_id: Any = [str(v) for v in self.labels] if len(self.labels) > 1 else str(self.obj_id)
        entry: dict[str, Any] = {"exp": self.text, "obj_id": obj_id}
        if self.annotator is not None:
            entry["annotator"] = self.annotator
        entry.update({k: v for k, v in self.extra.items() if k not in entry})
        return entry


@dataclass(frozen=True)
class Source:
    """Where a clip came from (provenance carried forward from curation)."""

    url: str | None = None
    platform: str | None = None
    uploader: str | None = None
    license: str | None = None
    retrieved: str | None = None
    video_id: str | None = None
    title: str | None = None
    # What the site said about the video (yt-dlp's info), and the search query that found it.
    uploader_id: str | None = None
    channel: str | None = None
    upload_date: str | None = None  # ISO date
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    query: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> "Source | None":
        if not data:
            return None
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: data[k] for k in known if k in data})


@dataclass(frozen=True)
class Trim:
    """The span of the source video that the clip covers, in seconds."""

    start_s: float
    end_s: float


@dataclass
class ClipMeta:
    """A clip's entry in ``clips.json``. Keys this class does not know are kept in ``extra``."""

    clip_id: str
    concept: str | None = None
    category: str | None = None
    fps: float = REFVPS_FPS
    width: int | None = None
    height: int | None = None
    source: Source | None = None
    trim: Trim | None = None
    crop: tuple[int, int, int, int] | None = None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    _KNOWN = ("concept", "category", "fps", "width", "height", "source", "trim", "crop", "notes")

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "concept": self.concept,
            "category": self.category,
            "fps": self.fps,
            "width": self.width,
            "height": self.height,
        }
        if self.source is not None:
            entry["source"] = self.source.to_json()
        if self.trim is not None:
            entry["trim"] = {"start_s": self.trim.start_s, "end_s": self.trim.end_s}
        if self.crop is not None:
            entry["crop"] = [int(v) for v in self.crop]
        entry["notes"] = self.notes
        entry.update(self.extra)
        return entry

    @classmethod
    def from_json(cls, clip_id: str, data: Mapping[str, Any]) -> "ClipMeta":
        trim = data.get("trim")
        crop = data.get("crop")
        return cls(
            clip_id=clip_id,
            concept=data.get("concept"),
            category=data.get("category"),
            fps=data.get("fps", REFVPS_FPS),
            width=data.get("width"),
            height=data.get("height"),
            source=Source.from_json(data.get("source")),
            trim=Trim(float(trim["start_s"]), float(trim["end_s"])) if isinstance(trim, Mapping) else None,
            crop=_crop_box(crop),
            notes=data.get("notes") or "",
            extra={k: v for k, v in data.items() if k not in cls._KNOWN},
        )


def read_rgb(path: str | Path) -> npt.NDArray[np.uint8]:
    """Read an image as an (H, W, 3) uint8 RGB array, with an error that names a bad file."""
    with open_image(path, FRAME) as image:
        return np.asarray(image.convert("RGB"))


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file, read from its header only."""
    with open_image(path, FRAME) as image:
        return image.size


def _crop_box(crop: Any) -> tuple[int, int, int, int] | None:
    """clips.json's ``crop`` ([x, y, w, h] in the source video) as four ints, or None when it is not four values."""
    if not isinstance(crop, (list, tuple)) or len(crop) != 4:
        return None
    x, y, width, height = (int(v) for v in crop)
    return x, y, width, height


class Clip:
    """One clip of a dataset: its metadata, frame names, expressions, and lazy access to pixels."""

    def __init__(
        self,
        root: Path,
        clip_id: str,
        meta: ClipMeta,
        frame_names: Sequence[str],
        expressions: Sequence[Expression],
        annotated_frames: Sequence[str] | None = None,
    ):
        self.root = root
        self.id = clip_id
        self.meta = meta
        self.frame_names: list[str] = list(frame_names)
        self.expressions: list[Expression] = list(expressions)
        self._annotated = None if annotated_frames is None else list(annotated_frames)
        self._annotated_set = None if annotated_frames is None else frozenset(annotated_frames)

    @property
    def annotated_frames(self) -> list[str]:
        """The frames that carry ground truth: every frame, unless the clip lists a subset
        (``annotated_frames`` in meta_expressions.json; docs/BENCHMARKS_SUITE.md)."""
        return list(self.frame_names) if self._annotated is None else list(self._annotated)

    @property
    def is_sparse(self) -> bool:
        """True when only some frames (possibly none) carry ground truth."""
        return self._annotated is not None

    def __repr__(self) -> str:
        return f"Clip({self.id!r}, frames={len(self.frame_names)}, expressions={len(self.expressions)})"

    def __len__(self) -> int:
        return len(self.frame_names)

    @property
    def frames_dir(self) -> Path:
        return self.root / FRAMES_DIR / self.id

    @property
    def masks_dir(self) -> Path:
        return self.root / MASKS_DIR / self.id

    def frame_path(self, name: str) -> Path:
        return self.frames_dir / f"{name}{FRAME_EXT}"

    def mask_path(self, name: str) -> Path:
        return self.masks_dir / f"{name}{MASK_EXT}"

    def read_frame(self, name: str) -> np.ndarray:
        """The frame ``name`` as (H, W, 3) uint8 RGB."""
        return read_rgb(self.frame_path(name))

    def frames(self) -> Iterator[np.ndarray]:
        """Every frame in order, decoded one at a time."""
        for name in self.frame_names:
            yield self.read_frame(name)

    def read_label(self, name: str) -> np.ndarray:
        """The label map of frame ``name`` as (H, W) uint8 indices (0, object ids, 255 Ignore).

        A frame outside :attr:`annotated_frames` has no ground truth: a :class:`DatasetError` says so.
        """
        self._check_annotated([name])
        return read_label_png(self.mask_path(name))

    def labels(self, frames: Sequence[str] | None = None) -> Iterator[np.ndarray]:
        """The label maps of ``frames`` (by default every frame) in order, decoded one at a time.

        A sparse clip (:attr:`is_sparse`) has label maps for its :attr:`annotated_frames` only:
        read those with ``clip.labels(clip.annotated_frames)``. Asking for a frame without one is a
        :class:`DatasetError`, raised here, before anything is read; never a silent gap.
        """
        names = list(self.frame_names if frames is None else frames)
        self._check_annotated(names)
        return (read_label_png(self.mask_path(name)) for name in names)

    def label_stack(self, frames: Sequence[str] | None = None) -> np.ndarray:
        """The label maps of ``frames`` (by default every frame) as one (T, H, W) uint8 array;
        on a sparse clip, pass ``clip.annotated_frames`` (see :meth:`labels`)."""
        maps = list(self.labels(frames))
        return np.stack(maps) if maps else np.zeros((0, 0, 0), np.uint8)

    def _check_annotated(self, names: Sequence[str]) -> None:
        if self._annotated_set is None:
            return
        missing = [name for name in names if name not in self._annotated_set]
        if missing:
            listed = f"{len(self._annotated_set)} of its {len(self.frame_names)} frames"
            raise DatasetError(
                f"clip {self.id} has no ground truth for frame(s) {', '.join(missing[:3])}"
                f"{' ...' if len(missing) > 3 else ''}: its 'annotated_frames' lists {listed}",
                hint="read the annotated frames only: clip.labels(clip.annotated_frames) "
                "(docs/BENCHMARKS_SUITE.md, 'Format extension')",
                path=self.root / EXPRESSIONS_FILE,
            )

    def has_masks(self) -> bool:
        return self.masks_dir.is_dir()

    @property
    def duration_s(self) -> float:
        return len(self.frame_names) / float(self.meta.fps or REFVPS_FPS)

    def expression(self, exp_id: str) -> Expression:
        for expression in self.expressions:
            if expression.exp_id == exp_id:
                return expression
        raise KeyError(f"clip {self.id} has no expression {exp_id!r}")


class Dataset:
    """A Ref-VPS-format dataset on disk.

    >>> import tempfile
    >>> root = (scratch := tempfile.TemporaryDirectory()).name
    >>> _ = DatasetWriter(root).write_clip(
    ...     "c1", [np.zeros((4, 6, 3), np.uint8)] * 2, [np.ones((4, 6), np.uint8)] * 2,
    ...     [Expression("0", "the smoke")], ClipMeta("c1", concept="smoke"))
    >>> ds = Dataset(root)
    >>> clip = ds.clip(ds.clip_ids[0])
    >>> clip.frame_names, clip.read_label(clip.frame_names[0]).shape
    (['00000', '00001'], (4, 6))

    The JSON files are read when the dataset is opened; frames and masks when asked for.
    Clips are those listed in ``meta_expressions.json`` (the Ref-YouTube-VOS index), in sorted order.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.exists():
            raise DatasetError(
                f"dataset folder does not exist: {self.root}",
                hint="check the path, or create a synthetic dataset with: refvps synth OUT",
                path=self.root,
            )
        if not self.root.is_dir():
            raise DatasetError(f"not a folder: {self.root}", hint="pass the dataset's root folder", path=self.root)
        self._videos = _read_videos(self.root / EXPRESSIONS_FILE)
        self._clips_meta = _read_clips_meta(self.root / CLIPS_FILE)

    def __repr__(self) -> str:
        return f"Dataset({str(self.root)!r}, clips={len(self.clip_ids)})"

    @property
    def clip_ids(self) -> list[str]:
        return sorted(self._videos)

    def __len__(self) -> int:
        return len(self._videos)

    def __contains__(self, clip_id: object) -> bool:
        return clip_id in self._videos

    def __iter__(self) -> Iterator[Clip]:
        for clip_id in self.clip_ids:
            yield self.clip(clip_id)

    def clip(self, clip_id: str) -> Clip:
        if clip_id not in self._videos:
            raise DatasetError(
                f"clip {clip_id!r} is not in {self.root / EXPRESSIONS_FILE}",
                hint="list the clips with: refvps stats ROOT",
                path=self.root / EXPRESSIONS_FILE,
            )
        video = self._videos[clip_id]
        meta_json = self._clips_meta.get(clip_id)
        meta = ClipMeta.from_json(clip_id, meta_json) if isinstance(meta_json, Mapping) else ClipMeta(clip_id)
        return Clip(self.root, clip_id, meta, _frames_of(video), _expressions_of(video), _annotated_of(video))

    def meta(self, clip_id: str) -> ClipMeta:
        return self.clip(clip_id).meta

    def expressions(self, clip_id: str) -> list[Expression]:
        return self.clip(clip_id).expressions

    @property
    def raw_expressions(self) -> dict[str, Any]:
        """The ``videos`` mapping of ``meta_expressions.json`` as read."""
        return self._videos

    @property
    def raw_clips(self) -> dict[str, Any]:
        """The ``clips`` mapping of ``clips.json`` as read (empty if the file is absent)."""
        return self._clips_meta


_INDEX_FILES = {"videos": EXPRESSIONS_FILE, "clips": CLIPS_FILE}
_INDEX_WHAT = {"videos": "expressions file (meta_expressions.json)", "clips": "clip metadata file (clips.json)"}
_INDEX_HINTS = {
    "videos": 'write {"videos": {"<clip_id>": {"expressions": {...}, "frames": [...]}}} (Ref-YouTube-VOS layout)',
    "clips": 'write {"clips": {"<clip_id>": {"concept": ..., "category": ..., "fps": 24, ...}}}',
}


def read_index(path: str | Path, key: str, *, required: bool = False, hint: str | None = None) -> dict[str, Any]:
    """The whole JSON document of an index file, checked to hold a ``key`` mapping: ``"videos"`` for
    ``meta_expressions.json``, ``"clips"`` for ``clips.json``.

    A missing file is ``{key: {}}`` unless ``required``; a file that does not parse or lacks the
    mapping is a :class:`DatasetError` naming it (``hint`` replaces the default advice).
    """
    path = Path(path)
    if not required and not path.exists():
        return {key: {}}
    data = read_json(path, what=_INDEX_WHAT.get(key, path.name))
    if not isinstance(data, dict) or not isinstance(data.get(key), dict):
        raise DatasetError(
            f"{path} has no {key!r} mapping (it must hold an object with one)",
            hint=hint or _INDEX_HINTS.get(key, f"write {{{key!r}: {{...}}}}"),
            path=path,
        )
    return data


def _read_videos(path: Path) -> dict[str, Any]:
    videos: dict[str, Any] = read_index(path, "videos", required=True)["videos"]
    return videos


def _read_clips_meta(path: Path) -> dict[str, Any]:
    clips: dict[str, Any] = read_index(path, "clips")["clips"]
    return clips


def _frames_of(video: Any) -> list[str]:
    frames = video.get("frames") if isinstance(video, Mapping) else None
    return [str(f) for f in frames] if isinstance(frames, list) else []


def video_entry(
    expressions: Sequence[Expression],
    frames: Sequence[str],
    *,
    annotated_frames: Sequence[str] | None = None,
    label_ids: Iterable[int] = (),
) -> dict[str, Any]:
    """A clip's entry in ``meta_expressions.json``; ``annotated_frames`` and ``label_ids`` are the
    optional keys of converted benchmarks (docs/BENCHMARKS_SUITE.md)."""
    entry: dict[str, Any] = {"expressions": {e.exp_id: e.to_json() for e in expressions}, "frames": list(frames)}
    if annotated_frames is not None:
        entry[ANNOTATED_FRAMES] = list(annotated_frames)
    labels = sorted({int(v) for v in label_ids})
    if labels:
        entry[LABEL_IDS] = [str(v) for v in labels]
    return entry


def _annotated_of(video: Any) -> list[str] | None:
    frames = video.get(ANNOTATED_FRAMES) if isinstance(video, Mapping) else None
    return [str(f) for f in frames] if isinstance(frames, list) else None


def parse_target(value: Any) -> tuple[int, ...]:
    """The label indices of an expression's ``obj_id``: ``"3"`` is (3,), ``["1", "4"]`` is (1, 4).

    Raises ValueError (or TypeError) when it is neither; validate reports that.
    """
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError("an obj_id list is empty")
        return tuple(int(v) for v in value)
    if isinstance(value, bool):
        raise TypeError("obj_id is a boolean")
    return (int(value),)


_EXPRESSION_KEYS = ("exp", "obj_id", "annotator")


def _expressions_of(video: Any) -> list[Expression]:
    entries = video.get("expressions") if isinstance(video, Mapping) else None
    if not isinstance(entries, Mapping):
        return []
    expressions = []
    for exp_id, entry in entries.items():
        if not isinstance(entry, Mapping):
            continue
        try:
            labels = parse_target(entry.get("obj_id", 1))
        except (TypeError, ValueError):
            labels = (-1,)  # validate reports it
        extra = {k: v for k, v in entry.items() if k not in _EXPRESSION_KEYS}
        expressions.append(
            Expression(
                str(exp_id),
                str(entry.get("exp", "")),
                labels[0],
                entry.get("annotator"),
                labels if len(labels) > 1 else (),
                extra,
            )
        )
    return sorted(expressions, key=lambda e: (len(e.exp_id), e.exp_id))


class DatasetWriter:
    """Writes a dataset in the canonical layout; every file is written atomically.

    Frames and masks are written one file at a time; the two JSON index files are updated under a
    file lock, one clip at a time, so that writing one clip never loses another clip's entries.

    >>> import tempfile
    >>> writer = DatasetWriter((scratch := tempfile.TemporaryDirectory()).name)
    >>> frames, labels = [np.zeros((4, 6, 3), np.uint8)] * 3, [np.zeros((4, 6), np.uint8)] * 3
    >>> writer.write_clip("c1", frames, labels, [Expression("0", "the smoke")], ClipMeta("c1", concept="smoke"))
    ['00000', '00001', '00002']
    """

    def __init__(self, root: str | Path, *, jpeg_quality: int = 95):
        self.root = Path(root)
        self.jpeg_quality = jpeg_quality
        self.root.mkdir(parents=True, exist_ok=True)

    def write_frame(self, clip_id: str, name: str, rgb: np.ndarray) -> Path:
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"a frame is (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
        image = Image.fromarray(rgb)
        path = self.root / FRAMES_DIR / clip_id / f"{name}{FRAME_EXT}"
        return atomic_write_with(path, lambda buf: image.save(buf, format="JPEG", quality=self.jpeg_quality))

    def write_label(self, clip_id: str, name: str, label: np.ndarray) -> Path:
        return write_label_png(self.root / MASKS_DIR / clip_id / f"{name}{MASK_EXT}", label)

    def write_clip(
        self,
        clip_id: str,
        frames: Iterable[np.ndarray] | None,
        labels: Iterable[np.ndarray] | None,
        expressions: Sequence[Expression],
        meta: ClipMeta,
    ) -> list[str]:
        """Write a whole clip: frames, label maps, its expressions and metadata. Returns frame names."""
        names: list[str] = []
        if frames is not None:
            for index, rgb in enumerate(frames):
                name = frame_name(index)
                self.write_frame(clip_id, name, rgb)
                names.append(name)
        else:
            names = sorted(p.stem for p in (self.root / FRAMES_DIR / clip_id).glob(f"*{FRAME_EXT}"))
        if labels is not None:
            count = 0
            for index, label in enumerate(labels):
                if index >= len(names):
                    raise ValueError(f"clip {clip_id}: more label maps than frames ({len(names)})")
                self.write_label(clip_id, names[index], label)
                count += 1
            if count != len(names):
                raise ValueError(f"clip {clip_id}: {count} label maps for {len(names)} frames")
        self.update_expressions(clip_id, expressions, frames=names)
        self.update_meta(meta)
        return names

    def update_expressions(
        self, clip_id: str, expressions: Sequence[Expression], *, frames: Sequence[str] | None = None
    ) -> None:
        """Replace one clip's expressions in ``meta_expressions.json``, leaving every other clip untouched.

        Without ``frames`` the entry keeps its frames and its other keys (a converted benchmark's
        ``annotated_frames`` and ``label_ids``, docs/BENCHMARKS_SUITE.md): editing the sentences
        changes nothing else. With ``frames`` (a clip just written whole) the entry is new.
        """
        path = self.root / EXPRESSIONS_FILE
        with file_lock(path):
            data = read_index(path, "videos")
            videos = data["videos"]
            old = videos.get(clip_id)
            entry = dict(old) if isinstance(old, Mapping) and frames is None else {}
            if frames is None:
                frames = entry.get("frames", [])
            entry.update({"expressions": {e.exp_id: e.to_json() for e in expressions}, "frames": list(frames)})
            videos[clip_id] = entry
            data["videos"] = dict(sorted(videos.items()))
            atomic_write_json(path, data)

    def update_meta(self, meta: ClipMeta) -> None:
        """Replace one clip's entry in ``clips.json``, leaving every other clip untouched."""
        path = self.root / CLIPS_FILE
        with file_lock(path):
            data = read_index(path, "clips")
            clips = data["clips"]
            clips[meta.clip_id] = meta.to_json()
            data["clips"] = dict(sorted(clips.items()))
            atomic_write_json(path, data)

    def remove_clip_entries(self, clip_id: str) -> None:
        """Drop a clip from both JSON index files (its frames and masks stay on disk)."""
        for key, name in _INDEX_FILES.items():
            path = self.root / name
            if not path.exists():
                continue
            with file_lock(path):
                data = read_index(path, key)
                if data[key].pop(clip_id, None) is not None:
                    atomic_write_json(path, data)


def target_mask(label: npt.ArrayLike, obj_id: int | Sequence[int] = 1) -> npt.NDArray[np.bool_]:
    """Boolean mask of object ``obj_id`` in a label map (Ignore is never target); a sequence of
    label indices gives their union (an :attr:`Expression.target_labels`)."""
    if isinstance(obj_id, (int, np.integer)):
        return np.equal(label, obj_id)
    return np.isin(np.asarray(label), np.asarray(list(obj_id), dtype=np.int64))


def ignore_mask(label: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Boolean mask of Ignore pixels (255) in a label map."""
    return np.equal(label, IGNORE_INDEX)
