"""The streaming per-clip scorer: per-frame IoU and boundary F of every expression of one clip.

One clip is scored in chunks of frames, so memory stays bounded for clips of any length:

* each ground-truth label map is decoded once and serves all the clip's expressions (Ref-VPS has
  four per clip); its target and Ignore masks are computed for a whole chunk of frames at once
  (one table lookup each), with their bounding boxes and pixel counts, and the target's boundary
  and its dilation once per frame (:class:`~refvps.scoring.metrics.TargetBoundary`), not once per
  expression;
* PNGs are decoded by :mod:`refvps.dataset.pngfast` where it applies (exact; PIL otherwise);
* each predicted PNG is decoded once; the pixels it shares with the target and with Ignore are
  counted as nonzero bytes of one bitwise AND inside the target's (or Ignore's) bounding box, with
  no conversion of the decoded array; with F, the prediction without Ignore is built only over its
  own bounding box, and gives the boundary, the area and the intersection at once;
* COCO-RLE predictions are scored for J on their runs (pycocotools ``merge``/``area``) against the
  ground truth encoded as RLE once per frame, without decoding the predictions; the encoded ground
  truth can be kept between runs (:mod:`refvps.scoring.gtcache`). With F they are decoded.

:func:`score_clip` is what a worker process runs; it takes a picklable :class:`ClipTask`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterable

import cv2
import numpy as np
import numpy.typing as npt

from refvps.dataset.format import image_size
from refvps.dataset.images import LABEL_MAP, read_image_bytes
from refvps.dataset.palette import IGNORE_INDEX, decode_label_png
from refvps.errors import DatasetError, RefvpsError
from refvps.predictions.readers import ClipPredictions, RleClipPredictions, close_archives
from refvps.scoring.gtcache import LabelRunsCache, content_digest
from refvps.scoring.metrics import (
    BOUND_TH,
    TargetBoundary,
    bound_pixels,
    iou_from_counts,
    nonzero_box,
    region_boundary,
)

Box = tuple[int, int, int, int]
"""(top, left, bottom, right) of a region, exclusive ends (:func:`refvps.scoring.metrics.nonzero_box`)."""

DEFAULT_CHUNK = 32
"""Frames decoded at a time: 32 frames of 1024x576 with four expressions hold about 100 MB."""

_BUFFERS: dict[tuple[str, np.dtype[Any]], np.ndarray] = {}  # work arrays reused across chunks and clips


def release_buffers() -> None:
    """Free the work arrays and zip handles (after an in-process evaluation)."""
    _BUFFERS.clear()
    close_archives()


def _buffer(name: str, shape: tuple[int, ...], dtype: npt.DTypeLike) -> np.ndarray:
    """A reusable uninitialised array of ``shape``, one per ``name`` and process."""
    size = int(np.prod(shape))
    buffer = _BUFFERS.get((name, np.dtype(dtype)))
    if buffer is None or buffer.size < size:
        buffer = _BUFFERS[(name, np.dtype(dtype))] = np.empty(size, dtype)
    return buffer[:size].reshape(shape)


Target = tuple[int, ...]
"""The label indices whose union is an expression's target (one for Ref-VPS; docs/BENCHMARKS_SUITE.md)."""


@dataclass
class ClipTask:
    """What a worker needs to score one clip."""

    clip_id: str
    masks_dir: str
    frames: list[str]
    expressions: list[tuple[str, Target]]  # (exp_id, the labels whose union is its target)
    predictions: ClipPredictions
    boundary: bool = True
    bound_th: float = BOUND_TH
    chunk: int = DEFAULT_CHUNK
    first_frame: str | None = None  # the clip's first JPEG, whose size every mask must have
    gt_cache: str | None = None  # root of the ground-truth RLE cache (RLE predictions, J only); None = off


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
        return ErrorOutcome(
            task.clip_id, type(exc).__name__, exc.message, exc.hint, str(exc.path) if exc.path else None
        )


def _frame_shape(task: ClipTask) -> tuple[int, int] | None:
    """(H, W) of the clip's first frame, from its header (None when the frame is not there)."""
    if not task.first_frame or not os.path.exists(task.first_frame):
        return None
    width, height = image_size(task.first_frame)
    return height, width


