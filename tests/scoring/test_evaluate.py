"""The whole scorer: formats, the oracle, missing and unknown predictions, aggregation, bootstrap."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from refvps.dataset import frame_name
from refvps.errors import PredictionError
from refvps.scoring import evaluate, open_predictions
from refvps.scoring.results import bootstrap_ci, bootstrap_estimates

from .conftest import CLIPS, encode_png, write_png_tree, write_rle_json, write_zip
from .test_metrics import naive_f, naive_iou, naive_tempcon


def expected_scores(truth, predictions, missing=frozenset()):
    """Per (clip, exp): J, F, TempCon, J-recall on the 0-100 scale, from the naive references."""
    scores = {}
    for (clip_id, exp_id), masks in predictions.items():
        labels = truth[clip_id]
        ious, fs = [], []
        for t, (label, mask) in enumerate(zip(labels, masks)):
            if (clip_id, exp_id, t) in missing:
                mask = np.zeros_like(mask)
            ious.append(naive_iou(label == 1, mask, label == 255))
            fs.append(naive_f(label == 1, mask, label == 255))
        scores[(clip_id, exp_id)] = {
            "J": 100 * np.mean(ious),
            "F": 100 * np.mean(fs),
            "TempCon": naive_tempcon(ious),
            "J_recall": 100 * np.mean(np.array(ious) > 0.5),
        }
    return scores


@pytest.fixture(scope="module")
def reference_results(scored_case):
    return evaluate(scored_case["tree"], scored_case["dataset"], bootstrap=200, seed=3)


def test_every_expression_matches_the_naive_reference(scored_case, reference_results):
    expected = expected_scores(scored_case["truth"], scored_case["predictions"])
    rows = {(r.video, r.exp_id): r for r in reference_results.per_expression}
    assert set(rows) == set(expected)
    for key, want in expected.items():
        row = rows[key]
        assert row.J == pytest.approx(want["J"], abs=1e-9)
        assert row.F == pytest.approx(want["F"], abs=1e-9)
        assert row.TempCon == pytest.approx(want["TempCon"], abs=1e-9)
        assert row.J_recall == pytest.approx(want["J_recall"], abs=1e-9)
        assert row.n_frames == CLIPS[key[0]][0] and row.n_missing == 0


def test_aggregation_follows_the_definitions(scored_case, reference_results):
    expected = expected_scores(scored_case["truth"], scored_case["predictions"])
    s = reference_results.summary
    all_j = [v["J"] for v in expected.values()]
    assert s.J == pytest.approx(np.mean(all_j))
    assert s.F == pytest.approx(np.mean([v["F"] for v in expected.values()]))
    assert s.JF == pytest.approx((s.J + s.F) / 2)
    assert s.TempCon == pytest.approx(np.mean([v["TempCon"] for v in expected.values()]))
    clip_j = {c: np.mean([v["J"] for (clip, _), v in expected.items() if clip == c]) for c in CLIPS}
    per_clip = {g.key: g for g in reference_results.per_clip}
    for clip_id, value in clip_j.items():
        assert per_clip[clip_id].J == pytest.approx(value)
    smoke = np.mean([clip_j["clip_a"], clip_j["clip_b"]])  # a concept is the mean over its clips
    per_concept = {g.key: g for g in reference_results.per_concept}
    assert per_concept["smoke_rising"].J == pytest.approx(smoke)
    assert per_concept["smoke_rising"].n_clips == 2 and per_concept["ice_melting"].n_clips == 1
    assert s.J_concept_balanced == pytest.approx(np.mean([smoke, clip_j["clip_c"]]))
    per_category = {g.key: g for g in reference_results.per_category}
    assert per_category["motion_patterns"].J == pytest.approx(smoke)
    assert per_category["temporal_object_changes"].J == pytest.approx(clip_j["clip_c"])
    assert s.n_clips == 3 and s.n_expressions == 12
    assert s.n_frames == 4 * sum(frames for frames, _, _ in CLIPS.values())
    assert s.n_missing_frames == 0


def test_results_json_has_the_agreed_keys(reference_results, tmp_path):
    path = reference_results.write_json(tmp_path / "results.json")
    data = json.loads(path.read_text())
    assert {"summary", "per_expression", "per_clip", "per_concept", "per_category", "meta"} <= set(data)
    assert {
        "J",
        "F",
        "JF",
        "TempCon",
        "J_recall",
        "J_ci95",
        "J_concept_balanced",
        "n_clips",
        "n_expressions",
        "n_frames",
        "n_missing_frames",
    } <= set(data["summary"])
    assert {"video", "exp_id", "J", "F", "TempCon", "J_recall", "n_frames", "n_missing"} <= set(
        data["per_expression"][0]
    )
    assert {"dataset", "predictions", "method", "refvps_version", "date", "options"} <= set(data["meta"])
    lo, hi = data["summary"]["J_ci95"]
    assert lo <= data["summary"]["J"] <= hi


def test_the_three_formats_give_identical_results(scored_case, reference_results):
    for source, fmt in ((scored_case["zip"], "zip"), (scored_case["rle"], "coco-rle")):
        results = evaluate(source, scored_case["dataset"], bootstrap=200, seed=3)
        assert results.meta["format"] == fmt
        assert results.summary.to_json() == reference_results.summary.to_json()
        for a, b in zip(results.per_expression, reference_results.per_expression):
            assert (a.video, a.exp_id, a.J, a.F, a.TempCon) == (b.video, b.exp_id, b.J, b.F, b.TempCon)


@pytest.mark.parametrize("style", ["P01", "RGB", "Lmixed"])
def test_any_nonzero_pixel_is_foreground(scored_case, reference_results, tmp_path, style):
    tree = write_png_tree(tmp_path / "pred", scored_case["predictions"], style=style)
    results = evaluate(tree, scored_case["dataset"], bootstrap=200, seed=3)
    assert results.summary.to_json() == reference_results.summary.to_json()


def test_leading_annotations_folder_is_accepted(scored_case, reference_results, tmp_path):
    shutil.copytree(scored_case["tree"], tmp_path / "sub" / "Annotations")
    results = evaluate(tmp_path / "sub", scored_case["dataset"], bootstrap=200, seed=3)
    assert results.summary.J == reference_results.summary.J


def test_oracle_scores_perfectly(scored_case, tmp_path):
    oracle = {
        (clip_id, exp_id): [label == 1 for label in labels]
        for clip_id, labels in scored_case["truth"].items()
        for exp_id in ("0", "1", "2", "3")
    }
    for source in (write_png_tree(tmp_path / "oracle", oracle), write_rle_json(tmp_path / "oracle.json", oracle)):
        s = evaluate(source, scored_case["dataset"]).summary
        assert (s.J, s.F, s.JF, s.TempCon, s.J_recall) == (100.0, 100.0, 100.0, 0.0, 100.0)
        assert s.J_ci95 == [100.0, 100.0]


def test_empty_predictions_score_by_hand(scored_case, tmp_path):
    """Every clip's target is visible in all frames but the last: an empty prediction has IoU
    0, ..., 0, 1, so J = 100 / T and TempCon = 100 / (T - 1) (one jump over T - 1 pairs)."""
    empty = {(c, e): [np.zeros_like(m) for m in masks] for (c, e), masks in scored_case["predictions"].items()}
    results = evaluate(write_rle_json(tmp_path / "empty.json", empty), scored_case["dataset"], boundary=False)
    for row in results.per_expression:
        frames = CLIPS[row.video][0]
        assert row.J == pytest.approx(100 / frames) and row.TempCon == pytest.approx(100 / (frames - 1))
        assert row.J_recall == pytest.approx(100 / frames)
    s = results.summary
    assert s.J == pytest.approx(100 * np.mean([1 / frames for frames, _, _ in CLIPS.values()]))
    assert s.TempCon == pytest.approx(100 * np.mean([1 / (frames - 1) for frames, _, _ in CLIPS.values()]))
    assert s.F is None and s.JF is None  # --no-boundary


def _two_object_dataset(root):
    """Clip "two": objects 1 and 2 side by side with Ignore between them, twelve expressions (ids "0".."11",
    even ids on object 1, odd ids on object 2); clip "one": a single frame. Returns clip -> label maps."""
    from refvps.dataset import ClipMeta, DatasetWriter, Expression

    height, width, frames = 24, 40, 6
    rng = np.random.default_rng(21)
    labels = []
    for t in range(frames):
        label = np.zeros((height, width), np.uint8)
        label[4:16, 2 + t : 14 + t] = 1
        label[6:20, 22 : 30 + t] = 2
        label[:, 18:21] = 255  # an Ignore band between the two
        label[rng.random((height, width)) < 0.03] = 255  # and Ignore specks, some inside the objects
        labels.append(label)
    writer = DatasetWriter(root)
    black = np.zeros((height, width, 3), np.uint8)
    expressions = [Expression(str(i), f"object {1 + i % 2}, phrasing {i}", 1 + i % 2) for i in range(12)]
    writer.write_clip(
        "two",
        [black] * frames,
        labels,
        expressions,
        ClipMeta("two", concept="c2", category="k", width=width, height=height),
    )
    single = np.zeros((height, width), np.uint8)
    single[5:15, 5:25] = 1
    writer.write_clip(
        "one",
        [black],
        [single],
        [Expression("0", "the only frame", 1)],
        ClipMeta("one", concept="c1", category="k", width=width, height=height),
    )
    return {"two": labels, "one": [single]}


def test_second_object_single_frame_and_many_expression_ids(tmp_path):
    """obj_id 2 beside object 1 (which is background for it), a one-frame clip (TempCon 0), exp ids past
    "9" (kept in the dataset's order, not sorted as text), predictions with 255 and with other objects
    in them, in every input format, with and without F: each equals the naive reference."""
    truth = _two_object_dataset(tmp_path / "dataset")
    rng = np.random.default_rng(22)
    predictions = {}
    for i in range(12):
        obj = 1 + i % 2
        masks = []
        for label in truth["two"]:
            if i in (0, 1):
                mask = label == obj  # exact outside Ignore
            elif i in (2, 3):
                mask = label == 3 - obj  # the other object: IoU 0 where the target is visible
            elif i in (4, 5):
                mask = (label == obj) | (label == 255)  # spilling into Ignore only: still exact
            else:
                mask = np.roll(label == obj, int(rng.integers(-2, 3)), axis=1) ^ (rng.random(label.shape) < 0.05)
            masks.append(mask)
        predictions[("two", str(i))] = masks
    predictions[("one", "0")] = [np.roll(truth["one"][0] == 1, 3, axis=0)]
    expected = {}
    for (clip_id, exp_id), masks in predictions.items():
        obj = 1 + int(exp_id) % 2 if clip_id == "two" else 1
        ious = [naive_iou(label == obj, mask, label == 255) for label, mask in zip(truth[clip_id], masks)]
        fs = [naive_f(label == obj, mask, label == 255) for label, mask in zip(truth[clip_id], masks)]
        expected[(clip_id, exp_id)] = (100 * np.mean(ious), 100 * np.mean(fs), naive_tempcon(ious))
    for key in (("two", "0"), ("two", "1"), ("two", "4"), ("two", "5")):
        assert expected[key] == (100.0, 100.0, 0.0)
    assert expected[("two", "2")][0] == 0.0 and expected[("one", "0")][2] == 0.0

    tree = tmp_path / "pred"
    for (clip_id, exp_id), masks in predictions.items():
        for t, mask in enumerate(masks):
            path = tree / clip_id / exp_id / f"{frame_name(t)}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(encode_png(mask, "L255"))
    rle = write_rle_json(tmp_path / "pred.json", predictions)
    zipped = write_zip(tmp_path / "pred.zip", tree, prefix="outer/inner/")
    for source in (tree, zipped, rle):
        for boundary in (True, False):
            results = evaluate(source, tmp_path / "dataset", boundary=boundary, bootstrap=0)
            assert [(r.video, r.exp_id) for r in results.per_expression] == [("one", "0")] + [
                ("two", str(i)) for i in range(12)
            ]
            for row in results.per_expression:
                j, f, tempcon = expected[(row.video, row.exp_id)]
                assert row.J == pytest.approx(j, abs=1e-9) and row.TempCon == pytest.approx(tempcon, abs=1e-9)
                assert row.F == (pytest.approx(f, abs=1e-9) if boundary else None)
                assert row.obj_id == (1 + int(row.exp_id) % 2 if row.video == "two" else 1)
            clip_two = np.mean([expected[("two", str(i))][0] for i in range(12)])
            assert results.summary.J == pytest.approx(
                np.mean([v[0] for v in expected.values()])
            )  # every expression once
            assert results.summary.J_concept_balanced == pytest.approx((clip_two + expected[("one", "0")][0]) / 2)


def test_missing_frames_are_scored_empty_and_counted(scored_case, tmp_path, caplog):
    predictions = scored_case["predictions"]
    skip = {("clip_a", "0", 2), ("clip_a", "0", 5), ("clip_b", "1", 0)}
    skip |= {("clip_c", "2", t) for t in range(CLIPS["clip_c"][0])}  # a whole expression
    expected = expected_scores(scored_case["truth"], predictions, missing=skip)
    for source in (
        write_png_tree(tmp_path / "pred", predictions, skip=skip),
        write_rle_json(tmp_path / "pred.json", predictions, skip=skip),
    ):
        caplog.clear()
        results = evaluate(source, scored_case["dataset"], bootstrap=0)
        # The library says so itself (a logged warning), not only the CLI.
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert len(warnings) == 1 and f"{len(skip)} predicted frame(s) missing in 3 clip(s)" in warnings[0]
        rows = {(r.video, r.exp_id): r for r in results.per_expression}
        assert rows[("clip_a", "0")].n_missing == 2 and rows[("clip_c", "2")].n_missing == CLIPS["clip_c"][0]
        for key, want in expected.items():
            assert rows[key].J == pytest.approx(want["J"], abs=1e-9)
            assert rows[key].F == pytest.approx(want["F"], abs=1e-9)
        assert results.summary.n_missing_frames == len(skip)
        assert results.coverage.missing_expressions == [{"video": "clip_c", "exp_id": "2"}]
        assert results.summary.J_ci95 is None
        with pytest.raises(PredictionError, match="--strict"):
            evaluate(source, scored_case["dataset"], strict=True)


def test_unknown_predictions_are_reported_not_scored(scored_case, reference_results, tmp_path, caplog):
    tree = tmp_path / "pred"
    shutil.copytree(scored_case["tree"], tree)
    mask = scored_case["predictions"][("clip_a", "0")][0]
    extra = {("clip_zzz", "0"): [mask], ("clip_a", "9"): [mask]}
    write_png_tree(tree, extra)
    (tree / "clip_b" / "0" / f"{frame_name(99)}.png").write_bytes((tree / "clip_b" / "0" / "00000.png").read_bytes())
    results = evaluate(tree, scored_case["dataset"], bootstrap=200, seed=3)
    assert [r.getMessage() for r in caplog.records if "were not scored" in r.getMessage()]
    assert results.summary.to_json() == reference_results.summary.to_json()
    assert results.coverage.unknown_clips == ["clip_zzz"]
    assert results.coverage.unknown_expressions == [{"video": "clip_a", "exp_id": "9"}]
    assert results.coverage.unknown_frames == 1
    with pytest.raises(PredictionError, match="not in the dataset"):
        evaluate(tree, scored_case["dataset"], strict=True)


def test_predictions_for_another_dataset_are_an_error(scored_case, tmp_path):
    other = {("someone_else", "0"): scored_case["predictions"][("clip_a", "0")]}
    with pytest.raises(PredictionError, match="no prediction .* matches the dataset"):
        evaluate(write_png_tree(tmp_path / "pred", other), scored_case["dataset"])


def test_workers_and_chunks_do_not_change_the_numbers(scored_case, reference_results):
    parallel = evaluate(scored_case["rle"], scored_case["dataset"], workers=2, bootstrap=200, seed=3)
    assert parallel.to_json()["per_expression"] == reference_results.to_json()["per_expression"]
    small_chunks = evaluate(scored_case["tree"], scored_case["dataset"], chunk=2, bootstrap=200, seed=3)
    assert small_chunks.summary.to_json() == reference_results.summary.to_json()


def test_hidden_folders_and_other_files_are_ignored(scored_case):
    source = open_predictions(scored_case["tree"])
    assert ".done" not in source.index and "run.json" not in source.index
    assert source.ignored >= 1  # run.json
    assert source.n_items() == 4 * sum(frames for frames, _, _ in CLIPS.values())


def test_bootstrap_is_seeded_and_resamples_clips():
    per_clip = [[0.0], [100.0, 100.0, 100.0]]  # one clip of one expression, one of three
    estimates = bootstrap_estimates(per_clip, 500, seed=0)
    # Resampling clips gives only these means (0+0, 0+300 over 4 expressions, 300+300 over 6).
    assert set(np.round(estimates, 9)) <= {0.0, 75.0, 100.0}
    assert bootstrap_ci(per_clip, 500, seed=0) == bootstrap_ci(per_clip, 500, seed=0)
    rng = np.random.default_rng(5)
    values = [list(rng.uniform(0, 100, size=4)) for _ in range(30)]
    a, b = bootstrap_ci(values, 1000, seed=1), bootstrap_ci(values, 1000, seed=2)
    assert a != b and abs(a[0] - b[0]) < 3 and abs(a[1] - b[1]) < 3
    assert a[0] < np.mean(values) < a[1]
    assert bootstrap_ci(values, 0, seed=1) is None
