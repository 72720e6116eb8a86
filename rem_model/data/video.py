"""Video training data: any Ref-VPS-format dataset, and Ref-YouTube-VOS (its train split).

Each item is one (clip, expression) pair; each time it is drawn, ``num_frames`` frames are sampled
from the clip, so that an epoch sees every expression once: a window with a random stride
(1..``max_stride``) and start (``sampling: window``), or, as the authors' Wan data loader does, a
sorted random subset of the clip's frames (``sampling: subset``). Only frames with ground truth are
sampled: a converted benchmark's clip may annotate some frames only (``annotated_frames``,
docs/BENCHMARKS_SUITE.md), and windows and subsets are drawn from the list of those, as the
authors' loader draws from Ref-YouTube-VOS's train ``frames`` list (the annotated frames, every
5th). The target is the union of the expression's labels (:attr:`Expression.target_labels`; MeViS
names several objects). The randomness of item ``i`` in epoch ``e`` comes from
``numpy.random.default_rng([seed, e, i])``: a resumed run draws exactly the samples that an
uninterrupted run would have drawn.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from refvps.dataset.format import EXPRESSIONS_FILE, Clip, parse_target, read_rgb, target_mask
from refvps.dataset.format import Dataset as RefVPSDataset
from refvps.dataset.palette import IGNORE_INDEX, read_label_png
from refvps.errors import DatasetError
from refvps.fileio import read_json
from rem_model.data.transforms import Aspect, Geometry, frames_tensor, masks_tensor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoItem:
    """One (clip, expression) pair: frame files, label files, the target's labels and the sentence."""

    clip_id: str
    exp_id: str
    text: str
    targets: tuple[int, ...]  # the label indices whose union is the target (Expression.target_labels)
    frames: tuple[Path, ...]
    labels: tuple[Path | None, ...]  # None where a frame has no annotation (never sampled)

    @property
    def annotated(self) -> list[int]:
        """Indices of the frames that have a label map: the only ones a sample is drawn from."""
        return [i for i, label in enumerate(self.labels) if label is not None]


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

    def choose(self, index: int) -> list[int]:
        """The frames (indices into ``items[index].frames``) that item ``index`` gives in this epoch:
        drawn among its annotated frames only, so every frame of a sample has its target."""
        item = self.items[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        annotated = item.annotated
        if not annotated:
            raise DatasetError(
                f"clip {item.clip_id} has no annotated frame", hint="training needs masks", path=item.frames[0].parent
            )
        if self.sampling == "subset":
            positions = sample_subset(len(annotated), self.num_frames, rng)
        else:
            positions = sample_window(len(annotated), self.num_frames, rng, self.max_stride)
        return [annotated[p] for p in positions]

    def __getitem__(self, index: int) -> dict:
        item = self.items[index]
        chosen = self.choose(index)
        frames = [read_rgb(item.frames[i]) for i in chosen]
        masks = [self._target(item, item.labels[i], frames[0].shape[:2]) for i in chosen]
        geometry = Geometry.fit(frames[0].shape[:2], self.resolution, self.aspect, self.resample)
        return {
            "frames": frames_tensor(frames, geometry),
            "masks": masks_tensor(masks, geometry),
            "text": item.text,
            "source": self.source,
        }

    @staticmethod
    def _target(item: VideoItem, path: Path | None, shape: tuple[int, ...]) -> np.ndarray:
        """The float target of one frame: the union of the item's labels, Ignore as background."""
        assert path is not None  # choose() draws annotated frames only
        label = read_label_png(path)
        if label.shape != shape:
            raise DatasetError(
                f"mask {path} is {label.shape[1]}x{label.shape[0]}, its frame {shape[1]}x{shape[0]}",
                hint="masks must have their frame's size",
                path=path,
            )
        # Ignore (255) trains as background: a latent target cannot leave pixels out.
        return (target_mask(label, item.targets) & (label != IGNORE_INDEX)).astype(np.float32)


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
        items: list[VideoItem] = []
        unlabelled: list[str] = []
        for clip in dataset:
            if wanted is not None and clip.id not in wanted:
                continue
            if not clip.frame_names or not clip.expressions:
                continue
            if not clip.annotated_frames or (not clip.is_sparse and not clip.has_masks()):
                # No ground truth (a test split, or a converted split whose masks are not public,
                # 'annotated_frames: []'): nothing to learn from.
                unlabelled.append(clip.id)
                continue
            items.extend(clip_items(clip))
        if not items:
            _raise_nothing_to_train(Path(root), unlabelled)
        if unlabelled:
            log.warning(
                "%s: %d clip(s) left out, they have no ground truth (no masks, or 'annotated_frames' empty): %s",
                root,
                len(unlabelled),
                ", ".join(unlabelled[:5]) + (" ..." if len(unlabelled) > 5 else ""),
            )
        self.unlabelled_clips = unlabelled
        super().__init__(items, **kwargs)


def clip_items(clip: Clip) -> list[VideoItem]:
    """One item per expression of ``clip``, each with every frame and the mask of each annotated one.

    Checked here, not when a worker first reads a file: a data loader worker's error reaches the
    user wrapped in its traceback.
    """
    annotated = set(clip.annotated_frames)
    strays = sorted(annotated - set(clip.frame_names))
    if strays:
        raise DatasetError(
            f"clip {clip.id} lists annotated frames that are not among its frames: {', '.join(strays[:3])}",
            hint=f"check the dataset with: refvps validate {clip.root}",
            path=clip.root / EXPRESSIONS_FILE,
        )
    frames = tuple(clip.frame_path(n) for n in clip.frame_names)
    labels = tuple(clip.mask_path(n) if n in annotated else None for n in clip.frame_names)
    missing = [path for path in labels if path is not None and not path.is_file()]
    if missing:
        raise DatasetError(
            f"clip {clip.id} lacks {len(missing)} of its {len(annotated)} masks, e.g. {missing[0]}",
            hint="every frame of a training clip (each one in its 'annotated_frames', when it lists them) needs "
            f"its mask; check the dataset with: refvps validate {clip.root}",
            path=missing[0],
        )
    items = []
    for expression in clip.expressions:
        targets = expression.target_labels
        if not all(0 < t < IGNORE_INDEX for t in targets):
            raise DatasetError(
                f"clip {clip.id}, expression {expression.exp_id}: its obj_id is not an object label (1..254)",
                hint=f"check the dataset with: refvps validate {clip.root}",
                path=clip.root / EXPRESSIONS_FILE,
            )
        items.append(VideoItem(clip.id, expression.exp_id, expression.text, targets, frames, labels))
    return items


def _raise_nothing_to_train(root: Path, unlabelled: list[str]) -> NoReturn:
    if unlabelled:
        raise DatasetError(
            f"{root} has no masks: none of its {len(unlabelled)} clip(s) has ground truth (no Annotations/<clip>/ "
            "folder, or an empty 'annotated_frames' list): REM trains on masks",
            hint="train on a dataset with masks, e.g. one written by 'refvps synth OUT', a converted train split "
            "('refvps convert ref-ytvos SRC --split train'), or add its Annotations/",
            path=root,
        )
    raise DatasetError(
        f"no (clip, expression) pairs in {root}", hint="check the dataset with: refvps validate ROOT", path=root
    )


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
        items, unlabelled = [], []
        for video_id in sorted(videos):
            entry = videos[video_id]
            names = [str(f) for f in entry.get("frames", [])]
            frames = tuple(frames_dir / video_id / f"{n}.jpg" for n in names)
            labels = tuple(
                (labels_dir / video_id / f"{n}.png") if (labels_dir / video_id / f"{n}.png").is_file() else None
                for n in names
            )
            if not names or all(label is None for label in labels):
                unlabelled.append(video_id)
                continue
            for exp_id, expression in sorted(entry.get("expressions", {}).items()):
                targets = _ytvos_targets(expression, video_id, exp_id, meta_path)
                items.append(VideoItem(video_id, str(exp_id), str(expression["exp"]), targets, frames, labels))
        if unlabelled and items:
            log.warning(
                "%d of %d Ref-YouTube-VOS videos in %s have no mask file and are left out of training (e.g. %s)",
                len(unlabelled),
                len(videos),
                labels_dir,
                ", ".join(unlabelled[:3]),
            )
        if not items:
            raise DatasetError(
                f"no annotated expressions under {root / split}",
                hint="point root at the folder holding train/ and meta_expressions/",
                path=root,
            )
        super().__init__(items, **kwargs)


def _ytvos_targets(expression: dict, video_id: str, exp_id: str, meta_path: Path) -> tuple[int, ...]:
    """An expression's ``obj_id`` as label indices (a list, as MeViS writes it, is a union)."""
    try:
        return parse_target(expression["obj_id"])
    except (KeyError, TypeError, ValueError):
        raise DatasetError(
            f"video {video_id}, expression {exp_id}: obj_id {expression.get('obj_id')!r} is not a label index",
            hint='each train expression names its object: "obj_id": "1"',
            path=meta_path,
        ) from None


def collate(batch: list[dict]) -> dict:
    """Stack frames and masks; keep texts and sources as lists."""
    return {
        "frames": torch.stack([b["frames"] for b in batch]),
        "masks": torch.stack([b["masks"] for b in batch]),
        "text": [b["text"] for b in batch],
        "source": [b["source"] for b in batch],
    }
