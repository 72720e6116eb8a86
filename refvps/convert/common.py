"""What every converter shares: clip jobs, linking frames, resumable writing, the conversion record.

A converter turns a benchmark's own files into :class:`ClipJob` s, one per clip, each with its frames
(source files), its expressions, its clips.json entry and a function that yields its label maps.
:func:`run_conversion` writes them (docs/BENCHMARKS_SUITE.md):

* frames are hard-linked into ``JPEGImages/<clip>/``, else symbolic links are made, else they are
  copied; never copied when they can be linked. Frames that are not JPEG files are re-encoded. The
  conversion record says which method was used, and how often;
* label maps are written as 8-bit palette PNGs, atomically;
* each finished clip leaves its index entries in ``.convert/clips/<clip>.json``; the two index files
  are assembled from those at the end. A rerun skips finished clips, so an interrupted conversion
  resumes; a clip that fails is reported and the batch goes on;
* ``convert.json`` records the benchmark, split, source, options, link methods, failures and notes.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, ParamSpec, Sequence

import numpy as np
from PIL import Image

from refvps.dataset.format import (
    CLIPS_FILE,
    EXPRESSIONS_FILE,
    FRAME_EXT,
    FRAMES_DIR,
    MASK_EXT,
    MASKS_DIR,
    ClipMeta,
    Expression,
    Source,
    image_size,
    video_entry,
)
from refvps.dataset.palette import IGNORE_INDEX, read_label_png, write_label_png
from refvps.errors import DatasetError, RefvpsError, UsageError
from refvps.fileio import atomic_write_json, atomic_write_with, read_json
from refvps.progress import NO_PROGRESS, Progress

log = logging.getLogger(__name__)

STATE_DIR = ".convert"
RECORD_FILE = "convert.json"
CLIP_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
LINK_METHODS = ("hardlink", "symlink", "copy", "re-encoded")

P = ParamSpec("P")
LabelMaps = Callable[[], Iterator[tuple[str, np.ndarray]]]
"""Yields (frame name, uint8 label map) for each frame that carries ground truth, in order."""


@dataclass
class ClipJob:
    """One clip to write: frames as (name, source file), expressions, clips.json entry, label maps.

    ``annotated_frames`` is None when every frame has a label map; ``labels`` yields them (None: the
    clip has no ground truth). Labels the masks hold that no expression targets are declared in the
    clip's ``label_ids`` when it is written.
    """

    clip_id: str
    frames: list[tuple[str, Path]]
    expressions: list[Expression]
    meta: ClipMeta
    labels: LabelMaps | None = None
    annotated_frames: list[str] | None = None
    resolve: Callable[[], list[Expression]] | None = None  # expressions known once the label maps are made
    error: str | None = None  # why the clip cannot be converted, found while reading the benchmark's files


@dataclass(frozen=True)
class BenchmarkInfo:
    """What clips.json says about where a converted benchmark comes from."""

    key: str  # the converter's name: ``refvps convert <key>``
    name: str  # as papers print it
    protocol: str  # refvps.scoring.protocols name
    url: str
    license: str
    splits: tuple[str, ...]
    default_split: str

    def stamp(self, meta: ClipMeta, split: str, source_id: str) -> ClipMeta:
        """``meta`` with the benchmark's name, split, protocol and licence added."""
        meta.extra.update(benchmark=self.name, split=split, protocol=self.protocol, source_id=source_id)
        if meta.source is None:
            meta.source = Source(url=self.url, license=self.license, title=f"{self.name} ({split})", video_id=source_id)
        return meta


@dataclass
class ConversionReport:
    """What :func:`run_conversion` did (also written to ``convert.json``)."""

    benchmark: str
    split: str
    root: Path
    clips: int = 0
    converted: int = 0
    skipped_done: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    links: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_json(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "split": self.split,
            "root": str(self.root),
            "clips": self.clips,
            "converted": self.converted,
            "skipped_done": self.skipped_done,
            "failed": self.failed,
            "links": self.links,
            "notes": self.notes,
        }