def _decoded_label(path: str, data: bytes | None = None) -> tuple[str, np.ndarray]:
    """``(path, label map)``: the file's bytes (read now unless given) decoded as uint8 indices."""
    if data is None:
        data = read_image_bytes(path, LABEL_MAP)
    return path, decode_label_png(data, path)


def _read_labels(task: ClipTask, names: list[str], shape: tuple[int, int] | None) -> np.ndarray:
    """Decode the label maps of ``names`` into one (T, H, W) array; each must have ``shape``."""
    paths = [os.path.join(task.masks_dir, f"{name}.png") for name in names]
    return _stack_labels((_decoded_label(path) for path in paths), len(paths), shape)


def _stack_labels(labels: Iterable[tuple[str, np.ndarray]], count: int, shape: tuple[int, int] | None) -> np.ndarray:
    """``count`` decoded label maps, given as (path, array), in one reused (count, H, W) buffer.

    Each must have ``shape`` (None: the first one's); a map of another size is an error naming it.
    """
    stack: np.ndarray | None = None
    for row, (path, label) in enumerate(labels):
        if shape is None:
            shape = (label.shape[0], label.shape[1])
        _check_label_shape(label.shape, shape, path)
        if stack is None:
            stack = _buffer("labels", (count, *shape), np.uint8)
        stack[row] = label
    return stack if stack is not None else np.zeros((0, *(shape or (0, 0))), np.uint8)


def _check_label_shape(found: tuple[int, ...], shape: tuple[int, int], path: str) -> None:
    if tuple(found) != tuple(shape):
        raise DatasetError(
            f"ground-truth mask is {found[1]}x{found[0]}, but the clip's frames are {shape[1]}x{shape[0]}: {path}",
            hint="a mask has the exact size of its frame; re-export it (run: refvps validate ROOT)",
            path=path,
        )


def _overlap(a: np.ndarray, b: np.ndarray, box: Box | None, scratch: np.ndarray) -> int:
    """Pixels nonzero in both 2-D uint8 arrays, counted inside ``box``, outside which ``b`` is zero."""
    if box is None:
        return 0
    top, left, bottom, right = box
    both = cv2.bitwise_and(
        a[top:bottom, left:right], b[top:bottom, left:right], dst=scratch[: bottom - top, : right - left]
    )
    return cv2.countNonZero(both)


def _overlap_at(seg: np.ndarray, corner: tuple[int, int], b: np.ndarray, box: Box | None, scratch: np.ndarray) -> int:
    """Like :func:`_overlap` for ``seg`` covering a region of the frame whose top-left is ``corner``."""
    if box is None:
        return 0
    y0, x0 = corner
    top, left = max(box[0], y0), max(box[1], x0)
    bottom, right = min(box[2], y0 + seg.shape[0]), min(box[3], x0 + seg.shape[1])
    if top >= bottom or left >= right:
        return 0
    part = seg[top - y0 : bottom - y0, left - x0 : right - x0]
    both = cv2.bitwise_and(part, b[top:bottom, left:right], dst=scratch[: bottom - top, : right - left])
    return cv2.countNonZero(both)


class _GroundTruthChunk:
    """The ground truth of a chunk of frames, prepared once for all the clip's expressions.

    Masks are 0/255 bytes, (T, H, W) in reused buffers: "prediction AND target" is then one bitwise
    AND that keeps any nonzero predicted value, and nothing needs converting. Per frame and target:
    the pixel count, the bounding box (intersections are counted only inside it) and, when F is
    asked for, the :class:`TargetBoundary` (true boundary and its dilation, computed once).
    """

    def __init__(self, labels: np.ndarray, obj_ids: list[Target], radius: float, boundary: bool):
        self.radius = radius
        self.void = _equal_bytes(labels, IGNORE_INDEX, "void")
        self.void_boxes = [nonzero_box(frame) for frame in self.void]
        self.keep = np.bitwise_not(self.void, out=_buffer("keep", labels.shape, np.uint8)) if boundary else None
        self.targets: dict[Target, np.ndarray] = {}
        self.target_boxes: dict[Target, list[Box | None]] = {}
        self.target_counts: dict[Target, np.ndarray] = {}
        self._boundaries: dict[Target, list[TargetBoundary | None]] = {}
        for obj_id in obj_ids:
            masks = _target_bytes(labels, obj_id, f"target{obj_id}")
            self.targets[obj_id] = masks
            self.target_boxes[obj_id] = [nonzero_box(frame) for frame in masks]
            self.target_counts[obj_id] = np.array(
                [cv2.countNonZero(frame) if box else 0 for frame, box in zip(masks, self.target_boxes[obj_id])],
                np.int64,
            )
            self._boundaries[obj_id] = [None] * len(labels)

    def boundary(self, obj_id: Target, index: int) -> TargetBoundary:
        found = self._boundaries[obj_id][index]
        if found is None:  # once per frame and target, shared by its expressions
            # Target and Ignore are different labels, so the target needs no void removal.
            box = self.target_boxes[obj_id][index]
            found = TargetBoundary(self.targets[obj_id][index], self.radius, binary=True, box=box)
            self._boundaries[obj_id][index] = found
        return found


