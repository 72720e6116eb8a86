"""Ref-YouTube-VOS (2021): the referring expressions of YouTube-VOS videos.

Written against wjn922/ReferFormer @ 06fc218f5d8f04730f81471a15ed89ea7e4d30d8 (``docs/data.md`` for
the layout, ``inference_ytvos.py`` for the valid split) and miccooper9/ReferEverything @
6dcc5a9aeda785bebb2268317b141a92cbc28a89 (``ref-yt/infer_ytvos_MS.py``, which reads the same files).

Source layout::

    SRC/meta_expressions/<split>/meta_expressions.json   {"videos": {video: {"expressions": {exp_id:
                                                          {"exp", "obj_id"}}, "frames": [...]}}}
    SRC/<split>/JPEGImages/<video>/<frame>.jpg
    SRC/train/Annotations/<video>/<frame>.png            palette label maps (YouTube-VOS object ids)

The competition's ``valid`` expressions also list its 305 ``test`` videos: as ReferFormer and the
authors do, the valid split is the valid videos that the test file does not list (202). Valid and test
have no public masks: they convert without ground truth (``annotated_frames: []``), can be predicted,
and are scored by the official server (``refvps export-submission``). Train masks exist for the listed
frames; a frame without one is left out of ``annotated_frames``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from refvps.convert.common import (
    BenchmarkInfo,
    ClipJob,
    annotated_subset,
    expression_extra,
    label_files,
    listed_clip,
    make_expression,
    ordered_entries,
    planned,
    read_video_index,
    require_path,
)
from refvps.dataset.format import Expression, parse_target
from refvps.errors import DatasetError

INFO = BenchmarkInfo(
    key="ref-ytvos",
    name="Ref-YouTube-VOS",
    protocol="refvps",
    url="https://youtube-vos.org/dataset/rvos/",
    license="YouTube-VOS terms (https://youtube-vos.org): annotations for non-commercial research use",
    splits=("valid", "test", "train"),
    default_split="valid",
)
FPS = 6  # every fifth frame of the 30 fps videos


def read_meta(source: Path, split: str) -> dict[str, dict[str, Any]]:
    path = require_path(
        source / "meta_expressions" / split / "meta_expressions.json",
        f"the {split} expressions",
        "unzip the Ref-YouTube-VOS meta_expressions into SRC/meta_expressions/",
    )
    return read_video_index(path, "Ref-YouTube-VOS meta_expressions.json")


def split_videos(source: Path, split: str, notes: list[str]) -> dict[str, dict[str, Any]]:
    """The split's videos; valid without the test videos its file also lists (as ReferFormer does)."""
    videos = read_meta(source, split)
    if split == "valid":
        test_meta = source / "meta_expressions" / "test" / "meta_expressions.json"
        if test_meta.exists():
            test = read_meta(source, "test")
            dropped = sorted(set(videos) & set(test))
            videos = {k: v for k, v in videos.items() if k not in test}
            if dropped:
                notes.append(f"{len(dropped)} videos of the valid file are test videos and were left out")
        else:
            notes.append("meta_expressions/test is missing: every video of the valid file kept")
    return videos


def expressions_of(video: str, entries: dict[str, Any]) -> list[Expression]:
    """A video's expressions as refvps reads them (``obj_id`` 1 where the split gives none)."""
    expressions = []
    for exp_id, entry in ordered_entries(entries):
        try:
            target = parse_target(entry.get("obj_id", "1"))
        except (TypeError, ValueError):
            raise DatasetError(
                f"video {video}: expression {exp_id} has obj_id {entry.get('obj_id')!r}, not an object id",
                hint="the meta_expressions.json is damaged or not Ref-YouTube-VOS's own: download it again",
            ) from None
        expressions.append(make_expression(exp_id, entry["exp"], target, None, expression_extra(entry)))
    return expressions


def frames_folder(source: Path, split: str) -> Path:
    folder = source / split / "JPEGImages"
    if not folder.is_dir() and split == "test":
        folder = source / "valid" / "JPEGImages"  # the competition ships valid and test frames together
    return require_path(folder, f"the {split} frames", f"unzip {split}.zip into SRC/{split}/")


def jobs(source: Path, split: str, options: dict[str, str], notes: list[str]) -> list[ClipJob]:
    videos = split_videos(source, split, notes)
    images = frames_folder(source, split)
    masks_root = source / split / "Annotations"
    taken: set[str] = set()
    result = []
    for video, entry in sorted(videos.items()):
        job = planned(video, _job, split, video, entry, images, masks_root, taken, notes)
        if job is not None:
            result.append(job)
    return result


def _job(
    split: str, video: str, entry: dict[str, Any], images: Path, masks_root: Path, taken: set[str], notes: list[str]
) -> ClipJob:
    expressions = expressions_of(video, entry.get("expressions", {}))
    job = listed_clip(INFO, split, video, entry, images, taken, expressions, fps=FPS)
    if split == "train":
        names = [name for name, _ in job.frames]
        annotated = annotated_subset(masks_root / video, names, job.clip_id, notes)
        if len(annotated) < len(names):
            job.annotated_frames = annotated
        job.labels = label_files(masks_root / video, annotated)
    return job
