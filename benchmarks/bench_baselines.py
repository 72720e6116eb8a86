"""Speed and memory of the baselines' own work (not the models'): what refvps adds around a method.

    python benchmarks/bench_baselines.py                              # 2 clips x 48 frames, 1280 x 720
    python benchmarks/bench_baselines.py --clips 4 --frames 96 --markdown benchmarks/results/baselines.md

A dataset of textured moving content at Ref-VPS resolution (1280 x 720, 4 expressions per clip) is
written once; then each is timed on it, single process:

(a) ``motion`` reference baseline: flow + differencing at 320 px, masks resized back and written
    (frames/s, peak resident memory);
(b) ``oracle`` reference baseline: decode labels, write one PNG per (expression, frame) (masks/s);
(c) external-method export: symlinked frames + meta_expressions.json + UNINEXT's valid.json (clips/s);
(d) conversion of a method's output tree (0/255 'L' PNGs as the upstream scripts save them) into
    Ref-VPS predictions with the completeness check (masks/s).

The writer fsyncs every PNG (nothing is lost on a crash), so (b) and (d) depend on the disk.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from baselines.convert import harvest  # noqa: E402
from baselines.export import ExportNames  # noqa: E402
from baselines.external import RunContext, WorkPaths  # noqa: E402
from baselines.reference import run_reference  # noqa: E402
from baselines.uninext import UninextAdapter  # noqa: E402
from refvps.dataset import ClipMeta, Dataset, DatasetWriter, Expression  # noqa: E402
from refvps.predictions import PredictionWriter  # noqa: E402


def make_dataset(root: Path, clips: int, frames: int, width: int, height: int) -> Path:
    rng = np.random.default_rng(0)
    writer = DatasetWriter(root)
    for c in range(clips):
        small = rng.integers(30, 225, (height // 16 + 2, width // 16 + 2, 3)).astype(np.uint8)
        background = np.kron(small, np.ones((16, 16, 1), np.uint8))
        blob = rng.integers(30, 225, (height // 4, width // 6, 3)).astype(np.uint8)
        rgbs, labels = [], []
        for t in range(frames):
            x = (40 + 6 * t) % (width - blob.shape[1])
            rgb = background[:height, 3 * t % 16 : 3 * t % 16 + width].copy()
            rgb[200 : 200 + blob.shape[0], x : x + blob.shape[1]] = blob
            label = np.zeros((height, width), np.uint8)
            label[200 : 200 + blob.shape[0], x : x + blob.shape[1]] = 1
            rgbs.append(rgb)
            labels.append(label)
        expressions = [Expression(str(e), f"expression {e}", 1, "ab"[e // 2]) for e in range(4)]
        writer.write_clip(
            f"clip_{c:03d}", rgbs, labels, expressions, ClipMeta(f"clip_{c:03d}", width=width, height=height)
        )
    return root


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=2)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        root = make_dataset(scratch / "data", args.clips, args.frames, width, height)
        dataset = Dataset(root)
        n_frames = args.clips * args.frames
        n_masks = n_frames * 4

        start = time.perf_counter()
        run_reference("motion", root, scratch / "motion")
        seconds = time.perf_counter() - start
        rows.append(
            (
                "motion baseline (flow at 320 px, 4 expressions written)",
                f"{n_frames / seconds:.1f} frames/s",
                f"{seconds:.1f} s",
                f"{peak_rss_mb():.0f} MB",
            )
        )

        start = time.perf_counter()
        run_reference("oracle", root, scratch / "oracle")
        seconds = time.perf_counter() - start
        rows.append(
            (
                "oracle baseline (labels -> prediction PNGs)",
                f"{n_masks / seconds:.0f} masks/s",
                f"{seconds:.1f} s",
                f"{peak_rss_mb():.0f} MB",
            )
        )

        names = ExportNames.for_clips(dataset.clip_ids)
        paths = WorkPaths(scratch / "work")
        ctx = RunContext(dataset, dataset.clip_ids, names, paths, scratch, sys.executable, scratch / "ckpt", None, [])
        adapter = UninextAdapter()
        adapter.bert = scratch  # the export does not read it; only the link is made
        start = time.perf_counter()
        adapter.prepare(ctx)
        seconds = time.perf_counter() - start
        rows.append(
            (
                "export for UNINEXT (symlinks + 2 JSON files)",
                f"{args.clips / seconds:.0f} clips/s",
                f"{seconds:.2f} s",
                f"{peak_rss_mb():.0f} MB",
            )
        )

        annotations = scratch / "method" / "Annotations"
        for clip in dataset:
            for expression in clip.expressions:
                folder = annotations / clip.id / expression.exp_id
                folder.mkdir(parents=True)
                for frame in clip.frame_names:
                    mask = (clip.read_label(frame) == 1).astype(np.float32)
                    Image.fromarray(mask * 255).convert("L").save(folder / f"{frame}.png")
        start = time.perf_counter()
        result = harvest(dataset, dataset.clip_ids, annotations, names, PredictionWriter(scratch / "converted"))
        seconds = time.perf_counter() - start
        assert len(result.converted) == args.clips
        rows.append(
            (
                "conversion of a method's output tree",
                f"{n_masks / seconds:.0f} masks/s",
                f"{seconds:.1f} s",
                f"{peak_rss_mb():.0f} MB",
            )
        )

    command = "python benchmarks/bench_baselines.py " + " ".join(argv if argv is not None else sys.argv[1:])
    header = (
        f"`{command.strip()}` on {platform.node() or 'this machine'} ({platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}), {dt.date.today().isoformat()}; {args.clips} clips x "
        f"{args.frames} frames at {width} x {height}, 4 expressions each, one process."
    )
    table = ["| step | throughput | time | peak RSS |", "|---|---|---|---|"]
    table += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    text = header + "\n\n" + "\n".join(table) + "\n"
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        with open(args.markdown, "a", encoding="utf-8") as handle:
            handle.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
