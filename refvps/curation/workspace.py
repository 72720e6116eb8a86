"""The curation workspace: one folder that every curation stage reads and writes.

::

    <workspace>/
      workspace.json          what this folder is (version, created, refvps version)
      provenance.jsonl        one line per stage run: stage, arguments, tool versions, counts, times
      archive.txt             yt-dlp download archive ("<extractor> <id>" per line): nothing is fetched twice
      optout.txt              uploaders or video ids that opted out, one per line (# comments)
      videos/<key>.<ext>      downloaded media (key = "<extractor>_<id>", e.g. youtube_dQw4w9WgXcQ; a plain
                              file link: "generic_<name>_<hash of the URL>", see :func:`info_key`)
      meta/<key>.json         provenance of one video (VideoRecord): url, uploader, license, duration, query...
      meta/<key>.info.json    yt-dlp's full info dict for that video, through YoutubeDL.sanitize_info
      fetch/failures.json     what each fetch run could not get, and why (one entry per run, oldest first)
      shots/<key>.json        cached shot boundaries (PySceneDetect) with the parameters that made them
      review/sheets/<key>.png contact sheets (frame grid with timestamps)
      review/index.html       a page showing the sheets with accept/reject controls
      decisions.json          accept/reject per video, reasons, event spans: the source of truth for trim

Every file is written atomically; every stage skips work it finds done.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import logging
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from refvps import __version__
from refvps.dataset.format import Source
from refvps.errors import DatasetError, UsageError
from refvps.fileio import atomic_write_json, atomic_write_text, file_lock, read_json

logger = logging.getLogger(__name__)

WORKSPACE_FILE = "workspace.json"
WORKSPACE_VERSION = 1
VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".mov", ".m4v", ".avi", ".flv", ".3gp")


def read_json_member(path: Path, key: str, kind: type, *, what: str, hint: str) -> Any:
    """``data[key]`` of a JSON file that must be an object holding a ``kind`` (list, dict) there;
    anything else is a :class:`DatasetError` naming the file."""
    data = read_json(path, what=what)
    member = data.get(key) if isinstance(data, dict) else None
    if not isinstance(member, kind):
        article = "an" if kind.__name__[0] in "aeiou" else "a"
        raise DatasetError(f"{path} must hold an object with {article} {kind.__name__} {key!r}", hint=hint, path=path)
    return member


def utc_now() -> str:
    """The current time as an ISO 8601 UTC string with seconds precision."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def safe_key(text: str, *, max_len: int = 96) -> str:
    """A file- and id-safe form of ``text``: ASCII letters, digits, ``_`` and ``-`` only."""
    key = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_-")
    return key[:max_len] or "video"


def video_key(extractor: str | None, video_id: str) -> str:
    """The workspace key of a video: ``<extractor>_<id>`` (ids alone can collide across sites)."""
    prefix = safe_key((extractor or "video").lower())
    return safe_key(f"{prefix}_{video_id}")


# Extractors whose "id" is only the file name of the URL: two links to cut.mp4 would share it.
GENERIC_EXTRACTORS = {"generic"}
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_url(url: str) -> str:
    """A URL in the form two links to the same file share: scheme and host in lower case, no
    default port, no fragment, query parameters sorted.

    >>> normalize_url("HTTPS://Example.org:443/a/Cut.mp4?b=2&a=1#t=10")
    'https://example.org/a/Cut.mp4?a=1&b=2'
    """
    parts = urllib.parse.urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{parts.port}"
    query = urllib.parse.urlencode(sorted(urllib.parse.parse_qsl(parts.query, keep_blank_values=True)))
    return urllib.parse.urlunsplit((scheme, host, parts.path or "/", query, ""))


