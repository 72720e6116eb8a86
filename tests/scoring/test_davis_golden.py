"""Agreement with the official DAVIS 2017 evaluator on 60 golden cases (tests/fixtures/davis_golden).

The golden J and F were produced by davisvideochallenge/davis2017-evaluation (commit ac7c43f),
``db_eval_iou`` and ``f_measure`` with bound_th 0.008, on annotation = (label == 1), void =
(label == 255), segmentation = (pred != 0). refvps must agree to 1e-9, both through the metric
functions and through the whole scorer (PNG and RLE input).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from refvps.dataset import ClipMeta, DatasetWriter, Expression
from refvps.scoring import boundary_f, evaluate, jaccard

from .conftest import rle_of

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "davis_golden"


def _cases():
    arrays = np.load(GOLDEN / "davis_agreement.npz")
    meta = json.loads((GOLDEN / "davis_agreement.json").read_text())
    return [(case, arrays[f"label_{case['id']:02d}"], arrays[f"pred_{case['id']:02d}"]) for case in meta["cases"]]


CASES = _cases()


def test_there_are_sixty_cases_with_the_edge_cases():
    assert len(CASES) == 60
    kinds = set()
    for _, label, pred in CASES:
        target, prediction = label == 1, pred != 0
        if not target.any() and not prediction.any():
            kinds.add("both empty")
        elif not prediction.any():
            kinds.add("empty prediction")
        elif not target.any():
            kinds.add("empty target")
        if np.array_equal(target, prediction):
            kinds.add("perfect")
    assert {"both empty", "empty prediction", "empty target", "perfect"} <= kinds


@pytest.mark.parametrize("index", range(60))
def test_metric_functions_agree_with_davis(index):
    case, label, pred = CASES[index]
    assert label.shape == (case["height"], case["width"])
    j = jaccard(label == 1, pred != 0, label == 255)
    f = boundary_f(label == 1, pred != 0, label == 255)
    assert abs(j - case["J"]) <= 1e-9
    assert abs(f - case["F"]) <= 1e-9


@pytest.fixture(scope="module")
def golden_dataset(tmp_path_factory):
    """Each golden case as a one-frame clip, with its prediction as a PNG tree and as RLE."""
    from PIL import Image

    root = tmp_path_factory.mktemp("golden")
    writer = DatasetWriter(root / "dataset")
    entries = []
    for case, label, pred in CASES:
        clip_id = f"case_{case['id']:02d}"
        height, width = label.shape
        writer.write_clip(
            clip_id,
            [np.zeros((height, width, 3), np.uint8)],
            [label],
            [Expression("0", f"golden case {case['id']}", 1, "a")],
            ClipMeta(clip_id, concept="golden", category="golden", width=width, height=height),
        )
        path = root / "pred" / clip_id / "0" / "00000.png"
        path.parent.mkdir(parents=True)
        Image.fromarray(pred).save(path)  # the raw values: any nonzero is foreground
        entries.append({"video": clip_id, "exp_id": "0", "frame": "00000", "segmentation": rle_of(pred != 0)})
    (root / "pred.json").write_text(json.dumps(entries))
    return root


@pytest.mark.parametrize("source", ["pred", "pred.json"])
def test_the_scorer_agrees_with_davis(golden_dataset, source):
    results = evaluate(golden_dataset / source, golden_dataset / "dataset", bootstrap=0)
    by_clip = {row.video: row for row in results.per_expression}
    assert len(by_clip) == 60
    for case, _, _ in CASES:
        row = by_clip[f"case_{case['id']:02d}"]
        assert abs(row.J / 100 - case["J"]) <= 1e-9
        assert abs(row.F / 100 - case["F"]) <= 1e-9
