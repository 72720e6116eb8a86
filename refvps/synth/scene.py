"""The scene around the processes: a textured background and a hand-held camera.

The background is an outdoor view (sky with clouds over textured ground) or an indoor one (tiled
wall over a plank floor), with a few static objects, in muted colours whose brightness contrasts with
the target's colour. The camera shakes slightly (smooth translation, roll and zoom), applied to the
whole rendered canvas and to the presence maps alike, so labels follow the pixels exactly.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import cv2
import numpy as np

from refvps.synth.noise import luminance, noise_1d, over, value_noise
from refvps.synth.processes import CanvasGeometry


@dataclass(frozen=True)
class SceneSpec:
    """The look of a clip's background: setting, horizon height, colours, brightness."""

    setting: str  # "outdoor" or "indoor"
    horizon: float  # fraction of the frame height
    hue_top: float
    hue_bottom: float
    saturation: float
    lightness: float


def plan_scene(rng: np.random.Generator, target_rgb, *, dark: bool = False) -> SceneSpec:
    """A background whose brightness contrasts with the target (dark behind bright targets).

    ``dark``: a light beam is in the scene, which only shows in a dim one.
    """
    lum = luminance(target_rgb)
    if lum > 0.5 or dark:
        lightness = rng.uniform(0.14, 0.28)
    else:
        lightness = rng.uniform(min(0.62, lum + 0.3), min(0.78, lum + 0.45))
    return SceneSpec(
        setting=str(rng.choice(["outdoor", "indoor"])),
        horizon=float(rng.uniform(0.42, 0.58)),
        hue_top=float(rng.uniform(0, 1)),
        hue_bottom=float(rng.uniform(0, 1)),
        saturation=float(rng.uniform(0.08, 0.25)),
        lightness=float(lightness),
    )


def _hls(h: float, l: float, s: float) -> np.ndarray:
    return np.array(colorsys.hls_to_rgb(h % 1.0, float(np.clip(l, 0, 1)), float(np.clip(s, 0, 1))), np.float32)


def render_background(scene: SceneSpec, geom: CanvasGeometry, rng: np.random.Generator) -> np.ndarray:
    """The static background canvas, float32 RGB in [0, 1], of the canvas shape."""
    ch, cw = geom.canvas_shape
    m, H = geom.margin, geom.height
    horizon = int(round(m + scene.horizon * H))
    ys = geom.ys
    canvas = np.empty((ch, cw, 3), np.float32)
    top = _hls(scene.hue_top, scene.lightness, scene.saturation)
    bottom = _hls(scene.hue_bottom, scene.lightness * 0.9, scene.saturation * 1.3)
    fine = value_noise(rng, (ch, cw), cells=24, octaves=3)
    coarse = value_noise(rng, (ch, cw), cells=4, octaves=3)
    if scene.setting == "outdoor":
        gradient = (0.8 + 0.35 * np.clip(ys / max(horizon, 1), 0, 1))[..., None]
        clouds = value_noise(rng, (ch, cw), cells=5, octaves=4, stretch=(0.4, 1.6))
        sky = top * gradient * (0.9 + 0.15 * coarse[..., None])
        over(sky, (np.clip(clouds - 0.55, 0, 1) * 1.2).astype(np.float32), np.clip(top * 1.45 + 0.1, 0, 1))
        streaks = value_noise(rng, (ch, cw), cells=10, octaves=3, stretch=(0.15, 2.5))
        ground = bottom * (0.75 + 0.25 * coarse + 0.2 * streaks + 0.15 * fine)[..., None]
    else:
        sky = top * (0.85 + 0.2 * coarse + 0.1 * fine)[..., None]
        tile = max(6, int(round(0.09 * H)))
        grout = ((np.arange(ch)[:, None] % tile == 0) | (np.arange(cw)[None, :] % tile == 0)).astype(np.float32)
        sky = sky * (1.0 - 0.18 * grout[..., None])
        ground = bottom * (0.8 + 0.25 * coarse + 0.2 * fine)[..., None]
        # Planks: bands that get taller towards the camera.
        depth = np.clip((ys - horizon) / max(ch - horizon, 1), 0, 1)
        seams = np.abs(np.sin(np.pi * (depth**0.6) * 9.0))
        ground = ground * (0.8 + 0.2 * np.clip(seams * 4.0, 0, 1))[..., None]
    edge = noise_1d(rng, cw, cells=8) * 0.015 * H
    line = horizon + edge[None, :]
    blend = np.clip(ys - line + 0.5, 0, 1)[..., None]
    canvas[:] = sky * (1.0 - blend) + ground * blend
    _clutter(canvas, rng, geom, horizon, scene)
    return np.clip(canvas, 0, 1)


