"""Predictions: the PNG-tree writer every baseline uses, the readers behind ``refvps evaluate``
(PNG trees, zips, COCO-RLE JSON) and the ``run.json`` record of a run (``docs/FORMAT.md``)."""

from refvps.predictions.masks import check_rle, decode_mask_png, rle_counts
from refvps.predictions.readers import (
    FORMAT_PNG_TREE,
    FORMAT_RLE,
    FORMAT_ZIP,
    ClipPredictions,
    PngTreeSource,
    PredictionSource,
    RleSource,
    ZipSource,
    open_predictions,
)
from refvps.predictions.writer import PredictionWriter, check_prediction_folder, done_clips, encode_binary_png

__all__ = [
    "FORMAT_PNG_TREE",
    "FORMAT_RLE",
    "FORMAT_ZIP",
    "ClipPredictions",
    "PngTreeSource",
    "PredictionSource",
    "PredictionWriter",
    "RleSource",
    "ZipSource",
    "check_prediction_folder",
    "check_rle",
    "decode_mask_png",
    "done_clips",
    "encode_binary_png",
    "open_predictions",
    "rle_counts",
]
