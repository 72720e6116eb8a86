"""Turning a method's mask tree into Ref-VPS predictions, checking that nothing is missing.

RVOS inference scripts write ``<annotations>/<video>/<exp_id>/<frame>.png``: greyscale 0/255 for
the Ref-YouTube-VOS scripts (``Image.fromarray(mask * 255).convert('L')``), palette indices for the
Ref-DAVIS ones. Any nonzero value is foreground, as in the Ref-YouTube-VOS evaluation server.

A clip is converted only when every (expression, frame) of it is there and decodes, and is then
marked done in the prediction folder (:class:`refvps.predictions.PredictionWriter`), so a run that
stopped half way converts what it finished and runs only the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from baselines.export import ExportNames
from refvps.dataset.format import Clip, Dataset, image_size
from refvps.dataset.images import ImageKind, open_image
from refvps.errors import PredictionError
from refvps.predictions import PredictionWriter
from refvps.progress import NO_PROGRESS, Progress

_LABEL_MODES = {"L", "P", "1", "I", "I;16", "LA", "PA"}
METHOD_MASK = ImageKind(
    "mask",
    hint="run the same command again: the clip is predicted again",
    missing_hint="run the same command again: the clip is predicted again",
    error=PredictionError,
    container="PNG",
)
CONVERT_STAGE = "converting"  # progress stage: clips converted into the prediction folder


def read_method_mask(path: Path, size: tuple[int, int]) -> np.ndarray:
    """Read one mask a method wrote as a boolean (H, W) array; ``size`` is the frame's (W, H)."""
    with open_image(path, METHOD_MASK) as image:
        image.load()
        if image.mode not in _LABEL_MODES:
            raise PredictionError(
                f"mask {path} is a {image.mode} image; expected greyscale (0/255) or palette indices",
                hint="the method wrote colour images: check its output options (e.g. no --visualize folder)",
                path=path,
            )
        array = np.asarray(image.getchannel(0) if image.mode in ("LA", "PA") else image)
    if (array.shape[1], array.shape[0]) != tuple(size):
        raise PredictionError(
            f"mask {path} is {array.shape[1]}x{array.shape[0]}, its frame is {size[0]}x{size[1]}",
            hint="the method must write masks at the frame's size (the upstream scripts resize back)",
            path=path,
        )
    return array != 0


@dataclass
class ClipCheck:
    """Which masks of one clip the method wrote."""

    clip_id: str
    expected: int
    missing: list[tuple[str, str]] = field(default_factory=list)  # (exp_id, frame)

    @property
    def complete(self) -> bool:
        return not self.missing


def check_clip(clip: Clip, annotations: Path, names: ExportNames) -> ClipCheck:
    """List the (expression, frame) masks of ``clip`` that are absent from ``annotations``."""
    video_dir = annotations / names.video(clip.id)
    check = ClipCheck(clip.id, len(clip.expressions) * len(clip.frame_names))
    for expression in clip.expressions:
        folder = video_dir / expression.exp_id
        present = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
        for frame in clip.frame_names:
            if f"{frame}.png" not in present:
                check.missing.append((expression.exp_id, frame))
    return check


def convert_clip(
    clip: Clip, annotations: Path, names: ExportNames, writer: PredictionWriter, info: dict | None = None
) -> int:
    """Convert one complete clip into predictions and mark it done; returns the masks written."""
    size = image_size(clip.frame_path(clip.frame_names[0])) if clip.frame_names else (0, 0)
    video_dir = annotations / names.video(clip.id)
    # Decode everything first: a clip is written only once all its masks are known to be good.
    masks = {
        (e.exp_id, f): read_method_mask(video_dir / e.exp_id / f"{f}.png", size)
        for e in clip.expressions
        for f in clip.frame_names
    }
    for (exp_id, frame), mask in masks.items():
        writer.write(clip.id, exp_id, frame, mask)
    writer.mark_done(clip.id, {"source": str(video_dir), **(info or {})})
    return len(masks)


@dataclass
class Harvest:
    """What one pass over a method's output found."""

    converted: list[str] = field(default_factory=list)  # clips converted now
    incomplete: list[ClipCheck] = field(default_factory=list)  # clips with masks missing
    unreadable: dict[str, str] = field(default_factory=dict)  # clip -> why (corrupt mask)
    masks: int = 0

    @property
    def pending(self) -> list[str]:
        return [c.clip_id for c in self.incomplete] + list(self.unreadable)


def harvest(
    dataset: Dataset,
    clip_ids: Sequence[str],
    annotations: Path,
    names: ExportNames,
    writer: PredictionWriter,
    *,
    info: dict | None = None,
    progress: Progress = NO_PROGRESS,
) -> Harvest:
    """Convert every clip of ``clip_ids`` whose masks are all in ``annotations``; report the others.

    Each clip converted advances the ``"converting"`` stage of ``progress``.
    """
    result = Harvest()
    for clip_id in clip_ids:
        clip = dataset.clip(clip_id)
        check = (
            check_clip(clip, annotations, names)
            if annotations.is_dir()
            else ClipCheck(
                clip_id,
                len(clip.expressions) * len(clip.frame_names),
                [(e.exp_id, f) for e in clip.expressions for f in clip.frame_names],
            )
        )
        if not check.complete:
            result.incomplete.append(check)
            continue
        try:
            written = convert_clip(clip, annotations, names, writer, info)
        except PredictionError as exc:
            result.unreadable[clip_id] = str(exc)
            continue
        result.converted.append(clip_id)
        result.masks += written
        progress.advance(CONVERT_STAGE, note=clip_id)
    return result


def describe_missing(checks: Iterable[ClipCheck], *, limit: int = 8) -> str:
    """A short, exact account of missing masks: counts, then the first clips and frames by name."""
    checks = [c for c in checks if c.missing]
    total_missing = sum(len(c.missing) for c in checks)
    total = sum(c.expected for c in checks)
    parts = []
    for check in checks[:limit]:
        by_exp: dict[str, list[str]] = {}
        for exp_id, frame in check.missing:
            by_exp.setdefault(exp_id, []).append(frame)
        if len(check.missing) == check.expected:
            parts.append(f"{check.clip_id}: nothing written")
            continue
        items = []
        for exp_id, frames in by_exp.items():
            shown = ", ".join(frames[:4]) + (f" (+{len(frames) - 4} more)" if len(frames) > 4 else "")
            items.append(f"expression {exp_id} frames {shown}")
        parts.append(f"{check.clip_id}: " + "; ".join(items))
    more = f"; and {len(checks) - limit} more clips" if len(checks) > limit else ""
    return f"{total_missing} of {total} masks missing in {len(checks)} clip(s): " + " | ".join(parts) + more
