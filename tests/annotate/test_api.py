"""Every endpoint of the annotation server, its token, its locks, its bounds and its path checks."""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from refvps.annotate.segmenters.classic import ClassicSegmenter
from refvps.annotate.server import ServerConfig, create_app, registry_of
from refvps.dataset import DatasetWriter
from refvps.dataset.palette import read_label_png
from tests.annotate.conftest import (
    EXPRESSIONS,
    OracleSegmenter,
    T,
    blob_center,
    blob_clip,
    distance_to_polyline,
    files_snapshot,
    overlay_layers,
)

TOKEN = "test-token-123"
_, GT = blob_clip()


def make_client(root, segmenter=None, **config):
    app = create_app(ServerConfig(root=root, token=TOKEN, **config), segmenter or OracleSegmenter(GT))
    return TestClient(app, base_url="http://127.0.0.1"), app


def headers(client_id="tab-1", token=TOKEN):
    out = {"X-Refvps-Client": client_id}
    if token is not None:
        out["X-Refvps-Token"] = token
    return out


@pytest.fixture
def server(dataset):
    client, app = make_client(dataset)
    yield client, app, dataset
    registry_of(app).shutdown()


def wait_job(client, clip="clip_a", h=None):
    for _ in range(300):
        state = client.get(f"/api/clips/{clip}/state", headers=h or headers()).json()
        if state["job"] and state["job"]["state"] != "running":
            return state
        time.sleep(0.05)
    raise AssertionError("propagation did not finish")


# -- the token, the Host header, the page -------------------------------------------------------


def route_table(app):
    """Every (method, path) the server answers, with its path parameters filled in for clip_a."""
    values = {"clip_id": "clip_a", "frame": "00000", "name": "app.js"}
    table = []
    routes = list(app.app.routes)  # app is the Guard; app.app the FastAPI application
    while routes:
        route = routes.pop(0)
        if hasattr(route, "original_router"):  # an included APIRouter
            routes += route.original_router.routes
            continue
        for method in sorted(getattr(route, "methods", None) or ()):
            if method != "HEAD" and not route.path.startswith(("/docs", "/redoc", "/openapi")):
                table.append((method, re.sub(r"{(\w+)}", lambda m: values[m.group(1)], route.path)))
    return table


def test_token_is_required_on_every_route(server):
    client, app, _ = server
    table = route_table(app)
    assert ("POST", "/api/clips/clip_a/save") in table and ("GET", "/static/app.js") in table and len(table) > 15
    # Open the clip with the token first, so that a refusal below is the token's doing, not a missing clip.
    assert client.post("/api/clips/clip_a/open", headers=headers(), json={}).status_code == 200
    stranger = TestClient(client.app, base_url="http://127.0.0.1")  # no cookie, no token
    for method, path in table:
        if path == "/favicon.ico":
            continue
        for credentials in ({"X-Refvps-Client": "tab-1"}, headers(token="wrong")):
            response = stranger.request(method, path, headers=credentials, json={} if method != "GET" else None)
            assert response.status_code == 403, (method, path, credentials, response.status_code)
    # Websockets (none are served) are refused before the app sees them, token or not.
    for path in ("/", f"/api/info?token={TOKEN}"):
        with pytest.raises(WebSocketDisconnect) as refused:
            with client.websocket_connect(path):
                pass
        assert refused.value.code == 1008  # policy violation: the guard's answer, not the router's 1000


