"""Reference baselines computed from the dataset alone: ``empty``, ``full``, ``motion``, ``oracle``.

They need no weights and frame the scores of real methods:

* ``empty``: no pixel is foreground. J counts only frames where the target is absent; TempCon is 0
  wherever the target is present in every frame or in none, which is why TempCon is read next to J.
* ``full``: every pixel is foreground. J is the mean fraction of the frame the target covers.
* ``motion``: a classical moving-region mask, the same for every expression of a clip (it does not
  read the text). For each frame and each neighbour (previous, next): dense optical flow (OpenCV
  Farneback) from the frame to the neighbour with the camera's motion removed (the median flow, a
  global translation), and the difference to the neighbour moved back by that translation; each
  cue is divided by its floor (``flow_floor`` px/frame, ``diff_floor`` grey levels) and the larger
  kept. A frame moves where it moves towards *both* neighbours (three-frame differencing: the
  region an object left or is about to enter does not count). Scores are averaged over
  ``temporal_radius`` frames, thresholded at 1, closed, opened and stripped of small blobs.
  Dynamic processes move, so this is the floor a learned model should beat.
* ``oracle``: the ground truth itself (pixels of the expression's object id); scores J = 100 and so
  checks the scorer end to end.

All four write through :class:`refvps.predictions.PredictionWriter` and resume: finished clips are
not computed again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import cv2
import numpy as np

from baselines.external import RunSummary
from refvps.dataset.format import Clip, image_size, target_mask
from refvps.dataset.validate import open_valid_dataset
from refvps.errors import UsageError
from refvps.predictions import PredictionWriter, check_prediction_folder
from refvps.predictions.record import now_iso, resume_record, run_lifecycle
from refvps.progress import NO_PROGRESS, Progress

REFERENCE_BASELINES = ("empty", "full", "motion", "oracle")
CLIPS_STAGE = "clips"  # progress stage: clips predicted (or found finished)


@dataclass(frozen=True)
class MotionConfig:
    """Settings of the ``motion`` baseline (defaults tuned on nothing but common sense)."""

    max_side: int = 320  # frames are analysed at this size (longer side), then masks resized back
    use_flow: bool = True  # Farneback optical flow; False: frame differencing only
    compensate_camera: bool = True  # remove the median flow (a global translation)
    flow_floor: float = 1.0  # px/frame at the analysis size: slower is not motion
    diff_floor: float = 8.0  # grey levels (0-255) after blurring: smaller changes are noise
    blur_sigma: float = 1.5
    temporal_radius: int = 1  # scores are averaged over t - r .. t + r
    close_radius: int = 3  # px at the analysis size
    min_area: float = 0.001  # blobs smaller than this fraction of the frame are dropped

    def __post_init__(self) -> None:
        if self.max_side < 16 or self.flow_floor <= 0 or self.diff_floor <= 0 or self.temporal_radius < 0:
            raise UsageError(
                "motion settings out of range",
                hint="max_side >= 16, flow_floor > 0, diff_floor > 0, temporal_radius >= 0",
            )


def _to_grey(frame: np.ndarray, scale: float, sigma: float) -> np.ndarray:
    grey = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    if scale != 1.0:
        size = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    if sigma > 0:
        grey = cv2.GaussianBlur(grey, (0, 0), sigma)
    return grey


def _directional_score(frame: np.ndarray, other: np.ndarray, config: MotionConfig) -> np.ndarray:
    """Motion of frame ``frame`` towards a neighbour, on ``frame``'s pixel grid, in units of the floors.

    Flow is computed from ``frame`` to ``other``, so it is large where something is *in* ``frame``
    and moves; the difference is taken against ``other`` moved back by the camera's translation.
    """
    shift = np.zeros(2, np.float32)
    score = np.zeros(frame.shape, np.float32)
    if config.use_flow:
        flow = cv2.calcOpticalFlowFarneback(frame, other, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        if config.compensate_camera:
            shift = np.median(flow.reshape(-1, 2), axis=0).astype(np.float32)
            flow = flow - shift
        score = np.hypot(flow[..., 0], flow[..., 1]) / config.flow_floor
    if np.any(np.abs(shift) > 0.25):
        # other(x + shift) is where frame(x) went if only the camera moved
        matrix = np.float32([[1, 0, -shift[0]], [0, 1, -shift[1]]])
        other = cv2.warpAffine(other, matrix, (other.shape[1], other.shape[0]), borderMode=cv2.BORDER_REPLICATE)
    diff = cv2.absdiff(frame, other).astype(np.float32) / config.diff_floor
    return np.maximum(score, diff)


def _clean(mask: np.ndarray, config: MotionConfig) -> np.ndarray:
    mask = mask.astype(np.uint8)
    if config.close_radius > 0:
        r = config.close_radius
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    if config.min_area > 0 and mask.any():
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        keep = np.zeros(count, bool)
        keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= config.min_area * mask.size
        mask = keep[labels].astype(np.uint8)
    return mask.astype(bool)


def iter_motion_masks(frames: Iterable[np.ndarray], config: MotionConfig = MotionConfig()) -> Iterator[np.ndarray]:
    """Moving-region masks of a clip, one (H, W) bool mask per RGB frame (H, W, 3) uint8, in order.

    Frames are decoded and shrunk one at a time, and each mask is enlarged only when yielded, so a
    long HD clip costs a few small arrays, not the clip at full size.
    """
    greys: list[np.ndarray] = []
    size = None
    for frame in frames:
        if size is None:
            size = frame.shape[:2]
            scale = min(1.0, config.max_side / max(size))
        elif frame.shape[:2] != size:
            raise UsageError(
                f"frames of one clip differ in size: {frame.shape[:2]} and {size}",
                hint="check the clip with: refvps validate ROOT",
            )
        greys.append(_to_grey(frame, scale, config.blur_sigma))
    if size is None:
        return
    height, width = size
    count = len(greys)
    if count == 1:
        yield np.zeros((height, width), bool)
        return
    # Three-frame logic: frame t moves where it differs from both neighbours (a plain difference
    # would also light up where the object was and where it is going).
    per_frame = np.stack(
        [
            np.minimum.reduce(
                [_directional_score(greys[t], greys[n], config) for n in (t - 1, t + 1) if 0 <= n < count]
            )
            for t in range(count)
        ]
    )
    r = config.temporal_radius
    if r > 0:
        cumulative = np.concatenate([np.zeros((1, *per_frame.shape[1:]), np.float64), np.cumsum(per_frame, axis=0)])
        lo = np.clip(np.arange(count) - r, 0, count)
        hi = np.clip(np.arange(count) + r + 1, 0, count)
        per_frame = (cumulative[hi] - cumulative[lo]) / (hi - lo)[:, None, None]
    for t in range(count):
        small = _clean(per_frame[t] >= 1.0, config)
        yield cv2.resize(small.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0


def motion_masks(frames: Iterable[np.ndarray], config: MotionConfig = MotionConfig()) -> np.ndarray:
    """Moving-region masks of a clip as one (T, H, W) bool array (see :func:`iter_motion_masks`)."""
    masks = list(iter_motion_masks(frames, config))
    return np.stack(masks) if masks else np.zeros((0, 0, 0), bool)


def _write_clip(name: str, clip: Clip, writer: PredictionWriter, config: MotionConfig) -> int:
    """Write one clip's masks for every expression, a frame at a time; returns the masks written."""
    written = 0
    if name == "oracle":
        if not clip.annotated_frames:
            raise UsageError(
                f"the oracle copies the ground truth, and clip {clip.id} has none",
                hint="run the oracle on a split with public masks",
            )
        for frame in clip.annotated_frames:  # the frames that carry ground truth (all, unless the clip says)
            label = clip.read_label(frame)
            for expression in clip.expressions:
                writer.write(clip.id, expression.exp_id, frame, target_mask(label, expression.target_labels))
                written += 1
        return written
    if name == "motion":
        masks: Iterable[np.ndarray] = iter_motion_masks(clip.frames(), config)
    else:
        width, height = image_size(clip.frame_path(clip.frame_names[0]))
        constant = np.full((height, width), name == "full", bool)
        masks = (constant for _ in clip.frame_names)
    exp_ids = [expression.exp_id for expression in clip.expressions]
    for frame, mask in zip(clip.frame_names, masks):  # the same mask for every expression
        writer.write_shared(clip.id, exp_ids, frame, mask)
        written += len(exp_ids)
    return written


