"""The classical (fallback) segmenter: its image measures against naive references, clicks that act as
users expect on drawn scenes, and its measured goals on the synthetic benchmark (docs/ANNOTATE.md)."""

from __future__ import annotations

import heapq

import cv2
import numpy as np
import pytest

from refvps.annotate.segmenters.classic import (
    ClassicSegmenter,
    TargetColours,
    WorkFrame,
    carry,
    geodesic_distance,
    mask_from_clicks,
    persistent_edges,
)
from refvps.dataset import Dataset
from tests.annotate.conftest import distance_inside


def iou(pred: np.ndarray, label: np.ndarray) -> float:
    """Ignore-aware IoU, as the benchmark scores J: Ignore pixels (255) count for neither; both empty is 1."""
    valid = label != 255
    gt = (label == 1) & valid
    pr = pred & valid
    union = (gt | pr).sum()
    return 1.0 if union == 0 else float((gt & pr).sum() / union)


def dijkstra(cost: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Naive reference: 4-neighbour shortest paths, a step costing the mean of the two pixels' costs."""
    h, w = cost.shape
    best = np.full(cost.shape, np.inf)
    queue = []
    for y, x in zip(*np.nonzero(seeds)):
        best[y, x] = 0.0
        heapq.heappush(queue, (0.0, int(y), int(x)))
    while queue:
        d, y, x = heapq.heappop(queue)
        if d > best[y, x]:
            continue
        for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
            if 0 <= ny < h and 0 <= nx < w:
                nd = d + 0.5 * (cost[y, x] + cost[ny, nx])
                if nd < best[ny, nx]:
                    best[ny, nx] = nd
                    heapq.heappush(queue, (nd, ny, nx))
    return best


def test_geodesic_distance_equals_shortest_paths():
    rng = np.random.default_rng(0)
    cost = rng.random((14, 19)) + 0.05
    seeds = np.zeros(cost.shape, bool)
    seeds[3, 4] = seeds[10, 15] = True
    assert np.allclose(geodesic_distance(cost, seeds, sweeps=12), dijkstra(cost, seeds))
    # A wall of high cost with one gap: the distance behind it is the way round through the gap.
    cost = np.ones((20, 20))
    cost[:, 10] = 1000.0
    cost[18, 10] = 1.0
    seeds = np.zeros(cost.shape, bool)
    seeds[2, 2] = True
    d = geodesic_distance(cost, seeds)
    assert np.allclose(d, dijkstra(cost, seeds))
    assert d[2, 12] == pytest.approx(16 + 10 + 16)  # down 16, across 10, up 16


def textured_disc_scene(size=(120, 160)):
    """A disc with fine concentric rings (like ripples) on a flat background, and its mask."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot(xx - 80, yy - 60)
    disc = r <= 40
    image = np.full((h, w, 3), (200, 190, 170), np.uint8)
    rings = (np.sin(r * 1.6) > 0)[..., None] * np.array([40, 160, 170]) + (np.sin(r * 1.6) <= 0)[..., None] * np.array(
        [10, 80, 110]
    )
    image[disc] = rings[disc]
    return image, disc


def test_texture_is_no_edge_but_an_outline_is():
    image, disc = textured_disc_scene()
    edges = persistent_edges(image)
    plain = cv2.Sobel(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32), cv2.CV_32F, 1, 0)
    inside = disc & (distance_inside(disc) > 6)
    outline = disc & (distance_inside(disc) <= 1.5)
    assert np.abs(plain[inside]).mean() > 50  # the rings are strong edges to a plain gradient
    assert np.median(edges[outline]) > 4 * np.median(edges[inside])


def _frames(*images):
    """An in-memory stand-in for a clip's FrameSource."""

    class Frames:
        shape = images[0].shape[:2]

        def __len__(self):
            return len(images)

        def __getitem__(self, index):
            return images[index]

    return Frames()


def adjacent_regions_scene():
    """A red box (the target) touching a large white area, both on a textured grey background."""
    rng = np.random.default_rng(3)
    image = cv2.GaussianBlur(rng.integers(70, 130, (150, 200, 3)).astype(np.uint8), (0, 0), 1.5)
    target = np.zeros(image.shape[:2], bool)
    target[40:110, 40:100] = True
    image[target] = (200, 30, 40)
    image[20:140, 100:190] = (235, 235, 230)  # touches the box's right side
    return image, target


def test_a_positive_click_near_a_strong_edge_does_not_flood_across_it():
    image, target = adjacent_regions_scene()
    session = ClassicSegmenter().open(_frames(image))
    first = session.add_points(0, [[70.0, 75.0]], [1])
    assert iou(first, target.astype(np.uint8)) > 0.9
    # A second correct click just inside the box, next to the white area: the mask stays the box.
    second = session.add_points(0, [[70.0, 75.0], [97.0, 75.0]], [1, 1])
    assert iou(second, target.astype(np.uint8)) >= iou(first, target.astype(np.uint8)) - 0.02
    assert not second[:, 110:].any()


def test_a_negative_click_removes_the_region_it_lies_in():
    """Two touching red boxes behind a faint line: one click takes both; a click on the wrong one
    removes it and nothing else."""
    rng = np.random.default_rng(4)
    image = cv2.GaussianBlur(rng.integers(70, 130, (150, 220, 3)).astype(np.uint8), (0, 0), 1.5)
    image[40:110, 30:180] = (200, 30, 40)
    image[40:110, 104:106] = (185, 35, 45)  # a faint line between the two boxes
    target = np.zeros(image.shape[:2], bool)
    target[40:110, 30:105] = True
    session = ClassicSegmenter().open(_frames(image))
    first = session.add_points(0, [[65.0, 75.0]], [1])
    assert first[75, 150]  # flooded into the other box: same colour, weak line
    corrected = session.add_points(0, [[65.0, 75.0], [150.0, 75.0]], [1, 0])
    assert iou(corrected, target.astype(np.uint8)) > 0.9
    assert corrected[target].mean() > 0.97  # the target itself stays


def test_clicks_are_applied_in_order_and_only_negatives_give_nothing():
    image, target = adjacent_regions_scene()
    work = WorkFrame.of(image, 640)
    assert not mask_from_clicks(work, [(150.0, 80.0)], [0]).any()
    once = mask_from_clicks(work, [(70.0, 75.0)], [1])
    assert np.array_equal(mask_from_clicks(work, [(70.0, 75.0)], [1]), once)  # deterministic


def moving_disc_clip(positions, size=(80, 120)):
    rng = np.random.default_rng(1)
    background = rng.integers(30, 90, (*size, 3)).astype(np.uint8)
    yy, xx = np.mgrid[0 : size[0], 0 : size[1]]
    frames, masks = [], []
    for cx in positions:
        image = background.copy()
        disc = (xx - cx) ** 2 + (yy - 40) ** 2 <= 12**2 if cx is not None else np.zeros(size, bool)
        image[disc] = (220, 200, 40)
        frames.append(image)
        masks.append(disc)
    return frames, masks


def test_carrying_a_mask_follows_a_moving_target_and_notices_when_it_is_gone():
    frames, masks = moving_disc_clip([40, 46, None, None, 52])
    colours = TargetColours(frames[0], masks[0])
    moved = carry(frames[0], frames[1], masks[0], masks[0], colours)
    assert iou(moved, masks[1].astype(np.uint8)) > 0.85
    assert iou(masks[0], masks[1].astype(np.uint8)) < 0.7  # the shift matters: not tracking would fail
    gone = carry(frames[1], frames[2], moved, moved, colours)
    assert not gone.any()  # the disc left the frame: the target is absent
    still_gone = carry(frames[2], frames[3], gone, moved, colours)
    assert not still_gone.any()
    back = carry(frames[3], frames[4], still_gone, moved, colours)  # back near where it was last seen
    assert iou(back, masks[4].astype(np.uint8)) > 0.7


def centre_click(label: np.ndarray) -> list[float]:
    """The target's centre: its point deepest inside."""
    depth = distance_inside(label == 1)
    y, x = np.unravel_index(depth.argmax(), depth.shape)
    return [float(x), float(y)]


def one_click_and_propagate(clip) -> float:
    """Mean J over the clip of one click at the target's centre on the middle frame, then propagation."""
    labels = clip.label_stack()
    middle = len(clip) // 2
    from refvps.annotate.frames import FrameSource

    session = ClassicSegmenter().open(FrameSource([clip.frame_path(n) for n in clip.frame_names]))
    scores = {middle: iou(session.add_points(middle, [centre_click(labels[middle])], [1]), labels[middle])}
    for reverse in (False, True):
        for index, mask in session.propagate(middle, reverse):
            scores[index] = iou(mask, labels[index])
    assert sorted(scores) == list(range(len(clip)))
    return float(np.mean(list(scores.values())))


@pytest.mark.slow
def test_one_centre_click_and_propagation_on_the_synthetic_benchmark(tmp_path):
    """The issue's goal: median J >= 0.65 over the 12 clips of the default synthetic benchmark (the
    GrabCut segmenter before gave 0.53 by this measure; benchmarks/bench_annotate.py reports both)."""
    from refvps.synth import generate_benchmark

    dataset = Dataset(generate_benchmark(tmp_path / "bench"))
    scores = [one_click_and_propagate(clip) for clip in dataset if (clip.label_stack()[len(clip) // 2] == 1).any()]
    assert len(scores) == 12
    assert np.median(scores) >= 0.65, scores
