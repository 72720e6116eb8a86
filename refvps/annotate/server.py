"""The local web server behind ``refvps annotate``: a FastAPI app plus the guard in front of it.

Safe by default, as Jupyter is: it listens on 127.0.0.1 (another interface only when asked, with a
warning), every request needs the random token printed in the URL (the page gets it once and keeps
it in a same-site cookie for images; API calls that change anything must send it in a header, so a
page on another site cannot make them), Host headers other than the ones served are refused (DNS
rebinding), request bodies are bounded, and clip ids and frame names are checked against the
dataset before they come near a path.
"""

# No "from __future__ import annotations": FastAPI reads the route annotations at run time.

import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from refvps.annotate.lock import HEARTBEAT_EVERY_S, ClipLock, ClipLockedError
from refvps.annotate.segmenters.base import Segmenter
from refvps.annotate.session import (
    ClipSession,
    LockLostError,
    SessionBusyError,
    UnlabelledFramesError,
    clip_fingerprint,
    is_safe_id,
    read_session_summary,
    read_validation_status,
    session_dir,
    validate_clip,
    verdict_of,
)
from refvps.dataset.format import CLIPS_FILE, EXPRESSIONS_FILE, MASK_EXT, Clip, Dataset
from refvps.errors import DatasetError, RefvpsError, UsageError

TOKEN_HEADER = "x-refvps-token"
CLIENT_HEADER = "x-refvps-client"
TOKEN_COOKIE = "refvps_token"
MAX_BODY_BYTES = 2 * 1024 * 1024
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def new_token() -> str:
    return secrets.token_urlsafe(24)


def _ago(when: float) -> str:
    seconds = max(0, int(time.time() - when))
    return f"{seconds} s ago" if seconds < 120 else f"{seconds // 60} min ago"


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


@dataclass
class ServerConfig:
    root: Path
    token: str = field(default_factory=new_token)
    refvps_rules: bool = True
    max_body_bytes: int = MAX_BODY_BYTES
    allowed_hosts: tuple[str, ...] | None = LOOPBACK_HOSTS  # None: any Host header (remote mode)
    initial_clip: str | None = None


# ----------------------------------------------------------------------------------------------
# Open clips


@dataclass
class OpenClip:
    session: ClipSession
    client: str  # the browser tab that owns the clip
    seen: float = field(default_factory=time.time)  # that tab's last request
    released: bool = False  # the tab was closed (or reloaded): another tab may have the clip without asking


class NotOwnerError(RefvpsError):
    """A request for a clip that this browser tab does not have open."""


class UnknownClipError(DatasetError):
    """A clip id that is not in the dataset."""


class UnknownFrameError(UsageError):
    """A frame name that is not in the clip."""


class Verdicts:
    """What validation says about each clip, for the clip list; clips are checked in a background thread.

    A verdict is tied to the clip's :func:`clip_fingerprint`; when the files change, the clip is
    checked again. Verdicts of the clips' last sessions (``validation.json``) seed it after a restart.
    """

    def __init__(self, root: Path, refvps_rules: bool):
        self.root = root
        self.refvps_rules = refvps_rules
        self._known: dict[str, dict] = {}
        self._queue: list[str] = []
        self._checking: str | None = None  # the clip the thread validates now: not queued again meanwhile
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="clip-validation", daemon=True)
        self._thread.start()

    def get(self, clip_id: str, fingerprint: str) -> dict | None:
        """The verdict for the clip's current files, or None while it is being checked."""
        with self._wake:
            known = self._known.get(clip_id)
            if known is not None and known.get("fingerprint") == fingerprint:
                return known
            stored = read_validation_status(self.root, clip_id)
            if stored is not None and stored.get("fingerprint") == fingerprint:
                self._known[clip_id] = stored
                return stored
            if clip_id not in self._queue and clip_id != self._checking:
                self._queue.append(clip_id)
                self._wake.notify()
            return None

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._stopped:
                    self._wake.wait()
                if self._stopped:
                    return
                clip_id = self._checking = self._queue.pop(0)
            try:
                fingerprint = clip_fingerprint(Dataset(self.root), clip_id)
            except RefvpsError:  # the index files do not read: the clip list itself says so
                self.put(clip_id, None)
                continue
            try:
                verdict = verdict_of(validate_clip(self.root, clip_id, refvps_rules=self.refvps_rules), fingerprint)
            except Exception as exc:  # noqa: BLE001 - shown in the list; the thread must live on
                verdict = {
                    **verdict_of([], fingerprint),
                    "ok": False,
                    "errors": 1,
                    "error": f"validation failed: {type(exc).__name__}: {exc}",
                }
            self.put(clip_id, verdict)

    def put(self, clip_id: str, verdict: dict | None) -> None:
        with self._wake:
            if verdict is not None:
                self._known[clip_id] = verdict
            if self._checking == clip_id:
                self._checking = None

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()


