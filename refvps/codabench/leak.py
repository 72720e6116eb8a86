"""The test split's masks must never be downloadable: the check a bundle passes before it is written.

The test phase's frames and expressions are public; its masks are the hidden ground truth. Before a
bundle is written, every file participants could download from it (the paths
:func:`refvps.codabench.competition.participant_visible` lists: public data, starting kits,
solutions, pages, the logo; programs when they are made available), and every entry of every zip
among them, is compared with the test split's masks three ways:

* by path: nothing under ``Annotations/<test clip>/``;
* by content: no file with the bytes of a test mask PNG (a copy under any name);
* by pixels: no PNG whose foreground equals a test target's mask (a union of labels too), or its
  target-plus-Ignore mask (an oracle "prediction" of the test split, or a test clip duplicated into
  the dev split under another name).

The last two skip frames where the target is absent or fills the frame: such a mask looks the same
in every clip of that size, so finding it elsewhere reveals nothing.

Any hit refuses the bundle (:class:`BundleLeakError`), naming the file.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import numpy as np

from refvps.codabench.plan import BundlePlan
from refvps.codabench.splits import Split
from refvps.dataset import MASKS_DIR, target_mask
from refvps.errors import DatasetError, PredictionError
from refvps.predictions import decode_mask_png
from refvps.progress import NO_PROGRESS, Progress

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MAX_ZIP_DEPTH = 3


class BundleLeakError(DatasetError):
    """The bundle would let participants download the test split's masks."""


@dataclass
class TestFingerprints:
    """What the test split's masks look like, to recognise them anywhere."""

    clip_ids: set[str] = field(default_factory=set)
    file_hashes: set[bytes] = field(default_factory=set)  # sha256 of the bytes of each telling mask PNG
    masks: dict[tuple[int, int], set[bytes]] = field(default_factory=dict)  # (H, W) -> digests of packed masks


def _mask_digest(mask: np.ndarray) -> bytes:
    return hashlib.sha256(np.packbits(mask, axis=None).tobytes()).digest()


def fingerprint_split(test: Split, *, progress: Progress = NO_PROGRESS) -> TestFingerprints:
    """Fingerprints of every mask of the ``test`` split (each file read once)."""
    dataset = test.dataset()
    prints = TestFingerprints(clip_ids=set(test.clip_ids))
    with progress.stage("fingerprint", len(test.clip_ids)):
        for clip_id in test.clip_ids:
            clip = dataset.clip(clip_id)
            targets = sorted({e.target_labels for e in clip.expressions})  # a target may be a union of labels
            labels = sorted({k for target in targets for k in target})
            for name in clip.annotated_frames:
                label = clip.read_label(name)
                candidates = [label == k for k in labels] + [target_mask(label, t) for t in targets if len(t) > 1]
                # A frame where the target is absent (or everywhere) looks the same in every clip: not a secret.
                telling = [m for m in [*candidates, label != 0] if m.any() and not m.all()]
                if telling:
                    prints.file_hashes.add(hashlib.sha256(clip.mask_path(name).read_bytes()).digest())
                    prints.masks.setdefault(label.shape, set()).update(_mask_digest(m) for m in telling)
            progress.advance("fingerprint", note=clip_id)
    return prints


def _png_shape(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return height, width


def _leak_reason(name: str, data: bytes, prints: TestFingerprints) -> str | None:
    parts = PurePosixPath(name).parts
    for index, part in enumerate(parts[:-1]):
        if part == MASKS_DIR and index + 1 < len(parts) - 1 and parts[index + 1] in prints.clip_ids:
            return f"it is in {MASKS_DIR}/{parts[index + 1]}/, the masks of a test clip"
    if hashlib.sha256(data).digest() in prints.file_hashes:
        return "it is a copy of a test mask"
    shape = _png_shape(data)
    if shape is not None and shape in prints.masks:
        try:
            mask = decode_mask_png(data, shape, name)
        except PredictionError:
            return None  # not a mask PNG the scorer could read
        if _mask_digest(mask) in prints.masks[shape]:
            return "its pixels are those of a test mask"
    return None


def _scan(name: str, data: bytes, prints: TestFingerprints, depth: int = 0) -> None:
    reason = _leak_reason(name, data, prints)
    if reason is not None:
        raise BundleLeakError(
            f"the bundle would let participants download the test split's masks: {name} ({reason})",
            hint="test masks go only into the test phase's reference data; check that no test clip (or a copy "
            "of one) is in the dev split, and remove the file from what participants can download",
            path=name,
        )
    if depth < _MAX_ZIP_DEPTH and data[:4] == b"PK\x03\x04":
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile:
            return
        with archive:
            for member in archive.infolist():
                if not member.is_dir():
                    _scan(f"{name}:{member.filename}", archive.read(member), prints, depth + 1)


def check_no_test_masks(
    plan: BundlePlan, visible: list[str], prints: TestFingerprints, *, progress: Progress = NO_PROGRESS
) -> int:
    """Raise :class:`BundleLeakError` if any file under the ``visible`` paths of ``plan`` is a test
    mask (see the module docstring). Returns how many planned files were checked."""
    entries = {entry.arcname: entry for path in visible for entry in plan.under(path)}
    with progress.stage("leak check", len(entries)):
        for arcname in sorted(entries):
            _scan(arcname, entries[arcname].read(), prints)
            progress.advance("leak check")
    return len(entries)
