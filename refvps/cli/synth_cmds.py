"""``refvps synth``: generate the synthetic Ref-VPS-format benchmark."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from refvps.cli.common import RichProgress, console, print_json
from refvps.errors import UsageError

DEFAULTS = {"clips": 12, "size": "256x144", "frames": "24"}


def _parse(parser, value, param_hint):
    try:
        return parser(value)
    except UsageError as exc:
        raise click.BadParameter(
            f"{exc.message} ({exc.hint})" if exc.hint else exc.message, param_hint=param_hint
        ) from None


@click.command()
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--clips",
    "-n",
    type=click.IntRange(min=1),
    default=None,
    help=f"Number of clips [default: {DEFAULTS['clips']}; 111 with --preset refvps].",
)
@click.option(
    "--seed",
    "-s",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed: the same seed gives byte-identical files.",
)
@click.option(
    "--size",
    default=None,
    metavar="WxH",
    help=f"Frame size [default: {DEFAULTS['size']}; 1024x576 with --preset refvps].",
)
@click.option(
    "--frames",
    "-t",
    default=None,
    metavar="T|LO-HI",
    help=f"Frames per clip, or a range drawn per clip, e.g. 60-400 [default: {DEFAULTS['frames']}; "
    "72-192 with --preset refvps].",
)
@click.option(
    "--preset",
    type=click.Choice(["small", "refvps"]),
    default="small",
    show_default=True,
    help="refvps: Ref-VPS scale (111 clips, 1024x576, 72-192 frames, ~5.5 s each); explicit options win.",
)
@click.option(
    "--workers",
    "-j",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Processes rendering clips in parallel (0 = one per CPU); output is the same.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a summary of what was written as JSON.")
def synth(
    out: Path,
    clips: int | None,
    seed: int,
    size: str | None,
    frames: str | None,
    preset: str,
    workers: int,
    as_json: bool,
) -> None:
    """Generate a synthetic benchmark of dynamic processes in the Ref-VPS format at OUT.

    Each clip shows a target process (smoke, ripples, melting, shatter, light, wave or fire) and a
    distractor of another kind or colour; four expressions (two annotators x two) name the target.
    Labels: 1 target, 255 Ignore on ambiguous fringes, 0 background. No downloads; rerunning the same
    command resumes an interrupted run. This is a stand-in for tests and demos, not Ref-VPS itself.
    """
    from refvps.synth import REFVPS_SCALE, generate_benchmark, parse_frames, parse_size, plan_benchmark
    from refvps.synth.generate import FRAMES_STAGE, check_destination, finished_clips

    if preset == "refvps":
        clips = REFVPS_SCALE["clips"] if clips is None else clips
        size = size or "x".join(map(str, REFVPS_SCALE["size"]))
        frames = frames or "-".join(map(str, REFVPS_SCALE["frames"]))
    clips = DEFAULTS["clips"] if clips is None else clips
    size_wh = _parse(parse_size, size or DEFAULTS["size"], "'--size'")
    frames_spec = _parse(parse_frames, frames or DEFAULTS["frames"], "'--frames'")
    workers = workers or (os.cpu_count() or 1)

    specs = plan_benchmark(clips, seed, size_wh, frames_spec)
    check_destination(out, specs)  # before the bar is drawn, so a refusal is the only output
    total = sum(spec.frames for spec in specs)
    resumed = sum(spec.frames for spec in finished_clips(out, specs))  # frames a previous run finished

    started = time.perf_counter()
    label = f"rendering {clips} clip{'s' if clips != 1 else ''}"
    with RichProgress(disable=as_json, labels={FRAMES_STAGE: label}) as progress:
        generate_benchmark(
            out, clips=clips, seed=seed, size=size_wh, frames=frames_spec, workers=workers, progress=progress
        )
    elapsed = time.perf_counter() - started

    kinds = Counter(spec.kind for spec in specs)
    absent = sum(spec.timing != "full" for spec in specs)
    if as_json:
        print_json(
            {
                "root": str(out),
                "clips": clips,
                "frames": total,
                "seed": seed,
                "size": list(size_wh),
                "seconds": round(elapsed, 2),
                "frames_already_there": resumed,
                "kinds": dict(sorted(kinds.items())),
                "clip_ids": [spec.clip_id for spec in specs],
            }
        )
        return
    table = Table("kind", "clips", "concepts", box=None)
    for kind in sorted(kinds):
        concepts = sorted({spec.concept for spec in specs if spec.kind == kind})
        table.add_row(kind, str(kinds[kind]), ", ".join(concepts))
    console.print(table)
    done_before = f" ({resumed} of its frames were already there)" if resumed else ""
    console.print(
        f"[green]{escape(str(out))}[/]: {clips} clip{'s' if clips != 1 else ''}, {total} frames at "
        f"{size_wh[0]}x{size_wh[1]} (seed {seed}), done in {elapsed:.1f} s{done_before}; in {absent} the target "
        "starts or ends mid-clip"
    )
    console.print(f"[dim]next:[/] refvps validate {escape(str(out))} --refvps   |   refvps stats {escape(str(out))}")
