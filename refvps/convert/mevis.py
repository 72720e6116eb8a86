"""MeViS: motion expressions whose target is one object or several.

Written against henghuiding/MeViS @ 7c0620b9dc0ab7802747957f221674f175c8a47b: ``README.md`` (layout,
splits), ``lmpm/data/datasets/mevis.py`` (how expressions and ``mask_dict.json`` are read) and
``tools/eval_mevis.py`` (an expression's ground truth in frame t is the union of
``mask_dict[anno_id][t]`` over its ``anno_id`` list, t the frame's position in ``frames``).

Source layout::

    SRC/<split>/JPEGImages/<video>/<frame>.jpg
    SRC/<split>/meta_expressions.json   {"videos": {video: {"expressions": {exp_id: {"exp", "obj_id": [..],
                                         "anno_id": [..]}}, "frames": [...]}}}
    SRC/<split>/mask_dict.json          {anno_id: [COCO RLE or null, one per frame]}   (train, valid_u)

Targets overlap between expressions (one names objects 1 and 2, another object 1), so a label map
cannot give each object its own value. Each pixel gets the label of the *set* of objects covering it
(label 1 for the first set met, frame by frame, and so on), and an expression's ``obj_id`` lists the
labels of every set that holds one of its objects: their union is exactly the union of its objects'
masks (docs/BENCHMARKS_SUITE.md). ``valid`` has no public masks and converts without ground truth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np

from refvps.convert.common import (
    BenchmarkInfo,
    ClipJob,
    ObjectSetLabels,
    decode_rle,
    expression_extra,
    listed_clip,
    make_expression,
    ordered_entries,
    planned,
    read_video_index,
    require_path,
)
from refvps.dataset.format import Expression, image_size
from refvps.errors import DatasetError
from refvps.fileio import read_json

INFO = BenchmarkInfo(
    key="mevis",
    name="MeViS",
    protocol="mevis",
    url="https://henghuiding.github.io/MeViS/",
    license="CC BY-NC-SA 4.0 (MeViS README): non-commercial research use",
    splits=("valid_u", "valid", "train"),
    default_split="valid_u",
)
FPS = 6  # MeViS does not state a frame rate; a placeholder (no metric uses it)
FPS_NOTE = "MeViS states no frame rate; fps is a placeholder"


def jobs(source: Path, split: str, options: dict[str, str], notes: list[str]) -> list[ClipJob]:
    folder = require_path(source / split, f"the {split} split", f"unzip MeViS so that SRC/{split}/ exists")
    meta_path = require_path(folder / "meta_expressions.json", "meta_expressions.json", "unzip the split")
    videos = read_video_index(meta_path, "MeViS meta_expressions.json")
    masks = _read_masks(folder / "mask_dict.json") if (folder / "mask_dict.json").exists() else None
    if masks is None and split != "valid":
        notes.append(f"{folder / 'mask_dict.json'} is missing: converted without ground truth")
    taken: set[str] = set()
    result = []
    for video, entry in sorted(videos.items()):
        entries = entry.get("expressions", {})
        expressions = [make_expression(e, x["exp"], [1], extra=_extra(x)) for e, x in ordered_entries(entries)]
        job = listed_clip(INFO, split, video, entry, folder / "JPEGImages", taken, expressions, fps=FPS, notes=FPS_NOTE)
        with_masks = job if masks is None else planned(job.clip_id, _with_masks, job, entries, masks)
        if with_masks is not None:
            result.append(with_masks)
    return result


def _with_masks(job: ClipJob, entries: dict[str, Any], masks: dict[str, list[Any]]) -> ClipJob:
    """``job`` with its label maps and its expressions' targets made from ``mask_dict.json``."""
    names = [name for name, _ in job.frames]
    combos = _Combinations(job.clip_id, names, entries, masks, job.frames[0][1] if job.frames else None)
    job.labels, job.resolve = combos.labels, combos.expressions
    return job


def _read_masks(path: Path) -> dict[str, list[Any]]:
    """``mask_dict.json``: anno_id -> one COCO RLE (or null) per frame."""
    masks = read_json(path, what="MeViS mask_dict.json")
    if not isinstance(masks, dict) or not all(isinstance(v, list) for v in masks.values()):
        raise DatasetError(
            f"{path} is not a mapping of anno_id to a list of per-frame masks",
            hint="the file is damaged or not MeViS's own: download it again",
            path=path,
        )
    return masks


def _extra(entry: dict[str, Any]) -> dict[str, Any]:
    extra = expression_extra(entry)
    if "obj_id" in entry:
        extra["source_obj_id"] = entry["obj_id"]
    return extra


class _Combinations:
    """The label maps of one video (labels = sets of objects) and its expressions' targets in them."""

    def __init__(
        self,
        clip_id: str,
        frames: list[str],
        entries: dict[str, Any],
        masks: dict[str, list[Any]],
        first_frame: Path | None,
    ):
        self.clip_id = clip_id
        self.first_frame = first_frame
        self.frames = frames
        self.entries = ordered_entries(entries)
        for exp_id, entry in self.entries:
            if not isinstance(entry.get("anno_id"), list):
                raise DatasetError(
                    f"video {clip_id}: expression {exp_id} has no anno_id list (the objects it names)",
                    hint="the meta_expressions.json is damaged or not MeViS's own: download it again",
                )
        self.objects = sorted({str(a) for _, e in self.entries for a in e["anno_id"]}, key=_number_first)
        missing = [a for a in self.objects if a not in masks]
        if missing:
            raise DatasetError(
                f"video {clip_id}: anno_id {missing[0]} is not in mask_dict.json", hint="check the files"
            )
        self.rles = [masks[a] for a in self.objects]
        self.sets = ObjectSetLabels(clip_id, len(self.objects))

    def labels(self) -> Iterator[tuple[str, np.ndarray]]:
        shape = self._shape()
        for t, name in enumerate(self.frames):
            # tools/eval_mevis.py indexes mask_dict by the frame's position in 'frames'
            present = [(k, rles[t]) for k, rles in enumerate(self.rles) if t < len(rles) and rles[t]]
            yield name, self.sets.label_map([(k, decode_rle(rle, shape)) for k, rle in present], shape, name)

    def _shape(self) -> tuple[int, int]:
        for rles in self.rles:
            for rle in rles:
                size = rle.get("size") if isinstance(rle, dict) else None
                if isinstance(size, list) and len(size) == 2:
                    return int(size[0]), int(size[1])
        if self.first_frame is None:
            raise DatasetError(f"video {self.clip_id} lists no frames", hint="check meta_expressions.json")
        width, height = image_size(self.first_frame)
        return height, width

    def expressions(self) -> list[Expression]:
        """The expressions with their targets: every label whose object set holds one of their objects."""
        result = []
        for exp_id, entry in self.entries:
            objects = [self.objects.index(str(a)) for a in entry["anno_id"]]
            result.append(make_expression(exp_id, str(entry["exp"]), self.sets.labels_of(objects), extra=_extra(entry)))
        return result


def _number_first(value: str) -> tuple[int, int, str]:
    return (0, int(value), "") if value.isdigit() else (1, 0, value)
