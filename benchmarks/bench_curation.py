"""Speed and memory of ``refvps trim`` on a phone-sized source video, against ffmpeg doing the export alone.

    python benchmarks/bench_curation.py                          # 720x1280 portrait, 30 fps, 12 s
    python benchmarks/bench_curation.py --size 1080x1920         # full-HD portrait (TikTok-sized)
    python benchmarks/bench_curation.py --markdown benchmarks/results/curation.md

The source is generated (H.264, CRF 18): three event shots of textured moving content inside
letterbox bars, and a 1.5 s end card. Measured, each on the same file:

(a) the stages of ``refvps.curation.trim.trim_video`` for the whole video: probe, shot detection
    (PySceneDetect ContentDetector through PyAV), and per clip crop detection + export of 24 fps JPEG
    frames (quality 95) through ``DatasetWriter``; total wall time and peak resident memory;
(b) the floor for the export alone: the ffmpeg binary (imageio-ffmpeg) writing the same clips at
    24 fps, cropped, as JPEG (``-q:v 2``), given the spans and crops refvps found.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import av  # noqa: E402

from refvps.curation.shots import detect_shots  # noqa: E402
from refvps.curation.trim import TrimParams, trim_video  # noqa: E402
from refvps.curation.video import probe_video  # noqa: E402


def make_source(path: Path, width: int, height: int, fps: int, seconds: float) -> None:
    bar = height // 8
    content_h = height - 2 * bar
    shots = [(0.35, (200, 60, 40)), (0.35, (30, 70, 200)), (0.30, (40, 160, 60))]
    card_frames = int(1.5 * fps)
    event_frames = int(seconds * fps) - card_frames
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 70, (content_h, width, 1), dtype=np.uint8)
    yy, xx = np.mgrid[0:content_h, 0:width].astype(np.float32)
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {"crf": "18", "preset": "veryfast"}
    frame = np.zeros((height, width, 3), np.uint8)

    def emit(img):
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            container.mux(packet)

    for share, colour in shots:
        for i in range(int(share * event_frames)):
            wave = (40 * np.sin((xx + 6 * i) / 23.0 + yy / 31.0))[..., None]
            content = np.clip(np.asarray(colour, np.float32) + wave + texture, 0, 255).astype(np.uint8)
            frame[:] = 0
            frame[bar : bar + content_h] = content
            emit(frame)
    card = np.full((height, width, 3), 10, np.uint8)
    card[height // 2 - 40 : height // 2 + 40, width // 2 - 120 : width // 2 + 120] = 240
    for _ in range(card_frames):
        emit(card)
    for packet in stream.encode():
        container.mux(packet)
    container.close()


def ffmpeg_export(video: Path, clips: dict, out: Path) -> float:
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    start = time.perf_counter()
    for clip_id, meta in clips.items():
        folder = out / clip_id
        folder.mkdir(parents=True)
        s, e = meta["trim"]["start_s"], meta["trim"]["end_s"]
        x, y, w, h = meta["crop"]
        subprocess.run(
            [
                ffmpeg,
                "-v",
                "error",
                "-ss",
                f"{s:.6f}",
                "-i",
                str(video),
                "-t",
                f"{e - s:.6f}",
                "-vf",
                f"fps=24,crop={w}:{h}:{x}:{y}",
                "-q:v",
                "2",
                str(folder / "%05d.jpg"),
            ],
            check=True,
        )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="720x1280", help="WIDTHxHEIGHT of the source (portrait by default)")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--markdown", type=Path, default=None, help="append the table to this file")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    work = Path(tempfile.mkdtemp(prefix="bench_curation_"))
    try:
        source = work / "source.mp4"
        t0 = time.perf_counter()
        make_source(source, width, height, args.fps, args.seconds)
        generate_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        probe = probe_video(source)
        probe_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        shots = detect_shots(probe)
        shots_s = time.perf_counter() - t0

        events: list[tuple[str, float]] = []
        t_last = [time.perf_counter()]

        def progress(kind, clip_id, done, total):
            if kind == "plan":  # shots are known: clip timings start here
                t_last[0] = time.perf_counter()
            if kind == "done":
                now = time.perf_counter()
                events.append((clip_id, now - t_last[0]))
                t_last[0] = now

        dataset = work / "dataset"
        t0 = time.perf_counter()
        t_last[0] = t0
        summary = trim_video(source, dataset, params=TrimParams(), progress=progress)
        trim_s = time.perf_counter() - t0
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        import json

        clips = json.loads((dataset / "clips.json").read_text())["clips"]
        frames = sum(len(list((dataset / "JPEGImages" / c).glob("*.jpg"))) for c in clips)
        ffmpeg_s = ffmpeg_export(source, clips, work / "ffmpeg")
        ffmpeg_frames = sum(len(list((work / "ffmpeg" / c).glob("*.jpg"))) for c in clips)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    clips = {c: {"crop": m["crop"]} for c, m in clips.items()}

    rows = [
        (
            "source",
            f"{width}x{height} @ {args.fps} fps, {probe.duration_s:.1f} s, {probe.frame_count} frames, "
            f"{len(shots)} shots (generated in {generate_s:.1f} s)",
        ),
        ("probe (packet times, no decode)", f"{probe_s:.2f} s"),
        (
            "shot detection (ContentDetector, PyAV)",
            f"{shots_s:.2f} s = {probe.frame_count / shots_s:.0f} source frames/s",
        ),
        (
            "trim_video total (shots + crop + export)",
            f"{trim_s:.2f} s for {len(summary.exported)} clips, {frames} frames "
            f"= {frames / trim_s:.1f} exported frames/s",
        ),
        ("per clip (crop detection + export)", ", ".join(f"{c}: {s:.2f} s" for c, s in events)),
        (
            "crop found (true content box)",
            f"{next(iter(clips.values()))['crop']} ({[0, height // 8, width, height - 2 * (height // 8)]})",
        ),
        ("end card", "; ".join(summary.dropped) or "-"),
        ("peak resident memory (whole process)", f"{peak_mb:.0f} MB"),
        (
            "ffmpeg binary, export only (same spans and crops)",
            f"{ffmpeg_s:.2f} s, {ffmpeg_frames} frames = {ffmpeg_frames / ffmpeg_s:.1f} frames/s",
        ),
    ]
    command = "python benchmarks/bench_curation.py " + " ".join(sys.argv[1:])
    lines = [
        f"### refvps trim, {width}x{height} source",
        "",
        f"`{command.strip()}` on {platform.node()} ({platform.processor() or platform.machine()}, "
        f"{__import__('os').cpu_count()} cores), {dt.date.today().isoformat()}",
        "",
        "| measure | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in rows],
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        with open(args.markdown, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
