"""External adapters end to end through the subprocess path, with fake methods standing in for the
upstream entry points (see conftest.py): success, a failing method, resuming, missing masks."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from refvps.dataset import Dataset
from refvps.scoring import evaluate

from .conftest import PYTHON, external_args, make_fake_checkout


def _git_commit(repo: Path) -> str:
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "fake"], check=True)
    return subprocess.run(git + ["rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def fake_env(monkeypatch, tmp_path, dataset_root):
    record = tmp_path / "record"
    record.mkdir()
    monkeypatch.setenv("FAKE_GT_ROOT", str(dataset_root))
    monkeypatch.setenv("FAKE_RECORD_DIR", str(record))
    monkeypatch.delenv("FAKE_FAIL_AFTER", raising=False)
    monkeypatch.delenv("FAKE_SKIP", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return record


@pytest.mark.parametrize("method", ["vdit", "mutr", "uninext"])
def test_fake_method_runs_end_to_end_and_scores_100(method, cli, dataset_root, tmp_path, checkpoint, fake_env):
    repo = make_fake_checkout(tmp_path / "repo", method)
    commit = _git_commit(repo)
    out = tmp_path / "preds"
    result = cli(*external_args(method, dataset_root, out, repo, checkpoint, "--gpus", "3", "--json"))
    assert result.code == 0, result.err
    summary = result.json()
    assert summary["status"] == "complete" and summary["converted"] == 3

    scores = evaluate(out, dataset_root, bootstrap=0, strict=True)
    assert scores.summary.J == pytest.approx(100.0)

    run = json.loads((out / "run.json").read_text())
    assert run["method"] == method and run["status"] == "complete" and run["exit_status"] == 0
    assert run["upstream"]["commit"] == commit and run["upstream"]["dirty"] is False
    assert run["upstream"]["checked_commit"] and run["upstream"]["repository"]
    assert run["warning"].startswith(f"the checkout is at {commit}")
    assert run["checkpoint"]["path"] == str(checkpoint.resolve())
    assert run["checkpoint"]["sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert run["started"] <= run["finished"]
    assert run["commands"][0]["argv"][0] == PYTHON
    (attempt,) = run["attempts"]
    log = Path(attempt["log"])
    assert log.parent == out / ".logs" and "# command:" in log.read_text()
    assert not (tmp_path / "preds.work").exists(), "a complete run removes its work folder"

    # The traps were handled: what the fake method saw at run time.
    if method == "vdit":
        assert (fake_env / "cuda_visible_devices").read_text() == "3"  # not the hard-coded '7'
        assert (fake_env / "t2v").read_text() == str(
            (repo / "Text-To-Video-Finetuning/mymodels/model_scope_diffusers").resolve()
        )
    if method == "mutr":
        assert (fake_env / "resume").read_text() == str(checkpoint.resolve())
    if method == "uninext":
        assert (fake_env / "num_gpus").read_text() == "1"


def test_failing_method_points_to_its_log_and_the_rerun_resumes(
    cli, dataset_root, tmp_path, checkpoint, fake_env, monkeypatch
):
    repo = make_fake_checkout(tmp_path / "repo", "vdit")
    out = tmp_path / "preds"
    args = external_args("vdit", dataset_root, out, repo, checkpoint)
    monkeypatch.setenv("FAKE_FAIL_AFTER", "1")
    failed = cli(*args)
    assert failed.code == 1
    assert failed.error.startswith("Error: VD-IT exited with status 1; its log is")
    assert "CUDA out of memory (fake)" in failed.error and "Hint:" in failed.error
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "failed" and run["exit_status"] == 1 and run["finished"]  # not "running", not "error"
    log = Path(run["attempts"][0]["log"])
    assert str(log) in failed.flat_err and log.is_file() and "CUDA out of memory" in log.read_text()
    assert "run the same command again" in failed.flat_err
    assert sorted(p.stem for p in (out / ".done").iterdir()) == ["clip_a"]  # finished before the crash
    assert (tmp_path / "preds.work").is_dir(), "a failed run keeps its work folder"

    monkeypatch.delenv("FAKE_FAIL_AFTER")
    resumed = cli(*args, "--json")
    assert resumed.code == 0, resumed.err
    assert resumed.json()["already_done"] == 1 and resumed.json()["converted"] == 2
    assert json.loads((fake_env / "videos").read_text()) == ["clip_b", "clip_c"]  # only the rest was exported
    run = json.loads((out / "run.json").read_text())
    assert [a["status"] for a in run["attempts"]] == ["failed", "complete"]
    assert run["status"] == "complete"
    assert evaluate(out, dataset_root, bootstrap=0, strict=True).summary.J == pytest.approx(100.0)

    again = cli(*args, "--json")  # nothing left: no run at all
    assert again.code == 0 and again.json()["already_done"] == 3 and again.json()["converted"] == 0


def test_masks_written_before_an_interruption_are_converted_on_the_next_run(
    cli, dataset_root, tmp_path, checkpoint, fake_env, monkeypatch
):
    repo = make_fake_checkout(tmp_path / "repo", "uninext")
    out = tmp_path / "preds"
    args = external_args("uninext", dataset_root, out, repo, checkpoint, "--keep-workdir")
    monkeypatch.setenv("FAKE_FAIL_AFTER", "1")
    assert cli(*args).code == 1
    # As if refvps itself had been killed before converting: forget the converted clip.
    shutil.rmtree(out / ".done")
    shutil.rmtree(out / "clip_a")
    monkeypatch.delenv("FAKE_FAIL_AFTER")
    resumed = cli(*args, "--json")
    assert resumed.code == 0, resumed.err
    assert json.loads((fake_env / "opts").read_text())  # the method ran again, for the others only
    (data,) = [json.loads((tmp_path / "preds.work/export/datasets/ref-youtube-vos/valid.json").read_text())]
    assert sorted({v["video"] for v in data["videos"]}) == ["clip_b", "clip_c"]
    assert evaluate(out, dataset_root, bootstrap=0, strict=True).summary.J == pytest.approx(100.0)


def test_a_frame_the_method_did_not_write_is_reported(cli, dataset_root, tmp_path, checkpoint, fake_env, monkeypatch):
    repo = make_fake_checkout(tmp_path / "repo", "mutr")
    out = tmp_path / "preds"
    args = external_args("mutr", dataset_root, out, repo, checkpoint)
    monkeypatch.setenv("FAKE_SKIP", "clip_b/1/00002.png")
    result = cli(*args)
    assert result.code == 1
    assert "MUTR finished (exit status 0) but did not write every mask" in result.flat_err
    assert "1 of 15 masks missing in 1 clip(s): clip_b: expression 1 frames 00002" in result.flat_err
    assert ".logs/mutr-attempt-001" in result.flat_err and "last lines of the log" in result.flat_err
    assert sorted(p.stem for p in (out / ".done").iterdir()) == ["clip_a", "clip_c"]
    monkeypatch.delenv("FAKE_SKIP")
    assert cli(*args).code == 0
    assert evaluate(out, dataset_root, bootstrap=0, strict=True).summary.J == pytest.approx(100.0)


def test_another_checkpoint_cannot_be_mixed_into_finished_predictions(
    cli, dataset_root, tmp_path, checkpoint, fake_env, monkeypatch
):
    repo = make_fake_checkout(tmp_path / "repo", "vdit")
    out = tmp_path / "preds"
    monkeypatch.setenv("FAKE_FAIL_AFTER", "1")
    assert cli(*external_args("vdit", dataset_root, out, repo, checkpoint)).code == 1
    checkpoint.write_bytes(b"other weights")
    result = cli(*external_args("vdit", dataset_root, out, repo, checkpoint))
    assert result.code == 2
    assert "already holds 1 finished clips from a run with different checkpoint_sha256" in result.flat_err
    assert "new --out" in result.flat_err


def test_a_foreign_work_folder_is_never_emptied(cli, dataset_root, tmp_path, checkpoint, fake_env):
    repo = make_fake_checkout(tmp_path / "repo", "vdit")
    mine = tmp_path / "my-folder"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    result = cli(*external_args("vdit", dataset_root, tmp_path / "p", repo, checkpoint, "--workdir", mine))
    assert result.code == 2 and "not made by refvps" in result.flat_err
    assert (mine / "notes.txt").read_text() == "keep me"


def test_a_method_that_cannot_start_is_a_clear_error(cli, dataset_root, tmp_path, checkpoint, fake_env):
    repo = make_fake_checkout(tmp_path / "repo", "vdit")
    not_python = tmp_path / "python"
    not_python.write_text("#!/bin/sh\nexit 7\n")
    not_python.chmod(0o755)
    args = external_args("vdit", dataset_root, tmp_path / "p", repo, checkpoint)
    args[args.index("--python") + 1] = str(not_python)
    result = cli(*args)
    assert result.code == 1 and "exited with status 7" in result.flat_err


def test_two_runs_cannot_share_a_work_folder(tmp_path):
    from baselines.external import exclusive, prepare_workdir
    from refvps.errors import UsageError

    paths = prepare_workdir(tmp_path / "w", "vdit")
    with exclusive(paths):
        with pytest.raises(UsageError, match="another refvps run is using the work folder"):
            with exclusive(prepare_workdir(tmp_path / "w", "vdit")):
                pass
    with exclusive(paths):  # free again once the first run is over
        pass
    with pytest.raises(UsageError, match="belongs to a 'vdit' run"):
        prepare_workdir(tmp_path / "w", "mutr")


def test_an_interrupted_external_run_says_so_and_the_rerun_finishes_it(dataset_root, tmp_path, checkpoint, fake_env):
    from baselines.external import ExternalOptions, run_external
    from baselines.vdit import VditAdapter
    from refvps.progress import Progress, RecordingProgress

    class CtrlCWhenTheMethodStarts(Progress):
        def start(self, stage, total=None, *, note=None):
            if stage == "masks":
                raise KeyboardInterrupt

    repo = make_fake_checkout(tmp_path / "repo", "vdit")
    out = tmp_path / "preds"
    options = ExternalOptions(dataset=dataset_root, out=out, repo=repo, python=PYTHON, checkpoint=checkpoint)
    with pytest.raises(KeyboardInterrupt):
        run_external(VditAdapter(), options, CtrlCWhenTheMethodStarts())
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "interrupted" and run["finished"] and run["exit_status"] is None
    assert [a["status"] for a in run["attempts"]] == ["interrupted"]

    progress = RecordingProgress()
    summary = run_external(VditAdapter(), options, progress)
    assert summary.status == "complete" and summary.converted == 3
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and [a["status"] for a in run["attempts"]] == ["interrupted", "complete"]
    masks = sum(len(clip.expressions) * len(clip.frame_names) for clip in Dataset(dataset_root))
    assert progress.totals["masks"] == masks and progress.completed["converting"] == 3
