"""Fixtures of the baseline tests: a small hand-built dataset, and fake checkouts of the methods.

The dataset has textured frames with a textured target that moves (so the motion baseline has
something to find), Ignore pixels, a frame where the target is absent, and two or three expressions per clip.

The fake checkouts stand in for the upstream repositories: tiny scripts at the upstream paths that
read exactly what the upstream entry points read and write exactly what they write, traps
included (the 202-video assertion, VD-IT's hard-coded CUDA_VISIBLE_DEVICES, MUTR's
results/<backbone>/ckpt convention and palette image, UNINEXT's BERT folder and DETECTRON2_DATASETS).
Instead of a model they copy the ground truth, which the test passes in FAKE_GT_ROOT, so a correct
adapter scores J = 100.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from refvps.dataset import ClipMeta, DatasetWriter, Expression

H, W = 40, 56
# clip id -> (frames, {exp_id: (text, obj_id)})
CLIPS = {
    "clip_a": (6, {"0": ("the moving patch", 1), "1": ("the patch sliding right", 1)}),
    "clip_b": (5, {"0": ("smoke drifting right", 1), "1": ("the drifting smoke", 1), "2": ("grey haze", 1)}),
    "clip_c": (4, {"0": ("a square sliding", 1), "1": ("the slider", 1)}),
}


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    small = rng.integers(40, 215, (height // 4 + 1, width // 4 + 1, 3)).astype(np.uint8)
    return np.kron(small, np.ones((4, 4, 1), np.uint8))[:height, :width]


def make_clip(seed: int, frames: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frames (RGB) and labels: object 1 a textured patch moving right; a still bright block as a distractor."""
    rng = np.random.default_rng(seed)
    background = _texture(rng, H, W)
    patch = _texture(rng, 14, 14)
    rgbs, labels = [], []
    for t in range(frames):
        rgb = background.copy()
        label = np.zeros((H, W), np.uint8)
        rgb[2:10, 40:52] = 250
        if t < frames - 1:  # the moving target leaves in the last frame
            x = 4 + 5 * t
            rgb[14:28, x : x + 14] = patch
            label[14:28, x : x + 14] = 1
            label[14:28, x + 13] = 255  # Ignore along its right edge
        rgbs.append(rgb)
        labels.append(label)
    return rgbs, labels


def write_dataset(root: Path, clips: dict = CLIPS) -> Path:
    writer = DatasetWriter(root)
    for seed, (clip_id, (frames, expressions)) in enumerate(clips.items()):
        rgbs, labels = make_clip(seed, frames)
        exps = [Expression(e, text, obj_id, "a" if int(e) < 2 else "b") for e, (text, obj_id) in expressions.items()]
        writer.write_clip(
            clip_id,
            rgbs,
            labels,
            exps,
            ClipMeta(clip_id, concept="smoke_rising", category="motion_patterns", width=W, height=H),
        )
    return root


@pytest.fixture(scope="session")
def dataset_root(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("data") / "refvps")


# -- fake checkouts ---------------------------------------------------------------------------------
# What the fakes share: copy the ground truth of (video, obj_id) at frame f as a 0/255 'L' PNG, the
# way the upstream scripts save masks (Image.fromarray(mask * 255).convert('L')).
_FAKE_COMMON = """
import json, os, sys
import numpy as np
from PIL import Image

def gt_mask(video, frame, obj_id):
    label = np.array(Image.open(os.path.join(os.environ["FAKE_GT_ROOT"], "Annotations", video, frame + ".png")))
    return (label == int(obj_id)).astype(np.float32)

def save(mask, path):
    skip = os.environ.get("FAKE_SKIP")  # e.g. "clip_b/1/00002.png": a frame the method drops
    if skip and path.endswith(skip):
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(mask * 255).convert("L").save(path)

def fail_after_first_video(video_list):
    # FAKE_FAIL_AFTER=1: write the first video, then crash like an out-of-memory error would.
    return os.environ.get("FAKE_FAIL_AFTER") == "1" and len(video_list) > 1

def record(name, value):
    folder = os.environ.get("FAKE_RECORD_DIR")
    if folder:
        with open(os.path.join(folder, name), "w") as handle:
            handle.write(value)
"""

