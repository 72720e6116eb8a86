"""``refvps codabench``: build a Codabench competition bundle from a refvps dataset (docs/HOSTING.md).

The bundle (a zip with ``competition.yaml`` at its top) holds:

* ``pages/``: overview, evaluation, data and terms (:mod:`refvps.codabench.pages`), and ``logo.png``;
* ``scoring_program/``: ``metadata.yaml`` (the command Codabench runs), ``config.json``
  (:class:`refvps.codabench.scoring.ScoringConfig`) and a README;
* ``reference_data_dev/``, ``reference_data_test/``: each split's ground truth only: its masks,
  ``meta_expressions.json`` and ``clips.json``, never its frames;
* ``public_data_dev/``: the dev split's frames, masks and index files; ``public_data_test/``: the
  test split's frames and index files, without masks (frames are left out with ``public_frames=False``);
* ``starting_kit/``: a README, the host's extra files, and ``sample_submission.zip`` (the motion
  baseline on the dev split), which is also the dev task's solution.

Both splits are validated first (masks included); the bundle is refused when anything participants
can download holds a test mask (:mod:`refvps.codabench.leak`), and written atomically.
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from refvps import __version__
from refvps.codabench import pages
from refvps.codabench.competition import (
    DEV,
    LOGO,
    PAGE_NAMES,
    PAGES_DIR,
    SAMPLE_SUBMISSION,
    SCORING_PROGRAM,
    STARTING_KIT,
    TEST,
    CompetitionSettings,
    competition_document,
    participant_visible,
    public_data_dir,
    reference_data_dir,
)
from refvps.codabench.leak import check_no_test_masks, fingerprint_split
from refvps.codabench.plan import BundlePlan
from refvps.codabench.scoring import PHASE_FILE, PhaseDetails, ScoringConfig
from refvps.codabench.splits import LAYOUT_FIELD, Split, SplitPlan, resolve_splits
from refvps.codabench.submission import SubmissionLimits
from refvps.codabench.yamltext import dump_yaml
from refvps.dataset import CLIPS_FILE, EXPRESSIONS_FILE, Dataset, image_size
from refvps.dataset.validate import open_valid_dataset
from refvps.errors import UsageError
from refvps.progress import NO_PROGRESS, Progress
from refvps.scoring.protocols import DEFAULT_PROTOCOL, dataset_protocol

log = logging.getLogger(__name__)

SCORING_COMMAND = "python3 -m refvps codabench-score /app/input /app/output --config /app/program/config.json"
CARD_FILE = "DATASET_CARD.md"
DEFAULT_LICENCE_NOTE = (
    "The videos remain under their uploaders' terms (each clip's source is in clips.json); "
    "do not redistribute the frames."
)


@dataclass(frozen=True)
class BundleOptions:
    """What goes into the bundle besides the competition settings."""

    dev_split: str = "dev"
    test_split: str = "test"
    public_frames: bool = True  # False: the public data holds the index files (sources, trims) but no frames
    sample: bool = True  # the motion baseline's sample submission in the starting kit
    card: Path | None = None  # the dataset card for the data page (default: ROOT/DATASET_CARD.md when present)
    pages: dict[str, Path] = field(default_factory=dict)  # page name -> the host's own Markdown file
    logo: Path | None = None
    kit_files: tuple[Path, ...] = ()  # more files for the starting kit
    licence_note: str = DEFAULT_LICENCE_NOTE
    bootstrap: int = 1000
    seed: int = 0
    scoring_workers: int = 1
    test_per_clip: bool = False  # per-clip scores in the test phase's detailed results (dev: always)


@dataclass
class BundleReport:
    """What :func:`build_bundle` wrote."""

    out: Path
    size: int
    files: int
    layout: str
    splits: dict[str, int]  # split name -> clips
    left_out: dict[str, int]
    checked_files: int  # files participants can download, checked for test masks
    sample: bool
    docker_image: str
    card: Path | None


def _split_files(split: Split, *, frames: bool, masks: bool) -> tuple[list[Path], dict, dict]:
    """The frame and mask files of a split's clips, and its filtered ``meta_expressions``/``clips`` documents."""
    dataset = split.dataset()
    files: list[Path] = []
    for clip_id in split.clip_ids:
        clip = dataset.clip(clip_id)
        files += [clip.frame_path(n) for n in clip.frame_names] if frames else []
        files += [clip.mask_path(n) for n in clip.annotated_frames] if masks else []
    videos = {c: dataset.raw_expressions[c] for c in split.clip_ids}
    clips = {c: dataset.raw_clips[c] for c in split.clip_ids if c in dataset.raw_clips}
    return files, {"videos": videos}, {"clips": clips}


