"""Which clips make up the development split and the test split of a dataset (docs/HOSTING.md, "Splits").

A dataset names its splits in one of two ways:

* **a ``split`` field per clip** in ``clips.json`` (``"split": "dev"``, ``"split": "test"``, or any
  other name, such as ``"train"``), when ``ROOT`` is itself a dataset (``ROOT/meta_expressions.json``
  exists). Clips of other splits, and clips without the field, are left out of the bundle and counted;
* **one dataset per split**, ``ROOT/<split>/`` (``ROOT/dev/``, ``ROOT/test/``), each a complete dataset.

A clip id belongs to one split only: the same id in two split folders is refused, because a
participant could not tell its two sets of predictions apart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from refvps.dataset import CLIPS_FILE, EXPRESSIONS_FILE, Dataset
from refvps.errors import DatasetError, UsageError

log = logging.getLogger(__name__)

SPLIT_FIELD = "split"
LAYOUT_FIELD = "field"  # one dataset, a "split" field per clip in clips.json
LAYOUT_FOLDERS = "folders"  # one dataset per split: ROOT/<split>/
NO_SPLIT = "(no split)"


@dataclass(frozen=True)
class Split:
    """One split: its name, the dataset folder that holds its clips, and those clips' ids."""

    name: str
    root: Path
    clip_ids: tuple[str, ...]

    def dataset(self) -> Dataset:
        return Dataset(self.root)


@dataclass(frozen=True)
class SplitPlan:
    """The two splits a bundle is built from, how they were found, and what was left out."""

    layout: str
    dev: Split
    test: Split
    left_out: dict[str, int] = field(default_factory=dict)  # split name (or NO_SPLIT) -> clips not bundled


def resolve_splits(root: str | Path, dev: str = "dev", test: str = "test") -> SplitPlan:
    """Find the ``dev`` and ``test`` splits of the dataset at ``root`` (see the module docstring)."""
    root = Path(root)
    if dev == test:
        raise UsageError(
            f"the development and the test split are both {dev!r}",
            hint="name two different splits, e.g. --dev-split dev --test-split test",
        )
    if not root.is_dir():
        raise DatasetError(
            f"dataset folder does not exist: {root}",
            hint="pass the dataset's root folder (with meta_expressions.json, or one folder per split)",
            path=root,
        )
    if (root / EXPRESSIONS_FILE).is_file():
        plan = _field_splits(root, dev, test)
    else:
        plan = _folder_splits(root, dev, test)
    for name, count in plan.left_out.items():
        log.warning(
            "%d clip(s) of %s are in split %s, which is neither %r nor %r: left out", count, root, name, dev, test
        )
    return plan


def _field_splits(root: Path, dev: str, test: str) -> SplitPlan:
    dataset = Dataset(root)
    by_split: dict[str, list[str]] = {}
    for clip_id in dataset.clip_ids:
        entry = dataset.raw_clips.get(clip_id)
        value = entry.get(SPLIT_FIELD) if isinstance(entry, dict) else None
        if value is not None and not isinstance(value, str):
            raise DatasetError(
                f"clip {clip_id}: {SPLIT_FIELD!r} in {root / CLIPS_FILE} is {value!r}, not a split name",
                hint=f'write the split as a string, e.g. "{SPLIT_FIELD}": "{test}"',
                path=root / CLIPS_FILE,
            )
        by_split.setdefault(value or NO_SPLIT, []).append(clip_id)
    names = sorted(n for n in by_split if n != NO_SPLIT)
    for wanted in (dev, test):
        if wanted not in by_split:
            raise UsageError(
                f"no clip of {root} is in split {wanted!r} (splits found: {', '.join(names) or 'none'})",
                hint=f'give each clip a "{SPLIT_FIELD}" field in {CLIPS_FILE} ("{dev}" or "{test}"), or lay the '
                f"dataset out as {root}/{dev}/ and {root}/{test}/; pick splits with --dev-split/--test-split",
                path=root / CLIPS_FILE,
            )
    left_out = {name: len(ids) for name, ids in sorted(by_split.items()) if name not in (dev, test)}
    return SplitPlan(
        LAYOUT_FIELD,
        Split(dev, root, tuple(by_split[dev])),
        Split(test, root, tuple(by_split[test])),
        left_out,
    )


def _folder_splits(root: Path, dev: str, test: str) -> SplitPlan:
    found = sorted(p.name for p in root.iterdir() if (p / EXPRESSIONS_FILE).is_file())
    missing = [name for name in (dev, test) if name not in found]
    if missing:
        raise UsageError(
            f"{root} has no split folder {', '.join(repr(m) for m in missing)} "
            f"(dataset folders found: {', '.join(found) or 'none'})",
            hint=f"lay the dataset out as {root}/{dev}/ and {root}/{test}/ (each with {EXPRESSIONS_FILE}), or pass "
            f'one dataset whose {CLIPS_FILE} gives each clip a "{SPLIT_FIELD}"; pick splits with '
            "--dev-split/--test-split",
            path=root,
        )
    splits = {name: Split(name, root / name, tuple(Dataset(root / name).clip_ids)) for name in (dev, test)}
    shared = sorted(set(splits[dev].clip_ids) & set(splits[test].clip_ids))
    if shared:
        raise DatasetError(
            f"{len(shared)} clip id(s) are in both {root / dev} and {root / test} (first: {shared[0]})",
            hint="a clip belongs to one split: rename or remove the copies",
            path=root / test,
        )
    left_out = {name: len(Dataset(root / name).clip_ids) for name in found if name not in (dev, test)}
    return SplitPlan(LAYOUT_FOLDERS, splits[dev], splits[test], left_out)
