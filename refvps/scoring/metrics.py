"""The Ref-VPS metrics: region similarity J, boundary F, J-recall and temporal consistency.

Every function is a small pure numpy function that reduces over the **last two axes** (a frame is
``(H, W)``; a stack of frames ``(..., H, W)``), in the style of the DAVIS 2017 toolkit's
``db_eval_iou``. Inputs are boolean-like masks; ``void`` marks the pixels to leave out (Ref-VPS
Ignore, label 255; DAVIS "void").

J and F reproduce the official DAVIS 2017 evaluator (davisvideochallenge/davis2017-evaluation,
``davis2017/metrics.py``: ``db_eval_iou``, ``f_measure``, ``_seg2bmap``) exactly, including:

* void pixels are removed from both masks before anything is counted, so a disagreement that lies
  only inside void/Ignore changes nothing;
* ``IoU = 1`` when the union (outside void) is empty;
* the boundary of a mask is ``_seg2bmap``'s one-pixel map, offset half a pixel towards the origin;
  the prediction's boundary is taken *after* void pixels are removed from it (so the edge of an
  Ignore region inside a predicted blob is a predicted boundary, as in DAVIS);
* boundaries match by dilation with a disk of radius ``ceil(bound_th * ||(H, W)||)`` pixels
  (``cv2.dilate`` with ``skimage.morphology.disk``), not by bipartite matching; precision and
  recall are the shares of boundary pixels that lie within the other boundary's dilation, with
  DAVIS's conventions for empty boundaries (both empty: F = 1; one empty: F = 0).

The boundary measure is computed only inside the bounding box of the two boundaries, which gives
the same numbers as DAVIS's full-image computation (see :func:`boundary_map`) at a fraction of the
cost; ``tests/scoring`` checks both against a naive transcription and against values produced by
the DAVIS evaluator itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

BOUND_TH = 0.008
"""DAVIS's boundary tolerance: a fraction of the image diagonal (or pixels, when >= 1)."""

RECALL_THRESHOLD = 0.5
"""J-recall counts the frames whose IoU is above this (DAVIS's ``db_statistics``)."""


# --------------------------------------------------------------------------------------------
# Region similarity J
# --------------------------------------------------------------------------------------------


def jaccard(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None) -> np.ndarray | float:
    """Region similarity (IoU) over the last two axes, with void pixels left out.

    ``IoU = |p & g| / |p | g|`` where ``p = pred & ~void`` and ``g = gt & ~void``; ``1.0`` when the
    union is empty (both masks empty outside void: the DAVIS convention). Returns a float for one
    frame and an array of shape ``gt.shape[:-2]`` for a stack.
    """
    gt = np.asarray(gt).astype(bool, copy=False)
    pred = np.asarray(pred).astype(bool, copy=False)
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} differ in shape")
    if void is not None:
        void = np.asarray(void).astype(bool, copy=False)
        if void.shape != gt.shape:
            raise ValueError(f"void {void.shape} and ground truth {gt.shape} differ in shape")
        valid = ~void
        gt = gt & valid
        pred = pred & valid
    inter = np.count_nonzero(gt & pred, axis=(-2, -1))
    union = np.count_nonzero(gt | pred, axis=(-2, -1))
    return iou_from_counts(inter, union)


def iou_from_counts(inter, union) -> np.ndarray | float:
    """``inter / union`` with ``1.0`` where the union is empty (DAVIS's convention)."""
    inter = np.asarray(inter)
    union = np.asarray(union)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    iou = np.where(union == 0, 1.0, iou)
    return float(iou) if iou.ndim == 0 else iou


def j_recall(ious: np.ndarray, threshold: float = RECALL_THRESHOLD) -> np.ndarray | float:
    """Share of frames whose IoU exceeds ``threshold``, over the last axis (DAVIS's J-recall)."""
    ious = np.asarray(ious, dtype=np.float64)
    recall = np.mean(ious > threshold, axis=-1)
    return float(recall) if np.ndim(recall) == 0 else recall


