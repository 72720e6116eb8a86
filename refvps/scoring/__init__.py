"""Scoring Ref-VPS predictions: metrics, prediction readers, the streaming scorer and results.

* :mod:`refvps.scoring.metrics`: J (:func:`jaccard`), boundary F (:func:`boundary_f`),
  :func:`temporal_consistency`, :func:`j_recall`: pure numpy over the last two axes, equal to the
  DAVIS 2017 evaluator's ``db_eval_iou`` / ``f_measure`` with Ignore as void.
* :mod:`refvps.predictions.readers`: :func:`open_predictions` for PNG trees, zips and COCO-RLE JSON
  (re-exported here for convenience).
* :func:`evaluate`: the whole dataset, with breakdowns and bootstrap intervals, as :class:`Results`.
"""

from refvps.predictions.masks import decode_mask_png, rle_counts
from refvps.predictions.readers import FORMAT_PNG_TREE, FORMAT_RLE, FORMAT_ZIP, PredictionSource, open_predictions
from refvps.scoring.evaluate import evaluate, open_dataset, plan_scoring
from refvps.scoring.metrics import (
    BOUND_TH,
    RECALL_THRESHOLD,
    bound_pixels,
    boundary_f,
    boundary_map,
    disk,
    iou_from_counts,
    j_recall,
    jaccard,
    temporal_consistency,
)
from refvps.scoring.results import (
    Coverage,
    ExpressionResult,
    GroupResult,
    Results,
    Summary,
    bootstrap_ci,
)

__all__ = [
    "BOUND_TH",
    "FORMAT_PNG_TREE",
    "FORMAT_RLE",
    "FORMAT_ZIP",
    "RECALL_THRESHOLD",
    "Coverage",
    "ExpressionResult",
    "GroupResult",
    "PredictionSource",
    "Results",
    "Summary",
    "bootstrap_ci",
    "bound_pixels",
    "boundary_f",
    "boundary_map",
    "decode_mask_png",
    "disk",
    "evaluate",
    "iou_from_counts",
    "j_recall",
    "jaccard",
    "open_dataset",
    "open_predictions",
    "plan_scoring",
    "rle_counts",
    "temporal_consistency",
]
