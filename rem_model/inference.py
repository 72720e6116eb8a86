"""Inference: predict every frame of every clip of a Ref-VPS-format dataset, for every expression.

A clip is cut into windows of ``window`` frames (72 for ModelScope; 73 for Wan, as the authors run
it, and for a shorter clip the longest of 61, 49, ..., 9 that fits, then the longest 4k + 1 that
fits). Consecutive windows start ``stride`` frames apart; where windows overlap, each frame's mask
probabilities are the mean over the windows that saw it (``blend: probs``), or the predicted
latents are averaged before decoding (``blend: latents``, per-frame VAEs only), so the masks do not
jump where one window hands over to the next. The last window ends at the last frame (it overlaps
the one before instead of shrinking). ``blend: first`` keeps each frame's prediction from the
first window that saw it, which with ``stride = window`` is exactly the authors' scripts.
BENCHMARKS.md (REM section) has the seam measurement behind the default; docs/REM.md compares
every step with the authors' code.

Each window is encoded by the VAE once and the latent is reused for all the clip's expressions,
batched. Soft masks are resized back to the frame (bilinear, after cropping any letterbox) and
thresholded at 0.5.

Predictions are written with :class:`refvps.predictions.PredictionWriter` as
``<out>/<clip>/<exp_id>/<frame>.png``; a clip is marked done once all its masks are written, so a
run that stops resumes at the first unfinished clip. Under ``accelerate launch`` the clips are split
across the processes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from refvps.dataset.format import Clip, Dataset
from refvps.dataset.validate import check_clip_names, open_valid_dataset
from refvps.errors import UsageError
from refvps.predictions import PredictionWriter, check_prediction_folder
from refvps.predictions.record import checkpoint_record, now_iso, resume_record, run_lifecycle
from refvps.progress import NO_PROGRESS, Progress
from rem_model.data.transforms import ASPECTS, Geometry, frames_tensor, probs_to_frame
from rem_model.distributed import process_state
from rem_model.model import REMModel

logger = logging.getLogger(__name__)

BLENDS = ("probs", "latents", "first")
# Windows overlap by this fraction of their length by default (stride = window - window // 4):
# BENCHMARKS.md (REM section) measures seams and cost for no overlap, 1/4 and 1/2.
DEFAULT_OVERLAP = 4


@dataclass(frozen=True)
class InferenceOptions:
    window: int | None = None  # frames per window; default: the config's (72 ModelScope, 73 Wan)
    stride: int | None = None  # frames between window starts; default: window - window // 4
    blend: str = "probs"  # overlapping frames: mean of mask probabilities, of latents, or the first window's
    aspect: str = "squash"  # "squash" (the authors' resize) or "pad" (keep the aspect ratio)
    expression_batch: int = 4  # expressions through the denoiser at once
    seed: int = 0  # seeds the t = 0 noise (ModelScope), so a run is reproducible
    threshold: float | None = None  # default: the config's 0.5

    def check(self, model: REMModel) -> None:
        if self.aspect not in ASPECTS:
            raise UsageError(f"unknown aspect {self.aspect!r}", hint=f"use one of {', '.join(ASPECTS)}")
        if self.expression_batch < 1:
            raise UsageError(
                f"--expression-batch must be at least 1, got {self.expression_batch}",
                hint="4 (every expression of a Ref-VPS clip at once) is the default; lower it if memory is short",
            )
        self._check_window(model)
        if self.blend not in BLENDS:
            raise UsageError(f"unknown blend {self.blend!r}", hint=f"use one of {', '.join(BLENDS)}")
        if self.blend == "latents" and model.config.temporal_compression > 1:
            raise UsageError(
                f"--blend latents needs a per-frame VAE; a {model.config.name} latent frame covers "
                f"{model.config.temporal_compression} frames of a window",
                hint="use --blend probs (the mean of the decoded mask probabilities)",
            )

    def _check_window(self, model: REMModel) -> None:
        if self.window is not None and self.window < 1:
            raise UsageError(
                f"--window must be at least 1, got {self.window}",
                hint=f"leave it out for the {model.config.name} default ({model.config.window} frames)",
            )
        if self.window is not None and not model.config.valid_window(self.window):
            k = model.config.temporal_compression
            raise UsageError(
                f"{model.config.name} takes windows of {k}k+1 frames, got {self.window}",
                hint=f"use e.g. --window {model.config.round_window(self.window)} or {model.config.window}",
            )
        if self.stride is not None and self.stride < 1:
            raise UsageError(f"--stride must be at least 1, got {self.stride}", hint="leave it out for the default")
        window = self.window or model.config.window
        if self.stride is not None and self.stride > window:
            # (A clip shorter than the window gets a shorter window; stride_for shortens the stride with it.)
            raise UsageError(
                f"--stride {self.stride} is longer than the window ({window} frames): the frames between two "
                "windows would get no mask",
                hint=f"use at most --stride {window} (windows side by side), or leave it out for the default "
                f"({window - window // DEFAULT_OVERLAP})",
            )

    def stride_for(self, window: int) -> int:
        """The stride for windows of ``window`` frames (never more than the window)."""
        if self.stride is not None:
            return min(self.stride, window)
        return max(1, window - window // DEFAULT_OVERLAP)


def window_starts(length: int, window: int, stride: int | None = None) -> list[int]:
    """First frames of the windows covering ``length`` frames, ``stride`` apart (default: ``window``);
    the last window ends at the last frame.

    >>> window_starts(30, 8), window_starts(30, 8, stride=6)
    ([0, 8, 16, 22], [0, 6, 12, 18, 22])
    """
    stride = stride or window
    if length <= window:
        return [0]
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] + window < length:
        starts.append(length - window)
    return starts


@dataclass(frozen=True)
class Window:
    """One window of a clip: the frames it feeds the model, and the frames it completes."""

    indices: tuple[int, ...]  # frame indices fed to the model
    final: tuple[int, ...]  # frames no later window covers: their masks are written after this one
    first: tuple[int, ...]  # frames no earlier window covered


def plan_windows(length: int, window: int, stride: int | None = None) -> list[Window]:
    """Windows of ``window`` frames (at most ``length``) covering a clip of ``length`` frames."""
    window = min(window, length)
    starts = window_starts(length, window, stride)
    plans = []
    for number, start in enumerate(starts):
        indices = tuple(range(start, start + window))
        later = starts[number + 1] if number + 1 < len(starts) else length
        earlier_end = starts[number - 1] + window if number else 0
        plans.append(
            Window(indices, tuple(i for i in indices if i < later), tuple(i for i in indices if i >= earlier_end))
        )
    return plans


def clip_seed(seed: int, clip_id: str, start: int) -> int:
    digest = hashlib.sha256(f"{seed}:{clip_id}:{start}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % (2**63)


class FrameBlender:
    """Per-frame sums of what the windows predicted for a frame (mask probabilities or latents), and
    how many windows contributed, until the frame is complete."""

    def __init__(self, blend: str):
        self.blend = blend
        self.sums: dict[int, torch.Tensor] = {}
        self.counts: dict[int, int] = {}

    def add(self, window: Window, values: torch.Tensor) -> None:
        """``values`` ``(E, T, ...)``: one entry per frame of ``window`` (for latents, T = frames)."""
        wanted = set(window.first) if self.blend == "first" else set(window.indices)
        for position, frame in enumerate(window.indices):
            if frame not in wanted:
                continue
            value = values[:, position]
            if frame in self.sums:
                self.sums[frame] += value
                self.counts[frame] += 1
            else:
                self.sums[frame] = value.clone()
                self.counts[frame] = 1

    def pop(self, frames: Sequence[int]) -> torch.Tensor:
        """The means of ``frames`` as ``(E, len(frames), ...)``; they are forgotten."""
        means = [self.sums.pop(f) / self.counts.pop(f) for f in frames]
        return torch.stack(means, dim=1)


@torch.no_grad()
def predict_clip(
    model: REMModel,
    clip: Clip,
    options: InferenceOptions = InferenceOptions(),
    *,
    on_frames: Callable[[int], None] | None = None,
) -> Iterator[tuple[list[int], dict[str, np.ndarray]]]:
    """Yield ``(frame indices, {exp_id: (n, H, W) bool masks})`` as windows complete frames."""
    options.check(model)
    expressions = list(clip.expressions)
    length = len(clip.frame_names)
    if not length or not expressions:
        return
    threshold = model.config.mask_threshold if options.threshold is None else options.threshold
    text = model.encode_text([e.text for e in expressions])
    size = model.config.window_for(length, options.window)
    blender = FrameBlender(options.blend)
    reader = _FrameReader(clip)
    geometry: Geometry | None = None
    for window in plan_windows(length, size, options.stride_for(size)):
        frames = reader.read(window.indices)
        if geometry is None:
            geometry = Geometry.fit(frames[0].shape[:2], model.config.resolution, options.aspect, model.config.resample)
        video = frames_tensor(frames, geometry).unsqueeze(0).to(model.device)
        generator = torch.Generator(device="cpu").manual_seed(clip_seed(options.seed, clip.id, window.indices[0]))
        z1 = model.encode_video(video, generator)
        blender.add(window, _window_predictions(model, z1, text, options))
        probs = _complete(model, blender.pop(window.final), options)
        masks = (probs_to_frame(probs, geometry) > threshold).cpu().numpy()
        yield list(window.final), {e.exp_id: mask for e, mask in zip(expressions, masks)}
        if on_frames is not None:
            on_frames(len(window.final))


def _window_predictions(
    model: REMModel, z1: torch.Tensor, text: torch.Tensor, options: InferenceOptions
) -> torch.Tensor:
    """What the window says for every expression: latents ``(E, T, C, h, w)`` for latent blending
    (per-frame VAEs, T latent frames = T frames), else mask probabilities ``(E, T, H, W)``."""
    out = []
    for first in range(0, text.shape[0], options.expression_batch):
        batch = text[first : first + options.expression_batch]
        latents = model.denoise(z1.expand(batch.shape[0], *z1.shape[1:]), batch).float()
        if options.blend == "latents":
            out.append(latents.transpose(1, 2))
        else:
            out.append(model.codec.decode_mask_probs(latents))
    return torch.cat(out)


def _complete(model: REMModel, blended: torch.Tensor, options: InferenceOptions) -> torch.Tensor:
    """Mask probabilities ``(E, n, H, W)`` of completed frames (blended latents are decoded here)."""
    if options.blend != "latents":
        return blended
    probs = []
    for first in range(0, blended.shape[0], options.expression_batch):
        latents = blended[first : first + options.expression_batch].transpose(1, 2)
        probs.append(model.codec.decode_mask_probs(latents))
    return torch.cat(probs)


class _FrameReader:
    """Decoded frames of the current window, kept for the next one (overlapping windows share frames)."""

    def __init__(self, clip: Clip):
        self.clip = clip
        self.cache: dict[int, np.ndarray] = {}

    def read(self, indices: Sequence[int]) -> list[np.ndarray]:
        self.cache = {
            i: self.cache[i] if i in self.cache else self.clip.read_frame(self.clip.frame_names[i]) for i in indices
        }
        return [self.cache[i] for i in indices]


@dataclass
class PredictSummary:
    """What a prediction run did (this process's share)."""

    out: Path
    clips_predicted: list[str] = field(default_factory=list)
    clips_skipped: list[str] = field(default_factory=list)  # already done (resumed)
    frames: int = 0
    frame_expressions: int = 0
    seconds: float = 0.0

    @property
    def frame_expressions_per_s(self) -> float:
        return self.frame_expressions / self.seconds if self.seconds > 0 else 0.0


def predict_dataset(
    model: REMModel,
    dataset: str | Path | Dataset,
    out: str | Path,
    options: InferenceOptions = InferenceOptions(),
    *,
    clip_ids: Sequence[str] | None = None,
    progress: Progress = NO_PROGRESS,
    run_info: dict | None = None,
) -> PredictSummary:
    """Predict every frame of every expression of every clip (of ``clip_ids``) into ``out``.

    Finished clips (``.done`` markers) are skipped, so calling it again resumes. Under a multi-process
    launch each process takes its share of the remaining clips. A dataset given as a path is validated
    first (:func:`refvps.dataset.validate.open_valid_dataset`, ground truth not needed): a broken one is
    refused before any work is done; a :class:`Dataset` is used as the caller opened it. ``run.json``
    records the run (:func:`refvps.predictions.record.run_lifecycle`).
    """
    options.check(model)
    data, wanted = _open(dataset, clip_ids)
    out = Path(out)
    check_prediction_folder(out, data.root)
    writer = PredictionWriter(out)
    state = process_state()
    done = writer.done_clips()
    fingerprint = run_fingerprint(model, options, run_info)
    previous = resume_record(out, fingerprint, done & set(wanted))
    summary = PredictSummary(out, clips_skipped=[c for c in wanted if c in done])
    todo = [c for c in wanted if c not in done]
    if summary.clips_skipped:
        logger.info("%d clip(s) already predicted in %s: resuming", len(summary.clips_skipped), out)
    record = _run_record(model, data, options, run_info, fingerprint, previous, len(wanted))
    with run_lifecycle(out, record, enabled=state.is_main_process):
        started = time.perf_counter()
        with state.split_between_processes(todo) as mine:
            _predict_clips(model, [data.clip(c) for c in mine], writer, options, summary, progress)
        summary.seconds = time.perf_counter() - started
        state.wait_for_everyone()
    return summary


def _open(dataset: str | Path | Dataset, clip_ids: Sequence[str] | None) -> tuple[Dataset, list[str]]:
    if isinstance(dataset, Dataset):  # opened, and validated, by the caller
        wanted = list(dict.fromkeys(clip_ids)) if clip_ids else dataset.clip_ids
        check_clip_names(dataset.root, dataset.clip_ids, wanted)
        return dataset, wanted
    return open_valid_dataset(dataset, clip_ids, check_masks=False, require_masks=False)


def _predict_clips(
    model: REMModel,
    clips: list[Clip],
    writer: PredictionWriter,
    options: InferenceOptions,
    summary: PredictSummary,
    progress: Progress,
) -> None:
    """Predict and write ``clips`` one after the other; a clip is marked done once it is complete."""
    with progress.stage("frames", total=sum(len(c.frame_names) for c in clips)):
        for clip in clips:
            advance = lambda n, clip=clip: progress.advance("frames", n, note=clip.id)  # noqa: E731
            for indices, masks in predict_clip(model, clip, options, on_frames=advance):
                names = [clip.frame_names[i] for i in indices]
                for exp_id, stack in masks.items():
                    writer.write_many(clip.id, exp_id, names, stack)
                summary.frames += len(indices)
                summary.frame_expressions += len(indices) * len(masks)
            details = {
                "frames": len(clip.frame_names),
                "expressions": [e.exp_id for e in clip.expressions],
                "config": model.config.name,
            }
            writer.mark_done(clip.id, details)
            summary.clips_predicted.append(clip.id)


def _run_record(model, data, options, run_info, fingerprint, previous, n_clips) -> dict:
    """The ``run.json`` of a REM run, in the format every baseline writes (refvps.predictions.record)."""
    info = dict(run_info or {})
    # The last weights loaded decide the masks (the shipped rem-tiny weights when no --checkpoint).
    checkpoint = info.get("checkpoint") or (model.weight_sources[-1] if model.weight_sources else None)
    weights = None
    if checkpoint:
        path = Path(checkpoint)
        weights_file = path / "model.safetensors" if path.is_dir() else path
        if weights_file.is_file():
            weights = checkpoint_record(weights_file, (previous or {}).get("checkpoint"))
    resumed = previous is not None and previous.get("fingerprint") == fingerprint
    return {
        "method": "rem",
        "title": "REM",
        "kind": "builtin",
        "config": model.config.name,
        "dataset": str(data.root.resolve()),
        "clips": n_clips,
        "pretrained": info.get("pretrained"),
        "checkpoint": weights or ({"path": str(checkpoint)} if checkpoint else None),
        "settings": {
            "options": dataclasses.asdict(options),
            **{k: info.get(k) for k in ("device", "dtype", "random_init")},
        },
        "fingerprint": fingerprint,
        "started": previous.get("started") if resumed and previous.get("started") else now_iso(),
    }


def run_fingerprint(model: REMModel, options: InferenceOptions, run_info: dict | None) -> dict:
    """What decides the masks of a run: a resumed run must agree on all of it."""
    info = run_info or {}
    window = options.window or model.config.window
    return {
        "config": model.config.name,
        "window": window,
        "stride": options.stride_for(window),
        "blend": options.blend,
        "aspect": options.aspect,
        "seed": options.seed,
        "threshold": options.threshold if options.threshold is not None else model.config.mask_threshold,
        **{key: info.get(key) for key in ("pretrained", "checkpoint", "dtype", "random_init")},
    }