# --------------------------------------------------------------------------------------------
# Temporal consistency
# --------------------------------------------------------------------------------------------


def temporal_consistency(ious: np.ndarray) -> np.ndarray | float:
    """TempCon of one (clip, expression): ``100 * mean_t |IoU_{t+1} - IoU_t|`` over the last axis.

    ``ious`` holds the per-frame IoU of every annotated frame, in frame order (0-1 scale). Lower is
    better; 0 means the per-frame accuracy never changes. An all-empty prediction scores a perfect 0
    on a clip whose target is visible in every frame (IoU 0 throughout; frames where the target is
    absent score IoU 1 and break that), so always read TempCon next to J.

    Reading of the paper's Eq. 5 (ReferEverything, appendix B.4): it prints
    ``1/N sum_n [1/T_n sum_{t=1}^{T_n} (IoU_{t+1} - IoU_t)]``, a *signed* difference. A signed sum
    telescopes to ``(IoU_{T+1} - IoU_1) / T``, which measures nothing about consistency and would
    reward a method that gets worse over the clip; the text says it is "the average difference of IoU
    ... in consecutive frames" and that empty masks score a perfect 0, both of which hold for the
    absolute difference. So refvps takes the absolute value, averages over the ``T - 1`` pairs of
    consecutive frames that exist (Eq. 5's ``t = 1..T_n`` would reach a frame ``T_n + 1`` that does
    not exist), and reports it on the 0-100 scale like J (the paper's Table B values, 2.8-5.2, are
    on that scale). A clip of a single frame has no consecutive pair and scores 0.
    """
    ious = np.asarray(ious, dtype=np.float64)
    if ious.shape[-1] < 2:
        result = np.zeros(ious.shape[:-1])
    else:
        result = 100.0 * np.mean(np.abs(np.diff(ious, axis=-1)), axis=-1)
    return float(result) if np.ndim(result) == 0 else result


# --------------------------------------------------------------------------------------------
# Boundary F
# --------------------------------------------------------------------------------------------


def bound_pixels(shape: tuple[int, ...], bound_th: float = BOUND_TH) -> float:
    """The matching radius in pixels for a frame of ``shape`` (H, W), as DAVIS computes it."""
    if bound_th >= 1:
        return bound_th
    return float(np.ceil(bound_th * np.linalg.norm(shape[-2:])))


@lru_cache(maxsize=32)
def disk(radius: float) -> np.ndarray:
    """``skimage.morphology.disk(radius)`` as uint8: the pixels with ``x^2 + y^2 <= radius^2``."""
    steps = np.arange(-radius, radius + 1)
    x, y = np.meshgrid(steps, steps)
    kernel = np.array((x**2 + y**2) <= radius**2, dtype=np.uint8)
    kernel.setflags(write=False)
    return kernel


