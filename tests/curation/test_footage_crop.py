"""Padding detection on real footage under compression: the exact box, not 1-8 pixels off."""

from __future__ import annotations

import pytest

from refvps.curation.crop import detect_crop
from refvps.curation.video import frames_at, probe_video, sample_times
from tests.footage import footage_dir

from .footage import boxed


def _frames(path, count=32):
    probe = probe_video(path)
    return [rgb for _, rgb in frames_at(probe, sample_times(0.0, probe.duration_s, count))]


# (footage, start s, frame size, true picture box, bar colour, encoder, tolerance in pixels)
CASES = [
    ("02_cups", 4.0, (1280, 720), (0, 88, 1280, 544), "black", "crf23", 0),  # white table next to the bottom bar
    ("05_default_juggle", 2.0, (1280, 720), (0, 88, 1280, 544), "black", "crf23", 0),
    ("04_coffee", 5.0, (1279, 719), (0, 87, 1279, 543), "black", "crf23_444", 0),  # odd size and offset
    ("03_blocks", 3.0, (1279, 719), (0, 87, 1279, 543), "black", "crf35_444", 1),
    ("04_coffee", 2.0, (1279, 719), (0, 87, 1279, 543), "black", "vp9_crf35", 1),  # odd size in 4:2:0 VP9
    ("02_cups", 1.0, (1280, 720), (160, 0, 960, 720), "black", "crf35", 1),  # pillarbox
    ("05_default_juggle", 6.0, (1280, 720), (100, 60, 1075, 597), "black", "crf35", 1),  # bars on all sides
    ("03_blocks", 5.0, (854, 480), (0, 61, 854, 359), "0x202020", "crf23", 0),  # dark grey bars, dark picture
]


@pytest.mark.parametrize("name,start,size,box,colour,encoder,tol", CASES)
def test_letterbox_box_is_exact_under_compression(tmp_path, name, start, size, box, colour, encoder, tol):
    path = boxed(tmp_path / "boxed", name, start=start, seconds=1.0, size=size, box=box, encoder=encoder, colour=colour)
    found = detect_crop(_frames(path))
    assert max(abs(a - b) for a, b in zip(found, box)) <= tol, (found, box)


@pytest.mark.parametrize("name", ["02_cups", "04_coffee"])
def test_a_flat_table_along_the_border_is_not_a_bar(name):
    """Both videos end in a white table: flat and still, but it fades into the picture; no bar."""
    assert detect_crop(_frames(footage_dir() / f"{name}.mp4")) == (0, 0, 1280, 720)
