"""Lazy access to a clip's frames: decoded when asked for, a few kept in a small cache.

A 17-second clip at 24 fps is 408 frames; decoded at 1080p that is 2.5 GB of RGB, and SAM2's own
loader turns it into 5 GB of float tensors before the first click. Here nothing is decoded until a
segmenter or the page needs a frame, and at most ``cache_size`` decoded frames stay in memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Generic, Sequence, TypeVar

import numpy as np

from refvps.dataset.format import image_size, read_rgb
from refvps.errors import DatasetError

T = TypeVar("T")


class LRUCache(Generic[T]):
    """A thread-safe least-recently-used cache of ``index -> value`` computed by ``load(index)``."""

    def __init__(self, load: Callable[[int], T], size: int):
        self._load = load
        self._size = max(1, int(size))
        self._items: OrderedDict[int, T] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0  # how many times a value was computed (tests and benchmarks read it)

    def __getitem__(self, index: int) -> T:
        with self._lock:
            if index in self._items:
                self._items.move_to_end(index)
                return self._items[index]
        value = self._load(index)
        with self._lock:
            self.loads += 1
            self._items[index] = value
            self._items.move_to_end(index)
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class FrameSource:
    """The frames of one clip, as (H, W, 3) uint8 RGB, read lazily from their JPEG files."""

    def __init__(self, paths: Sequence[Path], *, cache_size: int = 16):
        if not paths:
            raise DatasetError("the clip has no frames", hint="check its 'frames' list in meta_expressions.json")
        self.paths = [Path(p) for p in paths]
        first = self.paths[0]
        if not first.exists():
            raise DatasetError(f"frame not found: {first}", hint="restore the frame or re-export the clip", path=first)
        self.width, self.height = image_size(first)
        self._cache: LRUCache[np.ndarray] = LRUCache(self._read, cache_size)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def loads(self) -> int:
        return self._cache.loads

    def _read(self, index: int) -> np.ndarray:
        path = self.paths[index]
        rgb = read_rgb(path)
        if rgb.shape[:2] != (self.height, self.width):
            raise DatasetError(
                f"frame {path.name} is {rgb.shape[1]}x{rgb.shape[0]}, but the clip's first frame is "
                f"{self.width}x{self.height}",
                hint="all frames of a clip must have one size; re-export the clip",
                path=path,
            )
        rgb.setflags(write=False)
        return rgb

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self.paths):
            raise IndexError(f"frame index {index} outside 0..{len(self.paths) - 1}")
        return self._cache[index]


class LazyFrames:
    """Frames turned into a model's input on first use, a few kept (base of the SAM2 adapters' containers).

    Subclasses define ``_load(index)``; ``loads`` counts how many times one was computed.
    """

    def __init__(self, frames: FrameSource, cache_size: int = 8):
        self.frames = frames
        self._cache: LRUCache = LRUCache(self._load, cache_size)

    def _load(self, index: int):
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def loads(self) -> int:
        return self._cache.loads
