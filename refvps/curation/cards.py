"""End cards: a short final shot is dropped only when it looks like a card.

Compilations end on a title or logo card ("thanks for watching", a channel logo). Such a shot is
*still* (the picture hardly changes between frames spread over the shot) and *flat* (most of it is
one background level, with text or a logo on top). Real footage moves: hands, water, a camera that
is held; a short final shot of a real event is kept. Both measures are over several frames of the
shot, at 1/8 of the resolution for the motion so that compression noise does not count as motion.

What is not recognised as a card -- an animated logo, a card over moving footage -- is exported
like any shot and stays visible in the review; an event span chosen in the review decides anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refvps.curation.shots import Shot
from refvps.curation.video import VideoProbe, sample_frames, sample_times


@dataclass(frozen=True)
class CardParams:
    samples: int = 8
    level_tol: int = 12  # luma levels around the most common level that count as the background
    flat_share: float = 0.5  # a card: at least this share of pixels at the background level ...
    still_tol: float = 1.0  # ... and a mean luma change (1/8 resolution) between samples at most this


@dataclass(frozen=True)
class CardCheck:
    """What was measured on a shot, and the verdict."""

    flat_share: float  # median over samples of the share of pixels at the most common level
    motion: float  # median mean |change| of the small pictures between consecutive samples
    card: bool

    def describe(self) -> str:
        verdict = "looks like a card" if self.card else "moves or is not flat: kept"
        return f"{verdict} ({100 * self.flat_share:.0f}% at one level, motion {self.motion:.2f})"


def _flat_share(luma: np.ndarray, tol: int) -> float:
    hist = np.bincount(luma.ravel(), minlength=256)
    peak = int(hist.argmax())
    return float(hist[max(0, peak - tol) : peak + tol + 1].sum() / luma.size)


def _small(luma: np.ndarray, factor: int = 8) -> np.ndarray:
    h, w = (luma.shape[0] // factor) * factor, (luma.shape[1] // factor) * factor
    if h == 0 or w == 0:
        return luma.astype(np.float32)
    blocks = luma[:h, :w].astype(np.float32).reshape(h // factor, factor, w // factor, factor)
    return blocks.mean(axis=(1, 3))


def check_card(probe: VideoProbe, shot: Shot, params: CardParams = CardParams()) -> CardCheck:
    """Measure a shot (see the module docstring). A shot whose frames do not decode is no card."""
    got, _ = sample_frames(probe, sample_times(shot.start_s, shot.end_s, params.samples), fmt="gray")
    lumas = [image for _, image in got]
    if not lumas:
        return CardCheck(0.0, float("inf"), False)
    share = float(np.median([_flat_share(luma, params.level_tol) for luma in lumas]))
    small = [_small(luma) for luma in lumas]
    changes = [float(np.abs(a - b).mean()) for a, b in zip(small, small[1:])]
    motion = float(np.median(changes)) if changes else 0.0
    return CardCheck(share, motion, share >= params.flat_share and motion <= params.still_tol)
