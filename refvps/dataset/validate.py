"""Checking a dataset against every rule of the Ref-VPS format (DESIGN §3).

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
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from refvps.dataset import transaction
from refvps.dataset.format import (
    CLIPS_FILE,
    EXPRESSIONS_FILE,
    FRAME_EXT,
    FRAMES_DIR,
    MASK_EXT,
    MASKS_DIR,
    REFVPS_FPS,
    Dataset,
)
from refvps.dataset.palette import IGNORE_INDEX
from refvps.errors import DatasetError, DatasetInvalidError, RefvpsError, UsageError
from refvps.fileio import read_json

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
    "missing_mask": "every frame has Annotations/<clip>/<frame>.png (dense labels)",
    "extra_mask": "every mask belongs to a listed frame",
    "mask_unreadable": "every mask decodes as a PNG",
    "mask_not_palette": "masks are 8-bit palette PNGs",
    "mask_size": "each mask has the size of its frame",
    "mask_values": "mask values lie in {0, the clip's object ids, 255 = Ignore}",
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

    def add(self, rule, path, message, hint, clip_id=None, severity=ERROR):
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
    progress: Callable[[int, int], None] | None = None,
) -> ValidationReport:
    """Check a dataset and return every problem found.

    ``clips`` restricts the per-clip checks to those clips (the annotation tool checks one clip);
    ``check_masks=False`` skips decoding masks (faster; sizes and values unchecked);
    ``progress(done, total)`` is called after each clip.
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

    taxonomy = _taxonomy_ids()
    selected = sorted(videos) if clips is None else [c for c in clips if c in videos]
    if clips is not None:
        for clip_id in clips:
            if clip_id not in videos:
                out.add(
                    "clip_folder",
                    root / EXPRESSIONS_FILE,
                    f"clip {clip_id!r} is not in meta_expressions.json",
                    "add the clip to meta_expressions.json or check its id",
                    clip_id,
                )
    report.n_clips = len(selected)
    for done, clip_id in enumerate(selected, 1):
        meta = clips_meta.get(clip_id) if isinstance(clips_meta, dict) else None
        _validate_clip(
            root,
            clip_id,
            videos[clip_id],
            meta,
            clips_meta is not None,
            taxonomy,
            refvps_rules,
            check_masks,
            report,
            out,
        )
        if progress is not None:
            progress(done, len(selected))

    if clips is None:
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


def _load_index(path: Path, key: str, out: _Collector, *, required: bool) -> dict | None:
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

        taxonomy = load_taxonomy()
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


