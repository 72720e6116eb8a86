"""Training data: Ref-VPS format, Ref-YouTube-VOS, Ref-COCO (refer format), pseudo-videos, mixing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from refvps.dataset.palette import write_label_png
from refvps.errors import ConfigError, DatasetError
from rem_model.data import DataSource, MixedDataset, build_training_dataset, pseudo_video, sample_window
from rem_model.data.images import RefCOCODataset
from rem_model.data.video import RefVPSVideoDataset, RefYouTubeVOSDataset

from .toydata import make_refer_dataset


def test_sample_window_strides_and_short_clips():
    rng = np.random.default_rng(0)
    for _ in range(50):
        window = sample_window(20, 8, rng, max_stride=3)
        steps = set(np.diff(window))
        assert len(window) == 8 and len(steps) == 1 and 1 <= steps.pop() <= 2  # stride 3 would not fit
        assert 0 <= window[0] and window[-1] < 20
    assert sample_window(3, 5, rng) == [0, 1, 2, 2, 2]
    assert sample_window(9, 1, rng, max_stride=3)[0] in range(9)


def test_refvps_windows_are_seeded_by_epoch_and_index(toy_dataset):
    dataset = RefVPSVideoDataset(toy_dataset, resolution=(32, 48), num_frames=4, seed=0)
    assert len(dataset) == 8  # 2 clips x 4 expressions
    first = dataset[3]
    assert first["frames"].shape == (4, 3, 32, 48) and first["masks"].shape == (4, 32, 48)
    assert float(first["frames"].min()) >= -1 and float(first["frames"].max()) <= 1
    assert set(np.unique(first["masks"].numpy())) <= {0.0, 1.0}
    np.testing.assert_array_equal(dataset[3]["frames"], first["frames"])  # same epoch, same sample
    # The sentence decides the target: object 1 (red) for "red", object 2 (blue) for "blue".
    for index in range(len(dataset)):
        sample = dataset[index]
        item = dataset.items[index]
        colour = sample["frames"][0].permute(1, 2, 0).numpy()
        inside = sample["masks"][0].numpy() > 0
        if inside.sum() > 10:
            red, blue = colour[inside][:, 0].mean(), colour[inside][:, 2].mean()
            assert (red > blue) == ("red" in item.text), item.text


def test_ignore_trains_as_background(tmp_path):
    from refvps.dataset.format import ClipMeta, DatasetWriter, Expression

    label = np.zeros((16, 16), np.uint8)
    label[4:12, 4:12] = 1
    label[4:6, 4:12] = 255
    DatasetWriter(tmp_path).write_clip(
        "c", [np.zeros((16, 16, 3), np.uint8)], [label], [Expression("0", "x", 1)], ClipMeta("c")
    )
    sample = RefVPSVideoDataset(tmp_path, resolution=(16, 16), num_frames=1)[0]
    assert sample["masks"][0].sum() == 6 * 8  # the 255 rows are not target


def _ytvos(root):
    video = "abc123"
    for name in ("00000", "00005", "00010"):
        frame = root / "train" / "JPEGImages" / video / f"{name}.jpg"
        frame.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((24, 32, 3), 128, np.uint8)).save(frame)
        label = np.zeros((24, 32), np.uint8)
        label[2:10, 2:10] = 1
        label[12:20, 20:30] = 2
        write_label_png(root / "train" / "Annotations" / video / f"{name}.png", label)
    meta = {
        "videos": {
            video: {
                "expressions": {"0": {"exp": "a cat", "obj_id": "1"}, "1": {"exp": "a dog", "obj_id": "2"}},
                "frames": ["00000", "00005", "00010"],
            }
        }
    }
    path = root / "meta_expressions" / "train" / "meta_expressions.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(meta))
    return root


def test_ref_youtube_vos_layout(tmp_path):
    dataset = RefYouTubeVOSDataset(_ytvos(tmp_path), resolution=(24, 32), num_frames=2)
    assert len(dataset) == 2
    cat, dog = dataset[0], dataset[1]
    assert cat["text"] == "a cat" and cat["masks"][0].sum() == 64
    assert dog["text"] == "a dog" and dog["masks"][0].sum() == 80
    with pytest.raises(DatasetError, match="meta_expressions"):
        RefYouTubeVOSDataset(tmp_path / "nothing", resolution=(24, 32), num_frames=2)


def test_refcoco_references_left_out_are_reported(tmp_path, caplog):
    """A reference whose annotation is not in instances.json, and an empty sentence, used to be dropped
    silently: both are logged with their number and reason."""
    import pickle

    root, images = make_refer_dataset(tmp_path)
    with open(root / "refs(unc).p", "rb") as handle:
        refs = pickle.load(handle)
    refs[0]["sentences"].append({"sent": "  ", "raw": "", "tokens": []})
    refs.append({**refs[0], "ref_id": 5, "ann_id": 99, "sentences": [{"sent": "gone", "raw": "", "tokens": []}]})
    with open(root / "refs(unc).p", "wb") as handle:
        pickle.dump(refs, handle)
    with caplog.at_level("WARNING", logger="rem_model"):
        dataset = RefCOCODataset(root, images, resolution=(40, 60), num_frames=1)
    assert [item.text for item in dataset.items] == ["the square", "black box on top"]
    assert "1 reference(s) left out" in caplog.text and "ref_id 5" in caplog.text
    assert "1 empty sentence(s) left out" in caplog.text


def test_refcoco_refer_format_as_images_and_pseudo_videos(tmp_path):
    root, images = make_refer_dataset(tmp_path)
    still = RefCOCODataset(root, images, resolution=(40, 60), num_frames=1)
    assert [item.text for item in still.items] == ["the square", "black box on top"]  # train split only
    sample = still[0]
    mask = sample["masks"][0].numpy()
    assert sample["frames"].shape == (1, 3, 40, 60)
    assert abs(mask.sum() - 400) <= 45 and mask[15, 20] == 1 and mask[2, 2] == 0  # the polygon, rasterised
    moving = RefCOCODataset(root, images, resolution=(40, 60), num_frames=4)
    clip = moving[0]
    assert clip["frames"].shape == (4, 3, 40, 60)
    centres = [np.argwhere(m.numpy() > 0).mean(0) for m in clip["masks"]]
    assert np.linalg.norm(centres[-1] - centres[0]) > 0.5  # the pseudo-video moves the target
    with pytest.raises(DatasetError, match="pseudo"):
        RefCOCODataset(root, images, resolution=(40, 60), num_frames=4, pseudo_video=False)


def test_pseudo_video_moves_image_and_mask_together():
    rng = np.random.default_rng(1)
    mask = np.zeros((60, 80), np.float32)
    mask[20:40, 30:50] = 1
    image = np.repeat((mask * 255).astype(np.uint8)[..., None], 3, axis=2)
    frames, masks = pseudo_video(image, mask, 6, rng)
    assert len(frames) == len(masks) == 6
    for frame, warped in zip(frames, masks):
        agreement = ((frame[..., 0] > 127) == (warped > 0.5)).mean()
        assert agreement > 0.99


def test_mixing_weights_and_caps(toy_dataset):
    mixed = build_training_dataset(
        [DataSource("refvps", str(toy_dataset), weight=2.0), DataSource("refvps", str(toy_dataset), max_samples=3)],
        resolution=(32, 48),
        num_frames=2,
    )
    assert len(mixed) == 16 + 3
    assert [which for which, _ in mixed.index].count(1) == 3
    assert isinstance(mixed, MixedDataset)
    with pytest.raises(ConfigError, match="kind"):
        DataSource.from_json({"kind": "davis", "root": "x"})
    with pytest.raises(ConfigError, match="no data sources"):
        build_training_dataset([], resolution=(32, 48), num_frames=2)


def test_a_dataset_without_masks_cannot_train(tmp_path, toy_dataset):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(toy_dataset, copy)
    # One mask missing: named when the dataset is built, not later in a data loader worker.
    missing = next((copy / "Annotations" / "toy001").glob("*.png"))
    missing.unlink()
    with pytest.raises(DatasetError, match="toy001 lacks 1 of its 10 masks") as info:
        RefVPSVideoDataset(copy, resolution=(32, 48), num_frames=2)
    assert info.value.path == missing and "refvps validate" in info.value.hint
    # A clip without any masks (a test split) is left out; a dataset with none cannot train at all.
    shutil.rmtree(copy / "Annotations" / "toy001")
    assert {item.clip_id for item in RefVPSVideoDataset(copy, resolution=(32, 48), num_frames=2).items} == {"toy000"}
    shutil.rmtree(copy / "Annotations")
    with pytest.raises(DatasetError, match="has no masks") as info:
        build_training_dataset([DataSource("refvps", str(copy))], resolution=(32, 48), num_frames=2)
    assert "refvps synth" in info.value.hint
    with pytest.raises(DatasetError, match="clips not in"):
        RefVPSVideoDataset(toy_dataset, clips=["toy000", "nope"], resolution=(32, 48), num_frames=2)


def test_bilinear_resample_is_torchvision_resize_of_a_pil_image():
    """The authors feed frames through T.Compose([T.Resize((h, w)), T.ToTensor(), T.Normalize(0.5, 0.5)])
    on PIL images; the bilinear geometry must give the same tensor."""
    import torch
    import torchvision.transforms as T

    from rem_model.data.transforms import Geometry, frames_tensor

    frame = np.random.default_rng(0).integers(0, 255, (90, 160, 3), dtype=np.uint8)
    transform = T.Compose([T.Resize((64, 96)), T.ToTensor(), T.Normalize(mean=[0.5] * 3, std=[0.5] * 3)])
    for size in ((64, 96), (128, 224)):  # shrinking and growing
        transform.transforms[0] = T.Resize(size)
        geometry = Geometry.fit((90, 160), size, "squash", "bilinear")
        torch.testing.assert_close(frames_tensor([frame], geometry)[0], transform(Image.fromarray(frame)))


def test_subset_sampling_draws_sorted_distinct_frames(toy_dataset):
    dataset = build_training_dataset(
        [DataSource("refvps", str(toy_dataset), sampling="subset")], resolution=(24, 32), num_frames=5
    )
    assert dataset.datasets[0].sampling == "subset"
    rng = np.random.default_rng(3)
    from rem_model.data import sample_subset

    for _ in range(20):
        picks = sample_subset(10, 5, rng)
        assert picks == sorted(set(picks)) and len(picks) == 5 and 0 <= picks[0] and picks[-1] < 10
    assert dataset[0]["frames"].shape == (5, 3, 24, 32)
    with pytest.raises(ConfigError, match="unknown data source keys"):
        DataSource.from_json({"kind": "refvps", "root": "x", "samplng": "subset"})


def test_ref_youtube_vos_videos_without_masks_are_left_out_and_reported(tmp_path, caplog):
    root = _ytvos(tmp_path)
    meta_path = root / "meta_expressions" / "train" / "meta_expressions.json"
    meta = json.loads(meta_path.read_text())
    meta["videos"]["nomask9"] = {"expressions": {"0": {"exp": "a bird", "obj_id": "1"}}, "frames": ["00000"]}
    meta_path.write_text(json.dumps(meta))
    with caplog.at_level("WARNING", logger="rem_model.data.video"):
        dataset = RefYouTubeVOSDataset(root, resolution=(24, 32), num_frames=2)
    assert [item.text for item in dataset.items] == ["a cat", "a dog"]
    assert "1 of 2 Ref-YouTube-VOS videos" in caplog.text and "nomask9" in caplog.text
