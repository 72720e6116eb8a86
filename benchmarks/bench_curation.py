"""Speed of ``refvps trim`` on a compilation of real footage, against ffmpeg doing the export alone.

    python benchmarks/bench_curation.py                         # 1280x720, 2.35:1 bars, H.264 CRF 23
    python benchmarks/bench_curation.py --encoder low_vp9        # the same as a starved VP9 stream
    python benchmarks/bench_curation.py --markdown benchmarks/results/curation.md

The source is built from the four real videos of ``../shared/footage`` (or ``$REFVPS_FOOTAGE``) with
the recipes of ``tests/curation/footage.py``: four 2.5 s shots cut together, letterboxed to a
1280x544 picture in a 1280x720 frame, and a 2 s text end card. Measured on that file:

(a) ``refvps.curation.trim.trim_video`` for the whole video, as a user runs it: probe, shot
    detection with cut confirmation, the end-card check, one padding box for the video, and the
    export of 24 fps JPEG frames (quality 95) through ``DatasetWriter``; wall time per exported
    frame, per clip, and peak resident memory; and whether it found what the file holds (cuts,
    box, card);
(b) the reference in the same run: the ffmpeg binary (imageio-ffmpeg) writing the same clips at
    24 fps, cropped, as JPEG (``-q:v 2``), given the spans and box refvps found.
"""

from __future__ import annotations

import argparse
import datetime as dt
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from refvps.curation.shots import detect_shots  # noqa: E402
from refvps.curation.trim import trim_video  # noqa: E402
from refvps.curation.video import probe_video  # noqa: E402
from refvps.progress import Progress  # noqa: E402
from tests.curation.footage import ENCODERS, compilation  # noqa: E402
from tests.footage import find_footage, footage_candidates  # noqa: E402

PARTS = [("02_cups", 1.0, 2.5), ("03_blocks", 2.0, 2.5), ("04_coffee", 1.0, 2.5), ("05_default_juggle", 3.0, 2.5)]


class ClipTimer(Progress):
    """Wall time of each clip's export (from the end of the one before)."""

    def __init__(self) -> None:
        self.times: list[tuple[str, float]] = []
        self.last = time.perf_counter()

    def start(self, stage, total=None, *, note=None):
        if stage == "clips":
            self.last = time.perf_counter()

    def advance(self, stage, n=1, *, note=None):
        if stage == "clips":
            now = time.perf_counter()
            self.times.append((note or "", now - self.last))
            self.last = now


def ffmpeg_export(video: Path, clips: dict, out: Path) -> float:
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    start = time.perf_counter()
    for clip_id, meta in clips.items():
        folder = out / clip_id
        folder.mkdir(parents=True)
        s, e = meta["trim"]["start_s"], meta["trim"]["end_s"]
        x, y, w, h = meta["crop"]
        vf = f"fps=24,crop={w}:{h}:{x}:{y}"
        args = ["-ss", f"{s:.6f}", "-i", str(video), "-t", f"{e - s:.6f}", "-vf", vf, "-q:v", "2"]
        subprocess.run([ffmpeg, "-v", "error", *args, str(folder / "%05d.jpg")], check=True)
    return time.perf_counter() - start


def measure(work: Path, encoder: str) -> list[tuple[str, str]]:
    t0 = time.perf_counter()
    comp = compilation(work / "source", PARTS, size=(1280, 720), card_s=2.0, encoder=encoder)
    build_s = time.perf_counter() - t0
    probe = probe_video(comp.path)
    t0 = time.perf_counter()
    shots = detect_shots(probe)
    shots_s = time.perf_counter() - t0
    timer = ClipTimer()
    t0 = time.perf_counter()
    summary = trim_video(comp.path, work / "dataset", clip_key="comp", progress=timer)
    trim_s = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    clips = json.loads((work / "dataset" / "clips.json").read_text())["clips"]
    frames = sum(len(list((work / "dataset" / "JPEGImages" / c).glob("*.jpg"))) for c in clips)
    ffmpeg_s = ffmpeg_export(comp.path, clips, work / "ffmpeg")
    ffmpeg_frames = sum(len(list((work / "ffmpeg" / c).glob("*.jpg"))) for c in clips)
    crop = next(iter(clips.values()))["crop"]
    ours, theirs = 1000 * trim_s / frames, 1000 * ffmpeg_s / ffmpeg_frames
    return [
        (
            "source",
            f"{probe.width}x{probe.height} @ {probe.fps:.0f} fps, {probe.duration_s:.1f} s, {probe.frame_count} frames, "
            f"{encoder} (built in {build_s:.1f} s)",
        ),
        ("cuts found (true)", f"{[s.start_frame for s in shots[1:]]} ({comp.cut_frames})"),
        ("crop found (true picture box)", f"{crop} ({list(comp.box)})"),
        ("end card", "; ".join(summary.dropped) or "kept"),
        ("shot detection alone (proposals + confirmation)", f"{shots_s:.2f} s"),
        (
            "**refvps trim, whole video**",
            f"**{trim_s:.2f} s for {len(clips)} clips, {frames} frames = {ours:.1f} ms per exported frame**",
        ),
        ("per clip (from the end of the one before)", ", ".join(f"{c}: {s:.2f} s" for c, s in timer.times)),
        (
            "**ffmpeg binary, export only (same spans and box)**",
            f"**{ffmpeg_s:.2f} s, {ffmpeg_frames} frames = {theirs:.1f} ms per frame; refvps / ffmpeg = {ours / theirs:.2f}**",
        ),
        ("peak resident memory (whole process)", f"{peak_mb:.0f} MB"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default="crf23", choices=sorted(ENCODERS), help="how the compilation is encoded")
    parser.add_argument("--markdown", type=Path, default=None, help="append the table to this file")
    args = parser.parse_args()
    if find_footage() is None:
        raise SystemExit(
            "real footage not found in " + ", ".join(map(str, footage_candidates())) + ": set $REFVPS_FOOTAGE"
        )
    work = Path(tempfile.mkdtemp(prefix="bench_curation_"))
    try:
        rows = measure(work, args.encoder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    command = ("python benchmarks/bench_curation.py " + " ".join(sys.argv[1:])).strip()
    lines = [
        f"### refvps trim on a real-footage compilation ({args.encoder})",
        "",
        f"`{command}` on {platform.node()} ({platform.machine()}, {os.cpu_count()} cores, load average {load}), "
        f"{dt.date.today().isoformat()}",
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
