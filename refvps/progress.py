"""How long library jobs say how far they are: one small protocol, drawn by the CLI.

Library code (scoring, synth, curation, annotation, REM, the baseline adapters) takes a
``progress: Progress`` argument and reports stages on it; it never draws bars, prints, or holds a
console. The base class does nothing, so ``NO_PROGRESS`` is the default everywhere; the CLI passes
:class:`refvps.cli.common.RichProgress`, which draws one rich bar per stage. Messages for the user go
through :mod:`logging` (``logging.getLogger(__name__)``), which the CLI routes to its console.

A job may have several stages at once (e.g. ``"clips"`` for a whole batch and ``"frames"`` for the
clip being exported); each call names its stage::

    progress.start("frames", total=120)
    for k in range(120):
        ...
        progress.advance("frames")
    progress.end("frames")

or, with the context manager that always ends the stage::

    with progress.stage("frames", total=120):
        ...
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator


class Progress:
    """Receives progress reports; every method does nothing here (subclass it to draw or record)."""

    def start(self, stage: str, total: int | None = None, *, note: str | None = None) -> None:
        """A stage begins; ``total`` is the number of steps (``None`` when unknown)."""

    def advance(self, stage: str, n: int = 1, *, note: str | None = None) -> None:
        """``n`` more steps of ``stage`` are done; ``note`` names the current item."""

    def update(self, stage: str, completed: int, *, total: int | None = None, note: str | None = None) -> None:
        """Set how many steps of ``stage`` are done (and its total, when it became known)."""

    def end(self, stage: str) -> None:
        """The stage is finished (or abandoned)."""

    @contextlib.contextmanager
    def stage(self, stage: str, total: int | None = None, *, note: str | None = None) -> Iterator[Progress]:
        """``start`` now and ``end`` when the block exits, however it exits."""
        self.start(stage, total, note=note)
        try:
            yield self
        finally:
            self.end(stage)


NO_PROGRESS = Progress()
"""The default: reports nothing."""


class RecordingProgress(Progress):
    """Keeps every call as a tuple, for tests and for callers that want the numbers afterwards.

    >>> p = RecordingProgress()
    >>> with p.stage("frames", total=2):
    ...     p.advance("frames")
    ...     p.advance("frames", note="00001")
    >>> p.completed["frames"], p.totals["frames"], p.events[-1]
    (2, 2, ('end', 'frames'))
    """

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.completed: dict[str, int] = {}
        self.totals: dict[str, int | None] = {}

    def start(self, stage: str, total: int | None = None, *, note: str | None = None) -> None:
        self.events.append(("start", stage, total, note))
        self.completed[stage] = 0
        self.totals[stage] = total

    def advance(self, stage: str, n: int = 1, *, note: str | None = None) -> None:
        self.events.append(("advance", stage, n, note))
        self.completed[stage] = self.completed.get(stage, 0) + n

    def update(self, stage: str, completed: int, *, total: int | None = None, note: str | None = None) -> None:
        self.events.append(("update", stage, completed, total, note))
        self.completed[stage] = completed
        if total is not None:
            self.totals[stage] = total

    def end(self, stage: str) -> None:
        self.events.append(("end", stage))
