"""A small Ref-VPS-format dataset for the REM tests: two moving discs, one named by each sentence.

Written with :class:`refvps.dataset.DatasetWriter`, so the tests do not depend on the synthetic
benchmark generator. Clip ``c`` has a red and a blue disc moving in opposite directions; the
expressions of object 1 (red) and object 2 (blue) name the colour, so the text decides the target.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from refvps.dataset.format import ClipMeta, DatasetWriter, Expression

RED = (220, 40, 40)
BLUE = (40, 60, 220)


def disc(shape: tuple[int, int], cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def make_toy_dataset(
    root: Path, *, clips: int = 2, frames: int = 8, size: tuple[int, int] = (48, 64), seed: int = 0
) -> Path:
    """``clips`` clips of ``frames`` frames at ``size`` = (height, width); returns ``root``."""
    rng = np.random.default_rng(seed)
    writer = DatasetWriter(root)
    h, w = size
    for index in range(clips):
        background = (rng.integers(60, 120, size=(h, w, 1)) + rng.integers(0, 20, size=(h, w, 3))).astype(np.uint8)
        start_red = rng.uniform([0.3 * h, 0.2 * w], [0.7 * h, 0.4 * w])
        start_blue = rng.uniform([0.3 * h, 0.6 * w], [0.7 * h, 0.8 * w])
        r = rng.uniform(0.12, 0.2) * min(h, w)
        rgb_frames, labels = [], []
        for t in range(frames):
            shift = (t - frames / 2) * 0.02 * w
            red = disc((h, w), start_red[0], start_red[1] + shift, r)
            blue = disc((h, w), start_blue[0], start_blue[1] - shift, r) & ~red
            image = background.copy()
            image[red] = RED
            image[blue] = BLUE
            label = np.zeros((h, w), np.uint8)
            label[red] = 1
            label[blue] = 2
            rgb_frames.append(image)
            labels.append(label)
        clip_id = f"toy{index:03d}"
        expressions = [
            Expression("0", "the red disc", 1, "a"),
            Expression("1", "the blue disc", 2, "a"),
            Expression("2", "the red ball moving", 1, "b"),
            Expression("3", "the blue ball moving", 2, "b"),
        ]
        writer.write_clip(
            clip_id,
            rgb_frames,
            labels,
            expressions,
            ClipMeta(clip_id, concept="toy", category="toy", width=w, height=h),
        )
    return root
