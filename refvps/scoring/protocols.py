"""Evaluation protocols: how each benchmark of the paper's suite turns masks into its published numbers.

``refvps evaluate --protocol NAME`` scores every (clip, expression) as usual and then computes the
headline numbers the way the benchmark's own evaluation does (docs/BENCHMARKS_SUITE.md):

============  ==============================================================================
``refvps``    Ref-VPS: J, F, J&F, TempCon, J-recall as means over (clip, expression), Ignore
              left out (docs/METRICS.md). The default for any dataset that names no protocol.
``mevis``     MeViS (``tools/eval_mevis.py``): J and F per expression over every frame, their
              means, J&F = (J + F) / 2; a video with no prediction at all scores J = F = 0.
``vspw-stuff`` VSPW stuff classes (the authors' ``stuff/eval_stuff.py``): J per (video, class)
              over its frames, averaged per class, then over classes. No F.
``burst``     BURST (the authors' ``burst/eval_burst.py``): the same over the annotated frames.
``ref-davis`` Ref-DAVIS17 (davis2017-evaluation as the authors run it, each expression's mask read
              on its own): each of the four expression sets (two annotators x first-frame /
              full-video) is one run of the DAVIS 2017 *unsupervised* evaluation: every frame
              counts, the ground-truth objects are labels 1..max of the first frame, and the run's
              predictions are matched to them by the Hungarian method on (J + F) / 2; J and F are
              means over objects; the four runs are averaged.
============  ==============================================================================

The authors' scripts pair prediction and ground-truth files by unsorted ``os.listdir`` order;
refvps pairs them by frame name. Both give the same number when the listings agree (the usual case
on one file system). Under every protocol but ``refvps`` the bootstrap intervals are left out: they
describe refvps's mean over expressions, not the protocol's statistic. The generic numbers stay in
``meta.refvps_summary`` of results.json and the per-expression rows are kept.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from refvps.dataset.format import Clip, Dataset, Expression
from refvps.dataset.palette import IGNORE_INDEX
from refvps.errors import PredictionError, UsageError
from refvps.predictions.readers import ClipPredictions, PredictionSource, close_archives
from refvps.scoring.metrics import (
    BOUND_TH,
    BoundaryCrop,
    TargetBoundary,
    bound_pixels,
    boundary_map,
    j_recall,
    temporal_consistency,
)
from refvps.scoring.results import ExpressionResult, Results

log = logging.getLogger(__name__)

DEFAULT_PROTOCOL = "refvps"
CLASS_KEY = "class_name"  # expression extra: the class a converted VSPW / BURST expression names
RUN_KEYS = ("annotator", "annotation")  # a Ref-DAVIS expression's set: annotator x first_frame / full_video
MAX_PROPOSALS = 20  # davis2017-evaluation refuses more predicted objects than this per sequence


@dataclass
class ProtocolScores:
    """The headline numbers of a protocol (0-100) and the groups it averaged over."""

    J: float
    F: float | None
    TempCon: float | None
    J_recall: float | None
    groups: list[dict[str, Any]] = field(default_factory=list)
    group_kind: str = ""

    @property
    def JF(self) -> float | None:
        return None if self.F is None else (self.J + self.F) / 2


@dataclass(frozen=True)
class Protocol:
    """One benchmark's way of computing its numbers (see the module docstring)."""

    name: str
    benchmark: str | None  # what ``refvps convert`` names the benchmark in clips.json; None: any dataset
    description: str
    source: str  # the evaluation code it reproduces

    def check(self, dataset: Dataset) -> None:
        """Raise :class:`UsageError` when the dataset lacks what the protocol needs."""

    def scores(self, results: Results, dataset: Dataset, source: PredictionSource) -> ProtocolScores | None:
        """The protocol's numbers (None: refvps's own summary is the protocol's)."""
        return None


