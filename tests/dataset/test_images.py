"""Opening images one way (refvps.dataset.images): every kind of file gets its own error, naming it."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from refvps.dataset import encode_label_png, image_size, read_label_png, read_rgb
from refvps.dataset.images import FRAME, LABEL_MAP, open_image, read_image_bytes
from refvps.dataset.pngfast import decode_label
from refvps.errors import DatasetError, PredictionError
from refvps.predictions.masks import PREDICTED_MASK, decode_mask_png


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("kind", "error"), [(FRAME, DatasetError), (LABEL_MAP, DatasetError), (PREDICTED_MASK, PredictionError)]
)
def test_missing_and_damaged_files_raise_the_kinds_error_naming_the_file(tmp_path, kind, error):
    missing = tmp_path / "missing.png"
    for attempt in (lambda: read_image_bytes(missing, kind), lambda: open_image(missing, kind).__enter__()):
        with pytest.raises(error, match="not found") as info:
            attempt()
        assert info.value.path == missing and info.value.hint == kind.missing_hint
    good = _png(np.zeros((8, 8), np.uint8))
    for name, data in (("garbage.png", b"not an image"), ("cut.png", good[: len(good) // 2])):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(error, match="cannot be decoded") as info:
            with open_image(path, kind) as image:
                image.load()  # a decoding error inside the block is the kind's error too
        assert str(path) in str(info.value) and info.value.hint == kind.hint


def test_errors_raised_in_the_block_pass_through(tmp_path):
    path = tmp_path / "ok.png"
    path.write_bytes(_png(np.zeros((4, 4), np.uint8)))
    with pytest.raises(PredictionError, match="mine"), open_image(path, FRAME):
        raise PredictionError("mine")


def test_frames_damaged_or_missing_are_dataset_errors(tmp_path):
    frame = tmp_path / "00000.jpg"
    Image.fromarray(np.full((6, 10, 3), 90, np.uint8)).save(frame)
    assert image_size(frame) == (10, 6) and read_rgb(frame).shape == (6, 10, 3)
    frame.write_bytes(b"\xff\xd8 not really a jpeg")
    for read in (image_size, read_rgb):
        with pytest.raises(DatasetError, match="frame cannot be decoded"):
            read(frame)
    with pytest.raises(DatasetError, match="frame not found"):
        image_size(tmp_path / "00001.jpg")


def test_label_maps_read_the_same_on_both_roads_and_writable(tmp_path):
    rng = np.random.default_rng(3)
    label = rng.choice(np.array([0, 1, 2, 255], np.uint8), size=(13, 21))
    fast = tmp_path / "fast.png"  # what refvps writes: rows without filters, the fast road
    fast.write_bytes(encode_label_png(label))
    slow = tmp_path / "slow.png"  # greyscale with libpng's adaptive row filters: PIL's road
    slow.write_bytes(cv2.imencode(".png", label)[1].tobytes())
    assert decode_label(fast.read_bytes()) is not None and decode_label(slow.read_bytes()) is None
    for path in (fast, slow):
        read = read_label_png(path)
        np.testing.assert_array_equal(read, label)
        assert read.flags.writeable and read.flags.c_contiguous
        read[0, 0] = 7  # callers may edit what they read


def test_predicted_masks_use_the_same_errors(tmp_path):
    path = tmp_path / "m.png"
    path.write_bytes(b"garbage")
    with pytest.raises(PredictionError, match="predicted mask cannot be decoded"):
        decode_mask_png(path, (4, 4), str(path))
    with pytest.raises(PredictionError, match="predicted mask not found"):
        decode_mask_png(tmp_path / "none.png", (4, 4), "none.png")
