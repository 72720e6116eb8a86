"""Fixtures of the benchmark-suite tests: each tiny benchmark written in its official format, and
converted once per module; random predictions; the CLI run in this process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from refvps.convert import convert
from refvps.dataset.format import Dataset, image_size
from refvps.predictions import PredictionWriter

from . import official


@dataclass
class Converted:
    source: official.Source
    root: Path
    report: object


def _convert(factory, name: str, writer, split: str | None = None, **options) -> Converted:
    base = factory.mktemp(name.replace("+", "_"))
    source = writer(base / "src")
    report = convert(name, source.root, base / "out", split=split, options=options)
    return Converted(source, base / "out", report)


@pytest.fixture(scope="module")
def ref_davis(tmp_path_factory) -> Converted:
    return _convert(tmp_path_factory, "ref-davis", official.write_ref_davis)


@pytest.fixture(scope="module")
def ytvos_train(tmp_path_factory) -> Converted:
    return _convert(tmp_path_factory, "ref-ytvos", official.write_ref_ytvos, split="train")


@pytest.fixture(scope="module")
def ytvos_valid(tmp_path_factory) -> Converted:
    return _convert(tmp_path_factory, "ref-ytvos", official.write_ref_ytvos)


@pytest.fixture(scope="module")
def mevis(tmp_path_factory) -> Converted:
    return _convert(tmp_path_factory, "mevis", official.write_mevis)


@pytest.fixture(scope="module")
def vspw(tmp_path_factory) -> Converted:
    return _convert(tmp_path_factory, "vspw-stuff", official.write_vspw)


@pytest.fixture(scope="module")
def burst(tmp_path_factory) -> Converted:
    return _convert(tmp_path_factory, "burst", official.write_burst)


def random_predictions(root: Path, out: Path, seed: int, *, all_frames: bool = True) -> Path:
    """Random blobs for every (clip, expression, frame), some frames empty, some near the truth."""
    rng = np.random.default_rng(seed)
    writer = PredictionWriter(out)
    for clip in Dataset(root):
        width, height = image_size(clip.frame_path(clip.frame_names[0]))
        for expression in clip.expressions:
            for name in clip.frame_names if all_frames else clip.annotated_frames:
                mask = np.zeros((height, width), bool)
                if rng.random() > 0.2:
                    y, x = rng.integers(0, height - 6), rng.integers(0, width - 6)
                    mask[y : y + rng.integers(4, height - y + 1), x : x + rng.integers(4, width - x + 1)] = True
                    mask &= rng.random((height, width)) > 0.1
                writer.write(clip.id, expression.exp_id, name, mask)
    return out
