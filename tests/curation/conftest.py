"""Synthetic source videos with a known truth: hard cuts at known frames, padding bars of known
size, an end card, and every frame's index written into the picture (so an exported frame can be
traced back to the source frame it came from)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")
# PyAV's default: no ffmpeg log callback. (A Python-level callback, set_level(ERROR), deadlocks with
# threaded decoding; scenedetect's restore_default_callback would print x264 statistics.)
av.logging.set_level(None)

# Index stamp: two 16x16 blocks (aligned to H.264 macroblocks so the codec keeps them flat) whose
# grey levels spell the frame index in base 12: level = 24 + 16 * digit.
STAMP_BLOCK = 16


@dataclass(frozen=True)
class ShotSpec:
    frames: int
    kind: str = "content"  # "content" (textured, moving), "card" (flat end card, still logo), "logo" (animated logo)
    hue: int = 0  # which colour scheme a content shot uses


@dataclass
class SyntheticVideo:
    path: Path
    fps: int
    size: tuple[int, int]  # full frame (width, height)
    content_box: tuple[int, int, int, int]  # x, y, w, h of the picture inside the bars
    shots: list[ShotSpec]
    cut_frames: list[int] = field(default_factory=list)  # first frame of every shot after the first

    @property
    def frame_count(self) -> int:
        return sum(s.frames for s in self.shots)

    def shot_of_frame(self, index: int) -> int:
        start = 0
        for i, shot in enumerate(self.shots):
            if index < start + shot.frames:
                return i
            start += shot.frames
        raise IndexError(index)


PALETTES = [
    ((200, 60, 40), (255, 180, 90)),  # warm
    ((30, 70, 200), (120, 220, 255)),  # cold
    ((40, 160, 60), (220, 255, 120)),  # green
    ((150, 40, 170), (250, 160, 230)),  # purple
]


def stamp_levels(index: int) -> tuple[int, int]:
    return 24 + 16 * (index // 12 % 12), 24 + 16 * (index % 12)


def read_stamp(rgb: np.ndarray, x0: int, y0: int) -> int:
    """The frame index stamped at (x0, y0) of the content box, from a decoded frame."""
    grey = rgb.astype(np.float32).mean(axis=2)
    digits = []
    for b in range(2):
        block = grey[y0 + 4 : y0 + STAMP_BLOCK - 4, x0 + b * STAMP_BLOCK + 4 : x0 + (b + 1) * STAMP_BLOCK - 4]
        digits.append(int(round((float(block.mean()) - 24) / 16)))
    return digits[0] * 12 + digits[1]


def render_content(index: int, in_shot: int, shot: ShotSpec, w: int, h: int) -> np.ndarray:
    rng = np.random.default_rng(1000 + shot.hue)
    if shot.kind in ("card", "logo"):
        img = np.full((h, w, 3), 245, np.uint8)
        # A logo on a flat background; an animated one grows and shrinks (then it is no longer still).
        size = 30 + (in_shot % 10 if shot.kind == "logo" else 0)
        cy, cx = h // 2, w // 2
        img[cy - size // 2 : cy + size // 2, cx - size : cx + size] = (20, 20, 20)
    else:
        low, high = (np.array(c, np.float32) for c in PALETTES[shot.hue % len(PALETTES)])
        texture = rng.random((h, w, 1), dtype=np.float32)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        # A moving wave: the "dynamic process" of the shot.
        wave = 0.5 + 0.5 * np.sin((xx + 4.0 * in_shot) / 9.0 + yy / 13.0)[..., None]
        mix = 0.6 * wave + 0.4 * texture
        img = (low + (high - low) * mix).clip(0, 255).astype(np.uint8)
    for b, level in enumerate(stamp_levels(index)):
        img[0:STAMP_BLOCK, b * STAMP_BLOCK : (b + 1) * STAMP_BLOCK] = level
    return img


def write_video(
    path: Path,
    shots: list[ShotSpec],
    *,
    fps: int = 30,
    size: tuple[int, int] = (320, 240),
    bars: tuple[int, int, int, int] = (0, 0, 0, 0),  # left, top, right, bottom padding in pixels
    bar_colour: tuple[int, int, int] = (0, 0, 0),
    faststart: bool = False,
) -> SyntheticVideo:
    """Encode the shots (H.264, CRF 16) with padding bars around the content; the stamp sits in the
    top-left corner of the content box."""
    width, height = size
    left, top, right, bottom = bars
    cw, ch = width - left - right, height - top - bottom
    container = av.open(str(path), "w", options={"movflags": "+faststart"} if faststart else {})
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {"crf": "16", "preset": "veryfast", "g": "12"}
    index, cuts = 0, []
    for shot_number, shot in enumerate(shots):
        if shot_number:
            cuts.append(index)
        for in_shot in range(shot.frames):
            frame = np.empty((height, width, 3), np.uint8)
            frame[:] = bar_colour
            frame[top : top + ch, left : left + cw] = render_content(index, in_shot, shot, cw, ch)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
            index += 1
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return SyntheticVideo(path, fps, size, (left, top, cw, ch), list(shots), cuts)


def generic_key(url: str, name: str) -> str:
    """The workspace key fetch gives a plain file link, computed here from its definition (file
    name, then the first 10 hex digits of the SHA-256 of the URL, already normal for these tests)."""
    return f"generic_{name}_{hashlib.sha256(url.encode()).hexdigest()[:10]}"


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run ``refvps ARGS`` in this process as the console script does: (exit code, stdout, stderr)."""
    from refvps.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


