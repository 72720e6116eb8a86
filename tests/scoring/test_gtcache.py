"""J from RLE on runs, and the ground-truth RLE cache: used when valid, never stale, never fatal."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from refvps.dataset import encode_label_png
from refvps.scoring import engine, evaluate
from refvps.scoring.gtcache import SUBDIR, LabelRunsCache, content_digest

from .conftest import CLIPS, make_predictions, write_dataset, write_rle_json
from .test_evaluate import expected_scores


def _j(results) -> dict:
    return {(r.video, r.exp_id): (r.J, r.TempCon, r.J_recall, r.n_missing) for r in results.per_expression}


@pytest.fixture
def case(tmp_path):
    """A private dataset (the tests change its masks) with RLE predictions, some frames missing."""
    truth = write_dataset(tmp_path / "dataset")
    predictions = {}
    for index, (clip_id, labels) in enumerate(truth.items()):
        for exp_id, masks in make_predictions(index, labels).items():
            predictions[(clip_id, exp_id)] = masks
    skip = {("clip_a", "1", 3), ("clip_c", "0", 0)}
    rle = write_rle_json(tmp_path / "pred.json", predictions, skip=skip)
    return {
        "root": tmp_path,
        "dataset": tmp_path / "dataset",
        "truth": truth,
        "predictions": predictions,
        "skip": skip,
        "rle": rle,
        "cache": tmp_path / "cache",
    }


def _score(case, cache, **options):
    return evaluate(case["rle"], case["dataset"], boundary=False, bootstrap=0, gt_cache=cache, **options)


def test_j_on_runs_equals_the_naive_reference_with_and_without_the_cache(case):
    expected = expected_scores(case["truth"], case["predictions"], missing=case["skip"])
    for cache in (False, case["cache"], case["cache"]):  # off, filling, filled
        rows = {(r.video, r.exp_id): r for r in _score(case, cache).per_expression}
        for key, want in expected.items():
            assert rows[key].J == pytest.approx(want["J"], abs=1e-9)
            assert rows[key].TempCon == pytest.approx(want["TempCon"], abs=1e-9)
            assert rows[key].J_recall == pytest.approx(want["J_recall"], abs=1e-9)
        assert rows[("clip_a", "1")].n_missing == 1


def test_the_cache_is_filled_once_and_then_read_instead_of_the_pngs(case, monkeypatch):
    without = _j(_score(case, False))
    assert _j(_score(case, case["cache"])) == without
    files = sorted((case["cache"] / SUBDIR).glob("*.json"))
    assert len(files) == len(CLIPS)
    clip_dir = case["dataset"] / "Annotations" / "clip_a"
    cache = LabelRunsCache(case["cache"], clip_dir)
    for t in range(CLIPS["clip_a"][0]):
        data = (clip_dir / f"{t:05d}.png").read_bytes()
        assert cache.lookup(f"{t:05d}", content_digest(data), [1, 255]) is not None

    def no_decoding(*args, **kwargs):
        raise AssertionError("a label PNG was decoded although the cache holds it")

    monkeypatch.setattr(engine, "decode_label_png", no_decoding)
    assert _j(_score(case, case["cache"])) == without
    assert _j(_score(case, case["cache"], workers=2)) == without


def _same_length_change(label: np.ndarray, rng) -> np.ndarray:
    """The label map with some target pixels changed, encoded to the same number of bytes if possible."""
    original = len(encode_label_png(label))
    changed = label
    for _ in range(400):
        changed = label.copy()
        ys, xs = np.nonzero(label == 1)
        pick = rng.choice(len(ys), size=min(len(ys), 6), replace=False)
        changed[ys[pick], xs[pick]] = 0
        if len(encode_label_png(changed)) == original:
            break
    return changed


def test_a_label_map_changed_in_place_is_never_served_from_the_cache(case):
    """Same file, same size, same timestamps, different pixels: the cache misses and scores the new ones."""
    before = _j(_score(case, case["cache"]))
    path = case["dataset"] / "Annotations" / "clip_a" / "00002.png"
    stat = os.stat(path)
    label = case["truth"]["clip_a"][2]
    changed = _same_length_change(label, np.random.default_rng(0))
    data = encode_label_png(changed)
    with open(path, "r+b") as handle:  # rewritten in place: the same inode
        handle.write(data)
        handle.truncate()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert os.stat(path).st_mtime_ns == stat.st_mtime_ns and os.stat(path).st_ino == stat.st_ino
    after = _j(_score(case, case["cache"]))
    assert after == _j(_score(case, False))
    assert after[("clip_a", "0")] != before[("clip_a", "0")]  # the change matters to the score


@pytest.mark.parametrize("damage", ["garbage", "truncated", "counts edited", "other folder"])
def test_a_damaged_or_foreign_cache_file_is_ignored_and_rewritten(case, damage):
    without = _j(_score(case, False))
    _score(case, case["cache"])
    clip_dir = case["dataset"] / "Annotations" / "clip_b"
    path = LabelRunsCache(case["cache"], clip_dir).path
    text = path.read_text()
    if damage == "garbage":
        path.write_bytes(b"\x00\xffnot json")
    elif damage == "truncated":
        path.write_text(text[: len(text) // 2])
    else:
        document = json.loads(text)
        if damage == "counts edited":  # frame 0 now claims the empty target of the last frame
            last = document["frames"][f"{CLIPS['clip_b'][0] - 1:05d}"]
            document["frames"]["00000"]["labels"]["1"] = last["labels"]["1"]
        else:
            document["masks_dir"] = "/somewhere/else"
        path.write_text(json.dumps(document))
    assert _j(_score(case, case["cache"])) == without
    reloaded = LabelRunsCache(case["cache"], clip_dir)
    data = (clip_dir / "00000.png").read_bytes()
    assert reloaded.lookup("00000", content_digest(data), [1, 255]) is not None  # rewritten, valid


def test_a_cache_that_cannot_be_written_only_costs_time(case):
    blocker = case["root"] / "not_a_folder"
    blocker.write_text("a file where the cache folder would go")
    assert _j(_score(case, blocker)) == _j(_score(case, False))


def test_the_environment_chooses_or_disables_the_cache(case, monkeypatch):
    monkeypatch.setenv("REFVPS_CACHE_DIR", "off")
    _score(case, None)
    assert not case["cache"].exists()
    monkeypatch.setenv("REFVPS_CACHE_DIR", str(case["cache"]))
    _score(case, None)
    assert len(list((case["cache"] / SUBDIR).glob("*.json"))) == len(CLIPS)


def test_a_new_target_label_misses_and_is_encoded(case):
    """Entries hold the label values asked for; asking for another value re-encodes the frame."""
    clip_dir = case["dataset"] / "Annotations" / "clip_a"
    _score(case, case["cache"])
    data = (clip_dir / "00000.png").read_bytes()
    cache = LabelRunsCache(case["cache"], clip_dir)
    assert cache.lookup("00000", content_digest(data), [1, 255]) is not None
    assert cache.lookup("00000", content_digest(data), [2, 255]) is None
    assert cache.lookup("00000", content_digest(data + b"x"), [1, 255]) is None


def test_cli_cache_dir_and_no_cache(case, monkeypatch):
    import subprocess
    import sys

    monkeypatch.delenv("REFVPS_CACHE_DIR", raising=False)
    env = {**os.environ, "HOME": str(case["root"] / "home"), "XDG_CACHE_HOME": str(case["root"] / "xdg")}
    base = [
        sys.executable,
        "-m",
        "refvps",
        "evaluate",
        str(case["rle"]),
        "-d",
        str(case["dataset"]),
        "--no-boundary",
        "--bootstrap",
        "0",
        "--json",
    ]
    chosen = case["root"] / "chosen"
    with_dir = subprocess.run(base + ["--cache-dir", str(chosen)], capture_output=True, text=True, env=env)
    assert with_dir.returncode == 0, with_dir.stderr
    assert any((chosen / SUBDIR).iterdir())
    without = subprocess.run(base + ["--no-cache"], capture_output=True, text=True, env=env)
    assert without.returncode == 0, without.stderr
    assert not (case["root"] / "xdg").exists() and not (case["root"] / "home").exists()
    assert json.loads(with_dir.stdout)["summary"]["J"] == json.loads(without.stdout)["summary"]["J"]
