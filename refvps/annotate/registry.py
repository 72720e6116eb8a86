"""The clips one ``refvps annotate`` server has open, which browser tab owns each, and their locks.

A tab works on one clip at a time. Another tab of the same server may take a clip over (explicitly;
the first tab is told at its next request); a tab that went away (closed, reloaded) lets its clip go.
Another server cannot take a clip while its holder lives; a stale lock (dead process, no heartbeat)
is taken over only when asked. On start the registry finishes or rolls back saves that a crash
interrupted (:func:`refvps.dataset.transaction.recover`).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from refvps.annotate.autosave import LockLostError
from refvps.annotate.clipcheck import editing_refusal, is_safe_id
from refvps.annotate.lock import HEARTBEAT_EVERY_S, ClipLock, ClipLockedError
from refvps.annotate.segmenters.base import Segmenter
from refvps.annotate.session import ClipSession
from refvps.annotate.store import read_session_summary, session_dir
from refvps.annotate.verdicts import Verdicts, clip_fingerprint
from refvps.dataset import transaction
from refvps.dataset.format import CLIPS_FILE, EXPRESSIONS_FILE, MASK_EXT, Clip, Dataset
from refvps.errors import DatasetError, RefvpsError, UsageError

log = logging.getLogger(__name__)


@dataclass
class OpenClip:
    session: ClipSession
    client: str  # the browser tab that owns the clip
    seen: float = field(default_factory=time.time)  # that tab's last request
    released: bool = False  # the tab was closed (or reloaded): another tab may have the clip without asking


@dataclass
class LockTakeover:
    """What ``--take-over-lock`` did: stale locks taken over, live ones left to their holder."""

    taken: list[str] = field(default_factory=list)
    live: dict[str, str] = field(default_factory=dict)  # clip -> who holds it


class NotOwnerError(RefvpsError):
    """A request for a clip that this browser tab does not have open."""


class UnknownClipError(DatasetError):
    """A clip id that is not in the dataset."""


class UnknownFrameError(UsageError):
    """A frame name that is not in the clip."""


def _ago(when: float) -> str:
    seconds = max(0, int(time.time() - when))
    return f"{seconds} s ago" if seconds < 120 else f"{seconds // 60} min ago"


def _stat_key(path: Path) -> tuple[int, int, int] | None:
    """What tells that a file changed: inode, size and modification time (writes replace the file)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns


def _taxonomy_names() -> dict[str, str]:
    from refvps.resources import load_taxonomy

    names: dict[str, str] = {}
    try:
        for category in load_taxonomy().get("categories", []):
            names[category["id"]] = category.get("name", category["id"])
            for concept in category.get("concepts", []):
                names[concept["id"]] = concept.get("name", concept["id"])
    except RefvpsError:
        pass
    return names


