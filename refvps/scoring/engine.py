"""The streaming per-clip scorer: per-frame IoU and boundary F of every expression of one clip.

One clip is scored in chunks of frames, so memory stays bounded for clips of any length:

* each ground-truth label map is decoded once and serves all the clip's expressions (Ref-VPS has
  four per clip); its target and Ignore masks are computed for a whole chunk of frames at once
  (one table lookup each), and a target's boundary and the dilation of that boundary once per
  frame, not once per expression;
* each predicted PNG is decoded once; the pixels it shares with the target and with Ignore are
  counted as nonzero bytes of one bitwise AND, with no conversion of the decoded array;
* the boundary measure is computed inside the bounding box of the two boundaries
  (:mod:`refvps.scoring.metrics`), which gives DAVIS's numbers at a fraction of the cost;
* COCO-RLE predictions are scored on their runs (pycocotools ``merge``/``area``) against the ground
  truth encoded once per frame, without decoding the predictions (unless F is asked for).

:func:`score_clip` is what a worker process runs; it takes a picklable :class:`ClipTask`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from refvps.dataset.palette import IGNORE_INDEX
from refvps.errors import DatasetError, RefvpsError
from refvps.scoring.metrics import (
    BOUND_TH,
    BoundaryCrop,
    bound_pixels,
    boundary_map,
    dilate_boundary,
    f_from_boundaries,
    iou_from_counts,
)
from refvps.scoring.readers import FORMAT_RLE, ClipPredictions, decode_rle

DEFAULT_CHUNK = 32
"""Frames decoded at a time: 32 frames of 1024x576 with four expressions hold about 100 MB."""

_ZIP_CACHE: dict = {}  # zip handles, one per file and process
_BUFFERS: dict = {}  # chunk-sized work arrays, reused across chunks and clips (no page faults)


def release_buffers() -> None:
    """Free the work arrays and zip handles (after an in-process evaluation)."""
    _BUFFERS.clear()
    for archive in _ZIP_CACHE.values():
        archive.close()
    _ZIP_CACHE.clear()


def _buffer(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A reusable uninitialised array of ``shape``, one per ``name`` and process."""
    size = int(np.prod(shape))
    buffer = _BUFFERS.get((name, np.dtype(dtype)))
    if buffer is None or buffer.size < size:
        buffer = _BUFFERS[(name, np.dtype(dtype))] = np.empty(size, dtype)
    return buffer[:size].reshape(shape)


@dataclass
class ClipTask:
    """What a worker needs to score one clip."""

    clip_id: str
    masks_dir: str
    frames: list[str]
    expressions: list[tuple[str, int]]  # (exp_id, obj_id)
    predictions: ClipPredictions
    boundary: bool = True
    bound_th: float = BOUND_TH
    chunk: int = DEFAULT_CHUNK
    first_frame: str | None = None  # the clip's first JPEG, whose size every mask must have


@dataclass
class ExpressionFrames:
    """Per-frame scores of one expression (0-1 scale); ``f`` is None without the boundary measure."""

    exp_id: str
    iou: np.ndarray
    f: np.ndarray | None
    n_missing: int


@dataclass
class ClipOutcome:
    clip_id: str
    shape: tuple[int, int]
    expressions: list[ExpressionFrames] = field(default_factory=list)


@dataclass
class ErrorOutcome:
    """A :class:`RefvpsError` raised in a worker, carried back by value (its keyword fields do not pickle)."""

    clip_id: str
    type_name: str
    message: str
    hint: str | None
    path: str | None

    def to_exception(self) -> RefvpsError:
        import refvps.errors as errors

        cls = getattr(errors, self.type_name, RefvpsError)
        if not (isinstance(cls, type) and issubclass(cls, RefvpsError)) or cls is errors.DatasetInvalidError:
            cls = RefvpsError
        try:
            return cls(self.message, hint=self.hint, path=self.path)
        except TypeError:
            return RefvpsError(self.message, hint=self.hint, path=self.path)


def score_clip_safe(task: ClipTask) -> ClipOutcome | ErrorOutcome:
    """:func:`score_clip`, with library errors returned as values (what worker processes run)."""
    try:
        return score_clip(task)
    except RefvpsError as exc:
        return ErrorOutcome(task.clip_id, type(exc).__name__, exc.message, exc.hint, str(exc.path) if exc.path else None)


def read_label(path: str) -> np.ndarray:
    """A ground-truth label map as uint8 indices, read with PIL (palette indices, not colours)."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode not in ("P", "L"):
                raise DatasetError(
                    f"ground-truth mask is a {image.mode} image, not an 8-bit palette PNG: {path}",
                    hint="save label maps as 8-bit palette PNGs (refvps.dataset.write_label_png)",
                    path=path,
                )
            return np.asarray(image)
    except FileNotFoundError:
        raise DatasetError(
            f"ground-truth mask not found: {path}",
            hint="every frame listed in meta_expressions.json needs a mask; run: refvps validate ROOT",
            path=path,
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(
            f"ground-truth mask cannot be decoded (corrupt or truncated PNG?): {path}: {exc}",
            hint="re-export the mask; run: refvps validate ROOT",
            path=path,
        ) from None


def _frame_shape(task: ClipTask) -> tuple[int, int] | None:
    """(H, W) of the clip's first frame, from its header (None when the frame is not there)."""
    if not task.first_frame or not os.path.exists(task.first_frame):
        return None
    try:
        with Image.open(task.first_frame) as image:
            return image.size[1], image.size[0]
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(
            f"frame cannot be decoded (corrupt or truncated image?): {task.first_frame}: {exc}",
            hint="re-export the clip's frames; run: refvps validate ROOT",
            path=task.first_frame,
        ) from None


