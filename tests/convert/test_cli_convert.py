"""``refvps convert`` as a user runs it: progress, resuming, linking, failures; and the evaluate
messages the suite made necessary (missing frames by name, datasets without clips.json)."""

from __future__ import annotations

import errno
import json
import os
import shutil

import numpy as np
import pytest

from refvps.convert import convert
from refvps.dataset.format import Dataset
from refvps.errors import UsageError
from refvps.progress import RecordingProgress

from . import official
from .conftest import random_predictions


def test_cli_converts_validates_and_resumes(tmp_path, cli):
    source = official.write_ref_davis(tmp_path / "src")
    first = cli("convert", "ref-davis", source.root, "--out", tmp_path / "out")
    assert first.code == 0, first.err
    assert "2 clips (2 converted now, 0 already done)" in first.out and "hardlink" in first.out
    assert cli("validate", tmp_path / "out").code == 0
    again = cli("convert", "ref-davis", source.root, "--out", tmp_path / "out", "--json")
    report = json.loads(again.out)
    assert (report["converted"], report["skipped_done"]) == (0, 2)
    other = cli("convert", "ref-davis", source.root, "--out", tmp_path / "out", "--split", "train")
    assert other.code == 2 and "another conversion" in other.err and "Traceback" not in other.err
    record = json.loads((tmp_path / "out" / "convert.json").read_text())
    assert record["status"] == "complete" and record["fingerprint"]["split"] == "val"


def test_progress_is_reported_per_clip(tmp_path):
    source = official.write_mevis(tmp_path / "src")
    progress = RecordingProgress()
    convert("mevis", source.root, tmp_path / "out", progress=progress)
    assert progress.events[0] == ("start", "clips", 2, None) and progress.events[-1] == ("end", "clips")
    assert [e[3] for e in progress.events if e[0] == "advance"] == ["mv001", "mv002"]


def test_a_bad_clip_does_not_stop_the_batch_and_a_rerun_finishes_it(tmp_path, cli):
    source = official.write_vspw(tmp_path / "src")
    frame = source.root / "data" / official.VSPW_VIDEOS[1] / "origin" / "00000038.jpg"
    saved = frame.read_bytes()
    frame.write_bytes(b"")  # a damaged download
    result = cli("convert", "vspw-stuff", source.root, "--out", tmp_path / "out")
    assert result.code == 1 and "1 clip(s) were not converted" in result.err and "00000038.jpg" in result.err
    assert Dataset(tmp_path / "out").clip_ids == [official.VSPW_VIDEOS[0]]  # the good clip is there
    frame.write_bytes(saved)
    report = convert("vspw-stuff", source.root, tmp_path / "out")
    assert (report.converted, report.skipped_done, report.ok) == (1, 1, True)
    assert Dataset(tmp_path / "out").clip_ids == sorted(official.VSPW_VIDEOS)
    # the frames the failed attempt had linked are linked again, leaving no temporary file behind
    assert sorted(p.name for p in (tmp_path / "out").rglob("*.tmp")) == []


def test_frames_are_symlinked_when_they_cannot_be_hard_linked_else_copied(tmp_path, monkeypatch):
    source = official.write_mevis(tmp_path / "src")

    def cross_device(*_):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    linked = convert("mevis", source.root, tmp_path / "sym")
    assert linked.links == {"symlink": 9}
    target = tmp_path / "sym" / "JPEGImages" / "mv001" / "00000.jpg"
    assert target.is_symlink() and target.resolve() == (source.root / "valid_u/JPEGImages/mv001/00000.jpg").resolve()

    def no_symlinks(*_):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "symlink", no_symlinks)
    copied = convert("mevis", source.root, tmp_path / "copy")
    assert copied.links == {"copy": 9} and not (tmp_path / "copy/JPEGImages/mv001/00000.jpg").is_symlink()


def test_a_frame_that_is_not_a_jpeg_is_re_encoded(tmp_path):
    from PIL import Image

    source = official.write_mevis(tmp_path / "src")
    path = source.root / "valid_u" / "JPEGImages" / "mv002" / "00001.jpg"
    Image.open(path).save(path, format="PNG")  # PNG bytes behind a .jpg name
    report = convert("mevis", source.root, tmp_path / "out")
    assert report.links == {"hardlink": 8, "re-encoded": 1}
    assert Image.open(tmp_path / "out" / "JPEGImages" / "mv002" / "00001.jpg").format == "JPEG"


