"""Tiny benchmarks written in their official formats, the way the upstream loaders read them.

Each writer returns the source folder and the ground truth it wrote, as the official evaluation
defines it, so the tests compare the converted dataset against these expectations and not against
refvps's own reading. Layouts: docs/BENCHMARKS_SUITE.md (and the upstream files each converter names).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

H, W = 36, 48


def frame_rgb(seed: int, t: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(30, 220, (H // 4 + 1, W // 4 + 1, 3)).astype(np.uint8)
    rgb = np.kron(small, np.ones((4, 4, 1), np.uint8))[:H, :W].copy()
    rgb[:, (3 * t) % W] = 255  # a bright column that moves, so the frames differ
    return rgb


def write_jpeg(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, format="JPEG", quality=92)


def write_png(path: Path, label: np.ndarray, palette: bool = True) -> None:
    """An indexed PNG as the benchmarks ship them (palette, or greyscale for ``palette=False``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    label = np.ascontiguousarray(label, dtype=np.uint8)
    if palette:
        image = Image.frombytes("P", (label.shape[1], label.shape[0]), label.tobytes())
        image.putpalette([v for i in range(256) for v in (i * 7 % 256, i * 13 % 256, i * 29 % 256)])
    else:
        image = Image.fromarray(label)
    image.save(path)


def box(t: int, x0: int, y0: int, w: int, h: int, dx: int = 3) -> tuple[slice, slice]:
    x = (x0 + dx * t) % (W - w)
    return slice(y0, y0 + h), slice(x, x + w)


def rle(mask: np.ndarray) -> dict:
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode("ascii")}


