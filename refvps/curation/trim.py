"""Trim: accepted videos -> clips of the event, exported at 24 fps into a Ref-VPS dataset (paper §4.2).

For every accepted video:

1. shots are detected (PySceneDetect, cached in the workspace); a clip never crosses a cut;
2. each event span of the decision is cut at the shot boundaries it crosses (a compilation with
   one span per event gives one clip per event); a video accepted without spans gives one clip per
   shot; a short final shot (<= ``end_card_max_s``) is an end card or logo and is dropped, unless
   the reviewer put an event inside it; pieces shorter than ``min_clip_s`` are dropped;
3. letterbox/pillarbox padding is detected on frames of the clip (``refvps.curation.crop``) and
   cropped, unless the decision fixes the crop;
4. frames are sampled at ``start + k / 24`` (the frame on screen at that instant) and written as
   ``JPEGImages/<clip>/00000.jpg ...`` through :class:`refvps.dataset.DatasetWriter`;
   ``meta_expressions.json`` gets the clip with its frames and no expressions yet, ``clips.json``
   its provenance (source url/uploader/license, trim span, crop box, fps, size).

A clip is complete when both JSON entries exist, match the plan and every frame is on disk; a
complete clip is skipped. The JSON entries are written only after the last frame, so an
interrupted clip is simply exported again, to the same bytes: an interrupted run followed by a
rerun gives the same dataset as one uninterrupted run. A clip whose plan changed is re-exported,
except when masks or expressions were already added to it: then it is reported, never overwritten.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from refvps.curation.crop import CropParams, apply_crop, detect_crop
from refvps.curation.queries import Concept, optional_concept_index, require_concept
from refvps.curation.review import Decision, EventSpan, read_decisions
from refvps.curation.shots import Shot, ShotParams, cached_shots, detect_shots
from refvps.curation.video import VideoProbe, frames_at, probe_video, sample_times
from refvps.curation.workspace import VideoRecord, Workspace, safe_key
from refvps.dataset.format import (
    CLIPS_FILE,
    EXPRESSIONS_FILE,
    FRAME_EXT,
    FRAMES_DIR,
    MASKS_DIR,
    REFVPS_FPS,
    ClipMeta,
    DatasetWriter,
    Source,
    Trim,
    frame_name,
    read_index,
)
from refvps.errors import DatasetError, UsageError
from refvps.fileio import read_json

SPAN_TOL = 1e-6  # seconds: two plans with spans closer than this are the same


@dataclass(frozen=True)
class TrimParams:
    fps: float = REFVPS_FPS
    shots: ShotParams = ShotParams()
    crop: CropParams | None = CropParams()  # None: never crop
    crop_samples: int = 12
    end_card_max_s: float = 3.0
    min_clip_s: float = 1.0
    jpeg_quality: int = 95


@dataclass(frozen=True)
class ClipPlan:
    """One clip to export: a span of one shot of one video."""

    clip_id: str
    video_key: str
    start_s: float
    frame_count: int
    fps: float
    shot_index: int
    event_index: int | None
    concept: str | None = None
    category: str | None = None
    crop_override: tuple[int, int, int, int] | str | None = None

    @property
    def end_s(self) -> float:
        """End of the exported span: exactly ``frame_count / fps`` after the start."""
        return self.start_s + self.frame_count / self.fps

    def times(self) -> list[float]:
        return [self.start_s + k / self.fps for k in range(self.frame_count)]


@dataclass
class TrimSummary:
    exported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # complete already
    conflicts: list[str] = field(default_factory=list)  # plan changed but the clip has labels
    stale: list[str] = field(default_factory=list)  # exported before, no longer planned
    dropped: list[str] = field(default_factory=list)  # end cards and too-short pieces (why)
    problems: list[str] = field(default_factory=list)  # videos that could not be trimmed
    videos: int = 0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


# progress(kind, clip_id, done, total): kind is "plan" (total clips), "clip" (frames of a clip),
# "skip", "done"; raising from it (e.g. KeyboardInterrupt) stops the run cleanly between frames.
Progress = Callable[[str, str, int, int], None]


# -- planning -------------------------------------------------------------------------------------
def plan_spans(
    shots: Sequence[Shot],
    events: Sequence[EventSpan],
    params: TrimParams,
    looks_like_card: Callable[[Shot], bool] | None = None,
) -> tuple[list[tuple[float, float, int, int | None, str | None]], list[str]]:
    """Spans ``(start, end, shot_index, event_index, concept)`` that never cross a cut, and notes
    on what was dropped.

    The final shot is an end card when there is more than one shot, it lasts at most
    ``end_card_max_s``, no event starts inside it, and -- when the reviewer gave spans that reach
    into it -- it looks like a card (``looks_like_card``: mostly one flat colour, as logo cards are).
    """
    if not shots:
        return [], ["video has no frames"]
    notes: list[str] = []
    last = shots[-1]
    events_in_last = any(last.start_s <= e.start_s < last.end_s for e in events)
    end_card = len(shots) > 1 and last.duration_s <= params.end_card_max_s and not events_in_last
    if end_card and any(e.end_s > last.start_s for e in events):
        end_card = looks_like_card(last) if looks_like_card is not None else True
    if end_card:
        notes.append(f"end card: final shot {last.start_s:.3f}-{last.end_s:.3f} s ({last.duration_s:.2f} s) dropped")
    usable = shots[:-1] if end_card else list(shots)
    pieces: list[tuple[float, float, int, int | None, str | None]] = []
    if not events:
        pieces = [(s.start_s, s.end_s, s.index, None, None) for s in usable]
    else:
        for ei, event in enumerate(events):
            for shot in usable:
                start, end = max(event.start_s, shot.start_s), min(event.end_s, shot.end_s)
                if end > start:
                    pieces.append((start, end, shot.index, ei, event.concept))
            if event.end_s > usable[-1].end_s + SPAN_TOL and not end_card:
                notes.append(f"event {ei}: {event.end_s:.3f} s is past the end of the video ({usable[-1].end_s:.3f} s)")
    kept = []
    shortest = max(params.min_clip_s, 1.0 / params.fps)  # a clip has at least one frame
    for piece in pieces:
        if piece[1] - piece[0] < shortest:
            notes.append(f"piece {piece[0]:.3f}-{piece[1]:.3f} s (shot {piece[2]}) shorter than {shortest:g} s dropped")
        else:
            kept.append(piece)
    return sorted(kept, key=lambda p: p[0]), notes


def plan_video(
    key: str,
    shots: Sequence[Shot],
    decision: Decision | None,
    params: TrimParams,
    *,
    concept: str | None,
    category: str | None,
    categories: Mapping[str, str] | None = None,
    looks_like_card: Callable[[Shot], bool] | None = None,
) -> tuple[list[ClipPlan], list[str]]:
    events = decision.events if decision else []
    spans, notes = plan_spans(shots, events, params, looks_like_card)
    plans = []
    for index, (start, end, shot_index, event_index, event_concept) in enumerate(spans):
        # floor: the exported span [start, start + n / fps) never reaches past the piece (or the cut)
        frame_count = int(math.floor((end - start) * params.fps + 1e-6))
        clip_concept = event_concept or (decision.concept if decision else None) or concept
        clip_category = (categories or {}).get(clip_concept or "", category if clip_concept == concept else None)
        plans.append(
            ClipPlan(
                clip_id=f"{key}_{index:02d}",
                video_key=key,
                start_s=float(start),
                frame_count=frame_count,
                fps=params.fps,
                shot_index=shot_index,
                event_index=event_index,
                concept=clip_concept,
                category=clip_category,
                crop_override=decision.crop if decision else None,
            )
        )
    return plans, [f"{key}: {n}" for n in notes]


def card_checker(
    probe: VideoProbe, *, samples: int = 3, tol: float = 12.0, share: float = 0.5
) -> Callable[[Shot], bool]:
    """A test for "this shot looks like an end card": in its middle frames, at least ``share`` of
    the pixels lie within ``tol`` (luma) of the most common level -- a flat background with a logo."""

    def looks_like_card(shot: Shot) -> bool:
        times = sample_times(shot.start_s, shot.end_s, samples)
        shares = []
        for _, rgb in frames_at(probe, times):
            luma = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
            hist = np.bincount(np.clip(luma, 0, 255).astype(np.int64).ravel(), minlength=256)
            peak = int(hist.argmax())
            lo, hi = max(0, int(peak - tol)), min(255, int(peak + tol))
            shares.append(hist[lo : hi + 1].sum() / luma.size)
        return bool(shares) and float(np.median(shares)) >= share

    return looks_like_card


# -- the dataset side -----------------------------------------------------------------------------
class _DatasetState:
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
        )
        if same and isinstance(plan.crop_override, tuple):
            same = list(meta.get("crop") or []) == list(plan.crop_override)
        if not same:
            return "changed"
        names = {p.stem for p in self.frame_files(plan.clip_id)}
        if not all(frame_name(k) in names for k in range(plan.frame_count)):
            return "missing"
        return "complete"


def _crop_for(plan: ClipPlan, probe: VideoProbe, params: TrimParams) -> tuple[int, int, int, int]:
    full = (0, 0, probe.width, probe.height)
    if plan.crop_override == "none" or params.crop is None:
        return full
    if isinstance(plan.crop_override, tuple):
        x, y, w, h = plan.crop_override
        if x + w > probe.width or y + h > probe.height:
            raise UsageError(
                f"crop {list(plan.crop_override)} of {plan.video_key} is outside the {probe.width}x{probe.height} frame",
                hint="fix 'crop' in decisions.json (x, y, w, h in source pixels) or remove it",
            )
        return plan.crop_override
    times = sample_times(plan.start_s, plan.end_s, max(1, min(params.crop_samples, plan.frame_count)))
    frames = [rgb for _, rgb in frames_at(probe, times)]
    return detect_crop(frames, params.crop)


def export_clip(
    writer: DatasetWriter,
    plan: ClipPlan,
    probe: VideoProbe,
    source: Source | None,
    params: TrimParams,
    *,
    notes: Sequence[str] = (),
    progress: Progress | None = None,
) -> ClipMeta:
    """Write one clip's frames, then its two JSON entries (last, so a partial clip is never listed)."""
    crop = _crop_for(plan, probe, params)
    names: list[str] = []
    for k, rgb in frames_at(probe, plan.times()):
        name = frame_name(k)
        writer.write_frame(plan.clip_id, name, apply_crop(rgb, crop))
        names.append(name)
        if progress:
            progress("clip", plan.clip_id, k + 1, plan.frame_count)
    if len(names) != plan.frame_count:
        raise DatasetError(
            f"{probe.path}: got {len(names)} of {plan.frame_count} frames for clip {plan.clip_id}",
            hint="the video may be truncated; fetch it again",
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
        width=crop[2],
        height=crop[3],
        source=source,
        trim=Trim(plan.start_s, plan.end_s),
        crop=crop,
        extra={
            "curation": {
                "video": plan.video_key,
                "shot": plan.shot_index,
                "event": plan.event_index,
                "source_fps": round(probe.fps, 6),
                "source_size": [probe.width, probe.height],
                "video_notes": list(notes),
            }
        },
    )
    writer.update_expressions(plan.clip_id, [], frames=names)
    writer.update_meta(meta)
    return meta