def generic_id(url: str, name: str | None = None) -> str:
    """The id of a plain file link: a readable prefix (the file name) and a stable hash of the
    normalised URL, so that ``a/cut.mp4``, ``b/cut.mp4`` and ``cut.webm`` never share a key.

    >>> generic_id("https://example.org/a/cut.mp4")
    'cut_2f5370c679'
    """
    stem = name or Path(urllib.parse.urlsplit(url).path).stem or "video"
    digest = hashlib.sha256(normalize_url(url).encode("utf-8")).hexdigest()[:10]
    return f"{safe_key(stem, max_len=40)}_{digest}"


def is_generic(extractor: str | None) -> bool:
    return (extractor or "").lower() in GENERIC_EXTRACTORS


def info_url(info: Mapping[str, Any]) -> str | None:
    """The URL a yt-dlp info dict (or a flat search entry) stands for."""
    return info.get("webpage_url") or info.get("original_url") or info.get("url")


def info_key(info: Mapping[str, Any]) -> str:
    """The workspace key of a yt-dlp info dict or flat search entry (see :func:`video_key`,
    :func:`generic_id`); the key fetch gave it (``refvps_key``) when it has one."""
    if info.get("refvps_key"):
        return str(info["refvps_key"])
    extractor = info.get("extractor_key") or info.get("ie_key") or info.get("extractor")
    url = info_url(info)
    if is_generic(extractor) and url:
        return video_key(extractor, generic_id(url))
    return video_key(extractor, str(info.get("id")))


def iso_date(upload_date: str | None) -> str | None:
    """yt-dlp's ``upload_date`` (YYYYMMDD) as an ISO date (YYYY-MM-DD); other strings pass through."""
    if not upload_date:
        return None
    text = str(upload_date)
    if re.fullmatch(r"\d{8}", text):
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return text


@dataclass
class VideoRecord:
    """What the workspace knows about one downloaded video (``meta/<key>.json``).

    This is the provenance that ends up in ``clips.json``: where the video came from, who uploaded it,
    under which license, when it was retrieved, and which query (concept) found it.
    """

    key: str
    id: str
    extractor: str | None = None
    display_id: str | None = None  # the site's own name for it, when the id is made up (plain file links)
    url: str | None = None
    uploader: str | None = None
    uploader_id: str | None = None
    channel: str | None = None
    channel_id: str | None = None
    license: str | None = None
    duration_s: float | None = None
    title: str | None = None
    date: str | None = None
    retrieved: str | None = None
    query: str | None = None
    concept: str | None = None
    category: str | None = None
    file: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    also_found_by: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "VideoRecord":
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: data[k] for k in known if k in data}
        if "key" not in values or "id" not in values:
            raise KeyError("key and id are required")
        values["also_found_by"] = list(values.get("also_found_by") or [])
        return cls(**values)

    @classmethod
    def from_info(cls, info: Mapping[str, Any], *, key: str, **fields: Any) -> "VideoRecord":
        """A record from a yt-dlp info dict; ``fields`` (file, retrieved, query, concept, ...) are
        what yt-dlp does not know."""
        return cls(
            key=key,
            id=str(info.get("id")),
            extractor=info.get("extractor_key") or info.get("extractor"),
            display_id=info.get("display_id"),
            url=info_url(info),
            uploader=info.get("uploader"),
            uploader_id=info.get("uploader_id"),
            channel=info.get("channel"),
            channel_id=info.get("channel_id"),
            license=info.get("license"),
            duration_s=info.get("duration"),
            title=info.get("title"),
            date=iso_date(info.get("upload_date")),
            width=info.get("width"),
            height=info.get("height"),
            fps=info.get("fps"),
            **fields,
        )

    def source(self) -> Source:
        """The clip-level provenance (``clips.json`` ``source``) of this video."""
        return Source(
            url=self.url,
            platform=(self.extractor or "").lower() or None,
            uploader=self.uploader or self.channel or self.uploader_id,
            license=self.license,
            retrieved=self.retrieved,
            video_id=self.id,
            title=self.title,
            uploader_id=self.uploader_id,
            channel=self.channel,
            upload_date=self.date,
            duration_s=self.duration_s,
            width=self.width,
            height=self.height,
            fps=self.fps,
            query=self.query,
        )


