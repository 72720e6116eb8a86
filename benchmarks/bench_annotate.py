"""``refvps annotate``: the fallback segmenter's quality and latency, and memory and speed on a long clip.

    git show b14dd27:refvps/annotate/segmenters/classic.py > /tmp/classic_before.py   # the GrabCut segmenter
    python benchmarks/bench_annotate.py --before /tmp/classic_before.py   # 408 frames at 1920x1080
    python benchmarks/bench_annotate.py --frames 48 --size 854x480 --parts quality latency   # quicker

``--parts`` picks what runs (default: all):

``quality``: the classic (fallback) segmenter on the synthetic benchmark (``refvps synth``, 12 clips):
    one click at the target's centre (its point deepest inside) on the middle frame, then propagation
    both ways; the clip's J is the mean ignore-aware IoU over its frames; the median and mean over
    the clips, for this segmenter and, with ``--before``, the one it replaced (same run, same clicks).
    ``--seeds`` adds other synthetic benchmarks (default: seed 0, the default benchmark).
``latency``: click-to-mask time on real 720p frames (``../shared/footage`` or ``--footage``, the
    frames of ``tests/fixtures/annotate_footage``): a first click at the target's centre on a freshly
    opened frame, then a corrective click at the deepest missed point; median of ``--repeats`` runs.
``long``: a long clip, each measurement in a fresh process so peak memory is its own:

(a) opening the clip in an annotation session (classic segmenter): time, peak RSS;
(b) the classical segmenter: one click on the middle frame, then propagation both ways through the
    whole clip with autosave of every frame: frames/s, peak RSS, and the size of the working layers
    held in memory (compressed) next to what raw uint8 layers would take; then Save (every mask
    written, the clip validated) and opening the saved clip afresh (every mask imported);
(c) SAM2 (Meta's package) frame memory at ``init_state``: SAM2's own loader (the whole clip as
    1024x1024 float tensors, ``offload_video_to_cpu=True``) against refvps's lazy loader, with a
    tiny random model of image size 1024 (the frame tensors do not depend on the model's size);
    peak RSS after ``init_state`` and after a click. Skipped when ``sam2`` is not installed.

Results go to ``benchmarks/results/annotate.md`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the footage lookup the tests use (tests/footage.py)
FIXTURES = REPO / "tests" / "fixtures" / "annotate_footage"

from tests.footage import find_footage, footage_candidates  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_clip(root: Path, frames: int, width: int, height: int) -> None:
    """A long clip: a slowly deforming orange blob drifting over a smooth, lightly textured background."""
    import cv2

    from refvps.dataset import ClipMeta, DatasetWriter

    rng = np.random.default_rng(0)
    small = rng.integers(60, 160, (height // 16, width // 16, 3)).astype(np.uint8)
    background = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:height, 0:width]
    writer = DatasetWriter(root, jpeg_quality=90)
    for t in range(frames):
        cx = width * (0.25 + 0.5 * t / max(1, frames - 1))
        cy = height * (0.5 + 0.1 * np.sin(t / 20))
        rx, ry = width * (0.08 + 0.02 * np.sin(t / 15)), height * 0.12
        inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
        frame = background.copy()
        frame[inside] = (215, 105, 40)
        writer.write_frame("long", f"{t:05d}", frame)
    names = [f"{t:05d}" for t in range(frames)]
    writer.update_expressions("long", [], frames=names)
    writer.update_meta(
        ClipMeta("long", concept="ice_cream_melting", category="temporal_object_changes", width=width, height=height)
    )


def child_session(root: str) -> dict:
    from refvps.annotate.segmenters.classic import ClassicSegmenter
    from refvps.annotate.session import ClipSession
    from refvps.annotate.store import session_dir
    from refvps.dataset import Dataset

    clip = Dataset(root).clip("long")
    start = time.perf_counter()
    session = ClipSession(root, clip, ClassicSegmenter())
    opened = time.perf_counter() - start
    rss_open = peak_rss_mb()
    mid = session.middle
    h, w = session.shape
    start = time.perf_counter()
    session.set_points(mid, [[w * 0.5, h * 0.5]], [1])
    click = time.perf_counter() - start
    start = time.perf_counter()
    job = session.start_propagation(mid, "both")
    session.wait()
    seconds = time.perf_counter() - start
    assert job.state == "done", job.error
    held = sum(len(f.blob or b"") for f in session.state.frames)
    start = time.perf_counter()
    session.save(allow_unlabelled=False)  # what the page's Save does: every mask, then validation
    save_s = time.perf_counter() - start
    start = time.perf_counter()
    session.validate()
    validate_s = time.perf_counter() - start
    session.close()
    # Opening a clip whose masks are saved but that has no session yet imports every mask.
    shutil.rmtree(session_dir(root, "long"))
    start = time.perf_counter()
    ClipSession(root, Dataset(root).clip("long"), ClassicSegmenter()).close()
    reopen_s = time.perf_counter() - start
    return {
        "open_s": opened,
        "rss_open_mb": rss_open,
        "click_s": click,
        "propagate_s": seconds,
        "frames": session.num_frames,
        "frames_per_s": job.done / seconds,
        "rss_peak_mb": peak_rss_mb(),
        "layers_held_mb": held / 2**20,
        "layers_raw_mb": session.num_frames * h * w / 2**20,
        "save_s": save_s,
        "validate_s": validate_s,
        "reopen_s": reopen_s,
    }


def child_sam2(root: str, lazy: bool) -> dict:
    import torch

    from refvps.annotate.frames import FrameSource
    from refvps.annotate.segmenters.sam2_meta import Sam2Session
    from refvps.annotate.segmenters.tiny import tiny_sam2_segmenter
    from refvps.dataset import Dataset

    torch.set_num_threads(2)
    segmenter = tiny_sam2_segmenter(image_size=1024)
    clip = Dataset(root).clip("long")
    base = peak_rss_mb()
    start = time.perf_counter()
    if lazy:
        session = Sam2Session(FrameSource([clip.frame_path(n) for n in clip.frame_names]), segmenter)
        state = session.state
    else:
        state = segmenter.predictor.init_state(str(clip.frames_dir), offload_video_to_cpu=True)
    init_s = time.perf_counter() - start
    rss_init = peak_rss_mb()
    mid = len(clip.frame_names) // 2
    h, w = state["video_height"], state["video_width"]
    segmenter.predictor.add_new_points_or_box(
        state, mid, 1, points=np.array([[w / 2, h / 2]], np.float32), labels=np.array([1], np.int32)
    )
    return {"init_s": init_s, "rss_before_mb": base, "rss_init_mb": rss_init, "rss_click_mb": peak_rss_mb()}


def run_child(kind: str, root: Path, *extra: str) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(root), *extra], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def load_segmenter_class(path: Path | None):
    """``ClassicSegmenter`` of this tree, or of another version of classic.py (``--before``)."""
    if path is None:
        from refvps.annotate.segmenters.classic import ClassicSegmenter

        return ClassicSegmenter
    spec = importlib.util.spec_from_file_location("classic_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ClassicSegmenter


def deepest_point(mask: np.ndarray) -> list[float]:
    import cv2

    depth = cv2.distanceTransform(np.pad(mask.astype(np.uint8), 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(depth.argmax(), depth.shape)
    return [float(x), float(y)]


def ignore_aware_iou(pred: np.ndarray, label: np.ndarray) -> float:
    """The scorer's J of ``pred`` against target 1 of ``label``, Ignore (255) left out."""
    from refvps.dataset.palette import IGNORE_INDEX
    from refvps.scoring.metrics import jaccard

    return float(jaccard(label == 1, pred, void=label == IGNORE_INDEX))