@dataclass(frozen=True)
class BoundaryCrop:
    """A boundary map cut to a rectangle: ``bmap`` covers rows ``y0:y0+h`` and columns ``x0:x0+w``.

    ``bmap`` is uint8 0/1 (what ``cv2.dilate`` takes); ``count`` is its number of boundary pixels.
    """

    y0: int
    x0: int
    bmap: np.ndarray
    count: int


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, left, bottom, right) of the nonzero pixels of a 2-D mask, inclusive; None when empty."""
    if mask.dtype in (np.uint8, np.bool_) and mask.flags.c_contiguous and mask.size:
        # OpenCV's bounding box of nonzero pixels: one vectorised pass.
        x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
        return None if w == 0 else (y, x, y + h - 1, x + w - 1)
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask[rows[0] : rows[-1] + 1].any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]), int(cols[-1])


def boundary_map(mask: np.ndarray) -> BoundaryCrop | None:
    """DAVIS ``_seg2bmap`` of a 2-D mask (nonzero = inside), computed only where it can be nonzero.

    ``_seg2bmap`` marks pixel (y, x) when the mask differs between (y, x) and any of its right,
    lower and lower-right neighbours; in the last row only the right neighbour counts, in the last
    column only the lower one, and the bottom-right pixel never. That equals the general rule on
    the mask padded by repeating its last row and column, which is what is done here, on the
    bounding box of the mask grown by one pixel up and left (no boundary pixel lies outside it).
    Returns ``None`` for an empty mask (no boundary).
    """
    box = mask_box(mask)
    if box is None:
        return None
    top, left, bottom, right = box
    height, width = mask.shape
    y0, y1 = max(top - 1, 0), bottom + 1  # boundary rows y0 .. y1-1
    x0, x1 = max(left - 1, 0), right + 1
    seg = mask[y0 : y1 + 1, x0 : x1 + 1]  # one more row/column for the neighbours
    if seg.dtype != bool:
        seg = seg != 0
    pad_bottom = (y1 + 1) - min(y1 + 1, height)
    pad_right = (x1 + 1) - min(x1 + 1, width)
    if pad_bottom or pad_right:
        seg = np.pad(seg, ((0, pad_bottom), (0, pad_right)), mode="edge")
    here = seg[:-1, :-1]
    bmap = (here ^ seg[:-1, 1:]) | (here ^ seg[1:, :-1]) | (here ^ seg[1:, 1:])
    bmap = bmap.view(np.uint8)
    return BoundaryCrop(y0, x0, bmap, int(np.count_nonzero(bmap)))


@lru_cache(maxsize=32)
def disk_rectangles(radius: float) -> tuple[np.ndarray, ...]:
    """The disk as a union of centred rectangles (structuring elements for ``cv2.dilate``).

    Row ``dy`` of the disk spans ``|dx| <= w(dy)``, and ``w`` shrinks as ``|dy|`` grows, so the disk is
    the union, over the distinct half-widths ``w``, of the rectangles ``|dx| <= w, |dy| <= h(w)``
    where ``h(w)`` is the last row that is still that wide. Dilation by a union is the maximum of the
    dilations, and OpenCV dilates by a rectangle separably, so this is about twice as fast as
    dilating by the disk itself and gives the same pixels.
    """
    kernel = disk(radius)
    centre = kernel.shape[0] // 2
    half_widths = [int(np.flatnonzero(row).max()) - centre for row in kernel[centre:]]  # dy = 0, 1, ...
    rectangles = []
    for width in sorted(set(half_widths), reverse=True):
        height = max(dy for dy, w in enumerate(half_widths) if w >= width)
        rectangles.append(np.ones((2 * height + 1, 2 * width + 1), np.uint8))
    return tuple(rectangles)


def dilate_boundary(crop: BoundaryCrop | None, radius: float, shape: tuple[int, int]) -> BoundaryCrop | None:
    """Dilate a boundary map by ``disk(radius)`` (as ``cv2.dilate`` does), on its box grown by the radius.

    Outside the image nothing is dilated from (cv2's default constant border for dilation), and
    the grown box is clipped to the image, so the values equal a full-frame ``cv2.dilate``.
    """
    if crop is None:
        return None
    r = int(np.ceil(radius))
    height, width = shape
    bh, bw = crop.bmap.shape
    y0, x0 = max(crop.y0 - r, 0), max(crop.x0 - r, 0)
    y1, x1 = min(crop.y0 + bh + r, height), min(crop.x0 + bw + r, width)
    canvas = cv2.copyMakeBorder(
        crop.bmap, crop.y0 - y0, y1 - crop.y0 - bh, crop.x0 - x0, x1 - crop.x0 - bw, cv2.BORDER_CONSTANT, value=0
    )
    rectangles = disk_rectangles(radius)
    dilated = cv2.dilate(canvas, rectangles[0])
    for rectangle in rectangles[1:]:
        np.maximum(dilated, cv2.dilate(canvas, rectangle), out=dilated)
    return BoundaryCrop(y0, x0, dilated, -1)


def overlap_count(a: BoundaryCrop, b: BoundaryCrop) -> int:
    """Number of pixels set in both cropped maps (in image coordinates)."""
    ah, aw = a.bmap.shape
    bh, bw = b.bmap.shape
    y0, x0 = max(a.y0, b.y0), max(a.x0, b.x0)
    y1, x1 = min(a.y0 + ah, b.y0 + bh), min(a.x0 + aw, b.x0 + bw)
    if y0 >= y1 or x0 >= x1:
        return 0
    sub_a = a.bmap[y0 - a.y0 : y1 - a.y0, x0 - a.x0 : x1 - a.x0]
    sub_b = b.bmap[y0 - b.y0 : y1 - b.y0, x0 - b.x0 : x1 - b.x0]
    return int(np.count_nonzero(sub_a & sub_b))


def f_from_boundaries(
    fg: BoundaryCrop | None,
    fg_dil: BoundaryCrop | None,
    gt: BoundaryCrop | None,
    gt_dil: BoundaryCrop | None,
) -> float:
    """DAVIS's boundary F from the two boundary maps and their dilations (same formula order)."""
    n_fg = fg.count if fg is not None else 0
    n_gt = gt.count if gt is not None else 0
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1, 0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0, 1
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1, 1
    else:
        fg_match = overlap_count(fg, gt_dil)  # predicted boundary pixels near the true boundary
        gt_match = overlap_count(gt, fg_dil)  # true boundary pixels near the predicted boundary
        precision = np.float64(fg_match) / float(n_fg)
        recall = np.float64(gt_match) / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def boundary_f_frame(
    gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None, bound_th: float = BOUND_TH
) -> float:
    """Boundary F-measure of one frame (2-D masks), DAVIS's ``f_measure(pred, gt, void, bound_th)``."""
    gt = np.asarray(gt).astype(bool, copy=False)
    pred = np.asarray(pred).astype(bool, copy=False)
    if void is not None:
        valid = ~np.asarray(void).astype(bool, copy=False)
        gt = gt & valid
        pred = pred & valid
    radius = bound_pixels(gt.shape, bound_th)
    fg = boundary_map(pred)
    gt_b = boundary_map(gt)
    if fg is None or gt_b is None:  # no matching needed: DAVIS's empty-boundary conventions
        return f_from_boundaries(fg, None, gt_b, None)
    return f_from_boundaries(fg, dilate_boundary(fg, radius, gt.shape), gt_b, dilate_boundary(gt_b, radius, gt.shape))


def boundary_f(
    gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None, bound_th: float = BOUND_TH
) -> np.ndarray | float:
    """Boundary F-measure over the last two axes (DAVIS ``db_eval_boundary``), void left out.

    Returns a float for one frame and an array of shape ``gt.shape[:-2]`` for a stack.
    """
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} differ in shape")
    if void is not None:
        void = np.asarray(void)
        if void.shape != gt.shape:
            raise ValueError(f"void {void.shape} and ground truth {gt.shape} differ in shape")
    if gt.ndim < 2:
        raise ValueError(f"masks have at least two axes (H, W), got shape {gt.shape}")
    if gt.ndim == 2:
        return boundary_f_frame(gt, pred, void, bound_th)
    lead = gt.shape[:-2]
    flat_gt = gt.reshape(-1, *gt.shape[-2:])
    flat_pred = pred.reshape(-1, *gt.shape[-2:])
    flat_void = None if void is None else void.reshape(-1, *gt.shape[-2:])
    scores = np.array(
        [
            boundary_f_frame(flat_gt[i], flat_pred[i], None if flat_void is None else flat_void[i], bound_th)
            for i in range(flat_gt.shape[0])
        ],
        dtype=np.float64,
    )
    return scores.reshape(lead)
