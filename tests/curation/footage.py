"""Real footage for the curation tests, and the ffmpeg recipes that turn it into hard cases.

The four real videos are found by :mod:`tests.footage` (skipping with the reason when absent).
From them the tests build, with the ffmpeg binary of imageio-ffmpeg: letterboxed and
pillarboxed copies (with the true picture box known), compilations with a text end card (with the
true cut frames known), re-encodes at several bitrates, and truncated or corrupted files.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.footage import footage_dir

# Encoder settings by name; "low_vp9" is a realtime VP9 encode starved of bits (the kind that
# makes blocky frames a shot detector takes for cuts).
ENCODERS = {
    "crf23": ["-c:v", "libx264", "-crf", "23", "-preset", "veryfast", "-pix_fmt", "yuv420p"],
    "crf35": ["-c:v", "libx264", "-crf", "35", "-preset", "veryfast", "-pix_fmt", "yuv420p"],
    # x264 needs even sizes in 4:2:0; an odd-sized H.264 stream is 4:4:4
    "crf23_444": ["-c:v", "libx264", "-crf", "23", "-preset", "veryfast", "-pix_fmt", "yuv444p"],
    "crf35_444": ["-c:v", "libx264", "-crf", "35", "-preset", "veryfast", "-pix_fmt", "yuv444p"],
    "low_vp9": ["-c:v", "libvpx-vp9", "-b:v", "40k", "-deadline", "realtime", "-cpu-used", "8", "-pix_fmt", "yuv420p"],
    "vp9_crf35": ["-c:v", "libvpx-vp9", "-crf", "35", "-b:v", "0", "-deadline", "realtime", "-cpu-used", "8"],
}


def ffmpeg(*args: str) -> None:
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", *args], check=True)


def _ext(encoder: str) -> str:
    return ".webm" if "vp9" in encoder else ".mp4"


def boxed(
    out: Path,
    name: str,
    *,
    start: float,
    seconds: float,
    size: tuple[int, int],
    box: tuple[int, int, int, int],
    encoder: str,
    colour: str = "black",
) -> Path:
    """A piece of one video scaled into ``box`` of a ``size`` frame padded with ``colour``.

    The filters work in RGB so that odd sizes and offsets stay exact (4:2:0 filters round them)."""
    (width, height), (x, y, w, h) = size, box
    out = out.with_suffix(_ext(encoder))
    chain = f"format=rgb24,scale={w}:{h}:flags=bicubic,format=rgb24,pad={width}:{height}:{x}:{y}:{colour}"
    ffmpeg(
        "-ss",
        str(start),
        "-t",
        str(seconds),
        "-i",
        str(footage_dir() / f"{name}.mp4"),
        "-vf",
        chain,
        *ENCODERS[encoder],
        str(out),
    )
    return out


def text_card(path: Path, size: tuple[int, int], lines: tuple[str, ...] = ("THANKS FOR WATCHING", "subscribe")) -> Path:
    """A white end card with dark text (Pillow's own font: no system fonts needed)."""
    from PIL import Image, ImageDraw, ImageFont

    width, height = size
    card = Image.new("RGB", size, (248, 248, 248))
    draw = ImageDraw.Draw(card)
    for i, line in enumerate(lines):
        try:
            font = ImageFont.load_default(size=max(12, height // (8 + 2 * i)))
        except TypeError:  # Pillow < 10.1: the small bitmap font only
            font = ImageFont.load_default()
        draw.text((width // 2, height // 2 + i * height // 6), line, fill=(20, 20, 20), font=font, anchor="mm")
    card.save(path)
    return path


@dataclass(frozen=True)
class Compilation:
    path: Path
    fps: int
    cut_frames: list[int]  # first frame of every shot after the first (the card's too)
    box: tuple[int, int, int, int]  # the picture inside the bars, in the event shots
    card_frames: int

    @property
    def frame_count(self) -> int:
        return self.cut_frames[-1] + self.card_frames if self.card_frames else self.cut_frames[-1]


def compilation(
    out: Path,
    parts: list[tuple[str, float, float]],
    *,
    size: tuple[int, int] = (640, 360),
    box: tuple[int, int, int, int] | None = None,
    card_s: float = 0.0,
    encoder: str = "crf23",
    fps: int = 30,
    keyint: int | None = None,
) -> Compilation:
    """``parts`` (video name, start s, seconds) cut one after the other, each letterboxed into
    ``box`` (default: 2.35:1 bars), then a text card of ``card_s`` seconds. MP4 files get their
    index first (``+faststart``, as sites serve them); ``keyint``: a keyframe every that many frames."""
    width, height = size
    if box is None:
        h = round(width / 2.35 / 2) * 2
        box = (0, (height - h) // 2, width, h)
    x, y, w, h = box
    args: list[str] = []
    chains = []
    for i, (name, start, seconds) in enumerate(parts):
        args += ["-ss", str(start), "-t", str(seconds), "-i", str(footage_dir() / f"{name}.mp4")]
        chains.append(f"[{i}:v]fps={fps},format=rgb24,scale={w}:{h},setsar=1,pad={width}:{height}:{x}:{y}:black[v{i}]")
    inputs = len(parts)
    if card_s:
        card = text_card(out.with_name(out.stem + "_card.png"), size)
        args += ["-loop", "1", "-t", str(card_s), "-framerate", str(fps), "-i", str(card)]
        chains.append(f"[{inputs}:v]fps={fps},format=rgb24,scale={width}:{height},setsar=1[v{inputs}]")
        inputs += 1
    graph = ";".join(chains) + ";" + "".join(f"[v{i}]" for i in range(inputs)) + f"concat=n={inputs}:v=1:a=0[out]"
    out = out.with_suffix(_ext(encoder))
    options = ["-movflags", "+faststart"] if out.suffix == ".mp4" else []
    options += ["-g", str(keyint)] if keyint else []
    ffmpeg(*args, "-filter_complex", graph, "-map", "[out]", *ENCODERS[encoder], *options, str(out))
    frames = [round(seconds * fps) for _, _, seconds in parts]
    cuts = list(np.cumsum(frames)[:-1]) + ([sum(frames)] if card_s else [])
    return Compilation(out, fps, [int(c) for c in cuts], box, round(card_s * fps))


def truncated(source: Path, out: Path, share: float) -> Path:
    """The first ``share`` of a file's bytes (a download cut off)."""
    data = source.read_bytes()
    out.write_bytes(data[: int(len(data) * share)])
    return out


def zeroed(source: Path, out: Path, at: float, count: int) -> Path:
    """A copy with ``count`` bytes from ``at`` (a share of the file) set to zero: a damaged stretch."""
    data = bytearray(source.read_bytes())
    start = int(len(data) * at)
    data[start : start + count] = bytes(min(count, len(data) - start))
    out.write_bytes(bytes(data))
    return out
