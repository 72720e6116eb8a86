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

from refvps.convert.common import (
    BenchmarkInfo,
    ClipJob,
    label_files,
    make_expression,
    ordered_entries,
    require_path,
    safe_clip_id,
)
from refvps.dataset.format import ClipMeta, Expression, parse_target
from refvps.errors import DatasetError
from refvps.fileio import read_json

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


def read_meta(source: Path, split: str) -> dict:
    path = require_path(
        source / "meta_expressions" / split / "meta_expressions.json",
        f"the {split} expressions",
        "unzip the Ref-YouTube-VOS meta_expressions into SRC/meta_expressions/",
    )
    videos = read_json(path, what="meta_expressions.json").get("videos")
    if not isinstance(videos, dict):
        raise DatasetError(f"{path} has no 'videos' mapping", hint="check the file", path=path)
    return videos


def split_videos(source: Path, split: str, notes: list[str]) -> dict:
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


def expressions_of(entries: dict) -> list[Expression]:
    """A video's expressions as refvps reads them (``obj_id`` 1 where the split gives none)."""
    expressions = []
    for exp_id, entry in ordered_entries(entries):
        extra = {k: v for k, v in entry.items() if k not in ("exp", "obj_id")}
        expressions.append(
            make_expression(exp_id, str(entry["exp"]), parse_target(entry.get("obj_id", "1")), None, extra)
        )
    return expressions


def frames_folder(source: Path, split: str) -> Path:
    folder = source / split / "JPEGImages"
    if not folder.is_dir() and split == "test":
        folder = source / "valid" / "JPEGImages"  # the competition ships valid and test frames together
    return require_path(folder, f"the {split} frames", f"unzip {split}.zip into SRC/{split}/")


def jobs(source: Path, split: str, options: dict, notes: list[str]) -> list[ClipJob]:
    videos = split_videos(source, split, notes)
    images = frames_folder(source, split)
    masks_root = source / split / "Annotations"
    taken: set[str] = set()
    result = []
    for video, entry in sorted(videos.items()):
        names = [str(f) for f in entry.get("frames", [])]
        clip_id = safe_clip_id(video, taken)
        job = ClipJob(
            clip_id=clip_id,
            frames=[(name, images / video / f"{name}.jpg") for name in names],
            expressions=expressions_of(entry.get("expressions", {})),
            meta=INFO.stamp(ClipMeta(clip_id, fps=FPS), split, video),
        )
        if split == "train":
            annotated = [n for n in names if (masks_root / video / f"{n}.png").exists()]
            if len(annotated) < len(names):
                job.annotated_frames = annotated
            job.labels = label_files(masks_root / video, annotated)
        result.append(job)
    return result