# VD-IT inference_ytvos.py: the module-level CUDA_VISIBLE_DEVICES and the 202 assertion as upstream.
FAKE_VDIT = (
    _FAKE_COMMON
    + """
import argparse
os.environ['CUDA_VISIBLE_DEVICES'] = '7'

def main(args):
    record("cuda_visible_devices", os.environ.get("CUDA_VISIBLE_DEVICES", ""))
    record("cwd", os.getcwd())
    sys.path.append('./Text-To-Video-Finetuning')
    import train_itcross_pn  # found only through the relative path, as upstream
    record("t2v", os.path.realpath('./Text-To-Video-Finetuning/mymodels/model_scope_diffusers'))
    split = args.split
    save_path_prefix = os.path.join(args.output_dir, "Annotations")
    root = args.ytvos_path
    img_folder = os.path.join(root, split, "JPEGImages")
    meta_file = os.path.join(root, "meta_expressions", split, "meta_expressions.json")
    with open(meta_file, "r") as f:
        data = json.load(f)["videos"]
    valid_test_videos = set(data.keys())
    test_meta_file = os.path.join(root, "meta_expressions", "test", "meta_expressions.json")
    with open(test_meta_file, 'r') as f:
        test_data = json.load(f)['videos']
    test_videos = set(test_data.keys())
    valid_videos = valid_test_videos - test_videos
    video_list = sorted([video for video in valid_videos])
    assert len(video_list) == 202, 'error: incorrect number of validation videos'
    record("videos", json.dumps(video_list))
    for index, video in enumerate(video_list):
        expressions = data[video]["expressions"]
        frames = data[video]["frames"]
        for exp_id in expressions.keys():
            exp = expressions[exp_id]["exp"]
            for frame in frames:
                Image.open(os.path.join(img_folder, video, frame + ".jpg")).convert('RGB')
                save(gt_mask(video, frame, expressions[exp_id]["obj_id"]),
                     os.path.join(save_path_prefix, video, exp_id, frame + ".png"))
        if index == 0 and fail_after_first_video(video_list):
            raise RuntimeError("CUDA out of memory (fake)")

if __name__ == '__main__':
    parser = argparse.ArgumentParser('fake VD-IT inference script')
    for flag in ("--with_box_refine", "--binary", "--freeze_text_encoder", "--eval", "--amp"):
        parser.add_argument(flag, action="store_true")
    parser.add_argument("--ngpu", type=int, default=8)
    parser.add_argument("--output_dir", default="output")
    parser.add_argument("--resume", default="")
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--ytvos_path", default="./data/ref-youtube-vos")
    parser.add_argument("--split", default="valid")
    args = parser.parse_args()
    assert os.path.isfile(args.resume), args.resume
    record("argv", json.dumps(sys.argv[1:]))
    main(args)
"""
)

# MUTR inference_ytvos.py: checkpoint from results/<backbone>/ckpt, palette from davis_path.
FAKE_MUTR = (
    _FAKE_COMMON
    + """
import argparse

def main(args):
    args.output_dir = os.path.join('results', args.backbone, 'eval', args.dataset_file)
    os.makedirs(args.output_dir, exist_ok=True)
    if len(os.listdir(os.path.join('results', args.backbone, 'ckpt'))) == 1:
        args.test_num_ckpt = -1
    inference_ckpt = sorted(os.listdir(os.path.join('results', args.backbone, 'ckpt')))[args.test_num_ckpt]
    args.model_ckpt = inference_ckpt
    args.resume = os.path.join('results', args.backbone, 'ckpt', inference_ckpt)
    record("resume", os.path.realpath(args.resume))
    split = args.split
    CKPT = args.model_ckpt[:-4]
    eval_name = '{}_{}_{}_ckpt_{}'.format('refytvos2021', split, args.backbone, CKPT)
    save_path_prefix = os.path.join(args.output_dir, '{}'.format(eval_name), 'Annotations')
    root = args.ytvos_path
    img_folder = os.path.join(root, split, "JPEGImages")
    with open(os.path.join(root, "meta_expressions", split, "meta_expressions.json"), "r") as f:
        data = json.load(f)["videos"]
    with open(os.path.join(root, "meta_expressions", "test", "meta_expressions.json"), 'r') as f:
        test_videos = set(json.load(f)['videos'].keys())
    video_list = sorted([video for video in set(data.keys()) - test_videos])
    assert len(video_list) == 202, 'error: incorrect number of validation videos'
    palette_img = os.path.join(args.davis_path, "valid/Annotations/blackswan/00000.png")
    palette = Image.open(palette_img).getpalette()
    assert palette is not None
    for index, video in enumerate(video_list):
        expressions = data[video]["expressions"]
        for exp_id in list(expressions.keys()):
            frames = data[video]["frames"]
            for frame in frames:
                Image.open(os.path.join(img_folder, video, frame + ".jpg")).convert('RGB')
                save(gt_mask(video, frame, expressions[exp_id]["obj_id"]),
                     os.path.join(save_path_prefix, video, exp_id, frame + ".png"))
        if index == 0 and fail_after_first_video(video_list):
            raise RuntimeError("CUDA out of memory (fake)")

if __name__ == '__main__':
    parser = argparse.ArgumentParser('fake MUTR inference script')
    for flag in ("--with_box_refine", "--binary", "--freeze_text_encoder"):
        parser.add_argument(flag, action="store_true")
    parser.add_argument("--ngpu", type=int, default=1)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--ytvos_path", default="data/ref-youtube-vos")
    parser.add_argument("--davis_path", default="data/ref-davis")
    parser.add_argument("--dataset_file", default="ytvos")
    parser.add_argument("--split", default="valid")
    parser.add_argument("--test_num_ckpt", type=int, default=-2)
    args = parser.parse_args()
    record("argv", json.dumps(sys.argv[1:]))
    main(args)
"""
)

