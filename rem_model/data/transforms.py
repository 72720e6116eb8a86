"""Geometry between a frame and the model's input, and the pixel conversions REM uses.

Two ways to fit a frame to the model resolution:

* ``squash`` — resize to the model's height × width, ignoring the aspect ratio (the authors resize
  everything to 512 × 512);
* ``pad`` — resize to fit inside, keeping the aspect ratio, and pad the rest (letterbox); the
  prediction is cropped back to the content box before it is resized to the frame.

and two resampling filters (the configuration's ``resample``): ``bilinear`` is PIL's bilinear filter
(antialiased when shrinking), which is what the authors' ``torchvision.transforms.Resize`` does to
PIL images; ``area`` is OpenCV's area filter when shrinking and bilinear when growing.

Frames become float tensors in [−1, 1] (``(x / 127.5) − 1``, the authors' ``Normalize(0.5, 0.5)``);
masks floats in {0, 1}.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import torch
from PIL import Image

from rem_model.config import RESAMPLES

Aspect = Literal["squash", "pad"]
ASPECTS = ("squash", "pad")


@dataclass(frozen=True)
class Geometry:
    """How a ``src`` frame maps into the ``dst`` model input: the content box inside ``dst``."""

    src_size: tuple[int, int]  # (height, width) of the frame
    dst_size: tuple[int, int]  # (height, width) of the model input
    box: tuple[int, int, int, int]  # (top, left, height, width) of the frame's content in dst
    resample: str = "bilinear"  # "bilinear" (PIL, the authors') or "area" (OpenCV)

    @classmethod
    def fit(
        cls,
        src_size: tuple[int, int],
        dst_size: tuple[int, int],
        aspect: Aspect = "squash",
        resample: str = "bilinear",
    ) -> "Geometry":
        if aspect not in ASPECTS:
            raise ValueError(f"aspect must be one of {ASPECTS}, got {aspect!r}")
        if resample not in RESAMPLES:
            raise ValueError(f"resample must be one of {RESAMPLES}, got {resample!r}")
        src_h, src_w = src_size
        dst_h, dst_w = dst_size
        if aspect == "squash":
            return cls(src_size, dst_size, (0, 0, dst_h, dst_w), resample)
        scale = min(dst_h / src_h, dst_w / src_w)
        h = max(1, min(dst_h, round(src_h * scale)))
        w = max(1, min(dst_w, round(src_w * scale)))
        return cls(src_size, dst_size, ((dst_h - h) // 2, (dst_w - w) // 2, h, w), resample)


def _resize(image: np.ndarray, size_hw: tuple[int, int], resample: str) -> np.ndarray:
    """Resize a uint8 (H, W, 3) frame or a float32 (H, W) mask to ``size_hw`` = (height, width)."""
    h, w = size_hw
    if image.shape[:2] == (h, w):
        return image
    if resample == "bilinear":
        # PIL's own filter on PIL images, as torchvision's Resize does (uint8 frames stay uint8).
        return np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.BILINEAR))
    smaller = h * w < image.shape[0] * image.shape[1]
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if smaller else cv2.INTER_LINEAR)


def frame_to_model(rgb: np.ndarray, geometry: Geometry) -> np.ndarray:
    """An (H, W, 3) uint8 frame placed into the model input, as float32 (h, w, 3) in [−1, 1]."""
    top, left, h, w = geometry.box
    content = _resize(rgb, (h, w), geometry.resample).astype(np.float32) / 127.5 - 1.0
    if (h, w) == geometry.dst_size:
        return content
    canvas = np.zeros((*geometry.dst_size, 3), np.float32)  # 0 is mid-grey in [−1, 1]
    canvas[top : top + h, left : left + w] = content
    return canvas


def mask_to_model(mask: np.ndarray, geometry: Geometry) -> np.ndarray:
    """A float mask (H, W) in [0, 1] placed into the model input; resized with the frame's filter, so
    soft at edges (the authors resize masks with the nearest neighbour: see docs/REM.md)."""
    top, left, h, w = geometry.box
    content = _resize(np.ascontiguousarray(mask, dtype=np.float32), (h, w), geometry.resample)
    if (h, w) == geometry.dst_size:
        return content
    canvas = np.zeros(geometry.dst_size, np.float32)
    canvas[top : top + h, left : left + w] = content
    return canvas


def probs_to_frame(probs: torch.Tensor, geometry: Geometry) -> torch.Tensor:
    """Soft masks ``(..., h, w)`` at the model resolution back to the frame size (crop, bilinear)."""
    from rem_model.codec import resize_probs

    top, left, h, w = geometry.box
    return resize_probs(probs[..., top : top + h, left : left + w], geometry.src_size)


def frames_tensor(frames: list[np.ndarray], geometry: Geometry) -> torch.Tensor:
    """A list of (H, W, 3) uint8 frames as a ``(T, 3, h, w)`` float tensor in [−1, 1]."""
    stack = np.stack([frame_to_model(f, geometry) for f in frames])
    return torch.from_numpy(stack).permute(0, 3, 1, 2).contiguous()


def masks_tensor(masks: list[np.ndarray], geometry: Geometry, *, binarize: bool = True) -> torch.Tensor:
    """A list of (H, W) masks in [0, 1] as a ``(T, h, w)`` float tensor (thresholded at 0.5)."""
    stack = np.stack([mask_to_model(m, geometry) for m in masks])
    if binarize:
        stack = (stack > 0.5).astype(np.float32)
    return torch.from_numpy(stack)