def _validate_clip(root, clip_id, video, meta, has_clips_file, taxonomy, refvps_rules, check_masks, report, out):
    exp_path = root / EXPRESSIONS_FILE
    frames_dir = root / FRAMES_DIR / clip_id
    masks_dir = root / MASKS_DIR / clip_id
    if not isinstance(video, dict):
        return  # the schema check has reported it
    frames = [str(f) for f in video.get("frames", []) if isinstance(f, (str, int))]
    expressions = video.get("expressions", {}) if isinstance(video.get("expressions"), dict) else {}

    # Expressions.
    obj_ids: dict[str, int] = {}
    seen_text: dict[str, str] = {}
    for exp_id, entry in expressions.items():
        if not isinstance(entry, dict):
            continue
        text = entry.get("exp")
        if not isinstance(text, str) or not text.strip():
            out.add(
                "expression_empty",
                exp_path,
                f"clip {clip_id}: expression {exp_id} is empty",
                "write the referring expression, or remove the entry",
                clip_id,
            )
        else:
            key = _normalise_text(text)
            if key in seen_text:
                out.add(
                    "expression_duplicate",
                    exp_path,
                    f"clip {clip_id}: expressions {seen_text[key]} and {exp_id} are the same text: {text!r}",
                    "rewrite one of them: each expression should describe the target in its own words",
                    clip_id,
                )
            else:
                seen_text[key] = exp_id
        try:
            obj_ids[exp_id] = int(entry.get("obj_id"))
        except (TypeError, ValueError):
            out.add(
                "json_schema",
                exp_path,
                f"clip {clip_id}: expression {exp_id} has obj_id {entry.get('obj_id')!r}",
                'set obj_id to the label index of the target, as a string ("1")',
                clip_id,
            )

    if refvps_rules:
        if len(expressions) != REFVPS_EXPRESSIONS_PER_CLIP:
            out.add(
                "expression_count",
                exp_path,
                f"clip {clip_id}: {len(expressions)} expressions, Ref-VPS has exactly {REFVPS_EXPRESSIONS_PER_CLIP}",
                "two annotators write two expressions each",
                clip_id,
            )
        annotators = Counter(e.get("annotator") for e in expressions.values() if isinstance(e, dict))
        bad = {a: n for a, n in annotators.items() if n != REFVPS_EXPRESSIONS_PER_ANNOTATOR}
        if None in annotators or len(annotators) != REFVPS_ANNOTATORS or bad:
            shown = ", ".join(
                f"{a if a is not None else '(none)'}: {n}" for a, n in sorted(annotators.items(), key=str)
            )
            out.add(
                "annotator_count",
                exp_path,
                f"clip {clip_id}: expressions per annotator are {{{shown}}}, Ref-VPS needs 2 annotators x 2",
                "set 'annotator' on every expression; each of the two annotators writes two",
                clip_id,
            )

    # Clip metadata.
    fps = meta.get("fps") if isinstance(meta, dict) else None
    if meta is None:
        if has_clips_file or refvps_rules:
            out.add(
                "clip_meta",
                root / CLIPS_FILE,
                f"clip {clip_id} has no entry in clips.json",
                "add its concept, category, fps, width and height to clips.json",
                clip_id,
                ERROR if refvps_rules else WARNING,
            )
    else:
        if isinstance(fps, (int, float)) and fps != REFVPS_FPS:
            out.add(
                "fps",
                root / CLIPS_FILE,
                f"clip {clip_id} is at {fps} fps, Ref-VPS clips are at {REFVPS_FPS}",
                f"re-export the frames at {REFVPS_FPS} fps (refvps trim does)",
                clip_id,
                ERROR if refvps_rules else WARNING,
            )
        if taxonomy is not None:
            categories, concepts = taxonomy
            if meta.get("category") is not None and meta.get("category") not in categories:
                out.add(
                    "taxonomy",
                    root / CLIPS_FILE,
                    f"clip {clip_id}: category {meta.get('category')!r} is not in the taxonomy",
                    "use a category id from annotations/taxonomy.json, or add it there",
                    clip_id,
                    WARNING,
                )
            if meta.get("concept") is not None and meta.get("concept") not in concepts:
                out.add(
                    "taxonomy",
                    root / CLIPS_FILE,
                    f"clip {clip_id}: concept {meta.get('concept')!r} is not in the taxonomy",
                    "use a concept id from annotations/taxonomy.json, or add it there",
                    clip_id,
                    WARNING,
                )

    # Frames.
    present = _list_files(frames_dir, FRAME_EXT)
    if present is None:
        out.add(
            "clip_folder",
            frames_dir,
            f"clip {clip_id} has no frame folder",
            f"export the clip's frames to {FRAMES_DIR}/{clip_id}/ or remove the clip from meta_expressions.json",
            clip_id,
        )
        present = set()
    if not frames:
        out.add(
            "clip_folder",
            exp_path,
            f"clip {clip_id} lists no frames",
            "list every frame name in the clip's 'frames' array",
            clip_id,
        )
    for name, count in Counter(frames).items():
        if count > 1:
            out.add(
                "duplicate_frame",
                exp_path,
                f"clip {clip_id}: frame {name} is listed {count} times",
                "list each frame once",
                clip_id,
            )
    listed = set(frames)
    for name in frames:
        if name not in present and frames_dir.is_dir():
            out.add(
                "missing_frame",
                frames_dir / f"{name}{FRAME_EXT}",
                f"clip {clip_id}: frame {name} is missing",
                "restore the frame, or remove it from the clip's 'frames' list",
                clip_id,
            )
    for name in sorted(present - listed):
        out.add(
            "extra_frame",
            frames_dir / f"{name}{FRAME_EXT}",
            f"clip {clip_id}: frame {name} is not listed in meta_expressions.json",
            "add it to the clip's 'frames' list, or delete the file",
            clip_id,
        )

    sizes: dict[str, tuple[int, int]] = {}
    for name in frames:
        if name not in present:
            continue
        path = frames_dir / f"{name}{FRAME_EXT}"
        try:
            with Image.open(path) as image:
                size, fmt = image.size, image.format
            if fmt == "JPEG" and not _jpeg_is_complete(path):
                raise OSError("the file ends before the JPEG end-of-image marker (truncated)")
            sizes[name] = size
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            out.add(
                "frame_unreadable",
                path,
                f"clip {clip_id}: frame {name} cannot be read: {exc}",
                "re-export the frame",
                clip_id,
            )
    report.n_frames += len(frames)
    distinct = Counter(sizes.values())
    if len(distinct) > 1:
        common = distinct.most_common(1)[0][0]
        odd = [n for n, s in sizes.items() if s != common]
        out.add(
            "frame_size",
            frames_dir / f"{odd[0]}{FRAME_EXT}",
            f"clip {clip_id}: frames differ in size ({len(odd)} frames are not {common[0]}x{common[1]})",
            "re-export the clip so every frame has the same size",
            clip_id,
        )
    if distinct and isinstance(meta, dict):
        width, height = distinct.most_common(1)[0][0]
        if meta.get("width") not in (None, width) or meta.get("height") not in (None, height):
            out.add(
                "frame_size",
                root / CLIPS_FILE,
                f"clip {clip_id}: clips.json says {meta.get('width')}x{meta.get('height')}, frames are {width}x{height}",
                "correct width and height in clips.json",
                clip_id,
            )

    # Masks.
    masks = _list_files(masks_dir, MASK_EXT)
    if masks is None:
        out.add(
            "missing_mask",
            masks_dir,
            f"clip {clip_id} has no mask folder",
            f"annotate the clip (refvps annotate) so that {MASKS_DIR}/{clip_id}/ holds one PNG per frame",
            clip_id,
        )
        return
    for name in frames:
        if name not in masks:
            out.add(
                "missing_mask",
                masks_dir / f"{name}{MASK_EXT}",
                f"clip {clip_id}: frame {name} has no mask",
                "every frame is labelled; write an all-0 mask for frames where the target is absent",
                clip_id,
            )
    for name in sorted(masks - listed):
        out.add(
            "extra_mask",
            masks_dir / f"{name}{MASK_EXT}",
            f"clip {clip_id}: mask {name} has no listed frame",
            "delete the mask or add its frame",
            clip_id,
        )
    if not check_masks:
        return

    allowed = {0, IGNORE_INDEX, *obj_ids.values()}
    found_ids: set[int] = set()
    for name in frames:
        if name not in masks:
            continue
        path = masks_dir / f"{name}{MASK_EXT}"
        try:
            with Image.open(path) as image:
                image.load()
                mode, size = image.mode, image.size
                array = np.asarray(image) if mode in ("P", "L") else None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            out.add(
                "mask_unreadable",
                path,
                f"clip {clip_id}: mask {name} cannot be decoded: {exc}",
                "re-save the mask as an 8-bit palette PNG",
                clip_id,
            )
            continue
        report.n_masks += 1
        if mode != "P":
            out.add(
                "mask_not_palette",
                path,
                f"clip {clip_id}: mask {name} is a {mode} image, not 8-bit palette",
                "save it as a palette PNG (mode 'P'), e.g. with refvps.dataset.write_label_png",
                clip_id,
            )
        if name in sizes and size != sizes[name]:
            out.add(
                "mask_size",
                path,
                f"clip {clip_id}: mask {name} is {size[0]}x{size[1]}, its frame is {sizes[name][0]}x{sizes[name][1]}",
                "masks have the exact size of their frame; re-export the mask",
                clip_id,
            )
        if array is None:
            continue
        values = set(np.flatnonzero(np.bincount(array.ravel(), minlength=256)).tolist())
        wrong = values - allowed
        if wrong:
            out.add(
                "mask_values",
                path,
                f"clip {clip_id}: mask {name} has values {sorted(wrong)[:8]} outside {{0, {', '.join(map(str, sorted(set(obj_ids.values()))))}, 255}}",
                "use 0 for background, the expression's obj_id for the target and 255 for Ignore",
                clip_id,
            )
        found_ids |= values - {0, IGNORE_INDEX}

    if report.n_masks and frames:
        targets = set(obj_ids.values())
        if targets and not (found_ids & targets):
            out.add(
                "empty_target",
                masks_dir,
                f"clip {clip_id}: the target is empty in every frame",
                "label the target in the frames where it appears (refvps annotate)",
                clip_id,
            )
        else:
            for exp_id, obj_id in sorted(obj_ids.items()):
                if obj_id not in found_ids:
                    out.add(
                        "obj_id_absent",
                        exp_path,
                        f"clip {clip_id}: expression {exp_id} refers to object {obj_id}, which no mask contains",
                        "fix the expression's obj_id or label that object",
                        clip_id,
                    )


def _check_orphans(root: Path, videos: dict, clips_meta: dict | None, out: _Collector) -> None:
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
    groups: dict[tuple, list[Problem]] = defaultdict(list)
    for problem in problems:
        groups[(problem.clip_id or "", problem.rule)].append(problem)
    shown: list[Problem | str] = []
    for (clip_id, rule), items in groups.items():
        shown.extend(items[:per_group])
        if len(items) > per_group:
            shown.append(f"... and {len(items) - per_group} more '{rule}' problems in clip {clip_id}")
    return shown