def test_token_in_header_url_or_cookie(server):
    client, _, _ = server
    assert client.get("/").status_code == 403
    assert "token" in client.get("/").text
    assert client.get("/?token=wrong").status_code == 403
    page = client.get(f"/?token={TOKEN}")
    assert (
        page.status_code == 200
        and TOKEN in page.text
        and "script-src 'self'" in page.headers["content-security-policy"]
    )
    assert client.cookies.get("refvps_token") == TOKEN
    for path in ("/static/app.js", "/static/app.css"):  # the page's own files come with its cookie
        assert client.get(path).status_code == 200
    assert client.get("/static/index.html").status_code == 404
    assert client.get("/static/../server.py").status_code == 404
    fresh = TestClient(client.app, base_url="http://127.0.0.1")
    assert fresh.get("/static/app.js").status_code == 403
    assert fresh.get("/api/info").status_code == 403
    assert fresh.get("/api/info", headers=headers(token="nope")).json()["code"] == "token"
    assert fresh.get("/api/info", headers=headers()).status_code == 200
    assert fresh.get(f"/api/info?token={TOKEN}").status_code == 200  # GET with the URL token
    fresh.cookies.set("refvps_token", TOKEN)
    assert fresh.get("/api/clips").status_code == 200  # GET with the cookie (images)
    # A change needs the token in a header: a cookie alone (what a foreign page could ride on) is refused.
    assert fresh.post("/api/clips/clip_a/open", headers={"X-Refvps-Client": "tab-9"}, json={}).status_code == 403
    assert (
        fresh.post(f"/api/clips/clip_a/open?token={TOKEN}", headers={"X-Refvps-Client": "tab-9"}, json={}).status_code
        == 403
    )


def test_foreign_host_header_is_refused(server):
    client, _, _ = server
    response = client.get("/api/info", headers={**headers(), "Host": "evil.example:8765"})
    assert response.status_code == 403 and "host" in response.json()["error"]
    assert client.get("/api/info", headers={**headers(), "Host": "localhost:8765"}).status_code == 200


def test_info_and_clip_list(server):
    client, _, _ = server
    info = client.get("/api/info", headers=headers()).json()
    assert info["segmenter"]["name"] == "oracle" and info["refvps_rules"] is True
    clips = {c["id"]: c for c in client.get("/api/clips", headers=headers()).json()["clips"]}
    assert set(clips) == {"clip_a", "clip_b"}
    assert clips["clip_a"]["masks_saved"] == 0 and clips["clip_a"]["labelled"] == 0
    assert clips["clip_b"]["masks_saved"] == T and clips["clip_b"]["expressions"] == 4
    assert clips["clip_b"]["concept_name"] == "ice cream melting"
    assert clips["clip_b"]["category_name"] == "Temporal object changes"


# -- the whole labelling path through the API ---------------------------------------------------


