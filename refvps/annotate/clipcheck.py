"""Which clips and names the annotation tool may touch: ids and frame names that are plain file names,
and clips it can save without harm (docs/ANNOTATE.md, "Labelling a clip").
"""

from __future__ import annotations

import re
from pathlib import Path

from refvps.annotate.working import OBJ_ID
from refvps.dataset.format import EXPRESSIONS_FILE, Clip
from refvps.errors import DatasetError

_SAFE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}$")


def is_safe_id(value: str) -> bool:
    """A clip id or frame name that can be used as one path component (no separators, not '..')."""
    return bool(_SAFE_ID.match(value)) and value not in (".", "..")


def check_plain_names(root: Path, clip: Clip) -> None:
    """Frame names become file names of layers and saved masks: '../x' would write elsewhere."""
    if not clip.frame_names:
        raise DatasetError(f"clip {clip.id} lists no frames", hint="fill its 'frames' list in meta_expressions.json")
    unsafe = [name for name in clip.frame_names if not is_safe_id(name)]
    if unsafe or not is_safe_id(clip.id):
        raise DatasetError(
            f"clip {clip.id!r} has a clip id or frame names that are not plain file names: "
            f"{', '.join(map(repr, unsafe[:3])) or repr(clip.id)}",
            hint="clip ids and frame names in meta_expressions.json are like clip_0001 and 00012 (no '/', no '..')",
            path=root / EXPRESSIONS_FILE,
        )


def editing_refusal(clip: Clip) -> str | None:
    """Why this tool cannot edit ``clip`` (None when it can). It labels one target, label 1, on every
    frame, and saves every frame: a converted benchmark's clip (docs/BENCHMARKS_SUITE.md, "Format
    extension") that annotates some frames only, or whose expressions name other labels, would be
    saved wrong (blank masks on its other frames, its targets rewritten to label 1)."""
    if clip.is_sparse:
        return (
            f"clip {clip.id} has ground truth on {len(clip.annotated_frames)} of its {len(clip.frame_names)} frames "
            "only ('annotated_frames' in meta_expressions.json): this tool labels and saves every frame, and "
            "would save the others as blank masks"
        )
    other = [e.exp_id for e in clip.expressions if e.target_labels != (OBJ_ID,)]
    if other:
        return (
            f"clip {clip.id}: expression(s) {', '.join(other[:3])} refer to labels other than {OBJ_ID} "
            f"(another object, or a union of several): this tool labels one target, label {OBJ_ID}"
        )
    return None


def check_editable(root: Path, clip: Clip) -> None:
    """Refuse, with the reason, a clip this tool would save wrong (:func:`editing_refusal`)."""
    refusal = editing_refusal(clip)
    if refusal is not None:
        raise DatasetError(
            refusal,
            hint="refvps annotate edits Ref-VPS clips; a converted benchmark is read-only here: fix it in its "
            "source format and convert it again (refvps convert)",
            path=root / EXPRESSIONS_FILE,
        )
