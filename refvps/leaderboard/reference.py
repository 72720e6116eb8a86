"""Published Ref-VPS results (the paper's tables), shipped as "reported" leaderboard entries.

The numbers are copied from the ReferEverything paper (the REM / Ref-VPS paper):

* arXiv:2410.23287v1 (the first version): Table 3 gives Ref-VPS J for MUTR, UNINEXT, VD-IT and
  REM (ModelScope); Table B gives their temporal consistency on Ref-VPS.
* the later version (ICCV 2025): the out-of-domain table gives Ref-VPS J for UNINEXT, VD-IT,
  REM (ModelScope, 1.4B) and REM (Wan 2.1, 14B); it prints no TempCon.

They were not scored by refvps and have no breakdowns; their J and TempCon are the measures that
``docs/METRICS.md`` defines. The files in ``leaderboard/reference/`` are written from this table
(``write_reference_entries("leaderboard/reference")``) and a test checks that the two agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from refvps.errors import UsageError
from refvps.leaderboard.entries import Entry, read_entry, reported_entry, write_entry

PAPER = "ReferEverything: Towards Segmenting Everything We Can Speak of in Videos"
PAPER_V1_URL = "https://arxiv.org/abs/2410.23287v1"
PAPER_LATER_URL = "https://arxiv.org/abs/2410.23287"
SOURCE_V1 = f"{PAPER}, arXiv:2410.23287v1, Table 3 (J) and Table B (TempCon)"
SOURCE_LATER = f"{PAPER}, later version (ICCV 2025), out-of-domain table (Ref-VPS J)"

METHODS = {
    "MUTR": (
        "https://github.com/OpenGVLab/MUTR",
        "Referred by Multi-Modality: A Unified Temporal Transformer for Video Object Segmentation",
        None,
    ),
    "UNINEXT": (
        "https://github.com/MasterBin-IIAU/UNINEXT",
        "Universal Instance Perception as Object Discovery and Retrieval",
        None,
    ),
    "VD-IT": (
        "https://github.com/buxiangzhiren/VD-IT",
        "Exploring Pre-trained Text-to-Video Diffusion Models for Referring Video Object Segmentation",
        "ModelScope T2V (same diffusion backbone as REM, per the paper)",
    ),
    "REM": ("https://github.com/miccooper9/ReferEverything", PAPER, None),
}

# (file stem, method, display name, backbone, J, TempCon, source, source URL)
PUBLISHED = [
    ("mutr-paper-v1", "MUTR", "MUTR (reported, paper v1)", None, 24.07, 2.9, SOURCE_V1, PAPER_V1_URL),
    ("uninext-paper-v1", "UNINEXT", "UNINEXT (reported, paper v1)", None, 26.25, 5.2, SOURCE_V1, PAPER_V1_URL),
    ("vd-it-paper-v1", "VD-IT", "VD-IT (reported, paper v1)", None, 35.27, 4.7, SOURCE_V1, PAPER_V1_URL),
    (
        "rem-modelscope-paper-v1",
        "REM",
        "REM ModelScope (reported, paper v1)",
        "ModelScope T2V",
        48.96,
        2.8,
        SOURCE_V1,
        PAPER_V1_URL,
    ),
    (
        "uninext-paper-iccv",
        "UNINEXT",
        "UNINEXT (reported, paper ICCV)",
        None,
        28.7,
        None,
        SOURCE_LATER,
        PAPER_LATER_URL,
    ),
    ("vd-it-paper-iccv", "VD-IT", "VD-IT (reported, paper ICCV)", None, 37.9, None, SOURCE_LATER, PAPER_LATER_URL),
    (
        "rem-modelscope-paper-iccv",
        "REM",
        "REM ModelScope (reported, paper ICCV)",
        "ModelScope T2V (MS-1.4B)",
        49.0,
        None,
        SOURCE_LATER,
        PAPER_LATER_URL,
    ),
    (
        "rem-wan-paper-iccv",
        "REM",
        "REM Wan 14B (reported, paper ICCV)",
        "Wan 2.1 14B",
        50.0,
        None,
        SOURCE_LATER,
        PAPER_LATER_URL,
    ),
]


def builtin_reference_entries() -> dict[str, Entry]:
    """The published rows as entries, keyed by file stem."""
    entries = {}
    for stem, method, name, backbone, J, TempCon, source, source_url in PUBLISHED:
        url, paper, default_backbone = METHODS[method]
        entries[stem] = reported_entry(
            name,
            J=J,
            TempCon=TempCon,
            source=f"{source} <{source_url}>",
            paper=paper,
            url=url,
            backbone=backbone or default_backbone,
            benchmark="Ref-VPS",
        )
    return entries


def repository_reference_dir() -> Path:
    """``leaderboard/reference`` of the source checkout this package runs from."""
    return Path(__file__).resolve().parents[2] / "leaderboard" / "reference"


def reference_entries(folder: str | Path | None = None) -> list[Entry]:
    """The published rows: from ``folder``, or by default from the checkout's ``leaderboard/reference``,
    or the built-in table when that is not there (an installed wheel). A ``folder`` that is given
    must hold entries: a mistyped path never silently falls back to the built-in table."""
    if folder is None:
        default = repository_reference_dir()
        files = sorted(default.glob("*.json")) if default.is_dir() else []
        return [read_entry(p) for p in files] if files else list(builtin_reference_entries().values())
    folder = Path(folder)
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        raise UsageError(
            f"no reported entries (*.json) in {folder}",
            hint="pass the folder of reported entries (like leaderboard/reference/), or leave out --reference",
            path=folder,
        )
    return [read_entry(p) for p in files]


SUITE_DIR = "suite"


def suite_reference_entries(matching: Iterable[Entry] = ()) -> list[Entry]:
    """The published rows of the paper's other benchmarks (``leaderboard/reference/suite/``: Ref-DAVIS17,
    Ref-YouTube-VOS, VSPW-stuff, BURST; docs/BENCHMARKS_SUITE.md), those of the benchmarks and protocols
    of the ``matching`` entries only, so that a run lands next to the paper's rows of its benchmark."""
    from refvps.leaderboard.render import benchmark_key, entry_benchmark

    folder = repository_reference_dir() / SUITE_DIR
    entries = [read_entry(p) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    wanted = {benchmark_key(entry_benchmark(e)) for e in matching}
    return [e for e in entries if benchmark_key(entry_benchmark(e)) in wanted]


def references_for(entries: Sequence[Entry], folder: str | Path | None = None) -> list[Entry]:
    """The published rows a leaderboard of ``entries`` shows: those of ``folder`` when it is given; else the
    paper's rows of the entries' own suite benchmarks and protocols, and the Ref-VPS rows unless every
    entry belongs to one of those other benchmarks."""
    if folder is not None:
        return reference_entries(folder)
    from refvps.leaderboard.render import benchmark_key, entry_benchmark

    suite = suite_reference_entries(entries)
    covered = {benchmark_key(entry_benchmark(e)) for e in suite}
    if entries and all(benchmark_key(entry_benchmark(e)) in covered for e in entries):
        return suite
    return reference_entries() + suite


def write_reference_entries(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    return [write_entry(entry, folder / f"{stem}.json") for stem, entry in builtin_reference_entries().items()]
