"""Checking a dataset against every rule of the Ref-VPS format (``docs/FORMAT.md``).

:func:`validate_dataset` reads the whole dataset and returns a :class:`ValidationReport` listing every
problem, each with the file it concerns and what to do about it. It never stops at the first problem
and never raises for bad data (only for a root folder that does not exist).

Rules marked ``refvps`` apply only when the Ref-VPS benchmark rules are asked for
(``refvps_rules=True``): four expressions per clip, two per annotator, two annotators, 24 fps,
clip metadata present.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from refvps.dataset import transaction
from refvps.dataset.format import (
    ANNOTATED_FRAMES,
    CLIPS_FILE,
    EXPRESSIONS_FILE,
    FRAME_EXT,
    FRAMES_DIR,
    LABEL_IDS,
    MASK_EXT,
    MASKS_DIR,
    REFVPS_FPS,
    Dataset,
    parse_target,
)
from refvps.dataset.images import FRAME, LABEL_MAP, open_image, read_image_bytes
from refvps.dataset.palette import IGNORE_INDEX, LabelImage, decode_label_image
from refvps.errors import DatasetError, DatasetInvalidError, RefvpsError, UsageError
from refvps.fileio import read_json
from refvps.progress import NO_PROGRESS, Progress

ERROR = "error"
WARNING = "warning"

REFVPS_EXPRESSIONS_PER_CLIP = 4
REFVPS_ANNOTATORS = 2
REFVPS_EXPRESSIONS_PER_ANNOTATOR = 2

# rule id -> one line describing it (``refvps validate --rules`` prints these).
RULES: dict[str, str] = {
    "json_parse": "meta_expressions.json and clips.json exist (clips.json optional) and parse as JSON",
    "json_schema": "both JSON files follow their schema in annotations/schemas/",
    "clip_folder": "every clip in meta_expressions.json has a JPEGImages/<clip>/ folder with frames",
    "missing_frame": "every frame listed in 'frames' exists as JPEGImages/<clip>/<frame>.jpg",
    "extra_frame": "every .jpg in JPEGImages/<clip>/ is listed in 'frames'",
    "duplicate_frame": "'frames' lists each frame once",
    "frame_unreadable": "every frame decodes as an image",
    "frame_size": "all frames of a clip have the same size, which matches clips.json width/height",
    "missing_mask": "every frame (or each one in the clip's annotated_frames) has Annotations/<clip>/<frame>.png",
    "extra_mask": "every mask belongs to a listed frame",
    "mask_unreadable": "every mask decodes as a PNG",
    "mask_not_palette": "masks are 8-bit palette PNGs",
    "mask_size": "each mask has the size of its frame",
    "mask_values": "mask values lie in {0, the clip's object ids, 255 = Ignore}",
    "no_expression": "an object labelled in a clip's masks has an expression referring to it (one problem per clip)",
    "obj_id_absent": "the object an expression refers to appears in at least one mask",
    "empty_target": "a clip's target is present in at least one frame",
    "expression_empty": "no expression is empty",
    "expression_duplicate": "no two expressions of a clip are the same text",
    "expression_count": "refvps: exactly 4 expressions per clip",
    "annotator_count": "refvps: two annotators with two expressions each",
    "fps": "refvps: clips are annotated at 24 fps",
    "clip_meta": "every clip has an entry in clips.json (refvps: required)",
    "orphan": "no frame folder or clips.json entry without a clip in meta_expressions.json",
    "taxonomy": "concept and category ids exist in annotations/taxonomy.json (warning only)",
}
RULES.update(transaction.RULES)  # interrupted saves and stray temporary files


@dataclass(frozen=True)
class Problem:
    """One broken rule: which rule, which file, what is wrong, what to do."""

    rule: str
    path: str
    message: str
    hint: str
    clip_id: str | None = None
    severity: str = ERROR

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ValidationReport:
    """Everything :func:`validate_dataset` found. ``ok`` is True when there is no error."""

    root: Path
    refvps_rules: bool
    problems: list[Problem] = field(default_factory=list)
    n_clips: int = 0
    n_frames: int = 0
    n_masks: int = 0

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == WARNING]

    @property
    def ok(self) -> bool:
        return not self.errors

    def for_clip(self, clip_id: str) -> list[Problem]:
        return [p for p in self.problems if p.clip_id == clip_id]

    def to_json(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "valid": self.ok,
            "refvps_rules": self.refvps_rules,
            "n_clips": self.n_clips,
            "n_frames": self.n_frames,
            "n_masks": self.n_masks,
            "n_errors": len(self.errors),
            "n_warnings": len(self.warnings),
            "problems": [p.to_json() for p in self.problems],
        }


class _Collector:
    def __init__(self, report: ValidationReport):
        self.report = report

    def add(
        self,
        rule: str,
        path: str | Path,
        message: str,
        hint: str,
        clip_id: str | None = None,
        severity: str = ERROR,
    ) -> None:
        self.report.problems.append(Problem(rule, str(path), message, hint, clip_id, severity))


def _normalise_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return re.sub(r"[\s\.\!\?,;:]+", " ", text).strip()


def validate_dataset(
    root: str | Path,
    *,
    refvps_rules: bool = False,
    clips: Iterable[str] | None = None,
    check_masks: bool = True,
    progress: Progress = NO_PROGRESS,
) -> ValidationReport:
    """Check a dataset and return every problem found.

    ``clips`` restricts the per-clip checks to those clips (the annotation tool checks one clip);
    ``check_masks=False`` skips decoding masks (faster; sizes and values unchecked). ``progress``
    gets the stage ``"validating"``: one step per clip, noted with its id.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(
            f"dataset folder does not exist: {root}" if not root.exists() else f"not a folder: {root}",
            hint="pass the dataset's root folder (the one holding JPEGImages/ and meta_expressions.json)",
            path=root,
        )
    report = ValidationReport(root=root, refvps_rules=refvps_rules)
    out = _Collector(report)

    videos = _load_index(root / EXPRESSIONS_FILE, "videos", out, required=True)
    clips_meta = _load_index(root / CLIPS_FILE, "clips", out, required=refvps_rules)
    if videos is None:
        return report

    asked = None if clips is None else list(clips)
    selected = sorted(videos) if asked is None else [c for c in asked if c in videos]
    for clip_id in asked or ():
        if clip_id not in videos:
            out.add(
                "clip_folder",
                root / EXPRESSIONS_FILE,
                f"clip {clip_id!r} is not in meta_expressions.json",
                "add the clip to meta_expressions.json or check its id",
                clip_id,
            )
    report.n_clips = len(selected)
    settings = _Settings(root, refvps_rules, check_masks, clips_meta is not None, _taxonomy_ids())
    with progress.stage("validating", total=len(selected)):
        for clip_id in selected:
            meta = clips_meta.get(clip_id) if clips_meta is not None else None
            _validate_clip(settings, clip_id, videos[clip_id], meta, out)
            progress.advance("validating", note=clip_id)

    if asked is None:
        _check_orphans(root, videos, clips_meta, out)
    for left in transaction.inspect(root, None if clips is None else selected):
        out.add(left.rule, left.path, left.message, left.hint, left.clip_id, left.severity)
    return report