@dataclass
class Source:
    """A written benchmark: its folder and the ground truth its evaluation uses."""

    root: Path
    # video -> frame -> (H, W) label map or object masks, as each writer documents
    truth: dict = field(default_factory=dict)
    expressions: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Ref-DAVIS17 (ReferFormer's data/ref-davis)
# --------------------------------------------------------------------------------------------

DAVIS_VIDEOS = {"bike-packing": 5, "classic-car": 4, "train-only": 3}


def write_ref_davis(root: Path, unreferred_object: bool = True) -> Source:
    """Two val videos; ``classic-car`` is misspelt in the text files and has an object (2) no
    expression names (unless ``unreferred_object`` is False); annotator 2's files are latin-1 with a non-ASCII letter; obj 2 is listed
    before obj 1 in one file (ReferFormer sorts). Truth: video -> list of unsupervised label maps."""
    davis = root / "DAVIS"
    sets = davis / "ImageSets" / "2017"
    sets.mkdir(parents=True)
    (sets / "val.txt").write_text("bike-packing\nclassic-car\n")
    (sets / "train.txt").write_text("train-only\n")
    source = Source(root)
    for seed, (video, count) in enumerate(DAVIS_VIDEOS.items()):
        labels = []
        for t in range(count):
            write_jpeg(davis / "JPEGImages" / "480p" / video / f"{t:05d}.jpg", frame_rgb(seed, t))
            label = np.zeros((H, W), np.uint8)
            label[box(t, 2, 4, 14, 12)] = 1
            if video != "classic-car" or unreferred_object:
                label[box(t, 20, 20, 10, 10, dx=-2)] = 2
            label[0:2, :] = 255  # void
            labels.append(label)
            write_png(davis / "Annotations_unsupervised" / "480p" / video / f"{t:05d}.png", label)
        source.truth[video] = labels
    text = root / "davis_text_annotations"
    text.mkdir()
    lines = {
        "Davis17_annot1.txt": ['bike-packing 2 "the bike"', 'bike-packing 1 "a man riding"', 'clasic-car 1 "a car"'],
        "Davis17_annot1_full_video.txt": [
            'bike-packing 1 "a man riding a bike down a path"',
            'bike-packing 2 "a bike ridden by a man"',
            'clasic-car 1 "a black car driving"',
        ],
        "Davis17_annot2.txt": [
            'bike-packing 1 "a cyclist in a café"',
            'bike-packing 2 "a bicycle"',
            'clasic-car 1 "car"',
        ],
        "Davis17_annot2_full_video.txt": [
            'bike-packing 1 "the rider"',
            'bike-packing 2 "the bicycle under him"',
            'clasic-car 1 "the vintage car"',
            'train-only 1 "a train"',
        ],
    }
    for name, content in lines.items():
        encoding = "latin-1" if "annot2" in name else "utf-8"
        (text / name).write_text("\n".join(content) + "\n", encoding=encoding)
    source.expressions = lines
    return source


# --------------------------------------------------------------------------------------------
# Ref-YouTube-VOS 2021
# --------------------------------------------------------------------------------------------


def write_ref_ytvos(root: Path) -> Source:
    """train: one video, frames 00000/00005/00010, masks for the first two only, objects 1-3 (3 has no
    expression); valid's file also lists the test video; valid has no masks.
    Truth: video -> frame -> label map (train)."""
    source = Source(root)
    meta = {
        "train": {
            "vtrain01": {
                "expressions": {"0": {"exp": "a dog running", "obj_id": "1"}, "1": {"exp": "a ball", "obj_id": "2"}},
                "frames": ["00000", "00005", "00010"],
            }
        },
        "valid": {
            "vvalid01": {
                "expressions": {"0": {"exp": "a cat"}, "1": {"exp": "the sofa"}},
                "frames": ["00000", "00005"],
            },
            "vvalid02": {"expressions": {"0": {"exp": "a bird flying"}}, "frames": ["00000", "00005", "00010"]},
            "vtest01": {"expressions": {"0": {"exp": "a horse"}}, "frames": ["00000", "00005"]},
        },
        "test": {"vtest01": {"expressions": {"0": {"exp": "a horse"}}, "frames": ["00000", "00005"]}},
    }
    for split, videos in meta.items():
        folder = root / "meta_expressions" / split
        folder.mkdir(parents=True)
        (folder / "meta_expressions.json").write_text(json.dumps({"videos": videos}))
    for seed, (video, entry) in enumerate(meta["train"].items()):
        source.truth[video] = {}
        for t, frame in enumerate(entry["frames"]):
            write_jpeg(root / "train" / "JPEGImages" / video / f"{frame}.jpg", frame_rgb(seed, t))
            if frame == "00010":
                continue  # not annotated
            label = np.zeros((H, W), np.uint8)
            label[box(t, 3, 3, 12, 10)] = 1
            label[box(t, 25, 18, 8, 8, dx=-4)] = 2
            label[30:34, 40:46] = 3
            write_png(root / "train" / "Annotations" / video / f"{frame}.png", label)
            source.truth[video][frame] = label
    for seed, (video, entry) in enumerate(meta["valid"].items(), 10):
        for t, frame in enumerate(entry["frames"]):
            write_jpeg(root / "valid" / "JPEGImages" / video / f"{frame}.jpg", frame_rgb(seed, t))
    source.expressions = meta
    return source


# --------------------------------------------------------------------------------------------
# MeViS
# --------------------------------------------------------------------------------------------


def write_mevis(root: Path) -> Source:
    """valid_u: two videos; expressions naming one object or several, objects that overlap, an object
    absent from some frames (null RLE); valid: frames and expressions only.
    Truth: (video, exp_id) -> list of boolean masks, the union of the expression's anno_id masks."""
    source = Source(root)
    objects = {  # anno_id -> (video, box start, size, frames where absent)
        "10": ("mv001", (2, 4), (16, 14), set()),
        "11": ("mv001", (10, 8), (14, 14), {3}),  # overlaps 10
        "12": ("mv001", (30, 22), (10, 8), {0, 1}),
        "20": ("mv002", (5, 5), (12, 12), set()),
    }
    videos = {
        "mv001": {
            "expressions": {
                "0": {"exp": "the two animals walking together", "obj_id": [0, 1], "anno_id": [10, 11]},
                "1": {"exp": "the animal that stops", "obj_id": [1], "anno_id": [11]},
                "2": {"exp": "the bird landing", "obj_id": [2], "anno_id": [12]},
                "3": {"exp": "the animal on the left", "obj_id": [0], "anno_id": [10]},
            },
            "frames": [f"{t:05d}" for t in range(5)],
        },
        "mv002": {
            "expressions": {"0": {"exp": "the car turning", "obj_id": [0], "anno_id": [20]}},
            "frames": [f"{t:05d}" for t in range(4)],
        },
    }
    masks: dict[str, list] = {}
    for anno, (video, (x0, y0), (w, h), absent) in objects.items():
        masks[anno] = []
        for t in range(len(videos[video]["frames"])):
            mask = np.zeros((H, W), bool)
            if t not in absent:
                mask[box(t, x0, y0, w, h)] = True
            masks[anno].append(rle(mask) if mask.any() else None)
    split = root / "valid_u"
    split.mkdir(parents=True)
    (split / "meta_expressions.json").write_text(json.dumps({"videos": videos}))
    (split / "mask_dict.json").write_text(json.dumps(masks))
    for seed, (video, entry) in enumerate(videos.items()):
        for t, frame in enumerate(entry["frames"]):
            write_jpeg(split / "JPEGImages" / video / f"{frame}.jpg", frame_rgb(seed, t))
        for exp_id, expression in entry["expressions"].items():
            stack = []
            for t in range(len(entry["frames"])):
                union = np.zeros((H, W), np.uint8)
                for anno in expression["anno_id"]:
                    if masks[str(anno)][t]:  # tools/eval_mevis.py: gt += decode(rle)
                        union += mask_utils.decode({"size": [H, W], "counts": masks[str(anno)][t]["counts"].encode()})
                stack.append(union > 0)
            source.truth[(video, exp_id)] = stack
    valid = root / "valid"
    valid.mkdir()
    (valid / "meta_expressions.json").write_text(
        json.dumps({"videos": {"mvval1": {"expressions": {"0": {"exp": "a boat"}}, "frames": ["00000", "00001"]}}})
    )
    for t in range(2):
        write_jpeg(valid / "JPEGImages" / "mvval1" / f"{t:05d}.jpg", frame_rgb(7, t))
    source.expressions = videos
    return source


# --------------------------------------------------------------------------------------------
# VSPW
# --------------------------------------------------------------------------------------------

VSPW_VIDEOS = ("127_-hIVCYO4C90", "231_-_w6ZFauJBI")


def write_vspw(root: Path) -> Source:
    """Masks with 0 (others), 255 (void), stuff classes wall (value 1), ceiling (2), sky (29) and a
    thing class (value 61, class 60) the stuff list leaves out. Truth: video -> list of raw masks."""
    source = Source(root)
    root.mkdir(parents=True)
    (root / "val.txt").write_text("\n".join(VSPW_VIDEOS) + "\n")
    for seed, video in enumerate(VSPW_VIDEOS):
        raw = []
        for t in range(4):
            name = f"{t + 37:08d}"
            write_jpeg(root / "data" / video / "origin" / f"{name}.jpg", frame_rgb(seed, t))
            mask = np.zeros((H, W), np.uint8)
            mask[:, : W // 2] = 1  # wall
            mask[: H // 3, :] = 29  # sky
            mask[box(t, 5, 20, 12, 10)] = 61  # a thing class
            if seed == 0:
                mask[box(t, 28, 24, 10, 8, dx=-2)] = 2  # ceiling, in the first video only
            mask[H - 3 :, :] = 255  # void
            mask[20:23, 40:44] = 0  # others
            write_png(root / "data" / video / "mask" / f"{name}.png", mask, palette=seed == 0)
            raw.append(mask)
        source.truth[video] = raw
    return source


# --------------------------------------------------------------------------------------------
# BURST
# --------------------------------------------------------------------------------------------

CATEGORIES = [
    {"id": 805, "name": "person", "synset": "person.n.01", "def": "", "synonyms": []},
    {"id": 94, "name": "bicycle", "synset": "bicycle.n.01", "def": "", "synonyms": []},
    {"id": 1, "name": "baseball_bat", "synset": "bat.n.05", "def": "", "synonyms": []},
]


def _burst_sequence(seq_id: int, dataset: str, name: str, n_frames: int, tracks: dict) -> tuple[dict, dict]:
    """One sequence (annotated every third frame) and its truth: class id -> per annotated frame union."""
    all_paths = [f"frame{t:04d}.jpg" for t in range(n_frames)]
    annotated = all_paths[::3]
    segmentations, truth = [], {}
    for k, path in enumerate(annotated):
        t = int(path[5:9])
        frame: dict = {}
        for track, (category, (x0, y0), (w, h), dx) in tracks.items():
            if (seq_id + k + int(track)) % 4 == 3:
                continue  # the track is not visible in this frame
            mask = np.zeros((H, W), bool)
            mask[box(t, x0, y0, w, h, dx=dx)] = True
            frame[track] = {"rle": rle(mask)["counts"], "is_gt": True, "score": 1.0}
            union = truth.setdefault(category, [np.zeros((H, W), bool) for _ in annotated])
            union[k] |= mask
        segmentations.append(frame)
    for category in {c for c, *_ in tracks.values()}:
        truth.setdefault(category, [np.zeros((H, W), bool) for _ in annotated])
    sequence = {
        "width": W,
        "height": H,
        "id": seq_id,
        "seq_name": name,
        "dataset": dataset,
        "fps": 30,
        "all_image_paths": all_paths,
        "annotated_image_paths": annotated,
        "neg_category_ids": [],
        "not_exhaustive_category_ids": [],
        "track_category_ids": {track: category for track, (category, *_) in tracks.items()},
        "segmentations": segmentations,
    }
    return sequence, truth


def write_burst(root: Path) -> Source:
    """val: one YFCC sequence with two person tracks and a bicycle that overlaps them; test: an AVA
    sequence whose name starts with '-' (not a valid clip id as it is). Truth: (dataset, seq) ->
    {category id: per annotated frame union of its tracks}; expressions: (dataset, seq) -> names."""
    source = Source(root)
    parts = {
        "val": [("YFCC100M", "v_f1b2c3", 10, {"1": (805, (2, 4), (12, 16), 2), "2": (805, (20, 6), (10, 14), -1),
                                                 "4": (94, (8, 12), (18, 10), 1)})],
        "test": [("AVA", "-5KQ66BBWC4_scene_1_2", 7, {"7": (1, (30, 2), (6, 20), -3)})],
    }  # fmt: skip
    for part, sequences in parts.items():
        written = []
        for seq_id, (dataset, name, n, tracks) in enumerate(sequences, 1 if part == "val" else 50):
            sequence, truth = _burst_sequence(seq_id, dataset, name, n, tracks)
            written.append(sequence)
            source.truth[(dataset, name)] = truth
            for t, path in enumerate(sequence["all_image_paths"]):
                write_jpeg(root / "frames" / part / dataset / name / path, frame_rgb(seq_id, t))
        folder = root / "annotations_burst" / part
        folder.mkdir(parents=True)
        (folder / "all_classes.json").write_text(
            json.dumps({"sequences": written, "categories": CATEGORIES, "split": part})
        )
    return source