def make_expression(
    exp_id: str,
    text: str,
    labels: Sequence[int],
    annotator: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Expression:
    """An expression whose target is the union of ``labels`` (one label: an ordinary ``obj_id``)."""
    labels = tuple(int(v) for v in labels)
    return Expression(str(exp_id), text, labels[0], annotator, labels if len(labels) > 1 else (), extra or {})


def ordered_entries(entries: dict[str, Any]) -> list[tuple[str, Any]]:
    """A benchmark's ``{exp_id: entry}`` in expression order ("2" before "10")."""
    return sorted(entries.items(), key=lambda kv: (len(str(kv[0])), str(kv[0])))


def label_files(folder: Path, names: Sequence[str]) -> LabelMaps:
    """The label maps of ``names`` read from ``<folder>/<name>.png`` as they are (palette or greyscale)."""

    def generate() -> Iterator[tuple[str, np.ndarray]]:
        for name in names:
            yield name, read_label_png(folder / f"{name}.png")

    return generate


def safe_clip_id(name: str, taken: set[str]) -> str:
    """A clip id the format accepts (letters, digits, ``_ . -``, starting with a letter or digit)
    made from a source name, unique among ``taken`` (which it joins)."""
    clean = "".join(c if c in CLIP_ID_CHARS else "_" for c in name)
    if not clean or not clean[0].isalnum():
        clean = "v" + clean
    candidate, n = clean, 1
    while candidate in taken:
        n += 1
        candidate = f"{clean}-{n}"
    taken.add(candidate)
    return candidate


def frame_stem(filename: str) -> str:
    """The frame name a source image file gives: its file name without the extension."""
    return Path(filename).stem


def list_images(folder: Path, suffixes: Iterable[str] = (".jpg", ".jpeg", ".png")) -> list[Path]:
    """The image files of a folder, sorted by name (hidden files left out)."""
    wanted = {s.lower() for s in suffixes}
    with os.scandir(folder) as entries:
        return sorted(
            (Path(e.path) for e in entries if not e.name.startswith(".") and Path(e.name).suffix.lower() in wanted),
            key=lambda p: p.name,
        )


def require_path(path: Path, what: str, hint: str) -> Path:
    """``path`` if it exists, else a :class:`DatasetError` naming what was expected there."""
    if not path.exists():
        raise DatasetError(f"{what} not found: {path}", hint=hint, path=path)
    return path


def planned(clip_id: str, build: Callable[P, ClipJob | None], *args: P.args, **kwargs: P.kwargs) -> ClipJob | None:
    """``build(*args, **kwargs)``; when the clip's source files are unusable (a :class:`DatasetError`), a
    job that reports why, so that :func:`run_conversion` lists it as failed and converts the other clips."""
    try:
        return build(*args, **kwargs)
    except DatasetError as exc:
        return ClipJob(clip_id, [], [], ClipMeta(clip_id), error=str(exc))


# --------------------------------------------------------------------------------------------
# Reading a benchmark's files
# --------------------------------------------------------------------------------------------


def read_lines(path: Path) -> list[str]:
    """The entries of a list file (a split's video names, one a line), blank lines left out."""
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def frames_in(folder: Path, hint: str) -> list[tuple[str, Path]]:
    """(frame name, file) of every image in ``folder``, in name order (the loaders sort them)."""
    return [(frame_stem(p.name), p) for p in list_images(require_path(folder, "the frames folder", hint))]


def annotated_subset(masks_dir: Path, names: Sequence[str], clip_id: str, notes: list[str]) -> list[str]:
    """The frames of ``names`` that have a mask ``<masks_dir>/<name>.png``; the others are noted."""
    annotated = [name for name in names if (masks_dir / f"{name}.png").exists()]
    if len(annotated) < len(names):
        unmasked = [name for name in names if name not in set(annotated)]
        notes.append(
            f"{clip_id}: {len(unmasked)} of {len(names)} frames have no mask in {masks_dir} "
            f"(first: {unmasked[0]}); they carry no ground truth"
        )
    return annotated


def read_video_index(path: Path, what: str) -> dict[str, dict[str, Any]]:
    """The ``videos`` of a YouTube-VOS-style ``meta_expressions.json`` (Ref-YouTube-VOS, MeViS), each
    checked to list its ``frames`` and its ``expressions`` (each with an ``exp`` text)."""
    data = read_json(path, what=what)
    videos = data.get("videos") if isinstance(data, dict) else None
    if not isinstance(videos, dict):
        raise _index_error(path, "has no 'videos' mapping at its top")
    for video, entry in videos.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("frames", []), list):
            raise _index_error(path, f"video {video}: 'frames' is not a list of frame names")
        expressions = entry.get("expressions", {})
        if not isinstance(expressions, dict):
            raise _index_error(path, f"video {video}: 'expressions' is not a mapping of expression ids")
        for exp_id, expression in expressions.items():
            if not isinstance(expression, dict) or not isinstance(expression.get("exp"), str):
                raise _index_error(path, f"video {video}: expression {exp_id} has no 'exp' text")
    return videos


