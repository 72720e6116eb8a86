"""Speed of the synthetic benchmark generator (``refvps synth``).

    python benchmarks/bench_synth.py            # default size, plus a per-kind sample at Ref-VPS scale
    python benchmarks/bench_synth.py --small    # default size only

What is measured:

(a) the default benchmark (12 clips x 24 frames, 256x144) end to end with ``generate_benchmark``:
    render, JPEG + palette-PNG writes, JSON index; best and median of ``--repeats`` runs, with 1 and
    2 worker processes;
(b) at Ref-VPS scale (1024x576), one clip of every process kind, ``--frames`` frames each: seconds per
    frame to render (``ClipRenderer``) and to render + write (``write_clip``), per kind; from their
    mean, an estimate of the full ``--preset refvps`` run (111 clips, 72-192 frames, 132 on average).

Results go to ``benchmarks/results/synth.md`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from refvps.dataset.format import DatasetWriter
from refvps.synth import KINDS, REFVPS_SCALE, generate_benchmark
from refvps.synth.generate import write_clip
from refvps.synth.preview import first_clip_of_kind
from refvps.synth.render import ClipRenderer


def time_default(repeats: int, workers: int, workdir: Path) -> list[float]:
    times = []
    for run in range(repeats):
        out = workdir / f"default-{workers}-{run}"
        start = time.perf_counter()
        generate_benchmark(out, clips=12, seed=0, size=(256, 144), frames=24, workers=workers)
        times.append(time.perf_counter() - start)
        shutil.rmtree(out)
    return times


def time_kinds(frames: int, size: tuple[int, int], workdir: Path) -> dict[str, tuple[float, float]]:
    """kind -> (seconds per frame to render, seconds per frame to render and write)."""
    out = {}
    for kind in KINDS:
        spec = first_clip_of_kind(kind, seed=0, size=size, frames=frames)
        start = time.perf_counter()
        for _ in ClipRenderer(spec):
            pass
        render = (time.perf_counter() - start) / frames
        root = workdir / f"kind-{kind}"
        writer = DatasetWriter(root)
        start = time.perf_counter()
        write_clip(writer, spec)
        total = (time.perf_counter() - start) / frames
        shutil.rmtree(root)
        out[kind] = (render, total)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="only the default benchmark")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=24, help="frames per kind at Ref-VPS scale")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "synth.md")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="bench_synth_"))
    try:
        one = time_default(args.repeats, 1, workdir)
        two = time_default(args.repeats, 2, workdir)
        kinds = {} if args.small else time_kinds(args.frames, REFVPS_SCALE["size"], workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    command = "python benchmarks/bench_synth.py" + (" --small" if args.small else "")
    lines = [
        "# Synthetic benchmark generator (`refvps synth`)",
        "",
        f"Command: `{command}` · date {dt.datetime.now().strftime('%Y-%m-%d %H:%M')} · "
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs visible (shared), Python {platform.python_version()}, "
        f"{platform.system()} · {args.repeats} repeats · load average {os.getloadavg()[0]:.1f} at the end "
        "(other jobs share the cores: figures are upper bounds).",
        "",
        "## Default benchmark: 12 clips x 24 frames, 256x144 (288 frames), render + write",
        "",
        "| workers | best (s) | median (s) | frames / s (best) |",
        "|---|---|---|---|",
    ]
    for workers, times in ((1, one), (2, two)):
        lines.append(f"| {workers} | {min(times):.2f} | {statistics.median(times):.2f} | {288 / min(times):.0f} |")
    if kinds:
        width, height = REFVPS_SCALE["size"]
        lines += [
            "",
            f"## Ref-VPS scale: {width}x{height}, one clip per kind, {args.frames} frames each (1 worker)",
            "",
            "| kind | render (ms / frame) | render + write (ms / frame) |",
            "|---|---|---|",
        ]
        for kind, (render, total) in kinds.items():
            lines.append(f"| {kind} | {1000 * render:.0f} | {1000 * total:.0f} |")
        mean_total = statistics.mean(t for _, t in kinds.values())
        low, high = REFVPS_SCALE["frames"]
        n_frames = REFVPS_SCALE["clips"] * (low + high) / 2
        lines += [
            f"| **mean** | {1000 * statistics.mean(r for r, _ in kinds.values()):.0f} | {1000 * mean_total:.0f} |",
            "",
            f"Estimated `refvps synth OUT --preset refvps` ({REFVPS_SCALE['clips']} clips, {low}-{high} frames, "
            f"~{n_frames:.0f} frames): {n_frames * mean_total / 60:.0f} min with 1 worker; `--workers N` divides "
            "it by up to N on N free cores (clips are independent).",
        ]
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
