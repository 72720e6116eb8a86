"""The exported input of each external method matches what its upstream inference code reads.

The paths and field names below were read from the upstream repositories at the commits the
adapters name (the file is given with each); the checks read the export the way that code does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from refvps.dataset import Dataset

from .conftest import CLIPS, dry_run, external_args, make_fake_checkout


def _read_like_refytvos_inference(root: Path) -> dict[str, list[tuple[str, str, str, list[str]]]]:
    """What VD-IT's and MUTR's inference_ytvos.py read, in their own terms.

    Both scripts (VD-IT inference_ytvos.py main()/sub_processor(), MUTR inference_ytvos.py, same
    code): split = args.split ('valid'); img_folder = root/<split>/JPEGImages; meta_file =
    root/meta_expressions/<split>/meta_expressions.json -> json["videos"]; test_meta_file =
    root/meta_expressions/test/meta_expressions.json -> json['videos']; video_list =
    sorted(valid - test); per video: data[video]["expressions"] (keys are exp ids),
    expressions[exp_id]["exp"], data[video]["frames"]; image = img_folder/<video>/<frame>.jpg.
    """
    split = "valid"
    img_folder = root / split / "JPEGImages"
    with open(root / "meta_expressions" / split / "meta_expressions.json") as f:
        data = json.load(f)["videos"]
    with open(root / "meta_expressions" / "test" / "meta_expressions.json") as f:
        test_videos = set(json.load(f)["videos"].keys())
    video_list = sorted(set(data.keys()) - test_videos)
    seen = {}
    for video in video_list:
        expressions = data[video]["expressions"]
        items = []
        for exp_id in list(expressions.keys()):
            frames = data[video]["frames"]
            for frame in frames:
                Image.open(img_folder / video / (frame + ".jpg")).convert("RGB")
            items.append((exp_id, expressions[exp_id]["exp"], expressions[exp_id]["obj_id"], frames))
        seen[video] = items
    return seen


def _expected(dataset_root: Path) -> dict[str, list[tuple[str, str, str, list[str]]]]:
    dataset = Dataset(dataset_root)
    return {
        clip.id: [(e.exp_id, e.text, str(e.obj_id), clip.frame_names) for e in clip.expressions] for clip in dataset
    }


def _assert_frames_are_symlinks(img_folder: Path, dataset_root: Path) -> None:
    dataset = Dataset(dataset_root)
    for clip in dataset:
        for name in clip.frame_names:
            link = img_folder / clip.id / f"{name}.jpg"
            assert link.is_symlink(), f"{link} is a copy, not a symlink"
            assert Path(os.readlink(link)).resolve() == clip.frame_path(name).resolve()


@pytest.mark.parametrize("method", ["vdit", "mutr"])
def test_refytvos_layout_is_what_inference_ytvos_reads(method, cli, dataset_root, tmp_path, checkpoint):
    _, workdir, _ = dry_run(cli, method, dataset_root, tmp_path, checkpoint)
    root = workdir / "export" / "ref-youtube-vos"  # passed as --ytvos_path (see test_commands)
    assert _read_like_refytvos_inference(root) == _expected(dataset_root)
    # The test split exists and is empty: nothing is subtracted, and the 202 check is patched away.
    assert json.loads((root / "meta_expressions/test/meta_expressions.json").read_text()) == {"videos": {}}
    _assert_frames_are_symlinks(root / "valid" / "JPEGImages", dataset_root)


def test_mutr_palette_image_where_the_script_opens_it(cli, dataset_root, tmp_path, checkpoint):
    # MUTR inference_ytvos.py sub_processor(): palette_img = os.path.join(args.davis_path,
    # "valid/Annotations/blackswan/00000.png"); Image.open(palette_img).getpalette()
    _, workdir, _ = dry_run(cli, "mutr", dataset_root, tmp_path, checkpoint)
    palette_img = workdir / "export" / "ref-davis" / "valid/Annotations/blackswan/00000.png"
    with Image.open(palette_img) as image:
        assert image.mode == "P"
        palette = image.getpalette()
    assert palette[3:6] == [128, 0, 0]  # DAVIS palette: index 1 is dark red


def test_mutr_checkpoint_folder_holds_exactly_the_checkpoint(cli, dataset_root, tmp_path, checkpoint):
    # MUTR inference_ytvos.py main(): if len(os.listdir('results/<B>/ckpt')) == 1: test_num_ckpt = -1;
    # resume = 'results/<B>/ckpt/' + sorted(os.listdir(...))[test_num_ckpt], relative to the cwd.
    _, workdir, summary = dry_run(cli, "mutr", dataset_root, tmp_path, checkpoint, "--backbone", "video_swin_b_p4w7")
    cwd = Path(summary["commands"][0]["cwd"])
    ckpt_dir = cwd / "results" / "video_swin_b_p4w7" / "ckpt"
    entries = sorted(os.listdir(ckpt_dir))
    assert entries == ["checkpoint.pth"]
    assert (ckpt_dir / entries[-1]).resolve() == checkpoint.resolve()


def test_uninext_json_is_what_convert_refytvos2ytvis_val_writes(cli, dataset_root, tmp_path, checkpoint):
    _, workdir, summary = dry_run(cli, "uninext", dataset_root, tmp_path, checkpoint)
    datasets = workdir / "export" / "datasets"
    assert summary["commands"][0]["env"]["DETECTRON2_DATASETS"] == str(datasets)
    # uninext/data/datasets/builtin.py: "rvos-refytb-val": ("ref-youtube-vos/valid/JPEGImages",
    # "ref-youtube-vos/valid.json") under os.getenv("DETECTRON2_DATASETS", "datasets").
    image_root = datasets / "ref-youtube-vos/valid/JPEGImages"
    data = json.loads((datasets / "ref-youtube-vos/valid.json").read_text())
    # conversion/convert_refytvos2ytvis_val.py: {"videos": [...], "categories": [{"supercategory":
    # "object", "id": 1, "name": "object"}]}; one video entry per expression with "height", "width",
    # "length", "file_names" (["<video>/<frame>.jpg"]), "id" (from 1), "expressions" ([text]),
    # "video", "exp_id".
    assert data["categories"] == [{"supercategory": "object", "id": 1, "name": "object"}]
    expected = []
    for clip in Dataset(dataset_root):
        for expression in clip.expressions:
            expected.append((clip.id, expression.exp_id, [expression.text], len(clip.frame_names)))
    got = [(v["video"], v["exp_id"], v["expressions"], v["length"]) for v in data["videos"]]
    assert got == expected
    assert [v["id"] for v in data["videos"]] == list(range(1, len(expected) + 1))
    for video in data["videos"]:
        assert set(video) == {"height", "width", "length", "file_names", "id", "expressions", "video", "exp_id"}
        # uninext/data/datasets/ytvis.py load_ytvis_json(): record["file_names"] =
        # [os.path.join(image_root, vid_dict["file_names"][i]) for i in range(vid_dict["length"])]
        files = [image_root / video["file_names"][i] for i in range(video["length"])]
        for path in files:
            with Image.open(path) as image:
                assert image.size == (video["width"], video["height"])
        # uninext_vid.py: frame_name = file_names[frame_idx].split("/")[-1].replace(".jpg", "")
        names = [str(p).split("/")[-1].replace(".jpg", "") for p in files]
        assert names == Dataset(dataset_root).clip(video["video"]).frame_names
    _assert_frames_are_symlinks(image_root, dataset_root)


def test_uninext_working_folder_has_bert_and_palette_at_the_relative_paths(cli, dataset_root, tmp_path, checkpoint):
    repo, workdir, summary = dry_run(cli, "uninext", dataset_root, tmp_path, checkpoint)
    cwd = Path(summary["commands"][0]["cwd"])
    # bert_model.py / uninext_vid.py: from_pretrained("projects/UNINEXT/bert-base-uncased"), relative.
    assert (cwd / "projects/UNINEXT/bert-base-uncased").resolve() == (
        repo / "projects/UNINEXT/bert-base-uncased"
    ).resolve()
    assert json.loads((cwd / "projects/UNINEXT/bert-base-uncased/config.json").read_text()) == {}
    # uninext_vid.py inference_rvos_offline(): palette_img =
    # "datasets/ref-davis/DAVIS/Annotations_unsupervised/480p/bear/00000.png", relative.
    with Image.open(cwd / "datasets/ref-davis/DAVIS/Annotations_unsupervised/480p/bear/00000.png") as image:
        assert image.mode == "P"
    # The checkout itself is untouched: no datasets/ or outputs/ appeared in it.
    assert not (repo / "datasets").exists() and not (repo / "outputs").exists()


def test_uninext_bert_folder_can_live_elsewhere(cli, dataset_root, tmp_path, checkpoint):
    bert = tmp_path / "bert-base-uncased"
    bert.mkdir()
    (bert / "config.json").write_text('{"vocab_size": 3}')
    (bert / "vocab.txt").write_text("a\n")
    _, _, summary = dry_run(cli, "uninext", dataset_root, tmp_path, checkpoint, "--bert", bert)
    cwd = Path(summary["commands"][0]["cwd"])
    assert json.loads((cwd / "projects/UNINEXT/bert-base-uncased/config.json").read_text()) == {"vocab_size": 3}


def test_vdit_working_folder_resolves_its_relative_paths(cli, dataset_root, tmp_path, checkpoint):
    # itcross_video_swin_transformer.py: sys.path.append('./Text-To-Video-Finetuning');
    # train_itcross_pn.py FeatureExtractor(pretrained_model_path=
    # './Text-To-Video-Finetuning/mymodels/model_scope_diffusers'): both relative to the cwd.
    repo, _, summary = dry_run(cli, "vdit", dataset_root, tmp_path, checkpoint)
    cwd = Path(summary["commands"][0]["cwd"])
    assert (cwd / "Text-To-Video-Finetuning/train_itcross_pn.py").is_file()
    assert (cwd / "Text-To-Video-Finetuning/mymodels/model_scope_diffusers").resolve() == (
        repo / "Text-To-Video-Finetuning/mymodels/model_scope_diffusers"
    ).resolve()


def test_vdit_t2v_weights_elsewhere_are_overlaid_without_touching_the_checkout(cli, dataset_root, tmp_path, checkpoint):
    weights = tmp_path / "text-to-video-ms-1.7b"
    (weights / "unet").mkdir(parents=True)
    repo, _, summary = dry_run(cli, "vdit", dataset_root, tmp_path, checkpoint, "--t2v-weights", weights)
    cwd = Path(summary["commands"][0]["cwd"])
    t2v = cwd / "Text-To-Video-Finetuning"
    assert (t2v / "mymodels/model_scope_diffusers").resolve() == weights.resolve()
    assert (t2v / "mymodels/unet_3d_condition_it.py").resolve() == (
        repo / "Text-To-Video-Finetuning/mymodels/unet_3d_condition_it.py"
    ).resolve()
    assert (t2v / "train_itcross_pn.py").is_symlink()
    assert (repo / "Text-To-Video-Finetuning/mymodels/model_scope_diffusers").is_dir()  # the original stays


def test_vdit_without_t2v_weights_is_a_clear_error(cli, dataset_root, tmp_path, checkpoint):
    repo = make_fake_checkout(tmp_path / "vdit-repo", "vdit")
    (repo / "Text-To-Video-Finetuning/mymodels/model_scope_diffusers/unet").rmdir()
    result = cli(*external_args("vdit", dataset_root, tmp_path / "p", repo, checkpoint, "--dry-run"))
    assert result.code == 1
    assert "text-to-video" in result.flat_err and "--t2v-weights" in result.flat_err


def test_uninext_without_bert_is_a_clear_error(cli, dataset_root, tmp_path, checkpoint):
    repo = make_fake_checkout(tmp_path / "u-repo", "uninext")
    (repo / "projects/UNINEXT/bert-base-uncased/vocab.txt").unlink()
    result = cli(*external_args("uninext", dataset_root, tmp_path / "p", repo, checkpoint, "--dry-run"))
    assert result.code == 1
    assert "vocab.txt" in result.flat_err and "--bert" in result.flat_err


def test_not_a_checkout_is_a_clear_error(cli, dataset_root, tmp_path, checkpoint):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli(*external_args("mutr", dataset_root, tmp_path / "p", empty, checkpoint, "--dry-run"))
    assert result.code == 1 and result.err.startswith("Error:")
    assert "inference_ytvos.py is missing" in result.flat_err and "github.com/OpenGVLab/MUTR" in result.flat_err


def test_export_of_a_subset_lists_only_those_clips(cli, dataset_root, tmp_path, checkpoint):
    _, workdir, _ = dry_run(cli, "vdit", dataset_root, tmp_path, checkpoint, "--clip", "clip_b")
    root = workdir / "export" / "ref-youtube-vos"
    assert list(_read_like_refytvos_inference(root)) == ["clip_b"]
    assert sorted(os.listdir(root / "valid" / "JPEGImages")) == ["clip_b"]


def test_unsafe_clip_ids_get_stable_generated_names():
    from baselines.export import ExportNames, generated_name

    names = ExportNames.for_clips(["clip_a", "smoke over/the hill", "ünïcode"])
    assert names.video("clip_a") == "clip_a"
    assert names.video("smoke over/the hill") == generated_name("smoke over/the hill")
    assert names.video("smoke over/the hill").startswith("refvps_") and "/" not in names.video("smoke over/the hill")
    assert ExportNames.for_clips(["ünïcode"]).video("ünïcode") == names.video("ünïcode")  # independent of the others
    assert names.video_to_clip[names.video("ünïcode")] == "ünïcode"


def test_the_fixture_has_what_the_tests_rely_on(dataset_root):
    dataset = Dataset(dataset_root)
    assert dataset.clip_ids == sorted(CLIPS)
    labels = dataset.clip("clip_a").label_stack()
    assert (labels == 255).any() and not (labels[-1] == 1).any() and (labels[0] == 1).any()
    assert np.unique(labels).tolist() == [0, 1, 255]
