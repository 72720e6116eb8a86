"""Trim on real footage: damaged files never stop a batch, end cards, one crop per video, provenance."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from refvps.curation.review import Decision, EventSpan, record_decisions
from refvps.curation.trim import trim_video, trim_workspace
from refvps.curation.workspace import VideoRecord, Workspace

from .conftest import run_cli
from .footage import compilation, truncated, zeroed

TWO_SHOTS = [("02_cups", 1.0, 1.5), ("05_default_juggle", 3.0, 1.5)]


def add_video(ws: Workspace, key: str, path: Path, **fields) -> None:
    """Put a file into a workspace as fetch would have (media file + record)."""
    ws.create()
    target = ws.videos_dir / f"{key}{path.suffix}"
    shutil.copyfile(path, target)
    ws.write_record(VideoRecord(key=key, id=key, extractor="Generic", file=f"videos/{target.name}", **fields))


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Compilations of real footage (640x360, letterboxed) and damaged copies of them."""
    folder = tmp_path_factory.mktemp("sources")
    good = compilation(folder / "good", TWO_SHOTS, card_s=1.0)
    single = compilation(folder / "single", [("04_coffee", 1.0, 3.0)])
    spliced = compilation(folder / "spliced", [("03_blocks", 1.0, 1.5), ("04_coffee", 4.0, 1.5)], keyint=15)
    return {
        "good": good,
        "truncated": truncated(single.path, folder / "truncated.mp4", 0.7),
        "damaged": zeroed(spliced.path, folder / "damaged.mp4", 0.7, 30000),
        "spliced": spliced,
    }


def _clips(root: Path) -> dict:
    return json.loads((root / "clips.json").read_text())["clips"]


def test_one_bad_video_never_stops_the_batch(tmp_path, sources, capsys):
    ws = Workspace(tmp_path / "ws")
    not_a_video = tmp_path / "error_page.mp4"
    not_a_video.write_text("<html><body>404 Not Found</body></html>")
    add_video(ws, "a_good", sources["good"].path)
    add_video(ws, "b_truncated", sources["truncated"])
    add_video(ws, "c_damaged", sources["damaged"])
    add_video(ws, "d_not_a_video", not_a_video)
    add_video(ws, "e_good", sources["good"].path)
    record_decisions(
        ws, [Decision(k, "accept") for k in ("a_good", "b_truncated", "c_damaged", "d_not_a_video", "e_good")]
    )
    root = tmp_path / "dataset"
    summary = trim_workspace(ws.root, root)
    # Every good video is exported in full; the truncated one as far as it decodes, with a note.
    for key in ("a_good", "e_good"):
        assert {f"{key}_00", f"{key}_01"} <= set(summary.exported)
    assert "b_truncated_00" in summary.exported
    clips = _clips(root)
    assert "could be read" in clips["b_truncated_00"]["notes"]
    assert 1.0 < clips["b_truncated_00"]["trim"]["end_s"] < 3.0 * 0.85
    assert any(w.startswith("b_truncated:") and "could be read" in w for w in summary.warnings)
    # A file that stops decoding half-way: exported up to there, with a note.
    assert "c_damaged_00" in summary.exported
    assert any(w.startswith("c_damaged:") and "damaged there" in w for w in summary.warnings)
    assert clips["c_damaged_00"]["trim"]["end_s"] < 1.5
    # The non-video is named, with the reason and what to do.
    assert any(p.startswith("d_not_a_video") and "fetch it again" in p for p in summary.problems)
    # From the command line: the same summary, and a non-zero exit because something failed.
    code, out, err = run_cli(capsys, "trim", "-w", str(ws.root), "-d", str(tmp_path / "cli"))
    assert code == 1 and "could not be exported" in err
    assert "problem: d_not_a_video" in " ".join(err.split()) and "warning: b_truncated" in " ".join(err.split())
    assert f"{len(summary.exported)} clip(s) exported" in out


def test_a_clip_that_cannot_be_written_is_reported_and_the_rest_exported(tmp_path, sources):
    root = tmp_path / "dataset"
    blocker = root / "JPEGImages" / "comp_00"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the clip's folder should be")
    summary = trim_video(sources["good"].path, root, clip_key="comp")
    assert summary.exported == ["comp_01"]
    assert len(summary.problems) == 1 and summary.problems[0].startswith("comp_00")
    assert blocker.read_text() == "a file where the clip's folder should be"
    assert list(_clips(root)) == ["comp_01"]


def test_a_text_end_card_is_dropped_and_the_summary_says_why(tmp_path, sources):
    summary = trim_video(sources["good"].path, tmp_path / "card", clip_key="comp")
    assert summary.exported == ["comp_00", "comp_01"]
    assert len(summary.dropped) == 1 and "end card" in summary.dropped[0] and "looks like a card" in summary.dropped[0]


def test_a_short_final_shot_of_real_footage_is_kept(tmp_path):
    """A final 2 s shot of coffee being poured is short, but it moves: it is a clip, not a card."""
    real_end = compilation(tmp_path / "real_end", [("03_blocks", 1.0, 1.5), ("04_coffee", 2.0, 2.0)])
    summary = trim_video(real_end.path, tmp_path / "real", clip_key="pour")
    assert summary.exported == ["pour_00", "pour_01"] and not summary.dropped
    assert _clips(tmp_path / "real")["pour_01"]["trim"]["start_s"] == pytest.approx(1.5)


