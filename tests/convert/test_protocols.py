"""Each protocol's numbers equal a naive transcription of the benchmark's own evaluation, computed from
the source files, on random predictions; the oracle scores 100."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from baselines.reference import run_reference
from refvps.convert import convert
from refvps.dataset.format import Dataset
from refvps.scoring import evaluate
from refvps.scoring.protocols import max_assignment

from . import naive, official
from .conftest import random_predictions


def _pred(out: Path, clip: str, exp_id: str, frame: str) -> np.ndarray:
    path = out / clip / exp_id / f"{frame}.png"
    return np.asarray(Image.open(path)) > 0 if path.exists() else None


def _score(pred, root, **options):
    return evaluate(pred, root, bootstrap=0, workers=1, gt_cache=False, **options)


def test_max_assignment_is_the_best_pairing():
    import itertools

    rng = np.random.default_rng(1)
    for _ in range(200):
        n, m = (int(v) for v in rng.integers(1, 6, 2))
        scores = np.round(rng.random((n, m)), 2)
        pairs = max_assignment(scores)
        rows, cols = zip(*pairs)
        assert len(pairs) == min(n, m) and len(set(rows)) == len(set(cols)) == len(pairs)
        best = max(
            (sum(scores[r, c] for r, c in zip(perm, range(m))) for perm in itertools.permutations(range(n), m))
            if n >= m
            else (sum(scores[r, c] for r, c in zip(range(n), perm)) for perm in itertools.permutations(range(m), n))
        )
        assert sum(scores[r, c] for r, c in pairs) == pytest.approx(best, abs=1e-12)


# --------------------------------------------------------------------------------------------
# oracle
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def davis_all_referred(tmp_path_factory):
    base = tmp_path_factory.mktemp("davis_referred")
    source = official.write_ref_davis(base / "src", unreferred_object=False)
    convert("ref-davis", source.root, base / "out")
    return base / "out"


@pytest.mark.parametrize("name", ["davis", "ytvos_train", "mevis", "vspw", "burst"])
def test_oracle_scores_100_under_each_protocol(name, request, tmp_path, davis_all_referred):
    root = davis_all_referred if name == "davis" else request.getfixturevalue(name).root
    run_reference("oracle", root, tmp_path / "oracle")
    results = _score(tmp_path / "oracle", root, strict=True)
    protocol = {"davis": "ref-davis", "ytvos_train": "refvps", "mevis": "mevis"}.get(
        name, name.replace("vspw", "vspw-stuff")
    )
    assert results.meta["protocol"] == protocol
    assert results.summary.J == pytest.approx(100.0)
    if results.summary.F is not None:
        assert results.summary.F == pytest.approx(100.0) and results.summary.JF == pytest.approx(100.0)
    assert results.summary.TempCon == pytest.approx(0.0)


# --------------------------------------------------------------------------------------------
# random predictions against the naive references
# --------------------------------------------------------------------------------------------


def test_mevis_protocol_equals_eval_mevis(mevis, tmp_path):
    pred = random_predictions(mevis.root, tmp_path / "pred", seed=3)
    results = _score(pred, mevis.root)
    j, f = [], []
    for (video, exp_id), truth in mevis.source.truth.items():
        frames = mevis.source.expressions[video]["frames"]
        preds = [_pred(pred, video, exp_id, name) for name in frames]
        mj, mf = naive.mean_j_f(truth, preds)
        j.append(mj)
        f.append(mf)
    assert results.meta["protocol"] == "mevis"
    assert results.summary.J == pytest.approx(100 * np.mean(j), abs=1e-9)
    assert results.summary.F == pytest.approx(100 * np.mean(f), abs=1e-9)
    assert results.summary.JF == pytest.approx(50 * (np.mean(j) + np.mean(f)), abs=1e-9)
    # tools/eval_mevis.py scores every expression of a video with no prediction folder as 0
    import shutil

    shutil.rmtree(pred / "mv002")
    zeroed = _score(pred, mevis.root)
    assert zeroed.summary.J == pytest.approx(100 * np.mean(j[:4] + [0.0]), abs=1e-9)


def _class_averaged(per_pair: dict) -> float:
    per_class = defaultdict(list)
    for (_, name), value in per_pair.items():
        per_class[name].append(value)
    return 100 * float(np.mean([np.mean(v) for v in per_class.values()]))


def test_vspw_protocol_equals_eval_stuff(vspw, tmp_path):
    pred = random_predictions(vspw.root, tmp_path / "pred", seed=4)
    results = _score(pred, vspw.root)
    data = Dataset(vspw.root)
    per_pair = {}
    for video in official.VSPW_VIDEOS:
        clip = data.clip(video)
        for expression in clip.expressions:
            name = expression.extra["class_name"]
            raw = vspw.source.truth[video]
            # eval_stuff.py: 0 -> 255, minus one, 254 -> 124; the class's pixels; no void
            classes = [np.where(m == 0, 255, m).astype(np.int16) - 1 for m in raw]
            truth = [np.where(c == 254, 124, c) == official_class_id(name) for c in classes]
            preds = [_pred(pred, video, expression.exp_id, frame) for frame in clip.frame_names]
            per_pair[(video, name)] = np.mean([naive.iou(g, p) for g, p in zip(truth, preds)])
    assert results.meta["protocol"] == "vspw-stuff" and results.summary.F is None
    assert results.summary.J == pytest.approx(_class_averaged(per_pair), abs=1e-9)
    assert len(results.meta["protocol_scores"]["groups"]) == 3  # wall, ceiling, sky


def official_class_id(name: str) -> int:
    from refvps.convert.vspw import STUFF_CLASSES

    return {v: k for k, v in STUFF_CLASSES.items()}[name]


def test_burst_protocol_equals_eval_burst(burst, tmp_path):
    pred = random_predictions(burst.root, tmp_path / "pred", seed=5)
    results = _score(pred, burst.root)
    names = {c["id"]: c["name"] for c in official.CATEGORIES}
    per_pair = {}
    for (dataset, seq), per_class in burst.source.truth.items():
        clip = Dataset(burst.root).clip(f"{dataset}_{seq}")
        for expression in clip.expressions:
            category = expression.extra["class_id"]
            preds = [_pred(pred, clip.id, expression.exp_id, f) for f in clip.annotated_frames]
            per_pair[(seq, names[category])] = np.mean([naive.iou(g, p) for g, p in zip(per_class[category], preds)])
    assert results.meta["protocol"] == "burst"
    assert results.summary.J == pytest.approx(_class_averaged(per_pair), abs=1e-9)


def test_ref_davis_protocol_equals_davis2017_unsupervised_per_expression_set(ref_davis, tmp_path):
    pred = random_predictions(ref_davis.root, tmp_path / "pred", seed=6)
    results = _score(pred, ref_davis.root)
    data = Dataset(ref_davis.root)
    runs = []
    for r in range(4):  # expression 4k + r is object k of run r
        j, f = [], []
        for video, labels in ref_davis.source.truth.items():
            if video not in data:
                continue
            clip = data.clip(video)
            void = [label == 255 for label in labels]
            count = int(np.where(void[0], 0, labels[0]).max())  # davis.py: the first frame's objects
            objects = [[(label == k) & ~v for label, v in zip(labels, void)] for k in range(1, count + 1)]
            exp_ids = [e.exp_id for e in clip.expressions if int(e.exp_id) % 4 == r]
            predictions = [[_pred(pred, video, e, n) for n in clip.frame_names] for e in exp_ids]
            for oj, of in naive.davis_unsupervised(objects, predictions, void):
                j.append(oj)
                f.append(of)
        runs.append((np.mean(j), np.mean(f)))
    J, F = 100 * np.mean([r[0] for r in runs]), 100 * np.mean([r[1] for r in runs])
    assert results.meta["protocol"] == "ref-davis"
    assert results.summary.J == pytest.approx(J, abs=1e-9)
    assert results.summary.F == pytest.approx(F, abs=1e-9)
    assert results.summary.JF == pytest.approx((J + F) / 2, abs=1e-9)
    assert [g["run"] for g in results.meta["protocol_scores"]["groups"]] == [
        "annotator1/first_frame",
        "annotator1/full_video",
        "annotator2/first_frame",
        "annotator2/full_video",
    ]
    assert results.meta["refvps_summary"]["J"] != results.summary.J  # the generic mean stays on record


def test_sparse_ground_truth_scores_the_annotated_frames_only(ytvos_train, tmp_path):
    pred = random_predictions(ytvos_train.root, tmp_path / "pred", seed=7)
    results = _score(pred, ytvos_train.root, strict=True)
    clip = Dataset(ytvos_train.root).clip("vtrain01")
    truth = ytvos_train.source.truth["vtrain01"]
    j, f = [], []
    for expression in clip.expressions:
        gts = [truth[n] == expression.obj_id for n in clip.annotated_frames]
        preds = [_pred(pred, clip.id, expression.exp_id, n) for n in clip.annotated_frames]
        mj, mf = naive.mean_j_f(gts, preds)
        j.append(mj)
        f.append(mf)
    assert results.meta["protocol"] == "refvps" and results.summary.n_frames == 4
    assert results.summary.J == pytest.approx(100 * np.mean(j), abs=1e-9)
    assert results.summary.F == pytest.approx(100 * np.mean(f), abs=1e-9)
    # predictions of the frame without ground truth are neither missing nor unknown
    assert results.coverage.unknown_frames == 0 and results.coverage.missing_frames == 0


def test_protocol_can_be_chosen_and_is_checked(mevis, vspw, tmp_path):
    from refvps.errors import UsageError

    pred = random_predictions(vspw.root, tmp_path / "pred", seed=8)
    generic = _score(pred, vspw.root, protocol="refvps")
    assert generic.meta["protocol"] == "refvps" and generic.summary.F is not None
    with pytest.raises(UsageError, match="class"):
        _score(random_predictions(mevis.root, tmp_path / "p2", seed=8), mevis.root, protocol="burst")


def test_a_split_without_ground_truth_is_not_scored_locally(ytvos_valid, tmp_path):
    from refvps.errors import DatasetError

    pred = random_predictions(ytvos_valid.root, tmp_path / "pred", seed=9)
    with pytest.raises(DatasetError) as info:
        _score(pred, ytvos_valid.root)
    assert "no ground truth" in info.value.message and "export-submission" in info.value.hint


def test_union_targets_score_the_same_from_rle_runs(mevis, tmp_path):
    """The run-length path (RLE predictions without F) merges the runs of a union target's labels;
    it gives the PNG path's J."""
    import json

    from pycocotools import mask as mask_utils

    pred = random_predictions(mevis.root, tmp_path / "pred", seed=10)
    entries = []
    for clip in Dataset(mevis.root):
        for expression in clip.expressions:
            for frame in clip.frame_names:
                encoded = mask_utils.encode(
                    np.asfortranarray(_pred(pred, clip.id, expression.exp_id, frame).astype(np.uint8))
                )
                segmentation = {"size": list(encoded["size"]), "counts": encoded["counts"].decode("ascii")}
                entries.append(
                    {"video": clip.id, "exp_id": expression.exp_id, "frame": frame, "segmentation": segmentation}
                )
    (tmp_path / "pred.json").write_text(json.dumps(entries))
    from_png = _score(pred, mevis.root, boundary=False)
    from_rle = _score(tmp_path / "pred.json", mevis.root, boundary=False)
    assert [r.J for r in from_rle.per_expression] == pytest.approx([r.J for r in from_png.per_expression], abs=1e-12)
    assert from_rle.summary.J == pytest.approx(from_png.summary.J, abs=1e-12)
