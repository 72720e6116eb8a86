"""REM training data from converted benchmarks (docs/BENCHMARKS_SUITE.md, "Format extension"): union
targets (MeViS) and clips that annotate some frames only (Ref-YouTube-VOS train, BURST).

The benchmarks are written in their official formats (tests/convert/official.py) and converted with
``refvps convert``; expectations come from the official files (the writers' ground truth), not from
refvps's reading of the converted dataset.
"""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest

from refvps.cli import main
from refvps.convert import convert
from refvps.dataset.validate import validate_dataset
from refvps.errors import DatasetError
from rem_model.data import DataSource, build_training_dataset
from rem_model.data import video as video_module
from rem_model.data.video import RefVPSVideoDataset, RefYouTubeVOSDataset
from tests.convert import official

NATIVE = (official.H, official.W)  # the model input at the frames' own size: no resizing
THINNED = {"mv001": ["00000", "00002", "00004"], "mv002": ["00000", "00003"]}  # every 2nd / 3rd frame


@pytest.fixture(scope="module")
def mevis(tmp_path_factory):
    """MeViS valid_u converted (dense, union targets); and its official ground truth."""
    base = tmp_path_factory.mktemp("mevis")
    source = official.write_mevis(base / "src")
    convert("mevis", source.root, base / "out")
    return base / "out", source


def _thin(root, out, annotated: dict[str, list[str]]):
    """A copy of a converted dataset where each clip in ``annotated`` keeps those frames' masks only
    (as Ref-YouTube-VOS train annotates every 5th frame), marked in ``annotated_frames``."""
    shutil.copytree(root, out)
    meta = json.loads((out / "meta_expressions.json").read_text())
    for clip, frames in annotated.items():
        meta["videos"][clip]["annotated_frames"] = frames
        for mask in (out / "Annotations" / clip).glob("*.png"):
            if mask.stem not in frames:
                mask.unlink()
        if not frames:
            shutil.rmtree(out / "Annotations" / clip)
    (out / "meta_expressions.json").write_text(json.dumps(meta))
    assert not validate_dataset(out).errors  # a well-formed converted dataset
    return out


@pytest.fixture(scope="module")
def sparse_mevis(mevis, tmp_path_factory):
    return _thin(mevis[0], tmp_path_factory.mktemp("sparse") / "data", THINNED)


class ReadSpy:
    """Records the files a dataset reads (frames and label maps), in order."""

    def __init__(self, monkeypatch):
        self.frames: list = []
        self.labels: list = []
        read_rgb, read_label = video_module.read_rgb, video_module.read_label_png
        monkeypatch.setattr(video_module, "read_rgb", lambda p: self.frames.append(p) or read_rgb(p))
        monkeypatch.setattr(video_module, "read_label_png", lambda p: self.labels.append(p) or read_label(p))

    def take(self):
        frames, labels = [(p.parent.name, p.stem) for p in self.frames], [(p.parent.name, p.stem) for p in self.labels]
        self.frames, self.labels = [], []
        return frames, labels


def test_a_union_target_trains_on_the_union_of_its_objects(mevis):
    root, source = mevis
    dataset = RefVPSVideoDataset(root, resolution=NATIVE, num_frames=5, max_stride=1, seed=0)
    assert len(dataset) == len(source.truth)
    for index, item in enumerate(dataset.items):
        truth = source.truth[(item.clip_id, item.exp_id)]  # the union of the anno_id masks, per frame
        sample = dataset[index]
        # A 5-frame window of a 5-frame clip is the clip; of the 4-frame mv002, its frames and the last again.
        expected = np.stack([truth[min(t, len(truth) - 1)] for t in range(5)])
        np.testing.assert_array_equal(sample["masks"].numpy() > 0.5, expected, err_msg=f"{item}")
    # The two-object expression covers more than either object alone.
    both = source.truth[("mv001", "0")][0]
    assert both.sum() > max(source.truth[("mv001", "1")][0].sum(), source.truth[("mv001", "3")][0].sum())


