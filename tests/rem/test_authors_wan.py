"""The Wan path reproduces the authors' inference.

A tiny Wan model (diffusers' ``WanTransformer3DModel`` + ``AutoencoderKLWan`` + UMT5, random
weights) with the settings of ``rem-wan-1.3b`` is saved as a diffusers backbone folder plus a
checkpoint in the authors' ``model_state`` layout (their ``WanVdiff_wrapper``: ``backbone.dit.*``,
``backbone.vae.*``). ``refvps run-baseline rem`` on it must give the masks of a direct transcription
of ``infer_sample_wan.py`` (github miccooper9/ReferEverything at 6dcc5a9): PIL frames through
``T.Resize``, ``ToTensor``, ``Normalize(0.5, 0.5)``; windows of 73 frames, else the first
of 61, 49, 37, 25, 17, 9 that fits, the last window moved back to end at the last frame with only its
new frames kept; UMT5 on 512 padded tokens cut to the real ones and zero-padded to 77; VAE mode,
``(z - mean) / std``, the transformer at t = 0, ``z * std + mean``, VAE decode, bilinear resize to the
frame, mean over the three channels, > 0.5.

The model runs at 256 x 256, the authors' ``--half`` setting (their ``transform256``), to keep the
test's CPU time down; the first test pins the 512 x 512 of the registry configs.
"""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image

from refvps.dataset.format import ClipMeta, DatasetWriter, Expression
from rem_model.builder import build_rem
from rem_model.config import get_config

# Tiny sizes of the real classes; the VAE has Wan's layout (3 spatial down-samplings, 2 temporal).
TINY_SIZES = {
    "denoiser": get_config("rem-wan-tiny").denoiser,
    "vae": {
        **get_config("rem-wan-tiny").vae,
        "base_dim": 4,
        "dim_mult": [1, 1, 1, 1],
        "temperal_downsample": [False, True, True],
        "scale_factor_spatial": 8,
    },
    "text_encoder": get_config("rem-wan-tiny").text_encoder,
    "resolution": (256, 256),
}
FRAMES, HEIGHT, WIDTH = 10, 60, 100  # two windows of 9 frames: 0-8, then 1-9 keeping frame 9
TEXTS = ["the red smoke on the left", "the blue disc moving"]


@pytest.fixture(scope="module")
def authors_setup(tmp_path_factory):
    """A backbone folder, an authors' checkpoint and a one-clip dataset."""
    root = tmp_path_factory.mktemp("authors")
    config = get_config("rem-wan-1.3b").replace(**TINY_SIZES)
    backbone = build_rem(config, random_init=True, seed=11)
    for name, module in (
        ("transformer", backbone.denoiser),
        ("vae", backbone.vae),
        ("text_encoder", backbone.text_encoder),
        ("tokenizer", backbone.tokenizer),
    ):
        module.save_pretrained(root / "backbone" / name)
    trained = build_rem(config, random_init=True, seed=12)  # the "REM-trained" weights
    with torch.no_grad():  # decoded values around the 0.5 threshold, so that the masks are partial
        trained.vae.decoder.conv_out.bias.fill_(0.75)
    state = {f"backbone.dit.{k}": v for k, v in trained.denoiser.state_dict().items()}
    state.update({f"backbone.vae.{k}": v for k, v in trained.vae.state_dict().items()})
    torch.save(
        {"model_state": state, "optimizer": {}, "epoch": 0, "iteration": 5000, "args": argparse.Namespace(lr=1e-5)},
        root / "model_ckpt0_5000.pth",
    )
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8) for _ in range(FRAMES)]
    for t, frame in enumerate(frames):  # something that moves, so that windows see different frames
        frame[20:40, 10 + 5 * t : 30 + 5 * t] = (220, 40, 40)
    labels = [np.zeros((HEIGHT, WIDTH), np.uint8) for _ in frames]
    expressions = [Expression(str(i), text, 1) for i, text in enumerate(TEXTS)]
    DatasetWriter(root / "data").write_clip("clip", frames, labels, expressions, ClipMeta("clip"))
    return config, root


