"""Label maps from presence: hand-computed cases, and the rendered clips of every kind."""

from __future__ import annotations

import numpy as np
import pytest

from refvps.synth import KINDS, LabelRule, label_from_presence
from refvps.synth.processes import PROCESSES, voronoi_cells

from .conftest import SIZE


def test_label_rule_by_hand():
    presence = np.array([[0.0, 0.1, 0.2, 0.4, 0.6, 0.9]], np.float32)
    soft = np.array([[True, True, True, True, True, False]])
    # lo=0.2: 0.2 and 0.4 are fringe (Ignore), 0.6 and 0.9 target, below 0.2 background.
    assert label_from_presence(presence, soft, LabelRule(0.2, 0.5)).tolist() == [[0, 0, 255, 255, 1, 1]]
    # Outside soft regions the cut is 0.5 whatever hi is: 0.4 -> 0, 0.6 -> 1.
    hard = np.zeros_like(soft)
    assert label_from_presence(presence, hard, LabelRule(0.2, 0.85)).tolist() == [[0, 0, 0, 0, 1, 1]]
    assert label_from_presence(presence, None, LabelRule(0.2, 0.85)).tolist() == [[0, 0, 0, 0, 1, 1]]
    # Soft with hi=0.85: 0.6 is ambiguous (a smeared edge), 0.9 is core.
    assert label_from_presence(presence, soft | True, LabelRule(0.2, 0.85)).tolist() == [[0, 0, 255, 255, 255, 1]]


def test_voronoi_cells_tile_the_rectangle():
    rng = np.random.default_rng(0)
    points = rng.uniform([0, 0], [40, 30], (12, 2))
    cells = voronoi_cells(points, (0, 0, 40, 30))

    def area(poly):
        x, y = poly[:, 0], poly[:, 1]
        return 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))

    assert len(cells) == 12
    assert sum(area(c) for c in cells) == pytest.approx(40 * 30, rel=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_renders_with_valid_labels(kind, kind_renders):
    for seed in (0, 1):
        clip, _ = kind_renders[(kind, seed)]
        T = clip.spec.frames
        assert clip.frames.shape == (T, SIZE[1], SIZE[0], 3) and clip.frames.dtype == np.uint8
        assert clip.labels.shape == (T, SIZE[1], SIZE[0])
        assert set(np.unique(clip.labels).tolist()) <= {0, 1, 255}
        assert (clip.labels == 1).any(axis=(1, 2)).sum() >= T // 3, "target visible in too few frames"
        # Not tiny: where present, the target covers at least 1% of the frame on average.
        areas = (clip.labels == 1).mean(axis=(1, 2))
        assert areas[areas > 0].mean() > 0.01


@pytest.mark.parametrize("kind", KINDS)
def test_target_pixels_lie_inside_the_rendered_process(kind, kind_renders):
    for seed in (0, 1):
        clip, without = kind_renders[(kind, seed)]
        target = clip.labels == 1
        # The label follows the rendering's presence map...
        assert (clip.presence[target] >= 0.5).all()
        # ...and, independently of that map, the pixels really show the process: rendering the same clip
        # without its target (same background, camera, distractor and sensor noise) changes them.
        changed = np.abs(clip.frames.astype(int) - without.frames.astype(int)).max(axis=-1) >= 4
        assert changed[target].mean() > 0.85
        # Pixels labelled background are (nearly) never ones the target changed strongly.
        strongly = np.abs(clip.frames.astype(int) - without.frames.astype(int)).max(axis=-1) > 40
        assert (strongly & (clip.labels == 0)).mean() < 0.05


@pytest.mark.parametrize("kind", KINDS)
def test_ignore_only_on_the_low_density_or_blurred_fringe(kind, kind_renders):
    rule = PROCESSES[kind].rule
    for seed in (0, 1):
        clip, without = kind_renders[(kind, seed)]
        ignore = clip.labels == 255
        target = clip.labels == 1
        # Ignore only where the rendering marks the boundary as ambiguous, below the dense core.
        assert clip.soft[ignore].all()
        assert (clip.presence[ignore] < rule.hi).all()
        assert (clip.presence[ignore] >= rule.lo).all()
        # A thin fringe, not a second target.
        assert ignore.sum() <= 1.0 * max(target.sum(), 1)
        if ignore.any():
            # Independent check: the fringe shows the process more faintly than the target does.
            diff = np.abs(clip.frames.astype(int) - without.frames.astype(int)).max(axis=-1)
            assert diff[ignore].mean() < diff[target].mean()


def test_crisp_processes_have_no_ignore(kind_renders):
    for seed in (0, 1):
        clip, _ = kind_renders[("melting", seed)]
        assert not (clip.labels == 255).any()


def test_shatter_ignore_only_on_moving_fragments(kind_renders):
    for seed in (0, 1):
        clip, _ = kind_renders[("shatter", seed)]
        ignore_frames = np.flatnonzero((clip.labels == 255).any(axis=(1, 2)))
        intact = np.flatnonzero(((clip.labels == 1).sum(axis=(1, 2)) > 0) & ~(clip.labels == 255).any(axis=(1, 2)))
        assert len(ignore_frames) > 0 and len(intact) > 0
        # The pane is intact (no blur, no Ignore) before it breaks; Ignore appears only afterwards.
        assert intact.min() < ignore_frames.min()


@pytest.mark.parametrize("kind", KINDS)
def test_target_is_on_its_side_and_never_on_the_distractor(kind, kind_renders):
    for seed in (0, 1):
        clip, _ = kind_renders[(kind, seed)]
        spec = clip.spec
        xs = np.nonzero(clip.labels == 1)[2]
        middle = SIZE[0] / 2
        # The sentences say "left"/"right": the target's pixels must be in that half.
        if spec.target.side == "left":
            assert xs.max() < middle
        else:
            assert xs.min() >= middle
        assert not ((clip.labels == 1) & (clip.distractor_presence >= 0.5)).any()
        assert (clip.distractor_presence >= 0.5).any(), "the distractor is visible"
