"""Padding detection: letterbox and pillarbox bars, exact to the pixel under compression.

A bar is a band along a border whose lines all have one level (black, white, or a colour's luma)
in every frame. ffmpeg's ``cropdetect`` thresholds each frame's lines (mean luma <= 24 is black);
compression rings around the picture's edge, so a threshold on one frame lands 1-8 pixels off.
Here the decision is made on statistics over many frames of one shot (:func:`detect_crop`):

1. the level ``b`` of the bar is the median of the outermost line over all frames;
2. each line gets its *deviation* ``P`` = the mean over frames and along the line of ``|luma - b|``
   (~0 in a bar, a little more in the rows where compression rings, tens of levels in the picture);
3. no bar when the outermost line deviates by more than ``flat_tol``; otherwise the picture starts
   at the first line whose deviation reaches half the picture's level just past the edge (the
   middle of the blurred step, which is where the edge was before compression);
4. a band is not a bar when its step is gradual (a white table fading into the frame: the deviation
   climbs over many lines) or when some frame has content in it (fireworks in a black sky).

Luma, not RGB: 4:2:0 chroma is upsampled across the bar edge when decoding and tints the lines
next to the picture. Rows are found first, then columns inside the remaining rows.

A video's box is the union of its shots' boxes (:func:`union_box`): a shot without bars keeps the
whole frame. What cannot be told apart automatically -- a flat region of the picture with the bar's
own level along a border, captions or logos printed on the bars -- is listed in docs/CURATION.md;
the review decision's ``crop`` overrides the detection for a video.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class CropParams:
    flat_tol: float = 4.0  # max mean |luma - bar level| (of 255) of the outermost line of a bar
    max_rise: int = 3  # lines the step from bar to picture may take (more for wide bars: 1/8 of the bar)
    ring: int = 16  # lines next to the picture where compression may ring (not checked for content)
    spike_tol: float = 48.0  # a pixel this far from the bar level, in any frame, outside the ring: content
    min_content: float = 0.25  # a box smaller than this fraction of a side means "do not crop" that side
    round: int = 1  # make width and height multiples of this (ffmpeg's default is 16; exact here)


def _luma(frame: np.ndarray) -> np.ndarray:
    """Luma of a frame as uint8: a gray frame as is, an RGB one with BT.601 weights."""
    data = np.asarray(frame)
    if data.ndim == 2:
        return data.astype(np.uint8, copy=False)
    mixed = data[..., 0] * 0.299 + data[..., 1] * 0.587 + data[..., 2] * 0.114
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def _profiles(lumas: Sequence[np.ndarray], level: float, along: int) -> tuple[np.ndarray, np.ndarray]:
    """Per line (a row for ``along=1``, a column for ``along=0``): the mean over frames of the mean
    ``|luma - level|`` along it, and the largest deviation of any of its pixels in any frame
    (integer arithmetic on the frames as stored: this runs on many frames)."""
    level_int = int(round(level))
    means, peaks = [], []
    for luma in lumas:
        deviation = np.abs(luma.astype(np.int16) - level_int)
        means.append(deviation.sum(axis=along, dtype=np.int64) / deviation.shape[along])
        peaks.append(deviation.max(axis=along))
    return np.mean(means, axis=0), np.max(peaks, axis=0).astype(np.float64)


def _first(mask: np.ndarray, start: int = 0) -> int | None:
    hits = np.flatnonzero(mask[start:])
    return int(hits[0]) + start if hits.size else None


def _bar_width(deviation: np.ndarray, peak: np.ndarray, params: CropParams) -> int:
    """How many lines from the start of the profiles are padding (0: none; all: a blank frame)."""
    tol = params.flat_tol
    if deviation[0] > tol:
        return 0
    picture = _first(deviation > 2 * tol)
    if picture is None:
        return deviation.shape[0]
    level = float(np.median(deviation[picture : picture + 4]))
    edge = _first(deviation >= max(level / 2, tol))
    assert edge is not None  # deviation[picture] > 2 * tol >= level / 2 or tol
    floor = float(np.median(deviation[: max(1, edge - 8)]))
    low = _first(deviation >= floor + 0.1 * (level - floor))
    high = _first(deviation >= floor + 0.9 * (level - floor), low or 0)
    if low is None or high is None or high - low > max(params.max_rise, edge // 8):
        return 0  # a gradual slope: flat picture fading in, not the sharp edge of a bar
    if edge > params.ring and float(peak[: edge - params.ring].max()) > params.spike_tol:
        return 0  # something appears in the band in some frame: it is picture
    return edge


def _span(lumas: Sequence[np.ndarray], along: int, params: CropParams) -> tuple[int, int]:
    """[start, end) of the picture across lines that run ``along`` an axis (1: rows, 0: columns)."""
    length = lumas[0].shape[1 - along]
    take = (lambda luma, i: luma[i]) if along == 1 else (lambda luma, i: luma[:, i])
    profiles: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # by bar level: both sides often share it

    def bar_lines(border: int, reverse: bool) -> int:
        level = int(round(float(np.median(np.stack([take(luma, border) for luma in lumas])))))
        if level not in profiles:
            profiles[level] = _profiles(lumas, level, along)
        deviation, peak = profiles[level]
        return _bar_width(deviation[::-1], peak[::-1], params) if reverse else _bar_width(deviation, peak, params)

    start, end = bar_lines(0, False), length - bar_lines(length - 1, True)
    if end - start < params.min_content * length:
        return 0, length
    return start, end


def detect_crop(frames: Sequence[np.ndarray], params: CropParams = CropParams()) -> Box:
    """The picture box ``(x, y, w, h)`` of frames of one shot (gray (H, W) or RGB (H, W, 3), the
    more the better); the full frame when no padding is found, or when what would remain is
    implausibly small (a blank card)."""
    if not frames:
        raise ValueError("detect_crop needs at least one frame")
    lumas = [_luma(frame) for frame in frames]
    height, width = lumas[0].shape
    y0, y1 = _span(lumas, 1, params)
    x0, x1 = _span([luma[y0:y1] for luma in lumas], 0, params)
    w, h = x1 - x0, y1 - y0
    if params.round > 1:
        # Like cropdetect: shrink to a multiple, keeping the box centred in the detected one.
        new_w, new_h = max(params.round, w - w % params.round), max(params.round, h - h % params.round)
        x0 += (w - new_w) // 2
        y0 += (h - new_h) // 2
        w, h = min(new_w, width), min(new_h, height)
    return int(x0), int(y0), int(w), int(h)


def union_box(boxes: Iterable[Box]) -> Box | None:
    """The smallest box holding every box (None for none): a video's crop from its shots' crops."""
    boxes = list(boxes)
    if not boxes:
        return None
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[0] + b[2] for b in boxes)
    y1 = max(b[1] + b[3] for b in boxes)
    return x0, y0, x1 - x0, y1 - y0


def apply_crop(rgb: np.ndarray, crop: Box | None) -> np.ndarray:
    if crop is None:
        return rgb
    x, y, w, h = crop
    return np.ascontiguousarray(rgb[y : y + h, x : x + w])
