"""What every CLI command shares: one rich console, JSON output, progress bars, error messages."""

from __future__ import annotations

import json
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


def report_error(exc: BaseException, debug: bool = False) -> int:
    """Print an exception as ``Error: ... / Hint: ...`` on stderr and return the exit status for it.

    The one place where exceptions become messages (``refvps`` and ``python -m rem_model.train`` use it):
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
        err_console.print(f"[bold red]Error:[/] cannot use {escape(str(where))}{escape(exc.strerror or str(exc))}",
                          soft_wrap=True)
        err_console.print("[bold]Hint:[/] check that the path exists, is the right kind (file or folder), "
                          "is writable, and that the disk is not full")
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
