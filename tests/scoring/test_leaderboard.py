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

# Ref-VPS J / TempCon as the REM paper prints them: v1 Table 3 and Table B; the ICCV version's J.
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
    entry = make_entry(
        perturbed,
        name="Perturbed masks",
        url="https://example.org/method",
        backbone="none",
        checkpoint="ckpt.pt",
        command="refvps evaluate ...",
    )
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
    # Two benchmarks (the scored one, named after its dataset folder, and the published Ref-VPS rows):
    # one table each, the scored one first, each sorted by J and ranked from 1.
    assert [line for line in readme.splitlines() if line.startswith("## ")] == ["## dataset", "## Ref-VPS"]
    scored_part, reported_part = readme.split("## Ref-VPS")
    scored, reported = _markdown_rows(scored_part), _markdown_rows(reported_part)
    assert [r[1] for r in scored] == ["better", "perturbed"] and [r[0] for r in scored] == ["1", "2"]
    assert float(scored[0][2]) == pytest.approx(better.summary.J, abs=0.005)
    assert float(scored[1][2]) == pytest.approx(perturbed.summary.J, abs=0.005)
    assert [r[0] for r in reported] == [str(i) for i in range(1, 9)] and all("†" in r[1] for r in reported)
    reported_js = [float(r[2]) for r in reported]
    assert reported_js == sorted(reported_js, reverse=True) and reported_js[0] == 50.0 and reported_js[-1] == 24.07
    assert "Sources of reported rows" in readme and "compare only rows of the same benchmark" in readme

    with open(tmp_path / "site" / "leaderboard.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0])[: len(CSV_COLUMNS)] == list(CSV_COLUMNS)
    assert any(c.startswith("J_category:") for c in table[0])
    assert [r["method"] for r in table][:2] == ["better", "perturbed"]
    assert float(table[1]["J"]) == pytest.approx(perturbed.summary.J)
    assert float(table[1]["J_ci95_low"]) == pytest.approx(perturbed.summary.J_ci95[0])
    assert [r["reported"] for r in table] == ["no"] * 2 + ["yes"] * 8
    assert [int(r["rank"]) for r in table] == [1, 2] + list(range(1, 9))  # ranked within each benchmark
    assert {r["benchmark"] for r in table[2:]} == {"Ref-VPS"}


def test_html_is_self_contained(two_results, tmp_path):
    folder, _, _ = two_results
    entries = load_entries([folder]) + reference_entries()
    build_leaderboard(entries, tmp_path / "site")
    page = (tmp_path / "site" / "index.html").read_text()
    # Nothing is loaded from elsewhere: no external scripts, styles, images, fonts or imports.
    assert not re.search(
        r"""<(script|img|iframe|link|source|video|audio)[^>]*\s(src|href)\s*=\s*["']?(https?:)?//""", page, re.I
    )
    assert "<link" not in page.lower() and "@import" not in page and "url(" not in page
    assert page.count("data:image/png;base64,") == 2
    assert "<script>" in page and "sortable" in page
    assert page.count("<table") == 2  # the scored benchmark and the published Ref-VPS rows
    assert page.count("<tr") == 2 + len(entries)


def test_cli_leaderboard(two_results, tmp_path):
    folder, _, _ = two_results
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "refvps",
            "leaderboard",
            folder / "perturbed.json",
            folder / "better_results.json",
            "--out",
            tmp_path / "site",
            "--no-reference",
            "--title",
            "Synthetic",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    readme = (tmp_path / "site" / "README.md").read_text()
    assert readme.startswith("# Synthetic") and len(_markdown_rows(readme)) == 2
    assert "Sources of reported rows" not in readme and "paper v1" not in readme  # --no-reference
    missing = subprocess.run(
        [sys.executable, "-m", "refvps", "leaderboard", tmp_path / "nope.json", "--out", tmp_path / "x"],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and missing.stderr.startswith("Error:") and "Traceback" not in missing.stderr
    assert "Warning" not in result.stderr  # one benchmark: nothing to warn about


def _run_leaderboard(*args):
    return subprocess.run(
        [sys.executable, "-m", "refvps", "leaderboard", *map(str, args)], capture_output=True, text=True
    )


def test_cli_warns_when_benchmarks_mix_and_benchmark_names_them(two_results, tmp_path):
    folder, _, _ = two_results
    mixed = _run_leaderboard(folder / "perturbed.json", "--out", tmp_path / "mixed")
    assert mixed.returncode == 0, mixed.stderr
    flat = " ".join(mixed.stderr.split())
    assert (
        flat.startswith("Warning:")
        and "2 benchmarks" in flat
        and "dataset (1 row)" in flat
        and "Ref-VPS (8 rows)" in flat
    )
    # Named as the published rows' benchmark (spelt differently), the results join their table.
    joined = _run_leaderboard(
        folder / "perturbed.json",
        folder / "better_results.json",
        "--benchmark",
        "ref_vps",
        "--out",
        tmp_path / "joined",
    )
    assert joined.returncode == 0, joined.stderr
    assert "Warning" not in joined.stderr
    readme = (tmp_path / "joined" / "README.md").read_text()
    rows = _markdown_rows(readme)
    assert "## " not in readme and len(rows) == 10 and [r[0] for r in rows] == [str(i) for i in range(1, 11)]
    js = [float(r[2]) for r in rows]
    assert js == sorted(js, reverse=True)
    # A --reference folder that holds nothing is an error, not a silent fall-back to the built-in rows.
    empty = tmp_path / "no_reference_here"
    empty.mkdir()
    wrong = _run_leaderboard(folder / "perturbed.json", "--reference", empty, "--out", tmp_path / "x")
    assert wrong.returncode != 0 and wrong.stderr.startswith("Error:") and "no reported entries" in wrong.stderr
    assert "Traceback" not in wrong.stderr


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
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
        )
        page = browser.new_page()
        requests = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto((tmp_path / "site" / "index.html").as_uri())
        scored, published = page.locator("table.sortable").nth(0), page.locator("table.sortable").nth(1)

        def column(table, index):
            return table.locator(f"tbody tr td:nth-child({index})").evaluate_all(
                "cells => cells.map(c => c.getAttribute('data-sort'))"
            )

        before = column(published, 2)
        scored.locator("th:nth-child(3)").click()  # J, ascending: the worse method first
        assert [name for name in column(scored, 2)] == ["perturbed", "better"]
        assert column(published, 2) == before  # each table sorts on its own
        published.locator("th:nth-child(5)").click()  # TempCon, where some reported rows have none
        ascending = column(published, 5)
        published.locator("th:nth-child(5)").click()
        descending = column(published, 5)
        browser.close()
    values = [float(v) for v in ascending if v]
    assert values == [2.8, 2.9, 4.7, 5.2] and ascending[-1] == ""  # rows without TempCon go last
    assert [float(v) for v in descending if v] == sorted(values, reverse=True)
    assert all(url.startswith(("file:", "data:")) for url in requests)
