"""The training configuration: :class:`TrainConfig`, read from a YAML/JSON file with overrides."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from refvps.errors import ConfigError, UsageError
from refvps.fileio import read_json
from rem_model.config import reject_unknown_keys
from rem_model.data import DataSource
from rem_model.model import LoraSettings

MIXED_PRECISIONS = ("no", "bf16", "fp16")
IMAGE_BATCHES = ("auto", "alternate", "pseudo-video")


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
    # Image sources when samples have several frames: "alternate" gives one-frame image batches
    # between video batches (the authors' Wan recipe), "pseudo-video" moves each image along a
    # camera-like trajectory (the paper's ModelScope stage 2); "auto": alternate for Wan.
    image_batches: str = "auto"
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
    max_grad_value: float | None = None  # the authors' ModelScope scripts clamp each gradient value to ±0.1
    # None: what `accelerate launch` / `accelerate config` set (else "no"); a value here wins over them.
    mixed_precision: str | None = None
    gradient_checkpointing: bool = False
    lora: LoraSettings | None = None
    checkpointing_steps: int = 500
    checkpoints_total_limit: int | None = 3
    resume_from_checkpoint: str | None = None  # "latest" or a checkpoint folder
    save_diffusers: bool = True  # also write final/unet (or final/transformer) in save_pretrained layout
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
        values["data"] = _data_sources(values.get("data") or [], source)
        if "lora" in values:
            values["lora"] = _lora(values["lora"], source)
        if "stage" in values:
            values["stage"] = str(values["stage"])
        for item in dataclasses.fields(cls):
            if item.name in values:
                values[item.name] = _coerce_number(item, values[item.name], source)
        config = cls(**values)
        config.check(source)
        return config

    def check(self, source: str | Path | None = None) -> None:
        """Refuse settings no run can use; ``source`` (the config file) is named in the error."""
        hint = "fix the training config, or override the key: --set KEY=VALUE"
        if self.stage not in ("1", "2", "all"):
            raise ConfigError(
                f"stage must be 1, 2 or all, got {self.stage!r}",
                hint="1: spatial weights on images; 2 / all: every weight",
                path=source,
            )
        if self.mixed_precision is not None and self.mixed_precision not in MIXED_PRECISIONS:
            raise ConfigError(
                f"mixed_precision must be no, bf16 or fp16, got {self.mixed_precision!r}", hint=hint, path=source
            )
        if self.image_batches not in IMAGE_BATCHES:
            raise ConfigError(
                f"image_batches must be one of {', '.join(IMAGE_BATCHES)}, got {self.image_batches!r}",
                hint=hint,
                path=source,
            )
        for name, lowest in _LOWEST.items():
            value = getattr(self, name)
            if value is None and name in _OPTIONAL:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
                raise ConfigError(
                    f"{name} must be a whole number of at least {lowest}, got {value!r}", hint=hint, path=source
                )
        self._check_lr_schedule(source)

    def _check_lr_schedule(self, source: str | Path | None) -> None:
        """The learning-rate schedule as diffusers builds it (name, warm-up, step rules), tried on a
        dummy optimiser so that a bad setting stops the run before the model is loaded."""
        import torch
        from diffusers.optimization import SchedulerType, get_scheduler

        dummy = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        try:
            get_scheduler(
                self.lr_scheduler,
                dummy,
                step_rules=self.lr_step_rules,
                num_warmup_steps=self.lr_warmup_steps,
                num_training_steps=self.max_steps or 1,
            )
        except (ValueError, TypeError, AttributeError) as exc:
            raise ConfigError(
                f"lr_scheduler {self.lr_scheduler!r}"
                + (f" with lr_step_rules {self.lr_step_rules!r}" if self.lr_step_rules else "")
                + f" is not a schedule diffusers can build: {exc}",
                hint=f"lr_scheduler: one of {', '.join(t.value for t in SchedulerType)}; "
                'piecewise_constant needs lr_step_rules such as "1:3500,0.1" (factor 1 until step 3500, then 0.1)',
                path=source,
            ) from None

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return json.loads(json.dumps(data, default=list))


# Settings that are counts: the smallest value each takes (those in _OPTIONAL may also be null).
_LOWEST = {
    "batch_size": 1,
    "gradient_accumulation_steps": 1,
    "epochs": 1,
    "max_steps": 1,
    "num_frames": 1,
    "lr_warmup_steps": 0,
    "checkpointing_steps": 0,  # 0: no checkpoints during the run
    "checkpoints_total_limit": 1,
    "num_workers": 0,
    "latent_cache": 0,
}
_OPTIONAL = ("max_steps", "num_frames", "checkpoints_total_limit")


def _data_sources(sources: Any, source: str | Path | None) -> list[DataSource]:
    if not isinstance(sources, list) or not all(isinstance(s, (dict, DataSource)) for s in sources):
        raise ConfigError(
            "training config: 'data' must be a list of sources",
            hint="e.g. data: [{kind: refvps, root: data/synthetic}]",
            path=source,
        )
    return [s if isinstance(s, DataSource) else DataSource.from_json(s) for s in sources]


def _lora(value: Any, source: str | Path | None) -> LoraSettings | None:
    if isinstance(value, dict):
        lora = dict(value)
        reject_unknown_keys(LoraSettings, lora, what="lora", source=source)
        if "target_modules" in lora:
            lora["target_modules"] = tuple(lora["target_modules"])
        return LoraSettings(**lora)
    if value is True:
        return LoraSettings()
    if value is False or value is None:
        return None
    if isinstance(value, LoraSettings):
        return value
    raise ConfigError(
        f"training config: lora must be a mapping of LoRA settings, true or false, got {value!r}",
        hint="e.g. lora: {rank: 16, alpha: 16} (keys: rank, alpha, dropout, target_modules)",
        path=source,
    )


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


def _read_config_file(path: Path) -> dict[str, Any]:
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
    return data


def load_train_config(path: str | Path | None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML/JSON training config and apply ``key=value`` overrides (values parsed as YAML)."""
    import yaml

    data: dict[str, Any] = _read_config_file(Path(path)) if path is not None else {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"override {item!r} is not key=value", hint="e.g. --set lr=1e-5 --set max_steps=100")
        data[key.strip()] = yaml.safe_load(value)
    return TrainConfig.from_dict(data, source=path)


def command_line_overrides(sets: Sequence[str] = (), *, output_dir=None, resume=None, max_steps=None) -> list[str]:
    """``key=value`` overrides from the command-line options of ``refvps train-rem``."""
    items = list(sets)
    if output_dir is not None:
        items.append(f"output_dir={output_dir}")
    if resume is not None:
        items.append(f"resume_from_checkpoint={resume}")
    if max_steps is not None:
        items.append(f"max_steps={max_steps}")
    return items
