"""The bundle's scoring program: score one Codabench submission with refvps (docs/HOSTING.md, "Scoring").

Codabench's compute worker runs ``python3 -m refvps codabench-score /app/input /app/output --config
/app/program/config.json`` in the competition's image, with the phase's reference data unzipped in
``/app/input/ref`` (masks, ``meta_expressions.json``, ``clips.json``; no frames) and the submission in
``/app/input/res``. It reads ``/app/output/scores.json`` back, one number per leaderboard column,
and shows ``/app/output/detailed_results.html`` to the participant.

:func:`score_submission` checks the submission (:mod:`refvps.codabench.submission`), scores it with
:func:`refvps.scoring.evaluate` exactly as ``refvps evaluate`` would, and writes ``results.json``, the
detailed page, and ``scores.json`` last: a submission that fails leaves no scores, so Codabench
marks it failed and shows the error (on stderr, and on the detailed page).

How much the detailed page shows is the phase's choice, read from ``ref/refvps_phase.json``: every
phase shows the summary and the per-category and per-concept tables, but per-clip scores (on the
page and in ``results.json``) only where the bundle allows them, by default the development phase
alone, so that a hidden split's scores cannot be tuned clip by clip (``--test-per-clip`` allows them).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from refvps import __version__
from refvps.codabench.competition import COLUMNS
from refvps.codabench.detailed import error_page, pending_page, results_page
from refvps.codabench.submission import SubmissionLimits, check_complete, inspect_submission, locate_predictions
from refvps.dataset import EXPRESSIONS_FILE, MASKS_DIR, Dataset
from refvps.errors import ConfigError, DatasetError, RefvpsError
from refvps.fileio import atomic_write_json, atomic_write_text, read_json
from refvps.predictions import open_predictions
from refvps.scoring import Results, evaluate
from refvps.scoring.protocols import DEFAULT_PROTOCOL

log = logging.getLogger(__name__)

CONFIG_FORMAT = "refvps-codabench-scoring/1"
SCORES_FILE = "scores.json"
DETAILED_FILE = "detailed_results.html"
RESULTS_FILE = "results.json"
PHASE_FILE = "refvps_phase.json"  # in each phase's reference data: what its detailed results show


@dataclass(frozen=True)
class ScoringConfig:
    """How the scoring program scores (the bundle's ``scoring_program/config.json``)."""

    refvps_version: str
    limits: SubmissionLimits
    title: str = "refvps benchmark"
    bootstrap: int = 1000
    seed: int = 0
    workers: int = 1

    def to_json(self) -> dict[str, Any]:
        return {
            "format": CONFIG_FORMAT,
            "refvps_version": self.refvps_version,
            "title": self.title,
            "bootstrap": self.bootstrap,
            "seed": self.seed,
            "workers": self.workers,
            "limits": self.limits.to_json(),
        }

    @classmethod
    def read(cls, path: str | Path) -> ScoringConfig:
        path = Path(path)
        data = read_json(path, what="scoring program configuration")
        if not isinstance(data, dict) or data.get("format") != CONFIG_FORMAT:
            raise ConfigError(
                f"{path} is not a refvps scoring configuration ({CONFIG_FORMAT})",
                hint="rebuild the bundle with: refvps codabench ROOT --out bundle.zip",
                path=path,
            )
        try:
            return cls(
                refvps_version=str(data["refvps_version"]),
                limits=SubmissionLimits(**data["limits"]),
                title=str(data.get("title", cls.title)),
                bootstrap=int(data.get("bootstrap", 1000)),
                seed=int(data.get("seed", 0)),
                workers=int(data.get("workers", 1)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"{path} is incomplete or malformed: {exc}",
                hint="rebuild the bundle with: refvps codabench ROOT --out bundle.zip",
                path=path,
            ) from None


def check_version(config: ScoringConfig) -> None:
    """The image must run the refvps the bundle was built with: another version may score differently."""
    if config.refvps_version != __version__:
        raise ConfigError(
            f"this image has refvps {__version__}, but the bundle was built for refvps {config.refvps_version}",
            hint=f"use an image with refvps=={config.refvps_version} (docker/Dockerfile), or rebuild the bundle "
            "with the refvps the image has",
        )


@dataclass(frozen=True)
class PhaseDetails:
    """What a phase's detailed results show (its reference data's ``refvps_phase.json``)."""

    phase: str = ""
    per_clip: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"phase": self.phase, "per_clip": self.per_clip}

    @classmethod
    def read(cls, ref: Path) -> PhaseDetails:
        """The phase file of the reference data ``ref``; without one (a bundle of an earlier refvps),
        everything is shown, as it was."""
        path = ref / PHASE_FILE
        if not path.is_file():
            return cls()
        data = read_json(path, what="phase settings of the reference data")
        if not isinstance(data, dict) or not isinstance(data.get("per_clip"), bool):
            raise ConfigError(
                f"{path} does not say whether per-clip scores are shown ('per_clip': true or false)",
                hint="rebuild the bundle with: refvps codabench ROOT --out bundle.zip",
                path=path,
            )
        return cls(str(data.get("phase", "")), data["per_clip"])


def open_reference(ref: Path) -> Dataset:
    if not (ref / EXPRESSIONS_FILE).is_file() or not (ref / MASKS_DIR).is_dir():
        raise DatasetError(
            f"the reference data in {ref} has no {EXPRESSIONS_FILE} or {MASKS_DIR}/",
            hint="the task's reference_data must be the folder refvps codabench wrote (reference_data_<phase>)",
            path=ref,
        )
    return Dataset(ref)


def leaderboard_scores(results: Results) -> dict[str, float]:
    """One number per leaderboard column, from the results' summary (what ``scores.json`` holds)."""
    scores = {}
    for column in COLUMNS:
        value = getattr(results.summary, column.key)
        if value is None or not math.isfinite(value):
            raise RefvpsError(
                f"the score {column.key} is {value!r}; Codabench stores finite numbers only",
                hint="this is a bug in refvps: report it with the submission",
            )
        scores[column.key] = float(value)
    return scores


def score_submission(input_dir: str | Path, output_dir: str | Path, config: ScoringConfig) -> dict[str, float]:
    """Score ``input_dir/res`` against ``input_dir/ref``; write the outputs to ``output_dir``.

    Returns the leaderboard scores. Raises :class:`RefvpsError` (after writing the error to the
    detailed page) for anything that stops the submission from being scored.
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output_dir / DETAILED_FILE, pending_page(config.title))
    try:
        check_version(config)
        dataset = open_reference(input_dir / "ref")
        details = PhaseDetails.read(input_dir / "ref")
        res = input_dir / "res"
        inspect_submission(res, config.limits)
        location = locate_predictions(res, dataset, config.limits)
        log.info("predictions found at %s", location.relative_to(input_dir))
        source = open_predictions(location)
        check_complete(source, dataset)
        results = evaluate(
            source,
            dataset,
            boundary=True,
            workers=config.workers,
            bootstrap=config.bootstrap,
            seed=config.seed,
            validate=False,  # the reference data has no frames; the bundle validated its split when built
            gt_cache=False,
            protocol=DEFAULT_PROTOCOL,  # the leaderboard's columns are Ref-VPS's (the bundle refuses other protocols)
        )
        scores = leaderboard_scores(results)
    except RefvpsError as exc:
        atomic_write_text(output_dir / DETAILED_FILE, error_page(config.title, exc))
        raise
    if details.per_clip:  # results.json holds per-clip and per-expression scores
        results.write_json(output_dir / RESULTS_FILE)
    atomic_write_text(output_dir / DETAILED_FILE, results_page(config.title, results, per_clip=details.per_clip))
    atomic_write_json(output_dir / SCORES_FILE, scores)
    return scores