class _MeanOverExpressions(Protocol):
    def scores(self, results: Results, dataset: Dataset, source: PredictionSource) -> ProtocolScores:
        rows = results.per_expression
        # tools/eval_mevis.py gives [0, 0] to every expression of a video it finds no folder for.
        unpredicted = {r.video for r in rows if r.video not in source.index}
        if unpredicted:
            log.warning("%d video(s) have no prediction at all and score J = F = 0 (as MeViS does)", len(unpredicted))
        J = [0.0 if r.video in unpredicted else r.J for r in rows]
        F = [0.0 if r.video in unpredicted else r.F for r in rows]
        return ProtocolScores(
            J=float(np.mean(J)),
            F=None if any(f is None for f in F) else float(np.mean([f or 0.0 for f in F])),
            TempCon=float(np.mean([r.TempCon for r in rows])),
            J_recall=float(np.mean([0.0 if r.video in unpredicted else r.J_recall for r in rows])),
        )


class _ClassAveraged(Protocol):
    def check(self, dataset: Dataset) -> None:
        for clip in dataset:
            for expression in clip.expressions:
                if not isinstance(expression.extra.get(CLASS_KEY), str):
                    raise UsageError(
                        f"--protocol {self.name} averages J per class, but expression {clip.id}/{expression.exp_id} "
                        f"of {dataset.root} names no class ('{CLASS_KEY}' in meta_expressions.json)",
                        hint=f"use a dataset written by 'refvps convert {self.benchmark}', or --protocol refvps",
                        path=dataset.root,
                    )

    def scores(self, results: Results, dataset: Dataset, source: PredictionSource) -> ProtocolScores:
        classes = {(clip.id, e.exp_id): str(e.extra[CLASS_KEY]) for clip in dataset for e in clip.expressions}
        per_class: dict[str, list[ExpressionResult]] = defaultdict(list)
        for row in results.per_expression:
            per_class[classes[(row.video, row.exp_id)]].append(row)
        groups = [
            {
                "class": name,
                "J": float(np.mean([r.J for r in members])),
                "TempCon": float(np.mean([r.TempCon for r in members])),
                "J_recall": float(np.mean([r.J_recall for r in members])),
                "n_videos": len(members),
            }
            for name, members in sorted(per_class.items())
        ]
        return ProtocolScores(
            J=float(np.mean([g["J"] for g in groups])),
            F=None,
            TempCon=float(np.mean([g["TempCon"] for g in groups])),
            J_recall=float(np.mean([g["J_recall"] for g in groups])),
            groups=groups,
            group_kind="class",
        )