class OptOutList:
    """Uploaders or video ids that asked not to be included (paper §4.1: users may opt out).

    One entry per line; ``#`` starts a comment; matching ignores case and a leading ``@``. An entry
    matches a video's id (or the file name of a plain link), workspace key, URL, uploader, uploader
    id, channel or channel id.
    """

    FIELDS = (
        "id",
        "display_id",
        "key",
        "url",
        "webpage_url",
        "uploader",
        "uploader_id",
        "channel",
        "channel_id",
        "creator",
    )

    def __init__(self, entries: Iterable[str] = ()):
        self.entries = {self._norm(e) for e in entries if self._norm(e)}

    @staticmethod
    def _norm(value: Any) -> str:
        return str(value).strip().lstrip("@").casefold() if value is not None else ""

    @classmethod
    def read(cls, *paths: Path | None) -> "OptOutList":
        entries: list[str] = []
        for path in paths:
            if path is None or not Path(path).exists():
                continue
            for line in Path(path).read_text(encoding="utf-8").splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    entries.append(line)
        return cls(entries)

    def __len__(self) -> int:
        return len(self.entries)

    def match(self, info: Mapping[str, Any] | VideoRecord) -> str | None:
        """The entry that excludes this video (a yt-dlp info dict or a record), or None."""
        if not self.entries:
            return None
        data = info.to_json() if isinstance(info, VideoRecord) else info
        for name in self.FIELDS:
            value = self._norm(data.get(name))
            if value and value in self.entries:
                return f"{name} {data.get(name)!s} is on the opt-out list"
        return None


