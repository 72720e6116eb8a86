"""``build_rem``: the one function that makes a REM model from a configuration name.

>>> model = build_rem("rem-tiny")                                    # the shipped tiny weights
>>> model = build_rem("rem-ms", random_init=True, device="cuda")     # full size, random, no download  # doctest: +SKIP
>>> model = build_rem("rem-ms", pretrained="ali-vilab/text-to-video-ms-1.7b",
...                   checkpoint="rem_ms.pth", device="cuda", dtype="bf16")   # doctest: +SKIP

``pretrained`` is the backbone (a local diffusers folder or a hub id) that supplies the VAE, the
text encoder, the tokenizer and the initial denoiser; ``checkpoint`` holds REM-trained weights
(the authors' file or ours). A self-contained checkpoint of ours needs no ``pretrained``.

Memory: every part is made in the target ``dtype`` from the start (pretrained parts through
diffusers' and transformers' meta-device loading, random ones drawn in that dtype), and
checkpoints are memory-mapped and copied in one tensor at a time; a full-size model never exists
as a float32 copy on the CPU first (figures: BENCHMARKS.md, REM section).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

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


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype | None) -> Iterator[None]:
    """Modules built inside are made in ``dtype`` (their own initialisers run in it), so a
    half-precision model never exists as a float32 copy first."""
    if dtype is None or dtype == torch.get_default_dtype():
        yield
        return
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _random_components(
    config: REMConfig,
    *,
    seed: int,
    device: torch.device | str | None,
    dtype: torch.dtype | None = None,
    frozen_dtype: torch.dtype | None = None,
):
    """Denoiser, VAE, text encoder and tokenizer of a config, randomly initialised, no download.

    With a half-precision ``dtype`` (the denoiser's) or ``frozen_dtype`` (the VAE's and the text
    encoder's; default: ``dtype``) the weights are drawn directly in it (on ``device``), which gives
    other random values than a float32 draw of the same seed; ``cast`` then widens the parts
    diffusers keeps in float32. Random weights serve tests, benchmarks and the tiny models' training
    from scratch.
    """
    from rem_model.tokenizer import offline_tokenizer

    if config.family == "wan":
        from diffusers import AutoencoderKLWan as VAE
        from diffusers import WanTransformer3DModel as Denoiser
        from transformers import UMT5Config as TextConfig
        from transformers import UMT5EncoderModel as TextEncoder
    else:
        from diffusers import AutoencoderKL as VAE
        from diffusers import UNet3DConditionModel as Denoiser
        from transformers import CLIPTextConfig as TextConfig
        from transformers import CLIPTextModel as TextEncoder

    frozen_dtype = dtype if frozen_dtype is None else frozen_dtype
    torch.manual_seed(seed)
    place = torch.device(device) if device is not None else contextlib.nullcontext()
    part = "denoiser"
    try:
        with place, _default_dtype(dtype):
            denoiser = Denoiser(**config.denoiser)
        with place, _default_dtype(frozen_dtype):
            part = "vae"
            vae = VAE(**config.vae)
            part = "text_encoder"
            text_config = TextConfig(**config.text_encoder)
            text_encoder = TextEncoder(text_config)
    except (TypeError, ValueError) as exc:  # arguments the class does not take, sizes that do not fit
        raise ConfigError(
            f"cannot build the {part} of REM config {config.name}: {_first_line(exc)}",
            hint=f"check its '{part}' arguments (those of the registry configs build: rem_model/config.py)",
        ) from None
    tokenizer = offline_tokenizer(text_config.vocab_size, config.max_text_tokens)
    return denoiser, vae, text_encoder, tokenizer


def _looks_like_path(source: str) -> bool:
    """Whether ``source`` is meant as a local path rather than a hub id (``owner/name``)."""
    return source.startswith(("/", "./", "../", "~", ".\\")) or source.count("/") > 1 or "\\" in source


def _subfolders(config: REMConfig) -> tuple[str, ...]:
    return ("transformer" if config.family == "wan" else "unet", "vae", "text_encoder", "tokenizer")


def _layout_hint(config: REMConfig) -> str:
    example = f" (e.g. a download of {config.hub_id})" if config.hub_id else ""
    return f"a local diffusers folder with {'/ '.join(_subfolders(config))}/{example}"


def locate_backbone(config: REMConfig, source: str) -> Path:
    """The local folder of a backbone given as a folder or a hub id.

    A hub id is taken from the Hugging Face cache when it is there, and downloaded (only the
    folders REM uses) when the hub can be reached. With no copy and no network the answer is one
    :class:`ConfigError` that names the folder looked in and how to pass a local copy: never a
    minute of retry warnings.
    """
    local = Path(source).expanduser()
    if local.exists():
        return local
    if _looks_like_path(source):
        raise ConfigError(
            f"backbone folder not found: {local}",
            hint=f"pass --pretrained {_layout_hint(config)}, or a hub id (owner/name)",
            path=local,
        )
    from huggingface_hub import HfApi, constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    patterns = [f"{folder}/*" for folder in _subfolders(config)] + ["model_index.json"]
    try:
        return Path(snapshot_download(source, allow_patterns=patterns, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    cache = Path(constants.HF_HUB_CACHE) / f"models--{source.replace('/', '--')}"
    reason = "offline mode (HF_HUB_OFFLINE) is set" if constants.HF_HUB_OFFLINE else None
    if reason is None:
        try:  # one request, no retries: tells "no network" from "no such model" at once
            HfApi().model_info(source, timeout=10)
        except Exception as exc:  # noqa: BLE001 - any failure to reach the hub means the same to the user
            reason = _first_line(exc)
    if reason is None:
        try:
            return Path(snapshot_download(source, allow_patterns=patterns))
        except Exception as exc:  # noqa: BLE001 - as above
            reason = _first_line(exc)
    raise ConfigError(
        f"the {config.name} backbone {source} is not in the local cache ({cache}) and cannot be downloaded: {reason}",
        hint=f"download it where there is network (hf download {source} --local-dir DIR) and pass --pretrained DIR, "
        f"{_layout_hint(config)}",
        path=cache,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _diffusers_dtype(dtype: torch.dtype | None) -> dict[str, Any]:
    return {"torch_dtype": dtype} if dtype is not None else {}


def _transformers_dtype(dtype: torch.dtype | None) -> dict[str, Any]:
    """transformers 5 calls it ``dtype``, transformers 4 ``torch_dtype``."""
    import transformers

    if dtype is None:
        return {}
    return {"dtype": dtype} if int(transformers.__version__.split(".")[0]) >= 5 else {"torch_dtype": dtype}


def _pretrained_components(
    config: REMConfig, source: str, dtype: torch.dtype | None = None, frozen_dtype: torch.dtype | None = None
):
    """Load the backbone from a diffusers folder or a hub id, the denoiser directly in ``dtype`` and
    the VAE and text encoder in ``frozen_dtype`` (default: ``dtype``); diffusers and transformers
    build the modules on the meta device and fill them from the files."""
    where = locate_backbone(config, source)
    frozen_dtype = dtype if frozen_dtype is None else frozen_dtype
    common: dict[str, Any] = {"local_files_only": True}
    denoiser_folder = _subfolders(config)[0]
    try:
        if config.family == "wan":
            from diffusers import AutoencoderKLWan as VAE
            from diffusers import WanTransformer3DModel as Denoiser
            from transformers import UMT5EncoderModel as TextEncoder
        else:
            from diffusers import AutoencoderKL as VAE
            from diffusers import UNet3DConditionModel as Denoiser
            from transformers import CLIPTextModel as TextEncoder
        from transformers import AutoTokenizer

        denoiser = Denoiser.from_pretrained(where, subfolder=denoiser_folder, **common, **_diffusers_dtype(dtype))
        vae = VAE.from_pretrained(where, subfolder="vae", **common, **_diffusers_dtype(frozen_dtype))
        text_encoder = TextEncoder.from_pretrained(
            where, subfolder="text_encoder", **common, **_transformers_dtype(frozen_dtype)
        )
        tokenizer = AutoTokenizer.from_pretrained(where, subfolder="tokenizer", **common)
    except (OSError, ValueError, EnvironmentError) as exc:
        raise ConfigError(
            f"cannot load the {config.name} backbone from {where}: {_first_line(exc)}",
            hint=f"pass --pretrained {_layout_hint(config)}",
            path=where,
        ) from None
    _check_architecture(config, denoiser, str(where))
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
    frozen_dtype: str | torch.dtype | None = None,
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
        frozen_dtype: the precision of the frozen VAE and text encoder, when it differs from the
            denoiser's (training keeps the trained denoiser in float32).
        random_init: random weights from the config alone (no download), e.g. for benchmarks.
        seed: seed of the random initialisation.
        trust_checkpoint: allow unpickling arbitrary objects from a torch checkpoint.
    """
    require("diffusers", "rem", "the REM model")
    require("transformers", "rem", "the REM model")
    info: CheckpointInfo | None = inspect_checkpoint(checkpoint) if checkpoint is not None else None
    cfg = _resolve_config(config, info)
    dtypes = (parse_dtype(dtype), parse_dtype(frozen_dtype if frozen_dtype is not None else dtype))
    # What is loaded on top of the initial components, in order (later over earlier).
    layers = _weight_layers(cfg, info, pretrained=pretrained, random_init=random_init)
    denoiser, vae, text_encoder, tokenizer = _initial_components(
        cfg, layers, pretrained=pretrained, random_init=random_init, seed=seed, device=device, dtypes=dtypes
    )
    model = REMModel(cfg, denoiser, vae, text_encoder, tokenizer)
    for layer in layers:
        load_into(model, read_checkpoint(layer, trust=trust_checkpoint), layer.path)
        model.weight_sources.append(str(Path(layer.path).resolve()))
    for part, part_dtype in ((model.denoiser, dtypes[0]), (model.vae, dtypes[1]), (model.text_encoder, dtypes[1])):
        if device is not None or part_dtype is not None:
            cast(part, device, part_dtype)
    model.eval()
    return model


def _weight_layers(
    cfg: REMConfig, info: CheckpointInfo | None, *, pretrained: str | Path | None, random_init: bool
) -> list[CheckpointInfo]:
    """The checkpoints to load over the initial components: the given one, after the shipped weights
    when they are the backbone (a config without a hub id, e.g. rem-tiny with an authors' file)."""
    layers = [info] if info is not None else []
    if pretrained is not None or random_init or (info is not None and info.self_contained):
        return layers
    if cfg.hub_id is None:
        shipped = shipped_weights(cfg.name)
        if shipped is None:
            raise ConfigError(
                f"{cfg.name} has no pretrained backbone and no shipped weights",
                hint="pass --checkpoint (a self-contained REM folder written by training), "
                "--pretrained (a diffusers folder), or use random weights (--random-init)",
            )
        layers.insert(0, inspect_checkpoint(shipped))
    return layers


def _initial_components(
    cfg: REMConfig,
    layers: list[CheckpointInfo],
    *,
    pretrained: str | Path | None,
    random_init: bool,
    seed: int,
    device: str | torch.device | None,
    dtypes: tuple[torch.dtype | None, torch.dtype | None],
):
    """Denoiser, VAE, text encoder and tokenizer before any checkpoint is loaded, made in their
    ``dtypes`` (denoiser, frozen parts)."""
    if layers and layers[0].self_contained and pretrained is None:
        # Every weight comes from the checkpoint: the modules are only the shapes to load into.
        components = _random_components(cfg, seed=seed, device=None, dtype=dtypes[0], frozen_dtype=dtypes[1])
        if "tokenizer" in layers[0].components:
            from rem_model.tokenizer import load_tokenizer

            components = (*components[:3], load_tokenizer(layers[0].path / TOKENIZER_DIR))
        return components
    if random_init and pretrained is None:
        return _random_components(cfg, seed=seed, device=device, dtype=dtypes[0], frozen_dtype=dtypes[1])
    source = str(pretrained) if pretrained is not None else cfg.hub_id
    return _pretrained_components(cfg, source, *dtypes)


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
