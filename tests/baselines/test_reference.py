"""Reference baselines: empty, full and oracle against hand-computed scores; motion on scenes whose
moving region is known; resuming and run records."""

from __future__ import annotations

import json

import numpy as np
import pytest

from baselines.reference import MotionConfig, motion_masks
from refvps.dataset import Dataset
from refvps.errors import UsageError
from refvps.progress import Progress
from refvps.scoring import evaluate

from .conftest import own_scores


@pytest.mark.parametrize(
    "name, predict",
    [
        ("empty", lambda clip, expression, frame, label: np.zeros(label.shape, bool)),
        ("full", lambda clip, expression, frame, label: np.ones(label.shape, bool)),
        ("oracle", lambda clip, expression, frame, label: label == expression.obj_id),
    ],
)
def test_trivial_baselines_score_what_they_should(name, predict, cli, dataset_root, tmp_path):
    out = tmp_path / name
    result = cli("run-baseline", name, "--dataset", dataset_root, "--out", out, "--json")
    assert result.code == 0, result.err
    assert result.json()["converted"] == 3
    scores = evaluate(out, dataset_root, bootstrap=0, strict=True).summary
    expected_j, expected_tempcon = own_scores(dataset_root, predict)
    assert scores.J == pytest.approx(expected_j)
    assert scores.TempCon == pytest.approx(expected_tempcon)
    if name == "oracle":
        assert scores.J == pytest.approx(100.0) and scores.TempCon == pytest.approx(0.0)
    if name == "empty":
        # Only the last frame of each clip is target-free: IoU 1 there, 0 elsewhere.
        frames = [len(c.frame_names) for c in Dataset(dataset_root) for _ in c.expressions]
        assert scores.J == pytest.approx(100 * np.mean([1 / t for t in frames]))
    run = json.loads((out / "run.json").read_text())
    assert run["method"] == name and run["status"] == "complete" and run["kind"] == "reference"


def test_reference_run_resumes_and_keeps_finished_clips(cli, dataset_root, tmp_path):
    out = tmp_path / "full"
    first = cli("run-baseline", "full", "--dataset", dataset_root, "--out", out, "--clip", "clip_b", "--json")
    assert first.code == 0 and first.json()["converted"] == 1
    stamp = (out / "clip_b" / "0" / "00000.png").stat().st_mtime_ns
    second = cli("run-baseline", "full", "--dataset", dataset_root, "--out", out, "--json")
    assert second.json()["already_done"] == 1 and second.json()["converted"] == 2
    assert (out / "clip_b" / "0" / "00000.png").stat().st_mtime_ns == stamp


def test_an_interrupted_reference_run_says_so_and_the_rerun_finishes_it(dataset_root, tmp_path):
    from baselines.reference import run_reference

    out = tmp_path / "oracle"

    class StopAfterFirstClip(Progress):
        def advance(self, stage, n=1, *, note=None):
            raise KeyboardInterrupt  # Ctrl-C once the first clip is written

    with pytest.raises(KeyboardInterrupt):
        run_reference("oracle", dataset_root, out, progress=StopAfterFirstClip())
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "interrupted" and run["finished"]
    summary = run_reference("oracle", dataset_root, out)
    assert (summary.already_done, summary.converted) == (1, 2)
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    assert evaluate(out, dataset_root, bootstrap=0, strict=True).summary.J == pytest.approx(100.0)


def test_other_motion_settings_are_not_mixed_into_finished_predictions(cli, dataset_root, tmp_path):
    out = tmp_path / "motion"
    assert cli("run-baseline", "motion", "--dataset", dataset_root, "--out", out, "--clip", "clip_a").code == 0
    result = cli("run-baseline", "motion", "--dataset", dataset_root, "--out", out, "--no-flow")
    assert result.code == 2 and "different settings" in result.flat_err


def test_oracle_needs_ground_truth(cli, tmp_path, dataset_root):
    import shutil

    copy = tmp_path / "nogt"
    shutil.copytree(dataset_root, copy)
    shutil.rmtree(copy / "Annotations")
    result = cli("run-baseline", "oracle", "--dataset", copy, "--out", tmp_path / "o")
    assert result.code == 1 and "mask" in result.flat_err and "refvps validate" in result.flat_err
    # ... but a test split without masks can still be predicted by the others.
    assert cli("run-baseline", "empty", "--dataset", copy, "--out", tmp_path / "e").code == 0