def _plan_split(plan: BundlePlan, prefix: str, split: Split, *, frames: bool, masks: bool) -> None:
    files, videos, clips = _split_files(split, frames=frames, masks=masks)
    plan.add_tree(prefix, split.root, files)
    plan.add_text(f"{prefix}/{EXPRESSIONS_FILE}", json.dumps(videos, indent=2, ensure_ascii=False) + "\n")
    plan.add_text(f"{prefix}/{CLIPS_FILE}", json.dumps(clips, indent=2, ensure_ascii=False) + "\n")


def _limits(splits: SplitPlan) -> SubmissionLimits:
    largest, masks = (0, 0), 0
    for split in (splits.dev, splits.test):
        dataset = split.dataset()
        split_masks = 0
        for clip_id in split.clip_ids:
            clip = dataset.clip(clip_id)
            width, height = image_size(clip.mask_path(clip.annotated_frames[0]))
            largest = max(largest, (height, width), key=lambda s: s[0] * s[1])
            split_masks += len(clip) * len(clip.expressions)
        masks = max(masks, split_masks)
    return SubmissionLimits.for_split(masks, largest)


def _logo(title: str) -> bytes:
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (256, 256), (24, 38, 64))
    draw = ImageDraw.Draw(image)
    draw.ellipse((48, 48, 208, 208), outline=(240, 160, 60), width=10)
    initials = "".join(word[0] for word in title.split()[:3] if word[:1].isalnum()).upper() or "R"
    try:
        font = ImageFont.load_default(size=56)
    except TypeError:  # Pillow < 10.1 has one size only
        font = ImageFont.load_default()
    draw.text((128, 128), initials, fill=(255, 255, 255), anchor="mm", font=font)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _plan_pages(
    plan: BundlePlan,
    settings: CompetitionSettings,
    options: BundleOptions,
    config: ScoringConfig,
    splits: SplitPlan,
    card: Path | None,
) -> None:
    dev, test = pages.SplitStats.of(splits.dev), pages.SplitStats.of(splits.test)
    generated = {
        "overview": lambda: pages.overview_page(settings, dev, test),
        "evaluation": lambda: pages.evaluation_page(config, dev),
        "data": lambda: pages.data_page(
            dev, test, public_frames=options.public_frames, card=pages.read_card(card) if card else None
        ),
        "terms": lambda: pages.terms_page(options.licence_note),
    }
    for name in PAGE_NAMES:
        own = options.pages.get(name)
        text = own.read_text(encoding="utf-8") if own is not None else generated[name]()
        if not text.strip():
            raise UsageError(f"page {name} is empty: {own}", hint="Codabench refuses empty pages", path=own)
        plan.add_text(f"{PAGES_DIR}/{name}.md", text)
    plan.add_bytes(LOGO, options.logo.read_bytes() if options.logo else _logo(settings.title))


def _plan_programs(plan: BundlePlan, config: ScoringConfig) -> None:
    plan.add_text(f"{SCORING_PROGRAM}/metadata.yaml", dump_yaml({"command": SCORING_COMMAND}))
    plan.add_text(f"{SCORING_PROGRAM}/config.json", json.dumps(config.to_json(), indent=2) + "\n")
    plan.add_text(f"{SCORING_PROGRAM}/README.md", pages.scoring_program_readme(SCORING_COMMAND))


def _plan_kit(plan: BundlePlan, settings: CompetitionSettings, options: BundleOptions, splits: SplitPlan, work: Path):
    from refvps.codabench.kit import sample_submission  # imports OpenCV through the baselines

    plan.add_text(f"{STARTING_KIT}/README.md", pages.starting_kit_readme(settings.title))
    for path in options.kit_files:
        plan.add_file(f"{STARTING_KIT}/{path.name}", path)
    if options.sample:
        plan.add_file(SAMPLE_SUBMISSION, sample_submission(splits.dev, splits.layout, work))


def _check_options(options: BundleOptions) -> None:
    unknown = sorted(set(options.pages) - set(PAGE_NAMES))
    if unknown:
        raise UsageError(f"no page named {', '.join(unknown)}", hint=f"pages are: {', '.join(PAGE_NAMES)}")
    for path in [*options.pages.values(), *options.kit_files, options.logo, options.card]:
        if path is not None and not Path(path).is_file():
            raise UsageError(f"not a file: {path}", hint="check the path", path=path)
    names = [p.name for p in options.kit_files]
    if len(set(names)) != len(names) or {"README.md", "sample_submission.zip"} & set(names):
        raise UsageError(
            "starting-kit files need distinct names other than README.md and sample_submission.zip",
            hint="rename the files passed with --kit-file",
        )