MASK_RULES = ("missing_mask", "extra_mask", "mask_unreadable", "mask_not_palette", "mask_size", "mask_values")


def require_valid(
    root: str | Path,
    *,
    refvps_rules: bool = False,
    check_masks: bool = True,
    clips: Iterable[str] | None = None,
    require_masks: bool = True,
) -> ValidationReport:
    """Validate and raise :class:`DatasetInvalidError` listing the errors if the dataset is not valid.

    ``require_masks=False`` accepts clips without ground truth (a method can predict unlabelled clips).
    """
    report = validate_dataset(root, refvps_rules=refvps_rules, check_masks=check_masks, clips=clips)
    errors = [p for p in report.errors if require_masks or p.rule not in MASK_RULES]
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise DatasetInvalidError(
            f"dataset {root} does not validate: {first.path}: {first.message}{more}",
            errors,
            hint=f"run 'refvps validate {root}' to see every problem and how to fix it",
            path=first.path,
        )
    return report


def open_valid_dataset(
    root: str | Path,
    clips: Sequence[str] | None = None,
    *,
    check_masks: bool = True,
    require_masks: bool = True,
) -> tuple[Dataset, list[str]]:
    """Validate a dataset (only ``clips``, when given) and open it: how every command that reads one starts.

    Returns the :class:`Dataset` and the clip ids to work on (``clips`` without repeats, else every
    clip). A name in ``clips`` that the dataset lacks is a :class:`UsageError` (a wrong ``--clip``),
    not a problem of the dataset; an invalid dataset raises :class:`DatasetInvalidError`.
    ``require_masks=False`` accepts clips without ground truth (a method can predict a test split).
    """
    root = Path(root)
    clips = list(dict.fromkeys(clips)) if clips else None  # a clip named twice is used once
    if clips:
        _check_clips_exist(root, clips)
    require_valid(root, clips=clips, check_masks=check_masks, require_masks=require_masks)
    dataset = Dataset(root)
    selected = clips or dataset.clip_ids
    if not selected:
        raise UsageError(f"dataset {root} has no clips", hint=f"check {EXPRESSIONS_FILE}", path=root)
    return dataset, selected