def _export_plans(
    writer: DatasetWriter,
    state: _DatasetState,
    plans: Sequence[ClipPlan],
    probe: VideoProbe,
    source: Source | None,
    params: TrimParams,
    summary: TrimSummary,
    notes: Sequence[str],
    progress: Progress | None,
) -> None:
    for plan in plans:
        status = state.status(plan)
        if status == "complete":
            summary.skipped.append(plan.clip_id)
            if progress:
                progress("skip", plan.clip_id, plan.frame_count, plan.frame_count)
            continue
        if status == "changed" and state.has_labels(plan.clip_id):
            summary.conflicts.append(
                f"{plan.clip_id}: the decision or shots changed its span, but it already has masks or expressions; "
                "kept as it is (remove the clip from the dataset to re-export it)"
            )
            continue
        export_clip(writer, plan, probe, source, params, notes=notes, progress=progress)
        summary.exported.append(plan.clip_id)
        if progress:
            progress("done", plan.clip_id, plan.frame_count, plan.frame_count)


def _categories(index: dict[str, Concept] | None) -> dict[str, str]:
    """Category of each concept id (empty without a taxonomy)."""
    return {c.id: c.category for c in (index or {}).values()}


def _check_dataset_folder(dataset: str | Path) -> None:
    path = Path(dataset)
    if path.exists() and not path.is_dir():
        raise UsageError(
            f"--dataset {path} is a file, not a folder",
            hint="pass the dataset's root folder (a new one is created)",
            path=path,
        )


