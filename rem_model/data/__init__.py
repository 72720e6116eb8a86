"""Training data for REM: sources described in the training config, mixed into one dataset.

A source is one of:

``refvps``   any Ref-VPS-format dataset (e.g. ``refvps synth OUT``): ``root``
``ytvos``    Ref-YouTube-VOS: ``root`` (holding ``train/`` and ``meta_expressions/``), ``split``
``refcoco``  Ref-COCO / + / g in the refer format: ``root`` (``refs(unc).p`` + ``instances.json``),
             ``images`` (COCO train2014), ``split_by``, ``split``; an image source gives one-frame
             samples when the run alternates image and video batches (the authors' Wan recipe) or
             trains on single frames (stage 1), and pseudo-videos otherwise (ModelScope stage 2)

``weight`` repeats (> 1) or subsamples (< 1) a source, ``max_samples`` caps it (the paper mixes
12k Ref-COCO samples into stage 2). The choice is fixed by the seed. Videos are sampled as strided
windows (``sampling: window``) or, as the authors' Wan loader does, as sorted random frame subsets
(``sampling: subset``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from torch.utils.data import Dataset as TorchDataset

from refvps.errors import ConfigError
from rem_model.config import reject_unknown_keys
from rem_model.data.images import AffineRange, ImageExpressionDataset, RefCOCODataset, pseudo_video
from rem_model.data.transforms import ASPECTS, Geometry
from rem_model.data.video import (
    RefVPSVideoDataset,
    RefYouTubeVOSDataset,
    VideoExpressionDataset,
    VideoItem,
    collate,
    sample_subset,
    sample_window,
)

SOURCE_KINDS = ("refvps", "ytvos", "refcoco")
IMAGE_KINDS = ("refcoco",)


@dataclass(frozen=True)
class DataSource:
    """One training data source of a run (see the module docstring)."""

    kind: str
    root: str
    weight: float = 1.0
    max_samples: int | None = None
    images: str | None = None  # refcoco: the COCO image folder
    split: str = "train"
    split_by: str = "unc"
    pseudo_video: bool | None = None  # refcoco: default = (num_frames > 1)
    max_stride: int = 3  # videos: the largest frame stride when sampling a window
    sampling: str = "window"  # videos: "window" (strided window) or "subset" (the authors' Wan loader)
    clips: tuple[str, ...] | None = None  # refvps: only these clips

    @property
    def is_image(self) -> bool:
        return self.kind in IMAGE_KINDS

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "DataSource":
        reject_unknown_keys(cls, data, what="data source")
        if data.get("kind") not in SOURCE_KINDS:
            raise ConfigError(f"unknown data source kind {data.get('kind')!r}", hint=f"use one of {SOURCE_KINDS}")
        if "root" not in data:
            raise ConfigError(f"data source {data['kind']} needs a 'root'", hint="the folder the source is read from")
        values = dict(data)
        if values.get("clips") is not None:
            values["clips"] = tuple(values["clips"])
        return cls(**values)


class MixedDataset(TorchDataset):
    """Several sources behind one index, each repeated or subsampled by its weight."""

    def __init__(self, datasets: Sequence[TorchDataset], counts: Sequence[int], seed: int = 0):
        self.datasets = list(datasets)
        rng = np.random.default_rng([seed, 12345])
        self.index: list[tuple[int, int]] = []
        for which, (dataset, count) in enumerate(zip(self.datasets, counts)):
            size = len(dataset)
            full, rest = divmod(count, size)
            picks = list(range(size)) * full + sorted(rng.choice(size, size=rest, replace=False).tolist())
            self.index.extend((which, i) for i in picks)

    def indices_by_frames(self) -> dict[int, list[int]]:
        """Indices of the samples grouped by their number of frames (a batch holds one length only)."""
        groups: dict[int, list[int]] = {}
        for position, (which, _) in enumerate(self.index):
            groups.setdefault(int(self.datasets[which].num_frames), []).append(position)
        return groups

    def __len__(self) -> int:
        return len(self.index)

    def use_epoch(self, epoch: int) -> None:
        for dataset in self.datasets:
            if hasattr(dataset, "use_epoch"):
                dataset.use_epoch(epoch)

    def __getitem__(self, index: int) -> dict:
        which, inner = self.index[index]
        return self.datasets[which][inner]

    def texts(self) -> list[str]:
        texts: list[str] = []
        for dataset in self.datasets:
            texts.extend(dataset.texts() if hasattr(dataset, "texts") else [])
        return texts


def build_source(
    source: DataSource,
    *,
    resolution: tuple[int, int],
    num_frames: int,
    aspect: str = "squash",
    resample: str = "bilinear",
    seed: int = 0,
) -> TorchDataset:
    if aspect not in ASPECTS:
        raise ConfigError(f"unknown aspect {aspect!r}", hint=f"use one of {ASPECTS}")
    common: dict[str, Any] = {
        "resolution": resolution,
        "num_frames": num_frames,
        "aspect": aspect,
        "resample": resample,
        "seed": seed,
    }
    video: dict[str, Any] = {"max_stride": source.max_stride, "sampling": source.sampling}
    if source.kind == "refvps":
        return RefVPSVideoDataset(source.root, clips=source.clips, **video, **common)
    if source.kind == "ytvos":
        return RefYouTubeVOSDataset(source.root, split=source.split, **video, **common)
    if source.images is None:
        raise ConfigError(
            "a refcoco source needs 'images' (the COCO train2014 folder)",
            hint="e.g. {kind: refcoco, root: data/refcoco, images: data/coco/train2014}",
        )
    return RefCOCODataset(
        source.root,
        source.images,
        split_by=source.split_by,
        split=source.split,
        pseudo_video=source.pseudo_video,
        **common,
    )


def build_training_dataset(
    sources: Sequence[DataSource],
    *,
    resolution: tuple[int, int],
    num_frames: int,
    image_frames: int | None = None,
    aspect: str = "squash",
    resample: str = "bilinear",
    seed: int = 0,
) -> MixedDataset:
    """All sources of a run mixed by their weights; image sources give ``image_frames``-frame samples
    when it is set (one-frame image batches alternating with video batches), else ``num_frames``."""
    if not sources:
        raise ConfigError("the training config lists no data sources", hint="add a 'data' list (kind, root, ...)")
    datasets, counts = [], []
    for offset, source in enumerate(sources):
        frames = image_frames if (source.is_image and image_frames is not None) else num_frames
        dataset = build_source(
            source, resolution=resolution, num_frames=frames, aspect=aspect, resample=resample, seed=seed + offset
        )
        count = max(1, math.ceil(len(dataset) * source.weight))
        if source.max_samples is not None:
            count = min(count, source.max_samples)
        datasets.append(dataset)
        counts.append(count)
    return MixedDataset(datasets, counts, seed)


__all__ = [
    "AffineRange",
    "DataSource",
    "Geometry",
    "ImageExpressionDataset",
    "MixedDataset",
    "RefCOCODataset",
    "RefVPSVideoDataset",
    "RefYouTubeVOSDataset",
    "SOURCE_KINDS",
    "VideoExpressionDataset",
    "VideoItem",
    "build_source",
    "build_training_dataset",
    "collate",
    "pseudo_video",
    "sample_subset",
    "sample_window",
]
