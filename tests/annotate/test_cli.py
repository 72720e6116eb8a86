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
    clicks = write_clicks(tmp_path / "clicks.json", [
        {"frame": f"{mid:05d}", "points": [[x, y], [x + 6, y]], "labels": [1, 1], "obj_id": 1},
        {"frame": f"{mid:05d}", "points": [[5, 5]], "labels": [0]},
    ])
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


@pytest.mark.parametrize("entries,message", [
    ([{"frame": "00099", "points": [[1, 1]], "labels": [1]}], "no frame"),
    ([{"frame": "00001", "points": [[1, 1], [2, 2]], "labels": [1]}], "labels must list"),
    ([{"frame": "00001", "points": [[1, 1]], "labels": [1], "obj_id": 2}], "one target"),
    ([{"frame": "00001", "points": [[500, 1]], "labels": [1]}], "outside"),
    ([{"frame": "00001", "points": [[1, 1]], "labels": [1], "colour": "red"}], "unknown keys"),
    ([], "non-empty"),
])
def test_bad_clicks_files_are_explained(dataset, tmp_path, capsys, entries, message):
    clicks = write_clicks(tmp_path / "clicks.json", entries)
    code = run("annotate", str(dataset), "--clip", "clip_a", "--clicks", str(clicks), "--no-ui")
    err = capsys.readouterr().err
    assert code == 2 and message in err and "clicks.json" in err and "Traceback" not in err
    assert not (dataset / "Annotations" / "clip_a").exists()
    assert not (dataset / ".refvps-annotate" / "clip_a" / "lock.json").exists()


@pytest.mark.parametrize("args,message", [
    (["--no-ui", "--clip", "clip_a"], "--no-ui needs"),
    (["--clicks", "c.json", "--clip", "clip_a"], "--no-ui"),
    (["--host", "0.0.0.0"], "--allow-remote"),
    (["--checkpoint", "x.pt", "--segmenter", "classic"], "no checkpoint"),
    (["--clip", "nope"], "not in"),
    (["--segmenter", "hf-sam2"], "needs --checkpoint"),
    (["--segmenter", "sam2", "--checkpoint", "missing.pt"], "not found"),
    (["--overwrite"], "--no-ui only"),
])
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
    assert run("annotate", str(dataset), "--clip", "clip_a", "--clicks", str(clicks), "--no-ui", "--discard-session") == 0
    moved = [p for p in (dataset / ".refvps-annotate").iterdir() if p.name.startswith("clip_a.old-")]
    assert len(moved) == 1 and (moved[0] / "layers" / "00000.png").exists()  # moved aside, not deleted


def test_server_starts_on_loopback_with_a_token_and_stops_cleanly(dataset):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "refvps", "annotate", str(dataset), "--port", "0", "--no-open", "--clip", "clip_a"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        url = None
        deadline = time.time() + 60
        while time.time() < deadline and url is None:
            line = process.stdout.readline()
            match = re.search(r"(http://127\.0\.0\.1:\d+/\?token=[\w-]+)", line)
            if match:
                url = match.group(1)
        assert url, "no URL printed"
        base, token = url.split("/?token=")
        for _ in range(50):
            try:
                page = urllib.request.urlopen(url, timeout=5).read().decode()
                break
            except OSError:
                time.sleep(0.1)
        assert token in page and "refvps annotate" in page
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + "/api/info", timeout=5)
        assert refused.value.code == 403
        request = urllib.request.Request(base + "/api/clips/clip_a/open", data=b"{}", method="POST",
                                         headers={"X-Refvps-Token": token, "X-Refvps-Client": "tab-1",
                                                  "Content-Type": "application/json"})
        assert json.loads(urllib.request.urlopen(request, timeout=10).read())["state"]["middle"] == T // 2
        assert (dataset / ".refvps-annotate" / "clip_a" / "lock.json").exists()
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "stopped" in err
    assert not (dataset / ".refvps-annotate" / "clip_a" / "lock.json").exists()
