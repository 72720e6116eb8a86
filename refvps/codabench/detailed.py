"""``detailed_results.html``: the page Codabench shows for one submission (self-contained, no scripts).

Codabench watches the scoring output for this file while the scoring program runs, so it is written
three times: "scoring..." at the start, then either the scores with their breakdowns (per category,
concept and, where the phase allows it, clip) or the error that stopped the submission, with its hint.
"""

from __future__ import annotations

import html
from typing import Any, Iterable, Sequence

from refvps import __version__
from refvps.errors import RefvpsError
from refvps.scoring import GroupResult, Results

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0 1.5em}"
    "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}"
    "th:first-child,td:first-child{text-align:left}"
    ".error{color:#b00020}.hint{color:#444}.note{color:#555;font-size:.9em}"
)


def _page(title: str, body: str) -> str:
    escaped = html.escape(title)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escaped}</title>'
        f"<style>{_STYLE}</style></head>\n<body>\n<h1>{escaped}</h1>\n{body}\n"
        f'<p class="note">Scored by refvps {html.escape(__version__)}.</p>\n</body></html>\n'
    )


def _number(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _interval(ci: Sequence[float] | None) -> str:
    return "" if not ci else f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>\n" for row in rows)
    return f"<table><tr>{head}</tr>\n{body}</table>"


def pending_page(title: str) -> str:
    return _page(title, "<p>Scoring…</p>")


def error_page(title: str, error: RefvpsError) -> str:
    body = f'<p class="error"><b>Error:</b> {html.escape(str(error))}</p>'
    if error.hint:
        body += f'\n<p class="hint"><b>Hint:</b> {html.escape(error.hint)}</p>'
    return _page(title, body + "\n<p>This submission was not scored.</p>")


def _group_rows(groups: Sequence[GroupResult]) -> list[list[Any]]:
    return [
        [g.key or "(none)", g.n_clips, _number(g.J), _number(g.F), _number(g.TempCon), _number(g.J_recall)]
        for g in groups
    ]


def _coverage_note(results: Results) -> str:
    coverage = results.coverage
    parts = []
    if coverage.unknown_clips:
        parts.append(f"{len(coverage.unknown_clips)} clip(s) that are not in this phase")
    if coverage.unknown_expressions:
        parts.append(f"{len(coverage.unknown_expressions)} expression(s) that are not in this phase")
    if coverage.unknown_frames:
        parts.append(f"{coverage.unknown_frames} frame(s) that are not in this phase")
    if not parts:
        return ""
    return f'<p class="note">Predictions for {html.escape("; ".join(parts))} were not scored.</p>'


def results_page(title: str, results: Results, *, per_clip: bool = True) -> str:
    s = results.summary
    summary = _table(
        ["measure", "score", "95% interval (clips resampled)"],
        [
            ["J (region similarity)", _number(s.J), _interval(s.J_ci95)],
            ["F (boundary)", _number(s.F), ""],
            ["J&F", _number(s.JF), _interval(s.JF_ci95)],
            ["TempCon (lower is better)", _number(s.TempCon), _interval(s.TempCon_ci95)],
            ["J-recall", _number(s.J_recall), ""],
            ["concept-balanced J", _number(s.J_concept_balanced), ""],
        ],
    )
    counts = (
        f"<p>{s.n_clips} clips, {s.n_expressions} expressions, {s.n_frames} masks scored; "
        f"{s.n_concepts} concepts in {s.n_categories} categories.</p>"
    )
    group_headers = ["clips", "J", "F", "TempCon", "J-recall"]
    clips = [
        [c.key, c.concept or "", _number(c.J), _number(c.F), _number(c.TempCon), _number(c.J_recall)]
        for c in sorted(results.per_clip, key=lambda c: c.J)
    ]
    body = "\n".join(
        [
            summary,
            counts,
            _coverage_note(results),
            "<h2>Per category</h2>",
            _table(["category", *group_headers], _group_rows(results.per_category)),
            "<h2>Per concept</h2>",
            _table(["concept", *group_headers], _group_rows(results.per_concept)),
            "<h2>Per clip (lowest J first)</h2>",
            _table(["clip", "concept", "J", "F", "TempCon", "J-recall"], clips)
            if per_clip
            else '<p class="note">This phase shows no per-clip scores: its ground truth is hidden.</p>',
        ]
    )
    return _page(title, body)
