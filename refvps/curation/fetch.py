"""Fetching candidate videos with yt-dlp, embedded through its Python API (never its stdout).

Input is either a queries CSV (``refvps queries`` writes one: every ``query`` becomes a
``ytsearchN:`` search) or a list of URLs (a text file, one URL per line optionally followed by a
concept id, or a CSV with a ``url`` column). yt-dlp has no TikTok search, so TikTok videos come in
as URL lists.

What makes it safe to run again and again:

- yt-dlp's download archive (``archive.txt``): a video recorded there is never fetched twice; a
  plain file link is keyed by a hash of its normalised URL (two ``cut.mp4`` on different paths are
  two videos), and every skip says why;
- every downloaded file is probed before it counts: an error page saved as ``.mp4`` or a cut-off
  download is deleted, reported as a failure and kept out of the archive, so a rerun fetches it again;
- per-video metadata (``meta/<key>.json``) written only once the file is in place, from
  ``YoutubeDL.sanitize_info``; the query that found a video travels with it to ``clips.json``;
- an opt-out list (``optout.txt`` plus ``--optout FILE``) checked before anything is downloaded;
- duration filters written with yt-dlp's ``<?`` so that videos of unknown duration get through;
- yt-dlp's own retries with exponential sleep, and an outer retry with backoff for transient
  failures (timeouts, HTTP 429/5xx); permanent ones (404, unsupported URL) fail at once;
- a summary of every failure and why (``fetch/failures.json``, one entry per run); the rest of the
  list continues.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from refvps.curation.queries import optional_concept_index, read_input_text, read_queries_csv, require_concept
from refvps.curation.video import probe_video
from refvps.curation.workspace import (
    OptOutList,
    VideoRecord,
    Workspace,
    generic_id,
    info_key,
    info_url,
    is_generic,
    normalize_url,
    utc_now,
    video_key,
)
from refvps.errors import DatasetError, UsageError, require
from refvps.fileio import atomic_write_json
from refvps.progress import NO_PROGRESS, Progress

logger = logging.getLogger(__name__)

# Video only is enough (frames are what is labelled) and needs no ffmpeg to merge streams;
# mp4/H.264 first because every decoder reads it; at most 1080p keeps the frames a sensible size.
DEFAULT_FORMAT = "bv*[height<=1080][ext=mp4]/bv*[height<=1080]/b[height<=1080]/bv*/b"
TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504, 520, 522, 524}
_TRANSIENT_TEXT = (
    "timed out",
    "timeout",
    "connection reset",
    "temporary failure",
    "connection aborted",
    "remote end closed",
    "incompleteread",
    "broken pipe",
    "too many requests",
)


@dataclass(frozen=True)
class FetchItem:
    """One line of the input: a URL to fetch or a query to search."""

    kind: str  # "url" or "query"
    target: str
    concept: str | None = None
    category: str | None = None
    line: int = 0

    @property
    def query(self) -> str | None:
        return self.target if self.kind == "query" else None


@dataclass
class FetchOptions:
    per_query: int = 5
    max_duration_s: float | None = 300.0
    min_duration_s: float | None = None
    search_prefix: str = "ytsearch"
    format: str = DEFAULT_FORMAT
    retries: int = 3  # outer retries of a transient failure (yt-dlp retries inside each attempt too)
    backoff_s: float = 2.0  # sleep before retry k is backoff_s * 2**k
    socket_timeout_s: float = 30.0
    optout_file: Path | None = None
    extra_params: dict[str, Any] = field(default_factory=dict)  # passed to YoutubeDL as is

    def filter_expression(self) -> str | None:
        """The yt-dlp match-filter string; ``<?`` lets videos of unknown duration through."""
        parts = []
        if self.max_duration_s is not None:
            parts.append(f"duration <=? {self.max_duration_s:g}")
        if self.min_duration_s is not None:
            parts.append(f"duration >=? {self.min_duration_s:g}")
        return " & ".join(parts) or None


@dataclass
class FetchFailure:
    target: str
    reason: str
    kind: str = "url"
    query: str | None = None
    attempts: int = 1
    transient: bool = False


@dataclass
class FetchReport:
    downloaded: list[str] = field(default_factory=list)  # workspace keys
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"target", "key", "reason"}
    failed: list[FetchFailure] = field(default_factory=list)
    searched: int = 0
    warnings: list[str] = field(default_factory=list)  # downloaded, but the user should know (truncated files)

    def to_json(self) -> dict[str, Any]:
        return {
            "downloaded": list(self.downloaded),
            "skipped": list(self.skipped),
            "failed": [asdict(f) for f in self.failed],
            "searched": self.searched,
            "warnings": list(self.warnings),
        }


# -- input ----------------------------------------------------------------------------------------
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def read_fetch_input(path: str | Path, taxonomy: str | Path | None = None) -> list[FetchItem]:
    """Items from a queries CSV, a URL CSV, or a text file of URLs (``URL [concept id or name]`` per
    line, ``#`` comments). Concepts are checked against the taxonomy (an unknown one is an error
    naming the line)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"input file not found: {path}", hint="pass a queries CSV or a text file of URLs", path=path)
    text = read_input_text(path)
    first = next((line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")), "")
    header = [c.strip().lower() for c in first.split(",")]
    index = optional_concept_index(taxonomy)
    items: list[FetchItem] = []
    if path.suffix.lower() == ".csv" or "query" in header or "url" in header:
        for number, row in enumerate(read_queries_csv(path, text), start=2):
            concept, category = _resolve_concept(row.get("concept"), row.get("category"), index, path, number)
            if row.get("query"):
                items.append(FetchItem("query", row["query"], concept, category, number))
            elif row.get("url"):
                items.append(FetchItem("url", _check_url(row["url"], path, number), concept, category, number))
    else:
        for number, raw in enumerate(text.splitlines(), start=1):
            # A comment starts a line or follows a space: "#" right after a URL is its fragment.
            line = "" if raw.lstrip().startswith("#") else re.split(r"\s#", raw, maxsplit=1)[0].strip()
            if not line:
                continue
            parts = line.split(None, 1)  # "URL concept id or name"
            url = _check_url(parts[0], path, number)
            concept, category = _resolve_concept(
                parts[1].strip() if len(parts) > 1 else None, None, index, path, number
            )
            items.append(FetchItem("url", url, concept, category, number))
    if not items:
        raise UsageError(
            f"{path} lists no queries or URLs",
            hint="write one URL per line, or make a queries CSV with: refvps queries --out queries.csv",
            path=path,
        )
    return items


def _check_url(url: str, path: Path, line: int) -> str:
    if not _SCHEME.match(url):
        raise UsageError(
            f"{path}, line {line}: {url!r} is not a URL",
            hint="a URL list has one http(s) URL per line (optionally followed by a concept id); "
            "search queries go in a CSV with a 'query' column (refvps queries writes one)",
            path=path,
        )
    return url


def _resolve_concept(value: str | None, category: str | None, index, path: Path, line: int):
    if not value:
        return None, category or None
    if index is None:
        return value, category or None
    concept = require_concept(index, value, where=f"{path}, line {line}: ", path=path)
    return concept.id, concept.category


# -- yt-dlp plumbing ------------------------------------------------------------------------------
class _Logger:
    """Keeps yt-dlp from printing over the progress bars. Its errors are not lost: yt-dlp raises them
    too, and each video's failure is reported from the exception."""

    def debug(self, message: str) -> None:
        pass

    info = warning = error = debug


def _chain(exc: BaseException | None):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc_info = getattr(exc, "exc_info", None)
        nxt = None
        if isinstance(exc_info, tuple) and len(exc_info) > 1 and isinstance(exc_info[1], BaseException):
            nxt = exc_info[1]
        exc = nxt or getattr(exc, "cause", None) or exc.__cause__ or exc.__context__


def is_transient(exc: BaseException) -> bool:
    """Whether a failure is worth retrying: timeouts, dropped connections, HTTP 429 and 5xx."""
    for link in _chain(exc):
        status = getattr(link, "status", None) or getattr(link, "code", None)
        if isinstance(status, int) and 400 <= status < 600:
            return status in TRANSIENT_HTTP
        if isinstance(link, (TimeoutError, ConnectionError)):
            return True
        name = type(link).__name__
        if name in ("TransportError", "IncompleteRead", "SSLError") and "certificate" not in str(link).lower():
            return True
    text = str(exc).lower()
    match = re.search(r"http error (\d{3})", text)
    if match:
        return int(match.group(1)) in TRANSIENT_HTTP
    return any(word in text for word in _TRANSIENT_TEXT)


def _clean_message(exc: BaseException) -> str:
    text = str(exc).replace("ERROR: ", "").strip()
    return re.sub(r"\x1b\[[0-9;]*m", "", text)  # yt-dlp colours its messages on a terminal


class YtDlpSearcher:
    """Search through a yt-dlp search extractor (``ytsearchN:query`` by default), flat: only the
    result URLs and ids are read, each video is then fetched as a URL."""

    def __init__(self, prefix: str = "ytsearch", extractors: Sequence[Any] = ()):
        self.prefix = prefix
        self.extractors = list(extractors)  # extra search extractors (instances), e.g. plugins

    def __call__(self, params: Mapping[str, Any], query: str, count: int) -> list[dict[str, Any]]:
        yt_dlp = require("yt_dlp", "curate", "refvps fetch")
        ie_key = None
        # Without the archive and the filters here: every result comes back and is then fetched
        # (or skipped, with its reason in the report, and its query noted) one by one.
        search_params = {k: v for k, v in params.items() if k not in ("download_archive", "match_filter")}
        with yt_dlp.YoutubeDL({**search_params, "extract_flat": "in_playlist", "skip_download": True}) as ydl:
            for extractor in self.extractors:
                ydl.add_info_extractor(extractor)
                if getattr(extractor, "_SEARCH_KEY", None) == self.prefix:
                    ie_key = extractor.ie_key()
            result = ydl.extract_info(f"{self.prefix}{count}:{query}", download=False, ie_key=ie_key)
        entries = (result or {}).get("entries") or []
        out = []
        for entry in entries:
            if not entry:
                continue
            url = entry.get("url") or entry.get("webpage_url")
            if url:
                out.append(
                    {"url": url, "id": entry.get("id"), "ie_key": entry.get("ie_key"), "title": entry.get("title")}
                )
        return out


class _State:
    """What happened during one yt-dlp call (the post-processor and the filter report here)."""

    def __init__(self) -> None:
        self.item: FetchItem | None = None
        self.written: list[str] = []
        self.rejected: str | None = None
        self.warnings: list[str] = []


def _assign_key(workspace: Workspace, info: dict[str, Any]) -> None:
    """Give a video its workspace key (and, for a plain file link, an id from its URL, so that
    yt-dlp's archive tells ``a/cut.mp4`` from ``b/cut.mp4``) before the file name is made from it."""
    extractor = info.get("extractor_key") or info.get("extractor")
    url = info_url(info)
    if is_generic(extractor) and url:
        legacy = video_key(extractor, str(info.get("id")))  # the name-only key of earlier versions
        if _same_url(workspace, legacy, url):
            info["refvps_key"] = legacy
            return
        info.setdefault("display_id", info.get("id"))
        info["id"] = generic_id(url)
    info["refvps_key"] = video_key(extractor, str(info.get("id")))


def _same_url(workspace: Workspace, key: str, url: str) -> bool:
    """Whether the workspace holds ``key`` fetched from this very URL (a workspace made before plain
    links were keyed by URL keeps its keys)."""
    if not workspace.has_record(key):
        return False
    try:
        return normalize_url(workspace.read_record(key).url or "") == normalize_url(url)
    except DatasetError:
        return False


def _check_media(path: Path) -> str | None:
    """A downloaded file must be a readable video: an error page saved as .mp4 is refused here,
    before yt-dlp records it in the archive (so fetching it again really fetches it again). A file
    that reads only in part is kept (trim exports what it can, and says so); the note says how much."""
    from yt_dlp.utils import PostProcessingError

    try:
        probe = probe_video(path)
    except DatasetError as exc:
        path.unlink(missing_ok=True)
        raise PostProcessingError(f"the download is not a readable video ({exc}); not kept, not archived") from None
    return probe.readable_note()


def _make_postprocessors(workspace: Workspace, state: _State):
    from yt_dlp.postprocessor.common import PostProcessor

    class KeyPP(PostProcessor):
        def run(self, info):
            _assign_key(workspace, info)
            return [], info

    class RecordPP(PostProcessor):
        """Once the file is in place and checked: write the video's record and yt-dlp's sanitized info."""

        def run(self, info):
            filepath = Path(info.get("filepath") or info.get("_filename") or "")
            damage = _check_media(filepath)
            key = info_key(info)
            if damage:
                state.warnings.append(f"{key}: {damage}; kept (trim exports the readable part), or fetch it again")
            try:
                relative = str(filepath.resolve().relative_to(workspace.root.resolve()))
            except ValueError:
                relative = str(filepath)
            item = state.item
            previous = workspace.read_record(key) if workspace.has_record(key) else None
            record = VideoRecord.from_info(
                info,
                key=key,
                retrieved=previous.retrieved if previous and previous.retrieved else utc_now(),
                query=item.query if item else None,
                concept=item.concept if item else None,
                category=item.category if item else None,
                file=relative,
            )
            atomic_write_json(workspace.meta_dir / f"{key}.info.json", self._downloader.sanitize_info(dict(info)))
            workspace.write_record(record)
            state.written.append(key)
            return [], info

    return KeyPP(), RecordPP()


def _match_filter(options: FetchOptions, optout: OptOutList, state: _State):
    from yt_dlp.utils import match_filter_func

    expression = options.filter_expression()
    duration_filter = match_filter_func(expression) if expression else None

    def _filter(info: Mapping[str, Any], *, incomplete: bool = False) -> str | None:
        key = info_key(info) if info.get("id") else None
        reason = optout.match({**info, "key": key})
        if reason is None and duration_filter is not None:
            reason = duration_filter(info, incomplete=incomplete)
            if reason:
                reason = f"duration {info.get('duration')} s is outside the limits ({expression})"
        if reason:
            state.rejected = reason
        return reason

    return _filter


def _ydl_params(workspace: Workspace, options: FetchOptions, logger: _Logger, match_filter) -> dict[str, Any]:
    def sleep(attempt: int) -> float:
        return min(options.backoff_s * (2 ** max(attempt - 1, 0)), 60.0)

    params: dict[str, Any] = {
        "format": options.format,
        "paths": {
            "home": str(workspace.videos_dir.resolve()),
            "temp": str((workspace.root / "fetch" / "partial").resolve()),
        },
        "outtmpl": {"default": "%(refvps_key)s.%(ext)s"},
        "restrictfilenames": True,
        "download_archive": str(workspace.archive_path),
        "match_filter": match_filter,
        "retries": 3,
        "fragment_retries": 3,
        "extractor_retries": 2,
        "file_access_retries": 3,
        "retry_sleep_functions": {"http": sleep, "fragment": sleep, "extractor": sleep},
        "socket_timeout": options.socket_timeout_s,
        "noplaylist": True,
        "ignoreerrors": False,
        "quiet": True,
        "no_warnings": False,
        "noprogress": True,
        "logger": logger,
        "overwrites": False,
        "continuedl": True,
        "color": "no_color",
    }
    params.update(options.extra_params)
    return params


# -- the stage ------------------------------------------------------------------------------------
class _Fetcher:
    """One fetch run: a yt-dlp instance, the report, and the retry policy."""

    def __init__(self, ws: Workspace, options: FetchOptions, searcher, progress: Progress, sleep) -> None:
        self.ws, self.options, self.searcher, self.progress, self.sleep = ws, options, searcher, progress, sleep
        self.optout = ws.optout(options.optout_file)
        self.state = _State()
        self.params = _ydl_params(ws, options, _Logger(), _match_filter(options, self.optout, self.state))
        self.report = FetchReport()
        self.done = 0  # input lines finished

    def with_retries(self, what: str, call: Callable[[], Any]) -> tuple[Any, BaseException | None, int]:
        yt_dlp = require("yt_dlp", "curate", "refvps fetch")
        attempt = 0
        while True:
            attempt += 1
            try:
                return call(), None, attempt
            except (yt_dlp.utils.YoutubeDLError, OSError) as exc:
                if isinstance(exc, yt_dlp.utils.DownloadCancelled):
                    raise
                if attempt <= self.options.retries and is_transient(exc):
                    delay = self.options.backoff_s * 2 ** (attempt - 1)
                    logger.warning("%s: %s; retrying in %g s", what, _clean_message(exc), delay)
                    self.sleep(delay)
                    continue
                return None, exc, attempt

    # Debug only: the report lists every failure and skip (the CLI prints them once, at the end).
    def fail(self, failure: FetchFailure) -> None:
        self.report.failed.append(failure)
        logger.debug("failed: %s: %s", failure.target, failure.reason)

    def skip(self, url: str, key: str | None, reason: str) -> None:
        self.report.skipped.append({"target": url, "key": key or "", "reason": reason})
        logger.debug("skipped %s: %s", url, reason)

    def fetch_url(self, ydl, url: str, item: FetchItem, known: Mapping[str, Any] | None = None) -> None:
        self.progress.update("fetch", self.done, note=url)
        if known and known.get("id"):
            known_key = info_key({**known, "url": url})
            reason = self.optout.match({**known, "key": known_key})
            if reason:
                self.skip(url, known_key, reason)
                return
        self.state.item, self.state.written, self.state.rejected, self.state.warnings = item, [], None, []
        info, error, attempts = self.with_retries(url, lambda: ydl.extract_info(url, download=True))
        if error is not None:
            self.fail(FetchFailure(url, _clean_message(error), "url", item.query, attempts, is_transient(error)))
            return
        self.report.warnings += self.state.warnings
        if self.state.written:
            self.report.downloaded.extend(self.state.written)
            return
        key = info_key(info) if info and info.get("id") else None
        if key is None and known and known.get("id"):
            key = info_key({**known, "url": url})
        reason = (
            self.state.rejected
            or f"already in the download archive ({self.ws.archive_path.name}) as {key or 'this id'}"
        )
        if not self.state.rejected and key and item.query and self.ws.has_record(key):
            _note_also_found(self.ws, key, item.query)
        self.skip(url, key, reason)

    def fetch_item(self, ydl, item: FetchItem) -> None:
        if item.kind == "url":
            self.fetch_url(ydl, item.target, item)
            return
        self.report.searched += 1
        results, error, attempts = self.with_retries(
            f"search {item.target!r}", lambda: self.searcher(self.params, item.target, self.options.per_query)
        )
        if error is not None:
            self.fail(
                FetchFailure(item.target, _clean_message(error), "search", item.query, attempts, is_transient(error))
            )
            return
        for entry in results or []:
            self.fetch_url(ydl, entry["url"], item, entry)


def fetch(
    workspace: Workspace | str | Path,
    items: Iterable[FetchItem],
    options: FetchOptions | None = None,
    *,
    searcher: Callable[[Mapping[str, Any], str, int], list[dict[str, Any]]] | None = None,
    progress: Progress = NO_PROGRESS,
    sleep: Callable[[float], None] = time.sleep,
) -> FetchReport:
    """Fetch every item into the workspace; never raises for one bad item (see the report).

    Progress: stage ``"fetch"``, one step per input line (a URL, or a query and all its results).
    """
    yt_dlp = require("yt_dlp", "curate", "refvps fetch")
    options = options or FetchOptions()
    if options.per_query < 1:
        raise UsageError(f"--per-query must be at least 1, got {options.per_query}", hint="use e.g. --per-query 5")
    if options.retries < 0:
        raise UsageError("--retries cannot be negative", hint="use 0 to disable retries")
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    ws.create()
    items = list(items)
    run = _Fetcher(ws, options, searcher or YtDlpSearcher(options.search_prefix), progress, sleep)
    started = utc_now()
    with yt_dlp.YoutubeDL(run.params) as ydl, progress.stage("fetch", len(items)):
        key_pp, record_pp = _make_postprocessors(ws, run.state)
        ydl.add_post_processor(key_pp, when="pre_process")
        ydl.add_post_processor(record_pp, when="after_move")
        for item in items:
            run.fetch_item(ydl, item)
            run.done += 1
            progress.advance("fetch", note=item.target)
    report = run.report
    ws.record_failures(
        {
            "time": started,
            "items": len(items),
            "downloaded": len(report.downloaded),
            "skipped": len(report.skipped),
            "failed": [asdict(f) for f in report.failed],
        }
    )
    ws.log(
        "fetch",
        items=len(items),
        options={k: v for k, v in asdict(options).items() if k != "extra_params"}
        | {"optout_file": str(options.optout_file)},
        yt_dlp=yt_dlp.version.__version__,
        downloaded=len(report.downloaded),
        skipped=len(report.skipped),
        failed=len(report.failed),
    )
    return report


def _note_also_found(ws: Workspace, key: str, query: str) -> None:
    record = ws.read_record(key)
    if query != record.query and query not in record.also_found_by:
        record.also_found_by.append(query)
        ws.write_record(record)
