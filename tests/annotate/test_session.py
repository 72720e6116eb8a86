"""The annotation session: edits, keyframes, propagation, undo, autosave/restore, atomic save."""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest

from refvps.annotate import layers as L
from refvps.annotate.clipstate import CLICKED, EMPTY, MANUAL, PROPAGATED
from refvps.annotate.lock import ClipLock
from refvps.annotate.saving import expression_records
from refvps.annotate.segmenters.classic import ClassicSegmenter
from refvps.annotate.session import ClipSession, LockLostError, SessionBusyError, UnlabelledFramesError
from refvps.annotate.store import SessionStore, read_session_summary, session_dir
from refvps.dataset import Dataset
from refvps.dataset.palette import read_label_png
from refvps.errors import DatasetError, UsageError
from tests.annotate.conftest import (
    EXPRESSIONS,
    CarrySegmenter,
    OracleSegmenter,
    T,
    blob_center,
    blob_clip,
    distance_to_polyline,
    files_snapshot,
)

_, GT = blob_clip()


def open_session(root, segmenter=None, clip="clip_a", **kwargs) -> ClipSession:
    return ClipSession(root, Dataset(root).clip(clip), segmenter or OracleSegmenter(GT), **kwargs)


def label_and_expressions(session: ClipSession) -> None:
    mid = session.middle
    session.set_points(mid, [list(blob_center(mid))], [1])
    session.start_propagation(mid, "both")
    assert session.wait(30).state == "done"
    session.set_expressions(["ann1", "ann2"], [e.text for e in EXPRESSIONS])


def test_click_segments_and_is_autosaved(dataset):
    session = open_session(dataset, ClassicSegmenter())
    mid = session.middle
    x, y = blob_center(mid)
    session.set_points(mid, [[x, y]], [1])
    target = session.target(mid)
    iou = (target & (GT[mid] == 1)).sum() / (target | (GT[mid] == 1)).sum()
    assert target[int(y), int(x)] and iou > 0.8
    assert session.state.statuses[mid] == CLICKED and session.state.anchor == mid
    saved = json.loads((session.dir / "session.json").read_text())
    assert saved["status"][mid] == CLICKED
    assert saved["prompts"][str(mid)] == {"points": [[x, y]], "labels": [1]}
    layer_file = session.dir / "layers" / f"{session.frame_names[mid]}.png"
    assert np.array_equal(L.target_of(L.decode_code(layer_file.read_bytes())), target)
    log = [json.loads(line) for line in (session.dir / "edits.jsonl").read_text().splitlines()]
    assert log[-1]["op"] == "clicks" and log[-1]["points"] == [[x, y]]
    # Removing every click empties the frame again.
    session.set_points(mid, [], [])
    assert session.state.statuses[mid] == EMPTY and not session.target(mid).any()
    with pytest.raises(UsageError):
        session.set_points(mid, [[500.0, 10.0]], [1])  # outside the 128x72 frame


def test_propagation_keeps_keyframes_and_ignore(dataset):
    session = open_session(dataset)
    mid = session.middle
    session.set_points(mid, [list(blob_center(mid))], [1])
    # A frame fixed by hand before propagating: an extra blob painted on frame 1.
    session.stroke(1, "target", "paint", 3, [[5, 5], [12, 5]])
    hand = session.code(1)
    # Ignore painted on frame 8 (an Ignore edit does not make it a keyframe).
    session.stroke(8, "ignore", "paint", 4, [[100, 10]])
    ignore_8 = session.ignore(8)
    assert session.state.statuses[1] == MANUAL and session.state.statuses[8] == EMPTY
    job = session.start_propagation(mid, "both")
    assert session.wait(30).state == "done"
    assert job.total == T and job.done == T and (job.written, job.kept) == (T - 2, 2)  # each frame once
    assert np.array_equal(session.code(1), hand)  # kept
    assert np.array_equal(session.ignore(8), ignore_8)  # Ignore survives
    assert np.array_equal(session.target(8), GT[8] == 1)  # target propagated under it
    assert session.state.statuses == [MANUAL if i == 1 else CLICKED if i == mid else PROPAGATED for i in range(T)]
    # The model was given the hand-fixed frame as a prompt before propagating.
    assert ("mask", 1) in session._seg.calls


