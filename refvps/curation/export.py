"""Writing planned clips into a Ref-VPS dataset, resumably.

Frames are sampled at ``start + k / fps`` (the frame on screen at that instant), cropped to the
video's box and written as ``JPEGImages/<clip>/00000.jpg ...`` through
:class:`refvps.dataset.DatasetWriter`; ``meta_expressions.json`` gets the clip with its frames and
no expressions yet, ``clips.json`` its provenance. The two JSON entries are written only after the
last frame, so an interrupted clip is simply exported again, to the same bytes.

A clip is *complete* when both JSON entries exist, match the plan (span, video, fps, frame count,
crop) and every frame is on disk; a complete clip is skipped. A clip whose plan changed is
re-exported, except when masks or expressions were already added to it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Mapping

from refvps.curation.crop import apply_crop
from refvps.curation.plan import SPAN_TOL, ClipPlan
from refvps.curation.video import VideoProbe, frames_at
from refvps.dataset.format import (
    CLIPS_FILE,
    EXPRESSIONS_FILE,
    FRAME_EXT,
    FRAMES_DIR,
    MASKS_DIR,
    ClipMeta,
    DatasetWriter,
    Source,
    Trim,
    frame_name,
    read_index,
)
from refvps.errors import DatasetError
from refvps.progress import NO_PROGRESS, Progress


class DatasetState:
    """The two JSON index files of the dataset, read once per run."""

    def __init__(self, root: Path):
        self.root = root
        self.clips = self._read(root / CLIPS_FILE, "clips")
        self.videos = self._read(root / EXPRESSIONS_FILE, "videos")

    @staticmethod
    def _read(path: Path, key: str) -> dict[str, Any]:
        return read_index(path, key, hint="fix the file or export into a new dataset folder")[key]

    def frame_files(self, clip_id: str) -> list[Path]:
        return sorted((self.root / FRAMES_DIR / clip_id).glob(f"*{FRAME_EXT}"))

    def has_labels(self, clip_id: str) -> bool:
        masks = self.root / MASKS_DIR / clip_id
        expressions = (self.videos.get(clip_id) or {}).get("expressions") or {}
        return bool(expressions) or (masks.is_dir() and any(masks.iterdir()))

    def status(self, plan: ClipPlan) -> str:
        """'complete', 'missing' (nothing or a partial export) or 'changed'."""
        meta, video = self.clips.get(plan.clip_id), self.videos.get(plan.clip_id)
        if meta is None or video is None:
            return "missing"
        trim = meta.get("trim") or {}
        curation = meta.get("curation") or {}
        same = (
            abs(float(trim.get("start_s", -1)) - plan.start_s) <= SPAN_TOL
            and abs(float(trim.get("end_s", -1)) - plan.end_s) <= SPAN_TOL
            and curation.get("video") == plan.video_key
            and float(meta.get("fps") or 0) == plan.fps
            and len(video.get("frames") or []) == plan.frame_count
            and list(meta.get("crop") or []) == list(plan.crop or [])
        )
        if not same:
            return "changed"
        names = {p.stem for p in self.frame_files(plan.clip_id)}
        if not all(frame_name(k) in names for k in range(plan.frame_count)):
            return "missing"
        return "complete"


def export_clip(
    writer: DatasetWriter,
    plan: ClipPlan,
    probe: VideoProbe,
    source: Source | None,
    *,
    curation: Mapping[str, Any],
    notes: str = "",
    progress: Progress = NO_PROGRESS,
) -> ClipMeta:
    """Write one clip's frames, then its two JSON entries (last, so a partial clip is never listed).

    ``curation`` is the clip's ``curation`` block of ``clips.json`` (video key, shot, event, ...).
    """
    if plan.crop is None:
        raise ValueError(f"{plan.clip_id}: the crop box is not set")
    names: list[str] = []
    with progress.stage("frames", plan.frame_count, note=plan.clip_id):
        for k, rgb in frames_at(probe, plan.times()):
            name = frame_name(k)
            writer.write_frame(plan.clip_id, name, apply_crop(rgb, plan.crop))
            names.append(name)
            progress.advance("frames")
    if len(names) != plan.frame_count:
        raise DatasetError(
            f"{probe.path}: got {len(names)} of {plan.frame_count} frames for clip {plan.clip_id}",
            hint="the video may be damaged; fetch it again",
            path=probe.path,
        )
    # Frames left from an earlier, longer plan of this clip are not part of it any more.
    keep = set(names)
    for stale in (writer.root / FRAMES_DIR / plan.clip_id).glob(f"*{FRAME_EXT}"):
        if stale.stem not in keep:
            stale.unlink()
    meta = ClipMeta(
        clip_id=plan.clip_id,
        concept=plan.concept,
        category=plan.category,
        fps=plan.fps,
        width=plan.crop[2],
        height=plan.crop[3],
        source=source,
        trim=Trim(plan.start_s, plan.end_s),
        crop=plan.crop,
        notes=notes,
        extra={"curation": {"video": plan.video_key, "shot": plan.shot_index, "event": plan.event_index, **curation}},
    )
    writer.update_expressions(plan.clip_id, [], frames=names)
    writer.update_meta(meta)
    return meta


def discard_partial(writer: DatasetWriter, state: DatasetState, plan: ClipPlan) -> str:
    """After a failed export: remove what it wrote, so that nothing half-made stays in the dataset.

    A clip that was listed before (its plan changed, it has no labels) had its frames partly
    overwritten: its entries go too, and the returned text says so.
    """
    folder = writer.root / FRAMES_DIR / plan.clip_id
    if folder.is_dir():
        shutil.rmtree(folder, ignore_errors=True)
    if plan.clip_id in state.clips or plan.clip_id in state.videos:
        writer.remove_clip_entries(plan.clip_id)
        return "; its earlier export was removed from the dataset (it had no labels)"
    return ""