def _check_clips_exist(root: Path, clips: Sequence[str]) -> None:
    """A --clip that is not in the dataset is a usage error, not a problem of the dataset."""
    try:
        videos = read_json(root / EXPRESSIONS_FILE).get("videos")
    except (DatasetError, OSError, AttributeError):
        return  # validation reports an unreadable index, naming the file
    if isinstance(videos, dict):
        check_clip_names(root, videos, clips)


def check_clip_names(root: str | Path, known: Iterable[str], clips: Sequence[str]) -> None:
    """Raise a :class:`UsageError` naming every clip of ``clips`` that is not among the ``known`` clip
    ids of the dataset at ``root`` (a wrong ``--clip``)."""
    root, known = Path(root), set(known)
    unknown = [c for c in clips if c not in known]
    if unknown:
        examples = ", ".join(sorted(known)[:3]) or "none"
        raise UsageError(
            f"--clip {', '.join(unknown)}: not a clip of {root} ({len(known)} clips, e.g. {examples})",
            hint=f"clip ids are the keys of {root / EXPRESSIONS_FILE}; leave out --clip to use every clip",
            path=root / EXPRESSIONS_FILE,
        )


def _load_index(path: Path, key: str, out: _Collector, *, required: bool) -> dict[str, Any] | None:
    if not path.exists():
        if required:
            out.add(
                "json_parse",
                path,
                f"{path.name} is missing",
                f"write {path.name} in the dataset root (see annotations/schemas/)",
            )
        return None
    try:
        data = read_json(path, what=path.name)
    except DatasetError as exc:
        out.add("json_parse", path, exc.message, exc.hint or "fix the JSON")
        return None
    for message, where in _schema_errors(path.name, data):
        out.add(
            "json_schema",
            path,
            f"{path.name}{where}: {message}",
            f"fix the entry so it follows annotations/schemas/{path.stem}.schema.json",
        )
    mapping = data.get(key) if isinstance(data, dict) else None
    return mapping if isinstance(mapping, dict) else None


def _schema_errors(name: str, data: Any) -> list[tuple[str, str]]:
    import jsonschema

    from refvps.resources import load_resource_json

    schema = load_resource_json(f"schemas/{Path(name).stem}.schema.json")
    validator = jsonschema.Draft202012Validator(schema)
    found = []
    for error in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        where = "".join(f"[{p!r}]" for p in error.absolute_path)
        found.append((error.message, where))
    return found