class ClipRegistry:
    """The open clips of one server, their owners (browser tabs) and locks, and the clip list."""

    def __init__(self, root: str | Path, segmenter: Segmenter, *, refvps_rules: bool = True):
        self.root = Path(root)
        self.segmenter = segmenter
        self.refvps_rules = refvps_rules
        self.server_id = f"annotate-{uuid.uuid4().hex[:10]}"
        self.model_lock = threading.Lock()
        self._lock = threading.RLock()
        self.open_clips: dict[str, OpenClip] = {}
        self._stop = threading.Event()
        self._dataset: tuple[tuple, Dataset] | None = None
        self.dataset()  # fail now, with a clear error, if the root is not a dataset
        self.recovered = transaction.recover(self.root)
        for recovery in self.recovered:  # the CLI prints them; the page shows them
            log.debug("%s", recovery.describe())
        self.verdicts = Verdicts(self.root, refvps_rules)
        self._heartbeat = threading.Thread(target=self._beat, name="lock-heartbeat", daemon=True)
        self._heartbeat.start()

    # -- dataset access with checked ids ---------------------------------------------------------

    def dataset(self) -> Dataset:
        """The dataset as its index files are now; parsed again only when one of them changed (every
        frame image and list request asks, and parsing grows with the number of clips)."""
        key = tuple(_stat_key(self.root / name) for name in (EXPRESSIONS_FILE, CLIPS_FILE))
        with self._lock:
            if self._dataset is None or self._dataset[0] != key:
                self._dataset = (key, Dataset(self.root))
            return self._dataset[1]

    def clip(self, clip_id: str) -> Clip:
        if not is_safe_id(clip_id):
            raise UsageError(f"invalid clip id {clip_id!r}", hint="clip ids are single folder names")
        dataset = self.dataset()
        if clip_id not in dataset:
            raise UnknownClipError(f"clip {clip_id!r} is not in this dataset", hint="pick a clip from the list")
        return dataset.clip(clip_id)

    @staticmethod
    def frame_of(clip: Clip, frame: str) -> str:
        if not is_safe_id(frame) or frame not in clip.frame_names:
            raise UnknownFrameError(f"clip {clip.id} has no frame {frame!r}", hint="frame names are like 00012")
        return frame

    def _lock_of(self, clip_id: str) -> ClipLock:
        return ClipLock(session_dir(self.root, clip_id) / "lock.json", clip_id, self.server_id)

    # -- the clip list -----------------------------------------------------------------------------

    def list_clips(self, client: str | None) -> list[dict]:
        names = _taxonomy_names()
        dataset = self.dataset()
        return [self._clip_row(dataset, dataset.clip(clip_id), client, names) for clip_id in dataset.clip_ids]

    def _clip_row(self, dataset: Dataset, clip: Clip, client: str | None, names: dict[str, str]) -> dict:
        safe = is_safe_id(clip.id)
        frames = set(clip.frame_names)
        masks = 0
        if safe and clip.masks_dir.is_dir():
            masks = sum(1 for p in clip.masks_dir.iterdir() if p.suffix == MASK_EXT and p.stem in frames)
        refusal = "this clip id cannot be used as a folder name" if not safe else editing_refusal(clip)
        summary = read_session_summary(self.root, clip.id) if safe else None
        validation = self.verdicts.get(clip.id, clip_fingerprint(dataset, clip.id)) if safe else None
        with self._lock:
            open_clip = self.open_clips.get(clip.id)
        lock_info = None
        if safe and open_clip is None:
            lock = self._lock_of(clip.id)
            holder = lock.read()
            if holder is not None:
                lock_info = {"holder": holder.describe(), "stale": lock.is_stale(holder)}
        return {
            "id": clip.id,
            "openable": refusal is None,
            "refusal": refusal,
            "concept": clip.meta.concept,
            "concept_name": names.get(clip.meta.concept or "", clip.meta.concept),
            "category": clip.meta.category,
            "category_name": names.get(clip.meta.category or "", clip.meta.category),
            "frames": len(clip.frame_names),
            "masks_saved": masks,
            "labelled": summary["labelled"] if summary else masks,
            "reviewed": summary["reviewed"] if summary else 0,
            "unsaved": bool(summary and summary["dirty"]),
            "expressions": sum(bool(e.text.strip()) for e in clip.expressions),
            "validation": validation,
            "validation_pending": safe and validation is None,
            "open_here": bool(open_clip and open_clip.client == client),
            "open_elsewhere": bool(open_clip and open_clip.client != client and not open_clip.released),
            "locked": lock_info,
        }

    # -- opening and owning clips -------------------------------------------------------------------

    def open(self, clip_id: str, client: str, *, take_over: bool = False) -> ClipSession:
        clip = self.clip(clip_id)
        with self._lock:
            current = self.open_clips.get(clip_id)
            if current is not None:
                return self._claim(current, clip_id, client, take_over)
            self._close_others(client, clip_id)
            lock = self._lock_of(clip_id)
            lock.acquire(take_over=take_over)
            try:
                session = ClipSession(
                    self.root,
                    clip,
                    self.segmenter,
                    lock=lock,
                    model_lock=self.model_lock,
                    refvps_rules=self.refvps_rules,
                )
            except BaseException:
                lock.release()
                raise
            self.open_clips[clip_id] = OpenClip(session, client)
            return session

    def _claim(self, current: OpenClip, clip_id: str, client: str, take_over: bool) -> ClipSession:
        """The same tab again (a reload), a tab that was closed, or an explicit takeover: this tab
        owns the clip now; the other tab's next request is told it lost it."""
        if current.client != client and not current.released and not take_over:
            holder = current.session.lock.read() if current.session.lock else None
            error = ClipLockedError(clip_id, holder, stale=False, same_process=True, path=None)
            error.message = (
                f"clip {clip_id} is open in another tab or window of this page (last active {_ago(current.seen)})"
            )
            raise error
        self._close_others(client, clip_id)
        current.client, current.released, current.seen = client, False, time.time()
        return current.session

    def get(self, clip_id: str, client: str) -> ClipSession:
        if not is_safe_id(clip_id):
            raise UsageError(f"invalid clip id {clip_id!r}")
        with self._lock:
            current = self.open_clips.get(clip_id)
        if current is None:
            raise NotOwnerError(f"clip {clip_id} is not open", hint="open it from the clip list first")
        if current.client != client:
            raise NotOwnerError(
                f"clip {clip_id} was taken over by another tab or window",
                hint="take it back here to continue; what this tab could not send is listed and sent again",
            )
        current.seen, current.released = time.time(), False
        if current.session.lock is not None and not current.session.lock.held:
            raise LockLostError(
                f"another session took clip {clip_id}'s lock over",
                hint="reopen the clip; your edits are in its session files",
            )
        return current.session

    def peek(self, clip_id: str) -> ClipSession:
        """An open clip's session for reading (any tab may look)."""
        with self._lock:
            current = self.open_clips.get(clip_id) if is_safe_id(clip_id) else None
        if current is None:
            raise NotOwnerError(f"clip {clip_id} is not open", hint="open it from the clip list first")
        return current.session

    def release(self, clip_id: str, client: str) -> None:
        """The tab that owns the clip went away (closed or reloaded): any tab may have it without asking."""
        with self._lock:
            current = self.open_clips.get(clip_id)
            if current is not None and current.client == client:
                current.released = True

    def close(self, clip_id: str, client: str) -> None:
        with self._lock:
            current = self.open_clips.get(clip_id)
            if current is not None and current.client == client:
                self._close_locked(clip_id)

    def _close_others(self, client: str, keep: str) -> None:
        """A tab works on one clip at a time: close any other it had open (autosaved already)."""
        for other_id, other in list(self.open_clips.items()):
            if other.client == client and other_id != keep:
                self._close_locked(other_id)

    def _close_locked(self, clip_id: str) -> None:
        current = self.open_clips.pop(clip_id, None)
        if current is not None:
            current.session.close()

    # -- locks of other sessions --------------------------------------------------------------------

    def take_over_stale_locks(self, clip_ids: list[str] | None = None) -> LockTakeover:
        """Take over (and release) the stale locks of these clips, or of every clip; live ones stay."""
        result = LockTakeover()
        for clip_id in clip_ids if clip_ids is not None else self.dataset().clip_ids:
            if not is_safe_id(clip_id):
                continue
            lock = self._lock_of(clip_id)
            holder = lock.read()
            if holder is None:
                continue
            if not lock.is_stale(holder):
                result.live[clip_id] = holder.describe()
                continue
            lock.acquire(take_over=True)
            lock.release()
            result.taken.append(clip_id)
        return result

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_EVERY_S):
            with self._lock:
                sessions = [c.session for c in self.open_clips.values()]
            for session in sessions:
                if session.lock is not None:
                    try:
                        session.lock.heartbeat()
                    except OSError:
                        pass

    def shutdown(self) -> list[str]:
        """Cancel running jobs, autosave, release every lock. Returns the clips with unsaved work."""
        self._stop.set()
        self.verdicts.stop()
        unsaved = []
        with self._lock:
            for clip_id in list(self.open_clips):
                if self.open_clips[clip_id].session.dirty:
                    unsaved.append(clip_id)
                self._close_locked(clip_id)
        return unsaved
