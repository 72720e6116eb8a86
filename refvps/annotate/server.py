"""The local web server behind ``refvps annotate``: a FastAPI app plus the guard in front of it.

Safe by default, as Jupyter is: it listens on 127.0.0.1 (another interface only when asked, with a
warning), every request needs the access token printed in the URL (the page gets it once and keeps
it in a same-site cookie for images; API calls that change anything must send it in a header, so a
page on another site cannot make them), Host headers other than the ones served are refused (DNS
rebinding), request bodies are bounded, and clip ids and frame names are checked against the
dataset before they come near a path. The routes are in :mod:`refvps.annotate.routes`, the open
clips in :class:`refvps.annotate.registry.ClipRegistry`.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from refvps.annotate.registry import ClipRegistry
from refvps.annotate.segmenters.base import Segmenter
from refvps.annotate.store import new_token

TOKEN_HEADER = "x-refvps-token"
TOKEN_COOKIE = "refvps_token"
MAX_BODY_BYTES = 2 * 1024 * 1024
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


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


def create_app(config: ServerConfig, segmenter: Segmenter, *, registry: ClipRegistry | None = None):
    """The ASGI application (guarded). ``app.state.registry`` is the :class:`ClipRegistry`."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError

    from refvps.annotate.routes import error_response, invalid_request_response, router
    from refvps.errors import RefvpsError

    app = FastAPI(title="refvps annotate", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.config = config
    app.state.registry = registry or ClipRegistry(config.root, segmenter, refvps_rules=config.refvps_rules)
    app.include_router(router)

    @app.exception_handler(RefvpsError)
    async def _refvps_error(request: Request, exc: RefvpsError):
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        return invalid_request_response(list(exc.errors()))

    return Guard(app, config)


def registry_of(asgi_app) -> ClipRegistry:
    return asgi_app.app.state.registry


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
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            status, body = refusal
            if isinstance(body, str):
                return await _send_html(send, status, body)
            return await _send_json(send, status, body)
        body = await self._bounded_body(receive)
        if body is None:
            return  # the client went away
        if isinstance(body, dict):
            return await _send_json(send, 413, body)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _refusal(self, scope, headers: dict) -> tuple[int, dict | str] | None:
        """Why a request is refused before the app sees it (status and body), or None."""
        path, method = scope.get("path", ""), scope.get("method", "GET")
        if self.config.allowed_hosts is not None:
            host = headers.get("host", "")
            hostname = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
            if hostname not in self.config.allowed_hosts:
                return 403, {
                    "error": f"host {host!r} is not served here",
                    "hint": "open the URL printed by refvps annotate",
                }
        # Everything but the icon needs the token, the page's own files too.
        if path != "/favicon.ico" and not self._authorised(scope, headers, path, method):
            if not path.startswith("/api/"):
                return 403, _FORBIDDEN_PAGE
            hint = "open the URL printed by refvps annotate (it ends with ?token=...)"
            return 403, {"error": "missing or wrong access token", "hint": hint, "code": "token"}
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.config.max_body_bytes):
            return 413, self._too_big()
        return None

    def _too_big(self) -> dict:
        return {
            "error": f"request body larger than {self.config.max_body_bytes} bytes",
            "hint": "send shorter strokes (the page splits long ones)",
        }

    async def _bounded_body(self, receive) -> bytes | dict | None:
        """The whole body, read here so the app never sees more than the limit, whether or not the
        client announced a length; the 413 answer when it is too big; None when the client left."""
        chunks, received, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.config.max_body_bytes:
                return self._too_big()
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

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