def test_every_editing_endpoint(server):
    client, _, root = server
    h = headers()
    opened = client.post("/api/clips/clip_a/open", headers=h, json={}).json()
    state = opened["state"]
    assert state["middle"] == T // 2 and state["status"] == ["empty"] * T and opened["concept"] == "ice_cream_melting"
    mid, name = state["middle"], state["frames"][state["middle"]]

    frame = client.get(f"/api/clips/clip_a/frames/{name}.jpg", headers=h)
    assert frame.status_code == 200 and frame.headers["content-type"] == "image/jpeg"

    state = client.post(
        "/api/clips/clip_a/points", headers=h, json={"frame": name, "points": [list(blob_center(mid))], "labels": [1]}
    ).json()
    assert state["status"][mid] == "clicked" and state["prompts"][str(mid)]["labels"] == [1]

    def layers(frame):
        response = client.get(f"/api/clips/clip_a/overlay/{frame}.png", headers=h)
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        return overlay_layers(response.content)

    target, ignore = layers(name)
    assert np.array_equal(target, GT[mid] == 1) and not ignore.any()  # red exactly on the clicked target

    # An Ignore stroke (radius 3 along y = 5), checked against the brush's footprint computed independently.
    stroke = [[5, 5], [20, 5]]
    state = client.post(
        "/api/clips/clip_a/stroke",
        headers=h,
        json={"frame": "00001", "layer": "ignore", "mode": "paint", "radius": 3, "points": stroke},
    ).json()
    assert state["undo"].startswith("brush (ignore)") and state["status"][1] == "empty"  # Ignore is no hand fix
    distance = distance_to_polyline(GT[0].shape, stroke)
    _, ignore = layers("00001")
    assert ignore[distance <= 2].all() and not ignore[distance >= 4].any()
    state = client.post("/api/clips/clip_a/copy_ignore", headers=h, json={"frame": "00001", "to": "next"}).json()
    assert state["undo"].startswith("copy Ignore") and np.array_equal(layers("00002")[1], ignore)
    client.post(
        "/api/clips/clip_a/stroke",
        headers=h,
        json={"frame": "00008", "layer": "ignore", "mode": "paint", "radius": 3, "points": stroke},
    )
    assert (
        client.post("/api/clips/clip_a/clear", headers=h, json={"frame": "00008", "layer": "ignore"}).status_code == 200
    )
    assert not layers("00008")[1].any()
    # A ring painted by hand on frame 9, then its hole filled: the ring's centre becomes target.
    ring = [[100 + 10 * np.cos(a), 30 + 10 * np.sin(a)] for a in np.linspace(0, 2 * np.pi, 25)]
    client.post(
        "/api/clips/clip_a/stroke",
        headers=h,
        json={"frame": "00009", "layer": "target", "mode": "paint", "radius": 2, "points": ring},
    )
    assert not layers("00009")[0][30, 100]
    state = client.post("/api/clips/clip_a/fill_holes", headers=h, json={"frame": "00009", "layer": "target"}).json()
    assert layers("00009")[0][30, 100] and state["status"][9] == "manual"

    state = client.post("/api/clips/clip_a/propagate", headers=h, json={"frame": name, "direction": "both"}).json()
    assert state["job"]["state"] in ("running", "done")
    state = wait_job(client)
    assert state["job"]["state"] == "done" and "empty" not in state["status"]
    assert client.post("/api/clips/clip_a/cancel", headers=h).status_code == 200  # nothing to cancel: fine

    state = client.post("/api/clips/clip_a/undo", headers=h).json()
    assert state["redo"].startswith("propagate")
    state = client.post("/api/clips/clip_a/redo", headers=h).json()
    assert state["undo"].startswith("propagate")

    state = client.put(
        "/api/clips/clip_a/expressions",
        headers=h,
        json={"annotators": ["ann1", "ann2"], "expressions": [e.text for e in EXPRESSIONS]},
    ).json()
    assert state["expressions"][3] == EXPRESSIONS[3].text and state["dirty"]

    saved = client.post("/api/clips/clip_a/save", headers=h, json={}).json()
    assert saved["save"]["ok"], saved["save"]["problems"]
    assert saved["state"]["dirty"] is False
    label = read_label_png(root / "Annotations" / "clip_a" / "00002.png")  # propagated target + copied Ignore
    assert (label[distance <= 2] == 255).all()
    outside = distance >= 4
    assert np.array_equal(label[outside], GT[2][outside].astype(np.uint8))
    label = read_label_png(root / "Annotations" / "clip_a" / "00009.png")  # the hand-made disc was kept
    assert label[30, 100] == 1 and GT[9][:, :80].any() and not label[:, :80].any()  # not the propagated blob
    validation = client.get("/api/clips/clip_a/validation", headers=h).json()
    assert validation["ok"] is True
    listed = {c["id"]: c for c in client.get("/api/clips", headers=h).json()["clips"]}["clip_a"]
    assert listed["validation"]["ok"] is True and listed["masks_saved"] == T and listed["open_here"]

    assert client.post("/api/clips/clip_a/close", headers=h).json() == {"closed": "clip_a"}
    assert not (root / ".refvps-annotate" / "clip_a" / "lock.json").exists()
    assert client.get("/api/clips/clip_a/state", headers=h).json()["code"] == "not_owner"


def test_save_asks_before_writing_unlabelled_frames(server):
    client, _, root = server
    h = headers()
    client.post("/api/clips/clip_a/open", headers=h, json={})
    client.post("/api/clips/clip_a/points", headers=h, json={"frame": "00000", "points": [[10, 10]], "labels": [1]})
    response = client.post("/api/clips/clip_a/save", headers=h, json={})
    assert response.status_code == 409 and response.json()["code"] == "unlabelled"
    assert len(response.json()["frames"]) == T - 1 and not (root / "Annotations" / "clip_a").exists()
    assert client.post("/api/clips/clip_a/save", headers=h, json={"allow_unlabelled": True}).status_code == 200