def _stat_key(path: Path) -> tuple[int, int, int] | None:
    """What tells that a file changed: inode, size and modification time (writes replace the file)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns


class Workspace:
    """The clips this server has open, who (which browser tab) owns each, and their locks."""

    def __init__(self, config: ServerConfig, segmenter: Segmenter):
        self.config = config
        self.root = Path(config.root)
        self.segmenter = segmenter
        self.server_id = f"annotate-{uuid.uuid4().hex[:10]}"
        self.model_lock = threading.Lock()
        self._lock = threading.RLock()
        self.open_clips: dict[str, OpenClip] = {}
        self._stop = threading.Event()
        self._dataset: tuple[tuple, Dataset] | None = None
        self.dataset()  # fail now, with a clear error, if the root is not a dataset
        self.verdicts = Verdicts(self.root, config.refvps_rules)
        self._heartbeat = threading.Thread(target=self._beat, name="lock-heartbeat", daemon=True)
        self._heartbeat.start()

    # -- dataset access with checked ids ---------------------------------------------------------

    def dataset(self) -> Dataset:
        """The dataset as its index files are now; parsed again only when one of them changed (every
        frame image and list request asks, and parsing grows with the number of clips)."""
        key = tuple(_stat_key(self.root / name) for name in (EXPRESSIONS_FILE, CLIPS_FILE))
        with self._lock:
            if self._dataset is None or self._dataset[0] != key:
                self._dataset = (key, Dataset(self.root))
            return self._dataset[1]

    def clip(self, clip_id: str) -> Clip:
        if not is_safe_id(clip_id):
            raise UsageError(f"invalid clip id {clip_id!r}", hint="clip ids are single folder names")
        dataset = self.dataset()
        if clip_id not in dataset:
            raise UnknownClipError(f"clip {clip_id!r} is not in this dataset", hint="pick a clip from the list")
        return dataset.clip(clip_id)

    @staticmethod
    def frame_of(clip: Clip, frame: str) -> str:
        if not is_safe_id(frame) or frame not in clip.frame_names:
            raise UnknownFrameError(f"clip {clip.id} has no frame {frame!r}", hint="frame names are like 00012")
        return frame

    # -- the clip list -----------------------------------------------------------------------------

    def list_clips(self, client: str | None) -> list[dict]:
        from refvps.resources import load_taxonomy

        names: dict[str, str] = {}
        try:
            for category in load_taxonomy().get("categories", []):
                names[category["id"]] = category.get("name", category["id"])
                for concept in category.get("concepts", []):
                    names[concept["id"]] = concept.get("name", concept["id"])
        except RefvpsError:
            pass
        dataset = self.dataset()
        rows = []
        for clip_id in dataset.clip_ids:
            safe = is_safe_id(clip_id)
            clip = dataset.clip(clip_id)
            frames = set(clip.frame_names)
            masks = 0
            if safe and clip.masks_dir.is_dir():
                masks = sum(1 for p in clip.masks_dir.iterdir() if p.suffix == MASK_EXT and p.stem in frames)
            summary = read_session_summary(self.root, clip_id) if safe else None
            validation = self.verdicts.get(clip_id, clip_fingerprint(dataset, clip_id)) if safe else None
            with self._lock:
                open_clip = self.open_clips.get(clip_id)
            lock_info = None
            if safe and open_clip is None:
                lock = ClipLock(session_dir(self.root, clip_id) / "lock.json", clip_id, self.server_id)
                holder = lock.read()
                if holder is not None:
                    lock_info = {"holder": holder.describe(), "stale": lock.is_stale(holder)}
            rows.append(
                {
                    "id": clip_id,
                    "openable": safe,
                    "concept": clip.meta.concept,
                    "concept_name": names.get(clip.meta.concept or "", clip.meta.concept),
                    "category": clip.meta.category,
                    "category_name": names.get(clip.meta.category or "", clip.meta.category),
                    "frames": len(clip.frame_names),
                    "masks_saved": masks,
                    "labelled": summary["labelled"] if summary else masks,
                    "unsaved": bool(summary and summary["dirty"]),
                    "expressions": sum(bool(e.text.strip()) for e in clip.expressions),
                    "validation": validation,
                    "validation_pending": safe and validation is None,
                    "open_here": bool(open_clip and open_clip.client == client),
                    "open_elsewhere": bool(open_clip and open_clip.client != client and not open_clip.released),
                    "locked": lock_info,
                }
            )
        return rows

    # -- opening and owning clips -------------------------------------------------------------------

    def open(self, clip_id: str, client: str, *, take_over: bool = False) -> ClipSession:
        clip = self.clip(clip_id)
        with self._lock:
            current = self.open_clips.get(clip_id)
            if current is not None:
                # The same tab again (a reload), a tab that was closed, or an explicit takeover: this
                # tab owns the clip now; the other tab's next request is told it lost it.
                if current.client != client and not current.released and not take_over:
                    holder = current.session.lock.read() if current.session.lock else None
                    error = ClipLockedError(clip_id, holder, stale=False, same_process=True, path=None)
                    error.message = (
                        f"clip {clip_id} is open in another tab or window of this page "
                        f"(last active {_ago(current.seen)})"
                    )
                    raise error
                self._close_others(client, clip_id)
                current.client, current.released, current.seen = client, False, time.time()
                return current.session
            self._close_others(client, clip_id)
            lock = ClipLock(session_dir(self.root, clip_id) / "lock.json", clip_id, self.server_id)
            lock.acquire(take_over=take_over)
            try:
                session = ClipSession(
                    self.root,
                    clip,
                    self.segmenter,
                    lock=lock,
                    model_lock=self.model_lock,
                    refvps_rules=self.config.refvps_rules,
                )
            except BaseException:
                lock.release()
                raise
            self.open_clips[clip_id] = OpenClip(session, client)
            return session

    def get(self, clip_id: str, client: str) -> ClipSession:
        if not is_safe_id(clip_id):
            raise UsageError(f"invalid clip id {clip_id!r}")
        with self._lock:
            current = self.open_clips.get(clip_id)
        if current is None:
            raise NotOwnerError(f"clip {clip_id} is not open", hint="open it from the clip list first")
        if current.client == client:
            current.seen, current.released = time.time(), False
        else:
            raise NotOwnerError(
                f"clip {clip_id} was taken over by another tab or window",
                hint="reopen it here (and take it over) to continue; nothing was lost",
            )
        if current.session.lock is not None and not current.session.lock.held:
            raise LockLostError(
                f"another session took clip {clip_id}'s lock over",
                hint="reopen the clip; your edits are in its session files",
            )
        return current.session

    def peek(self, clip_id: str) -> ClipSession:
        """An open clip's session for reading (any tab may look)."""
        with self._lock:
            current = self.open_clips.get(clip_id) if is_safe_id(clip_id) else None
        if current is None:
            raise NotOwnerError(f"clip {clip_id} is not open", hint="open it from the clip list first")
        return current.session

    def release(self, clip_id: str, client: str) -> None:
        """The tab that owns the clip went away (closed or reloaded): any tab may have it without asking."""
        with self._lock:
            current = self.open_clips.get(clip_id)
            if current is not None and current.client == client:
                current.released = True

    def close(self, clip_id: str, client: str) -> None:
        with self._lock:
            current = self.open_clips.get(clip_id)
            if current is not None and current.client == client:
                self._close_locked(clip_id)

    def _close_others(self, client: str, keep: str) -> None:
        """A tab works on one clip at a time: close any other it had open (autosaved already)."""
        for other_id, other in list(self.open_clips.items()):
            if other.client == client and other_id != keep:
                self._close_locked(other_id)

    def _close_locked(self, clip_id: str) -> None:
        current = self.open_clips.pop(clip_id, None)
        if current is not None:
            current.session.close()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_EVERY_S):
            with self._lock:
                sessions = [c.session for c in self.open_clips.values()]
            for session in sessions:
                if session.lock is not None:
                    try:
                        session.lock.heartbeat()
                    except OSError:
                        pass

    def shutdown(self) -> list[str]:
        """Cancel running jobs, autosave, release every lock. Returns the clips with unsaved work."""
        self._stop.set()
        self.verdicts.stop()
        unsaved = []
        with self._lock:
            for clip_id in list(self.open_clips):
                if self.open_clips[clip_id].session.dirty:
                    unsaved.append(clip_id)
                self._close_locked(clip_id)
        return unsaved


