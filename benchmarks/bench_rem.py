"""Speed and memory of REM: inference on one clip with four expressions, and one training step.

On a GPU (the issue's measurement)::

    python benchmarks/bench_rem.py --config rem-ms --device cuda            # bf16 and fp32, random weights

full-size ``rem-ms`` with random weights (built from its config, no download): inference on one
72-frame clip at 512 x 512 with 4 expressions — the video encoded once, the denoiser run for the
4 expressions, decoded, thresholded and resized back to 1024 x 576 frames — and one training step
(AdamW, all weights, T = 8, batch 1). Reported: frame-expressions per second, seconds, peak memory;
bf16 against the same code in fp32. The paper: 7.1 frames/s and 41.8 GB on an A100 (32-frame
clips, Table C); the goal on one H100: >= 30 frame-expressions/s at <= 40 GB.

On a CPU::

    python benchmarks/bench_rem.py --config rem-tiny --device cpu --frames 24 --frame-size 256x144

``--end-to-end`` also times ``predict_dataset`` on a clip written to disk (JPEG decode and PNG
writing included). ``--markdown FILE`` appends the table with the command, machine and date.

Two more measurements, each its own mode:

* ``--build-memory`` — peak resident memory of building each ``--configs`` model with random
  weights on the CPU in ``--dtypes``, each in a fresh subprocess, against the bytes of its weights
  (the floor) and, with ``--reference``, against the float32-then-cast build that refvps did before::

      python benchmarks/bench_rem.py --build-memory --configs rem-ms rem-wan-1.3b --dtypes bf16 --reference

* ``--seams`` — long synthetic clips through ``rem-tiny`` with and without overlapping windows:
  J and TempCon overall, ``|ΔIoU|`` (TempCon's term) at the frame pairs where the set of windows
  that predicts a frame changes and inside windows, and the time::

      python benchmarks/bench_rem.py --seams --clips 6 --clip-frames 96
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rem_model.builder import build_rem, parse_dtype  # noqa: E402
from rem_model.data.transforms import Geometry, frames_tensor, probs_to_frame  # noqa: E402

TEXTS = [
    "the grey smoke rising on the left",
    "smoke coming out of the chimney",
    "the ripples spreading on the water",
    "the flickering orange light",
]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    # CPU: the process's peak resident set (ru_maxrss is in KiB on Linux); it never goes down.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def median_seconds(once, device: torch.device, repeats: int) -> float:
    """Median time of ``repeats`` calls of ``once`` after one warm-up call (kernels, allocator);
    the peak memory counter is reset after the warm-up."""
    once()
    synchronize(device)
    reset_peak(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        once()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def random_frames(count: int, size_hw: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(size_hw[0] // 8 + 1, size_hw[1] // 8 + 1, 3), dtype=np.uint8)
    frames = []
    for t in range(count):
        tile = np.kron(np.roll(base, t, axis=1), np.ones((8, 8, 1), np.uint8))[: size_hw[0], : size_hw[1]]
        frames.append(tile)
    return frames


@torch.no_grad()
def time_inference(model, frames: list[np.ndarray], texts: list[str], expression_batch: int, repeats: int) -> dict:
    """One clip of len(frames) frames as one window: encode once, denoise per expression, decode."""
    device = model.device
    geometry = Geometry.fit(frames[0].shape[:2], model.config.resolution, "squash", model.config.resample)

    def once() -> None:
        video = frames_tensor(frames, geometry).unsqueeze(0).to(device)
        z1 = model.encode_video(video, torch.Generator().manual_seed(0))
        text = model.encode_text(texts)
        for first in range(0, len(texts), expression_batch):
            n = min(expression_batch, len(texts) - first)
            probs = model.predict_probs(z1.expand(n, *z1.shape[1:]), text[first : first + n])
            masks = probs_to_frame(probs, geometry) > 0.5
            masks.cpu()

    seconds = median_seconds(once, device, repeats)
    work = len(frames) * len(texts)
    return {"seconds": seconds, "frame_expressions_per_s": work / seconds, "peak_gb": peak_gb(device)}


def time_training_step(model, frames: int, dtype: torch.dtype, repeats: int, checkpointing: bool) -> dict:
    """One AdamW step on all denoiser weights, batch 1, ``frames`` frames; bf16 = autocast, fp32 weights."""
    device = model.device
    model.configure_trainable(2)
    if checkpointing:
        model.enable_gradient_checkpointing()
    model.denoiser.train()
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-6, weight_decay=1e-5)
    h, w = model.config.resolution
    video = torch.rand(1, frames, 3, h, w, device=device) * 2 - 1
    masks = (torch.rand(1, frames, h, w, device=device) > 0.5).float()
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)

    def once() -> float:
        with autocast:
            loss = model.loss(video, masks, TEXTS[:1], generator=torch.Generator().manual_seed(0))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.trainable_parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    seconds = median_seconds(once, device, repeats)
    return {"seconds": seconds, "frames_per_s": frames / seconds, "peak_gb": peak_gb(device)}


def time_end_to_end(model, frames: list[np.ndarray], texts: list[str], window: int, expression_batch: int) -> dict:
    """predict_dataset on one clip written to disk: JPEG decode and PNG writing included."""
    from refvps.dataset.format import ClipMeta, DatasetWriter, Expression
    from rem_model.inference import InferenceOptions, predict_dataset

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        labels = [np.zeros(f.shape[:2], np.uint8) for f in frames]
        expressions = [Expression(str(i), t, 1) for i, t in enumerate(texts)]
        DatasetWriter(root).write_clip("bench", frames, labels, expressions, ClipMeta("bench"))
        options = InferenceOptions(window=window, stride=window, expression_batch=expression_batch)
        predict_dataset(model, root, Path(tmp) / "warm", options)
        summary = predict_dataset(model, root, Path(tmp) / "pred", options)
    return {"seconds": summary.seconds, "frame_expressions_per_s": summary.frame_expressions_per_s}


# ------------------------------------------------------------------------------------ build memory
def measure_build(config: str, dtype: str, reference: bool) -> dict:
    """In this (fresh) process: build ``config`` with random weights on the CPU and report the peak
    resident set, before and after, and the bytes of the weights. ``reference``: build in float32
    and cast afterwards (what refvps did before weights were made in their dtype)."""
    import gc

    from rem_model.model import cast

    import_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    started = time.perf_counter()
    if reference:
        model = build_rem(config, random_init=True)
        cast(model, None, parse_dtype(dtype))
    else:
        model = build_rem(config, random_init=True, dtype=dtype, device="cpu")
    seconds = time.perf_counter() - started
    gc.collect()
    weights = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    return {
        "config": config,
        "dtype": dtype,
        "how": "fp32 then cast (before)" if reference else "in its dtype",
        "weights_gb": weights / 1e9,
        "import_peak_gb": import_rss,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        "seconds": seconds,
    }


def build_memory(configs: list[str], dtypes: list[str], reference: bool) -> list[dict]:
    """One fresh subprocess per build, so that each peak is its own."""
    import subprocess

    rows = []
    for config in configs:
        for dtype in dtypes:
            for ref in [False, True] if reference else [False]:
                command = [sys.executable, __file__, "--measure-build", config, dtype] + (
                    ["--reference"] if ref else []
                )
                done = subprocess.run(command, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    rows.append({"config": config, "dtype": dtype, "error": done.stderr.strip().splitlines()[-1:]})
                else:
                    rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(json.dumps(rows[-1]), flush=True)
    return rows


# ------------------------------------------------------------------------------------ seams
SEAM_MODES = [  # (label, stride as a fraction of the window, blend)
    ("no overlap (before; the authors')", 1.0, "first"),
    ("overlap 1/4, mean probabilities", 0.75, "probs"),
    ("overlap 1/2, mean probabilities", 0.5, "probs"),
    ("overlap 1/4, mean latents", 0.75, "latents"),
    ("overlap 1/2, mean latents", 0.5, "latents"),
]


def seam_pairs(length: int, window: int, stride: int) -> set[int]:
    """Frames t whose pair (t, t + 1) crosses a change of the windows that predict the frame."""
    from rem_model.inference import window_starts

    starts = window_starts(length, window, stride)
    covering = [frozenset(k for k, s in enumerate(starts) if s <= t < s + window) for t in range(length)]
    return {t for t in range(length - 1) if covering[t] != covering[t + 1]}


def per_frame_ious(pred_dir: Path, clip, expression) -> np.ndarray:
    from PIL import Image

    from refvps.dataset.palette import IGNORE_INDEX
    from refvps.scoring.metrics import jaccard

    labels = clip.label_stack()
    pred = np.stack(
        [np.asarray(Image.open(pred_dir / clip.id / expression.exp_id / f"{n}.png")) > 0 for n in clip.frame_names]
    )
    return np.asarray(jaccard(labels == expression.obj_id, pred, labels == IGNORE_INDEX), dtype=float)


def measure_seams(data: Path, work: Path, model, label: str, fraction: float, blend: str) -> dict:
    from refvps.dataset.format import Dataset
    from rem_model.inference import InferenceOptions, predict_dataset, window_starts

    window = model.config.window
    stride = max(1, round(window * fraction))
    out = work / f"{blend}-{stride}"
    summary = predict_dataset(model, data, out, InferenceOptions(window=window, stride=stride, blend=blend))
    seam, inside, old, jays, tempcons = [], [], [], [], []
    for clip in Dataset(data):
        seams = seam_pairs(len(clip.frame_names), window, stride)
        # Where windows without overlap hand over: the same frame pairs for every mode.
        handovers = seam_pairs(len(clip.frame_names), window, window)
        for expression in clip.expressions:
            ious = per_frame_ious(out, clip, expression)
            steps = np.abs(np.diff(ious))
            seam += [steps[t] for t in seams]
            inside += [steps[t] for t in range(len(steps)) if t not in seams]
            old += [steps[t] for t in handovers]
            jays.append(ious.mean())
            tempcons.append(100 * steps.mean())
    return {
        "mode": label,
        "stride": stride,
        "blend": blend,
        "J": 100 * float(np.mean(jays)),
        "TempCon": float(np.mean(tempcons)),
        "TempCon_seams": 100 * float(np.mean(seam)),
        "TempCon_inside": 100 * float(np.mean(inside)),
        "TempCon_at_handovers": 100 * float(np.mean(old)),
        "seam_pairs": len(seam),
        "windows": sum(len(window_starts(len(c.frame_names), window, stride)) for c in Dataset(data)),
        "seconds": summary.seconds,
        "frame_expressions": summary.frame_expressions,
    }


def seams(clips: int, frames: int, work: Path) -> list[dict]:
    from refvps.synth import generate_benchmark

    data = generate_benchmark(work / "data", clips=clips, seed=0, frames=frames)
    model = build_rem("rem-tiny")
    rows = []
    for label, fraction, blend in SEAM_MODES:
        rows.append(measure_seams(data, work, model, label, fraction, blend))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="rem-ms")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtypes", nargs="+", default=["bf16", "fp32"])
    parser.add_argument("--frames", type=int, default=72, help="frames of the inference clip (one window)")
    parser.add_argument("--frame-size", default="1024x576", help="WxH of the clip's frames (resized to the model)")
    parser.add_argument("--expressions", type=int, default=4)
    parser.add_argument("--expression-batch", type=int, default=4)
    parser.add_argument("--train-frames", type=int, default=8)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--end-to-end", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", type=Path, help="write the rows as JSON")
    parser.add_argument("--markdown", type=Path, help="append a Markdown table to this file")
    parser.add_argument("--build-memory", action="store_true", help="peak RSS of building --configs (see above)")
    parser.add_argument("--configs", nargs="+", default=["rem-ms", "rem-wan-1.3b"])
    parser.add_argument("--reference", action="store_true", help="also the float32-then-cast build")
    parser.add_argument("--measure-build", nargs=2, metavar=("CONFIG", "DTYPE"), help=argparse.SUPPRESS)
    parser.add_argument("--seams", action="store_true", help="window seams on long synthetic clips (see above)")
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--clip-frames", type=int, default=96)
    parser.add_argument("--work", type=Path, default=None, help="--seams: working folder (default: a temporary one)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.measure_build:
        print(json.dumps(measure_build(*args.measure_build, reference=args.reference)))
        return 0
    if args.build_memory:
        rows = build_memory(args.configs, args.dtypes, args.reference)
    elif args.seams:
        with tempfile.TemporaryDirectory() as tmp:
            rows = seams(args.clips, args.clip_frames, args.work or Path(tmp))
    else:
        rows = speed(args)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    if args.markdown and not (args.build_memory or args.seams):
        append_markdown(args.markdown, rows, args, argv)
    return 0


def speed(args) -> list[dict]:
    """Inference (and a training step) of ``--config`` in each of ``--dtypes``."""
    device = torch.device(args.device)
    width, height = (int(v) for v in args.frame_size.lower().split("x"))
    frames = random_frames(args.frames, (height, width))
    texts = (TEXTS * ((args.expressions + len(TEXTS) - 1) // len(TEXTS)))[: args.expressions]
    rows = []
    for name in args.dtypes:
        dtype = parse_dtype(name)
        model = build_rem(args.config, random_init=True, device=device, dtype=dtype)
        row = {"config": args.config, "dtype": name, "device": machine(device)}
        inference = time_inference(model, frames, texts, args.expression_batch, args.repeats)
        row.update({f"infer_{k}": v for k, v in inference.items()})
        if args.end_to_end:
            e2e = time_end_to_end(model, frames, texts, args.frames, args.expression_batch)
            row.update({f"e2e_{k}": v for k, v in e2e.items()})
        del model
        if not args.skip_training:
            train_model = build_rem(args.config, random_init=True, device=device, frozen_dtype=dtype)
            step = time_training_step(
                train_model, args.train_frames, dtype, max(1, args.repeats - 1), args.gradient_checkpointing
            )
            row.update({f"train_{k}": v for k, v in step.items()})
            del train_model
        if device.type == "cuda":
            torch.cuda.empty_cache()
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def append_markdown(path: Path, rows: list[dict], args, argv) -> None:
    command = "python benchmarks/bench_rem.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        "",
        f"### {args.config} on {rows[0]['device']} ({dt.date.today().isoformat()})",
        "",
        f"`{command}`",
        "",
        f"Inference: one {args.frames}-frame clip ({args.frame_size} frames) x {args.expressions} expressions, "
        f"one window, video encoded once. Training: one AdamW step, batch 1, T = {args.train_frames}.",
        "",
        "| dtype | inference s | frame-expr/s | inference peak GB | train step s | train peak GB |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['dtype']} | {row['infer_seconds']:.2f} | {row['infer_frame_expressions_per_s']:.1f} | "
            f"{row['infer_peak_gb']:.2f} | {row.get('train_seconds', float('nan')):.2f} | {row.get('train_peak_gb', float('nan')):.2f} |"
        )
    if any("e2e_seconds" in r for r in rows):
        lines.append("")
        lines.append(
            "End to end (predict_dataset, JPEG decode + PNG writing): "
            + ", ".join(
                f"{r['dtype']} {r['e2e_frame_expressions_per_s']:.1f} frame-expr/s" for r in rows if "e2e_seconds" in r
            )
        )
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