def _taxonomy_ids() -> tuple[set[str], set[str]] | None:
    try:
        from refvps.resources import load_taxonomy

        taxonomy: Any = load_taxonomy()  # the file may hold anything
    except RefvpsError:  # missing or unreadable: the taxonomy check is advisory (a warning rule)
        return None
    if not isinstance(taxonomy, dict):
        return None
    categories = {c["id"] for c in taxonomy.get("categories", [])}
    concepts = {k["id"] for c in taxonomy.get("categories", []) for k in c.get("concepts", [])}
    return categories, concepts


def _list_files(folder: Path, ext: str) -> set[str] | None:
    if not folder.is_dir():
        return None
    with os.scandir(folder) as entries:
        return {e.name[: -len(ext)] for e in entries if e.name.endswith(ext) and not e.name.startswith(".")}


def _jpeg_is_complete(path: Path) -> bool:
    # Decoding every frame is slow at Ref-VPS scale; a truncated JPEG lacks its final EOI marker.
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 64))
        tail = handle.read().rstrip(b"\x00")
    return tail.endswith(b"\xff\xd9")


Taxonomy = tuple[set[str], set[str]]
"""The category ids and the concept ids of ``annotations/taxonomy.json``."""


@dataclass(frozen=True)
class _Settings:
    """What the checks of every clip share."""

    root: Path
    refvps_rules: bool
    check_masks: bool
    has_clips_file: bool
    taxonomy: Taxonomy | None


@dataclass
class _ClipCheck:
    """One clip being checked: its index entries, where its files are, and what earlier checks found."""

    settings: _Settings
    clip_id: str
    meta: dict[str, Any] | None  # its clips.json entry
    frames: list[str]  # its 'frames' list
    expressions: dict[str, Any]  # its 'expressions' mapping
    out: _Collector
    annotated: list[str]  # the frames that carry ground truth: 'annotated_frames', else every frame
    sparse: bool  # the clip lists 'annotated_frames' (docs/BENCHMARKS_SUITE.md, "Format extension")
    label_ids: set[int]  # labels the masks may hold besides the expressions' targets ('label_ids')
    obj_ids: dict[str, tuple[int, ...]] = field(default_factory=dict)  # exp_id -> the labels of its target
    present: set[str] = field(default_factory=set)  # frame files on disk
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # frame -> (width, height)

    @property
    def exp_path(self) -> Path:
        return self.settings.root / EXPRESSIONS_FILE

    @property
    def clips_path(self) -> Path:
        return self.settings.root / CLIPS_FILE

    @property
    def frames_dir(self) -> Path:
        return self.settings.root / FRAMES_DIR / self.clip_id

    @property
    def masks_dir(self) -> Path:
        return self.settings.root / MASKS_DIR / self.clip_id

    def add(self, rule: str, path: str | Path, message: str, hint: str, severity: str = ERROR) -> None:
        self.out.add(rule, path, message, hint, self.clip_id, severity)


def _validate_clip(settings: _Settings, clip_id: str, video: Any, meta: Any, out: _Collector) -> None:
    if not isinstance(video, dict):
        return  # the schema check has reported it
    frames = [str(f) for f in video.get("frames", []) if isinstance(f, (str, int))]
    sparse = isinstance(video.get(ANNOTATED_FRAMES), list)
    clip = _ClipCheck(
        settings,
        clip_id,
        meta if isinstance(meta, dict) else None,
        frames,
        video.get("expressions", {}) if isinstance(video.get("expressions"), dict) else {},
        out,
        annotated=frames,
        sparse=sparse,
        label_ids=_label_ids(video),
    )
    if sparse:
        clip.annotated = _annotated_frames(clip, video[ANNOTATED_FRAMES])
    _check_expressions(clip)
    if settings.refvps_rules:
        _check_refvps_expressions(clip)
    _check_clip_meta(clip)
    _check_frame_files(clip)
    _check_frame_sizes(clip)
    out.report.n_frames += len(clip.frames)
    masks = _check_mask_files(clip)
    if masks is not None and settings.check_masks:
        _check_mask_contents(clip, masks)


