"""The classical segmenter: no weights, so the tool works on a fresh machine. A fallback: SAM2 is the
real tool, and the page says so while this one runs (docs/ANNOTATE.md, "Segmenters").

**Clicks -> mask.** The frame is seen through its *persistent edges*: colour gradients present both at
full detail and after a blur of about 1 % of the frame's diagonal, so that fine texture (ripples,
knitting, grain) is no boundary while object outlines are. Distances are *geodesic*: a step costs
little inside uniform areas and a lot across a persistent edge.

* The first positive click selects a region. The geodesic distance from the click grows a region;
  its size is read off the distance at which it is most stable (it grows least as the threshold
  rises: it has reached strong edges all around). Within three times that distance, the pixels
  whose colour (a Lab histogram) is likelier in that region than beyond it are kept; GrabCut refines
  the result, and the part connected to the click is the mask.
* Every later click edits the mask around it, and only there. A positive click adds the pixels near
  it (geodesically: never across strong edges) that look like the mask or the clicked spot rather
  than the mask's surroundings. A negative click removes the part of the mask that is geodesically
  nearer to it than to every positive click and that looks like the clicked spot rather than like the
  rest of the mask. A correct click therefore never costs the mask elsewhere.
* The work is done at a working resolution (long side at most ``work_size``); the final mask is
  brought to the frame's resolution with a guided filter on the frame, so that its edges follow the
  image's instead of the working grid's.

**Propagation.** The previous frame's mask is carried to the next along dense optical flow
(Farneback); there it keeps the pixels, within a margin of the carried mask, that look like the
target under the colours of the keyframe it came from (the target against the rest of that frame).
When most of the carried mask no longer looks like the target, the target is absent from that frame
(an empty mask); it is looked for again where it was last seen, so that a light switched off and on
again, or a flame that dies down, is followed. Keyframes restart the chain from their own mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Sequence

import cv2
import numpy as np

from refvps.annotate.frames import FrameSource
from refvps.annotate.segmenters.base import Segmenter, SegmenterInfo, SegmenterSession, check_points

BINS = 16  # Lab histogram bins per channel
REACH = 4.0  # how far (geodesic cost) a corrective click reaches: across weak edges, not strong ones
GROW = 3.0  # the first region's colours decide within this multiple of its stable distance
PRESENT = 0.4  # the share of a carried mask that must still look like the target
MARGIN = 0.03  # how far (share of the diagonal) a propagated mask may grow per frame
NEGATIVE_SPOT = 0.3  # weight of a negative click's own colour among the colours it removes


class ClassicSegmenter(Segmenter):
    """Geodesic, colour-aware region selection from clicks; optical-flow propagation gated by colour."""

    name = "classic"

    def __init__(self, *, work_size: int = 640, grabcut_iterations: int = 4):
        self.work_size = int(work_size)
        self.grabcut_iterations = int(grabcut_iterations)

    def open(self, frames: FrameSource) -> ClassicSession:
        return ClassicSession(frames, self)

    def info(self) -> SegmenterInfo:
        return SegmenterInfo(
            name=self.name,
            description="classical fallback without weights: region from clicks along image edges and colours, "
            "optical-flow propagation; SAM2 is the real tool",
            device="cpu",
            fallback=True,
        )


# ----------------------------------------------------------------------------------------------
# Image measures, as plain functions of arrays (tested on their own).


def geodesic_distance(cost: np.ndarray, seeds: np.ndarray, sweeps: int = 4) -> np.ndarray:
    """Distance from the ``seeds`` where a step between 4-neighbours costs the mean of their ``cost``.

    Each sweep relaxes every row both ways, then every column both ways. One pass along a row is
    exact for paths along that row, ``d[i] = min_j (d[j] + C[i] - C[j])`` with ``C`` the running sum
    of step costs (a running minimum, vectorised over all rows), so a few sweeps follow any path
    that turns a few times.
    """
    cost = np.asarray(cost, np.float64)
    d = np.where(seeds, 0.0, _FAR)
    for _ in range(sweeps):
        for axis in (1, 0):
            d = np.moveaxis(_relax_rows(np.moveaxis(d, axis, -1), np.moveaxis(cost, axis, -1)), -1, axis)
    return np.where(d >= _FAR / 2, np.inf, d)


_FAR = 1e18


def _relax_rows(d: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """One pass left to right and one right to left along the last axis."""
    step = np.zeros_like(cost)
    step[..., 1:] = 0.5 * (cost[..., 1:] + cost[..., :-1])  # from i - 1 to i
    total = np.cumsum(step, axis=-1)
    d = np.minimum(d, total + np.minimum.accumulate(d - total, axis=-1))
    back = np.zeros_like(cost)
    back[..., :-1] = step[..., 1:]  # from i + 1 to i
    back, d = back[..., ::-1], d[..., ::-1]
    total = np.cumsum(back, axis=-1)
    d = np.minimum(d, total + np.minimum.accumulate(d - total, axis=-1))
    return d[..., ::-1]


def edge_strength(rgb: np.ndarray) -> np.ndarray:
    """Colour gradient magnitude (Lab, lightly smoothed)."""
    lab = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2LAB).astype(np.float32)
    lab = cv2.GaussianBlur(lab, (0, 0), 1.0)
    gx = cv2.Sobel(lab, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(lab, cv2.CV_32F, 0, 1, ksize=3)
    return np.sqrt((gx**2 + gy**2).sum(axis=2))


def persistent_edges(rgb: np.ndarray) -> np.ndarray:
    """Edges present at full detail and after a blur of ~1 % of the diagonal (texture drops out).

    Each scale is divided by its 90th percentile, so 1 is a typical edge of that image.
    """
    fine = edge_strength(rgb)
    sigma = max(1.5, 0.008 * float(np.hypot(*rgb.shape[:2])))
    coarse = edge_strength(cv2.GaussianBlur(rgb, (0, 0), sigma)) * sigma  # a blurred step's slope falls as 1/sigma
    return np.minimum(fine / (np.percentile(fine, 90) + 1e-6), coarse / (np.percentile(coarse, 90) + 1e-6))


def lab_bins(rgb: np.ndarray) -> np.ndarray:
    """Each pixel's Lab histogram bin (``BINS`` per channel)."""
    lab = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2LAB)
    q = (lab // (256 // BINS)).astype(np.int32)
    return (q[..., 0] * BINS + q[..., 1]) * BINS + q[..., 2]


def colour_histogram(bins: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """A normalised, slightly smoothed colour histogram of the pixels, weighted."""
    hist = np.bincount(bins.ravel(), weights=np.asarray(weights, np.float64).ravel(), minlength=BINS**3)
    hist = cv2.GaussianBlur(hist.astype(np.float32).reshape(BINS, BINS * BINS), (0, 0), 0.7).reshape(-1)
    return hist / max(float(hist.sum()), 1e-12)


def looks_like(bins: np.ndarray, inside: np.ndarray, outside: np.ndarray) -> np.ndarray:
    """Pixels whose colour is likelier under the ``inside`` weights than under the ``outside`` ones."""
    return colour_histogram(bins, inside)[bins] > colour_histogram(bins, outside)[bins]


def stable_distance(distance: np.ndarray, min_area: float, max_area: float) -> float:
    """The threshold at which ``{distance <= t}`` grows least relative to ``t`` (log-log slope): the
    region has reached edges all around. Areas outside [min_area, max_area] are not considered."""
    finite = np.sort(distance[np.isfinite(distance)])
    if finite.size == 0:
        return 0.0
    lo = finite[min(finite.size - 1, int(min_area))]
    hi = finite[max(0, min(finite.size - 1, int(min(max_area, 0.9 * finite.size))))]
    if hi <= lo:
        return float(lo)
    taus = np.geomspace(max(lo, 1e-6), hi, 40)
    log_area = np.log(np.searchsorted(finite, taus, side="right"))
    # The slope across a few samples each way: distances in flat areas come in steps, and the area
    # must stay put over a range of thresholds, not between two of them, to count as stable.
    ahead, behind = np.minimum(np.arange(40) + 5, 39), np.maximum(np.arange(40) - 5, 0)
    slope = (log_area[ahead] - log_area[behind]) / np.log(taus[ahead] / taus[behind])
    return float(taus[int(np.argmin(slope))])


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter (grey guide): ``src`` smoothed so that its edges follow the guide's."""
    size = (2 * radius + 1, 2 * radius + 1)

    def mean(a: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(a, -1, size)

    mean_i, mean_p = mean(guide), mean(src)
    a = (mean(guide * src) - mean_i * mean_p) / (mean(guide * guide) - mean_i * mean_i + eps)
    b = mean_p - a * mean_i
    return mean(a) * guide + mean(b)


def disc(shape: tuple[int, int], points, radius: int) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    for x, y in points:
        cv2.circle(mask, (int(round(x)), int(round(y))), radius, 1, -1)
    return mask.astype(bool)


def holding(mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """The connected parts of ``mask`` (8-connected) that hold a pixel of ``seeds``."""
    if not mask.any():
        return mask
    _, components = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    keep = np.unique(components[seeds & mask])
    return np.isin(components, keep[keep > 0])


def grabcut(bgr: np.ndarray, seeds: np.ndarray, iterations: int) -> np.ndarray:
    """GrabCut from a seed map (cv2.GC_* values); its result as a boolean mask (deterministic)."""
    fg = np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD))
    if fg.all() or not fg.any():
        return fg
    labels = seeds.copy()
    cv2.setRNGSeed(0)  # GrabCut's k-means starts from random centres
    try:
        cv2.grabCut(bgr, labels, None, np.zeros((1, 65)), np.zeros((1, 65)), iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return fg  # too few samples for a colour model: keep the seeds' guess
    return np.isin(labels, (cv2.GC_FGD, cv2.GC_PR_FGD))


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


# ----------------------------------------------------------------------------------------------
# Clicks -> mask


@dataclass
class WorkFrame:
    """A frame at working resolution, with what the click operations need of it."""

    rgb: np.ndarray
    scale: float  # working / frame resolution
    cost: np.ndarray = field(init=False)
    bins: np.ndarray = field(init=False)
    bgr: np.ndarray = field(init=False)
    radius: int = field(init=False)  # where distances from a click start, in working pixels

    def __post_init__(self) -> None:
        self.cost = 0.02 + persistent_edges(self.rgb) ** 2
        self.bins = lab_bins(self.rgb)
        self.bgr = cv2.cvtColor(np.ascontiguousarray(self.rgb), cv2.COLOR_RGB2BGR)
        self.radius = max(2, round(0.006 * float(np.hypot(*self.shape))))

    @classmethod
    def of(cls, rgb: np.ndarray, work_size: int) -> WorkFrame:
        h, w = rgb.shape[:2]
        scale = min(1.0, work_size / max(h, w))
        if scale < 1.0:
            rgb = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        return cls(np.ascontiguousarray(rgb), scale)

    @property
    def shape(self) -> tuple[int, int]:
        return self.rgb.shape[:2]

    def seed(self, point) -> np.ndarray:
        """The clicked spot itself (half the radius distances start from, so it stays on its side of an edge)."""
        return disc(self.shape, [point], max(1, self.radius // 2))

    def distance(self, points) -> np.ndarray:
        if not points:
            return np.full(self.shape, np.inf)
        return geodesic_distance(self.cost, disc(self.shape, points, self.radius))


def first_region(frame: WorkFrame, point, far_from_negatives: np.ndarray, iterations: int = 4) -> np.ndarray:
    """The region a first positive click selects (see the module doc)."""
    seed = frame.seed(point)
    distance = frame.distance([point])
    distance = np.where(far_from_negatives < distance, np.inf, distance)
    tau = stable_distance(distance, max(4 * seed.sum(), 0.001 * distance.size), 0.6 * distance.size)
    core, reach = distance <= tau, distance <= GROW * tau
    similar = looks_like(frame.bins, core, ~reach) & reach
    region = holding(cv2.medianBlur(similar.astype(np.uint8), 5).astype(bool) | seed, seed)
    seeds = np.full(frame.shape, cv2.GC_BGD, np.uint8)
    seeds[distance <= 2 * GROW * tau] = cv2.GC_PR_BGD
    seeds[region] = cv2.GC_PR_FGD
    seeds[seed] = cv2.GC_FGD
    cut = holding(grabcut(frame.bgr, seeds, iterations), seed)
    # GrabCut collapsing or flooding means its colour models failed: keep the colour region then.
    return cut if 0.5 * region.sum() <= cut.sum() <= 3 * region.sum() else region


def added_region(frame: WorkFrame, point, mask: np.ndarray, far_from_negatives: np.ndarray) -> np.ndarray:
    """What a corrective positive click adds: pixels within reach that look like the target or the
    clicked spot rather than the mask's surroundings, connected to the click."""
    seed = frame.seed(point)
    distance = frame.distance([point])
    distance = np.where(far_from_negatives < distance, np.inf, distance)
    finite = np.sort(distance[np.isfinite(distance)])
    cap = max(int(mask.sum()), 50)  # a correction adds at most as much as there is
    region = holding(distance <= min(REACH, finite[min(finite.size - 1, cap)]), seed)
    inside = mask / max(mask.sum(), 1) * 0.7 + seed / max(seed.sum(), 1) * 0.3
    ring = _dilate(mask | region, max(3, int(0.05 * np.sqrt(mask.size)))) & ~mask & ~region
    return holding(region & (looks_like(frame.bins, inside, ring) | seed), seed)


def removed_region(frame: WorkFrame, point, mask: np.ndarray, from_positives: np.ndarray) -> np.ndarray:
    """What a negative click removes: the part of the mask within reach of it (across weak edges, not
    strong ones) and geodesically nearer to it than to every positive click; of that, when the clicked
    spot's colour differs from the rest of the mask, only the pixels that look like the spot or the
    mask's surroundings rather than like the rest."""
    seed = frame.seed(point)
    near = frame.distance([point])
    candidate = holding(mask & (near < from_positives) & (near <= REACH), seed)
    rest = mask & ~candidate
    if not rest.any():
        return candidate
    ring = _dilate(mask, max(3, int(0.05 * np.sqrt(mask.size)))) & ~mask
    outside = ring / max(ring.sum(), 1) * (1 - NEGATIVE_SPOT) + seed / max(seed.sum(), 1) * NEGATIVE_SPOT
    like_rest = looks_like(frame.bins, rest, outside)
    if like_rest[seed].mean() > 0.5:  # the spot has the target's colours: only the geometry can tell
        return candidate
    return holding(candidate & (~like_rest | seed), seed)


@dataclass
class ClickFold:
    """The mask after some clicks, and the clicks so far (so later clicks continue from it)."""

    mask: np.ndarray
    positives: tuple = ()
    negatives: tuple = ()

    def then(self, frame: WorkFrame, point, label: int, iterations: int = 4) -> ClickFold:
        """The fold after one more click."""
        mask = self.mask
        if label == 1:
            far = frame.distance(list(self.negatives))
            mask = (
                mask | added_region(frame, point, mask, far)
                if mask.any()
                else first_region(frame, point, far, iterations)
            )
            return ClickFold(mask, self.positives + (point,), self.negatives)
        if mask.any():
            mask = mask & ~removed_region(frame, point, mask, frame.distance(list(self.positives)))
        return ClickFold(mask, self.positives, self.negatives + (point,))


def mask_from_clicks(frame: WorkFrame, points: Sequence, labels: Sequence[int], iterations: int = 4) -> np.ndarray:
    """The mask of the clicks, applied in order (working resolution; points in working pixels)."""
    fold = ClickFold(np.zeros(frame.shape, bool))
    for point, label in zip(points, labels):
        fold = fold.then(frame, tuple(point), int(label), iterations)
    return fold.mask


def to_frame_resolution(mask: np.ndarray, rgb: np.ndarray, scale: float) -> np.ndarray:
    """A working-resolution mask at the frame's resolution, its edges snapped to the frame's (guided filter)."""
    if scale >= 1.0:
        return mask.astype(bool)
    h, w = rgb.shape[:2]
    soft = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    return guided_filter(grey, soft, max(2, round(2 / scale)), 1e-3) >= 0.5


# ----------------------------------------------------------------------------------------------
# Propagation


def warp_mask(previous_mask: np.ndarray, previous_rgb: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """Carry ``previous_mask`` onto the next frame along optical flow (soft values in [0, 1])."""
    previous_gray = cv2.cvtColor(previous_rgb, cv2.COLOR_RGB2GRAY)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    # Flow from the new frame back to the previous one: for each new pixel, where it came from.
    flow = cv2.calcOpticalFlowFarneback(gray, previous_gray, None, 0.5, 4, 21, 3, 5, 1.1, 0)
    h, w = gray.shape
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(
        previous_mask.astype(np.float32),
        grid_x + flow[..., 0],
        grid_y + flow[..., 1],
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


class TargetColours:
    """The colours of the target and of the rest of a keyframe, to tell the target in other frames."""

    def __init__(self, rgb: np.ndarray, mask: np.ndarray):
        bins = lab_bins(rgb)
        self.target = colour_histogram(bins, mask)
        self.rest = colour_histogram(bins, ~mask)

    def looks(self, rgb: np.ndarray) -> np.ndarray:
        bins = lab_bins(rgb)
        return self.target[bins] > self.rest[bins]


def grow_within(mask: np.ndarray, looks: np.ndarray) -> np.ndarray:
    """The pixels near ``mask`` (a margin of ``MARGIN`` of the diagonal) that look like the target,
    connected to it; the mask itself when that keeps too little of it."""
    margin = max(2, int(round(MARGIN * float(np.hypot(*mask.shape)))))
    grown = cv2.medianBlur((_dilate(mask, margin) & looks).astype(np.uint8), 5).astype(bool)
    grown = holding(grown, mask)
    return mask if grown.sum() < 0.3 * mask.sum() else grown


def carry(previous_rgb, rgb, previous: np.ndarray, last_seen: np.ndarray, colours: TargetColours | None) -> np.ndarray:
    """The target on ``rgb`` from the previous frame's mask (empty: absent), see the module doc."""
    if colours is None:
        return np.zeros(rgb.shape[:2], bool)
    looks = colours.looks(rgb)
    if previous.any():
        warped = warp_mask(previous, previous_rgb, rgb) >= 0.5
        if warped.sum() < 4 or looks[warped].mean() < PRESENT:
            return np.zeros(rgb.shape[:2], bool)
        return grow_within(warped, looks)
    if last_seen.any() and looks[last_seen].mean() >= PRESENT + 0.1:  # back where it was last seen
        return grow_within(last_seen, looks)
    return np.zeros(rgb.shape[:2], bool)


# ----------------------------------------------------------------------------------------------


class ClassicSession(SegmenterSession):
    def __init__(self, frames: FrameSource, segmenter: ClassicSegmenter):
        super().__init__(frames)
        self.seg = segmenter
        h, w = frames.shape
        self.scale = min(1.0, segmenter.work_size / max(h, w))
        self.work_shape = (max(1, round(h * self.scale)), max(1, round(w * self.scale)))
        self.anchors: dict[int, np.ndarray] = {}
        # The frame being clicked on and its folds by click prefix: a corrective click continues
        # from the mask of the clicks before it instead of starting over.
        self._clicked: tuple[int, WorkFrame, dict[tuple, ClickFold]] | None = None

    def _work_rgb(self, index: int) -> np.ndarray:
        rgb = self.frames[index]
        if self.scale == 1.0:
            return rgb
        return cv2.resize(rgb, (self.work_shape[1], self.work_shape[0]), interpolation=cv2.INTER_AREA)

    def _to_work(self, mask: np.ndarray) -> np.ndarray:
        if self.scale == 1.0:
            return mask.astype(bool)
        small = cv2.resize(mask.astype(np.float32), self.work_shape[::-1], interpolation=cv2.INTER_AREA)
        return small >= 0.5

    def add_points(self, frame: int, points: Sequence[Sequence[float]], labels: Sequence[int]) -> np.ndarray:
        check_points(points, labels, self.frames.shape)
        rgb = self.frames[frame]
        if not any(label == 1 for label in labels):
            mask = np.zeros(self.frames.shape, bool)  # only negative clicks: nothing is the target
        else:
            work, folds = self._folds(frame, rgb)
            clicks = tuple(((x * work.scale, y * work.scale), int(label)) for (x, y), label in zip(points, labels))
            done = max((n for n in range(len(clicks) + 1) if clicks[:n] in folds), default=0)
            fold = folds.get(clicks[:done]) or ClickFold(np.zeros(work.shape, bool))
            for n in range(done, len(clicks)):
                fold = fold.then(work, clicks[n][0], clicks[n][1], self.seg.grabcut_iterations)
                folds[clicks[: n + 1]] = fold
            while len(folds) > 16:
                folds.pop(next(iter(folds)))
            mask = to_frame_resolution(fold.mask, rgb, work.scale)
        self.anchors[frame] = mask
        return mask

    def _folds(self, frame: int, rgb: np.ndarray) -> tuple[WorkFrame, dict[tuple, ClickFold]]:
        if self._clicked is None or self._clicked[0] != frame:
            self._clicked = (frame, WorkFrame.of(rgb, self.seg.work_size), {})
        return self._clicked[1], self._clicked[2]

    def add_mask(self, frame: int, mask: np.ndarray) -> None:
        self.anchors[frame] = np.asarray(mask, dtype=bool).copy()

    def clear_prompts(self, frame: int) -> None:
        self.anchors.pop(frame, None)

    def propagate(
        self, start: int, reverse: bool, start_mask: np.ndarray | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        step = -1 if reverse else 1
        if start in self.anchors:
            current = self.anchors[start]
        elif start_mask is not None:
            current = np.asarray(start_mask, dtype=bool)
        else:
            current = self._catch_up(start, reverse)
        yield start, current
        end = -1 if reverse else self.num_frames
        chain = _Chain(self._work_rgb(start), self._to_work(current))
        for index in range(start + step, end, step):
            yield index, self._advance(chain, index)

    def _catch_up(self, start: int, reverse: bool) -> np.ndarray:
        """An unlabelled start frame: carry the nearest keyframe behind it up to it first."""
        behind = [a for a in self.anchors if (a > start if reverse else a < start)]
        if not behind:
            raise ValueError(
                f"no clicked or hand-fixed frame {'after' if reverse else 'before'} frame "
                f"{start} to propagate from; click on the target here, or propagate from a keyframe"
            )
        source = min(behind) if reverse else max(behind)
        step = -1 if reverse else 1
        chain = _Chain(self._work_rgb(source), self._to_work(self.anchors[source]))
        for index in range(source + step, start + step, step):
            mask = self._advance(chain, index)
        return mask

    def _advance(self, chain: _Chain, index: int) -> np.ndarray:
        """The mask of frame ``index``, the chain moved on to it."""
        rgb = self._work_rgb(index)
        if index in self.anchors:
            chain.restart(rgb, self._to_work(self.anchors[index]))
            return self.anchors[index]
        small = carry(chain.rgb, rgb, chain.mask, chain.last_seen, chain.colours)
        chain.move(rgb, small)
        return to_frame_resolution(small, self.frames[index], self.scale) if self.scale < 1.0 else small


class _Chain:
    """Where a propagation is: the last frame and mask, the keyframe's colours, where the target was last seen."""

    def __init__(self, rgb: np.ndarray, mask: np.ndarray):
        self.colours: TargetColours | None = None
        self.last_seen = mask
        self.restart(rgb, mask)

    def restart(self, rgb: np.ndarray, mask: np.ndarray) -> None:
        """A keyframe: its mask; its colours and place, unless the target is absent from it."""
        self.rgb, self.mask = rgb, mask
        if mask.any():
            self.colours, self.last_seen = TargetColours(rgb, mask), mask

    def move(self, rgb: np.ndarray, mask: np.ndarray) -> None:
        self.rgb, self.mask = rgb, mask
        if mask.any():
            self.last_seen = mask
