"""Autosave under the clip's lock: a session writes its files only while it holds the lock.

Another session may take a stale lock over (docs/ANNOTATE.md, "Files, autosave and locks"); from
then on this one must never write after it. :class:`Autosave` re-reads the lock file before writes
(at most once a second) and raises :class:`LockLostError` once the lock is gone.
"""

from __future__ import annotations

import time

from refvps.annotate.clipstate import ClipState
from refvps.annotate.lock import ClipLock
from refvps.annotate.store import SessionStore
from refvps.errors import RefvpsError

LOCK_VERIFY_EVERY_S = 1.0
THROTTLED_WRITE_EVERY_S = 1.0


class LockLostError(RefvpsError):
    """Another session took this clip's lock over; this one must stop writing."""


class Autosave:
    """Writes a clip's ``session.json`` while the session holds the clip's lock (``lock=None``: no lock)."""

    def __init__(self, store: SessionStore, lock: ClipLock | None, segmenter: str):
        self.store = store
        self.lock = lock
        self.segmenter = segmenter
        self._last_write = 0.0
        self._lock_verified = 0.0

    @property
    def may_write(self) -> bool:
        """Whether this session still holds the lock (as far as it knows without reading the lock file)."""
        return self.lock is None or self.lock.held

    def check(self) -> None:
        """Raise :class:`LockLostError` if another session took the lock over."""
        if self.lock is None:
            return
        now = time.monotonic()
        if self.lock.held and now - self._lock_verified > LOCK_VERIFY_EVERY_S:
            # Re-read the lock file (not only at heartbeats): a session that took a stale lock over
            # must never see this one write after it.
            self.lock.verify()
            self._lock_verified = now
        if not self.lock.held:
            raise LockLostError(
                f"this session no longer holds clip {self.store.clip_id}'s lock (another session took it over)",
                hint="reopen the clip; your edits up to the takeover are in its session files",
            )

    def write(self, state: ClipState, *, force: bool = True) -> None:
        """Write ``session.json``; ``force=False`` (a propagation's frames) skips it within a second of the last."""
        now = time.time()
        if not force and now - self._last_write < THROTTLED_WRITE_EVERY_S:
            return
        self.check()
        self.store.write_state(state, self.segmenter)
        self._last_write = now
