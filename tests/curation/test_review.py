"""refvps review: contact sheets, the review page, and decisions recorded from the command line."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from refvps.curation.review import import_decisions, parse_span, read_decisions, review
from refvps.curation.video import frames_at, probe_video, sample_times
from refvps.curation.workspace import Workspace
from refvps.errors import DatasetError, UsageError

from .conftest import ShotSpec, run_cli


@pytest.fixture
def ws_two(tmp_path, make_video, workspace_with):
    ws_root = tmp_path / "ws"
    cut = make_video(tmp_path / "a.mp4", [ShotSpec(36, hue=0), ShotSpec(36, hue=1)])  # cut at 1.2 s
    plain = make_video(tmp_path / "b.mp4", [ShotSpec(48, hue=2)], size=(160, 240))  # portrait
    workspace_with(ws_root, "generic_cut", cut)
    workspace_with(ws_root, "generic_plain", plain, concept="candle_melting", category="temporal_object_changes")
    return ws_root


def test_contact_sheets_show_the_video_and_its_cuts(ws_two):
    summary = review(ws_two, rows=2, cols=3)
    assert summary.sheets_made == ["generic_cut", "generic_plain"] and summary.undecided == summary.sheets_made
    ws = Workspace(ws_two)
    sheet = np.asarray(Image.open(ws.sheets_dir / "generic_cut.png").convert("RGB")).astype(np.float32)
    tile_h, pad, header_h = 180, 4, 18 * 3 + 8
    tile_w = 240  # 320x240 source at a tile height of 180
    assert sheet.shape == (header_h + 2 * (tile_h + pad) + pad + 28, 3 * tile_w + 4 * pad, 3)
    # Each tile is the frame at its timestamp (1/6th steps, sampled at the middle of each part).
    probe = probe_video(ws.videos_dir / "generic_cut.mp4")
    times = sample_times(0.0, probe.duration_s, 6)
    for k, rgb in frames_at(probe, times):
        r, c = divmod(k, 3)
        y, x = header_h + r * (tile_h + pad), pad + c * (tile_w + pad)
        tile = sheet[y + 30 : y + tile_h, x : x + tile_w]  # below the timestamp label
        expected = np.asarray(Image.fromarray(rgb).resize((tile_w, tile_h), Image.BILINEAR)).astype(np.float32)[30:]
        assert np.abs(tile - expected).mean() < 3
    # The timeline marks the cut (1.2 s of 2.4 s: the middle) in red.
    timeline = sheet[-28:]
    red = (timeline[..., 0] > 200) & (timeline[..., 1] < 80) & (timeline[..., 2] < 80)
    columns = np.nonzero(red.any(axis=0))[0]
    middle = pad + (sheet.shape[1] - 2 * pad) / 2
    assert columns.size and abs(columns.mean() - middle) <= 2


def test_sheets_are_not_remade_unless_needed(ws_two):
    review(ws_two)
    again = review(ws_two)
    assert again.sheets_made == [] and again.sheets_kept == ["generic_cut", "generic_plain"]
    regrid = review(ws_two, rows=3, cols=3)
    assert regrid.sheets_made == ["generic_cut", "generic_plain"]


def test_review_page_is_self_contained(ws_two):
    review(ws_two)
    page = (Workspace(ws_two).review_dir / "index.html").read_text()
    assert '"key": "generic_cut"' in page and '"sheets/generic_plain.png"' in page
    assert not re.search(r"""(src|href)=["']https?://""", page)  # nothing loaded from the network
    for reason in ("no_dynamic_change", "too_fast", "shot_changes", "irrelevant"):
        assert reason in page


