"""Hosting a refvps benchmark on Codabench, with hidden test ground truth (docs/HOSTING.md).

* :func:`build_bundle` (``refvps codabench``) writes a competition bundle: ``competition.yaml``, pages,
  the scoring program, each split's reference data, public data and a starting kit, refusing to
  build when participants could download a test mask.
* :func:`score_submission` (``refvps codabench-score``) is what the bundle's scoring program runs on
  Codabench's compute worker: it checks a submission, scores it like ``refvps evaluate`` and writes
  ``scores.json`` and ``detailed_results.html``.
"""

from refvps.codabench.build import BundleOptions, BundleReport, build_bundle
from refvps.codabench.competition import COLUMNS, CompetitionSettings, PhaseLimits
from refvps.codabench.leak import BundleLeakError
from refvps.codabench.scoring import ScoringConfig, score_submission
from refvps.codabench.splits import SPLIT_FIELD, Split, SplitPlan, resolve_splits
from refvps.codabench.submission import SubmissionLimits

__all__ = [
    "COLUMNS",
    "SPLIT_FIELD",
    "BundleLeakError",
    "BundleOptions",
    "BundleReport",
    "CompetitionSettings",
    "PhaseLimits",
    "ScoringConfig",
    "Split",
    "SplitPlan",
    "SubmissionLimits",
    "build_bundle",
    "resolve_splits",
    "score_submission",
]
