"""The fast PNG road (refvps.dataset.pngfast) against PIL: same arrays, and PIL for everything else."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from refvps.dataset.palette import encode_label_png, read_label_png
from refvps.dataset.pngfast import decode_label, decode_mask, read_header
from refvps.errors import DatasetError, PredictionError
from refvps.predictions.masks import decode_mask_png_raw

H, W = 23, 37


def _pil_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def _pil_foreground(data: bytes) -> np.ndarray:
    """What 'any nonzero colour value' means, read with PIL (alpha is not a colour)."""
    with Image.open(io.BytesIO(data)) as image:
        mode = image.mode
        array = np.asarray(image)
    if array.ndim == 2:
        return array != 0
    channels = {"LA": 1, "PA": 1, "RGBA": 3}.get(mode, array.shape[2])
    return array[:, :, :channels].any(axis=2)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _handmade_png(samples: np.ndarray, colour_type: int, filters: list[int], palette: bytes | None = None) -> bytes:
    """An 8-bit, one-sample-per-pixel PNG with chosen row filters (0 None, 1 Sub, 2 Up)."""
    height, width = samples.shape
    rows, previous = [], np.zeros(width, np.uint8)
    for y in range(height):
        row = samples[y]
        if filters[y] == 1:
            row = row - np.concatenate(([0], row[:-1])).astype(np.uint8)
        elif filters[y] == 2:
            row = row - previous
        rows.append(bytes([filters[y]]) + row.astype(np.uint8).tobytes())
        previous = samples[y]
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    chunks = _chunk(b"IHDR", header)
    if palette is not None:
        chunks += _chunk(b"PLTE", palette)
    chunks += _chunk(b"IDAT", zlib.compress(b"".join(rows))) + _chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def _masks(rng):
    mask = np.zeros((H, W), bool)
    mask[5:17, 8:30] = True
    mask ^= rng.random((H, W)) < 0.1
    return mask


def _variants(rng):
    """PNG files of one mask in many encodings; name -> (bytes, fast road expected)."""
    mask = _masks(rng)
    values = np.where(mask, rng.integers(1, 256, (H, W)), 0).astype(np.uint8)
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[mask, int(rng.integers(0, 3))] = 200
    rgba = np.dstack([rgb, np.full((H, W), 255, np.uint8)])  # opaque everywhere: alpha must not count
    grey_alpha = np.dstack([values, np.full((H, W), 255, np.uint8)])
    palette = Image.frombytes("P", (W, H), mask.astype(np.uint8).tobytes())
    palette.putpalette([255, 255, 255, 0, 0, 0] + [0] * 762)  # index 0 is white: indices, not colours
    ok, cv2_grey = cv2.imencode(".png", values)
    ok2, cv2_bgr = cv2.imencode(".png", rgb)
    assert ok and ok2
    return {
        "L 0/255": (_pil_bytes(Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)), compress_level=1), True),
        "L mixed values": (_pil_bytes(Image.fromarray(values)), True),
        "L written by OpenCV": (cv2_grey.tobytes(), True),
        "RGB": (_pil_bytes(Image.fromarray(rgb)), True),
        "BGR written by OpenCV": (cv2_bgr.tobytes(), True),
        "RGBA opaque": (_pil_bytes(Image.fromarray(rgba, "RGBA")), True),
        "LA opaque": (_pil_bytes(Image.fromarray(grey_alpha, "LA")), True),
        "L with tRNS": (_pil_bytes(Image.fromarray(values), transparency=0), True),
        "P 8-bit, white index 0": (_pil_bytes(palette), True),
        "P 1-bit": (_pil_bytes(palette, bits=1), False),
        "1-bit": (_pil_bytes(Image.fromarray(mask)), False),
        "16-bit": (_pil_bytes(Image.fromarray(values.astype(np.uint16) * 257)), True),
    }


def _png16(samples: np.ndarray, colour_type: int) -> bytes:
    """A 16-bit PNG of (H, W, C) samples, big-endian, filter 0 (PIL cannot write 16-bit colour)."""
    height, width = samples.shape[:2]
    rows = b"".join(b"\x00" + samples[y].astype(">u2").tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    chunks = _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


@pytest.mark.parametrize("colour_type, channels", [(0, 1), (2, 3), (4, 2), (6, 4)])
def test_16_bit_masks_with_small_values_are_foreground(colour_type, channels):
    """A mask stored as 0/1 in 16-bit samples: PIL keeps only the high byte of 16-bit colour (all 0),
    so these must be read with every bit; the alpha channel is still not a colour."""
    mask = _masks(np.random.default_rng(8))
    samples = np.zeros((H, W, channels), np.uint16)
    samples[mask, channels - 1 if colour_type in (0, 2) else 0] = 1  # the last colour channel, or grey
    if colour_type in (4, 6):
        samples[:, :, -1] = 65535  # opaque everywhere: alpha must not count
    data = _png16(samples, colour_type)
    got = decode_mask(data, (H, W))
    assert got is not None
    np.testing.assert_array_equal(got != 0, mask)
    np.testing.assert_array_equal(decode_mask_png_raw(data, (H, W), "mask.png") != 0, mask)


def test_a_file_that_is_not_a_png_is_an_error():
    """A JPEG named .png: its compression noise would turn background pixels into foreground."""
    mask = _masks(np.random.default_rng(9))
    buffer = io.BytesIO()
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(buffer, format="JPEG")
    with pytest.raises(PredictionError, match="is a JPEG file, not a PNG: mask.png"):
        decode_mask_png_raw(buffer.getvalue(), (H, W), "mask.png")


@pytest.mark.parametrize("seed", range(3))
def test_every_encoding_gives_the_foreground_pil_gives(seed):
    for name, (data, fast) in _variants(np.random.default_rng(seed)).items():
        expected = _pil_foreground(data)
        got = decode_mask(data, (H, W))
        assert (got is not None) == fast, name
        if got is not None:
            np.testing.assert_array_equal(got != 0, expected, err_msg=name)
        # And through the reader, whichever road it takes.
        np.testing.assert_array_equal(decode_mask_png_raw(data, (H, W), name) != 0, expected, err_msg=name)


def test_label_maps_decode_to_their_indices():
    rng = np.random.default_rng(4)
    label = rng.choice(np.array([0, 1, 2, 255], np.uint8), size=(H, W), p=[0.5, 0.3, 0.1, 0.1])
    data = encode_label_png(label)
    np.testing.assert_array_equal(decode_label(data), label)
    grey = _pil_bytes(Image.fromarray(label))  # an 8-bit greyscale label map: PIL filters it, so PIL decodes it
    assert decode_label(grey) is None or np.array_equal(decode_label(grey), label)


def test_filtered_rows_are_left_to_pil(tmp_path):
    """Sub/Up-filtered rows are not decoded by the zlib road; the result is still exact."""
    rng = np.random.default_rng(5)
    label = rng.choice(np.array([0, 1, 255], np.uint8), size=(H, W))
    palette = bytes(range(256)) * 3
    filters = [int(f) for f in rng.integers(0, 3, H)]
    filters[0] = 1
    data = _handmade_png(label, 3, filters, palette)
    assert decode_label(data) is None
    with Image.open(io.BytesIO(data)) as image:
        np.testing.assert_array_equal(np.asarray(image), label)  # a valid PNG
    path = tmp_path / "label.png"
    path.write_bytes(data)
    np.testing.assert_array_equal(read_label_png(path), label)
    plain = _handmade_png(label, 3, [0] * H, palette)
    np.testing.assert_array_equal(decode_label(plain), label)


def test_a_frame_of_another_size_is_left_to_pil_which_names_it():
    data = _pil_bytes(Image.fromarray(np.zeros((H, W), np.uint8)))
    assert decode_mask(data, (H + 1, W)) is None
    with pytest.raises(PredictionError, match="differs from the frame size"):
        decode_mask_png_raw(data, (H + 1, W), "mask.png")


@pytest.mark.parametrize("style", ["L 0/255", "RGB", "P 8-bit, white index 0"])
def test_damaged_files_never_decode_to_a_wrong_mask(style):
    """Truncated anywhere or with any byte changed: the fast road declines (the PIL road then
    raises), or, where the change is harmless (an ancillary byte), gives what PIL gives."""
    rng = np.random.default_rng(6)
    data, _ = _variants(rng)[style]
    expected = _pil_foreground(data)
    start, end = read_header(data).idat[-1]
    for cut in range(0, len(data) - 1, max(1, len(data) // 40)):
        assert read_header(data[:cut]) is None and decode_mask(data[:cut], (H, W)) is None
        if cut < (start + end) // 2:  # image data missing: PIL raises, and so does the reader
            with pytest.raises(PredictionError):
                decode_mask_png_raw(data[:cut], (H, W), "mask.png")
    for position in rng.choice(np.arange(8, len(data)), size=60, replace=False):
        damaged = bytearray(data)
        damaged[position] ^= 1 << int(rng.integers(0, 8))
        got = decode_mask(bytes(damaged), (H, W))
        if got is not None:
            np.testing.assert_array_equal(got != 0, expected)


def test_damaged_ground_truth_is_an_error_or_declined(tmp_path):
    rng = np.random.default_rng(7)
    label = rng.choice(np.array([0, 1, 255], np.uint8), size=(H, W))
    data = encode_label_png(label)
    start, end = read_header(data).idat[0]
    path = tmp_path / "00000.png"
    path.write_bytes(data[: (start + end) // 2])
    with pytest.raises(DatasetError, match="cannot be decoded"):
        read_label_png(path)
    for position in rng.choice(np.arange(8, len(data)), size=60, replace=False):
        damaged = bytearray(data)
        damaged[position] ^= 1 << int(rng.integers(0, 8))
        got = decode_label(bytes(damaged))
        assert got is None or np.array_equal(got, label)


def _inflaters() -> list[str]:
    found = ["zlib"]
    try:
        import isal.isal_zlib  # noqa: F401

        found.append("isal")
    except ImportError:
        pass
    return found


@pytest.mark.parametrize("inflater", _inflaters())
def test_label_maps_inflate_the_same_with_either_library(monkeypatch, inflater):
    """ISA-L's inflate (when installed) and zlib's give PIL's indices; a stream whose own checksum is
    wrong (chunk CRCs right) is declined by both, so PIL names the damage."""
    import refvps.dataset.pngfast as pngfast

    if inflater == "zlib":
        monkeypatch.setattr(pngfast, "_inflate_lib", zlib)
        monkeypatch.setattr(pngfast, "_INFLATE_ERRORS", (zlib.error,))
    rng = np.random.default_rng(7)
    label = rng.choice(np.array([0, 1, 2, 255], np.uint8), size=(H, W), p=[0.6, 0.2, 0.1, 0.1])
    data = encode_label_png(label)
    with Image.open(io.BytesIO(data)) as image:
        np.testing.assert_array_equal(pngfast.decode_label(data), np.asarray(image))
    rows = b"".join(b"\x00" + label[y].tobytes() for y in range(H))
    stream = bytearray(zlib.compress(rows))
    stream[-1] ^= 0xFF  # the Adler-32 of the image data, not a chunk CRC
    header = struct.pack(">IIBBBBB", W, H, 8, 0, 0, 0, 0)
    damaged = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", bytes(stream)) + _chunk(b"IEND", b"")
    assert read_header(damaged) is not None  # every chunk is intact: only the inflate can tell
    assert pngfast.decode_label(damaged) is None
