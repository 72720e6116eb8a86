"""The classical segmenter: no weights, so the tool works on a fresh machine.

* Clicks -> mask: GrabCut (Rother et al., 2004) seeded from the clicks. Discs around positive
  clicks are certain foreground, discs around negative clicks certain background, a window around
  the positive clicks is "probably foreground" and the rest "probably background". If the result
  fills its window, the window grows and GrabCut runs again. Only the connected parts that hold a
  positive click are kept.
* Propagation: the mask of the previous frame is carried to the next along dense optical flow
  (Farneback), then refined on the new frame by GrabCut seeded from the warped mask (its eroded
  core certain, a band around its border uncertain, the far outside certain background). When the
  refinement disagrees wildly with the flow (low contrast, GrabCut collapsing), the warped mask is
  kept. Frames with prompts (clicks or masks fixed by hand) restart the chain from their mask.

Everything runs on a copy of the frame scaled so its long side is at most ``work_size`` pixels;
masks come back at the frame's resolution.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import cv2
import numpy as np

from refvps.annotate.frames import FrameSource
from refvps.annotate.segmenters.base import Segmenter, SegmenterInfo, SegmenterSession, check_points


class ClassicSegmenter(Segmenter):
    """GrabCut from clicks, propagated with optical flow and refined per frame."""

    name = "classic"

    def __init__(self, *, work_size: int = 512, grabcut_iterations: int = 5, refine_iterations: int = 2):
        self.work_size = int(work_size)
        self.grabcut_iterations = int(grabcut_iterations)
        self.refine_iterations = int(refine_iterations)

    def open(self, frames: FrameSource) -> "ClassicSession":
        return ClassicSession(frames, self)

    def info(self) -> SegmenterInfo:
        return SegmenterInfo(
            name=self.name,
            description="classical fallback: GrabCut from clicks, optical-flow propagation (no weights)",
            device="cpu",
        )


class ClassicSession(SegmenterSession):
    def __init__(self, frames: FrameSource, segmenter: ClassicSegmenter):
        super().__init__(frames)
        self.seg = segmenter
        h, w = frames.shape
        self.scale = min(1.0, segmenter.work_size / max(h, w))
        self.work_shape = (max(1, round(h * self.scale)), max(1, round(w * self.scale)))
        self.anchors: dict[int, np.ndarray] = {}

    # -- helpers at working resolution ---------------------------------------------------------

    def _work_rgb(self, index: int) -> np.ndarray:
        rgb = self.frames[index]
        if self.scale == 1.0:
            return rgb
        return cv2.resize(rgb, (self.work_shape[1], self.work_shape[0]), interpolation=cv2.INTER_AREA)

    def _to_work(self, mask: np.ndarray) -> np.ndarray:
        if self.scale == 1.0:
            return mask.astype(bool)
        small = cv2.resize(
            mask.astype(np.float32), (self.work_shape[1], self.work_shape[0]), interpolation=cv2.INTER_AREA
        )
        return small >= 0.5

    def _to_frame(self, mask: np.ndarray) -> np.ndarray:
        if self.scale == 1.0:
            return mask.astype(bool)
        h, w = self.frames.shape
        big = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        return big >= 0.5

    # -- clicks --------------------------------------------------------------------------------

    def add_points(self, frame: int, points: Sequence[Sequence[float]], labels: Sequence[int]) -> np.ndarray:
        check_points(points, labels, self.frames.shape)
        if not any(label == 1 for label in labels):
            mask = np.zeros(self.frames.shape, bool)  # only negative clicks: nothing is the target
        else:
            small = grabcut_from_clicks(
                self._work_rgb(frame),
                [(x * self.scale, y * self.scale) for x, y in points],
                list(labels),
                iterations=self.seg.grabcut_iterations,
            )
            mask = self._to_frame(small)
        self.anchors[frame] = mask
        return mask

    def add_mask(self, frame: int, mask: np.ndarray) -> None:
        self.anchors[frame] = np.asarray(mask, dtype=bool).copy()

    def clear_prompts(self, frame: int) -> None:
        self.anchors.pop(frame, None)

    # -- propagation ---------------------------------------------------------------------------

    def propagate(
        self, start: int, reverse: bool, start_mask: np.ndarray | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        step = -1 if reverse else 1
        if start in self.anchors:
            current = self.anchors[start]
        elif start_mask is not None:
            current = np.asarray(start_mask, dtype=bool)
        else:
            # An unlabelled start frame: carry the nearest keyframe behind it up to it first.
            behind = [a for a in self.anchors if (a < start if not reverse else a > start)]
            if not behind:
                raise ValueError(
                    f"no clicked or hand-fixed frame {'before' if not reverse else 'after'} frame "
                    f"{start} to propagate from; click on the target here, or propagate from a keyframe"
                )
            source = max(behind) if not reverse else min(behind)
            current = self.anchors[source]
            previous_rgb, previous_small = self._work_rgb(source), self._to_work(current)
            for index in range(source + step, start + step, step):
                rgb = self._work_rgb(index)
                if index in self.anchors:
                    previous_small = self._to_work(self.anchors[index])
                else:
                    previous_small = track_mask(
                        previous_rgb, rgb, previous_small, iterations=self.seg.refine_iterations
                    )
                previous_rgb = rgb
            current = self._to_frame(previous_small)
        yield start, current
        end = -1 if reverse else self.num_frames
        previous_rgb = self._work_rgb(start)
        previous_small = self._to_work(current)
        for index in range(start + step, end, step):
            rgb = self._work_rgb(index)
            if index in self.anchors:
                current = self.anchors[index]
                small = self._to_work(current)
            else:
                small = track_mask(previous_rgb, rgb, previous_small, iterations=self.seg.refine_iterations)
                current = self._to_frame(small)
            yield index, current
            previous_rgb, previous_small = rgb, small


# ----------------------------------------------------------------------------------------------
# The two image operations, as plain functions of arrays (tested on their own).


def _click_radius(shape: tuple[int, int]) -> int:
    return max(2, int(round(0.012 * float(np.hypot(*shape)))))


def grabcut_from_clicks(
    rgb: np.ndarray,
    points: Sequence[tuple[float, float]],
    labels: Sequence[int],
    *,
    iterations: int = 5,
    window_fractions: Sequence[float] = (0.12, 0.2, 0.32, 0.5),
) -> np.ndarray:
    """A mask of the region the clicks point at, by GrabCut seeded from them (see module doc).

    The extent of the target is unknown, so GrabCut runs with a few window sizes around the
    positive clicks and the result whose outline follows the image's edges best is kept (a window
    too small cuts the target along the window's border, where there is no edge; one too large
    lets the target leak into similar colours, usually across weak edges).
    """
    h, w = rgb.shape[:2]
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    radius = _click_radius((h, w))
    positives = [(x, y) for (x, y), label in zip(points, labels) if label == 1]
    negatives = [(x, y) for (x, y), label in zip(points, labels) if label == 0]
    if not positives:
        return np.zeros((h, w), bool)
    edges = _edge_strength(rgb)
    spread = max([np.hypot(ax - bx, ay - by) for ax, ay in positives for bx, by in positives] + [0.0])
    best, best_score = None, -np.inf
    for fraction in window_fractions:
        half = max(fraction * min(h, w), 0.6 * spread, 2 * radius)
        # Outside the window is certainly background: the window bounds how far the target may leak.
        window = _window(positives, (h, w), half)
        seeds = np.full((h, w), cv2.GC_BGD, np.uint8)
        seeds[window] = cv2.GC_PR_FGD
        for x, y in positives:
            cv2.circle(seeds, (int(round(x)), int(round(y))), radius, cv2.GC_FGD, -1)
        for x, y in negatives:
            cv2.circle(seeds, (int(round(x)), int(round(y))), radius, cv2.GC_BGD, -1)
        mask = _components_holding(_run_grabcut(bgr, seeds, iterations), positives)
        score = _outline_score(mask, window, edges)
        if score > best_score:
            best, best_score = mask, score
        if window.all():
            break
    return best


def _edge_strength(rgb: np.ndarray) -> np.ndarray:
    lab = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2LAB).astype(np.float32)
    lab = cv2.GaussianBlur(lab, (0, 0), 1.0)
    gx = cv2.Sobel(lab, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(lab, cv2.CV_32F, 0, 1, ksize=3)
    magnitude = np.sqrt((gx**2 + gy**2).sum(axis=2))
    return magnitude / (float(np.percentile(magnitude, 90)) + 1e-6)


def _outline_score(mask: np.ndarray, window: np.ndarray, edges: np.ndarray) -> float:
    """How well a mask's outline follows image edges, minus the share of it lying on the window's border."""
    if not mask.any() or mask.mean() > 0.9:
        return -np.inf
    m = mask.astype(np.uint8)
    outline = (m - cv2.erode(m, np.ones((3, 3), np.uint8))).astype(bool)
    outline &= ~_image_border(mask.shape)
    if not outline.any():
        return -np.inf
    window_edge = window & ~cv2.erode(window.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    on_window = (outline & window_edge).sum() / outline.sum()
    return float(edges[outline].mean()) - 2.0 * float(on_window)


def _window(positives, shape, half: float) -> np.ndarray:
    h, w = shape
    xs = [x for x, _ in positives]
    ys = [y for _, y in positives]
    x0, x1 = max(0, int(min(xs) - half)), min(w, int(max(xs) + half) + 1)
    y0, y1 = max(0, int(min(ys) - half)), min(h, int(max(ys) + half) + 1)
    window = np.zeros((h, w), bool)
    window[y0:y1, x0:x1] = True
    return window


def _image_border(shape) -> np.ndarray:
    border = np.zeros(shape, bool)
    border[0, :] = border[-1, :] = border[:, 0] = border[:, -1] = True
    return border


def _run_grabcut(bgr: np.ndarray, seeds: np.ndarray, iterations: int) -> np.ndarray:
    fg = np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD))
    if fg.all() or not fg.any():
        return fg
    bgd_model = np.zeros((1, 65), np.float64)
    fgd_model = np.zeros((1, 65), np.float64)
    seeds = seeds.copy()
    try:
        cv2.grabCut(bgr, seeds, None, bgd_model, fgd_model, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return fg  # too few samples for a colour model: keep the seeds' guess
    return np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD))


def _components_holding(mask: np.ndarray, points) -> np.ndarray:
    if not mask.any():
        return mask
    count, components = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    keep = set()
    h, w = mask.shape
    for x, y in points:
        xi, yi = min(w - 1, max(0, int(round(x)))), min(h - 1, max(0, int(round(y))))
        if components[yi, xi] > 0:
            keep.add(int(components[yi, xi]))
    if not keep:
        return mask
    return np.isin(components, list(keep))


def _flow(previous_gray: np.ndarray, gray: np.ndarray) -> np.ndarray:
    # Flow from the new frame back to the previous one: for each new pixel, where it came from.
    return cv2.calcOpticalFlowFarneback(gray, previous_gray, None, 0.5, 4, 21, 3, 5, 1.1, 0)


def warp_mask(previous_mask: np.ndarray, previous_rgb: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """Carry ``previous_mask`` onto the next frame along optical flow (soft values in [0, 1])."""
    previous_gray = cv2.cvtColor(previous_rgb, cv2.COLOR_RGB2GRAY)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    flow = _flow(previous_gray, gray)
    h, w = gray.shape
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x = grid_x + flow[..., 0]
    map_y = grid_y + flow[..., 1]
    return cv2.remap(
        previous_mask.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )


def track_mask(
    previous_rgb: np.ndarray, rgb: np.ndarray, previous_mask: np.ndarray, *, iterations: int = 2
) -> np.ndarray:
    """The mask on the next frame: flow-warped previous mask, refined by GrabCut on the new frame."""
    warped = warp_mask(previous_mask, previous_rgb, rgb) >= 0.5
    area = int(warped.sum())
    if area < 16:
        return warped
    h, w = warped.shape
    size = max(2, int(round(0.02 * np.hypot(h, w))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * size + 1, 2 * size + 1))
    core = cv2.erode(warped.astype(np.uint8), kernel).astype(bool)
    reach = cv2.dilate(warped.astype(np.uint8), kernel).astype(bool)
    seeds = np.full((h, w), cv2.GC_BGD, np.uint8)
    seeds[reach] = cv2.GC_PR_BGD
    seeds[warped] = cv2.GC_PR_FGD
    seeds[core] = cv2.GC_FGD
    # GrabCut only inside the region that can change (plus a margin for the background model).
    ys, xs = np.nonzero(reach)
    margin = 3 * size
    y0, y1 = max(0, ys.min() - margin), min(h, ys.max() + margin + 1)
    x0, x1 = max(0, xs.min() - margin), min(w, xs.max() + margin + 1)
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2BGR)
    refined_crop = _run_grabcut(bgr, seeds[y0:y1, x0:x1], iterations)
    refined = np.zeros((h, w), bool)
    refined[y0:y1, x0:x1] = refined_crop
    refined = _keep_overlapping(refined, warped)
    inter = np.logical_and(refined, warped).sum()
    union = np.logical_or(refined, warped).sum()
    if union == 0 or inter / union < 0.5:
        return warped
    return refined


def _keep_overlapping(mask: np.ndarray, reference: np.ndarray) -> np.ndarray:
    if not mask.any():
        return mask
    count, components = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    hits = np.unique(components[reference & mask])
    hits = hits[hits > 0]
    return np.isin(components, hits)