def test_repropagation_between_two_keyframes_conditions_on_both(dataset):
    """R on a corrected keyframe re-propagates the frames between it and the keyframe before it from
    both ends (today's code only went forwards from it, leaving the frames before it stale)."""
    session = open_session(dataset, CarrySegmenter())
    session.set_points(2, [list(blob_center(2))], [1])  # keyframe A: the blob of frame 2
    session.start_propagation(2, "both")
    assert session.wait(30).state == "done"
    a = GT[2] == 1
    assert all(np.array_equal(session.target(i), a) for i in range(T))  # carried unchanged everywhere
    # Frame 8 corrected with a click: its true blob (B). Then R on frame 8.
    b = GT[8] == 1
    session.set_points(8, [list(blob_center(8))], [1])
    assert np.array_equal(session.target(8), b) and session.state.statuses[8] == CLICKED
    job = session.start_propagation(8, "between")
    assert session.wait(30).state == "done", job.error
    assert [(s.start, s.stop, s.two_sided) for s in job.stretches] == [(2, 8, True), (8, T, False)]
    assert job.total == 5 + 1 and job.kept == 0  # frames 3-7, then 9
    # Each frame between the keyframes takes the nearer keyframe's mask; at equal distance, both.
    expected = {3: a, 4: a, 5: a | b, 6: b, 7: b, 9: b}
    for i, mask in expected.items():
        assert np.array_equal(session.target(i), mask), i
    assert np.array_equal(session.target(2), a) and np.array_equal(session.target(8), b)  # keyframes kept
    assert np.array_equal(session.target(0), a) and np.array_equal(session.target(1), a)  # not reached
    # R on a propagated frame between two keyframes re-propagates that stretch only.
    session.set_points(5, [list(blob_center(5))], [1])
    job = session.start_propagation(7, "between")
    session.wait(30)
    assert [(s.start, s.stop) for s in job.stretches] == [(5, 8)] and job.total == 2
    assert np.array_equal(session.target(6), GT[5] == 1) and np.array_equal(session.target(7), b)


def test_between_needs_frames_to_reach(dataset):
    session = open_session(dataset, CarrySegmenter())
    with pytest.raises(UsageError, match="nothing to propagate"):
        session.start_propagation(3, "between")
    session.set_points(3, [list(blob_center(3))], [1])
    session.set_points(4, [list(blob_center(4))], [1])
    session.set_points(5, [list(blob_center(5))], [1])
    with pytest.raises(UsageError, match="no frames to propagate between"):
        session.start_propagation(4, "between")  # keyframes on both sides, next to it


def test_review_marks(dataset):
    """A key marks a frame reviewed; editing a frame marks it; propagation that changes a reviewed
    frame's mask takes the mark back; marks are undone, autosaved, restored and counted."""
    session = open_session(dataset, CarrySegmenter())
    assert session.state.reviewed == [False] * T
    session.set_points(5, [list(blob_center(5))], [1])
    assert session.state.reviewed[5]  # clicking is looking
    session.start_propagation(5, "both")
    session.wait(30)
    assert sum(session.state.reviewed) == 1
    session.set_reviewed(2)
    session.set_reviewed(3)
    session.stroke(7, "ignore", "paint", 3, [[10, 10]])  # painting Ignore is looking too
    assert [i for i, r in enumerate(session.state.reviewed) if r] == [2, 3, 5, 7]
    assert session.undo() == "brush (ignore) on 00007" and not session.state.reviewed[7]
    session.redo()
    # A corrected keyframe at 1 and R: frame 2 and 3 get a different mask, so their marks go; 7 keeps its.
    session.set_points(1, [list(blob_center(1))], [1])
    session.start_propagation(1, "between")
    session.wait(30)
    assert not session.state.reviewed[2] and not session.state.reviewed[3] and session.state.reviewed[7]
    state = session.state_json()
    assert state["reviewed"] == session.state.reviewed and state["reviewed_count"] == 3  # 1, 5, 7
    session.set_reviewed(7, False)
    assert read_session_summary(dataset, "clip_a")["reviewed"] == 2
    del session
    again = open_session(dataset, CarrySegmenter())
    assert [i for i, r in enumerate(again.state.reviewed) if r] == [1, 5]


