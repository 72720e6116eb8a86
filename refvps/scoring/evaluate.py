"""``evaluate``: score a set of predictions against a Ref-VPS-format dataset.

>>> from refvps.scoring import evaluate
>>> results = evaluate("preds/", "data/synthetic", workers=2)          # doctest: +SKIP
>>> results.summary.J, results.summary.TempCon                         # doctest: +SKIP
>>> results.write_json("results.json")                                 # doctest: +SKIP

The dataset is validated first (a dataset that breaks the format cannot give a trustworthy number).
Every annotated frame of every expression is scored; a prediction that is missing is scored as an
empty mask and counted (``--strict`` makes it an error); predictions for clips, expressions or
frames the dataset does not have are listed in ``coverage`` and not scored.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from refvps.dataset.format import EXPRESSIONS_FILE, Clip, Dataset
from refvps.errors import DatasetError, PredictionError, UsageError
from refvps.predictions.readers import Locators, PredictionSource, RleSource, open_predictions
from refvps.predictions.record import now_iso
from refvps.progress import NO_PROGRESS, Progress
from refvps.scoring.engine import (
    DEFAULT_CHUNK,
    ClipOutcome,
    ClipTask,
    ErrorOutcome,
    ExpressionFrames,
    Target,
    release_buffers,
    score_clip_safe,
)
from refvps.scoring.gtcache import resolve_cache_dir
from refvps.scoring.metrics import BOUND_TH, RECALL_THRESHOLD, j_recall, temporal_consistency
from refvps.scoring.protocols import apply_protocol, resolve_protocol
from refvps.scoring.results import (
    Coverage,
    ExpressionResult,
    Results,
    aggregate_categories,
    aggregate_clips,
    aggregate_concepts,
    summarise,
)

logger = logging.getLogger(__name__)

SCORING_STAGE = "scoring"
"""The progress stage of :func:`evaluate`: its steps are masks (frames x expressions), noted per clip."""

_EXAMPLES = 20  # how many missing or unknown items coverage lists by name
_SHOWN = 5  # how many missing frames and clips a message names


@dataclass
class ScoringPlan:
    tasks: list[ClipTask]
    coverage: Coverage
    n_masks: int  # frames x expressions to score


def open_dataset(root: str | Path, *, validate: bool = True) -> Dataset:
    """Open a dataset for scoring, validating it first (unless ``validate`` is False)."""
    root = Path(root)
    if not root.exists():
        raise DatasetError(
            f"dataset folder does not exist: {root}",
            hint="pass the dataset's root (the folder with meta_expressions.json), e.g. --dataset data/synthetic",
            path=root,
        )
    if validate:
        from refvps.dataset.validate import require_valid

        # Masks are not decoded here: the scorer decodes every one anyway and checks its
        # size against the frame's, so decoding them twice would double the time.
        require_valid(root, check_masks=False)
    return Dataset(root)


def plan_scoring(
    dataset: Dataset,
    source: PredictionSource,
    *,
    boundary: bool = True,
    bound_th: float = BOUND_TH,
    chunk: int = DEFAULT_CHUNK,
    gt_cache: str | None = None,
) -> ScoringPlan:
    """Match predictions to the dataset: one task per clip, plus what is missing and unknown.

    Only the frames that carry ground truth are scored (:attr:`Clip.annotated_frames`: every frame,
    unless the clip lists a subset; docs/BENCHMARKS_SUITE.md); a clip with none is left out.
    """
    coverage = Coverage(ignored_files=source.ignored)
    coverage.unknown_clips = sorted(c for c in source.index if c not in dataset)
    tasks: list[ClipTask] = []
    no_ground_truth: list[str] = []  # clips none of whose frames carries ground truth
    n_masks = 0
    matched_any = False
    for clip in dataset:
        if not clip.expressions:
            continue
        _check_scorable(clip, dataset.root)
        scored = clip.annotated_frames
        if not scored:
            no_ground_truth.append(clip.id)
            continue
        matched_any |= _cover_clip(clip, scored, source.index.get(clip.id, {}), coverage)
        n_masks += len(scored) * len(clip.expressions)
        tasks.append(
            ClipTask(
                clip_id=clip.id,
                masks_dir=str(clip.masks_dir),
                frames=scored,
                expressions=[(e.exp_id, e.target_labels) for e in clip.expressions],
                predictions=source.clip(clip.id),
                boundary=boundary,
                bound_th=bound_th,
                chunk=chunk,
                first_frame=str(clip.frame_path(scored[0])),
                gt_cache=gt_cache,
            )
        )
    _check_ground_truth(dataset, no_ground_truth, bool(tasks))
    if not tasks:
        raise DatasetError(
            f"the dataset has no clip with expressions to score: {dataset.root}",
            hint="check meta_expressions.json; run: refvps validate " + str(dataset.root),
            path=dataset.root,
        )
    if not matched_any:
        predicted = ", ".join(source.clip_ids[:5]) or "none"
        expected = ", ".join(t.clip_id for t in tasks[:5])
        raise PredictionError(
            f"no prediction in {source.path} matches the dataset {dataset.root} "
            f"(predicted clips: {predicted}; dataset clips: {expected}, ...)",
            hint="check that the predictions were made for this dataset and use its clip ids, "
            "expression ids and frame names (<clip_id>/<exp_id>/<frame>.png)",
            path=source.path,
        )
    return ScoringPlan(tasks, coverage, n_masks)


def _check_scorable(clip: Clip, root: Path) -> None:
    """A clip the scorer can score: it lists frames, and its expressions' targets are label indices."""
    index_file = root / EXPRESSIONS_FILE
    if not clip.frame_names:
        raise DatasetError(
            f"clip {clip.id} lists no frames in {index_file}", hint=f"run: refvps validate {root}", path=index_file
        )
    for expression in clip.expressions:
        if not all(1 <= label <= 254 for label in expression.target_labels):
            shown = ", ".join(map(str, expression.target_labels))
            raise DatasetError(
                f"clip {clip.id}: expression {expression.exp_id} refers to object {shown}, "
                "which is not a label index (1..254)",
                hint=f"set obj_id to the target's label in the masks (1 in Ref-VPS); run: refvps validate {root}",
                path=index_file,
            )


