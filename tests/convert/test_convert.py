"""Each benchmark, written in its official format, converts into a valid refvps dataset with the
frames, masks, expressions and ids its own loaders and evaluation see."""

from __future__ import annotations

import json
import os

import numpy as np

from refvps.dataset.format import Dataset
from refvps.dataset.palette import read_label_png
from refvps.dataset.validate import validate_dataset

from . import official


def _errors(root):
    report = validate_dataset(root)
    return [(p.rule, p.message) for p in report.errors]


def _clips_json(root):
    return json.loads((root / "clips.json").read_text())["clips"]


def _linked(root, clip, name, source_path):
    return os.path.samefile(root / "JPEGImages" / clip / f"{name}.jpg", source_path)


def test_ref_davis(ref_davis):
    root, truth = ref_davis.root, ref_davis.source.truth
    assert _errors(root) == [] and ref_davis.report.ok
    data = Dataset(root)
    assert data.clip_ids == ["bike-packing", "classic-car"]  # val only; 'clasic-car' renamed as ReferFormer does
    bike = data.clip("bike-packing")
    assert bike.frame_names == [f"{t:05d}" for t in range(5)]
    src = ref_davis.source.root / "DAVIS" / "JPEGImages" / "480p" / "bike-packing" / "00003.jpg"
    assert _linked(root, "bike-packing", "00003", src) and ref_davis.report.links == {"hardlink": 9}
    for t, name in enumerate(bike.frame_names):  # the unsupervised masks as they are, void as Ignore
        assert np.array_equal(bike.read_label(name), truth["bike-packing"][t])
    # expression 4k + r: object k (sorted by obj_id) of file r; annotator 2 read as latin-1
    texts = [(e.exp_id, e.obj_id, e.annotator, e.extra["annotation"], e.text) for e in bike.expressions]
    assert texts == [
        ("0", 1, "annotator1", "first_frame", "a man riding"),
        ("1", 1, "annotator1", "full_video", "a man riding a bike down a path"),
        ("2", 1, "annotator2", "first_frame", "a cyclist in a café"),
        ("3", 1, "annotator2", "full_video", "the rider"),
        ("4", 2, "annotator1", "first_frame", "the bike"),
        ("5", 2, "annotator1", "full_video", "a bike ridden by a man"),
        ("6", 2, "annotator2", "first_frame", "a bicycle"),
        ("7", 2, "annotator2", "full_video", "the bicycle under him"),
    ]
    car = json.loads((root / "meta_expressions.json").read_text())["videos"]["classic-car"]
    assert car["label_ids"] == ["2"]  # object 2 of the masks has no expression
    meta = _clips_json(root)["classic-car"]
    assert (meta["benchmark"], meta["split"], meta["protocol"], meta["fps"]) == ("Ref-DAVIS17", "val", "ref-davis", 24)
    assert "davischallenge" in meta["source"]["url"] and meta["source"]["license"]


def test_ref_ytvos_train_keeps_sparse_ground_truth(ytvos_train):
    root, truth = ytvos_train.root, ytvos_train.source.truth["vtrain01"]
    assert _errors(root) == []
    clip = Dataset(root).clip("vtrain01")
    assert clip.frame_names == ["00000", "00005", "00010"]
    assert clip.annotated_frames == ["00000", "00005"] and clip.is_sparse  # 00010 has no mask upstream
    assert not (root / "Annotations" / "vtrain01" / "00010.png").exists()
    for name in clip.annotated_frames:
        assert np.array_equal(clip.read_label(name), truth[name])
    assert [(e.exp_id, e.obj_id, e.text) for e in clip.expressions] == [("0", 1, "a dog running"), ("1", 2, "a ball")]
    entry = json.loads((root / "meta_expressions.json").read_text())["videos"]["vtrain01"]
    assert entry["label_ids"] == ["3"]


def test_ref_ytvos_valid_has_no_ground_truth_and_no_test_videos(ytvos_valid):
    root = ytvos_valid.root
    assert _errors(root) == []
    data = Dataset(root)
    assert data.clip_ids == ["vvalid01", "vvalid02"]  # vtest01 is in the test file: left out, as ReferFormer does
    assert any("test videos" in note for note in ytvos_valid.report.notes)
    clip = data.clip("vvalid02")
    assert clip.annotated_frames == [] and clip.frame_names == ["00000", "00005", "00010"]
    assert not (root / "Annotations").exists()
    assert _clips_json(root)["vvalid01"]["split"] == "valid"


