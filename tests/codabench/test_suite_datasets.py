"""Codabench bundles of datasets that use the format extension of converted benchmarks
(docs/BENCHMARKS_SUITE.md, "Format extension"): frames without ground truth, targets that are the
union of several labels, and a protocol other than Ref-VPS's."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from refvps.codabench import BundleLeakError, BundleOptions, build_bundle
from refvps.codabench.leak import check_no_test_masks, fingerprint_split
from refvps.codabench.plan import BundlePlan
from refvps.codabench.splits import Split
from refvps.dataset import Dataset, write_label_png
from refvps.errors import UsageError
from refvps.predictions.writer import encode_binary_png

from .conftest import field_layout, settings


def _edit_index(root: Path, name: str, key: str, edit) -> None:
    data = json.loads((root / name).read_text())
    for clip_id, entry in data[key].items():
        edit(clip_id, entry)
    (root / name).write_text(json.dumps(data))


def _make_sparse(split_root: Path, every: int = 2) -> dict[str, list[str]]:
    """Keep the masks of every ``every``-th frame of each clip of ``split_root``, listed as its annotated frames."""
    kept: dict[str, list[str]] = {}

    def edit(clip_id: str, video: dict) -> None:
        kept[clip_id] = video["frames"][::every]
        video["annotated_frames"] = kept[clip_id]
        for frame in video["frames"]:
            if frame not in kept[clip_id]:
                (split_root / "Annotations" / clip_id / f"{frame}.png").unlink()

    _edit_index(split_root, "meta_expressions.json", "videos", edit)
    return kept


def test_a_sparse_test_split_bundles_its_annotated_masks(split_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(split_root, root)
    kept = _make_sparse(root / "test")
    bundle = build_bundle(root, tmp_path / "b.zip", settings(), BundleOptions(sample=False)).out
    with zipfile.ZipFile(bundle) as archive:
        reference = {n for n in archive.namelist() if n.startswith("reference_data_test/Annotations/")}
    expected = {f"reference_data_test/Annotations/{c}/{f}.png" for c, frames in kept.items() for f in frames}
    assert reference == expected


def test_a_sparse_test_split_is_scored_on_its_annotated_frames(split_root, tmp_path):
    from baselines.reference import run_reference

    from .test_worker_scoring import COLUMNS, refvps_evaluate
    from .worker import submit, unpack_bundle, zip_folder

    root = tmp_path / "data"
    shutil.copytree(split_root, root)
    kept = _make_sparse(root / "test", every=3)
    bundle = build_bundle(root, tmp_path / "b.zip", settings(), BundleOptions(sample=False, bootstrap=200)).out
    predictions = run_reference("motion", root / "test", tmp_path / "motion").out
    outcome = submit(
        unpack_bundle(bundle, tmp_path / "codabench"), 1, zip_folder(predictions, tmp_path / "s.zip"), tmp_path / "run"
    )
    assert outcome.returncode == 0, outcome.stderr
    expected = refvps_evaluate(predictions, root / "test", tmp_path / "results.json")
    assert expected["n_frames"] == sum(len(frames) for frames in kept.values()) * 4  # Ref-VPS: 4 expressions
    for key in COLUMNS:
        assert outcome.scores[key] == pytest.approx(expected[key], abs=1e-9), key


def test_a_split_without_ground_truth_is_refused(split_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(split_root, root)
    without = Dataset(root / "test").clip_ids[1]

    def edit(clip_id: str, video: dict) -> None:
        if clip_id == without:
            video["annotated_frames"] = []

    _edit_index(root / "test", "meta_expressions.json", "videos", edit)
    shutil.rmtree(root / "test" / "Annotations" / without)
    with pytest.raises(UsageError, match=f"without ground truth .first: {without}"):
        build_bundle(root, tmp_path / "b.zip", settings(), BundleOptions(sample=False))
    assert not (tmp_path / "b.zip").exists()


def test_a_benchmark_scored_under_its_own_protocol_is_refused(split_root, tmp_path):
    root = field_layout(split_root, tmp_path / "data")
    _edit_index(root, "clips.json", "clips", lambda _, entry: entry.update(protocol="vspw-stuff"))
    with pytest.raises(UsageError, match="vspw-stuff protocol"):
        build_bundle(root, tmp_path / "b.zip", settings(), BundleOptions(sample=False))


def _union_dataset(root: Path) -> Split:
    """One clip of two 16x16 frames: objects 1 and 2 and an Ignore band; its expression's target is 1 | 2."""
    label = np.zeros((16, 16), np.uint8)
    label[2:7, 2:7] = 1
    label[9:14, 8:14] = 2
    label[:, 15] = 255
    for frame in ("00000", "00001"):
        (root / "JPEGImages" / "c").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (16, 16)).save(root / "JPEGImages" / "c" / f"{frame}.jpg")
        write_label_png(root / "Annotations" / "c" / f"{frame}.png", np.roll(label, int(frame), axis=1))
    expression = {"exp": "the two squares", "obj_id": ["1", "2"]}
    videos = {"c": {"expressions": {"0": expression}, "frames": ["00000", "00001"]}}
    (root / "meta_expressions.json").write_text(json.dumps({"videos": videos}))
    return Split("test", root, ("c",))


def test_an_oracle_of_a_union_target_is_a_leak(tmp_path):
    test = _union_dataset(tmp_path / "test")
    label = Dataset(test.root).clip("c").read_label("00001")
    plan = BundlePlan()
    plan.add_bytes("starting_kit/union.png", encode_binary_png(np.isin(label, (1, 2))))
    with pytest.raises(BundleLeakError, match="starting_kit/union.png .its pixels are those of a test mask"):
        check_no_test_masks(plan, ["starting_kit"], fingerprint_split(test))
