"""Leaderboard entries: one JSON file per method run (``leaderboard/entries/*.json``).

An entry **is** a ``results.json`` document (what ``refvps evaluate --output`` writes) with one
more top-level key, ``"entry"``, that says which method produced it::

    {"summary": {...}, "per_expression": [...], "per_clip": [...], "per_concept": [...],
     "per_category": [...], "coverage": {...}, "meta": {...},
     "entry": {"format": 1, "name": "REM (ModelScope)", "paper": "...", "url": "https://...",
               "backbone": "...", "checkpoint": "...", "command": "refvps run-baseline rem ...",
               "reported": false, "source": null, "benchmark": "synthetic", "notes": null}}

So anything that reads a results file reads an entry too. ``reported: true`` marks numbers copied
from a publication rather than scored here; ``source`` then says where they were printed, and the
results hold only the summary figures that were published (the rest are null).

Other code makes entries with :func:`make_entry` and saves them with :func:`write_entry`::

    from refvps.leaderboard import make_entry, write_entry
    entry = make_entry("runs/rem/results.json", name="REM (tiny, synthetic)", backbone="tiny UNet3D",
                       checkpoint="runs/rem/ckpt.pt", command="refvps run-baseline rem ...")
    write_entry(entry, "leaderboard/entries/rem-tiny.json")
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Mapping

from refvps.errors import UsageError
from refvps.fileio import atomic_write_json

ENTRY_KEY = "entry"
ENTRY_FORMAT = 1

SUMMARY_KEYS = (
    "J",
    "F",
    "JF",
    "TempCon",
    "J_recall",
    "J_ci95",
    "J_concept_balanced",
    "n_clips",
    "n_expressions",
    "n_frames",
    "n_missing_frames",
)


@dataclass
class MethodInfo:
    """Who made a row of the leaderboard, and how to reproduce it."""

    name: str
    paper: str | None = None
    url: str | None = None
    backbone: str | None = None
    checkpoint: str | None = None
    command: str | None = None
    reported: bool = False
    source: str | None = None
    benchmark: str | None = None
    notes: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"format": ENTRY_FORMAT, **asdict(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "MethodInfo":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Entry:
    """One leaderboard row: the method's :class:`MethodInfo` and its results document."""

    info: MethodInfo
    results: dict[str, Any]
    path: Path | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def summary(self) -> dict[str, Any]:
        return self.results.get("summary") or {}

    @property
    def per_concept(self) -> list[dict[str, Any]]:
        return self.results.get("per_concept") or []

    @property
    def per_category(self) -> list[dict[str, Any]]:
        return self.results.get("per_category") or []

    def to_json(self) -> dict[str, Any]:
        document = {k: v for k, v in self.results.items() if k != ENTRY_KEY}
        document[ENTRY_KEY] = self.info.to_json()
        return document

    @classmethod
    def from_json(cls, data: Mapping[str, Any], path: Path | None = None, *, benchmark: str | None = None) -> "Entry":
        """``benchmark`` names the benchmark of a bare results document (default: its dataset's folder name)."""
        info = data.get(ENTRY_KEY)
        results = {k: v for k, v in data.items() if k != ENTRY_KEY}
        if isinstance(info, Mapping) and info.get("name"):
            return cls(MethodInfo.from_json(info), results, path)
        # A bare results.json: name it after --method, else after the file.
        meta = results.get("meta") or {}
        name = meta.get("method") or (path.stem if path is not None else "unnamed")
        return cls(MethodInfo(name=name, benchmark=benchmark or _benchmark_of(results)), results, path)


def _benchmark_of(results: Mapping[str, Any]) -> str | None:
    """The benchmark the dataset declares (``refvps convert`` records it), else the dataset's folder name."""
    meta = results.get("meta") or {}
    if meta.get("benchmark"):
        return str(meta["benchmark"])
    return Path(meta["dataset"]).name if meta.get("dataset") else None


