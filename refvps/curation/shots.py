"""Shot boundaries, so that no clip crosses a cut: PySceneDetect proposes, a second look confirms.

PySceneDetect (``ContentDetector`` or ``AdaptiveDetector``) finds frames that differ sharply from
the one before. Compression makes such frames too: a low-bitrate VP9 stream has frames that come
out blocky and recover a moment later, and keyframes that pop. So every proposed cut is confirmed
on small thumbnails (32 pixels wide, recorded while the detector reads the video, so the video is
decoded once):

1. the cut is placed on the largest thumbnail change within half a minimum shot length of the
   proposal;
2. the median thumbnail of the ``L`` frames before it is compared with that of the ``L`` frames after
   it (``L`` = the minimum shot length): the median ignores a glitch lasting less than ``L / 2`` frames;
3. the change across the cut must be at least ``cut_ratio`` times the change within the shots on
   either side over the same number of frames (fast motion changes the picture too, without a cut).

Two confirmed cuts closer than the minimum shot length keep the stronger one. The detector runs
with PySceneDetect's own minimum scene length at one frame, so that a false cut cannot hide a real
one next to it. Tuning (threshold, minimum shot length, ratio) is described in docs/CURATION.md.

PySceneDetect returns no scenes for a video without cuts unless ``start_in_scene=True`` (PySceneDetect
issue #282); with it, a single shot spans the whole video. Shots are given in frame indices of the
source video and in seconds from its first frame (through the frames' own times, so variable frame
rates are honoured).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from refvps.curation.video import TIME_EPS, VideoProbe, probe_video
from refvps.errors import DatasetError, UsageError, require
from refvps.fileio import atomic_write_json, read_json

DETECTORS = ("content", "adaptive")
DEFAULT_THRESHOLDS = {"content": 27.0, "adaptive": 3.0}
SHOTS_CACHE_VERSION = 2
THUMB_WIDTH = 32


@dataclass(frozen=True)
class ShotParams:
    """How shots are detected; part of the cache key, so changing one recomputes the shots."""

    detector: str = "content"
    # ContentDetector threshold, or AdaptiveDetector adaptive_threshold; None: the detector's default
    threshold: float | None = None
    min_shot_s: float = 0.3  # no shot is shorter; also the window a cut is confirmed over
    cut_ratio: float = 3.0  # change across a cut / change within the shots; 0 accepts every proposal

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise UsageError(f"unknown shot detector {self.detector!r}", hint=f"use one of: {', '.join(DETECTORS)}")
        if self.min_shot_s < 0 or self.cut_ratio < 0:
            raise UsageError("min_shot_s and cut_ratio cannot be negative", hint="use e.g. 0.3 s and 3")
        if self.threshold is None:  # the two detectors' scales differ: 27 would hide every adaptive cut
            object.__setattr__(self, "threshold", DEFAULT_THRESHOLDS[self.detector])


@dataclass(frozen=True)
class Shot:
    """One shot: frames [start_frame, end_frame) of the source, times [start_s, end_s)."""

    index: int
    start_frame: int
    end_frame: int
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def _make_detector(params: ShotParams):
    detectors = require("scenedetect.detectors", "curate", "shot detection")
    # One frame: every proposal reaches the confirmation, which applies the minimum shot length.
    if params.detector == "adaptive":
        return detectors.AdaptiveDetector(adaptive_threshold=params.threshold, min_scene_len=1)
    return detectors.ContentDetector(threshold=params.threshold, min_scene_len=1)


def _seconds(position, fps: float) -> float:
    """A PySceneDetect position in seconds: 0.6 passes frame numbers, 0.7 timecodes (from the pts)."""
    if isinstance(position, (int, float)):
        return float(position) / fps
    if isinstance(getattr(type(position), "seconds", None), property):
        return float(position.seconds)
    return float(position.get_seconds())


def _thumb_recorder(scenedetect, fps: float, thumbs: list[np.ndarray], times: list[float]):
    """A PySceneDetect detector that proposes nothing and keeps a small thumbnail of every frame."""
    cv2 = require("cv2", "curate", "shot detection")

    class ThumbRecorder(scenedetect.SceneDetector):
        def process_frame(self, position, frame_img):
            height, width = frame_img.shape[:2]
            size = (THUMB_WIDTH, max(1, round(THUMB_WIDTH * height / width)))
            thumbs.append(cv2.resize(frame_img, size, interpolation=cv2.INTER_AREA))
            times.append(_seconds(position, fps))
            return []

    return ThumbRecorder()


@contextlib.contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    """Hold back PySceneDetect's own messages ("Failed to decode some frames"): a file that stops
    decoding is reported by trim with how much of it was read."""
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _frame_index(probe: VideoProbe, seconds: Sequence[float]) -> np.ndarray:
    """The probe's frame shown at each time (times of frames map onto their own index, VFR too)."""
    return np.searchsorted(probe.frame_times, np.asarray(seconds) + TIME_EPS, side="right") - 1


@dataclass
class _Proposals:
    cuts: list[int]  # frame indices PySceneDetect proposes as the first frame of a shot
    thumbs: np.ndarray  # (readable, h, w, 3) float32
    readable: int  # frames from the start that decoded one after the other (all, for a sound file)


