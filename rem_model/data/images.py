"""Image training data: the Ref-COCO family in the refer format, and pseudo-videos made from images.

Ref-COCO, Ref-COCO+ and Ref-COCOg ship as ``refs(<split_by>).p`` (a pickle of references: image,
annotation, split, sentences) next to ``instances.json`` (COCO annotations); the images are COCO
train2014. Masks come from the COCO polygons or RLE through pycocotools.

Stage 1 trains on the images as one-frame videos, and so does the Wan recipe (one-frame image
batches alternate with video batches, as the authors' ``train_REM_wan.py``). ModelScope's stage 2
turns them into pseudo-videos (as the paper does, following ReferFormer): the image and its mask move along one smooth random affine
trajectory (rotation, scale, shear, translation), one frame per step, so the target moves the way
objects move under a panning, zooming camera.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from torch.utils.data import Dataset as TorchDataset

from refvps.dataset.format import read_rgb
from refvps.errors import DatasetError
from refvps.fileio import read_json
from rem_model.data.transforms import Aspect, Geometry, frames_tensor, masks_tensor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageItem:
    image: Path
    text: str
    annotation_id: int


@dataclass(frozen=True)
class AffineRange:
    """Ranges of the pseudo-video trajectory (between the first and the last frame)."""

    degrees: float = 15.0
    scale: float = 0.15  # ±
    shear: float = 8.0  # degrees
    translate: float = 0.12  # fraction of the image size


def affine_trajectory(
    size: tuple[int, int], num_frames: int, rng: np.random.Generator, limits: AffineRange = AffineRange()
) -> list[np.ndarray]:
    """``num_frames`` 2×3 affine matrices going smoothly from one random pose to another.

    Frame 0 is a random pose too, so the first frame is not always the untouched image.
    """
    h, w = size

    def pose() -> np.ndarray:
        return np.array(
            [
                rng.uniform(-limits.degrees, limits.degrees),
                1.0 + rng.uniform(-limits.scale, limits.scale),
                rng.uniform(-limits.shear, limits.shear),
                rng.uniform(-limits.translate, limits.translate) * w,
                rng.uniform(-limits.translate, limits.translate) * h,
            ]
        )

    start, end = pose() * 0.5, pose()
    matrices = []
    for step in range(num_frames):
        # Smoothstep easing: the motion accelerates and slows like a camera move.
        t = step / max(1, num_frames - 1)
        t = t * t * (3 - 2 * t)
        angle, scale, shear, tx, ty = start + (end - start) * t
        rotation = cv2.getRotationMatrix2D((w / 2, h / 2), float(angle), float(scale))
        shear_matrix = np.array([[1.0, np.tan(np.radians(shear)), 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        shear_matrix[0, 2] = -np.tan(np.radians(shear)) * h / 2
        full = np.vstack([rotation, [0.0, 0.0, 1.0]]) @ shear_matrix
        full[0, 2] += tx
        full[1, 2] += ty
        matrices.append(full[:2].astype(np.float32))
    return matrices


def pseudo_video(
    image: np.ndarray, mask: np.ndarray, num_frames: int, rng: np.random.Generator, limits: AffineRange = AffineRange()
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frames and masks of a pseudo-video made from one image and its mask."""
    h, w = mask.shape
    frames, masks = [], []
    for matrix in affine_trajectory((h, w), num_frames, rng, limits):
        # A constant border, as ReferFormer's augmenter: a reflected border would show a second,
        # unlabelled copy of a target near the edge.
        frames.append(
            cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        )
        masks.append(cv2.warpAffine(mask.astype(np.float32), matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=0.0))
    return frames, masks


class ImageExpressionDataset(TorchDataset):
    """(image, mask, sentence) items as one-frame videos or as pseudo-videos of ``num_frames``."""

    source = "image"

    def __init__(
        self,
        *,
        resolution: tuple[int, int],
        num_frames: int = 1,
        pseudo_video: bool | None = None,
        aspect: Aspect = "squash",
        resample: str = "bilinear",
        seed: int = 0,
        affine: AffineRange = AffineRange(),
    ):
        self.resolution = tuple(resolution)
        self.num_frames = num_frames
        self.pseudo_video = num_frames > 1 if pseudo_video is None else pseudo_video
        if num_frames > 1 and not self.pseudo_video:
            raise DatasetError(
                f"image data cannot fill {num_frames}-frame samples without pseudo-videos",
                hint="set pseudo_video: true for image sources in video training (stage 2)",
            )
        self.aspect = aspect
        self.resample = resample
        self.seed = seed
        self.affine = affine
        self.epoch = 0

    def use_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict:
        image, mask, text = self.load(index)
        rng = np.random.default_rng([self.seed, self.epoch, index, 7])
        if self.pseudo_video:
            frames, masks = pseudo_video(image, mask, self.num_frames, rng, self.affine)
        else:
            frames, masks = [image], [mask.astype(np.float32)]
        geometry = Geometry.fit(image.shape[:2], self.resolution, self.aspect, self.resample)
        return {
            "frames": frames_tensor(frames, geometry),
            "masks": masks_tensor(masks, geometry),
            "text": text,
            "source": self.source,
        }


