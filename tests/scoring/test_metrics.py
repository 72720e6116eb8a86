"""The metrics against naive reference implementations written here, and against hand-computed cases."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from refvps.predictions.masks import rle_counts
from refvps.scoring.metrics import (
    bound_pixels,
    boundary_f,
    boundary_map,
    dilate_boundary,
    dilate_disk,
    disk,
    j_recall,
    jaccard,
    nonzero_box,
    temporal_consistency,
)

# --------------------------------------------------------------------------------------------
# Naive references: pixel loops and brute-force distances, straight from the definitions
# --------------------------------------------------------------------------------------------


def naive_iou(gt, pred, void):
    inter = union = 0
    for y in range(gt.shape[0]):
        for x in range(gt.shape[1]):
            if void[y, x]:
                continue
            g, p = bool(gt[y, x]), bool(pred[y, x])
            inter += g and p
            union += g or p
    return 1.0 if union == 0 else inter / union


def naive_seg2bmap(seg):
    """DAVIS's rule, pixel by pixel: differs from the right, lower or lower-right neighbour;
    last row: right neighbour only; last column: lower neighbour only; bottom-right corner: never."""
    seg = np.asarray(seg, bool)
    h, w = seg.shape
    out = np.zeros((h, w), bool)
    for y in range(h):
        for x in range(w):
            if y == h - 1 and x == w - 1:
                continue
            if y == h - 1:
                out[y, x] = seg[y, x] != seg[y, x + 1]
            elif x == w - 1:
                out[y, x] = seg[y, x] != seg[y + 1, x]
            else:
                out[y, x] = seg[y, x] != seg[y, x + 1] or seg[y, x] != seg[y + 1, x] or seg[y, x] != seg[y + 1, x + 1]
    return out


def naive_f(gt, pred, void, bound_th=0.008):
    valid = ~np.asarray(void, bool)
    fg = naive_seg2bmap(np.asarray(pred, bool) & valid)
    gb = naive_seg2bmap(np.asarray(gt, bool) & valid)
    radius = math.ceil(bound_th * math.hypot(*gt.shape)) if bound_th < 1 else bound_th
    fg_points, gt_points = np.argwhere(fg), np.argwhere(gb)
    n_fg, n_gt = len(fg_points), len(gt_points)
    if n_fg == 0 and n_gt == 0:
        return 1.0
    if n_fg == 0 or n_gt == 0:
        return 0.0

    def matched(points, others):
        d2 = ((points[:, None, :] - others[None, :, :]) ** 2).sum(axis=2)
        return int((d2.min(axis=1) <= radius * radius).sum())

    precision = matched(fg_points, gt_points) / n_fg
    recall = matched(gt_points, fg_points) / n_gt
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def davis_f(gt, pred, void, bound_th=0.008):
    """DAVIS 2017's f_measure transcribed: full-frame _seg2bmap, cv2.dilate with skimage's disk."""

    def seg2bmap(seg):
        seg = np.asarray(seg, bool)
        e, s, se = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
        e[:, :-1], s[:-1, :], se[:-1, :-1] = seg[:, 1:], seg[1:, :], seg[1:, 1:]
        b = seg ^ e | seg ^ s | seg ^ se
        b[-1, :] = seg[-1, :] ^ e[-1, :]
        b[:, -1] = seg[:, -1] ^ s[:, -1]
        b[-1, -1] = 0
        return b

    valid = ~np.asarray(void, bool)
    radius = bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(gt.shape))
    steps = np.arange(-radius, radius + 1)
    x, y = np.meshgrid(steps, steps)
    kernel = ((x**2 + y**2) <= radius**2).astype(np.uint8)
    fg, gb = seg2bmap(np.asarray(pred, bool) & valid), seg2bmap(np.asarray(gt, bool) & valid)
    fg_dil, gt_dil = cv2.dilate(fg.astype(np.uint8), kernel), cv2.dilate(gb.astype(np.uint8), kernel)
    n_fg, n_gt = np.sum(fg), np.sum(gb)
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1, 0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0, 1
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1, 1
    else:
        precision, recall = np.sum(fg * gt_dil) / float(n_fg), np.sum(gb * fg_dil) / float(n_gt)
    return 0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def naive_tempcon(ious):
    if len(ious) < 2:
        return 0.0
    return 100.0 * sum(abs(ious[t + 1] - ious[t]) for t in range(len(ious) - 1)) / (len(ious) - 1)


def random_case(rng, height, width):
    """A blob-like target, a perturbed prediction and Ignore regions, sometimes touching the edges."""
    yy, xx = np.mgrid[0:height, 0:width]
    cy, cx = rng.uniform(-0.2, 1.2) * height, rng.uniform(-0.2, 1.2) * width
    ry, rx = rng.uniform(0.1, 0.6) * height, rng.uniform(0.1, 0.6) * width
    gt = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
    kind = rng.integers(0, 4)
    if kind == 0:
        pred = np.roll(gt, (int(rng.integers(-3, 4)), int(rng.integers(-3, 4))), axis=(0, 1))
    elif kind == 1:
        pred = gt ^ (rng.random(gt.shape) < 0.1)
    elif kind == 2:
        pred = rng.random(gt.shape) < 0.3
    else:
        pred = gt.copy()
        pred[rng.random(gt.shape) < 0.5] = False
    void = np.zeros_like(gt)
    for _ in range(rng.integers(0, 3)):
        y0, x0 = rng.integers(0, height), rng.integers(0, width)
        void[y0 : y0 + rng.integers(1, height // 2 + 2), x0 : x0 + rng.integers(1, width // 2 + 2)] = True
    gt &= ~void  # in a label map a pixel is target or Ignore, not both
    return gt, pred, void


@pytest.mark.parametrize("seed", range(60))
def test_j_and_f_equal_naive_references_on_random_masks(seed):
    rng = np.random.default_rng(seed)
    height, width = int(rng.integers(3, 41)), int(rng.integers(3, 57))
    gt, pred, void = random_case(rng, height, width)
    assert jaccard(gt, pred, void) == pytest.approx(naive_iou(gt, pred, void), abs=1e-12)
    assert boundary_f(gt, pred, void) == pytest.approx(naive_f(gt, pred, void), abs=1e-12)
    # Larger tolerances exercise radii above 1 pixel.
    assert boundary_f(gt, pred, void, bound_th=3) == pytest.approx(naive_f(gt, pred, void, bound_th=3), abs=1e-12)


@pytest.mark.parametrize("seed", range(24))
def test_f_equals_the_davis_transcription_exactly_at_real_radii(seed):
    """Frames large enough for radii of 3-12 pixels, with specks all over the frame, predictions far
    from the target, masks touching the edges, Ignore everywhere: the same float, not just close."""
    rng = np.random.default_rng(100 + seed)
    height, width = int(rng.integers(60, 200)), int(rng.integers(60, 260))
    gt, pred, void = random_case(rng, height, width)
    if seed % 4 == 1:  # specks all over the frame, as a noisy model makes them
        pred = pred | (rng.random(pred.shape) < 0.01)
    elif seed % 4 == 2:  # a prediction somewhere else entirely
        pred = np.roll(gt, (height // 2, width // 2), axis=(0, 1))
    for bound_th in (0.008, 0.03, 0.05, 4, 2.5):  # 2.5: an even-sized disk, anchored off-centre by OpenCV
        assert boundary_f(gt, pred, void, bound_th=bound_th) == davis_f(gt, pred, void, bound_th=bound_th)


def test_nonzero_box_finds_the_extreme_pixels():
    rng = np.random.default_rng(9)
    for _ in range(300):
        height, width = int(rng.integers(1, 30)), int(rng.choice([8, 16, 24, 13, 40]))
        mask = np.zeros((height, width), np.uint8)
        if rng.random() < 0.9:
            count = int(rng.integers(1, 5))
            mask[rng.integers(0, height, count), rng.integers(0, width, count)] = rng.integers(1, 256, count)
        ys, xs = np.nonzero(mask)
        expected = None if ys.size == 0 else (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1)
        assert nonzero_box(mask) == expected
        assert nonzero_box(mask[:, 1:]) == (
            None
            if expected is None or not mask[:, 1:].any()
            else (ys[xs > 0].min(), xs[xs > 0].min() - 1, ys[xs > 0].max() + 1, xs.max())
        )


def test_boundary_map_equals_naive_seg2bmap_everywhere():
    rng = np.random.default_rng(7)
    for _ in range(40):
        height, width = int(rng.integers(1, 20)), int(rng.integers(1, 20))
        mask = rng.random((height, width)) < rng.uniform(0.05, 0.9)
        expected = naive_seg2bmap(mask)
        crop = boundary_map(mask)
        got = np.zeros((height, width), bool)
        if crop is not None:
            h, w = crop.bmap.shape
            got[crop.y0 : crop.y0 + h, crop.x0 : crop.x0 + w] = crop.bmap != 0
            assert crop.count == int(expected.sum())
        np.testing.assert_array_equal(got, expected)


def test_stacks_reduce_over_the_last_two_axes():
    rng = np.random.default_rng(3)
    cases = [random_case(rng, 20, 30) for _ in range(6)]
    gt, pred, void = (np.stack([c[i] for c in cases]).reshape(2, 3, 20, 30) for i in range(3))
    j = jaccard(gt, pred, void)
    f = boundary_f(gt, pred, void)
    assert j.shape == f.shape == (2, 3)
    for index, (g, p, v) in enumerate(cases):
        assert j.reshape(-1)[index] == pytest.approx(naive_iou(g, p, v), abs=1e-12)
        assert f.reshape(-1)[index] == pytest.approx(naive_f(g, p, v), abs=1e-12)


# --------------------------------------------------------------------------------------------
# Hand-computed cases
# --------------------------------------------------------------------------------------------


def test_both_empty_is_one():
    empty = np.zeros((8, 8), bool)
    assert jaccard(empty, empty) == 1.0
    assert boundary_f(empty, empty) == 1.0


def test_empty_truth_with_a_prediction_is_zero():
    empty = np.zeros((8, 8), bool)
    pred = empty.copy()
    pred[2:4, 2:4] = True
    assert jaccard(empty, pred) == 0.0
    assert boundary_f(empty, pred) == 0.0
    assert jaccard(pred, empty) == 0.0  # and a missed target too


def test_disagreement_only_inside_ignore_is_perfect():
    gt = np.zeros((10, 10), bool)
    gt[2:6, 2:6] = True
    void = np.zeros_like(gt)
    void[6:9, 1:9] = True
    pred = gt.copy()
    pred[6:9, 3:7] = True  # extra prediction, all of it inside Ignore
    assert jaccard(gt, pred, void) == 1.0
    assert boundary_f(gt, pred, void) == 1.0
    assert jaccard(gt, pred) < 1.0  # without Ignore it would count


def test_iou_of_a_hand_counted_case():
    gt = np.zeros((4, 4), bool)
    gt[0:2, 0:2] = True  # 4 pixels
    pred = np.zeros_like(gt)
    pred[1:3, 1:3] = True  # 4 pixels, 1 shared
    assert jaccard(gt, pred) == pytest.approx(1 / 7)
    void = np.zeros_like(gt)
    void[2, 2] = True  # drops one predicted pixel from the union
    assert jaccard(gt, pred, void) == pytest.approx(1 / 6)


def test_tempcon_of_an_alternating_sequence():
    assert temporal_consistency([1.0, 0.0, 1.0, 0.0]) == pytest.approx(100.0)
    assert temporal_consistency([0.5, 0.7, 0.5, 0.7, 0.5]) == pytest.approx(20.0)
    # The paper's signed sum would telescope to (last - first): 0 for an alternating sequence.
    assert temporal_consistency([0.2, 0.2, 0.2]) == 0.0
    assert temporal_consistency([0.9]) == 0.0  # a single frame has no consecutive pair
    ious = np.random.default_rng(0).random(17)
    assert temporal_consistency(ious) == pytest.approx(naive_tempcon(list(ious)), abs=1e-12)
    stacked = temporal_consistency(np.stack([ious, ious[::-1]]))
    assert stacked.shape == (2,) and stacked[1] == pytest.approx(stacked[0])


def test_j_recall_counts_frames_strictly_above_half():
    assert j_recall([0.5, 0.51, 0.2, 1.0]) == pytest.approx(0.5)


def test_radius_and_disk_follow_davis():
    assert bound_pixels((576, 1024)) == 10.0  # ceil(0.008 * 1174.9)
    assert bound_pixels((16, 16)) == 1.0
    kernel = disk(2.0)
    expected = np.array([[0, 0, 1, 0, 0], [0, 1, 1, 1, 0], [1, 1, 1, 1, 1], [0, 1, 1, 1, 0], [0, 0, 1, 0, 0]], np.uint8)
    np.testing.assert_array_equal(kernel, expected)


@pytest.mark.parametrize("radius", [0.0, 1.0, 2.0, 3.0, 7.0, 10.0, 23.0, 2.5])
def test_composed_disk_dilation_equals_opencv_with_the_disk(radius):
    """dilate_disk's row/column passes give exactly cv2.dilate with skimage's disk (DAVIS's call)."""
    rng = np.random.default_rng(int(radius * 10))
    for _ in range(8):
        height, width = int(rng.integers(1, 70)), int(rng.integers(1, 70))
        canvas = (rng.random((height, width)) < rng.uniform(0.001, 0.05)).astype(np.uint8)
        np.testing.assert_array_equal(dilate_disk(canvas, radius), cv2.dilate(canvas, disk(radius)))


def test_cropped_dilation_equals_the_full_frame_dilation():
    """A boundary's dilation on its grown box (and restricted to a window) is the full-frame one there."""
    rng = np.random.default_rng(5)
    for _ in range(40):
        height, width = int(rng.integers(2, 60)), int(rng.integers(2, 60))
        mask = np.zeros((height, width), bool)
        y, x = int(rng.integers(0, height)), int(rng.integers(0, width))
        mask[y : y + int(rng.integers(1, 25)), x : x + int(rng.integers(1, 25))] = True
        mask ^= rng.random(mask.shape) < 0.02
        radius = float(rng.integers(1, 12))
        full = cv2.dilate(naive_seg2bmap(mask).astype(np.uint8), disk(radius))
        within = tuple(int(v) for v in (rng.integers(0, height), rng.integers(0, width)))
        within = (*within, within[0] + int(rng.integers(1, height)), within[1] + int(rng.integers(1, width)))
        for window in (None, within):
            crop = dilate_boundary(boundary_map(mask), radius, mask.shape, within=window)
            got = np.zeros_like(full)
            if crop is not None:
                h, w = crop.bmap.shape
                got[crop.y0 : crop.y0 + h, crop.x0 : crop.x0 + w] = crop.bmap
            expected = full.copy()
            if window is not None:
                outside = np.ones_like(full, bool)
                outside[window[0] : window[2], window[1] : window[3]] = False
                expected[outside] = 0
            np.testing.assert_array_equal(got != 0, expected != 0)


def test_rle_counts_decodes_pycocotools_strings():
    rng = np.random.default_rng(11)
    for _ in range(30):
        height, width = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        mask = rng.random((height, width)) < rng.uniform(0, 1)
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        runs = rle_counts(rle["counts"])
        flat = mask.T.reshape(-1)  # column-major
        expected, value, length = [], False, 0
        for pixel in flat:
            if pixel == value:
                length += 1
            else:
                expected.append(length)
                value, length = pixel, 1
        expected.append(length)
        np.testing.assert_array_equal(runs, expected)
    with pytest.raises(ValueError):
        rle_counts("0!0")  # "!" is below the alphabet (48 + 0..63)
    with pytest.raises(ValueError):
        rle_counts("`")  # a continuation character with nothing after it


def test_ground_truth_runs_are_what_pycocotools_encodes():
    """The scorer's RLE of each label value (one run scan per frame) equals pycocotools' ``encode``
    of the boolean mask, byte for byte: labels starting or ending with the value, absent values,
    a frame that is all one value, one-pixel frames."""
    from refvps.scoring.engine import _label_runs

    rng = np.random.default_rng(12)
    stacks = [
        rng.choice(np.array([0, 1, 2, 255], np.uint8), size=(4, *rng.integers(1, 30, 2)), p=rng.dirichlet([1, 1, 1, 1]))
        for _ in range(40)
    ]
    stacks += [np.full((2, 5, 7), 1, np.uint8), np.zeros((1, 1, 1), np.uint8), np.full((1, 1, 1), 255, np.uint8)]
    for labels in stacks:
        values = [1, 2, 255, 9]  # 9 never occurs
        got = _label_runs(labels, values)
        for frame, label in zip(got, labels):
            for value in values:
                expected = mask_utils.encode(np.asfortranarray((label == value).astype(np.uint8)))["counts"]
                assert frame[value] == expected, (label, value)
