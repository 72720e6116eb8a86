"""``build_rem``: the one function that makes a REM model from a configuration name.

>>> model = build_rem("rem-tiny")                                    # the shipped tiny weights
>>> model = build_rem("rem-ms", random_init=True, device="cuda")     # full size, random, no download  # doctest: +SKIP
>>> model = build_rem("rem-ms", pretrained="ali-vilab/text-to-video-ms-1.7b",
...                   checkpoint="rem_ms.pth", device="cuda", dtype="bf16")   # doctest: +SKIP

``pretrained`` is the backbone (a local diffusers folder or a hub id) that supplies the VAE, the
text encoder, the tokenizer and the initial denoiser; ``checkpoint`` holds REM-trained weights
(the authors' file or ours). A self-contained checkpoint of ours needs no ``pretrained``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch

from refvps.errors import ConfigError, require
from rem_model.checkpoints import TOKENIZER_DIR, CheckpointInfo, inspect_checkpoint, load_into, read_checkpoint
from rem_model.config import REMConfig, get_config
from rem_model.model import REMModel, cast

WEIGHTS_ROOT = Path(__file__).parent / "weights"
DTYPES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}


def shipped_weights(name: str) -> Path | None:
    """The folder of weights shipped with the package for a configuration, if any."""
    folder = WEIGHTS_ROOT / name
    return folder if (folder / "model.safetensors").is_file() else None


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    try:
        return DTYPES[str(dtype).lower()]
    except KeyError:
        raise ConfigError(f"unknown dtype {dtype!r}", hint=f"use one of {sorted(DTYPES)}") from None


def _random_components(config: REMConfig, *, seed: int, device: torch.device | str | None):
    """Denoiser, VAE, text encoder and tokenizer of a config, randomly initialised, no download."""
    from rem_model.tokenizer import offline_tokenizer

    torch.manual_seed(seed)
    context = torch.device(device) if device is not None else contextlib.nullcontext()
    with context:
        if config.family == "wan":
            from diffusers import AutoencoderKLWan, WanTransformer3DModel
            from transformers import UMT5Config, UMT5EncoderModel

            denoiser = WanTransformer3DModel(**config.denoiser)
            vae = AutoencoderKLWan(**config.vae)
            text_config = UMT5Config(**config.text_encoder)
            text_encoder = UMT5EncoderModel(text_config)
            vocab_size = text_config.vocab_size
        else:
            from diffusers import AutoencoderKL, UNet3DConditionModel
            from transformers import CLIPTextConfig, CLIPTextModel

            denoiser = UNet3DConditionModel(**config.denoiser)
            vae = AutoencoderKL(**config.vae)
            text_config = CLIPTextConfig(**config.text_encoder)
            text_encoder = CLIPTextModel(text_config)
            vocab_size = text_config.vocab_size
    tokenizer = offline_tokenizer(vocab_size, config.max_text_tokens)
    return denoiser, vae, text_encoder, tokenizer


def _looks_like_path(source: str) -> bool:
    """Whether ``source`` is meant as a local path rather than a hub id (``owner/name``)."""
    return source.startswith(("/", "./", "../", "~", ".\\")) or source.count("/") > 1 or "\\" in source


def _pretrained_components(config: REMConfig, source: str):
    """Load the backbone from a diffusers folder or a hub id (downloads only for hub ids)."""
    local = Path(source).expanduser()
    layout = (
        "transformer/ vae/ text_encoder/ tokenizer/"
        if config.family == "wan"
        else "unet/ vae/ text_encoder/ tokenizer/"
    )
    example = f" (e.g. a download of {config.hub_id})" if config.hub_id else ""
    if not local.exists() and _looks_like_path(source):
        raise ConfigError(
            f"backbone folder not found: {local}",
            hint=f"pass --pretrained a local diffusers folder with {layout}{example}, or a hub id (owner/name)",
            path=local,
        )
    kwargs: dict[str, Any] = {"local_files_only": True} if local.exists() else {}
    where = str(local) if local.exists() else source
    try:
        if config.family == "wan":
            from diffusers import AutoencoderKLWan, WanTransformer3DModel
            from transformers import AutoTokenizer, UMT5EncoderModel

            denoiser = WanTransformer3DModel.from_pretrained(where, subfolder="transformer", **kwargs)
            vae = AutoencoderKLWan.from_pretrained(where, subfolder="vae", **kwargs)
            text_encoder = UMT5EncoderModel.from_pretrained(where, subfolder="text_encoder", **kwargs)
            tokenizer = AutoTokenizer.from_pretrained(where, subfolder="tokenizer", **kwargs)
        else:
            from diffusers import AutoencoderKL, UNet3DConditionModel
            from transformers import AutoTokenizer, CLIPTextModel

            denoiser = UNet3DConditionModel.from_pretrained(where, subfolder="unet", **kwargs)
            vae = AutoencoderKL.from_pretrained(where, subfolder="vae", **kwargs)
            text_encoder = CLIPTextModel.from_pretrained(where, subfolder="text_encoder", **kwargs)
            tokenizer = AutoTokenizer.from_pretrained(where, subfolder="tokenizer", **kwargs)
    except (OSError, ValueError, EnvironmentError) as exc:
        raise ConfigError(
            f"cannot load the {config.name} backbone from {where!r}: {str(exc).splitlines()[0]}",
            hint=f"pass --pretrained a local diffusers folder with {layout}{example}, "
            "or check the network if you gave a hub id",
            path=local if local.exists() else None,
        ) from None
    _check_architecture(config, denoiser, where)
    return denoiser, vae, text_encoder, tokenizer


def _check_architecture(config: REMConfig, denoiser: torch.nn.Module, where: str) -> None:
    """Refuse a backbone whose denoiser is not the one the configuration describes (e.g. 1.3B vs 14B)."""
    loaded = dict(denoiser.config)
    different = []
    for key, value in config.denoiser.items():
        if key in loaded and _normal(loaded[key]) != _normal(value):
            different.append(f"{key}: config {value!r}, backbone {loaded[key]!r}")
    if different:
        raise ConfigError(
            f"the backbone at {where} is not the {config.name} architecture: " + "; ".join(different[:5]),
            hint="pick the --config that matches the backbone (rem-ms, rem-wan-1.3b, rem-wan-14b)",
        )


def _normal(value: Any) -> Any:
    return [_normal(v) for v in value] if isinstance(value, (list, tuple)) else value


def build_rem(
    config: str | Path | REMConfig | None = "rem-ms",
    *,
    pretrained: str | Path | None = None,
    checkpoint: str | Path | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    random_init: bool = False,
    seed: int = 0,
    trust_checkpoint: bool = False,
) -> REMModel:
    """Build a REM model.

    Args:
        config: a registry name (``rem-ms``, ``rem-wan-1.3b``, ``rem-wan-14b``, ``rem-tiny``,
            ``rem-wan-tiny``), a config JSON, or ``None`` to take it from ``checkpoint``.
        pretrained: the backbone: a local diffusers folder or a hub id (default: the config's hub id;
            ``rem-tiny`` defaults to the weights shipped in ``rem_model/weights/rem-tiny``).
        checkpoint: REM weights: the authors' torch file (``unet`` / ``model_state``), our folder or
            a ``.safetensors`` state dict. Keys that do not fit are an error naming them.
        device, dtype: where and in which precision (``fp32``, ``bf16``, ``fp16``) to put the model.
        random_init: random weights from the config alone (no download), e.g. for benchmarks.
        seed: seed of the random initialisation.
        trust_checkpoint: allow unpickling arbitrary objects from a torch checkpoint.
    """
    require("diffusers", "rem", "the REM model")
    require("transformers", "rem", "the REM model")
    info: CheckpointInfo | None = inspect_checkpoint(checkpoint) if checkpoint is not None else None
    cfg = _resolve_config(config, info)
    # What is loaded on top of the initial components, in order (later over earlier).
    layers = [info] if info is not None else []
    if pretrained is None and not random_init and not (info is not None and info.self_contained):
        if cfg.hub_id is None:
            # No backbone to download: the weights shipped for this config are the backbone (a
            # bare denoiser checkpoint, e.g. in the authors' format, then goes on top of them).
            shipped = shipped_weights(cfg.name)
            if shipped is None:
                raise ConfigError(
                    f"{cfg.name} has no pretrained backbone and no shipped weights",
                    hint="pass --checkpoint (a self-contained REM folder written by training), "
                    "--pretrained (a diffusers folder), or use random weights (--random-init)",
                )
            layers.insert(0, inspect_checkpoint(shipped))
    if layers and layers[0].self_contained and pretrained is None:
        denoiser, vae, text_encoder, tokenizer = _random_components(cfg, seed=seed, device=None)
        if "tokenizer" in layers[0].components:
            from rem_model.tokenizer import load_tokenizer

            tokenizer = load_tokenizer(layers[0].path / TOKENIZER_DIR)
    elif random_init and pretrained is None:
        denoiser, vae, text_encoder, tokenizer = _random_components(cfg, seed=seed, device=device)
    else:
        source = str(pretrained) if pretrained is not None else cfg.hub_id
        denoiser, vae, text_encoder, tokenizer = _pretrained_components(cfg, source)
    model = REMModel(cfg, denoiser, vae, text_encoder, tokenizer)
    for layer in layers:
        load_into(model, read_checkpoint(layer, trust=trust_checkpoint), layer.path)
        model.weight_sources.append(str(Path(layer.path).resolve()))
    torch_dtype = parse_dtype(dtype)
    if device is not None or torch_dtype is not None:
        cast(model, device, torch_dtype)
    model.eval()
    return model


def _resolve_config(config: str | Path | REMConfig | None, info: CheckpointInfo | None) -> REMConfig:
    if config is None:
        if info is None or info.config is None:
            raise ConfigError(
                "no REM config given", hint="pass --config (e.g. rem-ms) or one of our checkpoint folders"
            )
        return info.config
    cfg = get_config(config)
    if info is not None and info.config is not None and info.config.name != cfg.name:
        raise ConfigError(
            f"checkpoint {info.path} was trained as {info.config.name}, not {cfg.name}",
            hint=f"use --config {info.config.name}, or leave --config out to take it from the checkpoint",
            path=info.path,
        )
    if info is not None and info.config is not None:
        return info.config  # the checkpoint's own copy (it may differ in training settings)
    return cfg
