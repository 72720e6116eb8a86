"""The bundle's scoring program, run the way Codabench's compute worker runs it (tests/codabench/worker.py).

Good submissions (oracle, empty, motion on the dev split, and the starting kit's sample) get
``scores.json`` with the numbers ``refvps evaluate`` prints for the same predictions; malformed ones
get an ``Error:`` on stderr, a non-zero exit and no ``scores.json``, and the scoring process stays
small however large the submission claims to be.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from refvps.codabench import BundleOptions, build_bundle

from .worker import CodabenchRun, submit, unpack_bundle, zip_folder

pytestmark = pytest.mark.slow

COLUMNS = ("J", "F", "JF", "TempCon", "J_recall", "J_concept_balanced")
MEMORY_BOUND_MIB = 400  # refusing takes ~105 MiB (numpy, OpenCV, the scorer loaded), scoring this dataset ~150


@pytest.fixture(scope="module")
def competition(bundle, tmp_path_factory):
    return unpack_bundle(bundle, tmp_path_factory.mktemp("codabench"))


def refvps_evaluate(predictions: Path, dataset: Path, out: Path) -> dict:
    """The numbers of ``refvps evaluate`` (the command line, in its own process)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "refvps",
            "evaluate",
            str(predictions),
            "--dataset",
            str(dataset),
            "--output",
            str(out),
            "--bootstrap",
            "200",
        ],
        check=True,
        capture_output=True,
    )
    return json.loads(out.read_text())["summary"]


@pytest.mark.parametrize("method", ["oracle", "empty", "motion"])
def test_scores_equal_refvps_evaluate(competition, split_root, dev_predictions, method, tmp_path):
    submission = zip_folder(dev_predictions[method], tmp_path / "submission.zip")
    outcome = submit(competition, 0, submission, tmp_path / "run")
    assert outcome.returncode == 0, outcome.stderr
    expected = refvps_evaluate(dev_predictions[method], split_root / "dev", tmp_path / "results.json")
    assert set(outcome.scores) == set(COLUMNS)
    for key in COLUMNS:
        assert outcome.scores[key] == pytest.approx(expected[key], abs=1e-9), key
    if method == "oracle":  # independent of refvps: the ground truth against itself
        assert outcome.scores["J"] == pytest.approx(100.0) and outcome.scores["F"] == pytest.approx(100.0)
        assert outcome.scores["TempCon"] == pytest.approx(0.0)
    detailed = (outcome.output / "detailed_results.html").read_text()
    assert f"{expected['J']:.2f}" in detailed and "Per concept" in detailed
    results = json.loads((outcome.output / "results.json").read_text())
    assert results["summary"]["J_ci95"] == pytest.approx(expected["J_ci95"])


def test_sample_submission_of_the_starting_kit_scores(competition, tmp_path):
    sample = competition.folder / "starting_kit" / "sample_submission.zip"
    outcome = submit(competition, 0, sample, tmp_path / "run")
    assert outcome.returncode == 0, outcome.stderr
    assert 0.0 <= outcome.scores["J"] <= 100.0


def clip_ids(split: Path) -> list[str]:
    return sorted(json.loads((split / "meta_expressions.json").read_text())["videos"])


def test_test_phase_scores_against_the_hidden_split(competition, split_root, tmp_path):
    from baselines.reference import run_reference

    run_reference("oracle", split_root / "test", tmp_path / "oracle")
    outcome = submit(competition, 1, zip_folder(tmp_path / "oracle", tmp_path / "s.zip"), tmp_path / "run")
    assert outcome.returncode == 0, outcome.stderr
    assert outcome.scores["J"] == pytest.approx(100.0)
    # The hidden split's page has the per-concept table but no clip's score, and no results.json.
    detailed = (outcome.output / "detailed_results.html").read_text()
    assert "Per concept" in detailed and "no per-clip scores" in detailed
    assert not any(clip in detailed for clip in clip_ids(split_root / "test"))
    assert not (outcome.output / "results.json").exists()


