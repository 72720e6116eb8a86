"""The files of a bundle before it is written: each entry is a path inside the zip and its content
(a file on disk, read when the zip is written, or bytes).

Planning first and writing last lets the leak check (:mod:`refvps.codabench.leak`) look at exactly
what would be uploaded before anything is, and keeps the zip deterministic: entries in name order,
a fixed timestamp, so the same dataset and options give the same bytes.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterator

from refvps.progress import NO_PROGRESS, Progress

ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip can hold: reproducible bundles
_STORED = {".jpg", ".jpeg", ".png", ".zip"}  # compressed already: deflating them again only costs time


@dataclass(frozen=True)
class Entry:
    """One file of the bundle: ``arcname`` inside the zip; its content is ``source`` or ``data``."""

    arcname: str
    source: Path | None = None
    data: bytes | None = None

    def open(self) -> BinaryIO:
        if self.source is not None:
            return open(self.source, "rb")
        return io.BytesIO(self.data or b"")

    def read(self) -> bytes:
        with self.open() as handle:
            return handle.read()

    @property
    def size(self) -> int:
        return self.source.stat().st_size if self.source is not None else len(self.data or b"")


class BundlePlan:
    """The entries of a bundle, by path inside the zip (a path is planned once)."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}

    def _add(self, entry: Entry) -> None:
        path = PurePosixPath(entry.arcname)
        if path.is_absolute() or ".." in path.parts or not path.parts:
            raise ValueError(f"not a relative path inside the bundle: {entry.arcname!r}")
        if entry.arcname in self._entries:
            raise ValueError(f"{entry.arcname} is planned twice")
        self._entries[entry.arcname] = entry

    def add_file(self, arcname: str, source: Path) -> None:
        self._add(Entry(arcname, source=Path(source)))

    def add_bytes(self, arcname: str, data: bytes) -> None:
        self._add(Entry(arcname, data=bytes(data)))

    def add_text(self, arcname: str, text: str) -> None:
        self.add_bytes(arcname, text.encode("utf-8"))

    def add_tree(self, prefix: str, folder: Path, files: list[Path]) -> None:
        """``files`` (paths under ``folder``) as ``prefix/<their path relative to folder>``."""
        for path in files:
            self.add_file(f"{prefix}/{path.relative_to(folder).as_posix()}", path)

    def __iter__(self) -> Iterator[Entry]:
        return iter(sorted(self._entries.values(), key=lambda e: e.arcname))

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, arcname: object) -> bool:
        return arcname in self._entries

    def under(self, prefix: str) -> list[Entry]:
        """The entries at ``prefix`` (a file) or below it (a folder)."""
        prefix = prefix.strip("/")
        return [e for e in self if e.arcname == prefix or e.arcname.startswith(prefix + "/")]

    def write_zip(self, out: str | Path, *, progress: Progress = NO_PROGRESS) -> Path:
        """Write the bundle to ``out`` atomically (a temporary file in the same folder, then a rename).

        Streamed file by file: a bundle with the frames of a whole benchmark never sits in memory
        (which is why this does not use :func:`refvps.fileio.atomic_write_with`).
        """
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                with zipfile.ZipFile(handle, "w", allowZip64=True) as archive, progress.stage("zip", len(self)):
                    for entry in self:
                        _write_member(archive, entry)
                        progress.advance("zip", note=entry.arcname)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, out)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return out


def _write_member(archive: zipfile.ZipFile, entry: Entry) -> None:
    info = zipfile.ZipInfo(entry.arcname, date_time=ZIP_DATE)
    info.external_attr = 0o644 << 16
    suffix = PurePosixPath(entry.arcname).suffix.lower()
    info.compress_type = zipfile.ZIP_STORED if suffix in _STORED else zipfile.ZIP_DEFLATED
    with entry.open() as source, archive.open(info, "w", force_zip64=entry.size > 2**31) as target:
        shutil.copyfileobj(source, target, 1 << 20)
