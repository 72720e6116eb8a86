"""The mask codec and the geometry between frames and the model input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rem_model.builder import build_rem
from rem_model.codec import resize_probs
from rem_model.data.transforms import Geometry, frames_tensor, masks_tensor, probs_to_frame


@pytest.fixture(scope="module")
def tiny():
    return build_rem("rem-tiny", random_init=True)


@pytest.fixture(scope="module")
def wan_tiny():
    return build_rem("rem-wan-tiny", random_init=True)


def test_modelscope_codec_shapes_and_scaling(tiny):
    h, w = tiny.config.resolution
    masks = (torch.rand(2, 3, h, w) > 0.5).float()
    latents = tiny.codec.encode_masks(masks)
    assert latents.shape == (2, 4, 3, h // 4, w // 4)
    # The latent of a mask is the VAE mode of the 3-channel mask times the scaling factor, per frame.
    frame = masks[1, 2].expand(3, -1, -1).unsqueeze(0)
    expected = tiny.vae.encode(frame).latent_dist.mode()[0] * tiny.vae.config.scaling_factor
    torch.testing.assert_close(latents[1, :, 2], expected, rtol=1e-4, atol=1e-5)
    probs = tiny.codec.decode_mask_probs(latents)
    assert probs.shape == (2, 3, h, w)
    decoded = tiny.vae.decode(latents[1, :, 2].unsqueeze(0) / tiny.vae.config.scaling_factor).sample[0]
    torch.testing.assert_close(probs[1, 2], decoded.mean(0), rtol=1e-4, atol=1e-5)


def test_wan_codec_takes_4k_plus_1_frames(wan_tiny):
    h, w = wan_tiny.config.resolution
    latents = wan_tiny.codec.encode_masks(torch.zeros(1, 9, h, w))
    assert latents.shape[2] == 3  # (9 - 1) / 4 + 1
    assert wan_tiny.codec.decode_mask_probs(latents).shape == (1, 9, h, w)
    with pytest.raises(ValueError, match="4k\\+1"):
        wan_tiny.codec.encode_masks(torch.zeros(1, 8, h, w))


def test_wan_latents_are_normalised_with_the_vae_statistics(wan_tiny):
    h, w = wan_tiny.config.resolution
    vae = wan_tiny.vae
    vae.register_to_config(latents_mean=[0.5, -0.5, 1.0, 0.0], latents_std=[2.0, 1.0, 4.0, 0.5])
    try:
        video = torch.rand(1, 5, 3, h, w) * 2 - 1
        raw = vae.encode(video.permute(0, 2, 1, 3, 4)).latent_dist.mode()
        mean = torch.tensor([0.5, -0.5, 1.0, 0.0]).view(1, 4, 1, 1, 1)
        std = torch.tensor([2.0, 1.0, 4.0, 0.5]).view(1, 4, 1, 1, 1)
        torch.testing.assert_close(wan_tiny.codec.encode(video), (raw - mean) / std, rtol=1e-4, atol=1e-5)
    finally:
        vae.register_to_config(latents_mean=[0.0] * 4, latents_std=[1.0] * 4)


def test_squash_and_pad_geometry_round_trip():
    frame_mask = np.zeros((90, 160), np.float32)
    frame_mask[20:70, 30:100] = 1
    for aspect in ("squash", "pad"):
        geometry = Geometry.fit((90, 160), (64, 64), aspect)
        model_mask = masks_tensor([frame_mask], geometry, binarize=False)
        back = probs_to_frame(model_mask, geometry)[0].numpy() > 0.5
        iou = (back & (frame_mask > 0)).sum() / (back | (frame_mask > 0)).sum()
        assert back.shape == (90, 160) and iou > 0.9, aspect
    pad = Geometry.fit((90, 160), (64, 64), "pad")
    assert pad.box == (14, 0, 36, 64)  # 160 -> 64 wide, 90 -> 36 high, centred
    padded = frames_tensor([np.full((90, 160, 3), 255, np.uint8)], pad)[0]
    assert torch.all(padded[:, :14] == 0) and torch.all(padded[:, 14:50] == 1)


def test_resize_probs_is_bilinear_and_keeps_leading_axes():
    probs = torch.zeros(2, 3, 4, 4)
    probs[..., :, 2:] = 1
    out = resize_probs(probs, (8, 8))
    assert out.shape == (2, 3, 8, 8)
    assert torch.all(out[..., :, :3] < 0.5) and torch.all(out[..., :, 5:] > 0.5)


def test_latent_cache_returns_what_the_vae_returns(tiny):
    h, w = tiny.config.resolution
    video = torch.rand(2, 3, 3, h, w) * 2 - 1
    plain = tiny.codec.encode(video)
    tiny.codec.enable_cache(4)
    try:
        first = tiny.codec.encode(video)
        second = tiny.codec.encode(video[:, :2])
        torch.testing.assert_close(first, plain, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(second, plain[:, :, :2], rtol=1e-4, atol=1e-5)
        assert len(tiny.codec.cache.items) == 4  # least recently used frames dropped
        assert tiny.codec.cache.hits >= 2
    finally:
        tiny.codec.enable_cache(0)
    assert tiny.codec.cache is None


def test_timestep_zero_noise_matches_the_ddpm_scheduler(tiny):
    from diffusers import DDPMScheduler

    z0 = torch.randn(1, 4, 2, 3, 5)
    z1 = tiny.to_timestep_zero(z0, torch.Generator().manual_seed(7))
    noise = torch.randn(z0.shape, generator=torch.Generator().manual_seed(7))
    scheduler = DDPMScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear"
    )
    expected = scheduler.add_noise(z0, noise, torch.tensor([0]))
    torch.testing.assert_close(z1, expected)
    assert abs(tiny.alpha_bar - (1 - 0.00085)) < 1e-7
