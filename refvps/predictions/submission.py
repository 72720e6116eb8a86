"""``refvps export-submission``: the zip the official Ref-YouTube-VOS and MeViS servers score.

The servers take one PNG per (video, expression, frame) of the split, named with the benchmark's own
ids, and nothing else:

* Ref-YouTube-VOS (CodaLab competition 29139): ``Annotations/<video>/<exp_id>/<frame>.png``, the layout
  ReferFormer's ``docs/Ref-Youtube-VOS.md`` zips (``zip -r submission.zip Annotations``) and the authors'
  ``ref-yt/infer_ytvos_MS.py`` writes;
* MeViS (CodaLab competition 15094): ``<video>/<exp_id>/<frame>.png`` at the top of the zip ("directly
  packages 140 val video folders", henghuiding/MeViS ``README.md``).

Masks are written as 8-bit greyscale PNGs, 0 and 255 (as both upstream inference scripts save them).
The zip is checked before it is written: every expected mask present and of its frame's size;
predictions for anything else are left out and counted. It is written to a temporary file and
renamed, so an interrupted export leaves no half zip (docs/BENCHMARKS_SUITE.md).
"""

from __future__ import annotations

import logging
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from refvps.dataset.format import Clip, Dataset, image_size
from refvps.dataset.validate import require_valid
from refvps.errors import PredictionError, UsageError
from refvps.predictions.readers import PredictionSource, close_archives, open_predictions
from refvps.predictions.writer import encode_binary_png
from refvps.progress import NO_PROGRESS, Progress

log = logging.getLogger(__name__)

# benchmark -> (folder the masks go under in the zip, the name refvps convert gives the benchmark, splits)
SUBMISSIONS = {
    "ref-ytvos": ("Annotations", "Ref-YouTube-VOS", ("valid", "test")),
    "mevis": ("", "MeViS", ("valid",)),
}
_SHOWN = 5


@dataclass
class SubmissionReport:
    """What went into the zip, and what was left out."""

    path: Path
    benchmark: str
    videos: int = 0
    expressions: int = 0
    masks: int = 0
    left_out: dict[str, int] = field(default_factory=dict)  # predictions for things the split does not have


def export_submission(
    predictions: str | Path | PredictionSource,
    dataset: str | Path,
    benchmark: str,
    out: str | Path,
    *,
    progress: Progress = NO_PROGRESS,
) -> SubmissionReport:
    """Write the official server's zip for ``predictions`` of the converted split at ``dataset``."""
    if benchmark not in SUBMISSIONS:
        raise UsageError(f"no submission format for {benchmark!r}", hint=f"choose one of {', '.join(SUBMISSIONS)}")
    prefix, name, splits = SUBMISSIONS[benchmark]
    out = Path(out)
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder", hint="pass the zip file to write, e.g. submission.zip", path=out)
    require_valid(dataset, check_masks=False, require_masks=False)
    data = Dataset(dataset)
    _check_benchmark(data, name, splits, benchmark)
    source = predictions if isinstance(predictions, PredictionSource) else open_predictions(predictions)
    clips = [clip for clip in data if clip.expressions]
    _check_complete(source, clips)
    report = SubmissionReport(out, benchmark, left_out=_left_out(source, clips))
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive, progress.stage("clips", total=len(clips)):
            for clip in clips:
                _write_clip(archive, prefix, clip, source, report)
                progress.advance("clips", note=clip.id)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    finally:
        close_archives()  # a zip of predictions, opened by its reader
    if report.left_out:
        log.warning("predictions not in the split were left out of the zip: %s", report.left_out)
    return report


def video_name(clip: Clip) -> str:
    """The benchmark's own video id (clips.json ``source_id``, kept by ``refvps convert``), else the clip id."""
    return str(clip.meta.extra.get("source_id") or clip.id)


