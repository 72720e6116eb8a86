"""Train REM with accelerate: ``refvps train-rem CONFIG`` or ``accelerate launch -m rem_model.train CONFIG``.

Follows diffusers' training examples (``train_text_to_image.py``), split into small functions:
accelerate for devices and processes (DDP, or FSDP through ``accelerate config``), mixed precision
(bf16), gradient accumulation, gradient checkpointing, ``save_state`` checkpoints every
``checkpointing_steps`` and ``--resume-from-checkpoint latest``, loss and throughput logged to
``<output_dir>/train_log.jsonl`` (and to tensorboard / wandb with ``report_to``), a rich progress bar.

The config file (YAML or JSON) fills :class:`TrainConfig`; a minimal stage-2 run::

    model: rem-ms
    pretrained: ali-vilab/text-to-video-ms-1.7b       # or a local diffusers folder
    init_checkpoint: runs/stage1/final                 # the stage-1 result (or the authors' .pth)
    stage: 2
    data:
      - {kind: ytvos, root: data/ref-youtube-vos}
      - {kind: refcoco, root: data/refcoco, images: data/coco/train2014, max_samples: 12000}
    output_dir: runs/stage2
    mixed_precision: bf16
    gradient_checkpointing: true

Stage 1 (``stage: 1``) trains the spatial weights on one-frame samples (images); stage 2 all
weights on ``train_frames``-frame windows (videos and pseudo-videos). Wan trains in one stage
(``stage: all``). The final weights go to ``<output_dir>/final`` (our checkpoint format).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from refvps.errors import ConfigError, RefvpsError, UsageError
from refvps.fileio import read_json
from rem_model.config import REMConfig, reject_unknown_keys
from rem_model.data import DataSource, build_training_dataset, collate
from rem_model.model import LoraSettings, REMModel, cast

CHECKPOINT_PREFIX = "checkpoint-"
PARTIAL_SUFFIX = ".partial"
FINAL_DIR = "final"
LOG_FILE = "train_log.jsonl"


# ---------------------------------------------------------------------------------------- config
@dataclass
class TrainConfig:
    """Everything a training run needs; read from a YAML/JSON file by :func:`load_train_config`."""

    model: str = "rem-ms"  # registry name, a config JSON, or a checkpoint folder of ours
    pretrained: str | None = None  # the backbone: local diffusers folder or hub id
    init_checkpoint: str | None = None  # REM weights to start from (stage-1 result, authors' file)
    random_init: bool = False  # random backbone (tests, tiny models trained from scratch)
    trust_checkpoint: bool = False
    stage: str = "2"  # "1": spatial weights on images; "2" / "all": all weights
    data: list[DataSource] = field(default_factory=list)
    output_dir: str = "rem-output"
    num_frames: int | None = None  # default: 1 in stage 1, else the config's train_frames
    aspect: str = "squash"
    batch_size: int = 1  # per process
    gradient_accumulation_steps: int = 1
    epochs: int = 1
    max_steps: int | None = None  # optimiser steps; overrides epochs
    lr: float | None = None  # default: the config's lr for the stage (paper: 1e-6)
    weight_decay: float | None = None  # default: the config's (1e-5); never on biases and norms
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    lr_scheduler: str = "constant"  # any of diffusers.optimization.get_scheduler
    lr_warmup_steps: int = 0
    lr_step_rules: str | None = None  # piecewise_constant, e.g. "1:3500,0.1" (the authors' Wan run)
    max_grad_norm: float | None = 1.0
    max_grad_value: float | None = None  # the authors clamp each gradient value to ±0.1
    mixed_precision: str = "no"  # "no", "bf16", "fp16"
    gradient_checkpointing: bool = False
    lora: LoraSettings | None = None
    checkpointing_steps: int = 500
    checkpoints_total_limit: int | None = 3
    resume_from_checkpoint: str | None = None  # "latest" or a checkpoint folder
    seed: int = 0
    num_workers: int = 2
    log_every: int = 10
    report_to: str | None = None  # "tensorboard", "wandb"
    cpu: bool = False  # force the CPU (also chosen for multi-process runs on a machine without a GPU)
    tokenizer_texts_from_data: bool = False  # tiny models: build the word vocabulary from the data
    latent_cache: int = 0  # remember the VAE latents of this many frames/masks (per-frame VAEs only)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str | Path | None = None) -> "TrainConfig":
        reject_unknown_keys(cls, data, what="training config", source=source)
        values = dict(data)
        sources = values.get("data") or []
        if not isinstance(sources, list) or not all(isinstance(s, (dict, DataSource)) for s in sources):
            raise ConfigError(
                "training config: 'data' must be a list of sources",
                hint="e.g. data: [{kind: refvps, root: data/synthetic}]",
                path=source,
            )
        values["data"] = [s if isinstance(s, DataSource) else DataSource.from_json(s) for s in sources]
        if isinstance(values.get("lora"), dict):
            lora = dict(values["lora"])
            reject_unknown_keys(LoraSettings, lora, what="lora", source=source)
            if "target_modules" in lora:
                lora["target_modules"] = tuple(lora["target_modules"])
            values["lora"] = LoraSettings(**lora)
        elif values.get("lora") is True:
            values["lora"] = LoraSettings()
        elif values.get("lora") is False:
            values["lora"] = None
        if "stage" in values:
            values["stage"] = str(values["stage"])
        for item in dataclasses.fields(cls):
            if item.name in values:
                values[item.name] = _coerce_number(item, values[item.name], source)
        config = cls(**values)
        config.check()
        return config

    def check(self) -> None:
        hint = "fix the training config, or override the key: --set KEY=VALUE"
        if self.stage not in ("1", "2", "all"):
            raise ConfigError(
                f"stage must be 1, 2 or all, got {self.stage!r}",
                hint="1: spatial weights on images; 2 / all: every weight",
            )
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ConfigError(f"mixed_precision must be no, bf16 or fp16, got {self.mixed_precision!r}", hint=hint)
        if self.batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ConfigError("batch_size and gradient_accumulation_steps must be at least 1", hint=hint)
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError("max_steps must be at least 1", hint=hint)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return json.loads(json.dumps(data, default=list))


def _coerce_number(item: dataclasses.Field, value: Any, source) -> Any:
    """YAML reads '1e-6' (no dot) as a string; numeric settings accept it as the number it means."""
    kind = str(item.type)
    if not isinstance(value, str) or not ("float" in kind or kind.startswith("int")):
        return value
    try:
        return float(value) if "float" in kind else int(value)
    except ValueError:
        raise ConfigError(
            f"training config: {item.name} must be a number, got {value!r}", hint="e.g. lr: 1.0e-6", path=source
        ) from None


def _parse_value(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def load_train_config(path: str | Path | None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML/JSON training config and apply ``key=value`` overrides (values parsed as YAML)."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"training config not found: {path}", hint="pass a YAML or JSON file", path=path)
        if path.suffix in (".yaml", ".yml"):
            import yaml

            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(
                    f"{path} is not valid YAML: {exc}", hint="rem_model/configs/*.yaml are examples", path=path
                ) from None
        else:
            data = read_json(path, what="training config")
        if not isinstance(data, dict):
            raise ConfigError(
                f"{path} must hold a mapping of settings", hint="rem_model/configs/*.yaml are examples", path=path
            )
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"override {item!r} is not key=value", hint="e.g. --set lr=1e-5 --set max_steps=100")
        data[key.strip()] = _parse_value(value)
    return TrainConfig.from_dict(data, source=path)


# ---------------------------------------------------------------------------------------- state
@dataclass
class TrainState:
    """Progress saved with every checkpoint (registered with ``accelerator.save_state``)."""

    global_step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0  # batches of the current epoch already consumed
    batches_seen: int = 0  # micro-batches of this process since the start (seeds the t = 0 noise)

    def state_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    def load_state_dict(self, state: dict[str, int]) -> None:
        for key, value in state.items():
            setattr(self, key, int(value))


@dataclass
class TrainResult:
    global_step: int
    final_dir: Path | None
    last_loss: float | None
    losses: list[float]
    seconds: float


class EpochPermutation(Sampler[int]):
    """A shuffled order that depends only on (seed, epoch), so a resumed run sees the same batches.

    The epoch is chosen with :meth:`use_epoch` (not ``set_epoch``: accelerate calls ``set_epoch``
    with its own count of passes over the loader, which restarts at 0 after a resume).
    """

    def __init__(self, size: int, seed: int):
        self.size = size
        self.seed = seed
        self.epoch = 0

    def use_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        return iter(np.random.default_rng([self.seed, self.epoch, 99]).permutation(self.size).tolist())


# ---------------------------------------------------------------------------------------- pieces
def make_accelerator(config: TrainConfig):
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    project = ProjectConfiguration(project_dir=config.output_dir, logging_dir=str(Path(config.output_dir) / "logs"))
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


def cpu_only_distributed() -> bool:
    """Several processes (torchrun) on a machine without a GPU: accelerate runs them as MULTI_CPU
    (gloo) only when told ``cpu=True``; otherwise every process would train alone, silently."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    return world > 1 and not torch.cuda.is_available()