def make_entry(
    results: Any,
    *,
    name: str,
    paper: str | None = None,
    url: str | None = None,
    backbone: str | None = None,
    checkpoint: str | None = None,
    command: str | None = None,
    reported: bool = False,
    source: str | None = None,
    benchmark: str | None = None,
    notes: str | None = None,
) -> Entry:
    """Turn scores into a leaderboard entry.

    ``results`` is a :class:`refvps.scoring.Results`, a results document (dict), or the path of a
    ``results.json``. ``benchmark`` defaults to the name of the scored dataset's folder. A
    ``reported`` entry (numbers from a publication) must say its ``source``.
    """
    if not name or not str(name).strip():
        raise UsageError("a leaderboard entry needs a method name", hint="pass name='My method (backbone)'")
    document = _results_document(results)
    if reported and not source:
        raise UsageError(
            f"the reported entry {name!r} needs a source",
            hint="say where the numbers were published, e.g. source='Paper X, Table 3'",
        )
    if "summary" not in document or not isinstance(document["summary"], Mapping):
        raise UsageError(f"results for {name!r} have no 'summary'", hint="pass the output of refvps evaluate")
    info = MethodInfo(
        name=str(name).strip(),
        paper=paper,
        url=url,
        backbone=backbone,
        checkpoint=checkpoint,
        command=command,
        reported=reported,
        source=source,
        benchmark=benchmark if benchmark is not None else _benchmark_of(document),
        notes=notes,
    )
    return Entry(info, document)


def reported_entry(
    name: str,
    *,
    J: float,
    source: str,
    TempCon: float | None = None,
    F: float | None = None,
    JF: float | None = None,
    paper: str | None = None,
    url: str | None = None,
    backbone: str | None = None,
    benchmark: str = "Ref-VPS",
    notes: str | None = None,
) -> Entry:
    """An entry for figures published elsewhere: only the printed numbers, everything else null."""
    summary = {key: None for key in SUMMARY_KEYS}
    summary.update({"J": J, "F": F, "JF": JF, "TempCon": TempCon})
    document = {
        "summary": summary,
        "per_expression": [],
        "per_clip": [],
        "per_concept": [],
        "per_category": [],
        "meta": {"dataset": benchmark, "method": name, "reported": True},
    }
    return make_entry(
        document,
        name=name,
        paper=paper,
        url=url,
        backbone=backbone,
        reported=True,
        source=source,
        benchmark=benchmark,
        notes=notes,
    )


def _results_document(results: Any) -> dict[str, Any]:
    if hasattr(results, "to_json") and hasattr(results, "summary"):
        return results.to_json()
    if isinstance(results, (str, Path)):
        return read_entry(results).results
    if isinstance(results, Mapping):
        return {k: v for k, v in results.items() if k != ENTRY_KEY}
    raise UsageError(
        f"cannot make an entry from {type(results).__name__}",
        hint="pass a refvps.scoring.Results, a results dict or the path of a results.json",
    )


def write_entry(entry: Entry, path: str | Path) -> Path:
    """Save an entry as JSON, atomically (the folder is created)."""
    path = Path(path)
    atomic_write_json(path, entry.to_json())
    entry.path = path
    return path


def read_entry(path: str | Path, *, benchmark: str | None = None) -> Entry:
    """Read an entry file, or a bare ``results.json`` (named after its ``--method`` or its file, and
    given ``benchmark``, by default its dataset's folder name)."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"results file not found: {path}", hint="pass results.json files or entry files", path=path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"results file does not parse as JSON: {path}: {exc}",
            hint="pass a results.json written by 'refvps evaluate --output' or an entry file",
            path=path,
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("summary"), dict):
        raise UsageError(
            f"not a results file (no 'summary' object): {path}",
            hint="pass a results.json written by 'refvps evaluate --output' or an entry file",
            path=path,
        )
    return Entry.from_json(data, path, benchmark=benchmark)


def load_entries(paths: Iterable[str | Path], *, benchmark: str | None = None) -> list[Entry]:
    """Read entries from files and folders (every ``*.json`` directly in a folder); ``benchmark``
    names the benchmark of bare results files (entry files name their own)."""
    entries: list[Entry] = []
    for item in paths:
        item = Path(item)
        if item.is_dir():
            files = sorted(p for p in item.glob("*.json") if not p.name.startswith("."))
            if not files:
                raise UsageError(
                    f"no .json entries in folder {item}", hint="pass results.json files or entry files", path=item
                )
            entries.extend(read_entry(p, benchmark=benchmark) for p in files)
        else:
            entries.append(read_entry(item, benchmark=benchmark))
    return entries
