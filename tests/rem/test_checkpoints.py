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
        {"unet": trained.denoiser.state_dict(), "optimizer": {}, "epoch": 39, "args": argparse.Namespace(lr=1e-6, num_frames=8)},
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
