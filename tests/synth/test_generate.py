"""Writing the benchmark: determinism, the format, resuming, and refusing to overwrite other data."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from refvps.dataset import Dataset
from refvps.dataset.palette import read_label_png
from refvps.dataset.validate import validate_dataset
from refvps.errors import UsageError
from refvps.progress import RecordingProgress
from refvps.synth import generate_benchmark


def digest(root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file (hidden lock files aside)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path, small_benchmark):
    again = generate_benchmark(tmp_path / "again", clips=8, seed=3, size=(96, 64), frames=12)
    assert digest(again) == digest(small_benchmark)
    other = generate_benchmark(tmp_path / "other", clips=8, seed=4, size=(96, 64), frames=12)
    a, b = digest(small_benchmark), digest(other)
    assert a["meta_expressions.json"] != b["meta_expressions.json"]
    assert set(a.values()).isdisjoint(v for k, v in b.items() if k.startswith("JPEGImages")), (
        "no frame of another seed is byte-identical"
    )


def test_parallel_workers_write_the_same_bytes(tmp_path):
    one = generate_benchmark(tmp_path / "one", clips=3, seed=1, size=(64, 48), frames=8)
    two = generate_benchmark(tmp_path / "two", clips=3, seed=1, size=(64, 48), frames=8, workers=2)
    assert digest(one) == digest(two)


def test_passes_validation_with_refvps_rules(small_benchmark):
    report = validate_dataset(small_benchmark, refvps_rules=True)
    assert report.ok, [p.message for p in report.problems]
    assert not report.warnings, [p.message for p in report.warnings]  # taxonomy ids included
    assert report.n_clips == 8 and report.n_masks == 8 * 12


def test_dataset_contents(small_benchmark):
    ds = Dataset(small_benchmark)
    assert len(ds) == 8
    kinds = set()
    for clip in ds:
        assert clip.meta.fps == 24 and (clip.meta.width, clip.meta.height) == (96, 64)
        assert clip.meta.source.platform == "synthetic"
        assert "synthetic" in clip.meta.notes.lower()
        assert clip.meta.concept and clip.meta.category
        assert len(clip.frame_names) == 12 and clip.frame_names[0] == "00000"
        assert [e.annotator for e in clip.expressions] == ["a", "a", "b", "b"]
        assert clip.read_frame(clip.frame_names[0]).shape == (64, 96, 3)
        label = read_label_png(clip.mask_path(clip.frame_names[-1]))
        assert set(label.ravel().tolist()) <= {0, 1, 255}
        kinds.add(clip.meta.extra["synthetic"]["kind"])
    assert len(kinds) == 7


def test_progress_reports_every_frame(tmp_path):
    progress = RecordingProgress()
    generate_benchmark(tmp_path / "p", clips=2, seed=0, size=(64, 48), frames=8, progress=progress)
    assert progress.events[0] == ("start", "frames", 16, None) and progress.events[-1] == ("end", "frames")
    advances = [e for e in progress.events if e[0] == "advance"]
    assert len(advances) == 16 and all(e[2] == 1 for e in advances)
    assert progress.completed["frames"] == 16


def test_progress_of_a_resumed_run_starts_at_the_finished_frames(tmp_path):
    root = generate_benchmark(tmp_path / "r", clips=2, seed=0, size=(64, 48), frames=8)
    progress = RecordingProgress()
    generate_benchmark(root, clips=3, seed=0, size=(64, 48), frames=8, progress=progress)
    assert ("update", "frames", 16, None, None) in progress.events  # two clips were already there
    assert progress.completed["frames"] == 24 and progress.totals["frames"] == 24


def test_resume_finishes_an_interrupted_run_and_redoes_nothing(tmp_path):
    root = tmp_path / "r"
    fresh = digest(generate_benchmark(tmp_path / "fresh", clips=3, seed=2, size=(64, 48), frames=8))
    generate_benchmark(root, clips=3, seed=2, size=(64, 48), frames=8)
    # Simulate a run killed inside the last clip: its JSON entries were never written, one frame is half-done.
    videos = json.loads((root / "meta_expressions.json").read_text())
    last = sorted(videos["videos"])[-1]
    del videos["videos"][last]
    (root / "meta_expressions.json").write_text(json.dumps(videos, indent=2))
    (root / "JPEGImages" / last / "00003.jpg").write_bytes(b"\xff\xd8 truncated")
    first = sorted(videos["videos"])[0]
    before = os.stat(root / "JPEGImages" / first / "00000.jpg").st_mtime_ns
    generate_benchmark(root, clips=3, seed=2, size=(64, 48), frames=8)
    assert digest(root) == fresh
    assert os.stat(root / "JPEGImages" / first / "00000.jpg").st_mtime_ns == before, "finished clips are kept"
    # A larger --clips extends the same benchmark.
    generate_benchmark(root, clips=4, seed=2, size=(64, 48), frames=8)
    assert len(json.loads((root / "clips.json").read_text())["clips"]) == 4


def test_refuses_foreign_or_mismatched_folders(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("mine")
    with pytest.raises(UsageError, match="not empty") as info:
        generate_benchmark(foreign, clips=1, size=(64, 48), frames=8)
    assert info.value.hint
    assert (foreign / "thesis.tex").read_text() == "mine"
    made = generate_benchmark(tmp_path / "made", clips=2, seed=0, size=(64, 48), frames=8)
    with pytest.raises(UsageError, match="other settings"):
        generate_benchmark(made, clips=2, seed=0, size=(80, 48), frames=8)
    with pytest.raises(UsageError, match="not part of this benchmark"):
        generate_benchmark(made, clips=2, seed=1, size=(64, 48), frames=8)
    with pytest.raises(UsageError, match="not part of this benchmark"):
        generate_benchmark(made, clips=1, seed=0, size=(64, 48), frames=8)


def test_an_index_file_of_the_wrong_shape_is_a_clear_error(tmp_path):
    from refvps.errors import DatasetError

    root = generate_benchmark(tmp_path / "b", clips=1, seed=0, size=(64, 48), frames=8)
    (root / "clips.json").write_text("[]")
    with pytest.raises(DatasetError, match="no 'clips' mapping") as info:
        generate_benchmark(root, clips=1, seed=0, size=(64, 48), frames=8)
    assert "delete this one" in info.value.hint


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"clips": 0}, "clips"),
        ({"seed": -1}, "seed"),
        ({"size": (10, 10)}, "outside"),
        ({"size": ("a", 3)}, "size"),
        ({"frames": 3}, "frames"),
        ({"frames": (50, 20)}, "reversed"),
        ({"workers": 0}, "workers"),
    ],
)
def test_bad_arguments_are_usage_errors(tmp_path, kwargs, match):
    with pytest.raises(UsageError, match=match):
        generate_benchmark(tmp_path / "x", **{"size": (64, 48), "frames": 8, **kwargs})
    assert not (tmp_path / "x").exists()