def test_busy_while_propagating(dataset):
    client, app = make_client(dataset, OracleSegmenter(GT, delay=0.1))
    h = headers()
    client.post("/api/clips/clip_a/open", headers=h, json={})
    client.post("/api/clips/clip_a/points", headers=h, json={"frame": "00000", "points": [[10, 10]], "labels": [1]})
    client.post("/api/clips/clip_a/propagate", headers=h, json={"frame": "00000", "direction": "forward"})
    busy = client.post(
        "/api/clips/clip_a/points", headers=h, json={"frame": "00003", "points": [[10, 10]], "labels": [1]}
    )
    assert busy.status_code == 409 and busy.json()["code"] == "busy" and "cancel" in busy.json()["hint"]
    assert client.post("/api/clips/clip_a/save", headers=h, json={}).json()["code"] == "busy"
    # Scrubbing and painting still work during the job.
    assert client.get("/api/clips/clip_a/overlay/00005.png", headers=h).status_code == 200
    assert (
        client.post(
            "/api/clips/clip_a/stroke",
            headers=h,
            json={"frame": "00009", "layer": "target", "mode": "paint", "radius": 2, "points": [[3, 3]]},
        ).status_code
        == 200
    )
    state = client.post("/api/clips/clip_a/cancel", headers=h).json()
    state = wait_job(client)
    assert state["job"]["state"] == "cancelled"
    registry_of(app).shutdown()


# -- locks ---------------------------------------------------------------------------------------


def test_a_second_tab_needs_an_explicit_takeover(server):
    client, _, _ = server
    one, two = headers("tab-1"), headers("tab-2")
    assert client.post("/api/clips/clip_a/open", headers=one, json={}).status_code == 200
    refused = client.post("/api/clips/clip_a/open", headers=two, json={})
    assert refused.status_code == 409 and refused.json()["code"] == "locked"
    assert refused.json()["lock"]["can_take_over"] is True
    edit = client.post(
        "/api/clips/clip_a/stroke",
        headers=two,
        json={"frame": "00000", "layer": "target", "mode": "paint", "radius": 2, "points": [[3, 3]]},
    )
    assert edit.status_code == 409 and edit.json()["code"] == "not_owner"
    assert client.post("/api/clips/clip_a/open", headers=two, json={"take_over": True}).status_code == 200
    lost = client.post(
        "/api/clips/clip_a/stroke",
        headers=one,
        json={"frame": "00000", "layer": "target", "mode": "paint", "radius": 2, "points": [[3, 3]]},
    )
    assert lost.status_code == 409 and lost.json()["code"] == "not_owner"
    # A tab opening another clip releases the one it had.
    client.post("/api/clips/clip_b/open", headers=two, json={})
    assert client.post("/api/clips/clip_a/open", headers=one, json={}).status_code == 200


def test_a_closed_tab_leaves_the_clip_to_the_next_one(server):
    client, _, root = server
    one, two, three = headers("tab-1"), headers("tab-2"), headers("tab-3")
    client.post("/api/clips/clip_a/open", headers=one, json={})
    client.post("/api/clips/clip_a/points", headers=one, json={"frame": "00005", "points": [[60, 36]], "labels": [1]})
    # The page reports that tab 1 went away (closed or reloaded); a reload of it takes the clip back.
    assert client.post("/api/clips/clip_a/release", headers=one).status_code == 200
    assert client.post("/api/clips/clip_a/open", headers=one, json={}).status_code == 200
    client.post("/api/clips/clip_a/release", headers=one)
    listed = {c["id"]: c for c in client.get("/api/clips", headers=two).json()["clips"]}["clip_a"]
    assert not listed["open_elsewhere"]
    # Another tab (working on clip_b) now opens it without a takeover, with the work and the undo
    # history in place; clip_b, which that tab leaves, is closed and unlocked.
    client.post("/api/clips/clip_b/open", headers=two, json={})
    assert (root / ".refvps-annotate" / "clip_b" / "lock.json").exists()
    opened = client.post("/api/clips/clip_a/open", headers=two, json={})
    assert opened.status_code == 200 and opened.json()["state"]["undo"].startswith("clicks on 00005")
    assert not (root / ".refvps-annotate" / "clip_b" / "lock.json").exists()
    assert client.post("/api/clips/clip_a/undo", headers=two).status_code == 200
    assert client.get("/api/clips/clip_a/state", headers=one).json()["code"] == "not_owner"
    # A tab that is still there is not pushed aside without asking, and the refusal says how recent it is.
    refused = client.post("/api/clips/clip_a/open", headers=three, json={})
    assert refused.status_code == 409 and "another tab" in refused.json()["error"]
    assert "last active" in refused.json()["error"] and refused.json()["lock"]["can_take_over"]
    # Releasing someone else's clip does nothing.
    client.post("/api/clips/clip_a/release", headers=three)
    assert client.post("/api/clips/clip_a/open", headers=three, json={}).status_code == 409


