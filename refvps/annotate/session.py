"""One clip being labelled: its layers, clicks, expressions, undo history, autosave and save.

The session is the single source of truth; the page and the headless mode both drive it, and the
segmenter session is a cache that is brought in step with it (:meth:`SegmenterSession.sync`).

On disk, next to the dataset (hidden, so dataset checks ignore it)::

    <root>/.refvps-annotate/<clip>/
        session.json        statuses, clicks, expressions, annotators, revision (rewritten atomically)
        layers/<frame>.png  working layers of each frame that is not blank (bit 0 target, bit 1 Ignore)
        edits.jsonl         every edit, one JSON line each (clicks, strokes, fills, propagations, saves)
        lock.json           who has the clip open (see :mod:`refvps.annotate.lock`)
        validation.json     what validation said after the last save

Every edit is written before the request returns, so closing the browser or killing the server
loses nothing; starting again restores the clip exactly. Saving writes ``Annotations/<clip>/*.png``
and this clip's entry of ``meta_expressions.json`` only.

Frame statuses: ``empty`` (never labelled), ``propagated`` (written by propagation), ``clicked``
(mask from clicks on that frame) and ``manual`` (fixed by hand with brush, eraser, fill or clear).
Clicked and manual frames are *keyframes*: propagation never overwrites them and conditions on them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from refvps.annotate import layers as L
from refvps.annotate.frames import FrameSource
from refvps.annotate.lock import ClipLock
from refvps.annotate.segmenters.base import Segmenter, SegmenterSession, check_points
from refvps.dataset.format import EXPRESSIONS_FILE, FRAMES_DIR, MASKS_DIR, Clip, Dataset, DatasetWriter, Expression
from refvps.dataset.palette import IGNORE_INDEX, read_label_png
from refvps.errors import DatasetError, RefvpsError, UsageError
from refvps.fileio import atomic_write_bytes, atomic_write_json, read_json

SESSION_DIR = ".refvps-annotate"
SESSION_VERSION = 1
OBJ_ID = 1  # Ref-VPS clips have one target, label 1

EMPTY, PROPAGATED, CLICKED, MANUAL = "empty", "propagated", "clicked", "manual"
STATUSES = (EMPTY, PROPAGATED, CLICKED, MANUAL)
KEYFRAME_STATUSES = (CLICKED, MANUAL)

EXPRESSION_IDS = ("0", "1", "2", "3")  # annotator A writes 0 and 1, annotator B writes 2 and 3
MAX_EXPRESSION_CHARS = 500
MAX_ANNOTATOR_CHARS = 64
MAX_UNDO_STEPS = 200
MAX_UNDO_BYTES = 256 * 1024 * 1024
LOCK_VERIFY_EVERY_S = 1.0


class SessionBusyError(RefvpsError):
    """An edit that needs the segmenter was asked for while a propagation is running."""


class LockLostError(RefvpsError):
    """Another session took this clip's lock over; this one must stop writing."""


class UnlabelledFramesError(RefvpsError):
    """Saving would write frames nobody labelled; the caller must confirm."""

    def __init__(self, frames: list[str]):
        super().__init__(
            f"{len(frames)} frames were never labelled (first: {', '.join(frames[:5])})",
            hint="propagate through the whole clip, or confirm that these frames have no target",
        )
        self.frames = frames


def session_dir(root: Path, clip_id: str) -> Path:
    return Path(root) / SESSION_DIR / clip_id


# ----------------------------------------------------------------------------------------------
# State


@dataclass
class FramePrompt:
    """The clicks on one frame (pixel coordinates; label 1 positive, 0 negative)."""

    points: list[list[float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"points": [[float(x), float(y)] for x, y in self.points], "labels": [int(v) for v in self.labels]}

    @classmethod
    def from_json(cls, data: dict) -> "FramePrompt":
        return cls([[float(x), float(y)] for x, y in data.get("points", [])], [int(v) for v in data.get("labels", [])])


@dataclass
class Snapshot:
    """One frame's editable state (for undo)."""

    blob: bytes | None
    status: str
    prompt: FramePrompt | None

    @property
    def nbytes(self) -> int:
        return len(self.blob or b"") + 64


@dataclass
class UndoStep:
    label: str
    before: dict[int, Snapshot] = field(default_factory=dict)
    after: dict[int, Snapshot] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self.before.values()) + sum(s.nbytes for s in self.after.values())


@dataclass
class PropagationJob:
    """A propagation running in a background thread; the page polls it and may cancel it."""

    id: str
    start: int
    directions: tuple[str, ...]
    total: int
    done: int = 0
    written: int = 0
    kept: int = 0
    state: str = "running"  # running | done | cancelled | failed
    error: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False)
    thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.state == "running"

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "start": self.start,
            "directions": list(self.directions),
            "total": self.total,
            "done": self.done,
            "written": self.written,
            "kept": self.kept,
            "state": self.state,
            "error": self.error,
            "started": self.started,
            "finished": self.finished,
        }


