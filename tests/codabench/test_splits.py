"""How a dataset names its splits: a "split" field per clip, or one folder per split."""

from __future__ import annotations

import json
import shutil

import pytest

from refvps.codabench import resolve_splits
from refvps.dataset import Dataset
from refvps.errors import DatasetError, UsageError

from .conftest import field_layout


def test_folder_layout(split_root):
    plan = resolve_splits(split_root)
    assert plan.layout == "folders"
    assert plan.dev.root == split_root / "dev" and plan.test.root == split_root / "test"
    assert list(plan.dev.clip_ids) == Dataset(split_root / "dev").clip_ids
    assert plan.left_out == {}


def test_field_layout(split_root, tmp_path):
    root = field_layout(split_root, tmp_path / "data")
    plan = resolve_splits(root)
    assert plan.layout == "field" and plan.dev.root == plan.test.root == root
    assert set(plan.dev.clip_ids) == set(Dataset(split_root / "dev").clip_ids)
    assert set(plan.test.clip_ids) == set(Dataset(split_root / "test").clip_ids)


def test_other_splits_and_unsplit_clips_are_left_out_and_counted(split_root, tmp_path, caplog):
    root = field_layout(split_root, tmp_path / "data")
    clips = json.loads((root / "clips.json").read_text())
    first, second = sorted(clips["clips"])[:2]
    clips["clips"][first]["split"] = "train"
    del clips["clips"][second]["split"]
    (root / "clips.json").write_text(json.dumps(clips))
    plan = resolve_splits(root)
    assert plan.left_out == {"(no split)": 1, "train": 1}
    assert first not in plan.dev.clip_ids + plan.test.clip_ids
    assert "left out" in caplog.text


def test_other_split_names(split_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(split_root / "dev", root / "valid")
    shutil.copytree(split_root / "test", root / "hidden")
    plan = resolve_splits(root, dev="valid", test="hidden")
    assert (plan.dev.name, plan.test.name) == ("valid", "hidden")


@pytest.mark.parametrize(
    "dev, test, message",
    [
        ("dev", "dev", "both 'dev'"),
        ("val", "test", "no split folder 'val' .dataset folders found: dev, test"),
    ],
)
def test_bad_split_names(split_root, dev, test, message):
    with pytest.raises(UsageError, match=message):
        resolve_splits(split_root, dev=dev, test=test)


def test_missing_split_value(split_root, tmp_path):
    root = field_layout(split_root, tmp_path / "data")
    with pytest.raises(UsageError, match=r"no clip of .* is in split 'hidden' \(splits found: dev, test\)"):
        resolve_splits(root, test="hidden")


def test_split_that_is_not_a_string(split_root, tmp_path):
    root = field_layout(split_root, tmp_path / "data")
    clips = json.loads((root / "clips.json").read_text())
    clips["clips"][sorted(clips["clips"])[0]]["split"] = 1
    (root / "clips.json").write_text(json.dumps(clips))
    with pytest.raises(DatasetError, match="not a split name"):
        resolve_splits(root)


def test_same_clip_in_two_split_folders(split_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(split_root / "dev", root / "dev")
    shutil.copytree(split_root / "dev", root / "test")
    with pytest.raises(DatasetError, match="3 clip id.s. are in both"):
        resolve_splits(root)
