"""The editable state of a clip being labelled: per-frame layers, statuses, clicks, review marks.

Frame statuses: ``empty`` (never labelled), ``propagated`` (written by propagation), ``clicked``
(mask from clicks on that frame) and ``manual`` (fixed by hand with brush, eraser, fill or clear).
Clicked and manual frames are *keyframes*: propagation never overwrites them and conditions on them.
Independently of its status a frame is *reviewed* once an annotator has checked it (docs/ANNOTATE.md,
"Reviewing").

:class:`FrameState` is immutable, so an undo step can keep the very objects it replaced.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

EMPTY, PROPAGATED, CLICKED, MANUAL = "empty", "propagated", "clicked", "manual"
STATUSES = (EMPTY, PROPAGATED, CLICKED, MANUAL)
KEYFRAME_STATUSES = (CLICKED, MANUAL)

EXPRESSION_IDS = ("0", "1", "2", "3")  # annotator A writes 0 and 1, annotator B writes 2 and 3
SESSION_VERSION = 1
MAX_EXPRESSION_CHARS = 500
MAX_ANNOTATOR_CHARS = 64


@dataclass(frozen=True)
class FramePrompt:
    """The clicks on one frame (pixel coordinates; label 1 positive, 0 negative)."""

    points: tuple[tuple[float, float], ...] = ()
    labels: tuple[int, ...] = ()

    @classmethod
    def of(cls, points, labels) -> FramePrompt:
        return cls(tuple((float(x), float(y)) for x, y in points), tuple(int(v) for v in labels))

    def to_json(self) -> dict:
        return {"points": [[x, y] for x, y in self.points], "labels": list(self.labels)}

    @classmethod
    def from_json(cls, data: dict) -> FramePrompt:
        return cls.of(data.get("points", []), data.get("labels", []))


@dataclass(frozen=True)
class FrameState:
    """One frame's editable state: its layers (compressed; None when blank), status, clicks, review mark."""

    blob: bytes | None = None
    status: str = EMPTY
    prompt: FramePrompt | None = None
    reviewed: bool = False

    @property
    def nbytes(self) -> int:
        return len(self.blob or b"") + 64

    @property
    def is_keyframe(self) -> bool:
        return self.status in KEYFRAME_STATUSES

    def but(self, **changes: Any) -> FrameState:
        return replace(self, **changes)


@dataclass
class ClipState:
    """Everything about a clip that autosave keeps (``session.json`` plus the layer files)."""

    frame_names: list[str]
    size: tuple[int, int]  # (width, height)
    frames: list[FrameState]
    anchor: int | None = None  # the first clicked frame (shown on the timeline)
    annotators: list[str] = field(default_factory=lambda: ["", ""])
    expressions: list[str] = field(default_factory=lambda: ["", "", "", ""])
    revision: int = 0
    saved_revision: int = 0
    saved_at: float | None = None
    created: float = field(default_factory=time.time)
    updated: float = 0.0

    @classmethod
    def blank(cls, frame_names: list[str], size: tuple[int, int]) -> ClipState:
        return cls(list(frame_names), size, [FrameState() for _ in frame_names])

    @property
    def dirty(self) -> bool:
        return self.revision != self.saved_revision

    @property
    def statuses(self) -> list[str]:
        return [f.status for f in self.frames]

    @property
    def reviewed(self) -> list[bool]:
        return [f.reviewed for f in self.frames]

    @property
    def prompts(self) -> dict[int, FramePrompt]:
        return {i: f.prompt for i, f in enumerate(self.frames) if f.prompt is not None}

    @property
    def keyframes(self) -> list[int]:
        return [i for i, f in enumerate(self.frames) if f.is_keyframe]

    def to_json(self, segmenter: str) -> dict:
        """The ``session.json`` document (the layers are separate files)."""
        return {
            "version": SESSION_VERSION,
            "frames": self.frame_names,
            "size": list(self.size),
            "segmenter": segmenter,
            "created": self.created,
            "updated": time.time(),
            "revision": self.revision,
            "saved_revision": self.saved_revision,
            "saved_at": self.saved_at,
            "status": [f.status for f in self.frames],
            "reviewed": [i for i, f in enumerate(self.frames) if f.reviewed],
            "prompts": {str(i): f.prompt.to_json() for i, f in enumerate(self.frames) if f.prompt is not None},
            "anchor": self.anchor,
            "annotators": self.annotators,
            "expressions": self.expressions,
        }

    @classmethod
    def from_json(cls, data: dict, blobs: list[bytes | None]) -> ClipState:
        """Rebuild from ``session.json`` and the layer files; ValueError/KeyError/TypeError when malformed."""
        names = list(data["frames"])
        statuses = data.get("status", [])
        if len(statuses) != len(names) or any(s not in STATUSES for s in statuses) or len(blobs) != len(names):
            raise ValueError("bad frame statuses")
        prompts = {int(k): FramePrompt.from_json(v) for k, v in data.get("prompts", {}).items()}
        reviewed = {int(i) for i in data.get("reviewed", [])}
        frames = [FrameState(blobs[i], statuses[i], prompts.get(i), i in reviewed) for i in range(len(names))]
        anchor = data.get("anchor")
        return cls(
            frame_names=names,
            size=(int(data["size"][0]), int(data["size"][1])),
            frames=frames,
            anchor=anchor if isinstance(anchor, int) and 0 <= anchor < len(names) else None,
            annotators=_pad([str(a) for a in data.get("annotators", [])], 2),
            expressions=_pad([str(e) for e in data.get("expressions", [])], 4),
            revision=int(data.get("revision", 0)),
            saved_revision=int(data.get("saved_revision", 0)),
            saved_at=data.get("saved_at"),
            created=float(data.get("created", time.time())),
            updated=float(data.get("updated", 0.0)),
        )


def clean_expressions(annotators, expressions) -> tuple[list[str], list[str]]:
    """Two annotator ids and four expressions, whitespace tidied; UsageError when they do not fit."""
    from refvps.errors import UsageError

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
    return annotators, expressions


def _pad(values: list[str], n: int) -> list[str]:
    return (values + [""] * n)[:n]
