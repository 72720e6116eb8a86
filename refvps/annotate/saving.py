"""Saving a clip: its expression records, the unlabelled-frames guard, and the one-transaction write of
its masks and expressions (:class:`refvps.dataset.transaction.ClipSave`; docs/ANNOTATE.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from refvps.annotate import layers as L
from refvps.annotate.clipstate import EMPTY, EXPRESSION_IDS, ClipState
from refvps.annotate.working import OBJ_ID, in_threads
from refvps.dataset import transaction
from refvps.dataset.format import Dataset, Expression
from refvps.errors import DatasetError, RefvpsError, UsageError


class UnlabelledFramesError(RefvpsError):
    """Saving would write frames nobody labelled; the caller must confirm."""

    def __init__(self, frames: list[str]):
        super().__init__(
            f"{len(frames)} frames were never labelled (first: {', '.join(frames[:5])})",
            hint="propagate through the whole clip, or confirm that these frames have no target",
        )
        self.frames = frames


@dataclass
class SaveResult:
    written: int
    expressions: int
    problems: list[dict]
    ok: bool

    def to_json(self) -> dict:
        return {"written": self.written, "expressions": self.expressions, "ok": self.ok, "problems": self.problems}


def unlabelled_frames(state: ClipState) -> list[str]:
    return [name for name, frame in zip(state.frame_names, state.frames) if frame.status == EMPTY]


def expression_records(state: ClipState) -> list[Expression]:
    """The four expression slots as dataset records (empty slots left out); each needs its annotator."""
    records = []
    for slot, exp_id in enumerate(EXPRESSION_IDS):
        text = state.expressions[slot].strip()
        if not text:
            continue
        annotator = state.annotators[slot // 2].strip()
        if not annotator:
            raise UsageError(
                f"expression {exp_id} has no annotator", hint=f"fill in annotator {'AB'[slot // 2]}'s name or id"
            )
        records.append(Expression(exp_id, text, OBJ_ID, annotator))
    return records


def clip_expressions(root: Path, clip_id: str, records: list[Expression]) -> list[Expression]:
    """The clip's whole entry: the four slots from the page, any other expression ids of the clip kept."""
    kept = [e for e in Dataset(root).expressions(clip_id) if e.exp_id not in EXPRESSION_IDS]
    return records + kept


def write_clip(
    root: Path, clip_id: str, state: ClipState, shape: tuple[int, int], expressions: list[Expression]
) -> None:
    """Every frame's label map and the clip's expressions, in one transaction."""
    blobs = [frame.blob for frame in state.frames]

    def label_of(index: int) -> np.ndarray:  # on worker threads: reads nothing but ``blobs``
        blob = blobs[index]
        code = np.zeros(shape, np.uint8) if blob is None else L.decode_code(blob, shape)
        return L.code_to_label(code, OBJ_ID)

    try:
        with transaction.ClipSave(root, clip_id) as save:
            in_threads(lambda i: save.write_label(state.frame_names[i], label_of(i)), range(len(blobs)))
            save.commit(expressions)
    except OSError as exc:  # also from finishing an earlier interrupted save, before this one staged anything
        folder = transaction.save_dir(root, clip_id)
        committed = (folder / transaction.JOURNAL).exists()
        raise DatasetError(
            f"saving clip {clip_id} stopped: {exc}",
            hint=(
                "a committed save of the clip is finished the next time the clip is opened or saved "
                f"(or by refvps annotate {root} --recover)"
                if committed
                else "nothing in the dataset changed (the clip is as it was)"
            )
            + "; the work is in the session: fix the cause (disk space, permissions) and save again",
            path=folder if committed else root,
        ) from exc