@dataclass
class SaveResult:
    written: int
    expressions: int
    problems: list[dict]
    ok: bool

    def to_json(self) -> dict:
        return {"written": self.written, "expressions": self.expressions, "ok": self.ok, "problems": self.problems}


# ----------------------------------------------------------------------------------------------


_SAFE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}$")


def is_safe_id(value: str) -> bool:
    """A clip id or frame name that can be used as one path component (no separators, not '..')."""
    return bool(_SAFE_ID.match(value)) and value not in (".", "..")


class ClipSession:
    """An open clip. Thread-safe: the server calls it from several request threads and one job."""

    def __init__(
        self,
        root: str | Path,
        clip: Clip,
        segmenter: Segmenter,
        *,
        lock: ClipLock | None = None,
        model_lock: threading.Lock | None = None,
        refvps_rules: bool = True,
        frame_cache: int = 8,
        restore: bool = True,
    ):
        self.root = Path(root)
        self.clip = clip
        self.clip_id = clip.id
        self.segmenter = segmenter
        self.lock = lock
        self.model_lock = model_lock or threading.Lock()
        self.refvps_rules = refvps_rules
        self.frame_names: list[str] = list(clip.frame_names)
        if not self.frame_names:
            raise DatasetError(
                f"clip {clip.id} lists no frames", hint="fill its 'frames' list in meta_expressions.json"
            )
        # Frame names become the file names of layers and saved masks: '../x' would write elsewhere.
        unsafe = [name for name in self.frame_names if not is_safe_id(name)]
        if unsafe or not is_safe_id(clip.id):
            raise DatasetError(
                f"clip {clip.id!r} has a clip id or frame names that are not plain file names: "
                f"{', '.join(map(repr, unsafe[:3])) or repr(clip.id)}",
                hint="clip ids and frame names in meta_expressions.json are like clip_0001 and 00012 (no '/', no '..')",
                path=self.root / EXPRESSIONS_FILE,
            )
        self.frames = FrameSource([clip.frame_path(n) for n in self.frame_names], cache_size=frame_cache)
        self.shape = self.frames.shape
        self.dir = session_dir(self.root, clip.id)
        self._lock = threading.RLock()
        self._seg: SegmenterSession | None = None

        n = len(self.frame_names)
        self.status: list[str] = [EMPTY] * n
        self.blobs: list[bytes | None] = [None] * n  # None: blank frame
        self.revs: list[int] = [0] * n
        self.prompts: dict[int, FramePrompt] = {}
        self.anchor: int | None = None  # the first clicked frame; "auto" propagates away from it
        self.annotators: list[str] = ["", ""]
        self.expressions: list[str] = ["", "", "", ""]
        self.revision = 0
        self.saved_revision = 0
        self.saved_at: float | None = None
        self.created = time.time()
        self.restored = False
        self.notes: list[str] = []  # what happened on open (restored, imported, moved aside)
        self.verdict: dict | None = None  # the last validation's summary (see :func:`verdict_of`)

        self.undo_stack: list[UndoStep] = []
        self.redo_stack: list[UndoStep] = []
        self.job: PropagationJob | None = None
        self._job_step: UndoStep | None = None
        self._last_session_write = 0.0
        self._lock_verified = 0.0
        self._decoded: dict[int, np.ndarray] = {}  # tiny cache of decoded codes (last frames touched)

        self._load(restore)

    # -- properties ---------------------------------------------------------------------------

    @property
    def num_frames(self) -> int:
        return len(self.frame_names)

    @property
    def middle(self) -> int:
        return self.num_frames // 2

    @property
    def dirty(self) -> bool:
        return self.revision != self.saved_revision

    def frame_index(self, name: str) -> int:
        try:
            return self.frame_names.index(name)
        except ValueError:
            raise UsageError(f"clip {self.clip_id} has no frame {name!r}", hint="frame names are like 00012") from None

    def _check_index(self, index: int) -> int:
        if not isinstance(index, (int, np.integer)) or not 0 <= int(index) < self.num_frames:
            raise UsageError(f"frame index {index!r} outside 0..{self.num_frames - 1}")
        return int(index)

    # -- loading and autosave -------------------------------------------------------------------

    def _load(self, restore: bool) -> None:
        path = self.dir / "session.json"
        if path.exists() and not restore:
            self._move_aside("a fresh session was asked for")
        elif path.exists():
            try:
                data = read_json(path, what="annotation session file")
                if data.get("frames") != self.frame_names or data.get("size") != [self.shape[1], self.shape[0]]:
                    self._move_aside("the clip's frames changed since this session was saved")
                else:
                    self._restore(data)
                    return
            except (DatasetError, ValueError, KeyError, TypeError) as exc:
                self._move_aside(f"the session file could not be read ({exc})")
        self._start_fresh()

    def _move_aside(self, why: str) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.dir.parent / f"{self.clip_id}.old-{stamp}-{uuid.uuid4().hex[:6]}"
        keep = {"lock.json"}
        target.mkdir(parents=True, exist_ok=True)
        for entry in list(self.dir.iterdir()):
            if entry.name not in keep:
                shutil.move(str(entry), str(target / entry.name))
        self.notes.append(f"previous session moved to {target} because {why}")

    def _restore(self, data: dict) -> None:
        statuses = data.get("status", [])
        if len(statuses) != self.num_frames or any(s not in STATUSES for s in statuses):
            raise ValueError("bad frame statuses")
        self.status = list(statuses)
        self.prompts = {int(k): FramePrompt.from_json(v) for k, v in data.get("prompts", {}).items()}
        anchor = data.get("anchor")
        self.anchor = int(anchor) if isinstance(anchor, int) and 0 <= anchor < self.num_frames else None
        self.annotators = _pad([str(a) for a in data.get("annotators", [])], 2)
        self.expressions = _pad([str(e) for e in data.get("expressions", [])], 4)
        self.revision = int(data.get("revision", 0))
        self.saved_revision = int(data.get("saved_revision", 0))
        self.saved_at = data.get("saved_at")
        self.created = float(data.get("created", time.time()))
        layers_dir = self.dir / "layers"
        for index, name in enumerate(self.frame_names):
            file = layers_dir / f"{name}.png"
            if file.exists():
                blob = file.read_bytes()
                L.decode_code(blob, self.shape)  # fail loudly on a corrupt layer file
                self.blobs[index] = blob
        self.restored = True
        self.notes.append(
            f"restored the autosaved session of {time.strftime('%Y-%m-%d %H:%M', time.localtime(data.get('updated', 0)))}"
        )

    def _start_fresh(self) -> None:
        existing = {e.exp_id: e for e in self.clip.expressions}
        for slot, exp_id in enumerate(EXPRESSION_IDS):
            if exp_id in existing:
                self.expressions[slot] = existing[exp_id].text
                if existing[exp_id].annotator:
                    self.annotators[slot // 2] = self.annotators[slot // 2] or str(existing[exp_id].annotator)
        # Saved masks become the working layers (decoding and re-encoding them is most of the time
        # it takes to open a long clip).
        results = _in_threads(self._import_mask, self.frame_names)
        imported = 0
        for index, (found, blob) in enumerate(results):
            if found:
                self.blobs[index] = blob
                self.status[index] = PROPAGATED
                imported += 1
        if imported:
            self.notes.append(f"loaded {imported} saved masks from {MASKS_DIR}/{self.clip_id}/")
        # Layers first, then the session file that refers to them: a crash in between must not
        # leave a session that restores imported frames as blank (and would save them blank).
        for index in range(self.num_frames):
            self._write_layer(index)
        # A fresh session equals what is on disk, so it is not dirty.
        self._write_session(force=True)

    def _import_mask(self, name: str) -> tuple[bool, bytes | None]:
        """(whether frame ``name`` has a saved mask, its working layers compressed; None when blank)."""
        path = self.clip.mask_path(name)
        if not path.exists():
            return False, None
        label = read_label_png(path)
        if label.shape != self.shape:
            raise DatasetError(
                f"mask {path} is {label.shape[1]}x{label.shape[0]} but the frame is {self.shape[1]}x{self.shape[0]}",
                hint="fix or delete the mask, then open the clip again",
                path=path,
            )
        foreign = (label != 0) & (label != OBJ_ID) & (label != IGNORE_INDEX)
        if foreign.any():
            raise DatasetError(
                f"mask {path} holds labels {sorted(set(np.unique(label[foreign]).tolist()))}; this tool edits one "
                "target (label 1) and Ignore (255)",
                hint="label other objects with another tool, or remap them to 0/1/255",
                path=path,
            )
        code = L.label_to_code(label, OBJ_ID)
        return True, (L.encode_code(code) if code.any() else None)

    def _session_json(self) -> dict:
        return {
            "version": SESSION_VERSION,
            "clip": self.clip_id,
            "frames": self.frame_names,
            "size": [self.shape[1], self.shape[0]],
            "segmenter": self.segmenter.info().name,
            "created": self.created,
            "updated": time.time(),
            "revision": self.revision,
            "saved_revision": self.saved_revision,
            "saved_at": self.saved_at,
            "status": self.status,
            "prompts": {str(k): v.to_json() for k, v in sorted(self.prompts.items())},
            "anchor": self.anchor,
            "annotators": self.annotators,
            "expressions": self.expressions,
        }

    def _write_session(self, *, force: bool = True) -> None:
        now = time.time()
        if not force and now - self._last_session_write < 1.0:
            return
        self._check_lock()
        atomic_write_json(self.dir / "session.json", self._session_json())
        self._last_session_write = now

    def _write_layer(self, index: int) -> None:
        path = self.dir / "layers" / f"{self.frame_names[index]}.png"
        blob = self.blobs[index]
        if blob is None:
            if path.exists():
                path.unlink()
            return
        atomic_write_bytes(path, blob)

    def _log(self, op: str, **details: Any) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"t": round(time.time(), 3), "op": op, **details}, ensure_ascii=False)
        with open(self.dir / "edits.jsonl", "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def _check_lock(self) -> None:
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
                f"this session no longer holds clip {self.clip_id}'s lock (another session took it over)",
                hint="reopen the clip; your edits up to the takeover are in its session files",
            )

    # -- reading ------------------------------------------------------------------------------

    def code(self, index: int) -> np.ndarray:
        index = self._check_index(index)
        with self._lock:
            blob = self.blobs[index]
            if blob is None:
                return np.zeros(self.shape, np.uint8)
            cached = self._decoded.get(index)
            if cached is not None and cached[0] == self.revs[index]:
                return cached[1].copy()
            code = L.decode_code(blob, self.shape)
            self._remember(index, code)
            return code.copy()

    def target(self, index: int) -> np.ndarray:
        return L.target_of(self.code(index))

    def ignore(self, index: int) -> np.ndarray:
        return L.ignore_of(self.code(index))

    def label(self, index: int) -> np.ndarray:
        return L.code_to_label(self.code(index), OBJ_ID)

    def overlay_png(self, index: int) -> bytes:
        return L.encode_overlay_png(self.code(index))

    def keyframes(self) -> list[int]:
        return [i for i, s in enumerate(self.status) if s in KEYFRAME_STATUSES]

    def state_json(self) -> dict:
        with self._lock:
            job = self.job.to_json() if self.job else None
            return {
                "clip": self.clip_id,
                "frames": self.frame_names,
                "width": self.shape[1],
                "height": self.shape[0],
                "middle": self.middle,
                "anchor": self.anchor,
                "status": list(self.status),
                "revs": list(self.revs),
                "prompts": {str(k): v.to_json() for k, v in sorted(self.prompts.items())},
                "annotators": list(self.annotators),
                "expressions": list(self.expressions),
                "revision": self.revision,
                "dirty": self.dirty,
                "saved_at": self.saved_at,
                "labelled": sum(s != EMPTY for s in self.status),
                "undo": self.undo_stack[-1].label if self.undo_stack else None,
                "redo": self.redo_stack[-1].label if self.redo_stack else None,
                "job": job,
                "notes": list(self.notes),
            }

    # -- editing primitives --------------------------------------------------------------------

    def _snapshot(self, index: int) -> Snapshot:
        prompt = self.prompts.get(index)
        return Snapshot(
            self.blobs[index],
            self.status[index],
            FramePrompt(list(prompt.points), list(prompt.labels)) if prompt else None,
        )

    def _apply_snapshot(self, index: int, snap: Snapshot) -> None:
        self.blobs[index] = snap.blob
        self.status[index] = snap.status
        if snap.prompt is None:
            self.prompts.pop(index, None)
        else:
            self.prompts[index] = FramePrompt(list(snap.prompt.points), list(snap.prompt.labels))
        self.revs[index] += 1
        self._write_layer(index)

    def _set_code(self, index: int, code: np.ndarray) -> None:
        self.blobs[index] = L.encode_code(code) if code.any() else None
        self.revs[index] += 1
        self._remember(index, code.copy())
        self._write_layer(index)

    def _remember(self, index: int, code: np.ndarray) -> None:
        """Keep a few decoded frames (the ones being edited), never the whole clip."""
        self._decoded.pop(index, None)
        self._decoded[index] = (self.revs[index], code)
        while len(self._decoded) > 8:
            self._decoded.pop(next(iter(self._decoded)))

    def _edit(self, label: str, frames: Iterable[int], change: Callable[[], None], *, log: dict | None = None) -> None:
        """Run ``change`` as one undoable step over ``frames`` and autosave it."""
        self._check_lock()
        frames = sorted(set(frames))
        before = {i: self._snapshot(i) for i in frames}
        change()
        after = {i: self._snapshot(i) for i in frames}
        changed = [i for i in frames if _differs(before[i], after[i])]
        if not changed:
            return
        step = UndoStep(label, {i: before[i] for i in changed}, {i: after[i] for i in changed})
        self._push_undo(step)
        if self._job_step is not None:
            # The running propagation must not undo over this hand edit later.
            for i in changed:
                self._job_step.before.pop(i, None)
                self._job_step.after.pop(i, None)
        self.revision += 1
        self._write_session()
        self._log(log.pop("op") if log else "edit", frames=[self.frame_names[i] for i in changed], **(log or {}))

    def _push_undo(self, step: UndoStep) -> None:
        self.undo_stack.append(step)
        self.redo_stack.clear()
        total = sum(s.nbytes for s in self.undo_stack)
        while len(self.undo_stack) > MAX_UNDO_STEPS or (total > MAX_UNDO_BYTES and len(self.undo_stack) > 1):
            total -= self.undo_stack.pop(0).nbytes

    def _require_idle(self, what: str) -> None:
        if self.job is not None and self.job.running:
            raise SessionBusyError(
                f"cannot {what} while propagation is running ({self.job.done}/{self.job.total} frames)",
                hint="wait for it to finish or cancel it (Esc); brush, eraser and expressions work meanwhile",
            )

    def _segmenter(self) -> SegmenterSession:
        if self._seg is None:
            self._seg = self.segmenter.open(self.frames)
        return self._seg

    # -- edits ----------------------------------------------------------------------------------

    def set_points(self, index: int, points: Sequence[Sequence[float]], labels: Sequence[int]) -> None:
        """Make these the clicks on frame ``index`` and segment it (clicks recompute the target there)."""
        index = self._check_index(index)
        points = [[float(x), float(y)] for x, y in points]
        labels = [int(v) for v in labels]
        try:
            check_points(points, labels, self.shape)
        except ValueError as exc:
            raise UsageError(f"frame {self.frame_names[index]}: {exc}", hint="click inside the frame") from None
        with self._lock:
            self._require_idle("segment from clicks")
            self._check_lock()
            had_prompt = index in self.prompts
            if not points and not had_prompt:
                return
            with self.model_lock:
                seg = self._segmenter()
                if points:
                    mask = seg.add_points(index, points, labels)
                    seg.held[index] = L.mask_signature(mask)
                else:
                    mask = None
                    seg.clear_prompts(index)
                    seg.held.pop(index, None)

            def change() -> None:
                code = self.code(index)
                if mask is None:
                    self.prompts.pop(index, None)
                    self._set_code(index, L.with_target(code, np.zeros(self.shape, bool)))
                    self.status[index] = EMPTY
                else:
                    if self.anchor is None or self.status[self.anchor] != CLICKED:
                        self.anchor = index
                    self.prompts[index] = FramePrompt(points, labels)
                    self._set_code(index, L.with_target(code, mask))
                    self.status[index] = CLICKED

            self._edit(
                "clicks on " + self.frame_names[index],
                [index],
                change,
                log={"op": "clicks", "points": points, "labels": labels},
            )

    def add_points(self, index: int, points: Sequence[Sequence[float]], labels: Sequence[int]) -> None:
        """Add clicks to those already on frame ``index`` (what the headless mode does per entry)."""
        index = self._check_index(index)
        with self._lock:
            prompt = self.prompts.get(index, FramePrompt())
            self.set_points(index, list(prompt.points) + [list(p) for p in points], list(prompt.labels) + list(labels))

    def stroke(self, index: int, layer: str, mode: str, radius: float, points: Sequence[Sequence[float]]) -> None:
        """Paint (``mode='paint'``) or erase (``'erase'``) a brush stroke on the target or Ignore layer."""
        index = self._check_index(index)
        if mode not in ("paint", "erase"):
            raise UsageError(f"unknown brush mode {mode!r}", hint="use 'paint' or 'erase'")
        try:
            bit_layer = L.layer_bit(layer)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if not 0 < float(radius) <= 1000:
            raise UsageError(f"brush radius {radius} outside (0, 1000]")
        stroke = L.stroke_mask(self.shape, points, radius)
        with self._lock:

            def change() -> None:
                code = self.code(index)
                current = (code & bit_layer).astype(bool)
                new = current | stroke if mode == "paint" else current & ~stroke
                if np.array_equal(new, current):
                    return
                self._set_code(index, L.with_layer(code, layer, new))
                if layer == "target":
                    self.status[index] = MANUAL

            self._edit(
                f"{'brush' if mode == 'paint' else 'eraser'} ({layer}) on {self.frame_names[index]}",
                [index],
                change,
                log={
                    "op": "stroke",
                    "layer": layer,
                    "mode": mode,
                    "radius": float(radius),
                    "points": [[round(float(x), 2), round(float(y), 2)] for x, y in points],
                },
            )

    def fill_holes(self, index: int | None, layer: str = "target") -> int:
        """Fill enclosed holes on one frame (a hand fix), or on every frame (``index=None``, statuses kept)."""
        try:
            L.layer_bit(layer)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        frames = range(self.num_frames) if index is None else [self._check_index(index)]
        filled = 0
        with self._lock:

            def change() -> None:
                nonlocal filled
                for i in frames:
                    code = self.code(i)
                    current = L.target_of(code) if layer == "target" else L.ignore_of(code)
                    new = L.fill_holes(current)
                    if not np.array_equal(new, current):
                        self._set_code(i, L.with_layer(code, layer, new))
                        filled += 1
                        if layer == "target" and index is not None:
                            self.status[i] = MANUAL

            where = "all frames" if index is None else self.frame_names[index]
            self._edit(f"fill holes ({layer}) on {where}", frames, change, log={"op": "fill_holes", "layer": layer})
        return filled

    def clear_frame(self, index: int, layer: str = "target") -> None:
        """Clear a layer of one frame; clearing the target marks the frame 'target absent' by hand."""
        index = self._check_index(index)
        if layer not in ("target", "ignore", "all"):
            raise UsageError(f"unknown layer {layer!r}", hint="use target, ignore or all")
        with self._lock:

            def change() -> None:
                code = self.code(index)
                if layer in ("target", "all"):
                    code = L.with_target(code, np.zeros(self.shape, bool))
                    self.prompts.pop(index, None)
                    self.status[index] = MANUAL
                if layer in ("ignore", "all"):
                    code = L.with_layer(code, "ignore", np.zeros(self.shape, bool))
                self._set_code(index, code)

            self._edit(
                f"clear {layer} on {self.frame_names[index]}", [index], change, log={"op": "clear", "layer": layer}
            )

    def copy_ignore(self, source: int, targets: Sequence[int]) -> None:
        """Copy the Ignore layer of ``source`` onto ``targets`` (for ambiguous regions that stay put)."""
        source = self._check_index(source)
        targets = [self._check_index(t) for t in targets if t != source]
        with self._lock:
            ignore = self.ignore(source)

            def change() -> None:
                for i in targets:
                    code = self.code(i)
                    if not np.array_equal(L.ignore_of(code), ignore):
                        self._set_code(i, L.with_layer(code, "ignore", ignore))

            self._edit(
                f"copy Ignore from {self.frame_names[source]} to {len(targets)} frames",
                targets,
                change,
                log={"op": "copy_ignore", "source": self.frame_names[source]},
            )

    # -- undo / redo ----------------------------------------------------------------------------

    def undo(self) -> str | None:
        """Undo the last edit; returns its label (None: nothing to undo)."""
        return self._replay(self.undo_stack, self.redo_stack, "before", "undo")

    def redo(self) -> str | None:
        """Redo the last undone edit; returns its label (None: nothing to redo)."""
        return self._replay(self.redo_stack, self.undo_stack, "after", "redo")

    def _replay(self, source: list[UndoStep], target: list[UndoStep], side: str, op: str) -> str | None:
        with self._lock:
            self._require_idle(op)
            self._check_lock()
            if not source:
                return None
            step = source.pop()
            for i, snap in getattr(step, side).items():
                self._apply_snapshot(i, snap)
            target.append(step)
            self.revision += 1
            self._write_session()
            self._log(op, label=step.label)
            return step.label

    # -- propagation ----------------------------------------------------------------------------

    def start_propagation(self, start: int, direction: str = "both") -> PropagationJob:
        """Propagate from frame ``start`` (forwards, backwards or both) in a background thread.

        Keyframes (clicked or fixed by hand) are never overwritten; they are pushed into the
        segmenter first, so propagation conditions on them. Returns at once; poll :attr:`job`.
        """
        start = self._check_index(start)
        if direction == "auto":
            direction = self.auto_direction(start)
        if direction not in ("both", "forward", "backward"):
            raise UsageError(f"unknown direction {direction!r}", hint="use both, forward, backward or auto")
        with self._lock:
            self._require_idle("start another propagation")
            self._check_lock()
            keyframes = self.keyframes()
            if not keyframes and self.status[start] == EMPTY:
                raise UsageError("nothing to propagate yet", hint="click on the target first (left click = positive)")
            directions = ("forward", "backward") if direction == "both" else (direction,)
            # Frames this job reaches, each counted once (both directions begin at ``start``).
            total = {"both": self.num_frames, "forward": self.num_frames - start, "backward": start + 1}[direction]
            job = PropagationJob(uuid.uuid4().hex[:8], start, directions, total)
            self.job = job
            self._job_step = UndoStep(f"propagate {direction} from {self.frame_names[start]}")
            job.thread = threading.Thread(
                target=self._run_job, args=(job,), name=f"propagate-{self.clip_id}", daemon=True
            )
            job.thread.start()
            return job

    def auto_direction(self, start: int) -> str:
        """Away from the first clicked frame: a correction after it re-propagates forwards, before it backwards."""
        if self.anchor is None or self.anchor == start:
            return "both"
        return "forward" if start > self.anchor else "backward"

    def _run_job(self, job: PropagationJob) -> None:
        try:
            with self._lock:
                prompt_masks = {i: self.target(i) for i in self.keyframes()}
                # An unlabelled start frame has no mask to start from (segmenters with memory need none).
                start_mask = self.target(job.start) if self.status[job.start] != EMPTY else None
                if not prompt_masks and start_mask is not None:
                    # No keyframe (e.g. masks loaded from a previous save): start from this frame's mask.
                    prompt_masks = {job.start: start_mask}
            with self.model_lock:
                seg = self._segmenter()
                seg.sync(prompt_masks)
            reached: set[int] = set()
            for direction in job.directions:
                iterator = seg.propagate(job.start, direction == "backward", start_mask)
                while not job.cancel_event.is_set():
                    with self.model_lock:
                        try:
                            index, mask = next(iterator)
                        except StopIteration:
                            break
                    if index in reached:  # the start frame, yielded again by the second direction
                        continue
                    reached.add(index)
                    self._write_propagated(job, index, mask)
                    job.done += 1
                iterator.close()
                if job.cancel_event.is_set():
                    break
            job.state = "cancelled" if job.cancel_event.is_set() else "done"
        except Exception as exc:  # noqa: BLE001 - reported to the page, the server keeps running
            job.state = "failed"
            job.error = f"{type(exc).__name__}: {exc}"
        finally:
            with self._lock:
                step = self._job_step
                self._job_step = None
                if step is not None and step.before:
                    self._push_undo(step)
                    self.revision += 1
                job.finished = time.time()
                try:
                    self._write_session()
                    self._log(
                        "propagate",
                        start=self.frame_names[job.start],
                        directions=list(job.directions),
                        state=job.state,
                        written=job.written,
                        kept=job.kept,
                        error=job.error,
                    )
                except RefvpsError:
                    pass

    def _write_propagated(self, job: PropagationJob, index: int, mask: np.ndarray) -> None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != self.shape:
            raise RuntimeError(f"segmenter returned a {mask.shape} mask for a {self.shape} frame")
        with self._lock:
            self._check_lock()
            if self.status[index] in KEYFRAME_STATUSES:
                job.kept += 1
                return
            code = self.code(index)
            new = L.with_target(code, mask)
            step = self._job_step
            if step is not None and index not in step.before:
                step.before[index] = self._snapshot(index)
            if not np.array_equal(new, code) or self.status[index] != PROPAGATED:
                self._set_code(index, new)
                self.status[index] = PROPAGATED
                self.revision += 1
            if step is not None:
                step.after[index] = self._snapshot(index)
            job.written += 1
            self._write_session(force=False)

    def cancel(self) -> bool:
        job = self.job
        if job is None or not job.running:
            return False
        job.cancel_event.set()
        return True

    def wait(self, timeout: float | None = None) -> PropagationJob | None:
        job = self.job
        if job is not None and job.thread is not None:
            job.thread.join(timeout)
        return job

    # -- expressions ----------------------------------------------------------------------------

    def set_expressions(self, annotators: Sequence[str], expressions: Sequence[str]) -> None:
        if len(annotators) != 2 or len(expressions) != 4:
            raise UsageError("send two annotators and four expressions (A: 0, 1; B: 2, 3)")
        annotators = [str(a).strip() for a in annotators]
        expressions = [" ".join(str(e).split()) for e in expressions]
        for a in annotators:
            if len(a) > MAX_ANNOTATOR_CHARS or any(ord(c) < 32 for c in a):
                raise UsageError(f"annotator id {a[:20]!r}... is too long or holds control characters")
        for e in expressions:
            if len(e) > MAX_EXPRESSION_CHARS:
                raise UsageError(f"an expression is longer than {MAX_EXPRESSION_CHARS} characters")
        with self._lock:
            self._check_lock()
            if annotators == self.annotators and expressions == self.expressions:
                return
            self.annotators = annotators
            self.expressions = expressions
            self.revision += 1
            self._write_session()
            self._log("expressions", annotators=annotators, expressions=expressions)

    def expression_records(self) -> list[Expression]:
        records = []
        for slot, exp_id in enumerate(EXPRESSION_IDS):
            text = self.expressions[slot].strip()
            if not text:
                continue
            annotator = self.annotators[slot // 2].strip()
            if not annotator:
                raise UsageError(
                    f"expression {exp_id} has no annotator",
                    hint=f"fill in annotator {'AB'[slot // 2]}'s name or id",
                )
            records.append(Expression(exp_id, text, OBJ_ID, annotator))
        return records

    # -- saving ---------------------------------------------------------------------------------

    def unlabelled_frames(self) -> list[str]:
        return [self.frame_names[i] for i, s in enumerate(self.status) if s == EMPTY]

    def save(self, *, allow_unlabelled: bool = False, validate: bool = True) -> SaveResult:
        """Write ``Annotations/<clip>/*.png`` and this clip's expressions; then validate the clip."""
        with self._lock:
            self._require_idle("save")
            self._check_lock()
            unlabelled = self.unlabelled_frames()
            if unlabelled and not allow_unlabelled:
                raise UnlabelledFramesError(unlabelled)
            records = self.expression_records()
            revision = self.revision
            writer = DatasetWriter(self.root)
            blobs = list(self.blobs)

            def write(index: int) -> None:  # on worker threads: reads nothing but ``blobs``
                code = (
                    np.zeros(self.shape, np.uint8) if blobs[index] is None else L.decode_code(blobs[index], self.shape)
                )
                writer.write_label(self.clip_id, self.frame_names[index], L.code_to_label(code, OBJ_ID))

            try:
                _in_threads(write, range(self.num_frames))  # each mask atomic; a failure stops the rest
            except OSError as exc:
                raise DatasetError(
                    f"saving clip {self.clip_id} stopped: {exc}",
                    hint="every mask file is whole (the previous or the new one) and the work is in the session; "
                    "fix the cause (disk space, permissions) and save again",
                    path=self.clip.masks_dir,
                ) from exc
            # Merge: the four slots come from the page, any other expression ids of this clip stay.
            current = Dataset(self.root)
            kept = [e for e in current.expressions(self.clip_id) if e.exp_id not in EXPRESSION_IDS]
            writer.update_expressions(self.clip_id, records + kept)
            self.saved_revision = revision
            self.saved_at = time.time()
            self._write_session()
            self._log("save", frames=len(self.frame_names), expressions=len(records))
        problems = self.validate() if validate else []
        ok = not any(p["severity"] == "error" for p in problems)
        return SaveResult(len(self.frame_names), len(records), problems, ok)

    def validate(self) -> list[dict]:
        """What ``refvps validate`` says about this clip (problems of other clips are not shown)."""
        fingerprint = clip_fingerprint(Dataset(self.root), self.clip_id)
        problems = validate_clip(self.root, self.clip_id, refvps_rules=self.refvps_rules)
        self.verdict = verdict_of(problems, fingerprint)
        if self.lock is None or self.lock.held:  # a session that lost its lock writes nothing
            try:
                atomic_write_json(self.dir / "validation.json", self.verdict)
            except OSError:
                pass
        return problems

    # -- closing ----------------------------------------------------------------------------------

    def close(self) -> None:
        job = self.job
        if job is not None and job.running:
            job.cancel_event.set()
            self.wait(timeout=60)
        with self._lock:
            if self.lock is None or self.lock.held:
                try:
                    self._write_session()
                except RefvpsError:
                    pass
            if self._seg is not None:
                with self.model_lock:
                    self._seg.close()
                self._seg = None
        if self.lock is not None:
            self.lock.release()


def validate_clip(root: Path, clip_id: str, *, refvps_rules: bool = True) -> list[dict]:
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
            digest.update(f"{stat.st_mtime_ns}:{len(os.listdir(folder))};".encode())
        except OSError:
            digest.update(b"absent;")
    return digest.hexdigest()


def read_validation_status(root: Path, clip_id: str) -> dict | None:
    """The verdict the last session of this clip wrote (``validation.json``), if any."""
    path = session_dir(root, clip_id) / "validation.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_session_summary(root: Path, clip_id: str) -> dict | None:
    """Labelled-frame count and dirty flag of a clip's autosaved session (for the clip list)."""
    path = session_dir(root, clip_id) / "session.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    status = data.get("status") or []
    return {"labelled": sum(s != EMPTY for s in status), "dirty": data.get("revision") != data.get("saved_revision")}


def _in_threads(function: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
    """``[function(item) for item in items]`` on a few threads (PNG codecs release the GIL).

    The first exception is raised once the calls already running have ended; the rest never start.
    """
    pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1))
    try:
        return list(pool.map(function, items))
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)


def _pad(values: list[str], n: int) -> list[str]:
    return (values + [""] * n)[:n]


def _differs(a: Snapshot, b: Snapshot) -> bool:
    if a.blob != b.blob or a.status != b.status:
        return True
    pa = a.prompt.to_json() if a.prompt else None
    pb = b.prompt.to_json() if b.prompt else None
    return pa != pb
