"""The REM model: a text-to-video diffusion backbone kept whole, asked for mask latents instead of noise.

Forward (paper §3.3): the clean video latent z0 is noised to the smallest timestep (z1), the
denoiser gets (z1, t = 0, text) and its output is read as the latent of the mask sequence. Loss:
MSE to the VAE latent of the ground-truth mask. Nothing is replaced or added; the VAE, the text
encoder and the denoiser's time embedding stay frozen (for Wan also the patch embedding and the
text embedder, as the authors freeze them). docs/REM.md compares every step with the authors' code.
"""

from __future__ import annotations

import functools
import html
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from refvps.errors import ConfigError
from rem_model.codec import MaskCodec
from rem_model.config import REMConfig


@dataclass(frozen=True)
class TrainableSummary:
    """Which denoiser parameters a training stage updates."""

    stage: str
    trainable: int  # number of trainable parameters
    frozen: int
    temporal: int  # parameters in temporal modules
    lora: bool


def clean_prompt(text: str) -> str:
    """Whitespace and HTML-entity clean-up (what Wan's pipeline does before tokenising)."""
    return re.sub(r"\s+", " ", html.unescape(html.unescape(text))).strip()


def _is_under(name: str, modules: Iterable[str]) -> bool:
    """Whether a dotted parameter name lies under one of ``modules`` (dotted paths or single names)."""
    padded = f".{name}."
    return any(f".{module}." in padded for module in modules)