def _index_error(path: Path, problem: str) -> DatasetError:
    return DatasetError(
        f"{path} {problem}", hint="the file is damaged or not the benchmark's own: download it again", path=path
    )


def expression_extra(entry: dict[str, Any]) -> dict[str, Any]:
    """An index entry's keys besides the text and the target, kept in the expression's ``extra``."""
    return {k: v for k, v in entry.items() if k not in ("exp", "obj_id")}


def listed_clip(
    info: BenchmarkInfo,
    split: str,
    video: str,
    entry: dict[str, Any],
    images: Path,
    taken: set[str],
    expressions: list[Expression],
    *,
    fps: float,
    notes: str = "",
) -> ClipJob:
    """The clip of a ``meta_expressions.json`` video: the frames it lists, as ``images/<video>/<frame>.jpg``."""
    names = [str(f) for f in entry.get("frames", [])]
    clip_id = safe_clip_id(video, taken)
    return ClipJob(
        clip_id=clip_id,
        frames=[(name, images / video / f"{name}.jpg") for name in names],
        expressions=expressions,
        meta=info.stamp(ClipMeta(clip_id, fps=fps, notes=notes), split, video),
    )


class ObjectSetLabels:
    """Label maps for targets that overlap: each pixel's label stands for the *set* of objects covering it.

    Label 1 goes to the first set met (frame by frame, sets in increasing bit order), and so on, so the
    labels are the same on every run. :meth:`labels_of` gives the labels whose set meets a group of
    objects: their union is exactly the union of those objects' masks (docs/BENCHMARKS_SUITE.md).
    """

    MAX_OBJECTS = 63  # one bit each in a 64-bit code
    MAX_LABELS = 254  # 255 is Ignore

    def __init__(self, clip_id: str, n_objects: int):
        if n_objects > self.MAX_OBJECTS:
            raise DatasetError(f"clip {clip_id} has {n_objects} objects; at most {self.MAX_OBJECTS} are supported")
        self.clip_id = clip_id
        self.codes: dict[int, int] = {}  # bit set of objects -> label

    def label_map(self, masks: Sequence[tuple[int, np.ndarray]], shape: tuple[int, int], frame: str) -> np.ndarray:
        """The label map of one frame from (object index, boolean mask) pairs (none: all background)."""
        code = np.zeros(shape, np.uint64)
        for index, mask in masks:
            code |= np.asarray(mask, bool).astype(np.uint64) << np.uint64(index)
        values, inverse = np.unique(code, return_inverse=True)
        lookup = np.zeros(len(values), np.uint8)
        for k, value in enumerate(values.tolist()):
            if value and value not in self.codes:
                if len(self.codes) == self.MAX_LABELS:
                    raise DatasetError(
                        f"clip {self.clip_id}: more than {self.MAX_LABELS} distinct overlaps of objects (frame {frame})",
                        hint="such a clip cannot be stored as 8-bit label maps",
                    )
                self.codes[value] = len(self.codes) + 1
            lookup[k] = self.codes.get(value, 0)
        return lookup[np.asarray(inverse).reshape(-1)].reshape(shape)

    def labels_of(self, objects: Iterable[int]) -> list[int]:
        """The labels whose object set meets ``objects``; a label no mask holds when none of them appears."""
        bits = 0
        for index in objects:
            bits |= 1 << index
        return sorted(label for code, label in self.codes.items() if code & bits) or [len(self.codes) + 1]


