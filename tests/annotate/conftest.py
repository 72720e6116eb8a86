"""Small hand-built clips for the annotation tool's tests (the synthetic benchmark is used where noted)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from refvps.annotate.segmenters.base import Segmenter, SegmenterInfo, SegmenterSession
from refvps.dataset import ClipMeta, DatasetWriter, Expression

H, W, T = 72, 128, 10
CONCEPT, CATEGORY = "ice_cream_melting", "temporal_object_changes"


def blob_clip(frames: int = T, height: int = H, width: int = W, seed: int = 0):
    """Frames of an orange ellipse sliding right over a blurred noise background, and its labels."""
    rng = np.random.default_rng(seed)
    background = cv2.GaussianBlur(rng.integers(40, 140, (height, width, 3)).astype(np.uint8), (0, 0), 3)
    yy, xx = np.mgrid[0:height, 0:width]
    rgb, labels = [], []
    for t in range(frames):
        cx, cy = 35 + 4 * t, height / 2
        inside = ((xx - cx) / 18.0) ** 2 + ((yy - cy) / 12.0) ** 2 <= 1
        frame = background.copy()
        frame[inside] = (210, 100, 40)
        rgb.append(frame)
        labels.append(inside.astype(np.uint8))
    return rgb, labels


GT_LABELS = blob_clip()[1]  # the clip's ground-truth label maps (what OracleSegmenter is given)


def blob_center(t: int) -> tuple[float, float]:
    return 35.0 + 4 * t, H / 2


EXPRESSIONS = [
    Expression("0", "the orange blob", 1, "ann1"),
    Expression("1", "orange ellipse sliding right", 1, "ann1"),
    Expression("2", "the moving orange shape", 1, "ann2"),
    Expression("3", "blob gliding to the right", 1, "ann2"),
]


def meta(clip_id: str) -> ClipMeta:
    return ClipMeta(clip_id, concept=CONCEPT, category=CATEGORY, fps=24, width=W, height=H)


@pytest.fixture
def dataset(tmp_path) -> Path:
    """Two clips: ``clip_a`` frames only (to be labelled), ``clip_b`` fully labelled and valid."""
    root = tmp_path / "ds"
    writer = DatasetWriter(root)
    rgb, labels = blob_clip()
    writer.write_clip("clip_a", rgb, None, [], meta("clip_a"))
    writer.write_clip("clip_b", rgb, labels, EXPRESSIONS, meta("clip_b"))
    return root


def distance_inside(mask) -> np.ndarray:
    """Euclidean distance of each pixel of ``mask`` to the nearest pixel outside it (0 outside)."""
    padded = np.pad(np.asarray(mask, np.uint8), 1)
    return cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]


def distance_to_polyline(shape, points):
    """Naive reference: distance of every pixel centre to the polyline (segment by segment)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    best = np.full(shape, np.inf)
    pts = np.asarray(points, np.float64)
    if len(pts) == 1:
        pts = np.vstack([pts, pts])
    for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:]):
        dx, dy = x1 - x0, y1 - y0
        length2 = dx * dx + dy * dy
        t = np.zeros(shape) if length2 == 0 else np.clip(((xx - x0) * dx + (yy - y0) * dy) / length2, 0, 1)
        best = np.minimum(best, np.hypot(xx - (x0 + t * dx), yy - (y0 + t * dy)))
    return best


def overlay_layers(png: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(target, ignore) read back from an overlay PNG by colour: opaque red-ish and opaque grey pixels."""
    bgra = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED).astype(int)
    b, g, r, a = bgra[..., 0], bgra[..., 1], bgra[..., 2], bgra[..., 3]
    red = (a > 0) & (r > 200) & (g < 80) & (b < 80)
    grey = (a > 0) & (r == g) & (g == b) & (r > 100)
    return red, grey


def files_snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Bytes and modification times of every file below ``folder``."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


class OracleSegmenter(Segmenter):
    """A stand-in model: clicks select the ground-truth blob; propagation returns it, optionally slowly."""

    name = "oracle"

    def __init__(self, labels, delay: float = 0.0):
        self.labels = [np.asarray(label) == 1 for label in labels]
        self.delay = delay
        self.started = threading.Event()

    def info(self) -> SegmenterInfo:
        return SegmenterInfo("oracle", "test oracle")

    def open(self, frames) -> "OracleSession":
        return OracleSession(frames, self)


class OracleSession(SegmenterSession):
    def __init__(self, frames, seg: OracleSegmenter):
        super().__init__(frames)
        self.seg = seg
        self.prompts: dict[int, np.ndarray] = {}
        self.calls: list[tuple] = []

    def add_points(self, frame, points, labels):
        self.calls.append(("points", frame, len(points)))
        mask = self.seg.labels[frame].copy() if any(v == 1 for v in labels) else np.zeros_like(self.seg.labels[frame])
        self.prompts[frame] = mask
        return mask

    def add_mask(self, frame, mask):
        self.calls.append(("mask", frame))
        self.prompts[frame] = np.asarray(mask, bool)

    def clear_prompts(self, frame):
        self.calls.append(("clear", frame))
        self.prompts.pop(frame, None)

    def propagate(self, start, reverse, start_mask=None):
        step = -1 if reverse else 1
        end = -1 if reverse else len(self.seg.labels)
        for index in range(start, end, step):
            self.seg.started.set()
            if self.seg.delay:
                time.sleep(self.seg.delay)
            yield index, self.prompts.get(index, self.seg.labels[index])


class CarrySegmenter(Segmenter):
    """A stand-in model without eyes: clicks select the ground-truth blob, and propagation carries the
    last prompted mask unchanged from frame to frame (restarting at every prompted frame)."""

    name = "carry"

    def info(self) -> SegmenterInfo:
        return SegmenterInfo("carry", "test: carries masks unchanged")

    def open(self, frames) -> "CarrySession":
        return CarrySession(frames)


class CarrySession(SegmenterSession):
    def __init__(self, frames):
        super().__init__(frames)
        self.prompts: dict[int, np.ndarray] = {}

    def add_points(self, frame, points, labels):
        mask = (GT_LABELS[frame] == 1) if any(v == 1 for v in labels) else np.zeros((H, W), bool)
        self.prompts[frame] = mask
        return mask

    def add_mask(self, frame, mask):
        self.prompts[frame] = np.asarray(mask, bool)

    def clear_prompts(self, frame):
        self.prompts.pop(frame, None)

    def propagate(self, start, reverse, start_mask=None):
        step = -1 if reverse else 1
        current = self.prompts.get(start, start_mask)
        for index in range(start, -1 if reverse else self.num_frames, step):
            current = self.prompts.get(index, current)
            yield index, current.copy()