class _RefDavis(Protocol):
    def check(self, dataset: Dataset) -> None:
        for clip in dataset:
            for expression in clip.expressions:
                if _run_of(expression) is None:
                    raise UsageError(
                        f"--protocol ref-davis evaluates each annotator's first-frame and full-video expressions "
                        f"as a run, but expression {clip.id}/{expression.exp_id} of {dataset.root} says neither "
                        "('annotator' and 'annotation' in meta_expressions.json)",
                        hint="use a dataset written by 'refvps convert ref-davis', or --protocol refvps",
                        path=dataset.root,
                    )

    def scores(self, results: Results, dataset: Dataset, source: PredictionSource) -> ProtocolScores:
        boundary = results.meta.get("options", {}).get("boundary", True)
        bound_th = results.meta.get("options", {}).get("bound_th", BOUND_TH)
        runs: dict[str, list[_Matched]] = defaultdict(list)
        try:
            for clip_id in sorted({r.video for r in results.per_expression}):
                for run, matched in _davis_clip(dataset.clip(clip_id), source, boundary, bound_th).items():
                    runs[run].extend(matched)
        finally:
            close_archives()
        groups = [_run_summary(run, matched, boundary) for run, matched in sorted(runs.items())]
        if not groups:
            raise UsageError(
                f"no sequence of {dataset.root} has a ground-truth object in its first frame",
                hint="the DAVIS evaluation counts the objects of the first frame; check the dataset",
                path=dataset.root,
            )

        def mean(key: str) -> float:
            return float(np.mean([g[key] for g in groups]))

        return ProtocolScores(
            J=mean("J"),
            F=mean("F") if boundary else None,
            TempCon=mean("TempCon"),
            J_recall=mean("J_recall"),
            groups=groups,
            group_kind="expression set",
        )


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol(
            "refvps",
            None,
            "means over (clip, expression), Ignore left out (docs/METRICS.md)",
            "refvps",
        ),
        _MeanOverExpressions(
            "mevis",
            "mevis",
            "J and F per expression over every frame, then their means; J&F = (J + F) / 2",
            "henghuiding/MeViS tools/eval_mevis.py",
        ),
        _ClassAveraged(
            "vspw-stuff",
            "vspw-stuff",
            "J per (video, class) over its frames, mean per class, mean over the classes",
            "miccooper9/ReferEverything stuff/eval_stuff.py",
        ),
        _ClassAveraged(
            "burst",
            "burst",
            "J per (video, class) over the annotated frames, mean per class, mean over the classes",
            "miccooper9/ReferEverything burst/eval_burst.py",
        ),
        _RefDavis(
            "ref-davis",
            "ref-davis",
            "DAVIS 2017 unsupervised evaluation (Hungarian matching on (J + F) / 2, every frame) of each of the "
            "four expression sets, averaged",
            "davisvideochallenge/davis2017-evaluation, run per expression set as the authors' ref-davis/ "
            "scripts do (each expression's mask read on its own)",
        ),
    )
}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise UsageError(f"unknown protocol {name!r}", hint=f"choose one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def dataset_protocol(dataset: Dataset) -> str | None:
    """The protocol the dataset's clips.json names (``protocol``, written by ``refvps convert``), if one."""
    named = {meta.get("protocol") for meta in dataset.raw_clips.values() if isinstance(meta, dict)}
    named.discard(None)
    return named.pop() if len(named) == 1 else None


def resolve_protocol(name: str | None, dataset: Dataset) -> Protocol:
    """``name``, or the dataset's own protocol, or ``refvps``; checked against the dataset."""
    own = dataset_protocol(dataset)
    protocol = get_protocol(name or own or DEFAULT_PROTOCOL)
    if own is not None and protocol.name != own:
        log.warning(
            "scoring %s with --protocol %s, but it is a %s dataset: its published numbers use --protocol %s",
            dataset.root,
            protocol.name,
            own,
            own,
        )
    protocol.check(dataset)
    return protocol


def apply_protocol(protocol: Protocol, results: Results, dataset: Dataset, source: PredictionSource) -> Results:
    """Record the protocol in ``results`` and replace its headline numbers with the protocol's."""
    results.meta["protocol"] = protocol.name
    results.meta["protocol_description"] = f"{protocol.description} ({protocol.source})"
    scores = protocol.scores(results, dataset, source)
    if scores is None:
        return results
    summary = results.summary
    results.meta["refvps_summary"] = {
        "J": summary.J,
        "F": summary.F,
        "JF": summary.JF,
        "TempCon": summary.TempCon,
        "J_recall": summary.J_recall,
    }
    summary.J, summary.F, summary.JF = scores.J, scores.F, scores.JF
    summary.TempCon = scores.TempCon if scores.TempCon is not None else summary.TempCon
    summary.J_recall = scores.J_recall if scores.J_recall is not None else summary.J_recall
    summary.J_ci95 = summary.JF_ci95 = summary.TempCon_ci95 = None  # refvps's statistics, not the protocol's
    summary.J_concept_balanced = None
    results.meta["protocol_scores"] = {
        "J": scores.J,
        "F": scores.F,
        "JF": scores.JF,
        "TempCon": scores.TempCon,
        "J_recall": scores.J_recall,
        "group_kind": scores.group_kind,
        "groups": scores.groups,
    }
    return results


# --------------------------------------------------------------------------------------------
# Ref-DAVIS: the DAVIS 2017 unsupervised evaluation of each expression set
# --------------------------------------------------------------------------------------------


@dataclass
class _Matched:
    """One ground-truth object of one sequence and its matched prediction: per-frame J and F (0-1)."""

    clip_id: str
    gt_label: int
    exp_id: str | None  # None: matched to one of the empty predictions DAVIS pads with
    j: np.ndarray
    f: np.ndarray | None


def _run_of(expression: Expression) -> str | None:
    annotator, annotation = expression.annotator, expression.extra.get("annotation")
    if not annotator or not isinstance(annotation, str):
        return None
    return f"{annotator}/{annotation}"


def _run_summary(run: str, matched: Sequence[_Matched], boundary: bool) -> dict[str, Any]:
    """davis2017-evaluation's J-Mean, F-Mean (means over objects of each object's frame mean), on 0-100."""
    J = 100.0 * float(np.mean([np.nanmean(m.j) for m in matched]))
    F = 100.0 * float(np.mean([np.nanmean(m.f) for m in matched if m.f is not None])) if boundary else None
    return {
        "run": run,
        "J": J,
        "F": F,
        "JF": None if F is None else (J + F) / 2,
        "J_recall": 100.0 * float(np.mean([j_recall(m.j) for m in matched])),
        "TempCon": float(np.mean([temporal_consistency(m.j) for m in matched])),
        "n_objects": len(matched),
    }


def _davis_clip(clip: Clip, source: PredictionSource, boundary: bool, bound_th: float) -> dict[str, list[_Matched]]:
    """Per expression set of one sequence: its ground-truth objects, each with its matched prediction."""
    frames = clip.annotated_frames
    labels = np.stack([clip.read_label(name) for name in frames])
    void = labels == IGNORE_INDEX
    first = np.where(void[0], 0, labels[0])
    n_objects = int(first.max()) if first.size else 0  # davis.py: the objects are 1..max of the first frame
    if n_objects == 0:
        return {}
    gts = [(labels == k) & ~void for k in range(1, n_objects + 1)]
    targets = _TargetBoundaries(gts, void, bound_th) if boundary else None
    predictions = source.clip(clip.id)
    by_run: dict[str, list[str]] = defaultdict(list)
    for expression in clip.expressions:
        by_run[_run_of(expression) or ""].append(expression.exp_id)
    matched: dict[str, list[_Matched]] = {}
    for run, exp_ids in by_run.items():
        if len(exp_ids) > MAX_PROPOSALS:
            raise PredictionError(
                f"sequence {clip.id}: expression set {run} has {len(exp_ids)} expressions; the DAVIS evaluation "
                f"takes at most {MAX_PROPOSALS} predicted objects per sequence",
                hint="check the dataset's expressions",
            )
        shape = (int(labels.shape[1]), int(labels.shape[2]))
        preds = [_read_stack(predictions, e, frames, shape) for e in exp_ids]
        ids: list[str | None] = list(exp_ids) + [None] * max(0, n_objects - len(exp_ids))
        preds += [np.zeros(labels.shape, bool)] * (len(ids) - len(preds))
        matched[run] = _match(clip.id, ids, preds, gts, void, targets)
    return matched


def _read_stack(predictions: ClipPredictions, exp_id: str, frames: list[str], shape: tuple[int, int]) -> np.ndarray:
    """One expression's predicted masks over ``frames`` as (T, H, W) bool; a missing frame is empty."""
    stack = np.zeros((len(frames), *shape), bool)
    for t, frame in enumerate(frames):
        if predictions.has(exp_id, frame):
            stack[t] = np.asarray(predictions.read_raw(exp_id, frame, shape)) != 0
    return stack


class _TargetBoundaries:
    """The true boundary of every (object, frame), computed once and shared by every prediction."""

    def __init__(self, gts: list[np.ndarray], void: np.ndarray, bound_th: float):
        self.radius = bound_pixels(void.shape[1:], bound_th)
        self.keep = np.where(void, 0, 255).astype(np.uint8)
        self.gts = gts
        self._cache: dict[tuple[int, int], TargetBoundary] = {}

    def f(self, k: int, t: int, predicted: BoundaryCrop | None) -> float:
        target = self._cache.get((k, t))
        if target is None:
            target = TargetBoundary(self.gts[k][t].view(np.uint8), self.radius, binary=True)
            self._cache[(k, t)] = target
        return target.f(predicted)


def _match(
    clip_id: str,
    ids: list[str | None],
    preds: list[np.ndarray],
    gts: list[np.ndarray],
    void: np.ndarray,
    targets: _TargetBoundaries | None,
) -> list[_Matched]:
    """davis2017-evaluation ``_evaluate_unsupervised``: every prediction against every object, then the
    assignment that maximises the summed mean of J (and F) per pair."""
    valid = ~void
    n_frames = void.shape[0]
    j = np.zeros((len(preds), len(gts), n_frames))
    f = np.zeros((len(preds), len(gts), n_frames)) if targets is not None else None
    for a, pred in enumerate(preds):
        pred = pred & valid
        for k, gt in enumerate(gts):
            inter = np.count_nonzero(pred & gt, axis=(1, 2))
            union = np.count_nonzero(pred | gt, axis=(1, 2))
            j[a, k] = np.where(union == 0, 1.0, inter / np.maximum(union, 1))
        if targets is not None and f is not None:
            maps = [boundary_map(pred[t].view(np.uint8), keep=targets.keep[t]) for t in range(n_frames)]
            for k in range(len(gts)):
                f[a, k] = [targets.f(k, t, maps[t]) for t in range(n_frames)]
    scores = j.mean(axis=2) if f is None else (j.mean(axis=2) + f.mean(axis=2)) / 2
    pairs = max_assignment(scores)
    return [_Matched(clip_id, k + 1, ids[a], j[a, k], None if f is None else f[a, k]) for a, k in pairs]


def max_assignment(scores: np.ndarray) -> list[tuple[int, int]]:
    """The (row, column) pairs, one per row or column (whichever are fewer), that maximise the summed
    score, sorted by row: ``scipy.optimize.linear_sum_assignment(-scores)`` without scipy.

    The Hungarian method with potentials (shortest augmenting paths), O(n^2 m) for n <= m.
    """
    scores = np.asarray(scores, dtype=np.float64)
    transposed = scores.shape[0] > scores.shape[1]
    cost = -(scores.T if transposed else scores)
    n, m = cost.shape
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    owner = np.zeros(m + 1, int)  # owner[j]: the row (1-based) assigned to column j; column 0 is a sentinel
    for row in range(1, n + 1):
        owner[0] = row
        way = np.zeros(m + 1, int)
        minv = np.full(m + 1, math.inf)
        used = np.zeros(m + 1, bool)
        col = 0
        while owner[col] != 0:
            used[col] = True
            current = owner[col]
            reduced = cost[current - 1] - u[current] - v[1:]
            better = ~used[1:] & (reduced < minv[1:])
            minv[1:][better] = reduced[better]
            way[1:][better] = col
            free = np.flatnonzero(~used[1:]) + 1
            nxt = free[np.argmin(minv[free])]
            delta = minv[nxt]
            u[owner[used]] += delta
            v[used] -= delta
            minv[~used] -= delta
            col = nxt
        while col:
            previous = way[col]
            owner[col] = owner[previous]
            col = previous
    pairs = [(int(owner[c]) - 1, c - 1) for c in range(1, m + 1) if owner[c]]
    if transposed:
        pairs = [(c, r) for r, c in pairs]
    return sorted(pairs)
