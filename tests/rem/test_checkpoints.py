"""Checkpoints: the authors' formats and ours load; a key that does not fit is an error naming it."""

from __future__ import annotations

import argparse

import pytest
import torch

from refvps.errors import ConfigError
from rem_model.builder import build_rem
from rem_model.checkpoints import save_checkpoint


def _equal_states(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_authors_modelscope_file_with_unet_key_loads(tmp_path, small_config):
    trained = build_rem(small_config, random_init=True, seed=1)
    path = tmp_path / "model_ckpt_best.pth"
    # What train_REM_MS_*.py saves: the UNet state dict under 'unet', plus optimizer, epoch, args.
    torch.save(
        {
            "unet": trained.denoiser.state_dict(),
            "optimizer": {},
            "epoch": 39,
            "args": argparse.Namespace(lr=1e-6, num_frames=8),
        },
        path,
    )
    fresh = build_rem(small_config, random_init=True, seed=2)
    assert not _equal_states(fresh.denoiser, trained.denoiser)
    loaded = build_rem(small_config, random_init=True, seed=2, checkpoint=path)
    assert _equal_states(loaded.denoiser, trained.denoiser)


def test_authors_wan_model_state_prefixes(tmp_path):
    trained = build_rem("rem-wan-tiny", random_init=True, seed=1)
    state = {f"backbone.dit.{k}": v for k, v in trained.denoiser.state_dict().items()}
    state.update({f"backbone.vae.{k}": v for k, v in trained.vae.state_dict().items()})
    path = tmp_path / "model_ckpt0_5000.pth"
    torch.save({"model_state": state, "optimizer": {}, "epoch": 0, "iteration": 5000}, path)
    loaded = build_rem("rem-wan-tiny", random_init=True, seed=2, checkpoint=path)
    assert _equal_states(loaded.denoiser, trained.denoiser)
    assert _equal_states(loaded.vae, trained.vae)


def test_ddp_prefixes_are_stripped(tmp_path, small_config):
    trained = build_rem(small_config, random_init=True, seed=1)
    path = tmp_path / "ddp.pth"
    torch.save({"unet": {f"module.{k}": v for k, v in trained.denoiser.state_dict().items()}}, path)
    loaded = build_rem(small_config, random_init=True, seed=2, checkpoint=path)
    assert _equal_states(loaded.denoiser, trained.denoiser)


def test_a_wrong_key_is_an_error_that_names_it(tmp_path, small_config):
    state = build_rem(small_config, random_init=True).denoiser.state_dict()
    state["conv_in.weightt"] = state.pop("conv_in.weight")
    path = tmp_path / "renamed.pth"
    torch.save({"unet": state}, path)
    with pytest.raises(ConfigError) as info:
        build_rem(small_config, random_init=True, checkpoint=path)
    message = str(info.value)
    assert "missing key(s): conv_in.weight" in message
    assert "unexpected key(s): conv_in.weightt" in message


def test_a_mis_shaped_key_is_named(tmp_path, small_config):
    state = build_rem(small_config, random_init=True).denoiser.state_dict()
    state["conv_out.bias"] = torch.zeros(7)
    path = tmp_path / "shape.pth"
    torch.save({"unet": state}, path)
    with pytest.raises(ConfigError, match=r"conv_out.bias \(7,\) vs \(4,\)"):
        build_rem(small_config, random_init=True, checkpoint=path)


def test_a_checkpoint_of_another_backbone_is_refused(tmp_path, small_config):
    wan = build_rem("rem-wan-tiny", random_init=True)
    path = tmp_path / "wan_as_unet.pth"
    torch.save({"unet": wan.denoiser.state_dict()}, path)
    with pytest.raises(ConfigError) as info:
        build_rem(small_config, random_init=True, checkpoint=path)
    assert "missing key(s)" in str(info.value) and "--config" in info.value.hint


def test_pickled_objects_need_trust(tmp_path, small_config):
    from fractions import Fraction  # a class torch's weights-only loader does not allow

    state = build_rem(small_config, random_init=True, seed=1).denoiser.state_dict()
    path = tmp_path / "pickled.pth"
    torch.save({"unet": state, "args": Fraction(1, 3)}, path)
    with pytest.raises(ConfigError) as info:
        build_rem(small_config, random_init=True, checkpoint=path)
    assert "--trust-checkpoint" in info.value.hint
    loaded = build_rem(small_config, random_init=True, checkpoint=path, trust_checkpoint=True)
    assert torch.equal(loaded.denoiser.conv_in.weight, state["conv_in.weight"])


def test_our_folder_round_trip_is_self_contained(tmp_path, small_config, toy_dataset):
    model = build_rem(small_config, random_init=True, seed=5)
    folder = save_checkpoint(model, tmp_path / "ours", metadata={"note": "test"})
    assert {p.name for p in folder.iterdir()} == {"model.safetensors", "rem_config.json", "tokenizer"}
    loaded = build_rem(None, checkpoint=folder)  # config, weights and tokenizer from the folder
    assert loaded.config == small_config
    for part in ("denoiser", "vae", "text_encoder"):
        assert _equal_states(getattr(loaded, part), getattr(model, part)), part
    texts = ["the red disc", "the blue ball moving"]
    torch.testing.assert_close(loaded.encode_text(texts), model.encode_text(texts))


def test_our_checkpoint_refuses_a_different_config(tmp_path, small_config):
    folder = save_checkpoint(build_rem(small_config, random_init=True), tmp_path / "ours")
    with pytest.raises(ConfigError, match="trained as rem-tiny"):
        build_rem("rem-wan-tiny", checkpoint=folder)


def test_missing_checkpoint_path(tmp_path, small_config):
    with pytest.raises(ConfigError, match="not found"):
        build_rem(small_config, random_init=True, checkpoint=tmp_path / "nope.pth")


def test_an_authors_file_for_rem_tiny_goes_on_the_shipped_backbone(tmp_path):
    # rem-tiny has no hub backbone: a bare denoiser file (the authors' format) is loaded over the
    # shipped weights, which supply the VAE, the text encoder and the tokenizer.
    trained = build_rem("rem-tiny", random_init=True, seed=1)
    path = tmp_path / "authors.pth"
    torch.save({"unet": trained.denoiser.state_dict(), "epoch": 3}, path)
    loaded = build_rem("rem-tiny", checkpoint=path)
    shipped = build_rem("rem-tiny")
    assert _equal_states(loaded.denoiser, trained.denoiser)
    assert _equal_states(loaded.vae, shipped.vae) and not _equal_states(loaded.vae, trained.vae)
    assert loaded.tokenizer.get_vocab() == shipped.tokenizer.get_vocab()
    with pytest.raises(ConfigError, match="no pretrained backbone") as info:
        build_rem("rem-wan-tiny", checkpoint=path)  # no hub id and nothing shipped
    assert "--random-init" in info.value.hint


@pytest.mark.parametrize("content", [b"hello\n", b"PK\x03\x04 truncated zip", b"\x80\x02}q\x00(X\x01"])
def test_a_file_that_is_no_torch_checkpoint_is_named(tmp_path, small_config, content):
    path = tmp_path / "model.pth"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        build_rem(small_config, random_init=True, checkpoint=path, trust_checkpoint=True)
    assert "not a file written by torch.save" in str(info.value) and str(path) in str(info.value)
    assert ".pth" in info.value.hint


def test_a_vae_scaling_factor_set_after_building_is_kept(tmp_path, small_config):
    # The scaling factor lives in the VAE's config, not its weights: a self-contained checkpoint must
    # carry the value the VAE really used, or the reloaded codec would scale latents differently.
    model = build_rem(small_config, random_init=True, seed=5)
    model.vae.register_to_config(scaling_factor=0.25)
    masks = (torch.rand(1, 2, *small_config.resolution, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    raw = model.vae.encode(masks[0, :1].unsqueeze(1).expand(-1, 3, -1, -1)).latent_dist.mode()
    torch.testing.assert_close(model.codec.encode_masks(masks)[0, :, 0], raw[0] * 0.25)
    loaded = build_rem(None, checkpoint=save_checkpoint(model, tmp_path / "ours"))
    assert loaded.vae.config.scaling_factor == 0.25 and loaded.config.vae["scaling_factor"] == 0.25
    torch.testing.assert_close(loaded.codec.encode_masks(masks), model.codec.encode_masks(masks))


def test_weights_are_made_in_their_dtype_and_checkpoints_are_memory_mapped(tmp_path, small_config, monkeypatch):
    """A half-precision build never holds a float32 copy of the backbone first: the diffusers and
    transformers loaders get the dtype, and a torch checkpoint is opened with mmap=True."""
    from diffusers import AutoencoderKL, UNet3DConditionModel
    from transformers import CLIPTextModel

    backbone = build_rem(small_config, random_init=True, seed=3)
    for name, module in (
        ("unet", backbone.denoiser),
        ("vae", backbone.vae),
        ("text_encoder", backbone.text_encoder),
        ("tokenizer", backbone.tokenizer),
    ):
        module.save_pretrained(tmp_path / "backbone" / name)
    path = tmp_path / "authors.pth"
    torch.save({"unet": backbone.denoiser.state_dict()}, path)
    asked = {}
    for cls in (UNet3DConditionModel, AutoencoderKL, CLIPTextModel):
        original = cls.from_pretrained.__func__

        def spy(klass, *args, _original=original, **kwargs):
            asked[klass.__name__] = kwargs.get("torch_dtype", kwargs.get("dtype"))
            return _original(klass, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))
    loads = []
    load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(k.get("mmap")) or load(*a, **k))
    model = build_rem(small_config, pretrained=tmp_path / "backbone", checkpoint=path, dtype="bf16")
    assert asked == {
        "UNet3DConditionModel": torch.bfloat16,
        "AutoencoderKL": torch.bfloat16,
        "CLIPTextModel": torch.bfloat16,
    }
    assert loads == [True]
    assert model.denoiser.conv_in.weight.dtype == torch.bfloat16
    assert torch.equal(model.denoiser.conv_in.weight, backbone.denoiser.conv_in.weight.to(torch.bfloat16))
