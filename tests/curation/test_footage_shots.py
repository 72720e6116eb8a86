"""Shot detection on real footage: every cut of a compilation, and no false cut from compression."""

from __future__ import annotations

import numpy as np
import pytest

from refvps.curation.shots import ShotParams, confirm_cuts, detect_shots

from .footage import compilation

PARTS = [("02_cups", 1.0, 1.5), ("03_blocks", 2.0, 1.5), ("04_coffee", 1.0, 1.5), ("05_default_juggle", 3.0, 1.5)]


@pytest.fixture(scope="module")
def starved_vp9(tmp_path_factory):
    """Four real shots and a text card, letterboxed, in a realtime VP9 stream at 40 kbit/s: blocky
    frames that recover a moment later, the kind that read as cuts."""
    return compilation(tmp_path_factory.mktemp("vp9") / "comp", PARTS, card_s=1.0, encoder="low_vp9")


@pytest.mark.parametrize("detector", ["content", "adaptive"])
def test_no_false_cut_on_a_low_bitrate_vp9_compilation(starved_vp9, detector):
    shots = detect_shots(starved_vp9.path, ShotParams(detector))
    assert [s.start_frame for s in shots[1:]] == starved_vp9.cut_frames  # exact, none missing, none added


def test_every_cut_of_a_clean_compilation(tmp_path):
    comp = compilation(tmp_path / "clean", PARTS[:3], card_s=0.5, encoder="crf23")
    shots = detect_shots(comp.path)
    assert [s.start_frame for s in shots[1:]] == comp.cut_frames
    assert shots[-1].end_frame == comp.frame_count


def _thumbs(levels):
    """Thumbnails (N, 2, 4, 3) of flat grey levels, with a little texture so shots are not static."""
    rng = np.random.default_rng(0)
    base = np.asarray(levels, np.float32)[:, None, None, None]
    return base + rng.uniform(-1, 1, (len(levels), 2, 4, 3)).astype(np.float32)


def test_confirmation_rejects_glitches_and_keeps_the_minimum_shot_length():
    # shot A (level 60) with one blocky frame (140) | cut at 40 | shot B (160) | cut at 63 | shot C (20)
    levels = [60.0] * 20 + [140.0] + [60.0] * 19 + [160.0] * 23 + [20.0] * 20
    thumbs = _thumbs(levels)
    window = 8
    assert confirm_cuts(thumbs, [20, 21], window, 3.0) == []  # the glitch and its recovery
    assert confirm_cuts(thumbs, [20, 21, 40, 63], window, 3.0) == [40, 63]
    # A proposal a few frames off is moved onto the frame where the picture changes.
    assert confirm_cuts(thumbs, [37, 61], window, 3.0) == [40, 63]
    # Ratio 0 keeps what the detector proposed (at the sharpest change nearby).
    assert confirm_cuts(thumbs, [21], window, 0.0) == [20]
    # A shot shorter than the minimum: of two cuts 3 frames apart one stays, the stronger (160 -> 20).
    short = _thumbs([60.0] * 20 + [160.0] * 3 + [20.0] * 20)
    assert confirm_cuts(short, [20, 23], window, 3.0) == [23]


def test_shot_parameters_are_checked():
    from refvps.errors import UsageError

    with pytest.raises(UsageError):
        ShotParams(min_shot_s=-1)
    assert ShotParams().min_shot_s > 0 and ShotParams().cut_ratio > 0