def _score_mask(
    gt: _GroundTruthChunk, obj_id: Target, index: int, raw: np.ndarray | None, boundary: bool, scratch: np.ndarray
) -> tuple[int, int, float | None]:
    """(|p & g|, |p|, F or None) of one predicted mask (uint8, nonzero = foreground; None = empty)."""
    if raw is None:
        return 0, 0, (gt.boundary(obj_id, index).f(None) if boundary else None)
    target = gt.targets[obj_id][index]
    target_box = gt.target_boxes[obj_id][index]
    void_box = gt.void_boxes[index]
    if not boundary:
        area = cv2.countNonZero(raw)
        if not area:
            return 0, 0, None
        # |p & g| needs no Ignore test (the target never overlaps Ignore); |p| does.
        inter = _overlap(raw, target, target_box, scratch)
        if void_box is not None:
            area -= _overlap(raw, gt.void[index], void_box, scratch)
        return inter, area, None
    box = nonzero_box(raw)
    if box is None:
        return 0, 0, gt.boundary(obj_id, index).f(None)
    # DAVIS removes void pixels before taking boundaries: the prediction without Ignore, over its
    # box grown by a pixel, gives the boundary, the predicted area and the intersection.
    keep = gt.keep[index] if void_box is not None and gt.keep is not None else None
    predicted, seg, corner = region_boundary(raw, box, keep=keep)
    area = cv2.countNonZero(seg)
    inter = _overlap_at(seg, corner, target, target_box, scratch) if area else 0
    return inter, area, gt.boundary(obj_id, index).f(predicted)


@dataclass
class _ClipScores:
    """Per-frame scores of a clip's expressions, filled in chunk by chunk (0-1 scale)."""

    iou: dict[str, np.ndarray]
    f: dict[str, np.ndarray] | None  # None without the boundary measure
    missing: dict[str, int]

    @classmethod
    def empty(cls, task: ClipTask, *, boundary: bool) -> _ClipScores:
        n_frames = len(task.frames)
        return cls(
            {exp_id: np.empty(n_frames) for exp_id, _ in task.expressions},
            {exp_id: np.empty(n_frames) for exp_id, _ in task.expressions} if boundary else None,
            {exp_id: 0 for exp_id, _ in task.expressions},
        )

    def outcome(self, task: ClipTask, shape: tuple[int, ...] | None) -> ClipOutcome:
        outcome = ClipOutcome(task.clip_id, (int(shape[0]), int(shape[1])) if shape else (0, 0))
        for exp_id, _ in task.expressions:
            f = self.f[exp_id] if self.f is not None else None
            outcome.expressions.append(ExpressionFrames(exp_id, self.iou[exp_id], f, self.missing[exp_id]))
        return outcome


def score_clip(task: ClipTask) -> ClipOutcome:
    """Per-frame IoU (and F) of every expression of one clip; missing predictions are empty masks."""
    if isinstance(task.predictions, RleClipPredictions) and not task.boundary:
        return _score_clip_runs(task, task.predictions)
    scores = _ClipScores.empty(task, boundary=task.boundary)
    shape: tuple[int, int] | None = _frame_shape(task)
    for start in range(0, len(task.frames), task.chunk):
        names = task.frames[start : start + task.chunk]
        labels = _read_labels(task, names, shape)
        shape = (labels.shape[1], labels.shape[2])
        _score_chunk_masks(task, names, labels, scores, start)
    return scores.outcome(task, shape)