class REMModel(nn.Module):
    """Denoiser + VAE + text encoder + tokenizer of one backbone, with the REM forward pass.

    Build it with :func:`rem_model.build_rem`. ``denoiser`` is a ``UNet3DConditionModel``
    (ModelScope) or a ``WanTransformer3DModel`` (Wan).
    """

    def __init__(self, config: REMConfig, denoiser: nn.Module, vae: nn.Module, text_encoder: nn.Module, tokenizer):
        super().__init__()
        self.config = config
        # Checkpoint files or folders loaded into this model, in order (set by build_rem; recorded in run.json).
        self.weight_sources: list[str] = []
        self.denoiser = denoiser
        self.vae = vae
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self.codec = MaskCodec(config, vae)
        self.alpha_bar = self._alpha_bar(config)
        self.lora: LoraSettings | None = None  # set by add_lora
        for module in (self.vae, self.text_encoder):
            module.requires_grad_(False)
            module.eval()

    @staticmethod
    def _alpha_bar(config: REMConfig) -> float:
        if not config.noise_schedule:
            return 1.0
        from diffusers import DDPMScheduler

        scheduler = DDPMScheduler(**config.noise_schedule)
        return float(scheduler.alphas_cumprod[config.timestep])

    @property
    def family(self) -> str:
        return self.config.family

    @property
    def lora_enabled(self) -> bool:
        return self.lora is not None

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    # ------------------------------------------------------------------ text
    @torch.no_grad()
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Text embeddings ``(B, max_text_tokens, D)`` of ``texts`` from the frozen text encoder."""
        texts = [clean_prompt(t) for t in texts]
        length = self.config.max_text_tokens
        padded = self.config.tokenizer_length or length
        tokens = self.tokenizer(texts, padding="max_length", max_length=padded, truncation=True, return_tensors="pt")
        device = next(self.text_encoder.parameters()).device
        ids = tokens["input_ids"].to(device)
        if self.family == "wan":
            # As the authors (and WanPipeline): tokens padded to 512, encoded with the attention mask,
            # the real tokens kept and the rest zeroed; then cut to 77 positions (the authors pad the
            # real tokens with zeros to 77; a sentence of more than 77 tokens is cut, theirs fails).
            mask = tokens["attention_mask"].to(device)
            hidden = self.text_encoder(ids, attention_mask=mask).last_hidden_state
            return (hidden * mask.unsqueeze(-1).to(hidden.dtype))[:, :length]
        # As TextToVideoSDPipeline (and the authors): CLIP's last hidden state over all 77 positions.
        return self.text_encoder(ids)[0][:, :length]

    # ------------------------------------------------------------------ video latents
    def to_timestep_zero(self, z0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """z1: the clean latent noised to the smallest timestep, as the scheduler's ``add_noise`` does:
        sqrt(a) z0 + sqrt(1 - a) eps with a = alpha_bar(0) = 0.99915 (identity for Wan: sigma(0) = 0).

        The noise comes from ``generator`` (made on its own device, then moved), so runs repeat.
        """
        if self.alpha_bar >= 1.0:
            return z0
        where = generator.device if generator is not None else z0.device
        noise = torch.randn(z0.shape, generator=generator, device=where, dtype=z0.dtype).to(z0.device)
        return self.alpha_bar**0.5 * z0 + (1.0 - self.alpha_bar) ** 0.5 * noise

    @torch.no_grad()
    def encode_video(self, frames: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """z1 of frames ``(B, T, 3, H, W)`` in [−1, 1]: encoded once, reused for every expression."""
        return self.to_timestep_zero(self.codec.encode(frames), generator)

    # ------------------------------------------------------------------ denoiser
    def denoise(self, z1: torch.Tensor, text: torch.Tensor, denoiser: nn.Module | None = None) -> torch.Tensor:
        """The predicted mask latent for video latents ``z1`` and text embeddings ``text``.

        ``denoiser`` lets a training loop pass the accelerate-wrapped module (DDP/FSDP).
        """
        denoiser = self.denoiser if denoiser is None else denoiser
        dtype = _module_dtype(self.denoiser)
        timestep = torch.full((z1.shape[0],), self.config.timestep, device=z1.device, dtype=torch.long)
        z1 = z1.to(dtype)
        text = text.to(device=z1.device, dtype=dtype)
        if self.family == "wan":
            return denoiser(hidden_states=z1, timestep=timestep, encoder_hidden_states=text, return_dict=False)[0]
        return denoiser(sample=z1, timestep=timestep, encoder_hidden_states=text, return_dict=False)[0]

    def loss(
        self,
        frames: torch.Tensor,
        masks: torch.Tensor,
        texts: Sequence[str],
        *,
        denoiser: nn.Module | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The REM loss (Eq. 4): MSE between the denoiser's output and the mask latent."""
        z1 = self.encode_video(frames, generator)
        target = self.codec.encode_masks(masks)
        text = self.encode_text(texts)
        pred = self.denoise(z1, text, denoiser)
        return F.mse_loss(pred.float(), target.float())

    @torch.no_grad()
    def predict_probs(self, z1: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Soft masks ``(B, T, H, W)`` at the model resolution for latents and text embeddings."""
        return self.codec.decode_mask_probs(self.denoise(z1, text).float())

    # ------------------------------------------------------------------ what trains
    def temporal_parameter_names(self) -> list[str]:
        """Denoiser parameters under ``temp_convs``, ``temp_attentions`` or ``transformer_in``."""
        return [n for n, _ in self.denoiser.named_parameters() if _is_under(n, self.config.temporal_modules)]

    def frozen_parameter_names(self) -> list[str]:
        """Denoiser parameters that never train (the time embedding)."""
        return [n for n, _ in self.denoiser.named_parameters() if _is_under(n, self.config.frozen_modules)]

    def configure_trainable(self, stage: int | str = "all", *, lora: "LoraSettings | None" = None) -> TrainableSummary:
        """Set ``requires_grad`` for a training stage.

        Stage 1: spatial weights only (every temporal parameter frozen). Stage 2 / "all": every
        denoiser weight. Always frozen: VAE, text encoder, the time embedding. With ``lora``,
        the denoiser's own weights stay frozen and low-rank adapters on its attention layers train
        (spatial ones only in stage 1).
        """
        stage = str(stage)
        if stage not in ("1", "2", "all"):
            raise ConfigError(f"unknown training stage {stage!r}", hint="use 1 (spatial only), 2 or all")
        if stage == "1" and not self.config.temporal_modules:
            raise ConfigError(
                f"{self.config.name} has no separate temporal layers, so it has no spatial-only stage 1",
                hint="train it in one stage: stage: all (as the paper does for Wan)",
            )
        self.vae.requires_grad_(False)
        self.text_encoder.requires_grad_(False)
        frozen_always = set(self.frozen_parameter_names())
        temporal = set(self.temporal_parameter_names())
        if lora is not None:
            self.add_lora(lora, exclude_temporal=(stage == "1"))
        for name, param in self.denoiser.named_parameters():
            if self.lora_enabled:
                train = "lora_" in name and not (stage == "1" and _is_under(name, self.config.temporal_modules))
            else:
                train = name not in frozen_always and not (stage == "1" and name in temporal)
            param.requires_grad_(train)
        params = dict(self.denoiser.named_parameters())
        trainable = sum(p.numel() for p in params.values() if p.requires_grad)
        total = sum(p.numel() for p in params.values())
        temporal_count = sum(params[n].numel() for n in temporal if n in params)
        return TrainableSummary(stage, trainable, total - trainable, temporal_count, self.lora_enabled)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.denoiser.parameters() if p.requires_grad]

    # ------------------------------------------------------------------ LoRA
    def add_lora(self, settings: "LoraSettings", *, exclude_temporal: bool = False) -> None:
        """Low-rank adapters (peft) on the denoiser's attention projections."""
        if self.lora is not None:
            return
        from refvps.errors import require

        require("peft", "rem", "LoRA training")
        from peft import LoraConfig, inject_adapter_in_model

        targets = list(settings.target_modules)
        if exclude_temporal and self.config.temporal_modules:
            # A regex over full module names: attention projections outside temporal modules.
            temporal = "|".join(re.escape(m) for m in self.config.temporal_modules)
            leaves = "|".join(re.escape(t) for t in targets)
            targets = rf"^(?!.*(?:{temporal})).*\.(?:{leaves})$"
        lora_config = LoraConfig(
            r=settings.rank,
            lora_alpha=settings.alpha,
            lora_dropout=settings.dropout,
            init_lora_weights="gaussian",
            target_modules=targets,
        )
        self.denoiser.requires_grad_(False)
        # peft's injection works on any module (UNet3DConditionModel has no add_adapter of its own).
        inject_adapter_in_model(lora_config, self.denoiser)
        self.lora = settings

    def merged_denoiser_state_dict(self, state: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The denoiser's weights (or ``state``, e.g. gathered from FSDP shards) with any LoRA folded in,
        under the plain (adapter-free) key names."""
        state = self.denoiser.state_dict() if state is None else state
        if self.lora is None:
            return {k: v.detach() for k, v in state.items()}
        return merge_lora_state_dict(state, self.lora.alpha / self.lora.rank)

    # ------------------------------------------------------------------ memory
    def enable_gradient_checkpointing(self) -> None:
        """Recompute activations in the backward pass (per block)."""
        if getattr(self.denoiser, "_supports_gradient_checkpointing", False):
            self.denoiser.enable_gradient_checkpointing()
            return
        # diffusers' UNet3DConditionModel has no checkpointing of its own: wrap each block.
        blocks = [
            self.denoiser.transformer_in,
            *self.denoiser.down_blocks,
            self.denoiser.mid_block,
            *self.denoiser.up_blocks,
        ]
        for block in blocks:
            if block is not None and not getattr(block, "_rem_checkpointed", False):
                block.forward = _checkpointed(block.forward)
                block._rem_checkpointed = True


@dataclass(frozen=True)
class LoraSettings:
    """Low-rank adaptation of the denoiser (the paper's discussion proposes LoRA of the backbone)."""

    rank: int = 16
    alpha: int = 16
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0")


def merge_lora_state_dict(state: dict[str, torch.Tensor], scaling: float) -> dict[str, torch.Tensor]:
    """Fold peft LoRA weights into their base layers, ``W + scaling · B A``, under the plain key names.

    Works on any full state dict (one gathered from FSDP shards too), so there is one merge for
    training and export.
    """
    adapters: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        for part in ("lora_A", "lora_B"):
            marker = f".{part}."
            if marker in key and key.endswith(".weight"):
                adapters.setdefault(key[: key.index(marker)], {})[part] = value
    merged: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if ".lora_" in key:
            continue
        if ".base_layer." in key and key.endswith(".weight"):
            pair = adapters.get(key[: key.index(".base_layer.")], {})
            if "lora_A" in pair and "lora_B" in pair:
                delta = pair["lora_B"].float() @ pair["lora_A"].float()
                value = (value.float() + scaling * delta).to(value.dtype)
        merged[key.replace(".base_layer.", ".")] = value.detach()
    return merged


def _checkpointed(forward):
    from torch.utils.checkpoint import checkpoint

    @functools.wraps(forward)
    def wrapper(*args, **kwargs):
        if torch.is_grad_enabled():
            return checkpoint(forward, *args, use_reentrant=False, **kwargs)
        return forward(*args, **kwargs)

    return wrapper


def cast(module: nn.Module, device=None, dtype: torch.dtype | None = None) -> nn.Module:
    """``module.to(device, dtype)`` as diffusers' ``from_pretrained(torch_dtype=...)`` would leave it.

    In half precision, the parts a diffusers model lists in ``_keep_in_fp32_modules`` (Wan: the time
    embedder, the modulation tables, the norms, the rotary embedding) keep their float32 values.
    Without diffusers' warning about casting such models: the VAE and the text encoder are cast on
    purpose (frozen, as in diffusers' training examples)."""
    import logging

    half = dtype in (torch.float16, torch.bfloat16)
    kept = _fp32_tensors(module) if half else []
    logger = logging.getLogger("diffusers.models.modeling_utils")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        module.to(device=device, dtype=dtype)
    finally:
        logger.setLevel(level)
    for owner, name, value in kept:
        # float32 values are restored exactly; parts made in half precision (random weights drawn in
        # the target dtype) are widened to float32.
        target = value.float().to(device) if device is not None else value.float()
        if name in owner._parameters:
            owner._parameters[name].data = target
        else:
            owner._buffers[name] = target
    return module


def _fp32_tensors(root: nn.Module) -> list[tuple[nn.Module, str, torch.Tensor]]:
    """(owning module, attribute, float32 copy or the half-precision tensor) of the floating-point
    parameters and buffers under the ``_keep_in_fp32_modules`` names of the diffusers models in
    ``root`` (matched on the parts of the dotted name, as diffusers does)."""
    from diffusers import ModelMixin

    found = []
    for model in root.modules():
        keep = getattr(model, "_keep_in_fp32_modules", None) if isinstance(model, ModelMixin) else None
        if not keep:
            continue
        for path, owner in model.named_modules():
            for name, tensor in [*owner._parameters.items(), *owner._buffers.items()]:
                full = f"{path}.{name}" if path else name
                if tensor is None or not tensor.dtype.is_floating_point or not any(p in keep for p in full.split(".")):
                    continue
                copy = tensor.detach().clone() if tensor.dtype == torch.float32 else tensor.detach()
                found.append((owner, name, copy))
    return found


def _module_dtype(module: nn.Module) -> torch.dtype:
    dtype = getattr(module, "dtype", None)  # diffusers' own: skips the parts kept in fp32
    if isinstance(dtype, torch.dtype):
        return dtype
    for param in module.parameters():
        if param.dtype.is_floating_point:
            return param.dtype
    return torch.float32
