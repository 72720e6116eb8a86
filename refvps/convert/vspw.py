"""VSPW "stuff": one expression "the <class>" per stuff class present in a video (the paper's appendix C.1).

Written against miccooper9/ReferEverything @ 6dcc5a9aeda785bebb2268317b141a92cbc28a89:
``stuff/infer_vspw_stuff_MS.py`` (videos from ``val.txt``, frames sorted, the classes of a video from
``val_vid2classes.json`` kept when they are among the 66 stuff classes, the expression ``f"the {name}"``
with the class name as VSPW spells it) and ``stuff/eval_stuff.py`` (the 66 classes, and the ground
truth: mask value v is class v - 1; 0 "others" and 255 void become class 124, which no expression
names); and VSPW-dataset/VSPW-dataset-download @ dd0acea3836074dd282d55cc386477268a6a5ecf (the layout,
the 0 / 255 convention, frames extracted at 15 fps).

Source layout::

    SRC/val.txt                           one video per line
    SRC/data/<video>/origin/<frame>.jpg
    SRC/data/<video>/mask/<frame>.png     values 0 others, 1..124 classes, 255 void

The classes of a video are those of the stuff classes found in its masks, or, with
``classes=FILE``, the authors' ``val_vid2classes.json`` (video -> class ids) for their exact list.
The authors' J counts void pixels like background (it knows no void), so the converted masks have
no Ignore: a pixel is the class's label or background.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from refvps.convert.common import (
    BenchmarkInfo,
    ClipJob,
    LabelMaps,
    annotated_subset,
    frames_in,
    make_expression,
    planned,
    read_lines,
    require_path,
    safe_clip_id,
)
from refvps.dataset.format import ClipMeta
from refvps.dataset.palette import read_label_png
from refvps.errors import DatasetError
from refvps.fileio import read_json

INFO = BenchmarkInfo(
    key="vspw-stuff",
    name="VSPW-stuff",
    protocol="vspw-stuff",
    url="https://www.vspwdataset.com/",
    license="VSPW terms (https://www.vspwdataset.com): research use",
    splits=("val", "train", "test"),
    default_split="val",
)
FPS = 15

# The 66 stuff classes the authors evaluate: class id (VSPW mask value - 1) -> name, as their
# stuff/eval_stuff.py lists them.
STUFF_CLASSES: dict[int, str] = {
    0: "wall", 1: "ceiling", 3: "stair", 5: "escalator", 6: "Playground_slide", 7: "handrail_or_fence",
    9: "rail", 11: "pillar", 12: "pole", 13: "floor", 14: "ground", 15: "grass", 16: "sand",
    17: "athletic_field", 18: "road", 19: "path", 20: "crosswalk", 21: "building", 22: "house", 23: "bridge",
    24: "tower", 25: "windmill", 26: "well_or_well_lid", 27: "other_construction", 28: "sky", 29: "mountain",
    30: "stone", 31: "wood", 32: "ice", 33: "snowfield", 34: "grandstand", 35: "sea", 36: "river", 37: "lake",
    38: "waterfall", 39: "water", 40: "billboard_or_Bulletin_Board", 42: "pipeline", 45: "cushion_or_carpet",
    53: "wheeled_machine", 57: "tyre", 58: "traffic_light", 59: "lamp", 66: "tree", 67: "flower",
    68: "other_plant", 69: "toy", 70: "ball_net", 71: "backboard", 73: "bat",
    75: "cupboard_or_showcase_or_storage_rack", 80: "trash_can", 81: "cage", 93: "shelf", 94: "bathtub",
    98: "other_machine", 103: "curtain", 104: "textiles", 105: "clothes", 110: "book", 111: "tool",
    112: "blackboard", 113: "tissue", 119: "other_electronic_product", 120: "fruit", 121: "food",
}  # fmt: skip


def class_of_mask_value(mask: np.ndarray) -> np.ndarray:
    """eval_stuff.py's class ids: ``v - 1``, with 0 ("others") and 255 (void) both becoming 124."""
    classes = mask.astype(np.int16) - 1
    classes[(mask == 0) | (mask == 255)] = 124
    return classes


