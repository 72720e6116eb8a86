"""``refvps codabench`` (build a Codabench competition bundle) and ``refvps codabench-score`` (what the
bundle's scoring program runs on Codabench's compute worker). docs/HOSTING.md walks through both."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import click
from rich.markup import escape

from refvps import __version__
from refvps.cli.common import RichProgress, console, print_json

DEFAULT_IMAGE = f"refvps/codabench-scorer:{__version__}"


def _date(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD or 'YYYY-MM-DD HH:MM')", param_hint=option
        ) from None
    return parsed.astimezone(timezone.utc).replace(tzinfo=None) if parsed.tzinfo else parsed


def _pages(values: tuple[str, ...]) -> dict[str, Path]:
    pages = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise click.BadParameter(f"{value!r}: write NAME=FILE, e.g. terms=my_terms.md", param_hint="--page")
        pages[name.strip()] = Path(path)
    return pages


@click.command()
@click.argument("root", type=click.Path(path_type=Path))
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="The bundle to write (a .zip).")
@click.option("--dev-split", default="dev", show_default=True, help="The split of the development phase.")
@click.option("--test-split", default="test", show_default=True, help="The split of the test phase (hidden masks).")
@click.option("--title", help="The competition's title [default: the dataset folder's name].")
@click.option("--description", default="", help="One paragraph for the overview page and the competition list.")
@click.option("--docker-image", default=DEFAULT_IMAGE, show_default=True, help="Image with this refvps version.")
@click.option(
    "--type",
    "competition_type",
    type=click.Choice(["benchmark", "competition"]),
    default="benchmark",
    show_default=True,
)
@click.option("--dev-start", help="When the development phase opens (UTC) [default: today].")
@click.option(
    "--test-start",
    help="When the test phase opens (UTC); the development phase closes then [default: 30 days after --dev-start].",
)
@click.option("--test-end", help="When the test phase closes (UTC) [default: never].")
@click.option(
    "--dev-daily",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Development submissions per day (0 = no limit).",
)
@click.option(
    "--dev-total",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Development submissions in all (0 = no limit).",
)
@click.option(
    "--test-daily",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Test submissions per day (0 = no limit).",
)
@click.option(
    "--test-total",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="Test submissions in all (0 = no limit).",
)
@click.option(
    "--time-limit",
    type=click.IntRange(min=1),
    default=600,
    show_default=True,
    help="Seconds a submission may take to score.",
)
@click.option(
    "--submission-rule", default="Force_Last", show_default=True, help="Codabench's leaderboard rule, e.g. Force_Best."
)
@click.option("--auto-approve", is_flag=True, help="Approve registrations without an organiser.")
@click.option("--contact-email", help="Shown on the competition's page.")
@click.option(
    "--no-frames", is_flag=True, help="Leave the frames out of the public data (when their licence forbids it)."
)
@click.option("--no-sample", is_flag=True, help="No sample submission (skips running the motion baseline).")
@click.option(
    "--test-per-clip",
    is_flag=True,
    help="Show per-clip scores in the test phase's detailed results too (default: per category and concept "
    "only, so that the hidden split cannot be tuned clip by clip).",
)
@click.option(
    "--card", type=click.Path(path_type=Path), help="Dataset card for the data page [default: ROOT/DATASET_CARD.md]."
)
@click.option(
    "--page",
    "page_files",
    multiple=True,
    metavar="NAME=FILE",
    help="Replace a page (overview, evaluation, data, terms).",
)
@click.option("--logo", type=click.Path(path_type=Path), help="The competition's logo (PNG) [default: drawn].")
@click.option(
    "--kit-file", "kit_files", multiple=True, type=click.Path(path_type=Path), help="Add a file to the starting kit."
)
@click.option(
    "--bootstrap", type=click.IntRange(min=0), default=1000, show_default=True, help="Resamples for the 95% intervals."
)
@click.option(
    "--scoring-workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes scoring a submission.",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def codabench(root: Path, out: Path, **opts) -> None:
    """Build a Codabench competition bundle for the dataset at ROOT: a development phase on the dev
    split (public masks, unlimited submissions) and a test phase on the test split (hidden masks,
    limited submissions), scored by refvps.

    Splits are named by a "split" field per clip in clips.json, or by folders ROOT/<split>/. The
    bundle is refused if any test mask could be downloaded by participants. Upload the zip at
    Codabench's "Benchmark > Management > Upload"; docs/HOSTING.md has every step.
    """
    from refvps.codabench import BundleOptions, CompetitionSettings, PhaseLimits, build_bundle

    dev_start = _date(opts["dev_start"], "--dev-start") or datetime.now(timezone.utc).replace(
        tzinfo=None, hour=0, minute=0, second=0, microsecond=0
    )
    settings = CompetitionSettings(
        title=opts["title"] or root.resolve().name,
        description=opts["description"],
        docker_image=opts["docker_image"],
        competition_type=opts["competition_type"],
        dev_start=dev_start,
        test_start=_date(opts["test_start"], "--test-start") or dev_start + timedelta(days=30),
        test_end=_date(opts["test_end"], "--test-end"),
        dev_limits=PhaseLimits(opts["dev_daily"], opts["dev_total"]),
        test_limits=PhaseLimits(opts["test_daily"], opts["test_total"]),
        time_limit_s=opts["time_limit"],
        submission_rule=opts["submission_rule"],
        auto_approve=opts["auto_approve"],
        contact_email=opts["contact_email"],
    )
    options = BundleOptions(
        dev_split=opts["dev_split"],
        test_split=opts["test_split"],
        public_frames=not opts["no_frames"],
        sample=not opts["no_sample"],
        card=opts["card"],
        pages=_pages(opts["page_files"]),
        logo=opts["logo"],
        kit_files=tuple(opts["kit_files"]),
        bootstrap=opts["bootstrap"],
        scoring_workers=opts["scoring_workers"],
        test_per_clip=opts["test_per_clip"],
    )
    with RichProgress(transient=True, disable=opts["as_json"]) as progress:
        report = build_bundle(root, out, settings, options, progress=progress)
    if opts["as_json"]:
        print_json({k: str(v) if isinstance(v, Path) else v for k, v in vars(report).items()})
        return
    splits = ", ".join(f"{name}: {count} clips" for name, count in report.splits.items())
    console.print(f"{escape(str(report.out))}: {report.files} files, {report.size / 1e6:.1f} MB ({splits})")
    console.print(f"checked: none of the {report.checked_files} files participants can download holds a test mask")
    console.print(
        f"next: build and push the scoring image {escape(report.docker_image)} (docker/Dockerfile), then upload "
        f"{escape(str(report.out))} on Codabench (Benchmark > Management > Upload); see docs/HOSTING.md"
    )


@click.command("codabench-score")
@click.argument("input_dir", type=click.Path(path_type=Path))
@click.argument("output_dir", type=click.Path(path_type=Path))
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path),
    help="The bundle's scoring_program/config.json.",
)
def codabench_score(input_dir: Path, output_dir: Path, config_path: Path) -> None:
    """Score a Codabench submission: INPUT_DIR/res against INPUT_DIR/ref, outputs to OUTPUT_DIR.

    This is the command the bundle's scoring program runs on Codabench's compute worker (it writes
    scores.json, detailed_results.html and results.json). An unusable submission gets an Error and a
    Hint on stderr, and no scores.
    """
    from refvps.codabench import COLUMNS, ScoringConfig, score_submission

    scores = score_submission(input_dir, output_dir, ScoringConfig.read(config_path))
    for column in COLUMNS:
        console.print(f"{column.title}: {scores[column.key]:.2f}")
