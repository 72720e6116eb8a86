"""Writing the synthetic benchmark to disk in the Ref-VPS format.

:func:`generate_benchmark` plans ``clips`` clips, renders each frame by frame (memory stays flat at
any size) and writes frames, label maps and both JSON index files through
:class:`refvps.dataset.DatasetWriter`. A clip's JSON entries are written after its last frame, so an
interrupted run resumes: clips whose entries are already there, with the same plan, are skipped, and
a half-written clip is rendered again. Output is byte-identical for the same arguments (on the same
platform and library versions: NumPy and OpenCV round floating point the same way from run to run,
but not necessarily across CPU architectures or releases).
"""

from __future__ import annotations

import json
import operator
import os
import re
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Sequence

from refvps.dataset.format import (
    CLIPS_FILE,
    EXPRESSIONS_FILE,
    FRAME_EXT,
    FRAMES_DIR,
    MASK_EXT,
    MASKS_DIR,
    DatasetWriter,
    frame_name,
    read_index,
)
from refvps.errors import UsageError
from refvps.progress import NO_PROGRESS, Progress
from refvps.synth.plan import ClipSpec, plan_clip
from refvps.synth.render import ClipRenderer

MIN_SIZE = (32, 32)
MAX_SIZE = (4096, 4096)
MIN_FRAMES = 8
MAX_FRAMES = 2000
FRAMES_STAGE = "frames"  # the progress stage: frames written, over all clips
REFVPS_SCALE = {"clips": 111, "size": (1024, 576), "frames": (72, 192)}  # ~5.5 s average, like Ref-VPS
_LAYOUT = {FRAMES_DIR, MASKS_DIR, EXPRESSIONS_FILE, CLIPS_FILE}


def parse_size(text: str) -> tuple[int, int]:
    """``"256x144"`` -> (256, 144); raises :class:`UsageError` on anything else."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
    if not match:
        raise UsageError(f"size {text!r} is not WIDTHxHEIGHT", hint="write it like 256x144 or 1024x576")
    return check_size((int(match.group(1)), int(match.group(2))))


def check_size(size: Sequence[int]) -> tuple[int, int]:
    values = tuple(_integer(v) for v in size) if isinstance(size, (tuple, list)) else ()
    if len(values) != 2 or None in values:
        raise UsageError(f"size {size!r} is not (width, height)", hint="pass two integers, e.g. (256, 144)")
    width, height = values
    if not (MIN_SIZE[0] <= width <= MAX_SIZE[0] and MIN_SIZE[1] <= height <= MAX_SIZE[1]):
        raise UsageError(
            f"size {width}x{height} is outside {MIN_SIZE[0]}x{MIN_SIZE[1]} .. {MAX_SIZE[0]}x{MAX_SIZE[1]}",
            hint="use e.g. 256x144 (default) or 1024x576 (Ref-VPS scale)",
        )
    return width, height


def parse_frames(text: str) -> int | tuple[int, int]:
    """``"24"`` -> 24; ``"60-400"`` -> (60, 400), a length drawn per clip from that range."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", str(text))
    if not match:
        raise UsageError(
            f"frames {text!r} is not a number or a range", hint="write e.g. 24, or 60-400 for varied lengths"
        )
    if match.group(2) is None:
        return check_frames(int(match.group(1)))
    return check_frames((int(match.group(1)), int(match.group(2))))


