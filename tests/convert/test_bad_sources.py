"""Damaged or unusual benchmark files, as a user downloads them: a clear error that names the file,
or the one bad video reported while the others convert; nothing left out without a note."""

from __future__ import annotations

import json

import pytest

from refvps.convert import convert
from refvps.dataset.format import Dataset
from refvps.errors import DatasetError

from . import official


def _edit_json(path, edit):
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    "content, named",
    [
        ([1, 2], "'videos' mapping"),
        ({"videos": {"mv001": {"frames": 3}}}, "video mv001: 'frames'"),
        ({"videos": {"mv001": {"frames": [], "expressions": {"0": {"obj_id": [0]}}}}}, "expression 0 has no 'exp'"),
    ],
)
def test_a_damaged_index_file_is_an_error_naming_it(tmp_path, content, named):
    source = official.write_mevis(tmp_path / "src")
    index = source.root / "valid_u" / "meta_expressions.json"
    index.write_text(json.dumps(content))
    with pytest.raises(DatasetError) as info:
        convert("mevis", source.root, tmp_path / "out")
    assert named in info.value.message and info.value.path == index and "download it again" in info.value.hint


def test_a_ref_ytvos_expression_without_an_object_id_fails_its_video_only(tmp_path):
    source = official.write_ref_ytvos(tmp_path / "src")
    index = source.root / "meta_expressions" / "valid" / "meta_expressions.json"
    _edit_json(index, lambda d: d["videos"]["vvalid01"]["expressions"]["0"].update(obj_id="the cat"))
    report = convert("ref-ytvos", source.root, tmp_path / "out")
    assert [f["clip"] for f in report.failed] == ["vvalid01"] and "'the cat'" in report.failed[0]["error"]
    assert Dataset(tmp_path / "out").clip_ids == ["vvalid02"]


def test_a_mevis_object_missing_from_mask_dict_fails_its_video_only(tmp_path):
    source = official.write_mevis(tmp_path / "src")
    _edit_json(source.root / "valid_u" / "mask_dict.json", lambda d: d.pop("20"))
    report = convert("mevis", source.root, tmp_path / "out")
    assert [f["clip"] for f in report.failed] == ["mv002"] and "anno_id 20" in report.failed[0]["error"]
    assert Dataset(tmp_path / "out").clip_ids == ["mv001"]


def test_a_damaged_burst_sequence_fails_alone(tmp_path):
    source = official.write_burst(tmp_path / "src")
    _edit_json(
        source.root / "annotations_burst" / "val" / "all_classes.json",
        lambda d: d["sequences"][0].pop("annotated_image_paths"),
    )
    report = convert("burst", source.root, tmp_path / "out")
    assert len(report.failed) == 1 and "annotated_image_paths" in report.failed[0]["error"]
    assert "YFCC100M/v_f1b2c3" in report.failed[0]["clip"]
    assert Dataset(tmp_path / "out").clip_ids == ["AVA_-5KQ66BBWC4_scene_1_2"]  # the test sequence converts


def test_a_burst_rle_that_is_not_text_fails_its_sequence(tmp_path):
    source = official.write_burst(tmp_path / "src")

    def damage(data):
        frame = data["sequences"][0]["segmentations"][0]
        frame[next(iter(frame))]["rle"] = None

    _edit_json(source.root / "annotations_burst" / "val" / "all_classes.json", damage)
    report = convert("burst", source.root, tmp_path / "out")
    assert len(report.failed) == 1 and "segmentations" in report.failed[0]["error"]


def test_a_vspw_classes_file_of_another_shape_is_refused(tmp_path):
    source = official.write_vspw(tmp_path / "src")
    classes = tmp_path / "classes.json"
    classes.write_text(json.dumps([0, 1, 28]))  # not video -> class ids
    with pytest.raises(DatasetError) as info:
        convert("vspw-stuff", source.root, tmp_path / "out", options={"classes": classes})
    assert info.value.path == classes and "val_vid2classes.json" in info.value.message


def test_a_vspw_video_without_its_frames_fails_alone(tmp_path):
    source = official.write_vspw(tmp_path / "src")
    (source.root / "data" / official.VSPW_VIDEOS[1] / "origin").rename(tmp_path / "elsewhere")
    report = convert("vspw-stuff", source.root, tmp_path / "out")
    assert [f["clip"] for f in report.failed] == [official.VSPW_VIDEOS[1]] and "origin" in report.failed[0]["error"]
    assert Dataset(tmp_path / "out").clip_ids == [official.VSPW_VIDEOS[0]]


def test_frames_without_a_mask_are_noted(tmp_path):
    source = official.write_ref_ytvos(tmp_path / "src")  # vtrain01's frame 00010 has no mask upstream
    report = convert("ref-ytvos", source.root, tmp_path / "out", split="train")
    assert any(n.startswith("vtrain01: 1 of 3 frames have no mask") and "00010" in n for n in report.notes)


def test_a_ref_davis_text_line_of_another_shape_is_noted(tmp_path):
    source = official.write_ref_davis(tmp_path / "src")
    text = source.root / "davis_text_annotations" / "Davis17_annot1.txt"
    text.write_text(text.read_text() + "bike-packing one-word\n")
    report = convert("ref-davis", source.root, tmp_path / "out")
    assert "Davis17_annot1.txt line 4: not 'video obj_id \"expression\"'; skipped" in report.notes
    assert report.ok


def test_a_benchmark_whose_annotators_wrote_the_same_words_validates_and_scores(tmp_path, cli):
    """Ref-DAVIS's annotators (and Ref-YouTube-VOS's, MeViS's) sometimes write the same text for an
    object: the converted benchmark keeps it, and it is a warning outside Ref-VPS's own rules."""
    source = official.write_ref_davis(tmp_path / "src")
    text = source.root / "davis_text_annotations" / "Davis17_annot1_full_video.txt"
    text.write_text(text.read_text().replace("a man riding a bike down a path", "a man riding"))
    assert convert("ref-davis", source.root, tmp_path / "out").ok
    checked = cli("validate", tmp_path / "out")
    assert checked.code == 0 and "expression_duplicate" in checked.out
    assert cli("validate", "--refvps", tmp_path / "out").code != 0  # Ref-VPS's rules still refuse it
    assert cli("run-baseline", "oracle", "-d", tmp_path / "out", "--out", tmp_path / "pred").code == 0
    scored = cli("evaluate", tmp_path / "pred", "-d", tmp_path / "out", "--json")
    assert scored.code == 0, scored.err