def test_unknown_clip_is_a_usage_error_not_a_dataset_problem(cli, dataset_root, tmp_path):
    result = cli("run-baseline", "empty", "--dataset", dataset_root, "--out", tmp_path / "e", "--clip", "nope")
    assert result.code == 2
    assert "--clip nope: not a clip of" in result.flat_err and "clip_a" in result.flat_err  # names real ids
    assert "does not validate" not in result.flat_err  # the dataset is fine
    assert not (tmp_path / "e").exists()
    # A clip named twice is predicted once.
    twice = cli(
        "run-baseline",
        "empty",
        "--dataset",
        dataset_root,
        "--out",
        tmp_path / "t",
        "--clip",
        "clip_a",
        "--clip",
        "clip_a",
        "--json",
    )
    assert twice.code == 0 and twice.json()["clips"] == 1 and twice.json()["converted"] == 1


def test_predictions_are_never_written_into_the_dataset_or_onto_a_file(cli, dataset_root, tmp_path):
    import shutil

    dataset = tmp_path / "data"
    shutil.copytree(dataset_root, dataset)
    before = sorted(str(p.relative_to(dataset)) for p in dataset.rglob("*"))
    for out in (dataset, dataset / "Annotations" / "preds", dataset / "JPEGImages"):
        result = cli("run-baseline", "full", "--dataset", dataset, "--out", out)
        assert result.code == 2 and "among its files" in result.flat_err, out
    assert sorted(str(p.relative_to(dataset)) for p in dataset.rglob("*")) == before
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    result = cli("run-baseline", "full", "--dataset", dataset, "--out", a_file)
    assert result.code == 2 and "is a file, not a folder" in result.flat_err
    assert a_file.read_text() == "keep me"
    # Beside the frames and masks, inside the dataset folder, is allowed.
    assert cli("run-baseline", "full", "--dataset", dataset, "--out", dataset / "predictions" / "full").code == 0


# -- motion --------------------------------------------------------------------------------------
def _scene(pan: int = 0, frames: int = 16, height: int = 144, width: int = 256, seed: int = 0):
    """A textured square moving 3 px/frame over a textured background, the camera panning ``pan`` px/frame."""
    rng = np.random.default_rng(seed)

    def texture(h, w):
        small = rng.integers(40, 215, (h // 4 + 1, w // 4 + 1, 3)).astype(np.uint8)
        return np.kron(small, np.ones((4, 4, 1), np.uint8))[:h, :w]

    background = texture(height, width + pan * frames + 8)
    square = texture(30, 30)
    rgbs, truth = [], []
    for t in range(frames):
        rgb = background[:, pan * t : pan * t + width].copy()
        x = 20 + 3 * t
        rgb[50:80, x : x + 30] = square
        mask = np.zeros((height, width), bool)
        mask[50:80, x : x + 30] = True
        rgbs.append(rgb)
        truth.append(mask)
    return rgbs, np.stack(truth)


def _ious(pred, truth):
    return [(p & g).sum() / (p | g).sum() for p, g in zip(pred, truth)]


def test_motion_finds_the_moving_square():
    rgbs, truth = _scene()
    masks = motion_masks(rgbs)
    assert masks.shape == truth.shape and masks.dtype == bool
    ious = _ious(masks, truth)
    assert np.mean(ious) > 0.6 and min(ious) > 0.4
    assert masks.mean() < 3 * truth.mean()  # not the whole frame


def test_motion_removes_a_panning_camera():
    rgbs, truth = _scene(pan=2)
    assert np.mean(_ious(motion_masks(rgbs), truth)) > 0.5
    # Without compensation the whole (moving) background lights up.
    assert motion_masks(rgbs, MotionConfig(compensate_camera=False)).mean() > 0.5


def test_motion_of_a_still_scene_is_empty_and_of_one_frame_too():
    rgbs, _ = _scene()
    assert not motion_masks([rgbs[0]] * 5).any()
    rng = np.random.default_rng(1)  # sensor/compression noise is not motion
    noisy = [np.clip(rgbs[0] + rng.normal(0, 4, rgbs[0].shape), 0, 255).astype(np.uint8) for _ in range(5)]
    assert not motion_masks(noisy).any()
    assert motion_masks([rgbs[0]]).shape == (1, 144, 256) and not motion_masks([rgbs[0]]).any()


def test_motion_without_flow_still_finds_it():
    rgbs, truth = _scene()
    assert np.mean(_ious(motion_masks(rgbs, MotionConfig(use_flow=False)), truth)) > 0.5


def test_motion_settings_are_checked():
    with pytest.raises(UsageError):
        MotionConfig(flow_floor=0)


def test_motion_baseline_beats_empty_and_full_on_the_fixture(cli, dataset_root, tmp_path):
    scores = {}
    for name in ("empty", "full", "motion"):
        assert cli("run-baseline", name, "--dataset", dataset_root, "--out", tmp_path / name).code == 0
        scores[name] = evaluate(tmp_path / name, dataset_root, bootstrap=0).summary.J
    assert scores["motion"] > max(scores["empty"], scores["full"])
