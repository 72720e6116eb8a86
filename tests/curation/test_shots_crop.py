"""Shot boundaries and padding detection against videos with a known truth."""

from __future__ import annotations

import numpy as np
import pytest

from refvps.curation.crop import CropParams, apply_crop, detect_crop
from refvps.curation.shots import ShotParams, cached_shots, detect_shots
from refvps.curation.video import frames_at, probe_video, sample_times

from .conftest import ShotSpec


@pytest.mark.parametrize("detector,threshold", [("content", 27.0), ("adaptive", 3.0)])
def test_cuts_found_within_one_frame(tmp_path, make_video, detector, threshold):
    video = make_video(
        tmp_path / "cuts.mp4",
        [ShotSpec(50, hue=0), ShotSpec(37, hue=1), ShotSpec(44, hue=2), ShotSpec(30, "card")],
    )
    shots = detect_shots(video.path, ShotParams(detector, threshold))
    found = [s.start_frame for s in shots[1:]]
    assert len(found) == len(video.cut_frames) == 3
    for got, want in zip(found, video.cut_frames):
        assert abs(got - want) <= 1
    # Shots tile the video: no gap, no overlap, times from the frames' own timestamps.
    assert shots[0].start_frame == 0 and shots[-1].end_frame == video.frame_count
    assert all(a.end_frame == b.start_frame for a, b in zip(shots, shots[1:]))
    assert shots[-1].end_s == pytest.approx(video.frame_count / video.fps)
    assert shots[1].start_s == pytest.approx(shots[1].start_frame / video.fps)


def test_video_without_cuts_is_one_shot(tmp_path, make_video):
    # scenedetect.detect returns [] here unless start_in_scene=True.
    video = make_video(tmp_path / "single.mp4", [ShotSpec(48, hue=3)], fps=24)
    shots = detect_shots(video.path)
    assert len(shots) == 1
    assert (shots[0].start_frame, shots[0].end_frame) == (0, 48)
    assert shots[0].start_s == 0.0 and shots[0].end_s == pytest.approx(2.0)


def test_shot_cache_is_reused_and_invalidated_by_parameters(tmp_path, make_video):
    video = make_video(tmp_path / "v.mp4", [ShotSpec(30, hue=0), ShotSpec(30, hue=1)])
    cache = tmp_path / "shots.json"
    first = cached_shots(video.path, cache)
    stamp = cache.stat().st_mtime_ns
    assert cached_shots(video.path, cache) == first
    assert cache.stat().st_mtime_ns == stamp  # reused, not rewritten
    cached_shots(video.path, cache, ShotParams("adaptive", 3.0))
    assert '"adaptive"' in cache.read_text()


def _frames(path, count=8):
    probe = probe_video(path)
    return [rgb for _, rgb in frames_at(probe, sample_times(0.0, probe.duration_s, count))]


@pytest.mark.parametrize(
    "bars,colour",
    [
        ((0, 32, 0, 32), (0, 0, 0)),  # letterbox, black
        ((40, 0, 40, 0), (0, 0, 0)),  # pillarbox, black
        ((0, 48, 0, 16), (255, 255, 255)),  # white padding of unequal height (phone captions)
        ((24, 16, 56, 32), (30, 90, 160)),  # coloured bars on all four sides
    ],
)
def test_crop_box_is_exact_after_encoding(tmp_path, make_video, bars, colour):
    video = make_video(tmp_path / "bars.mp4", [ShotSpec(40, hue=1)], bars=bars, bar_colour=colour)
    assert detect_crop(_frames(video.path)) == video.content_box


def test_no_bars_means_full_frame(tmp_path, make_video):
    video = make_video(tmp_path / "plain.mp4", [ShotSpec(30, hue=0)])
    assert detect_crop(_frames(video.path)) == (0, 0, 320, 240)


def test_crop_rules_on_arrays():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
    frame[:10] = 0
    frame[10:, 70:] = 255
    assert detect_crop([frame]) == (0, 10, 70, 50)
    # A dark sky is padding only if it stays flat: sparks (fireworks) in any sampled frame keep it.
    night = rng.integers(30, 200, (60, 80, 3), dtype=np.uint8)
    night[:20] = 0
    sparks = [night.copy() for _ in range(3)]
    sparks[0][0, 40] = sparks[1][3, 10] = sparks[2][12, 60] = 255
    assert detect_crop(sparks) == (0, 0, 80, 60)
    assert detect_crop([night]) == (0, 20, 80, 40)
    # A band that is flat in one frame but changes over time is content, not a bar.
    a, b = frame.copy(), frame.copy()
    a[:10], b[:10] = 0, 120
    assert detect_crop([a, b])[1] == 0
    # A blank frame (an end card) is not cropped to nothing.
    assert detect_crop([np.full((60, 80, 3), 245, np.uint8)]) == (0, 0, 80, 60)
    # cropdetect-style rounding keeps the box centred.
    assert detect_crop([frame], CropParams(round=16)) == (3, 11, 64, 48)


def test_apply_crop_shape():
    frame = np.zeros((10, 20, 3), np.uint8)
    assert apply_crop(frame, (2, 3, 5, 4)).shape == (4, 5, 3)


def test_each_detector_gets_its_own_default_threshold():
    """The library, not only the CLI, gives the adaptive detector its scale (3, not content's 27)."""
    from refvps.curation.shots import ShotParams

    assert ShotParams().threshold == 27.0
    assert ShotParams(detector="adaptive").threshold == 3.0
    assert ShotParams(detector="adaptive", threshold=5.0).threshold == 5.0
