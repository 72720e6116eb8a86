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
from typing import Any, Iterator, Sequence

import numpy as np

from refvps.convert.common import (
    BenchmarkInfo,
    ClipJob,
    ObjectSetLabels,
    decode_rle,
    frame_stem,
    make_expression,
    planned,
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


def _find(source: Path, candidates: Sequence[str], *parts: str) -> Path | None:
    for candidate in candidates:
        path = source / candidate / Path(*parts)
        if path.exists():
            return path
    return None


def load_split(source: Path, split: str) -> dict[str, Any]:
    path = _find(source, ANNOTATION_DIRS, split, "all_classes.json")
    if path is None:
        raise DatasetError(
            f"BURST {split} annotations not found under {source} (annotations_burst/{split}/all_classes.json)",
            hint="unzip BURST's annotations.zip into SRC/annotations_burst/ (the authors' layout)",
            path=source,
        )
    data = read_json(path, what=f"BURST {split} annotations")
    if not isinstance(data, dict) or not isinstance(data.get("sequences"), list):
        raise DatasetError(
            f"{path} has no 'sequences' list (BURST's ANNOTATION_FORMAT.md)",
            hint="the file is damaged or not BURST's own: download it again",
            path=path,
        )
    return data


def jobs(source: Path, split: str, options: dict[str, str], notes: list[str]) -> list[ClipJob]:
    frames_mode = options.get("frames") or "all"
    if frames_mode not in ("all", "annotated"):
        raise UsageError(f"frames={frames_mode!r}: BURST takes frames=all or frames=annotated")
    frame_list = _frame_list(Path(options["frame_list"])) if options.get("frame_list") else None
    taken: set[str] = set()
    result = []
    # the authors' order: test sequences, then val
    for part in [p for p in ("test", "val") if p in split.split("+")]:
        data = load_split(source, part)
        names = {int(c["id"]): str(c["name"]) for c in data.get("categories", [])}
        images = _find(source, IMAGE_DIRS, part)
        if images is None:
            raise DatasetError(
                f"BURST {part} images not found under {source} (frames/{part}/)",
                hint="unzip TAO's frames into SRC/frames/ (the authors' layout)",
                path=source,
            )
        for seq in data["sequences"]:
            seq = seq if isinstance(seq, dict) else {}
            where = f"{seq.get('dataset')}/{seq.get('seq_name')} ({part})"
            job = planned(where, _job, seq, part, names, images, frames_mode, frame_list, taken)
            if job is None:
                notes.append(f"{where}: no track; left out")
            else:
                result.append(job)
    return result


def _frame_list(path: Path) -> dict[str, list[str]]:
    """The authors' ``input_frame_paths.json``: ``"<dataset>_<seq_name>"`` -> the images fed to the model."""
    data = read_json(path, what="frame list")
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise DatasetError(
            f"{path} is not a mapping of '<dataset>_<seq_name>' to image lists like the authors' input_frame_paths.json",
            hint="pass burst/input_frame_paths.json of miccooper9/ReferEverything, or leave --frame-list out",
            path=path,
        )
    return data


# what burstapi's BURSTVideo reads of a sequence
SEQUENCE_KEYS: dict[str, type | tuple[type, ...]] = {
    "dataset": str,
    "seq_name": str,
    "height": int,
    "width": int,
    "all_image_paths": list,
    "annotated_image_paths": list,
    "track_category_ids": dict,
    "segmentations": list,
}


def _check_sequence(seq: dict[str, Any]) -> None:
    wrong = [key for key, kind in SEQUENCE_KEYS.items() if not isinstance(seq.get(key), kind)]
    if not wrong and not all(
        isinstance(frame, dict) and all(isinstance(m, dict) and isinstance(m.get("rle"), str) for m in frame.values())
        for frame in seq["segmentations"]
    ):
        wrong = ["segmentations (one {track_id: {'rle': ...}} per annotated image)"]
    if wrong or len(seq["segmentations"]) != len(seq["annotated_image_paths"]):
        problem = f"no valid {', '.join(wrong)}" if wrong else "not one segmentation per annotated image"
        raise DatasetError(
            f"BURST sequence {seq.get('dataset')}/{seq.get('seq_name')} has {problem} (ANNOTATION_FORMAT.md)",
            hint="the annotation file is damaged or not BURST's own: download it again",
        )


def _job(
    seq: dict[str, Any],
    part: str,
    names: dict[int, str],
    images: Path,
    frames_mode: str,
    frame_list: dict[str, list[str]] | None,
    taken: set[str],
) -> ClipJob | None:
    _check_sequence(seq)
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

    def __init__(self, clip_id: str, seq: dict[str, Any], categories: list[int], tracks: dict[int, list[str]]):
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
