"""Trim: accepted videos -> clips of the event, exported at 24 fps into a Ref-VPS dataset (paper §4.2).

For every accepted video:

1. shots are detected (:mod:`refvps.curation.shots`, cached in the workspace); a clip never
   crosses a cut;
2. the clips are planned from the decision's event spans (:mod:`refvps.curation.plan`); a short
   final shot that looks like a card is dropped (:mod:`refvps.curation.cards`);
3. one padding box is found for the video, over frames of every shot that gives a clip
   (:mod:`refvps.curation.crop`), unless the decision fixes the crop;
4. the clips are exported (:mod:`refvps.curation.export`) with their provenance: source URL,
   uploader, licence, upload date, what the site said about size and frame rate, the query that
   found the video, its concept and category, the trim span and the crop box.

Nothing is lost silently. A video that cannot be read, or a clip whose frames do not decode or
cannot be written, is reported (name, reason, what to do) and the run goes on with the rest; a
truncated file is exported as far as it decodes, with a note saying how much that was; every
dropped shot or piece is listed with its reason. An interrupted run followed by a rerun gives the
same dataset as one uninterrupted run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from refvps.curation.cards import check_card
from refvps.curation.crop import Box, detect_crop, union_box
from refvps.curation.export import DatasetState, discard_partial, export_clip
from refvps.curation.plan import DEFAULT_TRIM, ClipPlan, TrimParams, plan_video
from refvps.curation.queries import Concept, optional_concept_index, require_concept
from refvps.curation.review import Decision, EventSpan, read_decisions
from refvps.curation.shots import Shot, cached_shots, damage_note, detect_shots
from refvps.curation.video import VideoProbe, probe_video, sample_frames, sample_times
from refvps.curation.workspace import VideoRecord, Workspace, safe_key
from refvps.dataset.format import DatasetWriter, Source
from refvps.errors import DatasetError, UsageError
from refvps.fileio import read_json
from refvps.progress import NO_PROGRESS, Progress

logger = logging.getLogger(__name__)

MIN_CROP_SAMPLES_PER_SHOT = 4


@dataclass
class TrimSummary:
    exported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # complete already
    conflicts: list[str] = field(default_factory=list)  # plan changed but the clip has labels
    stale: list[str] = field(default_factory=list)  # exported before, no longer planned
    dropped: list[str] = field(default_factory=list)  # end cards and too-short pieces (why)
    problems: list[str] = field(default_factory=list)  # videos or clips that could not be exported (why, what to do)
    warnings: list[str] = field(default_factory=list)  # exported, but the user should know (truncated sources)
    videos: int = 0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class VideoJob:
    """One video, planned: its clips with the video's crop box, provenance and notes."""

    key: str
    probe: VideoProbe
    plans: list[ClipPlan]
    source: Source | None
    notes: list[str]  # about the source file (damage, framing): every clip's curation.video_notes
    damage: str | None = None  # how much of a damaged or truncated file could be read: every clip's notes
    extra: dict[str, Any] = field(default_factory=dict)  # more of the clips' curation block


# -- one video ------------------------------------------------------------------------------------
def _crop_samples(shots: Sequence[Shot], total: int) -> list[tuple[Shot, list[float]]]:
    """Sample times per shot: ``total`` spread by duration, at least a few in every shot."""
    length = sum(s.duration_s for s in shots) or 1.0
    out = []
    for shot in shots:
        count = max(MIN_CROP_SAMPLES_PER_SHOT, round(total * shot.duration_s / length))
        out.append((shot, sample_times(shot.start_s, shot.end_s, count)))
    return out


def video_crop(
    probe: VideoProbe, shots: Sequence[Shot], override: Box | str | None, params: TrimParams
) -> tuple[Box, list[str]]:
    """The one crop box of a video, from the shots that give clips, and notes on how it was found."""
    full = (0, 0, probe.width, probe.height)
    if override == "none" or params.crop is None:
        return full, []
    if isinstance(override, tuple):
        x, y, w, h = override
        if x + w > probe.width or y + h > probe.height:
            raise UsageError(
                f"crop {list(override)} is outside the {probe.width}x{probe.height} frame",
                hint="give x, y, w, h in source pixels inside the frame: --crop for one video, "
                "'crop' in decisions.json for a workspace (or remove it)",
            )
        return override, []
    boxes, failed = [], 0
    for _shot, times in _crop_samples(shots, params.crop_samples):
        got, missed = sample_frames(probe, times, fmt="gray")
        failed += len(missed)
        if got:
            boxes.append(detect_crop([image for _, image in got], params.crop))
    box = union_box(boxes) or full
    notes = []
    if len(set(boxes)) > 1:
        notes.append(
            f"shots are framed differently ({', '.join(str(list(b)) for b in sorted(set(boxes)))}): crop {list(box)} holds them all"
        )
    if failed:
        notes.append(f"{failed} padding sample(s) did not decode")
    return box, notes