def weight_dtype(mixed_precision: str) -> torch.dtype:
    """The dtype of the frozen modules (VAE, text encoder), as in diffusers' examples."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mixed_precision, torch.float32)


def build_model(config: TrainConfig, texts: Callable[[], list[str]] | None = None) -> REMModel:
    from rem_model.builder import build_rem

    model = build_rem(
        config.model,
        pretrained=config.pretrained,
        checkpoint=config.init_checkpoint,
        random_init=config.random_init,
        seed=config.seed,
        trust_checkpoint=config.trust_checkpoint,
    )
    if config.tokenizer_texts_from_data and texts is not None:
        from rem_model.tokenizer import offline_tokenizer

        vocab_size = model.text_encoder.config.vocab_size
        model.tokenizer = offline_tokenizer(vocab_size, model.config.max_text_tokens, texts())
    return model


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


def numbered_checkpoints(output_dir: Path) -> list[Path]:
    """The ``checkpoint-N`` folders of ``output_dir``, oldest (lowest N) first."""
    return sorted(
        (
            p
            for p in output_dir.glob(f"{CHECKPOINT_PREFIX}*")
            if p.is_dir() and p.name[len(CHECKPOINT_PREFIX) :].isdigit()
        ),
        key=lambda p: int(p.name[len(CHECKPOINT_PREFIX) :]),
    )


def find_checkpoint(output_dir: Path, which: str) -> Path | None:
    """``latest`` → the highest ``checkpoint-N`` in ``output_dir`` (None if there is none); else a path."""
    if which != "latest":
        path = Path(which)
        if not path.is_dir():
            raise ConfigError(
                f"checkpoint to resume from not found: {path}", hint="pass 'latest' or a checkpoint-N folder", path=path
            )
        return path
    found = numbered_checkpoints(output_dir)
    return found[-1] if found else None


def prune_checkpoints(output_dir: Path, keep: int | None) -> None:
    """Delete the oldest checkpoints so that ``keep`` − 1 remain before the next one is saved."""
    if keep is None:
        return
    found = numbered_checkpoints(output_dir)
    for path in found[: max(0, len(found) - keep + 1)]:
        shutil.rmtree(path, ignore_errors=True)


def step_generator(seed: int, step: int, process: int) -> torch.Generator:
    """The generator of the t = 0 noise of one step: a function of the step, so resumes repeat it."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step * 9_973 + process) % (2**63))


