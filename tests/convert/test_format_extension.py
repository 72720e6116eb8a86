"""The format extension converted benchmarks need (docs/BENCHMARKS_SUITE.md): frames without ground
truth (``annotated_frames``), targets that are unions of labels (``obj_id`` lists), labels no
expression names (``label_ids``); what ``validate`` says about each."""

from __future__ import annotations

import json

import numpy as np
import pytest

from refvps.dataset import ClipMeta, DatasetWriter, Expression
from refvps.dataset.format import Dataset, video_entry
from refvps.dataset.palette import write_label_png
from refvps.dataset.validate import validate_dataset

H, W = 12, 16


def _dataset(root, *, annotated=None, obj_id="1", label=1, label_ids=None, mask_frames=("00000", "00001", "00002")):
    writer = DatasetWriter(root)
    frames = [np.full((H, W, 3), 40 * t, np.uint8) for t in range(3)]
    writer.write_clip("c1", frames, None, [Expression("0", "the thing", 1)], ClipMeta("c1", fps=24))
    for name in mask_frames:
        mask = np.zeros((H, W), np.uint8)
        mask[2:6, 2:6] = label
        mask[8:10, 8:12] = 2
        write_label_png(root / "Annotations" / "c1" / f"{name}.png", mask)
    data = json.loads((root / "meta_expressions.json").read_text())
    entry = data["videos"]["c1"]
    entry["expressions"]["0"]["obj_id"] = obj_id
    if annotated is not None:
        entry["annotated_frames"] = annotated
    if label_ids is not None:
        entry["label_ids"] = label_ids
    (root / "meta_expressions.json").write_text(json.dumps(data))
    return root


def _problems(root, **kw):
    return {(p.rule, p.severity) for p in validate_dataset(root, **kw).problems if p.rule != "taxonomy"}


def test_sparse_ground_truth_validates(tmp_path):
    root = _dataset(tmp_path / "ok", annotated=["00000", "00002"], mask_frames=("00000", "00002"), label_ids=["2"])
    assert _problems(root) == set()
    clip = Dataset(root).clip("c1")
    assert clip.annotated_frames == ["00000", "00002"] and clip.frame_names == ["00000", "00001", "00002"]


def test_no_ground_truth_at_all_validates_without_a_mask_folder(tmp_path):
    root = _dataset(tmp_path / "none", annotated=[], mask_frames=())
    assert _problems(root) == set()
    assert Dataset(root).clip("c1").annotated_frames == []


def test_sparse_rules(tmp_path):
    extra = _dataset(tmp_path / "extra", annotated=["00000"], mask_frames=("00000", "00001"), label_ids=["2"])
    assert ("extra_mask", "error") in _problems(extra)  # a mask for a frame said to have none
    unknown = _dataset(tmp_path / "unknown", annotated=["00000", "00009"], mask_frames=("00000",), label_ids=["2"])
    assert ("json_schema", "error") in _problems(unknown)  # an annotated frame that is not a frame
    missing = _dataset(tmp_path / "missing", annotated=["00000", "00001"], mask_frames=("00000",), label_ids=["2"])
    assert ("missing_mask", "error") in _problems(missing)


def test_union_targets_and_declared_labels(tmp_path):
    both = _dataset(tmp_path / "both", obj_id=["1", "2"])
    assert _problems(both) == set()
    assert Dataset(both).clip("c1").expressions[0].target_labels == (1, 2)
    undeclared = _dataset(tmp_path / "undeclared")  # label 2 in the masks, named by nothing
    assert ("mask_values", "error") in _problems(undeclared)
    declared = _dataset(tmp_path / "declared", label_ids=["2"])
    assert _problems(declared) == set()
    bad = _dataset(tmp_path / "bad", obj_id=[])
    assert ("json_schema", "error") in _problems(bad)


def test_an_absent_target_is_an_error_only_under_refvps_rules(tmp_path):
    root = _dataset(tmp_path / "absent", obj_id=["3"], label_ids=["1", "2"])
    assert _problems(root) == {("empty_target", "warning")}  # a benchmark may name an object no frame shows
    assert ("empty_target", "error") in _problems(root, refvps_rules=True)


def test_expression_round_trip_keeps_labels_and_extra_keys():
    expression = Expression("4", "the dogs", 3, "annotator1", (3, 5), {"anno_id": [7, 8], "annotation": "full_video"})
    entry = video_entry([expression], ["00000"], annotated_frames=[], label_ids=[9])
    assert entry["expressions"]["4"] == {
        "exp": "the dogs",
        "obj_id": ["3", "5"],
        "annotator": "annotator1",
        "anno_id": [7, 8],
        "annotation": "full_video",
    }
    assert entry["annotated_frames"] == [] and entry["label_ids"] == ["9"]
    single = Expression("0", "x", 2)
    assert single.to_json() == {"exp": "x", "obj_id": "2"} and single.target_labels == (2,)


def test_union_target_engine_counts_against_a_naive_reference(tmp_path):
    """J and F of a union target from the engine equal those of the union mask computed by hand."""
    from refvps.predictions import PredictionWriter
    from refvps.scoring import evaluate

    from . import naive

    root = _dataset(tmp_path / "ds", obj_id=["1", "2"])
    rng = np.random.default_rng(0)
    preds = [rng.random((H, W)) > 0.6 for _ in range(3)]
    writer = PredictionWriter(tmp_path / "pred")
    for t, mask in enumerate(preds):
        writer.write("c1", "0", f"{t:05d}", mask)
    results = evaluate(tmp_path / "pred", root, bootstrap=0, gt_cache=False)
    clip = Dataset(root).clip("c1")
    truth = [np.isin(clip.read_label(n), [1, 2]) for n in clip.frame_names]
    j, f = naive.mean_j_f(truth, preds)
    assert results.summary.J == pytest.approx(100 * j, abs=1e-9)
    assert results.summary.F == pytest.approx(100 * f, abs=1e-9)
    assert results.per_expression[0].to_json()["obj_id"] == [1, 2]
