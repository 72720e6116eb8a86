"""The registry of REM configurations: one frozen dataclass per backbone, looked up by name.

Every configuration names the classes it is built from and their constructor arguments, so the
full-size models can be built with random weights from the config alone (no download), and a
pretrained backbone (a local diffusers folder or a hub id) can be checked against it.

==============  ============================================================================
name            backbone
==============  ============================================================================
rem-ms          ModelScope T2V 1.7B: UNet3DConditionModel + AutoencoderKL + CLIP text encoder
rem-wan-1.3b    Wan 2.1 T2V 1.3B: WanTransformer3DModel + AutoencoderKLWan + UMT5-XXL encoder
rem-wan-14b     Wan 2.1 T2V 14B: the same classes, the 14B transformer
rem-tiny        the ModelScope classes at tiny sizes (CPU, tests, the shipped synthetic model)
rem-wan-tiny    the Wan classes at tiny sizes (CPU, tests)
==============  ============================================================================

The values come from the hub configs of the backbones (``ali-vilab/text-to-video-ms-1.7b``,
``Wan-AI/Wan2.1-T2V-1.3B-Diffusers``, ``Wan-AI/Wan2.1-T2V-14B-Diffusers``) and, for training and
inference settings, from the paper (appendix C.2) and the authors' public scripts
(github.com/miccooper9/ReferEverything at 6dcc5a9). Every place where a configuration deliberately
differs from the authors' code says so in a comment; ``docs/REM.md`` lists them all with the reason.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from refvps.errors import ConfigError

Family = Literal["modelscope", "wan"]
Resample = Literal["area", "bilinear"]
RESAMPLES = ("bilinear", "area")

# The temporal layers of UNet3DConditionModel. The authors' stage-1 script freezes parameters whose
# name contains "temp", which misses transformer_in (a temporal transformer over frames).
MODELSCOPE_TEMPORAL_MODULES = ("temp_convs", "temp_attentions", "transformer_in")


def reject_unknown_keys(cls: type, data: dict[str, Any], *, what: str, source: str | Path | None = None) -> None:
    """Raise :class:`ConfigError` naming the keys of ``data`` that are no field of dataclass ``cls``
    (a misspelt setting must not be ignored silently)."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"unknown {what} keys {unknown}" + (f" in {source}" if source else ""),
            hint=f"known keys: {', '.join(sorted(known))}",
            path=source,
        )