def test_wrong_usage_is_reported_clearly(tmp_path):
    source = official.write_mevis(tmp_path / "src")
    with pytest.raises(UsageError, match="no split"):
        convert("mevis", source.root, tmp_path / "out", split="test")
    with pytest.raises(UsageError, match="takes no option"):
        convert("mevis", source.root, tmp_path / "out", options={"classes": "x.json"})
    with pytest.raises(UsageError, match="not found"):
        convert("mevis", tmp_path / "nowhere", tmp_path / "out")


def test_strict_names_the_missing_frames_and_counts_them_per_clip(mevis, tmp_path, cli):
    pred = random_predictions(mevis.root, tmp_path / "pred", seed=31)
    for frame in ("00001", "00003"):
        (pred / "mv001" / "2" / f"{frame}.png").unlink()
    shutil.rmtree(pred / "mv002" / "0")
    result = cli("evaluate", pred, "--dataset", mevis.root, "--strict", "--bootstrap", "0", "--no-cache")
    assert result.code == 1
    assert "6 predicted frame(s) missing in 2 clip(s) (mv002: 4, mv001: 2)" in result.err
    assert "mv001/2/00001" in result.err and "mv001/2/00003" in result.err and "mv002/0/00000" in result.err


def test_a_dataset_without_clips_json_prints_no_none_category(ytvos_train, tmp_path, cli):
    root = tmp_path / "plain"
    shutil.copytree(ytvos_train.root, root, symlinks=True)
    (root / "clips.json").unlink()
    pred = random_predictions(root, tmp_path / "pred", seed=32)
    result = cli("evaluate", pred, "--dataset", root, "--bootstrap", "0", "--no-cache")
    assert result.code == 0, result.err
    assert "None" not in result.out and "per category" not in result.out


def test_unknown_category_is_named_so(tmp_path, cli):
    from tests.dataset.conftest import write_small_dataset

    root = write_small_dataset(tmp_path / "ds")
    clips = json.loads((root / "clips.json").read_text())
    clips["clips"]["clip_b"]["category"] = None
    (root / "clips.json").write_text(json.dumps(clips))
    writer_root = tmp_path / "pred"
    from refvps.predictions import PredictionWriter

    writer = PredictionWriter(writer_root)
    for clip in Dataset(root):
        for expression in clip.expressions:
            for name in clip.frame_names:
                writer.write(clip.id, expression.exp_id, name, np.zeros((24, 32), bool))
    result = cli("evaluate", writer_root, "--dataset", root, "--bootstrap", "0", "--no-cache")
    assert result.code == 0, result.err
    assert "unknown" in result.out and "None" not in result.out


def test_readme_commands_for_the_suite_use_existing_commands_and_options(cli):
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Evaluate on the paper's benchmarks", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    commands = [c.strip() for line in block.strip().splitlines() for c in line.split("&&")]
    assert len([c for c in commands if c.startswith("refvps convert ")]) == 5
    for command in commands:
        words = command.split()
        assert words[0] == "refvps", command
        name = words[1] if words[1] != "run-baseline" else f"{words[1]} {words[2]}"
        help_text = cli(*name.split(), "--help")
        assert help_text.code == 0, (command, help_text.err)
        for option in (w for w in words if w.startswith("--")):
            assert option in help_text.out, (command, option)
    convert_help = cli("convert", "--help").out
    for benchmark in ("ref-davis", "ref-ytvos", "mevis", "vspw-stuff", "burst"):
        assert benchmark in convert_help


def test_cli_choices_are_the_registries():
    from refvps.cli.convert_cmds import BENCHMARKS, convert
    from refvps.cli.scoring_cmds import evaluate
    from refvps.convert import CONVERTERS
    from refvps.scoring.protocols import PROTOCOLS

    assert set(BENCHMARKS) == set(CONVERTERS)
    protocol = next(p for p in evaluate.params if p.name == "protocol")
    assert set(protocol.type.choices) == set(PROTOCOLS)
    assert tuple(next(p for p in convert.params if p.name == "benchmark").type.choices) == BENCHMARKS
