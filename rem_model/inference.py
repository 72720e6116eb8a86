"""Inference: predict every frame of every clip of a Ref-VPS-format dataset, for every expression.

A clip is cut into windows of ``window`` frames (72 for ModelScope, 4k + 1 for Wan, as trained);
a last window that would be short is moved back to overlap the previous one instead of shrinking
to a tiny tail (the authors' sample script silently predicts frames 10–29 only). Each window is
encoded by the VAE once and the latent is reused for all the clip's expressions, batched. Soft
masks are resized back to the frame (bilinear, after cropping any letterbox) and thresholded at 0.5.

Predictions are written with :class:`refvps.predictions.PredictionWriter` as
``<out>/<clip>/<exp_id>/<frame>.png``; a clip is marked done once all its masks are written, so a
run that stops resumes at the first unfinished clip. Under ``accelerate launch`` the clips are split
across the processes.
"""

from __future__ import annotations

import dataclasses
import hashlib
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
from refvps.predictions.record import check_same_run, checkpoint_record, now_iso, read_run, write_run
from rem_model.data.transforms import ASPECTS, Geometry, frames_tensor, probs_to_frame
from rem_model.model import REMModel


@dataclass(frozen=True)
class InferenceOptions:
    window: int | None = None  # frames per window; default: the config's (72 ModelScope, 81 Wan)
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
        if self.window is not None:
            if self.window < 1:
                raise UsageError(
                    f"--window must be at least 1, got {self.window}",
                    hint=f"leave it out for the {model.config.name} default ({model.config.window} frames)",
                )
            if not model.config.valid_window(self.window):
                k = model.config.temporal_compression
                raise UsageError(
                    f"{model.config.name} takes windows of {k}k+1 frames, got {self.window}",
                    hint=f"use e.g. --window {model.config.round_window(self.window)} or {model.config.window}",
                )


def window_starts(length: int, window: int) -> list[int]:
    """First frames of the windows covering ``length`` frames: full windows, the last one overlapping.

    >>> window_starts(30, 8)
    [0, 8, 16, 22]
    """
    if length <= window:
        return [0]
    starts = list(range(0, length - window + 1, window))
    if starts[-1] + window < length:
        starts.append(length - window)
    return starts


@dataclass(frozen=True)
class Window:
    """One window of a clip: the frames it feeds the model and the frames it is first to predict."""

    indices: tuple[int, ...]  # frame indices fed to the model (a short clip's last frame repeated)
    new: tuple[int, ...]  # positions in ``indices`` whose predictions are written


def plan_windows(length: int, window: int, model: REMModel) -> list[Window]:
    """Windows for a clip of ``length`` frames; every frame is predicted exactly once."""
    config = model.config
    if length <= window:
        # One window of the whole clip, padded (last frame repeated) to a length the VAE takes.
        size = length
        while not config.valid_window(size):
            size += 1
        indices = tuple(list(range(length)) + [length - 1] * (size - length))
        return [Window(indices, tuple(range(length)))]
    windows, done = [], 0
    for start in window_starts(length, window):
        indices = tuple(range(start, start + window))
        new = tuple(p for p, i in enumerate(indices) if i >= done)
        done = start + window
        windows.append(Window(indices, new))
    return windows