def _check_expressions(clip: _ClipCheck) -> None:
    """Texts present and distinct; obj_ids that are integers or lists of them (kept in ``clip.obj_ids``).

    Only Ref-VPS forbids two expressions of the same text; a converted benchmark keeps what its
    annotators wrote (a warning then)."""
    duplicate_severity = ERROR if clip.settings.refvps_rules else WARNING
    seen_text: dict[str, str] = {}
    for exp_id, entry in clip.expressions.items():
        if not isinstance(entry, dict):
            continue
        text = entry.get("exp")
        if not isinstance(text, str) or not text.strip():
            clip.add(
                "expression_empty",
                clip.exp_path,
                f"clip {clip.clip_id}: expression {exp_id} is empty",
                "write the referring expression, or remove the entry",
            )
        else:
            key = _normalise_text(text)
            if key in seen_text:
                clip.add(
                    "expression_duplicate",
                    clip.exp_path,
                    f"clip {clip.clip_id}: expressions {seen_text[key]} and {exp_id} are the same text: {text!r}",
                    "rewrite one of them: each expression should describe the target in its own words",
                    duplicate_severity,
                )
            else:
                seen_text[key] = exp_id
        obj_id: Any = entry.get("obj_id")
        try:
            clip.obj_ids[exp_id] = parse_target(obj_id)
        except (TypeError, ValueError):
            clip.add(
                "json_schema",
                clip.exp_path,
                f"clip {clip.clip_id}: expression {exp_id} has obj_id {obj_id!r}",
                'set obj_id to the label index of the target, as a string ("1"), or a list of them',
            )


def _check_refvps_expressions(clip: _ClipCheck) -> None:
    """Ref-VPS: four expressions, two by each of two annotators."""
    expressions = clip.expressions
    if len(expressions) != REFVPS_EXPRESSIONS_PER_CLIP:
        clip.add(
            "expression_count",
            clip.exp_path,
            f"clip {clip.clip_id}: {len(expressions)} expressions, Ref-VPS has exactly {REFVPS_EXPRESSIONS_PER_CLIP}",
            "two annotators write two expressions each",
        )
    annotators = Counter(e.get("annotator") for e in expressions.values() if isinstance(e, dict))
    bad = {a: n for a, n in annotators.items() if n != REFVPS_EXPRESSIONS_PER_ANNOTATOR}
    if None in annotators or len(annotators) != REFVPS_ANNOTATORS or bad:
        shown = ", ".join(f"{a if a is not None else '(none)'}: {n}" for a, n in sorted(annotators.items(), key=str))
        clip.add(
            "annotator_count",
            clip.exp_path,
            f"clip {clip.clip_id}: expressions per annotator are {{{shown}}}, Ref-VPS needs 2 annotators x 2",
            "set 'annotator' on every expression; each of the two annotators writes two",
        )


def _check_clip_meta(clip: _ClipCheck) -> None:
    """The clip's clips.json entry: present, at 24 fps, with concept and category in the taxonomy."""
    settings, meta = clip.settings, clip.meta
    if meta is None:
        if settings.has_clips_file or settings.refvps_rules:
            clip.add(
                "clip_meta",
                clip.clips_path,
                f"clip {clip.clip_id} has no entry in clips.json",
                "add its concept, category, fps, width and height to clips.json",
                ERROR if settings.refvps_rules else WARNING,
            )
        return
    fps = meta.get("fps")
    if isinstance(fps, (int, float)) and fps != REFVPS_FPS:
        clip.add(
            "fps",
            clip.clips_path,
            f"clip {clip.clip_id} is at {fps} fps, Ref-VPS clips are at {REFVPS_FPS}",
            f"re-export the frames at {REFVPS_FPS} fps (refvps trim does)",
            ERROR if settings.refvps_rules else WARNING,
        )
    if settings.taxonomy is None:
        return
    for key, known in zip(("category", "concept"), settings.taxonomy):
        if meta.get(key) is not None and meta.get(key) not in known:
            clip.add(
                "taxonomy",
                clip.clips_path,
                f"clip {clip.clip_id}: {key} {meta.get(key)!r} is not in the taxonomy",
                f"use a {key} id from annotations/taxonomy.json, or add it there",
                WARNING,
            )


