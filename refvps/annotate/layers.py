"""The two editable layers of a frame (target and Ignore) and the pixel operations on them.

A frame's working annotation is one uint8 *code* image: bit 0 is the target, bit 1 is Ignore. Keeping
both bits lets Ignore be painted over the target without losing the target underneath (erasing the
Ignore brings it back); only saving collapses them into a label map (Ignore wins, as 255).

Codes are held compressed (PNG bytes, which is also the session file format), so a 17-second
1080p clip costs a few megabytes of RAM, not gigabytes.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import cv2
import numpy as np

from refvps.dataset.palette import IGNORE_INDEX

TARGET_BIT = 1
IGNORE_BIT = 2
LAYERS = ("target", "ignore")
_LAYER_BITS = {"target": TARGET_BIT, "ignore": IGNORE_BIT}

# Fast lossless PNG for masks: long runs of equal values, so PNG's per-row filters only cost time
# (5x slower to encode a 1080p layer, for no smaller file). OpenCV before 4.10 lacks the flag.
_PNG_FAST = [cv2.IMWRITE_PNG_COMPRESSION, 1] + (
    [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE] if hasattr(cv2, "IMWRITE_PNG_FILTER_NONE") else []
)

# Overlay colours (paper figure B: target red, Ignore grey); alpha is applied by the page.
TARGET_RGBA = (235, 35, 35, 255)
IGNORE_RGBA = (170, 170, 170, 255)
# Outline and hatch styles draw Ignore in black and white, readable on light and dark frames alike.
IGNORE_DARK_RGBA = (20, 20, 20, 255)
IGNORE_LIGHT_RGBA = (250, 250, 250, 255)
OVERLAY_STYLES = ("fill", "outline", "hatch")


def layer_bit(layer: str) -> int:
    try:
        return _LAYER_BITS[layer]
    except KeyError:
        raise ValueError(f"unknown layer {layer!r}; use one of {', '.join(LAYERS)}") from None


def make_code(target: np.ndarray, ignore: np.ndarray | None = None) -> np.ndarray:
    code = np.asarray(target, dtype=bool).astype(np.uint8) * TARGET_BIT
    if ignore is not None:
        code |= np.asarray(ignore, dtype=bool).astype(np.uint8) * IGNORE_BIT
    return code


def target_of(code: np.ndarray) -> np.ndarray:
    return (code & TARGET_BIT).astype(bool)


def ignore_of(code: np.ndarray) -> np.ndarray:
    return (code & IGNORE_BIT).astype(bool)


def with_target(code: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``code`` with its target bit replaced by ``target`` (the Ignore bit kept)."""
    return (code & ~np.uint8(TARGET_BIT)) | np.asarray(target, dtype=bool).astype(np.uint8) * TARGET_BIT


def with_layer(code: np.ndarray, layer: str, mask: np.ndarray) -> np.ndarray:
    bit = np.uint8(layer_bit(layer))
    return (code & ~bit) | np.asarray(mask, dtype=bool).astype(np.uint8) * bit


def code_to_label(code: np.ndarray, obj_id: int = 1) -> np.ndarray:
    """The dataset label map: 0 background, ``obj_id`` target, 255 Ignore (Ignore wins where both)."""
    label = np.where(code & TARGET_BIT, np.uint8(obj_id), np.uint8(0)).astype(np.uint8)
    label[(code & IGNORE_BIT).astype(bool)] = IGNORE_INDEX
    return label


def label_to_code(label: np.ndarray, obj_id: int = 1) -> np.ndarray:
    label = np.asarray(label)
    return make_code(label == obj_id, label == IGNORE_INDEX)


def encode_code(code: np.ndarray) -> bytes:
    """Compress a code image (lossless PNG, fast setting)."""
    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(code, dtype=np.uint8), _PNG_FAST)
    if not ok:  # pragma: no cover - OpenCV cannot encode a uint8 image only when out of memory
        raise RuntimeError("could not encode a layer image")
    return buffer.tobytes()


def decode_code(blob: bytes, shape: tuple[int, int] | None = None) -> np.ndarray:
    array = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None or array.ndim != 2:
        raise ValueError("not a layer image")
    if shape is not None and array.shape != tuple(shape):
        raise ValueError(f"layer image is {array.shape[1]}x{array.shape[0]}, expected {shape[1]}x{shape[0]}")
    return array.astype(np.uint8, copy=False)


