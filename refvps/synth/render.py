"""Rendering a planned clip into frames, label maps and the target's underlying presence maps.

:class:`ClipRenderer` renders one frame at a time (what :func:`generate_benchmark` streams to disk);
:func:`render_clip` renders a whole clip in memory, which is how tests and previews inspect the
rendering: besides the RGB frames and label maps it returns the target's presence (density / alpha)
and soft (ambiguous) maps and the distractor's presence, all in frame coordinates after the camera.
``include_target=False`` renders the same clip without the target (same background, camera,
distractor and sensor noise), so the pixels the target changed can be found independently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from refvps.synth.noise import ROLE_SENSOR, stream
from refvps.synth.plan import ClipSpec
from refvps.synth.processes import CanvasGeometry, build_process, label_from_presence
from refvps.synth.scene import Camera, render_background

SENSOR_NOISE = 1.6 / 255.0


@dataclass
class FrameRender:
    """One rendered frame: RGB, label map, and the maps it was labelled from (frame coordinates)."""

    image: np.ndarray  # (H, W, 3) uint8
    label: np.ndarray  # (H, W) uint8: 0 background, 1 target, 255 Ignore
    presence: np.ndarray  # (H, W) float32: the target's density / coverage
    soft: np.ndarray  # (H, W) bool: where the target's boundary is ambiguous
    distractor_presence: np.ndarray  # (H, W) float32


@dataclass
class RenderedClip:
    """A whole clip in memory; arrays are stacked over frames (T first)."""

    spec: ClipSpec
    frames: np.ndarray  # (T, H, W, 3) uint8
    labels: np.ndarray  # (T, H, W) uint8
    presence: np.ndarray  # (T, H, W) float32
    soft: np.ndarray  # (T, H, W) bool
    distractor_presence: np.ndarray  # (T, H, W) float32


def geometry_for(spec: ClipSpec) -> CanvasGeometry:
    margin = int(math.ceil(0.03 * max(spec.width, spec.height))) + 2
    return CanvasGeometry(spec.width, spec.height, spec.frames, margin)


class ClipRenderer:
    """Renders the frames of one clip in order (or any frame on its own: nothing is carried over)."""

    def __init__(self, spec: ClipSpec, *, include_target: bool = True, include_distractor: bool = True):
        self.spec = spec
        self.geom = geometry_for(spec)
        self.target = build_process(spec.target, self.geom)
        self.distractor = build_process(spec.distractor, self.geom)
        self.include_target = include_target
        self.include_distractor = include_distractor
        background = render_background(spec.scene, self.geom, stream(*spec.background_seed))
        # The scenery of both processes (chimney, pond, window frame...) is part of the scene either way.
        self.target.draw_scenery(background)
        self.distractor.draw_scenery(background)
        self.background = np.clip(background, 0, 1).astype(np.float32)
        self.camera = Camera(stream(*spec.camera_seed), self.geom)

    def __len__(self) -> int:
        return self.spec.frames

    def frame(self, t: int) -> FrameRender:
        if not 0 <= t < self.spec.frames:
            raise IndexError(f"frame {t} outside 0..{self.spec.frames - 1}")
        canvas = self.background.copy()
        shape = self.geom.canvas_shape
        presence, soft = np.zeros(shape, np.float32), None
        other = np.zeros(shape, np.float32)
        if self.include_distractor:
            other, _ = self.distractor.draw(canvas, t)
        if self.include_target:
            presence, soft = self.target.draw(canvas, t)
        view = self.camera.view
        image = view(canvas, t)
        # Luminance sensor noise (one value per pixel, a third of the cost of colour noise).
        noise = stream(self.spec.seed, self.spec.index, ROLE_SENSOR, t).standard_normal(
            image.shape[:2], dtype=np.float32
        )
        image += (SENSOR_NOISE * noise)[..., None]
        image = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
        presence_v = np.clip(view(presence, t), 0, 1)
        if soft is None:
            soft_v = np.zeros(presence_v.shape, bool)
            label = label_from_presence(presence_v, None, self.target.rule)
        else:
            soft_v = view(soft.astype(np.float32), t) > 0.5
            label = label_from_presence(presence_v, soft_v, self.target.rule)
        return FrameRender(image, label, presence_v, soft_v, np.clip(view(other, t), 0, 1))

    def __iter__(self) -> Iterator[FrameRender]:
        for t in range(self.spec.frames):
            yield self.frame(t)


def render_clip(spec: ClipSpec, *, include_target: bool = True, include_distractor: bool = True) -> RenderedClip:
    """Render every frame of ``spec`` in memory (small clips: tests, previews)."""
    renders = list(ClipRenderer(spec, include_target=include_target, include_distractor=include_distractor))
    return RenderedClip(
        spec=spec,
        frames=np.stack([r.image for r in renders]),
        labels=np.stack([r.label for r in renders]),
        presence=np.stack([r.presence for r in renders]),
        soft=np.stack([r.soft for r in renders]),
        distractor_presence=np.stack([r.distractor_presence for r in renders]),
    )
