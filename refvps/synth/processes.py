"""The procedurally rendered dynamic processes of the synthetic benchmark.

Each process kind is a class that samples its own parameters from a seeded stream and, for a frame
``t``, composites itself onto the canvas (float32 RGB in [0, 1]) and returns the two maps below.
:meth:`Process.draw` returns empty maps (and draws nothing) in frames where the process is not
visible (before ``start``, from ``end`` on, or, for the light, while it flickers off); each kind
implements :meth:`Process.render` for the frames where it is.

* ``presence``: (H, W) float32 in [0, 1], how much of the process is in each pixel: the density of
  smoke, fire and spray, the amplitude envelope of ripples, the intensity of a light beam, or the
  (motion-blurred) coverage of a solid shape. Labels are derived from it.
* ``soft``: (H, W) bool, or None for "nowhere": where the process's boundary is ambiguous, i.e.
  where a careful annotator would mark Ignore rather than guess (the low-density fringe of smoke,
  the glow around a light beam or flame, spray, the smear of a motion-blurred fragment).

:func:`label_from_presence` turns the two maps into a label map with the kind's thresholds
(:class:`LabelRule`): target where presence reaches ``hi`` (or 0.5 outside soft regions), Ignore where
soft and ``lo <= presence < hi``, background elsewhere. So Ignore never falls inside the dense core.

Everything is drawn in canvas coordinates: the visible frame plus a margin on each side, which the
camera's jitter moves over (see :mod:`refvps.synth.scene`). Each process stays in its *lane*, the
left or right half of the frame, so the target and the distractor never overlap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import cv2
import numpy as np

from refvps.synth.noise import noise_1d, over, smoothstep, stream, value_noise


@dataclass(frozen=True)
class LabelRule:
    """Thresholds on presence: Ignore where soft and ``lo <= p < hi``; target where ``p >= hi``."""

    lo: float
    hi: float


@dataclass(frozen=True)
class ProcessSpec:
    """What to render: a kind, its look (variant colour), where (side) and when (start/end frame).

    The process is present from frame ``start`` and gone by frame ``end`` (``end == frames`` means it
    lasts to the end of the clip). ``seed`` seeds the process's own random stream.
    """

    kind: str
    colour: str
    rgb: tuple[int, int, int]
    side: str
    start: int
    end: int
    seed: tuple[int, ...]
    words: tuple[tuple[str, str], ...] = ()

    def word(self, key: str, default: str = "") -> str:
        return dict(self.words).get(key, default)


@dataclass(frozen=True)
class CanvasGeometry:
    """The visible frame (width x height, ``frames`` long) inside a canvas with ``margin`` on each side."""

    width: int
    height: int
    frames: int
    margin: int

    @property
    def canvas_shape(self) -> tuple[int, int]:
        return self.height + 2 * self.margin, self.width + 2 * self.margin

    @cached_property
    def ys(self) -> np.ndarray:
        return np.arange(self.canvas_shape[0], dtype=np.float32)[:, None]

    @cached_property
    def xs(self) -> np.ndarray:
        return np.arange(self.canvas_shape[1], dtype=np.float32)[None, :]

    @property
    def time_scale(self) -> float:
        """Frames over which one "event" unfolds: the clip length, kept within 24..120 frames."""
        return float(np.clip(self.frames, 24, 120))


@dataclass(frozen=True)
class Lane:
    """The half of the frame a process lives in, in canvas x coordinates."""

    side: str
    x0: float
    x1: float
    weights: np.ndarray  # (1, canvas width): 1 inside the lane, a short ramp to 0 at the frame's middle

    @property
    def centre(self) -> float:
        return 0.5 * (self.x0 + self.x1)

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def outward(self) -> float:
        """+1 if the frame edge is to the right of the lane, -1 if to the left."""
        return 1.0 if self.side == "right" else -1.0

    @property
    def inner(self) -> float:
        """The lane's x at the middle of the frame."""
        return self.x0 if self.side == "right" else self.x1


def make_lane(geom: CanvasGeometry, side: str) -> Lane:
    m, w = geom.margin, geom.width
    gap = max(2.0, 0.02 * w)
    mid = m + 0.5 * w
    xs = geom.xs
    if side == "left":
        x0, x1 = float(m), mid - gap
        weights = 1.0 - smoothstep(x1 - gap, mid, xs)
    elif side == "right":
        x0, x1 = mid + gap, float(m + w)
        weights = smoothstep(mid, x0 + gap, xs)
    else:
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    return Lane(side, x0, x1, weights.astype(np.float32))


def label_from_presence(presence: np.ndarray, soft: np.ndarray | None, rule: LabelRule) -> np.ndarray:
    """A label map (0 background, 1 target, 255 Ignore) from a process's presence and soft maps."""
    label = np.zeros(presence.shape, np.uint8)
    core = presence >= rule.hi
    if soft is None:
        label[presence >= 0.5] = 1
        label[core] = 1
        return label
    fringe = soft & (presence >= rule.lo) & ~core
    solid = ~soft & (presence >= 0.5)
    label[fringe] = 255
    label[core | solid] = 1
    return label