def test_clip_list_shows_every_clips_validation(server):
    client, _, root = server
    h = headers()

    def listed():
        for _ in range(200):
            clips = {c["id"]: c for c in client.get("/api/clips", headers=h).json()["clips"]}
            if not any(c["validation_pending"] for c in clips.values()):
                return clips
            time.sleep(0.05)
        raise AssertionError("validation did not finish")

    # Neither clip was ever opened here: both are checked in the background.
    clips = listed()
    assert clips["clip_b"]["validation"]["ok"] is True  # written complete and valid
    assert clips["clip_a"]["validation"]["ok"] is False  # no masks, no expressions
    assert clips["clip_a"]["validation"]["errors"] >= 2
    # A mask of clip_b disappears behind the tool's back: the list notices.
    (root / "Annotations" / "clip_b" / "00004.png").unlink()
    clips = listed()
    assert clips["clip_b"]["validation"]["ok"] is False and clips["clip_b"]["masks_saved"] == T - 1


def test_another_running_session_holds_the_clip(dataset):
    import subprocess
    import sys

    first, app1 = make_client(dataset)
    assert first.post("/api/clips/clip_a/open", headers=headers(), json={}).status_code == 200
    lock_file = dataset / ".refvps-annotate" / "clip_a" / "lock.json"
    # Make the lock look like another live process's: it cannot be taken over, even when asked.
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        data = json.loads(lock_file.read_text())
        data.update(pid=holder.pid, owner="other-server")
        lock_file.write_text(json.dumps(data))
        second, app2 = make_client(dataset)
        for body in ({}, {"take_over": True}):
            refused = second.post("/api/clips/clip_a/open", headers=headers("tab-x"), json=body)
            assert refused.status_code == 409
            assert refused.json()["lock"]["can_take_over"] is False and "close the clip" in refused.json()["hint"]
        listed = {c["id"]: c for c in second.get("/api/clips", headers=headers("tab-x")).json()["clips"]}
        assert listed["clip_a"]["locked"]["stale"] is False
        # The holder dies: the lock is stale, a takeover is offered and works when asked for.
        holder.kill()
        holder.wait()
        refused = second.post("/api/clips/clip_a/open", headers=headers("tab-x"), json={})
        assert refused.status_code == 409 and refused.json()["lock"]["stale"] is True
        assert (
            second.post("/api/clips/clip_a/open", headers=headers("tab-x"), json={"take_over": True}).status_code == 200
        )
        registry_of(app2).shutdown()
    finally:
        holder.kill()
        registry_of(app1).shutdown()


def test_restore_after_restart(dataset):
    client, app = make_client(dataset)
    h = headers()
    client.post("/api/clips/clip_a/open", headers=h, json={})
    client.post(
        "/api/clips/clip_a/points", headers=h, json={"frame": "00005", "points": [list(blob_center(5))], "labels": [1]}
    )
    client.post("/api/clips/clip_a/propagate", headers=h, json={"frame": "00005", "direction": "both"})
    wait_job(client)
    client.post(
        "/api/clips/clip_a/stroke",
        headers=h,
        json={"frame": "00002", "layer": "ignore", "mode": "paint", "radius": 4, "points": [[40, 40]]},
    )
    client.put(
        "/api/clips/clip_a/expressions", headers=h, json={"annotators": ["x", "y"], "expressions": ["a b", "", "", ""]}
    )
    before = client.get("/api/clips/clip_a/state", headers=h).json()
    overlays = [client.get(f"/api/clips/clip_a/overlay/{n}.png", headers=h).content for n in before["frames"]]
    # The server is killed (no shutdown): its lock stays behind, held by this (live) process.
    del client, app
    client2, app2 = make_client(dataset)
    h2 = headers("tab-new")
    refused = client2.post("/api/clips/clip_a/open", headers=h2, json={})
    assert refused.status_code == 409 and refused.json()["lock"]["can_take_over"]
    state = client2.post("/api/clips/clip_a/open", headers=h2, json={"take_over": True}).json()["state"]
    for key in ("status", "prompts", "annotators", "expressions", "revision"):
        assert state[key] == before[key], key
    assert any("restored" in note for note in state["notes"])
    assert [client2.get(f"/api/clips/clip_a/overlay/{n}.png", headers=h2).content for n in state["frames"]] == overlays
    # A clean stop releases the lock; the next start opens without asking.
    registry_of(app2).shutdown()
    client3, app3 = make_client(dataset)
    assert client3.post("/api/clips/clip_a/open", headers=h2, json={}).status_code == 200
    registry_of(app3).shutdown()