@dataclass(frozen=True)
class REMConfig:
    """One REM configuration: backbone classes and sizes, model resolution, windows, optimiser.

    ``denoiser``, ``vae`` and ``text_encoder`` hold the constructor arguments of the diffusers /
    transformers classes of the family (``UNet3DConditionModel`` or ``WanTransformer3DModel``,
    ``AutoencoderKL`` or ``AutoencoderKLWan``, ``CLIPTextConfig`` or ``UMT5Config``).
    """

    name: str
    family: Family
    description: str
    denoiser: dict[str, Any]
    vae: dict[str, Any]
    text_encoder: dict[str, Any]
    resolution: tuple[int, int]  # (height, width) the model sees
    window: int  # inference window in frames (ModelScope 72; Wan 4k+1, the authors 73)
    train_frames: int  # frames per training sample (paper: T = 8; Wan needs 4k+1, the authors use 17)
    max_text_tokens: int  # text embeddings the denoiser sees (CLIP 77; the authors also cut UMT5's to 77)
    hub_id: str | None = None  # where the pretrained backbone lives on the Hugging Face hub
    # Shorter windows for clips shorter than ``window``, longest first (the authors' Wan script: 61, 49,
    # 37, 25, 17, 9); below the last, the longest valid length that fits (see :meth:`window_for`).
    window_fallbacks: tuple[int, ...] = ()
    # Tokens the tokenizer pads to before the text encoder runs (Wan: 512, as WanPipeline and the
    # authors); ``None``: max_text_tokens. The embeddings are then cut to max_text_tokens.
    tokenizer_length: int | None = None
    # How frames are resized to the model resolution: "bilinear" is PIL's bilinear filter, what the
    # authors' torchvision ``T.Resize((512, 512))`` does on PIL images; "area" is OpenCV's area filter
    # when shrinking (bilinear when growing).
    resample: Resample = "bilinear"
    # DDPM schedule used to noise the video latent to timestep 0 (ModelScope). Wan is a flow-matching
    # model whose sigma at t = 0 is 0: its latent goes in clean, as in the authors' code.
    noise_schedule: dict[str, Any] | None = None
    timestep: int = 0
    temporal_modules: tuple[str, ...] = ()
    # Denoiser submodules that are never trained: the time embedding (the timestep is always 0).
    frozen_modules: tuple[str, ...] = ()
    lr_stage1: float = 1e-6
    lr_stage2: float = 1e-6
    weight_decay: float = 1e-5
    mask_threshold: float = 0.5
    vae_chunk: int = 16  # frames per VAE call for 2-D VAEs (memory)

    # ------------------------------------------------------------------ derived facts
    @property
    def temporal_compression(self) -> int:
        """Frames per latent frame (1 for the per-frame ModelScope VAE, 4 for Wan)."""
        if self.family == "wan":
            return int(self.vae.get("scale_factor_temporal", 4) or 4)
        return 1

    @property
    def spatial_compression(self) -> int:
        if self.family == "wan":
            return int(self.vae.get("scale_factor_spatial", 8) or 8)
        return 2 ** (len(self.vae.get("block_out_channels", (64,))) - 1)

    @property
    def spatial_multiple(self) -> int:
        """The model resolution must be a multiple of this (VAE × denoiser down-sampling)."""
        if self.family == "wan":
            patch = self.denoiser.get("patch_size", (1, 2, 2))
            return self.spatial_compression * int(patch[1])
        levels = len(self.denoiser.get("block_out_channels", (320, 640, 1280, 1280)))
        return self.spatial_compression * 2 ** (levels - 1)

    def valid_window(self, frames: int) -> bool:
        """Whether a window of ``frames`` frames can go through the VAE in one piece."""
        k = self.temporal_compression
        return frames >= 1 and (k == 1 or (frames - 1) % k == 0)

    def round_window(self, frames: int) -> int:
        """The largest valid window length that is at most ``frames`` (at least 1)."""
        k = self.temporal_compression
        if k == 1:
            return max(1, frames)
        return max(1, ((max(frames, 1) - 1) // k) * k + 1)

    def window_for(self, length: int, window: int | None = None) -> int:
        """The window for a clip of ``length`` frames: ``window`` (default: the config's) when the clip
        is that long, else the longest of ``window_fallbacks`` that fits (as the authors' Wan script
        picks from 73, 61, ..., 9), else the longest valid length that fits (their script stops there).

        >>> get_config("rem-wan-1.3b").window_for(200), get_config("rem-wan-1.3b").window_for(50)
        (73, 49)
        >>> get_config("rem-wan-1.3b").window_for(7), get_config("rem-ms").window_for(30)
        (5, 30)
        """
        window = window or self.window
        if length >= window:
            return window
        for fallback in self.window_fallbacks:
            if fallback < window and fallback <= length:
                return fallback
        return self.round_window(length)

    def replace(self, **changes: Any) -> "REMConfig":
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ (de)serialisation
    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["resolution"] = list(self.resolution)
        for key in _TUPLE_FIELDS:
            data[key] = list(data[key])
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], *, source: str | Path | None = None) -> "REMConfig":
        reject_unknown_keys(cls, data, what="REM config", source=source)
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in data and f.default is dataclasses.MISSING]
        if missing:
            raise ConfigError(
                f"REM config lacks {missing}" + (f" ({source})" if source else ""),
                hint="start from a registry config: rem_model.get_config('rem-ms').to_json()",
                path=source,
            )
        _check_types(data, source)
        values = dict(data)
        values["resolution"] = tuple(values["resolution"])
        for key in _TUPLE_FIELDS:
            if key in values:
                values[key] = tuple(values[key])
        if values["family"] not in ("modelscope", "wan"):
            raise ConfigError(f"unknown family {values['family']!r}", hint="use 'modelscope' or 'wan'", path=source)
        if values.get("resample", "bilinear") not in RESAMPLES:
            raise ConfigError(f"unknown resample {values['resample']!r}", hint=f"use one of {RESAMPLES}", path=source)
        config = cls(**values)
        config._check_sizes(source)
        return config

    def _check_sizes(self, source: str | Path | None) -> None:
        """The resolution and the window must be sizes the backbone can take (as every registry config's are)."""
        multiple = self.spatial_multiple
        if any(side % multiple for side in self.resolution):
            raise ConfigError(
                f"REM config {self.name}: resolution {list(self.resolution)} is not a multiple of {multiple} "
                "(the VAE's and the denoiser's down-sampling)",
                hint=f"use a multiple of {multiple} on each side",
                path=source,
            )
        if not self.valid_window(self.window):
            raise ConfigError(
                f"REM config {self.name}: window {self.window} does not fit the VAE",
                hint=f"use {self.temporal_compression}k+1 frames, e.g. {self.round_window(self.window)}",
                path=source,
            )


