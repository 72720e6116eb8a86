"""Atomic file writes and small JSON helpers.

Nothing a user made is lost: every write goes to a temporary file in the same folder, is flushed to
disk, and then replaces the target in one ``os.replace``. A crash mid-write leaves the old file.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from refvps.errors import DatasetError


def _current_umask() -> int:
    # os.umask can only be read by setting it; do it once, at import, before any threads start.
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files with mode 0600; finished files get the usual permissions instead.
_FILE_MODE = 0o666 & ~_current_umask()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # name the file the user asked for, not our temporary one
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, *, indent: int | None = 2) -> Path:
    text = json.dumps(obj, indent=indent, ensure_ascii=False, sort_keys=False)
    return atomic_write_text(path, text + "\n")


def atomic_write_with(path: str | Path, writer: Callable[[io.BytesIO], None]) -> Path:
    """Atomically write what ``writer`` puts into a bytes buffer (e.g. ``image.save(buf, 'PNG')``)."""
    buffer = io.BytesIO()
    writer(buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def read_json(path: str | Path, *, what: str = "JSON file") -> Any:
    """Read JSON, turning a missing file or a parse error into a :class:`DatasetError` that names it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"{what} not found: {path}", hint="check the path", path=path) from None
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"{what} is not UTF-8 text: {path} ({exc})", hint="save it as UTF-8 JSON", path=path
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{what} does not parse: {path}: line {exc.lineno} column {exc.colno}: {exc.msg}",
            hint="fix the JSON syntax at that position (a trailing comma or a missing quote is common)",
            path=path,
        ) from None


@contextlib.contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """An exclusive advisory lock (``fcntl.flock``) held for a read-modify-write of a shared file.

    The lock file (``.<name>.lock`` beside the file) is removed when the lock is released, so none
    stays behind in a dataset. A waiter that locked a file which was removed meanwhile sees that the
    path no longer names the file it holds, and locks the new one instead.
    """
    path = Path(path)
    lock_path = path.parent / f".{path.name}.lock"  # hidden, so dataset checks do not see it
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = open(lock_path, "a+")
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            current = os.stat(lock_path)
        except FileNotFoundError:
            current = None
        held = os.fstat(handle.fileno())
        if current is not None and (current.st_ino, current.st_dev) == (held.st_ino, held.st_dev):
            break
        handle.close()  # the holder before us removed it: lock the file that is there now
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock_path)
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()