# ----------------------------------------------------------------------------------------------
# The guard: token, Host header and body size, in front of the app (plain ASGI).


class Guard:
    """ASGI middleware: token check, Host check, body-size bound. Outermost, so nothing slips past."""

    def __init__(self, app, config: ServerConfig):
        self.app = app
        self.config = config

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":  # none are served; refuse before anything else sees one
            return await send({"type": "websocket.close", "code": 1008})
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        path = scope.get("path", "")
        method = scope.get("method", "GET")
        if self.config.allowed_hosts is not None:
            host = headers.get("host", "")
            hostname = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
            if hostname not in self.config.allowed_hosts:
                return await _send_json(
                    send,
                    403,
                    {"error": f"host {host!r} is not served here", "hint": "open the URL printed by refvps annotate"},
                )
        if path != "/favicon.ico":  # everything else needs the token, the page's own files too
            if not self._authorised(scope, headers, path, method):
                if path.startswith("/api/"):
                    return await _send_json(
                        send,
                        403,
                        {
                            "error": "missing or wrong access token",
                            "hint": "open the URL printed by refvps annotate (it ends with ?token=...)",
                            "code": "token",
                        },
                    )
                return await _send_html(send, 403, _FORBIDDEN_PAGE)
        length = headers.get("content-length")
        limit = self.config.max_body_bytes
        if length is not None:
            try:
                too_big = int(length) > limit
            except ValueError:
                too_big = True
            if too_big:
                return await _send_json(
                    send,
                    413,
                    {
                        "error": f"request body larger than {limit} bytes",
                        "hint": "send shorter strokes (the page splits long ones)",
                    },
                )
        # Read the body here (bounded), then hand it on: the app never sees more than the limit,
        # whether or not the client announced a length.
        chunks, received = [], 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            received += len(body)
            if received > limit:
                return await _send_json(
                    send,
                    413,
                    {
                        "error": f"request body larger than {limit} bytes",
                        "hint": "send shorter strokes (the page splits long ones)",
                    },
                )
            chunks.append(body)
            more = message.get("more_body", False)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _authorised(self, scope, headers, path, method) -> bool:
        token = self.config.token
        supplied = headers.get(TOKEN_HEADER)
        if supplied is None and (method in ("GET", "HEAD") or not path.startswith("/api/")):
            supplied = _query_param(scope, "token") or _cookie(headers, TOKEN_COOKIE)
        return supplied is not None and secrets.compare_digest(supplied.encode(), token.encode())


