"""Fixtures of the REM tests: a toy Ref-VPS-format dataset and small configs of the real classes."""

from __future__ import annotations

import pytest
import torch

from rem_model.config import get_config

from .toydata import make_toy_dataset


@pytest.fixture(scope="session")
def toy_dataset(tmp_path_factory):
    """Two clips of 10 frames, 48 x 64, two discs, four expressions each."""
    return make_toy_dataset(tmp_path_factory.mktemp("toy") / "data", clips=2, frames=10)


@pytest.fixture(scope="session")
def small_config():
    """rem-tiny at a smaller resolution, so that a training step takes well under a second."""
    return get_config("rem-tiny").replace(resolution=(32, 48))


@pytest.fixture(autouse=True)
def _one_thread():
    # One thread: on a machine whose cores are shared with other jobs, OpenMP threads waiting for
    # each other make small models many times slower than a single thread.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def fill_zero_parameters(module: torch.nn.Module, std: float = 0.02, seed: int = 0) -> None:
    """Give zero-initialised layers (diffusers zero-inits temporal outputs) small random values, like a
    pretrained model has, so that one step moves every trainable weight."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            if not param.any():
                param.copy_(torch.randn(param.shape, generator=generator) * std)
