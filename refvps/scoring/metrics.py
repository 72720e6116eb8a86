"""The Ref-VPS metrics: region similarity J, boundary F, J-recall and temporal consistency (``docs/METRICS.md``).

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

The boundary measure gives the same counts, hence the same floats, as DAVIS's full-image
computation at a fraction of the cost: boundary maps are taken on the masks' bounding boxes with
two 2x2 morphology passes (:func:`boundary_map`), the disk dilation is composed of short row and
column passes (:func:`dilate_disk`), and the matching is computed only near the true boundary,
whose map and dilation serve every prediction of the frame (:class:`TargetBoundary`).
``tests/scoring`` checks this against a naive transcription, a brute-force distance definition and
values produced by the DAVIS evaluator itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

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


def iou_from_counts(inter: npt.ArrayLike, union: npt.ArrayLike) -> np.ndarray | float:
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

    ``bmap`` is uint8, nonzero on boundary pixels; ``count`` is their number (-1 when not counted).
    """

    y0: int
    x0: int
    bmap: np.ndarray
    count: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(top, left, bottom, right), bottom and right exclusive."""
        return self.y0, self.x0, self.y0 + self.bmap.shape[0], self.x0 + self.bmap.shape[1]


def _as_bytes(mask: np.ndarray) -> np.ndarray:
    """A 2-D mask as uint8 without copying where possible (nonzero = inside)."""
    mask = np.asarray(mask)
    if mask.dtype == np.uint8:
        return mask
    if mask.dtype == np.bool_:
        return mask.view(np.uint8)
    return mask.astype(np.bool_).view(np.uint8)


def nonzero_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, left, bottom, right) of a 2-D uint8 mask's nonzero pixels, exclusive ends; None if empty.

    Rows whose bytes fill whole 64-bit words are scanned eight bytes at a time (~1.5x faster than
    ``cv2.boundingRect`` on a full frame); other arrays go to ``cv2.boundingRect``.
    """
    if mask.flags.c_contiguous and mask.ndim == 2 and mask.shape[1] % 8 == 0 and mask.size:
        words = mask.view(np.uint64)
        rows = np.flatnonzero(np.bitwise_or.reduce(words, axis=1))
        if rows.size == 0:
            return None
        top, bottom = int(rows[0]), int(rows[-1]) + 1
        columns = np.flatnonzero(np.bitwise_or.reduce(words[top:bottom], axis=0).view(np.uint8))
        return top, int(columns[0]), bottom, int(columns[-1]) + 1
    x, y, w, h = cv2.boundingRect(mask)
    return None if w == 0 else (y, x, y + h, x + w)


_CV2_SCALARS: Any = cv2  # OpenCV's stubs (some versions) reject a scalar operand, which OpenCV accepts


def _compare_zero(mask: np.ndarray, operation: int) -> np.ndarray:
    """``cv2.compare(mask, 0, operation)``: 255 where the comparison with 0 holds, else 0."""
    result: np.ndarray = _CV2_SCALARS.compare(mask, 0, operation)
    return result


_SQUARE2 = np.ones((2, 2), np.uint8)
_REPLICATE = cv2.BORDER_REPLICATE | cv2.BORDER_ISOLATED


def boundary_map(mask: np.ndarray, *, binary: bool = False, keep: np.ndarray | None = None) -> BoundaryCrop | None:
    """DAVIS ``_seg2bmap`` of a 2-D mask (nonzero = inside), computed only where it can be nonzero.

    ``_seg2bmap`` marks pixel (y, x) when the mask differs between (y, x) and any of its right,
    lower and lower-right neighbours; in the last row only the right neighbour counts, in the last
    column only the lower one, and the bottom-right pixel never. That is: the 2x2 block whose
    top-left corner is (y, x) is not constant, on the mask padded by repeating its last row and
    column. So the map is ``max - min`` over 2x2 blocks (``cv2.dilate``/``cv2.erode`` with a 2x2
    square anchored at its top-left corner, ``BORDER_REPLICATE``), evaluated on the bounding box
    of the mask grown by one pixel up and left (no boundary pixel lies outside it).

    ``binary`` promises that the mask holds one nonzero value only (skips a normalisation);
    ``keep`` (uint8, nonzero = keep, same shape) is applied first: the map of ``mask & keep``
    (DAVIS removes void pixels before taking boundaries). Returns ``None`` when there is no
    boundary (an empty mask).
    """
    binary = binary or np.asarray(mask).dtype == np.bool_
    mask = _as_bytes(mask)
    box = nonzero_box(mask)
    if box is None:
        return None
    return region_boundary(mask, box, binary=binary, keep=keep)[0]