def test_mevis_targets_are_unions_of_objects(mevis):
    root, truth = mevis.root, mevis.source.truth
    assert _errors(root) == []
    data = Dataset(root)
    assert data.clip_ids == ["mv001", "mv002"]
    checked = 0
    for (video, exp_id), masks in truth.items():
        clip = data.clip(video)
        expression = clip.expression(exp_id)
        assert expression.text == mevis.source.expressions[video]["expressions"][exp_id]["exp"]
        assert expression.extra["anno_id"] == mevis.source.expressions[video]["expressions"][exp_id]["anno_id"]
        for name, mask in zip(clip.frame_names, masks):
            label = read_label_png(root / "Annotations" / video / f"{name}.png")
            assert np.array_equal(np.isin(label, expression.target_labels), mask), (video, exp_id, name)
            checked += 1
    assert checked == 4 * 5 + 4
    assert len(data.clip("mv001").expression("0").target_labels) > 1  # two objects: a union of labels


def test_vspw_stuff_classes_and_masks(vspw):
    root, truth = vspw.root, vspw.source.truth
    assert _errors(root) == []
    data = Dataset(root)
    first = data.clip("127_-hIVCYO4C90")
    assert [(e.text, e.extra["class_id"]) for e in first.expressions] == [
        ("the wall", 0),
        ("the ceiling", 1),
        ("the sky", 28),
    ]  # the thing class (60) and others/void are not stuff
    assert [e.text for e in data.clip("231_-_w6ZFauJBI").expressions] == ["the wall", "the sky"]
    assert first.frame_names == [f"{t + 37:08d}" for t in range(4)]
    for video in official.VSPW_VIDEOS:
        clip = data.clip(video)
        for name, raw in zip(clip.frame_names, truth[video]):
            label = clip.read_label(name)
            assert not (label == 255).any()  # eval_stuff.py knows no void: it is background
            for expression in clip.expressions:
                # eval_stuff.py: mask value v is class v - 1
                expected = raw == expression.extra["class_id"] + 1
                assert np.array_equal(label == expression.obj_id, expected)


def test_vspw_classes_from_the_authors_file(tmp_path):
    from refvps.convert import convert

    source = official.write_vspw(tmp_path / "src")
    classes = {"127_-hIVCYO4C90": ["0", "28", "60", "124"], "231_-_w6ZFauJBI": ["28"]}
    (tmp_path / "val_vid2classes.json").write_text(json.dumps(classes))
    convert("vspw-stuff", source.root, tmp_path / "out", options={"classes": tmp_path / "val_vid2classes.json"})
    data = Dataset(tmp_path / "out")
    assert [e.text for e in data.clip("127_-hIVCYO4C90").expressions] == ["the wall", "the sky"]
    assert [e.text for e in data.clip("231_-_w6ZFauJBI").expressions] == ["the sky"]


def test_burst_sparse_frames_and_class_unions(burst):
    root, truth = burst.root, burst.source.truth
    assert _errors(root) == []
    data = Dataset(root)
    # the AVA name starts with '-', which a clip id cannot: it is prefixed, the source id kept
    assert data.clip_ids == ["AVA_-5KQ66BBWC4_scene_1_2", "YFCC100M_v_f1b2c3"]
    clip = data.clip("YFCC100M_v_f1b2c3")
    assert clip.frame_names == [f"frame{t:04d}" for t in range(10)]
    assert clip.annotated_frames == ["frame0000", "frame0003", "frame0006", "frame0009"]
    assert sorted(p.stem for p in (root / "Annotations" / clip.id).iterdir()) == clip.annotated_frames
    assert [(e.text, e.extra["class_id"]) for e in clip.expressions] == [("the bicycle", 94), ("the person", 805)]
    for (dataset, seq), per_class in truth.items():
        clip = data.clip(f"{dataset}_{seq}")
        assert _clips_json(root)[clip.id]["source_id"] == f"{dataset}/{seq}"
        for expression in clip.expressions:
            for name, union in zip(clip.annotated_frames, per_class[expression.extra["class_id"]]):
                assert np.array_equal(np.isin(clip.read_label(name), expression.target_labels), union)
    assert _clips_json(root)["AVA_-5KQ66BBWC4_scene_1_2"]["split"] == "test"


def test_burst_annotated_frames_only(tmp_path):
    from refvps.convert import convert

    source = official.write_burst(tmp_path / "src")
    convert("burst", source.root, tmp_path / "out", split="val", options={"frames": "annotated"})
    clip = Dataset(tmp_path / "out").clip("YFCC100M_v_f1b2c3")
    assert clip.frame_names == clip.annotated_frames == ["frame0000", "frame0003", "frame0006", "frame0009"]
    assert not clip.is_sparse
