"""A per-clip lock, so two annotation sessions never write the same clip.

The lock is a small JSON file, ``<root>/.refvps-annotate/<clip>/lock.json``, created exclusively
(``O_EXCL``) and refreshed by a heartbeat while the clip is open. It names its holder (an owner
string, process id, host, user, start time). A lock is *stale* when its process is gone (same host)
or its heartbeat is older than :data:`STALE_AFTER_S` (any host). A stale lock is never broken
silently: the caller must ask for a takeover, and a live lock held by another process cannot be
taken over at all.
"""

from __future__ import annotations

import errno
import getpass
import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from refvps.errors import RefvpsError
from refvps.fileio import atomic_write_json

STALE_AFTER_S = 120.0
HEARTBEAT_EVERY_S = 20.0


@dataclass(frozen=True)
class LockInfo:
    owner: str
    pid: int
    host: str
    user: str
    started: float
    heartbeat: float

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "LockInfo":
        return cls(
            owner=str(data.get("owner", "?")),
            pid=int(data.get("pid", -1)),
            host=str(data.get("host", "?")),
            user=str(data.get("user", "?")),
            started=float(data.get("started", 0.0)),
            heartbeat=float(data.get("heartbeat", 0.0)),
        )

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        return f"{self.user} (process {self.pid} on {self.host}, since {when})"


class ClipLockedError(RefvpsError):
    """The clip is open in another session."""

    def __init__(self, clip_id: str, holder: LockInfo | None, *, stale: bool, same_process: bool, path: Path | None):
        if holder is None:
            message = f"clip {clip_id} is locked by another session (its lock file cannot be read)"
        else:
            message = f"clip {clip_id} is open in another session: {holder.describe()}"
        if same_process:
            hint = "take it over here if that tab is not in use (nothing is lost: it is told, and can take it back)"
        elif stale:
            hint = (
                "that session looks dead (no heartbeat); take the lock over explicitly "
                "(the page's 'Take over' button, or --take-over-lock)"
            )
        else:
            hint = (
                "close the clip in the other session first; if that process is gone, its lock turns stale "
                f"after {int(STALE_AFTER_S)} s without a heartbeat and can then be taken over"
            )
        super().__init__(message, hint=hint, path=path)
        self.clip_id = clip_id
        self.holder = holder
        self.stale = stale
        self.same_process = same_process

    @property
    def can_take_over(self) -> bool:
        return self.stale or self.same_process

    def to_json(self) -> dict:
        return {
            "clip": self.clip_id,
            "holder": self.holder.to_json() if self.holder else None,
            "stale": self.stale,
            "same_process": self.same_process,
            "can_take_over": self.can_take_over,
        }


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM  # exists, owned by someone else
    return True


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return str(os.getuid())


class ClipLock:
    """The lock on one clip, held by ``owner`` (a string naming the server and the browser tab)."""

    def __init__(self, path: Path, clip_id: str, owner: str, *, stale_after_s: float = STALE_AFTER_S):
        self.path = Path(path)
        self.clip_id = clip_id
        self.owner = owner
        self.stale_after_s = stale_after_s
        self.held = False

    # -- inspection ----------------------------------------------------------------------------

    def read(self) -> LockInfo | None:
        try:
            return LockInfo.from_json(json.loads(self.path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError):
            # Unreadable (half-written by a crash, or garbage): treat as a lock nobody can prove alive.
            return LockInfo(owner="?", pid=-1, host="?", user="?", started=0.0, heartbeat=0.0)

    def is_stale(self, info: LockInfo) -> bool:
        if info.host == socket.gethostname() and not _pid_alive(info.pid):
            return True
        return time.time() - info.heartbeat > self.stale_after_s

    def _mine(self, info: LockInfo | None) -> bool:
        return info is not None and info.owner == self.owner and info.pid == os.getpid()

    # -- acquire / release ---------------------------------------------------------------------

    def _info(self, started: float | None = None) -> LockInfo:
        now = time.time()
        return LockInfo(self.owner, os.getpid(), socket.gethostname(), _user(), started or now, now)

    def acquire(self, *, take_over: bool = False) -> None:
        """Take the lock, or raise :class:`ClipLockedError` saying who holds it and whether it is stale."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                info = self.read()
                if info is None:
                    continue  # released between our two calls: try again
                if self._mine(info):
                    self.held = True
                    self.heartbeat()
                    return
                stale = self.is_stale(info)
                same_process = info.pid == os.getpid() and info.host == socket.gethostname()
                if take_over and (stale or same_process):
                    atomic_write_json(self.path, self._info().to_json())
                    self.held = True
                    return
                raise ClipLockedError(
                    self.clip_id, info, stale=stale, same_process=same_process, path=self.path
                ) from None
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(self._info().to_json(), handle)
                handle.flush()
                os.fsync(handle.fileno())
            self.held = True
            return
        raise ClipLockedError(self.clip_id, self.read(), stale=False, same_process=False, path=self.path)

    def verify(self) -> bool:
        """Whether the lock file still names us; stops holding if another session took the lock over."""
        if self.held and not self._mine(self.read()):
            self.held = False
        return self.held

    def heartbeat(self) -> bool:
        """Refresh the heartbeat; returns False (and stops holding) if the lock was taken from us."""
        if not self.held:
            return False
        info = self.read()
        if not self._mine(info):
            self.held = False
            return False
        atomic_write_json(self.path, self._info(started=info.started).to_json())
        return True

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        if self._mine(self.read()):
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