def region_boundary(
    mask: np.ndarray, box: tuple[int, int, int, int], *, binary: bool = False, keep: np.ndarray | None = None
) -> tuple[BoundaryCrop | None, np.ndarray, tuple[int, int]]:
    """The boundary map of ``mask`` (& ``keep``) whose nonzero pixels all lie in ``box``.

    ``box`` is (top, left, bottom, right), exclusive ends. Also returns the 0/nonzero binary mask
    the map was taken from, over ``box`` grown by one pixel on every side (clipped to the frame),
    and that region's top-left corner: the scorer counts the prediction's pixels in it.
    """
    height, width = mask.shape
    top, left, bottom, right = box
    y0, x0 = max(top - 1, 0), max(left - 1, 0)
    y1, x1 = min(bottom + 1, height), min(right + 1, width)
    seg = mask[y0:y1, x0:x1]
    if not binary:
        seg = _compare_zero(seg, cv2.CMP_NE)  # 0/255
    if keep is not None:
        seg = cv2.bitwise_and(seg, keep[y0:y1, x0:x1])
    grown = cv2.dilate(seg, _SQUARE2, anchor=(0, 0), borderType=_REPLICATE)
    shrunk = cv2.erode(seg, _SQUARE2, anchor=(0, 0), borderType=_REPLICATE)
    bmap = cv2.bitwise_xor(grown, shrunk)[: bottom - y0, : right - x0]  # rows/columns that can be boundary
    count = cv2.countNonZero(bmap)
    return (BoundaryCrop(y0, x0, bmap, count) if count else None), seg, (y0, x0)


@dataclass(frozen=True)
class DiskPasses:
    """``disk(radius)`` as 1-D dilations (:func:`disk_passes`): ``rows[k]`` takes ``H_k`` to ``H_{k+1}``,
    ``columns[k]`` is applied to ``Z_{k+1}`` before ``H_{k+2}`` joins it, ``last`` ends the dilation."""

    rows: tuple[np.ndarray, ...]
    columns: tuple[np.ndarray, ...]  # one fewer than rows
    last: np.ndarray


@lru_cache(maxsize=32)
def disk_passes(radius: int) -> DiskPasses:
    """The disk of integer ``radius`` as a short sequence of 1-D dilations (see :func:`dilate_disk`).

    Row ``dy`` of the disk spans ``|dx| <= w(dy)``. For the distinct half-widths
    ``w_1 < ... < w_K`` let ``h_k`` be the last row that is still ``w_k`` wide (``h`` decreases).
    The disk is the union of the rectangles ``|dx| <= w_k, |dy| <= h_k``; dilating by a union is
    the maximum of the dilations, a rectangle dilates as a row pass then a column pass, and passes
    compose (``H_a . H_b = H_{a+b}``). So with ``H_k`` the row dilation by half-width ``w_k``,
    built from ``H_{k-1}``, and ``Z_k = max(H_k, V_{h_{k-1} - h_k}(Z_{k-1}))``, the disk dilation
    is ``V_{h_K}(Z_K)``: 2K short passes instead of one pass per kernel pixel.

    Returns the K row kernels (``H_{k-1}`` to ``H_k``), the K - 1 column kernels
    ``V_{h_{k-1} - h_k}`` for k = 2..K, and the final column kernel ``V_{h_K}``.
    """
    kernel = disk(float(radius))
    centre = kernel.shape[0] // 2
    half_widths = [int(np.flatnonzero(row).max()) - centre for row in kernel[centre:]]  # dy = 0, 1, ...
    widths = sorted(set(half_widths))
    heights = [max(dy for dy, w in enumerate(half_widths) if w >= width) for width in widths]
    rows = [np.ones((1, 2 * (width - before) + 1), np.uint8) for before, width in zip([0, *widths], widths)]
    columns = [np.ones((2 * (before - height) + 1, 1), np.uint8) for before, height in zip(heights, heights[1:])]
    return DiskPasses(tuple(rows), tuple(columns), np.ones((2 * heights[-1] + 1, 1), np.uint8))


