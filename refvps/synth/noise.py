"""Small numeric helpers of the renderer: seeded random streams, value noise, smooth steps.

Everything random in the synthetic benchmark comes from :func:`stream`, a NumPy generator seeded by a
tuple of integers (seed, clip index, role), so one clip's pixels never depend on how many clips are
made or in which order, and the same seed gives the same bytes.
"""

from __future__ import annotations

import cv2
import numpy as np

# Role codes: each independent part of a clip draws from its own stream.
ROLE_PLAN = 1
ROLE_BACKGROUND = 2
ROLE_CAMERA = 3
ROLE_TARGET = 4
ROLE_DISTRACTOR = 5
ROLE_SENSOR = 6
ROLE_KIND_ORDER = 7
ROLE_TEXT = 8


def stream(*key: int) -> np.random.Generator:
    """A generator seeded by a tuple of non-negative integers (SeedSequence mixes them)."""
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    """0 below ``edge0``, 1 above ``edge1``, a cubic Hermite ramp between (as in GLSL)."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def value_noise(
    rng: np.random.Generator,
    shape: tuple[int, int],
    *,
    cells: float = 4.0,
    octaves: int = 4,
    persistence: float = 0.5,
    stretch: tuple[float, float] = (1.0, 1.0),
) -> np.ndarray:
    """Fractal value noise in [0, 1], float32, of ``shape`` (H, W).

    ``cells`` is the number of random cells across the longer side at the coarsest octave;
    ``stretch`` = (sy, sx) makes cells longer along an axis (sy > 1: vertical streaks).
    Each octave is a random grid upsampled with bicubic interpolation.
    """
    height, width = shape
    longer = max(height, width)
    out = np.zeros((height, width), np.float32)
    total = 0.0
    amplitude = 1.0
    for octave in range(octaves):
        density = cells * (2**octave)
        grid_h = max(2, int(round(density * height / longer / stretch[0]))) + 2
        grid_w = max(2, int(round(density * width / longer / stretch[1]))) + 2
        grid = rng.random((grid_h, grid_w), dtype=np.float32)
        # Upsample a grid one cell larger than needed and crop, so cell borders do not align with the image edge.
        big = cv2.resize(
            grid, (width + width // (grid_w - 1), height + height // (grid_h - 1)), interpolation=cv2.INTER_CUBIC
        )
        oy = int(rng.integers(0, max(1, big.shape[0] - height + 1)))
        ox = int(rng.integers(0, max(1, big.shape[1] - width + 1)))
        out += amplitude * big[oy : oy + height, ox : ox + width]
        total += amplitude
        amplitude *= persistence
    out /= total
    low, high = float(out.min()), float(out.max())
    return ((out - low) / max(high - low, 1e-6)).astype(np.float32)


def noise_1d(rng: np.random.Generator, length: int, *, cells: int = 6) -> np.ndarray:
    """Smooth 1-D noise in [-1, 1] of ``length`` samples."""
    knots = rng.uniform(-1.0, 1.0, size=cells + 3)
    xs = np.linspace(1.0, cells + 1.0, length)
    return np.interp(xs, np.arange(cells + 3), knots).astype(np.float32)


def over(canvas: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> None:
    """Alpha-composite ``colour`` (RGB triple or (H, W, 3) array) over ``canvas`` in place."""
    a = alpha[..., None]
    canvas *= 1.0 - a
    canvas += a * colour


def luminance(rgb) -> float:
    """Relative luminance (Rec. 709 weights) of an RGB triple in 0..255, in [0, 1]."""
    r, g, b = (float(c) / 255.0 for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b
