"""``run.json``: what produced a folder of predictions (any baseline, REM included), so a number can be traced.

Written beside the predictions (``<out>/run.json``; the scorer skips non-PNG files) and updated
atomically after every attempt (``docs/FORMAT.md`` describes the fields and the statuses)::

    {"format": 1, "method": "vdit", "title": "VD-IT", "kind": "external", "status": "complete",
     "dataset": "/data/refvps", "clips": 111, "refvps_version": "0.1.0",
     "upstream": {"repository": "buxiangzhiren/VD-IT", "checked_commit": "e44bd79...",
                  "repo": "/src/VD-IT", "commit": "e44bd79...", "dirty": false},
     "checkpoint": {"path": "/ckpt/vdit.pth", "sha256": "...", "size": 123, "mtime_ns": 1},
     "settings": {...}, "commands": [{"argv": [...], "cwd": "...", "env": {...}, "shell": "..."}],
     "started": "2025-...", "finished": "2025-...", "exit_status": 0,
     "attempts": [{"started", "finished", "exit_status", "log", "clips", "converted"}, ...]}
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import subprocess
from pathlib import Path
from typing import Any, Iterator

from refvps import __version__
from refvps.errors import UsageError
from refvps.fileio import atomic_write_json, read_json

RUN_FILE = "run.json"
RUN_FORMAT = 1


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def sha256_file(path: Path, *, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            block = handle.read(chunk)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()


def checkpoint_record(path: Path, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """Path, size, mtime and sha256 of a checkpoint; the hash is reused if the file is unchanged."""
    path = Path(path).resolve()
    stat = path.stat()
    if (
        previous
        and previous.get("path") == str(path)
        and previous.get("size") == stat.st_size
        and previous.get("mtime_ns") == stat.st_mtime_ns
        and previous.get("sha256")
    ):
        sha = previous["sha256"]
    else:
        sha = sha256_file(path)
    return {"path": str(path), "sha256": sha, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _run_git(repo: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _read_git_head(repo: Path) -> str | None:
    """HEAD's commit read from the ``.git`` folder itself (when git is not installed)."""
    git_dir = repo / ".git"
    if git_dir.is_file():  # a worktree or submodule: "gitdir: <path>"
        text = git_dir.read_text().strip()
        if text.startswith("gitdir:"):
            git_dir = (repo / text.split(":", 1)[1].strip()).resolve()
    head = git_dir / "HEAD"
    if not head.is_file():
        return None
    text = head.read_text().strip()
    if not text.startswith("ref:"):
        return text or None
    ref = text.split(":", 1)[1].strip()
    ref_file = git_dir / ref
    if ref_file.is_file():
        return ref_file.read_text().strip() or None
    packed = git_dir / "packed-refs"
    if packed.is_file():
        for line in packed.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == ref:
                return parts[0]
    return None


def git_state(repo: Path) -> dict[str, Any]:
    """The checkout's commit and whether tracked files were modified (None when unknown)."""
    repo = Path(repo)
    commit = _run_git(repo, "rev-parse", "HEAD")
    dirty = None
    if commit is not None:
        status = _run_git(repo, "status", "--porcelain", "--untracked-files=no")
        dirty = bool(status) if status is not None else None
    else:
        commit = _read_git_head(repo)
    return {"repo": str(repo.resolve()), "commit": commit, "dirty": dirty}


def read_run(out: Path) -> dict[str, Any] | None:
    path = Path(out) / RUN_FILE
    if not path.exists():
        return None
    data = read_json(path, what="run record (run.json)")
    return data if isinstance(data, dict) else None


def write_run(out: Path, record: dict[str, Any]) -> Path:
    record = {"format": RUN_FORMAT, **{k: v for k, v in record.items() if k != "format"}}
    record.setdefault("refvps_version", __version__)
    return atomic_write_json(Path(out) / RUN_FILE, record)


def check_same_run(previous: dict[str, Any] | None, fingerprint: dict[str, Any], out: Path, done: set[str]) -> None:
    """Refuse to add predictions to a folder that holds another configuration's finished clips."""
    if not previous or not done:
        return
    before = previous.get("fingerprint")
    if before is None or before == fingerprint:
        return
    changed = sorted(k for k in set(before) | set(fingerprint) if before.get(k) != fingerprint.get(k))
    details = "; ".join(f"{k}: {before.get(k)!r} then, {fingerprint.get(k)!r} now" for k in changed)
    raise UsageError(
        f"{out} already holds {len(done)} finished clips from a run with different "
        f"{', '.join(changed)} ({details}; see {out / RUN_FILE})",
        hint="write to a new --out folder, run with the same settings to resume, or delete the old predictions to start over",
        path=out / RUN_FILE,
    )


def resume_record(out: Path, fingerprint: dict[str, Any], done: set[str]) -> dict[str, Any] | None:
    """The previous ``run.json`` of ``out`` (``None`` if there is none), after checking that the
    finished clips ``done`` in it came from a run with the same ``fingerprint``."""
    previous = read_run(Path(out))
    check_same_run(previous, fingerprint, Path(out), done)
    return previous


class RunRecord:
    """A ``run.json`` being kept up to date while a run goes on (see :func:`run_lifecycle`)."""

    def __init__(self, out: Path, record: dict[str, Any], *, enabled: bool = True):
        self.out = Path(out)
        self.record = record
        self.enabled = enabled

    def update(self, **fields: Any) -> None:
        self.record.update(fields)

    def save(self) -> None:
        if self.enabled:
            write_run(self.out, self.record)

    def finish(self, status: str = "complete", *, exit_status: int | None = 0, **fields: Any) -> None:
        """Record the end of the run (``complete``, ``failed``, ``dry-run`` ...) and write it."""
        self.update(status=status, finished=now_iso(), exit_status=exit_status, **fields)
        self.save()


def stopped_status(exc: BaseException) -> str:
    """The status of a run that an exception stopped: ``interrupted`` for Ctrl-C, else ``error``."""
    return "interrupted" if isinstance(exc, KeyboardInterrupt) else "error"


@contextlib.contextmanager
def run_lifecycle(out: Path, record: dict[str, Any], *, enabled: bool = True) -> Iterator[RunRecord]:
    """The one lifecycle of ``run.json``: ``running`` while the block runs, then ``complete``, or
    ``interrupted`` (Ctrl-C) / ``error`` (any exception, re-raised) so that the record never says
    "running" once the run is gone. A block that calls :meth:`RunRecord.finish` itself (e.g. with
    ``failed``) keeps that status. ``enabled=False`` (a worker process that is not the main one)
    writes nothing.
    """
    run = RunRecord(out, record, enabled=enabled)
    run.update(status="running", finished=None)
    run.save()
    try:
        yield run
    except BaseException as exc:
        run.update(status=stopped_status(exc), finished=now_iso())
        run.save()
        raise
    if run.record.get("status") == "running":
        run.finish()
