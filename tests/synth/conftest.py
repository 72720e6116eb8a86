"""Shared, session-scoped renders for the synthetic-benchmark tests (kept small: 128x72, 16 frames)."""

from __future__ import annotations

import pytest

from refvps.synth import KINDS, kind_for, plan_clip, render_clip

SIZE = (128, 72)
FRAMES = 16


def first_index_of(kind: str, seed: int) -> int:
    return next(i for i in range(len(KINDS)) if kind_for(seed, i) == kind)


@pytest.fixture(scope="session")
def kind_renders():
    """For every kind and two seeds: (rendered clip, the same clip rendered without its target)."""
    out = {}
    for seed in (0, 1):
        for kind in KINDS:
            spec = plan_clip(seed, first_index_of(kind, seed), size=SIZE, frames=FRAMES)
            out[(kind, seed)] = (render_clip(spec), render_clip(spec, include_target=False))
    return out


@pytest.fixture(scope="session")
def small_benchmark(tmp_path_factory):
    """A generated benchmark on disk: 8 clips (every kind at least once), 12 frames, 96x64."""
    from refvps.synth import generate_benchmark

    root = tmp_path_factory.mktemp("synth") / "bench"
    generate_benchmark(root, clips=8, seed=3, size=(96, 64), frames=12)
    return root
