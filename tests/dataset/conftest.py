"""A small hand-built valid dataset (independent of the synthetic generator)."""

from __future__ import annotations

import numpy as np
import pytest

from refvps.dataset import ClipMeta, DatasetWriter, Expression, Source

H, W, T = 24, 32, 6


def make_clip_arrays(seed: int, frames: int = T, height: int = H, width: int = W):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = rng.integers(0, 128, 3)
    # Smooth frames, so JPEG round trips stay close to the written pixels.
    rgb = [
        np.stack([(base[c] + 3 * xx + 2 * yy + 5 * t) % 256 for c in range(3)], axis=-1).astype(np.uint8)
        for t in range(frames)
    ]
    labels = []
    for t in range(frames):
        label = np.zeros((height, width), np.uint8)
        label[4:12, 3 + t : 12 + t] = 1  # the target moves right one pixel per frame
        label[12:14, 3 + t : 12 + t] = 255  # an Ignore fringe below it
        labels.append(label)
    return rgb, labels


def refvps_expressions():
    return [
        Expression("0", "the red smoke on the left", 1, "a"),
        Expression("1", "red smoke drifting right", 1, "a"),
        Expression("2", "the plume rising from the chimney", 1, "b"),
        Expression("3", "smoke coming out of the chimney", 1, "b"),
    ]


def write_small_dataset(root, clips=("clip_a", "clip_b"), frames=T):
    writer = DatasetWriter(root)
    for index, clip_id in enumerate(clips):
        rgb, labels = make_clip_arrays(index, frames)
        meta = ClipMeta(
            clip_id,
            concept="smoke_dispersing" if index % 2 == 0 else "water_ripples",
            category="pattern_evolution" if index % 2 == 0 else "motion_patterns",
            fps=24,
            width=W,
            height=H,
            source=Source(url=f"https://example.org/{clip_id}", platform="test", uploader="someone"),
        )
        writer.write_clip(clip_id, rgb, labels, refvps_expressions(), meta)
    return root


@pytest.fixture
def small_dataset(tmp_path):
    return write_small_dataset(tmp_path / "ds")
