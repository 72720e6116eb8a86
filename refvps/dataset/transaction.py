"""All-or-nothing saves of one clip's masks and expressions (see docs/ANNOTATE.md, "After a crash").

A clip's ground truth lives in two places: its mask folder ``Annotations/<clip>/`` and its entry of
``meta_expressions.json``. Writing them file by file means that a crash leaves some masks new, some
old, and the expressions of either. :class:`ClipSave` makes the save one transaction::

    Annotations/
      <clip>/                      the masks readers see
      .refvps-save.<clip>/         a save in progress (hidden, so dataset checks skip it)
          new/                     1. the new masks are staged here, each fsynced
          journal.json             2. written once ``new/`` is complete: the commit point
          old/                     3. the previous masks, moved aside by the switch-over
      .refvps-save.<clip>.lock     held (``flock``) by the process saving or recovering the clip, then removed

After the commit point the switch-over renames ``<clip>/`` to ``old/`` and ``new/`` to ``<clip>/``,
then writes the clip's entry of ``meta_expressions.json`` from the journal and removes the save
folder. :func:`recover` (run by every writer at start, e.g. ``refvps annotate``) finishes a save that
has a journal and rolls back one that has not, so that after it the clip is wholly old or wholly
new. :func:`inspect` says what :func:`recover` would do; ``refvps validate`` reports it: an
interrupted save as an error (the masks and expressions may not belong together until it is
finished), an abandoned staging folder and stray temporary files as warnings.

This module is the dataset layer's: any writer can use it; it imports nothing above
:mod:`refvps.dataset`.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from refvps.dataset.format import CLIPS_FILE, EXPRESSIONS_FILE, FRAMES_DIR, MASKS_DIR, DatasetWriter, Expression
from refvps.dataset.palette import write_label_png
from refvps.errors import DatasetError
from refvps.fileio import atomic_write_json, file_lock, read_json

log = logging.getLogger(__name__)

SAVE_PREFIX = ".refvps-save."
LOCK_SUFFIX = ".lock"
JOURNAL = "journal.json"
JOURNAL_VERSION = 1
# A temporary file of refvps.fileio.atomic_write_bytes: ".<name>.<random>.tmp".
_TEMP_FILE = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]+\.tmp$")
# A temporary file this young may belong to a writer that is still running: reported, not removed.
TEMP_GRACE_S = 60.0

INTERRUPTED_SAVE = "interrupted_save"
STRAY_TEMP_FILE = "stray_temp_file"
RULES = {
    INTERRUPTED_SAVE: "no clip has a save that was interrupted (finish it with refvps annotate ROOT --recover)",
    STRAY_TEMP_FILE: "no temporary files left behind by an interrupted write (warning)",
}


class SaveBusyError(DatasetError):
    """Another process is saving (or recovering) this clip right now."""


@dataclass(frozen=True)
class Leftover:
    """Something an interrupted write left behind (what ``refvps validate`` reports)."""

    rule: str
    clip_id: str | None
    path: Path
    message: str
    hint: str
    severity: str  # "error" or "warning"


@dataclass(frozen=True)
class Recovery:
    """What :func:`recover` did to one clip, or to one stray file."""

    clip_id: str | None
    action: str  # "finished", "rolled back", "removed temporary file"
    path: Path

    def describe(self) -> str:
        what = f"clip {self.clip_id}" if self.clip_id else str(self.path)
        if self.action == "finished":
            return f"finished the interrupted save of {what} (its new masks and expressions are in place)"
        if self.action == "rolled back":
            return f"rolled back an unfinished save of {what} (nothing had changed; its previous masks are kept)"
        return f"removed a temporary file left by an interrupted write: {self.path}"


def save_dir(root: str | Path, clip_id: str) -> Path:
    return Path(root) / MASKS_DIR / f"{SAVE_PREFIX}{clip_id}"


def _lock_path(root: str | Path, clip_id: str) -> Path:
    return Path(root) / MASKS_DIR / f"{SAVE_PREFIX}{clip_id}{LOCK_SUFFIX}"


@contextlib.contextmanager
def _clip_lock(root: Path, clip_id: str) -> Iterator[bool]:
    """Hold the clip's save lock, without waiting; yields False (holding nothing) when it is taken.

    The lock file is removed when the block ends, so it does not linger in the dataset; a process
    that locked a file which was removed meanwhile sees that its inode is gone and tries again.
    """
    path = _lock_path(root, clip_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(5):
        with open(path, "a+") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                if os.path.exists(path) and os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
                    try:
                        yield True
                    finally:
                        path.unlink(missing_ok=True)  # while still holding it
                    return
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    yield False


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ClipSave:
    """One clip's masks and expressions, staged and then switched over in one step.

    >>> with ClipSave(root, "clip_0001") as save:                         # doctest: +SKIP
    ...     for name, label in labels.items():
    ...         save.write_label(name, label)
    ...     save.commit(expressions)

    Leaving the block without :meth:`commit` (an exception) removes what was staged and changes
    nothing. A crash at any point leaves either nothing of the save or a journal that
    :func:`recover` completes. ``write_label`` may be called from several threads.
    """

    def __init__(self, root: str | Path, clip_id: str):
        self.root = Path(root)
        self.clip_id = clip_id
        self.dir = save_dir(self.root, clip_id)
        self.staged = self.dir / "new"
        self.committed = False
        self._lock: contextlib.ExitStack | None = None

    def __enter__(self) -> ClipSave:
        stack = contextlib.ExitStack()
        if not stack.enter_context(_clip_lock(self.root, self.clip_id)):
            stack.close()
            raise SaveBusyError(
                f"another process is saving clip {self.clip_id} right now",
                hint="wait for it to finish, then save again",
                path=self.dir,
            )
        self._lock = stack
        try:
            _recover_clip(self.root, self.clip_id)  # a save this one would otherwise mix with
            self.staged.mkdir(parents=True)
        except BaseException:
            stack.close()
            raise
        return self

    def write_label(self, frame: str, label: np.ndarray) -> Path:
        return write_label_png(self.staged / f"{frame}.png", label)

    def commit(self, expressions: Sequence[Expression]) -> None:
        """Make the staged masks and ``expressions`` (the clip's whole entry) the clip's ground truth.

        Files of the clip's mask folder that were not staged (masks of frames the clip no longer
        lists, anything else put there) are carried over, so the switch-over loses nothing.
        """
        self._carry_over()
        _fsync_dir(self.staged)
        journal = {
            "version": JOURNAL_VERSION,
            "clip": self.clip_id,
            "expressions": [e.to_json() | {"exp_id": e.exp_id} for e in expressions],
            "staged": sorted(p.name for p in self.staged.iterdir() if not p.name.startswith(".")),
            "pid": os.getpid(),
            "time": time.time(),
        }
        atomic_write_json(self.dir / JOURNAL, journal)
        _fsync_dir(self.dir)  # the journal is on disk: from here on the save is finished, not undone
        self.committed = True
        _finish(self.root, self.clip_id, journal)

    def _carry_over(self) -> None:
        live = self.root / MASKS_DIR / self.clip_id
        if not live.is_dir():
            return
        staged = {p.name for p in self.staged.iterdir()}
        for entry in live.iterdir():
            if entry.name in staged or _TEMP_FILE.match(entry.name):
                continue
            target = self.staged / entry.name
            if entry.is_dir() and not entry.is_symlink():
                shutil.copytree(entry, target, symlinks=True)
                continue
            try:
                os.link(entry, target, follow_symlinks=False)
            except OSError:  # a file system without hard links
                shutil.copy2(entry, target, follow_symlinks=False)

    def __exit__(self, *exc_info: object) -> None:
        try:
            if not self.committed and self.dir.exists():
                shutil.rmtree(self.dir)
        finally:
            assert self._lock is not None
            self._lock.close()


def _read_journal(path: Path) -> dict[str, Any] | None:
    try:
        data = read_json(path, what="save journal")
    except DatasetError:
        return None  # absent, or torn by a crash while it was written: the save never committed
    return data if isinstance(data, dict) and data.get("version") == JOURNAL_VERSION else None


def _journal_expressions(journal: dict[str, Any]) -> list[Expression]:
    out = []
    for entry in journal.get("expressions", []):
        obj_id = entry.get("obj_id", 1)
        out.append(Expression(str(entry["exp_id"]), str(entry["exp"]), int(obj_id), entry.get("annotator")))
    return out


def _finish(root: Path, clip_id: str, journal: dict[str, Any]) -> None:
    """The switch-over after the commit point; every step can be repeated after a crash."""
    folder = save_dir(root, clip_id)
    live, new, old = root / MASKS_DIR / clip_id, folder / "new", folder / "old"
    if new.exists():
        if live.exists():
            live.rename(old)
        new.rename(live)
        _fsync_dir(root / MASKS_DIR)
    DatasetWriter(root).update_expressions(clip_id, _journal_expressions(journal))
    if old.is_symlink():
        old.unlink()
    elif old.exists():
        shutil.rmtree(old)
    (folder / JOURNAL).unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)
    _fsync_dir(root / MASKS_DIR)


def _recover_clip(root: Path, clip_id: str) -> Recovery | None:
    """Finish or roll back a leftover save of one clip (the caller holds its lock)."""
    folder = save_dir(root, clip_id)
    if not folder.exists():
        return None
    journal = _read_journal(folder / JOURNAL)
    if journal is None:
        shutil.rmtree(folder)
        log.debug("clip %s: rolled back an unfinished save", clip_id)  # the caller reports the Recovery
        return Recovery(clip_id, "rolled back", folder)
    _finish(root, clip_id, journal)
    log.debug("clip %s: finished an interrupted save", clip_id)
    return Recovery(clip_id, "finished", folder)


def _saved_clips(root: Path) -> list[str]:
    masks = root / MASKS_DIR
    if not masks.is_dir():
        return []
    names = [p.name[len(SAVE_PREFIX) :] for p in masks.iterdir() if p.name.startswith(SAVE_PREFIX)]
    return sorted({n[: -len(LOCK_SUFFIX)] if n.endswith(LOCK_SUFFIX) else n for n in names})


def recover(root: str | Path, clip_ids: Iterable[str] | None = None) -> list[Recovery]:
    """Finish or roll back interrupted saves and remove stale temporary files; returns what was done.

    ``clip_ids`` limits it to those clips (and skips the dataset-wide index files). A clip that
    another live process is saving right now is left alone. A dataset with nothing to repair is
    not written to.
    """
    root = Path(root)
    wanted = None if clip_ids is None else set(clip_ids)
    done: list[Recovery] = []
    saved = [c for c in _saved_clips(root) if wanted is None or c in wanted]
    for clip_id in saved:
        with _clip_lock(root, clip_id) as held:
            recovery = _recover_clip(root, clip_id) if held else None
        if recovery is not None:
            done.append(recovery)
    folders = [f for f in _clip_folders(root / MASKS_DIR) if wanted is None or f.name in wanted]
    for folder in folders:
        if any(_is_stale(p) for p in _temp_files(folder)):
            with _clip_lock(root, folder.name) as held:
                done += _remove_temp_files(folder, folder.name) if held else []
    if wanted is None:
        done += _remove_index_temp_files(root)
    return done


def _clip_folders(parent: Path) -> list[Path]:
    if not parent.is_dir():
        return []
    return sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))


def _temp_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and _TEMP_FILE.match(p.name))


def _is_stale(path: Path) -> bool:
    try:
        return time.time() - path.stat().st_mtime >= TEMP_GRACE_S
    except FileNotFoundError:
        return False


def _remove_temp_files(folder: Path, clip_id: str | None) -> list[Recovery]:
    removed = []
    for path in _temp_files(folder):
        if _is_stale(path):
            path.unlink(missing_ok=True)
            removed.append(Recovery(clip_id, "removed temporary file", path))
    return removed


def _remove_index_temp_files(root: Path) -> list[Recovery]:
    """Temporary files of the index files. Every writer of an index holds its file lock while it
    writes, so once this process holds the lock, any temporary file left is a dead writer's."""
    removed = []
    for name in (EXPRESSIONS_FILE, CLIPS_FILE):
        stale = [p for p in _temp_files(root) if p.name.startswith(f".{name}.")]
        if stale:
            with file_lock(root / name):
                for path in stale:
                    if path.exists():
                        path.unlink(missing_ok=True)
                        removed.append(Recovery(None, "removed temporary file", path))
    return removed


