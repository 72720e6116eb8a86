"""The files of a clip's annotation session, next to the dataset (hidden, so dataset checks skip them)::

    <root>/.refvps-annotate/
        token               the page's access token for this dataset, kept across restarts (0600)
        <clip>/
            session.json        statuses, clicks, review marks, expressions, annotators, revision
            layers/<frame>.png  working layers of each frame that is not blank (bit 0 target, bit 1 Ignore)
            edits.jsonl         every edit, one JSON line each (clicks, strokes, fills, propagations, saves)
            lock.json           who has the clip open (see :mod:`refvps.annotate.lock`)
            validation.json     what validation said after the last save

Every file is written atomically; the layers are written before the ``session.json`` that refers to
them, so a crash in between never restores a frame as blank. None of this is part of the dataset:
saving writes ``Annotations/<clip>/`` and ``meta_expressions.json`` (docs/ANNOTATE.md).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from refvps.annotate.clipstate import EMPTY, ClipState
from refvps.errors import DatasetError
from refvps.fileio import atomic_write_bytes, atomic_write_json, read_json

SESSION_DIR = ".refvps-annotate"
TOKEN_FILE = "token"


def session_dir(root: str | Path, clip_id: str) -> Path:
    return Path(root) / SESSION_DIR / clip_id


class SessionStore:
    """Reads and writes one clip's session files."""

    def __init__(self, root: str | Path, clip_id: str):
        self.clip_id = clip_id
        self.dir = session_dir(root, clip_id)
        self.session_file = self.dir / "session.json"
        self.layers_dir = self.dir / "layers"
        self.lock_file = self.dir / "lock.json"

    def exists(self) -> bool:
        return self.session_file.exists()

    def load(self, frame_names: list[str], size: tuple[int, int], decode) -> ClipState:
        """The saved state, or ValueError when it does not fit the clip (its frames changed) or is damaged.

        ``decode(blob)`` checks a layer file (raising ValueError when it is not a layer of this size).
        """
        try:
            data = read_json(self.session_file, what="annotation session file")
        except DatasetError as exc:
            raise ValueError(f"the session file could not be read ({exc.message})") from None
        if not isinstance(data, dict) or data.get("frames") != frame_names or data.get("size") != list(size):
            raise ValueError("the clip's frames changed since this session was saved")
        blobs = []
        for name in frame_names:
            blob = self.read_layer(name)
            if blob is not None:
                decode(blob)  # fail loudly on a corrupt layer file
            blobs.append(blob)
        try:
            return ClipState.from_json(data, blobs)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"the session file could not be read ({exc})") from None

    def write_state(self, state: ClipState, segmenter: str) -> None:
        atomic_write_json(self.session_file, state.to_json(segmenter))

    def read_layer(self, frame: str) -> bytes | None:
        path = self.layers_dir / f"{frame}.png"
        return path.read_bytes() if path.exists() else None

    def write_layer(self, frame: str, blob: bytes | None) -> None:
        path = self.layers_dir / f"{frame}.png"
        if blob is None:
            path.unlink(missing_ok=True)
        else:
            atomic_write_bytes(path, blob)

    def log(self, op: str, **details: Any) -> None:
        """Append one edit to ``edits.jsonl`` (flushed to disk before the request returns)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"t": round(time.time(), 3), "op": op, **details}, ensure_ascii=False)
        with open(self.dir / "edits.jsonl", "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def move_aside(self, why: str) -> str:
        """Move every session file but the lock to ``<clip>.old-<time>/``; returns a note saying where."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.dir.parent / f"{self.clip_id}.old-{stamp}-{uuid.uuid4().hex[:6]}"
        target.mkdir(parents=True, exist_ok=True)
        for entry in list(self.dir.iterdir()):
            if entry.name != self.lock_file.name:
                shutil.move(str(entry), str(target / entry.name))
        return f"previous session moved to {target} because {why}"

    def remove_temp_files(self) -> int:
        """Remove temporary files that a crash left in the session folder (the caller holds the clip's lock)."""
        removed = 0
        for folder in (self.dir, self.layers_dir):
            for path in folder.glob(".*.tmp") if folder.is_dir() else []:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def write_validation(self, verdict: dict) -> None:
        atomic_write_json(self.dir / "validation.json", verdict)


def _read_small_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_validation_status(root: Path, clip_id: str) -> dict | None:
    """The verdict the last session of this clip wrote (``validation.json``), if any."""
    return _read_small_json(session_dir(root, clip_id) / "validation.json")


def read_session_summary(root: Path, clip_id: str) -> dict | None:
    """Labelled and reviewed frame counts and the dirty flag of a clip's autosaved session (for the clip list)."""
    data = _read_small_json(session_dir(root, clip_id) / "session.json")
    if data is None:
        return None
    status = data.get("status") or []
    reviewed = data.get("reviewed") or []
    return {
        "labelled": sum(s != EMPTY for s in status),
        "reviewed": len(reviewed) if isinstance(reviewed, list) else 0,
        "dirty": data.get("revision") != data.get("saved_revision"),
    }


def new_token() -> str:
    """A fresh access token for the page (192 random bits, URL-safe)."""
    return secrets.token_urlsafe(24)


def stored_token(root: str | Path, *, renew: bool = False) -> str:
    """The page's access token for the dataset at ``root``: the one kept from an earlier start, or a new one.

    It lives beside the session files (``.refvps-annotate/token``, readable by its owner only), never
    in the dataset's own files, so that open pages keep working when the server restarts.
    """
    path = Path(root) / SESSION_DIR / TOKEN_FILE
    if not renew:
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError:
            token = ""
        if len(token) >= 16 and token.replace("-", "").replace("_", "").isalnum():
            return token
    token = new_token()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(TOKEN_FILE + ".new"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(path.with_name(TOKEN_FILE + ".new"), path)
    return token
