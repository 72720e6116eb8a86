import json

import numpy as np
import pytest
from PIL import Image

from refvps.dataset import (
    DAVIS_PALETTE,
    ClipMeta,
    Dataset,
    DatasetWriter,
    Expression,
    Source,
    Trim,
    frame_name,
    read_label_png,
    write_label_png,
)
from refvps.errors import DatasetError

from .conftest import H, T, W, make_clip_arrays, refvps_expressions


def test_davis_palette_matches_known_colours():
    # Known entries of the PASCAL VOC / DAVIS colour map.
    assert DAVIS_PALETTE[0].tolist() == [0, 0, 0]
    assert DAVIS_PALETTE[1].tolist() == [128, 0, 0]
    assert DAVIS_PALETTE[2].tolist() == [0, 128, 0]
    assert DAVIS_PALETTE[3].tolist() == [128, 128, 0]
    assert DAVIS_PALETTE[4].tolist() == [0, 0, 128]
    assert DAVIS_PALETTE[255].tolist() == [224, 224, 192]


def test_label_png_round_trip_keeps_indices(tmp_path):
    rng = np.random.default_rng(1)
    label = rng.choice(np.array([0, 1, 2, 255], np.uint8), size=(37, 53))
    path = write_label_png(tmp_path / "m.png", label)
    with Image.open(path) as image:
        assert image.mode == "P"
        assert image.getpalette()[3:6] == [128, 0, 0]
    np.testing.assert_array_equal(read_label_png(path), label)


def test_read_label_rejects_rgb_and_corrupt_files(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(DatasetError, match="not an 8-bit palette PNG"):
        read_label_png(tmp_path / "rgb.png")
    good = tmp_path / "good.png"
    write_label_png(good, np.ones((40, 40), np.uint8))
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:30])
    with pytest.raises(DatasetError, match="cut.png"):
        read_label_png(tmp_path / "cut.png")


def test_write_then_read_round_trip(tmp_path):
    rgb, labels = make_clip_arrays(3)
    meta = ClipMeta(
        "c1",
        concept="candle_melting",
        category="temporal_object_changes",
        fps=24,
        width=W,
        height=H,
        source=Source(url="https://v.example/1", platform="tiktok", uploader="u", license="cc-by"),
        trim=Trim(1.5, 4.25),
        crop=(0, 10, W, H),
        notes="n",
        extra={"custom": 7},
    )
    expressions = refvps_expressions()
    names = DatasetWriter(tmp_path).write_clip("c1", rgb, labels, expressions, meta)
    assert names == [frame_name(i) for i in range(T)] == ["00000", "00001", "00002", "00003", "00004", "00005"]

    ds = Dataset(tmp_path)
    assert ds.clip_ids == ["c1"] and "c1" in ds and len(ds) == 1
    clip = ds.clip("c1")
    assert clip.frame_names == names
    assert clip.expressions == expressions
    assert clip.meta == meta
    np.testing.assert_array_equal(clip.label_stack(), np.stack(labels))
    frame = clip.read_frame("00002")
    assert frame.shape == (H, W, 3) and frame.dtype == np.uint8
    # JPEG is lossy: close, not equal.
    assert np.abs(frame.astype(int) - rgb[2].astype(int)).mean() < 6
    assert clip.duration_s == pytest.approx(T / 24)

    # The files follow the Ref-YouTube-VOS layout byte for byte where it matters.
    data = json.loads((tmp_path / "meta_expressions.json").read_text())
    assert data["videos"]["c1"]["expressions"]["0"] == {"exp": expressions[0].text, "obj_id": "1", "annotator": "a"}
    assert data["videos"]["c1"]["frames"] == names
    clips = json.loads((tmp_path / "clips.json").read_text())["clips"]
    assert clips["c1"]["trim"] == {"start_s": 1.5, "end_s": 4.25}
    assert clips["c1"]["crop"] == [0, 10, W, H] and clips["c1"]["custom"] == 7


def test_updating_one_clip_keeps_the_others(tmp_path):
    writer = DatasetWriter(tmp_path)
    for clip_id in ("a", "b"):
        rgb, labels = make_clip_arrays(0)
        writer.write_clip(clip_id, rgb, labels, refvps_expressions(), ClipMeta(clip_id))
    writer.update_expressions("a", [Expression("0", "new text", 1, "x")])
    ds = Dataset(tmp_path)
    assert [e.text for e in ds.expressions("a")] == ["new text"]
    assert ds.expressions("b") == refvps_expressions()
    assert ds.clip("a").frame_names == ds.clip("b").frame_names  # frames kept when not given


