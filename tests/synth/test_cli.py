"""``refvps synth`` end to end, through the real entry point (errors as the user sees them)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from refvps.errors import UsageError
from refvps.synth import parse_frames, parse_size


def refvps(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "refvps", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_synth_then_validate(tmp_path):
    out = tmp_path / "bench"
    done = refvps("synth", out, "--clips", 2, "--seed", 5, "--size", "96x64", "--frames", 8, "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["clips"] == 2 and summary["frames"] == 16 and summary["size"] == [96, 64]
    assert len(list((out / "JPEGImages").iterdir())) == 2
    checked = refvps("validate", out, "--refvps")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_rerun_reports_what_was_already_there(tmp_path):
    out = tmp_path / "bench"
    args = ("synth", out, "--clips", 2, "--size", "64x48", "--frames", 8, "--json")
    assert json.loads(refvps(*args).stdout)["frames_already_there"] == 0
    again = refvps(*args)
    assert again.returncode == 0 and json.loads(again.stdout)["frames_already_there"] == 16


def test_preset_with_explicit_overrides(tmp_path):
    out = tmp_path / "b"
    done = refvps("synth", out, "--preset", "refvps", "--clips", 1, "--size", "64x36", "--frames", "8-10", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["size"] == [64, 36] and 8 <= summary["frames"] <= 10


@pytest.mark.parametrize("size", ["12x", "wide", "0x10", "99999x64"])
def test_bad_size_is_a_usage_error_without_traceback(tmp_path, size):
    done = refvps("synth", tmp_path / "o", "--size", size)
    assert done.returncode == 2
    assert "Error:" in done.stderr and "--size" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "o").exists()


def test_foreign_folder_is_refused_with_a_hint(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    done = refvps("synth", tmp_path, "--clips", 1, "--frames", 8, "--size", "64x48")
    assert done.returncode == 2
    assert done.stderr.startswith("Error:") and "Hint:" in done.stderr  # refused before any progress bar
    assert "Traceback" not in done.stderr
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_parsers():
    assert parse_size("256x144") == (256, 144) and parse_size(" 64 X 48 ") == (64, 48)
    assert parse_frames("24") == 24 and parse_frames("60-400") == (60, 400) and parse_frames("9-9") == 9
    for bad in ("", "x", "1x2x3"):
        with pytest.raises(UsageError):
            parse_size(bad)
    for bad in ("", "a", "10-", "-5", "400-60"):
        with pytest.raises(UsageError):
            parse_frames(bad)
