"""What a participant uploaded, checked before a byte of it is decoded (docs/HOSTING.md, "Submissions").

Codabench's compute worker unzips a submission into ``input/res`` (for a results-only task, the
prediction step copies it there unchanged and adds its own ``metadata`` status file). Anything can
be in that folder, so the scoring program first walks it without following links and refuses:

* links (a link to ``../ref`` would score the hidden ground truth as a prediction) and special files;
* files larger than a mask can be (a 4 GB file is refused from its size alone, never read);
* more files, or more bytes in all, than the phase's split can need;
* a nested ``.zip`` whose entries escape their folder, are links, are encrypted, or declare more
  bytes than the limits allow or a compression ratio no mask has (a zip bomb is refused from its
  directory, before anything is inflated; Python's zipfile never inflates past a declared size).

Then it finds the predictions: a PNG tree at the top, under ``Annotations/`` or under one wrapper
folder; or one COCO-RLE ``.json``; or one ``.zip`` of either. Every frame of every expression must be
predicted: a missing one is an error here, not an empty mask, so that a truncated upload never
becomes a leaderboard entry.
"""

from __future__ import annotations

import os
import stat
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from refvps.dataset import Dataset
from refvps.errors import PredictionError
from refvps.predictions import PredictionSource
from refvps.predictions.submission import missing_masks

WORKER_FILES = frozenset({"metadata"})  # written into the prediction output by the worker (push_output)
SUBMISSION_DIR = "Annotations"
_EXAMPLES = 5
_HINT = (
    "zip the predictions so that the archive holds <clip_id>/<exp_id>/<frame>.png at its top (or under "
    "Annotations/), e.g. cd predictions && zip -r ../submission.zip . ; or submit one COCO-RLE .json"
)


@dataclass(frozen=True)
class SubmissionLimits:
    """Bounds on a submission, set when the bundle is built from the size of its splits."""

    max_files: int
    max_file_bytes: int  # one mask PNG
    max_json_bytes: int  # one COCO-RLE file
    max_total_bytes: int
    max_zip_ratio: float = 100.0  # inflated / compressed size of one zip entry; PNGs barely compress

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def for_split(cls, n_masks: int, largest_frame: tuple[int, int]) -> SubmissionLimits:
        """Limits for a split of ``n_masks`` frame-expressions whose largest frame is (H, W) pixels.

        A PNG of an (H, W) mask holds at most 8 bytes a pixel (16-bit RGBA, stored) plus headers; a
        COCO-RLE mask rarely needs more than 8 KiB; a zipped mask tree averages far below 256 KiB a mask.
        """
        height, width = largest_frame
        png = 8 * height * width + (1 << 20)
        return cls(
            max_files=2 * n_masks + 1000,
            max_file_bytes=png,
            max_json_bytes=max(64 << 20, n_masks * (8 << 10)),
            max_total_bytes=max(256 << 20, n_masks * (256 << 10)),
        )


@dataclass(frozen=True)
class SubmissionFile:
    path: Path
    size: int


def _refuse(message: str, path: Path | str | None, hint: str = _HINT) -> PredictionError:
    return PredictionError(message, hint=hint, path=path)


def _cap(name: str, limits: SubmissionLimits) -> int:
    suffix = PurePosixPath(name).suffix.lower()
    if suffix == ".json":
        return limits.max_json_bytes
    if suffix == ".zip":
        return limits.max_total_bytes
    return limits.max_file_bytes


def inspect_submission(res: Path, limits: SubmissionLimits) -> list[SubmissionFile]:
    """Every regular file under ``res``, after refusing links, special files and sizes beyond ``limits``."""
    if not res.is_dir() or res.is_symlink():
        raise _refuse(f"the submission folder is missing: {res}", res)
    found: list[SubmissionFile] = []
    total = 0
    pending = [res]
    while pending:
        folder = pending.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                info = entry.stat(follow_symlinks=False)
                path = Path(entry.path)
                shown = path.relative_to(res)
                if stat.S_ISLNK(info.st_mode):
                    raise _refuse(
                        f"the submission holds a link, which is not allowed: {shown}",
                        shown,
                        "submit regular files only",
                    )
                if stat.S_ISDIR(info.st_mode):
                    pending.append(path)
                    continue
                if not stat.S_ISREG(info.st_mode):
                    raise _refuse(f"the submission holds a special file: {shown}", shown, "submit regular files only")
                _check_size(shown, info.st_size, limits)
                found.append(SubmissionFile(path, info.st_size))
                total += info.st_size
                if len(found) > limits.max_files:
                    raise _refuse(f"the submission holds more than {limits.max_files} files", res)
                if total > limits.max_total_bytes:
                    raise _refuse(f"the submission holds more than {_size(limits.max_total_bytes)} in all", res)
    return found


