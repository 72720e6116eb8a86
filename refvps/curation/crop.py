"""Padding detection: letterbox and pillarbox bars (an OpenCV/numpy equivalent of ffmpeg ``cropdetect``).

ffmpeg's ``cropdetect`` works on luma: a line is black when its mean luma is at most ``limit``
(24 of 255), and the content box is the union, over the frames it sees, of the non-black boxes.
Phone videos are also padded with white or coloured bars, so here a row (or column) is padding
when, in every sampled frame, its luma is *uniform* (spread along the line <= ``flat_tol``) and
*static* (its mean stays within ``flat_tol`` of its median over time) -- black bars are one case.
Luma, not RGB, because 4:2:0 chroma is upsampled across the bar edge when decoding, which tints the
two bar lines next to the picture. Only bands touching the border count; rows are found first,
then columns inside the remaining rows. A content region that is uniform and static along a whole
border line (a flat overexposed sky) looks the same as a bar; the review decisions can override a
clip's crop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class CropParams:
    flat_tol: float = 4.0  # max luma spread (std) along a padding line, and max drift of its mean over time
    min_content: float = 0.25  # a box smaller than this fraction of a side means "do not crop" that side
    round: int = 1  # make width and height multiples of this (ffmpeg's default is 16; exact here)


def _padding_lines(frames: Sequence[np.ndarray], axis: int, tol: float) -> np.ndarray:
    """Boolean per line telling whether it is padding in every frame.

    ``frames`` are (H, W, 3) RGB arrays; ``axis`` is the image axis reduced over (1: rows, 0: columns).
    Frames are reduced one at a time, so memory stays at one float frame.
    """
    spreads, means = [], []
    for frame in frames:
        luma = _luma(frame)
        spreads.append(luma.std(axis=axis))  # (L,)
        means.append(luma.mean(axis=axis))
    spread, mean = np.stack(spreads), np.stack(means)  # (T, L)
    uniform = (spread <= tol).all(axis=0)
    drift = np.abs(mean - np.median(mean, axis=0, keepdims=True)).max(axis=0)
    return uniform & (drift <= tol)


def _luma(frame: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB frame (what the decoder had before converting to RGB), float32."""
    data = np.asarray(frame, dtype=np.float32)
    if data.ndim == 2:
        return data
    return data[..., 0] * 0.299 + data[..., 1] * 0.587 + data[..., 2] * 0.114


def _content_span(padding: np.ndarray) -> tuple[int, int]:
    """[start, end) of the lines between the padding bands that touch either border."""
    n = padding.shape[0]
    start = 0
    while start < n and padding[start]:
        start += 1
    end = n
    while end > start and padding[end - 1]:
        end -= 1
    return start, end


def detect_crop(frames: Sequence[np.ndarray], params: CropParams = CropParams()) -> tuple[int, int, int, int]:
    """The content box ``(x, y, w, h)`` of frames (H, W, 3) uint8 of one shot; the full frame when
    no padding is found (or when what would remain is implausibly small, e.g. a blank card)."""
    if not frames:
        raise ValueError("detect_crop needs at least one frame")
    height, width = frames[0].shape[:2]
    y0, y1 = _content_span(_padding_lines(frames, axis=1, tol=params.flat_tol))
    if y1 - y0 < params.min_content * height:
        y0, y1 = 0, height
    x0, x1 = _content_span(_padding_lines([f[y0:y1] for f in frames], axis=0, tol=params.flat_tol))
    if x1 - x0 < params.min_content * width:
        x0, x1 = 0, width
    w, h = x1 - x0, y1 - y0
    if params.round > 1:
        # Like cropdetect: shrink to a multiple, keeping the box centred in the detected one.
        new_w, new_h = max(params.round, w - w % params.round), max(params.round, h - h % params.round)
        x0 += (w - new_w) // 2
        y0 += (h - new_h) // 2
        w, h = min(new_w, width), min(new_h, height)
    return int(x0), int(y0), int(w), int(h)


def apply_crop(rgb: np.ndarray, crop: tuple[int, int, int, int] | None) -> np.ndarray:
    if crop is None:
        return rgb
    x, y, w, h = crop
    return np.ascontiguousarray(rgb[y : y + h, x : x + w])
