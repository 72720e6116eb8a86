"""What ``refvps validate`` says about each clip, for the page: one clip's problems, and a cache of
verdicts for the clip list, checked in a background thread and tied to the files they were computed on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path

from refvps.annotate.store import read_validation_status
from refvps.dataset.format import FRAMES_DIR, MASKS_DIR, Dataset
from refvps.errors import RefvpsError

log = logging.getLogger(__name__)


def validate_clip(root: Path, clip_id: str, *, refvps_rules: bool = True) -> list[dict]:
    """What ``refvps validate`` says about this clip (problems of other clips are not shown)."""
    from refvps.dataset.validate import validate_dataset

    report = validate_dataset(root, refvps_rules=refvps_rules, clips=[clip_id])
    out = []
    for p in report.problems:
        if p.clip_id not in (clip_id, None):
            continue
        try:
            path = str(Path(p.path).relative_to(root))
        except ValueError:
            path = p.path
        out.append({"severity": p.severity, "rule": p.rule, "path": path, "message": p.message, "hint": p.hint})
    return out


def verdict_of(problems: list[dict], fingerprint: str) -> dict:
    """The summary of a clip's validation that the clip list shows, tied to the files it was computed on."""
    errors = sum(p["severity"] == "error" for p in problems)
    return {
        "ok": errors == 0,
        "errors": errors,
        "warnings": len(problems) - errors,
        "at": time.time(),
        "fingerprint": fingerprint,
    }


def clip_fingerprint(dataset: Dataset, clip_id: str) -> str:
    """A digest that changes when what validation reads of a clip changes.

    It covers the clip's entries in both index files and the state of its frame and mask folders
    (modification time and file count: every refvps write renames a file into place, which
    changes the folder's time). Cheap enough to compute for every clip on each clip-list request.
    """
    digest = hashlib.blake2b(digest_size=12)
    entries = [dataset.raw_expressions.get(clip_id), dataset.raw_clips.get(clip_id)]
    digest.update(json.dumps(entries, sort_keys=True, default=str).encode())
    for folder in (dataset.root / FRAMES_DIR / clip_id, dataset.root / MASKS_DIR / clip_id):
        try:
            stat = folder.stat()
            digest.update(f"{stat.st_ino}:{stat.st_mtime_ns}:{len(os.listdir(folder))};".encode())
        except OSError:
            digest.update(b"absent;")
    return digest.hexdigest()


class Verdicts:
    """Verdicts of every clip, for the clip list; clips are checked in a background thread.

    A verdict is tied to the clip's :func:`clip_fingerprint`; when the files change, the clip is
    checked again. Verdicts of the clips' last sessions (``validation.json``) seed it after a restart.
    ``validate`` is looked up on this module at each call (tests replace it).
    """

    def __init__(self, root: Path, refvps_rules: bool):
        self.root = root
        self.refvps_rules = refvps_rules
        self._known: dict[str, dict] = {}
        self._queue: list[str] = []
        self._checking: str | None = None  # the clip the thread validates now: not queued again meanwhile
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="clip-validation", daemon=True)
        self._thread.start()

    def get(self, clip_id: str, fingerprint: str) -> dict | None:
        """The verdict for the clip's current files, or None while it is being checked."""
        with self._wake:
            known = self._known.get(clip_id)
            if known is not None and known.get("fingerprint") == fingerprint:
                return known
            stored = read_validation_status(self.root, clip_id)
            if stored is not None and stored.get("fingerprint") == fingerprint:
                self._known[clip_id] = stored
                return stored
            if clip_id not in self._queue and clip_id != self._checking:
                self._queue.append(clip_id)
                self._wake.notify()
            return None

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._stopped:
                    self._wake.wait()
                if self._stopped:
                    return
                clip_id = self._checking = self._queue.pop(0)
            self.put(clip_id, self._check(clip_id))

    def _check(self, clip_id: str) -> dict | None:
        try:
            fingerprint = clip_fingerprint(Dataset(self.root), clip_id)
        except RefvpsError:  # the index files do not read: the clip list itself says so
            return None
        try:
            return verdict_of(validate_clip(self.root, clip_id, refvps_rules=self.refvps_rules), fingerprint)
        except Exception as exc:  # noqa: BLE001 - shown in the list; the thread must live on
            log.warning("validating clip %s failed: %s: %s", clip_id, type(exc).__name__, exc)
            return {
                **verdict_of([], fingerprint),
                "ok": False,
                "errors": 1,
                "error": f"validation failed: {type(exc).__name__}: {exc}",
            }

    def put(self, clip_id: str, verdict: dict | None) -> None:
        with self._wake:
            if verdict is not None:
                self._known[clip_id] = verdict
            if self._checking == clip_id:
                self._checking = None

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()
