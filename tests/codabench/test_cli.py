"""``refvps codabench`` and ``refvps codabench-score`` from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import yaml


def run(*args):
    return subprocess.run([sys.executable, "-m", "refvps", *args], capture_output=True, text=True)


def test_build_from_the_command_line(split_root, tmp_path):
    out = tmp_path / "bundle.zip"
    result = run(
        "codabench",
        str(split_root),
        "--out",
        str(out),
        "--title",
        "My benchmark",
        "--no-sample",
        "--dev-start",
        "2031-01-01",
        "--test-start",
        "2031-02-01 12:00",
        "--test-daily",
        "1",
        "--test-total",
        "5",
        "--docker-image",
        "me/scorer:1",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["splits"] == {"dev": 3, "test": 3} and report["sample"] is False
    with zipfile.ZipFile(out) as archive:
        document = yaml.safe_load(archive.read("competition.yaml"))
        assert "starting_kit/sample_submission.zip" not in archive.namelist()
    assert document["title"] == "My benchmark" and document["docker_image"] == "me/scorer:1"
    assert document["phases"][1]["start"] == "2031-02-01 12:00:00"
    assert document["phases"][0]["end"] == "2031-02-01 11:59:59"
    assert (document["phases"][1]["max_submissions_per_day"], document["phases"][1]["max_submissions"]) == (1, 5)
    assert "end" not in document["phases"][1]  # the test phase stays open
    assert "solutions" not in document


def test_usage_errors(split_root, tmp_path):
    result = run("codabench", str(split_root), "--out", str(tmp_path / "b.zip"), "--test-split", "hidden")
    assert result.returncode == 2 and "Error:" in result.stderr and "Hint:" in result.stderr
    assert "no split folder 'hidden'" in result.stderr
    result = run("codabench", str(split_root), "--out", str(tmp_path / "b.zip"), "--dev-start", "soon")
    assert result.returncode == 2 and "not a date" in result.stderr
    result = run("codabench", str(split_root), "--out", str(tmp_path / "b.zip"), "--page", "rules=x.md")
    assert result.returncode == 2 and "no page named rules" in result.stderr
    assert not (tmp_path / "b.zip").exists()


def test_score_without_a_configuration(tmp_path):
    result = run(
        "codabench-score", str(tmp_path / "input"), str(tmp_path / "output"), "--config", str(tmp_path / "c.json")
    )
    assert result.returncode == 1 and "Error:" in result.stderr and "c.json" in result.stderr
    assert not (tmp_path / "output" / "scores.json").exists()