def jobs(source: Path, split: str, options: dict[str, str], notes: list[str]) -> list[ClipJob]:
    listing = require_path(source / f"{split}.txt", f"the {split} video list", "pass the VSPW root (with data/)")
    chosen = _classes_file(options.get("classes"))
    taken: set[str] = set()
    result = []
    for video in read_lines(listing):
        if chosen is not None and video not in chosen:
            notes.append(f"{video}: not in the classes file; left out")
            continue
        clip_id = safe_clip_id(video, taken)
        listed = None if chosen is None else chosen[video]
        job = planned(clip_id, _job, source / "data" / video, split, clip_id, listed, notes)
        if job is not None:
            result.append(job)
    return result


def _job(folder: Path, split: str, clip_id: str, listed: list[int] | None, notes: list[str]) -> ClipJob | None:
    """One video's clip: its stuff classes (those ``listed``, else those in its masks), one expression each."""
    frames = frames_in(folder / "origin", "unzip VSPW")
    masks_dir = folder / "mask"
    annotated = annotated_subset(masks_dir, [name for name, _ in frames], clip_id, notes)
    classes = _stuff(listed if listed is not None else _classes_in(masks_dir, annotated))
    if not classes:
        notes.append(f"{folder.name}: no stuff class; left out")
        return None
    return ClipJob(
        clip_id=clip_id,
        frames=frames,
        expressions=[
            make_expression(str(k), f"the {STUFF_CLASSES[c]}", [k + 1], extra=_class_extra(c))
            for k, c in enumerate(classes)
        ],
        meta=INFO.stamp(ClipMeta(clip_id, fps=FPS), split, folder.name),
        labels=_labels(masks_dir, annotated, classes),
        annotated_frames=annotated if len(annotated) < len(frames) else None,
    )


def _class_extra(class_id: int) -> dict[str, Any]:
    return {"class_name": STUFF_CLASSES[class_id], "class_id": class_id}


def _stuff(class_ids: Iterable[int]) -> list[int]:
    """The stuff classes among ``class_ids``, in increasing order (the infer script skips the others)."""
    return sorted(set(class_ids) & set(STUFF_CLASSES))


def _classes_file(path: str | None) -> dict[str, list[int]] | None:
    """The authors' ``val_vid2classes.json``: video -> the class ids (as text or numbers) it holds."""
    if not path:
        return None
    data = read_json(Path(path), what="classes file (val_vid2classes.json)")
    try:
        if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
            raise TypeError("not a mapping of video names to lists")
        return {str(video): [int(c) for c in ids] for video, ids in data.items()}
    except (TypeError, ValueError) as exc:
        raise DatasetError(
            f"{path} is not a video -> class ids mapping like the authors' val_vid2classes.json ({exc})",
            hint="pass stuff/val_vid2classes.json of miccooper9/ReferEverything, or leave --classes out "
            "to take the classes from the masks",
            path=Path(path),
        ) from None


def _classes_in(masks_dir: Path, names: list[str]) -> set[int]:
    found: set[int] = set()
    for name in names:
        found |= set(np.unique(class_of_mask_value(read_label_png(masks_dir / f"{name}.png"))).tolist())
    return found


def _labels(masks_dir: Path, names: list[str], classes: list[int]) -> LabelMaps:
    lookup = np.zeros(256, np.uint8)  # class id + 1 -> label (class ids lie in 0..253)
    for k, class_id in enumerate(classes):
        lookup[class_id + 1] = k + 1

    def generate() -> Iterator[tuple[str, np.ndarray]]:
        for name in names:
            yield name, lookup[class_of_mask_value(read_label_png(masks_dir / f"{name}.png")) + 1]

    return generate