def _score_chunk_masks(task: ClipTask, names: list[str], labels: np.ndarray, scores: _ClipScores, start: int) -> None:
    """Predicted masks (PNG, or decoded RLE when F is asked for) of the chunk of frames ``names``
    (from frame number ``start`` on): each is decoded once and scored against the ground truth of
    the chunk, prepared once for all expressions."""
    shape = (labels.shape[1], labels.shape[2])
    boundary = scores.f is not None
    gt = _GroundTruthChunk(
        labels, sorted({obj for _, obj in task.expressions}), bound_pixels(shape, task.bound_th), boundary
    )
    scratch = _buffer("scratch", shape, np.uint8)
    predictions = task.predictions
    for exp_id, obj_id in task.expressions:
        inter = np.zeros(len(names), np.int64)
        pred_area = np.zeros(len(names), np.int64)
        for i, frame in enumerate(names):
            raw = None
            if predictions.has(exp_id, frame):
                raw = predictions.read_raw(exp_id, frame, shape)
                if raw.dtype == bool:
                    raw = raw.view(np.uint8)
                if not raw.flags.c_contiguous and raw.flags.f_contiguous:  # decoded RLE: column-major
                    raw = cv2.transpose(raw.T)  # OpenCV takes row-major arrays; this is its fast transpose
            else:
                scores.missing[exp_id] += 1
            inter[i], pred_area[i], f = _score_mask(gt, obj_id, i, raw, boundary, scratch)
            if scores.f is not None:
                scores.f[exp_id][start + i] = f
        union = gt.target_counts[obj_id] + pred_area - inter
        scores.iou[exp_id][start : start + len(names)] = iou_from_counts(inter, union)


def _target_bytes(labels: np.ndarray, values: Target, name: str) -> np.ndarray:
    """(labels in values) as 0/255 uint8, in a reused buffer: a target made of one label or several."""
    if len(values) == 1:
        return _equal_bytes(labels, values[0], name)
    table = np.zeros(256, np.uint8)
    table[list(values)] = 255
    out = _buffer(name, labels.shape, np.uint8)
    np.take(table, labels, out=out)
    return out


def _equal_bytes(labels: np.ndarray, value: int, name: str) -> np.ndarray:
    """(labels == value) as 0/255 uint8, in a reused buffer."""
    out = _buffer(name, labels.shape, np.uint8)
    np.equal(labels, value, out=out.view(bool))
    np.negative(out, out=out)  # 1 -> 255 (uint8 wraps)
    return out


def _label_runs(labels: np.ndarray, values: list[int]) -> list[dict[int, bytes]]:
    """COCO-RLE counts of ``labels == value`` for each value, per frame of a (T, H, W) stack.

    One pass per frame finds the runs of equal labels down the columns (pycocotools' order); the
    runs of each value's mask are those runs merged where membership does not change, so no
    per-value mask is built or scanned. pycocotools compresses the counts (``frPyObjects``), so
    the strings are the ones its ``encode`` makes (``tests/scoring/test_metrics.py`` checks).
    """
    from pycocotools import mask as mask_utils

    count, height, width = labels.shape
    n_pixels = height * width
    column_major = _buffer("column_major", (width, height), np.uint8)
    frames: list[dict[int, bytes]] = [{} for _ in range(count)]
    for row, label in enumerate(labels):
        cv2.transpose(label, dst=column_major)  # OpenCV's transpose is the fast one
        flat = column_major.reshape(-1)
        starts = np.flatnonzero(flat[1:] != flat[:-1]) + 1
        starts = np.concatenate(([0], starts))
        run_values = flat[starts]
        edges = np.append(starts, n_pixels)
        for value in values:
            inside = run_values == value
            if not inside.any():
                counts = [n_pixels]
            else:
                changes = np.flatnonzero(inside[1:] != inside[:-1]) + 1
                counts = np.diff(edges[np.concatenate(([0], changes, [len(starts)]))]).tolist()
                if inside[0]:
                    counts.insert(0, 0)  # COCO RLE starts with a run of zeros, here an empty one
            rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
            frames[row][value] = rle["counts"]
    return frames


