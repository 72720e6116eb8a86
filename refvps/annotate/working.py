"""A clip's working layers in memory, and where they come from when a clip is opened.

:class:`WorkingLayers` holds every frame's state (its layers compressed), decodes a few frames on
demand, and rewrites a frame's layer file whenever its layers change. :func:`open_state` restores a
clip's autosaved session, or starts one from the clip's saved masks and expressions (moving aside a
session that no longer fits the clip).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable

import numpy as np

from refvps.annotate import layers as L
from refvps.annotate.clipstate import EXPRESSION_IDS, PROPAGATED, ClipState, FrameState
from refvps.annotate.store import SessionStore
from refvps.dataset.format import MASKS_DIR, Clip
from refvps.dataset.palette import IGNORE_INDEX, read_label_png
from refvps.errors import DatasetError

OBJ_ID = 1  # Ref-VPS clips have one target, label 1
DECODED_FRAMES = 8


class WorkingLayers:
    """The frames' states, a few of them decoded, each frame's layer file kept in step (not thread-safe:
    the session calls it under its lock)."""

    def __init__(self, state: ClipState, store: SessionStore, shape: tuple[int, int]):
        self.state = state
        self.store = store
        self.shape = shape
        self.revs: list[int] = [0] * len(state.frames)  # bumped on every change of a frame (page caches)
        self._decoded: dict[int, tuple[int, np.ndarray]] = {}

    def code(self, index: int) -> np.ndarray:
        """Frame ``index``'s layers (bit 0 target, bit 1 Ignore), a copy the caller may change."""
        blob = self.state.frames[index].blob
        if blob is None:
            return np.zeros(self.shape, np.uint8)
        cached = self._decoded.get(index)
        if cached is not None and cached[0] == self.revs[index]:
            return cached[1].copy()
        code = L.decode_code(blob, self.shape)
        self._remember(index, code)
        return code.copy()

    def put(self, index: int, frame: FrameState) -> None:
        """Make ``frame`` frame ``index``'s state; its layer file is rewritten when its layers changed."""
        old = self.state.frames[index]
        self.state.frames[index] = frame
        self.revs[index] += 1
        if frame.blob != old.blob:
            self.store.write_layer(self.state.frame_names[index], frame.blob)

    def change(self, index: int, code: np.ndarray | None = None, **changes: Any) -> None:
        """Change frame ``index``: its layers to ``code`` (when given) and any of status, prompt, reviewed."""
        if code is not None:
            changes["blob"] = L.encode_code(code) if code.any() else None
        self.put(index, self.state.frames[index].but(**changes))
        if code is not None:
            self._remember(index, code.copy())

    def _remember(self, index: int, code: np.ndarray) -> None:
        """Keep a few decoded frames (the ones being edited), never the whole clip."""
        self._decoded.pop(index, None)
        self._decoded[index] = (self.revs[index], code)
        while len(self._decoded) > DECODED_FRAMES:
            self._decoded.pop(next(iter(self._decoded)))


def open_state(
    store: SessionStore, clip: Clip, shape: tuple[int, int], segmenter: str, *, restore: bool
) -> tuple[ClipState, list[str], bool]:
    """The clip's state, notes on how it was found, and whether it was restored from its session."""
    notes = []
    store.remove_temp_files()
    size = (shape[1], shape[0])
    if store.exists() and not restore:
        notes.append(store.move_aside("a fresh session was asked for"))
    elif store.exists():
        try:
            state = store.load(list(clip.frame_names), size, lambda blob: L.decode_code(blob, shape))
        except ValueError as exc:
            notes.append(store.move_aside(str(exc)))
        else:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(state.updated))
            return state, [*notes, f"restored the autosaved session of {when}"], True
    state, imported = start_from_dataset(clip, shape)
    if imported:
        notes.append(f"loaded {imported} saved masks from {MASKS_DIR}/{clip.id}/")
    # Layers first, then the session file that refers to them: a crash in between must not leave a
    # session that restores imported frames as blank (and would save them blank).
    for name, frame in zip(clip.frame_names, state.frames):
        store.write_layer(name, frame.blob)
    store.write_state(state, segmenter)  # equal to what is on disk: not dirty
    return state, notes, False


def start_from_dataset(clip: Clip, shape: tuple[int, int]) -> tuple[ClipState, int]:
    """A new state from the clip's saved expressions and masks; and how many masks it found."""
    state = ClipState.blank(list(clip.frame_names), (shape[1], shape[0]))
    existing = {e.exp_id: e for e in clip.expressions}
    for slot, exp_id in enumerate(EXPRESSION_IDS):
        if exp_id in existing:
            state.expressions[slot] = existing[exp_id].text
            if existing[exp_id].annotator:
                state.annotators[slot // 2] = state.annotators[slot // 2] or str(existing[exp_id].annotator)
    # Saved masks become the working layers (decoding and re-encoding them is most of the time it
    # takes to open a long clip).
    imported = 0
    for index, (found, blob) in enumerate(in_threads(lambda name: import_mask(clip, name, shape), clip.frame_names)):
        if found:
            state.frames[index] = FrameState(blob, PROPAGATED)
            imported += 1
    return state, imported


def import_mask(clip: Clip, name: str, shape: tuple[int, int]) -> tuple[bool, bytes | None]:
    """(whether frame ``name`` has a saved mask, its working layers compressed; None when blank)."""
    path = clip.mask_path(name)
    if not path.exists():
        return False, None
    label = read_label_png(path)
    if label.shape != shape:
        raise DatasetError(
            f"mask {path} is {label.shape[1]}x{label.shape[0]} but the frame is {shape[1]}x{shape[0]}",
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


def in_threads(function: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
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
