"""Propagation: which frames a request reaches, the masks the segmenter gives them, and the job thread.

Four ways to propagate from a frame (docs/ANNOTATE.md, "Labelling a clip"):

* ``forward`` / ``backward`` / ``both``: from the frame to the clip's end, start, or both; keyframes on
  the way are kept and restart the segmenter from their mask.
* ``between`` (the page's ``R``): again between the keyframes around the frame. A stretch that has
  a keyframe at each end is propagated from both ends and each frame takes the two results weighted
  by its distance to them, so that the masks lead from one keyframe to the other instead of only
  away from the first (a correction on frame 40 and a fix on frame 55 both shape the frames between).
  A stretch with a keyframe at one end only runs from it to the clip's end.

:class:`PropagationRunner` runs one job at a time in a background thread that the page polls and
may cancel; the segmenter is used under the model lock one frame at a time, so clicks on another
clip are served in between.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from refvps.annotate.segmenters.base import SegmenterSession
from refvps.errors import RefvpsError, UsageError

DIRECTIONS = ("both", "forward", "backward", "between")


@dataclass(frozen=True)
class Stretch:
    """Frames the segmenter runs over: from ``start`` (which it yields first) towards ``stop``, exclusive.

    ``stop`` is -1 or the frame count for a stretch that runs to the clip's start or end;
    ``two_sided`` marks a stretch between two keyframes (``start`` and ``stop``), run from both;
    ``include_start`` whether ``start`` itself is written (not when it is the keyframe it starts from).
    """

    start: int
    stop: int
    two_sided: bool = False
    include_start: bool = True

    @property
    def step(self) -> int:
        return 1 if self.stop > self.start else -1

    @property
    def reached(self) -> range:
        """The frames this stretch writes (both ends excluded when they are keyframes)."""
        first = self.start if self.include_start and not self.two_sided else self.start + self.step
        return range(first, self.stop, self.step)


@dataclass
class PropagationJob:
    """A propagation running in a background thread; the page polls it and may cancel it."""

    start: int
    mode: str
    stretches: tuple[Stretch, ...]
    total: int
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    done: int = 0
    written: int = 0
    kept: int = 0
    state: str = "running"  # running | done | cancelled | failed
    error: str | None = None
    hint: str | None = None  # what to do about the error, when the exception said (a RefvpsError's hint)
    failure: BaseException | None = field(default=None, repr=False)
    started: float = field(default_factory=time.time)
    finished: float | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False)
    thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def directions(self) -> tuple[str, ...]:
        if self.mode == "both":
            return ("forward", "backward")
        return (self.mode,)

    def fail(self, exc: BaseException) -> None:
        self.state, self.error, self.failure = "failed", f"{type(exc).__name__}: {exc}", exc
        self.hint = exc.hint if isinstance(exc, RefvpsError) else None

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "start": self.start,
            "mode": self.mode,
            "directions": list(self.directions),
            "stretches": [[s.start, s.stop] for s in self.stretches],
            "total": self.total,
            "done": self.done,
            "written": self.written,
            "kept": self.kept,
            "state": self.state,
            "error": self.error,
            "hint": self.hint,
            "started": self.started,
            "finished": self.finished,
        }


def plan(mode: str, start: int, keyframes: list[int], num_frames: int) -> tuple[Stretch, ...]:
    """The stretches a propagation ``mode`` from frame ``start`` runs over (see the module doc)."""
    if mode == "forward":
        return (Stretch(start, num_frames),)
    if mode == "backward":
        return (Stretch(start, -1),)
    if mode == "both":
        return (Stretch(start, num_frames), Stretch(start, -1))
    if mode != "between":
        raise UsageError(f"unknown direction {mode!r}", hint=f"use one of {', '.join(DIRECTIONS)}")
    if not keyframes:
        raise UsageError("no keyframe to propagate between", hint="click on the target (or fix a frame by hand) first")
    before = [k for k in keyframes if k < start]
    after = [k for k in keyframes if k > start]
    previous, following = (before[-1] if before else None), (after[0] if after else None)
    ends = [(previous, start), (start, following)] if start in keyframes else [(previous, following)]
    stretches = []
    for a, b in ends:
        if a is not None and b is not None and b - a > 1:
            stretches.append(Stretch(a, b, two_sided=True))
        elif a is not None and b is None and a + 1 < num_frames:
            stretches.append(Stretch(a, num_frames, include_start=False))
        elif a is None and b is not None and b > 0:
            stretches.append(Stretch(b, -1, include_start=False))
    return tuple(stretches)


def frames_reached(stretches: tuple[Stretch, ...]) -> int:
    """How many different frames the stretches write (``both`` reaches its start frame twice)."""
    return len(set().union(*(set(s.reached) for s in stretches))) if stretches else 0


def masks_along(
    seg: SegmenterSession,
    stretch: Stretch,
    start_mask: np.ndarray | None,
    next_of: Callable[[Iterator], tuple[int, np.ndarray] | None],
) -> Iterator[tuple[int, np.ndarray]]:
    """``(frame, mask)`` for every frame of ``stretch``; ``next_of(iterator)`` advances the segmenter.

    A two-sided stretch is run backwards first (those masks are kept, bit-packed), then forwards,
    and each frame gets ``w * forward + (1 - w) * backward >= 0.5`` with ``w`` the share of the
    distance to the far keyframe.
    """
    if not stretch.two_sided:
        yield from _run(seg, stretch.start, stretch.step < 0, start_mask, stretch.reached, next_of)
        return
    a, b = stretch.start, stretch.stop
    inner = range(a + 1, b)
    backward = {i: np.packbits(m) for i, m in _run(seg, b, True, None, inner, next_of)}
    shape = None
    for index, forward in _run(seg, a, False, None, inner, next_of):
        shape = forward.shape
        back = np.unpackbits(backward[index], count=forward.size).reshape(shape).astype(bool)
        weight = (b - index) / (b - a)  # 1 next to a, 0 next to b
        yield index, (weight * forward + (1 - weight) * back) >= 0.5


def _run(seg, start, reverse, start_mask, wanted: range, next_of) -> Iterator[tuple[int, np.ndarray]]:
    iterator = seg.propagate(start, reverse, start_mask)
    remaining = set(wanted)
    try:
        while remaining:
            item = next_of(iterator)
            if item is None:
                break
            index, mask = item
            if index in remaining:
                remaining.discard(index)
                yield index, np.asarray(mask, dtype=bool)
    finally:
        iterator.close()


def run(
    job: PropagationJob,
    seg: SegmenterSession,
    start_mask: np.ndarray | None,
    model_lock: threading.Lock,
    write: Callable[[int, np.ndarray], None],
) -> None:
    """The job's loop, in its thread: the masks of every stretch, each frame written once, until done
    or cancelled (``job.state`` says which). ``start_mask``: the start frame's mask when it is no keyframe."""

    def next_of(iterator):
        if job.cancel_event.is_set():
            return None
        with model_lock:  # one frame at a time: requests for other clips are served in between
            return next(iterator, None)

    reached: set[int] = set()
    for stretch in job.stretches:
        first_mask = start_mask if stretch.start == job.start else None
        for index, mask in masks_along(seg, stretch, first_mask, next_of):
            if index not in reached:  # 'both' reaches its start frame twice
                reached.add(index)
                write(index, mask)
                job.done += 1
    job.state = "cancelled" if job.cancel_event.is_set() else "done"


class PropagationRunner:
    """At most one propagation job at a time, run in a daemon thread."""

    def __init__(self, name: str):
        self.name = name
        self.job: PropagationJob | None = None

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.running

    def start(self, job: PropagationJob, work: Callable[[PropagationJob], None]) -> PropagationJob:
        self.job = job
        job.thread = threading.Thread(target=work, args=(job,), name=f"propagate-{self.name}", daemon=True)
        job.thread.start()
        return job

    def cancel(self) -> bool:
        if not self.running:
            return False
        assert self.job is not None
        self.job.cancel_event.set()
        return True

    def wait(self, timeout: float | None = None) -> PropagationJob | None:
        job = self.job
        if job is not None and job.thread is not None:
            job.thread.join(timeout)
        return job
