"""The page's HTTP API: request bodies, the routes, and how errors become JSON with a hint.

Every editing route has the same shape (find the tab's session, apply one edit, answer with the
session's state); they are listed in :data:`EDITS` and registered from that table.
"""

# No "from __future__ import annotations": FastAPI reads the route annotations at run time.

from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any, Callable, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from refvps.annotate.autosave import LockLostError
from refvps.annotate.clipcheck import is_safe_id
from refvps.annotate.layers import OVERLAY_STYLES
from refvps.annotate.lock import ClipLockedError
from refvps.annotate.registry import ClipRegistry, NotOwnerError, UnknownClipError, UnknownFrameError
from refvps.annotate.server import TOKEN_COOKIE
from refvps.annotate.session import ClipSession, SessionBusyError, UnlabelledFramesError
from refvps.errors import DatasetError, RefvpsError, UsageError

CLIENT_HEADER = "x-refvps-client"
STATIC_FILES = {"app.js": "text/javascript", "app.css": "text/css"}
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter()


# -- request bodies ----------------------------------------------------------------------------------


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


Point = Annotated[list[float], Field(min_length=2, max_length=2)]
FrameName = Annotated[str, Field(max_length=200)]


class OpenBody(Body):
    take_over: bool = False


class PointsBody(Body):
    frame: FrameName
    points: list[Point] = Field(default_factory=list, max_length=200)
    labels: list[Literal[0, 1]] = Field(default_factory=list, max_length=200)


class StrokeBody(Body):
    frame: FrameName
    layer: Literal["target", "ignore"]
    mode: Literal["paint", "erase"]
    radius: float = Field(gt=0, le=500)
    points: list[Point] = Field(min_length=1, max_length=20000)


class FillBody(Body):
    frame: FrameName | None = None
    layer: Literal["target", "ignore"] = "target"


class ClearBody(Body):
    frame: FrameName
    layer: Literal["target", "ignore", "all"] = "target"


class CopyIgnoreBody(Body):
    frame: FrameName
    to: Literal["next", "previous", "all"] = "next"


class ReviewBody(Body):
    frame: FrameName
    reviewed: bool = True


class PropagateBody(Body):
    frame: FrameName
    direction: Literal["both", "forward", "backward", "between"] = "both"


class ExpressionsBody(Body):
    annotators: list[Annotated[str, Field(max_length=200)]] = Field(min_length=2, max_length=2)
    expressions: list[Annotated[str, Field(max_length=2000)]] = Field(min_length=4, max_length=4)


class SaveBody(Body):
    allow_unlabelled: bool = False


# -- errors -> JSON with a hint ------------------------------------------------------------------------

_ERROR_CODES: list[tuple[type, int, str]] = [  # first match wins
    (ClipLockedError, 409, "locked"),
    (SessionBusyError, 409, "busy"),
    (LockLostError, 409, "not_owner"),
    (NotOwnerError, 409, "not_owner"),
    (UnlabelledFramesError, 409, "unlabelled"),
    (UnknownClipError, 404, "no_clip"),
    (UnknownFrameError, 404, "no_frame"),
    (DatasetError, 422, "dataset"),
    (UsageError, 400, "usage"),
]


def error_response(exc: RefvpsError) -> JSONResponse:
    body: dict[str, Any] = {"error": str(exc), "hint": exc.hint}
    status = 400
    for kind, code, name in _ERROR_CODES:
        if isinstance(exc, kind):
            status, body["code"] = code, name
            break
    if isinstance(exc, ClipLockedError):
        body["lock"] = exc.to_json()
    if isinstance(exc, UnlabelledFramesError):
        body["frames"] = exc.frames
    return JSONResponse(body, status_code=status)


def invalid_request_response(errors: list[dict]) -> JSONResponse:
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", []) if p != "body")
    return JSONResponse(
        {
            "error": f"bad request field {where or '?'}: {first.get('msg', 'invalid')}",
            "hint": "this is a bug in the page or a hand-made request",
            "code": "invalid",
        },
        status_code=422,
    )


# -- helpers ----------------------------------------------------------------------------------------------


def registry(request: Request) -> ClipRegistry:
    return request.app.state.registry


def client_of(request: Request) -> str:
    client = request.headers.get(CLIENT_HEADER, "")
    if not client or len(client) > 100 or not is_safe_id(client):
        raise UsageError("missing or bad client id header", hint="reload the page")
    return client


def session_for(request: Request, clip_id: str) -> ClipSession:
    return registry(request).get(clip_id, client_of(request))


def index_of(session: ClipSession, frame: str) -> int:
    return session.frame_index(ClipRegistry.frame_of(session.clip, frame))


def edited(request: Request, clip_id: str, edit: Callable[[ClipSession], Any]) -> dict:
    """Apply ``edit`` to the tab's session of the clip and answer with the session's state."""
    session = session_for(request, clip_id)
    edit(session)
    return session.state_json()


# -- the editing routes, from one table ----------------------------------------------------------------


@dataclass(frozen=True)
class Edit:
    path: str
    body: type[Body] | None
    apply: Callable[[ClipSession, Any], Any]
    method: str = "POST"


