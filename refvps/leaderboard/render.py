"""Leaderboard pages: ``README.md``, ``leaderboard.csv`` and a self-contained ``index.html``.

Rows are sorted by J (the Ref-VPS headline metric). TempCon is shown next to it and plotted against
it, because a constant (e.g. empty) prediction is steady without being right. Rows of different
benchmarks (say, the synthetic one and the published Ref-VPS numbers) are never ranked against each
other: each benchmark gets its own table, ranked from 1. The HTML page loads nothing from the
network: its styles and sorting script are inline and its plots are base64 PNGs.
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import html
import io
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from refvps.fileio import atomic_write_bytes, atomic_write_text
from refvps.leaderboard.entries import Entry

DEFAULT_TITLE = "Ref-VPS leaderboard"
PLOT_CONCEPTS = "j_per_concept.png"
PLOT_SCATTER = "j_vs_tempcon.png"
REPORTED_MARK = "†"


@dataclass
class Row:
    """One line of the leaderboard, flattened from an :class:`Entry`."""

    rank: int
    entry: Entry
    J: float | None
    J_ci95: list[float] | None
    TempCon: float | None
    JF: float | None
    F: float | None
    J_recall: float | None
    J_concept_balanced: float | None
    categories: dict[str, float | None] = field(default_factory=dict)
    concepts: dict[str, float | None] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.entry.info.name

    @property
    def reported(self) -> bool:
        return bool(self.entry.info.reported)

    @property
    def benchmark(self) -> str:
        return entry_benchmark(self.entry)


def entry_benchmark(entry: Entry) -> str:
    """The benchmark an entry is ranked in: its name, and the protocol it was scored under unless that is
    Ref-VPS's own (results.json ``meta.protocol``; docs/BENCHMARKS_SUITE.md). Rows scored under
    different protocols are different benchmarks here, so they are never ranked together."""
    name = entry.info.benchmark or "?"
    protocol = (entry.results.get("meta") or {}).get("protocol") or "refvps"
    return name if protocol == "refvps" else f"{name} ({protocol} protocol)"


def benchmark_key(name: str | None) -> str:
    """What makes two benchmark names the same: letters and digits, case-insensitive ("Ref-VPS" = "refvps")."""
    return "".join(ch for ch in (name or "?").lower() if ch.isalnum()) or "?"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _interval(value: Any) -> list[float] | None:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return None
    low, high = _number(value[0]), _number(value[1])
    return None if low is None or high is None else [low, high]


def leaderboard_rows(entries: Sequence[Entry]) -> list[Row]:
    """Rows grouped by benchmark (see :func:`benchmark_groups`), each group sorted by J (highest
    first; entries without J last) and ranked 1, 2, ... within its benchmark."""
    rows = []
    for entry in entries:
        summary = entry.summary
        rows.append(
            Row(
                rank=0,
                entry=entry,
                J=_number(summary.get("J")),
                J_ci95=_interval(summary.get("J_ci95")),
                TempCon=_number(summary.get("TempCon")),
                JF=_number(summary.get("JF")),
                F=_number(summary.get("F")),
                J_recall=_number(summary.get("J_recall")),
                J_concept_balanced=_number(summary.get("J_concept_balanced")),
                categories={
                    str(c["category"]): _number(c.get("J")) for c in entry.per_category if c.get("category") is not None
                },
                concepts={str(c.get("concept")): _number(c.get("J")) for c in entry.per_concept},
            )
        )
    rows.sort(key=lambda r: (r.J is None, -(r.J or 0.0), r.name))
    ordered = []
    for _, members in benchmark_groups(rows):
        for rank, row in enumerate(members, 1):
            row.rank = rank
        ordered.extend(members)
    return ordered


def benchmark_groups(rows: Sequence[Row]) -> list[tuple[str, list[Row]]]:
    """(benchmark name, its rows in their order) for each benchmark of ``rows``.

    Benchmarks with rows scored by refvps come first, then those with only reported rows, each set
    by name. Names that differ only in case and punctuation are one benchmark; it is shown under
    the spelling most of its rows use.
    """
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(benchmark_key(row.benchmark), []).append(row)
    named = []
    for members in groups.values():
        spellings = Counter(r.benchmark for r in members)
        named.append((spellings.most_common(1)[0][0], members))
    named.sort(key=lambda group: (all(r.reported for r in group[1]), group[0].lower()))
    return named


def _category_names() -> dict[str, str]:
    """Category id -> readable name from the taxonomy (ids stay as they are if it is missing)."""
    try:
        from refvps.resources import load_taxonomy

        return {c["id"]: c.get("name", c["id"]) for c in load_taxonomy().get("categories", [])}
    except Exception:  # noqa: BLE001 - names are cosmetic
        return {}


def _category_order(rows: Sequence[Row]) -> list[str]:
    names = _category_names()
    present = {c for row in rows for c in row.categories}
    ordered = [c for c in names if c in present]
    return ordered + sorted(present - set(ordered))


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _fmt_ci(ci: list[float] | None) -> str:
    return "—" if ci is None else f"{ci[0]:.2f}–{ci[1]:.2f}"


def _display_name(row: Row) -> str:
    return row.name + (REPORTED_MARK if row.reported else "")


# --------------------------------------------------------------------------------------------
# Markdown and CSV
# --------------------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


_SCORE_HEADERS = ["J ↑", "J 95% CI", "TempCon ↓", "J&F ↑", "J concept-balanced ↑"]


def _score_headers(categories: Sequence[str]) -> list[str]:
    names = _category_names()
    return _SCORE_HEADERS + [f"J {names.get(c, c)}" for c in categories]


def _score_cells(row: Row, categories: Sequence[str]) -> list[tuple[str, float | None]]:
    """(text, value to sort by) of the score columns, as :func:`_score_headers` names them."""
    cells = [
        (_fmt(row.J), row.J),
        (_fmt_ci(row.J_ci95), row.J_ci95[0] if row.J_ci95 else None),
        (_fmt(row.TempCon), row.TempCon),
        (_fmt(row.JF), row.JF),
        (_fmt(row.J_concept_balanced), row.J_concept_balanced),
    ]
    return cells + [(_fmt(row.categories.get(c)), row.categories.get(c)) for c in categories]


def _benchmarks_note(groups: Sequence[tuple[str, list[Row]]]) -> str | None:
    if len(groups) < 2:
        return None
    names = ", ".join(name for name, _ in groups)
    return (
        f"The rows come from {len(groups)} benchmarks ({names}), each ranked in its own table: "
        "compare only rows of the same benchmark."
    )


def _markdown_table(rows: Sequence[Row]) -> list[str]:
    categories = _category_order(rows)
    header = ["#", "Method", *_score_headers(categories), "Benchmark"]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---:"] + [":---"] + ["---:"] * (len(header) - 3) + [":---"]) + "|",
    ]
    for row in rows:
        method = _md_cell(_display_name(row))
        if row.entry.info.url:
            method = f"[{method}]({row.entry.info.url})"
        cells = [str(row.rank), method, *(text for text, _ in _score_cells(row, categories)), _md_cell(row.benchmark)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_markdown(rows: Sequence[Row], *, title: str = DEFAULT_TITLE, plots: Sequence[str] = ()) -> str:
    groups = benchmark_groups(rows)
    lines = [
        f"# {title}",
        "",
        "Sorted by J (region similarity, 0–100, higher is better). TempCon is the mean change of the per-frame "
        "IoU between consecutive frames (lower is better, but an always-empty prediction scores about 0 when the "
        "target is visible throughout, so read it next to J). "
        "J&F adds the DAVIS boundary measure. Per-category columns are J averaged over the clips of each category. "
        f"{REPORTED_MARK} = numbers reported in a publication, not scored by refvps (sources below).",
    ]
    note = _benchmarks_note(groups)
    if note:
        lines += ["", _md_cell(note)]
    for name, members in groups:
        if note:
            lines += ["", f"## {_md_cell(name)}"]
        lines += ["", *_markdown_table(members)]
    reported = [r for r in rows if r.reported]
    if reported:
        lines += ["", "Sources of reported rows:", ""]
        for row in reported:
            lines.append(f"- {_md_cell(row.name)}: {_md_cell(row.entry.info.source or 'unknown')}")
    details = [
        r for r in rows if not r.reported and (r.entry.info.command or r.entry.info.checkpoint or r.entry.info.backbone)
    ]
    if details:
        lines += ["", "How each scored row was made:", ""]
        for row in details:
            info = row.entry.info
            parts = []
            if info.backbone:
                parts.append(f"backbone {info.backbone}")
            if info.checkpoint:
                parts.append(f"checkpoint `{info.checkpoint}`")
            if info.command:
                parts.append(f"command `{info.command}`")
            lines.append(f"- {_md_cell(row.name)}: " + "; ".join(_md_cell(p) for p in parts))
    for plot in plots:
        alt = "J per concept" if plot == PLOT_CONCEPTS else "J vs TempCon"
        lines += ["", f"![{alt}]({plot})"]
    lines += ["", _generated_line(), ""]
    return "\n".join(lines)


def _generated_line() -> str:
    from refvps import __version__

    today = _dt.date.today().isoformat()
    return f"Generated by refvps {__version__} (`refvps leaderboard`) on {today}."


CSV_COLUMNS = (
    "rank",
    "method",
    "reported",
    "J",
    "J_ci95_low",
    "J_ci95_high",
    "TempCon",
    "JF",
    "F",
    "J_recall",
    "J_concept_balanced",
    "benchmark",
    "backbone",
    "checkpoint",
    "url",
    "paper",
    "source",
    "command",
    "n_clips",
    "n_expressions",
)


def render_csv(rows: Sequence[Row]) -> str:
    categories = _category_order(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(CSV_COLUMNS) + [f"J_category:{c}" for c in categories])
    for row in rows:
        info = row.entry.info
        summary = row.entry.summary
        values = {
            "rank": row.rank,
            "method": info.name,
            "reported": "yes" if row.reported else "no",
            "J": row.J,
            "J_ci95_low": row.J_ci95[0] if row.J_ci95 else None,
            "J_ci95_high": row.J_ci95[1] if row.J_ci95 else None,
            "TempCon": row.TempCon,
            "JF": row.JF,
            "F": row.F,
            "J_recall": row.J_recall,
            "J_concept_balanced": row.J_concept_balanced,
            "benchmark": info.benchmark,
            "backbone": info.backbone,
            "checkpoint": info.checkpoint,
            "url": info.url,
            "paper": info.paper,
            "source": info.source,
            "command": info.command,
            "n_clips": summary.get("n_clips"),
            "n_expressions": summary.get("n_expressions"),
        }
        cells = ["" if values[c] is None else values[c] for c in CSV_COLUMNS]
        cells += ["" if row.categories.get(c) is None else row.categories[c] for c in categories]
        writer.writerow(cells)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_concepts(rows: Sequence[Row]) -> bytes | None:
    """Heat map of J per concept (columns) for each scored method (rows); None without breakdowns."""
    scored = [r for r in rows if r.concepts]
    if not scored:
        return None
    concepts = sorted({c for r in scored for c in r.concepts})
    plt = _pyplot()
    import numpy as np

    values = np.array(
        [[r.concepts.get(c) if r.concepts.get(c) is not None else np.nan for c in concepts] for r in scored]
    )
    longest_name = max(len(r.name) for r in scored)
    width = min(max(7.0, 2.5 + 0.07 * longest_name + 0.42 * len(concepts)), 40.0)
    height = 2.2 + 0.45 * len(scored)
    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    image = ax.imshow(np.ma.masked_invalid(values), vmin=0, vmax=100, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(concepts)))
    ax.set_xticklabels([c.replace("_", " ") for c in concepts], rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(scored)))
    ax.set_yticklabels([r.name for r in scored], fontsize=9)
    if len(concepts) * len(scored) <= 600:
        for i in range(len(scored)):
            for j in range(len(concepts)):
                if not np.isnan(values[i, j]):
                    ax.text(
                        j,
                        i,
                        f"{values[i, j]:.0f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if values[i, j] < 55 else "black",
                    )
    fig.colorbar(image, ax=ax, label="J", fraction=0.025, pad=0.01)
    ax.set_title("J per concept (mean over the concept's clips)")
    fig.tight_layout()
    return _png(fig, plt)


def plot_scatter(rows: Sequence[Row]) -> bytes | None:
    """J against TempCon for every row that has both; reported rows hollow, one colour per benchmark."""
    points = [r for r in rows if r.J is not None and r.TempCon is not None]
    if not points:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 5.0), dpi=100)
    groups = benchmark_groups(points)
    for index, (benchmark, members) in enumerate(groups):
        colour = f"C{index}"
        for row in members:
            style = {"facecolors": "none", "edgecolors": colour} if row.reported else {"color": colour}
            ax.scatter([row.TempCon], [row.J], s=50, **style)
            offset = (5, -11) if row.J > 92 else (5, 4)  # keep labels of top rows inside the axes
            ax.annotate(_display_name(row), (row.TempCon, row.J), textcoords="offset points", xytext=offset, fontsize=8)
        if len(groups) > 1:
            ax.scatter([], [], color=colour, label=benchmark)
    if len(groups) > 1:
        ax.legend(title="benchmark (compare within one)", fontsize=8, title_fontsize=8, loc="lower right")
    ax.set_xlabel("TempCon (lower = steadier; a constant prediction is steady without being right)")
    ax.set_ylabel("J (higher is better)")
    ax.set_title("Accuracy vs temporal consistency")
    widest = max(r.TempCon for r in points)
    ax.set_xlim(0, max(widest * 1.4, widest + 1.0))  # room for the labels on the right
    ax.set_ylim(0, 102)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig, plt)


def _png(fig, plt) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;max-width:1400px;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:14px}th,td{padding:4px 8px;border-bottom:1px solid #ddd;text-align:right}
th{cursor:pointer;background:#f4f4f4;position:sticky;top:0;user-select:none}th.sorted-asc::after{content:" ▲"}th.sorted-desc::after{content:" ▼"}
td.text,th.text{text-align:left}td{white-space:nowrap}td.name,td.wide{min-width:14em;white-space:normal}td.detail{min-width:24em;white-space:normal}
tr.reported td{color:#666;font-style:italic}.note{color:#555;font-size:13px;max-width:900px}
img{max-width:100%;border:1px solid #eee;margin:1em 0}.wrap{overflow-x:auto}
"""