def _cover_clip(clip: Clip, scored: list[str], predicted: Locators, coverage: Coverage) -> bool:
    """Add one clip's missing and unknown predictions to ``coverage``; whether any scored frame is predicted.

    A prediction for a frame of the clip that carries no ground truth is neither missing nor unknown."""
    known_exps = {e.exp_id for e in clip.expressions}
    for exp_id in sorted(predicted):
        if exp_id not in known_exps:
            coverage.unknown_expressions.append({"video": clip.id, "exp_id": exp_id})
    frame_set = set(clip.frame_names)
    clip_missing = 0
    matched = False
    for expression in clip.expressions:
        frames = predicted.get(expression.exp_id, {})
        n_missing = _note_missing(coverage, clip.id, expression.exp_id, scored, frames)
        matched = matched or n_missing < len(scored)
        clip_missing += n_missing
        for frame in frames:
            if frame not in frame_set:
                coverage.unknown_frames += 1
                if len(coverage.unknown_frame_examples) < _EXAMPLES:
                    coverage.unknown_frame_examples.append(
                        {"video": clip.id, "exp_id": expression.exp_id, "frame": frame}
                    )
    if clip_missing:
        coverage.clips_with_missing.append(clip.id)
        coverage.missing_per_clip[clip.id] = clip_missing
    coverage.missing_frames += clip_missing
    return matched


def _note_missing(coverage: Coverage, clip_id: str, exp_id: str, scored: list[str], frames: Mapping[str, Any]) -> int:
    """Count the scored frames one expression has no prediction for, naming the first few in ``coverage``."""
    absent = [f for f in scored if f not in frames]
    for frame in absent[: max(0, _EXAMPLES - len(coverage.missing_frame_examples))]:
        coverage.missing_frame_examples.append({"video": clip_id, "exp_id": exp_id, "frame": frame})
    if absent and len(absent) == len(scored):
        coverage.missing_expressions.append({"video": clip_id, "exp_id": exp_id})
    return len(absent)