def mask_signature(mask: np.ndarray) -> str:
    """A short digest of a boolean mask (to tell whether a segmenter already holds it)."""
    mask = np.asarray(mask, dtype=bool)
    digest = hashlib.blake2b(np.packbits(mask).tobytes(), digest_size=12)
    digest.update(str(mask.shape).encode())
    return digest.hexdigest()


def overlay_rgba(code: np.ndarray, style: str = "fill") -> np.ndarray:
    """(H, W, 4) RGBA overlay of both layers, background transparent, Ignore drawn on top.

    ``fill``: target red, Ignore grey. ``outline``: each layer's outline only (Ignore's in black and
    white dashes), so the frame stays visible inside. ``hatch``: outlines plus diagonal stripes inside
    (Ignore's the other way, black and white).
    """
    if style not in OVERLAY_STYLES:
        raise ValueError(f"unknown overlay style {style!r}; use one of {', '.join(OVERLAY_STYLES)}")
    h, w = code.shape
    rgba = np.zeros((h, w, 4), np.uint8)
    target, ignore = target_of(code), ignore_of(code)
    if style == "fill":
        rgba[target] = TARGET_RGBA
        rgba[ignore] = IGNORE_RGBA
        return rgba
    width = max(2, round(min(h, w) / 300))  # about 2 px at 720p, thicker on larger frames
    yy, xx = np.indices((h, w))
    dashes = ((xx + yy) // (3 * width)) % 2 == 0
    if style == "hatch":
        period = 4 * width
        rgba[target & (((xx + yy) % period) < width)] = TARGET_RGBA
        stripes = ignore & (((xx - yy) % period) < width)
        rgba[stripes & dashes] = IGNORE_DARK_RGBA
        rgba[stripes & ~dashes] = IGNORE_LIGHT_RGBA
    rgba[outline(target, width)] = TARGET_RGBA
    edge = outline(ignore, width)
    rgba[edge & dashes] = IGNORE_DARK_RGBA
    rgba[edge & ~dashes] = IGNORE_LIGHT_RGBA
    return rgba


def outline(mask: np.ndarray, width: int) -> np.ndarray:
    """The pixels of ``mask`` within ``width`` pixels of its edge (the image border is no edge)."""
    if not mask.any():
        return np.zeros(mask.shape, bool)
    padded = np.pad(mask.astype(np.uint8), width, mode="edge")
    inner = cv2.erode(padded, np.ones((2 * width + 1, 2 * width + 1), np.uint8))[width:-width, width:-width]
    return mask & ~inner.astype(bool)


def encode_overlay_png(code: np.ndarray, style: str = "fill") -> bytes:
    rgba = overlay_rgba(code, style)
    bgra = rgba[..., [2, 1, 0, 3]]
    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(bgra), _PNG_FAST)
    if not ok:  # pragma: no cover
        raise RuntimeError("could not encode an overlay image")
    return buffer.tobytes()


def stroke_mask(shape: tuple[int, int], points: Sequence[Sequence[float]], radius: float) -> np.ndarray:
    """Pixels within ``radius`` of the polyline through ``points`` (a round brush dragged along it).

    Coordinates are pixel coordinates (x to the right, y down) and may be fractional; the brush is
    drawn with 4 bits of sub-pixel precision so short strokes land where they were painted.
    """
    h, w = shape
    mask = np.zeros((h, w), np.uint8)
    if len(points) == 0:
        return mask.astype(bool)
    shift = 4
    scale = 1 << shift
    pts = np.round(np.asarray(points, dtype=np.float64) * scale).astype(np.int64)
    r = max(0.5, float(radius))
    thickness = max(1, int(round(2 * r)))
    radius_fixed = int(round(r * scale))
    for x, y in pts:
        cv2.circle(mask, (int(x), int(y)), radius_fixed, 1, thickness=-1, lineType=cv2.LINE_8, shift=shift)
    if len(pts) > 1:
        cv2.polylines(
            mask,
            [pts.reshape(-1, 1, 2).astype(np.int32)],
            False,
            1,
            thickness=thickness,
            lineType=cv2.LINE_8,
            shift=shift,
        )
    return mask.astype(bool)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """The mask with every enclosed background region filled (holes do not touch the image border).

    Background reachable from outside the image (4-connected, as scipy's ``binary_fill_holes``)
    stays background; everything else becomes mask.
    """
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    padded = np.zeros((h + 2, w + 2), np.uint8)
    padded[1:-1, 1:-1] = mask
    flood = np.zeros((h + 4, w + 4), np.uint8)
    cv2.floodFill(padded, flood, (0, 0), 2, flags=4)
    return padded[1:-1, 1:-1] != 2