_TUPLE_FIELDS = ("temporal_modules", "frozen_modules", "window_fallbacks")
_COUNT_FIELDS = ("window", "train_frames", "max_text_tokens", "vae_chunk")
_MAPPING_FIELDS = ("denoiser", "vae", "text_encoder")


def _check_types(data: dict[str, Any], source: str | Path | None) -> None:
    """Refuse values of the wrong kind in a config read from JSON, naming the key (they would fail
    later, deep inside torch or diffusers)."""

    def refuse(key: str, expected: str) -> None:
        raise ConfigError(
            f"REM config: {key} must be {expected}, got {data[key]!r}",
            hint="start from a registry config: rem_model.get_config('rem-ms').to_json()",
            path=source,
        )

    resolution = data["resolution"]
    if not isinstance(resolution, (list, tuple)) or len(resolution) != 2 or not all(_count(v) for v in resolution):
        refuse("resolution", "[height, width] in pixels")
    for key in _COUNT_FIELDS:
        if key in data and not _count(data[key]):
            refuse(key, "a whole number of at least 1")
    for key in _MAPPING_FIELDS:
        if not isinstance(data[key], dict):
            refuse(key, "a mapping of constructor arguments")


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _ddpm_scaled_linear() -> dict[str, Any]:
    # ModelScope T2V's scheduler (DDIM, scaled-linear betas): alpha_bar(0) = 1 - 0.00085.
    return {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}


_MS_UNET = {
    "sample_size": 32,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"],
    "up_block_types": ["UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"],
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "act_fn": "silu",
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "cross_attention_dim": 1024,
    "attention_head_dim": 64,
}

_SD_VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "act_fn": "silu",
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}

# OpenCLIP ViT-H/14 text tower, as in the ModelScope T2V (and Stable Diffusion 2) text_encoder folder.
_CLIP_VIT_H_TEXT = {
    "vocab_size": 49408,
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "projection_dim": 512,
    "num_hidden_layers": 23,
    "num_attention_heads": 16,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-5,
}

_UMT5_XXL = {
    "vocab_size": 256384,
    "d_model": 4096,
    "d_kv": 64,
    "d_ff": 10240,
    "num_layers": 24,
    "num_heads": 64,
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "feed_forward_proj": "gated-gelu",
    "layer_norm_epsilon": 1e-6,
    "tie_word_embeddings": False,
}

_WAN_VAE: dict[str, Any] = {}  # AutoencoderKLWan's defaults are the Wan 2.1 VAE

_WAN_TRANSFORMER_BASE = {
    "patch_size": [1, 2, 2],
    "in_channels": 16,
    "out_channels": 16,
    "text_dim": 4096,
    "freq_dim": 256,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "eps": 1e-6,
    "rope_max_seq_len": 1024,
}

# What the authors' WanVdiff_wrapper freezes: every parameter whose name contains "patch_embedding"
# or "condition_embedder" (time embedder, time projection and text embedder).
_WAN_FROZEN = ("patch_embedding", "condition_embedder")
# The authors' Wan inference script: windows of 73 frames, and for shorter clips the first of these.
_WAN_WINDOW = 73
_WAN_WINDOW_FALLBACKS = (61, 49, 37, 25, 17, 9)