def _check_ground_truth(dataset: Dataset, without: list[str], any_with: bool) -> None:
    """No clip with ground truth is an error that says where scoring happens instead; some is a warning."""
    if without and not any_with:
        raise DatasetError(
            f"the dataset {dataset.root} has no ground truth: none of its {len(without)} clip(s) has an annotated "
            "frame (a split whose masks are not public, such as Ref-YouTube-VOS valid/test or MeViS valid)",
            hint="predict it and score on the benchmark's official server: refvps export-submission PRED "
            f"--dataset {dataset.root} --benchmark ref-ytvos|mevis --out submission.zip",
            path=dataset.root,
        )
    if without:
        logger.warning("%d clip(s) have no ground truth and are not scored (first: %s)", len(without), without[0])


def missing_message(coverage: Coverage) -> str:
    """The one-line description of missing predictions (warning, or error under ``--strict``): how many,
    in which clips, and the first few by name (clip / exp_id / frame)."""
    per_clip = sorted(coverage.missing_per_clip.items(), key=lambda kv: (-kv[1], kv[0]))
    counts = ", ".join(f"{clip}: {n}" for clip, n in per_clip[:_SHOWN]) + (", ..." if len(per_clip) > _SHOWN else "")
    parts = [
        f"{coverage.missing_frames} predicted frame(s) missing in {len(coverage.clips_with_missing)} clip(s)"
        + (f" ({counts})" if counts else "")
    ]
    if coverage.missing_frame_examples:
        shown = coverage.missing_frame_examples[:_SHOWN]
        parts.append("first: " + ", ".join(f"{m['video']}/{m['exp_id']}/{m['frame']}" for m in shown))
    if coverage.missing_expressions:
        first = coverage.missing_expressions[0]
        parts.append(
            f"{len(coverage.missing_expressions)} expression(s) entirely absent "
            f"(first: {first['video']}/{first['exp_id']})"
        )
    return "; ".join(parts)


def unknown_message(coverage: Coverage) -> str:
    parts = []
    if coverage.unknown_clips:
        shown = ", ".join(coverage.unknown_clips[:5]) + (", ..." if len(coverage.unknown_clips) > 5 else "")
        parts.append(f"{len(coverage.unknown_clips)} clip(s) not in the dataset ({shown})")
    if coverage.unknown_expressions:
        first = coverage.unknown_expressions[0]
        parts.append(
            f"{len(coverage.unknown_expressions)} expression(s) not in the dataset (first: {first['video']}/{first['exp_id']})"
        )
    if coverage.unknown_frames:
        first = coverage.unknown_frame_examples[0]
        parts.append(
            f"{coverage.unknown_frames} frame(s) not in the dataset (first: {first['video']}/{first['exp_id']}/{first['frame']})"
        )
    return "predictions for " + "; ".join(parts) + " were not scored"