def test_one_crop_box_per_source_video(tmp_path, sources):
    """Every clip of a compilation gets the video's box, exact, whatever its own picture."""
    summary = trim_video(sources["good"].path, tmp_path / "d", clip_key="comp")
    boxes = {c: tuple(m["crop"]) for c, m in _clips(tmp_path / "d").items()}
    assert set(boxes) == set(summary.exported) == {"comp_00", "comp_01"}
    assert set(boxes.values()) == {sources["good"].box}
    frame = np.asarray(Image.open(tmp_path / "d" / "JPEGImages" / "comp_00" / "00000.jpg"))
    assert frame.shape[:2] == (sources["good"].box[3], sources["good"].box[2])


def test_shots_framed_differently_share_the_union_box(tmp_path):
    boxed_shot = compilation(tmp_path / "a", [("02_cups", 1.0, 1.5)])
    full_shot = compilation(tmp_path / "b", [("05_default_juggle", 1.0, 1.5)], box=(0, 0, 640, 360))
    both = tmp_path / "both.mp4"
    from .footage import ffmpeg

    ffmpeg(
        "-i", str(boxed_shot.path), "-i", str(full_shot.path), "-filter_complex", "[0:v][1:v]concat=n=2:v=1[v]",
        "-map", "[v]", "-c:v", "libx264", "-crf", "23", "-preset", "veryfast", str(both),
    )  # fmt: skip
    trim_video(both, tmp_path / "d", clip_key="mixed")
    clips = _clips(tmp_path / "d")
    assert [m["crop"] for m in clips.values()] == [[0, 0, 640, 360]] * 2
    assert any("framed differently" in note for note in clips["mixed_00"]["curation"]["video_notes"])


def test_provenance_reaches_clips_json(tmp_path, sources):
    ws = Workspace(tmp_path / "ws")
    add_video(
        ws,
        "youtube_abc",
        sources["good"].path,
        url="https://www.youtube.com/watch?v=abc",
        uploader="Some Channel",
        uploader_id="@somechannel",
        channel="Some Channel",
        license="Creative Commons Attribution license (reuse allowed)",
        duration_s=4.0,
        title="cups and juggling",
        date="2024-05-01",
        retrieved="2024-06-01T12:00:00Z",
        query="cups shuffling slow motion",
        concept="water_splash",
        category="interaction_sequences",
        width=1920,
        height=1080,
        fps=29.97,
        also_found_by=["juggling football"],
    )
    record_decisions(ws, [Decision("youtube_abc", "accept", events=[EventSpan(0.2, 1.4)])])
    trim_workspace(ws.root, tmp_path / "d")
    meta = _clips(tmp_path / "d")["youtube_abc_00"]
    assert (meta["concept"], meta["category"]) == ("water_splash", "interaction_sequences")
    assert meta["source"] == {
        "url": "https://www.youtube.com/watch?v=abc",
        "platform": "generic",
        "uploader": "Some Channel",
        "license": "Creative Commons Attribution license (reuse allowed)",
        "retrieved": "2024-06-01T12:00:00Z",
        "video_id": "youtube_abc",
        "title": "cups and juggling",
        "uploader_id": "@somechannel",
        "channel": "Some Channel",
        "upload_date": "2024-05-01",
        "duration_s": 4.0,
        "width": 1920,
        "height": 1080,
        "fps": 29.97,
        "query": "cups shuffling slow motion",
    }
    assert meta["curation"]["also_found_by"] == ["juggling football"]
    assert meta["curation"]["source_size"] == [640, 360]


def test_every_frame_counted_readable_of_a_damaged_file_decodes_as_the_original(tmp_path):
    """A stretch of zeros in a long group of pictures (x264's default: B-frames, a keyframe every
    250 frames): the shots end where decoding stops, and every frame before that can be read, as
    the undamaged file shows it, also the last one (still inside the decoder when the damaged
    packet comes). Then the readable part is exported, as the docs promise."""
    from refvps.curation.shots import detect_shots
    from refvps.curation.video import frames_at, probe_video

    source = compilation(tmp_path / "long_gop", [("02_cups", 1.0, 3.0), ("03_blocks", 1.0, 1.5)])
    original = probe_video(source.path)
    for share in (0.3, 0.45, 0.6):  # inside the first shot, a group of pictures of 90 frames
        damaged = zeroed(source.path, tmp_path / f"damaged_{share}.mp4", share, 20000)
        probe = probe_video(damaged)
        readable = detect_shots(probe)[-1].end_frame
        assert 0 < readable < original.frame_count, share
        last = float(probe.frame_times[readable - 1])
        ((_, got),) = frames_at(probe, [last], fmt="gray")
        ((_, want),) = frames_at(original, [last], fmt="gray")
        assert np.array_equal(got, want), share
        summary = trim_video(damaged, tmp_path / f"d_{share}", clip_key="damaged")
        assert summary.exported == ["damaged_00"] and not summary.problems, (share, summary.problems)
        assert any("damaged there" in w for w in summary.warnings)
