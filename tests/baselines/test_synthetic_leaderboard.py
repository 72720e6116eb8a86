"""scripts/make_synthetic_leaderboard.py: the entries of the reference baselines (and the pages) on a
small synthetic benchmark."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from refvps.leaderboard import read_entry
from refvps.synth import generate_benchmark

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_synthetic_leaderboard.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("make_synthetic_leaderboard", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_entries_on_a_small_synthetic_benchmark(script, tmp_path):
    dataset = generate_benchmark(tmp_path / "synthetic", clips=3, seed=0, frames=8)
    summaries = script.make_entries(
        tmp_path / "entries", dataset=dataset, work=tmp_path / "work", names=("empty", "oracle"), bootstrap=0
    )
    assert summaries["oracle"]["J"] == pytest.approx(100.0) and summaries["oracle"]["TempCon"] == 0
    oracle = read_entry(tmp_path / "entries" / "oracle.json")
    assert oracle.info.name == "Oracle (ground truth)" and oracle.info.benchmark == "synthetic"
    assert oracle.info.command.startswith("refvps run-baseline oracle --dataset synthetic")
    assert str(tmp_path) not in json.dumps(oracle.to_json())  # no paths of this machine in the entry
    empty = read_entry(tmp_path / "entries" / "empty.json")
    always = [r for r in empty.results["per_expression"] if r["video"] not in script.target_absent_clips(dataset)]
    assert always and all(r["TempCon"] == 0 for r in always)


def test_main_writes_entries_and_pages(script, tmp_path):
    dataset = generate_benchmark(tmp_path / "synthetic", clips=2, seed=0, frames=8)
    entries, pages = tmp_path / "entries", tmp_path / "pages"
    argv = ["--dataset", str(dataset), "--out", str(entries), "--pages", str(pages), "--bootstrap", "0"]
    assert script.main(argv) == 0
    assert sorted(p.stem for p in entries.glob("*.json")) == ["empty", "full", "motion", "oracle"]
    table = (pages / "README.md").read_text()
    assert table.index("Oracle (ground truth)") < table.index("Empty (all background)")  # sorted by J
    assert (pages / "index.html").is_file() and (pages / "leaderboard.csv").is_file()