def _query_param(scope, name: str) -> str | None:
    from urllib.parse import parse_qs

    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[0] if values else None


def _cookie(headers: dict, name: str) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


async def _send_json(send, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})


async def _send_html(send, status: int, html: str) -> None:
    data = html.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})


_FORBIDDEN_PAGE = """<!doctype html><meta charset="utf-8"><title>refvps annotate</title>
<body style="font-family:sans-serif;max-width:40em;margin:4em auto">
<h1>Access token needed</h1>
<p>Open the address that <code>refvps annotate</code> printed when it started; it ends with
<code>?token=...</code>. The token keeps other pages and users of this machine out.</p></body>"""


# ----------------------------------------------------------------------------------------------
# The app


def create_app(config: ServerConfig, segmenter: Segmenter, *, workspace: Workspace | None = None):
    """The ASGI application (guarded). ``app.state.workspace`` is the :class:`Workspace`."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
    from pydantic import BaseModel, ConfigDict, Field

    from refvps import __version__

    workspace = workspace or Workspace(config, segmenter)
    app = FastAPI(title="refvps annotate", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.workspace = workspace
    static_dir = resources.files("refvps.annotate") / "static"

    class Body(BaseModel):
        model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    Point = Annotated[list[float], Field(min_length=2, max_length=2)]

    class OpenBody(Body):
        take_over: bool = False

    class PointsBody(Body):
        frame: str = Field(max_length=200)
        points: list[Point] = Field(default_factory=list, max_length=200)
        labels: list[Literal[0, 1]] = Field(default_factory=list, max_length=200)

    class StrokeBody(Body):
        frame: str = Field(max_length=200)
        layer: Literal["target", "ignore"]
        mode: Literal["paint", "erase"]
        radius: float = Field(gt=0, le=500)
        points: list[Point] = Field(min_length=1, max_length=20000)

    class FillBody(Body):
        frame: str | None = Field(default=None, max_length=200)
        layer: Literal["target", "ignore"] = "target"

    class ClearBody(Body):
        frame: str = Field(max_length=200)
        layer: Literal["target", "ignore", "all"] = "target"

    class CopyIgnoreBody(Body):
        frame: str = Field(max_length=200)
        to: Literal["next", "previous", "all"] = "next"

    class PropagateBody(Body):
        frame: str = Field(max_length=200)
        direction: Literal["both", "forward", "backward", "auto"] = "both"

    class ExpressionsBody(Body):
        annotators: list[Annotated[str, Field(max_length=200)]] = Field(min_length=2, max_length=2)
        expressions: list[Annotated[str, Field(max_length=2000)]] = Field(min_length=4, max_length=4)

    class SaveBody(Body):
        allow_unlabelled: bool = False

    # -- errors -> JSON with a hint --------------------------------------------------------------

    def error_response(exc: RefvpsError) -> JSONResponse:
        body: dict[str, Any] = {"error": str(exc), "hint": exc.hint}
        status = 400
        if isinstance(exc, ClipLockedError):
            status, body["code"], body["lock"] = 409, "locked", exc.to_json()
        elif isinstance(exc, SessionBusyError):
            status, body["code"] = 409, "busy"
        elif isinstance(exc, (LockLostError, NotOwnerError)):
            status, body["code"] = 409, "not_owner"
        elif isinstance(exc, UnlabelledFramesError):
            status, body["code"], body["frames"] = 409, "unlabelled", exc.frames
        elif isinstance(exc, UnknownClipError):
            status, body["code"] = 404, "no_clip"
        elif isinstance(exc, UnknownFrameError):
            status, body["code"] = 404, "no_frame"
        elif isinstance(exc, DatasetError):
            status, body["code"] = 422, "dataset"
        elif isinstance(exc, UsageError):
            status, body["code"] = 400, "usage"
        return JSONResponse(body, status_code=status)

    @app.exception_handler(RefvpsError)
    async def _refvps_error(request: Request, exc: RefvpsError):
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", []) if p != "body")
        return JSONResponse(
            {
                "error": f"bad request field {where or '?'}: {first.get('msg', 'invalid')}",
                "hint": "this is a bug in the page or a hand-made request",
                "code": "invalid",
            },
            status_code=422,
        )

    def client_of(request: Request) -> str:
        client = request.headers.get(CLIENT_HEADER, "")
        if not client or len(client) > 100 or not is_safe_id(client):
            raise UsageError("missing or bad client id header", hint="reload the page")
        return client

    def session_for(request: Request, clip_id: str) -> ClipSession:
        return workspace.get(clip_id, client_of(request))

    def index_of(session: ClipSession, frame: str) -> int:
        return session.frame_index(Workspace.frame_of(session.clip, frame))

    # -- the page ------------------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    def page(request: Request):
        html = (static_dir / "index.html").read_text(encoding="utf-8")
        html = html.replace("__REFVPS_TOKEN__", config.token)
        response = HTMLResponse(
            html,
            headers={
                "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
                "script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )
        response.set_cookie(TOKEN_COOKIE, config.token, httponly=True, samesite="strict", path="/")
        return response

    @app.get("/favicon.ico")
    def favicon():
        return Response(status_code=204)

    @app.get("/static/{name}")
    def static(name: str):
        if name not in ("app.js", "app.css"):
            return JSONResponse({"error": "not found"}, status_code=404)
        media = "text/javascript" if name.endswith(".js") else "text/css"
        return Response(
            (static_dir / name).read_bytes(),
            media_type=media,
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )

    # -- API: reading -------------------------------------------------------------------------------

    @app.get("/api/info")
    def info():
        return {
            "version": __version__,
            "root": str(workspace.root),
            "segmenter": segmenter.info().to_json(),
            "refvps_rules": config.refvps_rules,
            "initial_clip": config.initial_clip,
            "server": workspace.server_id,
        }

    @app.get("/api/clips")
    def clips(request: Request):
        client = request.headers.get(CLIENT_HEADER)
        return {"clips": workspace.list_clips(client)}

    @app.get("/api/clips/{clip_id}/frames/{frame}.jpg")
    def frame_image(clip_id: str, frame: str):
        clip = workspace.clip(clip_id)
        name = Workspace.frame_of(clip, frame)
        path = clip.frame_path(name)
        if not path.is_file():
            raise DatasetError(
                f"frame file missing: {path.relative_to(workspace.root)}",
                hint="restore the frame or re-export the clip",
                path=path,
            )
        return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=600"})

    @app.get("/api/clips/{clip_id}/overlay/{frame}.png")
    def overlay(clip_id: str, frame: str):
        session = workspace.peek(clip_id)
        data = session.overlay_png(index_of(session, frame))
        return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.get("/api/clips/{clip_id}/state")
    def state(request: Request, clip_id: str):
        return session_for(request, clip_id).state_json()

    @app.get("/api/clips/{clip_id}/validation")
    def validation(request: Request, clip_id: str):
        session = session_for(request, clip_id)
        problems = session.validate()
        workspace.verdicts.put(clip_id, session.verdict)
        return {"ok": session.verdict["ok"], "problems": problems}

    # -- API: opening -------------------------------------------------------------------------------

    @app.post("/api/clips/{clip_id}/open")
    def open_clip(request: Request, clip_id: str, body: OpenBody | None = None):
        session = workspace.open(clip_id, client_of(request), take_over=bool(body and body.take_over))
        meta = session.clip.meta
        return {
            "state": session.state_json(),
            "concept": meta.concept,
            "category": meta.category,
            "notes": session.notes,
            "fps": meta.fps,
        }

    @app.post("/api/clips/{clip_id}/release")
    def release_clip(request: Request, clip_id: str):
        workspace.release(clip_id, client_of(request))
        return {"released": clip_id}

    @app.post("/api/clips/{clip_id}/close")
    def close_clip(request: Request, clip_id: str):
        workspace.close(clip_id, client_of(request))
        return {"closed": clip_id}

    # -- API: editing -------------------------------------------------------------------------------

    @app.post("/api/clips/{clip_id}/points")
    def points(request: Request, clip_id: str, body: PointsBody):
        session = session_for(request, clip_id)
        session.set_points(index_of(session, body.frame), body.points, body.labels)
        return session.state_json()

    @app.post("/api/clips/{clip_id}/stroke")
    def stroke(request: Request, clip_id: str, body: StrokeBody):
        session = session_for(request, clip_id)
        session.stroke(index_of(session, body.frame), body.layer, body.mode, body.radius, body.points)
        return session.state_json()

    @app.post("/api/clips/{clip_id}/fill_holes")
    def fill_holes(request: Request, clip_id: str, body: FillBody):
        session = session_for(request, clip_id)
        session.fill_holes(None if body.frame is None else index_of(session, body.frame), body.layer)
        return session.state_json()

    @app.post("/api/clips/{clip_id}/clear")
    def clear(request: Request, clip_id: str, body: ClearBody):
        session = session_for(request, clip_id)
        session.clear_frame(index_of(session, body.frame), body.layer)
        return session.state_json()

    @app.post("/api/clips/{clip_id}/copy_ignore")
    def copy_ignore(request: Request, clip_id: str, body: CopyIgnoreBody):
        session = session_for(request, clip_id)
        index = index_of(session, body.frame)
        if body.to == "next":
            targets = [index + 1] if index + 1 < session.num_frames else []
        elif body.to == "previous":
            targets = [index - 1] if index > 0 else []
        else:
            targets = list(range(session.num_frames))
        session.copy_ignore(index, targets)
        return session.state_json()

    @app.post("/api/clips/{clip_id}/propagate")
    def propagate(request: Request, clip_id: str, body: PropagateBody):
        session = session_for(request, clip_id)
        session.start_propagation(index_of(session, body.frame), body.direction)
        return session.state_json()

    @app.post("/api/clips/{clip_id}/cancel")
    def cancel(request: Request, clip_id: str):
        session = session_for(request, clip_id)
        session.cancel()
        return session.state_json()

    @app.post("/api/clips/{clip_id}/undo")
    def undo(request: Request, clip_id: str):
        session = session_for(request, clip_id)
        session.undo()
        return session.state_json()

    @app.post("/api/clips/{clip_id}/redo")
    def redo(request: Request, clip_id: str):
        session = session_for(request, clip_id)
        session.redo()
        return session.state_json()

    @app.put("/api/clips/{clip_id}/expressions")
    def expressions(request: Request, clip_id: str, body: ExpressionsBody):
        session = session_for(request, clip_id)
        session.set_expressions(body.annotators, body.expressions)
        return session.state_json()

    @app.post("/api/clips/{clip_id}/save")
    def save(request: Request, clip_id: str, body: SaveBody | None = None):
        session = session_for(request, clip_id)
        result = session.save(allow_unlabelled=bool(body and body.allow_unlabelled))
        workspace.verdicts.put(clip_id, session.verdict)
        return {"save": result.to_json(), "state": session.state_json()}

    return Guard(app, config)


def workspace_of(asgi_app) -> Workspace:
    return asgi_app.app.state.workspace
