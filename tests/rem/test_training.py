"""Training: the stage-1 freeze, overfitting, save/resume, LoRA, gradient checkpointing, 2 processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from refvps.errors import ConfigError, DatasetError
from rem_model.builder import build_rem
from rem_model.data import DataSource, build_training_dataset, collate
from rem_model.model import LoraSettings, merge_lora_state_dict
from rem_model.train import TrainConfig, load_train_config, run
from rem_model.train.batches import step_generator
from rem_model.train.loop import _unwrap_worker_error, build_optimizer
from rem_model.train.saving import find_checkpoint

from .conftest import fill_zero_parameters


def _batch(dataset_root, config, num_frames, size=2):
    dataset = build_training_dataset(
        [DataSource("refvps", str(dataset_root))], resolution=config.resolution, num_frames=num_frames
    )
    return collate([dataset[i] for i in range(size)])


def _one_step(model, batch, stage):
    optimizer = build_optimizer(model, TrainConfig(stage=stage, lr=1e-3), model.config)
    before = {n: p.detach().clone() for n, p in model.denoiser.named_parameters()}
    loss = model.loss(batch["frames"], batch["masks"], batch["text"], generator=step_generator(0, 0, 0))
    loss.backward()
    optimizer.step()
    return {n for n, p in model.denoiser.named_parameters() if not torch.equal(p, before[n])}, set(before)


def test_temporal_parameters_include_transformer_in(small_config):
    model = build_rem(small_config, random_init=True)
    temporal = model.temporal_parameter_names()
    # The authors' stage-1 filter ('temp' in name) misses transformer_in; ours must not.
    assert any(n.startswith("transformer_in.") for n in temporal)
    assert any(".temp_convs." in n for n in temporal) and any(".temp_attentions." in n for n in temporal)
    assert not any(n.startswith("time_embedding.") for n in temporal)
    assert all(".temp_" in n or n.startswith("transformer_in.") for n in temporal)


def test_stage1_leaves_exactly_the_temporal_parameters_unchanged(small_config, toy_dataset):
    model = build_rem(small_config, random_init=True)
    fill_zero_parameters(model.denoiser)
    model.configure_trainable(1)
    changed, every = _one_step(model, _batch(toy_dataset, small_config, 1), "1")
    unchanged = every - changed
    frozen = set(model.frozen_parameter_names())  # the time embedding, frozen in every stage
    assert frozen and all(n.startswith("time_embedding.") for n in frozen)
    assert unchanged == set(model.temporal_parameter_names()) | frozen


def test_stage2_changes_the_temporal_parameters(small_config, toy_dataset):
    model = build_rem(small_config, random_init=True)
    fill_zero_parameters(model.denoiser)
    model.configure_trainable(2)
    changed, every = _one_step(model, _batch(toy_dataset, small_config, 4), "2")
    assert set(model.temporal_parameter_names()) <= changed
    assert every - changed == set(model.frozen_parameter_names())
    # The VAE and the text encoder never train.
    assert not any(p.requires_grad for p in model.vae.parameters())
    assert not any(p.requires_grad for p in model.text_encoder.parameters())


def test_wan_has_no_spatial_only_stage():
    model = build_rem("rem-wan-tiny", random_init=True)
    with pytest.raises(ConfigError, match="stage"):
        model.configure_trainable(1)
    summary = model.configure_trainable("all")
    assert summary.trainable > 0


def test_wan_freezes_what_the_authors_freeze(toy_dataset):
    """The authors' WanVdiff_wrapper sets requires_grad False on every parameter whose name contains
    "patch_embedding" or "condition_embedder" (time embedder, time projection, text embedder); one
    step must change every other transformer weight and none of those."""
    model = build_rem("rem-wan-tiny", random_init=True, seed=3)
    fill_zero_parameters(model.denoiser)
    model.configure_trainable("all")
    names = [n for n, _ in model.denoiser.named_parameters()]
    theirs = {n for n in names if "patch_embedding" in n or "condition_embedder" in n}
    assert any(n.startswith("condition_embedder.text_embedder.") for n in theirs)
    assert any(n.startswith("patch_embedding.") for n in theirs)
    assert set(model.frozen_parameter_names()) == theirs
    changed, every = _one_step(model, _batch(toy_dataset, model.config, 5), "all")
    assert every - changed == theirs


@pytest.mark.slow
def test_tiny_model_overfits_a_fixed_batch(small_config, toy_dataset):
    torch.manual_seed(0)
    model = build_rem(small_config, random_init=True)
    model.configure_trainable(2)
    model.denoiser.train()
    batch = _batch(toy_dataset, small_config, 2)
    optimizer = build_optimizer(model, TrainConfig(lr=1e-3), small_config)
    losses = []
    for _ in range(45):
        loss = model.loss(batch["frames"], batch["masks"], batch["text"], generator=step_generator(0, 0, 0))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] <= losses[0] / 10, losses[::5]


def test_gradient_checkpointing_gives_the_same_gradients(small_config, toy_dataset):
    batch = _batch(toy_dataset, small_config, 2)
    grads = []
    for checkpointing in (False, True):
        model = build_rem(small_config, random_init=True, seed=4)
        fill_zero_parameters(model.denoiser)
        model.configure_trainable(2)
        if checkpointing:
            model.enable_gradient_checkpointing()
        loss = model.loss(batch["frames"], batch["masks"], batch["text"], generator=step_generator(0, 0, 0))
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.denoiser.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-6)


def test_lora_trains_adapters_only_and_merges_exactly(small_config, toy_dataset):
    model = build_rem(small_config, random_init=True)
    summary = model.configure_trainable(1, lora=LoraSettings(rank=4, alpha=8))
    trainable = [n for n, p in model.denoiser.named_parameters() if p.requires_grad]
    assert summary.lora and trainable and all("lora_" in n for n in trainable)
    assert not any(".temp_" in n or n.startswith("transformer_in.") for n in trainable)  # stage 1: spatial only
    with torch.no_grad():
        for name, param in model.denoiser.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.05)  # as if trained (lora_B starts at zero)
    batch = _batch(toy_dataset, small_config, 1)
    z1 = model.encode_video(batch["frames"], step_generator(0, 0, 0))
    text = model.encode_text(batch["text"])
    with torch.no_grad():
        with_adapters = model.denoise(z1, text)
    merged = merge_lora_state_dict(model.denoiser.state_dict(), 8 / 4)
    plain = build_rem(small_config, random_init=True)
    plain.denoiser.load_state_dict(merged, strict=True)
    with torch.no_grad():
        torch.testing.assert_close(plain.denoise(z1, text), with_adapters, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(model.merged_denoiser_state_dict()["conv_in.weight"], merged["conv_in.weight"])


def _config(toy_dataset, out, **extra):
    data = {
        "model": "rem-tiny",
        "random_init": True,
        "stage": "2",
        "num_frames": 2,
        "data": [{"kind": "refvps", "root": str(toy_dataset)}],
        "output_dir": str(out),
        "batch_size": 2,
        "num_workers": 0,
        "lr": 1e-3,
        "log_every": 1,
    }
    data.update(extra)
    return TrainConfig.from_dict(data)


def test_save_then_resume_gives_the_same_next_loss(tmp_path, toy_dataset):
    # 4 samples in batches of 2: 2 steps per epoch, so the resume crosses an epoch boundary too.
    first = run(_config(toy_dataset, tmp_path / "a", max_steps=4, checkpointing_steps=2))
    assert first.global_step == 4 and (tmp_path / "a" / "checkpoint-2").is_dir()
    resumed = run(
        _config(
            toy_dataset,
            tmp_path / "a",
            max_steps=4,
            checkpointing_steps=100,
            resume_from_checkpoint=str(tmp_path / "a" / "checkpoint-2"),
        ),
    )
    assert resumed.global_step == 4 and len(resumed.losses) == 2
    assert resumed.losses == pytest.approx(first.losses[2:], rel=1e-5)
    log = [json.loads(line) for line in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    assert {"loss", "samples_per_s", "frames_per_s", "lr"} <= set(log[0])
    final = tmp_path / "a" / "final"
    assert (final / "model.safetensors").is_file() and (final / "rem_config.json").is_file()
    build_rem(None, checkpoint=final)  # the final weights load as a model


def test_epochs_count_the_optimizer_step_at_the_end_of_each_epoch(tmp_path, toy_dataset):
    """8 samples (2 clips x 4 expressions) in batches of 1 with gradient accumulation 3: accelerate
    steps after batches 3, 6 and 8 (the end of the data), so an epoch is ceil(8 / 3) = 3 steps and 2
    epochs are 6 steps (rounding down gave 4 and stopped inside the second epoch)."""
    result = run(_config(toy_dataset, tmp_path / "e", batch_size=1, gradient_accumulation_steps=3, epochs=2))
    assert result.global_step == 6 and len(result.losses) == 6


def test_resume_latest_picks_the_newest_checkpoint(tmp_path, toy_dataset):
    out = tmp_path / "b"
    run(_config(toy_dataset, out, max_steps=3, checkpointing_steps=1, checkpoints_total_limit=2))
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]
    # A save interrupted half-way (written under a temporary name) is never taken for a checkpoint.
    (out / "checkpoint-9.partial").mkdir()
    assert find_checkpoint(out, "latest") == out / "checkpoint-3"
    again = run(_config(toy_dataset, out, max_steps=3, resume_from_checkpoint="latest"))
    assert again.global_step == 3 and again.losses == []  # nothing left to do


def test_a_new_run_in_a_used_output_dir_is_refused(tmp_path, toy_dataset):
    """Starting over in the folder of an earlier run (without --resume-from-checkpoint) used to prune the
    new run's own checkpoint-2 (it sorts below the old ones), overwrite the old checkpoint-4 and the
    final weights, and leave latest pointing at the old run: it is refused, and nothing is touched."""
    out = tmp_path / "used"
    run(_config(toy_dataset, out, max_steps=6, checkpointing_steps=2, checkpoints_total_limit=2))
    before = {p.relative_to(out): p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    with pytest.raises(ConfigError, match="already holds a training run") as info:
        run(_config(toy_dataset, out, max_steps=4, checkpointing_steps=2))
    assert "--resume-from-checkpoint latest" in info.value.hint and "checkpoint-6" in str(info.value)
    assert {p.relative_to(out): p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before
    again = run(_config(toy_dataset, out, max_steps=6, resume_from_checkpoint="latest"))
    assert again.global_step == 6 and again.losses == []


def test_a_data_loader_worker_error_is_reported_without_its_traceback():
    # torch re-raises a worker's exception as type(exc)(message) with the traceback as the message.
    wrapped = DatasetError(
        "Caught DatasetError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\nrefvps.errors.DatasetError: cannot read frame /d/JPEGImages/c/00003.jpg\n'
    )
    clean = _unwrap_worker_error(wrapped)
    assert isinstance(clean, DatasetError) and str(clean) == "cannot read frame /d/JPEGImages/c/00003.jpg"
    assert "num_workers: 0" in clean.hint
    plain = DatasetError("mask not found", hint="write it")
    assert _unwrap_worker_error(plain) is plain


def test_training_config_file_and_overrides(tmp_path, toy_dataset):
    path = tmp_path / "train.yaml"
    path.write_text(f"model: rem-tiny\nrandom_init: true\ndata:\n  - kind: refvps\n    root: {toy_dataset}\n")
    config = load_train_config(path, ["lr=2e-5", "stage=1", "lora={rank: 4, alpha: 4}"])
    assert config.lr == 2e-5 and config.stage == "1" and config.lora == LoraSettings(rank=4, alpha=4)
    path.write_text("model: rem-tiny\nlearning_rate: 1\n")
    with pytest.raises(ConfigError, match="learning_rate"):
        load_train_config(path)


@pytest.mark.parametrize(
    "setting, message",
    [
        ({"checkpointing_steps": -1}, "checkpointing_steps must be a whole number of at least 0"),  # saved every step
        ({"checkpoints_total_limit": 0}, "checkpoints_total_limit"),  # kept one anyway
        ({"epochs": 0}, "epochs must be"),  # wrote untrained final weights
        ({"num_frames": 0}, "num_frames must be"),  # read as the default
        ({"num_frames": -2}, "num_frames must be"),  # an IndexError in the data
        ({"batch_size": [2]}, "batch_size must be"),
        ({"lr_scheduler": "cosinus"}, "lr_scheduler 'cosinus'"),  # a ValueError after the model was built
        ({"lr_scheduler": "piecewise_constant", "lr_step_rules": "after 3500"}, "lr_step_rules 'after 3500'"),
        ({"lora": 7}, "lora must be a mapping"),  # an AttributeError
    ],
)
def test_a_setting_no_run_can_use_is_refused_when_the_config_is_read(tmp_path, setting, message):
    path = tmp_path / "train.yaml"
    path.write_text("model: rem-tiny\nrandom_init: true\ndata: [{kind: refvps, root: data}]\n")
    overrides = [f"{key}={json.dumps(value)}" for key, value in setting.items()]
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as info:
        load_train_config(path, overrides)
    assert info.value.hint and info.value.path == path


def test_settings_accelerate_refuses_are_a_config_error(tmp_path, toy_dataset):
    with pytest.raises(ConfigError, match="accelerate refuses .* nothing"):
        run(_config(toy_dataset, tmp_path / "r", report_to="nothing"))


@pytest.mark.slow
def test_two_process_cpu_run_of_two_steps(tmp_path, toy_dataset):
    # accelerate launch --cpu --num_processes 2 starts one process on this machine; torchrun with
    # gloo starts two, and accelerate picks them up as MULTI_CPU.
    config = tmp_path / "train.yaml"
    config.write_text(
        "\n".join(
            [
                "model: rem-tiny",
                "random_init: true",
                "num_frames: 2",
                "batch_size: 1",
                "num_workers: 0",
                "lr: 0.001",
                "log_every: 1",
                "checkpointing_steps: 2",
                f"output_dir: {tmp_path / 'ddp'}",
                "data:",
                f"  - {{kind: refvps, root: {toy_dataset}}}",
            ]
        )
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    torchrun = Path(sys.executable).with_name("torchrun")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = subprocess.run(
        [
            str(torchrun),
            "--nproc_per_node",
            "2",
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(port),
            "-m",
            "refvps",
            "train-rem",
            str(config),
            "--max-steps",
            "2",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_file = json.loads((tmp_path / "ddp" / "run.json").read_text())
    assert run_file["num_frames"] == 2
    # One log line per step (only the main process writes), two samples per step (one per process).
    log = [json.loads(line) for line in (tmp_path / "ddp" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2]
    assert result.stdout.count("trained 2 steps") == 1  # one summary, the main process's
    assert (tmp_path / "ddp" / "final" / "model.safetensors").is_file()
    # Both processes wrote their part of the accelerate state; the folder got its final name once.
    assert sorted(p.name for p in (tmp_path / "ddp").glob("checkpoint-*")) == ["checkpoint-2"]
    assert {"random_states_0.pkl", "random_states_1.pkl"} <= {
        p.name for p in (tmp_path / "ddp" / "checkpoint-2").iterdir()
    }


@pytest.mark.parametrize("name", ["ms_stage1", "ms_stage2", "wan14b"])
def test_example_configs_parse(name):
    config = load_train_config(Path(__file__).resolve().parents[2] / "rem_model" / "configs" / f"{name}.yaml")
    assert config.data and config.mixed_precision == "bf16"


def test_alternating_batches_give_every_process_an_image_then_a_video_batch():
    from accelerate.data_loader import BatchSamplerShard

    from rem_model.train.batches import AlternatingBatches

    images, videos = list(range(0, 9)), list(range(100, 104))
    single = AlternatingBatches(images, videos, batch_size=2, seed=0)
    batches = list(single)
    assert len(batches) == len(single) == 8  # one pass over the images: 4 image batches, 4 video batches
    assert [b[0] < 100 for b in batches] == [True, False] * 4
    assert sorted(i for b in batches[::2] for i in b) == sorted(set(i for b in batches[::2] for i in b))
    assert all(i in videos for b in batches[1::2] for i in b)  # videos cycle as long as the images last
    single.use_epoch(1)
    assert list(single) != batches  # another shuffle each epoch, the same on a resume
    single.use_epoch(0)
    assert list(single) == batches
    # Two processes: accelerate gives process k batch k of every pair; both alternate.
    shared = AlternatingBatches(images, videos, batch_size=2, seed=0, group=2)
    for process in (0, 1):
        mine = list(BatchSamplerShard(shared, num_processes=2, process_index=process))
        assert [b[0] < 100 for b in mine] == [True, False] * 2


def test_wan_training_alternates_one_frame_image_batches_with_video_batches(tmp_path, toy_dataset, monkeypatch):
    from rem_model.train import loop

    from .toydata import make_refer_dataset

    refer, images = make_refer_dataset(tmp_path)
    seen = []
    step = loop.training_step
    monkeypatch.setattr(loop, "training_step", lambda *a: seen.append(tuple(a[2]["frames"].shape[:2])) or step(*a))
    config = _config(
        toy_dataset,
        tmp_path / "wan",
        model="rem-wan-tiny",
        stage="all",
        num_frames=5,
        batch_size=1,
        epochs=1,
        data=[
            {"kind": "refvps", "root": str(toy_dataset)},
            {"kind": "refcoco", "root": str(refer), "images": str(images)},
        ],
    )
    result = run(config)
    # Two image samples: an epoch is 2 x 2 steps (as the authors' 2 * len(im_loader)), image first.
    assert seen == [(1, 1), (1, 5), (1, 1), (1, 5)] and result.global_step == 4
    pseudo = _config(toy_dataset, tmp_path / "ms", num_frames=2, batch_size=1, epochs=1, data=config.to_json()["data"])
    seen.clear()
    run(pseudo)  # ModelScope stage 2: images as 2-frame pseudo-videos, mixed with the videos
    assert set(seen) == {(1, 2)} and len(seen) == 10


def test_mixed_precision_defaults_to_the_launcher_setting(tmp_path, toy_dataset, monkeypatch, caplog):
    """accelerate launch --mixed_precision bf16 (or accelerate config) sets ACCELERATE_MIXED_PRECISION;
    a training config that does not say otherwise must use it, and one that does is reported."""
    from accelerate.state import AcceleratorState

    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    AcceleratorState._reset_state(reset_partial_state=True)
    try:
        run(_config(toy_dataset, tmp_path / "launcher", max_steps=1))
        record = json.loads((tmp_path / "launcher" / "run.json").read_text())
        assert record["mixed_precision"] == "bf16" and record["frozen_dtype"] == "torch.bfloat16"
        AcceleratorState._reset_state(reset_partial_state=True)
        with caplog.at_level("WARNING", logger="rem_model"):
            run(_config(toy_dataset, tmp_path / "explicit", max_steps=1, mixed_precision="no"))
        assert json.loads((tmp_path / "explicit" / "run.json").read_text())["mixed_precision"] == "no"
        assert "overrides bf16 set by accelerate launch" in caplog.text
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)


def test_final_weights_load_with_diffusers_from_pretrained(tmp_path, toy_dataset):
    from diffusers import UNet3DConditionModel

    result = run(_config(toy_dataset, tmp_path / "r", max_steps=1))
    unet = UNet3DConditionModel.from_pretrained(result.final_dir, subfolder="unet")
    ours = build_rem(None, checkpoint=result.final_dir).denoiser.state_dict()
    theirs = unet.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_a_wan_denoiser_with_lora_saves_merged_for_from_pretrained(tmp_path, toy_dataset):
    from diffusers import WanTransformer3DModel

    from rem_model.checkpoints import save_denoiser_pretrained

    model = build_rem("rem-wan-tiny", random_init=True, seed=5)
    model.configure_trainable("all", lora=LoraSettings(rank=2, alpha=4, target_modules=("to_q", "to_v")))
    with torch.no_grad():
        for name, param in model.denoiser.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.1)  # as if trained
    folder = save_denoiser_pretrained(model, tmp_path)
    assert folder == tmp_path / "transformer" and (folder / "config.json").is_file()
    loaded = WanTransformer3DModel.from_pretrained(tmp_path, subfolder="transformer")
    batch = _batch(toy_dataset, model.config, 5, size=1)
    z1 = model.encode_video(batch["frames"])
    text = model.encode_text(batch["text"])
    with torch.no_grad():
        timestep = torch.zeros(1, dtype=torch.long)
        expected = model.denoise(z1, text)  # with the adapters
        got = loaded(hidden_states=z1, timestep=timestep, encoder_hidden_states=text, return_dict=False)[0]
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
