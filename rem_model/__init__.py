"""REM, "Refer Everything with diffusion Models": the reference implementation behind Ref-VPS.

A text-to-video diffusion model kept whole (denoiser, VAE, text encoder) and fine-tuned to output
the latent of the referred mask instead of noise (paper §3.3, appendix C.2).

>>> from rem_model import build_rem, predict_dataset
>>> model = build_rem("rem-tiny")                               # shipped tiny weights, CPU
>>> predict_dataset(model, "data/synthetic", "preds/rem-tiny")  # doctest: +SKIP

Configurations: :data:`rem_model.config.CONFIGS` (``rem-ms``, ``rem-wan-1.3b``, ``rem-wan-14b``,
``rem-tiny``, ``rem-wan-tiny``). Training: :mod:`rem_model.train`.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

# Imports are lazy so that ``import rem_model`` stays cheap (no torch until a model is built).
_EXPORTS = {
    "REMConfig": "rem_model.config",
    "CONFIGS": "rem_model.config",
    "get_config": "rem_model.config",
    "list_configs": "rem_model.config",
    "build_rem": "rem_model.builder",
    "REMModel": "rem_model.model",
    "LoraSettings": "rem_model.model",
    "MaskCodec": "rem_model.codec",
    "save_checkpoint": "rem_model.checkpoints",
    "inspect_checkpoint": "rem_model.checkpoints",
    "InferenceOptions": "rem_model.inference",
    "predict_dataset": "rem_model.inference",
    "predict_clip": "rem_model.inference",
    "TrainConfig": "rem_model.train",
    "load_train_config": "rem_model.train",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'rem_model' has no attribute {name!r}")