def clip_j(segmenter_class, clip) -> float | None:
    """Mean J over the clip of one centre click on the middle frame and propagation both ways."""
    from refvps.annotate.frames import FrameSource

    labels = clip.label_stack()
    middle = len(clip) // 2
    if not (labels[middle] == 1).any():
        return None
    session = segmenter_class().open(FrameSource([clip.frame_path(n) for n in clip.frame_names]))
    scores = {
        middle: ignore_aware_iou(session.add_points(middle, [deepest_point(labels[middle] == 1)], [1]), labels[middle])
    }
    for reverse in (False, True):
        for index, mask in session.propagate(middle, reverse):
            scores[index] = ignore_aware_iou(mask, labels[index])
    return float(np.mean(list(scores.values())))


def measure_quality(seeds: list[int], before: Path | None, workdir: Path) -> list[dict]:
    from refvps.dataset import Dataset
    from refvps.synth import generate_benchmark

    rows = []
    for seed in seeds:
        dataset = Dataset(generate_benchmark(workdir / f"synth-{seed}", seed=seed))
        for name, path in [("after", None)] + ([("before", before)] if before else []):
            segmenter_class = load_segmenter_class(path)
            start = time.perf_counter()
            scores = [j for j in (clip_j(segmenter_class, clip) for clip in dataset) if j is not None]
            rows.append(
                {
                    "seed": seed,
                    "segmenter": name,
                    "clips": len(scores),
                    "median": float(np.median(scores)),
                    "mean": float(np.mean(scores)),
                    "seconds": time.perf_counter() - start,
                }
            )
            print(rows[-1], file=sys.stderr)
    return rows


