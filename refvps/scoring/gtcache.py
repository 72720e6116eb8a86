"""A persistent cache of the ground truth as COCO RLE, for scoring RLE predictions again and again.

Scoring COCO-RLE predictions needs, per annotated frame, the target and Ignore masks as RLE. Making
them means inflating the label PNG (~0.25 ms at 1024x576 with ISA-L, ~1.1 ms with zlib) and
encoding it (~0.4 ms); that is most of the cost of such a run. A leaderboard scores many methods on
one dataset, so the encoded ground truth is kept, one JSON file per clip, and each later
evaluation reads it instead.

It can never give a wrong number:

* entries are keyed by content: each frame's entry holds the BLAKE2b-128 digest of its PNG file's
  bytes and is used only while the file still has exactly those bytes (a file that was edited,
  replaced or restored misses, whatever its size and timestamps say); the file is read anyway
  (~10 us) to check;
* each cache file carries a digest of its own contents, its format version and the folder it
  describes; a damaged, truncated or foreign file is ignored and rewritten;
* files are written atomically (temporary file, fsync, rename; :mod:`refvps.fileio`): a reader
  sees the old file or the new one, and two evaluations writing at once at worst redo work;
* the cache is only ever a shortcut: if it cannot be read or written, scoring goes on without it.

Where: ``$REFVPS_CACHE_DIR``, else ``$XDG_CACHE_HOME/refvps``, else ``~/.cache/refvps``, under
``ground-truth-rle-v1/``; ``REFVPS_CACHE_DIR=off`` (or ``evaluate(..., gt_cache=False)``) turns it
off. About 1-2 kB per frame (~25 MB for the Ref-VPS test set); deleting the folder is always safe.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from refvps.fileio import atomic_write_text

CACHE_ENV = "REFVPS_CACHE_DIR"
FORMAT = "refvps ground-truth RLE cache"
VERSION = 1
SUBDIR = f"ground-truth-rle-v{VERSION}"
_OFF = {"", "0", "off", "no", "false", "none"}


def default_cache_dir() -> Path | None:
    """The cache root from the environment (``None`` when turned off)."""
    setting = os.environ.get(CACHE_ENV)
    if setting is not None:
        return None if setting.strip().lower() in _OFF else Path(setting).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "refvps"


def resolve_cache_dir(setting: str | Path | bool | None) -> str | None:
    """``evaluate``'s ``gt_cache`` argument as a folder (or ``None``): None/True = the default."""
    if setting is False:
        return None
    if setting is None or setting is True:
        root = default_cache_dir()
        return None if root is None else str(root)
    return str(Path(setting).expanduser())


def content_digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _payload_digest(frames: dict[str, Any]) -> str:
    canonical = json.dumps(frames, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.blake2b(canonical.encode("ascii"), digest_size=16).hexdigest()


class LabelRunsCache:
    """The cached RLEs of one clip's label maps: ``frame -> (digest, (H, W), {label value: counts})``."""

    def __init__(self, root: str | Path, masks_dir: str | Path):
        self.masks_dir = os.path.realpath(masks_dir)
        key = hashlib.blake2b(self.masks_dir.encode("utf-8", "surrogateescape"), digest_size=12).hexdigest()
        self.path = Path(root) / SUBDIR / f"{key}.json"
        self._old: dict[str, Any] = self._load()
        self._new: dict[str, Any] = {}
        self.hits = 0
        self.misses = 0

    def _load(self) -> dict[str, Any]:
        try:
            with open(self.path, "rb") as handle:
                document = json.loads(handle.read())
            frames = document["frames"]
            if (
                document.get("format") != FORMAT
                or document.get("version") != VERSION
                or document.get("masks_dir") != self.masks_dir
                or not isinstance(frames, dict)
                or document.get("checksum") != _payload_digest(frames)
            ):
                return {}
            return frames
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return {}  # missing, unreadable, damaged or foreign: start afresh

    def lookup(self, frame: str, digest: str, values: list[int]) -> tuple[tuple[int, int], dict[int, bytes]] | None:
        """The frame's (H, W) and RLE counts per label value, if cached for exactly these bytes."""
        entry = self._old.get(frame)
        try:
            if entry is None or entry["digest"] != digest:
                raise KeyError(frame)
            labels = entry["labels"]
            counts = {value: labels[str(value)].encode("ascii") for value in values}
            height, width = entry["size"]
            shape = (int(height), int(width))
        except (KeyError, TypeError, ValueError, AttributeError):
            self.misses += 1
            return None
        self._new[frame] = entry
        self.hits += 1
        return shape, counts

    def store(self, frame: str, digest: str, shape: tuple[int, int], counts: dict[int, bytes]) -> None:
        self._new[frame] = {
            "digest": digest,
            "size": [int(shape[0]), int(shape[1])],
            "labels": {str(value): runs.decode("ascii") for value, runs in counts.items()},
        }

    def save(self) -> bool:
        """Write the entries used or made in this run, if anything changed; False if it could not."""
        if self._new == self._old:
            return True
        document = {
            "format": FORMAT,
            "version": VERSION,
            "masks_dir": self.masks_dir,
            "checksum": _payload_digest(self._new),
            "frames": self._new,
        }
        try:
            atomic_write_text(self.path, json.dumps(document, separators=(",", ":")))
        except OSError:
            return False
        self._old = self._new
        return True
