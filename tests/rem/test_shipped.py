"""The shipped ``rem-tiny`` weights: they load by name, their codec keeps synthetic masks, and they
segment held-out synthetic clips far better than the trivial predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import rem_model
from refvps import synth
from refvps.dataset.format import Dataset
from refvps.dataset.palette import IGNORE_INDEX
from rem_model.builder import build_rem
from rem_model.data.transforms import Geometry, masks_tensor
from rem_model.inference import predict_dataset

WEIGHTS = Path(rem_model.__file__).parent / "weights" / "rem-tiny"


@pytest.fixture(scope="module")
def shipped():
    assert (WEIGHTS / "model.safetensors").is_file(), (
        f"the tiny weights are missing from {WEIGHTS}: run scripts/train_tiny_rem.py"
    )
    return build_rem("rem-tiny")  # no checkpoint argument: the shipped weights


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    # The first clips of the default benchmark (seed 0); the weights were trained on seed 1000.
    return synth.generate_benchmark(tmp_path_factory.mktemp("synth") / "eval", clips=7, seed=0)


def _iou(a: np.ndarray, b: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Per-frame IoU over the last two axes, 1 where both are empty (the DAVIS convention)."""
    if valid is not None:
        a, b = a & valid, b & valid
    inter = (a & b).sum(axis=(-2, -1))
    union = (a | b).sum(axis=(-2, -1))
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def test_shipped_weights_are_small_and_self_contained(shipped):
    size = sum(p.stat().st_size for p in WEIGHTS.rglob("*") if p.is_file())
    assert size < 12e6
    assert shipped.config.name == "rem-tiny" and shipped.tokenizer.unk_token_id is not None
    assert {"smoke", "ripples", "left", "right"} <= set(shipped.tokenizer.get_vocab())


@torch.no_grad()
def test_codec_round_trip_iou_on_synthetic_masks(shipped, held_out):
    ious = []
    for clip in Dataset(held_out):
        labels = clip.label_stack()
        geometry = Geometry.fit(labels.shape[1:], shipped.config.resolution, "squash", shipped.config.resample)
        masks = masks_tensor(list((labels == 1).astype(np.float32)), geometry)  # at the model resolution
        decoded = shipped.codec.decode_mask_probs(shipped.codec.encode_masks(masks.unsqueeze(0)))[0] > 0.5
        ious.extend(_iou(decoded.numpy(), masks.numpy() > 0.5).tolist())
    assert np.mean(ious) >= 0.95, np.mean(ious)


@pytest.mark.slow
def test_segments_held_out_clips_far_better_than_trivial_predictions(shipped, held_out, tmp_path):
    predict_dataset(shipped, held_out, tmp_path / "pred")
    model_j, empty_j, full_j = [], [], []
    from PIL import Image

    for clip in Dataset(held_out):
        labels = clip.label_stack()
        valid = labels != IGNORE_INDEX
        for expression in clip.expressions:
            truth = labels == expression.obj_id
            pred = np.stack(
                [
                    np.asarray(Image.open(tmp_path / "pred" / clip.id / expression.exp_id / f"{n}.png")) > 0
                    for n in clip.frame_names
                ]
            )
            model_j.append(_iou(pred, truth, valid).mean())
            empty_j.append(_iou(np.zeros_like(truth), truth, valid).mean())
            full_j.append(_iou(np.ones_like(truth), truth, valid).mean())
    model, trivial = 100 * np.mean(model_j), 100 * max(np.mean(empty_j), np.mean(full_j))
    assert model >= trivial + 15, (model, trivial)


@torch.no_grad()
def test_predictions_follow_the_paper_pipeline(shipped, held_out):
    """The masks of a window equal a reference written with the diffusers modules directly (paper
    §3.3): VAE mode x scaling factor, noised to t = 0 by the DDPM scheduler's add_noise, UNet at
    t = 0 with CLIP's last hidden state, VAE decode, bilinear resize to the frame (as the authors'
    F.interpolate), mean over the 3 channels, > 0.5."""
    import torch.nn.functional as F
    from diffusers import DDPMScheduler

    from rem_model.inference import InferenceOptions, clip_seed, predict_clip

    clip = Dataset(held_out).clip(Dataset(held_out).clip_ids[0])
    indices, predicted = next(predict_clip(shipped, clip, InferenceOptions(window=8, stride=8)))
    assert indices == list(range(8))
    # The synthetic frames (256 x 144) are twice the model size (128 x 72): the area resize is a 2 x 2 mean.
    frames = np.stack([clip.read_frame(n) for n in clip.frame_names[:8]])
    video = F.avg_pool2d(torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1, 2)
    vae, scale = shipped.vae, shipped.vae.config.scaling_factor
    z0 = (vae.encode(video).latent_dist.mode() * scale).permute(1, 0, 2, 3).unsqueeze(0)  # (1, C, T, h, w)
    noise = torch.randn(z0.shape, generator=torch.Generator().manual_seed(clip_seed(0, clip.id, 0)))
    z1 = DDPMScheduler(**shipped.config.noise_schedule).add_noise(z0, noise, torch.tensor([0]))
    height, width = frames.shape[1:3]
    agreement = []
    for expression in clip.expressions:
        ids = shipped.tokenizer(
            [expression.text],
            padding="max_length",
            max_length=shipped.config.max_text_tokens,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        text = shipped.text_encoder(ids)[0]
        latent = shipped.denoiser(z1, torch.tensor([0]), encoder_hidden_states=text).sample
        decoded = vae.decode(latent[0].permute(1, 0, 2, 3) / scale).sample
        expected = F.interpolate(decoded, size=(height, width), mode="bilinear", align_corners=False).mean(1) > 0.5
        mask = predicted[expression.exp_id]
        assert mask.shape == (8, height, width) and 0 < mask.mean() < 0.5  # a real, partial mask
        agreement.append((mask == expected.numpy()).mean())
    assert min(agreement) > 0.999, agreement