def decode_rle(rle: dict[str, Any], shape: tuple[int, int] | None = None) -> np.ndarray:
    """A COCO RLE (compressed string or plain count list) as an (H, W) bool mask."""
    from pycocotools import mask as mask_utils

    try:
        counts = rle["counts"]
        size = rle.get("size") or shape
        if size is None:
            raise DatasetError("an RLE mask without a size", hint="check the annotation file")
        height, width = int(size[0]), int(size[1])
        if isinstance(counts, list):
            encoded = mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
        else:
            encoded = {"size": [height, width], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
        mask: np.ndarray = mask_utils.decode(encoded).astype(bool)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise DatasetError(
            f"a mask's run-length encoding cannot be decoded ({type(exc).__name__}: {exc})",
            hint="the annotation file is damaged: download it again",
        ) from None
    return mask


# --------------------------------------------------------------------------------------------
# Linking frames
# --------------------------------------------------------------------------------------------


class FrameLinker:
    """Puts source frames into the dataset: a hard link, else a symbolic link, else a copy.

    The method that failed once is not tried again. Every file is placed atomically (made under a
    temporary name, then renamed), so a rerun replaces a half-made frame. ``counts`` says how many
    frames each method placed.
    """

    def __init__(self) -> None:
        self.methods = ["hardlink", "symlink", "copy"]
        self.counts: dict[str, int] = {}

    def place(self, source: Path, target: Path) -> str:
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.suffix.lower() not in (".jpg", ".jpeg") or _is_png(source):
            self._reencode(source, target)
            return self._count("re-encoded")
        while True:
            method = self.methods[0]
            try:
                self._make(method, source, target)
                return self._count(method)
            except OSError as exc:
                if method == "copy" or exc.errno not in _CANNOT_LINK:
                    raise
                log.info("cannot %s %s into %s (%s); trying the next method", method, source, target.parent, exc)
                self.methods.pop(0)

    def _count(self, method: str) -> str:
        self.counts[method] = self.counts.get(method, 0) + 1
        return method

    @staticmethod
    def _make(method: str, source: Path, target: Path) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        os.unlink(tmp)
        try:
            if method == "hardlink":
                os.link(source, tmp)
            elif method == "symlink":
                os.symlink(source.resolve(), tmp)
            else:
                shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        finally:
            # also after a successful replace: renaming a hard link onto another link of the same file
            # (a rerun placing a frame again) does nothing and leaves the temporary name behind
            if os.path.lexists(tmp):
                os.unlink(tmp)

    @staticmethod
    def _reencode(source: Path, target: Path) -> None:
        with Image.open(source) as image:
            rgb = image.convert("RGB")
        atomic_write_with(target, lambda buffer: rgb.save(buffer, format="JPEG", quality=95))


_CANNOT_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP}