def evaluate(
    predictions: str | Path | PredictionSource,
    dataset: str | Path | Dataset,
    *,
    boundary: bool = True,
    workers: int = 1,
    strict: bool = False,
    method: str | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    bound_th: float = BOUND_TH,
    validate: bool = True,
    chunk: int = DEFAULT_CHUNK,
    gt_cache: str | Path | bool | None = None,
    progress: Progress = NO_PROGRESS,
    protocol: str | None = None,
) -> Results:
    """Score ``predictions`` (a PNG tree, a .zip or a COCO-RLE .json) against ``dataset``.

    ``boundary`` computes F and J&F (the slow part); ``workers`` processes score clips in parallel
    (0 means one per CPU); ``strict`` turns missing predictions into an error; ``bootstrap`` is the
    number of clip resamples for the 95% intervals (0 disables them), drawn with ``seed``.
    ``progress`` gets the stage ``"scoring"``, whose total is the number of masks to score
    (frames x expressions), advanced after each clip by its masks with the clip's id as the note.
    Raises :class:`refvps.errors.RefvpsError` subclasses for bad input.

    ``gt_cache`` is where the ground truth encoded as RLE is kept between runs, for scoring RLE
    predictions without F (:mod:`refvps.scoring.gtcache`; keyed by the PNGs' content, so never
    stale): None or True = ``$REFVPS_CACHE_DIR`` or ``~/.cache/refvps``, False = off, or a folder.

    ``protocol`` names how the headline numbers are computed (:mod:`refvps.scoring.protocols`,
    docs/BENCHMARKS_SUITE.md); by default the one the dataset's clips.json names, else ``refvps``.
    """
    if workers < 0:
        raise UsageError(f"--workers must be 0 (all CPUs) or more, got {workers}")
    if bootstrap < 0:
        raise UsageError(f"--bootstrap must be 0 (off) or more, got {bootstrap}")
    if chunk < 1:
        raise UsageError(f"chunk must be at least 1, got {chunk}")
    source = predictions if isinstance(predictions, PredictionSource) else open_predictions(predictions)
    data = dataset if isinstance(dataset, Dataset) else open_dataset(dataset, validate=validate)
    chosen = resolve_protocol(protocol, data)
    cache_dir = resolve_cache_dir(gt_cache) if isinstance(source, RleSource) and not boundary else None
    plan = plan_scoring(data, source, boundary=boundary, bound_th=bound_th, chunk=chunk, gt_cache=cache_dir)
    if strict:
        _refuse_incomplete(plan.coverage, source.path)
    _warn_incomplete(plan.coverage)
    n_workers = (os.cpu_count() or 1) if workers == 0 else workers
    with progress.stage(SCORING_STAGE, total=plan.n_masks):
        outcomes = _run(plan.tasks, min(n_workers, len(plan.tasks)), progress)
    results = _assemble(
        data,
        source,
        plan,
        outcomes,
        bootstrap=bootstrap,
        seed=seed,
        options={
            "boundary": boundary,
            "bound_th": bound_th,
            "recall_threshold": RECALL_THRESHOLD,
            "bootstrap": bootstrap,
            "seed": seed,
            "workers": n_workers,
            "strict": strict,
        },
        method=method,
    )
    return apply_protocol(chosen, results, data, source)


def _refuse_incomplete(coverage: Coverage, path: Path) -> None:
    """``--strict``: a missing or unknown prediction is an error."""
    problems = []
    if coverage.has_missing:
        problems.append(missing_message(coverage))
    if coverage.has_unknown:
        problems.append(unknown_message(coverage))
    if problems:
        raise PredictionError(
            f"--strict: {'; '.join(problems)} ({path})",
            hint="predict every frame of every expression of the dataset, and nothing else; "
            "without --strict missing frames are scored as empty masks",
            path=path,
        )


def _warn_incomplete(coverage: Coverage) -> None:
    """Missing predictions (scored empty) and unknown ones (not scored) are said, not only counted."""
    if coverage.has_missing:
        logger.warning("%s; they were scored as empty masks (--strict makes this an error)", missing_message(coverage))
    if coverage.has_unknown:
        logger.warning("%s", unknown_message(coverage))


def _run(tasks: list[ClipTask], workers: int, progress: Progress) -> dict[str, ClipOutcome]:
    outcomes: dict[str, ClipOutcome] = {}

    def accept(result: ClipOutcome | ErrorOutcome) -> None:
        if isinstance(result, ErrorOutcome):
            raise result.to_exception()
        outcomes[result.clip_id] = result
        progress.advance(SCORING_STAGE, sum(len(e.iou) for e in result.expressions), note=result.clip_id)

    if workers <= 1:
        try:
            for task in tasks:
                accept(score_clip_safe(task))
        finally:
            release_buffers()
        return outcomes
    # Longest clips first, so that no worker is left with one long clip at the end.
    ordered = sorted(tasks, key=lambda t: -len(t.frames) * len(t.expressions))
    # "spawn": the parent may hold threads (progress bar); a forked copy of them can deadlock.
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_init_worker) as pool:
        try:
            for result in pool.imap_unordered(score_clip_safe, ordered, chunksize=1):
                accept(result)
        except BaseException:
            pool.terminate()
            raise
    return outcomes


