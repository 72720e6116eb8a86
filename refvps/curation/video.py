"""Reading videos with PyAV: presentation times, and frames sampled at given times.

Times are in seconds from the first frame of the video (its lowest presentation timestamp), so a
video whose stream starts at pts 1001 still starts at 0.0. Frames are picked the way a player shows
them: at time t the frame on screen is the last one whose time is <= t.

A damaged file is read as far as it can be: :func:`probe_video` lists only frames that are in the
file and decode (a truncated download ends early), and says how long the file claims to be, so
that the stages can say how much was readable instead of shortening a video silently.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from refvps.errors import DatasetError, require

logger = logging.getLogger(__name__)

# A frame counts as shown at time t if it starts at most this much after t: absorbs float rounding
# between a frame's pts and the same instant computed as start + k / fps, never a whole frame.
TIME_EPS = 1e-4
# frames_at seeks instead of decoding on when the next wanted time is this far ahead.
SEEK_GAP_S = 5.0
# A file whose readable part is shorter than its declared duration by more than this is truncated.
TRUNCATION_TOL_S = 0.25
FORMATS = ("rgb24", "gray")


def _av():
    return require("av", "curate", "reading videos")


@dataclass(frozen=True)
class VideoProbe:
    """What a video file holds: size, frame rate, frame count, and every readable frame's time."""

    path: Path
    width: int
    height: int
    fps: float
    frame_times: np.ndarray  # (N,) float64 seconds from the first frame, ascending
    time_base: float = 1.0
    origin_pts: int = 0  # pts of the first frame (times are measured from it)
    rotation: int = 0
    declared_duration_s: float | None = None  # what the container says; None when it does not say

    @property
    def frame_count(self) -> int:
        return int(self.frame_times.shape[0])

    @property
    def duration_s(self) -> float:
        """From the first frame to the end of the last readable one (last start + one nominal frame)."""
        if self.frame_count == 0:
            return 0.0
        return float(self.frame_times[-1] + 1.0 / self.fps)

    @property
    def truncated(self) -> bool:
        """Whether the file declares more than could be read (a cut-off download, a damaged tail)."""
        declared = self.declared_duration_s
        return declared is not None and declared - self.duration_s > TRUNCATION_TOL_S

    def readable_note(self) -> str | None:
        """A sentence saying how much of a truncated file is readable (None when all of it is)."""
        declared = self.declared_duration_s
        if declared is None or not self.truncated:
            return None
        return (
            f"only {self.duration_s:.2f} s of {declared:.2f} s could be read "
            f"({100 * self.duration_s / declared:.0f}%): the file is truncated or damaged"
        )

    def next_frame_time(self, t: float) -> float | None:
        """The time of the frame after the one on screen at ``t`` (None: that one is the last)."""
        index = int(np.searchsorted(self.frame_times, t + TIME_EPS, side="right"))
        return float(self.frame_times[index]) if index < self.frame_count else None

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


def _declared_duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return float(container.duration) / 1e6
    return None


def probe_video(path: str | Path) -> VideoProbe:
    """Probe a video: every frame's presentation time is read from the packets, and the last group
    of pictures is decoded so that a truncated tail does not count as frames."""
    av = _av()
    path = Path(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        time_base = float(stream.time_base)
        try:
            packets = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.pts is not None and p.size > 0]
        except av.error.FFmpegError as exc:  # type: ignore[attr-defined]
            raise DatasetError(
                f"cannot read {path}: {exc}", hint="the file is damaged; fetch it again", path=path
            ) from None
        width, height = stream.codec_context.width, stream.codec_context.height
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        declared = _declared_duration(container, stream)
    finally:
        container.close()
    pts = _decodable_pts(path, packets)
    if not pts:
        raise DatasetError(f"{path} has no readable video frames", hint="fetch the video again", path=path)
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
        declared_duration_s=declared,
    )