def seed_step(seed: int, step: int, process: int) -> torch.Generator:
    """Seed the global RNG for one micro-step and return the t = 0 noise generator.

    The ModelScope UNet's temporal convolutions use dropout (p = 0.1) while training; it draws
    from the global RNG, which data loaders also draw from when they start. Seeding it per step
    makes a resumed run draw the same dropout masks as an uninterrupted one.
    """
    torch.manual_seed((seed * 7_919 + step * 104_729 + process * 15_485_863 + 1) % (2**63))
    return step_generator(seed, step, process)


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
    """Loss and throughput: a JSON line per logging step, the trackers, and a console line."""

    def __init__(self, accelerator, output_dir: Path, every: int, total: int, console=None):
        self.accelerator = accelerator
        self.path = output_dir / LOG_FILE
        self.every = max(1, every)
        self.total = total
        self.console = console
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
            if self.console is not None:
                self.console.print(
                    f"step {step}/{self.total}  loss {record['loss']:.5f}  lr {lr:.2e}  "
                    f"{record['samples_per_s']:.2f} samples/s  {record['frames_per_s']:.1f} frames/s"
                )
        self.window_start = time.perf_counter()
        self.window_samples = self.window_frames = 0
        self.window_losses = []
        return record


# ---------------------------------------------------------------------------------------- run
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
    sampler: EpochPermutation
    dataset: Any
    state: TrainState
    total_steps: int
    epochs: int
    output_dir: Path


def run(config: TrainConfig, *, progress: bool = True, console=None) -> TrainResult:
    """Train one stage. Returns the step reached and where the final weights went."""
    started = time.perf_counter()
    training = setup_run(config)
    resume(training, console)
    log = RunLog(training.accelerator, training.output_dir, config.log_every, training.total_steps, console)
    losses: list[float] = []
    bar = _progress(progress and training.accelerator.is_main_process)
    task = (
        bar.add_task(f"REM stage {config.stage}", total=training.total_steps, completed=training.state.global_step)
        if bar
        else None
    )
    on_step = (
        (lambda loss: bar.update(task, advance=1, description=f"REM stage {config.stage} loss {loss:.4f}"))
        if bar
        else None
    )
    try:
        if bar:
            bar.start()
        while not finished(training):
            train_epoch(training, log, losses, on_step)
    except RefvpsError as exc:
        raise _unwrap_worker_error(exc) from None
    finally:
        if bar:
            bar.stop()
    log.maybe_write(training.state.global_step, training.lr_scheduler.get_last_lr()[0], force=True)
    training.accelerator.wait_for_everyone()
    final_dir = save_final(
        training.accelerator, training.model, training.denoiser, training.output_dir, config, training.state
    )
    training.accelerator.end_training()
    state = training.state
    return TrainResult(
        state.global_step, final_dir, losses[-1] if losses else None, losses, time.perf_counter() - started
    )


