"""``refvps evaluate`` end to end: outputs, warnings, and a clear error for every kind of bad input."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from .conftest import encode_png, rle_of, write_png_tree, write_rle_json


def run(*args):
    return subprocess.run([sys.executable, "-m", "refvps", *map(str, args)], capture_output=True, text=True)


def assert_clean_error(result, *needles, code=1):
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.startswith("Error:"), result.stderr
    assert "Hint:" in result.stderr
    flat = " ".join(result.stderr.split())  # rich may wrap long lines
    for needle in needles:
        assert " ".join(str(needle).split()) in flat, f"{needle!r} not in {result.stderr!r}"


def test_scores_and_writes_results_and_csv(scored_case, tmp_path):
    out, table = tmp_path / "results.json", tmp_path / "per_expression.csv"
    result = run(
        "evaluate",
        scored_case["tree"],
        "--dataset",
        scored_case["dataset"],
        "--output",
        out,
        "--csv",
        table,
        "--method",
        "perturbed",
        "--bootstrap",
        "100",
        "--seed",
        "1",
    )
    assert result.returncode == 0, result.stderr
    assert "J&F" in result.stdout and "TempCon" in result.stdout
    data = json.loads(out.read_text())
    assert data["meta"]["method"] == "perturbed" and data["meta"]["options"]["bootstrap"] == 100
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == data["summary"]["n_expressions"] == 12
    assert {"video", "exp_id", "J", "F", "TempCon", "J_recall", "n_frames", "n_missing"} <= set(rows[0])
    assert float(rows[0]["J"]) == pytest.approx(data["per_expression"][0]["J"])


def test_json_output_and_no_boundary(scored_case):
    result = run(
        "evaluate",
        scored_case["rle"],
        "-d",
        scored_case["dataset"],
        "--no-boundary",
        "--json",
        "--workers",
        "1",
        "--bootstrap",
        "0",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["summary"]["F"] is None and data["summary"]["JF"] is None and data["summary"]["J_ci95"] is None
    assert data["meta"]["format"] == "coco-rle"


def test_missing_frames_warn_once_and_strict_fails(scored_case, tmp_path):
    skip = {("clip_a", "0", 1), ("clip_b", "3", 2), ("clip_c", "1", 0)}
    tree = write_png_tree(tmp_path / "pred", scored_case["predictions"], skip=skip)
    result = run("evaluate", tree, "-d", scored_case["dataset"], "--bootstrap", "0")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert len(warnings) == 1 and "3 predicted frame(s) missing" in " ".join(result.stderr.split())
    strict = run("evaluate", tree, "-d", scored_case["dataset"], "--strict")
    assert_clean_error(strict, "--strict", "3 predicted frame(s) missing", tree)


def test_nonexistent_predictions(scored_case, tmp_path):
    missing = tmp_path / "no_such_predictions"
    result = run("evaluate", missing, "-d", scored_case["dataset"])
    assert_clean_error(result, "predictions not found", missing)
    assert '"size": [h, w]' in result.stderr  # messages are printed as text, not as rich markup


def test_nonexistent_dataset(scored_case, tmp_path):
    missing = tmp_path / "no_such_dataset"
    assert_clean_error(run("evaluate", scored_case["tree"], "-d", missing), "dataset folder does not exist", missing)


def test_unknown_format(scored_case, tmp_path):
    odd = tmp_path / "predictions.txt"
    odd.write_text("these are not masks")
    assert_clean_error(run("evaluate", odd, "-d", scored_case["dataset"]), "unknown predictions format", odd)


def test_folder_without_masks(scored_case, tmp_path):
    flat = tmp_path / "flat"
    (flat / "clip_a").mkdir(parents=True)
    (flat / "clip_a" / "00000.png").write_bytes(encode_png(np.zeros((4, 4), bool)))
    assert_clean_error(
        run("evaluate", flat, "-d", scored_case["dataset"]), "no predicted masks found", "one folder per expression"
    )


def _tree_copy(scored_case, tmp_path):
    tree = tmp_path / "pred"
    shutil.copytree(scored_case["tree"], tree)
    return tree


def test_mask_size_differs_from_the_frame(scored_case, tmp_path):
    tree = _tree_copy(scored_case, tmp_path)
    bad = tree / "clip_b" / "2" / "00003.png"
    bad.write_bytes(encode_png(np.ones((18, 26), bool)))  # half the frame size
    assert_clean_error(run("evaluate", tree, "-d", scored_case["dataset"]), "differs from the frame size", "26x18", bad)


def test_corrupt_png(scored_case, tmp_path):
    tree = _tree_copy(scored_case, tmp_path)
    bad = tree / "clip_a" / "1" / "00002.png"
    bad.write_bytes(b"this is not a PNG file at all")
    assert_clean_error(run("evaluate", tree, "-d", scored_case["dataset"], "--workers", "2"), "cannot be decoded", bad)


def test_truncated_png(scored_case, tmp_path):
    tree = _tree_copy(scored_case, tmp_path)
    bad = tree / "clip_c" / "0" / "00001.png"
    data = encode_png(np.random.default_rng(0).random((36, 52)) < 0.5)
    bad.write_bytes(data[: len(data) // 2])
    assert_clean_error(run("evaluate", tree, "-d", scored_case["dataset"]), "corrupt or truncated", bad)


@pytest.mark.parametrize(
    "segmentation, needle",
    [
        ({"size": [36, 52], "counts": "not an RLE!"}, "counts string is not pycocotools RLE"),
        ({"size": [36, 52], "counts": [5, 10]}, "runs add up to 15 pixels"),
        ({"size": [36, 52]}, "segmentation must be an object"),
        ({"size": [36, 50], "counts": rle_of(np.zeros((36, 50), bool))["counts"]}, "differs from the frame size"),
    ],
)
def test_invalid_rle(scored_case, tmp_path, segmentation, needle):
    path = write_rle_json(tmp_path / "pred.json", scored_case["predictions"])
    entries = json.loads(path.read_text())
    entries[7]["segmentation"] = segmentation
    path.write_text(json.dumps(entries))
    assert_clean_error(run("evaluate", path, "-d", scored_case["dataset"]), needle, path, "entry 7")


def test_rle_entry_without_keys_and_not_a_list(scored_case, tmp_path):
    path = tmp_path / "pred.json"
    path.write_text(json.dumps([{"video": "clip_a", "frame": "00000"}]))
    assert_clean_error(
        run("evaluate", path, "-d", scored_case["dataset"]), "entry 0", "missing key(s) exp_id, segmentation"
    )
    path.write_text(json.dumps({"annotations": []}))
    assert_clean_error(run("evaluate", path, "-d", scored_case["dataset"]), "JSON list", path)
    path.write_text("[{")
    assert_clean_error(run("evaluate", path, "-d", scored_case["dataset"]), "does not parse", path)


def test_zip_with_nothing_usable(scored_case, tmp_path):
    path = tmp_path / "submission.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
        archive.writestr("clip_a/00000.png", encode_png(np.zeros((36, 52), bool)))  # no expression folder
    assert_clean_error(run("evaluate", path, "-d", scored_case["dataset"]), "no usable predicted masks", path)
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 this zip was cut short")
    assert_clean_error(run("evaluate", broken, "-d", scored_case["dataset"]), "not a readable zip", broken)


def test_dataset_that_does_not_validate(scored_case, tmp_path):
    dataset = tmp_path / "dataset"
    shutil.copytree(scored_case["dataset"], dataset)
    meta = json.loads((dataset / "meta_expressions.json").read_text())
    meta["videos"]["clip_b"]["expressions"]["1"]["exp"] = ""  # an empty referring expression
    (dataset / "meta_expressions.json").write_text(json.dumps(meta))
    assert_clean_error(run("evaluate", scored_case["tree"], "-d", dataset), "does not validate", "clip_b")


def test_corrupt_ground_truth_mask(scored_case, tmp_path):
    dataset = tmp_path / "dataset"
    shutil.copytree(scored_case["dataset"], dataset)
    bad = dataset / "Annotations" / "clip_a" / "00003.png"
    bad.write_bytes(b"garbage")
    assert_clean_error(run("evaluate", scored_case["tree"], "-d", dataset), bad)
