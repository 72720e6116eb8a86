"""``refvps convert``: the paper's benchmarks in the refvps dataset format (docs/BENCHMARKS_SUITE.md).

>>> from refvps.convert import convert
>>> report = convert("ref-davis", "data/ref-davis", "runs/ref-davis")        # doctest: +SKIP
>>> report.ok, report.links                                                 # doctest: +SKIP

One module per benchmark reads its official files (each names the upstream code it follows) and
describes the clips; :mod:`refvps.convert.common` writes them: frames linked, masks as palette PNGs,
resumable, one failing clip reported without stopping the rest.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol, cast

from refvps.convert.common import (
    BenchmarkInfo,
    ClipJob,
    ConversionReport,
    check_destination,
    conversion_fingerprint,
    run_conversion,
)
from refvps.errors import UsageError
from refvps.progress import NO_PROGRESS, Progress

# benchmark -> module (each has INFO and jobs(source, split, options, notes))
CONVERTERS = {
    "ref-davis": "refvps.convert.ref_davis",
    "ref-ytvos": "refvps.convert.ref_ytvos",
    "mevis": "refvps.convert.mevis",
    "vspw-stuff": "refvps.convert.vspw",
    "burst": "refvps.convert.burst",
}

# options a converter takes (refvps convert --classes / --frames / --frame-list)
OPTIONS = {"vspw-stuff": ("classes",), "burst": ("frames", "frame_list")}


class Converter(Protocol):
    """What a converter module provides."""

    INFO: BenchmarkInfo

    def jobs(self, source: Path, split: str, options: dict[str, str], notes: list[str]) -> list[ClipJob]:
        """The clips of ``split`` read from the benchmark's files at ``source``; what is left out goes in ``notes``."""
        ...


def benchmark_info(benchmark: str) -> BenchmarkInfo:
    return _module(benchmark).INFO


def _module(benchmark: str) -> Converter:
    if benchmark not in CONVERTERS:
        raise UsageError(f"unknown benchmark {benchmark!r}", hint=f"choose one of {', '.join(CONVERTERS)}")
    return cast(Converter, importlib.import_module(CONVERTERS[benchmark]))


def convert(
    benchmark: str,
    source: str | Path,
    out: str | Path,
    *,
    split: str | None = None,
    options: dict[str, Any] | None = None,
    progress: Progress = NO_PROGRESS,
) -> ConversionReport:
    """Convert ``benchmark``'s ``split`` (default: the one the paper evaluates) from its official files
    at ``source`` into a refvps dataset at ``out``; rerunning resumes. Returns what was done."""
    module = _module(benchmark)
    info = module.INFO
    split = split or info.default_split
    if split not in info.splits:
        raise UsageError(f"{benchmark} has no split {split!r}", hint=f"choose one of {', '.join(info.splits)}")
    options = {k: str(v) for k, v in (options or {}).items() if v is not None}
    unknown = set(options) - set(OPTIONS.get(benchmark, ()))
    if unknown:
        raise UsageError(
            f"{benchmark} takes no option {', '.join(sorted(unknown))}",
            hint=f"its options: {', '.join(OPTIONS.get(benchmark, ())) or 'none'}",
        )
    source = Path(source)
    if not source.is_dir():
        raise UsageError(f"source folder not found: {source}", hint="pass the benchmark's root folder", path=source)
    check_destination(Path(out), conversion_fingerprint(info, split, source, options))  # before reading anything
    notes: list[str] = []
    jobs = module.jobs(source, split, options, notes)
    if not jobs:
        raise UsageError(
            f"no clip to convert in {source} ({benchmark}, {split})",
            hint="check the folder layout in docs/BENCHMARKS_SUITE.md",
            path=source,
        )
    return run_conversion(info, split, source, Path(out), jobs, options=options, notes=notes, progress=progress)


__all__ = ["CONVERTERS", "ConversionReport", "benchmark_info", "convert"]
