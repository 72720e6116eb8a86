"""The run.json lifecycle (refvps.predictions.record): running while the block runs, then complete,
error or interrupted; a status the block sets itself is kept; a disabled record writes nothing."""

from __future__ import annotations

import json

import pytest

from refvps.errors import UsageError
from refvps.predictions.record import RUN_FILE, resume_record, run_lifecycle


def _on_disk(out):
    return json.loads((out / RUN_FILE).read_text())


def test_complete(tmp_path):
    with run_lifecycle(tmp_path, {"method": "m", "clips": 3}) as run:
        during = _on_disk(tmp_path)
        run.update(converted=3)
    assert during["status"] == "running" and during["finished"] is None and during["method"] == "m"
    after = _on_disk(tmp_path)
    assert after["status"] == "complete" and after["exit_status"] == 0 and after["finished"]
    assert after["converted"] == 3 and after["format"] == 1 and after["refvps_version"]


@pytest.mark.parametrize(("exception", "status"), [(ValueError("boom"), "error"), (KeyboardInterrupt(), "interrupted")])
def test_error_and_interrupt_are_recorded_and_re_raised(tmp_path, exception, status):
    with pytest.raises(type(exception)), run_lifecycle(tmp_path, {"method": "m"}):
        raise exception
    record = _on_disk(tmp_path)
    assert record["status"] == status and record["finished"]  # never left saying "running"


def test_a_status_set_by_the_block_is_kept(tmp_path):
    with run_lifecycle(tmp_path, {"method": "m"}) as run:
        run.finish("failed", exit_status=3, reason="the method crashed")
    record = _on_disk(tmp_path)
    assert (record["status"], record["exit_status"], record["reason"]) == ("failed", 3, "the method crashed")


def test_disabled_writes_nothing(tmp_path):
    with run_lifecycle(tmp_path, {"method": "m"}, enabled=False) as run:
        run.finish("failed")
    with pytest.raises(ValueError), run_lifecycle(tmp_path, {"method": "m"}, enabled=False):
        raise ValueError("boom")
    assert not (tmp_path / RUN_FILE).exists()


def test_resume_refuses_another_configuration_with_finished_clips(tmp_path):
    assert resume_record(tmp_path, {"size": 1}, set()) is None  # nothing there yet
    with run_lifecycle(tmp_path, {"method": "m", "fingerprint": {"size": 1}}):
        pass
    assert resume_record(tmp_path, {"size": 1}, {"clip_a"})["status"] == "complete"
    assert resume_record(tmp_path, {"size": 2}, set())["fingerprint"] == {"size": 1}  # nothing done: no conflict
    with pytest.raises(UsageError, match="size"):
        resume_record(tmp_path, {"size": 2}, {"clip_a"})