def test_decisions_from_the_command_line(ws_two, capsys):
    ws = str(ws_two)
    code, out, err = run_cli(
        capsys,
        "review",
        "-w",
        ws,
        "--accept",
        "generic_cut",
        "--span",
        "0.2-1.0",
        "--span",
        "1:01.5-1:02",
        "--note",
        "two events",
    )
    assert code == 2 and "starts after the end" in err  # 61.5 s is past the 2.4 s video
    assert (
        run_cli(capsys, "review", "-w", ws, "--accept", "generic_cut", "--span", "0.2-1.0", "--span", "1.3-2.2")[0] == 0
    )
    assert run_cli(capsys, "review", "-w", ws, "--reject", "generic_plain", "--reason", "too_fast")[0] == 0
    decisions = read_decisions(Workspace(ws_two).decisions_path)
    assert [(e.start_s, e.end_s) for e in decisions["generic_cut"].events] == [(0.2, 1.0), (1.3, 2.2)]
    assert decisions["generic_plain"].reason == "too_fast" and decisions["generic_plain"].decided_at
    code, out, _ = run_cli(capsys, "review", "-w", ws, "--list", "--json")
    listed = {v["key"]: v["decision"]["decision"] for v in json.loads(out)["videos"]}
    assert listed == {"generic_cut": "accept", "generic_plain": "reject"}
    # Wrong uses are errors with a hint, not tracebacks.
    code, _, err = run_cli(capsys, "review", "-w", ws, "--reject", "generic_plain")
    assert code == 2 and "--reject needs --reason" in err
    code, _, err = run_cli(capsys, "review", "-w", ws, "--accept", "nope")
    assert code == 2 and "no video 'nope'" in err
    code, _, err = run_cli(capsys, "review", "-w", ws, "--accept", "generic_cut", "--span", "5-2")
    assert code == 2 and "time span" in err


def test_accept_with_a_concept_stores_its_taxonomy_id(ws_two, capsys):
    ws = str(ws_two)
    code, _, err = run_cli(capsys, "review", "-w", ws, "--accept", "generic_cut", "--concept", "no such thing")
    assert code == 2 and "unknown concept 'no such thing'" in err
    assert not Workspace(ws_two).decisions_path.exists()
    assert run_cli(capsys, "review", "-w", ws, "--accept", "generic_cut", "--concept", "Candle Melting")[0] == 0
    assert read_decisions(Workspace(ws_two).decisions_path)["generic_cut"].concept == "candle_melting"


def test_import_decisions_exported_from_the_page(ws_two, tmp_path):
    export = tmp_path / "decisions-export.json"
    export.write_text(
        json.dumps(
            {
                "version": 1,
                "videos": {
                    "generic_cut": {"decision": "accept", "events": [{"start_s": 0, "end_s": 1.1}], "note": ""},
                    "generic_plain": {"decision": "reject", "reason": "no_dynamic_change", "note": "static"},
                },
            }
        )
    )
    ws = Workspace(ws_two)
    assert len(import_decisions(ws, export)) == 2
    assert read_decisions(ws.decisions_path)["generic_plain"].note == "static"
    export.write_text(json.dumps({"videos": {"generic_cut": {"decision": "reject", "reason": "boring"}}}))
    with pytest.raises(DatasetError, match="unknown reject reason 'boring'"):
        import_decisions(ws, export)


def test_a_missing_video_file_fails_the_review_but_not_the_others(ws_two, capsys):
    ws = Workspace(ws_two)
    (ws.videos_dir / "generic_plain.mp4").unlink()
    code, _, err = run_cli(capsys, "review", "-w", str(ws_two))
    flat = " ".join(err.split())
    assert code == 1 and "1 video(s) could not be shown" in flat
    assert "generic_plain" in flat and "run refvps fetch again" in flat  # what happened and the fix
    assert (ws.sheets_dir / "generic_cut.png").is_file() and (ws.review_dir / "index.html").is_file()
    # trim reports it the same way: named, with the fix, non-zero exit; the rest is exported.
    assert run_cli(capsys, "review", "-w", str(ws_two), "--accept", "generic_cut")[0] == 0
    assert run_cli(capsys, "review", "-w", str(ws_two), "--accept", "generic_plain")[0] == 0
    code, out, err = run_cli(capsys, "trim", "-w", str(ws_two), "-d", str(ws_two.parent / "dataset"), "--json")
    assert code == 1 and "1 video(s) or clip(s) could not be exported" in err
    assert "labelled" not in err  # no conflicts, so none are mentioned
    assert json.loads(out)["exported"] == ["generic_cut_00", "generic_cut_01"]  # its short final shot moves: kept


