"""Headless labelling: the page's clicks -> propagate -> save path, driven by a clicks file.

``clicks.json`` is a list of entries applied in order::

    [{"frame": "00012", "points": [[x, y], ...], "labels": [1, 0, ...], "obj_id": 1}, ...]

(pixel coordinates of the frame; label 1 positive, 0 negative). Each entry adds its clicks to that
frame; then the clip is propagated both ways from the first entry's frame (the other clicked
frames are kept and condition the propagation) and saved. The run takes the clip's lock, so it
never races a page that has the clip open, and it leaves a normal session behind, so the result
can be refined in the page afterwards.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from refvps.annotate import layers as L
from refvps.annotate.lock import ClipLock, ClipLockedError
from refvps.annotate.segmenters.base import Segmenter
from refvps.annotate.session import OBJ_ID, ClipSession
from refvps.annotate.store import read_session_summary, session_dir
from refvps.dataset import transaction
from refvps.dataset.format import MASK_EXT, Clip, Dataset, frame_name, image_size
from refvps.errors import DatasetError, RefvpsError, UsageError
from refvps.progress import NO_PROGRESS, Progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClickEntry:
    frame: str
    points: list[list[float]]
    labels: list[int]
    obj_id: int = OBJ_ID


@dataclass
class HeadlessResult:
    clip: str
    segmenter: str
    frames: int
    clicked_frames: list[str]
    target_frames: int
    ignore_frames: int
    written: int
    valid: bool
    problems: list[dict]
    seconds: float
    notes: list[str]  # what was found and done on the way (a save finished, a previous session moved aside)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


_EXAMPLE = '[{"frame": "00012", "points": [[412, 230]], "labels": [1], "obj_id": 1}]'


def load_clicks(path: str | Path, clip: Clip, shape: tuple[int, int] | None = None) -> list[ClickEntry]:
    """Read and check a clicks file against the clip; every problem names the entry and the fix.

    ``shape`` is the frames' (height, width); by default it is read off the clip's first frame.
    """
    path = Path(path)
    if shape is None:
        first = clip.frame_path(clip.frame_names[0])
        try:
            width, height = image_size(first)
        except OSError as exc:
            raise DatasetError(
                f"cannot read the first frame of clip {clip.id}: {exc}",
                hint="restore the frame or re-export the clip",
                path=first,
            ) from None
        shape = (height, width)
    data = _read_clicks_file(path)
    entries = [_check_entry(item, f"{path.name} entry {n}", clip, shape, path) for n, item in enumerate(data)]
    if not any(1 in entry.labels for entry in entries):
        raise UsageError(
            f"{path.name} has no positive click (label 1): there would be no target to propagate",
            hint="add at least one point on the target with label 1",
            path=path,
        )
    return entries


def _read_clicks_file(path: Path) -> list:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"clicks file not found: {path}", hint="check the path given to --clicks", path=path) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(
            f"clicks file does not parse: {path}: {exc}", hint=f"write a JSON list like {_EXAMPLE}", path=path
        ) from None
    except OSError as exc:  # a folder, no permission
        raise UsageError(
            f"cannot read the clicks file {path}: {exc.strerror or exc}", hint="--clicks takes a JSON file", path=path
        ) from None
    if not isinstance(data, list) or not data:
        raise UsageError(f"{path} must hold a non-empty JSON list of click entries", hint=_EXAMPLE, path=path)
    return data


def _check_entry(item, where: str, clip: Clip, shape: tuple[int, int], path: Path) -> ClickEntry:
    if not isinstance(item, dict):
        raise UsageError(f"{where} is not an object", hint=f"each entry looks like {_EXAMPLE[1:-1]}", path=path)
    unknown = set(item) - {"frame", "points", "labels", "obj_id"}
    if unknown:
        raise UsageError(
            f"{where} has unknown keys {sorted(unknown)}", hint="keys are frame, points, labels, obj_id", path=path
        )
    frame = item.get("frame")
    if isinstance(frame, int) and not isinstance(frame, bool):
        frame = frame_name(frame)
    if not isinstance(frame, str) or frame not in clip.frame_names:
        raise UsageError(
            f"{where}: clip {clip.id} has no frame {item.get('frame')!r}",
            hint=f"frame names run from {clip.frame_names[0]} to {clip.frame_names[-1]}",
            path=path,
        )
    points, labels = item.get("points"), item.get("labels")
    if not isinstance(points, list) or not points or not all(_is_point(p) for p in points):
        raise UsageError(
            f"{where}: points must be a non-empty list of [x, y] pixel coordinates (finite numbers)",
            hint='e.g. "points": [[412, 230], [440, 260]]',
            path=path,
        )
    if (
        not isinstance(labels, list)
        or len(labels) != len(points)
        or any(isinstance(v, bool) or v not in (0, 1) for v in labels)
    ):
        raise UsageError(
            f"{where}: labels must list 1 (positive) or 0 (negative) for each of the {len(points)} points",
            hint='e.g. "labels": [1, 0] for one positive and one negative point',
            path=path,
        )
    obj_id = item.get("obj_id", OBJ_ID)
    if obj_id != OBJ_ID or isinstance(obj_id, bool):
        raise UsageError(
            f"{where}: obj_id {obj_id!r} - refvps annotate labels one target per clip (obj_id 1)",
            hint="Ref-VPS clips have one target; label other objects with another tool",
            path=path,
        )
    height, width = shape
    for x, y in points:
        if not (0 <= x <= width and 0 <= y <= height):
            raise UsageError(
                f"{where}: point ({x}, {y}) lies outside the {width}x{height} frame",
                hint="points are pixel coordinates: x from 0 to the width, y from 0 to the height",
                path=path,
            )
    return ClickEntry(frame, [[float(x), float(y)] for x, y in points], [int(v) for v in labels], OBJ_ID)


def _is_point(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def run_headless(
    root: str | Path,
    clip_id: str,
    clicks: str | Path | list[ClickEntry],
    segmenter: Segmenter,
    *,
    overwrite: bool = False,
    discard_session: bool = False,
    take_over_lock: bool = False,
    refvps_rules: bool = True,
    progress: Progress = NO_PROGRESS,
) -> HeadlessResult:
    """Apply the clicks (a clicks file, or entries from :func:`load_clicks`), propagate both ways, save, validate.

    Propagation reports on ``progress`` as the stage ``"propagate"`` (frames).
    """
    started = time.time()
    root = Path(root)
    clip = Dataset(root).clip(clip_id)
    entries = clicks if isinstance(clicks, list) else load_clicks(clicks, clip)  # checked before anything is locked
    lock = _lock(root, clip_id)
    lock.acquire(take_over=take_over_lock)
    session: ClipSession | None = None
    try:
        notes = [recovery.describe() for recovery in transaction.recover(root, [clip_id])]
        refuse_to_replace(root, clip, overwrite=overwrite, discard_session=discard_session)
        session = ClipSession(root, clip, segmenter, lock=lock, refvps_rules=refvps_rules, restore=False)
        notes += session.notes
        for note in notes:  # as they happen: a run that fails later has still said them
            log.info("%s", note)
        for entry in entries:
            session.add_points(session.frame_index(entry.frame), entry.points, entry.labels)
        _propagate(session, session.frame_index(entries[0].frame), progress)
        result = session.save(allow_unlabelled=False)
        targets = ignores = 0
        for index in range(session.num_frames):  # each frame's layers decoded once for both counts
            code = session.code(index)
            targets += bool((code & L.TARGET_BIT).any())
            ignores += bool((code & L.IGNORE_BIT).any())
        return HeadlessResult(
            clip=clip_id,
            segmenter=segmenter.info().name,
            frames=session.num_frames,
            clicked_frames=sorted({e.frame for e in entries}),
            target_frames=targets,
            ignore_frames=ignores,
            written=result.written,
            valid=result.ok,
            problems=result.problems,
            seconds=round(time.time() - started, 2),
            notes=notes,
        )
    finally:
        if session is not None:
            session.close()
        else:
            lock.release()


def _lock(root: Path, clip_id: str) -> ClipLock:
    return ClipLock(session_dir(root, clip_id) / "lock.json", clip_id, f"headless-{os.getpid()}")


def preflight(root: str | Path, clip: Clip, *, overwrite: bool, discard_session: bool, take_over_lock: bool) -> None:
    """Refuse now what :func:`run_headless` would refuse after the segmenter is loaded (which can take a
    minute): a clip another session holds, saved masks without ``overwrite``, unsaved work without
    ``discard_session``. :func:`run_headless` checks again under the lock."""
    root = Path(root)
    lock = _lock(root, clip.id)
    holder = lock.read()
    if holder is not None:
        stale = lock.is_stale(holder)
        if not (stale and take_over_lock):
            raise ClipLockedError(clip.id, holder, stale=stale, same_process=False, path=lock.path)
    refuse_to_replace(root, clip, overwrite=overwrite, discard_session=discard_session)


def refuse_to_replace(root: Path, clip: Clip, *, overwrite: bool, discard_session: bool) -> None:
    summary = read_session_summary(root, clip.id)
    if summary and summary["dirty"] and not discard_session:
        raise UsageError(
            f"clip {clip.id} has unsaved work in its annotation session ({summary['labelled']} frames labelled)",
            hint="save it in the page first, or pass --discard-session (the session is moved aside, not deleted)",
            path=session_dir(root, clip.id),
        )
    saved = list(clip.masks_dir.glob(f"*{MASK_EXT}")) if clip.masks_dir.is_dir() else []
    if saved and not overwrite:
        raise UsageError(
            f"clip {clip.id} already has {len(saved)} saved masks in {clip.masks_dir}",
            hint="pass --overwrite to replace them with this run's masks",
            path=clip.masks_dir,
        )


def _propagate(session: ClipSession, start: int, progress: Progress) -> None:
    """Propagate both ways from ``start`` and wait, reporting frames done on ``progress``."""
    job = session.start_propagation(start, "both")
    with progress.stage("propagate", total=job.total, note=session.clip_id):
        while job.thread is not None and job.thread.is_alive():
            job.thread.join(0.1)
            progress.update("propagate", job.done)
        progress.update("propagate", job.done)
    if job.state != "done":  # a bad frame says which and what to do; anything else may be the model
        raise RefvpsError(
            f"propagation {job.state}: {job.error or ''}".strip(),
            hint=job.hint or "rerun with --debug; try --segmenter classic to rule out the model",
            path=getattr(job.failure, "path", None),
        ) from job.failure
