"""The checks a submission passes before it is scored, with small limits (no worker run)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from refvps.codabench.submission import SubmissionLimits, check_zip, inspect_submission, locate_predictions
from refvps.dataset import Dataset
from refvps.errors import PredictionError

SMALL = SubmissionLimits(max_files=3, max_file_bytes=100, max_json_bytes=1000, max_total_bytes=1200)


def files(root: Path, sizes: dict[str, int]) -> Path:
    for name, size in sizes.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)
    return root


def test_limits_follow_the_split():
    ref_vps = SubmissionLimits.for_split(n_masks=57720, largest_frame=(576, 1024))  # 111 clips x 130 x 4
    assert ref_vps.max_file_bytes == 8 * 576 * 1024 + (1 << 20)
    assert ref_vps.max_files == 2 * 57720 + 1000
    assert ref_vps.max_json_bytes == 57720 * 8192
    assert ref_vps.max_total_bytes == 57720 * 262144
    tiny = SubmissionLimits.for_split(n_masks=10, largest_frame=(64, 96))
    assert (tiny.max_json_bytes, tiny.max_total_bytes) == (64 << 20, 256 << 20)  # the floors


def test_files_are_listed_with_their_sizes(tmp_path):
    found = inspect_submission(files(tmp_path, {"a/0/1.png": 10, "a/0/2.png": 20, "r.json": 900}), SMALL)
    assert sorted((f.path.relative_to(tmp_path).as_posix(), f.size) for f in found) == [
        ("a/0/1.png", 10),
        ("a/0/2.png", 20),
        ("r.json", 900),
    ]


@pytest.mark.parametrize(
    "sizes, message",
    [
        ({"a/0/1.png": 101}, "a/0/1.png is 101 bytes, more than the 100 bytes"),
        ({"p.json": 1001}, "p.json is 1001 bytes"),
        ({"1.png": 1, "2.png": 1, "3.png": 1, "4.png": 1}, "more than 3 files"),
        ({"1.json": 900, "2.json": 900}, "more than 1200 bytes in all"),
    ],
)
def test_limits_are_enforced(tmp_path, sizes, message):
    with pytest.raises(PredictionError, match=message):
        inspect_submission(files(tmp_path, sizes), SMALL)


def test_special_files_and_links_are_refused(tmp_path):
    (tmp_path / "a").mkdir()
    os.mkfifo(tmp_path / "a" / "pipe")
    with pytest.raises(PredictionError, match="special file: pipe"):
        inspect_submission(tmp_path / "a", SMALL)
    (tmp_path / "b").mkdir()
    os.symlink("/etc/passwd", tmp_path / "b" / "x.png")
    with pytest.raises(PredictionError, match="holds a link"):
        inspect_submission(tmp_path / "b", SMALL)


def zip_with(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@pytest.mark.parametrize(
    "members, message",
    [
        ({"/abs/x.png": b"1"}, "leaves the archive's folder"),
        ({"a/../../x.png": b"1"}, "leaves the archive's folder"),
        ({"C:/x.png": b"1"}, "leaves the archive's folder"),
        ({"a.png": b"1", "b.png": b"1", "c.png": b"1", "d.png": b"1"}, "holds 4 entries"),
        ({"a.png": b"1" * 101}, "a.png is"),
        ({"a.json": b"1" * 900, "b.json": b"1" * 900}, "inflates to more than 1200 bytes"),
    ],
)
def test_unsafe_nested_zips(tmp_path, members, message):
    with pytest.raises(PredictionError, match=message):
        check_zip(zip_with(tmp_path / "p.zip", members), SMALL)


def test_link_inside_a_nested_zip(tmp_path):
    path = tmp_path / "p.zip"
    with zipfile.ZipFile(path, "w") as archive:
        info = zipfile.ZipInfo("a/0/00000.png")
        info.external_attr = 0o120777 << 16  # a symbolic link, as Info-ZIP stores one
        archive.writestr(info, "../../../ref")
    with pytest.raises(PredictionError, match="is a link"):
        check_zip(path, SMALL)


def test_not_a_zip(tmp_path):
    (tmp_path / "p.zip").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(PredictionError, match="not a readable zip"):
        check_zip(tmp_path / "p.zip", SMALL)


def test_where_the_predictions_are(split_root, tmp_path):
    dataset = Dataset(split_root / "dev")
    clip = dataset.clip_ids[0]
    limits = SubmissionLimits.for_split(1000, (64, 96))
    layouts = {
        "top": (f"{clip}/0/00000.png", "."),
        "annotations": (f"Annotations/{clip}/0/00000.png", "."),
        "wrapper": (f"mine/{clip}/0/00000.png", "mine"),
        "wrapped annotations": (f"mine/Annotations/{clip}/0/00000.png", "mine"),
    }
    for name, (member, expected) in layouts.items():
        res = files(tmp_path / name, {member: 1, "metadata": 1})  # the worker's own status file is ignored
        assert locate_predictions(res, dataset, limits) == (res if expected == "." else res / expected), name
    rle = files(tmp_path / "rle", {"preds.json": 1, "metadata": 1})
    assert locate_predictions(rle, dataset, limits) == rle / "preds.json"
    archive = tmp_path / "zipped"
    archive.mkdir()
    zip_with(archive / "preds.zip", {f"{clip}/0/00000.png": b"1"})
    assert locate_predictions(archive, dataset, limits) == archive / "preds.zip"
    both = files(tmp_path / "both", {"a.json": 1, "b.json": 1})
    with pytest.raises(PredictionError, match="top level holds: a.json, b.json"):
        locate_predictions(both, dataset, limits)