def setup_run(config: TrainConfig) -> TrainingRun:
    """Accelerator, data, model (frozen parts cast to the mixed-precision dtype), optimiser and
    learning-rate schedule, all prepared by accelerate; the run file and the trackers."""
    from accelerate.utils import set_seed

    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    accelerator = make_accelerator(config)
    set_seed(config.seed)
    # Data first: a tiny model's word vocabulary may be built from it.
    rem_config = _peek_config(config)
    num_frames = config.num_frames or (1 if config.stage == "1" else rem_config.train_frames)
    if rem_config.family == "wan" and not rem_config.valid_window(num_frames):
        raise ConfigError(
            f"Wan samples need 4k+1 frames, got num_frames={num_frames}", hint="use e.g. num_frames: 5, 9 or 17"
        )
    dataset = build_training_dataset(
        config.data, resolution=rem_config.resolution, num_frames=num_frames, aspect=config.aspect, seed=config.seed
    )
    model = build_model(config, dataset.texts)
    summary = prepare_model(model, config, accelerator.device)
    sampler = EpochPermutation(len(dataset), config.seed)
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        collate_fn=collate,
        num_workers=config.num_workers,
        drop_last=True,
        persistent_workers=False,
    )
    if len(loader) == 0:
        raise ConfigError(
            f"{len(dataset)} training samples do not fill one batch of {config.batch_size}",
            hint="add data or lower batch_size",
        )
    optimizer = build_optimizer(model, config, model.config)
    batches_per_epoch = math.ceil(len(loader) / accelerator.num_processes)
    # accelerate also steps at the end of each epoch's batches (as diffusers' examples count, ceil)
    steps_per_epoch = max(1, math.ceil(batches_per_epoch / config.gradient_accumulation_steps))
    total_steps = config.max_steps or steps_per_epoch * config.epochs
    lr_scheduler = build_lr_scheduler(optimizer, config, total_steps)
    denoiser, optimizer, loader, lr_scheduler = accelerator.prepare(model.denoiser, optimizer, loader, lr_scheduler)
    state = TrainState()
    accelerator.register_for_checkpointing(state)
    if accelerator.is_main_process:
        accelerator.init_trackers("rem", config=_flat(config.to_json()))
        _write_run_file(output_dir, config, model.config, summary, num_frames, len(dataset))
    return TrainingRun(
        config,
        accelerator,
        model,
        denoiser,
        optimizer,
        lr_scheduler,
        loader,
        sampler,
        dataset,
        state,
        total_steps,
        math.ceil(total_steps / steps_per_epoch),
        output_dir,
    )


def prepare_model(model: REMModel, config: TrainConfig, device) -> Any:
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
        cast(frozen, device, weight_dtype(config.mixed_precision))
    model.denoiser.to(device)
    model.denoiser.train()
    return summary


def resume(training: TrainingRun, console=None) -> None:
    """``resume_from_checkpoint``: load an accelerate state (``latest`` = the newest checkpoint-N)."""
    which = training.config.resume_from_checkpoint
    if not which:
        return
    path = find_checkpoint(training.output_dir, which)
    if path is None:
        _say(
            console, training.accelerator, f"no checkpoint in {training.output_dir} to resume from: starting a new run"
        )
        return
    training.accelerator.load_state(str(path))
    _say(console, training.accelerator, f"resumed from {path} at step {training.state.global_step}")


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


def save_training_state(accelerator, output_dir: Path, state: TrainState, config: TrainConfig) -> Path:
    """``accelerator.save_state`` into ``checkpoint-<step>``, keeping at most the configured number.

    Every process takes part (FSDP gathers shards). The state is written to ``checkpoint-<step>.partial``
    and renamed when complete, so a run killed while saving never leaves a broken ``checkpoint-<step>``
    for ``--resume-from-checkpoint latest`` to pick.
    """
    path = output_dir / f"{CHECKPOINT_PREFIX}{state.global_step}"
    partial = path.with_name(path.name + PARTIAL_SUFFIX)
    if accelerator.is_main_process:
        prune_checkpoints(output_dir, config.checkpoints_total_limit)
        shutil.rmtree(partial, ignore_errors=True)  # left by a run killed while saving
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if path.exists():
            shutil.rmtree(path)  # the same step saved again (a resumed run)
        partial.rename(path)
    accelerator.wait_for_everyone()
    return path


