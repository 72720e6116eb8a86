"""Dataset statistics: the paper's Table A and Figure A for any Ref-VPS-format dataset."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from refvps.dataset.format import REFVPS_FPS, Clip, Dataset, image_size
from refvps.dataset.palette import IGNORE_INDEX, read_label_png
from refvps.progress import NO_PROGRESS, Progress


@dataclass
class CategoryStats:
    category: str
    clips: int = 0
    frames: int = 0
    concepts: int = 0


@dataclass
class ClipStats:
    clip_id: str
    concept: str | None
    category: str | None
    frames: int
    fps: float
    seconds: float
    width: int | None
    height: int | None
    expressions: int
    frames_with_ignore: int | None
    frames_with_target: int | None


@dataclass
class DatasetStats:
    """Table A of the paper plus per-category counts and the share of frames with Ignore pixels."""

    root: str
    clips: int
    frames: int
    concepts: int
    expressions: int
    avg_length_s: float
    min_length_s: float
    max_length_s: float
    annotation_fps: list[float]
    min_resolution: tuple[int, int] | None
    max_resolution: tuple[int, int] | None
    ignore_frame_share: float | None
    target_frame_share: float | None
    per_category: list[CategoryStats] = field(default_factory=list)
    per_clip: list[ClipStats] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("min_resolution", "max_resolution"):
            if data[key] is not None:
                data[key] = list(data[key])
        return data

    def table_a(self) -> list[tuple[str, str]]:
        """The rows of the paper's Table A, formatted as the paper prints them."""

        def resolution(value: tuple[int, int] | None) -> str:
            return f"{value[0]} × {value[1]}" if value else "n/a"

        fps = ", ".join(f"{f:g}" for f in self.annotation_fps) or "n/a"
        return [
            ("Clips", str(self.clips)),
            ("Frames", str(self.frames)),
            ("Concepts", str(self.concepts)),
            ("Avg len. (s)", f"{self.avg_length_s:.2f}"),
            ("Ann FPS", fps),
            ("Min-resolution", resolution(self.min_resolution)),
            ("Max-resolution", resolution(self.max_resolution)),
        ]


def compute_stats(
    root: str | Path,
    *,
    read_masks: bool = True,
    progress: Progress = NO_PROGRESS,
) -> DatasetStats:
    """Statistics of the dataset at ``root``.

    Lengths are frames / fps per clip. Resolutions are (width, height) ordered by pixel count (then width).
    With ``read_masks`` every label map is decoded to count frames with Ignore pixels and with target pixels.
    ``progress`` gets the stage ``"reading"``: one step per clip, noted with its id.
    """
    dataset = Dataset(root)
    per_clip: list[ClipStats] = []
    with progress.stage("reading", total=len(dataset)):
        for clip in dataset:
            per_clip.append(clip_stats(clip, read_masks=read_masks))
            progress.advance("reading", note=clip.id)
    return summarise_clips(str(dataset.root), per_clip)


def clip_stats(clip: Clip, *, read_masks: bool = True) -> ClipStats:
    """One clip's row: length, size (from clips.json, else its first frame) and, with ``read_masks``,
    how many frames hold Ignore pixels and target pixels."""
    meta = clip.meta
    width, height = meta.width, meta.height
    if (width is None or height is None) and clip.frame_names:
        first = clip.frame_path(clip.frame_names[0])
        if first.exists():
            width, height = image_size(first)
    with_ignore = with_target = None
    if read_masks and clip.has_masks():
        with_ignore = with_target = 0
        targets = {t for e in clip.expressions for t in e.target_labels} or {1}
        for name in clip.frame_names:
            path = clip.mask_path(name)
            if not path.exists():
                continue
            counts = np.bincount(read_label_png(path).ravel(), minlength=256)
            with_ignore += int(counts[IGNORE_INDEX] > 0)
            with_target += int(any(counts[t] > 0 for t in targets if 0 < t < 255))
    fps = float(meta.fps or REFVPS_FPS)
    return ClipStats(
        clip_id=clip.id,
        concept=meta.concept,
        category=meta.category,
        frames=len(clip.frame_names),
        fps=fps,
        seconds=len(clip.frame_names) / fps,
        width=width,
        height=height,
        expressions=len(clip.expressions),
        frames_with_ignore=with_ignore,
        frames_with_target=with_target,
    )


def summarise_clips(root: str, per_clip: list[ClipStats]) -> DatasetStats:
    """Aggregate per-clip statistics into the dataset's table."""
    frames = sum(c.frames for c in per_clip)
    lengths = [c.seconds for c in per_clip]
    resolutions = sorted(
        {(c.width, c.height) for c in per_clip if c.width and c.height}, key=lambda r: (r[0] * r[1], r[0])
    )
    by_category: dict[str, list[ClipStats]] = defaultdict(list)
    for clip in per_clip:
        by_category[clip.category or "(none)"].append(clip)
    categories = [
        CategoryStats(
            category=name,
            clips=len(items),
            frames=sum(c.frames for c in items),
            concepts=len({c.concept for c in items if c.concept}),
        )
        for name, items in sorted(by_category.items())
    ]
    counted = [c for c in per_clip if c.frames_with_ignore is not None]
    counted_frames = sum(c.frames for c in counted)
    return DatasetStats(
        root=root,
        clips=len(per_clip),
        frames=frames,
        concepts=len({c.concept for c in per_clip if c.concept}),
        expressions=sum(c.expressions for c in per_clip),
        avg_length_s=float(np.mean(lengths)) if lengths else 0.0,
        min_length_s=float(min(lengths)) if lengths else 0.0,
        max_length_s=float(max(lengths)) if lengths else 0.0,
        annotation_fps=sorted(Counter(c.fps for c in per_clip)),
        min_resolution=resolutions[0] if resolutions else None,
        max_resolution=resolutions[-1] if resolutions else None,
        ignore_frame_share=(sum(c.frames_with_ignore or 0 for c in counted) / counted_frames)
        if counted_frames
        else None,
        target_frame_share=(sum(c.frames_with_target or 0 for c in counted) / counted_frames)
        if counted_frames
        else None,
        per_category=categories,
        per_clip=per_clip,
    )


def plot_length_histogram(stats: DatasetStats, path: str | Path, *, bin_s: float = 0.5) -> Path:
    """Figure A: the distribution of clip lengths in seconds, saved as a PNG (atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from refvps.fileio import atomic_write_with

    lengths = [c.seconds for c in stats.per_clip]
    top = max(lengths, default=1.0)
    bins: int | list[float] = np.arange(0.0, top + bin_s, bin_s).tolist() if top > 0 else 10
    figure, axis = plt.subplots(figsize=(6, 3.2), dpi=120)
    axis.hist(lengths, bins=bins, color="#4c72b0", edgecolor="white")
    axis.set_xlabel("clip length (s)")
    axis.set_ylabel("clips")
    axis.set_title(f"Clip lengths ({stats.clips} clips, mean {stats.avg_length_s:.2f} s)")
    axis.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    path = Path(path)
    atomic_write_with(path, lambda buf: figure.savefig(buf, format="png"))
    plt.close(figure)
    return path