EDITS = [
    Edit("points", PointsBody, lambda s, b: s.set_points(index_of(s, b.frame), b.points, b.labels)),
    Edit("stroke", StrokeBody, lambda s, b: s.stroke(index_of(s, b.frame), b.layer, b.mode, b.radius, b.points)),
    Edit("fill_holes", FillBody, lambda s, b: s.fill_holes(None if b.frame is None else index_of(s, b.frame), b.layer)),
    Edit("clear", ClearBody, lambda s, b: s.clear_frame(index_of(s, b.frame), b.layer)),
    Edit("copy_ignore", CopyIgnoreBody, lambda s, b: s.copy_ignore(index_of(s, b.frame), b.to)),
    Edit("reviewed", ReviewBody, lambda s, b: s.set_reviewed(index_of(s, b.frame), b.reviewed)),
    Edit("propagate", PropagateBody, lambda s, b: s.start_propagation(index_of(s, b.frame), b.direction)),
    Edit("cancel", None, lambda s, b: s.cancel()),
    Edit("undo", None, lambda s, b: s.undo()),
    Edit("redo", None, lambda s, b: s.redo()),
    Edit("expressions", ExpressionsBody, lambda s, b: s.set_expressions(b.annotators, b.expressions), "PUT"),
]


def _edit_route(edit: Edit) -> Callable:
    if edit.body is None:

        def route(request: Request, clip_id: str):
            return edited(request, clip_id, lambda s: edit.apply(s, None))

    else:
        body_type = edit.body

        def route(request: Request, clip_id: str, body: body_type):  # type: ignore[valid-type]
            return edited(request, clip_id, lambda s: edit.apply(s, body))

    route.__name__ = edit.path
    return route


for _edit in EDITS:
    router.add_api_route(f"/api/clips/{{clip_id}}/{_edit.path}", _edit_route(_edit), methods=[_edit.method])


# -- the page ------------------------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def page(request: Request):
    token = request.app.state.config.token
    html = (resources.files("refvps.annotate") / "static" / "index.html").read_text(encoding="utf-8")
    response = HTMLResponse(html.replace("__REFVPS_TOKEN__", token), headers=PAGE_HEADERS)
    response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict", path="/")
    return response


@router.get("/favicon.ico")
def favicon():
    return Response(status_code=204)


@router.get("/static/{name}")
def static(name: str):
    if name not in STATIC_FILES:
        return JSONResponse({"error": "not found"}, status_code=404)
    return Response(
        (resources.files("refvps.annotate") / "static" / name).read_bytes(),
        media_type=STATIC_FILES[name],
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


# -- reading -------------------------------------------------------------------------------------------------


@router.get("/api/info")
def info(request: Request):
    from refvps import __version__

    reg, config = registry(request), request.app.state.config
    return {
        "version": __version__,
        "root": str(reg.root),
        "segmenter": reg.segmenter.info().to_json(),
        "refvps_rules": config.refvps_rules,
        "initial_clip": config.initial_clip,
        "server": reg.server_id,
        "recovered": [r.describe() for r in reg.recovered],
    }


@router.get("/api/clips")
def clips(request: Request):
    return {"clips": registry(request).list_clips(request.headers.get(CLIENT_HEADER))}


@router.get("/api/clips/{clip_id}/frames/{frame}.jpg")
def frame_image(request: Request, clip_id: str, frame: str):
    reg = registry(request)
    clip = reg.clip(clip_id)
    path = clip.frame_path(ClipRegistry.frame_of(clip, frame))
    if not path.is_file():
        raise DatasetError(
            f"frame file missing: {path.relative_to(reg.root)}",
            hint="restore the frame or re-export the clip",
            path=path,
        )
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=600"})


@router.get("/api/clips/{clip_id}/overlay/{frame}.png")
def overlay(request: Request, clip_id: str, frame: str, style: Literal[OVERLAY_STYLES] = Query("fill")):  # type: ignore[valid-type]
    session = registry(request).peek(clip_id)
    data = session.overlay_png(index_of(session, frame), style)
    return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.get("/api/clips/{clip_id}/state")
def state(request: Request, clip_id: str):
    return session_for(request, clip_id).state_json()


@router.get("/api/clips/{clip_id}/validation")
def validation(request: Request, clip_id: str):
    session = session_for(request, clip_id)
    problems = session.validate()
    registry(request).verdicts.put(clip_id, session.verdict)
    return {"ok": session.verdict["ok"], "problems": problems}


# -- opening, closing, saving ----------------------------------------------------------------------------------


@router.post("/api/clips/{clip_id}/open")
def open_clip(request: Request, clip_id: str, body: OpenBody | None = None):
    session = registry(request).open(clip_id, client_of(request), take_over=bool(body and body.take_over))
    meta = session.clip.meta
    return {
        "state": session.state_json(),
        "concept": meta.concept,
        "category": meta.category,
        "notes": session.notes,
        "fps": meta.fps,
    }


@router.post("/api/clips/{clip_id}/release")
def release_clip(request: Request, clip_id: str):
    registry(request).release(clip_id, client_of(request))
    return {"released": clip_id}


@router.post("/api/clips/{clip_id}/close")
def close_clip(request: Request, clip_id: str):
    registry(request).close(clip_id, client_of(request))
    return {"closed": clip_id}


@router.post("/api/clips/{clip_id}/save")
def save(request: Request, clip_id: str, body: SaveBody | None = None):
    session = session_for(request, clip_id)
    result = session.save(allow_unlabelled=bool(body and body.allow_unlabelled))
    registry(request).verdicts.put(clip_id, session.verdict)
    return {"save": result.to_json(), "state": session.state_json()}
