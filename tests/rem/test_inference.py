"""Inference: every frame in windows, the last window overlapping, resume, accelerate split."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
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
def test_windows_without_overlap_cover_every_frame_once_and_never_shrink(length, window):
    plans = plan_windows(length, window, stride=window)
    final = [i for p in plans for i in p.final]
    first = [i for p in plans for i in p.first]
    assert final == list(range(length)) and first == list(range(length))  # every frame exactly once, in order
    assert [(p.indices[0], p.indices[-1] + 1) for p in plans] == _naive_cover(length, window)
    if length >= window:
        assert all(len(p.indices) == window for p in plans)  # the last window overlaps, it does not shrink
    assert window_starts(30, 8) == [0, 8, 16, 22]


@pytest.mark.parametrize("length, window, stride", [(30, 8, 6), (30, 8, 4), (17, 8, 7), (100, 73, 55), (9, 9, 3)])
def test_overlapping_windows_start_stride_apart_and_complete_each_frame_once(length, window, stride):
    plans = plan_windows(length, window, stride)
    starts = [p.indices[0] for p in plans]
    expected = list(range(0, length - window + 1, stride))
    if expected[-1] + window < length:
        expected.append(length - window)
    assert starts == expected and all(len(p.indices) == window for p in plans)
    assert [i for p in plans for i in p.final] == list(range(length))
    for number, plan in enumerate(plans):  # a frame is complete when no later window covers it
        later = set().union(*[q.indices for q in plans[number + 1 :]]) if number + 1 < len(plans) else set()
        assert set(plan.final) == set(plan.indices) - later


def test_wan_windows_follow_the_authors_lengths():
    config = get_config("rem-wan-1.3b")
    # Their script: 73 frames, else the first of 61, 49, 37, 25, 17, 9 that the clip can fill.
    assert [config.window_for(n) for n in (300, 73, 72, 50, 40, 17, 16, 9)] == [73, 73, 61, 49, 37, 17, 9, 9]
    assert config.window_for(7) == 5 and config.window_for(4) == 1  # below 9 (theirs fails): the longest 4k+1
    model = build_rem("rem-wan-tiny", random_init=True)
    with pytest.raises(UsageError, match="4k\\+1"):
        InferenceOptions(window=8).check(model)
    with pytest.raises(UsageError, match="per-frame VAE"):
        InferenceOptions(blend="latents").check(model)


def test_every_frame_of_a_30_frame_clip_with_window_8(tmp_path, long_clips, tiny_model):
    out = tmp_path / "pred"
    calls = []
    original = tiny_model.encode_video
    tiny_model.encode_video = lambda frames, generator=None: (
        calls.append(frames.shape[1]) or original(frames, generator)
    )
    try:
        summary = predict_dataset(tiny_model, long_clips, out, InferenceOptions(window=8, stride=8))
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
    assert run["fingerprint"]["stride"] == 8 and run["fingerprint"]["blend"] == "probs"
    assert run["clips"] == len(dataset.clip_ids) and run["finished"] >= run["started"]
    assert run["checkpoint"] is None or len(run["checkpoint"]["sha256"]) == 64


def _reference_blend(model, clip, window, stride, blend, first_frame=0):
    """Naive overlapping-window inference: every window run on its own (seeded as refvps seeds it),
    then per frame the mean of the windows' mask probabilities or latents, resized and thresholded.
    ``first_frame``: where ``clip`` starts in the real clip (the noise seed depends on it)."""
    from rem_model.codec import resize_probs
    from rem_model.data.transforms import Geometry, frames_tensor
    from rem_model.inference import clip_seed

    length, texts = len(clip.frame_names), [e.text for e in clip.expressions]
    frames = [clip.read_frame(n) for n in clip.frame_names]
    geometry = Geometry.fit(frames[0].shape[:2], model.config.resolution, "squash", model.config.resample)
    text = model.encode_text(texts)
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] + window < length:
        starts.append(length - window)
    sums, counts = {}, {}
    for start in starts:
        video = frames_tensor(frames[start : start + window], geometry).unsqueeze(0)
        z1 = model.encode_video(video, torch.Generator().manual_seed(clip_seed(0, clip.id, first_frame + start)))
        with torch.no_grad():
            latents = model.denoise(z1.expand(len(texts), *z1.shape[1:]), text).float()
            values = latents if blend == "latents" else model.codec.decode_mask_probs(latents)
        for k in range(window):
            frame = start + k
            value = values[:, :, k] if blend == "latents" else values[:, k]
            sums[frame] = sums.get(frame, 0) + value
            counts[frame] = counts.get(frame, 0) + 1
    means = torch.stack([sums[f] / counts[f] for f in range(length)], dim=2 if blend == "latents" else 1)
    with torch.no_grad():
        probs = model.codec.decode_mask_probs(means) if blend == "latents" else means
    return (resize_probs(probs, frames[0].shape[:2]) > 0.5).numpy(), starts


@pytest.mark.parametrize("blend", ["probs", "latents"])
def test_overlapping_windows_blend_like_a_naive_reference(long_clips, tiny_model, blend):
    from rem_model.inference import predict_clip

    clip = Dataset(long_clips).clip("toy000")
    expected, starts = _reference_blend(tiny_model, clip, window=8, stride=5, blend=blend)
    assert starts == [0, 5, 10, 15, 20, 22]
    got = {e.exp_id: np.zeros((30, 48, 64), bool) for e in clip.expressions}
    written = []
    for indices, masks in predict_clip(tiny_model, clip, InferenceOptions(window=8, stride=5, blend=blend)):
        written += indices
        for exp_id, stack in masks.items():
            got[exp_id][indices] = stack
    assert written == list(range(30))
    for position, expression in enumerate(clip.expressions):
        assert 0 < expected[position].mean() < 1
        assert (got[expression.exp_id] == expected[position]).mean() > 0.999


def test_first_blend_without_overlap_is_the_window_by_window_prediction(long_clips, tiny_model):
    """--stride W --blend first: each frame from the first window that saw it (the authors' scripts:
    windows 0-7, 8-15, 16-23, then 22-29 of which only frames 24-29 are kept); a frame is written
    once no later window covers it (22 and 23 after the last window)."""
    from rem_model.inference import predict_clip

    clip = Dataset(long_clips).clip("toy001")
    got = np.zeros((len(clip.expressions), 30, 48, 64), bool)
    blocks = []
    for indices, masks in predict_clip(tiny_model, clip, InferenceOptions(window=8, stride=8, blend="first")):
        blocks.append((indices[0], indices[-1] + 1))
        got[:, indices] = np.stack([masks[e.exp_id] for e in clip.expressions])
    assert blocks == [(0, 8), (8, 16), (16, 22), (22, 30)]
    expected = np.zeros_like(got)
    for start, keep in ((0, 0), (8, 0), (16, 0), (22, 2)):
        part = _Slice(clip, start, 8)
        single, _ = _reference_blend(tiny_model, part, window=8, stride=8, blend="probs", first_frame=start)
        expected[:, start + keep : start + 8] = single[:, keep:]
    assert (got == expected).mean() > 0.999


class _Slice:
    """Frames start..start+length of a clip, as a clip (the id is kept: the noise seed depends on it)."""

    def __init__(self, clip, start, length):
        self.id, self.expressions = clip.id, clip.expressions
        self.frame_names = clip.frame_names[start : start + length]
        self._clip, self._start = clip, start

    def read_frame(self, name):
        return self._clip.read_frame(name)


def test_a_half_written_folder_resumes(tmp_path, long_clips, tiny_model):
    out = tmp_path / "pred"
    options = InferenceOptions(window=16, stride=12)
    predict_dataset(tiny_model, long_clips, out, options)
    first = {p: p.read_bytes() for p in out.rglob("*.png")}
    # Simulate a run killed during the second clip: its marker and some masks are gone.
    (out / ".done" / "toy001.json").unlink()
    for path in list((out / "toy001" / "2").glob("*.png"))[:5]:
        path.unlink()
    summary = predict_dataset(tiny_model, long_clips, out, options)
    assert summary.clips_predicted == ["toy001"] and summary.clips_skipped == ["toy000"]
    again = {p: p.read_bytes() for p in out.rglob("*.png")}
    assert again == first  # same masks (seeded), nothing missing


def test_predictions_do_not_depend_on_the_expression_batch(tmp_path, toy_dataset, tiny_model):
    a = predict_dataset(tiny_model, toy_dataset, tmp_path / "a", InferenceOptions(expression_batch=1))
    b = predict_dataset(tiny_model, toy_dataset, tmp_path / "b", InferenceOptions(expression_batch=4))
    assert a.frame_expressions == b.frame_expressions == 80
    for path in (tmp_path / "a").rglob("*.png"):
        other = np.asarray(Image.open(tmp_path / "b" / path.relative_to(tmp_path / "a")))
        assert (np.asarray(Image.open(path)) != other).mean() < 0.001


def test_pad_aspect_predicts_at_frame_size(tmp_path, toy_dataset, tiny_model):
    out = tmp_path / "pad"
    predict_dataset(tiny_model, toy_dataset, out, InferenceOptions(aspect="pad"))
    with Image.open(next(out.rglob("*.png"))) as image:
        assert image.size == (64, 48)


def test_wan_tiny_predicts_every_frame(tmp_path, long_clips):
    model = build_rem("rem-wan-tiny", random_init=True)
    summary = predict_dataset(model, long_clips, tmp_path / "wan", InferenceOptions(window=9), clip_ids=["toy000"])
    assert summary.frames == 30 and len(list((tmp_path / "wan" / "toy000" / "3").glob("*.png"))) == 30


def test_unknown_clip_is_a_usage_error(tmp_path, toy_dataset, tiny_model):
    with pytest.raises(UsageError, match="nope"):
        predict_dataset(tiny_model, toy_dataset, tmp_path / "x", clip_ids=["nope"])


def test_progress_is_reported_through_the_progress_protocol(tmp_path, toy_dataset, tiny_model):
    from refvps.progress import RecordingProgress

    progress = RecordingProgress()
    predict_dataset(tiny_model, toy_dataset, tmp_path / "p", InferenceOptions(window=4), progress=progress)
    assert progress.totals["frames"] == 20 and progress.completed["frames"] == 20
    assert progress.events[-1] == ("end", "frames")
    assert {e[3] for e in progress.events if e[0] == "advance"} == {"toy000", "toy001"}  # notes name the clip
