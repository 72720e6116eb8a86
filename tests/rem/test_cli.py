"""The CLI: ``refvps train-rem`` and the ``rem`` runner of ``refvps run-baseline``."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from refvps.cli import main
from refvps.cli.rem_cmds import run_rem
from refvps.errors import ConfigError
from rem_model.builder import build_rem
from rem_model.checkpoints import save_checkpoint


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, small_config):
    return save_checkpoint(build_rem(small_config, random_init=True), tmp_path_factory.mktemp("ckpt") / "tiny")


def test_run_rem_writes_predictions_and_a_json_summary(tmp_path, toy_dataset, tiny_checkpoint):
    out = tmp_path / "pred"
    result = CliRunner().invoke(
        run_rem, ["--dataset", str(toy_dataset), "--out", str(out), "--checkpoint", str(tiny_checkpoint), "--window", "4", "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["config"] == "rem-tiny" and summary["frame_expressions"] == 80 and summary["clips_predicted"] == 2
    assert len(list(out.rglob("*.png"))) == 80
    again = json.loads(CliRunner().invoke(run_rem, ["--dataset", str(toy_dataset), "--out", str(out), "--checkpoint", str(tiny_checkpoint), "--json"]).output)
    assert again["clips_predicted"] == 0 and again["clips_resumed"] == 2


def test_run_rem_with_an_authors_file_needs_the_config(tmp_path, toy_dataset, small_config):
    path = tmp_path / "authors.pth"
    torch.save({"unet": build_rem(small_config, random_init=True).denoiser.state_dict()}, path)
    result = CliRunner().invoke(run_rem, ["--dataset", str(toy_dataset), "--out", str(tmp_path / "p"), "--checkpoint", str(path)])
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