def _proposals(probe: VideoProbe, params: ShotParams) -> _Proposals:
    """PySceneDetect's cuts and every frame's thumbnail, in one pass over the video.

    This is ``scenedetect.detect(path, detector, start_in_scene=True)`` spelled out, so that the
    PyAV backend can be opened with ``suppress_output=True``: ``detect`` would restore ffmpeg's
    default log callback for the whole process and let every later decoder print to stderr.
    PySceneDetect skips frames that do not decode; the frames after the first skip are not
    counted as readable (their thumbnails would not line up with the frames).
    """
    scenedetect = require("scenedetect", "curate", "shot detection")
    backends = getattr(scenedetect, "AVAILABLE_BACKENDS", {}) or {}
    backend = "pyav" if "pyav" in backends else "opencv"
    options = {"suppress_output": True} if backend == "pyav" else {}
    thumbs: list[np.ndarray] = []
    times: list[float] = []
    try:
        with warnings.catch_warnings(), _quiet(logging.getLogger("pyscenedetect")):
            warnings.simplefilter("ignore", DeprecationWarning)
            stream = scenedetect.open_video(str(probe.path), backend=backend, **options)
            manager = scenedetect.SceneManager()
            manager.add_detector(_make_detector(params))
            manager.add_detector(_thumb_recorder(scenedetect, probe.fps, thumbs, times))
            manager.detect_scenes(video=stream)
            scenes = manager.get_scene_list(start_in_scene=True)
    except Exception as exc:  # noqa: BLE001 - scenedetect raises its own (VideoOpenFailure) and cv2 errors
        raise DatasetError(
            f"shot detection failed on {probe.path}: {exc}",
            hint="the video may be damaged; fetch it again",
            path=probe.path,
        ) from None
    in_order = _frame_index(probe, times) == np.arange(len(times))
    readable = int(np.argmin(in_order)) if not in_order.all() else min(len(times), probe.frame_count)
    starts = _frame_index(probe, [_seconds(start, probe.fps) for start, _ in scenes])
    cuts = sorted({int(c) for c in starts if 0 < c < readable})
    return _Proposals(cuts, np.asarray(thumbs[:readable], dtype=np.float32), readable)


def _change(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


def confirm_cuts(thumbs: np.ndarray, proposals: Sequence[int], window: int, ratio: float) -> list[int]:
    """The proposed cuts that are real (see the module docstring): frame indices, ascending.

    ``thumbs`` is (N, h, w, 3) float, one per frame; ``window`` the minimum shot length in frames.
    """
    count = thumbs.shape[0]
    window = max(1, window)
    accepted: list[tuple[int, float]] = []  # (frame, strength)
    for proposal in sorted(proposals):
        start = accepted[-1][0] if accepted else 0
        reach = max(2, window // 2)  # no second cut can be this close: the largest change here is the cut
        near = range(max(start + 1, proposal - reach), min(count, proposal + reach + 1))
        if not near:
            continue
        cut = max(near, key=lambda k: _change(thumbs[k - 1], thumbs[k]))

        def median(a: int, b: int, start: int = start) -> np.ndarray:
            return np.median(thumbs[max(start, a) : min(count, b)], axis=0)

        before, after = median(cut - window, cut), median(cut, cut + window)
        earlier = median(cut - 2 * window, cut - window) if cut - window > start else before
        later = median(cut + window, cut + 2 * window) if cut + window < count else after
        across = _change(before, after)
        within = max(_change(earlier, before), _change(after, later), 1.0)
        strength = across / within
        if strength < ratio:
            continue
        if accepted and cut - accepted[-1][0] < window:
            if strength > accepted[-1][1]:  # two cuts closer than a shot: keep the stronger
                accepted[-1] = (cut, strength)
            continue
        accepted.append((cut, strength))
    return [cut for cut, _ in accepted]


def detect_shots(video: str | Path | VideoProbe, params: ShotParams = ShotParams()) -> list[Shot]:
    """Shots of a video (one shot when it has no cut). They cover the frames that decode: when
    decoding stops early (a damaged file) the last shot ends there."""
    probe = video if isinstance(video, VideoProbe) else probe_video(video)
    found = _proposals(probe, params)
    if found.readable == 0:
        raise DatasetError(
            f"no frame of {probe.path} decodes", hint="the file is damaged; fetch it again", path=probe.path
        )
    window = int(round(params.min_shot_s * probe.fps))
    cuts = confirm_cuts(found.thumbs, found.cuts, window, params.cut_ratio)
    # Cut positions as frame indices; the frame times make the seconds exact for VFR video.
    bounds = [0, *cuts, found.readable]  # strictly increasing: every shot has frames
    return [Shot(i, a, b, probe.frame_time(a), probe.frame_time(b)) for i, (a, b) in enumerate(zip(bounds, bounds[1:]))]


def damage_note(probe: VideoProbe, shots: Sequence[Shot]) -> str | None:
    """How much of a truncated or damaged file could be read (None: all of it): the probe knows a
    file cut off at the end, the shots where decoding stops in the middle."""
    note = probe.readable_note()
    if note is None and shots and shots[-1].end_frame < probe.frame_count:
        note = (
            f"decoding stops at {shots[-1].end_s:.2f} s of {probe.duration_s:.2f} s "
            f"({100 * shots[-1].end_s / probe.duration_s:.0f}%): the file is damaged there"
        )
    return note


def cached_shots(video_path: Path, cache_path: Path, params: ShotParams = ShotParams()) -> list[Shot]:
    """Shots from ``cache_path`` when it was made from this file with these parameters, else detect
    and write the cache (atomically)."""
    stat = video_path.stat()
    key = {"version": SHOTS_CACHE_VERSION, "params": asdict(params), "video": video_path.name, "size": stat.st_size}
    if cache_path.exists():
        try:
            data = read_json(cache_path)
            if {k: data.get(k) for k in key} == key:
                return [Shot(**s) for s in data["shots"]]
        except (DatasetError, KeyError, TypeError):
            pass  # a damaged cache is recomputed
    shots = detect_shots(video_path, params)
    atomic_write_json(cache_path, {**key, "shots": [asdict(s) for s in shots]})
    return shots
