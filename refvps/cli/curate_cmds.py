"""CLI of the curation pipeline: ``refvps queries``, ``fetch``, ``review``, ``trim`` (thin: parse,
call :mod:`refvps.curation`, print)."""

from __future__ import annotations

from pathlib import Path

import click

from refvps.cli.common import RichProgress, console, err_console, print_json
from refvps.curation.review import REJECT_REASONS
from refvps.errors import RefvpsError, UsageError

PATH = click.Path(path_type=Path)
EXISTING_FILE = click.Path(path_type=Path, exists=True, dir_okay=False)


_SHOT_OPTIONS = (  # as --help lists them (see docs/CURATION.md for tuning)
    click.option(
        "--detector",
        type=click.Choice(["content", "adaptive"]),
        default="content",
        show_default=True,
        help="PySceneDetect detector that proposes cuts.",
    ),
    click.option(
        "--threshold",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        help="Detector threshold (content: 27, adaptive: 3 by default). Lower proposes more cuts.",
    ),
    click.option(
        "--min-shot",
        type=click.FloatRange(min=0),
        default=0.3,
        show_default=True,
        help="Shortest shot (seconds); also the window each proposed cut is confirmed over.",
    ),
    click.option(
        "--cut-ratio",
        type=click.FloatRange(min=0),
        default=3.0,
        show_default=True,
        help="A cut must change the picture this many times more than the shots change on their own "
        "(0: keep every proposed cut).",
    ),
)


def _shot_options(func):
    for option in reversed(_SHOT_OPTIONS):
        func = option(func)
    return func


def _shot_params(detector: str, threshold: float | None, min_shot: float, cut_ratio: float):
    from refvps.curation.shots import ShotParams

    return ShotParams(detector=detector, threshold=threshold, min_shot_s=min_shot, cut_ratio=cut_ratio)


# -- queries --------------------------------------------------------------------------------------
@click.command()
@click.option("--taxonomy", type=PATH, default=None, help="Concept taxonomy (default: annotations/taxonomy.json).")
@click.option(
    "--templates", type=PATH, default=None, help="How phrasing is combined (default: annotations/query_templates.json)."
)
@click.option(
    "--per-concept",
    "-k",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Queries per concept (and at most as many more from --llm).",
)
@click.option(
    "--llm",
    "llm_dir",
    type=PATH,
    default=None,
    help="Folder of a local transformers text-generation model to propose more queries.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed of --llm.")