def _check_frame_files(clip: _ClipCheck) -> None:
    """The frame folder and its files against the 'frames' list (kept in ``clip.present``)."""
    clip_id, frames, frames_dir = clip.clip_id, clip.frames, clip.frames_dir
    present = _list_files(frames_dir, FRAME_EXT)
    if present is None:
        clip.add(
            "clip_folder",
            frames_dir,
            f"clip {clip_id} has no frame folder",
            f"export the clip's frames to {FRAMES_DIR}/{clip_id}/ or remove the clip from meta_expressions.json",
        )
    if not frames:
        clip.add(
            "clip_folder",
            clip.exp_path,
            f"clip {clip_id} lists no frames",
            "list every frame name in the clip's 'frames' array",
        )
    for name, count in Counter(frames).items():
        if count > 1:
            clip.add(
                "duplicate_frame",
                clip.exp_path,
                f"clip {clip_id}: frame {name} is listed {count} times",
                "list each frame once",
            )
    clip.present = present or set()
    for name in frames:
        if present is not None and name not in present:
            clip.add(
                "missing_frame",
                frames_dir / f"{name}{FRAME_EXT}",
                f"clip {clip_id}: frame {name} is missing",
                "restore the frame, or remove it from the clip's 'frames' list",
            )
    for name in sorted(clip.present - set(frames)):
        clip.add(
            "extra_frame",
            frames_dir / f"{name}{FRAME_EXT}",
            f"clip {clip_id}: frame {name} is not listed in meta_expressions.json",
            "add it to the clip's 'frames' list, or delete the file",
        )


def _check_frame_sizes(clip: _ClipCheck) -> None:
    """Every frame decodes (header, and a complete JPEG); one size per clip, the one clips.json says."""
    for name in clip.frames:
        if name not in clip.present:
            continue
        path = clip.frames_dir / f"{name}{FRAME_EXT}"
        try:
            with open_image(path, FRAME) as image:
                size, fmt = image.size, image.format
                if fmt == "JPEG" and not _jpeg_is_complete(path):
                    raise OSError("the file ends before the JPEG end-of-image marker (truncated)")
            clip.sizes[name] = size
        except DatasetError as exc:
            clip.add("frame_unreadable", path, f"clip {clip.clip_id}: {exc.message}", "re-export the frame")
    distinct = Counter(clip.sizes.values())
    if not distinct:
        return
    common = distinct.most_common(1)[0][0]
    if len(distinct) > 1:
        odd = [n for n, s in clip.sizes.items() if s != common]
        clip.add(
            "frame_size",
            clip.frames_dir / f"{odd[0]}{FRAME_EXT}",
            f"clip {clip.clip_id}: frames differ in size ({len(odd)} frames are not {common[0]}x{common[1]})",
            "re-export the clip so every frame has the same size",
        )
    meta = clip.meta
    if meta is not None and (meta.get("width") not in (None, common[0]) or meta.get("height") not in (None, common[1])):
        clip.add(
            "frame_size",
            clip.clips_path,
            f"clip {clip.clip_id}: clips.json says {meta.get('width')}x{meta.get('height')}, "
            f"frames are {common[0]}x{common[1]}",
            "correct width and height in clips.json",
        )


