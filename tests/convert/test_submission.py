"""``export-submission``: the zip the Ref-YouTube-VOS and MeViS servers take, checked before it is written."""

from __future__ import annotations

import io
import shutil
import zipfile

import numpy as np
import pytest
from PIL import Image

from refvps.convert import convert
from refvps.dataset.format import Dataset
from refvps.errors import PredictionError, UsageError
from refvps.predictions import PredictionWriter
from refvps.predictions.submission import export_submission
from refvps.scoring import evaluate

from . import official
from .conftest import random_predictions


def _expected(root, prefix):
    return {
        "/".join(p for p in (prefix, clip.id, e.exp_id, f"{frame}.png") if p)
        for clip in Dataset(root)
        for e in clip.expressions
        for frame in clip.frame_names
    }


def test_ref_ytvos_valid_zip_holds_every_expected_mask_and_nothing_else(ytvos_valid, tmp_path):
    pred = random_predictions(ytvos_valid.root, tmp_path / "pred", seed=11)
    PredictionWriter(pred).write("vtest01", "0", "00000", np.ones((official.H, official.W), bool))  # a test video
    report = export_submission(pred, ytvos_valid.root, "ref-ytvos", tmp_path / "submission.zip")
    with zipfile.ZipFile(tmp_path / "submission.zip") as archive:
        names = set(archive.namelist())
        assert names == _expected(ytvos_valid.root, "Annotations")  # 202-style: the test video is not there
        assert len(names) == 2 * 2 + 1 * 3
        image = Image.open(io.BytesIO(archive.read("Annotations/vvalid02/0/00010.png")))
        assert image.mode == "L" and set(np.unique(np.asarray(image))) <= {0, 255}
        truth = np.asarray(Image.open(pred / "vvalid02" / "0" / "00010.png")) > 0
        assert np.array_equal(np.asarray(image) > 0, truth)
    assert (report.videos, report.expressions, report.masks) == (2, 3, 7)
    assert report.left_out == {"clips": 1}


def test_missing_masks_are_named_and_nothing_is_written(ytvos_valid, tmp_path):
    pred = random_predictions(ytvos_valid.root, tmp_path / "pred", seed=12)
    (pred / "vvalid02" / "0" / "00005.png").unlink()
    shutil.rmtree(pred / "vvalid01" / "1")
    out = tmp_path / "submission.zip"
    out.write_bytes(b"an older zip")
    with pytest.raises(PredictionError) as info:
        export_submission(pred, ytvos_valid.root, "ref-ytvos", out)
    message = info.value.message
    assert "3 mask(s)" in message and "vvalid01: 2" in message and "vvalid02: 1" in message
    assert "vvalid01/1/00000" in message and "vvalid02/0/00005" in message
    assert out.read_bytes() == b"an older zip" and not list(tmp_path.glob(".submission.zip.*"))


def test_ref_ytvos_zip_round_trips_to_identical_scores(ytvos_train, tmp_path):
    pred = random_predictions(ytvos_train.root, tmp_path / "pred", seed=13)
    export_submission(pred, ytvos_train.root, "ref-ytvos", tmp_path / "submission.zip")
    direct = evaluate(pred, ytvos_train.root, bootstrap=0, gt_cache=False, strict=True)
    zipped = evaluate(tmp_path / "submission.zip", ytvos_train.root, bootstrap=0, gt_cache=False, strict=True)
    assert zipped.meta["format"] == "zip"
    assert [(r.video, r.exp_id, r.J, r.F) for r in zipped.per_expression] == [
        (r.video, r.exp_id, r.J, r.F) for r in direct.per_expression
    ]
    assert (zipped.summary.J, zipped.summary.F, zipped.summary.TempCon) == (
        direct.summary.J,
        direct.summary.F,
        direct.summary.TempCon,
    )


def test_mevis_zip_has_video_folders_at_the_top(tmp_path):
    source = official.write_mevis(tmp_path / "src")
    convert("mevis", source.root, tmp_path / "valid", split="valid")
    pred = random_predictions(tmp_path / "valid", tmp_path / "pred", seed=14)
    export_submission(pred, tmp_path / "valid", "mevis", tmp_path / "mevis.zip")
    with zipfile.ZipFile(tmp_path / "mevis.zip") as archive:
        assert set(archive.namelist()) == {"mvval1/0/00000.png", "mvval1/0/00001.png"}


def test_a_dataset_of_another_benchmark_is_refused(vspw, tmp_path):
    pred = random_predictions(vspw.root, tmp_path / "pred", seed=15)
    with pytest.raises(UsageError, match="not a converted Ref-YouTube-VOS"):
        export_submission(pred, vspw.root, "ref-ytvos", tmp_path / "x.zip")


def test_cli_export_submission(ytvos_valid, tmp_path, cli):
    pred = random_predictions(ytvos_valid.root, tmp_path / "pred", seed=16)
    result = cli("export-submission", pred, "--dataset", ytvos_valid.root, "--benchmark", "ref-ytvos",
                 "--out", tmp_path / "s.zip", "--json")  # fmt: skip
    assert result.code == 0, result.err
    assert '"masks": 7' in result.out and (tmp_path / "s.zip").is_file()
