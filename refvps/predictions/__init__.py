"""Predictions: the PNG-tree writer every baseline uses, and the readers behind ``refvps evaluate``.

The readers live in :mod:`refvps.scoring.readers` and are re-exported here lazily (importing the
writer does not import the scorer).
"""

from refvps.predictions.writer import PredictionWriter, check_prediction_folder, done_clips, encode_binary_png

_READERS = ("PredictionSource", "ClipPredictions", "open_predictions", "decode_mask_png", "check_rle", "rle_counts")

__all__ = ["PredictionWriter", "check_prediction_folder", "done_clips", "encode_binary_png", *_READERS]


def __getattr__(name: str):
    if name in _READERS:
        from refvps.scoring import readers

        return getattr(readers, name)
    raise AttributeError(f"module 'refvps.predictions' has no attribute {name!r}")