def test_cancel_stops_propagation_and_the_page_can_still_paint(dataset):
    segmenter = OracleSegmenter(GT, delay=0.05)
    session = open_session(dataset, segmenter)
    session.set_points(0, [list(blob_center(0))], [1])
    session.start_propagation(0, "forward")
    assert segmenter.started.wait(5)
    with pytest.raises(SessionBusyError):
        session.set_points(3, [[10.0, 10.0]], [1])
    session.stroke(T - 1, "target", "paint", 2, [[3, 3]])  # painting works meanwhile, and is kept
    assert session.cancel()
    job = session.wait(10)
    assert job.state == "cancelled" and job.done < job.total
    assert session.state.statuses[T - 1] == MANUAL
    assert EMPTY in session.state.statuses  # not every frame was reached


def test_undo_redo_of_clicks_strokes_and_propagation(dataset):
    session = open_session(dataset)
    mid = session.middle
    session.set_points(mid, [list(blob_center(mid))], [1])
    after_click = session.code(mid)
    session.stroke(mid, "ignore", "paint", 5, [[10, 10]])
    session.start_propagation(mid, "both")
    session.wait(30)
    propagated = [session.code(i) for i in range(T)]
    assert session.undo().startswith("propagate")
    assert all(session.state.statuses[i] == EMPTY for i in range(T) if i != mid)
    assert session.undo().startswith("brush")
    assert np.array_equal(session.code(mid), after_click)
    assert session.undo().startswith("clicks")
    assert session.state.statuses[mid] == EMPTY and mid not in session.state.prompts and not session.code(mid).any()
    assert session.undo() is None
    for _ in range(3):
        session.redo()
    assert [np.array_equal(session.code(i), propagated[i]) for i in range(T)] == [True] * T
    assert session.state.prompts[mid].labels == (1,)
    # A new edit clears the redo stack.
    session.undo()
    session.stroke(0, "target", "paint", 2, [[1, 1]])
    assert session.redo() is None


def test_fill_holes_and_clear(dataset):
    session = open_session(dataset)
    session.stroke(2, "target", "paint", 10, [[60, 36]])
    session.stroke(2, "target", "erase", 2, [[60, 36]])
    assert not session.target(2)[36, 60]
    session.fill_holes(2)
    assert session.target(2)[36, 60] and session.state.statuses[2] == MANUAL
    session.clear_frame(2, "target")
    assert not session.target(2).any() and session.state.statuses[2] == MANUAL
    session.stroke(4, "ignore", "paint", 3, [[20, 20]])
    assert session.copy_ignore(4, "next") == [5] and session.copy_ignore(4, "previous") == [3]
    assert np.array_equal(session.ignore(5), session.ignore(4)) and np.array_equal(session.ignore(3), session.ignore(4))
    assert not session.ignore(6).any()
    assert session.copy_ignore(4, "all") == [i for i in range(T) if i != 4]
    assert all(np.array_equal(session.ignore(i), session.ignore(4)) for i in range(T))
    assert session.copy_ignore(T - 1, "next") == []  # nothing after the last frame


def test_restore_after_restart(dataset):
    session = open_session(dataset)
    label_and_expressions(session)
    session.stroke(3, "ignore", "paint", 6, [[30, 30], [50, 40]])
    codes = [session.code(i) for i in range(T)]
    status, prompts = list(session.state.statuses), dict(session.state.prompts)
    del session  # no close(): as if the server were killed
    again = open_session(dataset)
    assert again.restored
    assert [np.array_equal(again.code(i), codes[i]) for i in range(T)] == [True] * T
    assert again.state.statuses == status and again.state.prompts == prompts
    assert again.state.annotators == ["ann1", "ann2"] and again.state.expressions == [e.text for e in EXPRESSIONS]
    assert again.dirty
    # A propagation after the restart pushes the keyframes into the fresh model first.
    again.start_propagation(again.middle, "forward")
    assert again.wait(30).state == "done"
    assert ("mask", again.middle) in again._seg.calls


