"""The mask codec: the backbone's own VAE turns masks into latents and latents back into masks.

REM adds no mask head. A binary mask in {0, 1} is repeated to three channels and encoded like a
frame (``encode(...).latent_dist.mode()``), scaled the way the backbone scales its latents
(ModelScope: × ``scaling_factor``; Wan: ``(z − latents_mean) / latents_std``). A predicted latent is
decoded, averaged over the three channels and thresholded at 0.5 (paper §3.3).

Frames go in as ``(B, T, 3, H, W)`` in [−1, 1], masks as ``(B, T, H, W)`` in [0, 1]; latents are
``(B, C, T', h, w)`` with ``T' = T`` for the per-frame ModelScope VAE and ``T' = (T − 1) / 4 + 1``
for the causal Wan VAE (so Wan windows are 4k + 1 frames long).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import torch
import torch.nn.functional as F

from rem_model.config import REMConfig


class LatentCache:
    """VAE latents of frames seen before, keyed by a hash of their pixels (least recently used out).

    The VAE is frozen, so a frame (or mask) always encodes to the same latent; a training run that
    sees the same frames every epoch can skip re-encoding them. Only for the per-frame VAE.
    """

    def __init__(self, max_items: int):
        self.max_items = max_items
        self.items: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(image: torch.Tensor) -> bytes:
        data = image.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
        return hashlib.blake2b(data, digest_size=16).digest()

    def get(self, key: bytes) -> torch.Tensor | None:
        value = self.items.get(key)
        if value is not None:
            self.items.move_to_end(key)
            self.hits += 1
        else:
            self.misses += 1
        return value

    def put(self, key: bytes, value: torch.Tensor) -> None:
        self.items[key] = value.detach().to("cpu")
        self.items.move_to_end(key)
        while len(self.items) > self.max_items:
            self.items.popitem(last=False)


class MaskCodec:
    """Encodes frames and masks with a frozen VAE and decodes predicted mask latents."""

    def __init__(self, config: REMConfig, vae: torch.nn.Module):
        self.config = config
        self.vae = vae
        self.is_wan = config.family == "wan"
        self.cache: LatentCache | None = None

    def enable_cache(self, max_items: int) -> None:
        """Remember the latents of up to ``max_items`` frames/masks (frozen VAE: training speed-up)."""
        if self.is_wan:
            raise ValueError("the latent cache works per frame; the Wan VAE encodes whole windows")
        self.cache = LatentCache(max_items) if max_items > 0 else None

    # ------------------------------------------------------------------ helpers
    @property
    def dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    def _wan_stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.vae.config
        shape = (1, cfg.z_dim, 1, 1, 1)
        mean = torch.tensor(cfg.latents_mean, device=like.device, dtype=torch.float32).view(shape)
        std = torch.tensor(cfg.latents_std, device=like.device, dtype=torch.float32).view(shape)
        return mean, std

    # ------------------------------------------------------------------ encode
    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """Latents of a 3-channel video ``(B, T, 3, H, W)`` (frames in [−1, 1] or masks in [0, 1])."""
        if video.ndim != 5 or video.shape[2] != 3:
            raise ValueError(f"expected (B, T, 3, H, W), got {tuple(video.shape)}")
        batch, frames = video.shape[:2]
        video = video.to(device=self.device, dtype=self.dtype)
        if self.is_wan:
            if not self.config.valid_window(frames):
                raise ValueError(f"the Wan VAE takes 4k+1 frames, got {frames}")
            latents = self.vae.encode(video.permute(0, 2, 1, 3, 4)).latent_dist.mode().float()
            mean, std = self._wan_stats(latents)
            return (latents - mean) / std
        flat = video.reshape(batch * frames, *video.shape[2:])
        latents = self._encode_frames(flat) if self.cache is None else self._encode_cached(flat)
        return latents.reshape(batch, frames, *latents.shape[1:]).permute(0, 2, 1, 3, 4).contiguous()

    def _encode_frames(self, flat: torch.Tensor) -> torch.Tensor:
        chunks = [
            self.vae.encode(flat[i : i + self.config.vae_chunk]).latent_dist.mode()
            for i in range(0, flat.shape[0], self.config.vae_chunk)
        ]
        return torch.cat(chunks).float() * float(self.vae.config.scaling_factor)

    def _encode_cached(self, flat: torch.Tensor) -> torch.Tensor:
        keys = [self.cache.key(image) for image in flat]
        found = [self.cache.get(k) for k in keys]
        missing = [i for i, latent in enumerate(found) if latent is None]
        if missing:
            fresh = self._encode_frames(flat[missing])
            for i, latent in zip(missing, fresh):
                self.cache.put(keys[i], latent)
                found[i] = latent
        return torch.stack([latent.to(flat.device, torch.float32) for latent in found])

    def encode_masks(self, masks: torch.Tensor) -> torch.Tensor:
        """Latents of binary masks ``(B, T, H, W)``: the mask repeated to three channels, as a frame."""
        if masks.ndim != 4:
            raise ValueError(f"expected masks (B, T, H, W), got {tuple(masks.shape)}")
        return self.encode(masks.float().unsqueeze(2).expand(-1, -1, 3, -1, -1))

    # ------------------------------------------------------------------ decode
    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Decoded video ``(B, T, 3, H, W)`` of latents ``(B, C, T', h, w)``."""
        latents = latents.to(device=self.device)
        if self.is_wan:
            mean, std = self._wan_stats(latents)
            scaled = (latents.float() * std + mean).to(self.dtype)
            video = self.vae.decode(scaled, return_dict=False)[0]
            return video.permute(0, 2, 1, 3, 4).float()
        batch, channels, frames = latents.shape[:3]
        flat = latents.permute(0, 2, 1, 3, 4).reshape(batch * frames, channels, *latents.shape[3:])
        flat = (flat.float() / float(self.vae.config.scaling_factor)).to(self.dtype)
        chunks = [
            self.vae.decode(flat[i : i + self.config.vae_chunk]).sample
            for i in range(0, flat.shape[0], self.config.vae_chunk)
        ]
        video = torch.cat(chunks).float()
        return video.reshape(batch, frames, *video.shape[1:])

    def decode_mask_probs(self, latents: torch.Tensor) -> torch.Tensor:
        """Soft masks ``(B, T, H, W)``: the decoded three channels averaged (threshold them at 0.5)."""
        return self.decode(latents).mean(dim=2)

    def decode_masks(self, latents: torch.Tensor, threshold: float | None = None) -> torch.Tensor:
        threshold = self.config.mask_threshold if threshold is None else threshold
        return self.decode_mask_probs(latents) > threshold

    def round_trip(self, masks: torch.Tensor) -> torch.Tensor:
        """``decode(encode(mask))`` thresholded: how much of a mask the codec itself can keep."""
        return self.decode_masks(self.encode_masks(masks))


def resize_probs(probs: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of soft masks ``(..., H, W)`` to ``size`` = (height, width), before thresholding."""
    lead = probs.shape[:-2]
    flat = probs.reshape(-1, 1, *probs.shape[-2:]).float()
    if tuple(flat.shape[-2:]) != tuple(size):
        flat = F.interpolate(flat, size=size, mode="bilinear", align_corners=False)
    return flat.reshape(*lead, *size)