def _clutter(canvas, rng, geom: CanvasGeometry, horizon: int, scene: SceneSpec) -> None:
    """A few static, muted objects: boxes or buildings on the horizon, rocks or stools on the ground."""
    m, W, H = geom.margin, geom.width, geom.height
    for _ in range(int(rng.integers(2, 5))):
        colour = _hls(rng.uniform(0, 1), scene.lightness * rng.uniform(0.6, 1.3), scene.saturation * 1.2)
        if rng.random() < 0.5:
            w, h = W * rng.uniform(0.04, 0.12), H * rng.uniform(0.08, 0.25)
            x = m + W * rng.uniform(0, 1) - w / 2
            y = horizon - h * rng.uniform(0.6, 1.0)
            cv2.rectangle(
                canvas, (int(x), int(y)), (int(x + w), int(y + h)), tuple(float(c) for c in colour), -1, cv2.LINE_AA
            )
            cv2.rectangle(
                canvas,
                (int(x), int(y)),
                (int(x + w), int(y + h)),
                tuple(float(c) * 0.7 for c in colour),
                1,
                cv2.LINE_AA,
            )
        else:
            rx, ry = W * rng.uniform(0.02, 0.06), H * rng.uniform(0.02, 0.05)
            cx, cy = m + W * rng.uniform(0, 1), horizon + (m + H - horizon) * rng.uniform(0.2, 0.95)
            cv2.ellipse(
                canvas,
                (int(cx), int(cy + ry * 0.6)),
                (int(rx * 1.1), max(1, int(ry * 0.4))),
                0,
                0,
                360,
                tuple(
                    float(c) for c in canvas[min(int(cy), canvas.shape[0] - 1), min(int(cx), canvas.shape[1] - 1)] * 0.6
                ),
                -1,
                cv2.LINE_AA,
            )
            cv2.ellipse(
                canvas,
                (int(cx), int(cy)),
                (int(rx), int(ry)),
                0,
                0,
                360,
                tuple(float(c) for c in colour),
                -1,
                cv2.LINE_AA,
            )


class Camera:
    """A hand-held camera: smooth shake (translation, roll, zoom) and a slow drift, per frame."""

    def __init__(self, rng: np.random.Generator, geom: CanvasGeometry):
        self.geom = geom
        T = geom.frames
        t = np.arange(T, dtype=np.float64)
        reach = 0.55 * geom.margin
        shifts = np.zeros((T, 2))
        for axis in range(2):
            amp = reach * rng.uniform(0.3, 1.0)
            drift = rng.uniform(-0.5, 0.5) * reach
            wave = np.zeros(T)
            for _ in range(3):
                period = rng.uniform(4, 30)
                wave += rng.uniform(0.2, 1.0) * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
            wave /= max(1.0, np.abs(wave).max())
            ramp = (t / max(T - 1, 1) - 0.5) * drift
            shifts[:, axis] = np.clip(amp * 0.6 * wave + ramp, -reach, reach)
        self.shifts = shifts
        self.roll = np.radians(rng.uniform(0.1, 0.45)) * np.sin(
            2 * np.pi * t / rng.uniform(20, 60) + rng.uniform(0, 6.3)
        )
        self.zoom = 1.0 + rng.uniform(0.0, 0.008) * np.sin(2 * np.pi * t / rng.uniform(30, 90) + rng.uniform(0, 6.3))

    def matrix(self, t: int) -> np.ndarray:
        """The 2x3 map from a frame pixel to the canvas (for ``cv2.WARP_INVERSE_MAP``)."""
        g = self.geom
        c, s = math.cos(self.roll[t]) / self.zoom[t], math.sin(self.roll[t]) / self.zoom[t]
        rot = np.array([[c, -s], [s, c]])
        centre = np.array([(g.width - 1) / 2.0, (g.height - 1) / 2.0])
        offset = centre + g.margin + self.shifts[t] - rot @ centre
        return np.hstack([rot, offset[:, None]]).astype(np.float64)

    def view(self, image: np.ndarray, t: int, *, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
        """The visible frame ``t`` of a canvas-sized image (colour or a single map)."""
        return cv2.warpAffine(
            image,
            self.matrix(t),
            (self.geom.width, self.geom.height),
            flags=interpolation | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