def test_session_of_changed_clip_is_moved_aside(dataset):
    session = open_session(dataset)
    session.stroke(0, "target", "paint", 3, [[5, 5]])
    data = json.loads((session.dir / "session.json").read_text())
    data["frames"] = data["frames"][:-1]
    (session.dir / "session.json").write_text(json.dumps(data))
    again = open_session(dataset)
    assert not again.restored and any("moved" in n for n in again.notes)
    moved = [p for p in session.dir.parent.iterdir() if p.name.startswith("clip_a.old-")]
    assert len(moved) == 1 and (moved[0] / "session.json").exists()


def test_save_writes_this_clip_only_and_validates(dataset):
    other_before = files_snapshot(dataset / "Annotations" / "clip_b")
    other_frames = files_snapshot(dataset / "JPEGImages" / "clip_b")
    other_entry = json.loads((dataset / "meta_expressions.json").read_text())["videos"]["clip_b"]
    clips_json = (dataset / "clips.json").read_bytes()
    session = open_session(dataset)
    label_and_expressions(session)
    session.stroke(2, "ignore", "paint", 4, [[10, 60]])
    result = session.save()
    assert result.ok, result.problems
    assert result.written == T and result.expressions == 4
    near_stroke = distance_to_polyline(GT[2].shape, [[10, 60]])
    for i, name in enumerate(session.frame_names):
        label = read_label_png(dataset / "Annotations" / "clip_a" / f"{name}.png")
        expected = (GT[i] == 1).astype(np.uint8)  # the oracle's propagation is the ground truth
        if i == 2:  # plus the Ignore disc of radius 4 around (10, 60), up to a pixel of rasterisation
            assert (label[near_stroke <= 3] == 255).all()
            settled = (near_stroke <= 3) | (near_stroke >= 5)
            expected[near_stroke <= 3] = 255
            label, expected = label[settled], expected[settled]
        assert np.array_equal(label, expected), name
    entry = json.loads((dataset / "meta_expressions.json").read_text())["videos"]["clip_a"]
    assert entry["expressions"]["0"] == {"exp": EXPRESSIONS[0].text, "obj_id": "1", "annotator": "ann1"}
    assert entry["expressions"]["3"]["annotator"] == "ann2"
    assert entry["frames"] == session.frame_names
    # Nothing of the other clip changed, nor clips.json.
    assert files_snapshot(dataset / "Annotations" / "clip_b") == other_before
    assert files_snapshot(dataset / "JPEGImages" / "clip_b") == other_frames
    assert json.loads((dataset / "meta_expressions.json").read_text())["videos"]["clip_b"] == other_entry
    assert (dataset / "clips.json").read_bytes() == clips_json
    assert not session.dirty
    assert json.loads((session.dir / "validation.json").read_text())["ok"] is True


def test_save_refuses_unlabelled_frames_unless_confirmed(dataset):
    session = open_session(dataset)
    session.set_points(0, [list(blob_center(0))], [1])
    with pytest.raises(UnlabelledFramesError) as info:
        session.save()
    assert len(info.value.frames) == T - 1
    assert not (dataset / "Annotations" / "clip_a").exists()
    result = session.save(allow_unlabelled=True, validate=False)
    assert result.written == T


def test_expressions_need_an_annotator(dataset):
    session = open_session(dataset)
    session.set_expressions(["", "b"], ["an expression", "", "", ""])
    with pytest.raises(UsageError, match="annotator"):
        expression_records(session.state)


