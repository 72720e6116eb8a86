"""``refvps annotate``: headless labelling from a clicks file, option checks, and the real server."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from refvps.cli import main
from refvps.dataset.palette import read_label_png
from refvps.dataset.validate import validate_dataset
from tests.annotate.conftest import T, blob_center, blob_clip

_, GT = blob_clip()


def run(*args):
    """Run the CLI in this process; return (exit code, stdout, stderr)."""
    try:
        main(list(args))
    except SystemExit as exc:
        return exc.code
    return 0


def write_clicks(path, entries):
    path.write_text(json.dumps(entries))
    return path


def test_headless_clicks_propagate_save(dataset, tmp_path, capsys):
    from refvps.dataset import DatasetWriter
    from tests.annotate.conftest import EXPRESSIONS

    DatasetWriter(dataset).update_expressions("clip_a", EXPRESSIONS)  # written earlier; must survive
    mid = T // 2
    x, y = blob_center(mid)
    clicks = write_clicks(
        tmp_path / "clicks.json",
        [
            {"frame": f"{mid:05d}", "points": [[x, y], [x + 6, y]], "labels": [1, 1], "obj_id": 1},
            {"frame": f"{mid:05d}", "points": [[5, 5]], "labels": [0]},
        ],
    )
    code = run("annotate", str(dataset), "--clip", "clip_a", "--clicks", str(clicks), "--no-ui", "--json")
    out = capsys.readouterr()
    assert code == 0, out.err
    result = json.loads(out.out)
    assert result["segmenter"] == "classic" and result["written"] == T and result["clicked_frames"] == [f"{mid:05d}"]
    ious = []
    for t in range(T):
        label = read_label_png(dataset / "Annotations" / "clip_a" / f"{t:05d}.png")
        assert set(np.unique(label)) <= {0, 1}
        pred, gt = label == 1, GT[t] == 1
        ious.append((pred & gt).sum() / (pred | gt).sum())
    assert min(ious) > 0.7, ious
    # Both clicks entries were applied to the same frame, in order.
    session = json.loads((dataset / ".refvps-annotate" / "clip_a" / "session.json").read_text())
    assert session["prompts"][str(mid)]["labels"] == [1, 1, 0]
    assert not (dataset / ".refvps-annotate" / "clip_a" / "lock.json").exists()
    assert result["valid"] is True and validate_dataset(dataset, clips=["clip_a"], refvps_rules=True).ok
    entry = json.loads((dataset / "meta_expressions.json").read_text())["videos"]["clip_a"]
    assert [entry["expressions"][k]["exp"] for k in "0123"] == [e.text for e in EXPRESSIONS]

    # Running again would replace the saved masks: it needs --overwrite.
    assert run("annotate", str(dataset), "--clip", "clip_a", "--clicks", str(clicks), "--no-ui") == 2
    assert "--overwrite" in capsys.readouterr().err
    assert run("annotate", str(dataset), "--clip", "clip_a", "--clicks", str(clicks), "--no-ui", "--overwrite") == 0


@pytest.mark.parametrize(
    "content,message",
    [
        ([{"frame": "00099", "points": [[1, 1]], "labels": [1]}], "no frame '00099'"),
        ([{"frame": 10, "points": [[1, 1]], "labels": [1]}], "no frame 10"),
        ([{"frame": "5", "points": [[1, 1]], "labels": [1]}], "no frame '5'"),
        ([{"frame": "00001", "points": [[1, 1], [2, 2]], "labels": [1]}], "labels must list"),
        ([{"frame": "00001", "points": [[1, 1]], "labels": [True]}], "labels must list"),
        ([{"frame": "00001", "points": [[1, 1]], "labels": [1], "obj_id": 2}], "one target"),
        ([{"frame": "00001", "points": [[500, 1]], "labels": [1]}], "outside the 128x72 frame"),
        ([{"frame": "00001", "points": [[-0.5, 1]], "labels": [1]}], "outside the 128x72 frame"),
        ([{"frame": "00001", "points": [[1, "2"]], "labels": [1]}], "[x, y] pixel coordinates"),
        ([{"frame": "00001", "points": [[1, 2, 3]], "labels": [1]}], "[x, y] pixel coordinates"),
        ('[{"frame": "00001", "points": [[NaN, 2]], "labels": [1]}]', "finite numbers"),
        ([{"frame": "00001", "points": [[1, 1]], "labels": [0]}], "no positive click"),
        ([{"frame": "00001", "points": [[1, 1]], "labels": [1], "colour": "red"}], "unknown keys"),
        ([], "non-empty"),
        ({"frame": "00001"}, "non-empty JSON list"),
        ('[{"frame": "00001", "points": [[1, 1]]', "does not parse"),
        (b"\xff\xfe[", "does not parse"),
        (None, "cannot read the clicks file"),  # a folder
    ],
)
def test_bad_clicks_files_are_explained(dataset, tmp_path, capsys, content, message):
    clicks = tmp_path / "clicks.json"
    if content is None:
        clicks.mkdir()
    elif isinstance(content, bytes):
        clicks.write_bytes(content)
    else:
        clicks.write_text(content if isinstance(content, str) else json.dumps(content))
    code = run("annotate", str(dataset), "--clip", "clip_a", "--clicks", str(clicks), "--no-ui")
    err = capsys.readouterr().err
    assert code == 2 and message in err and "clicks.json" in err, err
    assert "Error:" in err and "Hint:" in err and "Traceback" not in err
    assert "segmenter:" not in err  # refused before a model is loaded
    assert not (dataset / "Annotations" / "clip_a").exists()
    assert not (dataset / ".refvps-annotate" / "clip_a").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--no-ui", "--clip", "clip_a"], "--no-ui needs"),
        (["--clicks", "c.json", "--clip", "clip_a"], "--no-ui"),
        (["--host", "0.0.0.0"], "--allow-remote"),
        (["--checkpoint", "x.pt", "--segmenter", "classic"], "no checkpoint"),
        (["--clip", "nope"], "not in"),
        (["--segmenter", "hf-sam2"], "needs --checkpoint"),
        (["--segmenter", "sam2", "--checkpoint", "missing.pt"], "not found"),
        (["--overwrite"], "--no-ui only"),
    ],
)
def test_option_errors(dataset, capsys, args, message):
    code = run("annotate", str(dataset), "--no-open", *args)
    err = capsys.readouterr().err
    assert code in (1, 2) and message in err and "Traceback" not in err, err


def test_unsaved_session_is_not_discarded_silently(dataset, tmp_path, capsys):
    from refvps.annotate.segmenters.classic import ClassicSegmenter
    from refvps.annotate.session import ClipSession
    from refvps.dataset import Dataset

    session = ClipSession(dataset, Dataset(dataset).clip("clip_a"), ClassicSegmenter())
    session.stroke(0, "target", "paint", 3, [[5, 5]])
    session.close()
    clicks = write_clicks(tmp_path / "c.json", [{"frame": "00005", "points": [list(blob_center(5))], "labels": [1]}])
    assert run("annotate", str(dataset), "--clip", "clip_a", "--clicks", str(clicks), "--no-ui") == 2
    assert "unsaved work" in capsys.readouterr().err
    assert (
        run("annotate", str(dataset), "--clip", "clip_a", "--clicks", str(clicks), "--no-ui", "--discard-session") == 0
    )
    moved = [p for p in (dataset / ".refvps-annotate").iterdir() if p.name.startswith("clip_a.old-")]
    assert len(moved) == 1 and (moved[0] / "layers" / "00000.png").exists()  # moved aside, not deleted


def start_server(dataset, *options, clip="clip_a"):
    """``refvps annotate`` in a child process; returns it, its base URL and its token once it answers."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("REFVPS_ANNOTATE_TOKEN", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "refvps", "annotate", str(dataset), "--port", "0", "--no-open"]
        + (["--clip", clip] if clip else [])
        + list(options),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    url = None
    deadline = time.time() + 60
    while time.time() < deadline and url is None:
        match = re.search(r"(http://127\.0\.0\.1:\d+/\?token=[\w-]+)", process.stdout.readline())
        if match:
            url = match.group(1)
    assert url, "no URL printed"
    for _ in range(50):
        try:
            page = urllib.request.urlopen(url, timeout=5).read().decode()
            break
        except OSError:
            time.sleep(0.1)
    base, token = url.split("/?token=")
    assert token in page and "refvps annotate" in page
    return process, base, token