def _validate(splits: SplitPlan, progress: Progress) -> None:
    with progress.stage("validate", 2):
        for split in (splits.dev, splits.test):
            clips = list(split.clip_ids) if splits.layout == LAYOUT_FIELD else None
            dataset, _ = open_valid_dataset(split.root, clips, check_masks=True, require_masks=True)
            _check_scorable(split, dataset)
            progress.advance("validate", note=split.name)


def _check_scorable(split: Split, dataset: Dataset) -> None:
    """The scoring program computes Ref-VPS's columns on every clip: a clip without ground truth, or a
    benchmark converted with its own protocol (docs/BENCHMARKS_SUITE.md), cannot be hosted that way."""
    protocol = dataset_protocol(dataset)
    if protocol not in (None, DEFAULT_PROTOCOL):
        raise UsageError(
            f"split {split.name} ({split.root}) is scored under the {protocol} protocol, and the Codabench "
            f"bundle's leaderboard holds Ref-VPS's numbers (protocol {DEFAULT_PROTOCOL})",
            hint="submit a converted benchmark to its official server (refvps export-submission) "
            "or score it locally with refvps evaluate",
            path=split.root / CLIPS_FILE,
        )
    without = [c for c in split.clip_ids if not dataset.clip(c).annotated_frames]
    if without:
        raise UsageError(
            f"split {split.name} has {len(without)} clip(s) without ground truth (first: {without[0]}): "
            "its annotated_frames list is empty, so the scoring program could not score them",
            hint="annotate those clips, or leave them out of the split",
            path=split.root / EXPRESSIONS_FILE,
        )


def build_bundle(
    root: str | Path,
    out: str | Path,
    settings: CompetitionSettings,
    options: BundleOptions = BundleOptions(),
    *,
    progress: Progress = NO_PROGRESS,
) -> BundleReport:
    """Build the competition bundle for the dataset at ``root`` into the zip ``out`` (module docstring)."""
    root, out = Path(root), Path(out)
    _check_options(options)
    splits = resolve_splits(root, options.dev_split, options.test_split)
    _validate(splits, progress)
    card = options.card or (root / CARD_FILE if (root / CARD_FILE).is_file() else None)
    config = ScoringConfig(
        __version__, _limits(splits), settings.title, options.bootstrap, options.seed, options.scoring_workers
    )
    document = competition_document(
        settings, dev_split=splits.dev.name, test_split=splits.test.name, with_solution=options.sample
    )
    plan = BundlePlan()
    plan.add_text("competition.yaml", dump_yaml(document))
    _plan_pages(plan, settings, options, config, splits, card)
    _plan_programs(plan, config)
    for phase, split in ((DEV, splits.dev), (TEST, splits.test)):
        _plan_split(plan, reference_data_dir(phase), split, frames=False, masks=True)
        details = PhaseDetails(phase, per_clip=phase == DEV or options.test_per_clip)
        plan.add_text(f"{reference_data_dir(phase)}/{PHASE_FILE}", json.dumps(details.to_json(), indent=2) + "\n")
        _plan_split(plan, public_data_dir(phase), split, frames=options.public_frames, masks=phase == DEV)
    with tempfile.TemporaryDirectory(
        prefix=".refvps-codabench-", dir=out.parent if out.parent.is_dir() else None
    ) as work:
        with progress.stage("sample submission"):
            _plan_kit(plan, settings, options, splits, Path(work))
        prints = fingerprint_split(splits.test, progress=progress)
        checked = check_no_test_masks(plan, participant_visible(document), prints, progress=progress)
        plan.write_zip(out, progress=progress)
    log.info(
        "wrote %s: %d files, %d of them downloadable by participants and free of test masks", out, len(plan), checked
    )
    return BundleReport(
        out=out,
        size=out.stat().st_size,
        files=len(plan),
        layout=splits.layout,
        splits={splits.dev.name: len(splits.dev.clip_ids), splits.test.name: len(splits.test.clip_ids)},
        left_out=splits.left_out,
        checked_files=checked,
        sample=options.sample,
        docker_image=settings.docker_image,
        card=card,
    )