# -- ids, paths and sizes ------------------------------------------------------------------------


def test_clip_ids_and_frame_names_cannot_escape(server):
    client, _, root = server
    h = headers()
    client.post("/api/clips/clip_a/open", headers=h, json={})
    assert client.get("/api/clips/%2E%2E/frames/00000.jpg", headers=h).status_code == 400
    assert client.post("/api/clips/%2E%2E/open", headers=h, json={}).status_code == 400
    assert client.get("/api/clips/..%2FJPEGImages%2Fclip_a/frames/00000.jpg", headers=h).status_code == 404
    assert client.get("/api/clips/nope/frames/00000.jpg", headers=h).json()["code"] == "no_clip"
    assert client.get("/api/clips/clip_a/frames/99999.jpg", headers=h).json()["code"] == "no_frame"
    assert client.get("/api/clips/clip_a/frames/..%2F..%2Fmeta_expressions.jpg", headers=h).status_code == 404
    bad_frame = client.post(
        "/api/clips/clip_a/points", headers=h, json={"frame": "../00000", "points": [], "labels": []}
    )
    assert bad_frame.status_code == 404
    assert (
        client.post(
            "/api/clips/clip_a/open", headers={"X-Refvps-Token": TOKEN, "X-Refvps-Client": "../x"}, json={}
        ).status_code
        == 400
    )


def test_unsafe_clip_ids_in_the_dataset_are_not_opened(dataset):
    rgb, _ = blob_clip(frames=2)
    DatasetWriter(dataset).update_expressions("../evil", [], frames=["00000"])
    client, app = make_client(dataset)
    clips = {c["id"]: c for c in client.get("/api/clips", headers=headers()).json()["clips"]}
    assert clips["../evil"]["openable"] is False
    assert client.post("/api/clips/..%2Fevil/open", headers=headers(), json={}).status_code in (400, 404)
    assert not (dataset.parent / "evil").exists()
    registry_of(app).shutdown()


def test_request_bodies_are_bounded_and_checked(server):
    client, _, _ = server
    h = headers()
    client.post("/api/clips/clip_a/open", headers=h, json={})
    big = client.post(
        "/api/clips/clip_a/stroke", headers={**h, "content-type": "application/json"}, content=b" " * (3 << 20)
    )
    assert big.status_code == 413

    def chunks():
        for _ in range(40):
            yield b" " * (100 << 10)

    streamed = client.post(
        "/api/clips/clip_a/stroke", headers={**h, "content-type": "application/json"}, content=chunks()
    )
    assert streamed.status_code == 413
    nan = client.post(
        "/api/clips/clip_a/stroke",
        headers={**h, "content-type": "application/json"},
        content=b'{"frame": "00000", "layer": "target", "mode": "paint", "radius": 3, "points": [[NaN, 1]]}',
    )
    assert nan.status_code == 422 and "finite" in nan.json()["error"]
    too_many = client.post(
        "/api/clips/clip_a/points", headers=h, json={"frame": "00000", "points": [[1, 1]] * 201, "labels": [1] * 201}
    )
    assert too_many.status_code == 422
    wrong = client.post(
        "/api/clips/clip_a/stroke",
        headers=h,
        json={"frame": "00000", "layer": "sky", "mode": "paint", "radius": 3, "points": [[1, 1]]},
    )
    assert wrong.status_code == 422 and "layer" in wrong.json()["error"]
    outside = client.post(
        "/api/clips/clip_a/points", headers=h, json={"frame": "00000", "points": [[900, 1]], "labels": [1]}
    )
    assert outside.status_code == 400 and "outside" in outside.json()["error"]
    extra = client.put(
        "/api/clips/clip_a/expressions",
        headers=h,
        json={"annotators": ["a", "b"], "expressions": ["", "", "", ""], "x": 1},
    )
    assert extra.status_code == 422


