"""Shot boundaries with PySceneDetect, so that no clip crosses a cut.

PySceneDetect returns no scenes for a video without cuts unless ``start_in_scene=True``
(PySceneDetect issue #282); with it, a single shot spans the whole video. Shots are given in frame
indices of the source video and in seconds from its first frame (through the frames' own times,
so variable frame rates are honoured).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from refvps.curation.video import VideoProbe, probe_video
from refvps.errors import DatasetError, UsageError, require
from refvps.fileio import atomic_write_json, read_json

DETECTORS = ("content", "adaptive")
DEFAULT_THRESHOLDS = {"content": 27.0, "adaptive": 3.0}
SHOTS_CACHE_VERSION = 1


@dataclass(frozen=True)
class ShotParams:
    """How shots are detected; part of the cache key, so changing one recomputes the shots."""

    detector: str = "content"
    # ContentDetector threshold, or AdaptiveDetector adaptive_threshold; None: the detector's default
    threshold: float | None = None
    min_shot_s: float = 0.25  # a cut closer than this to the previous one is ignored

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise UsageError(f"unknown shot detector {self.detector!r}", hint=f"use one of: {', '.join(DETECTORS)}")
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


def _make_detector(params: ShotParams, fps: float):
    detectors = require("scenedetect.detectors", "curate", "shot detection")
    min_len = max(1, int(round(params.min_shot_s * fps)))  # in frames: accepted by 0.6 and 0.7
    if params.detector == "adaptive":
        return detectors.AdaptiveDetector(adaptive_threshold=params.threshold, min_scene_len=min_len)
    return detectors.ContentDetector(threshold=params.threshold, min_scene_len=min_len)


def detect_shots(video: str | Path | VideoProbe, params: ShotParams = ShotParams()) -> list[Shot]:
    """Shots of a video. A video without cuts is one shot (``start_in_scene=True``).

    This is ``scenedetect.detect(path, detector, start_in_scene=True)`` spelled out, so that the
    PyAV backend can be opened with ``suppress_output=True``: ``detect`` would restore ffmpeg's
    default log callback for the whole process and let every later decoder print to stderr.
    """
    scenedetect = require("scenedetect", "curate", "shot detection")
    probe = video if isinstance(video, VideoProbe) else probe_video(video)
    detector = _make_detector(params, probe.fps)
    backends = getattr(scenedetect, "AVAILABLE_BACKENDS", {}) or {}
    backend = "pyav" if "pyav" in backends else "opencv"
    options = {"suppress_output": True} if backend == "pyav" else {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            stream = scenedetect.open_video(str(probe.path), backend=backend, **options)
            manager = scenedetect.SceneManager()
            manager.add_detector(detector)
            manager.detect_scenes(video=stream)
            scenes = manager.get_scene_list(start_in_scene=True)
    except Exception as exc:  # noqa: BLE001 - scenedetect raises its own (VideoOpenFailure) and cv2 errors
        raise DatasetError(
            f"shot detection failed on {probe.path}: {exc}",
            hint="the video may be damaged; fetch it again",
            path=probe.path,
        ) from None
    # Cut positions as frame indices; the frame times make the seconds exact for VFR video.
    starts = sorted({int(start.frame_num) for start, _ in scenes} | {0})
    starts = [s for s in starts if 0 <= s < probe.frame_count]
    bounds = starts + [probe.frame_count]  # strictly increasing: every shot has frames
    return [Shot(i, a, b, probe.frame_time(a), probe.frame_time(b)) for i, (a, b) in enumerate(zip(bounds, bounds[1:]))]


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
