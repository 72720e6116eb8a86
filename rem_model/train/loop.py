"""The training loop, diffusers-example style: set up (accelerator, data, model, optimiser), then
epochs of micro-steps, checkpoints and the final weights."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

from refvps.errors import ConfigError, RefvpsError
from refvps.fileio import atomic_write_json
from refvps.progress import NO_PROGRESS, Progress
from rem_model.config import REMConfig
from rem_model.data import MixedDataset, build_training_dataset, collate
from rem_model.distributed import cpu_only_distributed
from rem_model.model import REMModel, cast
from rem_model.train.batches import AlternatingBatches, EpochPermutation, TrainState, seed_step
from rem_model.train.config import TrainConfig
from rem_model.train.saving import check_new_run, find_checkpoint, save_final, save_training_state

logger = logging.getLogger(__name__)

LOG_FILE = "train_log.jsonl"
STAGE = "steps"  # the Progress stage of a run


@dataclass
class TrainResult:
    global_step: int
    final_dir: Path | None
    last_loss: float | None
    losses: list[float]
    seconds: float
    is_main_process: bool = True


@dataclass
class TrainingRun:
    """What a run holds once it is set up (what diffusers' examples keep as locals of ``main``)."""

    config: TrainConfig
    accelerator: Any
    model: REMModel
    denoiser: torch.nn.Module  # model.denoiser as accelerate prepared it (DDP / FSDP wrapper)
    optimizer: Any
    lr_scheduler: Any
    loader: DataLoader
    sampler: EpochPermutation | AlternatingBatches
    dataset: MixedDataset
    state: TrainState
    total_steps: int
    epochs: int
    output_dir: Path


# ---------------------------------------------------------------------------------------- run
def run(config: TrainConfig, *, progress: Progress = NO_PROGRESS) -> TrainResult:
    """Train one stage. Returns the step reached and where the final weights went."""
    started = time.perf_counter()
    training = setup_run(config)
    resume(training)
    main = training.accelerator.is_main_process
    log = RunLog(training.accelerator, training.output_dir, config.log_every, training.total_steps)
    losses: list[float] = []
    progress = progress if main else NO_PROGRESS
    progress.start(STAGE, training.total_steps, note=f"stage {config.stage}")
    progress.update(STAGE, training.state.global_step)

    def on_step(loss: float) -> None:
        progress.advance(STAGE, note=f"stage {config.stage} loss {loss:.4f}")

    try:
        while not finished(training):
            train_epoch(training, log, losses, on_step)
    except RefvpsError as exc:
        raise _unwrap_worker_error(exc) from None
    finally:
        progress.end(STAGE)
    log.maybe_write(training.state.global_step, training.lr_scheduler.get_last_lr()[0], force=True)
    training.accelerator.wait_for_everyone()
    final_dir = save_final(
        training.accelerator, training.model, training.denoiser, training.output_dir, config, training.state
    )
    training.accelerator.end_training()
    seconds = time.perf_counter() - started
    last = losses[-1] if losses else None
    return TrainResult(training.state.global_step, final_dir, last, losses, seconds, main)


# ---------------------------------------------------------------------------------------- setup
def setup_run(config: TrainConfig) -> TrainingRun:
    """Accelerator, data, model (frozen parts in the mixed-precision dtype), optimiser and learning-rate
    schedule, all prepared by accelerate; the run file and the trackers."""
    from accelerate.utils import set_seed

    output_dir = Path(config.output_dir)
    check_new_run(output_dir, config.resume_from_checkpoint)
    output_dir.mkdir(parents=True, exist_ok=True)
    accelerator = make_accelerator(config)
    set_seed(config.seed)
    rem_config = _peek_config(config)
    # Data first: a tiny model's word vocabulary may be built from it.
    dataset, loader, sampler, num_frames = build_data(config, rem_config, accelerator.num_processes)
    model = build_model(config, weight_dtype(accelerator.mixed_precision), dataset.texts)
    summary = prepare_model(model, config, accelerator)
    optimizer = build_optimizer(model, config, model.config)
    batches_per_epoch = math.ceil(len(loader) / accelerator.num_processes)
    # accelerate also steps at the end of each epoch's batches (as diffusers' examples count, ceil)
    steps_per_epoch = max(1, math.ceil(batches_per_epoch / accelerator.gradient_accumulation_steps))
    total_steps = config.max_steps or steps_per_epoch * config.epochs
    lr_scheduler = build_lr_scheduler(optimizer, config, total_steps)
    denoiser, optimizer, loader, lr_scheduler = accelerator.prepare(model.denoiser, optimizer, loader, lr_scheduler)
    state = TrainState()
    accelerator.register_for_checkpointing(state)
    if accelerator.is_main_process:
        accelerator.init_trackers("rem", config=_flat(config.to_json()))
        _write_run_file(output_dir, config, model, summary, num_frames, len(dataset), accelerator)
    epochs = math.ceil(total_steps / steps_per_epoch)
    return TrainingRun(
        config=config,
        accelerator=accelerator,
        model=model,
        denoiser=denoiser,
        optimizer=optimizer,
        lr_scheduler=lr_scheduler,
        loader=loader,
        sampler=sampler,
        dataset=dataset,
        state=state,
        total_steps=total_steps,
        epochs=epochs,
        output_dir=output_dir,
    )


def make_accelerator(config: TrainConfig):
    """The accelerator; settings the config leaves open (``mixed_precision: null``) come from
    ``accelerate launch`` / ``accelerate config`` (their environment variables), else accelerate's
    defaults. A value in the config wins, and a different launcher setting is reported."""
    import os

    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    project = ProjectConfiguration(project_dir=config.output_dir, logging_dir=str(Path(config.output_dir) / "logs"))
    launcher = os.environ.get("ACCELERATE_MIXED_PRECISION")
    if config.mixed_precision is not None and launcher not in (None, config.mixed_precision):
        logger.warning(
            "mixed_precision: %s from the training config overrides %s set by accelerate launch / config",
            config.mixed_precision,
            launcher,
        )
    try:
        return Accelerator(
            cpu=config.cpu or cpu_only_distributed(),
            gradient_accumulation_steps=config.gradient_accumulation_steps,
            mixed_precision=config.mixed_precision,
            log_with=config.report_to,
            project_config=project,
            # The scheduler steps once per optimiser step (not once per process), so warm-up and step
            # rules count optimiser steps whatever the number of processes.
            step_scheduler_with_optimizer=False,
        )
    except ValueError as exc:  # accelerate's word on settings it cannot run with (report_to, precision, ...)
        raise ConfigError(
            f"accelerate refuses the run's settings: {exc}",
            hint="check report_to and mixed_precision in the training config, and the launcher's settings "
            "('accelerate env' shows them)",
        ) from None


def weight_dtype(mixed_precision: str) -> torch.dtype:
    """The dtype of the frozen modules (VAE, text encoder), as in diffusers' examples."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mixed_precision, torch.float32)


def build_data(
    config: TrainConfig, rem_config: REMConfig, processes: int
) -> tuple[MixedDataset, DataLoader, EpochPermutation | AlternatingBatches, int]:
    """The mixed dataset, its loader and sampler, and the frames per (video) sample."""
    num_frames = config.num_frames or (1 if config.stage == "1" else rem_config.train_frames)
    if rem_config.family == "wan" and not rem_config.valid_window(num_frames):
        raise ConfigError(
            f"Wan samples need 4k+1 frames, got num_frames={num_frames}", hint="use e.g. num_frames: 5, 9 or 17"
        )
    alternate = num_frames > 1 and _image_batches(config, rem_config) == "alternate"
    dataset = build_training_dataset(
        config.data,
        resolution=rem_config.resolution,
        num_frames=num_frames,
        image_frames=1 if alternate else None,
        aspect=config.aspect,
        resample=rem_config.resample,
        seed=config.seed,
    )
    groups = dataset.indices_by_frames()
    loader_options: dict[str, Any] = {"collate_fn": collate, "num_workers": config.num_workers}
    if len(groups) == 2:
        sampler: EpochPermutation | AlternatingBatches = AlternatingBatches(
            groups[1], groups[num_frames], config.batch_size, config.seed, group=processes
        )
        logger.info(
            "one-frame image batches alternate with %d-frame video batches (%d image, %d video samples)",
            num_frames,
            len(groups[1]),
            len(groups[num_frames]),
        )
        loader = DataLoader(dataset, batch_sampler=sampler, **loader_options)
    else:
        sampler = EpochPermutation(len(dataset), config.seed)
        loader = DataLoader(dataset, batch_size=config.batch_size, sampler=sampler, drop_last=True, **loader_options)
    if len(loader) == 0:
        raise ConfigError(
            f"{len(dataset)} training samples do not fill one batch of {config.batch_size} per process",
            hint="add data or lower batch_size",
        )
    return dataset, loader, sampler, num_frames


def _image_batches(config: TrainConfig, rem_config: REMConfig) -> str:
    if config.image_batches != "auto":
        return config.image_batches
    return "alternate" if rem_config.family == "wan" else "pseudo-video"


def build_model(config: TrainConfig, frozen_dtype: torch.dtype, texts: Callable[[], list[str]] | None = None):
    """The model: the trained denoiser in float32, the frozen VAE and text encoder loaded directly in
    ``frozen_dtype`` (the mixed-precision dtype, as diffusers' examples keep them)."""
    from rem_model.builder import build_rem

    model = build_rem(
        config.model,
        pretrained=config.pretrained,
        checkpoint=config.init_checkpoint,
        random_init=config.random_init,
        seed=config.seed,
        trust_checkpoint=config.trust_checkpoint,
        frozen_dtype=frozen_dtype,
    )
    if config.tokenizer_texts_from_data and texts is not None:
        from rem_model.tokenizer import offline_tokenizer

        vocab_size = model.text_encoder.config.vocab_size
        model.tokenizer = offline_tokenizer(vocab_size, model.config.max_text_tokens, texts())
    return model


def prepare_model(model: REMModel, config: TrainConfig, accelerator) -> Any:
    """Freeze for the stage (and add LoRA), then place the model: the frozen VAE and text encoder in
    the mixed-precision dtype, the trained denoiser in fp32 (accelerate autocasts its forward)."""
    summary = model.configure_trainable(config.stage, lora=config.lora)
    if config.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    if config.latent_cache:
        if model.config.family == "wan":
            raise ConfigError(
                "latent_cache works with per-frame VAEs (ModelScope family), not Wan's video VAE",
                hint="set latent_cache: 0",
            )
        model.codec.enable_cache(config.latent_cache)
    for frozen in (model.vae, model.text_encoder):
        cast(frozen, accelerator.device, weight_dtype(accelerator.mixed_precision))
    model.denoiser.to(accelerator.device)
    model.denoiser.train()
    return summary


def parameter_groups(model: REMModel, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: no weight decay on biases and normalisation weights (as the authors do)."""
    decay, no_decay = [], []
    for name, param in model.denoiser.named_parameters():
        if not param.requires_grad:
            continue
        if name.endswith(".bias") or re.search(r"norm", name) or param.ndim <= 1:
            no_decay.append(param)
        else:
            decay.append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def build_optimizer(model: REMModel, config: TrainConfig, rem_config: REMConfig) -> torch.optim.Optimizer:
    lr = config.lr if config.lr is not None else (rem_config.lr_stage1 if config.stage == "1" else rem_config.lr_stage2)
    weight_decay = config.weight_decay if config.weight_decay is not None else rem_config.weight_decay
    groups = parameter_groups(model, weight_decay)
    if not groups:
        raise ConfigError(
            "nothing to train: every denoiser parameter is frozen", hint="check stage and lora in the training config"
        )
    return torch.optim.AdamW(groups, lr=lr, betas=(config.adam_beta1, config.adam_beta2), eps=config.adam_epsilon)


def build_lr_scheduler(optimizer, config: TrainConfig, total_steps: int):
    from diffusers.optimization import get_scheduler

    return get_scheduler(
        config.lr_scheduler,
        optimizer,
        step_rules=config.lr_step_rules,
        num_warmup_steps=config.lr_warmup_steps,
        num_training_steps=total_steps,
    )


def resume(training: TrainingRun) -> None:
    """``resume_from_checkpoint``: load an accelerate state (``latest`` = the newest checkpoint-N)."""
    which = training.config.resume_from_checkpoint
    if not which:
        return
    path = find_checkpoint(training.output_dir, which)
    main = training.accelerator.is_main_process
    if path is None:
        if main:
            logger.info("no checkpoint in %s to resume from: starting a new run", training.output_dir)
        return
    training.accelerator.load_state(str(path))
    if main:
        logger.info("resumed from %s at step %d", path, training.state.global_step)


# ---------------------------------------------------------------------------------------- steps
def finished(training: TrainingRun) -> bool:
    return training.state.global_step >= training.total_steps or training.state.epoch >= training.epochs


def train_epoch(
    training: TrainingRun, log: "RunLog", losses: list[float], on_step: Callable[[float], None] | None = None
) -> None:
    """The rest of the current epoch (a resumed run skips the batches it already consumed)."""
    state, accelerator = training.state, training.accelerator
    training.sampler.use_epoch(state.epoch)
    training.dataset.use_epoch(state.epoch)
    loader = (
        accelerator.skip_first_batches(training.loader, state.step_in_epoch) if state.step_in_epoch else training.loader
    )
    for batch in loader:
        loss = micro_step(training, batch, log)
        if not accelerator.sync_gradients:
            continue  # accumulating: the optimiser has not stepped yet
        state.global_step += 1
        losses.append(loss)
        if on_step is not None:
            on_step(loss)
        log.maybe_write(state.global_step, training.lr_scheduler.get_last_lr()[0])
        config = training.config
        if config.checkpointing_steps and state.global_step % config.checkpointing_steps == 0:
            save_training_state(accelerator, training.output_dir, state, config)
        if state.global_step >= training.total_steps:
            return
    state.epoch += 1
    state.step_in_epoch = 0


def micro_step(training: TrainingRun, batch: dict, log: "RunLog") -> float:
    """Forward and backward of one batch; the optimiser steps when accelerate says the gradients of
    ``gradient_accumulation_steps`` batches are accumulated. Returns the loss, averaged over processes."""
    state, accelerator, config = training.state, training.accelerator, training.config
    generator = seed_step(config.seed, state.batches_seen, accelerator.process_index)
    with accelerator.accumulate(training.denoiser):
        loss = training_step(training.model, training.denoiser, batch, accelerator.device, generator)
        accelerator.backward(loss)
        if accelerator.sync_gradients:
            log.grad_norm = clip_gradients(accelerator, training.denoiser.parameters(), config)
        training.optimizer.step()
        if accelerator.sync_gradients:
            training.lr_scheduler.step()
        training.optimizer.zero_grad(set_to_none=True)
    state.step_in_epoch += 1
    state.batches_seen += 1
    value = accelerator.gather(loss.detach().reshape(1)).mean().item()
    batch_size, frames = batch["frames"].shape[:2]
    log.add(value, batch_size * accelerator.num_processes, batch_size * frames * accelerator.num_processes)
    return value


def training_step(model: REMModel, denoiser, batch: dict, device, generator: torch.Generator) -> torch.Tensor:
    frames = batch["frames"].to(device, non_blocking=True)
    masks = batch["masks"].to(device, non_blocking=True)
    return model.loss(frames, masks, batch["text"], denoiser=denoiser, generator=generator)


def clip_gradients(accelerator, parameters, config: TrainConfig) -> float | None:
    norm = None
    if config.max_grad_value is not None:
        accelerator.clip_grad_value_(parameters, config.max_grad_value)
    if config.max_grad_norm is not None:
        norm = accelerator.clip_grad_norm_(parameters, config.max_grad_norm)
        norm = float(norm) if norm is not None else None
    return norm


class RunLog:
    """Loss and throughput: a JSON line per logging step, the trackers, and a log line."""

    def __init__(self, accelerator, output_dir: Path, every: int, total: int):
        self.accelerator = accelerator
        self.path = output_dir / LOG_FILE
        self.every = max(1, every)
        self.total = total
        self.window_start = time.perf_counter()
        self.window_samples = 0
        self.window_frames = 0
        self.window_losses: list[float] = []
        self.grad_norm: float | None = None  # of the last optimiser step (before clipping)

    def add(self, loss: float, samples: int, frames: int) -> None:
        self.window_losses.append(loss)
        self.window_samples += samples
        self.window_frames += frames

    def maybe_write(self, step: int, lr: float, force: bool = False) -> dict | None:
        if not self.window_losses or (step % self.every and not force):
            return None
        elapsed = max(1e-9, time.perf_counter() - self.window_start)
        record = {
            "step": step,
            "loss": float(np.mean(self.window_losses)),
            "lr": lr,
            "grad_norm": self.grad_norm,
            "samples_per_s": self.window_samples / elapsed,
            "frames_per_s": self.window_frames / elapsed,
            "time": time.time(),
        }
        self.accelerator.log({k: v for k, v in record.items() if v is not None and k != "time"}, step=step)
        if self.accelerator.is_main_process:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
            logger.info(
                "step %d/%d  loss %.5f  lr %.2e  %.2f samples/s  %.1f frames/s",
                step,
                self.total,
                record["loss"],
                lr,
                record["samples_per_s"],
                record["frames_per_s"],
            )
        self.window_start = time.perf_counter()
        self.window_samples = self.window_frames = 0
        self.window_losses = []
        return record


# ---------------------------------------------------------------------------------------- helpers
def _unwrap_worker_error(exc: RefvpsError) -> RefvpsError:
    """A data loader worker re-raises our errors with its traceback as the message and no hint: keep
    the original message only."""
    text = str(exc)
    if "Original Traceback" not in text:
        return exc
    last = [line for line in text.strip().splitlines() if line.strip()][-1]
    message = last.split(": ", 1)[1] if ": " in last else last
    hint = exc.hint or "a data loader worker failed on this sample; 'num_workers: 0' runs the loading in this process"
    try:
        return type(exc)(message, hint=hint, path=exc.path)
    except TypeError:  # an error class with another signature
        return RefvpsError(message, hint=hint, path=exc.path)


def _peek_config(config: TrainConfig) -> REMConfig:
    """The REM config of a run, before the model is built (our init checkpoint may carry it)."""
    from rem_model.checkpoints import inspect_checkpoint
    from rem_model.config import get_config

    if config.init_checkpoint:
        path = Path(config.init_checkpoint)
        if path.is_dir():
            info = inspect_checkpoint(path)
            if info.config is not None:
                return info.config
    return get_config(config.model)


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, (int, float, str, bool)) or value is None:
            flat[name] = value if value is not None else "none"
        else:
            flat[name] = json.dumps(value)
    return flat


def _write_run_file(
    output_dir: Path, config: TrainConfig, model: REMModel, summary, num_frames: int, samples: int, accelerator
) -> None:
    """``<output_dir>/run.json``: the settings as resolved (launcher settings included)."""
    atomic_write_json(
        output_dir / "run.json",
        {
            "train_config": config.to_json(),
            "rem_config": model.config.to_json(),
            "trainable": dataclasses.asdict(summary),
            "num_frames": num_frames,
            "samples_per_epoch": samples,
            "processes": accelerator.num_processes,
            "mixed_precision": accelerator.mixed_precision,
            "gradient_accumulation_steps": accelerator.gradient_accumulation_steps,
            "frozen_dtype": str(next(model.vae.parameters()).dtype),
        },
    )