def footage_frame(footage: Path, video: str, index: int) -> np.ndarray:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(footage / video))
    try:
        width, height = next(reader)["size"]
        for number, raw in enumerate(reader):
            if number == index:
                return np.frombuffer(raw, np.uint8).reshape(height, width, 3).copy()
    finally:
        reader.close()
    raise ValueError(f"{video} has no frame {index}")


class OneFrame:
    def __init__(self, rgb):
        self.rgb, self.shape = rgb, rgb.shape[:2]

    def __len__(self):
        return 1

    def __getitem__(self, index):
        return self.rgb


def measure_latency(footage: Path, before: Path | None, repeats: int) -> list[dict]:
    import cv2

    rows = []
    for fixture in ("cups_000_middle_cup", "coffee_120_mug"):
        data = json.loads((FIXTURES / f"{fixture}.json").read_text())
        rgb = footage_frame(footage, data["video"], data["frame"])
        target = np.zeros(rgb.shape[:2], np.uint8)
        for polygon in data["polygons"]:
            cv2.fillPoly(target, [np.asarray(polygon, np.int32)], 1)
        target = target.astype(bool)
        for name, path in [("after", None)] + ([("before", before)] if before else []):
            segmenter_class = load_segmenter_class(path)
            first, second = [], []
            for _ in range(repeats):
                session = segmenter_class().open(OneFrame(rgb))
                click = deepest_point(target)
                start = time.perf_counter()
                mask = session.add_points(0, [click], [1])
                first.append(time.perf_counter() - start)
                missed = target & ~mask
                correction = deepest_point(missed) if missed.any() else click
                start = time.perf_counter()
                session.add_points(0, [click, correction], [1, 1])
                second.append(time.perf_counter() - start)
            rows.append(
                {
                    "frame": f"{data['video']} frame {data['frame']} ({rgb.shape[1]}x{rgb.shape[0]})",
                    "segmenter": name,
                    "first": float(np.median(first)),
                    "second": float(np.median(second)),
                }
            )
            print(rows[-1], file=sys.stderr)
    return rows


def quality_lines(rows: list[dict]) -> list[str]:
    lines = [
        "### The fallback segmenter on the synthetic benchmark",
        "",
        "One click at the target's centre on the middle frame, then propagation both ways; J of a clip = "
        "mean ignore-aware IoU over its frames (the goal: median >= 0.65 on the default benchmark, seed 0).",
        "",
        "| synthetic benchmark | segmenter | clips | median J | mean J | time |",
        "|---|---|---|---|---|---|",
    ]
    names = {"after": "classic (this version)", "before": "classic before (GrabCut, `--before`)"}
    for row in rows:
        lines.append(
            f"| seed {row['seed']} | {names[row['segmenter']]} | {row['clips']} | {row['median']:.3f} | "
            f"{row['mean']:.3f} | {row['seconds']:.1f} s |"
        )
    return lines


def latency_lines(rows: list[dict]) -> list[str]:
    lines = [
        "### Click-to-mask latency on real 720p frames",
        "",
        "Median over the repeats; the first click includes preparing the frame (edges, colours).",
        "",
        "| frame | segmenter | first click | corrective click |",
        "|---|---|---|---|",
    ]
    names = {"after": "classic (this version)", "before": "classic before (GrabCut)"}
    for row in rows:
        lines.append(f"| {row['frame']} | {names[row['segmenter']]} | {row['first']:.2f} s | {row['second']:.2f} s |")
    return lines


