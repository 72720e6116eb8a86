"""A small Ref-VPS-format dataset for the REM tests: two moving discs, one named by each sentence.

Written with :class:`refvps.dataset.DatasetWriter`, so the tests do not depend on the synthetic
benchmark generator. Clip ``c`` has a red and a blue disc moving in opposite directions; the
expressions of object 1 (red) and object 2 (blue) name the colour, so the text decides the target.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from refvps.dataset.format import ClipMeta, DatasetWriter, Expression

RED = (220, 40, 40)
BLUE = (40, 60, 220)


def disc(shape: tuple[int, int], cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def make_toy_dataset(
    root: Path, *, clips: int = 2, frames: int = 8, size: tuple[int, int] = (48, 64), seed: int = 0
) -> Path:
    """``clips`` clips of ``frames`` frames at ``size`` = (height, width); returns ``root``."""
    rng = np.random.default_rng(seed)
    writer = DatasetWriter(root)
    h, w = size
    for index in range(clips):
        background = (rng.integers(60, 120, size=(h, w, 1)) + rng.integers(0, 20, size=(h, w, 3))).astype(np.uint8)
        start_red = rng.uniform([0.3 * h, 0.2 * w], [0.7 * h, 0.4 * w])
        start_blue = rng.uniform([0.3 * h, 0.6 * w], [0.7 * h, 0.8 * w])
        r = rng.uniform(0.12, 0.2) * min(h, w)
        rgb_frames, labels = [], []
        for t in range(frames):
            shift = (t - frames / 2) * 0.02 * w
            red = disc((h, w), start_red[0], start_red[1] + shift, r)
            blue = disc((h, w), start_blue[0], start_blue[1] - shift, r) & ~red
            image = background.copy()
            image[red] = RED
            image[blue] = BLUE
            label = np.zeros((h, w), np.uint8)
            label[red] = 1
            label[blue] = 2
            rgb_frames.append(image)
            labels.append(label)
        clip_id = f"toy{index:03d}"
        expressions = [
            Expression("0", "the red disc", 1, "a"),
            Expression("1", "the blue disc", 2, "a"),
            Expression("2", "the red ball moving", 1, "b"),
            Expression("3", "the blue ball moving", 2, "b"),
        ]
        writer.write_clip(
            clip_id,
            rgb_frames,
            labels,
            expressions,
            ClipMeta(clip_id, concept="toy", category="toy", width=w, height=h),
        )
    return root


def make_refer_dataset(root: Path) -> tuple[Path, Path]:
    """A Ref-COCO-style source in the refer format (refs(unc).p + instances.json) with one 40 x 60
    image, one polygon and two training sentences; returns (refer folder, image folder)."""
    images = root / "train2014"
    images.mkdir(parents=True)
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(images / "COCO_train2014_000000000001.jpg")
    instances = {
        "images": [{"id": 1, "file_name": "COCO_train2014_000000000001.jpg", "height": 40, "width": 60}],
        # A polygon square from (10, 5) to (30, 25): 20 x 20 pixels.
        "annotations": [
            {
                "id": 7,
                "image_id": 1,
                "category_id": 1,
                "segmentation": [[10, 5, 30, 5, 30, 25, 10, 25]],
                "area": 400,
                "bbox": [10, 5, 20, 20],
                "iscrowd": 0,
            }
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    refs = [
        {
            "ref_id": 0,
            "ann_id": 7,
            "image_id": 1,
            "split": "train",
            "category_id": 1,
            "file_name": "x.jpg",
            "sentences": [
                {"sent": "the square", "raw": "The square.", "tokens": ["the", "square"]},
                {"sent": "black box on top", "raw": "", "tokens": []},
            ],
        },
        {
            "ref_id": 1,
            "ann_id": 7,
            "image_id": 1,
            "split": "val",
            "category_id": 1,
            "file_name": "x.jpg",
            "sentences": [{"sent": "held out", "raw": "", "tokens": []}],
        },
    ]
    (root / "refcoco").mkdir()
    (root / "refcoco" / "instances.json").write_text(json.dumps(instances))
    with open(root / "refcoco" / "refs(unc).p", "wb") as handle:
        pickle.dump(refs, handle)
    return root / "refcoco", images