def _is_png(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(8) == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------------------------
# Writing a dataset
# --------------------------------------------------------------------------------------------


def run_conversion(
    info: BenchmarkInfo,
    split: str,
    source: Path,
    out: Path,
    jobs: Sequence[ClipJob],
    *,
    options: dict[str, Any] | None = None,
    notes: Sequence[str] = (),
    progress: Progress = NO_PROGRESS,
) -> ConversionReport:
    """Write ``jobs`` into the dataset at ``out``, resuming a conversion started with the same settings."""
    out.mkdir(parents=True, exist_ok=True)
    state = out / STATE_DIR / "clips"
    fingerprint = conversion_fingerprint(info, split, source, options)
    check_destination(out, fingerprint)
    report = ConversionReport(info.key, split, out, clips=len(jobs), notes=list(notes))
    linker = FrameLinker()
    _write_record(out, fingerprint, report, "running")
    with progress.stage("clips", total=len(jobs)):
        for job in jobs:
            done = state / f"{job.clip_id}.json"
            if done.exists():
                report.skipped_done += 1
            elif job.error is not None:
                _failed(report, job.clip_id, job.error)
            else:
                try:
                    atomic_write_json(done, _write_clip(out, job, linker))
                    report.converted += 1
                except (RefvpsError, OSError, ValueError) as exc:
                    _failed(report, job.clip_id, str(exc))
            progress.advance("clips", note=job.clip_id)
    report.links = dict(linker.counts)
    _assemble_index(out, [job.clip_id for job in jobs], state)
    _write_record(out, fingerprint, report, "complete" if report.ok else "incomplete")
    return report


def _failed(report: ConversionReport, clip_id: str, error: str) -> None:
    report.failed.append({"clip": clip_id, "error": error})
    # Said once, in the report the caller prints (and convert.json); here only for --debug.
    log.debug("clip %s was not converted: %s", clip_id, error)


def _write_clip(out: Path, job: ClipJob, linker: FrameLinker) -> dict[str, Any]:
    """Frames, label maps and the clip's index entries (returned, for ``.convert/clips/<clip>.json``)."""
    if not job.frames:
        raise DatasetError(f"clip {job.clip_id} has no frames", hint="check the source dataset")
    for name, source in job.frames:
        if not source.is_file() or source.stat().st_size == 0:
            raise DatasetError(f"frame {source} is missing or empty", hint="restore it from the source", path=source)
        linker.place(source, out / FRAMES_DIR / job.clip_id / f"{name}{FRAME_EXT}")
    width, height = image_size(out / FRAMES_DIR / job.clip_id / f"{job.frames[0][0]}{FRAME_EXT}")
    job.meta.width, job.meta.height = width, height
    names = [name for name, _ in job.frames]
    written, present = _write_labels(out, job, (height, width))
    if job.resolve is not None and job.labels is not None:
        job.expressions = job.resolve()
    annotated = job.annotated_frames
    if job.labels is None:
        annotated = []
    elif annotated is not None and written != list(annotated):
        raise DatasetError(
            f"clip {job.clip_id}: label maps were made for {len(written)} frames, {len(annotated)} carry ground truth",
            hint="this is a bug in the converter; report it",
        )
    targets = {label for e in job.expressions for label in e.target_labels}
    label_ids = present - targets - {0, IGNORE_INDEX}
    entry = video_entry(job.expressions, names, annotated_frames=annotated, label_ids=label_ids)
    return {"video": entry, "clip": job.meta.to_json()}


def _write_labels(out: Path, job: ClipJob, shape: tuple[int, int]) -> tuple[list[str], set[int]]:
    """Write the clip's label maps; returns the frames written and the label values found in them."""
    written: list[str] = []
    present: set[int] = set()
    if job.labels is None:
        return written, present
    for name, label in job.labels():
        label = np.asarray(label)
        if label.shape != shape:
            raise DatasetError(
                f"clip {job.clip_id}: the mask of frame {name} is {label.shape[1]}x{label.shape[0]}, "
                f"the frames are {shape[1]}x{shape[0]}",
                hint="check the source dataset's masks",
            )
        label = label.astype(np.uint8, copy=False)
        write_label_png(out / MASKS_DIR / job.clip_id / f"{name}{MASK_EXT}", label)
        present.update(np.flatnonzero(np.bincount(label.ravel(), minlength=256)).tolist())
        written.append(name)
    return written, present


def _assemble_index(out: Path, clip_ids: Sequence[str], state: Path) -> None:
    """meta_expressions.json and clips.json from the finished clips' entries, in clip order."""
    videos: dict[str, Any] = {}
    clips: dict[str, Any] = {}
    for clip_id in sorted(clip_ids):
        path = state / f"{clip_id}.json"
        if not path.exists():
            continue
        record = read_json(path, what="conversion state file")
        videos[clip_id] = record["video"]
        clips[clip_id] = record["clip"]
    atomic_write_json(out / EXPRESSIONS_FILE, {"videos": videos})
    atomic_write_json(out / CLIPS_FILE, {"clips": clips})


def conversion_fingerprint(
    info: BenchmarkInfo, split: str, source: Path, options: dict[str, Any] | None
) -> dict[str, Any]:
    """What must match for a rerun to resume a conversion: benchmark, split, source folder, options."""
    return {"benchmark": info.key, "split": split, "source": str(source.resolve()), "options": options or {}}


def check_destination(out: Path, fingerprint: dict[str, Any]) -> None:
    """Refuse an ``--out`` that holds another conversion, or a dataset refvps convert did not make."""
    path = out / RECORD_FILE
    if path.exists():
        previous = read_json(path, what="conversion record").get("fingerprint")
        if previous != fingerprint:
            raise UsageError(
                f"{out} holds another conversion ({json.dumps(previous)}), not {json.dumps(fingerprint)}",
                hint="convert into a new --out folder (a rerun with the same benchmark, split, source and "
                "options resumes)",
                path=path,
            )
    elif (out / EXPRESSIONS_FILE).exists():
        raise UsageError(
            f"{out} already holds a dataset that refvps convert did not make",
            hint="convert into a new, empty --out folder",
            path=out,
        )


def _write_record(out: Path, fingerprint: dict[str, Any], report: ConversionReport, status: str) -> None:
    from refvps import __version__

    atomic_write_json(
        out / RECORD_FILE,
        {"fingerprint": fingerprint, "status": status, "refvps_version": __version__, **report.to_json()},
    )