def test_classic_segmenter_behind_the_api(dataset):
    client, app = make_client(dataset, ClassicSegmenter())
    h = headers()
    info = client.get("/api/info", headers=h).json()
    assert info["segmenter"]["name"] == "classic" and info["segmenter"]["fallback"] is True
    assert "SAM2 is the real tool" in info["segmenter"]["description"]
    client.post("/api/clips/clip_a/open", headers=h, json={})
    mid = T // 2
    client.post(
        "/api/clips/clip_a/points",
        headers=h,
        json={"frame": f"{mid:05d}", "points": [list(blob_center(mid))], "labels": [1]},
    )
    client.post("/api/clips/clip_a/propagate", headers=h, json={"frame": f"{mid:05d}", "direction": "both"})
    assert wait_job(client)["job"]["state"] == "done"
    registry_of(app).shutdown()


def test_a_clip_whose_validation_breaks_is_not_left_pending(dataset, monkeypatch):
    import refvps.annotate.verdicts as verdicts_module

    def broken(*args, **kwargs):
        raise RuntimeError("validator crashed")

    monkeypatch.setattr(verdicts_module, "validate_clip", broken)
    client, app = make_client(dataset)
    for _ in range(200):
        clips = {c["id"]: c for c in client.get("/api/clips", headers=headers()).json()["clips"]}
        if not any(c["validation_pending"] for c in clips.values()):
            break
        time.sleep(0.05)
    for clip in clips.values():
        assert clip["validation"]["ok"] is False and "validator crashed" in clip["validation"]["error"]
    registry_of(app).shutdown()


def test_a_clip_is_validated_once_while_the_list_keeps_asking(dataset, monkeypatch):
    """The page polls the clip list while a verdict is pending; a clip being validated is not
    queued again, so a slow validation runs once, and its verdict is then served."""
    import threading

    import refvps.annotate.verdicts as server
    from refvps.annotate.verdicts import clip_fingerprint
    from refvps.dataset import Dataset

    calls, release = [], threading.Event()
    real_validate = server.validate_clip

    def slow_validate(root, clip_id, **kwargs):
        calls.append(clip_id)
        release.wait(10)
        return real_validate(root, clip_id, **kwargs)

    monkeypatch.setattr(server, "validate_clip", slow_validate)
    verdicts = server.Verdicts(dataset, refvps_rules=True)
    try:
        fingerprint = clip_fingerprint(Dataset(dataset), "clip_b")
        assert verdicts.get("clip_b", fingerprint) is None
        deadline = time.time() + 10
        while not calls and time.time() < deadline:
            time.sleep(0.01)
        for _ in range(20):  # polls while the first validation is still running
            assert verdicts.get("clip_b", fingerprint) is None
        release.set()
        verdict = None
        while verdict is None and time.time() < deadline:
            time.sleep(0.02)
            verdict = verdicts.get("clip_b", fingerprint)
        assert verdict is not None and verdict["ok"] and calls == ["clip_b"]
    finally:
        release.set()
        verdicts.stop()


def test_the_dataset_is_parsed_again_only_when_an_index_file_changes(server):
    """Frame requests reuse the parsed index; an edit of meta_expressions.json (as another tool or a
    save makes it) is seen by the next request."""
    _, app, root = server
    workspace = registry_of(app)
    first = workspace.dataset()
    assert workspace.dataset() is first
    DatasetWriter(root).update_expressions("clip_a", [EXPRESSIONS[0]])
    second = workspace.dataset()
    assert second is not first
    assert [e.text for e in second.clip("clip_a").expressions] == [EXPRESSIONS[0].text]


