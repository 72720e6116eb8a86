"""Fixtures of the Codabench tests: a synthetic benchmark with a dev and a test split, its bundle,
and the oracle, empty and motion predictions of the dev split.

The dataset is made by ``refvps.synth`` in the folder layout (``ROOT/dev``, ``ROOT/test``: two
synthetic benchmarks with different seeds, so different clip ids); tests that need the field layout
copy it into one dataset with a ``split`` field per clip.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from baselines.reference import run_reference
from refvps.codabench import BundleOptions, CompetitionSettings, PhaseLimits, build_bundle
from refvps.synth.generate import generate_benchmark

SIZE = (96, 64)  # width, height
FRAMES = 10


def settings(**changes) -> CompetitionSettings:
    values = dict(
        title="Synthetic Ref-VPS",
        docker_image="refvps/codabench-scorer:test",
        dev_start=datetime(2030, 1, 1),
        test_start=datetime(2030, 3, 1),
        test_end=datetime(2030, 6, 1),
        test_limits=PhaseLimits(3, 15),
    )
    values.update(changes)
    return CompetitionSettings(**values)


@pytest.fixture(scope="session")
def split_root(tmp_path_factory) -> Path:
    """ROOT/dev (3 clips, seed 1) and ROOT/test (3 clips, seed 2)."""
    root = tmp_path_factory.mktemp("splits")
    generate_benchmark(root / "dev", clips=3, seed=1, size=SIZE, frames=FRAMES)
    generate_benchmark(root / "test", clips=3, seed=2, size=SIZE, frames=FRAMES)
    return root


def field_layout(split_root: Path, out: Path) -> Path:
    """The two split folders merged into one dataset whose clips.json names each clip's split."""
    for split in ("dev", "test"):
        source = split_root / split
        for folder in ("JPEGImages", "Annotations"):
            shutil.copytree(source / folder, out / folder, dirs_exist_ok=True)
    videos, clips = {}, {}
    for split in ("dev", "test"):
        videos.update(json.loads((split_root / split / "meta_expressions.json").read_text())["videos"])
        for clip_id, entry in json.loads((split_root / split / "clips.json").read_text())["clips"].items():
            clips[clip_id] = dict(entry, split=split)
    (out / "meta_expressions.json").write_text(json.dumps({"videos": videos}))
    (out / "clips.json").write_text(json.dumps({"clips": clips}))
    return out


@pytest.fixture(scope="session")
def bundle(split_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "bundle.zip"
    build_bundle(split_root, out, settings(), BundleOptions(bootstrap=200))
    return out


@pytest.fixture(scope="session")
def dev_predictions(split_root, tmp_path_factory) -> dict[str, Path]:
    """Prediction folders of the reference baselines on the dev split."""
    folder = tmp_path_factory.mktemp("predictions")
    return {name: run_reference(name, split_root / "dev", folder / name).out for name in ("oracle", "empty", "motion")}