def test_a_failed_save_changes_nothing_in_the_dataset(dataset, monkeypatch):
    """A save that fails half way (disk full on the fifth mask) leaves every mask and the expressions
    as they were (today some masks were new and some old), and no staged or temporary files."""
    session = open_session(dataset)
    label_and_expressions(session)
    assert session.save().ok
    folder = dataset / "Annotations" / "clip_a"
    before = files_snapshot(folder)
    meta_before = (dataset / "meta_expressions.json").read_bytes()
    for i in range(T):
        session.stroke(i, "target", "paint", 6, [[5, 5]])
    session.set_expressions(["ann1", "ann2"], ["changed"] + [e.text for e in EXPRESSIONS[1:]])
    import refvps.fileio as fileio

    real_fsync, calls, lock = os.fsync, {"n": 0}, threading.Lock()

    def crashing_fsync(fd):
        with lock:
            calls["n"] += 1
            crash = calls["n"] == 5
        if crash:
            raise OSError("disk full (simulated)")
        return real_fsync(fd)

    monkeypatch.setattr(fileio.os, "fsync", crashing_fsync)
    with pytest.raises(DatasetError, match="simulated") as stopped:
        session.save()
    assert "nothing in the dataset changed" in stopped.value.hint and "save again" in stopped.value.hint
    monkeypatch.setattr(fileio.os, "fsync", real_fsync)
    assert files_snapshot(folder) == before  # every mask the previous one, byte for byte
    assert (dataset / "meta_expressions.json").read_bytes() == meta_before
    assert [p.name for p in (dataset / "Annotations").iterdir() if p.name.startswith(".")] == []  # nothing staged
    assert session.dirty
    assert session.save().ok  # and saving again finishes the job
    assert all(read_label_png(folder / name)[5, 5] == 1 for name in before)
    assert Dataset(dataset).expressions("clip_a")[0].text == "changed"


def test_a_save_keeps_files_it_does_not_write(dataset):
    """The clip's mask folder is replaced as a whole; files in it that are not masks of its frames move along."""
    folder = dataset / "Annotations" / "clip_b"
    (folder / "notes.txt").write_text("kept")
    (folder / "99999.png").write_bytes((folder / "00000.png").read_bytes())  # a mask of no listed frame
    session = open_session(dataset, clip="clip_b")
    session.stroke(0, "target", "paint", 3, [[5, 5]])
    session.save(validate=False)
    assert (folder / "notes.txt").read_text() == "kept" and (folder / "99999.png").exists()
    assert read_label_png(folder / "00000.png")[5, 5] == 1


def test_imports_saved_masks_and_rejects_other_objects(dataset):
    session = open_session(dataset, clip="clip_b")
    assert session.state.statuses == [PROPAGATED] * T
    assert np.array_equal(session.target(4), GT[4] == 1)
    assert session.state.annotators == ["ann1", "ann2"] and session.state.expressions[2] == EXPRESSIONS[2].text
    assert not session.dirty
    session.close()
    import shutil

    shutil.rmtree(session_dir(dataset, "clip_b"))
    label = read_label_png(dataset / "Annotations" / "clip_b" / "00000.png")
    label[0, 0] = 2
    from refvps.dataset.palette import write_label_png

    write_label_png(dataset / "Annotations" / "clip_b" / "00000.png", label)
    with pytest.raises(DatasetError, match="one target"):
        open_session(dataset, clip="clip_b")


def test_a_session_whose_lock_was_taken_over_stops_writing_at_once(dataset, monkeypatch):
    import refvps.annotate.autosave as autosave_module

    monkeypatch.setattr(autosave_module, "LOCK_VERIFY_EVERY_S", 0.0)  # check the lock file on every write
    lock = ClipLock(session_dir(dataset, "clip_a") / "lock.json", "clip_a", "me")
    lock.acquire()
    session = open_session(dataset, lock=lock)
    session.stroke(0, "target", "paint", 2, [[3, 3]])
    # Another session takes the lock over (as after a stale lock): its name is in the file now.
    data = json.loads(lock.path.read_text())
    data.update(owner="other-session", pid=os.getpid() + 1)
    lock.path.write_text(json.dumps(data))
    written = files_snapshot(session.dir)
    for edit in (
        lambda: session.stroke(1, "target", "paint", 2, [[3, 3]]),
        session.undo,
        lambda: session.set_expressions(["a", "b"], ["x", "", "", ""]),
        session.save,
    ):
        with pytest.raises(LockLostError):
            edit()
    assert files_snapshot(session.dir) == written  # not one byte written after the takeover
    session.close()
    assert json.loads(lock.path.read_text())["owner"] == "other-session"  # and its lock left alone