class Workspace:
    """A curation workspace folder (see the module docstring for its layout)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    # -- layout -------------------------------------------------------------------------------
    @property
    def videos_dir(self) -> Path:
        return self.root / "videos"

    @property
    def meta_dir(self) -> Path:
        return self.root / "meta"

    @property
    def shots_dir(self) -> Path:
        return self.root / "shots"

    @property
    def review_dir(self) -> Path:
        return self.root / "review"

    @property
    def sheets_dir(self) -> Path:
        return self.review_dir / "sheets"

    @property
    def archive_path(self) -> Path:
        return self.root / "archive.txt"

    @property
    def optout_path(self) -> Path:
        return self.root / "optout.txt"

    @property
    def decisions_path(self) -> Path:
        return self.root / "decisions.json"

    @property
    def failures_path(self) -> Path:
        return self.root / "fetch" / "failures.json"

    @property
    def provenance_path(self) -> Path:
        return self.root / "provenance.jsonl"

    # -- lifecycle ----------------------------------------------------------------------------
    def create(self) -> "Workspace":
        """Create the folder (and its ``workspace.json``) if needed; an existing one is kept."""
        if self.root.exists() and not self.root.is_dir():
            raise UsageError(f"workspace path is a file, not a folder: {self.root}", hint="pass a folder path")
        for folder in (self.videos_dir, self.meta_dir):
            folder.mkdir(parents=True, exist_ok=True)
        marker = self.root / WORKSPACE_FILE
        if not marker.exists():
            atomic_write_json(
                marker,
                {
                    "version": WORKSPACE_VERSION,
                    "kind": "refvps-curation-workspace",
                    "created": utc_now(),
                    "refvps": __version__,
                },
            )
        if not self.optout_path.exists():
            atomic_write_text(
                self.optout_path,
                "# Uploaders or video ids that opted out of the benchmark, one per line.\n"
                "# fetch skips them; review and trim ignore videos that match.\n",
            )
        return self

    def require(self) -> "Workspace":
        """Check that the workspace exists (for stages after fetch)."""
        if not self.root.is_dir() or not (self.meta_dir.is_dir() or (self.root / WORKSPACE_FILE).exists()):
            raise DatasetError(
                f"curation workspace not found: {self.root}",
                hint="create it by fetching videos: refvps fetch queries.csv --workspace WS",
                path=self.root,
            )
        return self

    # -- videos -------------------------------------------------------------------------------
    def meta_path(self, key: str) -> Path:
        return self.meta_dir / f"{key}.json"

    def write_record(self, record: VideoRecord) -> Path:
        return atomic_write_json(self.meta_path(record.key), record.to_json())

    def read_record(self, key: str) -> VideoRecord:
        path = self.meta_path(key)
        data = read_json(path, what="video metadata")
        try:
            return VideoRecord.from_json(data)
        except (KeyError, TypeError) as exc:
            raise DatasetError(
                f"video metadata is malformed: {path}: {exc}",
                hint="delete the file and its line in archive.txt, then run refvps fetch again",
                path=path,
            ) from None

    def has_record(self, key: str) -> bool:
        return self.meta_path(key).exists()

    def records(self) -> list[VideoRecord]:
        """Every video with metadata, sorted by key (``.info.json`` files are yt-dlp's, not records)."""
        if not self.meta_dir.is_dir():
            return []
        paths = sorted(p for p in self.meta_dir.glob("*.json") if not p.name.endswith(".info.json"))
        return [self.read_record(p.stem) for p in paths]

    def video_path(self, record: VideoRecord) -> Path:
        """The media file of a video, or a :class:`DatasetError` that says how to get it back."""
        candidates = []
        if record.file:
            candidates.append(self.root / record.file)
        candidates += [self.videos_dir / f"{record.key}{ext}" for ext in VIDEO_EXTENSIONS]
        for path in candidates:
            if path.is_file():
                return path
        raise DatasetError(
            f"the media file of video {record.key} is missing (expected {candidates[0]})",
            hint=f"remove its line from {self.archive_path.name} and run refvps fetch again",
            path=candidates[0],
        )

    def optout(self, extra: Path | None = None) -> OptOutList:
        return OptOutList.read(self.optout_path, extra)

    # -- failures -----------------------------------------------------------------------------
    def failure_history(self) -> list[dict[str, Any]]:
        """Every fetch run's failures, oldest first (``fetch/failures.json``)."""
        if not self.failures_path.exists():
            return []
        try:
            data = read_json(self.failures_path, what="fetch failures")
        except DatasetError as exc:
            aside = self.failures_path.with_name(f"failures.unreadable-{utc_now().replace(':', '')}.json")
            self.failures_path.replace(aside)
            logger.warning("%s; moved aside to %s, a new history starts", exc, aside.name)
            return []
        if isinstance(data, dict) and isinstance(data.get("runs"), list):
            return list(data["runs"])
        if isinstance(data, dict) and "failed" in data:  # the one-run format of earlier versions
            return [{"time": data.get("time"), "failed": data.get("failed") or []}]
        return []

    def record_failures(self, run: Mapping[str, Any]) -> None:
        """Append one fetch run (time, counts, failures) to the history."""
        with file_lock(self.failures_path):
            runs = self.failure_history() + [dict(run)]
            atomic_write_json(self.failures_path, {"version": 2, "runs": runs})

    # -- provenance ---------------------------------------------------------------------------
    def log(self, stage: str, **data: Any) -> None:
        """Append one provenance line (stage, time, refvps version, and what the stage reports)."""
        entry = {"stage": stage, "time": utc_now(), "refvps": __version__, **data}
        line = json.dumps(entry, ensure_ascii=False, default=str) + "\n"
        self.root.mkdir(parents=True, exist_ok=True)
        with file_lock(self.provenance_path):
            with open(self.provenance_path, "a", encoding="utf-8") as handle:
                handle.write(line)

    def provenance(self) -> list[dict[str, Any]]:
        if not self.provenance_path.exists():
            return []
        lines = self.provenance_path.read_text(encoding="utf-8").splitlines()
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a crash is skipped, not fatal
                continue
        return out
