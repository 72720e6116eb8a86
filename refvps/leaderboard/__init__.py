"""The Ref-VPS leaderboard: entries (results + method metadata) and the pages built from them.

>>> from refvps.leaderboard import make_entry, write_entry, build_leaderboard, reference_entries
>>> entry = make_entry("results.json", name="My method", url="https://...", backbone="...",
...                    checkpoint="ckpt.pt", command="refvps run-baseline ...")     # doctest: +SKIP
>>> write_entry(entry, "leaderboard/entries/my-method.json")                        # doctest: +SKIP
>>> build_leaderboard([entry, *reference_entries()], "site/")                       # doctest: +SKIP
"""

from refvps.leaderboard.entries import (
    ENTRY_FORMAT,
    ENTRY_KEY,
    Entry,
    MethodInfo,
    load_entries,
    make_entry,
    read_entry,
    reported_entry,
    write_entry,
)
from refvps.leaderboard.reference import builtin_reference_entries, reference_entries, write_reference_entries
from refvps.leaderboard.render import (
    CSV_COLUMNS,
    DEFAULT_TITLE,
    Row,
    build_leaderboard,
    leaderboard_rows,
    render_csv,
    render_html,
    render_markdown,
)

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_TITLE",
    "ENTRY_FORMAT",
    "ENTRY_KEY",
    "Entry",
    "MethodInfo",
    "Row",
    "build_leaderboard",
    "builtin_reference_entries",
    "leaderboard_rows",
    "load_entries",
    "make_entry",
    "read_entry",
    "reference_entries",
    "render_csv",
    "render_html",
    "render_markdown",
    "reported_entry",
    "write_entry",
    "write_reference_entries",
]
