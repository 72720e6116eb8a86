"""Inference: every frame in windows, the last window overlapping, resume, accelerate split."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from refvps.dataset.format import Dataset
from refvps.errors import UsageError
from rem_model.builder import build_rem
from rem_model.config import get_config
from rem_model.inference import InferenceOptions, plan_windows, predict_dataset, window_starts

from .toydata import make_toy_dataset


@pytest.fixture(scope="module")
def long_clips(tmp_path_factory):
    """Two clips of 30 frames (48 x 64)."""
    return make_toy_dataset(tmp_path_factory.mktemp("long") / "data", clips=2, frames=30, seed=3)


@pytest.fixture(scope="module")
def tiny_model():
    return build_rem(get_config("rem-tiny").replace(resolution=(32, 48)), random_init=True)


def _naive_cover(length, window):
    """Reference: full windows from 0; a short tail is replaced by the last `window` frames."""
    covered = []
    start = 0
    while start < length:
        end = min(start + window, length)
        if end - start < window and length >= window:
            start = length - window
        covered.append((start, min(start + window, length)))
        start = end
    return covered


@pytest.mark.parametrize("length, window", [(30, 8), (24, 8), (7, 8), (8, 8), (9, 8), (72, 72), (100, 72), (1, 5)])
def test_windows_cover_every_frame_once_and_never_shrink(length, window, tiny_model):
    plans = plan_windows(length, window, tiny_model)
    written = [p.indices[i] for p in plans for i in p.new]
    assert sorted(written) == list(range(length))  # every frame exactly once
    expected = _naive_cover(length, window)
    assert [(p.indices[0], p.indices[-1] + 1) for p in plans] == expected
    if length >= window:
        assert all(len(p.indices) == window for p in plans)  # the last window overlaps, it does not shrink
    assert window_starts(30, 8) == [0, 8, 16, 22]


def test_wan_windows_are_4k_plus_1(tmp_path):
    model = build_rem("rem-wan-tiny", random_init=True)
    plans = plan_windows(30, 9, model)
    assert all(len(p.indices) == 9 for p in plans)
    short = plan_windows(7, 9, model)  # one window, padded to 9 frames by repeating the last
    assert short[0].indices == (0, 1, 2, 3, 4, 5, 6, 6, 6) and short[0].new == tuple(range(7))
    with pytest.raises(UsageError, match="4k\\+1"):
        InferenceOptions(window=8).check(model)


def test_every_frame_of_a_30_frame_clip_with_window_8(tmp_path, long_clips, tiny_model):
    out = tmp_path / "pred"
    calls = []
    original = tiny_model.encode_video
    tiny_model.encode_video = lambda frames, generator=None: (
        calls.append(frames.shape[1]) or original(frames, generator)
    )
    try:
        summary = predict_dataset(tiny_model, long_clips, out, InferenceOptions(window=8), progress=False)
    finally:
        tiny_model.encode_video = original
    dataset = Dataset(long_clips)
    # The video is encoded once per window (4 windows per clip) for all four expressions.
    assert calls == [8] * 8
    for clip in dataset:
        for expression in clip.expressions:
            files = sorted(p.stem for p in (out / clip.id / expression.exp_id).glob("*.png"))
            assert files == clip.frame_names
        with Image.open(out / clip.id / "0" / f"{clip.frame_names[-1]}.png") as image:
            assert image.size == (64, 48) and image.mode == "L"  # resized back to the frame
            assert set(np.unique(np.asarray(image))) <= {0, 255}
    assert summary.frames == 60 and summary.frame_expressions == 240
    assert sorted(summary.clips_predicted) == dataset.clip_ids
    run = json.loads((out / "run.json").read_text())  # the record every baseline writes
    assert run["method"] == "rem" and run["status"] == "complete" and run["exit_status"] == 0
    assert run["config"] == "rem-tiny" and run["settings"]["options"]["window"] == 8
    assert run["clips"] == len(dataset.clip_ids) and run["finished"] >= run["started"]
    assert run["checkpoint"] is None or len(run["checkpoint"]["sha256"]) == 64


def test_a_half_written_folder_resumes(tmp_path, long_clips, tiny_model):
    out = tmp_path / "pred"
    options = InferenceOptions(window=16)
    predict_dataset(tiny_model, long_clips, out, options, progress=False)
    first = {p: p.read_bytes() for p in out.rglob("*.png")}
    # Simulate a run killed during the second clip: its marker and some masks are gone.
    (out / ".done" / "toy001.json").unlink()
    for path in list((out / "toy001" / "2").glob("*.png"))[:5]:
        path.unlink()
    summary = predict_dataset(tiny_model, long_clips, out, options, progress=False)
    assert summary.clips_predicted == ["toy001"] and summary.clips_skipped == ["toy000"]
    again = {p: p.read_bytes() for p in out.rglob("*.png")}
    assert again == first  # same masks (seeded), nothing missing


def test_predictions_do_not_depend_on_the_expression_batch(tmp_path, toy_dataset, tiny_model):
    a = predict_dataset(tiny_model, toy_dataset, tmp_path / "a", InferenceOptions(expression_batch=1), progress=False)
    b = predict_dataset(tiny_model, toy_dataset, tmp_path / "b", InferenceOptions(expression_batch=4), progress=False)
    assert a.frame_expressions == b.frame_expressions == 80
    for path in (tmp_path / "a").rglob("*.png"):
        other = np.asarray(Image.open(tmp_path / "b" / path.relative_to(tmp_path / "a")))
        assert (np.asarray(Image.open(path)) != other).mean() < 0.001


def test_pad_aspect_predicts_at_frame_size(tmp_path, toy_dataset, tiny_model):
    out = tmp_path / "pad"
    predict_dataset(tiny_model, toy_dataset, out, InferenceOptions(aspect="pad"), progress=False)
    with Image.open(next(out.rglob("*.png"))) as image:
        assert image.size == (64, 48)


def test_wan_tiny_predicts_every_frame(tmp_path, long_clips):
    model = build_rem("rem-wan-tiny", random_init=True)
    summary = predict_dataset(
        model, long_clips, tmp_path / "wan", InferenceOptions(window=9), clip_ids=["toy000"], progress=False
    )
    assert summary.frames == 30 and len(list((tmp_path / "wan" / "toy000" / "3").glob("*.png"))) == 30


def test_unknown_clip_is_a_usage_error(tmp_path, toy_dataset, tiny_model):
    with pytest.raises(UsageError, match="nope"):
        predict_dataset(tiny_model, toy_dataset, tmp_path / "x", clip_ids=["nope"], progress=False)
