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
from typing import Iterator

import numpy as np

from refvps.convert.common import (
    BenchmarkInfo,
    ClipJob,
    ObjectSetLabels,
    decode_rle,
    make_expression,
    ordered_entries,
    require_path,
    safe_clip_id,
)
from refvps.dataset.format import ClipMeta, Expression, image_size
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


def jobs(source: Path, split: str, options: dict, notes: list[str]) -> list[ClipJob]:
    folder = require_path(source / split, f"the {split} split", f"unzip MeViS so that SRC/{split}/ exists")
    meta_path = require_path(folder / "meta_expressions.json", "meta_expressions.json", "unzip the split")
    videos = read_json(meta_path, what="MeViS meta_expressions.json").get("videos") or {}
    masks = None
    if (folder / "mask_dict.json").exists():
        masks = read_json(folder / "mask_dict.json", what="MeViS mask_dict.json")
    elif split != "valid":
        notes.append(f"{folder / 'mask_dict.json'} is missing: converted without ground truth")
    taken: set[str] = set()
    result = []
    for video, entry in sorted(videos.items()):
        names = [str(f) for f in entry.get("frames", [])]
        clip_id = safe_clip_id(video, taken)
        entries = entry.get("expressions", {})
        job = ClipJob(
            clip_id=clip_id,
            frames=[(name, folder / "JPEGImages" / video / f"{name}.jpg") for name in names],
            expressions=[make_expression(e, str(x["exp"]), [1], extra=_extra(x)) for e, x in ordered_entries(entries)],
            meta=INFO.stamp(
                ClipMeta(clip_id, fps=FPS, notes="MeViS states no frame rate; fps is a placeholder"), split, video
            ),
        )
        if masks is not None:
            combos = _Combinations(clip_id, names, entries, masks, job.frames[0][1] if job.frames else None)
            job.labels, job.resolve = combos.labels, combos.expressions
        result.append(job)
    return result


def _extra(entry: dict) -> dict:
    extra = {k: v for k, v in entry.items() if k not in ("exp", "obj_id")}
    if "obj_id" in entry:
        extra["source_obj_id"] = entry["obj_id"]
    return extra


class _Combinations:
    """The label maps of one video (labels = sets of objects) and its expressions' targets in them."""

    def __init__(self, clip_id: str, frames: list[str], entries: dict, masks: dict, first_frame: Path | None):
        self.clip_id = clip_id
        self.first_frame = first_frame
        self.frames = frames
        self.entries = ordered_entries(entries)
        self.objects = sorted({str(a) for _, e in self.entries for a in e.get("anno_id", [])}, key=_number_first)
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
                if rle:
                    return int(rle["size"][0]), int(rle["size"][1])
        if self.first_frame is None:
            raise DatasetError(f"video {self.clip_id} lists no frames", hint="check meta_expressions.json")
        width, height = image_size(self.first_frame)
        return height, width

    def expressions(self) -> list[Expression]:
        """The expressions with their targets: every label whose object set holds one of their objects."""
        result = []
        for exp_id, entry in self.entries:
            objects = [self.objects.index(str(a)) for a in entry.get("anno_id", [])]
            result.append(make_expression(exp_id, str(entry["exp"]), self.sets.labels_of(objects), extra=_extra(entry)))
        return result


def _number_first(value: str) -> tuple:
    return (0, int(value), "") if value.isdigit() else (1, 0, value)
