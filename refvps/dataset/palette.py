"""Label maps as 8-bit palette PNGs with the DAVIS palette, and reading masks without colour traps.

The DAVIS palette is the PASCAL VOC colour map: index 0 black, 1 dark red, 2 dark green, ...,
255 light grey (224, 224, 192), which Ref-VPS uses for Ignore. Reading a palette PNG with OpenCV
returns colours, not indices, so labels are always read with PIL here.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from refvps.errors import DatasetError
from refvps.fileio import atomic_write_bytes

IGNORE_INDEX = 255
BACKGROUND_INDEX = 0


def davis_palette() -> np.ndarray:
    """The 256 × 3 uint8 DAVIS / PASCAL VOC palette (bit-interleaved colour map)."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        value, r, g, b = index, 0, 0, 0
        for shift in range(8):
            r |= ((value >> 0) & 1) << (7 - shift)
            g |= ((value >> 1) & 1) << (7 - shift)
            b |= ((value >> 2) & 1) << (7 - shift)
            value >>= 3
        palette[index] = (r, g, b)
    return palette


DAVIS_PALETTE = davis_palette()
_PALETTE_BYTES = DAVIS_PALETTE.tobytes()


def encode_label_png(label: np.ndarray) -> bytes:
    """Encode a uint8 label map (0 background, k object, 255 Ignore) as a DAVIS-palette PNG."""
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"a label map is 2-D (H, W), got shape {label.shape}")
    if label.dtype != np.uint8:
        if label.size and (label.min() < 0 or label.max() > 255):
            raise ValueError("label values must lie in 0..255")
        label = label.astype(np.uint8)
    # frombytes keeps the raw indices; Image.convert('P') would quantise them as colours.
    image = Image.frombytes("P", (label.shape[1], label.shape[0]), np.ascontiguousarray(label).tobytes())
    image.putpalette(_PALETTE_BYTES)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def write_label_png(path: str | Path, label: np.ndarray) -> Path:
    """Write a label map as an 8-bit DAVIS-palette PNG, atomically."""
    return atomic_write_bytes(path, encode_label_png(label))


def read_label_png(path: str | Path) -> np.ndarray:
    """Read a label map as uint8 indices (H, W).

    Palette ('P') and greyscale ('L') images give their indices/values; anything else is an error,
    because its pixel values are colours, not labels.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode in ("P", "L"):
                return np.array(image, dtype=np.uint8)
    except FileNotFoundError:
        raise DatasetError(f"mask not found: {path}", hint="write the missing mask", path=path) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(
            f"mask cannot be decoded (corrupt or truncated PNG?): {path}: {exc}",
            hint="re-export the mask as an 8-bit palette PNG",
            path=path,
        ) from None
    raise DatasetError(
        f"mask is a {mode} image, not an 8-bit palette PNG: {path}",
        hint="save masks as 8-bit palette PNGs (refvps.dataset.write_label_png does this)",
        path=path,
    )
