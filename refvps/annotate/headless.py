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
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from refvps.annotate import layers as L
from refvps.annotate.lock import ClipLock
from refvps.annotate.segmenters.base import Segmenter
from refvps.annotate.session import OBJ_ID, ClipSession, read_session_summary, session_dir
from refvps.dataset.format import MASK_EXT, Clip, Dataset, frame_name, image_size
from refvps.errors import DatasetError, RefvpsError, UsageError


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
    height, width = shape
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
    entries = []
    for number, item in enumerate(data):
        where = f"{path.name} entry {number}"
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
        if (
            not isinstance(points, list)
            or not points
            or not all(isinstance(p, list) and len(p) == 2 and all(_is_number(v) for v in p) for p in points)
        ):
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
        for x, y in points:
            if not (0 <= x <= width and 0 <= y <= height):
                raise UsageError(
                    f"{where}: point ({x}, {y}) lies outside the {width}x{height} frame",
                    hint="points are pixel coordinates: x from 0 to the width, y from 0 to the height",
                    path=path,
                )
        entries.append(ClickEntry(frame, [[float(x), float(y)] for x, y in points], [int(v) for v in labels], OBJ_ID))
    if not any(1 in entry.labels for entry in entries):
        raise UsageError(
            f"{path.name} has no positive click (label 1): there would be no target to propagate",
            hint="add at least one point on the target with label 1",
            path=path,
        )
    return entries


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
    progress: Callable[[int, int], None] | None = None,
) -> HeadlessResult:
    """Apply the clicks (a clicks file, or entries from :func:`load_clicks`), propagate both ways, save, validate."""
    started = time.time()
    root = Path(root)
    dataset = Dataset(root)
    clip = dataset.clip(clip_id)
    entries = clicks if isinstance(clicks, list) else load_clicks(clicks, clip)  # checked before anything is locked
    lock = ClipLock(session_dir(root, clip_id) / "lock.json", clip_id, f"headless-{os.getpid()}")
    lock.acquire(take_over=take_over_lock)
    session: ClipSession | None = None
    try:
        summary = read_session_summary(root, clip_id)
        if summary and summary["dirty"] and not discard_session:
            raise UsageError(
                f"clip {clip_id} has unsaved work in its annotation session ({summary['labelled']} frames labelled)",
                hint="save it in the page first, or pass --discard-session (the session is moved aside, not deleted)",
                path=session_dir(root, clip_id),
            )
        saved = [p for p in clip.masks_dir.glob(f"*{MASK_EXT}")] if clip.masks_dir.is_dir() else []
        if saved and not overwrite:
            raise UsageError(
                f"clip {clip_id} already has {len(saved)} saved masks in {clip.masks_dir}",
                hint="pass --overwrite to replace them with this run's masks",
                path=clip.masks_dir,
            )
        session = ClipSession(root, clip, segmenter, lock=lock, refvps_rules=refvps_rules, restore=False)
        for entry in entries:
            session.add_points(session.frame_index(entry.frame), entry.points, entry.labels)
        first = session.frame_index(entries[0].frame)
        job = session.start_propagation(first, "both")
        while job.thread is not None and job.thread.is_alive():
            job.thread.join(0.1)
            if progress is not None:
                progress(job.done, job.total)
        if progress is not None:
            progress(job.done, job.total)
        if job.state != "done":
            raise RefvpsError(
                f"propagation {job.state}: {job.error or ''}".strip(),
                hint="rerun with --debug; try --segmenter classic to rule out the model",
            )
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
        )
    finally:
        if session is not None:
            session.close()
        else:
            lock.release()