def _decodable_pts(path: Path, packets: list[tuple[int, bool]]) -> list[int]:
    """The packets' pts, with the last group of pictures replaced by the frames that decode from it
    (a download cut off mid-packet leaves packets that demux but do not decode)."""
    keys = [pts for pts, key in packets if key]
    if not keys:
        return [pts for pts, _ in packets]
    last_key = max(keys)
    decoded = _decode_pts_from(path, last_key)
    return [pts for pts, _ in packets if pts < last_key] + decoded


def _decode_pts_from(path: Path, start_pts: int) -> list[int]:
    av = _av()
    container = _open(path)
    got: list[int] = []
    try:
        stream = container.streams.video[0]
        container.seek(start_pts, stream=stream, backward=True, any_frame=False)
        for packet in container.demux(stream):
            try:
                got += [f.pts for f in packet.decode() if f.pts is not None and f.pts >= start_pts]
            except av.error.FFmpegError:  # type: ignore[attr-defined]
                break  # the damaged packet and everything after it are not readable
    except av.error.FFmpegError:  # type: ignore[attr-defined]
        pass
    finally:
        container.close()
    return got


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


def _to_image(frame, rotation: int, fmt: str) -> np.ndarray:
    image = frame.to_ndarray(format=fmt)
    if rotation:
        # The display matrix rotates counter-clockwise by `rotation` degrees.
        image = np.ascontiguousarray(np.rot90(image, k=rotation // 90))
    return image


def frames_at(
    video: VideoProbe, times: Sequence[float], *, fmt: str = "rgb24", seek_gap_s: float = SEEK_GAP_S
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(k, image)`` for each requested time (ascending), the frame on screen at ``times[k]``.

    ``fmt`` is ``"rgb24"`` (H, W, 3) or ``"gray"`` (H, W) luma. Decodes sequentially from the
    keyframe before the first time, seeking again only across gaps longer than ``seek_gap_s``, so a
    sorted list of times costs about one pass over that part of the video.
    """
    av = _av()
    if fmt not in FORMATS:
        raise ValueError(f"frames_at: unknown format {fmt!r}")
    targets = [float(t) for t in times]
    if not targets:
        return
    if any(b < a for a, b in zip(targets, targets[1:])):
        raise ValueError("frames_at needs ascending times")
    container = _open(video.path)
    cursor = _Cursor()
    try:
        stream = container.streams.video[0]
        # Threaded decoding is much faster, but deadlocks when someone in this process routed
        # ffmpeg's logs to Python (av.logging.set_level(level)); PyAV's default (None) is safe.
        if getattr(av, "logging", None) is None or av.logging.get_level() is None:
            stream.thread_type = "AUTO"
        while cursor.k < len(targets):
            first = cursor.k
            seek_to = max(targets[first] - 1.0, 0.0)
            container.seek(int(video.origin_pts + seek_to / video.time_base), stream=stream, backward=True)
            yield from _decode_run(container, stream, video, targets, cursor, fmt, seek_gap_s)
            if cursor.k == first:
                raise DatasetError(
                    f"{video.path}: no frame decodes at {targets[first]:.2f} s",
                    hint="the file is damaged there; fetch it again",
                    path=video.path,
                )
    except av.error.FFmpegError as exc:  # type: ignore[attr-defined]
        where = f" after {cursor.t:.2f} s" if cursor.t is not None else ""
        raise DatasetError(
            f"decoding {video.path} failed{where}: {exc}",
            hint="the file is damaged there; fetch it again",
            path=video.path,
        ) from None
    finally:
        container.close()


@dataclass
class _Cursor:
    k: int = 0  # the first target not served yet
    t: float | None = None  # time of the last frame decoded
    damage: Exception | None = None  # the decoding error that ended the readable stretch


def _readable_frames(container, stream, video: VideoProbe, cursor: _Cursor) -> Iterator[Any]:
    """The stream's frames as far as they are readable. A packet that does not decode ends it, but
    the frames the decoder still holds from the packets before it are good: they come out as the
    next packets go in, and are yielded while they follow one another with no frame of the file
    missing (the next lost frame, or any frame from the damaged packet on, ends it for good). This
    is how far the shot detector reads a damaged file too (docs/CURATION.md)."""
    av = _av()
    cursor.damage = None  # a run after a seek starts afresh
    bad_pts: int | None = None
    last: float | None = None  # time of the last frame yielded
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.FFmpegError as exc:  # type: ignore[attr-defined]
            if cursor.damage is None:
                cursor.damage, bad_pts = exc, packet.pts
            continue
        for frame in frames:
            if frame.pts is None:
                continue
            t = (frame.pts - video.origin_pts) * video.time_base
            if cursor.damage is not None:
                expected = video.next_frame_time(last) if last is not None else None
                if expected is None or abs(t - expected) > TIME_EPS or (bad_pts is not None and frame.pts >= bad_pts):
                    return
            last = t
            yield frame


def _decode_run(container, stream, video: VideoProbe, targets: list[float], cursor: _Cursor, fmt: str, gap: float):
    """Decode from the current position and yield ``(k, image)`` for targets ``cursor.k, ...``;
    stops after the last target, or before a target more than ``gap`` seconds ahead once this run
    has served one (the caller seeks). Where a damaged stretch ends the readable frames, the last
    one is shown until the next frame of the file would start, and a later target is an error."""
    time_base, origin = video.time_base, video.origin_pts
    first = cursor.k
    current = None
    image = None
    for frame in _readable_frames(container, stream, video, cursor):
        t = cursor.t = (frame.pts - origin) * time_base
        while cursor.k < len(targets) and targets[cursor.k] < t - TIME_EPS:
            if current is None:  # a time before the first decoded frame: show the first one
                current = frame
            if image is None:
                image = _to_image(current, video.rotation, fmt)
            yield cursor.k, image
            cursor.k += 1
        if cursor.k >= len(targets):
            return
        if cursor.k > first and targets[cursor.k] - t > gap:
            return  # far ahead: seeking is cheaper than decoding everything in between
        current, image = frame, None
    shown_until = float("inf")  # at the end of the file the last frame stays on screen
    if cursor.damage is not None and current is not None and cursor.t is not None:
        following = video.next_frame_time(cursor.t)  # the frame lost to the damage
        if following is not None:
            shown_until = following
    while cursor.k < len(targets) and current is not None and targets[cursor.k] < shown_until - TIME_EPS:
        if image is None:
            image = _to_image(current, video.rotation, fmt)
        yield cursor.k, image
        cursor.k += 1
    if cursor.damage is not None and cursor.k < len(targets):
        where = f" after {cursor.t:.2f} s" if cursor.t is not None else ""
        raise DatasetError(
            f"decoding {video.path} failed{where}: {cursor.damage}",
            hint="the file is damaged there; fetch it again",
            path=video.path,
        )


def sample_times(start_s: float, end_s: float, count: int) -> list[float]:
    """``count`` times spread evenly over [start, end), at the middle of equal parts."""
    if count <= 0 or end_s <= start_s:
        return []
    step = (end_s - start_s) / count
    return [start_s + (i + 0.5) * step for i in range(count)]


def sample_frames(
    video: VideoProbe, times: Sequence[float], *, fmt: str = "gray"
) -> tuple[list[tuple[float, np.ndarray]], list[float]]:
    """Frames at ``times`` as far as they decode: ``([(time, image)], [times that failed])``.

    For statistics over many frames (padding, end cards): a damaged stretch costs the samples in
    it, not the whole video. Each failure restarts decoding after the failed time.
    """
    remaining = sorted(float(t) for t in times)
    got: list[tuple[float, np.ndarray]] = []
    failed: list[float] = []
    while remaining:
        served = 0
        try:
            for k, image in frames_at(video, remaining, fmt=fmt):
                got.append((remaining[k], image))
                served = k + 1
            remaining = []
        except DatasetError as exc:
            failed.append(remaining[served])
            logger.debug("sample at %.2f s of %s skipped: %s", remaining[served], video.path, exc)
            remaining = remaining[served + 1 :]
    return got, failed
