"""One clip's save as a transaction (refvps.dataset.transaction): staged, committed by a journal,
switched over; leftovers reported by ``refvps validate`` and repaired by ``recover``.

The fault-injection test that kills real processes at every step is tests/annotate/test_save_crash.py.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from refvps.dataset import ClipMeta, Dataset, DatasetWriter, Expression, read_label_png, transaction
from refvps.dataset.validate import validate_dataset

H, W, T = 12, 16, 3
OLD = [Expression(str(k), f"old {k}", 1, "a" if k < 2 else "b") for k in range(4)]
NEW = [Expression(str(k), f"new {k}", 1, "c" if k < 2 else "d") for k in range(4)]


@pytest.fixture
def root(tmp_path):
    labels = [np.zeros((H, W), np.uint8) for _ in range(T)]
    for label in labels:
        label[2:6, 3:9] = 1
    frames = [np.full((H, W, 3), 90, np.uint8) for _ in range(T)]
    DatasetWriter(tmp_path / "ds").write_clip("c1", frames, labels, OLD, ClipMeta("c1", fps=24, width=W, height=H))
    return tmp_path / "ds"


def new_label(value: int = 1) -> np.ndarray:
    label = np.zeros((H, W), np.uint8)
    label[:, :4] = value
    return label


def problems(root, rule):
    return [p for p in validate_dataset(root).problems if p.rule == rule]


def test_a_save_switches_masks_and_expressions_and_leaves_nothing(root):
    (root / "Annotations" / "c1" / "notes.txt").write_text("mine")
    with transaction.ClipSave(root, "c1") as save:
        for t in range(T):
            save.write_label(f"{t:05d}", new_label())
        assert not problems(root, "interrupted_save")[0].severity == "error"  # staged only: a warning
        save.commit(NEW)
    assert all(
        np.array_equal(read_label_png(root / "Annotations" / "c1" / f"{t:05d}.png"), new_label()) for t in range(T)
    )
    assert [e.text for e in Dataset(root).expressions("c1")] == [e.text for e in NEW]
    assert (root / "Annotations" / "c1" / "notes.txt").read_text() == "mine"  # carried over
    assert sorted(p.name for p in (root / "Annotations").iterdir()) == ["c1"]
    assert validate_dataset(root).ok


def test_an_exception_before_the_commit_changes_nothing(root):
    before = {p.name: p.read_bytes() for p in (root / "Annotations" / "c1").iterdir()}
    meta = (root / "meta_expressions.json").read_bytes()
    with pytest.raises(RuntimeError):
        with transaction.ClipSave(root, "c1") as save:
            save.write_label("00000", new_label())
            raise RuntimeError("stopped")
    assert {p.name: p.read_bytes() for p in (root / "Annotations" / "c1").iterdir()} == before
    assert (root / "meta_expressions.json").read_bytes() == meta
    assert sorted(p.name for p in (root / "Annotations").iterdir()) == ["c1"]


def test_one_save_of_a_clip_at_a_time(root):
    with transaction.ClipSave(root, "c1"):
        with pytest.raises(transaction.SaveBusyError, match="another process is saving clip c1"):
            transaction.ClipSave(root, "c1").__enter__()
        assert transaction.recover(root) == []  # a save in progress is left alone


def test_an_interrupted_commit_is_reported_then_finished(root, monkeypatch):
    def killed(*args):
        raise OSError("power cut (simulated)")

    monkeypatch.setattr(transaction, "_finish", killed)
    with pytest.raises(OSError):
        with transaction.ClipSave(root, "c1") as save:
            for t in range(T):
                save.write_label(f"{t:05d}", new_label())
            save.commit(NEW)
    monkeypatch.undo()
    found = problems(root, "interrupted_save")
    assert [(p.severity, p.clip_id) for p in found] == [("error", "c1")]
    assert "--recover" in found[0].hint and not validate_dataset(root).ok
    done = transaction.recover(root)
    assert [(r.clip_id, r.action) for r in done] == [("c1", "finished")]
    assert "finished the interrupted save of clip c1" in done[0].describe()
    assert [e.text for e in Dataset(root).expressions("c1")] == [e.text for e in NEW]
    assert np.array_equal(read_label_png(root / "Annotations" / "c1" / "00002.png"), new_label())
    assert validate_dataset(root).ok


def test_stray_temporary_files_are_reported_and_removed_when_stale(root):
    folder = root / "Annotations" / "c1"
    stale = folder / ".00001.png.abc123.tmp"
    young = folder / ".00002.png.def456.tmp"
    index = root / ".meta_expressions.json.xyz789.tmp"
    for path in (stale, young, index):
        path.write_bytes(b"half written")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    found = problems(root, "stray_temp_file")
    assert sorted(p.path for p in found) == sorted(str(p) for p in (stale, young, index))
    assert {p.severity for p in found} == {"warning"} and validate_dataset(root).ok
    done = transaction.recover(root)
    assert sorted(str(r.path) for r in done) == sorted([str(stale), str(index)])
    assert young.exists()  # may belong to a writer still running: reported, not removed
    assert not stale.exists() and not index.exists()
    assert json.loads((root / "meta_expressions.json").read_text())["videos"]["c1"]


def test_recover_limited_to_clips_writes_nothing_when_all_is_well(root):
    before = sorted(p.name for p in (root / "Annotations").iterdir())
    assert transaction.recover(root, ["c1"]) == [] and transaction.inspect(root) == []
    assert sorted(p.name for p in (root / "Annotations").iterdir()) == before
