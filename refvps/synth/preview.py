"""Preview strips of synthetic clips: a few frames, and below them the labels over the frames
(target in red, Ignore in grey), as in the paper's Figure B.

``python -c "from refvps.synth import write_previews; write_previews('docs/synth')"`` writes one
``<kind>.png`` per process kind (the pictures in ``docs/synth/``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from refvps.fileio import atomic_write_with
from refvps.synth.catalogue import KINDS
from refvps.synth.plan import ClipSpec, kind_for, plan_clip
from refvps.synth.render import RenderedClip, render_clip

TARGET_RGB = np.array([255, 0, 0], np.float32)
IGNORE_RGB = np.array([200, 200, 200], np.float32)


def overlay(frame: np.ndarray, label: np.ndarray, *, opacity: float = 0.55) -> np.ndarray:
    """The frame with the target tinted red and Ignore tinted grey."""
    out = frame.astype(np.float32)
    for value, colour in ((1, TARGET_RGB), (255, IGNORE_RGB)):
        where = label == value
        out[where] = (1 - opacity) * out[where] + opacity * colour
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def strip(clip: RenderedClip, *, count: int = 5, gap: int = 2) -> Image.Image:
    """Frames (top row) and label overlays (bottom row) at ``count`` evenly spaced times, captioned."""
    T, H, W = clip.labels.shape
    picks = np.unique(np.linspace(0, T - 1, count).round().astype(int))
    caption = 14
    sheet = np.full((caption + 2 * H + gap, len(picks) * (W + gap) - gap, 3), 255, np.uint8)
    for column, t in enumerate(picks):
        x = column * (W + gap)
        sheet[caption : caption + H, x : x + W] = clip.frames[t]
        sheet[caption + H + gap : caption + 2 * H + gap, x : x + W] = overlay(clip.frames[t], clip.labels[t])
    image = Image.fromarray(sheet)
    text = clip.spec.expressions[0].text
    ImageDraw.Draw(image).text(
        (2, 1), f'{clip.spec.clip_id}: "{text}"  (frames {", ".join(map(str, picks))})', fill=(0, 0, 0)
    )
    return image


def first_clip_of_kind(kind: str, *, seed: int = 0, size=(256, 144), frames=24) -> ClipSpec:
    """The first clip of the benchmark with ``seed`` whose target is ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; kinds are {', '.join(KINDS)}")
    index = next(i for i in range(len(KINDS)) if kind_for(seed, i) == kind)
    return plan_clip(seed, index, size=size, frames=frames)


def write_preview(
    kind: str, path: str | Path, *, seed: int = 0, size=(256, 144), frames: int = 24, count: int = 5
) -> Path:
    """Render the first clip of ``kind`` and save its preview strip as a PNG."""
    clip = render_clip(first_clip_of_kind(kind, seed=seed, size=size, frames=frames))
    # 256 colours keep the strip small enough to commit (a few hundred kB otherwise, from sensor noise).
    image = strip(clip, count=count).quantize(256, method=Image.Quantize.FASTOCTREE)
    return atomic_write_with(Path(path), lambda buf: image.save(buf, format="PNG", optimize=True))


def write_previews(folder: str | Path, *, kinds=KINDS, **kwargs) -> list[Path]:
    """One ``<kind>.png`` per kind in ``folder``."""
    return [write_preview(kind, Path(folder) / f"{kind}.png", **kwargs) for kind in kinds]
