"""``competition.yaml``: Codabench's v2 bundle format, filled in for a refvps benchmark.

The keys are those Codabench's unpacker reads (``src/apps/competitions/unpackers/v2.py`` of
codalab/codabench; docs/HOSTING.md describes each choice): a development phase on the dev split
with its ground truth public and no submission limit, then a test phase on the test split with its
ground truth hidden and a daily and a total limit; one task per phase (same scoring program, each
with its split's reference data); one leaderboard whose columns are :data:`COLUMNS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from refvps.errors import UsageError

# Paths inside the bundle (folders are zipped by Codabench when the bundle is unpacked). Each name
# is unique at the top level: Codabench zips a folder to "<its parent's parent>/<its name>.zip".
LOGO = "logo.png"
PAGES_DIR = "pages"
PAGE_NAMES = ("overview", "evaluation", "data", "terms")
SCORING_PROGRAM = "scoring_program"
STARTING_KIT = "starting_kit"
SAMPLE_SUBMISSION = f"{STARTING_KIT}/sample_submission.zip"
DEV, TEST = "dev", "test"


def reference_data_dir(phase: str) -> str:
    return f"reference_data_{phase}"


def public_data_dir(phase: str) -> str:
    return f"public_data_{phase}"


@dataclass(frozen=True)
class Column:
    """A leaderboard column: ``key`` in ``scores.json`` (and in refvps's results summary)."""

    key: str
    title: str
    sorting: str  # "desc": higher is better; "asc": lower is better
    meaning: str


COLUMNS: tuple[Column, ...] = (
    Column("J", "J", "desc", "region similarity (IoU, Ignore excluded), the headline number"),
    Column("F", "F", "desc", "boundary accuracy (DAVIS boundary F, Ignore excluded)"),
    Column("JF", "J&F", "desc", "mean of J and F"),
    Column("TempCon", "TempCon (lower is better)", "asc", "temporal consistency: how much IoU jumps between frames"),
    Column("J_recall", "J-recall", "desc", "share of frames with IoU above 0.5"),
    Column("J_concept_balanced", "Concept-balanced J", "desc", "mean over concepts of the concept's J"),
)
PRIMARY_COLUMN = 0  # J ranks the leaderboard, as the benchmark's headline number

SUBMISSION_RULES = (
    "Add",
    "Add_And_Delete",
    "Add_And_Delete_Multiple",
    "Force_Last",
    "Force_Latest_Multiple",
    "Force_Best",
)
COMPETITION_TYPES = ("competition", "benchmark")
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"  # what Codabench's documentation asks for (UTC)


@dataclass(frozen=True)
class PhaseLimits:
    """Submissions a participant may make in a phase: per day and in all (0 = no limit)."""

    per_day: int = 0
    total: int = 0

    def describe(self) -> str:
        if not self.per_day and not self.total:
            return "unlimited"
        parts = [f"{self.per_day} per day"] if self.per_day else []
        parts += [f"{self.total} in all"] if self.total else []
        return ", ".join(parts)


@dataclass(frozen=True)
class CompetitionSettings:
    """What a host chooses about the competition (``refvps codabench`` options)."""

    title: str
    dev_start: datetime
    test_start: datetime
    test_end: datetime | None = None  # None: the test phase never closes (a standing benchmark)
    description: str = ""
    docker_image: str = ""
    competition_type: str = "benchmark"
    dev_limits: PhaseLimits = PhaseLimits(0, 0)
    test_limits: PhaseLimits = PhaseLimits(2, 20)
    time_limit_s: int = 600
    submission_rule: str = "Force_Last"
    auto_approve: bool = False
    contact_email: str | None = None

    def __post_init__(self) -> None:
        problems = []
        if not self.title.strip() or len(self.title) > 256:
            problems.append("--title must be 1 to 256 characters")
        if not self.docker_image or len(self.docker_image) > 128:
            problems.append("--docker-image must be 1 to 128 characters")
        if self.test_start <= self.dev_start + timedelta(seconds=1):
            problems.append("the test phase must start after the development phase")
        if self.test_end is not None and self.test_end <= self.test_start:
            problems.append("--test-end must come after --test-start")
        for limits in (self.dev_limits, self.test_limits):
            if limits.per_day < 0 or limits.total < 0:
                problems.append("submission limits are 0 (none) or more")
        if self.time_limit_s < 1:
            problems.append("--time-limit must be at least 1 second")
        if self.submission_rule not in SUBMISSION_RULES:
            problems.append(f"--submission-rule must be one of {', '.join(SUBMISSION_RULES)}")
        if self.competition_type not in COMPETITION_TYPES:
            problems.append(f"--type must be one of {', '.join(COMPETITION_TYPES)}")
        if problems:
            raise UsageError("; ".join(problems), hint="see: refvps codabench --help")

    @property
    def summary(self) -> str:
        """The description, or one sentence when the host gave none (Codabench lists it with the title)."""
        return self.description or f"{self.title}: a benchmark of referring video process segmentation."

    @property
    def dev_end(self) -> datetime:
        # Codabench wants phases strictly in sequence: the dev phase ends the second before the test one starts
        return self.test_start - timedelta(seconds=1)


def _date(value: datetime | None) -> str | None:
    return None if value is None else value.strftime(DATE_FORMAT)


def _phase(settings: CompetitionSettings, index: int, name: str, description: str, split: str) -> dict[str, Any]:
    dev = split == DEV
    limits = settings.dev_limits if dev else settings.test_limits
    phase: dict[str, Any] = {
        "index": index,
        "name": name,
        "description": description,
        "start": _date(settings.dev_start if dev else settings.test_start),
        "end": _date(settings.dev_end if dev else settings.test_end),
        "max_submissions_per_day": limits.per_day,
        "max_submissions": limits.total,
        "execution_time_limit": settings.time_limit_s,
        "public_data": public_data_dir(split),
        "starting_kit": STARTING_KIT,
        "tasks": [index],
    }
    if phase["end"] is None:
        del phase["end"]
    return phase


def competition_document(
    settings: CompetitionSettings, *, dev_split: str, test_split: str, with_solution: bool
) -> dict[str, Any]:
    """The ``competition.yaml`` document (a dict; :func:`refvps.codabench.yamltext.dump_yaml` writes it)."""
    document: dict[str, Any] = {
        "version": 2,
        "title": settings.title,
        "description": settings.summary,
        "image": LOGO,
        "terms": f"{PAGES_DIR}/terms.md",
        "competition_type": settings.competition_type,
        "docker_image": settings.docker_image,
        "registration_auto_approve": settings.auto_approve,
        "make_programs_available": False,
        "make_input_data_available": False,
        "enable_detailed_results": True,
        "show_detailed_results_in_submission_panel": True,
        "show_detailed_results_in_leaderboard": True,
        "auto_run_submissions": True,
        "pages": [{"title": name.capitalize(), "file": f"{PAGES_DIR}/{name}.md"} for name in PAGE_NAMES],
        "phases": [
            _phase(settings, 0, "Development", f"Split {dev_split!r}; its ground truth is public.", DEV),
            _phase(settings, 1, "Test", f"Split {test_split!r}; its ground truth is hidden.", TEST),
        ],
        "tasks": [_task(settings, 0, DEV, dev_split), _task(settings, 1, TEST, test_split)],
        "leaderboards": [_leaderboard(settings)],
    }
    if settings.contact_email:
        document["contact_email"] = settings.contact_email
    if with_solution:
        document["solutions"] = [
            {"index": 0, "name": "motion baseline (sample submission)", "path": SAMPLE_SUBMISSION, "tasks": [0]}
        ]
    return document


def _task(settings: CompetitionSettings, index: int, phase: str, split: str) -> dict[str, Any]:
    return {
        "index": index,
        "name": f"{settings.title[:200]} ({split})",
        "description": f"Scores predictions for the {split!r} split with refvps.",
        "scoring_program": SCORING_PROGRAM,
        "reference_data": reference_data_dir(phase),
    }


def _leaderboard(settings: CompetitionSettings) -> dict[str, Any]:
    return {
        "title": "Results",
        "key": "main",
        "primary_index": PRIMARY_COLUMN,
        "submission_rule": settings.submission_rule,
        "columns": [
            {"title": c.title, "key": c.key, "index": i, "sorting": c.sorting, "precision": 2}
            for i, c in enumerate(COLUMNS)
        ],
    }


def participant_visible(document: dict[str, Any]) -> list[str]:
    """Every path of the bundle that participants can download once the competition runs.

    Codabench shows them in the competition's Files tab (``src/static/riot/competitions/detail/_tabs.tag``):
    each phase's public data and starting kit, every solution, the scoring and ingestion programs
    when ``make_programs_available``, the input data when ``make_input_data_available``; and pages,
    terms and the logo are shown to everyone. Reference data is shown to organisers only.
    """
    paths = [document["image"], document["terms"]] + [page["file"] for page in document.get("pages", [])]
    for phase in document.get("phases", []):
        paths += [phase[key] for key in ("public_data", "starting_kit") if phase.get(key)]
    paths += [solution["path"] for solution in document.get("solutions", [])]
    for task in document.get("tasks", []):
        if document.get("make_programs_available"):
            paths += [task[key] for key in ("scoring_program", "ingestion_program") if task.get(key)]
        if document.get("make_input_data_available") and task.get("input_data"):
            paths.append(task["input_data"])
    return sorted(set(paths))
