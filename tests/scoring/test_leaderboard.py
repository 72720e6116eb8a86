"""Leaderboard entries and pages: the entry format, the reported rows, Markdown / CSV / HTML outputs."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from refvps.errors import UsageError
from refvps.leaderboard import (
    CSV_COLUMNS,
    build_leaderboard,
    builtin_reference_entries,
    load_entries,
    make_entry,
    read_entry,
    reference_entries,
    reported_entry,
    write_entry,
)
from refvps.scoring import evaluate

from .conftest import write_rle_json

REPO = Path(__file__).resolve().parents[2]

# DESIGN §5: Ref-VPS J / TempCon, paper v1 Table 3 and Table B; the later version's J.
PUBLISHED_V1 = {"MUTR": (24.07, 2.9), "UNINEXT": (26.25, 5.2), "VD-IT": (35.27, 4.7), "REM ModelScope": (48.96, 2.8)}
PUBLISHED_LATER = {"UNINEXT": 28.7, "VD-IT": 37.9, "REM ModelScope": 49.0, "REM Wan 14B": 50.0}


@pytest.fixture(scope="module")
def two_results(scored_case, tmp_path_factory):
    """Results of the perturbed predictions and of a better (half-oracle) method."""
    folder = tmp_path_factory.mktemp("lb")
    perturbed = evaluate(scored_case["rle"], scored_case["dataset"], method="perturbed", bootstrap=100)
    better_masks = {
        key: [label == 1 if t % 2 else mask for t, (label, mask) in enumerate(zip(scored_case["truth"][key[0]], masks))]
        for key, masks in scored_case["predictions"].items()
    }
    predictions = write_rle_json(tmp_path_factory.mktemp("lb_pred") / "better.json", better_masks)
    better = evaluate(predictions, scored_case["dataset"], method="better", bootstrap=100)
    perturbed.write_json(folder / "perturbed.json")
    better.write_json(folder / "better_results.json")
    return folder, perturbed, better


def test_entry_is_results_plus_method_metadata(two_results, tmp_path):
    _, perturbed, _ = two_results
    entry = make_entry(perturbed, name="Perturbed masks", url="https://example.org/method", backbone="none",
                       checkpoint="ckpt.pt", command="refvps evaluate ...")
    path = write_entry(entry, tmp_path / "entries" / "perturbed.json")
    data = json.loads(path.read_text())
    assert data["summary"] == perturbed.to_json()["summary"]  # an entry reads as a results.json
    assert data["entry"]["name"] == "Perturbed masks" and data["entry"]["reported"] is False
    assert data["entry"]["benchmark"] == "dataset"  # the scored dataset's folder
    back = read_entry(path)
    assert back.info == entry.info and back.results == entry.results


def test_make_entry_accepts_a_results_file_and_bare_results_are_named(two_results):
    folder, perturbed, _ = two_results
    entry = make_entry(folder / "perturbed.json", name="From file")
    assert entry.summary["J"] == pytest.approx(perturbed.summary.J)
    bare = read_entry(folder / "better_results.json")
    assert bare.name == "better"  # named after --method
    with pytest.raises(UsageError):
        make_entry(perturbed, name=" ")
    with pytest.raises(UsageError):
        reported_entry("Someone", J=10.0, source="")


def test_reference_files_match_the_published_numbers():
    files = sorted((REPO / "leaderboard" / "reference").glob("*.json"))
    assert len(files) == 8
    from_files = {read_entry(p).name: read_entry(p) for p in files}
    builtin = {e.name: e for e in builtin_reference_entries().values()}
    assert {n: e.to_json() for n, e in from_files.items()} == {n: e.to_json() for n, e in builtin.items()}
    for entry in from_files.values():
        assert entry.info.reported and entry.info.source and "2410.23287" in entry.info.source
        assert entry.info.benchmark == "Ref-VPS"
    for method, (j, tempcon) in PUBLISHED_V1.items():
        entry = from_files[f"{method} (reported, paper v1)"]
        assert (entry.summary["J"], entry.summary["TempCon"]) == (j, tempcon)
    for method, j in PUBLISHED_LATER.items():
        entry = from_files[f"{method} (reported, paper ICCV)"]
        assert entry.summary["J"] == j and entry.summary["TempCon"] is None
    assert len(reference_entries()) == 8


def _markdown_rows(text):
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0].isdigit():
            rows.append(cells)
    return rows


def test_pages_with_reference_rows(two_results, tmp_path):
    folder, perturbed, better = two_results
    entries = load_entries([folder / "perturbed.json", folder / "better_results.json"]) + reference_entries()
    written = build_leaderboard(entries, tmp_path / "site", title="Test board")
    assert {"README.md", "leaderboard.csv", "index.html", "j_per_concept.png", "j_vs_tempcon.png"} <= set(written)

    readme = (tmp_path / "site" / "README.md").read_text()
    assert readme.startswith("# Test board")
    header = next(line for line in readme.splitlines() if line.startswith("| #"))
    assert "J 95% CI" in header and "TempCon" in header and "J&F" in header and "concept-balanced" in header
    assert "J Motion patterns" in header and "J Temporal object changes" in header  # one column per category
    rows = _markdown_rows(readme)
    assert len(rows) == 10
    js = [float(r[2]) for r in rows]
    assert js == sorted(js, reverse=True)
    assert rows[0][1] == "better" and float(rows[0][2]) == pytest.approx(better.summary.J, abs=0.005)
    assert "Sources of reported rows" in readme and "†" in readme and "compare only rows of the same benchmark" in readme

    with open(tmp_path / "site" / "leaderboard.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0])[: len(CSV_COLUMNS)] == list(CSV_COLUMNS)
    assert any(c.startswith("J_category:") for c in table[0])
    assert [r["method"] for r in table][:2] == ["better", "perturbed"]
    assert float(table[1]["J"]) == pytest.approx(perturbed.summary.J)
    assert float(table[1]["J_ci95_low"]) == pytest.approx(perturbed.summary.J_ci95[0])
    assert sum(r["reported"] == "yes" for r in table) == 8


def test_html_is_self_contained(two_results, tmp_path):
    folder, _, _ = two_results
    entries = load_entries([folder]) + reference_entries()
    build_leaderboard(entries, tmp_path / "site")
    page = (tmp_path / "site" / "index.html").read_text()
    # Nothing is loaded from elsewhere: no external scripts, styles, images, fonts or imports.
    assert not re.search(r"""<(script|img|iframe|link|source|video|audio)[^>]*\s(src|href)\s*=\s*["']?(https?:)?//""", page, re.I)
    assert "<link" not in page.lower() and "@import" not in page and "url(" not in page
    assert page.count("data:image/png;base64,") == 2
    assert "<script>" in page and "sortable" in page
    assert page.count("<tr") == 1 + len(entries)


