"""Scores as data: per expression, per clip, per concept, per category, the summary, and the file formats.

:meth:`Results.to_json` is the ``results.json`` document (``docs/FORMAT.md`` lists every key), and
:meth:`Results.write_csv` its one-row-per-expression CSV. Every score is on the 0-100 scale; without
the boundary measure F and JF are null. Aggregation (``docs/METRICS.md``): dataset J/F/TempCon/J-recall
are means over all (clip, expression) pairs; a clip's score is the mean over its expressions; a
concept's or category's the mean over its clips; the concept-balanced J is the mean over concepts;
the 95% intervals resample clips.
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence, TypeVar, cast

import numpy as np

from refvps.fileio import atomic_write_json, atomic_write_text


@dataclass
class ExpressionResult:
    """Scores of one (clip, expression): J, F, TempCon, J-recall on the 0-100 scale."""

    video: str
    exp_id: str
    J: float
    F: float | None
    TempCon: float
    J_recall: float
    n_frames: int
    n_missing: int
    obj_id: int | list[int] = 1  # a list when the target is the union of several labels
    concept: str | None = None
    category: str | None = None
    expression: str = ""
    iou: np.ndarray | None = field(default=None, repr=False, compare=False)  # per frame, 0-1
    f: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "video": self.video,
            "exp_id": self.exp_id,
            "J": self.J,
            "F": self.F,
            "TempCon": self.TempCon,
            "J_recall": self.J_recall,
            "n_frames": self.n_frames,
            "n_missing": self.n_missing,
            "obj_id": self.obj_id,
            "concept": self.concept,
            "category": self.category,
            "expression": self.expression,
        }


@dataclass
class GroupResult:
    """Scores of a group of expressions: a clip, a concept or a category (0-100 scale)."""

    key: str | None
    J: float
    F: float | None
    TempCon: float
    J_recall: float
    n_clips: int
    n_expressions: int
    n_frames: int
    n_missing: int
    category: str | None = None
    concept: str | None = None
    n_concepts: int | None = None


@dataclass
class Summary:
    J: float
    F: float | None
    JF: float | None
    TempCon: float
    J_recall: float
    J_ci95: list[float] | None
    J_concept_balanced: float | None  # None under a protocol other than refvps (refvps.scoring.protocols)
    n_clips: int
    n_expressions: int
    n_frames: int
    n_missing_frames: int
    n_concepts: int = 0
    n_categories: int = 0
    JF_ci95: list[float] | None = None
    TempCon_ci95: list[float] | None = None
    n_clip_frames: int = 0
    n_missing_expressions: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Coverage:
    """Which predictions were there: missing items were scored empty, unknown ones not at all."""

    missing_frames: int = 0
    missing_expressions: list[dict[str, str]] = field(default_factory=list)  # entirely absent
    clips_with_missing: list[str] = field(default_factory=list)
    missing_per_clip: dict[str, int] = field(default_factory=dict)
    missing_frame_examples: list[dict[str, str]] = field(default_factory=list)  # the first few, by name
    unknown_clips: list[str] = field(default_factory=list)
    unknown_expressions: list[dict[str, str]] = field(default_factory=list)
    unknown_frames: int = 0
    unknown_frame_examples: list[dict[str, str]] = field(default_factory=list)
    ignored_files: int = 0

    @property
    def has_missing(self) -> bool:
        return self.missing_frames > 0

    @property
    def has_unknown(self) -> bool:
        return bool(self.unknown_clips or self.unknown_expressions or self.unknown_frames)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Results:
    """Everything ``refvps evaluate`` computes; :meth:`to_json` gives the ``results.json`` document."""

    summary: Summary
    per_expression: list[ExpressionResult]
    per_clip: list[GroupResult]
    per_concept: list[GroupResult]
    per_category: list[GroupResult]
    coverage: Coverage
    meta: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "summary": self.summary.to_json(),
            "per_expression": [e.to_json() for e in self.per_expression],
            "per_clip": [_clip_json(g) for g in self.per_clip],
            "per_concept": [_concept_json(g) for g in self.per_concept],
            "per_category": [_category_json(g) for g in self.per_category],
            "coverage": self.coverage.to_json(),
            "meta": self.meta,
        }

    def write_json(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.to_json())

    def write_csv(self, path: str | Path) -> Path:
        """One row per (clip, expression), for spreadsheets."""
        return atomic_write_text(path, per_expression_csv(self.per_expression))


PER_EXPRESSION_COLUMNS = (
    "video",
    "exp_id",
    "concept",
    "category",
    "J",
    "F",
    "TempCon",
    "J_recall",
    "n_frames",
    "n_missing",
    "expression",
)


def per_expression_csv(rows: Sequence[ExpressionResult]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PER_EXPRESSION_COLUMNS)
    for row in rows:
        data = row.to_json()
        writer.writerow(["" if data[c] is None else data[c] for c in PER_EXPRESSION_COLUMNS])
    return buffer.getvalue()


def _scores(group: GroupResult) -> dict[str, Any]:
    return {
        "J": group.J,
        "F": group.F,
        "TempCon": group.TempCon,
        "J_recall": group.J_recall,
        "n_clips": group.n_clips,
        "n_expressions": group.n_expressions,
        "n_frames": group.n_frames,
        "n_missing": group.n_missing,
    }


def _clip_json(group: GroupResult) -> dict[str, Any]:
    data = {"video": group.key, "concept": group.concept, "category": group.category, **_scores(group)}
    data.pop("n_clips")
    return data


def _concept_json(group: GroupResult) -> dict[str, Any]:
    return {"concept": group.key, "category": group.category, **_scores(group)}


def _category_json(group: GroupResult) -> dict[str, Any]:
    return {"category": group.key, "n_concepts": group.n_concepts, **_scores(group)}


# --------------------------------------------------------------------------------------------
# Aggregation
# --------------------------------------------------------------------------------------------


_T = TypeVar("_T")


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def _mean_or_none(values: Sequence[float | None]) -> float | None:
    if not values or any(v is None for v in values):
        return None
    return _mean([v for v in values if v is not None])


def _group(
    key: str | None,
    members: Sequence[ExpressionResult] | Sequence[GroupResult],
    *,
    n_clips: int,
    n_expressions: int,
    **extra: Any,
) -> GroupResult:
    """The mean scores of ``members`` (expressions of a clip, or clips of a group), and their counts."""
    return GroupResult(
        key=key,
        J=_mean([m.J for m in members]),
        F=_mean_or_none([m.F for m in members]),
        TempCon=_mean([m.TempCon for m in members]),
        J_recall=_mean([m.J_recall for m in members]),
        n_clips=n_clips,
        n_expressions=n_expressions,
        n_frames=sum(m.n_frames for m in members),
        n_missing=sum(m.n_missing for m in members),
        **extra,
    )


def _by(items: Iterable[_T], attribute: str) -> list[tuple[Any, list[_T]]]:
    """``items`` grouped by an attribute, groups sorted by its value (None last)."""
    groups: dict[Any, list[_T]] = defaultdict(list)
    for item in items:
        groups[getattr(item, attribute)].append(item)
    return [(key, groups[key]) for key in sorted(groups, key=lambda k: (k is None, k or ""))]


def aggregate_clips(expressions: Sequence[ExpressionResult]) -> list[GroupResult]:
    """Per clip: the mean over its expressions; ``n_frames`` counts scored masks (frames x expressions)."""
    return [
        _group(clip_id, rows, n_clips=1, n_expressions=len(rows), concept=rows[0].concept, category=rows[0].category)
        for clip_id, rows in _by(expressions, "video")
    ]


def _of_clips(key: str | None, clips: list[GroupResult], **extra: Any) -> GroupResult:
    return _group(key, clips, n_clips=len(clips), n_expressions=sum(c.n_expressions for c in clips), **extra)


def aggregate_concepts(clips: Sequence[GroupResult]) -> list[GroupResult]:
    """Per concept: the mean over its clips (a concept's category is its clips' most common one)."""
    groups = []
    for concept, members in _by(clips, "concept"):
        categories = Counter(c.category for c in members)
        category = sorted(categories.items(), key=lambda kv: (-kv[1], kv[0] is None, kv[0] or ""))[0][0]
        groups.append(_of_clips(concept, members, category=category))
    return groups


def aggregate_categories(clips: Sequence[GroupResult]) -> list[GroupResult]:
    """Per category: the mean over the clips in it."""
    return [
        _of_clips(category, members, n_concepts=len({c.concept for c in members}))
        for category, members in _by(clips, "category")
    ]


def bootstrap_estimates(per_clip_values: Sequence[Sequence[float]], n_resamples: int, seed: int) -> np.ndarray:
    """The bootstrap distribution of the mean over expressions, resampling **clips**.

    ``per_clip_values[c]`` lists clip c's per-expression values. Each resample draws as many clips as
    there are, with replacement, and averages every expression of the drawn clips (each expression
    counts once per draw, as in the dataset mean), because the expressions of one clip are not
    independent. Seeded (numpy PCG64), so reruns give the same numbers.
    """
    sums = np.array([float(np.sum(v)) for v in per_clip_values])
    counts = np.array([len(v) for v in per_clip_values], dtype=np.float64)
    rng = np.random.default_rng(seed)
    n_clips = len(sums)
    estimates = np.empty(n_resamples)
    batch = max(1, 2_000_000 // max(n_clips, 1))  # bound the index matrix's memory
    for start in range(0, n_resamples, batch):
        stop = min(start + batch, n_resamples)
        draws = rng.integers(0, n_clips, size=(stop - start, n_clips))
        estimates[start:stop] = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    return estimates


def bootstrap_ci(
    per_clip_values: Sequence[Sequence[float]], n_resamples: int, seed: int, level: float = 0.95
) -> list[float] | None:
    """Percentile bootstrap interval (default 95%) of the mean over expressions, resampling clips
    (:func:`bootstrap_estimates`). None when disabled (``n_resamples == 0``) or without clips."""
    if n_resamples <= 0 or not per_clip_values:
        return None
    estimates = bootstrap_estimates(per_clip_values, n_resamples, seed)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(estimates, [tail, 100.0 - tail])
    return [float(low), float(high)]


def summarise(
    expressions: Sequence[ExpressionResult],
    clips: Sequence[GroupResult],
    concepts: Sequence[GroupResult],
    categories: Sequence[GroupResult],
    *,
    bootstrap: int,
    seed: int,
    n_clip_frames: int,
    n_missing_expressions: int,
) -> Summary:
    J = _mean([e.J for e in expressions])
    F = _mean_or_none([e.F for e in expressions])
    ordered = [rows for _, rows in _by(expressions, "video")]  # the expressions of each clip
    J_ci = bootstrap_ci([[e.J for e in rows] for rows in ordered], bootstrap, seed)
    JF_ci = None
    if F is not None:
        # F is not None, so every expression has one
        JF_ci = bootstrap_ci([[(e.J + cast(float, e.F)) / 2 for e in rows] for rows in ordered], bootstrap, seed)
    TempCon_ci = bootstrap_ci([[e.TempCon for e in rows] for rows in ordered], bootstrap, seed)
    return Summary(
        J=J,
        F=F,
        JF=None if F is None else (J + F) / 2,
        TempCon=_mean([e.TempCon for e in expressions]),
        J_recall=_mean([e.J_recall for e in expressions]),
        J_ci95=J_ci,
        J_concept_balanced=_mean([c.J for c in concepts]),
        n_clips=len(clips),
        n_expressions=len(expressions),
        n_frames=sum(e.n_frames for e in expressions),
        n_missing_frames=sum(e.n_missing for e in expressions),
        n_concepts=len(concepts),
        n_categories=len(categories),
        JF_ci95=JF_ci,
        TempCon_ci95=TempCon_ci,
        n_clip_frames=n_clip_frames,
        n_missing_expressions=n_missing_expressions,
    )