def test_classic_propagation_from_an_unlabelled_frame_starts_at_the_keyframe_behind(dataset):
    session = open_session(dataset, ClassicSegmenter())
    session.set_points(2, [list(blob_center(2))], [1])
    job = session.start_propagation(6, "forward")  # frame 6 was never labelled
    assert session.wait(30).state == "done", job.error
    for i in range(6, T):
        truth = GT[i] == 1
        assert (session.target(i) & truth).sum() / (session.target(i) | truth).sum() > 0.7
    assert all(session.state.statuses[i] == EMPTY for i in (3, 4, 5))  # only the asked-for range is written
    # Forwards from frame 0 there is no keyframe behind to start from: a clear failure, nothing written.
    failed = session.start_propagation(0, "forward")
    session.wait(30)
    assert failed.state == "failed" and "no clicked or hand-fixed frame before" in failed.error
    assert session.state.statuses[0] == EMPTY and session.state.statuses[1] == EMPTY


def test_a_fresh_open_that_fails_half_way_reimports_the_saved_masks(dataset, monkeypatch):
    """Opening a clip with saved masks writes their layers, then the session file: a crash after the
    third layer leaves no session, so the next open imports the masks again instead of restoring
    blank frames (which a save would then write over the masks)."""
    calls = {"n": 0}
    real_write_layer = SessionStore.write_layer

    def failing_write_layer(self, frame, blob):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full (simulated)")
        return real_write_layer(self, frame, blob)

    monkeypatch.setattr(SessionStore, "write_layer", failing_write_layer)
    with pytest.raises(OSError, match="simulated"):
        open_session(dataset, clip="clip_b")
    monkeypatch.setattr(SessionStore, "write_layer", real_write_layer)
    session = open_session(dataset, clip="clip_b")
    assert session.state.statuses == [PROPAGATED] * T
    assert all(np.array_equal(session.target(i), GT[i] == 1) for i in range(T))


def test_frame_names_that_are_paths_are_refused_before_anything_is_written(dataset):
    meta_path = dataset / "meta_expressions.json"
    meta = json.loads(meta_path.read_text())
    meta["videos"]["clip_a"]["frames"][1] = "../../escaped"
    meta_path.write_text(json.dumps(meta))
    before = files_snapshot(dataset)
    with pytest.raises(DatasetError, match="not plain file names") as refused:
        open_session(dataset)
    assert refused.value.path == meta_path and "'../../escaped'" in str(refused.value)
    assert files_snapshot(dataset) == before and not (dataset.parent / "escaped.png").exists()


def test_a_save_blocked_by_an_earlier_interrupted_one_is_explained(dataset, monkeypatch):
    """An earlier save of the clip committed but was cut short, and finishing it fails now (e.g. a
    permission): the new save stops with the reason and the fix, not an unbound name."""
    from refvps.dataset import transaction

    session = open_session(dataset, clip="clip_b")

    def cannot(*args):
        raise OSError("permission denied (simulated)")

    monkeypatch.setattr(transaction, "_finish", cannot)
    with pytest.raises(OSError):
        with transaction.ClipSave(dataset, "clip_b") as save:
            save.write_label("00000", GT[0])
            save.commit(EXPRESSIONS)
    session.stroke(0, "target", "paint", 3, [[5, 5]])
    with pytest.raises(DatasetError) as caught:
        session.save()
    assert "permission denied" in caught.value.message and "finished the next time" in caught.value.hint
    assert caught.value.path == transaction.save_dir(dataset, "clip_b")