def _ground_truth_runs(task: ClipTask, values: list[int]) -> tuple[tuple[int, int], list[dict[int, bytes]]]:
    """Per frame of the clip, the RLE counts of each label value in ``values``, and the frames' (H, W).

    With a cache (:mod:`refvps.scoring.gtcache`), frames whose PNG bytes are unchanged are not
    decoded; the others are decoded in chunks and added to it.
    """
    shape = _frame_shape(task)
    cache = None
    if task.gt_cache:
        try:
            cache = LabelRunsCache(task.gt_cache, task.masks_dir)
        except OSError:
            cache = None
    runs: dict[int, dict[int, bytes]] = {}  # frame number -> counts per label value
    todo: list[tuple[int, str, bytes | None, str | None]] = []  # (number, path, PNG bytes, digest) to decode
    for index, name in enumerate(task.frames):
        path = os.path.join(task.masks_dir, f"{name}.png")
        if cache is None:
            todo.append((index, path, None, None))
            continue
        data = read_image_bytes(path, LABEL_MAP)
        digest = content_digest(data)
        found = cache.lookup(name, digest, values)
        if found is None:
            todo.append((index, path, data, digest))
            continue
        found_shape, runs[index] = found
        if shape is None:
            shape = found_shape
        _check_label_shape(found_shape, shape, path)
    for start in range(0, len(todo), task.chunk):
        part = todo[start : start + task.chunk]
        stack = _stack_labels((_decoded_label(path, png) for _, path, png, _ in part), len(part), shape)
        shape = (stack.shape[1], stack.shape[2])
        for (index, _, _, content), counts in zip(part, _label_runs(stack, values)):
            runs[index] = counts
            if cache is not None and content is not None:
                cache.store(task.frames[index], content, shape, counts)
    if cache is not None:
        cache.save()
    if shape is None:
        raise DatasetError(f"clip {task.clip_id} lists no frames", hint="run: refvps validate ROOT")
    return shape, [runs[index] for index in range(len(task.frames))]


def _union_rle(size: list[int], frame_runs: dict[int, bytes], values: Target, mask_utils: Any) -> dict[str, Any]:
    """The RLE of the union of ``values``' masks in one frame (one label: its RLE as it is)."""
    parts = [{"size": size, "counts": frame_runs[v]} for v in values]
    return parts[0] if len(parts) == 1 else dict(mask_utils.merge(parts, intersect=False))


def _score_clip_runs(task: ClipTask, predictions: RleClipPredictions) -> ClipOutcome:
    """J (and TempCon's per-frame IoU) of RLE predictions, on runs: pycocotools ``merge``/``area``
    against the ground truth's RLE, made once per frame (or read from the cache); no mask is decoded."""
    from pycocotools import mask as mask_utils

    obj_ids = sorted({obj for _, obj in task.expressions})
    shape, runs = _ground_truth_runs(task, sorted({v for obj in obj_ids for v in obj} | {IGNORE_INDEX}))
    size = [int(shape[0]), int(shape[1])]
    n_frames = len(task.frames)
    void = [{"size": size, "counts": frame[IGNORE_INDEX]} for frame in runs]
    has_void = mask_utils.area(void) > 0
    targets = {obj: [_union_rle(size, frame, obj, mask_utils) for frame in runs] for obj in obj_ids}
    target_counts = {obj: mask_utils.area(targets[obj]).astype(np.int64) for obj in obj_ids}
    scores = _ClipScores.empty(task, boundary=False)
    for exp_id, obj_id in task.expressions:
        inter = np.zeros(n_frames, np.int64)
        pred_area = np.zeros(n_frames, np.int64)
        for i, frame in enumerate(task.frames):
            if not predictions.has(exp_id, frame):
                scores.missing[exp_id] += 1
                continue
            rle = predictions.rle(exp_id, frame, shape)
            area = int(mask_utils.area(rle))
            if area:
                inter[i] = mask_utils.area(mask_utils.merge([rle, targets[obj_id][i]], intersect=True))
                if has_void[i]:
                    area -= int(mask_utils.area(mask_utils.merge([rle, void[i]], intersect=True)))
            pred_area[i] = area
        scores.iou[exp_id] = np.asarray(iou_from_counts(inter, target_counts[obj_id] + pred_area - inter), np.float64)
    return scores.outcome(task, shape)