def test_dev_phase_shows_every_clip(competition, split_root, dev_predictions, tmp_path):
    outcome = submit(competition, 0, zip_folder(dev_predictions["motion"], tmp_path / "s.zip"), tmp_path / "run")
    detailed = (outcome.output / "detailed_results.html").read_text()
    assert all(clip in detailed for clip in clip_ids(split_root / "dev"))


def test_test_per_clip_shows_the_test_phase_clips(split_root, tmp_path):
    from baselines.reference import run_reference

    from .conftest import settings

    out = tmp_path / "bundle.zip"
    build_bundle(split_root, out, settings(), BundleOptions(bootstrap=0, sample=False, test_per_clip=True))
    competition = unpack_bundle(out, tmp_path / "codabench")
    run_reference("motion", split_root / "test", tmp_path / "motion")
    outcome = submit(competition, 1, zip_folder(tmp_path / "motion", tmp_path / "s.zip"), tmp_path / "run")
    assert outcome.returncode == 0, outcome.stderr
    detailed = (outcome.output / "detailed_results.html").read_text()
    assert all(clip in detailed for clip in clip_ids(split_root / "test"))
    assert (outcome.output / "results.json").is_file()


def test_a_malformed_phase_file_is_an_error(competition, dev_predictions, tmp_path):
    def fill(res: Path) -> None:
        shutil.copytree(dev_predictions["oracle"], res, dirs_exist_ok=True)

    run = scoring_run(competition, tmp_path / "run", fill)
    (tmp_path / "run" / "input" / "ref" / "refvps_phase.json").write_text('{"phase": "test", "per_clip": "no"}')
    outcome = run.run_program()
    assert_refused(outcome, "refvps_phase.json", "per_clip")


def test_dev_predictions_do_not_score_in_the_test_phase(competition, dev_predictions, tmp_path):
    outcome = submit(competition, 1, zip_folder(dev_predictions["oracle"], tmp_path / "s.zip"), tmp_path / "run")
    assert_refused(outcome, "no predictions for this phase's clips")


# --------------------------------------------------------------------------------------------
# Malformed submissions
# --------------------------------------------------------------------------------------------


def assert_refused(outcome, *phrases: str) -> None:
    assert outcome.returncode != 0
    assert outcome.scores is None, "a refused submission must leave no scores.json"
    assert "Error:" in outcome.stderr and "Hint:" in outcome.stderr, outcome.stderr
    assert "Traceback" not in outcome.stderr, outcome.stderr
    for phrase in phrases:
        assert phrase in outcome.stderr.replace("\n", " "), outcome.stderr
    assert outcome.maxrss_mib < MEMORY_BOUND_MIB, f"scoring used {outcome.maxrss_mib:.0f} MiB"
    assert "not scored" in (outcome.output / "detailed_results.html").read_text()


def scoring_run(competition, work: Path, fill) -> CodabenchRun:
    """A scoring step whose ``input/res`` is made by ``fill(res)`` (what the worker's unzip would leave)."""
    run = CodabenchRun(work)
    for key, destination in (("scoring_program", "program"), ("reference_data", "input/ref")):
        with zipfile.ZipFile(competition.task_file(0, key)) as archive:
            archive.extractall(work / destination)
    res = work / "input" / "res"
    res.mkdir(parents=True)
    fill(res)
    return run


def test_wrong_layout_flat_masks(competition, dev_predictions, tmp_path):
    flat = tmp_path / "flat"
    for png in dev_predictions["oracle"].glob("*/0/*.png"):  # <clip>/<frame>.png: no expression level
        target = flat / png.parent.parent.name / png.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(png, target)
    outcome = submit(competition, 0, zip_folder(flat, tmp_path / "s.zip"), tmp_path / "run")
    assert_refused(outcome, "one folder per expression")


def test_wrong_layout_nested_folders(competition, dev_predictions, tmp_path):
    nested = tmp_path / "nested" / "a" / "b"
    shutil.copytree(dev_predictions["oracle"], nested)
    outcome = submit(competition, 0, zip_folder(tmp_path / "nested", tmp_path / "s.zip"), tmp_path / "run")
    assert_refused(outcome, "no predictions for this phase's clips", "top level holds: a")