def dilate_disk(canvas: np.ndarray, radius: float) -> np.ndarray:
    """``cv2.dilate(canvas, disk(radius))`` (uint8; outside the canvas counts as empty).

    For an integer radius, composed of 1-D passes (:func:`disk_passes`), about 2x faster than
    OpenCV's dilation by the disk itself; the same pixels (``tests/scoring`` checks it).
    """
    if radius != int(radius):
        return cv2.dilate(canvas, disk(radius))
    passes = disk_passes(int(radius))
    first = passes.rows[0]
    rows = cv2.dilate(canvas, first) if first.shape[1] > 1 else canvas
    union = rows.copy() if rows is canvas else rows
    for row, column in zip(passes.rows[1:], passes.columns):
        rows = cv2.dilate(rows, row)  # every row kernel after the first is at least 3 wide
        if column.shape[0] > 1:
            union = cv2.dilate(union, column)
        cv2.max(union, rows, dst=union)
    if passes.last.shape[0] > 1:
        union = cv2.dilate(union, passes.last)
    return union


def dilate_boundary(
    crop: BoundaryCrop | None,
    radius: float,
    shape: tuple[int, int],
    within: tuple[int, int, int, int] | None = None,
) -> BoundaryCrop | None:
    """Dilate a boundary map by ``disk(radius)`` (as ``cv2.dilate`` does), on its box grown by the radius.

    Outside the image nothing is dilated from (cv2's default constant border for dilation), and
    the grown box is clipped to the image, so the values equal a full-frame ``cv2.dilate``. With
    ``within`` (top, left, bottom, right; exclusive ends) only that part of the result is computed
    and returned; ``None`` when it is empty.
    """
    if crop is None:
        return None
    r = int(np.ceil(radius))
    height, width = shape
    top, left, bottom, right = crop.box
    out = [max(top - r, 0), max(left - r, 0), min(bottom + r, height), min(right + r, width)]
    if within is not None:
        out = [max(out[0], within[0]), max(out[1], within[1]), min(out[2], within[2]), min(out[3], within[3])]
        if out[0] >= out[2] or out[1] >= out[3]:
            return None
    # The canvas: the output box, and the boundary pixels within the radius of it (nothing else can
    # reach it; outside the canvas counts as empty), clipped to the image.
    c_top, c_left = max(out[0] - r, 0, min(out[0], top)), max(out[1] - r, 0, min(out[1], left))
    c_bottom = min(out[2] + r, height, max(out[2], bottom))
    c_right = min(out[3] + r, width, max(out[3], right))
    # The part of the boundary map inside the canvas, padded with zeros to fill it.
    s_top, s_left = max(top, c_top), max(left, c_left)
    s_bottom, s_right = min(bottom, c_bottom), min(right, c_right)
    if s_top >= s_bottom or s_left >= s_right:
        return None
    source = crop.bmap[s_top - top : s_bottom - top, s_left - left : s_right - left]
    canvas = cv2.copyMakeBorder(
        source, s_top - c_top, c_bottom - s_bottom, s_left - c_left, c_right - s_right, cv2.BORDER_CONSTANT, value=0
    )
    dilated = dilate_disk(canvas, radius)
    dilated = dilated[out[0] - c_top : out[2] - c_top, out[1] - c_left : out[3] - c_left]
    return BoundaryCrop(out[0], out[1], dilated, -1)


def restrict(crop: BoundaryCrop, box: tuple[int, int, int, int]) -> BoundaryCrop | None:
    """The part of a boundary map inside ``box`` (exclusive ends), cut to its nonzero pixels; None if none."""
    top, left, bottom, right = crop.box
    y0, x0 = max(top, box[0]), max(left, box[1])
    y1, x1 = min(bottom, box[2]), min(right, box[3])
    if y0 >= y1 or x0 >= x1:
        return None
    part = crop.bmap[y0 - top : y1 - top, x0 - left : x1 - left]
    x, y, w, h = cv2.boundingRect(part)
    if w == 0:
        return None
    return BoundaryCrop(y0 + y, x0 + x, part[y : y + h, x : x + w], -1)


