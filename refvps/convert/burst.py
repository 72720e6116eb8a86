"""BURST: one expression "the <class>" per object class of a video (the paper's appendix C.1).

Written against Ali2500/BURST-benchmark @ c1431986ea67a813ec17ad17b7105132f766c51d
(``ANNOTATION_FORMAT.md``, ``burstapi/dataset.py``, ``burstapi/video.py``: sequences with
``all_image_paths``, ``annotated_image_paths``, ``track_category_ids`` and one dict of track RLEs per
annotated frame; images under ``<images>/<split>/<dataset>/<seq_name>/``) and miccooper9/ReferEverything
@ 6dcc5a9aeda785bebb2268317b141a92cbc28a89 (``burst/infer_burst_MS.py``, ``burst/eval_burst.py``: the
val and test sequences together, one expression ``f"the {name}"`` per category of a sequence's tracks,
its ground truth in an annotated frame the union of that category's track masks).

Source layout (the authors' ``TAO_path``; BURST's own ``annotations/`` and ``images/`` also work)::

    SRC/annotations_burst/{val,test}/all_classes.json
    SRC/frames/{val,test}/<dataset>/<seq_name>/<image>

Frames are every image of ``all_image_paths`` (``frames=annotated``: the annotated ones only; or
``frame_list=FILE``: the authors' ``input_frame_paths.json``, ``"<dataset>_<seq_name>" -> images``);
ground truth is on the annotated frames only, recorded as the clip's ``annotated_frames``. Classes
of one video may overlap, so labels stand for sets of classes (as for MeViS).
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
    frame_stem,
    make_expression,
    safe_clip_id,
)
from refvps.dataset.format import ClipMeta, Expression
from refvps.errors import DatasetError, UsageError
from refvps.fileio import read_json

INFO = BenchmarkInfo(
    key="burst",
    name="BURST",
    protocol="burst",
    url="https://github.com/Ali2500/BURST-benchmark",
    license="annotations MIT (BURST-benchmark LICENSE); images: TAO terms (https://taodataset.org)",
    splits=("val+test", "val", "test"),
    default_split="val+test",
)
ANNOTATION_DIRS = ("annotations_burst", "annotations", ".")
IMAGE_DIRS = ("frames", "images", ".")


def _find(source: Path, candidates, *parts: str) -> Path | None:
    for candidate in candidates:
        path = source / candidate / Path(*parts)
        if path.exists():
            return path
    return None


def load_split(source: Path, split: str) -> dict:
    path = _find(source, ANNOTATION_DIRS, split, "all_classes.json")
    if path is None:
        raise DatasetError(
            f"BURST {split} annotations not found under {source} (annotations_burst/{split}/all_classes.json)",
            hint="unzip BURST's annotations.zip into SRC/annotations_burst/ (the authors' layout)",
            path=source,
        )
    return read_json(path, what=f"BURST {split} annotations")


def jobs(source: Path, split: str, options: dict, notes: list[str]) -> list[ClipJob]:
    frames_mode = options.get("frames") or "all"
    if frames_mode not in ("all", "annotated"):
        raise UsageError(f"frames={frames_mode!r}: BURST takes frames=all or frames=annotated")
    frame_list = read_json(Path(options["frame_list"]), what="frame list") if options.get("frame_list") else None
    taken: set[str] = set()
    result = []
    # the authors' order: test sequences, then val
    for part in [p for p in ("test", "val") if p in split.split("+")]:
        data = load_split(source, part)
        names = {int(c["id"]): str(c["name"]) for c in data.get("categories", [])}
        images = _find(source, IMAGE_DIRS, part)
        if images is None:
            raise DatasetError(f"BURST {part} images not found under {source} (frames/{part}/)", path=source)
        for seq in data.get("sequences", []):
            job = _job(seq, part, names, images, frames_mode, frame_list, taken)
            if job is None:
                notes.append(f"{seq.get('dataset')}/{seq.get('seq_name')} ({part}): no track; left out")
            else:
                result.append(job)
    return result


def _job(seq: dict, part: str, names: dict, images: Path, frames_mode: str, frame_list, taken) -> ClipJob | None:
    dataset, seq_name = str(seq["dataset"]), str(seq["seq_name"])
    tracks: dict[int, list[str]] = {}
    for track, category in seq.get("track_category_ids", {}).items():
        tracks.setdefault(int(category), []).append(str(track))
    if not tracks:
        return None
    folder = images / dataset / seq_name
    annotated = [frame_stem(p) for p in seq["annotated_image_paths"]]
    if frame_list is not None:
        paths = frame_list.get(f"{dataset}_{seq_name}") or seq["all_image_paths"]
    else:
        paths = seq["all_image_paths"] if frames_mode == "all" else seq["annotated_image_paths"]
    # every annotated frame is a frame of the clip, in the order of all_image_paths
    chosen = {frame_stem(p): p for p in [*paths, *seq["annotated_image_paths"]]}
    order = {frame_stem(p): k for k, p in enumerate(seq["all_image_paths"])}
    frames = [(name, folder / chosen[name]) for name in sorted(chosen, key=lambda n: (order.get(n, len(order)), n))]
    clip_id = safe_clip_id(f"{dataset}_{seq_name}", taken)
    categories = sorted(tracks)
    labels = _ClassLabels(clip_id, seq, categories, tracks)
    job = ClipJob(
        clip_id=clip_id,
        frames=frames,
        expressions=[],
        meta=INFO.stamp(ClipMeta(clip_id, fps=float(seq.get("fps") or 30)), part, f"{dataset}/{seq_name}"),
        labels=labels.labels,
        annotated_frames=annotated if len(annotated) < len(frames) else None,
    )
    job.expressions = labels.expressions(names)
    job.resolve = lambda: labels.expressions(names)
    return job


class _ClassLabels:
    """Per annotated frame, the union of each class's tracks, as labels of sets of classes."""

    def __init__(self, clip_id: str, seq: dict, categories: list[int], tracks: dict[int, list[str]]):
        self.seq = seq
        self.categories = categories
        self.tracks = tracks
        self.sets = ObjectSetLabels(clip_id, len(categories))
        self.shape = (int(seq["height"]), int(seq["width"]))

    def labels(self) -> Iterator[tuple[str, np.ndarray]]:
        for path, segments in zip(self.seq["annotated_image_paths"], self.seq["segmentations"]):
            masks = []
            for index, category in enumerate(self.categories):
                rles = [segments[t]["rle"] for t in self.tracks[category] if t in segments]
                if rles:
                    union = np.zeros(self.shape, bool)
                    for rle in rles:
                        union |= decode_rle({"size": list(self.shape), "counts": rle})
                    masks.append((index, union))
            yield frame_stem(path), self.sets.label_map(masks, self.shape, frame_stem(path))

    def expressions(self, names: dict[int, str]) -> list[Expression]:
        return [
            make_expression(
                str(k),
                f"the {names.get(category, category)}",
                self.sets.labels_of([k]),
                extra={
                    "class_name": names.get(category, str(category)),
                    "class_id": category,
                    "track_ids": self.tracks[category],
                },
            )
            for k, category in enumerate(self.categories)
        ]
