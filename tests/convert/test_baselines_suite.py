"""``refvps run-baseline`` (rem-tiny, motion, empty, oracle) runs on every converted benchmark, and its
predictions score under the benchmark's protocol with nothing missing."""

from __future__ import annotations

import pytest

from refvps.scoring import evaluate

BASELINES = {
    "rem": ("rem", "--config", "rem-tiny"),
    "motion": ("motion",),
    "empty": ("empty",),
    "oracle": ("oracle",),
}


@pytest.mark.slow
@pytest.mark.parametrize("benchmark", ["ref_davis", "ytvos_train", "mevis", "vspw", "burst"])
def test_every_baseline_runs_and_scores(benchmark, request, tmp_path, cli):
    converted = request.getfixturevalue(benchmark)
    for name, args in BASELINES.items():
        out = tmp_path / name
        result = cli("run-baseline", *args, "--dataset", converted.root, "--out", out)
        assert result.code == 0, f"{name}: {result.err}"
        results = evaluate(out, converted.root, strict=True, bootstrap=0, gt_cache=False)
        assert results.coverage.missing_frames == 0 and 0.0 <= results.summary.J <= 100.0
        if name == "oracle" and benchmark != "ref_davis":  # Ref-DAVIS: an object no expression names scores 0
            assert results.summary.J == pytest.approx(100.0)


@pytest.mark.slow
def test_baselines_predict_a_split_without_ground_truth(ytvos_valid, tmp_path, cli):
    for name in ("rem", "motion", "empty"):
        result = cli("run-baseline", *BASELINES[name], "--dataset", ytvos_valid.root, "--out", tmp_path / name)
        assert result.code == 0, f"{name}: {result.err}"
        written = sorted(p.relative_to(tmp_path / name).as_posix() for p in (tmp_path / name).rglob("*.png"))
        assert len(written) == 7 and written[0] == "vvalid01/0/00000.png"
    oracle = cli("run-baseline", "oracle", "--dataset", ytvos_valid.root, "--out", tmp_path / "oracle")
    assert oracle.code == 2 and "has none" in oracle.err and "Traceback" not in oracle.err