CONFIGS: dict[str, REMConfig] = {}


def register(config: REMConfig) -> REMConfig:
    """Add a configuration to the registry (a name may be registered once)."""
    if config.name in CONFIGS:
        raise ConfigError(f"REM config {config.name!r} is already registered", hint="register it under another name")
    CONFIGS[config.name] = config
    return config


register(
    REMConfig(
        name="rem-ms",
        family="modelscope",
        description="ModelScope T2V 1.7B (the paper's REM-MS): UNet3D + SD VAE + OpenCLIP-H text encoder",
        denoiser=_MS_UNET,
        vae=_SD_VAE,
        text_encoder=_CLIP_VIT_H_TEXT,
        resolution=(512, 512),
        window=72,
        train_frames=8,
        max_text_tokens=77,
        hub_id="ali-vilab/text-to-video-ms-1.7b",
        noise_schedule=_ddpm_scaled_linear(),
        # Deliberate difference: the authors' stage-1 freeze ("temp" in the name) misses transformer_in.
        temporal_modules=MODELSCOPE_TEMPORAL_MODULES,
        frozen_modules=("time_embedding",),
        lr_stage1=1e-6,  # paper C.2; the authors' stage-1 script uses 1e-5
        lr_stage2=1e-6,
    )
)


def _wan_t2v(name: str, size: str, hub_id: str, *, heads: int, ffn: int, layers: int, note: str = "") -> REMConfig:
    """A full-size Wan 2.1 T2V configuration: the 1.3B and 14B models differ only in the transformer's size."""
    return REMConfig(
        name=name,
        family="wan",
        description=f"Wan 2.1 T2V {size}{note}: WanTransformer3D + Wan VAE + UMT5-XXL",
        denoiser={
            **_WAN_TRANSFORMER_BASE,
            "num_attention_heads": heads,
            "attention_head_dim": 128,
            "ffn_dim": ffn,
            "num_layers": layers,
        },
        vae=_WAN_VAE,
        text_encoder=_UMT5_XXL,
        resolution=(512, 512),  # the authors train and infer at 512 x 512, not Wan's native 480 x 832
        window=_WAN_WINDOW,
        window_fallbacks=_WAN_WINDOW_FALLBACKS,
        train_frames=17,
        max_text_tokens=77,
        tokenizer_length=512,
        hub_id=hub_id,
        frozen_modules=_WAN_FROZEN,
        lr_stage1=1e-5,  # Wan trains in one stage; the authors: 1e-5, then 1e-6 after 3500 steps
        lr_stage2=1e-5,
    )


register(_wan_t2v("rem-wan-1.3b", "1.3B", "Wan-AI/Wan2.1-T2V-1.3B-Diffusers", heads=12, ffn=8960, layers=30))
register(
    _wan_t2v(
        "rem-wan-14b",
        "14B",
        "Wan-AI/Wan2.1-T2V-14B-Diffusers",
        heads=40,
        ffn=13824,
        layers=40,
        note=" (the paper's REM-Wan)",
    )
)