def _read_labels(task: ClipTask, names: list[str], shape: tuple[int, int] | None) -> np.ndarray:
    """Decode the label maps of ``names`` into one (T, H, W) array; each must have ``shape``."""
    stack: np.ndarray | None = None
    for row, name in enumerate(names):
        path = os.path.join(task.masks_dir, f"{name}.png")
        label = read_label(path)
        if shape is None:
            shape = label.shape
        if label.shape != shape:
            raise DatasetError(
                f"ground-truth mask is {label.shape[1]}x{label.shape[0]}, but the clip's frames are "
                f"{shape[1]}x{shape[0]}: {path}",
                hint="a mask has the exact size of its frame; re-export it (run: refvps validate ROOT)",
                path=path,
            )
        if stack is None:
            stack = _buffer("labels", (len(names), *shape), np.uint8)
        stack[row] = label
    return stack


def _count_per_frame(stack: np.ndarray) -> np.ndarray:
    # count_nonzero on each contiguous frame is ~10x faster than count_nonzero(axis=...).
    return np.fromiter((np.count_nonzero(frame) for frame in stack), dtype=np.int64, count=len(stack))


class _TargetFrames:
    """Per-chunk ground truth of one target: masks, pixel counts, boundaries, dilations (lazily).

    ``masks`` is (T, H, W), bool or 0/255 bytes (nonzero = target); it may be a transposed view of
    Fortran-ordered data (RLE path).
    """

    def __init__(self, masks: np.ndarray, counts: np.ndarray, boundary: bool, radius: float):
        self.masks = masks
        self.counts = counts
        self.radius = radius
        self.shape = masks.shape[1:]
        self.boundaries = [boundary_map(m) for m in masks] if boundary else None
        self._dilated: dict[int, BoundaryCrop | None] = {}

    def dilated(self, index: int) -> BoundaryCrop | None:
        if index not in self._dilated:  # once per frame, shared by every expression of the target
            self._dilated[index] = dilate_boundary(self.boundaries[index], self.radius, self.shape)
        return self._dilated[index]

    def f_of(self, index: int, pred: np.ndarray | None) -> float:
        """Boundary F of frame ``index`` for a predicted mask (already without Ignore; None = empty)."""
        fg = boundary_map(pred) if pred is not None else None
        gt = self.boundaries[index]
        if fg is None or gt is None:  # DAVIS's conventions for empty boundaries; nothing to dilate
            return f_from_boundaries(fg, None, gt, None)
        return f_from_boundaries(fg, dilate_boundary(fg, self.radius, self.shape), gt, self.dilated(index))


def score_clip(task: ClipTask) -> ClipOutcome:
    """Per-frame IoU (and F) of every expression of one clip; missing predictions are empty masks."""
    n_frames = len(task.frames)
    is_rle = task.predictions.kind == FORMAT_RLE
    ious = {exp_id: np.empty(n_frames) for exp_id, _ in task.expressions}
    fs = {exp_id: np.empty(n_frames) for exp_id, _ in task.expressions} if task.boundary else None
    missing = {exp_id: 0 for exp_id, _ in task.expressions}
    shape: tuple[int, int] | None = _frame_shape(task)
    for start in range(0, n_frames, task.chunk):
        names = task.frames[start : start + task.chunk]
        labels = _read_labels(task, names, shape)
        shape = labels.shape[1:]
        rows = slice(start, start + len(names))
        scorer = _score_chunk_rle if is_rle else _score_chunk_masks
        scorer(task, names, labels, ious, fs, missing, rows)
    outcome = ClipOutcome(task.clip_id, tuple(shape) if shape else (0, 0))
    for exp_id, _ in task.expressions:
        outcome.expressions.append(ExpressionFrames(exp_id, ious[exp_id], fs[exp_id] if fs else None, missing[exp_id]))
    return outcome


