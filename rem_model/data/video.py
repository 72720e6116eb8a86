"""Video training data: any Ref-VPS-format dataset, and Ref-YouTube-VOS (its train split).

Each item is one (clip, expression) pair; each time it is drawn, ``num_frames`` frames are sampled
from the clip, so that an epoch sees every expression once: a window with a random stride
(1..``max_stride``) and start (``sampling: window``), or, as the authors' Wan data loader does, a
sorted random subset of the clip's frames (``sampling: subset``). The randomness of item ``i`` in epoch ``e`` comes from
``numpy.random.default_rng([seed, e, i])``: a resumed run draws exactly the samples that an
uninterrupted run would have drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from refvps.dataset.format import Dataset as RefVPSDataset
from refvps.dataset.format import read_rgb
from refvps.dataset.palette import IGNORE_INDEX, read_label_png
from refvps.errors import DatasetError
from refvps.fileio import read_json
from rem_model.data.transforms import Aspect, Geometry, frames_tensor, masks_tensor


@dataclass(frozen=True)
class VideoItem:
    """One (clip, expression) pair: frame files, label files, the object id and the sentence."""

    clip_id: str
    exp_id: str
    text: str
    obj_id: int
    frames: tuple[Path, ...]
    labels: tuple[Path | None, ...]  # None where a frame has no annotation (never sampled as target)


def sample_window(length: int, num_frames: int, rng: np.random.Generator, max_stride: int = 1) -> list[int]:
    """Indices of a window of ``num_frames`` frames from a clip of ``length`` frames.

    A random stride in 1..``max_stride`` (as long as the window still fits) and a random start.
    A clip shorter than the window is used whole, its last frame repeated.
    """
    if length <= 0:
        raise ValueError("empty clip")
    if length < num_frames:
        return list(range(length)) + [length - 1] * (num_frames - length)
    largest = max(1, min(max_stride, (length - 1) // max(1, num_frames - 1))) if num_frames > 1 else 1
    stride = int(rng.integers(1, largest + 1))
    span = stride * (num_frames - 1) + 1
    start = int(rng.integers(0, length - span + 1))
    return [start + stride * k for k in range(num_frames)]


def sample_subset(length: int, num_frames: int, rng: np.random.Generator) -> list[int]:
    """Indices of ``num_frames`` frames drawn without replacement and sorted, as the authors' Wan
    data loader (``datasets/ytvos_T5.py``) draws them; a shorter clip is repeated from its start.

    >>> sample_subset(4, 10, np.random.default_rng(0)), sample_subset(5, 7, np.random.default_rng(0))
    ([0, 0, 0, 1, 1, 1, 2, 2, 3, 3], [0, 0, 1, 1, 2, 3, 4])
    """
    if length <= 0:
        raise ValueError("empty clip")
    if length >= num_frames:
        return sorted(rng.choice(length, size=num_frames, replace=False).tolist())
    if num_frames > 2 * length:
        picks = list(range(length)) * (num_frames // length) + list(range(num_frames % length))
    else:
        picks = list(range(length)) + list(range(num_frames - length))
    return sorted(picks)


SAMPLINGS = ("window", "subset")


class VideoExpressionDataset(TorchDataset):
    """Windows of (frames, target mask, sentence) from a list of :class:`VideoItem`."""

    source = "video"

    def __init__(
        self,
        items: Sequence[VideoItem],
        *,
        resolution: tuple[int, int],
        num_frames: int,
        aspect: Aspect = "squash",
        resample: str = "bilinear",
        max_stride: int = 3,
        sampling: str = "window",
        seed: int = 0,
    ):
        if sampling not in SAMPLINGS:
            raise DatasetError(f"unknown frame sampling {sampling!r}", hint=f"use one of {', '.join(SAMPLINGS)}")
        self.items = list(items)
        self.resolution = tuple(resolution)
        self.num_frames = num_frames
        self.aspect = aspect
        self.resample = resample
        self.max_stride = max_stride
        self.sampling = sampling
        self.seed = seed
        self.epoch = 0

    def use_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def texts(self) -> list[str]:
        return [item.text for item in self.items]

    def __getitem__(self, index: int) -> dict:
        item = self.items[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        annotated = [i for i, label in enumerate(item.labels) if label is not None]
        if not annotated:
            raise DatasetError(
                f"clip {item.clip_id} has no annotated frame", hint="training needs masks", path=item.frames[0].parent
            )
        if self.sampling == "subset":
            positions = sample_subset(len(annotated), self.num_frames, rng)
        else:
            positions = sample_window(len(annotated), self.num_frames, rng, self.max_stride)
        chosen = [annotated[p] for p in positions]
        frames = [read_rgb(item.frames[i]) for i in chosen]
        masks = []
        for i in chosen:
            label = read_label_png(item.labels[i])
            if label.shape != frames[0].shape[:2]:
                raise DatasetError(
                    f"mask {item.labels[i]} is {label.shape[1]}x{label.shape[0]}, its frame "
                    f"{frames[0].shape[1]}x{frames[0].shape[0]}",
                    hint="masks must have their frame's size",
                    path=item.labels[i],
                )
            # Ignore (255) trains as background: a latent target cannot leave pixels out.
            masks.append((label == item.obj_id).astype(np.float32) * (label != IGNORE_INDEX))
        geometry = Geometry.fit(frames[0].shape[:2], self.resolution, self.aspect, self.resample)
        return {
            "frames": frames_tensor(frames, geometry),
            "masks": masks_tensor(masks, geometry),
            "text": item.text,
            "source": self.source,
        }


class RefVPSVideoDataset(VideoExpressionDataset):
    """Any Ref-VPS-format dataset (docs/FORMAT.md), e.g. the synthetic benchmark, as training data."""

    source = "refvps"

    def __init__(self, root: str | Path, *, clips: Sequence[str] | None = None, **kwargs):
        dataset = RefVPSDataset(root)
        wanted = set(clips) if clips is not None else None
        unknown = sorted(wanted - set(dataset.clip_ids)) if wanted is not None else []
        if unknown:
            raise DatasetError(
                f"clips not in {root}: {', '.join(unknown[:5])}", hint="list them with: refvps stats ROOT", path=root
            )
        items, unlabelled = [], []
        for clip in dataset:
            if wanted is not None and clip.id not in wanted:
                continue
            if not clip.frame_names or not clip.expressions:
                continue
            if not clip.has_masks():
                unlabelled.append(clip.id)  # e.g. a test split: nothing to learn from
                continue
            frames = tuple(clip.frame_path(n) for n in clip.frame_names)
            labels = tuple(clip.mask_path(n) for n in clip.frame_names)
            # Checked here, not when a worker first reads it: a data loader worker's error
            # reaches the user wrapped in its traceback.
            missing = [path for path in labels if not path.is_file()]
            if missing:
                raise DatasetError(
                    f"clip {clip.id} lacks {len(missing)} of its {len(labels)} masks, e.g. {missing[0]}",
                    hint="every frame of a training clip needs its mask; check the dataset with: refvps validate ROOT",
                    path=missing[0],
                )
            for expression in clip.expressions:
                items.append(VideoItem(clip.id, expression.exp_id, expression.text, expression.obj_id, frames, labels))
        if not items:
            if unlabelled:
                raise DatasetError(
                    f"{root} has no masks (no Annotations/<clip>/ folder for {len(unlabelled)} clip(s)): REM trains on masks",
                    hint="train on a dataset with masks, e.g. one written by 'refvps synth OUT', or add its Annotations/",
                    path=root,
                )
            raise DatasetError(
                f"no (clip, expression) pairs in {root}", hint="check the dataset with: refvps validate ROOT", path=root
            )
        self.unlabelled_clips = unlabelled
        super().__init__(items, **kwargs)


class RefYouTubeVOSDataset(VideoExpressionDataset):
    """Ref-YouTube-VOS: ``<root>/<split>/JPEGImages``, ``<root>/<split>/Annotations`` and
    ``<root>/meta_expressions/<split>/meta_expressions.json`` (the layout of the official download).

    Frames without an annotation file are skipped (the train split annotates every listed frame).
    """

    source = "ytvos"

    def __init__(self, root: str | Path, *, split: str = "train", **kwargs):
        root = Path(root)
        meta_path = root / "meta_expressions" / split / "meta_expressions.json"
        if not meta_path.is_file():
            raise DatasetError(
                f"Ref-YouTube-VOS expressions not found: {meta_path}",
                hint="point root at the folder holding train/ and meta_expressions/",
                path=meta_path,
            )
        videos = read_json(meta_path, what="Ref-YouTube-VOS meta_expressions.json").get("videos", {})
        frames_dir = root / split / "JPEGImages"
        labels_dir = root / split / "Annotations"
        items = []
        for video_id in sorted(videos):
            entry = videos[video_id]
            names = [str(f) for f in entry.get("frames", [])]
            frames = tuple(frames_dir / video_id / f"{n}.jpg" for n in names)
            labels = tuple(
                (labels_dir / video_id / f"{n}.png") if (labels_dir / video_id / f"{n}.png").is_file() else None
                for n in names
            )
            if not names or all(label is None for label in labels):
                continue
            for exp_id, expression in sorted(entry.get("expressions", {}).items()):
                items.append(
                    VideoItem(video_id, str(exp_id), str(expression["exp"]), int(expression["obj_id"]), frames, labels)
                )
        if not items:
            raise DatasetError(
                f"no annotated expressions under {root / split}",
                hint="point root at the folder holding train/ and meta_expressions/",
                path=root,
            )
        super().__init__(items, **kwargs)


def collate(batch: list[dict]) -> dict:
    """Stack frames and masks; keep texts and sources as lists."""
    return {
        "frames": torch.stack([b["frames"] for b in batch]),
        "masks": torch.stack([b["masks"] for b in batch]),
        "text": [b["text"] for b in batch],
        "source": [b["source"] for b in batch],
    }