register(
    REMConfig(
        name="rem-tiny",
        family="modelscope",
        description="the ModelScope classes at tiny sizes, for CPUs and tests (shipped trained on synthetic data)",
        denoiser={
            "sample_size": 18,
            "in_channels": 4,
            "out_channels": 4,
            # Attention only at the coarser level: spatial self-attention over all 18 x 32 latent
            # positions costs ten times the rest of the UNet on a CPU.
            "down_block_types": ["DownBlock3D", "CrossAttnDownBlock3D"],
            "up_block_types": ["CrossAttnUpBlock3D", "UpBlock3D"],
            "block_out_channels": [32, 64],
            "layers_per_block": 1,
            "norm_num_groups": 8,
            "cross_attention_dim": 64,
            "attention_head_dim": 4,
        },
        vae={
            "in_channels": 3,
            "out_channels": 3,
            "down_block_types": ["DownEncoderBlock2D"] * 3,
            "up_block_types": ["UpDecoderBlock2D"] * 3,
            "block_out_channels": [16, 32, 32],
            "layers_per_block": 1,
            "latent_channels": 4,
            "norm_num_groups": 8,
            "sample_size": 72,
            "scaling_factor": 1.0,
            "mid_block_add_attention": False,
        },
        text_encoder={
            "vocab_size": 512,
            "hidden_size": 64,
            "intermediate_size": 128,
            "projection_dim": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": 32,
            "hidden_act": "gelu",
            # ids of the word-level tokenizer (rem_model.tokenizer): [PAD] 0, [BOS] 2, [EOS] 3
            "pad_token_id": 0,
            "bos_token_id": 2,
            "eos_token_id": 3,
        },
        resolution=(72, 128),
        window=24,
        train_frames=8,
        max_text_tokens=16,
        # The shipped weights were trained on area-resized frames (the synthetic frames are exactly
        # twice the model size, where the area filter is a 2 x 2 mean).
        resample="area",
        noise_schedule=_ddpm_scaled_linear(),
        temporal_modules=MODELSCOPE_TEMPORAL_MODULES,
        frozen_modules=("time_embedding",),
        lr_stage1=1e-3,  # a tiny model from scratch on synthetic data needs a much larger step
        lr_stage2=1e-3,
        weight_decay=1e-5,
    )
)

register(
    REMConfig(
        name="rem-wan-tiny",
        family="wan",
        description="the Wan classes at tiny sizes, for CPUs and tests",
        denoiser={
            **_WAN_TRANSFORMER_BASE,
            "in_channels": 4,
            "out_channels": 4,
            "text_dim": 32,
            "freq_dim": 16,
            "num_attention_heads": 2,
            "attention_head_dim": 16,
            "ffn_dim": 64,
            "num_layers": 2,
            "rope_max_seq_len": 64,
        },
        vae={
            "base_dim": 8,
            "z_dim": 4,
            "dim_mult": [1, 2, 2],
            "num_res_blocks": 1,
            "temperal_downsample": [True, True],
            "latents_mean": [0.0] * 4,
            "latents_std": [1.0] * 4,
            "scale_factor_temporal": 4,
            "scale_factor_spatial": 4,
        },
        text_encoder={
            "vocab_size": 512,
            "d_model": 32,
            "d_kv": 8,
            "d_ff": 64,
            "num_layers": 2,
            "num_heads": 4,
            "relative_attention_num_buckets": 8,
            "relative_attention_max_distance": 16,
            "feed_forward_proj": "gated-gelu",
            "tie_word_embeddings": False,
            "pad_token_id": 0,
            "eos_token_id": 3,
            "decoder_start_token_id": 0,
        },
        resolution=(32, 48),
        window=9,
        window_fallbacks=(5,),
        train_frames=5,
        max_text_tokens=16,
        tokenizer_length=32,
        frozen_modules=_WAN_FROZEN,
        lr_stage1=1e-3,
        lr_stage2=1e-3,
    )
)


def list_configs() -> list[str]:
    """Names of the registered configurations."""
    return sorted(CONFIGS)


CONFIG_FILE = "rem_config.json"


def get_config(name_or_path: str | Path | REMConfig) -> REMConfig:
    """A registry configuration by name, or one read from a JSON file or a checkpoint folder."""
    if isinstance(name_or_path, REMConfig):
        return name_or_path
    key = str(name_or_path)
    if key in CONFIGS:
        return CONFIGS[key]
    path = Path(key)
    if path.is_dir():
        path = path / CONFIG_FILE
    if path.is_file():
        from refvps.fileio import read_json

        data = read_json(path, what="REM config")
        if isinstance(data, dict) and "config" in data and isinstance(data["config"], dict):
            data = data["config"]  # a checkpoint's rem_config.json wraps the config with metadata
        if not isinstance(data, dict):
            raise ConfigError(
                f"{path} does not hold a REM config object", hint="write one with REMConfig.to_json()", path=path
            )
        return REMConfig.from_json(data, source=path)
    raise ConfigError(
        f"unknown REM config {key!r}",
        hint=f"use one of {', '.join(list_configs())}, or a checkpoint folder holding {CONFIG_FILE}",
    )
