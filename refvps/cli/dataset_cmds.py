"""``refvps validate`` and ``refvps stats``: checking and describing a dataset."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from refvps.cli.common import RichProgress, console, err_console, print_json
from refvps.errors import UsageError


@click.command()
@click.argument("root", type=click.Path(path_type=Path))
@click.option(
    "--refvps",
    "refvps_rules",
    is_flag=True,
    help="Also apply the Ref-VPS benchmark rules: 4 expressions per clip (2 annotators x 2), 24 fps, clips.json.",
)
@click.option("--clip", "clips", multiple=True, help="Check only this clip (repeatable).")
@click.option("--no-masks", is_flag=True, help="Skip decoding masks (faster; mask sizes and values unchecked).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--all", "show_all", is_flag=True, help="Show every problem, not the first 5 per clip and rule.")
@click.option("--rules", "list_rules", is_flag=True, help="List the rules that are checked and exit.")
@click.pass_context
def validate(
    ctx, root: Path, refvps_rules: bool, clips, no_masks: bool, as_json: bool, show_all: bool, list_rules: bool
) -> None:
    """Check the dataset at ROOT against every rule of the format.

    Exit status: 0 valid (warnings allowed), 1 invalid, 2 usage error.
    """
    from refvps.dataset.validate import RULES, summarise, validate_dataset

    if list_rules:
        table = Table("rule", "what is checked", box=None)
        for rule, text in RULES.items():
            table.add_row(rule, text)
        console.print(table)
        return
    if not root.exists():  # a wrong argument: exit status 2, as documented above
        raise UsageError(
            f"dataset folder does not exist: {root}",
            hint="pass the dataset's root folder (the one holding JPEGImages/ and meta_expressions.json)",
            path=root,
        )

    with RichProgress(transient=True, disable=as_json) as progress:
        report = validate_dataset(
            root, refvps_rules=refvps_rules, clips=list(clips) or None, check_masks=not no_masks, progress=progress
        )
    if as_json:
        print_json(report.to_json())
    else:
        shown = report.problems if show_all else summarise(report.problems)
        for item in shown:
            if isinstance(item, str):
                console.print(f"  [dim]{escape(item)}[/]")
                continue
            colour = "red" if item.severity == "error" else "yellow"
            console.print(f"[{colour}]{item.severity}[/] [bold]{item.rule}[/] {escape(item.path)}", soft_wrap=True)
            console.print(f"  {item.message}", soft_wrap=True, markup=False)
            console.print(f"  [dim]fix:[/] {escape(item.hint)}", soft_wrap=True)
        checked = f"{report.n_clips} clips, {report.n_frames} frames, {report.n_masks} masks"
        rules = " with Ref-VPS rules" if refvps_rules else ""
        if report.ok:
            console.print(f"[green]valid[/]{rules}: {checked}, {len(report.warnings)} warnings")
        else:
            err_console.print(
                f"[red]invalid[/]{rules}: {len(report.errors)} errors, {len(report.warnings)} warnings in {checked}"
            )
    if not report.ok:
        ctx.exit(1)


@click.command()
@click.argument("root", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
@click.option("--plot", type=click.Path(path_type=Path), help="Save the clip-length histogram (Figure A) as a PNG.")
@click.option("--no-masks", is_flag=True, help="Do not decode masks (no Ignore/target frame shares).")
@click.option("--per-clip", is_flag=True, help="Also print one row per clip.")
def stats(root: Path, as_json: bool, plot: Path | None, no_masks: bool, per_clip: bool) -> None:
    """Print the statistics of the dataset at ROOT (the paper's Table A, per category, Ignore share)."""
    from refvps.dataset.stats import compute_stats, plot_length_histogram

    with RichProgress(transient=True, disable=as_json) as progress:
        result = compute_stats(root, read_masks=not no_masks, progress=progress)
    if plot is not None:
        plot_length_histogram(result, plot)
    if as_json:
        print_json(result.to_json())
        return

    table = Table(title=f"Statistics of {root}", show_header=False)
    for name, value in result.table_a():
        table.add_row(name, value)
    table.add_row("Expressions", str(result.expressions))
    table.add_row("Length range (s)", f"{result.min_length_s:.2f} – {result.max_length_s:.2f}")
    if result.ignore_frame_share is not None:
        table.add_row("Frames with Ignore", f"{100 * result.ignore_frame_share:.1f}%")
        table.add_row("Frames with target", f"{100 * result.target_frame_share:.1f}%")
    console.print(table)

    categories = Table("category", "clips", "frames", "concepts", title="Per category")
    for row in result.per_category:
        categories.add_row(row.category, str(row.clips), str(row.frames), str(row.concepts))
    console.print(categories)
    if per_clip:
        clips = Table("clip", "concept", "frames", "seconds", "size", "expressions", "frames w/ Ignore")
        for row in result.per_clip:
            size = f"{row.width}x{row.height}" if row.width else "?"
            ignore = "" if row.frames_with_ignore is None else str(row.frames_with_ignore)
            clips.add_row(
                row.clip_id,
                row.concept or "",
                str(row.frames),
                f"{row.seconds:.2f}",
                size,
                str(row.expressions),
                ignore,
            )
        console.print(clips)
    if plot is not None:
        console.print(f"clip-length histogram written to {plot}")