@click.option("--concept", "only", multiple=True, help="Only these concept ids (repeatable).")
@click.option(
    "--out",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="CSV to write (columns category, concept, query, source).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def queries(taxonomy, templates, per_concept, llm_dir, seed, only, out, as_json):
    """Write search queries for every concept of the taxonomy.

    Offline and deterministic by default: combinations of each concept's phrasing material in the
    taxonomy (what it looks like, where it happens, footage types), de-duplicated as bags of words;
    --llm MODEL_DIR adds queries proposed by a local language model, held to the same rules.
    """
    import importlib

    q = importlib.import_module("refvps.curation.queries")

    taxonomy_path = q.find_taxonomy(taxonomy)
    concepts = q.load_taxonomy(taxonomy_path)
    if only:
        concepts = q.select_concepts(concepts, only, path=taxonomy_path)
    rows = q.generate_queries(concepts, q.load_templates(q.find_templates(templates)), per_concept)
    llm_count = 0
    # What the model wrote for each concept, kept until the CSV is written: an interrupted run resumes.
    cache = out.with_name(f".{out.name}.llm-cache.json")
    if llm_dir is not None:
        with RichProgress(disable=as_json, labels={"model": "asking the model"}) as progress:
            extra = q.llm_queries(
                concepts, llm_dir, per_concept=per_concept, existing=rows, seed=seed, progress=progress, cache=cache
            )
        llm_count = len(extra)
        rows = q.order_rows(rows + extra, concepts)
    q.write_queries_csv(out, rows)
    cache.unlink(missing_ok=True)
    counts = q.count_by_concept(rows, concepts)
    short = {
        c: n
        for c, n in q.count_by_concept([r for r in rows if r.source == "template"], concepts).items()
        if n < per_concept
    }
    summary = {
        "out": str(out),
        "taxonomy": str(taxonomy_path),
        "concepts": len(concepts),
        "queries": len(rows),
        "template": len(rows) - llm_count,
        "llm": llm_count,
        "per_concept": counts,
        "short": short,
    }
    if as_json:
        print_json(summary)
        return
    console.print(
        f"Wrote {len(rows)} queries for {len(concepts)} concepts to {out} "
        f"({len(rows) - llm_count} from the taxonomy's phrasing, {llm_count} from the model); "
        f"per concept: {min(counts.values(), default=0)} to {max(counts.values(), default=0)}",
        markup=False,
    )
    for concept_id, count in short.items():
        console.print(
            f"  {concept_id}: only {count} distinct queries from its phrasing (add looks, places or footage to it in "
            f"{taxonomy_path.name})",
            markup=False,
            soft_wrap=True,
        )


# -- fetch ----------------------------------------------------------------------------------------
@click.command()
@click.argument("source", type=EXISTING_FILE)
@click.option("--workspace", "-w", type=PATH, required=True, help="Curation workspace folder (created if needed).")
@click.option(
    "--per-query", type=click.IntRange(min=1), default=5, show_default=True, help="Search results fetched per query."
)
@click.option(
    "--max-duration",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    help="Skip longer videos (seconds; unknown durations pass). 0: no limit.",
)
@click.option(
    "--min-duration",
    type=click.FloatRange(min=0),
    default=None,
    help="Skip shorter videos (seconds; unknown durations pass).",
)
@click.option(
    "--search-prefix",
    default="ytsearch",
    show_default=True,
    help="yt-dlp search prefix used for queries (ytsearch, ytsearchdate, ...).",
)
@click.option(
    "--format", "format_", default=None, help="yt-dlp format selector (default: video only, mp4 first, <= 1080p)."
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Retries of a transient failure (timeouts, HTTP 429/5xx).",
)
@click.option(
    "--backoff",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Seconds before the first retry; doubles each time.",
)
@click.option(
    "--optout",
    type=EXISTING_FILE,
    default=None,
    help="Extra opt-out list (uploaders or ids, one per line); WS/optout.txt is always read.",
)
@click.option("--taxonomy", type=PATH, default=None, help="Taxonomy the concept column is checked against.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def fetch(
    source,
    workspace,
    per_query,
    max_duration,
    min_duration,
    search_prefix,
    format_,
    retries,
    backoff,
    optout,
    taxonomy,
    as_json,
):
    """Download candidate videos with yt-dlp, with provenance.

    SOURCE is a queries CSV (from refvps queries; each query becomes a ytsearchN: search) or a list
    of URLs (one per line, optionally followed by a concept id; or a CSV with a 'url' column).
    Running it again fetches only what is missing (download archive).
    """
    from refvps.curation.fetch import DEFAULT_FORMAT, FetchOptions, read_fetch_input
    from refvps.curation.fetch import fetch as run_fetch
    from refvps.curation.workspace import Workspace

    items = read_fetch_input(source, taxonomy)
    options = FetchOptions(
        per_query=per_query,
        max_duration_s=max_duration or None,
        min_duration_s=min_duration,
        search_prefix=search_prefix,
        format=format_ or DEFAULT_FORMAT,
        retries=retries,
        backoff_s=backoff,
        optout_file=optout,
    )
    ws = Workspace(workspace)
    with RichProgress(disable=as_json, labels={"fetch": "fetching"}) as progress:
        report = run_fetch(ws, items, options, progress=progress)
    if as_json:
        print_json(report.to_json())
    else:
        _print_fetch_summary(ws, report)
    if report.failed:
        transient = sum(f.transient for f in report.failed)
        permanent = len(report.failed) - transient
        advice = []
        if transient:
            advice.append(
                f"rerun the same command to retry the {transient} that failed for a passing reason (timeout, busy server)"
            )
        if permanent:
            advice.append(f"fix or remove the {permanent} broken or unsupported one(s) in {source}")
        raise RefvpsError(
            f"{len(report.failed)} item(s) could not be fetched; listed in {ws.failures_path}",
            hint="; ".join(advice) + "; everything fetched is kept and not fetched again",
        )


def _print_fetch_summary(ws, report) -> None:
    console.print(
        f"Fetched {len(report.downloaded)} video(s) into {ws.root}; skipped {len(report.skipped)}; "
        f"failed {len(report.failed)}",
        markup=False,
    )
    for skip in report.skipped:
        console.print(f"  skipped {skip['key'] or skip['target']}: {skip['reason']}", soft_wrap=True, markup=False)
    for warning in report.warnings:
        err_console.print(f"  warning: {warning}", markup=False, soft_wrap=True)
    for failure in report.failed:
        err_console.print(f"  failed {failure.target}: {failure.reason}", markup=False, soft_wrap=True)


# -- review ---------------------------------------------------------------------------------------
def _parse_grid(text: str) -> tuple[int, int]:
    try:
        rows, cols = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--grid must look like 4x4, got {text!r}", hint="ROWSxCOLS, e.g. --grid 3x5") from None
    return rows, cols


def _parse_crop(text: str | None):
    if text is None:
        return None
    if text.strip().lower() == "none":
        return "none"
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or min(values) < 0 or values[2] == 0 or values[3] == 0:
        raise UsageError(f"--crop must be X,Y,W,H or 'none', got {text!r}", hint="e.g. --crop 0,140,1080,1640")
    return values


def _concept_id(value: str) -> str:
    """The taxonomy id of a concept given by id or name (as given when no taxonomy is found)."""
    from refvps.curation.queries import optional_concept_index, require_concept

    index = optional_concept_index()
    return value if index is None else require_concept(index, value).id


@click.command()
@click.option("--workspace", "-w", type=PATH, required=True, help="Curation workspace folder.")
@click.option("--grid", default="4x4", show_default=True, help="Contact sheet grid, ROWSxCOLS.")
@_shot_options
@click.option("--accept", "accept_key", default=None, help="Record: accept this video (key as in the sheets).")
@click.option(
    "--span",
    "spans",
    multiple=True,
    help="With --accept: event span START-END in seconds (repeatable; one clip per event). None: every shot.",
)
@click.option("--reject", "reject_key", default=None, help="Record: reject this video.")
@click.option(
    "--reason",
    type=click.Choice(list(REJECT_REASONS)),
    default=None,
    help="With --reject: why (the paper's criteria, plus irrelevant).",
)
@click.option("--concept", default=None, help="With --accept: the concept id, if not the one its query had.")
@click.option(
    "--crop", "crop_text", default=None, help="With --accept: fixed crop X,Y,W,H in source pixels, or 'none'."
)
@click.option("--note", default="", help="With --accept/--reject: a free note.")
@click.option("--reviewer", default=None, help="With --accept/--reject: who decided.")
@click.option(
    "--import", "import_file", type=EXISTING_FILE, default=None, help="Merge decisions exported from the review page."
)
@click.option("--list", "list_only", is_flag=True, help="Only list videos and decisions (no sheets).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def review(
    workspace,
    grid,
    detector,
    threshold,
    min_shot,
    cut_ratio,
    accept_key,
    spans,
    reject_key,
    reason,
    concept,
    crop_text,
    note,
    reviewer,
    import_file,
    list_only,
    as_json,
):
    """Make contact sheets and record accept/reject decisions.

    Without --accept/--reject/--import: writes a contact sheet per video (WS/review/sheets/), the
    page WS/review/index.html (accept/reject controls, exports a decisions file) and lists what is
    undecided. decisions.json in the workspace is the source of truth.
    """
    import importlib

    from refvps.curation.workspace import Workspace

    rv = importlib.import_module("refvps.curation.review")  # the module (the package exports review())

    ws = Workspace(workspace).require()
    if accept_key and reject_key:
        raise UsageError("give --accept or --reject, not both", hint="record one decision per call")
    if (spans or concept or crop_text) and not accept_key:
        raise UsageError("--span, --concept and --crop go with --accept KEY", hint="add --accept KEY")
    if reason and not reject_key:
        raise UsageError("--reason goes with --reject KEY", hint="add --reject KEY")
    if accept_key or reject_key:
        if reject_key and not reason:
            raise UsageError("--reject needs --reason", hint=f"one of: {', '.join(rv.REJECT_REASONS)}")
        decision = rv.Decision(
            key=accept_key or reject_key,
            decision="accept" if accept_key else "reject",
            reason=reason,
            events=sorted((rv.parse_span(s) for s in spans), key=lambda e: e.start_s),
            concept=_concept_id(concept) if concept else None,
            crop=_parse_crop(crop_text),
            note=note,
            reviewer=reviewer,
        )
        _record_decision(rv, ws, decision, as_json)
    elif import_file is not None:
        imported = rv.import_decisions(ws, import_file)
        if as_json:
            print_json({"imported": [d.key for d in imported]})
        else:
            console.print(f"Merged {len(imported)} decision(s) from {import_file} into {ws.decisions_path}")
    elif list_only:
        _list_videos(rv, ws, as_json)
    else:
        _make_sheets(rv, ws, grid, _shot_params(detector, threshold, min_shot, cut_ratio), as_json)


def _record_decision(rv, ws, decision, as_json: bool) -> None:
    rv.record_decisions(ws, [decision])
    if as_json:
        print_json({"recorded": {decision.key: decision.to_json()}})
        return
    events = ", ".join(f"{e.start_s:g}-{e.end_s:g}" for e in decision.events)
    console.print(
        f"Recorded: {decision.key} {decision.decision}"
        + (f" ({decision.reason})" if decision.reason else "")
        + (f", events {events}" if events else ""),
        markup=False,
    )


def _list_videos(rv, ws, as_json: bool) -> None:
    decisions = rv.read_decisions(ws.decisions_path)
    rows = [
        {
            "key": r.key,
            "concept": r.concept,
            "title": r.title,
            "decision": decisions[r.key].to_json() if r.key in decisions else None,
        }
        for r in ws.records()
    ]
    if as_json:
        print_json({"videos": rows})
        return
    for row in rows:
        d = row["decision"]
        state = "undecided" if d is None else d["decision"] + (f" ({d['reason']})" if d.get("reason") else "")
        console.print(f"{row['key']}\t{state}\t{row['concept'] or '?'}\t{(row['title'] or '')[:60]}", markup=False)


def _make_sheets(rv, ws, grid: str, shot_params, as_json: bool) -> None:
    rows, cols = _parse_grid(grid)
    with RichProgress(disable=as_json, labels={"sheets": "contact sheets"}) as progress:
        summary = rv.review(ws, rows=rows, cols=cols, shot_params=shot_params, progress=progress)
    if as_json:
        print_json(summary.to_json())
    else:
        _print_review_summary(summary)
    if summary.problems:
        raise RefvpsError(
            f"{len(summary.problems)} video(s) could not be shown on a contact sheet",
            hint="see the problems listed; every other sheet and the review page were written",
        )


def _print_review_summary(summary) -> None:
    console.print(
        f"{summary.videos} video(s): {len(summary.sheets_made)} sheet(s) made, {len(summary.sheets_kept)} up to date; "
        f"{summary.accepted} accepted, {summary.rejected} rejected, {len(summary.undecided)} undecided"
    )
    console.print(f"Review page: {summary.page}", markup=False)
    for key in summary.opted_out:
        console.print(f"  {key}: on the opt-out list, not shown", markup=False)
    for problem in summary.problems:
        err_console.print(f"  problem: {problem}", markup=False, soft_wrap=True)
    if summary.undecided:
        console.print(
            "Record decisions with: refvps review -w WS --accept KEY [--span S-E] | --reject KEY --reason R, "
            "or export them from the page and --import the file",
            markup=False,
        )


# -- trim -----------------------------------------------------------------------------------------
@click.command()
@click.argument("video", type=EXISTING_FILE, required=False)
@click.option("--workspace", "-w", type=PATH, default=None, help="Trim every accepted video of this workspace.")
@click.option("--dataset", "-d", type=PATH, required=True, help="Ref-VPS dataset folder the clips are exported into.")
@click.option("--start", type=float, default=None, help="One video: start of the event span (seconds).")
@click.option("--end", type=float, default=None, help="One video: end of the event span (seconds).")
@click.option(
    "--name", default=None, help="One video: clip id prefix (default: the file name); clips are NAME_00, NAME_01, ..."
)
@click.option("--concept", default=None, help="One video: concept id.")
@click.option("--url", default=None, help="One video: source URL for clips.json.")
@click.option("--uploader", default=None, help="One video: uploader for clips.json.")
@click.option("--license", "license_", default=None, help="One video: license for clips.json.")
@click.option("--crop", "crop_text", default=None, help="One video: fixed crop X,Y,W,H, or 'none'.")
@_shot_options
@click.option(
    "--fps", type=click.FloatRange(min=0, min_open=True), default=24.0, show_default=True, help="Export frame rate."
)
@click.option("--no-crop", is_flag=True, help="Never crop padding.")
@click.option(
    "--end-card-max",
    type=click.FloatRange(min=0),
    default=3.0,
    show_default=True,
    help="A final shot this short (seconds) is dropped when it looks like a card (still, mostly one flat colour).",
)
@click.option(
    "--min-clip",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Drop pieces shorter than this (seconds).",
)
@click.option("--taxonomy", type=PATH, default=None, help="Taxonomy used to fill each clip's category.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def trim(
    video,
    workspace,
    dataset,
    start,
    end,
    name,
    concept,
    url,
    uploader,
    license_,
    crop_text,
    detector,
    threshold,
    min_shot,
    cut_ratio,
    fps,
    no_crop,
    end_card_max,
    min_clip,
    taxonomy,
    as_json,
):
    """Cut accepted videos into clips at 24 fps (shots, crops, end cards).

    Either --workspace WS (every accepted video, using decisions.json) or one VIDEO [--start S --end E].
    Clips never cross a cut; padding bars are cropped (one box per video); a short final shot that
    looks like a card is dropped. A video or clip that fails is reported and the rest is exported;
    exported clips are skipped on the next run; an interrupted run resumes.
    """
    from refvps.curation.crop import CropParams
    from refvps.curation.trim import TrimParams, trim_video, trim_workspace
    from refvps.dataset.format import Source

    if (video is None) == (workspace is None):
        raise UsageError(
            "give either a VIDEO or --workspace WS",
            hint="refvps trim --workspace WS --dataset ROOT, or refvps trim VIDEO --start S --end E --dataset ROOT",
        )
    if workspace is not None and any(
        v is not None for v in (start, end, name, concept, url, uploader, license_, crop_text)
    ):
        raise UsageError(
            "--start/--end/--name/--concept/--url/--uploader/--license/--crop are for one VIDEO",
            hint="with --workspace, spans, concepts and crops come from decisions.json (refvps review)",
        )
    params = TrimParams(
        fps=fps,
        shots=_shot_params(detector, threshold, min_shot, cut_ratio),
        crop=None if no_crop else CropParams(),
        end_card_max_s=end_card_max,
        min_clip_s=min_clip,
    )
    with RichProgress(disable=as_json) as progress:
        if workspace is not None:
            summary = trim_workspace(workspace, dataset, params, taxonomy=taxonomy, progress=progress)
        else:
            source = None
            if url or uploader or license_:
                source = Source(url=url, uploader=uploader, license=license_, video_id=video.stem, title=video.stem)
            span = {"start_s": start, "end_s": end, "clip_key": name, "concept": concept}
            crop = _parse_crop(crop_text)
            summary = trim_video(
                video, dataset, **span, source=source, crop=crop, params=params, taxonomy=taxonomy, progress=progress
            )
    if as_json:
        print_json(summary.to_json())
    else:
        _print_trim_summary(summary, dataset)
    if summary.conflicts or summary.problems:
        parts = [f"{len(summary.problems)} video(s) or clip(s) could not be exported"] if summary.problems else []
        if summary.conflicts:
            parts.append(f"{len(summary.conflicts)} labelled clip(s) were left as they are")
        where = "'problems' and 'conflicts' in the JSON" if as_json else "the lines above"
        raise RefvpsError(" and ".join(parts), hint=f"see {where}; everything else was exported")


def _print_trim_summary(summary, dataset) -> None:
    console.print(
        f"{len(summary.exported)} clip(s) exported, {len(summary.skipped)} already complete "
        f"({summary.videos} video(s)) into {dataset}",
        markup=False,
    )
    for note in summary.dropped:
        console.print(f"  dropped: {note}", markup=False, soft_wrap=True)
    for clip in summary.stale:
        console.print(
            f"  stale: {clip} was exported before but is no longer planned (not deleted)", markup=False, soft_wrap=True
        )
    for warning in summary.warnings:
        err_console.print(f"  warning: {warning}", markup=False, soft_wrap=True)
    for problem in summary.problems:
        err_console.print(f"  problem: {problem}", markup=False, soft_wrap=True)
    for conflict in summary.conflicts:
        err_console.print(f"  conflict: {conflict}", markup=False, soft_wrap=True)