def test_opted_out_videos_are_not_reviewed(ws_two):
    ws = Workspace(ws_two)
    ws.optout_path.write_text("plain\n")  # the id of generic_plain
    summary = review(ws_two)
    assert summary.opted_out == ["generic_plain"] and summary.sheets_made == ["generic_cut"]


def test_parse_span_forms():
    assert (parse_span("1.5-8").start_s, parse_span("1.5-8").end_s) == (1.5, 8.0)
    assert parse_span("0:01.5 - 1:00").end_s == 60.0
    with pytest.raises(UsageError):
        parse_span("eight")


def test_review_needs_a_workspace(tmp_path, capsys):
    code, _, err = run_cli(capsys, "review", "-w", str(tmp_path / "none"))
    assert code == 1 and "curation workspace not found" in err and "refvps fetch" in err


def test_review_page_script_parses_and_reads_spans(ws_two, tmp_path):
    """The page's script is valid JavaScript, and its span parser agrees with parse_span (needs node)."""
    import shutil
    import subprocess

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    review(ws_two)
    page = (Workspace(ws_two).review_dir / "index.html").read_text()
    script = re.findall(r"<script>(.*?)</script>", page, re.S)[0]
    (tmp_path / "page.js").write_text(script)
    assert subprocess.run([node, "--check", str(tmp_path / "page.js")], capture_output=True).returncode == 0
    parser = re.search(r"function parseSpans\(text\) \{.*?\n\}\n", script, re.S).group(0)
    probe = parser + 'console.log(JSON.stringify(parseSpans("1.5-8, 0:12 - 0:15.5; 20 to 21")));'
    result = subprocess.run([node, "-e", probe], capture_output=True, text=True, check=True)
    spans = json.loads(result.stdout)
    assert [(s["start_s"], s["end_s"]) for s in spans] == [(1.5, 8), (12, 15.5), (20, 21)]
    assert [(parse_span(t).start_s, parse_span(t).end_s) for t in ("1.5-8", "0:12 - 0:15.5", "20 to 21")] == [
        (s["start_s"], s["end_s"]) for s in spans
    ]


def test_a_file_damaged_half_way_still_gets_its_contact_sheet(tmp_path):
    """Real footage with a stretch of zeros after 1.8 s: the sheet shows what decodes, marks the
    tiles that do not, and its header says where decoding stops; it is no review problem."""
    import shutil

    from refvps.curation.workspace import VideoRecord

    from .footage import compilation, zeroed

    source = compilation(tmp_path / "src", [("02_cups", 1.0, 3.0), ("03_blocks", 1.0, 1.5)])
    ws = Workspace(tmp_path / "ws").create()
    shutil.copyfile(zeroed(source.path, tmp_path / "damaged.mp4", 0.45, 20000), ws.videos_dir / "damaged.mp4")
    ws.write_record(VideoRecord(key="damaged", id="damaged", file="videos/damaged.mp4"))
    summary = review(ws.root, rows=2, cols=3)
    assert summary.problems == [] and summary.sheets_made == ["damaged"]
    sheet = np.asarray(Image.open(ws.sheets_dir / "damaged.png").convert("RGB")).astype(np.float32)
    tile_h, pad, header_h, tile_w = 180, 4, 18 * 3 + 8, 320  # 640x360 source
    means = []
    for k in range(6):
        r, c = divmod(k, 3)
        y, x = header_h + r * (tile_h + pad), pad + c * (tile_w + pad)
        means.append(float(sheet[y + 30 : y + tile_h, x : x + tile_w].mean()))
    # The first tiles (0.375 s, 1.125 s) show the cups; a tile that does not decode is left dark.
    assert means[0] > 60 and means[1] > 60 and min(means[2:]) < 40