def clip_seed(seed: int, clip_id: str, start: int) -> int:
    digest = hashlib.sha256(f"{seed}:{clip_id}:{start}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % (2**63)


@torch.no_grad()
def predict_clip(
    model: REMModel,
    clip: Clip,
    options: InferenceOptions = InferenceOptions(),
    *,
    on_window: Callable[[int], None] | None = None,
) -> Iterator[tuple[list[int], dict[str, np.ndarray]]]:
    """Yield ``(frame indices, {exp_id: (n, H, W) bool masks})`` window by window."""
    options.check(model)
    window = options.window or model.config.window
    threshold = model.config.mask_threshold if options.threshold is None else options.threshold
    expressions = list(clip.expressions)
    if not clip.frame_names or not expressions:
        return
    text = model.encode_text([e.text for e in expressions])
    device = model.device
    geometry: Geometry | None = None
    for win in plan_windows(len(clip.frame_names), window, model):
        unique = sorted(set(win.indices))
        decoded = {i: clip.read_frame(clip.frame_names[i]) for i in unique}
        frames = [decoded[i] for i in win.indices]
        if geometry is None:
            geometry = Geometry.fit(frames[0].shape[:2], model.config.resolution, options.aspect)
        video = frames_tensor(frames, geometry).unsqueeze(0).to(device)
        generator = torch.Generator(device="cpu").manual_seed(clip_seed(options.seed, clip.id, win.indices[0]))
        z1 = model.encode_video(video, generator)
        keep = list(win.new)
        out: dict[str, np.ndarray] = {}
        for first in range(0, len(expressions), options.expression_batch):
            batch = expressions[first : first + options.expression_batch]
            z = z1.expand(len(batch), *z1.shape[1:])
            probs = model.predict_probs(z, text[first : first + len(batch)])[:, keep]
            masks = probs_to_frame(probs, geometry) > threshold
            for expression, mask in zip(batch, masks.cpu().numpy()):
                out[expression.exp_id] = mask
        yield [win.indices[p] for p in keep], out
        if on_window is not None:
            on_window(len(keep))


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
    progress: bool = True,
    run_info: dict | None = None,
) -> PredictSummary:
    """Predict every frame of every expression of every clip (of ``clip_ids``) into ``out``.

    Finished clips (``.done`` markers) are skipped, so calling it again resumes. Under a multi-process
    launch each process takes its share of the remaining clips. A dataset given as a path is validated
    first (:func:`refvps.dataset.validate.open_valid_dataset`, ground truth not needed): a broken one is
    refused before any work is done; a :class:`Dataset` is used as the caller opened it.
    """
    options.check(model)
    if isinstance(dataset, Dataset):  # opened, and validated, by the caller
        data = dataset
        wanted = list(dict.fromkeys(clip_ids)) if clip_ids else data.clip_ids
        check_clip_names(data.root, data.clip_ids, wanted)
    else:
        data, wanted = open_valid_dataset(dataset, clip_ids, check_masks=False, require_masks=False)
    check_prediction_folder(out, data.root)
    writer = PredictionWriter(out)
    state = process_state()
    done = writer.done_clips()
    fingerprint = run_fingerprint(model, options, run_info)
    previous = read_run(Path(out))
    check_same_run(previous, fingerprint, Path(out), done & set(wanted))
    summary = PredictSummary(Path(out), clips_skipped=[c for c in wanted if c in done])
    todo = [c for c in wanted if c not in done]
    record = None
    if state.is_main_process:
        record = _run_record(model, data, options, run_info, fingerprint, previous, len(wanted))
        write_run(Path(out), record)
    try:
        started = time.perf_counter()
        with state.split_between_processes(todo) as mine:
            mine = list(mine)
            clips = [data.clip(c) for c in mine]
            total = sum(len(c.frame_names) for c in clips)
            bar = _bar(progress and state.is_main_process)
            task = bar.add_task("REM", total=total) if bar else None
            try:
                if bar:
                    bar.start()
                for clip in clips:
                    if bar:
                        bar.update(task, description=f"REM {clip.id}")
                    advance = (lambda n: bar.update(task, advance=n)) if bar else None
                    for indices, masks in predict_clip(model, clip, options, on_window=advance):
                        names = [clip.frame_names[i] for i in indices]
                        for exp_id, stack in masks.items():
                            writer.write_many(clip.id, exp_id, names, stack)
                        summary.frames += len(indices)
                        summary.frame_expressions += len(indices) * len(masks)
                    writer.mark_done(
                        clip.id,
                        {
                            "frames": len(clip.frame_names),
                            "expressions": [e.exp_id for e in clip.expressions],
                            "config": model.config.name,
                        },
                    )
                    summary.clips_predicted.append(clip.id)
            finally:
                if bar:
                    bar.stop()
    except BaseException as exc:
        # The record must not say "running" once the run is gone; finished clips stay done.
        if record is not None:
            record.update(status="interrupted" if isinstance(exc, KeyboardInterrupt) else "error", finished=now_iso())
            write_run(Path(out), record)
        raise
    summary.seconds = time.perf_counter() - started
    state.wait_for_everyone()
    if record is not None:
        record.update(status="complete", finished=now_iso(), exit_status=0)
        write_run(Path(out), record)
    return summary


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
        "status": "running",
    }


def run_fingerprint(model: REMModel, options: InferenceOptions, run_info: dict | None) -> dict:
    """What decides the masks of a run: a resumed run must agree on all of it."""
    info = run_info or {}
    return {
        "config": model.config.name,
        "window": options.window or model.config.window,
        "aspect": options.aspect,
        "seed": options.seed,
        "threshold": options.threshold if options.threshold is not None else model.config.mask_threshold,
        **{key: info.get(key) for key in ("pretrained", "checkpoint", "dtype", "random_init")},
    }


def process_state():
    """accelerate's view of the processes (clips are split across them)."""
    from accelerate import PartialState

    from rem_model.train import cpu_only_distributed

    return PartialState(cpu=cpu_only_distributed())


def _bar(enabled: bool):
    if not enabled:
        return None
    from refvps.cli.common import progress_bar

    return progress_bar()