def _init_worker() -> None:
    # One process per core already: OpenCV's own threads would only compete with the other workers.
    import cv2

    cv2.setNumThreads(1)


METRIC_DEFINITIONS = {
    "J": "mean over frames of IoU outside Ignore (1 when both empty), x100; dataset: mean over (clip, expression)",
    "F": "DAVIS 2017 boundary F (bound_th of the diagonal), Ignore removed like DAVIS void, x100",
    "TempCon": "100 x mean over consecutive frames of |IoU(t+1) - IoU(t)|; lower is better (paper Eq. 5, absolute value)",
    "J_recall": "share of frames with IoU > 0.5, x100",
    "J_ci95": "95% percentile bootstrap interval of J, resampling clips",
}
"""How results.json's ``meta.metrics`` describes each number (``docs/METRICS.md`` in full)."""


def _assemble(
    dataset: Dataset,
    source: PredictionSource,
    plan: ScoringPlan,
    outcomes: dict[str, ClipOutcome],
    *,
    bootstrap: int,
    seed: int,
    options: dict[str, Any],
    method: str | None,
) -> Results:
    from refvps import __version__

    rows = [
        _expression_result(dataset.clip(task.clip_id), exp_id, obj_id, frames)
        for task in plan.tasks
        for (exp_id, obj_id), frames in zip(task.expressions, outcomes[task.clip_id].expressions)
    ]
    clips = aggregate_clips(rows)
    concepts = aggregate_concepts(clips)
    categories = aggregate_categories(clips)
    summary = summarise(
        rows,
        clips,
        concepts,
        categories,
        bootstrap=bootstrap,
        seed=seed,
        n_clip_frames=sum(len(t.frames) for t in plan.tasks),
        n_missing_expressions=len(plan.coverage.missing_expressions),
    )
    meta = {
        "dataset": str(dataset.root),
        "predictions": str(source.path),
        "format": source.format,
        "method": method,
        "refvps_version": __version__,
        "date": now_iso(),
        "benchmark": _declared_benchmark(dataset),
        "options": options,
        "metrics": dict(METRIC_DEFINITIONS),
    }
    return Results(summary, rows, clips, concepts, categories, plan.coverage, meta)


def _expression_result(clip: Clip, exp_id: str, obj_id: Target, frames: ExpressionFrames) -> ExpressionResult:
    """One (clip, expression)'s scores from its per-frame IoU and F (``docs/METRICS.md``)."""
    texts = {e.exp_id: e.text for e in clip.expressions}
    return ExpressionResult(
        video=clip.id,
        exp_id=exp_id,
        J=100.0 * float(np.mean(frames.iou)),
        F=100.0 * float(np.mean(frames.f)) if frames.f is not None else None,
        TempCon=float(temporal_consistency(frames.iou)),
        J_recall=100.0 * float(j_recall(frames.iou)),
        n_frames=len(frames.iou),
        n_missing=frames.n_missing,
        obj_id=obj_id[0] if len(obj_id) == 1 else list(obj_id),
        concept=clip.meta.concept,
        category=clip.meta.category,
        expression=texts.get(exp_id, ""),
        iou=frames.iou,
        f=frames.f,
    )


def _declared_benchmark(dataset: Dataset) -> str | None:
    """``"<benchmark> <split>"`` when every clip's clips.json entry names the same (``refvps convert``
    writes them); the leaderboard ranks rows of one benchmark together."""
    named = set()
    for meta in dataset.raw_clips.values():
        if isinstance(meta, dict) and meta.get("benchmark"):
            named.add(" ".join(str(meta[k]) for k in ("benchmark", "split") if meta.get(k)))
        else:
            return None
    return named.pop() if len(named) == 1 else None
