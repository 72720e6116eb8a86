"""What every CLI command shares: one rich console, JSON output, progress bars, error messages."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from refvps.errors import RefvpsError
from refvps.progress import Progress as ProgressReporter

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    """Write data as JSON on stdout (plain, so it can be piped into jq or json.load)."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def progress_bar(*, transient: bool = False, disable: bool = False) -> Progress:
    """The progress bar every long command uses (on stderr, so stdout stays clean for --json).

    A transient bar is not drawn when stderr is not a terminal (it would leave only a blank line in logs).
    """
    disable = disable or (transient and not err_console.is_terminal)
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=transient,
        disable=disable,
    )


class RichProgress(ProgressReporter):
    """The CLI's drawing of :class:`refvps.progress.Progress`: one rich bar per stage, on stderr.

    Use it as a context manager (the bars live while the block runs)::

        with RichProgress() as progress:
            evaluate(..., progress=progress)
    """

    def __init__(self, *, transient: bool = False, disable: bool = False, labels: dict[str, str] | None = None):
        self.bar = progress_bar(transient=transient, disable=disable)
        self.labels = labels or {}
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> RichProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.bar.__exit__(*exc_info)

    def _describe(self, stage: str, note: str | None) -> str:
        label = escape(self.labels.get(stage, stage))
        return f"{label} {escape(note)}" if note else label

    def start(self, stage: str, total: int | None = None, *, note: str | None = None) -> None:
        description = self._describe(stage, note)
        if stage in self._tasks:
            self.bar.reset(self._tasks[stage], total=total, description=description, visible=True)
        else:
            self._tasks[stage] = self.bar.add_task(description, total=total)

    def advance(self, stage: str, n: int = 1, *, note: str | None = None) -> None:
        if stage not in self._tasks:
            self.start(stage, None, note=note)
        fields: dict[str, Any] = {"advance": n}
        if note is not None:
            fields["description"] = self._describe(stage, note)
        self.bar.update(self._tasks[stage], **fields)

    def update(self, stage: str, completed: int, *, total: int | None = None, note: str | None = None) -> None:
        if stage not in self._tasks:
            self.start(stage, total, note=note)
        fields: dict[str, Any] = {"completed": completed}
        if total is not None:
            fields["total"] = total
        if note is not None:
            fields["description"] = self._describe(stage, note)
        self.bar.update(self._tasks[stage], **fields)

    def end(self, stage: str) -> None:
        # The bar keeps the count it reached: a stage abandoned half-way must not look finished.
        task = self._tasks.get(stage)
        if task is not None:
            self.bar.stop_task(task)


class _ConsoleLogHandler(logging.Handler):
    """Library log records as plain lines on the CLI's stderr console (warnings in yellow)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = escape(self.format(record))
            if record.levelno >= logging.ERROR:
                err_console.print(f"[red]{text}[/]", soft_wrap=True)
            elif record.levelno >= logging.WARNING:
                err_console.print(f"[yellow]Warning:[/] {text}", soft_wrap=True)
            else:
                err_console.print(text, soft_wrap=True)
        except Exception:  # noqa: BLE001 - logging must never raise into the library
            self.handleError(record)


def configure_logging(level: int = logging.INFO) -> None:
    """Route the library's loggers (``refvps``, ``rem_model``, ``baselines``) to the console, once."""
    for name in ("refvps", "rem_model", "baselines"):
        logger = logging.getLogger(name)
        if not any(isinstance(h, _ConsoleLogHandler) for h in logger.handlers):
            logger.addHandler(_ConsoleLogHandler())
        logger.setLevel(level)
        logger.propagate = False


def report_error(exc: BaseException, debug: bool = False) -> int:
    """Print an exception as ``Error: ... / Hint: ...`` on stderr and return the exit status for it.

    The one place where exceptions become messages (``refvps`` and ``refvps train-rem`` under a launcher use it):
    a :class:`RefvpsError` with its hint, Ctrl-C with the resume hint, OS and memory errors, and
    anything else as a probable bug; ``debug`` prints the traceback first.
    """
    if debug:
        import traceback

        traceback.print_exception(exc)
    if isinstance(exc, RefvpsError):
        err_console.print(f"[bold red]Error:[/] {escape(str(exc))}", markup=True, soft_wrap=True)
        if exc.hint:
            err_console.print(f"[bold]Hint:[/] {escape(exc.hint)}", soft_wrap=True)
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        err_console.print("[bold red]Error:[/] interrupted")
        err_console.print("[bold]Hint:[/] run the same command again: finished work is kept and it resumes")
        return 130
    if isinstance(exc, OSError) and (exc.filename is not None or exc.strerror):
        where = f"{exc.filename}: " if exc.filename is not None else ""
        err_console.print(
            f"[bold red]Error:[/] cannot use {escape(str(where))}{escape(exc.strerror or str(exc))}", soft_wrap=True
        )
        err_console.print(
            "[bold]Hint:[/] check that the path exists, is the right kind (file or folder), "
            "is writable, and that the disk is not full"
        )
        return 1
    if isinstance(exc, MemoryError):
        err_console.print("[bold red]Error:[/] out of memory")
        err_console.print("[bold]Hint:[/] use fewer workers or a smaller window/batch")
        return 1
    err_console.print(f"[bold red]Error:[/] unexpected {type(exc).__name__}: {escape(str(exc))}", soft_wrap=True)
    err_console.print(
        "[bold]Hint:[/] this is a bug in refvps or an unusual input; rerun with 'refvps --debug ...' "
        "and report the traceback"
    )
    return 1