def test_frames_are_read_lazily(tmp_path):
    rgb, labels = make_clip_arrays(0)
    DatasetWriter(tmp_path).write_clip("c", rgb, labels, refvps_expressions(), ClipMeta("c"))
    (tmp_path / "JPEGImages" / "c" / "00004.jpg").unlink()
    clip = Dataset(tmp_path).clip("c")  # opening does not touch frames
    iterator = clip.frames()
    for _ in range(4):
        next(iterator)
    with pytest.raises(DatasetError, match="00004.jpg"):
        next(iterator)


def test_missing_root_and_bad_json_name_the_file(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        Dataset(tmp_path / "nope")
    (tmp_path / "meta_expressions.json").write_text('{"videos": {,}}')
    with pytest.raises(DatasetError, match=r"meta_expressions.json.*line 1"):
        Dataset(tmp_path)


def test_writer_rejects_wrong_counts(tmp_path):
    rgb, labels = make_clip_arrays(0)
    with pytest.raises(ValueError, match="label maps"):
        DatasetWriter(tmp_path).write_clip("c", rgb, labels[:-1], [], ClipMeta("c"))


def _write_sparse_clip(root, annotated=("00000", "00003", "00005")):
    """A converted-benchmark clip written by hand (docs/BENCHMARKS_SUITE.md, "Format extension"):
    six frames, masks for ``annotated`` only, one expression whose target is the union of labels 1 and 3."""
    rgb, labels = make_clip_arrays(3)
    names = [frame_name(t) for t in range(T)]
    for t, name in enumerate(names):
        (root / "JPEGImages" / "c").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb[t]).save(root / "JPEGImages" / "c" / f"{name}.jpg")
    written = {}
    for name in annotated:
        label = labels[names.index(name)].copy()
        label[16:20, 20:30] = 3
        label[20:22, 0:5] = 2  # an object no expression targets (label_ids)
        write_label_png(root / "Annotations" / "c" / f"{name}.png", label)
        written[name] = label
    entry = {
        "expressions": {"0": {"exp": "the smoke and the flag", "obj_id": ["1", "3"]}},
        "frames": names,
        "annotated_frames": list(annotated),
        "label_ids": ["2"],
    }
    (root / "meta_expressions.json").write_text(json.dumps({"videos": {"c": entry}}))
    return written


def test_labels_of_a_sparse_clip_are_those_of_its_annotated_frames(tmp_path):
    written = _write_sparse_clip(tmp_path)
    clip = Dataset(tmp_path).clip("c")
    assert clip.is_sparse and clip.annotated_frames == ["00000", "00003", "00005"]
    stack = clip.label_stack(clip.annotated_frames)
    np.testing.assert_array_equal(stack, np.stack([written[n] for n in ("00000", "00003", "00005")]))
    for got, name in zip(clip.labels(clip.annotated_frames), clip.annotated_frames):
        np.testing.assert_array_equal(got, written[name])
    # Every frame's labels do not exist: a clear error naming the key, raised before anything is read.
    for ask in (clip.labels, clip.label_stack, lambda: clip.read_label("00001")):
        with pytest.raises(DatasetError, match="annotated_frames") as info:
            ask()
        assert "00001" in str(info.value) and info.value.path == tmp_path / "meta_expressions.json"
    with pytest.raises(DatasetError, match="00002, 00004"):
        clip.label_stack(["00000", "00002", "00004"])


def test_a_clip_without_ground_truth_has_no_labels(tmp_path):
    _write_sparse_clip(tmp_path, annotated=())
    clip = Dataset(tmp_path).clip("c")
    assert clip.is_sparse and clip.annotated_frames == []
    assert clip.label_stack(clip.annotated_frames).shape == (0, 0, 0)
    with pytest.raises(DatasetError, match="annotated_frames' lists 0 of its 6 frames"):
        clip.label_stack()


def test_editing_expressions_keeps_a_converted_clips_keys(tmp_path):
    _write_sparse_clip(tmp_path)
    writer = DatasetWriter(tmp_path)
    writer.update_expressions("c", [Expression("0", "the flag", 3)])
    entry = json.loads((tmp_path / "meta_expressions.json").read_text())["videos"]["c"]
    assert entry["annotated_frames"] == ["00000", "00003", "00005"] and entry["label_ids"] == ["2"]
    assert entry["expressions"] == {"0": {"exp": "the flag", "obj_id": "3"}}
    assert entry["frames"] == [frame_name(t) for t in range(T)]
    # A clip written whole again (new frames) starts a new entry.
    writer.update_expressions("c", [], frames=["00000", "00001"])
    entry = json.loads((tmp_path / "meta_expressions.json").read_text())["videos"]["c"]
    assert entry == {"expressions": {}, "frames": ["00000", "00001"]}