def call(base, token, method, path, body=None, client="tab-1"):
    """One API request; returns (status, JSON body)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        base + path,
        data=data,
        method=method,
        headers={"X-Refvps-Token": token, "X-Refvps-Client": client, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_server_starts_on_loopback_with_a_token_and_stops_cleanly(dataset):
    process, base, token = start_server(dataset)
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + "/api/info", timeout=5)
        assert refused.value.code == 403
        status, opened = call(base, token, "POST", "/api/clips/clip_a/open", {})
        assert status == 200 and opened["state"]["middle"] == T // 2
        assert (dataset / ".refvps-annotate" / "clip_a" / "lock.json").exists()
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "stopped" in err
    assert not (dataset / ".refvps-annotate" / "clip_a" / "lock.json").exists()


def test_work_survives_kill_9_and_sigterm_stops_cleanly(dataset):
    lock_file = dataset / ".refvps-annotate" / "clip_a" / "lock.json"
    first, base, token = start_server(dataset)
    try:
        call(base, token, "POST", "/api/clips/clip_a/open", {})
        call(base, token, "POST", "/api/clips/clip_a/points", {"frame": "00005", "points": [[55, 36]], "labels": [1]})
        call(
            base,
            token,
            "POST",
            "/api/clips/clip_a/stroke",
            {"frame": "00002", "layer": "ignore", "mode": "paint", "radius": 4, "points": [[20, 20], [30, 25]]},
        )
        call(
            base,
            token,
            "PUT",
            "/api/clips/clip_a/expressions",
            {"annotators": ["ann1", "ann2"], "expressions": ["the orange blob", "", "", ""]},
        )
        _, before = call(base, token, "GET", "/api/clips/clip_a/state")
        overlay = urllib.request.urlopen(f"{base}/api/clips/clip_a/overlay/00002.png?token={token}").read()
    finally:
        first.kill()  # SIGKILL: no chance to clean up
        first.communicate(timeout=30)
    assert json.loads(lock_file.read_text())["pid"] == first.pid  # left behind, its process dead

    second, base, token = start_server(dataset)
    try:
        status, refused = call(base, token, "POST", "/api/clips/clip_a/open", {}, client="tab-2")
        assert status == 409 and refused["lock"]["stale"] is True and refused["lock"]["can_take_over"] is True
        status, opened = call(base, token, "POST", "/api/clips/clip_a/open", {"take_over": True}, client="tab-2")
        assert status == 200
        for key in ("status", "prompts", "annotators", "expressions", "revision", "dirty"):
            assert opened["state"][key] == before[key], key
        assert urllib.request.urlopen(f"{base}/api/clips/clip_a/overlay/00002.png?token={token}").read() == overlay
        assert json.loads(lock_file.read_text())["pid"] == second.pid
    finally:
        second.send_signal(signal.SIGTERM)  # what kill, systemd and docker stop send
        out, err = second.communicate(timeout=30)
    assert second.returncode == 0 and "stopped" in err, err
    assert not lock_file.exists()


def stop(process) -> str:
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    return err


def test_the_token_is_kept_across_restarts_beside_the_session_files(dataset):
    """Open pages keep working after a restart (today every start printed a new token)."""
    first, _, token = start_server(dataset)
    stop(first)
    second, base, again = start_server(dataset)
    try:
        assert again == token
        assert call(base, token, "POST", "/api/clips/clip_a/open", {})[0] == 200  # an open page's token works
    finally:
        stop(second)
    stored = dataset / ".refvps-annotate" / "token"
    assert stored.read_text().strip() == token and stored.stat().st_mode & 0o777 == 0o600
    for index in ("meta_expressions.json", "clips.json"):
        assert token not in (dataset / index).read_text()  # never in the dataset's own files
    third, _, renewed = start_server(dataset, "--new-token")
    stop(third)
    assert renewed != token and stored.read_text().strip() == renewed


def test_take_over_lock_without_clip_takes_every_stale_lock(dataset):
    """--take-over-lock without --clip applies to every clip (today it was silently ignored)."""
    import socket

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    locks = {}
    for clip in ("clip_a", "clip_b"):
        locks[clip] = dataset / ".refvps-annotate" / clip / "lock.json"
        locks[clip].parent.mkdir(parents=True)
        holder = {"owner": "x", "pid": dead.pid, "host": socket.gethostname(), "user": "u", "started": 1.0}
        locks[clip].write_text(json.dumps({**holder, "heartbeat": time.time()}))
    process, base, token = start_server(dataset, "--take-over-lock", clip=None)
    try:
        assert not locks["clip_a"].exists() and not locks["clip_b"].exists()
        assert call(base, token, "POST", "/api/clips/clip_b/open", {})[0] == 200  # opens without asking
    finally:
        err = stop(process)
    assert "took over the stale locks of: clip_a, clip_b" in err


def test_recover_finishes_an_interrupted_save(dataset, capsys, monkeypatch):
    from refvps.dataset import transaction

    def crash(*args):
        raise OSError("killed (simulated)")

    label = read_label_png(dataset / "Annotations" / "clip_b" / "00000.png")
    label[:4, :4] = 255
    monkeypatch.setattr(transaction, "_finish", crash)
    with pytest.raises(OSError):
        with transaction.ClipSave(dataset, "clip_b") as save:
            for t in range(T):
                save.write_label(f"{t:05d}", label)
            save.commit([])
    monkeypatch.undo()
    assert not validate_dataset(dataset, clips=["clip_b"]).ok  # the interrupted save is an error until finished
    assert run("annotate", str(dataset), "--recover") == 0
    said = capsys.readouterr()
    assert "finished the interrupted save of clip clip_b" in said.out
    assert "finished" not in said.err  # said once
    assert read_label_png(dataset / "Annotations" / "clip_b" / "00003.png")[0, 0] == 255
    assert run("annotate", str(dataset), "--recover") == 0
    assert "nothing to recover" in capsys.readouterr().out


def test_headless_refusals_come_before_the_segmenter_is_loaded(dataset, tmp_path, capsys, monkeypatch):
    """Loading SAM2 can take a minute: a clip that is locked, or whose saved masks or unsaved session the
    run would replace, is refused before it."""
    import socket

    from refvps.annotate import segmenters

    def never(*args, **kwargs):
        raise AssertionError("the segmenter was loaded before the refusal")

    monkeypatch.setattr(segmenters, "build_segmenter", never)
    clicks = write_clicks(tmp_path / "c.json", [{"frame": "00005", "points": [list(blob_center(5))], "labels": [1]}])
    headless = ("annotate", str(dataset), "--clicks", str(clicks), "--no-ui")
    assert run(*headless, "--clip", "clip_b") == 2  # clip_b has saved masks
    assert "--overwrite" in capsys.readouterr().err
    lock = dataset / ".refvps-annotate" / "clip_a" / "lock.json"
    lock.parent.mkdir(parents=True)
    holder = {"owner": "x", "host": socket.gethostname(), "user": "u", "started": 1.0, "heartbeat": time.time()}
    lock.write_text(json.dumps({**holder, "pid": os.getpid()}))  # a live process holds it
    assert run(*headless, "--clip", "clip_a", "--take-over-lock") != 0
    err = capsys.readouterr().err
    assert "is open in another session" in err and "Traceback" not in err, err
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(json.dumps({**holder, "pid": dead.pid}))  # a dead one: taken over only when asked
    assert run(*headless, "--clip", "clip_a") != 0
    assert "--take-over-lock" in capsys.readouterr().err


def test_headless_says_what_it_found_and_where_the_previous_session_went(dataset, tmp_path, capsys):
    x, y = blob_center(5)
    clicks = write_clicks(tmp_path / "c.json", [{"frame": "00005", "points": [[x, y]], "labels": [1]}])
    headless = ("annotate", str(dataset), "--clip", "clip_a", "--clicks", str(clicks), "--no-ui", "--overwrite")
    assert run(*headless, "--json") == 0
    assert json.loads(capsys.readouterr().out)["notes"] == []
    assert run(*headless, "--json") == 0  # the first run's session (saved, with its edit log) is moved aside
    notes = json.loads(capsys.readouterr().out)["notes"]
    moved = [p for p in (dataset / ".refvps-annotate").iterdir() if p.name.startswith("clip_a.old-")]
    assert len(moved) == 1 and any(n.startswith(f"previous session moved to {moved[0]} ") for n in notes), notes
    assert run(*headless) == 0
    assert "previous session moved to" in capsys.readouterr().err


def test_a_damaged_frame_stops_headless_propagation_with_its_own_hint(dataset, tmp_path, capsys):
    frame = dataset / "JPEGImages" / "clip_a" / "00008.jpg"
    frame.write_bytes(frame.read_bytes()[: len(frame.read_bytes()) // 3])  # truncated
    clicks = write_clicks(tmp_path / "c.json", [{"frame": "00005", "points": [list(blob_center(5))], "labels": [1]}])
    assert run("annotate", str(dataset), "--clip", "clip_a", "--clicks", str(clicks), "--no-ui") == 1
    err = capsys.readouterr().err
    assert "00008.jpg" in err and "Hint: re-export the clip's frames" in err, err  # not "try another segmenter"
    assert not (dataset / "Annotations" / "clip_a").exists()  # nothing saved
