"""Writing predictions as a PNG tree: ``<out>/<clip_id>/<exp_id>/<frame>.png``.

Masks are greyscale 0/255 PNGs (any nonzero pixel is foreground for the scorer). Each file is
written atomically, and a clip is marked finished only once all its expressions are written, so a
baseline run that is interrupted resumes at the first unfinished clip.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from refvps.dataset.format import FRAMES_DIR, MASKS_DIR
from refvps.errors import UsageError
from refvps.fileio import atomic_write_bytes, atomic_write_json

DONE_DIR = ".done"


def done_clips(out: str | Path) -> set[str]:
    """Clips already finished in a prediction folder (read without creating the folder)."""
    folder = Path(out) / DONE_DIR
    return {p.stem for p in folder.glob("*.json")} if folder.is_dir() else set()


def check_prediction_folder(out: str | Path, dataset_root: str | Path) -> None:
    """Refuse an ``--out`` that is a file, or that would mix predictions into the dataset's own folders."""
    out, dataset_root = Path(out), Path(dataset_root)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder", hint="pass a new folder for the predictions", path=out)
    resolved, root = out.resolve(), dataset_root.resolve()
    if resolved == root or any(resolved.is_relative_to(root / part) for part in (FRAMES_DIR, MASKS_DIR)):
        raise UsageError(
            f"--out {out} is the dataset {dataset_root} or one of its frame or mask folders; the predictions "
            "would be written among its files",
            hint="write predictions to a folder of their own, e.g. --out predictions/NAME",
            path=out,
        )


def encode_binary_png(mask: np.ndarray) -> bytes:
    """A boolean (H, W) mask as a greyscale PNG with values 0 and 255."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a mask is 2-D (H, W), got shape {mask.shape}")
    image = Image.fromarray(np.where(mask != 0, 255, 0).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


class PredictionWriter:
    """Writes one method's predictions for a dataset, resumably.

    >>> writer = PredictionWriter("preds/")                          # doctest: +SKIP
    >>> if not writer.is_done("clip_0001"):                          # doctest: +SKIP
    ...     writer.write("clip_0001", "0", "00000", mask)
    ...     writer.mark_done("clip_0001")
    """

    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)

    def mask_path(self, clip_id: str, exp_id: str, frame: str) -> Path:
        return self.out / clip_id / str(exp_id) / f"{frame}.png"

    def write(self, clip_id: str, exp_id: str, frame: str, mask: np.ndarray) -> Path:
        return atomic_write_bytes(self.mask_path(clip_id, exp_id, frame), encode_binary_png(mask))

    def write_shared(self, clip_id: str, exp_ids: list[str], frame: str, mask: np.ndarray) -> None:
        """Write one mask as the prediction of several expressions (encoded once)."""
        data = encode_binary_png(mask)
        for exp_id in exp_ids:
            atomic_write_bytes(self.mask_path(clip_id, exp_id, frame), data)

    def write_many(self, clip_id: str, exp_id: str, frames: list[str], masks: np.ndarray) -> None:
        """Write a (T, H, W) stack of masks for the frames named in ``frames``."""
        if len(frames) != len(masks):
            raise ValueError(f"{len(frames)} frame names for {len(masks)} masks")
        for frame, mask in zip(frames, masks):
            self.write(clip_id, exp_id, frame, mask)

    def _done_path(self, clip_id: str) -> Path:
        return self.out / DONE_DIR / f"{clip_id}.json"

    def is_done(self, clip_id: str) -> bool:
        return self._done_path(clip_id).exists()

    def mark_done(self, clip_id: str, info: dict | None = None) -> None:
        atomic_write_json(self._done_path(clip_id), info or {})

    def done_clips(self) -> set[str]:
        return done_clips(self.out)