_JS = """
document.querySelectorAll('table.sortable').forEach(function(table){
  table.querySelectorAll('th').forEach(function(th, col){
    th.addEventListener('click', function(){
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var asc = !th.classList.contains('sorted-asc');
      table.querySelectorAll('th').forEach(function(h){h.classList.remove('sorted-asc','sorted-desc');});
      th.classList.add(asc ? 'sorted-asc' : 'sorted-desc');
      rows.sort(function(a, b){
        var x = a.cells[col].getAttribute('data-sort'), y = b.cells[col].getAttribute('data-sort');
        var nx = parseFloat(x), ny = parseFloat(y);
        if (x === '' && y !== '') return 1; if (y === '' && x !== '') return -1;
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
        return asc ? c : -c;
      });
      rows.forEach(function(r){body.appendChild(r);});
    });
  });
});
"""


def _td(text: str, sort_value: Any, *, cls: str = "", raw: bool = False) -> str:
    sort_text = "" if sort_value is None else html.escape(str(sort_value), quote=True)
    content = text if raw else html.escape(text)
    klass = f' class="{cls}"' if cls else ""
    return f'<td{klass} data-sort="{sort_text}">{content}</td>'


def _html_table(rows: Sequence[Row]) -> str:
    categories = _category_order(rows)
    headers = ["#", "Method", *_score_headers(categories), "Benchmark", "Backbone", "Source / command"]
    text_columns = {1, len(headers) - 3, len(headers) - 2, len(headers) - 1}
    head = "".join(
        f'<th class="{"text name" if i == 1 else "text"}">{html.escape(h)}</th>'
        if i in text_columns
        else f"<th>{html.escape(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = []
    for row in rows:
        info = row.entry.info
        name = html.escape(_display_name(row))
        if info.url and info.url.startswith(("http://", "https://")):
            name = f'<a href="{html.escape(info.url, quote=True)}">{name}</a>'
        detail = info.source if row.reported else (info.command or info.checkpoint or "")
        cells = [_td(str(row.rank), row.rank), _td(name, info.name, cls="text name", raw=True)]
        cells += [_td(text, value) for text, value in _score_cells(row, categories)]
        cells += [
            _td(row.benchmark, row.benchmark, cls="text"),
            _td(info.backbone or "—", info.backbone or "", cls="text wide"),
            _td(detail or "—", detail or "", cls="text detail"),
        ]
        klass = ' class="reported"' if row.reported else ""
        body.append(f"<tr{klass}>" + "".join(cells) + "</tr>")
    return (
        f'<div class="wrap"><table class="sortable">\n<thead><tr>{head}</tr></thead>\n<tbody>\n'
        + "\n".join(body)
        + "\n</tbody>\n</table></div>\n"
    )


def render_html(rows: Sequence[Row], *, title: str = DEFAULT_TITLE, plots: dict[str, bytes] | None = None) -> str:
    plots = plots or {}
    groups = benchmark_groups(rows)
    note = _benchmarks_note(groups)
    tables = f'<p class="note"><b>{html.escape(note)}</b></p>\n' if note else ""
    for name, members in groups:
        if note:
            tables += f"<h2>{html.escape(name)}</h2>\n"
        tables += _html_table(members)
    figures = []
    for key, caption in (
        (PLOT_CONCEPTS, "J per concept for each scored method (reported rows have no per-concept numbers)."),
        (
            PLOT_SCATTER,
            "J against TempCon: a constant (e.g. empty) prediction is steady without being right, "
            "so a low TempCon only counts with a high J.",
        ),
    ):
        if key in plots:
            data = base64.b64encode(plots[key]).decode("ascii")
            figures.append(
                f'<figure><img alt="{html.escape(caption, quote=True)}" src="data:image/png;base64,{data}">'
                f'<figcaption class="note">{html.escape(caption)}</figcaption></figure>'
            )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p class="note">Sorted by J (region similarity, 0–100, higher is better); click a column header to sort by it.
TempCon is the mean change of the per-frame IoU between consecutive frames: lower is better, but an
always-empty prediction scores about 0 when the target is visible throughout, so read it next to J.
J&amp;F adds the DAVIS boundary measure. Rows marked {REPORTED_MARK} (in grey) are numbers reported in a
publication, not scored by refvps.</p>
{tables}{chr(10).join(figures)}
<p class="note">{html.escape(_generated_line())}</p>
<script>{_JS}</script>
</body>
</html>
"""


# --------------------------------------------------------------------------------------------
# Everything at once
# --------------------------------------------------------------------------------------------


def build_leaderboard(entries: Sequence[Entry], out: str | Path, *, title: str = DEFAULT_TITLE) -> dict[str, Path]:
    """Write ``README.md``, ``leaderboard.csv``, ``index.html`` and the plot PNGs into ``out``."""
    from refvps.errors import UsageError

    if not entries:
        raise UsageError("no entries to put on the leaderboard", hint="pass results.json or entry files")
    out = Path(out)
    rows = leaderboard_rows(entries)
    plots: dict[str, bytes] = {}
    concept_png = plot_concepts(rows)
    if concept_png is not None:
        plots[PLOT_CONCEPTS] = concept_png
    scatter_png = plot_scatter(rows)
    if scatter_png is not None:
        plots[PLOT_SCATTER] = scatter_png
    written = {}
    for name, data in plots.items():
        written[name] = atomic_write_bytes(out / name, data)
    written["README.md"] = atomic_write_text(out / "README.md", render_markdown(rows, title=title, plots=list(plots)))
    written["leaderboard.csv"] = atomic_write_text(out / "leaderboard.csv", render_csv(rows))
    written["index.html"] = atomic_write_text(out / "index.html", render_html(rows, title=title, plots=plots))
    return written
