"""The configuration registry and the one builder."""

from __future__ import annotations

import json

import pytest
import torch

from refvps.errors import ConfigError
from rem_model.builder import _random_components, build_rem
from rem_model.config import CONFIGS, REMConfig, get_config, list_configs


def test_registry_has_the_issue_configs():
    assert {"rem-ms", "rem-wan-1.3b", "rem-wan-14b", "rem-tiny"} <= set(list_configs())
    assert get_config("rem-ms").hub_id == "ali-vilab/text-to-video-ms-1.7b"
    assert get_config("rem-ms").window == 72 and get_config("rem-ms").resolution == (512, 512)
    assert get_config("rem-ms").train_frames == 8
    # Paper C.2: AdamW lr 1e-6, weight decay 1e-5.
    assert get_config("rem-ms").lr_stage2 == 1e-6 and get_config("rem-ms").weight_decay == 1e-5
    for name in ("rem-wan-1.3b", "rem-wan-14b"):
        config = get_config(name)
        assert (config.window - 1) % 4 == 0 and (config.train_frames - 1) % 4 == 0


@pytest.mark.parametrize(
    "name, denoiser_params",
    [("rem-ms", (1.40e9, 1.42e9)), ("rem-wan-1.3b", (1.40e9, 1.44e9)), ("rem-wan-14b", (14.2e9, 14.4e9))],
)
def test_full_size_configs_construct_from_config_alone(name, denoiser_params):
    # On the meta device: every module is really constructed, without allocating its memory.
    denoiser, vae, text_encoder, tokenizer = _random_components(get_config(name), seed=0, device="meta")
    count = sum(p.numel() for p in denoiser.parameters())
    assert denoiser_params[0] < count < denoiser_params[1]
    expected_classes = {
        "rem-ms": ("UNet3DConditionModel", "AutoencoderKL", "CLIPTextModel"),
        "rem-wan-1.3b": ("WanTransformer3DModel", "AutoencoderKLWan", "UMT5EncoderModel"),
        "rem-wan-14b": ("WanTransformer3DModel", "AutoencoderKLWan", "UMT5EncoderModel"),
    }[name]
    assert (type(denoiser).__name__, type(vae).__name__, type(text_encoder).__name__) == expected_classes
    ids = tokenizer(["the smoke rising on the left"])["input_ids"][0]
    assert max(ids) < text_encoder.config.vocab_size


def test_spatial_multiples_divide_the_resolutions():
    for config in CONFIGS.values():
        h, w = config.resolution
        assert h % config.spatial_multiple == 0 and w % config.spatial_multiple == 0, config.name


def test_config_json_round_trip(tmp_path):
    config = get_config("rem-wan-tiny")
    path = tmp_path / "c.json"
    path.write_text(json.dumps(config.to_json()))
    assert get_config(path) == config
    data = config.to_json()
    data["bogus"] = 1
    with pytest.raises(ConfigError, match="bogus"):
        REMConfig.from_json(data)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"resolution": "big"}, "resolution must be"),  # a ValueError from int("b")
        ({"window": "many"}, "window must be a whole number"),  # a TypeError deep in inference
        ({"denoiser": [32, 64]}, "denoiser must be a mapping"),
        ({"resolution": [70, 128]}, r"resolution \[70, 128\] is not a multiple of 8"),  # ran, on a cropped latent
    ],
)
def test_a_config_file_with_values_of_the_wrong_kind_is_refused(tmp_path, change, message):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**get_config("rem-tiny").to_json(), **change}))
    with pytest.raises(ConfigError, match=message) as info:
        get_config(path)
    assert info.value.path == path and info.value.hint