def prepare_video(
    key: str,
    path: Path,
    decision: Decision,
    params: TrimParams,
    *,
    concept: str | None,
    category: str | None,
    categories: Mapping[str, str],
    shots_cache: Path | None = None,
) -> tuple[VideoJob, list[str]]:
    """Probe, find shots, plan and crop one video; returns the job and the notes of what was dropped."""
    probe = probe_video(path)
    shots = cached_shots(path, shots_cache, params.shots) if shots_cache else detect_shots(probe, params.shots)
    plans, dropped = plan_video(
        key,
        shots,
        decision,
        params,
        concept=concept,
        category=category,
        categories=categories,
        looks_like_card=lambda shot: check_card(probe, shot),
    )
    used = sorted({p.shot_index for p in plans})
    crop, notes = video_crop(probe, [shots[i] for i in used], decision.crop, params) if plans else (None, [])
    damage = damage_note(probe, shots)
    if damage:
        notes.insert(0, damage)
    plans = [replace(p, crop=crop) for p in plans]
    return VideoJob(key, probe, plans, None, notes, damage), dropped


def _problem(what: str, exc: Exception) -> str:
    hint = getattr(exc, "hint", None)
    if isinstance(exc, OSError) and not hint:
        hint = "check the dataset folder: free space and permissions"
    return f"{what}: {exc}" + (f" ({hint})" if hint else "")


# -- the dataset side -----------------------------------------------------------------------------
def _export_job(
    writer: DatasetWriter, state: DatasetState, job: VideoJob, summary: TrimSummary, progress: Progress
) -> None:
    """Export one video's clips; a clip that fails is reported and the others go on."""
    curation = {
        "source_fps": round(job.probe.fps, 6),
        "source_size": [job.probe.width, job.probe.height],
        "video_notes": list(job.notes),
        **job.extra,
    }
    for plan in job.plans:
        status = state.status(plan)
        if status == "complete":
            summary.skipped.append(plan.clip_id)
        elif status == "changed" and state.has_labels(plan.clip_id):
            summary.conflicts.append(
                f"{plan.clip_id}: the decision, shots or crop changed its plan, but it already has masks or "
                "expressions; kept as it is (remove the clip from the dataset to re-export it)"
            )
        else:
            try:
                export_clip(
                    writer,
                    plan,
                    job.probe,
                    job.source,
                    curation=curation,
                    notes=job.damage or "",
                    progress=progress,
                )
                summary.exported.append(plan.clip_id)
            except (DatasetError, OSError) as exc:
                removed = discard_partial(writer, state, plan)
                summary.problems.append(_problem(f"{plan.clip_id} (video {job.key}) not exported", exc) + removed)
        progress.advance("clips", note=plan.clip_id)


def _export_all(
    dataset: str | Path, jobs: Sequence[VideoJob], params: TrimParams, summary: TrimSummary, progress: Progress
) -> None:
    writer = DatasetWriter(dataset, jpeg_quality=params.jpeg_quality)
    state = DatasetState(writer.root)
    with progress.stage("clips", sum(len(job.plans) for job in jobs)):
        for job in jobs:
            if job.damage:
                summary.warnings.append(
                    f"{job.key}: {job.damage}; its clips come from the readable part (fetch it again for the rest)"
                )
            _export_job(writer, state, job, summary, progress)


def _stale(dataset: str | Path, keys: set[str], planned: set[str]) -> list[str]:
    """Clips exported before from these videos that are no longer planned (reported, not deleted)."""
    clips = DatasetState(Path(dataset)).clips if Path(dataset).is_dir() else {}
    out = []
    for clip_id, meta in sorted(clips.items()):
        video = (meta.get("curation") or {}).get("video") if isinstance(meta, dict) else None
        if video in keys and clip_id not in planned:
            out.append(clip_id)
    return out


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


# -- the stages -----------------------------------------------------------------------------------
def _workspace_jobs(
    ws: Workspace,
    decisions: Mapping[str, Decision],
    params: TrimParams,
    categories: Mapping[str, str],
    summary: TrimSummary,
) -> list[VideoJob]:
    """A job per accepted video that can be read; every other accepted video is a reported problem."""
    optout = ws.optout()
    records = {r.key: r for r in ws.records()}
    jobs = []
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
            job, dropped = prepare_video(
                key,
                ws.video_path(record),
                decision,
                params,
                concept=record.concept,
                category=record.category,
                categories=categories,
                shots_cache=ws.shots_dir / f"{key}.json",
            )
        except (DatasetError, UsageError, OSError) as exc:
            summary.problems.append(_problem(f"{key}: not exported", exc))
            continue
        summary.dropped += [f"{key}: {note}" for note in dropped]
        if not job.plans:
            summary.problems.append(
                f"{key}: accepted, but no clip comes out of it ({'; '.join(dropped) or 'no frames'}) "
                "(fix its event spans with refvps review --accept KEY --span START-END, or reject it)"
            )
            continue
        job.source = record.source()
        if record.also_found_by:
            job.extra["also_found_by"] = list(record.also_found_by)
        jobs.append(job)
    return jobs