class Process:
    """Base class: one dynamic process rendered in one lane of a clip."""

    kind: ClassVar[str] = ""
    rule: ClassVar[LabelRule] = LabelRule(0.15, 0.5)
    absences: ClassVar[tuple[str, ...]] = ("late", "early")  # timings in which it may be absent

    def __init__(self, spec: ProcessSpec, geom: CanvasGeometry):
        self.spec = spec
        self.geom = geom
        self.lane = make_lane(geom, spec.side)
        self.rng = stream(*spec.seed)
        self.colour = np.asarray(spec.rgb, np.float32) / 255.0
        self.start = int(spec.start)
        self.end = int(spec.end)

    @property
    def duration(self) -> int:
        return max(1, self.end - self.start)

    def draw_scenery(self, canvas: np.ndarray) -> None:
        """Draw what belongs to the scene but is not the process (a chimney, a pond, a window frame)."""

    def visible(self, t: int) -> bool:
        """Whether the process shows in frame ``t``: from ``start`` until it is gone at ``end``."""
        return self.start <= t < self.end

    def draw(self, canvas: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Composite frame ``t`` onto ``canvas``; returns its presence and soft maps (nothing when not visible)."""
        if not self.visible(t):
            return self._empty()
        return self.render(canvas, t)

    def render(self, canvas: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Draw a frame in which the process is visible (each kind implements this)."""
        raise NotImplementedError

    def _empty(self) -> tuple[np.ndarray, None]:
        return np.zeros(self.geom.canvas_shape, np.float32), None


# --------------------------------------------------------------------------- particle fields


class _ParticleField:
    """Gaussian puffs summed on a coarse grid, then upsampled (smoke, flames, spray)."""

    def __init__(self, geom: CanvasGeometry, cell: int):
        self.geom = geom
        self.cell = max(1, cell)
        ch, cw = geom.canvas_shape
        self.grid_shape = (ch + self.cell - 1) // self.cell, (cw + self.cell - 1) // self.cell
        self.gy = (np.arange(self.grid_shape[0], dtype=np.float32) * self.cell + 0.5 * (self.cell - 1))[None, :, None]
        self.gx = (np.arange(self.grid_shape[1], dtype=np.float32) * self.cell + 0.5 * (self.cell - 1))[None, None, :]

    def coarse(self, x: np.ndarray, y: np.ndarray, r: np.ndarray, w: np.ndarray) -> np.ndarray:
        field = np.zeros(self.grid_shape, np.float32)
        keep = w > 1e-3
        x, y, r, w = x[keep], y[keep], r[keep], w[keep]
        for lo in range(0, len(x), 64):  # bounded memory for long clips
            sl = slice(lo, lo + 64)
            dy2 = (self.gy - y[sl, None, None]) ** 2
            dx2 = (self.gx - x[sl, None, None]) ** 2
            inv = (-0.5 / (r[sl] ** 2))[:, None, None]
            field += np.einsum("k,kij->ij", w[sl], np.exp((dy2 + dx2) * inv, dtype=np.float32))
        return field

    def upsample(self, field: np.ndarray) -> np.ndarray:
        ch, cw = self.geom.canvas_shape
        big = cv2.resize(
            field, (self.grid_shape[1] * self.cell, self.grid_shape[0] * self.cell), interpolation=cv2.INTER_LINEAR
        )
        return big[:ch, :cw]


def _scrolling_noise(rng, geom: CanvasGeometry, travel: float, **kwargs) -> np.ndarray:
    ch, cw = geom.canvas_shape
    return value_noise(rng, (ch + int(math.ceil(travel)) + 2, cw), **kwargs)


def _window(noise: np.ndarray, rows: int, shift: float) -> np.ndarray:
    top = int(np.clip(round(shift), 0, noise.shape[0] - rows))
    return noise[top : top + rows]


class _Turbulence:
    """Domain warping: a field is resampled at positions displaced by two rising noise fields,
    which turns smooth puffs into curling wisps and tongues."""

    def __init__(self, rng, geom: CanvasGeometry, travel: float, strength: float, **noise_kwargs):
        self.geom = geom
        self.strength = strength
        self.nx = _scrolling_noise(rng, geom, travel, **noise_kwargs)
        self.ny = _scrolling_noise(rng, geom, travel, **noise_kwargs)
        ch, cw = geom.canvas_shape
        self.base_x = np.broadcast_to(np.arange(cw, dtype=np.float32)[None, :], (ch, cw))
        self.base_y = np.broadcast_to(np.arange(ch, dtype=np.float32)[:, None], (ch, cw))

    def warp(self, field: np.ndarray, shift: float, gain: np.ndarray | float = 1.0) -> np.ndarray:
        rows = field.shape[0]
        dx = (_window(self.nx, rows, shift) - 0.5) * (2.0 * self.strength) * gain
        dy = (_window(self.ny, rows, shift) - 0.5) * (2.0 * self.strength) * gain
        return cv2.remap(field, self.base_x + dx, self.base_y + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


# --------------------------------------------------------------------------- smoke


class Smoke(Process):
    """A plume from a chimney or a smoke canister, rising, spreading and thinning as it drifts."""

    kind = "smoke"
    rule = LabelRule(0.3, 0.5)

    def __init__(self, spec: ProcessSpec, geom: CanvasGeometry):
        super().__init__(spec, geom)
        r, lane, H, W, m, T = self.rng, self.lane, geom.height, geom.width, geom.margin, geom.frames
        self.source = spec.word("src", "chimney")
        self.sx = lane.centre + lane.outward * r.uniform(-0.2, 0.05) * lane.width
        if self.source == "chimney":
            self.sy = m + H * r.uniform(0.52, 0.64)
        else:
            self.sy = m + H * r.uniform(0.80, 0.88)
        self.life = float(np.clip(0.6 * T, 16, 80))
        if self.end < T:  # the plume must show before it fades out by ``end``
            self.life = min(self.life, max(4.0, 0.9 * (self.end - self.start)))
        self.rise = H * r.uniform(0.7, 0.85) / self.life
        self.wind = lane.outward * r.uniform(0.3, 0.6) * self.rise
        first = self.start if self.start > 0 else -self.life
        last = self.end - 0.6 * self.life if self.end < T else float(T)
        step = self.life / 40.0
        n = max(1, int((last - first) / step))
        self.birth = first + step * np.arange(n) + r.uniform(0, step, n)
        self.birth = self.birth[self.birth <= last]
        n = len(self.birth)
        self.offset = r.normal(0, 0.012 * W, n)
        self.r0 = H * r.uniform(0.02, 0.03, n)
        self.r1 = H * r.uniform(0.16, 0.24, n)
        self.strength = r.uniform(0.55, 1.0, n)
        self.sway = W * r.uniform(0.005, 0.025, n)
        self.sway_period = r.uniform(0.4, 0.9, n) * self.life
        self.sway_phase = r.uniform(0, 2 * np.pi, n)
        self.field = _ParticleField(geom, cell=max(2, int(round(geom.canvas_shape[1] / 128))))
        self.noise = _scrolling_noise(r, geom, 0.8 * self.rise * T, cells=10, octaves=4, persistence=0.6)
        self.turbulence = _Turbulence(r, geom, 0.8 * self.rise * T, 0.05 * H, cells=18, octaves=3)
        self.shade = value_noise(r, geom.canvas_shape, cells=6, octaves=3)

    def draw_scenery(self, canvas):
        H, W = self.geom.height, self.geom.width
        ch = canvas.shape[0]
        if self.source == "chimney":
            half = max(3, int(0.035 * W))
            x0, x1 = int(self.sx - half), int(self.sx + half)
            y0 = int(self.sy + 1)
            brick = np.array([0.42, 0.22, 0.17], np.float32)
            canvas[y0:ch, x0:x1] = brick * 0.9
            for row in range(y0, ch, max(3, H // 40)):  # mortar lines
                canvas[row, x0:x1] = brick * 1.35
            canvas[max(0, y0 - 3) : y0 + 1, x0 - 2 : x1 + 2] = brick * 0.55  # cap
        else:
            half = max(2, int(0.02 * W))
            height = max(4, int(0.06 * H))
            x0, x1 = int(self.sx - half), int(self.sx + half)
            y0 = int(self.sy)
            canvas[y0 : y0 + height, x0:x1] = np.array([0.18, 0.2, 0.18], np.float32)
            canvas[y0 : y0 + 2, x0:x1] = np.array([0.5, 0.5, 0.48], np.float32)

    def density(self, t: float) -> np.ndarray:
        age = t - self.birth
        alive = (age >= 0) & (age < self.life)
        if not alive.any():
            return np.zeros(self.geom.canvas_shape, np.float32)
        a = age[alive]
        f = a / self.life
        x = (
            self.sx
            + self.offset[alive]
            + self.wind * a * (0.3 + 1.2 * f)
            + self.sway[alive] * np.sin(2 * np.pi * a / self.sway_period[alive] + self.sway_phase[alive]) * f
        )
        y = self.sy - self.rise * a * (1.0 - 0.25 * f)
        radius = self.r0[alive] + (self.r1[alive] - self.r0[alive]) * f**0.7
        # Thinning: the puff's peak falls as it grows and ages.
        weight = (
            self.strength[alive]
            * (1.0 - f) ** 1.3
            * (self.r0[alive] / radius) ** 0.8
            * np.minimum(1.0, (a + 0.5) / 2.0)
            * 1.1
        )
        coarse = self.field.coarse(
            x.astype(np.float32), y.astype(np.float32), radius.astype(np.float32), weight.astype(np.float32)
        )
        dens = self.field.upsample(coarse)
        shift = 0.8 * self.rise * t
        # Curling grows with height above the source: smooth at the chimney, ragged higher up.
        height = np.clip((self.sy - self.geom.ys) / (0.5 * self.geom.height), 0.15, 1.0)
        dens = self.turbulence.warp(dens, shift, height)
        wisps = _window(self.noise, dens.shape[0], shift)
        return dens * (0.25 + 1.5 * wisps)

    def fade(self, t: float) -> float:
        """1, falling to 0 at ``end`` when the smoke ends mid-clip (the last puffs dissipate)."""
        if self.end >= self.geom.frames:
            return 1.0
        return 1.0 - float(smoothstep(self.end - 0.4 * self.life, self.end - 0.5, t))

    def render(self, canvas, t):
        dens = 1.25 * self.fade(float(t)) * self.density(float(t)) * self.lane.weights
        # Opacity rises steeply with density: thin smoke is faint, as it is what annotators leave out.
        alpha = 0.93 * (1.0 - np.exp(-3.0 * np.power(dens, 1.6)))
        shade = (0.8 + 0.35 * self.shade)[..., None]
        over(canvas, alpha.astype(np.float32), np.clip(self.colour * shade, 0, 1))
        return np.clip(dens, 0.0, 1.0), np.ones(dens.shape, bool)


# --------------------------------------------------------------------------- fire


class Fire(Process):
    """Flames licking up from logs or a burner, flickering; the glow around them is ambiguous."""

    kind = "fire"
    rule = LabelRule(0.22, 0.5)

    def __init__(self, spec: ProcessSpec, geom: CanvasGeometry):
        super().__init__(spec, geom)
        r, lane, H, W, m, T = self.rng, self.lane, geom.height, geom.width, geom.margin, geom.frames
        self.source = spec.word("src", "logs")
        self.cx = lane.centre + r.uniform(-0.08, 0.08) * lane.width
        self.by = m + H * r.uniform(0.78, 0.86)
        self.half = lane.width * r.uniform(0.2, 0.27)
        self.life = float(np.clip(0.2 * T, 6, 16))
        self.rise = H * r.uniform(0.45, 0.55) / self.life
        first = self.start if self.start > 0 else -self.life
        last = self.end - 0.5 * self.life if self.end < T else float(T)
        step = self.life / 70.0
        n = max(1, int((last - first) / step))
        self.birth = first + step * np.arange(n) + r.uniform(0, step, n)
        self.birth = self.birth[self.birth <= last]
        n = len(self.birth)
        self.offset = self.half * np.clip(r.normal(0, 0.45, n), -1, 1)
        self.r0 = H * r.uniform(0.05, 0.075, n) * (1.0 - 0.4 * np.abs(self.offset) / self.half)
        self.strength = r.uniform(0.6, 1.0, n)
        self.sway = W * r.uniform(0.004, 0.015, n)
        self.sway_phase = r.uniform(0, 2 * np.pi, n)
        self.flicker = 0.85 + 0.3 * noise_1d(r, T + 1, cells=max(4, T // 3))
        self.field = _ParticleField(geom, cell=max(2, int(round(geom.canvas_shape[1] / 128))))
        self.noise = _scrolling_noise(r, geom, 2.0 * self.rise * T, cells=22, octaves=3, stretch=(3.0, 1.0))
        self.turbulence = _Turbulence(r, geom, 2.0 * self.rise * T, 0.04 * H, cells=20, octaves=2, stretch=(2.0, 1.0))
        self.hot = np.clip(self.colour * 0.4 + 0.6 * np.array([1.0, 0.96, 0.8], np.float32), 0, 1)
        self.cool = (
            self.colour * np.array([0.85, 0.45, 0.4], np.float32) if spec.colour == "orange" else self.colour * 0.7
        )

    def draw_scenery(self, canvas):
        H = self.geom.height
        if self.source == "logs":
            length, thick = 2.4 * self.half, max(3, int(0.03 * H))
            for angle in (-0.35, 0.35, 0.0):
                dx, dy = 0.5 * length * math.cos(angle), 0.5 * length * math.sin(angle)
                cv2.line(
                    canvas,
                    (int(self.cx - dx), int(self.by + 2 - dy)),
                    (int(self.cx + dx), int(self.by + 2 + dy)),
                    (0.28, 0.17, 0.09),
                    thick,
                    cv2.LINE_AA,
                )
        else:
            x0, x1 = int(self.cx - 1.1 * self.half), int(self.cx + 1.1 * self.half)
            canvas[int(self.by) : int(self.by + max(3, 0.04 * H)), x0:x1] = (0.32, 0.33, 0.35)

    def render(self, canvas, t):
        age = t - self.birth
        alive = (age >= 0) & (age < self.life)
        if not alive.any():
            return self._empty()
        a = age[alive]
        f = a / self.life
        x = (
            self.cx
            + self.offset[alive] * (1.0 - 0.6 * f)
            + self.sway[alive] * np.sin(6.0 * f + self.sway_phase[alive] + 0.7 * t)
        )
        y = self.by - self.rise * a
        radius = self.r0[alive] * (1.0 - 0.7 * f) + 1.0
        weight = self.strength[alive] * (1.0 - f) ** 0.7 * 0.65 * self.flicker[t]
        if self.end < self.geom.frames:  # dying down before it goes out
            weight = weight * (1.0 - float(smoothstep(self.end - 0.5 * self.life, self.end - 0.5, t)))
        coarse = self.field.coarse(
            x.astype(np.float32), y.astype(np.float32), radius.astype(np.float32), weight.astype(np.float32)
        )
        dens = self.field.upsample(coarse)
        shift = 2.0 * self.rise * t
        height = np.clip((self.by - self.geom.ys) / (0.3 * self.geom.height), 0.1, 1.0)
        dens = self.turbulence.warp(dens, shift, height)
        tongues = _window(self.noise, dens.shape[0], shift)
        dens = dens * (0.15 + 1.7 * tongues**1.3 * (0.5 + height)) * self.lane.weights
        d = np.clip(dens, 0.0, 1.5)[..., None]
        colour = np.where(
            d > 0.7,
            self.colour + (self.hot - self.colour) * np.clip((d - 0.7) / 0.6, 0, 1),
            self.cool + (self.colour - self.cool) * np.clip(d / 0.7, 0, 1),
        )
        over(canvas, 0.95 * (1.0 - np.exp(-3.0 * dens)), colour)
        # The glow is smooth: blur the coarse field (cheap) rather than the full-size one.
        glow = self.field.upsample(cv2.GaussianBlur(coarse, (0, 0), 0.04 * self.geom.height / self.field.cell))
        canvas += 0.15 * (glow * self.lane.weights)[..., None] * self.colour
        return np.clip(dens, 0.0, 1.0), np.ones(dens.shape, bool)


# --------------------------------------------------------------------------- ripples


class Ripples(Process):
    """Rings spreading from drops that hit a pond, fading as they travel outwards."""

    kind = "ripples"
    rule = LabelRule(0.15, 0.5)

    def __init__(self, spec: ProcessSpec, geom: CanvasGeometry):
        super().__init__(spec, geom)
        r, lane, H, W, m = self.rng, self.lane, geom.height, geom.width, geom.margin
        self.cx = lane.centre + r.uniform(-0.04, 0.04) * lane.width
        self.cy = m + H * r.uniform(0.64, 0.7)
        self.ax = lane.width * r.uniform(0.43, 0.47)
        self.ay = min(self.ax * r.uniform(0.5, 0.62), m + 0.97 * H - self.cy)
        scale = geom.time_scale
        self.speed = 1.05 * self.ax / (0.65 * scale)
        self.decay = 1.2 * scale
        first = self.start - (r.uniform(0.1, 0.25) * scale if self.start == 0 else 0.0)
        gap = r.uniform(0.35, 0.5) * scale
        last_drop = (self.end if self.end < geom.frames else geom.frames) - 0.25 * scale
        times = [first]
        while times[-1] + gap < last_drop:
            times.append(times[-1] + gap)
        self.drops = [
            (tt, self.cx + self.ax * r.uniform(-0.3, 0.3), self.cy + self.ay * r.uniform(-0.25, 0.25)) for tt in times
        ]
        self.wavelength = max(5.0, 0.035 * W)
        # Computed in the pond's bounding box only.
        pad = 3
        self.y0, self.y1 = int(max(0, self.cy - self.ay - pad)), int(min(geom.canvas_shape[0], self.cy + self.ay + pad))
        self.x0, self.x1 = int(max(0, self.cx - self.ax - pad)), int(min(geom.canvas_shape[1], self.cx + self.ax + pad))
        yy = geom.ys[self.y0 : self.y1]
        xx = geom.xs[:, self.x0 : self.x1]
        self.yy, self.xx = yy, xx
        rho = np.sqrt(((xx - self.cx) / self.ax) ** 2 + ((yy - self.cy) / self.ay) ** 2)
        self.pond = (1.0 - smoothstep(1.0 - 2.0 / self.ay, 1.0, rho)).astype(np.float32)
        self.pond_rho = rho
        self.texture = value_noise(r, (self.y1 - self.y0, self.x1 - self.x0), cells=8, octaves=3, stretch=(0.5, 1.5))
        self.squash = self.ax / self.ay

    def draw_scenery(self, canvas):
        sub = canvas[self.y0 : self.y1, self.x0 : self.x1]
        shore = np.clip((self.pond_rho - 0.92) / 0.16, 0, 1) * (self.pond_rho < 1.12)
        over(sub, (shore * 0.6).astype(np.float32), np.array([0.35, 0.3, 0.22], np.float32))
        depth = np.clip(1.0 - self.pond_rho, 0, 1)[..., None]
        water = self.colour * (0.75 + 0.25 * self.texture[..., None]) * (0.85 + 0.3 * depth)
        over(sub, self.pond, np.clip(water, 0, 1))

    def _amplitude(self, t: float, drop_t: float) -> float:
        age = t - drop_t
        if age < 0:
            return 0.0
        amp = math.exp(-age / self.decay) * min(1.0, (age + 0.5) / 2.0)
        if self.end < self.geom.frames:
            amp *= 1.0 - float(smoothstep(self.end - 0.15 * self.geom.time_scale, self.end - 1, t))
        return amp

    def render(self, canvas, t):
        envelope = np.zeros(self.pond.shape, np.float32)
        height = np.zeros(self.pond.shape, np.float32)
        for drop_t, dx, dy in self.drops:
            amp = self._amplitude(float(t), drop_t)
            if amp < 0.02:
                continue
            radius = self.speed * (t - drop_t)
            rho = np.sqrt((self.xx - dx) ** 2 + ((self.yy - dy) * self.squash) ** 2)
            width = 1.5 + 0.03 * radius
            front = 1.0 - smoothstep(radius - width, radius + width, rho)
            inner = np.exp(-(((radius - rho) / (0.9 * radius + 4.0)) ** 2))
            env = (amp * front * inner).astype(np.float32)
            envelope = np.maximum(envelope, env)
            height += env * np.sin(2 * np.pi * (rho - radius) / self.wavelength)
        envelope *= self.pond * self.lane.weights[:, self.x0 : self.x1]
        height *= self.pond
        slope = np.gradient(height, axis=0) * (self.wavelength / (2 * np.pi))
        sub = canvas[self.y0 : self.y1, self.x0 : self.x1]
        sub *= (1.0 + 0.9 * slope + 0.18 * envelope)[..., None]
        glint = np.clip(slope - 0.35, 0, 1) * 1.4
        over(sub, glint.astype(np.float32), np.array([0.95, 0.97, 1.0], np.float32))
        np.clip(sub, 0, 1, out=sub)
        presence = np.zeros(self.geom.canvas_shape, np.float32)
        presence[self.y0 : self.y1, self.x0 : self.x1] = np.clip(2.0 * envelope, 0, 1)
        return presence, np.ones(presence.shape, bool)


# --------------------------------------------------------------------------- melting


_MELT_SHAPES = {  # material -> (height / half width, initial squareness exponent, half width / lane width)
    "ice": (1.6, 8.0, (0.24, 0.29)),
    "chocolate": (0.9, 10.0, (0.28, 0.34)),
    "ice_cream": (1.5, 2.4, (0.24, 0.29)),
    "candle": (3.2, 12.0, (0.14, 0.17)),
}


class Melting(Process):
    """A solid (ice, chocolate, ice cream, a candle) sagging, spreading and pooling into a puddle."""

    kind = "melting"
    rule = LabelRule(0.5, 0.5)
    absences = ()

    def __init__(self, spec: ProcessSpec, geom: CanvasGeometry):
        super().__init__(spec, geom)
        r, lane, H, m, T = self.rng, self.lane, geom.height, geom.margin, geom.frames
        self.material = spec.word("variant", "ice")
        aspect, self.p0, (lo, hi) = _MELT_SHAPES[self.material]
        self.hw0 = lane.width * r.uniform(lo, hi)
        self.h0 = min(aspect * self.hw0, 0.55 * H)
        self.cx = lane.centre + r.uniform(-0.1, 0.1) * lane.width
        self.yb = m + H * r.uniform(0.8, 0.88)
        self.t0 = T * r.uniform(0.0, 0.15)
        self.t1 = T * r.uniform(0.85, 1.05)
        self.amount = r.uniform(0.75, 0.9)
        self.drift = lane.outward * r.uniform(0.0, 0.15) * self.hw0
        n_cols = geom.canvas_shape[1]
        self.sag = noise_1d(r, n_cols, cells=10)
        self.lobes = r.uniform(0, 2 * np.pi, 3)
        self.texture = value_noise(r, geom.canvas_shape, cells=10, octaves=3)
        ch = geom.canvas_shape[0]
        self.y_top_box = int(max(0, self.yb - self.h0 - 2))
        self.x_box = (int(max(0, self.cx - 3.2 * self.hw0)), int(min(n_cols, self.cx + 3.2 * self.hw0)))
        self.y_box_end = int(min(ch, self.yb + 0.12 * H + 3))

    def melt(self, t: float) -> float:
        return self.amount * float(smoothstep(self.t0, self.t1, t))

    def render(self, canvas, t):
        s = self.melt(float(t))
        H = self.geom.height
        y0, y1 = self.y_top_box, self.y_box_end
        x0, x1 = self.x_box
        ys = self.geom.ys[y0:y1]
        xs = self.geom.xs[:, x0:x1]
        hw = self.hw0 * (1.0 + 0.45 * s)
        hh = self.h0 * (1.0 - 0.78 * s)
        p = self.p0 + (2.0 - self.p0) * min(1.0, 1.4 * s)
        u = np.abs(xs - self.cx) / hw
        inside = np.clip(1.0 - u, 0.0, 1.0)
        profile = np.power(np.clip(1.0 - np.power(np.minimum(u, 1.0), p), 0.0, 1.0), 1.0 / p)
        sag = 1.0 + 0.18 * s * self.sag[None, x0:x1]
        y_top = self.yb - hh * profile * sag
        body = np.clip(ys - y_top + 0.5, 0, 1) * np.clip(self.yb - ys + 0.5, 0, 1) * np.clip(inside * hw + 0.5, 0, 1)
        grow = float(smoothstep(0.0, 0.12, s))
        rx = hw * (1.05 + 1.6 * s) * grow + 1e-3
        ry = max(1.0, 0.045 * H * (0.4 + s)) * grow + 1e-3
        px, py = self.cx + self.drift * s, self.yb - 0.25 * ry
        angle = np.arctan2((ys - py) / ry, (xs - px) / rx)
        lobe = 1.0 + 0.16 * s * (np.sin(3 * angle + self.lobes[0]) + 0.6 * np.sin(5 * angle + self.lobes[1]))
        rho = np.sqrt(((xs - px) / rx) ** 2 + ((ys - py) / ry) ** 2) / lobe
        puddle = np.clip((1.0 - rho) * ry + 0.5, 0, 1) * (grow > 0)
        lane_w = self.lane.weights[:, x0:x1]
        body = (body * lane_w).astype(np.float32)
        puddle = (puddle * lane_w).astype(np.float32)
        tex = self.texture[y0:y1, x0:x1][..., None]
        height_frac = np.clip((self.yb - ys) / max(hh, 1.0), 0, 1)[..., None]
        lit = 0.72 + 0.4 * height_frac + 0.12 * (tex - 0.5)
        side_light = np.clip(1.0 - (xs - (self.cx - 0.4 * hw)) / (1.5 * hw), 0.6, 1.1)[..., None]
        body_colour = np.clip(self.colour * lit * side_light, 0, 1)
        if self.material == "ice":
            glint = (tex > 0.72) * 0.5
            body_colour = np.clip(body_colour + glint, 0, 1)
        puddle_colour = np.clip(self.colour * (0.78 + 0.2 * tex), 0, 1)
        sub = canvas[y0:y1, x0:x1]
        over(sub, 0.95 * puddle, puddle_colour)
        over(sub, body, body_colour)
        presence = np.zeros(self.geom.canvas_shape, np.float32)
        presence[y0:y1, x0:x1] = np.maximum(body, puddle)
        return presence, None


# --------------------------------------------------------------------------- shatter


def _clip_polygon(poly: np.ndarray, normal: np.ndarray, offset: float) -> np.ndarray:
    """Keep the part of a convex polygon with ``normal . p <= offset`` (Sutherland-Hodgman, one plane)."""
    out = []
    n = len(poly)
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        da, db = normal @ a - offset, normal @ b - offset
        if da <= 0:
            out.append(a)
        if (da < 0 < db) or (db < 0 < da):
            out.append(a + (b - a) * (da / (da - db)))
    return np.array(out) if out else np.zeros((0, 2))


def voronoi_cells(points: np.ndarray, rect: tuple[float, float, float, float]) -> list[np.ndarray]:
    """The Voronoi cell of each point inside the rectangle (x0, y0, x1, y1), as convex polygons."""
    x0, y0, x1, y1 = rect
    box = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)
    cells = []
    for i, p in enumerate(points):
        poly = box
        for j, q in enumerate(points):
            if i == j or len(poly) == 0:
                continue
            normal = q - p
            poly = _clip_polygon(poly, normal, float(normal @ (p + q) / 2.0))
        if len(poly) >= 3:
            cells.append(poly)
    return cells


class Shatter(Process):
    """A glass pane that cracks on impact and bursts into fragments that tumble out of the frame."""

    kind = "shatter"
    rule = LabelRule(0.15, 0.85)
    absences = ()
    SUBSAMPLES = 4
    EXPOSURE = 0.5  # of a frame interval

    def __init__(self, spec: ProcessSpec, geom: CanvasGeometry):
        super().__init__(spec, geom)
        r, lane, H, m, T = self.rng, self.lane, geom.height, geom.margin, geom.frames
        self.pw = lane.width * r.uniform(0.55, 0.72)
        self.ph = min(self.pw * r.uniform(0.8, 1.1), 0.52 * H)
        self.px0 = lane.centre - 0.5 * self.pw + r.uniform(-0.05, 0.05) * lane.width
        self.py0 = m + H * r.uniform(0.08, 0.16)
        self.impact_t = int(round(self.start + T * r.uniform(0.25, 0.4)))
        self.lead = 3
        self.impact = np.array([self.px0 + self.pw * r.uniform(0.3, 0.7), self.py0 + self.ph * r.uniform(0.3, 0.7)])
        n = int(r.integers(14, 22))
        near = self.impact + r.normal(0, 0.15 * self.pw, (n // 2, 2))
        far = np.column_stack(
            [r.uniform(self.px0, self.px0 + self.pw, n - n // 2), r.uniform(self.py0, self.py0 + self.ph, n - n // 2)]
        )
        seeds = np.vstack([near, far])
        seeds[:, 0] = np.clip(seeds[:, 0], self.px0 + 1, self.px0 + self.pw - 1)
        seeds[:, 1] = np.clip(seeds[:, 1], self.py0 + 1, self.py0 + self.ph - 1)
        cells = voronoi_cells(seeds, (self.px0, self.py0, self.px0 + self.pw, self.py0 + self.ph))
        self.centroids = np.array([c.mean(axis=0) for c in cells])
        self.shapes = [c - c.mean(axis=0) for c in cells]
        k = len(cells)
        direction = self.centroids - self.impact
        direction /= np.linalg.norm(direction, axis=1, keepdims=True) + 1e-6
        speed = r.uniform(0.3, 1.3, k) * self.pw
        velocity = direction * speed[:, None]
        inward = np.sign(velocity[:, 0]) == -lane.outward
        velocity[inward, 0] *= 0.25  # fragments do not fly into the other half of the frame
        velocity[:, 1] -= r.uniform(0.0, 0.5, k) * self.ph
        self.velocity = velocity
        self.gravity = 11.0 * H
        self.spin = r.uniform(-7, 7, k)
        self.brightness = r.uniform(0.75, 1.15, k)
        self.cracks = r.uniform(0, 2 * np.pi, int(r.integers(6, 10)))
        self.scale = geom.time_scale
        self.streaks = value_noise(r, geom.canvas_shape, cells=3, octaves=2, stretch=(1.0, 0.35))

    def draw_scenery(self, canvas):
        thick = max(2, int(round(0.012 * self.geom.width)))
        x0, y0 = int(round(self.px0)) - thick, int(round(self.py0)) - thick
        x1, y1 = int(round(self.px0 + self.pw)) + thick, int(round(self.py0 + self.ph)) + thick
        cv2.rectangle(canvas, (x0, y0), (x1, y1), (0.22, 0.16, 0.11), thick, cv2.LINE_AA)

    def _exit(self, direction: np.ndarray) -> float:
        """Distance from the impact point to the pane's edge along ``direction``."""
        lows = np.array([self.px0, self.py0])
        highs = lows + np.array([self.pw, self.ph])
        best = np.inf
        for axis in range(2):
            if abs(direction[axis]) > 1e-9:
                bound = highs[axis] if direction[axis] > 0 else lows[axis]
                best = min(best, (bound - self.impact[axis]) / direction[axis])
        return float(best)

    def _fragments(self, u: float) -> list[np.ndarray]:
        shift = self.velocity * u
        shift[:, 1] += 0.5 * self.gravity * u * u
        polys = []
        for shape, centre, move, spin in zip(self.shapes, self.centroids, shift, self.spin):
            c, s = math.cos(spin * u), math.sin(spin * u)
            rotated = shape @ np.array([[c, s], [-s, c]])
            polys.append(rotated + centre + move)
        return polys

    def _glass(self, canvas, coverage, shade):
        streak = 0.85 + 0.35 * self.streaks
        colour = np.clip(self.colour[None, None, :] * (shade * streak)[..., None], 0, 1)
        over(canvas, (0.7 * coverage).astype(np.float32), colour)

    def render(self, canvas, t):
        shape = self.geom.canvas_shape
        lane_w = self.lane.weights
        if t < self.impact_t:
            xs, ys = self.geom.xs, self.geom.ys
            cover = (
                np.clip(xs - self.px0 + 0.5, 0, 1)
                * np.clip(self.px0 + self.pw - xs + 0.5, 0, 1)
                * np.clip(ys - self.py0 + 0.5, 0, 1)
                * np.clip(self.py0 + self.ph - ys + 0.5, 0, 1)
            )
            cover = (cover * lane_w).astype(np.float32)
            self._glass(canvas, cover, np.ones(shape, np.float32))
            growth = (t - (self.impact_t - self.lead)) / self.lead
            if growth > 0:
                reach = growth * 0.9 * max(self.pw, self.ph)
                for angle in self.cracks:
                    direction = np.array([math.cos(angle), math.sin(angle)])
                    end = self.impact + min(reach, self._exit(direction) - 1.0) * direction
                    cv2.line(
                        canvas,
                        tuple(int(v) for v in self.impact),
                        tuple(int(v) for v in end),
                        (0.95, 0.95, 0.95),
                        1,
                        cv2.LINE_AA,
                    )
            return cover, None
        scale = 8  # fixed-point bits for sub-pixel polygon corners
        cover = np.zeros(shape, np.float32)
        fast_cover = np.zeros(shape, np.float32)
        shade = np.zeros(shape, np.uint8)
        edges = np.zeros(shape, np.uint8)
        du = self.EXPOSURE / self.scale
        u_mid = (t - self.impact_t) / self.scale
        for k in range(self.SUBSAMPLES):
            u = max(0.0, u_mid + du * (k / (self.SUBSAMPLES - 1) - 0.5))
            polys = self._fragments(u)
            speed = np.hypot(self.velocity[:, 0], self.velocity[:, 1] + self.gravity * u) * du
            layer = np.zeros(shape, np.uint8)
            fast = np.zeros(shape, np.uint8)
            for poly, moved, bright in zip(polys, speed, self.brightness):
                pts = np.round(poly * scale).astype(np.int32)[None]
                cv2.fillPoly(layer, pts, 255, cv2.LINE_AA, shift=3)
                if moved > 1.5:  # visibly smeared within one exposure: its edge is ambiguous
                    cv2.fillPoly(fast, pts, 255, cv2.LINE_AA, shift=3)
                if k == self.SUBSAMPLES // 2:
                    cv2.fillPoly(shade, pts, int(np.clip(bright * 200, 0, 255)), cv2.LINE_8, shift=3)
                    cv2.polylines(edges, pts, True, 255, 1, cv2.LINE_AA, shift=3)
            cover += layer
            fast_cover += fast
        cover *= lane_w / (255.0 * self.SUBSAMPLES)
        fast_cover *= lane_w / (255.0 * self.SUBSAMPLES)
        shade_f = np.where(shade > 0, shade / 200.0, 1.0).astype(np.float32)
        self._glass(canvas, cover, shade_f)
        over(canvas, (edges / 255.0 * 0.5 * cover).astype(np.float32), np.array([1.0, 1.0, 1.0], np.float32))
        soft = (fast_cover > 0.004) & (fast_cover < 0.996)
        return cover, soft


# --------------------------------------------------------------------------- light


class Light(Process):
    """A spotlight that flickers on and off while its beam sweeps across the floor."""

    kind = "light"
    rule = LabelRule(0.15, 0.5)
    SUBSAMPLES = 3
    EXPOSURE = 0.5

    def __init__(self, spec: ProcessSpec, geom: CanvasGeometry):
        super().__init__(spec, geom)
        r, lane, H, m, T = self.rng, self.lane, geom.height, geom.margin, geom.frames
        self.ax = lane.centre + r.uniform(-0.08, 0.08) * lane.width
        self.ay = m + H * r.uniform(0.04, 0.1)
        self.floor = m + H * r.uniform(0.84, 0.92)
        length = self.floor - self.ay
        self.alpha = math.radians(r.uniform(11, 15))
        room = 0.5 * lane.width - 3.0 - 1.35 * length * math.tan(self.alpha)
        if room <= 0:
            self.alpha = math.atan((0.5 * lane.width - 3.0) / (2.0 * 1.35 * length))
            room = 0.5 * lane.width - 3.0 - 1.35 * length * math.tan(self.alpha)
        self.sweep = 0.9 * math.atan(room / length)
        self.period = r.uniform(0.6, 1.1) * geom.time_scale
        self.phase = r.uniform(0, 2 * np.pi)
        on = np.zeros(T + 1, bool)
        on[self.start : self.end] = True
        t = self.start + 2
        while t < self.end:  # random flicker-offs of 1-3 frames
            if r.random() < 0.09:
                length_off = int(r.integers(1, 4))
                on[t : t + length_off] = False
                t += length_off + 2
            t += 1
        self.on = on
        self.level = r.uniform(0.88, 1.0, T + 1)
        self.haze = value_noise(r, geom.canvas_shape, cells=5, octaves=3, stretch=(2.0, 1.0))
        ys, xs = geom.ys, geom.xs
        self.angle = np.arctan2(xs - self.ax, np.maximum(ys - self.ay, 1e-3)).astype(np.float32)
        self.below = (ys > self.ay).astype(np.float32) * (1.0 - smoothstep(self.floor - 1.0, self.floor + 1.0, ys))
        self.bulb = (1.0 - smoothstep(0.6, 1.0, np.hypot(xs - self.ax, ys - self.ay) / max(2.0, 0.025 * H))).astype(
            np.float32
        )

    def heading(self, t: float) -> float:
        return self.sweep * math.sin(2 * np.pi * t / self.period + self.phase)

    def draw_scenery(self, canvas):
        H = self.geom.height
        w, h = max(3, int(0.03 * H)), max(3, int(0.04 * H))
        pts = np.array(
            [
                [self.ax - w, self.ay - h],
                [self.ax + w, self.ay - h],
                [self.ax + 1.4 * w, self.ay + 1],
                [self.ax - 1.4 * w, self.ay + 1],
            ],
            np.int32,
        )
        cv2.fillPoly(canvas, [pts], (0.12, 0.12, 0.13), cv2.LINE_AA)
        cv2.line(canvas, (int(self.ax), 0), (int(self.ax), int(self.ay - h)), (0.1, 0.1, 0.1), 1, cv2.LINE_AA)

    def visible(self, t):
        return bool(self.on[t])  # off outside start..end, and during its flicker-offs

    def render(self, canvas, t):
        level = float(self.level[t])
        cone = np.zeros(self.geom.canvas_shape, np.float32)
        pool = np.zeros(self.geom.canvas_shape, np.float32)
        length = self.floor - self.ay
        xs, ys = self.geom.xs, self.geom.ys
        for k in range(self.SUBSAMPLES):
            theta = self.heading(t + self.EXPOSURE * (k / (self.SUBSAMPLES - 1) - 0.5))
            cone += 1.0 - smoothstep(0.8 * self.alpha, 1.2 * self.alpha, np.abs(self.angle - theta))
            px = self.ax + math.tan(theta) * length
            rx = length * math.tan(self.alpha) * 1.15 / math.cos(theta)
            ry = 0.32 * rx
            rho = np.sqrt(((xs - px) / rx) ** 2 + ((ys - self.floor) / ry) ** 2)
            pool += 1.0 - smoothstep(0.8, 1.2, rho)
        cone *= self.below / self.SUBSAMPLES
        pool /= self.SUBSAMPLES
        presence = np.maximum(np.maximum(cone, pool), self.bulb) * level * self.lane.weights
        tint = self.colour[None, None, :]
        lit = (0.5 * cone * (0.6 + 0.8 * self.haze))[..., None] * level * self.lane.weights[..., None]
        pool_l = (pool * level * self.lane.weights)[..., None]
        canvas += canvas * pool_l * tint * 1.6 + lit * tint + 0.35 * pool_l * tint
        canvas += (self.bulb * level)[..., None] * np.clip(tint + 0.4, 0, 1)
        np.clip(canvas, 0, 1, out=canvas)
        return presence.astype(np.float32), np.ones(presence.shape, bool)


# --------------------------------------------------------------------------- wave


class Wave(Process):
    """A wave that rises out of the water, steepens, throws its lip forward and breaks into foam and spray."""

    kind = "wave"
    rule = LabelRule(0.12, 0.5)
    SPRAY_LIFE = 0.3  # in units of the event time scale

    def __init__(self, spec: ProcessSpec, geom: CanvasGeometry):
        super().__init__(spec, geom)
        r, lane, H, m = self.rng, self.lane, geom.height, geom.margin
        self.level = m + H * r.uniform(0.64, 0.72)
        self.below = m + H + 0.08 * H  # under the visible frame
        self.amp = min(H * r.uniform(0.32, 0.4), self.level - (m + 0.1 * H))
        self.u_break = r.uniform(0.45, 0.58)
        self.back = 0.42 * lane.width
        self.chop_phase = r.uniform(0, 2 * np.pi)
        self.texture = value_noise(r, geom.canvas_shape, cells=8, octaves=3, stretch=(0.3, 2.0))
        self.foam_noise = value_noise(r, geom.canvas_shape, cells=16, octaves=3)
        n = 160
        self.spray_along = r.uniform(-0.5, 1.0, n)  # where on the lip a droplet leaves
        self.spray_vel = np.column_stack(
            [r.uniform(-0.1, 0.5, n) * lane.width * lane.outward, -r.uniform(0.2, 1.0, n) * H]
        )
        self.spray_delay = r.uniform(0.0, 0.15, n)
        self.spray_r = r.uniform(0.006, 0.014, n) * H
        self.field = _ParticleField(geom, cell=max(1, int(round(geom.canvas_shape[1] / 256))))

    def _phase(self, t: float) -> float:
        return (t - self.start) / self.duration

    def water_level(self, t: float) -> float:
        level = self.level
        rise = 0.15 * self.duration
        if self.start > 0:
            level = self.below + (self.level - self.below) * float(smoothstep(self.start, self.start + rise, t))
        if self.end < self.geom.frames:
            level = level + (self.below - self.level) * float(smoothstep(self.end - rise, self.end - 1, t))
        return level

    def crest(self, u: float) -> tuple[float, float, float]:
        """(x of the crest, its height above the water, the front slope's half-width) at phase ``u``."""
        ub = self.u_break
        if u < ub:
            height = self.amp * (0.15 + 0.85 * float(smoothstep(0.0, ub, u)))
        else:
            height = self.amp * (1.0 - 0.8 * float(smoothstep(ub, min(1.0, ub + 0.4), u)))
        x = self.lane.inner + self.lane.outward * (0.3 + 0.35 * u) * self.lane.width
        front = self.back * (0.55 - 0.4 * min(1.0, u / ub))
        return x, height, front

    def lip(self, u: float, xc: float, top: float, level: float) -> np.ndarray | None:
        """The lip thrown forward from the crest after it breaks: a tapering tongue falling in an arc."""
        k = (u - self.u_break) / 0.3
        if not 0.0 <= k < 1.0:
            return None
        H, out = self.geom.height, self.lane.outward
        reach = (0.12 + 0.28 * k) * self.lane.width
        drop = (0.15 + 0.85 * k) * (level - top)
        s = np.linspace(0.0, 1.0, 16)
        x = xc + out * reach * s
        y = top - 0.06 * H * (1.0 - k) * np.sin(np.pi * s) + drop * s**2
        thick = 0.07 * H * (1.0 - 0.5 * k) * (1.0 - 0.75 * s) + 1.0
        upper = np.column_stack([x, y - 0.5 * thick])
        lower = np.column_stack([x, y + 0.5 * thick])[::-1]
        return np.vstack([upper, lower])

    def render(self, canvas, t):
        H = self.geom.height
        u = self._phase(float(t))
        level = self.water_level(float(t))
        xc, height, front = self.crest(u)
        xs, ys = self.geom.xs, self.geom.ys
        s = (xs - xc) * self.lane.outward
        profile = np.where(s < 0, np.exp(-((s / self.back) ** 2)), np.exp(-((s / max(front, 1.0)) ** 2)))
        chop = 0.008 * H * np.sin(2 * np.pi * xs / (0.1 * self.geom.width) + 0.6 * t + self.chop_phase)
        surface = level - height * profile + chop
        water = np.clip(ys - surface + 0.5, 0, 1)
        polygon = self.lip(u, xc, level - height, level)
        lip = np.zeros(water.shape, np.float32)
        if polygon is not None:
            layer = np.zeros(water.shape, np.uint8)
            cv2.fillPoly(layer, np.round(polygon * 8).astype(np.int32)[None], 255, cv2.LINE_AA, shift=3)
            lip = layer.astype(np.float32) / 255.0
        water = (np.maximum(water, lip) * self.lane.weights).astype(np.float32)
        depth = np.clip((ys - surface) / (0.35 * H), 0, 1)
        shade = (1.2 - 0.55 * depth) * (0.82 + 0.3 * self.texture)
        colour = self.colour[None, None, :] * shade[..., None]
        # Light shines through the thin water near the crest.
        colour = colour + (0.3 * np.exp(-depth * 5.0) * profile)[..., None] * np.array([0.35, 0.6, 0.5], np.float32)
        after = u - self.u_break
        if after >= 0:
            grow = float(np.clip(after / 0.12, 0, 1))
            face = np.exp(-np.maximum(ys - surface, 0) / (0.05 * H)) * np.clip(1.3 * profile, 0, 1)
            foam = np.clip(face * grow * 1.6 * (self.foam_noise - 0.25), 0, 1)
            foam = np.maximum(foam, lip * np.clip(1.5 * self.foam_noise, 0.4, 1))
            colour = colour + (np.array([0.95, 0.97, 0.97], np.float32) - colour) * foam[..., None]
        over(canvas, water, np.clip(colour, 0, 1))
        presence = water
        soft = None
        if after > 0:
            spray = self._spray(t, xc, level - height)
            if spray is not None:
                spray = spray * self.lane.weights
                over(canvas, np.clip(spray, 0, 0.85).astype(np.float32), np.array([0.96, 0.97, 0.98], np.float32))
                soft = (spray > 0.05) & (water < 0.5)
                mist = np.clip(0.38 * spray, 0, 0.38)
                presence = np.maximum(presence, np.where(soft, mist, 0.0)).astype(np.float32)
        return presence, soft

    def _spray(self, t, xc, top):
        age = (t - (self.start + self.u_break * self.duration)) / self.geom.time_scale - self.spray_delay
        alive = (age > 0) & (age < self.SPRAY_LIFE)
        if not alive.any():
            return None
        a = age[alive]
        x = xc + self.lane.outward * self.spray_along[alive] * 0.15 * self.lane.width + self.spray_vel[alive, 0] * a
        y = top + self.spray_vel[alive, 1] * a + 0.5 * 8.0 * self.geom.height * a * a
        weight = 1.4 * (1.0 - a / self.SPRAY_LIFE)
        radius = self.spray_r[alive] * (1.0 + 1.5 * a / self.SPRAY_LIFE)
        coarse = self.field.coarse(
            x.astype(np.float32), y.astype(np.float32), radius.astype(np.float32), weight.astype(np.float32)
        )
        return self.field.upsample(coarse)


PROCESSES: dict[str, type[Process]] = {cls.kind: cls for cls in (Smoke, Ripples, Melting, Shatter, Light, Wave, Fire)}


def build_process(spec: ProcessSpec, geom: CanvasGeometry) -> Process:
    """The renderer of ``spec.kind`` with its parameters sampled from ``spec.seed``."""
    return PROCESSES[spec.kind](spec, geom)
