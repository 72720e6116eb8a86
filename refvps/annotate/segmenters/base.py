"""The small interface every segmenter implements.

A :class:`Segmenter` holds a model (loaded once per server); :meth:`Segmenter.open` starts a
:class:`SegmenterSession` for one clip. The session is a cache derived from the annotation session:
the clicks and the hand-fixed masks are the truth, and the annotation session pushes them in
(:meth:`add_points`, :meth:`add_mask`, :meth:`clear_prompts`) before asking for a propagation.

Coordinates are pixels of the original frame (x right, y down); masks are (H, W) bool arrays at the
frame's resolution; frame indices count from 0 in the clip's frame order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from refvps.annotate.frames import FrameSource
from refvps.annotate.layers import mask_signature


@dataclass(frozen=True)
class SegmenterInfo:
    """What the page shows about the running segmenter."""

    name: str
    description: str
    device: str = "cpu"
    checkpoint: str | None = None
    config: str | None = None
    details: dict = field(default_factory=dict)
    fallback: bool = False  # a stand-in that needs no weights; the page says so

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "device": self.device,
            "checkpoint": self.checkpoint,
            "config": self.config,
            "fallback": self.fallback,
            **({"details": self.details} if self.details else {}),
        }


class SegmenterSession(ABC):
    """Interactive segmentation and propagation on one clip."""

    def __init__(self, frames: FrameSource):
        self.frames = frames
        # frame index -> signature of the prompt mask the model holds for it (see :meth:`sync`).
        self.held: dict[int, str] = {}

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @abstractmethod
    def add_points(self, frame: int, points: Sequence[Sequence[float]], labels: Sequence[int]) -> np.ndarray:
        """Replace the clicks on ``frame`` with these (label 1 positive, 0 negative); return its mask."""

    @abstractmethod
    def add_mask(self, frame: int, mask: np.ndarray) -> None:
        """Make ``mask`` the prompt of ``frame`` (a frame fixed by hand); propagation starts from it."""

    @abstractmethod
    def clear_prompts(self, frame: int) -> None:
        """Forget every prompt on ``frame`` (it becomes an ordinary tracked frame again)."""

    @abstractmethod
    def propagate(
        self, start: int, reverse: bool, start_mask: np.ndarray | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(frame, mask)`` from ``start`` to the clip's last frame (first frame if ``reverse``).

        ``start_mask`` is the current mask of ``start`` when it is not a prompted frame (segmenters
        without memory start from it). The caller may stop iterating at any time (cancel).
        """

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op unless a session holds something
        """Free what the session holds (model memory, caches)."""

    # -- keeping the model's prompts in step with the annotation ---------------------------------

    def sync(self, keyframes: dict[int, np.ndarray]) -> int:
        """Make the model's prompts exactly ``keyframes`` (frame -> mask); return how many changed.

        Frames whose mask the model already holds are skipped, so this is cheap after a click.
        """
        changed = 0
        for frame in sorted(set(self.held) - set(keyframes)):
            self.clear_prompts(frame)
            self.held.pop(frame, None)
            changed += 1
        for frame in sorted(keyframes):
            signature = mask_signature(keyframes[frame])
            if self.held.get(frame) != signature:
                self.add_mask(frame, keyframes[frame])
                self.held[frame] = signature
                changed += 1
        return changed


class Segmenter(ABC):
    """A loaded model that opens sessions on clips."""

    name: str = "?"

    @abstractmethod
    def open(self, frames: FrameSource) -> SegmenterSession:
        """Start a session on one clip's frames."""

    @abstractmethod
    def info(self) -> SegmenterInfo:
        """Name, device and checkpoint, as the page shows them."""


def check_points(points: Sequence[Sequence[float]], labels: Sequence[int], shape: tuple[int, int]) -> None:
    """Raise ValueError unless points and labels match and every point lies inside the frame."""
    if len(points) != len(labels):
        raise ValueError(f"{len(points)} points but {len(labels)} labels")
    h, w = shape
    for (x, y), label in zip(points, labels):
        if not (0 <= x <= w and 0 <= y <= h):
            raise ValueError(f"point ({x}, {y}) lies outside the {w}x{h} frame")
        if label not in (0, 1):
            raise ValueError(f"point label {label} is not 0 (negative) or 1 (positive)")
