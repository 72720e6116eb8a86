"""What a training run draws, made a function of (seed, epoch, step) so that a resumed run repeats it:
the order of the samples, the alternation of image and video batches, and the t = 0 noise."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


@dataclass
class TrainState:
    """Progress saved with every checkpoint (registered with ``accelerator.save_state``)."""

    global_step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0  # batches of the current epoch already consumed
    batches_seen: int = 0  # micro-batches of this process since the start (seeds the t = 0 noise)

    def state_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    def load_state_dict(self, state: dict[str, int]) -> None:
        for key, value in state.items():
            setattr(self, key, int(value))


class EpochPermutation(Sampler[int]):
    """A shuffled order that depends only on (seed, epoch), so a resumed run sees the same batches.

    The epoch is chosen with :meth:`use_epoch` (not ``set_epoch``: accelerate calls ``set_epoch``
    with its own count of passes over the loader, which restarts at 0 after a resume).
    """

    def __init__(self, size: int, seed: int):
        self.size = size
        self.seed = seed
        self.epoch = 0

    def use_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        return iter(np.random.default_rng([self.seed, self.epoch, 99]).permutation(self.size).tolist())


class AlternatingBatches(Sampler[list[int]]):
    """Batches that alternate between image samples (one frame) and video samples, as the authors'
    Wan training does (``train_REM_wan.py``: image batch on even iterations, video batch on odd).

    An epoch is one pass over the images, so ``2 × image batches`` steps, as theirs; the videos are
    drawn from a stream of shuffles that continues as long as the images last. ``group`` batches of
    a kind come in a row, one for each process: accelerate hands batch ``k`` of every group to
    process ``k``, so every process alternates too.
    """

    def __init__(self, images: list[int], videos: list[int], batch_size: int, seed: int, group: int = 1):
        self.images = list(images)
        self.videos = list(videos)
        self.batch_size = batch_size
        self.seed = seed
        self.group = max(1, group)
        self.epoch = 0

    def use_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _rounds(self) -> int:
        return len(self.images) // self.batch_size // self.group

    def __len__(self) -> int:
        return 2 * self._rounds() * self.group

    def __iter__(self) -> Iterator[list[int]]:
        images = np.random.default_rng([self.seed, self.epoch, 1]).permutation(self.images).tolist()
        videos = self._video_stream()
        size = self.batch_size
        for round_ in range(self._rounds()):
            for k in range(self.group):
                first = (round_ * self.group + k) * size
                yield images[first : first + size]
            for _ in range(self.group):
                yield [next(videos) for _ in range(size)]

    def _video_stream(self) -> Iterator[int]:
        shuffle = 0
        while True:
            yield from np.random.default_rng([self.seed, self.epoch, 2, shuffle]).permutation(self.videos).tolist()
            shuffle += 1


def step_generator(seed: int, step: int, process: int) -> torch.Generator:
    """The generator of the t = 0 noise of one step: a function of the step, so resumes repeat it."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step * 9_973 + process) % (2**63))


def seed_step(seed: int, step: int, process: int) -> torch.Generator:
    """Seed the global RNG for one micro-step and return the t = 0 noise generator.

    The ModelScope UNet's temporal convolutions use dropout (p = 0.1) while training; it draws
    from the global RNG, which data loaders also draw from when they start. Seeding it per step
    makes a resumed run draw the same dropout masks as an uninterrupted one.
    """
    torch.manual_seed((seed * 7_919 + step * 104_729 + process * 15_485_863 + 1) % (2**63))
    return step_generator(seed, step, process)