def test_review_between_and_overlay_styles_through_the_api(server):
    client, _, _ = server
    h = headers()
    client.post("/api/clips/clip_a/open", headers=h, json={})
    for frame in ("00002", "00007"):
        x, y = blob_center(int(frame))
        client.post("/api/clips/clip_a/points", headers=h, json={"frame": frame, "points": [[x, y]], "labels": [1]})
    state = client.post("/api/clips/clip_a/reviewed", headers=h, json={"frame": "00004"}).json()
    assert state["reviewed"] == [i in (2, 4, 7) for i in range(T)] and state["reviewed_count"] == 3
    state = client.post("/api/clips/clip_a/reviewed", headers=h, json={"frame": "00004", "reviewed": False}).json()
    assert state["reviewed_count"] == 2 and state["undo"] == "mark 00004 not reviewed"
    state = client.post(
        "/api/clips/clip_a/propagate", headers=h, json={"frame": "00005", "direction": "between"}
    ).json()
    assert state["job"]["mode"] == "between" and state["job"]["stretches"] == [[2, 7]]
    state = wait_job(client)
    assert state["status"][3:7] == ["propagated"] * 4 and state["status"][0] == "empty"  # only between 2 and 7
    assert (
        client.post("/api/clips/clip_a/propagate", headers=h, json={"frame": "00005", "direction": "auto"}).status_code
        == 422
    )
    layers = {}
    for style in ("fill", "outline", "hatch"):
        response = client.get(f"/api/clips/clip_a/overlay/00002.png?style={style}", headers=h)
        assert response.status_code == 200
        layers[style] = overlay_layers(response.content)[0]
    assert layers["fill"].sum() > layers["hatch"].sum() > layers["outline"].sum() > 0
    assert client.get("/api/clips/clip_a/overlay/00002.png?style=neon", headers=h).status_code == 422
    state = client.post("/api/clips/clip_a/copy_ignore", headers=h, json={"frame": "00000", "to": "previous"}).json()
    assert state["undo"] != "copy Ignore from 00000 to 0 frames"  # nothing before the first frame: no edit


def test_info_names_the_fallback_and_what_was_recovered(dataset):
    from refvps.dataset import transaction

    (dataset / "Annotations" / ".refvps-save.clip_b").mkdir()  # a save abandoned before its commit point
    client, app = make_client(dataset, ClassicSegmenter())
    info = client.get("/api/info", headers=headers()).json()
    assert info["segmenter"]["fallback"] is True
    assert info["recovered"] == [
        "rolled back an unfinished save of clip clip_b (nothing had changed; its previous masks are kept)"
    ]
    assert not transaction.save_dir(dataset, "clip_b").exists()
    registry_of(app).shutdown()


def test_converted_clips_the_tool_would_save_wrong_are_refused_with_the_reason(tmp_path):
    from refvps.convert import convert
    from tests.convert import official

    # Ref-YouTube-VOS train: 2 of 3 frames annotated. MeViS: mv001's expressions are unions of labels,
    # mv002's one expression is label 1 and its masks hold nothing else.
    convert("ref-ytvos", official.write_ref_ytvos(tmp_path / "yt").root, tmp_path / "ytvos", split="train")
    convert("mevis", official.write_mevis(tmp_path / "mv").root, tmp_path / "mevis")
    cases = [("ytvos", "vtrain01", "2 of its 3 frames only"), ("mevis", "mv001", "other than 1")]
    for root, clip_id, reason in cases:
        before = files_snapshot(tmp_path / root)
        client, app = make_client(tmp_path / root)
        clips = {c["id"]: c for c in client.get("/api/clips", headers=headers()).json()["clips"]}
        assert clips[clip_id]["openable"] is False and reason in clips[clip_id]["refusal"]
        for _ in range(2):  # refused again, not locked by the first try
            response = client.post(f"/api/clips/{clip_id}/open", headers=headers(), json={})
            assert response.status_code == 422 and reason in response.json()["error"], response.json()
            assert "refvps convert" in response.json()["hint"]
        if root == "mevis":
            assert clips["mv002"]["openable"] and clips["mv002"]["refusal"] is None
        registry_of(app).shutdown()
        assert files_snapshot(tmp_path / root) == before  # nothing in the dataset changed