def overlap_count(a: BoundaryCrop | None, b: BoundaryCrop | None) -> int:
    """Number of pixels set in both cropped maps (in image coordinates)."""
    if a is None or b is None:
        return 0
    ah, aw = a.bmap.shape
    bh, bw = b.bmap.shape
    y0, x0 = max(a.y0, b.y0), max(a.x0, b.x0)
    y1, x1 = min(a.y0 + ah, b.y0 + bh), min(a.x0 + aw, b.x0 + bw)
    if y0 >= y1 or x0 >= x1:
        return 0
    sub_a = a.bmap[y0 - a.y0 : y1 - a.y0, x0 - a.x0 : x1 - a.x0]
    sub_b = b.bmap[y0 - b.y0 : y1 - b.y0, x0 - b.x0 : x1 - b.x0]
    return cv2.countNonZero(cv2.bitwise_and(sub_a, sub_b))


def f_from_counts(n_fg: int, n_gt: int, fg_match: int, gt_match: int) -> float:
    """DAVIS's boundary F from the boundary pixel counts and the matched counts (its formula order).

    ``fg_match``: predicted boundary pixels within the radius of the true boundary;
    ``gt_match``: true boundary pixels within the radius of the predicted boundary.
    """
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1, 0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0, 1
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1, 1
    else:
        precision = np.float64(fg_match) / float(n_fg)
        recall = np.float64(gt_match) / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


class TargetBoundary:
    """The ground-truth side of the boundary measure for one frame, shared by every prediction.

    Holds the true boundary map and, computed on first need, its dilation. :meth:`f` then needs,
    per prediction, only the predicted boundary near the true one:

    * precision counts predicted boundary pixels inside the true boundary's dilation, which lies
      in the true boundary's box grown by the radius; predicted pixels outside it match nothing;
    * recall counts true boundary pixels within the radius of a predicted one: only predicted
      pixels inside that same grown box can reach one, so only they are dilated, and the dilation
      is computed only inside the true boundary's box.

    Both counts equal DAVIS's full-frame ones; the work scales with the target, not the frame or
    the prediction (a prediction with specks all over the frame costs no more than a tight one).
    """

    def __init__(
        self,
        mask: np.ndarray,
        radius: float,
        *,
        binary: bool = False,
        box: tuple[int, int, int, int] | None | Literal["unknown"] = "unknown",
    ):
        """``box``: the mask's :func:`nonzero_box` (None: empty), when the caller knows it already."""
        self.shape: tuple[int, int] = (mask.shape[0], mask.shape[1])
        self.radius = radius
        self.boundary: BoundaryCrop | None
        if box == "unknown":
            self.boundary = boundary_map(mask, binary=binary)
        elif box is None:
            self.boundary = None
        else:
            self.boundary = region_boundary(_as_bytes(mask), box, binary=binary)[0]
        self.count = self.boundary.count if self.boundary is not None else 0
        self._dilated: BoundaryCrop | None = None

    @property
    def dilated(self) -> BoundaryCrop | None:
        if self._dilated is None and self.boundary is not None:
            self._dilated = dilate_boundary(self.boundary, self.radius, self.shape)
        return self._dilated

    def f(self, predicted: BoundaryCrop | None) -> float:
        """DAVIS's F for a predicted boundary map (:func:`boundary_map` of the prediction without void)."""
        n_fg = predicted.count if predicted is not None else 0
        if predicted is None or n_fg == 0 or self.boundary is None:
            return f_from_counts(n_fg, self.count, 0, 0)  # DAVIS's conventions for empty boundaries
        reach = self.dilated
        near = restrict(predicted, reach.box) if reach is not None else None  # what can match anything
        if near is None:
            return f_from_counts(n_fg, self.count, 0, 0)
        fg_match = overlap_count(near, reach)
        near_dilated = dilate_boundary(near, self.radius, self.shape, within=self.boundary.box)
        gt_match = overlap_count(self.boundary, near_dilated)
        return f_from_counts(n_fg, self.count, fg_match, gt_match)


def boundary_f_frame(
    gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None, bound_th: float = BOUND_TH
) -> float:
    """Boundary F-measure of one frame (2-D masks), DAVIS's ``f_measure(pred, gt, void, bound_th)``."""
    gt = _as_bytes(gt)
    pred = _as_bytes(pred)
    keep = None
    if void is not None:
        keep = _compare_zero(_as_bytes(void), cv2.CMP_EQ)  # 255 outside void
    radius = bound_pixels(gt.shape, bound_th)
    target = TargetBoundary(
        gt if keep is None else cv2.bitwise_and(_compare_zero(gt, cv2.CMP_NE), keep), radius, binary=keep is not None
    )
    return target.f(boundary_map(pred, keep=keep))


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
