"""The per-clip lock: exclusive, stale detection, explicit takeover only."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from refvps.annotate.lock import ClipLock, ClipLockedError


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def write_lock(path, **fields):
    info = {
        "owner": "other",
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "user": "x",
        "started": time.time(),
        "heartbeat": time.time(),
    }
    info.update(fields)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info))


def test_acquire_is_exclusive_and_release_frees(tmp_path):
    path = tmp_path / "c" / "lock.json"
    first = ClipLock(path, "c", "server-1")
    first.acquire()
    assert path.exists() and first.verify()
    second = ClipLock(path, "c", "server-2")
    with pytest.raises(ClipLockedError) as info:
        second.acquire()
    # Another owner in this very process (a second server object) may take over only when asked.
    assert info.value.same_process and info.value.can_take_over
    first.release()
    assert not path.exists()
    second.acquire()
    assert second.verify()


def test_live_lock_of_another_process_cannot_be_taken_over(tmp_path):
    path = tmp_path / "c" / "lock.json"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        write_lock(path, pid=other.pid)
        lock = ClipLock(path, "c", "me")
        with pytest.raises(ClipLockedError) as info:
            lock.acquire(take_over=True)
        assert not info.value.stale and not info.value.can_take_over
        assert "process" in str(info.value) and info.value.hint
        assert json.loads(path.read_text())["pid"] == other.pid  # untouched
    finally:
        other.kill()
        other.wait()


def test_lock_of_a_dead_process_is_stale_and_taken_over_only_explicitly(tmp_path):
    path = tmp_path / "c" / "lock.json"
    write_lock(path, pid=dead_pid())
    lock = ClipLock(path, "c", "me")
    with pytest.raises(ClipLockedError) as info:
        lock.acquire()
    assert info.value.stale and info.value.can_take_over
    assert "take" in info.value.hint
    lock.acquire(take_over=True)
    assert json.loads(path.read_text())["owner"] == "me"


def test_old_heartbeat_on_another_host_is_stale(tmp_path):
    path = tmp_path / "c" / "lock.json"
    write_lock(path, host="elsewhere", pid=1, heartbeat=time.time() - 3600)
    lock = ClipLock(path, "c", "me")
    assert lock.is_stale(lock.read())
    write_lock(path, host="elsewhere", pid=1, heartbeat=time.time())
    assert not lock.is_stale(lock.read())


def test_corrupt_lock_file_counts_as_stale(tmp_path):
    path = tmp_path / "c" / "lock.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    lock = ClipLock(path, "c", "me")
    with pytest.raises(ClipLockedError) as info:
        lock.acquire()
    assert info.value.stale
    lock.acquire(take_over=True)
    assert lock.verify()


def test_heartbeat_notices_a_takeover(tmp_path):
    path = tmp_path / "c" / "lock.json"
    mine = ClipLock(path, "c", "me")
    mine.acquire()
    first_beat = json.loads(path.read_text())["heartbeat"]
    time.sleep(0.01)
    assert mine.heartbeat()
    assert json.loads(path.read_text())["heartbeat"] > first_beat
    write_lock(path, owner="thief")  # someone took the (stale) lock over
    assert not mine.heartbeat()
    assert not mine.held
    mine.release()  # must not delete the thief's lock
    assert json.loads(path.read_text())["owner"] == "thief"
