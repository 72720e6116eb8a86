"""Small hand-built datasets and predictions for the scorer tests (independent of the synthetic generator).

Each clip has a moving ellipse as its target, an Ignore band along part of its boundary, an Ignore
rectangle in some frames, and frames where the target is absent. Predictions are perturbed copies
(shifted, grown, noisy, partly missed) so that J, F and TempCon take many values.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from refvps.dataset import ClipMeta, DatasetWriter, Expression, frame_name

H, W = 36, 52
CLIPS = {  # clip id -> (frames, concept, category)
    "clip_a": (7, "smoke_rising", "motion_patterns"),
    "clip_b": (5, "smoke_rising", "motion_patterns"),
    "clip_c": (6, "ice_melting", "temporal_object_changes"),
}
EXPRESSIONS = ("0", "1", "2", "3")


def make_labels(seed: int, frames: int, height: int = H, width: int = W) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    labels = []
    for t in range(frames):
        cy, cx = height / 2 + rng.integers(-2, 3), width / 3 + 3 * t
        ry, rx = height / 4, width / 5 + t
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
        label = (inside < 1).astype(np.uint8)
        label[(np.abs(inside - 1) < 0.25) & (xx > cx)] = 255  # Ignore along the right part of the edge
        if t % 3 == 1:
            label[0:5, width - 12 : width - 2] = 255  # an Ignore rectangle at the top right
        if t == frames - 1:
            label[label == 1] = 0  # the target is gone in the last frame
        labels.append(label)
    return labels


def make_predictions(seed: int, labels: list[np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Four differently wrong predictions (bool masks) of one clip."""
    rng = np.random.default_rng(seed + 100)
    targets = [label == 1 for label in labels]
    preds = {
        "0": [np.roll(t, (1, 2), axis=(0, 1)) for t in targets],
        "1": [t | np.roll(t, 3, axis=1) | (label == 255) for t, label in zip(targets, labels)],  # grown, into Ignore
        "2": [t ^ (rng.random(t.shape) < 0.05) for t in targets],
        "3": [t if i % 2 else np.zeros_like(t) for i, t in enumerate(targets)],
    }
    return preds


def write_dataset(root: Path, clips: dict = CLIPS, height: int = H, width: int = W) -> dict[str, list[np.ndarray]]:
    """Write a valid dataset; return clip id -> label maps."""
    writer = DatasetWriter(root)
    truth = {}
    for index, (clip_id, (frames, concept, category)) in enumerate(clips.items()):
        labels = make_labels(index, frames, height, width)
        rgb = [np.full((height, width, 3), 40 + 10 * t, np.uint8) for t in range(frames)]
        expressions = [
            Expression(e, f"the {concept} in {clip_id}, phrasing {e}", 1, "ab"[int(e) // 2]) for e in EXPRESSIONS
        ]
        meta = ClipMeta(clip_id, concept=concept, category=category, fps=24, width=width, height=height)
        writer.write_clip(clip_id, rgb, labels, expressions, meta)
        truth[clip_id] = labels
    return truth


def encode_png(mask: np.ndarray, style: str = "L255") -> bytes:
    """A mask as PNG bytes: greyscale 0/255, palette 0/1, RGB colour, or greyscale with mixed values."""
    mask = np.asarray(mask, bool)
    if style == "L255":
        image = Image.fromarray(np.where(mask, 255, 0).astype(np.uint8))
    elif style == "P01":
        image = Image.frombytes("P", (mask.shape[1], mask.shape[0]), mask.astype(np.uint8).tobytes())
        image.putpalette([0, 0, 0, 128, 0, 0] + [0] * 762)
    elif style == "RGB":
        rgb = np.zeros((*mask.shape, 3), np.uint8)
        rgb[mask, 1] = 200  # only the green channel is set
        image = Image.fromarray(rgb)
    elif style == "Lmixed":
        values = np.where(mask, (np.arange(mask.size).reshape(mask.shape) % 254) + 1, 0)
        image = Image.fromarray(values.astype(np.uint8))
    else:
        raise ValueError(style)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_png_tree(out: Path, predictions: dict, *, style: str = "L255", skip: set = frozenset()) -> Path:
    """predictions: (clip, exp) -> list of masks. ``skip`` holds (clip, exp, frame index) left out."""
    for (clip_id, exp_id), masks in predictions.items():
        for t, mask in enumerate(masks):
            if (clip_id, exp_id, t) in skip:
                continue
            path = out / clip_id / exp_id / f"{frame_name(t)}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(encode_png(mask, style))
    return out


def write_zip(path: Path, tree: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for file in sorted(tree.rglob("*")):
            if file.is_file():
                archive.write(file, prefix + file.relative_to(tree).as_posix())
    return path


def rle_of(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def write_rle_json(path: Path, predictions: dict, *, skip: set = frozenset()) -> Path:
    entries = []
    for (clip_id, exp_id), masks in predictions.items():
        for t, mask in enumerate(masks):
            if (clip_id, exp_id, t) not in skip:
                entries.append(
                    {"video": clip_id, "exp_id": exp_id, "frame": frame_name(t), "segmentation": rle_of(mask)}
                )
    path.write_text(json.dumps(entries))
    return path


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Keep the ground-truth cache of every test out of the user's home."""
    monkeypatch.setenv("REFVPS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "refvps-cache"))


@pytest.fixture(scope="session")
def scored_case(tmp_path_factory):
    """A dataset, its predictions as a PNG tree, a zip and an RLE JSON, and the arrays behind them."""
    root = tmp_path_factory.mktemp("scoring_case")
    truth = write_dataset(root / "dataset")
    predictions = {}
    for index, (clip_id, labels) in enumerate(truth.items()):
        for exp_id, masks in make_predictions(index, labels).items():
            predictions[(clip_id, exp_id)] = masks
    tree = write_png_tree(root / "pred", predictions)
    (tree / ".done").mkdir()
    (tree / ".done" / "clip_a.json").write_text("{}")  # the writer's resume markers are ignored
    (tree / "run.json").write_text("{}")  # and so are non-PNG files
    return {
        "root": root,
        "dataset": root / "dataset",
        "truth": truth,
        "predictions": predictions,
        "tree": tree,
        "zip": write_zip(root / "pred.zip", tree, prefix="submission/Annotations/"),
        "rle": write_rle_json(root / "pred.json", predictions),
    }
