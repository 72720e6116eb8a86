"""``refvps evaluate`` and ``refvps leaderboard``: scoring predictions and publishing the scores."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from refvps.cli.common import RichProgress, console, err_console, print_json


def _fmt(value, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


@click.command()
@click.argument("predictions", type=click.Path(path_type=Path))
@click.option(
    "--dataset",
    "-d",
    "dataset_root",
    required=True,
    type=click.Path(path_type=Path),
    help="Root of the Ref-VPS-format dataset (the folder with meta_expressions.json).",
)
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Write results.json here.")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), help="Write one row per (clip, expression) here.")
@click.option("--strict", is_flag=True, help="Fail on any missing or unknown prediction instead of scoring it empty.")
@click.option(
    "--workers",
    "-j",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Processes scoring clips in parallel (0 = one per CPU).",
)
@click.option("--no-boundary", is_flag=True, help="Skip the boundary measure F (and J&F): J and TempCon only, faster.")
@click.option("--method", help="Name of the method, recorded in results.json (and used by the leaderboard).")
@click.option(
    "--bootstrap",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="Clip resamples for the 95% confidence intervals (0 = none).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
@click.option("--json", "as_json", is_flag=True, help="Print results.json on stdout instead of tables.")
@click.option("--per-concept", is_flag=True, help="Also print the per-concept table.")
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path),
    help="Where RLE scoring without F keeps the ground truth encoded as RLE between runs "
    "(default: $REFVPS_CACHE_DIR or ~/.cache/refvps).",
)
@click.option("--no-cache", is_flag=True, help="Do not read or write the ground-truth cache.")
@click.option(
    "--protocol",
    type=click.Choice(["refvps", "ref-davis", "mevis", "vspw-stuff", "burst"]),
    help="How the headline numbers are computed (default: the one the dataset's clips.json names, else refvps); "
    "see docs/BENCHMARKS_SUITE.md.",
)
def evaluate(
    predictions: Path,
    dataset_root: Path,
    output: Path | None,
    csv_path: Path | None,
    strict: bool,
    workers: int,
    no_boundary: bool,
    method: str | None,
    bootstrap: int,
    seed: int,
    as_json: bool,
    per_concept: bool,
    cache_dir: Path | None,
    no_cache: bool,
    protocol: str | None,
) -> None:
    """Score PREDICTIONS against the dataset: J, F, J&F, TempCon, breakdowns and 95% intervals.

    PREDICTIONS is a folder of PNGs (<clip>/<exp_id>/<frame>.png, optionally under Annotations/), a .zip
    of one, or a COCO-RLE .json list. Any nonzero pixel is foreground; Ignore (255) pixels of the
    ground truth are left out. Missing frames count as empty masks (warned; --strict fails instead).
    """
    from refvps.errors import UsageError
    from refvps.scoring.evaluate import evaluate as run_evaluate

    for option, path, example in (("--output", output, "results.json"), ("--csv", csv_path, "per_expression.csv")):
        if path is not None and path.is_dir():  # said now, not after the scoring
            raise UsageError(
                f"{option} names a folder, not a file: {path}",
                hint=f"pass a file name, e.g. {option} {path / example}",
                path=path,
            )
    with RichProgress(transient=True, disable=as_json) as progress:
        results = run_evaluate(
            predictions,
            dataset_root,
            boundary=not no_boundary,
            workers=workers,
            strict=strict,
            method=method,
            bootstrap=bootstrap,
            seed=seed,
            gt_cache=False if no_cache else cache_dir,
            progress=progress,
            protocol=protocol,
        )
    if output is not None:
        results.write_json(output)
    if csv_path is not None:
        results.write_csv(csv_path)
    if as_json:
        print_json(results.to_json())
        return
    _print_summary(results, per_concept=per_concept)
    written = [str(p) for p in (output, csv_path) if p is not None]
    if written:
        console.print(f"[dim]wrote {escape(', '.join(written))}[/]")


def _print_summary(results, *, per_concept: bool) -> None:
    s = results.summary
    title = escape(f"{results.meta.get('method') or 'predictions'}: {results.meta['predictions']}")
    table = Table(title=title, title_justify="left", show_header=True, box=None)
    for column in ("J ↑", "J 95% CI", "F ↑", "J&F ↑", "TempCon ↓", "J-recall ↑", "J concept-bal."):
        table.add_column(column, justify="right")
    ci = "—" if s.J_ci95 is None else f"{s.J_ci95[0]:.2f}–{s.J_ci95[1]:.2f}"
    table.add_row(_fmt(s.J), ci, _fmt(s.F), _fmt(s.JF), _fmt(s.TempCon), _fmt(s.J_recall), _fmt(s.J_concept_balanced))
    console.print(table)
    console.print(
        f"[dim]{s.n_clips} clips, {s.n_expressions} expressions, {s.n_frames} masks scored"
        f" ({s.n_missing_frames} missing, scored empty); format {results.meta['format']}; "
        f"protocol {results.meta.get('protocol', 'refvps')}[/]"
    )
    _print_protocol(results.meta)
    groups = [("category", results.per_category)]
    if per_concept:
        groups.append(("concept", results.per_concept))
    for label, rows in groups:
        if not rows or all(row.key is None for row in rows):
            continue  # a dataset without clips.json (or without this field) has nothing to break down
        breakdown = Table(show_header=True, box=None, title=f"per {label}", title_justify="left")
        breakdown.add_column(label)
        for column in ("clips", "J", "F", "TempCon"):
            breakdown.add_column(column, justify="right")
        for row in rows:
            name = "unknown" if row.key is None else str(row.key)
            breakdown.add_row(escape(name), str(row.n_clips), _fmt(row.J), _fmt(row.F), _fmt(row.TempCon))
        console.print(breakdown)


def _print_protocol(meta: dict) -> None:
    """The groups a protocol averaged over (expression sets of Ref-DAVIS, classes of VSPW and BURST)."""
    scores = meta.get("protocol_scores")
    if not scores or not scores.get("groups"):
        return
    kind, groups = scores["group_kind"], scores["groups"]
    console.print(
        f"[dim]{escape(meta.get('protocol', ''))}: {escape(meta.get('protocol_description', ''))}; "
        f"{len(groups)} {escape(kind)}(es) averaged[/]",
        soft_wrap=True,
    )
    if len(groups) > 12:
        return  # per class, see results.json (meta.protocol_scores)
    table = Table(show_header=True, box=None, title=f"per {kind}", title_justify="left")
    table.add_column(kind)
    for column in ("J", "F", "J&F"):
        table.add_column(column, justify="right")
    for group in groups:
        name = str(group.get("run") or group.get("class"))
        table.add_row(escape(name), _fmt(group.get("J")), _fmt(group.get("F")), _fmt(group.get("JF")))
    console.print(table)


@click.command()
@click.argument("results", nargs=-1, type=click.Path(path_type=Path))
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Folder to write the pages into.")
@click.option("--title", default=None, help="Page title (default: 'Ref-VPS leaderboard').")
@click.option("--no-reference", is_flag=True, help="Leave out the published rows of leaderboard/reference/.")
@click.option(
    "--reference",
    "reference_dir",
    type=click.Path(path_type=Path),
    help="Folder of reported entries to include (default: the repository's leaderboard/reference/).",
)
@click.option(
    "--benchmark",
    default=None,
    help="Benchmark of the bare results.json files among RESULTS (default: their dataset's folder name; "
    "entry files name their own). Rows of different benchmarks are ranked in separate tables.",
)
def leaderboard(
    results: tuple[Path, ...],
    out: Path,
    title: str | None,
    no_reference: bool,
    reference_dir: Path | None,
    benchmark: str | None,
) -> None:
    """Build the leaderboard from RESULTS (results.json or entry files, or folders of them) and the
    published rows of leaderboard/reference/ (unless --no-reference).

    Writes OUT/README.md (Markdown table sorted by J), OUT/leaderboard.csv and OUT/index.html, a
    self-contained page with a sortable table, J per concept and J vs TempCon plots. Each benchmark
    gets its own table: the published rows are on the real Ref-VPS test set, so results on the
    synthetic benchmark are never ranked against them.
    """
    from refvps.leaderboard import DEFAULT_TITLE, build_leaderboard, load_entries
    from refvps.leaderboard.reference import references_for
    from refvps.leaderboard.render import benchmark_groups, leaderboard_rows

    entries = load_entries(results, benchmark=benchmark)
    if not no_reference:
        entries += references_for(entries, reference_dir)
    groups = benchmark_groups(leaderboard_rows(entries))
    if len(groups) > 1:
        listed = ", ".join(f"{name} ({len(rows)} row{'s' if len(rows) > 1 else ''})" for name, rows in groups)
        err_console.print(
            f"[yellow]Warning:[/] the entries come from {len(groups)} benchmarks: {escape(listed)}; each is "
            "ranked in its own table. If some are the same benchmark, name it with --benchmark "
            "(--no-reference leaves out the published Ref-VPS rows).",
            soft_wrap=True,
        )
    written = build_leaderboard(entries, out, title=title or DEFAULT_TITLE)
    console.print(escape(f"{len(entries)} entries -> " + ", ".join(str(p) for p in written.values())), soft_wrap=True)