def _size(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB" if size >= 1 << 20 else f"{size} bytes"


def _check_size(name: Path | str, size: int, limits: SubmissionLimits) -> None:
    cap = _cap(str(name), limits)
    if size > cap:
        raise _refuse(
            f"{name} is {_size(size)}, more than the {_size(cap)} a file of its kind may be in this competition",
            name,
            "save masks as 8-bit PNGs (0 background, 255 foreground) at the frame's size; " + _HINT,
        )


def check_zip(path: Path, limits: SubmissionLimits) -> None:
    """Refuse a nested zip whose directory is unsafe (see the module docstring), without inflating it."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise _refuse(f"{path.name} is not a readable zip file: {exc}", path.name) from None
    if len(members) > limits.max_files:
        raise _refuse(f"{path.name} holds {len(members)} entries, more than {limits.max_files}", path.name)
    declared = 0
    for member in members:
        name = member.filename
        where = f"{path.name}:{name}"
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            raise _refuse(f"{where}: the entry's path leaves the archive's folder", where)
        if stat.S_ISLNK(member.external_attr >> 16):
            raise _refuse(f"{where}: the entry is a link, which is not allowed", where, "zip regular files only")
        if member.flag_bits & 0x1:
            raise _refuse(f"{where}: the entry is encrypted", where, "zip the predictions without a password")
        if member.is_dir():
            continue
        _check_size(where, member.file_size, limits)
        if member.file_size > (1 << 20) and member.file_size > limits.max_zip_ratio * max(member.compress_size, 1):
            raise _refuse(
                f"{where}: the entry inflates {member.file_size / max(member.compress_size, 1):.0f}-fold "
                f"({member.compress_size} to {member.file_size} bytes); no mask compresses like that (a zip bomb?)",
                where,
            )
        declared += member.file_size
        if declared > limits.max_total_bytes:
            raise _refuse(f"{path.name} inflates to more than {_size(limits.max_total_bytes)}", path.name)


def _visible(names: list[str]) -> list[str]:
    return sorted(n for n in names if not n.startswith(".") and n != "__MACOSX" and n not in WORKER_FILES)


def _holds_clips(folder: Path, clip_ids: set[str]) -> bool:
    for candidate in (folder, folder / SUBMISSION_DIR):
        if candidate.is_dir() and any(name in clip_ids for name in os.listdir(candidate)):
            return True
    return False


def locate_predictions(res: Path, dataset: Dataset, limits: SubmissionLimits) -> Path:
    """The PNG tree folder, the ``.json`` file or the ``.zip`` file in ``res`` that holds the predictions."""
    clip_ids = set(dataset.clip_ids)
    top = _visible(os.listdir(res))
    if _holds_clips(res, clip_ids):
        return res
    folders = [n for n in top if (res / n).is_dir()]
    files = [n for n in top if (res / n).is_file()]
    if len(folders) == 1 and not files and _holds_clips(res / folders[0], clip_ids):
        return res / folders[0]
    if len(top) == 1 and files and files[0].lower().endswith((".json", ".zip")):
        path = res / files[0]
        if path.suffix.lower() == ".zip":
            check_zip(path, limits)
        return path
    shown = ", ".join(top[:_EXAMPLES]) + (", ..." if len(top) > _EXAMPLES else "") if top else "nothing"
    expected = ", ".join(sorted(clip_ids)[:3])
    raise _refuse(
        f"no predictions for this phase's clips were found in the submission (its top level holds: {shown}; "
        f"the clips are e.g. {expected})",
        None,
    )


def check_complete(source: PredictionSource, dataset: Dataset) -> None:
    """Refuse predictions that leave out any frame of any expression of the dataset (one error lists all)."""
    missing = missing_masks(source, dataset, shown=_EXAMPLES)
    if missing.count:
        first = ", ".join(f"{clip}/{exp_id}/{frame}.png" for clip, exp_id, frame in missing.first)
        raise PredictionError(
            f"{missing.count} predicted mask(s) are missing, in {missing.expressions} expression(s) "
            f"({missing.counts()}; first: {first})",
            hint="predict every frame of every expression of this phase's clips (the frames listed in "
            "meta_expressions.json); an empty mask is a PNG of zeros",
            path=source.path.name,
        )