# -- the stage ------------------------------------------------------------------------------------
def trim_workspace(
    workspace: Workspace | str | Path,
    dataset: str | Path,
    params: TrimParams = TrimParams(),
    *,
    taxonomy: str | Path | None = None,
    progress: Progress | None = None,
) -> TrimSummary:
    """Export every accepted video of the workspace into the dataset (see the module docstring)."""
    ws = (workspace if isinstance(workspace, Workspace) else Workspace(workspace)).require()
    _check_dataset_folder(dataset)
    if not ws.decisions_path.exists():
        raise DatasetError(
            f"no decisions yet: {ws.decisions_path}",
            hint="review the videos first: refvps review --workspace WS (then --accept/--reject or --import)",
            path=ws.decisions_path,
        )
    decisions = read_decisions(ws.decisions_path)
    optout = ws.optout()
    categories = _categories(optional_concept_index(taxonomy))
    writer = DatasetWriter(dataset, jpeg_quality=params.jpeg_quality)
    state = _DatasetState(writer.root)
    summary = TrimSummary()
    work: list[tuple[VideoRecord, Path, VideoProbe, list[ClipPlan], list[str]]] = []
    records = {r.key: r for r in ws.records()}
    for key, decision in sorted(decisions.items()):
        if not decision.accepted:
            continue
        record = records.get(key)
        if record is None:
            summary.problems.append(f"{key}: accepted in decisions.json but not in the workspace (no meta/{key}.json)")
            continue
        if optout.match(record):
            summary.problems.append(f"{key}: on the opt-out list; not exported")
            continue
        try:
            path = ws.video_path(record)
            probe = probe_video(path)
            shots = cached_shots(path, ws.shots_dir / f"{key}.json", params.shots)
        except DatasetError as exc:
            summary.problems.append(f"{key}: {exc}" + (f" ({exc.hint})" if exc.hint else ""))
            continue
        plans, notes = plan_video(
            key,
            shots,
            decision,
            params,
            concept=record.concept,
            category=record.category,
            categories=categories,
            looks_like_card=card_checker(probe),
        )
        summary.dropped += notes
        work.append((record, path, probe, plans, notes))
    summary.videos = len(work)
    planned = {p.clip_id for *_, plans, _ in work for p in plans}
    for clip_id, meta in sorted(state.clips.items()):
        video = (meta.get("curation") or {}).get("video") if isinstance(meta, dict) else None
        if video in records and clip_id not in planned:
            summary.stale.append(clip_id)
    if progress:
        progress("plan", "", 0, len(planned))
    for record, _path, probe, plans, notes in work:
        video_notes = [n.split(": ", 1)[1] for n in notes]
        _export_plans(writer, state, plans, probe, record.source(), params, summary, video_notes, progress)
    ws.log(
        "trim",
        dataset=str(Path(dataset).resolve()),
        params={
            "fps": params.fps,
            "detector": params.shots.detector,
            "threshold": params.shots.threshold,
            "end_card_max_s": params.end_card_max_s,
            "min_clip_s": params.min_clip_s,
            "crop": params.crop is not None,
        },
        exported=len(summary.exported),
        skipped=len(summary.skipped),
        conflicts=len(summary.conflicts),
        stale=len(summary.stale),
    )
    return summary