def test_a_config_whose_classes_refuse_their_arguments_is_a_config_error():
    tiny = get_config("rem-tiny")
    odd = tiny.replace(vae={**tiny.vae, "block_out_channels": [16, 33, 32]})  # not a multiple of 8 groups
    with pytest.raises(ConfigError, match="cannot build the vae of REM config rem-tiny: num_channels") as info:
        build_rem(odd, random_init=True)
    assert "'vae' arguments" in info.value.hint
    with pytest.raises(ConfigError, match="unexpected keyword argument 'bogus'"):
        build_rem(tiny.replace(denoiser={**tiny.denoiser, "bogus": 1}), random_init=True)


def test_unknown_config_names_the_choices():
    with pytest.raises(ConfigError) as info:
        get_config("rem-huge")
    assert "rem-ms" in info.value.hint


def test_window_rounding_for_wan():
    config = get_config("rem-wan-1.3b")
    assert config.valid_window(81) and not config.valid_window(72)
    assert config.round_window(72) == 69 and config.round_window(3) == 1
    assert get_config("rem-ms").valid_window(72)


def test_pretrained_folder_that_is_missing_is_a_clear_error(tmp_path):
    # A path is not looked up on the hub (no network, no "cannot connect" message): it is not there.
    for config in ("rem-tiny", "rem-ms"):
        with pytest.raises(ConfigError, match="backbone folder not found") as info:
            build_rem(config, pretrained=tmp_path / "nowhere")
        assert "unet/ vae/ text_encoder/ tokenizer/" in info.value.hint
    assert "ali-vilab/text-to-video-ms-1.7b" in info.value.hint


def test_pretrained_folder_round_trip_and_architecture_check(tmp_path, small_config):
    # A diffusers-layout backbone folder written from a tiny random model loads back as the backbone...
    model = build_rem(small_config, random_init=True, seed=3)
    model.denoiser.save_pretrained(tmp_path / "unet")
    model.vae.save_pretrained(tmp_path / "vae")
    model.text_encoder.save_pretrained(tmp_path / "text_encoder")
    model.tokenizer.save_pretrained(tmp_path / "tokenizer")
    loaded = build_rem(small_config, pretrained=tmp_path)
    for a, b in zip(model.denoiser.state_dict().values(), loaded.denoiser.state_dict().values()):
        assert torch.equal(a, b)
    # ... and a config that describes another architecture is refused, naming the difference.
    other = small_config.replace(denoiser={**small_config.denoiser, "block_out_channels": [16, 32]})
    with pytest.raises(ConfigError, match="block_out_channels"):
        build_rem(other, pretrained=tmp_path)


def test_half_precision_keeps_what_diffusers_keeps_in_fp32(tmp_path):
    # A model cast to bf16 must be what diffusers' own loader makes of it: the time embedder,
    # modulation tables, norms and rotary embedding in float32 (values unchanged), the rest in bfloat16.
    from diffusers import WanTransformer3DModel

    from rem_model.model import cast

    model = build_rem("rem-wan-tiny", random_init=True, seed=2)
    model.denoiser.save_pretrained(tmp_path)
    reference = WanTransformer3DModel.from_pretrained(tmp_path, torch_dtype=torch.bfloat16)
    theirs = dict(reference.named_parameters()) | dict(reference.named_buffers())
    kept = {n for n, t in theirs.items() if t.dtype == torch.float32}
    cast(model.denoiser, None, torch.bfloat16)
    ours = dict(model.denoiser.named_parameters()) | dict(model.denoiser.named_buffers())
    assert ours.keys() == theirs.keys() and kept and any(t.dtype == torch.bfloat16 for t in ours.values())
    assert {n for n, t in ours.items() if t.dtype == torch.float32} == kept
    assert all(torch.equal(ours[n], theirs[n]) for n in ours)
    # Random weights drawn directly in bf16 (no float32 copy first) end in the same layout.
    direct = build_rem("rem-wan-tiny", random_init=True, seed=2, dtype="bf16").denoiser
    layout = {n: t.dtype for n, t in [*direct.named_parameters(), *direct.named_buffers()]}
    assert layout == {n: t.dtype for n, t in theirs.items()}