@pytest.mark.parametrize("sampling", ["window", "subset"])
def test_samples_of_a_sparse_clip_are_its_annotated_frames(sparse_mevis, mevis, monkeypatch, sampling):
    _, source = mevis
    dataset = RefVPSVideoDataset(sparse_mevis, resolution=NATIVE, num_frames=2, max_stride=1, sampling=sampling, seed=3)
    assert {(item.clip_id, item.exp_id) for item in dataset.items} == set(source.truth)
    spy = ReadSpy(monkeypatch)
    drawn = set()
    for epoch in range(12):
        dataset.use_epoch(epoch)
        for index, item in enumerate(dataset.items):
            sample = dataset[index]
            frames, labels = spy.take()
            names = [name for _, name in labels]
            # Each frame comes with its own mask, and only annotated frames are read.
            assert frames == labels and all(clip == item.clip_id for clip, _ in labels)
            assert set(names) <= set(THINNED[item.clip_id]), names
            truth = source.truth[(item.clip_id, item.exp_id)]
            expected = np.stack([truth[int(name)] for name in names])
            np.testing.assert_array_equal(sample["masks"].numpy() > 0.5, expected)
            drawn.add((item.clip_id, tuple(names)))
    # Windows are consecutive entries of the annotated list (the authors' loader draws from
    # Ref-YouTube-VOS train's 'frames' list, which holds the annotated frames); subsets are any two.
    mv001 = {names for clip, names in drawn if clip == "mv001"}
    if sampling == "window":
        assert mv001 == {("00000", "00002"), ("00002", "00004")}
    else:
        assert mv001 == {("00000", "00002"), ("00002", "00004"), ("00000", "00004")}
    assert {names for clip, names in drawn if clip == "mv002"} == {("00000", "00003")}


def test_a_short_sparse_clip_repeats_its_annotated_frames_as_the_authors_loader_does(sparse_mevis, monkeypatch):
    dataset = RefVPSVideoDataset(sparse_mevis, resolution=NATIVE, num_frames=5, sampling="subset", seed=0)
    spy = ReadSpy(monkeypatch)
    index = next(i for i, item in enumerate(dataset.items) if item.clip_id == "mv001")
    dataset[index]
    # datasets/ytvos_T5.py, 3 frames for 5: list(range(3)) + list(range(2)), sorted.
    assert [name for _, name in spy.take()[1]] == ["00000", "00000", "00002", "00002", "00004"]


def test_clips_without_ground_truth_are_left_out_and_reported(mevis, tmp_path, caplog):
    data = _thin(mevis[0], tmp_path / "data", {"mv002": []})  # a clip whose masks are not public
    with caplog.at_level(logging.WARNING, logger="rem_model.data.video"):
        dataset = RefVPSVideoDataset(data, resolution=NATIVE, num_frames=2)
    assert {item.clip_id for item in dataset.items} == {"mv001"} and dataset.unlabelled_clips == ["mv002"]
    assert "1 clip(s) left out" in caplog.text and "mv002" in caplog.text
    # A converted split without public masks (MeViS valid): one clear error, not a crash.
    base = tmp_path / "valid"
    convert("mevis", official.write_mevis(base / "src").root, base / "out", split="valid")
    with pytest.raises(DatasetError, match="has no masks") as info:
        build_training_dataset([DataSource("refvps", str(base / "out"))], resolution=NATIVE, num_frames=2)
    assert "annotated_frames" in str(info.value)


def test_ref_youtube_vos_train_gives_the_same_samples_converted_or_as_downloaded(tmp_path, monkeypatch):
    source = official.write_ref_ytvos(tmp_path / "src")  # 00010 has no mask
    convert("ref-ytvos", source.root, tmp_path / "out", split="train")
    converted = RefVPSVideoDataset(tmp_path / "out", resolution=NATIVE, num_frames=3, sampling="subset")
    downloaded = RefYouTubeVOSDataset(source.root, resolution=NATIVE, num_frames=3, sampling="subset")
    spy = ReadSpy(monkeypatch)
    for index in range(2):
        obj = index + 1  # expression 0 is object 1, expression 1 object 2
        expected = np.stack([source.truth["vtrain01"][n] == obj for n in ("00000", "00000", "00005")])
        for dataset in (converted, downloaded):
            sample = dataset[index]
            assert [name for _, name in spy.take()[1]] == ["00000", "00000", "00005"]  # 2 frames for 3, repeated
            np.testing.assert_array_equal(sample["masks"].numpy() > 0.5, expected)


def test_train_rem_runs_on_a_converted_sparse_mevis_dataset(sparse_mevis, tmp_path, capsys, monkeypatch):
    config = tmp_path / "train.yaml"
    config.write_text(
        "model: rem-tiny\nrandom_init: true\nnum_frames: 2\nbatch_size: 2\nnum_workers: 0\n"
        f"output_dir: {tmp_path / 'run'}\ndata:\n  - {{kind: refvps, root: {sparse_mevis}, sampling: subset}}\n"
    )
    spy = ReadSpy(monkeypatch)  # the loader runs in this process (num_workers: 0)
    with pytest.raises(SystemExit) as info:
        main(["train-rem", str(config), "--max-steps", "2", "--set", "lr=1e-3", "--json"])
    out = capsys.readouterr()
    assert info.value.code == 0, out.err
    summary = json.loads(out.out)
    assert summary["steps"] == 2 and summary["final"].endswith("final")
    labels = spy.take()[1]
    assert len(labels) == 2 * 2 * 2 and all(name in THINNED[clip] for clip, name in labels)  # steps x batch x frames