def trim_video(
    video: str | Path,
    dataset: str | Path,
    *,
    start_s: float | None = None,
    end_s: float | None = None,
    clip_key: str | None = None,
    concept: str | None = None,
    category: str | None = None,
    source: Source | None = None,
    crop: tuple[int, int, int, int] | str | None = None,
    params: TrimParams = TrimParams(),
    taxonomy: str | Path | None = None,
    progress: Progress | None = None,
) -> TrimSummary:
    """Trim one video file (no workspace): the span [start, end) -- the whole video when both are
    None -- cut at its shots, exported like :func:`trim_workspace` does."""
    path = Path(video)
    _check_dataset_folder(dataset)
    index = optional_concept_index(taxonomy)
    if concept and index is not None:
        known = require_concept(index, concept)
        concept, category = known.id, category or known.category
    categories = _categories(index)
    probe = probe_video(path)
    if start_s is not None and start_s >= probe.duration_s:
        raise UsageError(f"--start {start_s} is past the end of {path} ({probe.duration_s:.2f} s)", hint="fix the span")
    if (start_s is None) != (end_s is None):
        start_s = 0.0 if start_s is None else start_s
        end_s = probe.duration_s if end_s is None else end_s
    events = []
    if start_s is not None and end_s is not None:
        if not end_s > start_s >= 0:
            raise UsageError(f"--end ({end_s}) must be after --start ({start_s}) and both >= 0", hint="fix the span")
        events = [EventSpan(start_s, end_s)]
    key = safe_key(clip_key or path.stem)
    decision = Decision(key=key, decision="accept", events=events, concept=concept, crop=crop)
    shots = detect_shots(probe, params.shots)
    plans, notes = plan_video(
        key,
        shots,
        decision,
        params,
        concept=concept,
        category=category,
        categories=categories,
        looks_like_card=card_checker(probe),
    )
    summary = TrimSummary(videos=1, dropped=notes)
    if progress:
        progress("plan", "", 0, len(plans))
    writer = DatasetWriter(dataset, jpeg_quality=params.jpeg_quality)
    state = _DatasetState(writer.root)
    if source is None:
        source = _sidecar_source(path) or Source(
            url=path.resolve().as_uri(), platform="file", video_id=path.stem, title=path.stem
        )
    _export_plans(writer, state, plans, probe, source, params, summary, [n.split(": ", 1)[1] for n in notes], progress)
    return summary


def _sidecar_source(video: Path) -> Source | None:
    """Provenance from a yt-dlp ``--write-info-json`` file beside the video (``name.info.json``)."""
    sidecar = video.with_suffix(".info.json")
    if not sidecar.is_file():
        return None
    info = read_json(sidecar, what="yt-dlp info file")
    if not isinstance(info, dict):
        return None
    return Source(
        url=info.get("webpage_url") or info.get("original_url"),
        platform=(info.get("extractor_key") or info.get("extractor") or "").lower() or None,
        uploader=info.get("uploader") or info.get("channel") or info.get("uploader_id"),
        license=info.get("license"),
        video_id=str(info["id"]) if info.get("id") is not None else None,
        title=info.get("title"),
    )
