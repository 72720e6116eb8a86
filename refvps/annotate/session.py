"""One clip being labelled: the page and the headless mode both drive a :class:`ClipSession`.

The session is the single source of truth and the one place that edits a clip. It composes the
clip's editable state (:mod:`refvps.annotate.clipstate`) held as working layers
(:mod:`refvps.annotate.working`), its files next to the dataset (:mod:`refvps.annotate.store`),
written only while it holds the clip's lock (:mod:`refvps.annotate.autosave`), the undo history
(:mod:`refvps.annotate.history`), the propagation runner (:mod:`refvps.annotate.propagation`) and the
save (:mod:`refvps.annotate.saving`); the segmenter session is a cache brought in step with it
(:meth:`SegmenterSession.sync`). Which clips it may open: :mod:`refvps.annotate.clipcheck`.

Every edit is written before the request returns, so closing the browser or killing the server
loses nothing; starting again restores the clip exactly. Saving writes ``Annotations/<clip>/*.png``
and this clip's entry of ``meta_expressions.json`` in one transaction
(:class:`refvps.dataset.transaction.ClipSave`): a crash leaves the clip wholly old or wholly new.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from refvps.annotate import layers as L
from refvps.annotate import propagation
from refvps.annotate.autosave import Autosave, LockLostError
from refvps.annotate.clipcheck import check_editable, check_plain_names
from refvps.annotate.clipstate import CLICKED, EMPTY, MANUAL, PROPAGATED, FramePrompt, clean_expressions
from refvps.annotate.frames import FrameSource
from refvps.annotate.history import History, UndoStep
from refvps.annotate.lock import ClipLock
from refvps.annotate.propagation import PropagationJob, PropagationRunner, frames_reached, plan
from refvps.annotate.saving import (
    SaveResult,
    UnlabelledFramesError,
    clip_expressions,
    expression_records,
    unlabelled_frames,
    write_clip,
)
from refvps.annotate.segmenters.base import Segmenter, SegmenterSession, check_points
from refvps.annotate.store import SessionStore
from refvps.annotate.verdicts import clip_fingerprint, validate_clip, verdict_of
from refvps.annotate.working import OBJ_ID, WorkingLayers, open_state
from refvps.dataset import transaction
from refvps.dataset.format import Clip, Dataset
from refvps.errors import RefvpsError, UsageError

__all__ = ["OBJ_ID", "ClipSession", "LockLostError", "SaveResult", "SessionBusyError", "UnlabelledFramesError"]

COPY_IGNORE_TO = ("next", "previous", "all")


class SessionBusyError(RefvpsError):
    """An edit that needs the segmenter was asked for while a propagation is running."""


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
        check_plain_names(self.root, clip)
        check_editable(self.root, clip)
        self.clip = clip
        self.clip_id = clip.id
        self.segmenter = segmenter
        self.lock = lock
        self.model_lock = model_lock or threading.Lock()
        self.refvps_rules = refvps_rules
        self.frame_names: list[str] = list(clip.frame_names)
        self.frames = FrameSource([clip.frame_path(n) for n in self.frame_names], cache_size=frame_cache)
        self.shape = self.frames.shape
        self.store = SessionStore(self.root, clip.id)
        self.dir = self.store.dir
        self.history = History()
        self.runner = PropagationRunner(clip.id)
        self._lock = threading.RLock()
        self._seg: SegmenterSession | None = None
        self._job_step: UndoStep | None = None
        self.verdict: dict | None = None  # the last validation's summary (see :func:`verdict_of`)
        # What happened on open (an interrupted save finished, the session restored or started, moved aside).
        self.notes: list[str] = [r.describe() for r in transaction.recover(self.root, [clip.id])]
        self.state, notes, self.restored = open_state(
            self.store, clip, self.shape, segmenter.info().name, restore=restore
        )
        self.notes += notes
        self.layers = WorkingLayers(self.state, self.store, self.shape)
        self.autosave = Autosave(self.store, lock, segmenter.info().name)

    # -- properties ---------------------------------------------------------------------------

    @property
    def num_frames(self) -> int:
        return len(self.frame_names)

    @property
    def middle(self) -> int:
        return self.num_frames // 2

    @property
    def dirty(self) -> bool:
        return self.state.dirty

    @property
    def job(self) -> PropagationJob | None:
        return self.runner.job

    @property
    def revs(self) -> list[int]:
        return self.layers.revs

    def frame_index(self, name: str) -> int:
        try:
            return self.frame_names.index(name)
        except ValueError:
            raise UsageError(f"clip {self.clip_id} has no frame {name!r}", hint="frame names are like 00012") from None

    def _check_index(self, index: int) -> int:
        if not isinstance(index, (int, np.integer)) or not 0 <= int(index) < self.num_frames:
            raise UsageError(f"frame index {index!r} outside 0..{self.num_frames - 1}")
        return int(index)

    # -- reading ------------------------------------------------------------------------------

    def code(self, index: int) -> np.ndarray:
        """Frame ``index``'s working layers (bit 0 target, bit 1 Ignore)."""
        index = self._check_index(index)
        with self._lock:
            return self.layers.code(index)

    def target(self, index: int) -> np.ndarray:
        return L.target_of(self.code(index))

    def ignore(self, index: int) -> np.ndarray:
        return L.ignore_of(self.code(index))

    def overlay_png(self, index: int, style: str = "fill") -> bytes:
        return L.encode_overlay_png(self.code(index), style)

    def state_json(self) -> dict:
        with self._lock:
            state = self.state
            return {
                "clip": self.clip_id,
                "frames": self.frame_names,
                "width": self.shape[1],
                "height": self.shape[0],
                "middle": self.middle,
                "anchor": state.anchor,
                "status": self.state.statuses,
                "reviewed": self.state.reviewed,
                "revs": list(self.revs),
                "prompts": {str(k): v.to_json() for k, v in sorted(self.state.prompts.items())},
                "annotators": list(state.annotators),
                "expressions": list(state.expressions),
                "revision": state.revision,
                "dirty": state.dirty,
                "saved_at": state.saved_at,
                "labelled": sum(s != EMPTY for s in self.state.statuses),
                "reviewed_count": sum(self.state.reviewed),
                "undo": self.history.undo_label,
                "redo": self.history.redo_label,
                "job": self.job.to_json() if self.job else None,
                "notes": list(self.notes),
            }

    # -- editing primitives --------------------------------------------------------------------

    def _edit(self, label: str, frames: Iterable[int], change: Callable[[], None], *, log: dict | None = None) -> None:
        """Run ``change`` as one undoable step over ``frames`` and autosave it."""
        self.autosave.check()
        frames = sorted(set(frames))
        before = {i: self.state.frames[i] for i in frames}
        change()
        changed = [i for i in frames if self.state.frames[i] != before[i]]
        if not changed:
            return
        step = UndoStep(label, {i: before[i] for i in changed}, {i: self.state.frames[i] for i in changed})
        self.history.record(step)
        if self._job_step is not None:
            self._job_step.forget(changed)  # the running propagation must not undo over this hand edit later
        self.state.revision += 1
        self.autosave.write(self.state)
        details = dict(log or {})
        self.store.log(details.pop("op", "edit"), frames=[self.frame_names[i] for i in changed], **details)

    def _require_idle(self, what: str) -> None:
        job = self.job
        if job is not None and job.running:
            raise SessionBusyError(
                f"cannot {what} while propagation is running ({job.done}/{job.total} frames)",
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
        prompt = FramePrompt.of(points, labels)
        try:
            check_points(prompt.points, prompt.labels, self.shape)
        except ValueError as exc:
            raise UsageError(f"frame {self.frame_names[index]}: {exc}", hint="click inside the frame") from None
        with self._lock:
            self._require_idle("segment from clicks")
            self.autosave.check()
            if not prompt.points and self.state.frames[index].prompt is None:
                return
            mask = self._segment(index, prompt)

            def change() -> None:
                code = L.with_target(self.code(index), np.zeros(self.shape, bool) if mask is None else mask)
                if mask is None:
                    self.layers.change(index, code, prompt=None, status=EMPTY, reviewed=True)
                    return
                if self.state.anchor is None or self.state.frames[self.state.anchor].status != CLICKED:
                    self.state.anchor = index
                self.layers.change(index, code, prompt=prompt, status=CLICKED, reviewed=True)

            log = {"op": "clicks", "points": [list(p) for p in prompt.points], "labels": list(prompt.labels)}
            self._edit("clicks on " + self.frame_names[index], [index], change, log=log)

    def _segment(self, index: int, prompt: FramePrompt) -> np.ndarray | None:
        """The segmenter's mask for these clicks (None: no clicks left, the frame's prompt is cleared)."""
        with self.model_lock:
            seg = self._segmenter()
            if not prompt.points:
                seg.clear_prompts(index)
                seg.held.pop(index, None)
                return None
            mask = seg.add_points(index, prompt.points, prompt.labels)
            seg.held[index] = L.mask_signature(mask)
            return mask

    def add_points(self, index: int, points: Sequence[Sequence[float]], labels: Sequence[int]) -> None:
        """Add clicks to those already on frame ``index`` (what the headless mode does per entry)."""
        index = self._check_index(index)
        with self._lock:
            prompt = self.state.frames[index].prompt or FramePrompt()
            self.set_points(index, [*prompt.points, *map(tuple, points)], [*prompt.labels, *labels])

    def stroke(self, index: int, layer: str, mode: str, radius: float, points: Sequence[Sequence[float]]) -> None:
        """Paint (``mode='paint'``) or erase (``'erase'``) a brush stroke on the target or Ignore layer."""
        index = self._check_index(index)
        if mode not in ("paint", "erase"):
            raise UsageError(f"unknown brush mode {mode!r}", hint="use 'paint' or 'erase'")
        bit = _layer_bit(layer)
        if not 0 < float(radius) <= 1000:
            raise UsageError(f"brush radius {radius} outside (0, 1000]")
        stroke = L.stroke_mask(self.shape, points, radius)
        with self._lock:

            def change() -> None:
                code = self.code(index)
                current = (code & bit).astype(bool)
                new = current | stroke if mode == "paint" else current & ~stroke
                if np.array_equal(new, current):
                    return
                status = MANUAL if layer == "target" else self.state.frames[index].status
                self.layers.change(index, L.with_layer(code, layer, new), status=status, reviewed=True)

            log = {
                "op": "stroke",
                "layer": layer,
                "mode": mode,
                "radius": float(radius),
                "points": [[round(float(x), 2), round(float(y), 2)] for x, y in points],
            }
            what = "brush" if mode == "paint" else "eraser"
            self._edit(f"{what} ({layer}) on {self.frame_names[index]}", [index], change, log=log)

    def fill_holes(self, index: int | None, layer: str = "target") -> int:
        """Fill enclosed holes on one frame (a hand fix), or on every frame (``index=None``, statuses kept)."""
        _layer_bit(layer)
        frames = range(self.num_frames) if index is None else [self._check_index(index)]
        filled = 0
        with self._lock:

            def change() -> None:
                nonlocal filled
                for i in frames:
                    code = self.code(i)
                    current = L.target_of(code) if layer == "target" else L.ignore_of(code)
                    new = L.fill_holes(current)
                    if np.array_equal(new, current):
                        continue
                    filled += 1
                    if index is None:  # a sweep over the clip: nobody looked at these frames
                        self.layers.change(i, L.with_layer(code, layer, new))
                    else:
                        status = MANUAL if layer == "target" else self.state.frames[i].status
                        self.layers.change(i, L.with_layer(code, layer, new), status=status, reviewed=True)

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
                code, frame = self.code(index), self.state.frames[index]
                changes: dict[str, Any] = {"reviewed": True}
                if layer in ("target", "all"):
                    code = L.with_target(code, np.zeros(self.shape, bool))
                    changes.update(prompt=None, status=MANUAL)
                if layer in ("ignore", "all"):
                    code = L.with_layer(code, "ignore", np.zeros(self.shape, bool))
                if frame.status == changes.get("status", frame.status) and np.array_equal(code, self.code(index)):
                    return
                self.layers.change(index, code, **changes)

            label = f"clear {layer} on {self.frame_names[index]}"
            self._edit(label, [index], change, log={"op": "clear", "layer": layer})

    def copy_ignore(self, source: int, to: str = "next") -> list[int]:
        """Copy the Ignore layer of ``source`` to the ``next`` or ``previous`` frame, or to ``all`` frames.

        For ambiguous regions that stay put. Returns the frames it was copied to.
        """
        source = self._check_index(source)
        if to not in COPY_IGNORE_TO:
            raise UsageError(f"unknown copy target {to!r}", hint=f"use one of {', '.join(COPY_IGNORE_TO)}")
        candidates = {"next": [source + 1], "previous": [source - 1], "all": list(range(self.num_frames))}[to]
        targets = [t for t in candidates if 0 <= t < self.num_frames and t != source]
        with self._lock:
            ignore = self.ignore(source)

            def change() -> None:
                for i in targets:
                    code = self.code(i)
                    if not np.array_equal(L.ignore_of(code), ignore):
                        self.layers.change(i, L.with_layer(code, "ignore", ignore))

            label = f"copy Ignore from {self.frame_names[source]} to {len(targets)} frames"
            self._edit(label, targets, change, log={"op": "copy_ignore", "source": self.frame_names[source]})
        return targets

    def set_reviewed(self, index: int, reviewed: bool = True) -> None:
        """Mark frame ``index`` as checked by an annotator (or take the mark back)."""
        index = self._check_index(index)
        with self._lock:
            if self.state.frames[index].reviewed == bool(reviewed):
                return
            what = "reviewed" if reviewed else "not reviewed"

            def change() -> None:
                self.layers.change(index, reviewed=bool(reviewed))

            self._edit(f"mark {self.frame_names[index]} {what}", [index], change, log={"op": "review", "to": what})

    # -- undo / redo ----------------------------------------------------------------------------

    def undo(self) -> str | None:
        """Undo the last edit; returns its label (None: nothing to undo)."""
        return self._replay("undo")

    def redo(self) -> str | None:
        """Redo the last undone edit; returns its label (None: nothing to redo)."""
        return self._replay("redo")

    def _replay(self, which: str) -> str | None:
        with self._lock:
            self._require_idle(which)
            self.autosave.check()
            taken = self.history.take(which)
            if taken is None:
                return None
            step, frames = taken
            for i, frame in frames.items():
                self.layers.put(i, frame)
            self.state.revision += 1
            self.autosave.write(self.state)
            self.store.log(which, label=step.label)
            return step.label

    # -- propagation ----------------------------------------------------------------------------

    def start_propagation(self, start: int, direction: str = "both") -> PropagationJob:
        """Propagate from frame ``start`` (``forward``, ``backward``, ``both`` or ``between``) in a background thread.

        Keyframes (clicked or fixed by hand) are never overwritten; they are pushed into the
        segmenter first, so propagation conditions on them. Returns at once; poll :attr:`job`.
        """
        start = self._check_index(start)
        with self._lock:
            self._require_idle("start another propagation")
            self.autosave.check()
            keyframes = self.state.keyframes
            if not keyframes and self.state.frames[start].status == EMPTY:
                raise UsageError("nothing to propagate yet", hint="click on the target first (left click = positive)")
            stretches = plan(direction, start, keyframes, self.num_frames)
            if not stretches:
                raise UsageError(
                    f"no frames to propagate between the keyframes around {self.frame_names[start]}",
                    hint="the frames next to it are keyframes already; scrub to a stretch of propagated frames",
                )
            job = PropagationJob(start, direction, stretches, frames_reached(stretches))
            self._job_step = UndoStep(f"propagate {direction} from {self.frame_names[start]}")
            return self.runner.start(job, self._run_job)

    def _run_job(self, job: PropagationJob) -> None:
        try:
            with self._lock:
                prompt_masks = {i: self.target(i) for i in self.state.keyframes}
                # An unlabelled start frame has no mask to start from (segmenters with memory need none).
                start_mask = self.target(job.start) if self.state.frames[job.start].status != EMPTY else None
                if not prompt_masks and start_mask is not None:
                    # No keyframe (e.g. masks loaded from a previous save): start from this frame's mask.
                    prompt_masks = {job.start: start_mask}
            with self.model_lock:
                seg = self._segmenter()
                seg.sync(prompt_masks)
            propagation.run(job, seg, start_mask, self.model_lock, lambda i, m: self._write_propagated(job, i, m))
        except Exception as exc:  # noqa: BLE001 - reported to the page, the server keeps running
            job.fail(exc)
        finally:
            self._end_job(job)

    def _end_job(self, job: PropagationJob) -> None:
        with self._lock:
            step, self._job_step = self._job_step, None
            if step is not None and step.before:
                self.history.record(step)
                self.state.revision += 1
            job.finished = time.time()
            try:
                self.autosave.write(self.state)
                self.store.log(
                    "propagate",
                    start=self.frame_names[job.start],
                    mode=job.mode,
                    state=job.state,
                    written=job.written,
                    kept=job.kept,
                    error=job.error,
                )
            except RefvpsError:
                pass

    def _write_propagated(self, job: PropagationJob, index: int, mask: np.ndarray) -> None:
        if mask.shape != self.shape:
            raise RuntimeError(f"segmenter returned a {mask.shape} mask for a {self.shape} frame")
        with self._lock:
            self.autosave.check()
            frame = self.state.frames[index]
            if frame.is_keyframe:
                job.kept += 1
                return
            code = self.code(index)
            new = L.with_target(code, mask)
            step = self._job_step
            if step is not None and index not in step.before:
                step.before[index] = frame
            changed = not np.array_equal(new, code)
            if changed or frame.status != PROPAGATED:
                # A review mark is for the mask the annotator saw: a different mask needs a new look.
                self.layers.change(index, new, status=PROPAGATED, reviewed=frame.reviewed and not changed)
                self.state.revision += 1
            if step is not None:
                step.after[index] = self.state.frames[index]
            job.written += 1
            self.autosave.write(self.state, force=False)

    def cancel(self) -> bool:
        return self.runner.cancel()

    def wait(self, timeout: float | None = None) -> PropagationJob | None:
        return self.runner.wait(timeout)

    # -- expressions ----------------------------------------------------------------------------

    def set_expressions(self, annotators: Sequence[str], expressions: Sequence[str]) -> None:
        annotators, expressions = clean_expressions(annotators, expressions)
        with self._lock:
            self.autosave.check()
            if annotators == self.state.annotators and expressions == self.state.expressions:
                return
            self.state.annotators, self.state.expressions = annotators, expressions
            self.state.revision += 1
            self.autosave.write(self.state)
            self.store.log("expressions", annotators=annotators, expressions=expressions)

    # -- saving ---------------------------------------------------------------------------------

    def save(self, *, allow_unlabelled: bool = False, validate: bool = True) -> SaveResult:
        """Write ``Annotations/<clip>/*.png`` and this clip's expressions in one transaction; then validate."""
        with self._lock:
            self._require_idle("save")
            self.autosave.check()
            unlabelled = unlabelled_frames(self.state)
            if unlabelled and not allow_unlabelled:
                raise UnlabelledFramesError(unlabelled)
            records = expression_records(self.state)
            revision = self.state.revision
            write_clip(
                self.root, self.clip_id, self.state, self.shape, clip_expressions(self.root, self.clip_id, records)
            )
            self.state.saved_revision = revision
            self.state.saved_at = time.time()
            self.autosave.write(self.state)
            self.store.log("save", frames=self.num_frames, expressions=len(records))
        problems = self.validate() if validate else []
        ok = not any(p["severity"] == "error" for p in problems)
        return SaveResult(self.num_frames, len(records), problems, ok)

    def validate(self) -> list[dict]:
        """What ``refvps validate`` says about this clip (problems of other clips are not shown)."""
        fingerprint = clip_fingerprint(Dataset(self.root), self.clip_id)
        problems = validate_clip(self.root, self.clip_id, refvps_rules=self.refvps_rules)
        self.verdict = verdict_of(problems, fingerprint)
        if self.autosave.may_write:  # a session that lost its lock writes nothing
            try:
                self.store.write_validation(self.verdict)
            except OSError:
                pass
        return problems

    # -- closing ----------------------------------------------------------------------------------

    def close(self) -> None:
        if self.cancel():
            self.wait(timeout=60)
        with self._lock:
            if self.autosave.may_write:
                try:
                    self.autosave.write(self.state)
                except RefvpsError:
                    pass
            if self._seg is not None:
                with self.model_lock:
                    self._seg.close()
                self._seg = None
        if self.lock is not None:
            self.lock.release()


def _layer_bit(layer: str) -> int:
    try:
        return L.layer_bit(layer)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