def _check_mask_files(clip: _ClipCheck) -> set[str] | None:
    """The mask folder holds one PNG per annotated frame and nothing else; returns the masks present.

    A clip that lists no annotated frames (``annotated_frames: []``) has no ground truth, and needs no
    mask folder (a split whose masks are not public; docs/BENCHMARKS_SUITE.md)."""
    clip_id, masks_dir = clip.clip_id, clip.masks_dir
    masks = _list_files(masks_dir, MASK_EXT)
    if masks is None and clip.sparse and not clip.annotated:
        return None
    if masks is None:
        clip.add(
            "missing_mask",
            masks_dir,
            f"clip {clip_id} has no mask folder",
            f"annotate the clip (refvps annotate) so that {MASKS_DIR}/{clip_id}/ holds one PNG per frame",
        )
        return None
    for name in clip.annotated:
        if name not in masks:
            clip.add(
                "missing_mask",
                masks_dir / f"{name}{MASK_EXT}",
                f"clip {clip_id}: frame {name} has no mask",
                f"every frame listed in '{ANNOTATED_FRAMES}' is labelled; write an all-0 mask where the target "
                "is absent"
                if clip.sparse
                else "every frame is labelled; write an all-0 mask for frames where the target is absent",
            )
    for name in sorted(masks - set(clip.annotated)):
        clip.add(
            "extra_mask",
            masks_dir / f"{name}{MASK_EXT}",
            f"clip {clip_id}: mask {name} has no listed frame"
            + (f" in '{ANNOTATED_FRAMES}'" if clip.sparse and name in clip.frames else ""),
            f"delete the mask or add its frame to '{ANNOTATED_FRAMES}'"
            if clip.sparse
            else "delete the mask or add its frame",
        )
    return masks


def _check_mask_contents(clip: _ClipCheck, masks: set[str]) -> None:
    """Every mask decodes, is an 8-bit palette PNG of its frame's size, and holds only known labels
    (the expressions' targets and the clip's ``label_ids``)."""
    referred = {label for labels in clip.obj_ids.values() for label in labels}
    allowed = {0, IGNORE_INDEX, *referred, *clip.label_ids}
    found_ids: set[int] = set()
    unreferenced: dict[int, int] = Counter()  # without expressions: label -> frames holding it
    decoded = 0
    for name in clip.annotated:
        if name not in masks:
            continue
        path = clip.masks_dir / f"{name}{MASK_EXT}"
        try:
            label = decode_label_image(read_image_bytes(path, LABEL_MAP), path)
        except DatasetError as exc:
            clip.add(
                "mask_unreadable",
                path,
                f"clip {clip.clip_id}: {exc.message}",
                "re-save the mask as an 8-bit palette PNG",
            )
            continue
        decoded += 1
        _check_mask_format(clip, name, path, label)
        if label.array is None:
            continue
        values = set(np.flatnonzero(np.bincount(label.array.ravel(), minlength=256)).tolist())
        wrong = values - allowed
        if not referred:
            unreferenced.update(wrong)
        elif wrong:
            clip.add(
                "mask_values",
                path,
                f"clip {clip.clip_id}: mask {name} has values {sorted(wrong)[:8]} outside "
                f"{{0, {', '.join(map(str, sorted(allowed - {0, IGNORE_INDEX})))}, 255}}",
                "use 0 for background, the expression's obj_id for the target and 255 for Ignore",
            )
        found_ids |= values - {0, IGNORE_INDEX}
    clip.out.report.n_masks += decoded
    if unreferenced:
        _report_unreferenced(clip, unreferenced)
    if decoded and clip.annotated:
        _check_targets(clip, found_ids)


def _check_mask_format(clip: _ClipCheck, name: str, path: Path, label: LabelImage) -> None:
    if label.mode != "P":
        clip.add(
            "mask_not_palette",
            path,
            f"clip {clip.clip_id}: mask {name} is a {label.mode} image, not 8-bit palette",
            "save it as a palette PNG (mode 'P'), e.g. with refvps.dataset.write_label_png",
        )
    frame_size = clip.sizes.get(name)
    if frame_size is not None and label.size != frame_size:
        clip.add(
            "mask_size",
            path,
            f"clip {clip.clip_id}: mask {name} is {label.size[0]}x{label.size[1]}, "
            f"its frame is {frame_size[0]}x{frame_size[1]}",
            "masks have the exact size of their frame; re-export the mask",
        )