def run_reference(
    name: str,
    dataset_root: str | Path,
    out: str | Path,
    *,
    clips: Sequence[str] | None = None,
    motion: MotionConfig = MotionConfig(),
    progress: Progress = NO_PROGRESS,
) -> RunSummary:
    """Write the predictions of reference baseline ``name`` for a dataset into ``out``.

    ``progress`` gets the stage ``"clips"`` (every selected clip, finished ones included).
    """
    if name not in REFERENCE_BASELINES:
        raise UsageError(
            f"{name!r} is not a reference baseline", hint=f"choose one of {', '.join(REFERENCE_BASELINES)}"
        )
    out = Path(out)
    check_prediction_folder(out, dataset_root)
    oracle = name == "oracle"  # the only one that reads the ground truth
    dataset, selected = open_valid_dataset(dataset_root, clips, check_masks=oracle, require_masks=oracle)
    writer = PredictionWriter(out)
    settings = asdict(motion) if name == "motion" else {}
    fingerprint = {"method": name, "settings": settings}
    done = writer.done_clips() & set(selected)
    previous = resume_record(out, fingerprint, done)
    started = previous.get("started") if previous and previous.get("fingerprint") == fingerprint else None
    record = {
        "method": name,
        "kind": "reference",
        "dataset": str(Path(dataset_root).resolve()),
        "clips": len(selected),
        "settings": settings,
        "fingerprint": fingerprint,
        "started": started or now_iso(),
    }
    converted = 0
    with run_lifecycle(out, record), progress.stage(CLIPS_STAGE, len(selected)):
        for clip_id in selected:
            if clip_id not in done:
                _write_clip(name, dataset.clip(clip_id), writer, motion)
                writer.mark_done(clip_id, {"method": name})
                converted += 1
            progress.advance(CLIPS_STAGE, note=clip_id)
    return RunSummary(name, out, "complete", len(selected), len(done), converted)
