"""Segmenters behind one small interface, and the builder that picks one.

=========  =====================================================  ============================
name       what                                                   weights
=========  =====================================================  ============================
classic    GrabCut from clicks + optical-flow propagation         none (works anywhere)
sam2       Meta's ``sam2`` package, ``SAM2VideoPredictor``       a ``.pt`` checkpoint + Hydra config name
hf-sam2    transformers ``Sam2VideoModel`` + ``Sam2VideoProcessor``  a Hugging Face folder (or hub id)
=========  =====================================================  ============================
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from refvps.annotate.segmenters.base import Segmenter, SegmenterInfo, SegmenterSession
from refvps.errors import UsageError

SEGMENTER_NAMES = ("classic", "sam2", "hf-sam2")


def _build_classic(checkpoint, config, device, options) -> Segmenter:
    from refvps.annotate.segmenters.classic import ClassicSegmenter

    if checkpoint is not None:
        raise UsageError(
            "the classic segmenter uses no checkpoint", hint="drop --checkpoint, or pick --segmenter sam2 / hf-sam2"
        )
    return ClassicSegmenter(**options)


def _build_sam2(checkpoint, config, device, options) -> Segmenter:
    from refvps.annotate.segmenters.sam2_meta import Sam2Segmenter

    return Sam2Segmenter.build(checkpoint, config=config, device=device, **options)


def _build_hf(checkpoint, config, device, options) -> Segmenter:
    from refvps.annotate.segmenters.hf_sam2 import HfSam2Segmenter

    if config is not None:
        raise UsageError(
            "--sam2-config applies to --segmenter sam2 only",
            hint="a Hugging Face checkpoint folder carries its own config.json",
        )
    return HfSam2Segmenter.build(checkpoint, device=device, **options)


BUILDERS: dict[str, Callable[..., Segmenter]] = {
    "classic": _build_classic,
    "sam2": _build_sam2,
    "hf-sam2": _build_hf,
}


def guess_segmenter(checkpoint: str | Path | None) -> str:
    """The segmenter a checkpoint is for: a ``.pt``/``.pth`` file -> sam2, a folder or hub id -> hf-sam2."""
    if checkpoint is None:
        return "classic"
    path = Path(checkpoint)
    if path.suffix in (".pt", ".pth", ".ckpt"):
        return "sam2"
    return "hf-sam2"


def build_segmenter(
    name: str | None,
    checkpoint: str | Path | None = None,
    *,
    config: str | None = None,
    device: str = "auto",
    **options,
) -> Segmenter:
    """Build a segmenter by name (``None``: guessed from the checkpoint; classic without one)."""
    name = name or guess_segmenter(checkpoint)
    if name not in BUILDERS:
        raise UsageError(f"unknown segmenter {name!r}", hint=f"use one of: {', '.join(SEGMENTER_NAMES)}")
    return BUILDERS[name](checkpoint, config, device, options)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` if a GPU is visible, else ``mps`` on Apple silicon, else ``cpu``."""
    import torch

    if device != "auto":
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise UsageError(f"device {device} asked for, but PyTorch sees no CUDA GPU", hint="use --device cpu")
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


__all__ = [
    "SEGMENTER_NAMES",
    "Segmenter",
    "SegmenterInfo",
    "SegmenterSession",
    "build_segmenter",
    "guess_segmenter",
    "resolve_device",
]