def authors_model(backbone, checkpoint):
    """build_want2vlarge_txt_model + WanVdiff_wrapper + load_state_dict(model_state, strict=False)
    (in float32 on the CPU; theirs runs in bf16 on a GPU)."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import AutoTokenizer, UMT5EncoderModel

    dit = WanTransformer3DModel.from_pretrained(backbone / "transformer")
    vae = AutoencoderKLWan.from_pretrained(backbone / "vae")
    text_encoder = UMT5EncoderModel.from_pretrained(backbone / "text_encoder")
    tokenizer = AutoTokenizer.from_pretrained(backbone / "tokenizer")
    model_state = torch.load(checkpoint, map_location="cpu", weights_only=False)["model_state"]
    for prefix, module in (("backbone.dit.", dit), ("backbone.vae.", vae)):
        module.load_state_dict({k[len(prefix) :]: v for k, v in model_state.items() if k.startswith(prefix)})
    return dit, vae, text_encoder, tokenizer


@torch.no_grad()
def authors_inference(model, frame_dir, exp: str) -> np.ndarray:
    """infer_sample_wan.py's evaluate() for one expression, with --half (256 x 256)."""
    import os

    import torchvision.transforms as T

    dit, vae, text_encoder, tokenizer = model
    transform256 = T.Compose([T.Resize((256, 256)), T.ToTensor(), T.Normalize(mean=[0.5] * 3, std=[0.5] * 3)])
    token_length = 77

    frames = sorted(os.listdir(frame_dir))
    video_len = len(frames)
    text_in = tokenizer(
        exp,
        padding="max_length",
        max_length=512,
        truncation=True,
        add_special_tokens=True,
        return_attention_mask=True,
        return_tensors="pt",
    )
    text_input_ids, text_mask = text_in.input_ids, text_in.attention_mask
    prompt_embeds = text_encoder(text_input_ids, text_mask).last_hidden_state
    seq_lens = text_mask.gt(0).sum(dim=1).long()
    prompt_embeds = [u[:v] for u, v in zip(prompt_embeds, seq_lens)]
    prompt_embeds = torch.stack(
        [torch.cat([u, u.new_zeros(token_length - u.size(0), u.size(1))]) for u in prompt_embeds], dim=0
    )
    num_clip_frames = 73
    fnums = [73, 61, 49, 37, 25, 17, 9]
    fnumidx = fnums.index(num_clip_frames)
    while video_len < num_clip_frames:
        fnumidx += 1
        num_clip_frames = fnums[fnumidx]

    vid_masks = []
    last_flag = False
    for clip_id in range(0, video_len, num_clip_frames):
        frames_ids = [x for x in range(video_len)]
        clip_frames_ids = frames_ids[clip_id : clip_id + num_clip_frames]
        clip_len = len(clip_frames_ids)
        if clip_len < num_clip_frames:
            last_flag = True
            clip_frames_ids = frames_ids[-num_clip_frames:]
        pframes = []
        for t in clip_frames_ids:
            img = Image.open(os.path.join(frame_dir, frames[t])).convert("RGB")
            origin_w, origin_h = img.size
            pframes.append(transform256(img))
        imgs = torch.stack(pframes, dim=0)
        img_latents = vae.encode(imgs.unsqueeze(0).permute(0, 2, 1, 3, 4)).latent_dist.mode()
        latents_mean = torch.tensor(vae.config.latents_mean).view(1, vae.config.z_dim, 1, 1, 1)
        latents_std = 1.0 / torch.tensor(vae.config.latents_std).view(1, vae.config.z_dim, 1, 1, 1)
        img_latents = (img_latents - latents_mean) * latents_std
        t_dit_in = torch.tensor([0.0])
        pred_latents = dit(hidden_states=img_latents, timestep=t_dit_in, encoder_hidden_states=prompt_embeds)[0]
        pred_latents = pred_latents / latents_std + latents_mean
        seg_masks = vae.decode(pred_latents, return_dict=False)[0]
        if last_flag:
            seg_masks = seg_masks.squeeze(0).permute(1, 0, 2, 3)[-clip_len:, ...]
        else:
            seg_masks = seg_masks.squeeze(0).permute(1, 0, 2, 3)
        pred_masks = F.interpolate(seg_masks, size=(origin_h, origin_w), mode="bilinear", align_corners=False)
        pred = pred_masks.mean(1)
        pred[pred > 0.5] = 1.0
        pred[pred <= 0.5] = 0.0
        vid_masks.append(pred.float())
    return torch.cat(vid_masks, dim=0).numpy() > 0


def test_the_wan_configs_carry_the_authors_settings():
    for name in ("rem-wan-1.3b", "rem-wan-14b"):
        config = get_config(name)
        assert config.resolution == (512, 512) and config.window == 73 and config.train_frames == 17
        assert config.window_fallbacks == (61, 49, 37, 25, 17, 9) and config.resample == "bilinear"
        assert config.tokenizer_length == 512 and config.max_text_tokens == 77
        assert set(config.frozen_modules) == {"patch_embedding", "condition_embedder"}


@pytest.mark.slow
def test_refvps_gives_the_masks_of_the_authors_inference(authors_setup, tmp_path):
    from refvps.cli.rem_cmds import run_rem

    config, root = authors_setup
    config_file = tmp_path / "config.json"
    import json

    config_file.write_text(json.dumps(config.to_json()))
    out = tmp_path / "pred"
    # The authors' settings: no overlap, each frame from the first window that saw it.
    args = ["--dataset", str(root / "data"), "--out", str(out), "--config", str(config_file)]
    args += ["--pretrained", str(root / "backbone"), "--checkpoint", str(root / "model_ckpt0_5000.pth")]
    args += ["--stride", "73", "--blend", "first", "--json"]
    result = CliRunner().invoke(run_rem, args)
    assert result.exit_code == 0, result.output
    names = sorted(p.stem for p in (root / "data" / "JPEGImages" / "clip").glob("*.jpg"))
    assert len(names) == FRAMES
    model = authors_model(root / "backbone", root / "model_ckpt0_5000.pth")
    for exp_id, text in enumerate(TEXTS):
        expected = authors_inference(model, root / "data" / "JPEGImages" / "clip", text)
        got = np.stack([np.asarray(Image.open(out / "clip" / str(exp_id) / f"{n}.png")) > 0 for n in names])
        assert expected.shape == got.shape == (FRAMES, HEIGHT, WIDTH)
        assert 0.05 < expected.mean() < 0.95  # a real, partial mask
        # Identical here; the bound allows a pixel at the threshold to flip (channel mean and resize
        # are taken in the other order).
        assert (got == expected).mean() > 0.9999, (got != expected).sum()