def _report_left_out(refs_path: Path, instances_path: Path, unmatched: list, blank: int) -> None:
    """Log what a refer-format source leaves out of training, and why."""
    if unmatched:
        log.warning(
            "%s: %d reference(s) left out, their annotation or image is not in %s (ref_id %s)",
            refs_path,
            len(unmatched),
            instances_path,
            ", ".join(str(r) for r in unmatched[:5]) + (" ..." if len(unmatched) > 5 else ""),
        )
    if blank:
        log.warning("%s: %d empty sentence(s) left out", refs_path, blank)


class RefCOCODataset(ImageExpressionDataset):
    """Ref-COCO / Ref-COCO+ / Ref-COCOg in the refer format, one item per (reference, sentence).

    ``root`` holds ``refs(<split_by>).p`` and ``instances.json`` (e.g. ``refcoco/``); ``images`` is
    the folder of COCO train2014 images (file names from ``instances.json``).
    """

    source = "refcoco"

    def __init__(self, root: str | Path, images: str | Path, *, split_by: str = "unc", split: str = "train", **kwargs):
        super().__init__(**kwargs)
        root, self.images_dir = Path(root), Path(images)
        refs_path = root / f"refs({split_by}).p"
        instances_path = root / "instances.json"
        for path in (refs_path, instances_path):
            if not path.is_file():
                raise DatasetError(
                    f"refer-format file not found: {path}",
                    hint="root must hold refs(<split_by>).p and instances.json (e.g. refcoco/ with split_by unc)",
                    path=path,
                )
        try:
            with open(refs_path, "rb") as handle:
                refs = pickle.load(handle)  # the refer format is a pickle (as the refer API reads it)
        except (pickle.UnpicklingError, EOFError, UnicodeDecodeError) as exc:
            raise DatasetError(
                f"cannot read {refs_path}: {exc}", hint="download the refer annotations again", path=refs_path
            ) from None
        instances = read_json(instances_path, what="COCO instances.json")
        self.images = {img["id"]: img for img in instances["images"]}
        self.annotations = {ann["id"]: ann for ann in instances["annotations"]}
        self.items: list[ImageItem] = []
        unmatched, blank = [], 0
        for ref in refs:
            if ref.get("split") != split:
                continue
            if ref["ann_id"] not in self.annotations or ref["image_id"] not in self.images:
                unmatched.append(ref.get("ref_id", ref["ann_id"]))
                continue
            image = self.images[ref["image_id"]]
            for sentence in ref.get("sentences", []):
                text = sentence.get("sent") or sentence.get("raw") or ""
                if text.strip():
                    self.items.append(ImageItem(self.images_dir / image["file_name"], text.strip(), ref["ann_id"]))
                else:
                    blank += 1
        _report_left_out(refs_path, instances_path, unmatched, blank)
        if not self.items:
            raise DatasetError(
                f"no '{split}' references in {refs_path}", hint="check split and split_by of the source", path=refs_path
            )

    def __len__(self) -> int:
        return len(self.items)

    def texts(self) -> list[str]:
        return [item.text for item in self.items]

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:
        from pycocotools import mask as mask_utils

        item = self.items[index]
        image = read_rgb(item.image)
        annotation = self.annotations[item.annotation_id]
        h, w = image.shape[:2]
        segmentation = annotation["segmentation"]
        if isinstance(segmentation, list):  # polygons
            rles = mask_utils.frPyObjects(segmentation, h, w)
            rle = mask_utils.merge(rles)
        elif isinstance(segmentation.get("counts"), list):  # uncompressed RLE
            rle = mask_utils.frPyObjects(segmentation, h, w)
        else:
            rle = segmentation
        mask = mask_utils.decode(rle).astype(np.float32)
        return image, mask, item.text
