"""The competition's pages (overview, evaluation, data, terms) and the two READMEs of the bundle.

They are Markdown templates shipped with the package (``refvps/codabench/templates/``), filled in
from the splits, the phases and the scorer's own constants, so that the evaluation page states the
numbers the scoring program uses. A host adds their dataset card to the data page (``--card``) or
replaces any page with a file of their own (``--page NAME=FILE``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from refvps import __version__
from refvps.codabench.competition import COLUMNS, DATE_FORMAT, CompetitionSettings
from refvps.codabench.scoring import ScoringConfig
from refvps.codabench.splits import Split
from refvps.dataset import Dataset
from refvps.errors import UsageError
from refvps.scoring import BOUND_TH, RECALL_THRESHOLD

_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.S)


@dataclass(frozen=True)
class SplitStats:
    """What the pages say about a split."""

    split: Split
    expressions: int
    frames: int
    masks: int  # frames x expressions: what a submission predicts
    concepts: int
    example: str  # one mask path of a submission, e.g. clip/0/00000.png

    @classmethod
    def of(cls, split: Split) -> SplitStats:
        dataset: Dataset = split.dataset()
        clips = [dataset.clip(c) for c in split.clip_ids]
        first = clips[0]
        return cls(
            split,
            expressions=sum(len(c.expressions) for c in clips),
            frames=sum(len(c) for c in clips),
            masks=sum(len(c) * len(c.expressions) for c in clips),
            concepts=len({c.meta.concept for c in clips}),
            example=f"{first.id}/{first.expressions[0].exp_id if first.expressions else '0'}/{first.frame_names[0]}.png",
        )


def template(name: str) -> str:
    return resources.files("refvps.codabench").joinpath(f"templates/{name}.md").read_text(encoding="utf-8")


def _fill(name: str, **values: object) -> str:
    return Template(template(name)).substitute({k: str(v) for k, v in values.items()})


def read_card(path: Path) -> str:
    """A dataset card's Markdown without its YAML front matter (the Hugging Face card header)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(
            f"cannot read the dataset card {path}: {exc}", hint="pass a Markdown file", path=path
        ) from None
    return _FRONT_MATTER.sub("", text).strip() + "\n"


def _date(value) -> str:
    return "never" if value is None else value.strftime(DATE_FORMAT)


def overview_page(settings: CompetitionSettings, dev: SplitStats, test: SplitStats) -> str:
    rows = []
    for name, stats, start, end, limits in (
        ("Development", dev, settings.dev_start, settings.dev_end, settings.dev_limits),
        ("Test", test, settings.test_start, settings.test_end, settings.test_limits),
    ):
        rows.append(
            f"| {name} | {stats.split.name} | {len(stats.split.clip_ids)} | {stats.expressions} | {stats.masks} "
            f"| {_date(start)} | {_date(end)} | {limits.describe()} |"
        )
    columns = ["| column | better | meaning |", "|---|---|---|"] + [
        f"| {c.title} | {'higher' if c.sorting == 'desc' else 'lower'} | {c.meaning} |" for c in COLUMNS
    ]
    return _fill(
        "overview",
        title=settings.title,
        description=settings.summary,
        phase_rows="\n".join(rows),
        columns_table="\n".join(columns),
        version=__version__,
    )


def evaluation_page(config: ScoringConfig, dev: SplitStats) -> str:
    return _fill(
        "evaluation",
        version=__version__,
        example_path=dev.example,
        max_file_mib=round(config.limits.max_file_bytes / (1 << 20), 1),
        max_files=config.limits.max_files,
        bound_th=f"{BOUND_TH:g} × the image diagonal" if BOUND_TH < 1 else f"{BOUND_TH:g} pixels",
        recall_threshold=RECALL_THRESHOLD,
        bootstrap=config.bootstrap,
        seed=config.seed,
    )


def data_page(dev: SplitStats, test: SplitStats, *, public_frames: bool, card: str | None) -> str:
    rows = [
        f"| {s.split.name} | {phase} | {len(s.split.clip_ids)} | {s.expressions} | {s.frames} | {s.concepts} | {truth} |"
        for s, phase, truth in ((dev, "Development", "public"), (test, "Test", "hidden"))
    ]
    frames = "frames, " if public_frames else ""
    note = (
        ""
        if public_frames
        else "\nThe frames are not distributed with the competition: `clips.json` gives each clip's source URL, "
        "trim span and crop, from which the frames are rebuilt (the dataset card says how).\n"
    )
    return _fill(
        "data",
        split_rows="\n".join(rows),
        dev_contents=f"{frames}masks, meta_expressions.json and clips.json of the development split",
        test_contents=f"{frames}meta_expressions.json and clips.json of the test split (no masks)",
        frames_note=note,
        card=f"\n## Dataset card\n\n{card}" if card else "",
    )


def terms_page(licence_note: str) -> str:
    return _fill("terms", licence_note=licence_note)


def starting_kit_readme(title: str) -> str:
    return _fill("starting_kit", title=title, version=__version__)


def scoring_program_readme(command: str) -> str:
    return _fill("scoring_program", command=command, version=__version__)