# UNINEXT projects/UNINEXT/train_net.py: detectron2-style arguments, valid.json under
# DETECTRON2_DATASETS, BERT read from the relative projects/UNINEXT/bert-base-uncased.
FAKE_UNINEXT = (
    _FAKE_COMMON
    + """
import argparse

def main(args):
    opts = dict(zip(args.opts[0::2], args.opts[1::2]))
    record("num_gpus", str(args.num_gpus))
    record("opts", json.dumps(opts))
    assert os.path.isfile(opts["MODEL.WEIGHTS"])
    assert opts["DATASETS.TEST"] == "('rvos-refytb-val',)", opts["DATASETS.TEST"]
    with open("projects/UNINEXT/bert-base-uncased/config.json") as f:
        json.load(f)
    root = os.getenv("DETECTRON2_DATASETS", "datasets")
    image_root = os.path.join(root, "ref-youtube-vos/valid/JPEGImages")
    with open(os.path.join(root, "ref-youtube-vos/valid.json")) as f:
        dataset = json.load(f)
    assert dataset["categories"] == [{"supercategory": "object", "id": 1, "name": "object"}]
    save_path_prefix = os.path.join(opts["OUTPUT_DIR"], "Annotations")
    meta = json.load(open(os.path.join(root, "ref-youtube-vos/meta_expressions/valid/meta_expressions.json")))["videos"]
    done_videos = []
    for vid_dict in sorted(dataset["videos"], key=lambda v: v["id"]):
        file_names = [os.path.join(image_root, vid_dict["file_names"][i]) for i in range(vid_dict["length"])]
        video_name, exp_id = vid_dict["video"], vid_dict["exp_id"]
        if fail_after_first_video(sorted(meta)) and done_videos and video_name not in done_videos:
            raise RuntimeError("CUDA out of memory (fake)")
        obj_id = meta[video_name]["expressions"][exp_id]["obj_id"]
        assert vid_dict["expressions"] == [meta[video_name]["expressions"][exp_id]["exp"]]
        for frame_idx in range(vid_dict["length"]):
            image = Image.open(file_names[frame_idx])
            assert image.size == (vid_dict["width"], vid_dict["height"])
            frame_name = file_names[frame_idx].split("/")[-1].replace(".jpg", "")
            save(gt_mask(video_name, frame_name, obj_id),
                 os.path.join(save_path_prefix, video_name, exp_id, frame_name + ".png"))
        if video_name not in done_videos:
            done_videos.append(video_name)

if __name__ == "__main__":
    parser = argparse.ArgumentParser("fake UNINEXT train_net.py")
    parser.add_argument("--config-file", default="")
    parser.add_argument("--eval-only", action="store_true")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--num-gpus", type=int, default=1)
    parser.add_argument("--uni", type=int, default=1)
    parser.add_argument("opts", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    assert os.path.isfile(args.config_file), args.config_file
    main(args)
"""
)


