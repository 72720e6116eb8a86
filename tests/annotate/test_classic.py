"""The classical segmenter: GrabCut from clicks and optical-flow propagation, scored against ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from refvps.annotate.frames import FrameSource
from refvps.annotate.segmenters.classic import ClassicSegmenter, grabcut_from_clicks, track_mask
from refvps.dataset import Dataset
from tests.annotate.conftest import distance_inside


def iou(pred: np.ndarray, label: np.ndarray) -> float:
    """Ignore-aware IoU, as the benchmark scores it (DESIGN §5): both empty counts as 1."""
    valid = label != 255
    gt = (label == 1) & valid
    pr = pred & valid
    union = (gt | pr).sum()
    return 1.0 if union == 0 else float((gt & pr).sum() / union)


def three_clicks(label: np.ndarray):
    """What an annotator does: a click deep inside the target, one in another part of it, one negative just outside."""
    target = label == 1
    inside = distance_inside(target)
    y1, x1 = np.unravel_index(inside.argmax(), inside.shape)
    yy, xx = np.mgrid[: label.shape[0], : label.shape[1]]
    far = np.where(inside >= 0.5 * inside.max(), np.hypot(xx - x1, yy - y1), -1)
    y2, x2 = np.unravel_index(far.argmax(), far.shape)
    outside = distance_inside(~target)
    clear_background = distance_inside(label == 0)
    near = np.where((outside > 8) & (outside < 25) & (clear_background > 4), clear_background, -1)
    y3, x3 = np.unravel_index(near.argmax(), near.shape)
    return [[float(x1), float(y1)], [float(x2), float(y2)], [float(x3), float(y3)]], [1, 1, 0]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from refvps.synth import generate_benchmark

    # Clip 5 of seed 0 is the melting ice cream (clip i does not depend on how many are generated).
    return Dataset(generate_benchmark(tmp_path_factory.mktemp("synth") / "bench", clips=6, seed=0))


def test_three_clicks_on_the_middle_frame_reach_iou_07_over_the_clip(synthetic):
    clip = next(c for c in synthetic if "melting" in c.id)
    labels = clip.label_stack()
    middle = len(clip) // 2
    session = ClassicSegmenter().open(FrameSource([clip.frame_path(n) for n in clip.frame_names]))
    points, kinds = three_clicks(labels[middle])
    scores = {middle: iou(session.add_points(middle, points, kinds), labels[middle])}
    for reverse in (False, True):
        for index, mask in session.propagate(middle, reverse):
            scores[index] = iou(mask, labels[index])
    assert sorted(scores) == list(range(len(clip)))
    assert scores[middle] >= 0.8
    assert np.mean(list(scores.values())) >= 0.7, scores


def test_grabcut_finds_a_disc_from_one_click():
    rng = np.random.default_rng(0)
    image = rng.integers(30, 90, (80, 120, 3)).astype(np.uint8)
    yy, xx = np.mgrid[0:80, 0:120]
    disc = (xx - 70) ** 2 + (yy - 40) ** 2 <= 15**2
    image[disc] = (220, 200, 40)
    mask = grabcut_from_clicks(image, [(70, 40)], [1])
    assert iou(mask, disc.astype(np.uint8)) > 0.9
    assert not grabcut_from_clicks(image, [(70, 40)], [0]).any()  # negative clicks only: nothing


def test_flow_tracking_follows_a_moving_disc():
    rng = np.random.default_rng(1)
    background = rng.integers(30, 90, (80, 120, 3)).astype(np.uint8)
    yy, xx = np.mgrid[0:80, 0:120]

    def frame(cx):
        image = background.copy()
        disc = (xx - cx) ** 2 + (yy - 40) ** 2 <= 12**2
        image[disc] = (220, 200, 40)
        return image, disc

    previous, mask = frame(40)
    current, truth = frame(46)
    tracked = track_mask(previous, current, mask)
    assert iou(tracked, truth.astype(np.uint8)) > 0.85
    assert iou(mask, truth.astype(np.uint8)) < 0.7  # the shift matters: not tracking would fail
