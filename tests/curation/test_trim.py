"""Trim: planning rules, exported frames against the source truth, resumability, provenance."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from refvps.curation.cards import CardCheck
from refvps.curation.plan import TrimParams, plan_spans
from refvps.curation.review import Decision, EventSpan, record_decisions
from refvps.curation.shots import Shot
from refvps.curation.trim import trim_video, trim_workspace
from refvps.curation.workspace import Workspace
from refvps.dataset import validate
from refvps.dataset.format import Dataset, DatasetWriter, Expression
from refvps.progress import Progress

from .conftest import ShotSpec, read_stamp, run_cli

FPS_OUT = 24


def _shots(*bounds_s: float) -> list[Shot]:
    return [Shot(i, int(a * 30), int(b * 30), a, b) for i, (a, b) in enumerate(zip(bounds_s, bounds_s[1:]))]


CARD = CardCheck(flat_share=0.97, motion=0.0, card=True)
FOOTAGE = CardCheck(flat_share=0.3, motion=6.0, card=False)


def card(shot):
    return CARD


def footage(shot):
    return FOOTAGE


# -- planning (pure) ------------------------------------------------------------------------------
def test_auto_plan_is_one_clip_per_shot_without_the_end_card():
    spans, notes = plan_spans(_shots(0, 4, 9, 11), [], TrimParams(), card)
    assert [(a, b) for a, b, *_ in spans] == [(0, 4), (4, 9)]
    assert any("end card" in n and "looks like a card" in n for n in notes)


def test_a_short_final_shot_is_kept_unless_it_looks_like_a_card():
    """Short is not enough: a final 2 s shot that moves is footage (nothing is dropped unseen)."""
    for test in (footage, None):
        spans, notes = plan_spans(_shots(0, 4, 9, 11), [], TrimParams(), test)
        assert [(a, b) for a, b, *_ in spans] == [(0, 4), (4, 9), (9, 11)] and notes == []
    # ... and a card longer than end_card_max_s is not taken for an end card.
    spans, _ = plan_spans(_shots(0, 4, 9, 13), [], TrimParams(end_card_max_s=3.0), card)
    assert len(spans) == 3


def test_events_are_cut_at_shots_and_short_pieces_dropped():
    shots = _shots(0, 4, 9, 20)  # the last shot is long: not an end card
    events = [EventSpan(1, 3), EventSpan(3.5, 7.0), EventSpan(8.8, 12)]
    spans, notes = plan_spans(shots, events, TrimParams(min_clip_s=1.0))
    # 3.5-7.0 crosses the cut at 4: 3.5-4 (0.5 s) is dropped, 4-7 kept; 8.8-12: 8.8-9 dropped, 9-12 kept.
    assert [(a, b, shot, event) for a, b, shot, event, _ in spans] == [(1, 3, 0, 0), (4, 7.0, 1, 1), (9, 12, 2, 2)]
    assert sum("shorter than" in n for n in notes) == 2


def test_event_inside_a_short_final_shot_is_kept():
    spans, _ = plan_spans(_shots(0, 4, 6), [EventSpan(4.2, 5.8)], TrimParams())
    assert [(a, b) for a, b, *_ in spans] == [(4.2, 5.8)]
    # ... one that only runs into it is cut at the end card when the shot looks like a card ...
    spans, notes = plan_spans(_shots(0, 4, 6), [EventSpan(2, 5.5)], TrimParams(), card)
    assert [(a, b) for a, b, *_ in spans] == [(2, 4)]
    assert any("end card" in n for n in notes)
    # ... and kept (cut at the shot boundary) when the short final shot is ordinary footage.
    spans, notes = plan_spans(_shots(0, 4, 6), [EventSpan(2, 5.5)], TrimParams(), footage)
    assert [(a, b) for a, b, *_ in spans] == [(2, 4), (4, 5.5)]
    assert not any("end card" in n for n in notes)


def test_a_piece_shorter_than_one_output_frame_is_dropped_even_without_a_minimum():
    # 3.98-4.0 s is 0.02 s: less than one frame at 24 fps, so it would be a clip without frames.
    spans, notes = plan_spans(_shots(0, 4, 9, 20), [EventSpan(3.98, 6)], TrimParams(min_clip_s=0))
    assert [(a, b) for a, b, *_ in spans] == [(4, 6)]
    assert any("3.980-4.000 s" in n for n in notes)


def test_single_shot_video_is_never_an_end_card():
    spans, _ = plan_spans(_shots(0, 2.5), [], TrimParams(), card)
    assert [(a, b) for a, b, *_ in spans] == [(0, 2.5)]


# -- export against the source truth --------------------------------------------------------------
def _expected_source_frame(start_s: float, k: int, fps_in: int) -> int:
    """The frame on screen at start + k/24 in a constant-rate source (naive reference)."""
    return math.floor((start_s + k / FPS_OUT) * fps_in + 1e-6)


def _check_clip_frames(root: Path, clip_id: str, meta: dict, video) -> None:
    frames = sorted((root / "JPEGImages" / clip_id).glob("*.jpg"))
    start, end = meta["trim"]["start_s"], meta["trim"]["end_s"]
    assert len(frames) == round((end - start) * FPS_OUT)  # frame count = duration x 24
    assert [f.stem for f in frames] == [f"{k:05d}" for k in range(len(frames))]
    shot_ids = set()
    for k, path in enumerate(frames):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        assert rgb.shape[:2] == (meta["height"], meta["width"])
        source = _expected_source_frame(start, k, video.fps)
        assert read_stamp(rgb, 0, 0) == source % 144, (clip_id, k)
        shot_ids.add(video.shot_of_frame(source))
    assert len(shot_ids) == 1  # never crosses a cut


@pytest.fixture
def compilation(tmp_path, make_video, workspace_with):
    """A compilation of three events (three shots) and an end card, letterboxed."""
    video = make_video(
        tmp_path / "src.mp4",
        [ShotSpec(60, hue=0), ShotSpec(50, hue=1), ShotSpec(45, hue=2), ShotSpec(30, "card")],
        bars=(0, 32, 0, 32),
    )
    ws_root = tmp_path / "ws"
    workspace_with(ws_root, "generic_comp", video)
    return ws_root, video


def test_workspace_trim_compilation(tmp_path, compilation):
    ws_root, video = compilation
    ws = Workspace(ws_root)
    record_decisions(
        ws, [Decision("generic_comp", "accept", events=[EventSpan(0.5, 1.5), EventSpan(1.8, 3.0), EventSpan(3.8, 6.0)])]
    )
    root = tmp_path / "dataset"
    summary = trim_workspace(ws_root, root)
    assert summary.exported == ["generic_comp_00", "generic_comp_01", "generic_comp_02"]
    clips = json.loads((root / "clips.json").read_text())["clips"]
    # Event 2 (1.8-3.0) crosses the cut at 2.0 s: its 0.2 s head is dropped. Event 3 runs into the
    # end card (from 155/30 s): it stops at the cut.
    spans = [(c["trim"]["start_s"], c["trim"]["end_s"]) for c in clips.values()]
    assert spans[0] == pytest.approx((0.5, 1.5))
    assert spans[1] == pytest.approx((2.0, 3.0))
    assert spans[2][0] == pytest.approx(3.8)
    assert spans[2][1] <= 155 / 30 + 1e-9
    meta_expr = json.loads((root / "meta_expressions.json").read_text())["videos"]
    for clip_id, meta in clips.items():
        assert meta["crop"] == [0, 32, 320, 176]
        assert (meta["width"], meta["height"], meta["fps"]) == (320, 176, 24)
        assert meta["source"] == {
            "url": "https://example.org/generic_comp",
            "platform": "generic",
            "uploader": "someone",
            "license": "CC BY 4.0",
            "retrieved": "2024-06-01T12:00:00Z",
            "video_id": "comp",
            "title": "video generic_comp",
            "upload_date": "2024-05-01",
            "duration_s": 185 / 30,
            "query": "fire query",
        }
        assert meta["concept"] == "fire" and meta["category"] == "entities_with_dynamic_boundaries"
        assert meta_expr[clip_id]["expressions"] == {}
        assert meta_expr[clip_id]["frames"] == [f"{k:05d}" for k in range(len(meta_expr[clip_id]["frames"]))]
        _check_clip_frames(root, clip_id, meta, video)
    assert any("end card" in n for n in summary.dropped)
    # The dataset opens with the project's reader.
    assert Dataset(root).clip_ids == list(clips)


def test_accept_without_spans_gives_one_clip_per_shot(tmp_path, compilation):
    ws_root, video = compilation
    record_decisions(Workspace(ws_root), [Decision("generic_comp", "accept")])
    root = tmp_path / "dataset"
    summary = trim_workspace(ws_root, root)
    clips = json.loads((root / "clips.json").read_text())["clips"]
    assert len(summary.exported) == 3  # three event shots; the end card is gone
    for clip_id, meta in clips.items():
        _check_clip_frames(root, clip_id, meta, video)
    counts = [len(list((root / "JPEGImages" / c).glob("*.jpg"))) for c in clips]
    assert counts == [48, 40, 36]  # 60, 50, 45 source frames at 30 fps -> 2.0, 1.667, 1.5 s at 24 fps


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def test_interrupted_trim_then_rerun_equals_uninterrupted(tmp_path, compilation):
    ws_root, _ = compilation
    record_decisions(Workspace(ws_root), [Decision("generic_comp", "accept")])

    class Interrupt(Progress):
        frames = 0

        def advance(self, stage, n=1, *, note=None):
            if stage == "frames":
                self.frames += n
                if self.frames == 48 + 17:  # in the middle of the second clip
                    raise KeyboardInterrupt

    resumed = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        trim_workspace(ws_root, resumed, progress=Interrupt())
    listed = json.loads((resumed / "clips.json").read_text())["clips"]
    assert list(listed) == ["generic_comp_00"]  # the half-written clip is not listed
    second = trim_workspace(ws_root, resumed)
    assert second.skipped == ["generic_comp_00"]
    assert second.exported == ["generic_comp_01", "generic_comp_02"]

    straight = tmp_path / "straight"
    trim_workspace(ws_root, straight)
    assert _tree(resumed) == _tree(straight)

    # A third run does nothing and touches nothing.
    before = {p: p.stat().st_mtime_ns for p in resumed.rglob("*.jpg")}
    third = trim_workspace(ws_root, resumed)
    assert third.exported == [] and len(third.skipped) == 3
    assert {p: p.stat().st_mtime_ns for p in resumed.rglob("*.jpg")} == before


def test_changed_plan_never_overwrites_labelled_clip(tmp_path, compilation):
    ws_root, _ = compilation
    ws = Workspace(ws_root)
    record_decisions(ws, [Decision("generic_comp", "accept", events=[EventSpan(0.5, 1.5)])])
    root = tmp_path / "dataset"
    trim_workspace(ws_root, root)
    DatasetWriter(root).update_expressions("generic_comp_00", [Expression("0", "the red wave")])
    before = _tree(root)
    record_decisions(ws, [Decision("generic_comp", "accept", events=[EventSpan(0.25, 1.75)])])
    summary = trim_workspace(ws_root, root)
    assert summary.exported == [] and len(summary.conflicts) == 1
    assert _tree(root) == before
    # An unlabelled clip whose plan changed is re-exported (and its extra frames removed).
    record_decisions(ws, [Decision("generic_comp", "accept", events=[EventSpan(2.1, 3.3), EventSpan(3.8, 5.0)])])
    other = tmp_path / "other"
    trim_workspace(ws_root, other)
    record_decisions(ws, [Decision("generic_comp", "accept", events=[EventSpan(2.1, 3.1), EventSpan(3.8, 5.0)])])
    summary = trim_workspace(ws_root, other)
    assert summary.exported == ["generic_comp_00"] and summary.skipped == ["generic_comp_01"]
    assert len(list((other / "JPEGImages" / "generic_comp_00").glob("*.jpg"))) == 24


def test_rejected_and_opted_out_videos_are_not_exported(tmp_path, compilation, make_video, workspace_with):
    ws_root, _ = compilation
    other = make_video(tmp_path / "o.mp4", [ShotSpec(40, hue=3)])
    workspace_with(ws_root, "generic_other", other, uploader="optedout_user")
    ws = Workspace(ws_root)
    record_decisions(
        ws, [Decision("generic_comp", "reject", reason="shot_changes"), Decision("generic_other", "accept")]
    )
    ws.optout_path.write_text("# opt-outs\n@OptedOut_User\n")
    summary = trim_workspace(ws_root, tmp_path / "dataset")
    assert summary.exported == []
    assert any("opt-out" in p for p in summary.problems)


def test_trim_one_video_with_span(tmp_path, make_video):
    video = make_video(tmp_path / "one.mp4", [ShotSpec(40, hue=0), ShotSpec(80, hue=1)], bars=(40, 0, 40, 0))
    root = tmp_path / "dataset"
    summary = trim_video(video.path, root, start_s=0.2, end_s=3.5, clip_key="melt", concept="ice_melting")
    # 0.2-3.5 crosses the cut at 40/30 s: two clips, one per side.
    assert summary.exported == ["melt_00", "melt_01"]
    clips = json.loads((root / "clips.json").read_text())["clips"]
    assert clips["melt_00"]["category"] == "temporal_object_changes"
    assert clips["melt_00"]["crop"] == [40, 0, 240, 240]
    assert clips["melt_00"]["source"]["url"].startswith("file://")
    for clip_id, meta in clips.items():
        _check_clip_frames(root, clip_id, meta, video)
    assert clips["melt_01"]["trim"]["start_s"] == pytest.approx(40 / 30)


def test_a_crop_outside_the_frame_names_the_option_it_came_from(tmp_path, make_video, capsys):
    video = make_video(tmp_path / "one.mp4", [ShotSpec(40, hue=0)])
    code, _, err = run_cli(capsys, "trim", str(video.path), "-d", str(tmp_path / "d"), "--crop", "0,0,2000,10")
    assert code == 2 and "outside the 320x240 frame" in err and "--crop" in err.split("Hint:")[1]
    assert not (tmp_path / "d").exists()


def test_exported_dataset_validates_once_labelled(tmp_path, compilation):
    ws_root, _ = compilation
    record_decisions(Workspace(ws_root), [Decision("generic_comp", "accept")])
    root = tmp_path / "dataset"
    trim_workspace(ws_root, root)
    writer = DatasetWriter(root)
    for clip in Dataset(root):
        labels = []
        for _name in clip.frame_names:
            label = np.zeros((clip.meta.height, clip.meta.width), np.uint8)
            label[40:80, 100:180] = 1
            label[80:84, 100:180] = 255
            labels.append(label)
        writer.write_clip(
            clip.id,
            None,
            labels,
            [
                Expression("0", "the wave", 1, "a"),
                Expression("1", "moving colours", 1, "a"),
                Expression("2", "the pattern", 1, "b"),
                Expression("3", "the rippling texture", 1, "b"),
            ],
            clip.meta,
        )
    report = validate.validate_dataset(root, refvps_rules=True)
    assert report.ok, [str(p) for p in report.problems]


def test_end_cards_on_generated_video(tmp_path, make_video):
    """Without a span: a short final shot that moves is kept, a still logo card is dropped."""
    moving = make_video(tmp_path / "moving.mp4", [ShotSpec(60, hue=0), ShotSpec(50, hue=1)])
    summary = trim_video(moving.path, tmp_path / "a", clip_key="moving")
    assert summary.exported == ["moving_00", "moving_01"] and summary.dropped == []
    carded = make_video(tmp_path / "carded.mp4", [ShotSpec(60, hue=0), ShotSpec(50, hue=1), ShotSpec(40, "card")])
    summary = trim_video(carded.path, tmp_path / "b", clip_key="carded")
    assert summary.exported == ["carded_00", "carded_01"]
    assert len(summary.dropped) == 1 and "end card" in summary.dropped[0]