def test_cli_leaderboard(two_results, tmp_path):
    folder, _, _ = two_results
    result = subprocess.run(
        [sys.executable, "-m", "refvps", "leaderboard", folder / "perturbed.json", folder / "better_results.json",
         "--out", tmp_path / "site", "--no-reference", "--title", "Synthetic"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    readme = (tmp_path / "site" / "README.md").read_text()
    assert readme.startswith("# Synthetic") and len(_markdown_rows(readme)) == 2
    assert "Sources of reported rows" not in readme and "paper v1" not in readme  # --no-reference
    missing = subprocess.run(
        [sys.executable, "-m", "refvps", "leaderboard", tmp_path / "nope.json", "--out", tmp_path / "x"],
        capture_output=True, text=True,
    )
    assert missing.returncode == 2 and missing.stderr.startswith("Error:") and "Traceback" not in missing.stderr


@pytest.mark.browser
def test_html_table_sorts_in_a_browser(two_results, tmp_path):
    import shutil

    sync_api = pytest.importorskip("playwright.sync_api")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("no Chromium on this machine")
    folder, _, _ = two_results
    build_leaderboard(load_entries([folder]) + reference_entries(), tmp_path / "site")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable)
        page = browser.new_page()
        requests = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto((tmp_path / "site" / "index.html").as_uri())
        column = "tbody tr td:nth-child(5)"  # TempCon
        page.click("th:nth-child(5)")
        ascending = page.eval_on_selector_all(column, "cells => cells.map(c => c.getAttribute('data-sort'))")
        page.click("th:nth-child(5)")
        descending = page.eval_on_selector_all(column, "cells => cells.map(c => c.getAttribute('data-sort'))")
        browser.close()
    values = [float(v) for v in ascending if v]
    assert values == sorted(values) and ascending[-1] == ""  # rows without TempCon go last
    assert [float(v) for v in descending if v] == sorted(values, reverse=True)
    assert all(url.startswith(("file:", "data:")) for url in requests)
