"""scripts/train_tiny_rem.py, the script that made the shipped rem-tiny weights, runs end to end (data,
VAE, both REM stages, export, evaluation) at a few steps on a few small clips."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from refvps.dataset.format import Dataset
from refvps.dataset.palette import IGNORE_INDEX
from refvps.synth import generate_benchmark
from rem_model.builder import build_rem

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_tiny_rem.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("train_tiny_rem", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _empty_prediction_j(root: Path) -> float:
    """J of all-empty masks, computed here: per frame 1 where the target is absent, else 0 (Ignore
    pixels excluded), averaged per expression, then over expressions."""
    scores = []
    for clip in Dataset(root):
        labels = clip.label_stack()
        for expression in clip.expressions:
            present = ((labels == expression.obj_id) & (labels != IGNORE_INDEX)).any(axis=(1, 2))
            scores.append(np.mean(~present))
    return 100 * float(np.mean(scores))


@pytest.mark.slow
def test_the_script_trains_exports_and_evaluates(script, tmp_path):
    held_out = generate_benchmark(tmp_path / "held-out", clips=1, seed=0, frames=8)
    out = tmp_path / "weights"
    argv = ["--work", str(tmp_path / "work"), "--out", str(out), "--eval-data", str(held_out)]
    argv += ["--train-clips", "2", "--frames", "8", "--vae-steps", "2", "--vae-batch", "3"]
    argv += ["--stage1-steps", "1", "--stage1-batch", "2", "--stage2-steps", "1", "--stage2-batch", "1"]
    assert script.main(argv) == 0
    model = build_rem(None, checkpoint=out)  # the exported folder is a self-contained rem-tiny
    assert model.config.name == "rem-tiny"
    meta = json.loads((out / "rem_config.json").read_text())
    assert meta["training"]["stage2"]["steps"] == 1 and meta["init_checkpoint"] is None
    results = json.loads((tmp_path / "work" / "results.json").read_text())
    assert 0 <= results["rem-tiny"]["J"] <= 100
    assert results["all-empty"]["J"] == pytest.approx(_empty_prediction_j(held_out))
