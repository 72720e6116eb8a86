"""Undo and redo of a clip's edits: each step keeps the frame states it replaced and the ones it made.

Frame states are immutable (:class:`refvps.annotate.clipstate.FrameState`), so a step holds the very
objects, compressed layers included; the history is bounded in steps and in bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from refvps.annotate.clipstate import FrameState

MAX_UNDO_STEPS = 200
MAX_UNDO_BYTES = 256 * 1024 * 1024


@dataclass
class UndoStep:
    label: str
    before: dict[int, FrameState] = field(default_factory=dict)
    after: dict[int, FrameState] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self.before.values()) + sum(s.nbytes for s in self.after.values())

    def forget(self, frames) -> None:
        """Leave these frames out (a hand edit made during a propagation must not be undone with it)."""
        for index in frames:
            self.before.pop(index, None)
            self.after.pop(index, None)


class History:
    """The undo and redo stacks of one clip (they live as long as the server)."""

    def __init__(self, max_steps: int = MAX_UNDO_STEPS, max_bytes: int = MAX_UNDO_BYTES):
        self.max_steps = max_steps
        self.max_bytes = max_bytes
        self.undo_stack: list[UndoStep] = []
        self.redo_stack: list[UndoStep] = []

    @property
    def undo_label(self) -> str | None:
        return self.undo_stack[-1].label if self.undo_stack else None

    @property
    def redo_label(self) -> str | None:
        return self.redo_stack[-1].label if self.redo_stack else None

    def record(self, step: UndoStep) -> None:
        """A new edit: it can be undone, and nothing undone before it can be redone any more."""
        self.undo_stack.append(step)
        self.redo_stack.clear()
        total = sum(s.nbytes for s in self.undo_stack)
        while len(self.undo_stack) > self.max_steps or (total > self.max_bytes and len(self.undo_stack) > 1):
            total -= self.undo_stack.pop(0).nbytes

    def take(self, which: str) -> tuple[UndoStep, dict[int, FrameState]] | None:
        """Move the last step from the ``which`` ('undo' or 'redo') stack to the other one.

        Returns the step and the frame states to put back (its ``before`` for undo, ``after`` for redo).
        """
        source, target = (self.undo_stack, self.redo_stack) if which == "undo" else (self.redo_stack, self.undo_stack)
        if not source:
            return None
        step = source.pop()
        target.append(step)
        return step, (step.before if which == "undo" else step.after)