def test_one_wrapper_folder_is_accepted(competition, dev_predictions, tmp_path):
    shutil.copytree(dev_predictions["oracle"], tmp_path / "wrapped" / "my_method")
    outcome = submit(competition, 0, zip_folder(tmp_path / "wrapped", tmp_path / "s.zip"), tmp_path / "run")
    assert outcome.returncode == 0, outcome.stderr
    assert outcome.scores["J"] == pytest.approx(100.0)


def test_missing_frames(competition, dev_predictions, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(dev_predictions["oracle"], partial)
    removed = sorted(partial.glob("*/0/*.png"))[:3]
    for path in removed:
        path.unlink()
    outcome = submit(competition, 0, zip_folder(partial, tmp_path / "s.zip"), tmp_path / "run")
    first = removed[0].relative_to(partial).as_posix()
    assert_refused(outcome, "3 predicted mask(s) are missing", first)


def test_nested_zip_is_accepted(competition, dev_predictions, tmp_path):
    inner = zip_folder(dev_predictions["oracle"], tmp_path / "inner" / "predictions.zip")
    outcome = submit(competition, 0, zip_folder(inner.parent, tmp_path / "s.zip"), tmp_path / "run")
    assert outcome.returncode == 0, outcome.stderr
    assert outcome.scores["J"] == pytest.approx(100.0)


def _zip_bomb(path: Path, size: int, member: str = "clip/0/00000.png") -> Path:
    """One zip entry that inflates to ``size`` zero bytes (about 1000-fold)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open(member, "w", force_zip64=True) as entry:
            block = bytes(1 << 20)
            for _ in range(size >> 20):
                entry.write(block)
    return path


def test_zip_bomb_inside_the_submission(competition, tmp_path):
    bomb = _zip_bomb(tmp_path / "inner" / "predictions.zip", 1 << 30)  # 1 GiB inflated, ~1 MB stored
    assert bomb.stat().st_size < 8 << 20
    outcome = submit(competition, 0, zip_folder(bomb.parent, tmp_path / "s.zip"), tmp_path / "run")
    assert_refused(outcome, "predictions.zip:clip/0/00000.png is 1024.0 MiB")


def test_zip_bomb_below_the_size_limits(competition, tmp_path):
    # 32 MiB fits under the limit of a COCO-RLE file, but no prediction compresses 1000-fold.
    bomb = _zip_bomb(tmp_path / "inner" / "predictions.zip", 32 << 20, member="predictions.json")
    outcome = submit(competition, 0, zip_folder(bomb.parent, tmp_path / "s.zip"), tmp_path / "run")
    assert_refused(outcome, "predictions.zip:predictions.json: the entry inflates", "zip bomb")


def _nested_zip(tmp_path: Path, member: str, data: bytes) -> Path:
    """A submission folder holding one predictions.zip with one entry."""
    inner = tmp_path / "inner" / "predictions.zip"
    inner.parent.mkdir()
    with zipfile.ZipFile(inner, "w") as archive:
        archive.writestr(member, data)
    return inner


def test_declared_4gb_entry_inside_the_submission(competition, tmp_path):
    inner = _nested_zip(tmp_path, "clip/0/00000.png", b"small")
    data = bytearray(inner.read_bytes())
    central = data.rindex(b"PK\x01\x02")  # the central directory entry: uncompressed size at offset 24
    data[central + 24 : central + 28] = (4 * 10**9).to_bytes(4, "little")
    inner.write_bytes(bytes(data))
    outcome = submit(competition, 0, zip_folder(inner.parent, tmp_path / "s.zip"), tmp_path / "run")
    assert_refused(outcome, "predictions.zip:clip/0/00000.png is 3814.7 MiB")


def test_4gb_file_in_the_submission(competition, dev_predictions, tmp_path):
    def fill(res: Path) -> None:
        shutil.copytree(dev_predictions["oracle"], res, dirs_exist_ok=True)
        huge = next(res.glob("*/0/00000.png"))
        with open(huge, "wb") as handle:  # sparse: 4 GB of size, no blocks on disk
            handle.truncate(4 * 10**9)

    outcome = scoring_run(competition, tmp_path / "run", fill).run_program()
    assert_refused(outcome, "3814.7 MiB")


def test_outer_zip_bomb_lands_as_a_huge_file(competition, tmp_path):
    # The worker inflates the submission itself (extractall): a bomb becomes a large file in input/res.
    bomb = _zip_bomb(tmp_path / "bomb.zip", 256 << 20)
    outcome = submit(competition, 0, bomb, tmp_path / "run")
    assert_refused(outcome, "clip/0/00000.png is 256.0 MiB")


def test_link_escaping_the_submission(competition, dev_predictions, tmp_path):
    def fill(res: Path) -> None:
        shutil.copytree(dev_predictions["oracle"], res, dirs_exist_ok=True)
        clip = next(p for p in res.iterdir() if p.is_dir())
        shutil.rmtree(clip / "0")
        os.symlink(res.parent / "ref" / "Annotations" / clip.name, clip / "0")  # the hidden masks as a prediction

    outcome = scoring_run(competition, tmp_path / "run", fill).run_program()
    assert_refused(outcome, "holds a link")


def test_paths_escaping_the_nested_zip(competition, tmp_path):
    inner = _nested_zip(tmp_path, "../../ref/Annotations/x/00000.png", b"\x89PNG")
    outcome = submit(competition, 0, zip_folder(inner.parent, tmp_path / "s.zip"), tmp_path / "run")
    assert_refused(outcome, "leaves the archive's folder")


def test_paths_escaping_the_submission_zip_stay_inside(competition, dev_predictions, tmp_path):
    # Python's extractall, as the worker uses it, drops ".." and leading "/": nothing lands outside.
    submission = tmp_path / "s.zip"
    with zipfile.ZipFile(submission, "w") as archive:
        archive.writestr("../../escaped.png", b"x")
        archive.writestr("/abs/escaped2.png", b"x")
    outcome = submit(competition, 0, submission, tmp_path / "run")
    assert not (tmp_path / "escaped.png").exists() and not list(tmp_path.parent.glob("escaped*"))
    assert_refused(outcome, "no predictions for this phase's clips")


def test_corrupt_mask(competition, dev_predictions, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(dev_predictions["oracle"], broken)
    next(broken.glob("*/0/00003.png")).write_bytes(b"\x89PNG\r\n\x1a\n not really")
    outcome = submit(competition, 0, zip_folder(broken, tmp_path / "s.zip"), tmp_path / "run")
    assert_refused(outcome, "00003.png")


def test_submission_without_masks(competition, tmp_path):
    submission = tmp_path / "s.zip"
    with zipfile.ZipFile(submission, "w") as archive:
        archive.writestr("README.txt", "my method")
    outcome = submit(competition, 0, submission, tmp_path / "run")
    assert_refused(outcome, "top level holds: README.txt")


def test_image_with_another_refvps_version(competition, dev_predictions, tmp_path):
    def fill(res: Path) -> None:
        shutil.copytree(dev_predictions["oracle"], res, dirs_exist_ok=True)

    run = scoring_run(competition, tmp_path / "run", fill)
    config = tmp_path / "run" / "program" / "config.json"
    data = json.loads(config.read_text())
    data["refvps_version"] = "0.0.1"
    config.write_text(json.dumps(data))
    assert_refused(run.run_program(), "bundle was built for refvps 0.0.1")


def test_the_memory_measure_sees_a_program_that_reads_a_large_file(competition, tmp_path):
    # The control for MEMORY_BOUND_MIB: had the scorer read the 4 GB file, the bound would catch it.
    def fill(res: Path) -> None:
        with open(res / "big.png", "wb") as handle:
            handle.truncate(1 << 30)

    run = scoring_run(competition, tmp_path / "run", fill)
    reader = "import sys; data = open(sys.argv[1], 'rb').read(); print(len(data))"
    (tmp_path / "run" / "program" / "metadata.yaml").write_text(
        f'command: python3 -c "{reader}" /app/input/res/big.png\n'
    )
    outcome = run.run_program()
    assert outcome.returncode == 0, outcome.stderr
    assert outcome.maxrss_mib > MEMORY_BOUND_MIB