def _score_chunk_masks(task, names, labels, ious, fs, missing, rows) -> None:
    """PNG predictions: the ground truth of the chunk is prepared once, as (T, H, W) stacks, for
    every expression; each predicted frame is decoded once and only its nonzero bytes are counted."""
    shape = labels.shape[1:]
    radius = bound_pixels(shape, task.bound_th)
    # Masks as 0/255 bytes: "prediction AND target" is then one bitwise AND that keeps any nonzero
    # prediction value, and counting nonzero bytes needs no conversion of the decoded PNG.
    void_bytes = _equal_bytes(labels, IGNORE_INDEX, "void")
    has_void = _count_per_frame(void_bytes) > 0
    targets, target_bytes = {}, {}
    for obj_id in sorted({obj for _, obj in task.expressions}):
        target_bytes[obj_id] = _equal_bytes(labels, obj_id, f"target{obj_id}")
        counts = _count_per_frame(target_bytes[obj_id])
        targets[obj_id] = _TargetFrames(target_bytes[obj_id], counts, task.boundary, radius)
    scratch = _buffer("scratch", shape, np.uint8)
    keep_bytes = None
    if fs is not None:  # 255 outside Ignore
        keep_bytes = np.bitwise_not(void_bytes, out=_buffer("keep", labels.shape, np.uint8))
    predictions = task.predictions
    for exp_id, obj_id in task.expressions:
        target = targets[obj_id]
        inter = np.zeros(len(names), np.int64)
        pred_area = np.zeros(len(names), np.int64)
        for i, frame in enumerate(names):
            if not predictions.has(exp_id, frame):
                missing[exp_id] += 1
                if fs is not None:
                    fs[exp_id][rows.start + i] = target.f_of(i, None)
                continue
            raw = predictions.read_raw(exp_id, frame, shape, _ZIP_CACHE)
            if raw.dtype == bool:
                raw = raw.view(np.uint8)
            area = np.count_nonzero(raw)
            if area:
                # |p & g| needs no Ignore test (the target never overlaps Ignore); |p| does.
                inter[i] = np.count_nonzero(np.bitwise_and(raw, target_bytes[obj_id][i], out=scratch))
                if has_void[i]:
                    area -= np.count_nonzero(np.bitwise_and(raw, void_bytes[i], out=scratch))
            pred_area[i] = area
            if fs is not None:
                # DAVIS removes void pixels before taking boundaries; nonzero bytes are the mask.
                pred = np.bitwise_and(raw, keep_bytes[i], out=scratch) if has_void[i] else raw
                fs[exp_id][rows.start + i] = target.f_of(i, pred)
        union = target.counts + pred_area - inter
        ious[exp_id][rows] = iou_from_counts(inter, union)


def _equal_bytes(labels: np.ndarray, value: int, name: str, true: int = 255) -> np.ndarray:
    """(labels == value) as 0/``true`` uint8, in a reused buffer."""
    out = _buffer(name, labels.shape, np.uint8)
    np.equal(labels, value, out=out.view(bool))
    if true == 255:
        np.negative(out, out=out)  # 1 -> 255 (uint8 wraps)
    return out


def _score_chunk_rle(task, names, labels, ious, fs, missing, rows) -> None:
    """RLE predictions: intersections on runs against the ground truth encoded once per frame."""
    from pycocotools import mask as mask_utils

    shape = labels.shape[1:]
    radius = bound_pixels(shape, task.bound_th)
    # pycocotools runs go down columns: lay the labels out as (T, W, H) with cv2's fast transpose;
    # its (H, W, T) transpose is then the Fortran-ordered array that pycocotools encodes.
    transposed = _buffer("transposed", (len(names), shape[1], shape[0]), np.uint8)
    for row, label in enumerate(labels):
        cv2.transpose(label, dst=transposed[row])
    void_t = _equal_bytes(transposed, IGNORE_INDEX, "void", true=1)  # (T, W, H), 0/1
    has_void = _count_per_frame(void_t) > 0
    void_rles = mask_utils.encode(void_t.transpose(2, 1, 0)) if has_void.any() else None
    targets, target_rles = {}, {}
    for obj_id in sorted({obj for _, obj in task.expressions}):
        masks_t = _equal_bytes(transposed, obj_id, f"target{obj_id}", true=1)
        target_rles[obj_id] = mask_utils.encode(masks_t.transpose(2, 1, 0))
        counts = mask_utils.area(target_rles[obj_id]).astype(np.int64)
        targets[obj_id] = _TargetFrames(masks_t.transpose(0, 2, 1), counts, task.boundary, radius)
    void_f = void_t.transpose(2, 1, 0)
    predictions = task.predictions
    for exp_id, obj_id in task.expressions:
        target = targets[obj_id]
        inter = np.zeros(len(names), np.int64)
        pred_area = np.zeros(len(names), np.int64)
        for i, frame in enumerate(names):
            if not predictions.has(exp_id, frame):
                missing[exp_id] += 1
                if fs is not None:
                    fs[exp_id][rows.start + i] = target.f_of(i, None)
                continue
            rle = predictions.rle(exp_id, frame, shape)
            area = int(mask_utils.area(rle))
            if area:
                inter[i] = mask_utils.area(mask_utils.merge([rle, target_rles[obj_id][i]], intersect=True))
                if has_void[i]:
                    area -= int(mask_utils.area(mask_utils.merge([rle, void_rles[i]], intersect=True)))
            pred_area[i] = area
            if fs is not None:
                pred = decode_rle(rle)
                if has_void[i]:
                    pred[void_f[:, :, i] != 0] = 0
                fs[exp_id][rows.start + i] = target.f_of(i, pred)
        union = target.counts + pred_area - inter
        ious[exp_id][rows] = iou_from_counts(inter, union)
