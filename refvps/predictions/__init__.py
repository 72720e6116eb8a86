"""Predictions: the PNG-tree writer every baseline uses, and the readers behind ``refvps evaluate``."""

from refvps.predictions.writer import PredictionWriter, encode_binary_png

__all__ = ["PredictionWriter", "encode_binary_png"]
