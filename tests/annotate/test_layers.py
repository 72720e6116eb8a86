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


def test_outline_and_hatch_styles_draw_both_layers():
    """Outline: only pixels within the width of a layer's edge are drawn (the image border is no edge);
    hatch adds stripes inside; Ignore is drawn in black and white, the target in red."""
    target = np.zeros((60, 80), bool)
    target[10:50, 5:45] = True
    ignore = np.zeros((60, 80), bool)
    ignore[:, 60:] = True  # touches the image border on three sides
    code = L.make_code(target, ignore)
    outline = L.overlay_rgba(code, "outline")
    drawn = outline[..., 3] > 0
    yy, xx = np.mgrid[0:60, 0:80]
    depth = np.minimum.reduce([yy - 10, 49 - yy, xx - 5, 44 - xx])  # pixels to the target's edge
    ring = target & (depth < 2)  # width 2 at this size, computed independently
    assert np.array_equal(drawn & target, ring)
    assert (outline[ring][:, :3] == L.TARGET_RGBA[:3]).all()
    ignore_drawn = drawn & ignore
    assert np.array_equal(ignore_drawn, ignore & (np.arange(80) < 62)[None, :].repeat(60, 0))  # its left edge only
    colours = {tuple(c) for c in outline[ignore_drawn][:, :3]}
    assert colours == {L.IGNORE_DARK_RGBA[:3], L.IGNORE_LIGHT_RGBA[:3]}  # dashes of both
    hatch = L.overlay_rgba(code, "hatch")
    inside = target & (depth >= 2)
    share = (hatch[inside][:, 3] > 0).mean()
    assert 0.15 < share < 0.4  # stripes, not a fill
    assert (hatch[ignore & (np.arange(80) >= 62)][:, 3] > 0).mean() > 0.15
    with pytest.raises(ValueError, match="overlay style"):
        L.overlay_rgba(code, "neon")