@pytest.fixture
def make_video():
    return write_video


@pytest.fixture
def stamp_reader():
    return read_stamp


def add_to_workspace(
    ws_root: Path,
    key: str,
    video: SyntheticVideo,
    *,
    concept: str = "fire",
    category: str = "entities_with_dynamic_boundaries",
    uploader: str = "someone",
) -> None:
    """Put a synthetic video into a workspace as fetch would have (media file + record)."""
    import shutil

    from refvps.curation.workspace import VideoRecord, Workspace

    ws = Workspace(ws_root).create()
    target = ws.videos_dir / f"{key}.mp4"
    shutil.copyfile(video.path, target)
    ws.write_record(
        VideoRecord(
            key=key,
            id=key.split("_", 1)[-1],
            extractor="Generic",
            url=f"https://example.org/{key}",
            uploader=uploader,
            license="CC BY 4.0",
            duration_s=video.frame_count / video.fps,
            title=f"video {key}",
            date="2024-05-01",
            retrieved="2024-06-01T12:00:00Z",
            query=f"{concept} query",
            concept=concept,
            category=category,
            file=f"videos/{key}.mp4",
        )
    )


@pytest.fixture
def workspace_with():
    return add_to_workspace


# -- a local HTTP server for fetch (bound to 127.0.0.1) -----------------------------------------
class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the media folder; /flaky/<name> answers 503 for the first ``flaky_failures`` requests."""

    state: dict = {}

    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):
        self.state.setdefault("requests", []).append(self.path)
        if self.path.startswith("/flaky/"):
            seen = self.state["flaky_seen"] = self.state.get("flaky_seen", 0) + 1
            if seen <= self.state.get("flaky_failures", 0):
                self.send_error(503, "busy")
                return
            self.path = self.path[len("/flaky") :]
        super().do_GET()


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # yt-dlp closes probes early: not an error
        pass


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """Three small H.264 videos, remuxed with +faststart (moov first) by imageio-ffmpeg's ffmpeg."""
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    folder = tmp_path_factory.mktemp("media")
    raw = tmp_path_factory.mktemp("raw")
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    videos = {
        name: ([ShotSpec(24, hue=hue)], (0, 0, 0, 0)) for name, hue in (("clip_a", 0), ("clip_b", 1), ("clip_c", 2))
    }
    # A letterboxed compilation: two events and an end card.
    videos["comp"] = ([ShotSpec(36, hue=0), ShotSpec(30, hue=1), ShotSpec(24, "card")], (0, 16, 0, 16))
    for name, (shots, bars) in videos.items():
        video = write_video(raw / f"{name}.mp4", shots, fps=24, size=(160, 128), bars=bars)
        subprocess.run(
            [
                ffmpeg,
                "-v",
                "error",
                "-y",
                "-i",
                str(video.path),
                "-c",
                "copy",
                "-movflags",
                "+faststart",
                str(folder / f"{name}.mp4"),
            ],
            check=True,
        )
    return folder


@contextlib.contextmanager
def serve_folder(folder: Path):
    """Serve ``folder`` over HTTP on 127.0.0.1: yields (base URL, request state)."""
    state: dict = {}
    handler = type("Handler", (_Handler,), {"state": state})
    httpd = _QuietServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", state
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server(media):
    with serve_folder(media) as served:
        yield served
