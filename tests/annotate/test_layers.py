"""Pixel operations of the annotation layers, against naive reference implementations."""

from __future__ import annotations

import numpy as np
import pytest

from refvps.annotate import layers as L
from tests.annotate.conftest import distance_to_polyline


@pytest.mark.parametrize(
    "points,radius",
    [
        ([[20.0, 15.0]], 6.0),
        ([[5.0, 5.0], [50.0, 30.0]], 3.0),
        ([[10.5, 40.25], [30.0, 10.0], [60.0, 35.0]], 8.0),
        ([[2.0, 2.0]], 0.6),
    ],
)
def test_stroke_covers_the_brush_footprint(points, radius):
    shape = (48, 64)
    mask = L.stroke_mask(shape, points, radius)
    distance = distance_to_polyline(shape, points)
    # Pixels clearly inside the brush are painted, pixels clearly outside are not (1 px of rasterisation slack).
    assert mask[distance <= radius - 1].all()
    assert not mask[distance >= radius + 1].any()


def test_code_label_round_trip_and_ignore_wins():
    target = np.zeros((5, 6), bool)
    ignore = np.zeros((5, 6), bool)
    target[1:4, 1:4] = True
    ignore[2:5, 3:6] = True
    code = L.make_code(target, ignore)
    assert np.array_equal(L.target_of(code), target) and np.array_equal(L.ignore_of(code), ignore)
    label = L.code_to_label(code)
    expected = np.zeros((5, 6), np.uint8)
    expected[target] = 1
    expected[ignore] = 255  # Ignore is painted over the target: the pixel is ambiguous
    assert np.array_equal(label, expected)
    back = L.label_to_code(label)
    assert np.array_equal(L.ignore_of(back), ignore)
    assert np.array_equal(L.target_of(back), target & ~ignore)
    # Erasing the Ignore brings the target underneath back (the code keeps both bits).
    assert np.array_equal(L.target_of(L.with_layer(code, "ignore", np.zeros_like(ignore))), target)


def test_encode_decode_is_lossless():
    rng = np.random.default_rng(1)
    code = rng.integers(0, 4, (33, 47)).astype(np.uint8)
    assert np.array_equal(L.decode_code(L.encode_code(code), (33, 47)), code)
    with pytest.raises(ValueError):
        L.decode_code(L.encode_code(code), (10, 10))


def test_fill_holes_matches_flood_fill_from_the_border():
    mask = np.zeros((20, 20), bool)
    mask[3:15, 3:15] = True
    mask[6:9, 6:9] = False  # an enclosed hole
    mask[10:15, 0:5] = False  # a notch open to the outside is not a hole
    filled = L.fill_holes(mask)
    # Reference: background reachable from the border stays background, everything else is filled.
    outside = np.zeros_like(mask)
    stack = [(y, x) for y in range(20) for x in (0, 19)] + [(y, x) for x in range(20) for y in (0, 19)]
    while stack:
        y, x = stack.pop()
        if 0 <= y < 20 and 0 <= x < 20 and not mask[y, x] and not outside[y, x]:
            outside[y, x] = True
            stack += [(y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)]
    assert np.array_equal(filled, ~outside)


def test_overlay_colours():
    code = L.make_code(np.array([[1, 0, 1]], bool), np.array([[0, 0, 1]], bool))
    rgba = L.overlay_rgba(code).astype(int)
    r, g, b, a = rgba[0, 0]
    assert a == 255 and r > 200 and g < 80 and b < 80  # target: red (paper figure B)
    assert tuple(rgba[0, 1]) == (0, 0, 0, 0)  # background: transparent
    r, g, b, a = rgba[0, 2]
    assert a == 255 and r == g == b and 100 < r < 230  # Ignore: grey, drawn over the target


def test_mask_signature_tells_masks_apart():
    a = np.zeros((8, 8), bool)
    b = a.copy()
    b[3, 3] = True
    assert L.mask_signature(a) == L.mask_signature(a.copy())
    assert L.mask_signature(a) != L.mask_signature(b)
    assert L.mask_signature(np.zeros((4, 16), bool)) != L.mask_signature(np.zeros((8, 8), bool))
