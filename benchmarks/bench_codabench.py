"""Cost of hosting on Codabench: building a bundle, and the scoring program's time and memory.

    python benchmarks/bench_codabench.py                 # 2 x 3 clips x 48 frames at 1024x576
    python benchmarks/bench_codabench.py --frames 24     # quicker

What is measured (each scoring run is its own process, forked from a small launcher so that its peak memory is its own):

(a) ``build_bundle`` on a synthetic dataset with a dev and a test split (no sample submission);
(b) ``refvps codabench-score`` on the dev split's oracle, against ``refvps evaluate`` on the same
    predictions and the full dataset: the submission checks add this much time and memory;
(c) ``refvps codabench-score`` on malformed submissions, against (b)'s peak memory: a 4 GB sparse
    mask file, and a nested zip that inflates to 1 GiB. Both must be refused without reading them.

Results go to ``benchmarks/results/codabench.md`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import datetime
from pathlib import Path

from baselines.reference import run_reference
from refvps.codabench import BundleOptions, CompetitionSettings, build_bundle
from refvps.synth import generate_benchmark
from tests.codabench.worker import measured_run  # peak memory of the command alone, not of this process


def measure(argv: list[str]) -> tuple[float, float, int]:
    """(wall seconds, peak resident MiB, exit status) of one command."""
    start = time.perf_counter()
    code, peak = measured_run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start, peak, code


def score(run: Path, bundle: Path) -> tuple[float, float, int]:
    argv = [sys.executable, "-m", "refvps", "codabench-score", str(run / "input"), str(run / "output")]
    return measure(argv + ["--config", str(bundle / "scoring_program" / "config.json")])


def prepare(work: Path, bundle: Path, name: str, fill) -> Path:
    run = work / name
    shutil.copytree(bundle / "reference_data_dev", run / "input" / "ref")
    (run / "input" / "res").mkdir()
    fill(run / "input" / "res")
    return run


def sparse(res: Path, oracle: Path) -> None:
    shutil.copytree(oracle, res, dirs_exist_ok=True)
    with open(next(res.glob("*/0/00000.png")), "wb") as handle:
        handle.truncate(4 * 10**9)


def bomb(res: Path) -> None:
    with zipfile.ZipFile(res / "predictions.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("clip/0/00000.png", "w", force_zip64=True) as entry:
            for _ in range(1024):
                entry.write(bytes(1 << 20))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "codabench.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for split, seed in (("dev", 1), ("test", 2)):
            generate_benchmark(work / "data" / split, clips=3, seed=seed, size=(1024, 576), frames=args.frames)
        settings = CompetitionSettings("bench", datetime(2030, 1, 1), datetime(2030, 2, 1), docker_image="x/y:1")
        start = time.perf_counter()
        build_bundle(work / "data", work / "bundle.zip", settings, BundleOptions(sample=False))
        build_s = time.perf_counter() - start
        with zipfile.ZipFile(work / "bundle.zip") as archive:
            archive.extractall(work / "bundle")
        oracle = run_reference("oracle", work / "data" / "dev", work / "oracle").out
        good = score(
            prepare(work, work / "bundle", "good", lambda res: shutil.copytree(oracle, res, dirs_exist_ok=True)),
            work / "bundle",
        )
        evaluate = measure(
            [
                sys.executable,
                "-m",
                "refvps",
                "evaluate",
                str(oracle),
                "--dataset",
                str(work / "data" / "dev"),
                "--output",
                str(work / "r.json"),
            ]
        )
        huge = score(prepare(work, work / "bundle", "sparse", lambda res: sparse(res, oracle)), work / "bundle")
        zipped = score(prepare(work, work / "bundle", "bomb", bomb), work / "bundle")
        masks = json.loads((work / "good" / "output" / "results.json").read_text())["summary"]["n_frames"]
    rows = [
        ("(a) build the bundle", build_s, None, None, "2 x 3 clips, no sample submission"),
        ("(b) codabench-score, oracle", good[0], good[1], good[2], f"{masks} masks with F"),
        ("(b) refvps evaluate, oracle", evaluate[0], evaluate[1], evaluate[2], "the same predictions"),
        ("(c) 4 GB sparse mask file", huge[0], huge[1], huge[2], "refused"),
        ("(c) nested zip inflating to 1 GiB", zipped[0], zipped[1], zipped[2], "refused"),
    ]
    lines = [
        "## Codabench hosting benchmark (`benchmarks/bench_codabench.py`)",
        "",
        f"- command: `python benchmarks/bench_codabench.py --frames {args.frames}`",
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs; Python {platform.python_version()}",
        f"- date: {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}",
        "",
        "| run | wall (s) | peak memory (MiB) | exit | note |",
        "|:---|---:|---:|---:|:---|",
    ]
    for name, wall, rss, code, note in rows:
        lines.append(
            f"| {name} | {wall:.2f} | {'' if rss is None else f'{rss:.0f}'} | {'' if code is None else code} | {note} |"
        )
    lines += [
        "",
        f"codabench-score / evaluate: {good[0] / evaluate[0]:.2f}x the time, {good[1] / evaluate[1]:.2f}x the memory; "
        f"refused submissions: {huge[1] / good[1]:.2f}x and {zipped[1] / good[1]:.2f}x the memory of the good one.",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
