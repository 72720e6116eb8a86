"""Reading videos with PyAV: presentation times, and frames sampled at given times.

Times are in seconds from the first frame of the video (its lowest presentation timestamp), so a
video whose stream starts at pts 1001 still starts at 0.0. Frames are picked the way a player shows
them: at time t the frame on screen is the last one whose time is <= t.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from refvps.errors import DatasetError, require

# A frame counts as shown at time t if it starts at most this much after t: absorbs float rounding
# between a frame's pts and the same instant computed as start + k / fps, never a whole frame.
TIME_EPS = 1e-4


def _av():
    return require("av", "curate", "reading videos")


@dataclass(frozen=True)
class VideoProbe:
    """What a video file holds: size, frame rate, frame count, and every frame's time."""

    path: Path
    width: int
    height: int
    fps: float
    frame_times: np.ndarray  # (N,) float64 seconds from the first frame, ascending
    time_base: float = 1.0
    origin_pts: int = 0  # pts of the first frame (times are measured from it)
    rotation: int = 0

    @property
    def frame_count(self) -> int:
        return int(self.frame_times.shape[0])

    @property
    def duration_s(self) -> float:
        """From the first frame to the end of the last one (last start + one nominal frame)."""
        if self.frame_count == 0:
            return 0.0
        return float(self.frame_times[-1] + 1.0 / self.fps)

    def frame_time(self, index: int) -> float:
        """The time of frame ``index``; ``index == frame_count`` is the end of the video."""
        if index >= self.frame_count:
            return self.duration_s
        return float(self.frame_times[max(index, 0)])


def _open(path: Path):
    av = _av()
    if not path.is_file():
        raise DatasetError(f"video file not found: {path}", hint="check the path", path=path)
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:  # type: ignore[attr-defined]
        raise DatasetError(
            f"cannot open video {path}: {exc}", hint="the file is not a video or is damaged; fetch it again", path=path
        ) from None
    if not container.streams.video:
        container.close()
        raise DatasetError(f"{path} has no video stream", hint="fetch a video, not an audio-only file", path=path)
    return container


def probe_video(path: str | Path) -> VideoProbe:
    """Probe a video: every frame's presentation time is read from the packets (no decoding)."""
    av = _av()
    path = Path(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        time_base = float(stream.time_base)
        try:
            pts = [p.pts for p in container.demux(stream) if p.pts is not None and p.size > 0]
        except av.error.FFmpegError as exc:  # type: ignore[attr-defined]
            raise DatasetError(
                f"cannot read {path}: {exc}", hint="the file is damaged; fetch it again", path=path
            ) from None
        width, height = stream.codec_context.width, stream.codec_context.height
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    finally:
        container.close()
    if not pts:
        raise DatasetError(f"{path} has no video frames", hint="fetch the video again", path=path)
    origin_pts = int(min(pts))
    times = (np.sort(np.asarray(pts, dtype=np.float64)) - origin_pts) * time_base
    fps = float(rate) if rate else (len(times) - 1) / max(times[-1], 1e-9)
    rotation = 0
    first = _first_frame(path)
    if first is not None:
        rotation = int(getattr(first, "rotation", 0) or 0) % 360
        width, height = first.width, first.height
    if rotation in (90, 270):
        width, height = height, width
    return VideoProbe(
        path=path,
        width=int(width),
        height=int(height),
        fps=fps,
        frame_times=times,
        time_base=time_base,
        origin_pts=origin_pts,
        rotation=rotation,
    )


def _first_frame(path: Path):
    container = _open(path)
    try:
        for frame in container.decode(video=0):
            return frame
    except Exception:  # noqa: BLE001 - probing only; decoding errors surface when frames are read
        return None
    finally:
        container.close()
    return None


def _to_rgb(frame, rotation: int) -> np.ndarray:
    rgb = frame.to_ndarray(format="rgb24")
    if rotation:
        # The display matrix rotates counter-clockwise by `rotation` degrees.
        rgb = np.ascontiguousarray(np.rot90(rgb, k=rotation // 90))
    return rgb


def frames_at(video: VideoProbe, times: Sequence[float]) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(k, rgb)`` for each requested time (ascending), the frame on screen at ``times[k]``.

    Decodes sequentially from the keyframe before the first time, so a sorted list of times costs
    one pass over that part of the video.
    """
    av = _av()
    targets = [float(t) for t in times]
    if not targets:
        return
    if any(b < a for a, b in zip(targets, targets[1:])):
        raise ValueError("frames_at needs ascending times")
    container = _open(video.path)
    try:
        stream = container.streams.video[0]
        # Threaded decoding is much faster, but deadlocks when someone in this process routed
        # ffmpeg's logs to Python (av.logging.set_level(level)); PyAV's default (None) is safe.
        if getattr(av, "logging", None) is None or av.logging.get_level() is None:
            stream.thread_type = "AUTO"
        time_base = float(stream.time_base)
        origin = video.origin_pts
        seek_to = max(targets[0] - 1.0, 0.0)
        container.seek(int(origin + seek_to / time_base), stream=stream, backward=True, any_frame=False)
        current = None
        current_rgb = None
        k = 0
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            t = (frame.pts - origin) * time_base
            while k < len(targets) and targets[k] < t - TIME_EPS:
                if current is None:  # a time before the first decoded frame: show the first one
                    current = frame
                if current_rgb is None:
                    current_rgb = _to_rgb(current, video.rotation)
                yield k, current_rgb
                k += 1
            if k >= len(targets):
                break
            current, current_rgb = frame, None
        while k < len(targets) and current is not None:
            if current_rgb is None:
                current_rgb = _to_rgb(current, video.rotation)
            yield k, current_rgb
            k += 1
    except av.error.FFmpegError as exc:  # type: ignore[attr-defined]
        raise DatasetError(
            f"decoding {video.path} failed: {exc}", hint="the file is damaged; fetch it again", path=video.path
        ) from None
    finally:
        container.close()


def sample_times(start_s: float, end_s: float, count: int) -> list[float]:
    """``count`` times spread evenly over [start, end), at the middle of equal parts."""
    if count <= 0 or end_s <= start_s:
        return []
    step = (end_s - start_s) / count
    return [start_s + (i + 0.5) * step for i in range(count)]