def trim_workspace(
    workspace: Workspace | str | Path,
    dataset: str | Path,
    params: TrimParams = DEFAULT_TRIM,
    *,
    taxonomy: str | Path | None = None,
    progress: Progress = NO_PROGRESS,
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
    categories = _categories(optional_concept_index(taxonomy))
    summary = TrimSummary()
    jobs = _workspace_jobs(ws, decisions, params, categories, summary)
    summary.videos = len(jobs)
    keys = {r.key for r in ws.records()}
    summary.stale = _stale(dataset, keys, {p.clip_id for job in jobs for p in job.plans})
    _export_all(dataset, jobs, params, summary, progress)
    ws.log(
        "trim",
        dataset=str(Path(dataset).resolve()),
        params={
            "fps": params.fps,
            "detector": params.shots.detector,
            "threshold": params.shots.threshold,
            "min_shot_s": params.shots.min_shot_s,
            "cut_ratio": params.shots.cut_ratio,
            "end_card_max_s": params.end_card_max_s,
            "min_clip_s": params.min_clip_s,
            "crop": params.crop is not None,
        },
        exported=len(summary.exported),
        skipped=len(summary.skipped),
        conflicts=len(summary.conflicts),
        stale=len(summary.stale),
        problems=len(summary.problems),
    )
    return summary


def _single_span(probe: VideoProbe, path: Path, start_s: float | None, end_s: float | None) -> list[EventSpan]:
    """The event span of ``trim VIDEO --start --end`` (none: the whole video), checked."""
    if start_s is None and end_s is None:
        return []
    if start_s is not None and start_s >= probe.duration_s:
        raise UsageError(f"--start {start_s} is past the end of {path} ({probe.duration_s:.2f} s)", hint="fix the span")
    start = 0.0 if start_s is None else start_s
    end = probe.duration_s if end_s is None else end_s
    if start < 0 or end <= start:
        raise UsageError(f"--end ({end:g}) must be after --start ({start:g}) and both >= 0", hint="fix the span")
    return [EventSpan(start, end)]


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
    crop: Box | str | None = None,
    params: TrimParams = DEFAULT_TRIM,
    taxonomy: str | Path | None = None,
    progress: Progress = NO_PROGRESS,
) -> TrimSummary:
    """Trim one video file (no workspace): the span [start, end) -- the whole video when both are
    None -- cut at its shots, exported like :func:`trim_workspace` does. A span that yields no clip
    is a :class:`UsageError` (nothing is written)."""
    path = Path(video)
    _check_dataset_folder(dataset)
    index = optional_concept_index(taxonomy)
    if concept and index is not None:
        known = require_concept(index, concept)
        concept, category = known.id, category or known.category
    probe = probe_video(path)
    events = _single_span(probe, path, start_s, end_s)
    key = safe_key(clip_key or path.stem)
    decision = Decision(key=key, decision="accept", events=events, concept=concept, crop=crop)
    job, dropped = prepare_video(
        key, path, decision, params, concept=concept, category=category, categories=_categories(index)
    )
    if not job.plans:
        span = f"{events[0].start_s:g}-{events[0].end_s:g} s" if events else "the whole video"
        raise UsageError(
            f"{span} of {path} gives no clip: {'; '.join(dropped) or 'no frames'}",
            hint=f"choose a span of at least {params.min_clip_s:g} s inside one shot (or lower --min-clip)",
        )
    job.source = (
        source
        or _sidecar_source(path)
        or Source(url=path.resolve().as_uri(), platform="file", video_id=path.stem, title=path.stem)
    )
    summary = TrimSummary(videos=1, dropped=[f"{key}: {note}" for note in dropped])
    _export_all(dataset, [job], params, summary, progress)
    return summary


def _sidecar_source(video: Path) -> Source | None:
    """Provenance from a yt-dlp ``--write-info-json`` file beside the video (``name.info.json``)."""
    sidecar = video.with_suffix(".info.json")
    if not sidecar.is_file():
        return None
    info = read_json(sidecar, what="yt-dlp info file")
    if not isinstance(info, dict):
        return None
    return VideoRecord.from_info(info, key=video.stem, file=video.name).source()
