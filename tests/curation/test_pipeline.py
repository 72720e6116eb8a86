"""The whole pipeline through the command line: fetch -> review -> decide -> trim -> a valid dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest

from refvps.dataset.format import Dataset

from .conftest import ShotSpec, generic_key, run_cli


def test_fetch_review_trim_from_the_command_line(tmp_path, server, capsys):
    base, _ = server
    urls = tmp_path / "urls.txt"
    urls.write_text(f"{base}/comp.mp4 lava_flow\n{base}/clip_a.mp4 fire\n")
    ws, dataset = str(tmp_path / "ws"), str(tmp_path / "dataset")

    code, out, err = run_cli(capsys, "fetch", str(urls), "-w", ws)
    assert code == 0, err
    assert "Fetched 2 video(s)" in out

    code, out, err = run_cli(capsys, "review", "-w", ws, "--grid", "2x3")
    assert code == 0, err
    assert "2 video(s): 2 sheet(s) made" in out and "2 undecided" in out

    # Accept the compilation with no spans (one clip per shot, end card dropped); reject the other.
    comp, clip_a = generic_key(f"{base}/comp.mp4", "comp"), generic_key(f"{base}/clip_a.mp4", "clip_a")
    assert run_cli(capsys, "review", "-w", ws, "--accept", comp)[0] == 0
    assert run_cli(capsys, "review", "-w", ws, "--reject", clip_a, "--reason", "irrelevant")[0] == 0

    code, out, err = run_cli(capsys, "trim", "-w", ws, "-d", dataset, "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["exported"] == [f"{comp}_00", f"{comp}_01"]
    assert any("end card" in note for note in summary["dropped"])

    ds = Dataset(dataset)
    first = ds.clip(f"{comp}_00")
    assert len(first) == 36 and len(ds.clip(f"{comp}_01")) == 30  # 24 fps source: frame for frame
    assert first.meta.crop == (0, 16, 160, 96) and first.read_frame("00000").shape == (96, 160, 3)
    assert first.meta.source.url == f"{base}/comp.mp4" and first.meta.source.platform == "generic"
    assert first.meta.source.retrieved
    assert (first.meta.concept, first.meta.category) == ("lava_flow", "dynamic_environmental_changes")

    # Running everything again does nothing new.
    assert "Fetched 0 video(s)" in run_cli(capsys, "fetch", str(urls), "-w", ws)[1]
    code, out, _ = run_cli(capsys, "trim", "-w", ws, "-d", dataset)
    assert code == 0 and "0 clip(s) exported, 2 already complete" in out

    stages = [json.loads(line)["stage"] for line in (tmp_path / "ws" / "provenance.jsonl").read_text().splitlines()]
    assert stages == ["fetch", "review", "trim", "fetch", "trim"]


def test_trim_one_video_from_the_command_line(tmp_path, make_video, capsys):
    video = make_video(tmp_path / "melt.mp4", [ShotSpec(60, hue=1)], fps=30)
    dataset = tmp_path / "dataset"
    code, out, err = run_cli(
        capsys,
        "trim",
        str(video.path),
        "--start",
        "0.5",
        "--end",
        "1.5",
        "-d",
        str(dataset),
        "--concept",
        "ice_melting",
        "--url",
        "https://example.org/v/1",
        "--uploader",
        "me",
        "--license",
        "CC BY 4.0",
    )
    assert code == 0, err
    clip = Dataset(dataset).clip("melt_00")
    assert len(clip) == 24
    assert clip.meta.source.url == "https://example.org/v/1" and clip.meta.source.license == "CC BY 4.0"
    assert clip.meta.trim.start_s == 0.5 and clip.meta.trim.end_s == pytest.approx(1.5)
    assert clip.meta.category == "temporal_object_changes"
    assert np.asarray(clip.read_frame("00023")).shape == (240, 320, 3)


def test_trim_usage_errors(tmp_path, make_video, capsys):
    code, _, err = run_cli(capsys, "trim", "-d", str(tmp_path / "d"))
    assert code == 2 and "give either a VIDEO or --workspace" in err
    video = make_video(tmp_path / "v.mp4", [ShotSpec(30, hue=0)])
    code, _, err = run_cli(capsys, "trim", str(video.path), "--start", "5", "--end", "6", "-d", str(tmp_path / "d"))
    assert code == 2 and "past the end" in err
    code, _, err = run_cli(capsys, "trim", "-w", str(tmp_path / "nows"), "-d", str(tmp_path / "d"))
    assert code == 1 and "curation workspace not found" in err
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    code, _, err = run_cli(capsys, "trim", str(broken), "-d", str(tmp_path / "d"))
    assert code == 1 and "cannot open video" in err and "Traceback" not in err
    # --start alone, past the end: the message says so (not that --end comes before --start).
    code, _, err = run_cli(capsys, "trim", str(video.path), "--start", "5", "-d", str(tmp_path / "d"))
    assert code == 2 and "--start 5.0 is past the end" in err
    # An unknown concept is refused instead of landing in clips.json without a category.
    code, _, err = run_cli(capsys, "trim", str(video.path), "--concept", "lava_lamps", "-d", str(tmp_path / "d"))
    assert code == 2 and "unknown concept 'lava_lamps'" in err
    # A file where the dataset folder should be.
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    code, _, err = run_cli(capsys, "trim", str(video.path), "-d", str(a_file))
    assert code == 2 and "is a file, not a folder" in " ".join(err.split()) and a_file.read_text() == "keep me"
    # Numbers out of range are refused by the option parser.
    for option, value in (("--fps", "0"), ("--min-clip", "-1"), ("--threshold", "-3")):
        assert run_cli(capsys, "trim", str(video.path), option, value, "-d", str(tmp_path / "d"))[0] == 2, option
    assert not (tmp_path / "d").exists()


def test_a_concept_given_by_name_is_stored_as_its_taxonomy_id(tmp_path, make_video, capsys):
    video = make_video(tmp_path / "v.mp4", [ShotSpec(30, hue=0)], fps=30)
    code, _, err = run_cli(capsys, "trim", str(video.path), "--concept", "Ice Melting", "-d", str(tmp_path / "d"))
    assert code == 0, err
    meta = Dataset(tmp_path / "d").clip("v_00").meta
    assert (meta.concept, meta.category) == ("ice_melting", "temporal_object_changes")


def test_a_span_that_yields_nothing_is_an_error(tmp_path, make_video, capsys):
    video = make_video(tmp_path / "v.mp4", [ShotSpec(90, hue=0)], fps=30)
    dataset = tmp_path / "d"
    for start, end, message in (
        ("0.5", "0.8", "0.5-0.8 s of"),  # shorter than --min-clip: no clip would come out
        ("2", "1", "must be after --start"),
    ):
        code, out, err = run_cli(capsys, "trim", str(video.path), "--start", start, "--end", end, "-d", str(dataset))
        flat = " ".join(err.split())
        assert code == 2 and message in flat and "Traceback" not in err, (start, end, err)
    assert not dataset.exists()  # nothing was written


def test_no_lock_file_stays_in_the_dataset_root(tmp_path, make_video, capsys):
    video = make_video(tmp_path / "v.mp4", [ShotSpec(40, hue=0)], fps=30)
    assert run_cli(capsys, "trim", str(video.path), "-d", str(tmp_path / "d"))[0] == 0
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["JPEGImages", "clips.json", "meta_expressions.json"]


def test_the_index_lock_still_excludes_once_its_file_is_removed(tmp_path):
    """file_lock removes its lock file on release; writers that were waiting on the removed file
    must still take turns (each read-modify-write sees the one before it)."""
    import threading

    from refvps.fileio import file_lock

    counter = tmp_path / "counter.txt"
    counter.write_text("0")

    def bump():
        for _ in range(50):
            with file_lock(counter):
                value = int(counter.read_text())
                counter.write_text(str(value + 1))

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter.read_text() == "200"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter.txt"]