def save_final(
    accelerator, model: REMModel, denoiser, output_dir: Path, config: TrainConfig, state: TrainState
) -> Path | None:
    """The trained weights in our checkpoint format (LoRA merged), written by the main process."""
    from rem_model.checkpoints import save_checkpoint

    full_state = accelerator.get_state_dict(denoiser)  # gathers FSDP shards
    if not accelerator.is_main_process:
        return None
    lora = config.lora
    if lora is not None:
        full_state = merge_lora_state_dict(full_state, lora.alpha / lora.rank)
    final = output_dir / FINAL_DIR
    metadata = {
        "base": config.pretrained or model.config.hub_id,
        "init_checkpoint": config.init_checkpoint,
        "training": {"stage": config.stage, "steps": state.global_step, "config": config.to_json()},
    }
    save_checkpoint(model, final, metadata=metadata, denoiser_state=full_state)
    return final


def merge_lora_state_dict(state: dict[str, torch.Tensor], scaling: float) -> dict[str, torch.Tensor]:
    """Fold peft LoRA weights into their base layers: W + scaling · B A, under the plain key names."""
    merged: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if ".lora_" in key:
            continue
        if ".base_layer." in key and key.endswith(".weight"):
            prefix = key[: key.index(".base_layer.")]
            a = next((v for k, v in state.items() if k.startswith(f"{prefix}.lora_A.") and k.endswith(".weight")), None)
            b = next((v for k, v in state.items() if k.startswith(f"{prefix}.lora_B.") and k.endswith(".weight")), None)
            if a is not None and b is not None:
                value = (value.float() + scaling * (b.float() @ a.float())).to(value.dtype)
        merged[key.replace(".base_layer.", ".")] = value.detach().cpu()
    return merged


# ---------------------------------------------------------------------------------------- helpers
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
    output_dir: Path, config: TrainConfig, rem_config: REMConfig, summary, num_frames: int, samples: int
) -> None:
    from refvps.fileio import atomic_write_json

    atomic_write_json(
        output_dir / "run.json",
        {
            "train_config": config.to_json(),
            "rem_config": rem_config.to_json(),
            "trainable": dataclasses.asdict(summary),
            "num_frames": num_frames,
            "samples_per_epoch": samples,
        },
    )


def _progress(enabled: bool):
    if not enabled:
        return None
    from refvps.cli.common import progress_bar

    return progress_bar()


def _say(console, accelerator, text: str) -> None:
    if accelerator.is_main_process:
        if console is not None:
            console.print(text)
        else:
            print(text, file=sys.stderr)


def command_line_overrides(sets: Sequence[str] = (), *, output_dir=None, resume=None, max_steps=None) -> list[str]:
    """``key=value`` overrides from the command-line options that ``train-rem`` and ``-m rem_model.train`` share."""
    items = list(sets)
    if output_dir is not None:
        items.append(f"output_dir={output_dir}")
    if resume is not None:
        items.append(f"resume_from_checkpoint={resume}")
    if max_steps is not None:
        items.append(f"max_steps={max_steps}")
    return items


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rem_model.train CONFIG`` (also under ``accelerate launch`` / ``torchrun``)."""
    parser = argparse.ArgumentParser(prog="rem_model.train", description="Train REM from a YAML/JSON config.")
    parser.add_argument("config", help="training config file (YAML or JSON)")
    parser.add_argument("--output-dir", help="overrides output_dir")
    parser.add_argument("--resume-from-checkpoint", help="'latest' or a checkpoint-N folder")
    parser.add_argument("--max-steps", type=int, help="overrides max_steps")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any config key")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    args = parser.parse_args(argv)
    overrides = command_line_overrides(
        args.set, output_dir=args.output_dir, resume=args.resume_from_checkpoint, max_steps=args.max_steps
    )
    from rich.markup import escape

    from refvps.cli.common import err_console, report_error

    try:
        config = load_train_config(args.config, overrides)
        result = run(config, progress=not args.no_progress, console=err_console)
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - this is a command line: errors become messages
        return report_error(exc, debug=args.debug)
    if result.final_dir is not None:
        err_console.print(f"trained {result.global_step} steps; weights in {escape(str(result.final_dir))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
