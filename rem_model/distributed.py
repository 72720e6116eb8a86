"""Processes: what training and inference share about running under ``accelerate launch`` / ``torchrun``."""

from __future__ import annotations

import os

import torch


def cpu_only_distributed() -> bool:
    """Several processes (torchrun) on a machine without a GPU: accelerate runs them as MULTI_CPU
    (gloo) only when told ``cpu=True``; otherwise every process would work alone, silently."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    return world > 1 and not torch.cuda.is_available()


def process_state():
    """accelerate's view of the processes (inference splits the clips across them)."""
    from accelerate import PartialState

    return PartialState(cpu=cpu_only_distributed())
