"""Preview strips: the overlay colours and the saved image."""

from __future__ import annotations

import numpy as np
from PIL import Image

from refvps.synth import overlay, write_preview


def test_overlay_tints_target_red_and_ignore_grey():
    frame = np.full((2, 3, 3), 100, np.uint8)
    label = np.array([[0, 1, 255], [1, 0, 0]], np.uint8)
    out = overlay(frame, label, opacity=0.5)
    assert out[0, 0].tolist() == [100, 100, 100]
    assert out[0, 1].tolist() == [178, 50, 50]  # 0.5 * 100 + 0.5 * (255, 0, 0), rounded
    assert out[0, 2].tolist() == [150, 150, 150]  # 0.5 * 100 + 0.5 * 200


def test_write_preview(tmp_path):
    path = write_preview("ripples", tmp_path / "ripples.png", size=(64, 36), frames=8, count=3)
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
    assert width == 3 * 64 + 2 * 2 and height == 14 + 2 * 36 + 2
