"""``refvps convert`` and ``refvps export-submission``: the paper's benchmarks in and out of refvps."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from refvps.cli.common import RichProgress, console, err_console, print_json

BENCHMARKS = ("ref-davis", "ref-ytvos", "mevis", "vspw-stuff", "burst")


@click.command()
@click.argument("benchmark", type=click.Choice(BENCHMARKS))
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Folder of the refvps dataset.")
@click.option(
    "--split",
    help="Split to convert (default: the paper's): ref-davis val|train, ref-ytvos valid|test|train, "
    "mevis valid_u|valid|train, vspw-stuff val|train|test, burst val+test|val|test.",
)
@click.option(
    "--classes",
    type=click.Path(path_type=Path, dir_okay=False),
    help="vspw-stuff: the authors' val_vid2classes.json (video -> class ids) instead of the classes in the masks.",
)
@click.option(
    "--frames",
    type=click.Choice(["all", "annotated"]),
    help="burst: the clip's frames are every image of the sequence (all, default) or the annotated ones.",
)
@click.option(
    "--frame-list",
    type=click.Path(path_type=Path, dir_okay=False),
    help="burst: the authors' input_frame_paths.json ('<dataset>_<seq>' -> images) as each clip's frames.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the conversion report as JSON.")
def convert(
    benchmark: str,
    source: Path,
    out: Path,
    split: str | None,
    classes: Path | None,
    frames: str | None,
    frame_list: Path | None,
    as_json: bool,
) -> None:
    """Convert BENCHMARK from its official files at SOURCE into a refvps dataset at --out.

    Frames are hard-linked (else symlinked, else copied), masks written as palette PNGs, and the
    benchmark's name, split, licence and protocol recorded in clips.json; frames without ground truth
    are marked (annotated_frames), and splits whose masks are not public convert without them.
    Rerunning the same command resumes. Layouts and protocols: docs/BENCHMARKS_SUITE.md.
    """
    from refvps.convert import convert as run_convert

    options = {"classes": classes, "frames": frames, "frame_list": frame_list}
    with RichProgress(disable=as_json, labels={"clips": f"converting {benchmark}"}) as progress:
        report = run_convert(benchmark, source, out, split=split, options=options, progress=progress)
    if as_json:
        print_json(report.to_json())
    else:
        _print_report(report)
    if not report.ok:
        raise click.exceptions.Exit(1)


def _print_report(report) -> None:
    links = ", ".join(f"{n} {method}" for method, n in sorted(report.links.items())) or "none new"
    console.print(
        f"[green]{escape(str(report.root))}[/]: {report.benchmark} {report.split}, {report.clips} clips "
        f"({report.converted} converted now, {report.skipped_done} already done); frames: {escape(links)}",
        soft_wrap=True,
    )
    for note in report.notes[:20]:
        console.print(f"[dim]note:[/] {escape(note)}", soft_wrap=True)
    if len(report.notes) > 20:
        console.print(f"[dim]note:[/] ... and {len(report.notes) - 20} more (convert.json lists them all)")
    for failure in report.failed[:10]:
        err_console.print(f"[red]failed:[/] {escape(failure['clip'])}: {escape(failure['error'])}", soft_wrap=True)
    if report.failed:
        err_console.print(
            f"[bold red]Error:[/] {len(report.failed)} clip(s) were not converted (listed in convert.json)\n"
            "[bold]Hint:[/] fix the source files and run the same command again: finished clips are kept",
            soft_wrap=True,
        )
    else:
        console.print(f"[dim]next:[/] refvps validate {escape(str(report.root))}")


@click.command("export-submission")
@click.argument("predictions", type=click.Path(path_type=Path))
@click.option(
    "--dataset",
    "-d",
    "dataset_root",
    required=True,
    type=click.Path(path_type=Path),
    help="The converted split the predictions are for (refvps convert ... --split valid).",
)
@click.option("--benchmark", required=True, type=click.Choice(["ref-ytvos", "mevis"]), help="Whose server.")
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="The zip to write.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def export_submission(predictions: Path, dataset_root: Path, benchmark: str, out: Path, as_json: bool) -> None:
    """Write the zip the official Ref-YouTube-VOS or MeViS server scores from PREDICTIONS.

    Ref-YouTube-VOS: Annotations/<video>/<exp_id>/<frame>.png; MeViS: <video>/<exp_id>/<frame>.png;
    every frame of every expression of the split, nothing else, 0/255 PNGs. Missing masks are an
    error, listed by clip; predictions for other clips are left out and counted.
    """
    from refvps.predictions.submission import export_submission as run_export

    with RichProgress(disable=as_json, transient=True, labels={"clips": "writing"}) as progress:
        report = run_export(predictions, dataset_root, benchmark, out, progress=progress)
    summary = {
        "zip": str(report.path),
        "benchmark": report.benchmark,
        "videos": report.videos,
        "expressions": report.expressions,
        "masks": report.masks,
        "left_out": report.left_out,
    }
    if as_json:
        print_json(summary)
        return
    console.print(
        f"[green]{escape(str(report.path))}[/]: {report.videos} videos, {report.expressions} expressions, "
        f"{report.masks} masks for the {benchmark} server",
        soft_wrap=True,
    )