def _report_unreferenced(clip: _ClipCheck, frames_per_label: dict[int, int]) -> None:
    """One problem for a clip whose masks label objects while no expression refers to any."""
    shown = ", ".join(f"{value} in {frames_per_label[value]} frames" for value in sorted(frames_per_label)[:8])
    clip.add(
        "no_expression",
        clip.exp_path,
        f"clip {clip.clip_id}: no expression refers yet to the object labelled in its masks (label {shown})",
        "write the clip's referring expressions (refvps annotate), each with obj_id set to the object's "
        "label (1 in Ref-VPS)",
    )


def _check_targets(clip: _ClipCheck, found_ids: set[int]) -> None:
    """The objects the expressions refer to appear in some mask.

    Only Ref-VPS forbids a target absent from every annotated frame; a converted benchmark may refer
    to one (a warning then)."""
    severity = ERROR if clip.settings.refvps_rules else WARNING
    targets = {label for labels in clip.obj_ids.values() for label in labels}
    if targets and not (found_ids & targets):
        clip.add(
            "empty_target",
            clip.masks_dir,
            f"clip {clip.clip_id}: the target is empty in every frame",
            "label the target in the frames where it appears (refvps annotate)",
            severity,
        )
        return
    for exp_id, labels in sorted(clip.obj_ids.items()):
        if not set(labels) & found_ids:
            shown = labels[0] if len(labels) == 1 else list(labels)
            clip.add(
                "obj_id_absent",
                clip.exp_path,
                f"clip {clip.clip_id}: expression {exp_id} refers to object {shown}, which no mask contains",
                "fix the expression's obj_id or label that object",
                severity,
            )


def _annotated_frames(clip: _ClipCheck, listed: list[Any]) -> list[str]:
    """The clip's ``annotated_frames`` that are among its frames; each other name is reported
    (docs/BENCHMARKS_SUITE.md, "Format extension")."""
    known = set(clip.frames)
    kept = []
    for name in map(str, listed):
        if name in known:
            kept.append(name)
        else:
            clip.add(
                "json_schema",
                clip.exp_path,
                f"clip {clip.clip_id}: annotated frame {name} is not one of its frames",
                f"list in '{ANNOTATED_FRAMES}' only names that are in the clip's 'frames'",
            )
    return kept


def _label_ids(video: dict[str, Any]) -> set[int]:
    """Labels the clip declares besides its expressions' targets (docs/BENCHMARKS_SUITE.md)."""
    declared = video.get(LABEL_IDS)
    if not isinstance(declared, list):
        return set()
    found = set()
    for value in declared:
        try:
            found.add(int(value))
        except (TypeError, ValueError):
            continue  # the schema check reports it
    return found


def _check_orphans(root: Path, videos: dict[str, Any], clips_meta: dict[str, Any] | None, out: _Collector) -> None:
    frames_root = root / FRAMES_DIR
    if frames_root.is_dir():
        for entry in sorted(p.name for p in frames_root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if entry not in videos:
                out.add(
                    "orphan",
                    frames_root / entry,
                    f"frame folder {entry} is not a clip in meta_expressions.json",
                    "add the clip to meta_expressions.json or delete the folder",
                    entry,
                    WARNING,
                )
    if isinstance(clips_meta, dict):
        for clip_id in sorted(set(clips_meta) - set(videos)):
            out.add(
                "orphan",
                root / CLIPS_FILE,
                f"clips.json has an entry for {clip_id}, which is not in meta_expressions.json",
                "remove the entry or add the clip",
                clip_id,
                WARNING,
            )


def summarise(problems: list[Problem], per_group: int = 5) -> list[Problem | str]:
    """Problems grouped by (clip, rule), at most ``per_group`` each, then a line with how many more."""
    groups: dict[tuple[str, str], list[Problem]] = defaultdict(list)
    for problem in problems:
        groups[(problem.clip_id or "", problem.rule)].append(problem)
    shown: list[Problem | str] = []
    for (clip_id, rule), items in groups.items():
        shown.extend(items[:per_group])
        if len(items) > per_group:
            shown.append(f"... and {len(items) - per_group} more '{rule}' problems in clip {clip_id}")
    return shown