def _integer(value) -> int | None:
    """``value`` as an int if it is an integer (NumPy integers included, booleans not)."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def check_frames(frames) -> int | tuple[int, int]:
    raw = tuple(frames) if isinstance(frames, (tuple, list)) else (frames,)
    values = tuple(_integer(v) for v in raw)
    if len(values) not in (1, 2) or None in values:
        raise UsageError(f"frames {frames!r} is not an integer or a (low, high) pair", hint="e.g. 24 or (60, 400)")
    if any(not MIN_FRAMES <= v <= MAX_FRAMES for v in values):
        raise UsageError(
            f"frames {frames!r}: a clip has {MIN_FRAMES} to {MAX_FRAMES} frames",
            hint="e.g. 24 (default), or 72-192 for Ref-VPS-like lengths",
        )
    if len(values) == 2:
        if values[0] > values[1]:
            raise UsageError(f"frames range {values[0]}-{values[1]} is reversed", hint=f"write {values[1]}-{values[0]}")
        return (values[0], values[1]) if values[0] != values[1] else values[0]
    return values[0]


def plan_benchmark(clips: int = 12, seed: int = 0, size=(256, 144), frames=24) -> list[ClipSpec]:
    """The plans of every clip, checked arguments included (nothing is rendered)."""
    n_clips, seed_value = _integer(clips), _integer(seed)
    if n_clips is None or n_clips < 1:
        raise UsageError(f"clips must be a positive integer, got {clips!r}", hint="e.g. --clips 12")
    if seed_value is None or seed_value < 0:
        raise UsageError(f"seed must be a non-negative integer, got {seed!r}", hint="e.g. --seed 0")
    clips, seed = n_clips, seed_value
    size = check_size(size)
    frames = check_frames(frames)
    return [plan_clip(seed, index, size=size, frames=frames) for index in range(clips)]


def generate_benchmark(
    out: str | Path,
    clips: int = 12,
    seed: int = 0,
    size=(256, 144),
    frames=24,
    progress: Progress = NO_PROGRESS,
    *,
    workers: int = 1,
    jpeg_quality: int = 95,
) -> Path:
    """Write the synthetic benchmark to ``out`` and return its path.

    ``size`` is (width, height); ``frames`` a length or a (low, high) range drawn per clip.
    ``progress`` reports the stage ``"frames"`` (total = all frames of all clips; frames a previous
    run finished count as done from the start). ``workers`` > 1 renders clips in parallel processes
    (same bytes as one worker). Re-running with the same arguments finishes an interrupted run and
    redoes nothing.
    """
    specs = plan_benchmark(clips, seed, size, frames)
    n_workers = _integer(workers)
    if n_workers is None or n_workers < 1:
        raise UsageError(f"workers must be a positive integer, got {workers!r}", hint="e.g. --workers 2")
    out = Path(out)
    check_destination(out, specs)
    writer = DatasetWriter(out, jpeg_quality=jpeg_quality)
    finished = {spec.clip_id for spec in finished_clips(out, specs)}
    todo = [spec for spec in specs if spec.clip_id not in finished]
    with progress.stage(FRAMES_STAGE, total=sum(spec.frames for spec in specs)):
        progress.update(FRAMES_STAGE, sum(spec.frames for spec in specs if spec.clip_id in finished))
        if n_workers == 1 or len(todo) <= 1:
            for spec in todo:
                write_clip(writer, spec, progress)
        else:
            with ProcessPoolExecutor(max_workers=min(n_workers, len(todo))) as pool:
                futures = {pool.submit(_write_clip_job, str(out), jpeg_quality, spec): spec for spec in todo}
                for future in as_completed(futures):
                    future.result()
                    progress.advance(FRAMES_STAGE, futures[future].frames, note=futures[future].clip_id)
    return out


def finished_clips(out: str | Path, specs: Sequence[ClipSpec]) -> list[ClipSpec]:
    """The clips of ``specs`` that a previous run into ``out`` finished (they are not rendered again)."""
    out = Path(out)
    if not out.is_dir():
        return []
    videos, metas = _existing_entries(out)
    return [spec for spec in specs if _is_complete(out, spec, videos, metas)]


def write_clip(writer: DatasetWriter, spec: ClipSpec, progress: Progress = NO_PROGRESS) -> list[str]:
    """Render ``spec`` frame by frame into ``writer``'s dataset; its JSON entries are written last.

    Each frame written advances the ``"frames"`` stage of ``progress``.
    """
    names = []
    for t, rendered in enumerate(ClipRenderer(spec)):
        name = frame_name(t)
        writer.write_frame(spec.clip_id, name, rendered.image)
        writer.write_label(spec.clip_id, name, rendered.label)
        names.append(name)
        progress.advance(FRAMES_STAGE, note=spec.clip_id)
    _remove_stale(writer.root, spec.clip_id, names)
    writer.update_meta(spec.meta())
    writer.update_expressions(spec.clip_id, spec.expressions, frames=names)
    return names


def _remove_stale(root: Path, clip_id: str, names: list[str]) -> None:
    """Drop frames or masks of this clip left by an interrupted run with more frames."""
    keep = set(names)
    for folder, ext in ((root / FRAMES_DIR / clip_id, FRAME_EXT), (root / MASKS_DIR / clip_id, MASK_EXT)):
        for path in folder.glob(f"*{ext}"):
            if path.stem not in keep:
                path.unlink()


def _write_clip_job(root: str, jpeg_quality: int, spec: ClipSpec) -> str:
    write_clip(DatasetWriter(root, jpeg_quality=jpeg_quality), spec)
    return spec.clip_id


def _existing_entries(out: Path) -> tuple[dict, dict]:
    """The clips already listed in ``meta_expressions.json`` and ``clips.json`` of ``out``."""
    return _index(out / EXPRESSIONS_FILE, "videos"), _index(out / CLIPS_FILE, "clips")


def _index(path: Path, key: str) -> dict:
    return read_index(path, key, hint="generate into a new folder, or delete this one and run the same command again")[
        key
    ]


def check_destination(out: Path, specs: list[ClipSpec]) -> None:
    """Refuse to write into a folder that holds anything but this very benchmark (or part of it)."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a folder", hint="choose another output path", path=out)
    if not out.exists():
        return
    strangers = sorted(e for e in os.listdir(out) if e not in _LAYOUT and not e.startswith("."))
    if strangers:
        raise UsageError(
            f"{out} is not empty and is not a synthetic benchmark (it holds {', '.join(strangers[:3])}"
            f"{', ...' if len(strangers) > 3 else ''})",
            hint="choose a new or empty folder; refvps synth never writes into other data",
            path=out,
        )
    videos, metas = _existing_entries(out)
    planned = {spec.clip_id: spec for spec in specs}
    for clip_id in sorted(set(videos) | set(metas)):
        spec = planned.get(clip_id)
        if spec is None:
            raise UsageError(
                f"{out} already holds clip {clip_id}, which is not part of this benchmark "
                f"({len(specs)} clips, seed {specs[0].seed})",
                hint="use a new folder, or repeat the arguments that made it (a larger --clips extends it)",
                path=out,
            )
        if clip_id in metas and metas[clip_id] != json.loads(json.dumps(spec.meta().to_json())):
            raise UsageError(
                f"{out} holds clip {clip_id} made with other settings (size, frames or generator version)",
                hint="use a new folder, or repeat the --size and --frames that made it",
                path=out / CLIPS_FILE,
            )


def _is_complete(out: Path, spec: ClipSpec, videos: dict, metas: dict) -> bool:
    """Whether a previous run finished this clip: its entries match the plan and its files exist."""
    entry = videos.get(spec.clip_id)
    if not isinstance(entry, dict) or spec.clip_id not in metas:
        return False
    names = [frame_name(t) for t in range(spec.frames)]
    if entry.get("frames") != names:
        return False
    expected = {e.exp_id: e.to_json() for e in spec.expressions}
    if entry.get("expressions") != expected:
        return False
    frames_dir, masks_dir = out / FRAMES_DIR / spec.clip_id, out / MASKS_DIR / spec.clip_id
    return all((frames_dir / f"{n}{FRAME_EXT}").is_file() and (masks_dir / f"{n}{MASK_EXT}").is_file() for n in names)
