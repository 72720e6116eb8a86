"""What every CLI command shares: one rich console, JSON output, progress bars."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

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