def long_clip(frames: int, width: int, height: int) -> tuple[dict, dict | None, dict | None]:
    with tempfile.TemporaryDirectory(prefix="bench-annotate-") as tmp:
        root = Path(tmp) / "ds"
        start = time.perf_counter()
        make_clip(root, frames, width, height)
        print(f"clip written in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        session = run_child("session", root)
        print("session", session, file=sys.stderr)
        try:
            import sam2  # noqa: F401

            sam2_stock = run_child("sam2-stock", root)
            sam2_lazy = run_child("sam2-lazy", root)
        except ImportError:
            sam2_stock = sam2_lazy = None
        print("sam2", sam2_stock, sam2_lazy, file=sys.stderr)
    return session, sam2_stock, sam2_lazy


def long_clip_lines(args, session: dict, sam2_stock: dict | None, sam2_lazy: dict | None) -> list[str]:
    width, height = (int(v) for v in args.size.lower().split("x"))
    lines = [
        "### A long clip",
        "",
        f"One clip of {args.frames} frames at {width} x {height} ({args.frames / 24:.1f} s at 24 fps), CPU only.",
        "",
        "| what | time | peak RSS |",
        "|---|---|---|",
        f"| open the clip in a session (classic) | {session['open_s']:.2f} s | {session['rss_open_mb']:.0f} MB |",
        f"| click on the middle frame | {session['click_s']:.2f} s | |",
        f"| propagate both ways through {session['frames']} frames, autosaving each | "
        f"{session['propagate_s']:.1f} s ({session['frames_per_s']:.1f} frames/s) | {session['rss_peak_mb']:.0f} MB |",
        f"| save (one transaction): write {session['frames']} masks, then validate the clip | "
        f"{session['save_s']:.1f} s (validation alone {session['validate_s']:.1f} s) | |",
        f"| open the clip again without a session (imports the saved masks) | {session['reopen_s']:.1f} s | |",
        "",
        f"Working layers held in memory after propagation: {session['layers_held_mb']:.1f} MB compressed, "
        f"against {session['layers_raw_mb']:.0f} MB as raw uint8 arrays.",
    ]
    if sam2_stock and sam2_lazy:
        lines += [
            "",
            "SAM2 (`sam2` package, tiny random model with image size 1024, so the frame tensors are the "
            "real model's size), memory of the clip's frames:",
            "",
            "| loader | init_state time | RSS after init_state | RSS after a click |",
            "|---|---|---|---|",
            f"| SAM2's own (`offload_video_to_cpu=True`) | {sam2_stock['init_s']:.1f} s | "
            f"{sam2_stock['rss_init_mb']:.0f} MB | {sam2_stock['rss_click_mb']:.0f} MB |",
            f"| refvps lazy loader (8 frames cached) | {sam2_lazy['init_s']:.1f} s | "
            f"{sam2_lazy['rss_init_mb']:.0f} MB | {sam2_lazy['rss_click_mb']:.0f} MB |",
            "",
            f"(RSS before loading frames, model and libraries only: {sam2_lazy['rss_before_mb']:.0f} MB.) "
            "On a GPU without `offload_video_to_cpu`, SAM2's loader puts the same tensors in GPU memory.",
        ]
    return lines


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--parts", nargs="+", choices=["quality", "latency", "long"], default=["quality", "latency", "long"]
    )
    parser.add_argument("--before", type=Path, help="another version of segmenters/classic.py to compare with")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="synthetic benchmarks to score on")
    parser.add_argument("--footage", type=Path, default=find_footage() or footage_candidates()[-1])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--frames", type=int, default=408)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "annotate.md")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.child:
        kind, root = args.child[0], args.child[1]
        out = child_session(root) if kind == "session" else child_sam2(root, lazy=(kind == "sam2-lazy"))
        print(json.dumps(out))
        return
    command = " ".join(["python benchmarks/bench_annotate.py", *sys.argv[1:]])
    machine = f"{platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()})"
    lines = ["# Annotation tool (bench_annotate.py)", "", f"`{command}` on {machine}, {dt.date.today().isoformat()}."]
    if "quality" in args.parts:
        with tempfile.TemporaryDirectory(prefix="bench-annotate-") as tmp:
            lines += ["", *quality_lines(measure_quality(args.seeds, args.before, Path(tmp)))]
    if "latency" in args.parts:
        if args.footage.is_dir():
            lines += ["", *latency_lines(measure_latency(args.footage, args.before, args.repeats))]
        else:
            lines += ["", f"(latency on real frames skipped: no footage at {args.footage})"]
    if "long" in args.parts:
        width, height = (int(v) for v in args.size.lower().split("x"))
        lines += ["", *long_clip_lines(args, *long_clip(args.frames, width, height))]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
