"""The paper's published rows for the other benchmarks, and a converted benchmark's run ranked next to
them: never together with rows scored under another protocol."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from refvps.leaderboard import load_entries
from refvps.leaderboard.reference import suite_reference_entries
from refvps.leaderboard.render import benchmark_groups, entry_benchmark, leaderboard_rows
from refvps.scoring import evaluate

from .conftest import random_predictions

REPO = Path(__file__).resolve().parents[2]
SUITE = REPO / "leaderboard" / "reference" / "suite"
PAPER = REPO.parent / "shared" / "reference" / "rem_paper_fulltext.txt"
PRINTED = {"REM": "REM (Ours)", "VD-IT": "VDIT", "ReferFormer": "Referformer"}


def _numbers(line: str) -> list[float]:
    return [float(x) for x in re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])", line)]


def _row(text: str, start: str, after: tuple[str, ...] = (" ", "\t")) -> str:
    """The first line of ``text`` that starts with ``start`` followed by one of ``after``."""
    lines = [line for line in text.splitlines() if any(line.startswith(start + a) for a in after)]
    assert lines, start
    return lines[0]


def test_every_suite_row_is_copied_from_the_paper():
    if not PAPER.is_file():
        pytest.skip(f"the paper's text is not at {PAPER} (it is in CI's shared folder)")
    text = PAPER.read_text(encoding="utf-8")
    table_b = text[text.index("Method\tRef-VPS\t\tRef-DAVIS") :]
    files = sorted(SUITE.glob("*.json"))
    assert len(files) == 20
    for path in files:
        entry = json.loads(path.read_text())
        info, summary = entry["entry"], entry["summary"]
        assert info["reported"] and "arXiv:2410.23287v1, Table" in info["source"], path.name
        method = info["name"].split(" (")[0]
        printed = PRINTED.get(method, method)
        if info["benchmark"] in ("Ref-DAVIS17 val", "Ref-YouTube-VOS valid"):
            row = _numbers(_row(text, printed))[-6:]  # Table 1: J&F, J, F of Ref-DAVIS, then of Ref-YTB
            part = row[:3] if info["benchmark"].startswith("Ref-DAVIS") else row[3:]
            assert [summary["JF"], summary["J"], summary["F"]] == part, path.name
            if summary["TempCon"] is not None:
                davis_j, davis_tc = _numbers(_row(table_b, printed, ("\t",)))[-2:]
                assert (summary["J"], summary["TempCon"]) == (davis_j, davis_tc), path.name
        else:
            column = ["MUTR", "UNINEXT", "VD-IT", "REM"].index(method)
            table_2 = _numbers(_row(text, "VSPW" if info["benchmark"].startswith("VSPW") else "BURST", ("\t",)))
            assert summary["J"] == table_2[column], path.name
        assert entry["meta"]["protocol"] in ("ref-davis", "official-server", "vspw-stuff", "burst")


def test_a_converted_run_is_ranked_with_the_rows_of_its_protocol_only(ref_davis, tmp_path, cli):
    pred = random_predictions(ref_davis.root, tmp_path / "pred", seed=21)
    own = evaluate(pred, ref_davis.root, bootstrap=0, gt_cache=False, method="random")
    generic = evaluate(pred, ref_davis.root, bootstrap=0, gt_cache=False, method="random", protocol="refvps")
    own.write_json(tmp_path / "own.json")
    generic.write_json(tmp_path / "generic.json")
    entries = load_entries([tmp_path / "own.json", tmp_path / "generic.json"])
    assert [entry_benchmark(e) for e in entries] == ["Ref-DAVIS17 val (ref-davis protocol)", "Ref-DAVIS17 val"]
    suite = suite_reference_entries(entries)
    assert len(suite) == 6 and {entry_benchmark(e) for e in suite} == {"Ref-DAVIS17 val (ref-davis protocol)"}
    groups = dict(benchmark_groups(leaderboard_rows(entries + suite)))
    assert len(groups["Ref-DAVIS17 val (ref-davis protocol)"]) == 7 and len(groups["Ref-DAVIS17 val"]) == 1
    result = cli("leaderboard", tmp_path / "own.json", "--out", tmp_path / "site")
    assert result.code == 0, result.err
    readme = (tmp_path / "site" / "README.md").read_text()
    assert "REM (reported, paper v1)" in readme and "72.60" in readme  # REM's Ref-DAVIS J&F next to the run
    assert "VSPW" not in readme and "BURST" not in readme
    assert "## Ref-VPS\n" not in readme and "J None" not in readme  # only its own benchmark's published rows