def make_fake_checkout(root: Path, method: str) -> Path:
    """A folder laid out like the method's repository, with a fake entry point."""
    root.mkdir(parents=True, exist_ok=True)
    if method == "vdit":
        (root / "inference_ytvos.py").write_text(FAKE_VDIT)
        t2v = root / "Text-To-Video-Finetuning"
        (t2v / "mymodels" / "model_scope_diffusers" / "unet").mkdir(parents=True)
        (t2v / "mymodels" / "unet_3d_condition_it.py").write_text("# stands in for VD-IT's module\n")
        (t2v / "train_itcross_pn.py").write_text("PATH = './Text-To-Video-Finetuning/mymodels/model_scope_diffusers'\n")
    elif method == "mutr":
        (root / "inference_ytvos.py").write_text(FAKE_MUTR)
    elif method == "uninext":
        script = root / "projects" / "UNINEXT" / "train_net.py"
        script.parent.mkdir(parents=True)
        script.write_text(FAKE_UNINEXT)
        for variant in ("r50", "convnext_large", "vit_huge"):
            config = root / "projects/UNINEXT/configs/eval-vid" / f"video_joint_{variant}_eval_rvos.yaml"
            config.parent.mkdir(parents=True, exist_ok=True)
            config.write_text('_BASE_: "../video_joint_r50.yaml"\n')
        bert = root / "projects" / "UNINEXT" / "bert-base-uncased"
        bert.mkdir(parents=True)
        (bert / "config.json").write_text("{}")
        (bert / "vocab.txt").write_text("[PAD]\n")
        (root / "launch.py").write_text("# not used by the adapter\n")
    else:
        raise ValueError(method)
    return root


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    path = tmp_path / "weights" / "model_final.pth"
    path.parent.mkdir()
    path.write_bytes(b"fake weights")
    return path


PYTHON = sys.executable


def dedent(text: str) -> str:
    return textwrap.dedent(text)


def external_args(method: str, dataset: Path, out: Path, repo: Path, checkpoint: Path, *extra) -> list[str]:
    return [
        "run-baseline",
        method,
        "--dataset",
        dataset,
        "--out",
        out,
        "--repo",
        repo,
        "--python",
        PYTHON,
        "--checkpoint",
        checkpoint,
        *extra,
    ]


def dry_run(cli, method: str, dataset_root: Path, tmp_path: Path, checkpoint: Path, *extra) -> tuple[Path, Path, dict]:
    """``run-baseline METHOD --dry-run --json`` on a fake checkout: (repo, work folder, summary).

    Checks what every dry run must do: succeed, say so, and write no predictions.
    """
    repo = make_fake_checkout(tmp_path / f"{method}-repo", method)
    out = tmp_path / "preds"
    result = cli(*external_args(method, dataset_root, out, repo, checkpoint, "--dry-run", "--json", *extra))
    assert result.code == 0, result.err
    summary = result.json()
    assert summary["status"] == "dry-run"
    assert not out.exists(), "a dry run writes no predictions"
    return repo, Path(summary["workdir"]), summary


def own_scores(dataset_root: Path, predict) -> tuple[float, float]:
    """Dataset J and TempCon computed here, independently of refvps.scoring (docs/METRICS.md, by hand).

    ``predict(clip, expression, frame, label) -> bool mask``; Ignore (255) pixels are left out, an
    empty union counts as IoU 1, J is the mean over frames then over expressions.
    """
    from refvps.dataset import Dataset

    j, tempcon = [], []
    for clip in Dataset(dataset_root):
        for expression in clip.expressions:
            ious = []
            for frame in clip.frame_names:
                label = clip.read_label(frame)
                valid = label != 255
                gt = (label == expression.obj_id) & valid
                pred = predict(clip, expression, frame, label) & valid
                union = (gt | pred).sum()
                ious.append(1.0 if union == 0 else (gt & pred).sum() / union)
            j.append(np.mean(ious))
            tempcon.append(np.mean(np.abs(np.diff(ious))) if len(ious) > 1 else 0.0)
    return 100 * float(np.mean(j)), 100 * float(np.mean(tempcon))