def _check_benchmark(data: Dataset, name: str, splits: tuple[str, ...], benchmark: str) -> None:
    found = {(m.get("benchmark"), m.get("split")) for m in data.raw_clips.values() if isinstance(m, dict)}
    names = {b for b, _ in found}
    if names != {name}:
        raise UsageError(
            f"{data.root} is not a converted {name} split (clips.json names {sorted(map(str, names)) or 'nothing'})",
            hint=f"convert the split with: refvps convert {benchmark} SRC --out ROOT --split {splits[0]}",
            path=data.root,
        )
    off = sorted({str(s) for _, s in found} - set(splits))
    if off:
        log.warning("the %s server scores the %s split(s); this dataset is %s", name, "/".join(splits), off)


@dataclass
class MissingMasks:
    """The masks of (clip, expression, frame) that predictions lack: how many, in which clips, the first few."""

    count: int = 0
    expressions: int = 0  # expressions missing at least one frame
    per_clip: dict[str, int] = field(default_factory=dict)
    first: list[tuple[str, str, str]] = field(default_factory=list)  # (clip, exp_id, frame)

    def counts(self, shown: int = _SHOWN) -> str:
        """``clip: n`` for the clips missing the most, e.g. ``vid3: 12, vid1: 2``."""
        largest = sorted(self.per_clip.items(), key=lambda kv: -kv[1])[:shown]
        return ", ".join(f"{clip}: {n}" for clip, n in largest)


def missing_masks(source: PredictionSource, clips: Iterable[Clip], shown: int = _SHOWN) -> MissingMasks:
    """What ``source`` lacks of every frame of every expression of ``clips`` (what a server scores)."""
    missing = MissingMasks()
    for clip in clips:
        predicted = source.index.get(clip.id, {})
        for expression in clip.expressions:
            frames = predicted.get(expression.exp_id, {})
            absent = [frame for frame in clip.frame_names if frame not in frames]
            if not absent:
                continue
            missing.count += len(absent)
            missing.expressions += 1
            missing.per_clip[clip.id] = missing.per_clip.get(clip.id, 0) + len(absent)
            room = shown - len(missing.first)
            missing.first += [(clip.id, expression.exp_id, frame) for frame in absent[: max(0, room)]]
    return missing


def _check_complete(source: PredictionSource, clips: list[Clip]) -> None:
    """Every (video, expression, frame) the server expects must be predicted: list what is not."""
    missing = missing_masks(source, clips)
    if missing.count:
        first = ", ".join("/".join(item) for item in missing.first)
        raise PredictionError(
            f"{missing.count} mask(s) the server expects are missing from {source.path}, in "
            f"{len(missing.per_clip)} video(s) ({missing.counts()}); first: {first}",
            hint="predict every frame of every expression of the split (refvps run-baseline writes them all); "
            "the server rejects or zeroes an incomplete submission",
            path=source.path,
        )


def _left_out(source: PredictionSource, clips: list[Clip]) -> dict[str, int]:
    expected = {clip.id: clip for clip in clips}
    left = {"clips": 0, "expressions": 0, "frames": 0}
    for clip_id, expressions in source.index.items():
        clip = expected.get(clip_id)
        if clip is None:
            left["clips"] += 1
            continue
        known = {e.exp_id for e in clip.expressions}
        frames = set(clip.frame_names)
        for exp_id, predicted in expressions.items():
            if exp_id not in known:
                left["expressions"] += 1
            else:
                left["frames"] += sum(1 for f in predicted if f not in frames)
    return {k: v for k, v in left.items() if v}


def _write_clip(
    archive: zipfile.ZipFile, prefix: str, clip: Clip, source: PredictionSource, report: SubmissionReport
) -> None:
    width, height = image_size(clip.frame_path(clip.frame_names[0]))
    predictions = source.clip(clip.id)
    video = video_name(clip)
    for expression in clip.expressions:
        for frame in clip.frame_names:
            mask = np.asarray(predictions.read_raw(expression.exp_id, frame, (height, width))) != 0
            member = "/".join(p for p in (prefix, video, expression.exp_id, f"{frame}.png") if p)
            archive.writestr(member, encode_binary_png(mask))
            report.masks += 1
        report.expressions += 1
    report.videos += 1
