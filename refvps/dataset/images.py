"""Opening image files, one way: frames, label maps and predicted masks.

PIL signals a file that is not a decodable image with several exception types (``OSError`` for
truncated data, ``UnidentifiedImageError`` for a non-image, ``SyntaxError`` and ``ValueError`` for
broken chunks, ``EOFError``), and a missing file with ``FileNotFoundError``. :func:`open_image` and
:func:`read_image_bytes` turn every one of them into the project error of the caller's
:class:`ImageKind`, naming the file and saying what to do, so that no caller lists them again.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from PIL import Image, UnidentifiedImageError

from refvps.errors import DatasetError, RefvpsError

DECODE_ERRORS: tuple[type[BaseException], ...] = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError)
"""What PIL raises, while opening or decoding, for a file that is not a decodable image."""


@dataclass(frozen=True)
class ImageKind:
    """What a kind of image file is called in errors, which error it raises and what the user should do.

    ``what`` names the file ("frame", "ground-truth mask", ...); ``container`` the format the message
    suspects ("image", "PNG"); ``hint`` is the advice for a file that cannot be decoded,
    ``missing_hint`` for one that is not there.
    """

    what: str
    hint: str
    missing_hint: str
    error: type[RefvpsError] = DatasetError
    container: str = "image"

    def missing(self, name: str | Path) -> RefvpsError:
        return self.error(f"{self.what} not found: {name}", hint=self.missing_hint, path=name)

    def unreadable(self, name: str | Path, exc: BaseException) -> RefvpsError:
        return self.error(f"{self.what} cannot be read: {name}: {exc}", hint=self.hint, path=name)

    def undecodable(self, name: str | Path, exc: BaseException) -> RefvpsError:
        return self.error(
            f"{self.what} cannot be decoded (corrupt or truncated {self.container}?): {name}: {exc}",
            hint=self.hint,
            path=name,
        )


FRAME = ImageKind(
    "frame",
    hint="re-export the clip's frames (refvps validate ROOT lists every damaged file)",
    missing_hint="restore the frame or re-export the clip",
)
LABEL_MAP = ImageKind(
    "ground-truth mask",
    hint="re-export the mask as an 8-bit palette PNG (refvps validate ROOT lists every damaged file)",
    missing_hint="every frame listed in meta_expressions.json has a mask; write the missing one "
    "(refvps validate ROOT lists them)",
    container="PNG",
)


def read_image_bytes(path: str | Path, kind: ImageKind) -> bytes:
    """The bytes of an image file, with ``kind``'s error when it is missing or cannot be read."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise kind.missing(path) from None
    except OSError as exc:
        raise kind.unreadable(path, exc) from None


@contextlib.contextmanager
def open_image(source: str | Path | bytes, kind: ImageKind, *, name: str | Path | None = None) -> Iterator[Image.Image]:
    """``PIL.Image.open`` of a path or of a file's bytes, as a context manager.

    A missing file, and any PIL failure to open *or decode* the image inside the block (e.g.
    ``image.load()``, ``image.convert()``), raise ``kind``'s error naming ``name`` (default: the
    path). Errors the block raises itself that are not PIL's (a :class:`RefvpsError`) pass through.
    """
    if name is None:
        name = "<image bytes>" if isinstance(source, bytes) else source
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            yield image
    except FileNotFoundError:
        raise kind.missing(name) from None
    except DECODE_ERRORS as exc:
        raise kind.undecodable(name, exc) from None