def inspect(root: str | Path, clip_ids: Iterable[str] | None = None) -> list[Leftover]:
    """What interrupted writes left in the dataset (read-only; :func:`recover` repairs it).

    ``clip_ids`` limits it to those clips (and skips the dataset root's index files).
    """
    root = Path(root)
    found: list[Leftover] = []
    wanted = None if clip_ids is None else set(clip_ids)
    for clip_id in _saved_clips(root):
        if wanted is not None and clip_id not in wanted:
            continue
        folder = save_dir(root, clip_id)
        if folder.exists():
            found.append(_describe_save(root, folder, clip_id))
    for parent in (root / MASKS_DIR, root / FRAMES_DIR):
        for folder in _clip_folders(parent):
            if wanted is None or folder.name in wanted:
                found += [_describe_temp(p, folder.name) for p in _temp_files(folder)]
    if wanted is None:
        found += [_describe_temp(p, None) for p in _temp_files(root)]
    return found


def _describe_save(root: Path, folder: Path, clip_id: str) -> Leftover:
    repair = f"refvps annotate {root} --recover"
    if _read_journal(folder / JOURNAL) is not None:
        return Leftover(
            INTERRUPTED_SAVE,
            clip_id,
            folder,
            f"clip {clip_id}: a save was interrupted after it committed; its masks and expressions may "
            "be a mix of the previous and the new ones until it is finished",
            f"finish it with '{repair}' (refvps annotate also does it when it starts), then validate again",
            "error",
        )
    return Leftover(
        INTERRUPTED_SAVE,
        clip_id,
        folder,
        f"clip {clip_id}: an unfinished save left its staged masks behind (the clip itself is unchanged)",
        f"remove it with '{repair}' (refvps annotate also does it when it starts), or delete the folder",
        "warning",
    )


def _describe_temp(path: Path, clip_id: str | None) -> Leftover:
    return Leftover(
        STRAY_TEMP_FILE,
        clip_id,
        path,
        f"temporary file left by an interrupted write: {path.name}",
        "nothing was lost (the file it was replacing is whole); delete it, or let refvps annotate remove it "
        "when it starts (it leaves files younger than a minute to the writer that may still be running)",
        "warning",
    )
