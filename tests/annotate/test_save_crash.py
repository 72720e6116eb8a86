"""A save killed at any point leaves the clip wholly old or wholly new (after the recovery at start),
and ``refvps validate`` flags the interrupted state until then.

The fault injection kills a real process (SIGKILL, no cleanup) at every file-system call of a save in
turn: a forked child counts its calls to ``os.open``, ``os.replace``, ``os.fsync``, ... and kills
itself at call ``k``, for every ``k`` from the first call to the last; then the same for the recovery.
"""

from __future__ import annotations

import json
import os
import shutil
import signal

import pytest

from refvps.annotate.session import ClipSession
from refvps.dataset import Dataset, transaction
from refvps.dataset.validate import validate_dataset
from tests.annotate.conftest import EXPRESSIONS, OracleSegmenter, T, blob_clip

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")

FILE_SYSTEM_CALLS = ("open", "replace", "rename", "fsync", "unlink", "rmdir", "mkdir", "link")
_, GT = blob_clip()
CLIP = "clip_b"


def in_child_killed_at(k: int | None, action) -> int | None:
    """Run ``action(start_counting)`` in a forked child that SIGKILLs itself at its ``k``-th file-system
    call once counting started. Returns the number of calls when it was not killed, None when it was."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.close(read_end)
            calls = {"n": 0, "on": False}

            def counted(function):
                def wrapper(*args, **kwargs):
                    if calls["on"]:
                        calls["n"] += 1
                        if calls["n"] == k:
                            os.kill(os.getpid(), signal.SIGKILL)
                    return function(*args, **kwargs)

                return wrapper

            for name in FILE_SYSTEM_CALLS:
                setattr(os, name, counted(getattr(os, name)))
            action(lambda: calls.update(on=True))
            calls["on"] = False
            os.write(write_end, str(calls["n"]).encode())
        except BaseException:  # noqa: BLE001 - reported as the exit code
            code = 3
        finally:
            os._exit(code)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read_end) as pipe:
        written = pipe.read()
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return None
    assert os.WEXITSTATUS(status) == 0, f"child failed (exit {os.WEXITSTATUS(status)})"
    return int(written)


def snapshot(root) -> dict:
    """The clip's ground truth as readers see it: mask file bytes and its entry of meta_expressions.json."""
    folder = root / "Annotations" / CLIP
    masks = {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.is_dir() else {}
    entry = json.loads((root / "meta_expressions.json").read_text())["videos"][CLIP]
    return {"masks": masks, "entry": entry}


def leftovers(root) -> list[str]:
    masks = root / "Annotations"
    hidden = [p.name for p in masks.iterdir() if p.name.startswith(".")] if masks.is_dir() else []
    temporary = [str(p.relative_to(root)) for p in root.rglob("*.tmp") if ".refvps-annotate" not in p.parts]
    return hidden + temporary


@pytest.fixture(scope="module", params=["saved before", "first save"])
def template(request, tmp_path_factory):
    """A dataset whose clip_b is saved (the old state; or, for a first save, has frames only) and has
    an unsaved session changing every frame and every expression (what the killed saves write); plus
    the new state, from a save run to its end."""
    from refvps.dataset import DatasetWriter
    from tests.annotate.conftest import meta

    base = tmp_path_factory.mktemp("crash")
    root = base / "template"
    rgb, labels = blob_clip()
    first = request.param == "first save"
    DatasetWriter(root).write_clip(CLIP, rgb, None if first else labels, [] if first else EXPRESSIONS, meta(CLIP))
    session = ClipSession(root, Dataset(root).clip(CLIP), OracleSegmenter(GT))
    for i in range(T):
        session.stroke(i, "target", "paint", 5, [[4, 4]])
        session.stroke(i, "ignore", "paint", 3, [[120, 60]])
    session.set_expressions(["ann3", "ann4"], [f"new expression {k}" for k in range(4)])
    session.close()
    finished = base / "finished"
    shutil.copytree(root, finished)
    ClipSession(finished, Dataset(finished).clip(CLIP), OracleSegmenter(GT)).save(validate=False)
    old, new = snapshot(root), snapshot(finished)
    assert len(new["masks"]) == T and (first or all(old["masks"][n] != new["masks"][n] for n in new["masks"]))
    assert (old["masks"] == {}) == first and old["entry"] != new["entry"]
    return root, old, new


def save_in_child(root):
    def action(start_counting):
        session = ClipSession(root, Dataset(root).clip(CLIP), OracleSegmenter(GT))
        start_counting()
        session.save(validate=False)

    return action


def recover_in_child(root):
    def action(start_counting):
        start_counting()
        transaction.recover(root)

    return action


def check_flagged(root, old, new) -> str:
    """What ``refvps validate`` says of the state a kill left; returns 'old', 'new' or 'pending'."""
    state = snapshot(root)
    report = validate_dataset(root, refvps_rules=True)
    interrupted = [p for p in report.problems if p.rule == "interrupted_save"]
    committed = (transaction.save_dir(root, CLIP) / "journal.json").exists()
    if committed:  # the switch-over may be half done: an error until it is finished
        assert [p.severity for p in interrupted] == ["error"] and not report.ok, report.problems
        return "pending"
    if state == old:
        if transaction.save_dir(root, CLIP).exists():  # staged, never committed: the clip is unchanged
            assert [p.severity for p in interrupted] == ["warning"]
        else:
            assert not interrupted
        return "old"
    assert state == new, "without a journal the clip must be wholly old or wholly new"
    return "new"


def check_recovered(root, old, new) -> str:
    state = snapshot(root)
    assert state in (old, new), "after recovery the clip is wholly old or wholly new"
    assert leftovers(root) == []
    report = validate_dataset(root, refvps_rules=True)
    assert not [p for p in report.problems if p.rule in transaction.RULES], report.problems
    assert report.ok or state == old, report.problems  # (a clip never saved does not validate yet)
    return "old" if state == old else "new"


@pytest.mark.slow
def test_a_save_killed_at_any_point_leaves_the_clip_old_or_new(template, tmp_path):
    source, old, new = template
    root = tmp_path / "ds"
    shutil.copytree(source, root)
    calls = in_child_killed_at(None, save_in_child(root))
    assert check_recovered(root, old, new) == "new" and calls > 2 * T  # every mask written, synced, renamed
    seen = {"flagged": set(), "recovered": set()}
    for k in range(1, calls + 1):
        shutil.rmtree(root)
        shutil.copytree(source, root)
        assert in_child_killed_at(k, save_in_child(root)) is None, f"call {k} of {calls} did not kill the save"
        seen["flagged"].add(check_flagged(root, old, new))
        transaction.recover(root)  # what refvps annotate does when it starts
        seen["recovered"].add(check_recovered(root, old, new))
    # The loop went through the commit point: early kills keep the old clip, late ones the new.
    assert seen["flagged"] == {"old", "pending", "new"} and seen["recovered"] == {"old", "new"}


@pytest.mark.slow
def test_a_recovery_killed_at_any_point_can_be_run_again(template, tmp_path):
    """Kill the save just after its commit point, then kill the recovery at each of its calls in turn."""
    source, old, new = template
    root, pending = tmp_path / "ds", tmp_path / "pending"
    shutil.copytree(source, root)
    calls = in_child_killed_at(None, save_in_child(root))
    for k in range(1, calls + 1):  # the first kill after which a journal is on disk
        shutil.rmtree(root)
        shutil.copytree(source, root)
        in_child_killed_at(k, save_in_child(root))
        if (transaction.save_dir(root, CLIP) / "journal.json").exists():
            break
    shutil.copytree(root, pending)
    steps = in_child_killed_at(None, recover_in_child(root))
    assert check_recovered(root, old, new) == "new" and steps > 3
    for j in range(1, steps + 1):
        shutil.rmtree(root)
        shutil.copytree(pending, root)
        assert in_child_killed_at(j, recover_in_child(root)) is None
        assert check_flagged(root, old, new) in ("pending", "new")
        transaction.recover(root)
        assert check_recovered(root, old, new) == "new"  # committed: always finished, never undone
