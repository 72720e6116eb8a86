"""The CLI: ``refvps train-rem`` and the ``rem`` runner of ``refvps run-baseline``."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from refvps.cli import main
from refvps.cli.rem_cmds import run_rem
from refvps.errors import ConfigError, UsageError
from rem_model.builder import build_rem
from rem_model.checkpoints import save_checkpoint


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, small_config):
    return save_checkpoint(build_rem(small_config, random_init=True), tmp_path_factory.mktemp("ckpt") / "tiny")


def test_run_rem_writes_predictions_and_a_json_summary(tmp_path, toy_dataset, tiny_checkpoint):
    out = tmp_path / "pred"
    result = CliRunner().invoke(
        run_rem,
        [
            "--dataset",
            str(toy_dataset),
            "--out",
            str(out),
            "--checkpoint",
            str(tiny_checkpoint),
            "--window",
            "4",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["config"] == "rem-tiny" and summary["frame_expressions"] == 80 and summary["clips_predicted"] == 2
    assert len(list(out.rglob("*.png"))) == 80
    args = ["--dataset", str(toy_dataset), "--out", str(out), "--checkpoint", str(tiny_checkpoint)]
    again = json.loads(CliRunner().invoke(run_rem, [*args, "--window", "4", "--json"]).stdout)
    assert again["clips_predicted"] == 0 and again["clips_resumed"] == 2
    # Resuming with other settings would mix two runs' masks in one folder: refused, naming the change.
    other = CliRunner().invoke(run_rem, [*args, "--window", "5"])
    assert isinstance(other.exception, UsageError) and "window: 4 then, 5 now" in str(other.exception)


def test_run_rem_with_an_authors_file_needs_the_config(tmp_path, toy_dataset, small_config):
    path = tmp_path / "authors.pth"
    torch.save({"unet": build_rem(small_config, random_init=True).denoiser.state_dict()}, path)
    result = CliRunner().invoke(
        run_rem, ["--dataset", str(toy_dataset), "--out", str(tmp_path / "p"), "--checkpoint", str(path)]
    )
    assert isinstance(result.exception, ConfigError) and "--config" in result.exception.hint


def test_train_rem_errors_are_messages_not_tracebacks(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("model: rem-tiny\nrandom_init: true\nlearning_rate: 0.1\n")
    with pytest.raises(SystemExit) as info:
        main(["train-rem", str(config)])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "Error:" in err and "learning_rate" in err and "Traceback" not in err


def test_train_rem_runs_a_config(tmp_path, toy_dataset, capsys):
    config = tmp_path / "train.yaml"
    config.write_text(
        f"model: rem-tiny\nrandom_init: true\nnum_frames: 2\nbatch_size: 2\nnum_workers: 0\n"
        f"output_dir: {tmp_path / 'run'}\ndata:\n  - {{kind: refvps, root: {toy_dataset}}}\n"
    )
    with pytest.raises(SystemExit) as info:
        main(["train-rem", str(config), "--max-steps", "2", "--set", "lr=1e-3", "--json"])
    assert info.value.code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 2 and summary["final"].endswith("final")


def test_an_interrupted_training_run_says_how_to_resume_it(tmp_path, capsys, monkeypatch):
    """The generic 'run the same command again' is wrong for train-rem: a new run refuses a folder
    holding checkpoints; the hint names --resume-from-checkpoint latest."""
    import rem_model.train

    def interrupted(config, progress=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(rem_model.train, "run", interrupted)
    config = tmp_path / "train.yaml"
    config.write_text(f"model: rem-tiny\nrandom_init: true\noutput_dir: {tmp_path / 'run'}\n")
    with pytest.raises(SystemExit) as info:
        main(["train-rem", str(config)])
    err = " ".join(capsys.readouterr().err.split())
    assert info.value.code == 130 and "Error: interrupted" in err
    assert "--resume-from-checkpoint latest" in err and str(tmp_path / "run") in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config", "rem-huge"], "unknown REM config 'rem-huge'"),
        (["--config", "rem-tiny", "--checkpoint", "{tmp}/none.pth"], "checkpoint not found"),
        (["--config", "rem-tiny", "--checkpoint", "{tmp}/junk.pth"], "not a file written by torch.save"),
        (["--config", "rem-tiny", "--pretrained", "{tmp}/no/backbone"], "backbone folder not found"),
        (["--config", "rem-wan-tiny", "--random-init", "--window", "8"], "takes windows of 4k+1 frames"),
        (["--config", "rem-tiny", "--window", "0"], "--window must be at least 1"),
        (["--config", "rem-tiny", "--stride", "25"], "--stride 25 is longer than the window (24 frames)"),
        (["--config", "rem-tiny", "--window", "8", "--stride", "9"], "--stride 9 is longer than the window (8"),
        (["--config", "rem-tiny", "--expression-batch", "0"], "--expression-batch must be at least 1"),
        (["--config", "rem-tiny", "--out", "{tmp}/junk.pth"], "is a file, not a folder"),
    ],
)
def test_run_rem_bad_input_is_an_error_with_a_hint(tmp_path, toy_dataset, capsys, args, message):
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "pred")]
    with pytest.raises(SystemExit) as info:
        main(["run-baseline", "rem", "--dataset", str(toy_dataset), *args])
    err = capsys.readouterr().err
    assert info.value.code != 0 and "Traceback" not in err
    assert "Error:" in err and "Hint:" in err and message in " ".join(err.split()), err


def test_train_rem_on_a_dataset_without_masks_is_an_error_with_a_hint(tmp_path, toy_dataset, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(toy_dataset, data, ignore=shutil.ignore_patterns("Annotations"))
    config = tmp_path / "train.yaml"
    config.write_text(
        f"model: rem-tiny\nrandom_init: true\nnum_workers: 2\ndata:\n  - {{kind: refvps, root: {data}}}\n"
    )
    with pytest.raises(SystemExit) as info:
        main(["train-rem", str(config), "--output-dir", str(tmp_path / "run")])
    err = " ".join(capsys.readouterr().err.split())
    assert info.value.code == 1 and "Traceback" not in err
    assert "has no masks" in err and "Hint:" in err


@pytest.mark.parametrize("offline", [False, True])
def test_a_hub_id_without_network_is_one_clear_error(tmp_path, toy_dataset, offline):
    """No network (an endpoint that refuses connections) or HF_HUB_OFFLINE, an empty cache, and a hub
    id: one Error naming the cache folder looked in and how to pass a local copy; no retry warnings."""
    import os
    import subprocess
    import sys

    cache = tmp_path / "hub"
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path)}
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    command = [sys.executable, "-m", "refvps", "run-baseline", "rem", "--dataset", str(toy_dataset)]
    command += ["--out", str(tmp_path / "pred"), "--config", "rem-tiny", "--pretrained", "someone/a-backbone"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    err = " ".join(result.stderr.split())
    assert result.returncode != 0 and "Traceback" not in err and "Retrying" not in err
    assert result.stderr.count("Error:") == 1 and len(result.stderr.strip().splitlines()) <= 4, result.stderr
    assert str(cache / "models--someone--a-backbone") in err
    assert "--pretrained" in err and "hf download someone/a-backbone" in err
