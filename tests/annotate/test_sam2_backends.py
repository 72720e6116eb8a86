"""Both SAM2 segmenters, with random weights in tiny configs of the real classes, on a CPU.

The masks of random weights mean nothing; what is checked is the path: clicks -> propagation both
ways -> corrections kept as conditioning frames -> save, frames loaded lazily, checkpoints loaded
(and refused with a clear error when wrong), all without downloading anything.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from refvps.annotate import layers as L  # noqa: E402
from refvps.annotate.session import CLICKED, MANUAL, PROPAGATED, ClipSession  # noqa: E402
from refvps.cli import main  # noqa: E402
from refvps.dataset import Dataset, DatasetWriter  # noqa: E402
from refvps.dataset.palette import read_label_png  # noqa: E402
from refvps.errors import ConfigError, UsageError  # noqa: E402
from tests.annotate.conftest import EXPRESSIONS, blob_center, blob_clip, distance_to_polyline, meta  # noqa: E402

FRAMES = 6


@pytest.fixture
def short(tmp_path):
    root = tmp_path / "ds"
    rgb, _ = blob_clip(frames=FRAMES)
    DatasetWriter(root).write_clip("clip_s", rgb, None, EXPRESSIONS, meta("clip_s"))
    return root


@pytest.fixture(scope="module")
def sam2_segmenter():
    pytest.importorskip("sam2")
    from refvps.annotate.segmenters.tiny import tiny_sam2_segmenter

    return tiny_sam2_segmenter(image_size=128)


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    pytest.importorskip("transformers")
    from refvps.annotate.segmenters.tiny import save_tiny_hf_sam2

    return save_tiny_hf_sam2(tmp_path_factory.mktemp("hf") / "tiny-sam2-video", image_size=128)


def full_path(root, segmenter):
    """click -> propagate both ways -> corrective click -> re-propagate -> brush -> save; return the session."""
    session = ClipSession(root, Dataset(root).clip("clip_s"), segmenter)
    mid = session.middle
    session.set_points(mid, [list(blob_center(mid)), [5.0, 5.0]], [1, 0])
    seg = session._seg
    lazy = seg.images
    assert lazy.loads <= 2, "frames must load lazily, not all at once"
    job = session.start_propagation(mid, "both")
    assert session.wait(120).state == "done", job.error
    assert job.done == job.total == FRAMES and (job.written, job.kept) == (FRAMES - 1, 1)  # each frame once
    assert lazy.loads >= FRAMES and len(lazy._cache) <= seg.seg.frame_cache
    # A correction on a tracked frame is kept as a conditioning frame and survives re-propagation.
    session.set_points(mid + 1, [list(blob_center(mid + 1))], [1])
    corrected = session.code(mid + 1)
    session.stroke(0, "target", "paint", 4, [[10, 10], [20, 12]])  # a frame fixed by hand
    hand = session.code(0)
    job = session.start_propagation(mid + 1, "both")
    assert session.wait(120).state == "done", job.error
    assert np.array_equal(session.code(mid + 1), corrected) and np.array_equal(session.code(0), hand)
    assert (
        session.state.statuses[mid] == CLICKED
        and session.state.statuses[mid + 1] == CLICKED
        and session.state.statuses[0] == MANUAL
    )
    assert all(session.state.statuses[i] == PROPAGATED for i in range(1, FRAMES) if i not in (mid, mid + 1))
    session.stroke(2, "ignore", "paint", 5, [[60, 30]])
    result = session.save(allow_unlabelled=False)
    assert result.written == FRAMES
    saved = [read_label_png(root / "Annotations" / "clip_s" / f"{name}.png") for name in session.frame_names]
    assert all(set(np.unique(label)) <= {0, 1, 255} for label in saved)
    shape = saved[0].shape
    assert (saved[0][distance_to_polyline(shape, [[10, 10], [20, 12]]) <= 3] == 1).all()  # the brushed target
    assert (saved[2][distance_to_polyline(shape, [[60, 30]]) <= 4] == 255).all()  # the Ignore disc
    assert np.array_equal(saved[mid + 1], L.target_of(corrected).astype(np.uint8))  # the corrected mask
    return session


def test_sam2_package_full_path(short, sam2_segmenter):
    info = sam2_segmenter.info().to_json()
    assert info["name"] == "sam2" and info["config"] == "configs/sam2.1/sam2.1_hiera_t.yaml"
    session = full_path(short, sam2_segmenter)
    seg = session._seg
    assert seg.lazy and seg.state["images"] is seg.images
    cond = seg.state["output_dict_per_obj"][0]["cond_frame_outputs"]
    assert {session.middle, session.middle + 1, 0} <= set(cond)  # clicks, correction, hand-fixed frame
    session.close()


def test_transformers_full_path(short, hf_folder):
    from refvps.annotate.segmenters.hf_sam2 import HfSam2Segmenter

    segmenter = HfSam2Segmenter.build(hf_folder, device="cpu")
    assert segmenter.info().name == "hf-sam2" and segmenter.info().checkpoint == "tiny-sam2-video"
    session = full_path(short, segmenter)
    seg = session._seg
    assert seg.session.processed_frames is seg.images
    cond = seg.session.output_dict_per_obj[0]["cond_frame_outputs"]
    assert {session.middle, session.middle + 1, 0} <= set(cond)
    session.close()


def test_headless_cli_with_a_sam2_checkpoint_file(short, sam2_segmenter, tmp_path, capsys):
    import torch

    from refvps.annotate.segmenters.tiny import TINY_SAM2_CONFIG, tiny_sam2_overrides

    checkpoint = tmp_path / "tiny_random.pt"
    torch.save({"model": sam2_segmenter.predictor.state_dict()}, checkpoint)
    clicks = tmp_path / "clicks.json"
    clicks.write_text(json.dumps([{"frame": "00003", "points": [list(blob_center(3))], "labels": [1], "obj_id": 1}]))
    overrides = [arg for o in tiny_sam2_overrides(128) for arg in ("--sam2-override", o)]
    args = [
        "annotate",
        str(short),
        "--clip",
        "clip_s",
        "--clicks",
        str(clicks),
        "--no-ui",
        "--json",
        "--segmenter",
        "sam2",
        "--checkpoint",
        str(checkpoint),
        "--sam2-config",
        TINY_SAM2_CONFIG,
        "--device",
        "cpu",
        *overrides,
    ]
    with pytest.raises(SystemExit) as done:
        main(args)
    out = capsys.readouterr()
    assert done.value.code == 0, out.err
    result = json.loads(out.out)
    assert result["segmenter"] == "sam2" and result["written"] == FRAMES
    assert len(list((short / "Annotations" / "clip_s").glob("*.png"))) == FRAMES


def test_headless_cli_with_a_hugging_face_folder(short, hf_folder, tmp_path, capsys):
    clicks = tmp_path / "clicks.json"
    clicks.write_text(json.dumps([{"frame": "00002", "points": [list(blob_center(2))], "labels": [1]}]))
    with pytest.raises(SystemExit) as done:
        main(
            [
                "annotate",
                str(short),
                "--clip",
                "clip_s",
                "--clicks",
                str(clicks),
                "--no-ui",
                "--json",
                "--checkpoint",
                str(hf_folder),
                "--device",
                "cpu",
            ]
        )  # hf-sam2 guessed from the folder
    out = capsys.readouterr()
    assert done.value.code == 0, out.err
    assert json.loads(out.out)["segmenter"] == "hf-sam2"


def test_wrong_sam2_checkpoints_are_explained(tmp_path, sam2_segmenter):
    import torch

    from refvps.annotate.segmenters.sam2_meta import Sam2Segmenter
    from refvps.annotate.segmenters.tiny import TINY_SAM2_CONFIG, tiny_sam2_overrides

    garbage = tmp_path / "sam2.1_hiera_tiny.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="cannot read"):
        Sam2Segmenter.build(garbage, device="cpu", overrides=tiny_sam2_overrides(128))
    no_model = tmp_path / "other.pt"
    torch.save({"weights": {}}, no_model)
    with pytest.raises(ConfigError, match="no 'model'"):
        Sam2Segmenter.build(no_model, config=TINY_SAM2_CONFIG, device="cpu", overrides=tiny_sam2_overrides(128))
    partial = tmp_path / "partial.pt"
    state = sam2_segmenter.predictor.state_dict()
    torch.save({"model": dict(list(state.items())[:5])}, partial)
    with pytest.raises(ConfigError, match="weights missing"):
        Sam2Segmenter.build(partial, config=TINY_SAM2_CONFIG, device="cpu", overrides=tiny_sam2_overrides(128))
    with pytest.raises(UsageError, match="cannot tell the SAM2 config"):
        Sam2Segmenter.build(partial, device="cpu")
    with pytest.raises(UsageError, match="no SAM2 config named"):
        Sam2Segmenter.build(partial, config="configs/sam3/nope.yaml", device="cpu")


def test_config_names_from_release_file_names():
    from refvps.annotate.segmenters.sam2_meta import available_configs, config_for_checkpoint

    assert config_for_checkpoint("ckpts/sam2.1_hiera_large.pt") == "configs/sam2.1/sam2.1_hiera_l.yaml"
    assert config_for_checkpoint("sam2.1_hiera_base_plus.pt") == "configs/sam2.1/sam2.1_hiera_b+.yaml"
    assert config_for_checkpoint("sam2_hiera_tiny.pt") == "configs/sam2/sam2_hiera_t.yaml"
    assert config_for_checkpoint("sam2_hiera_small.pt") == "configs/sam2/sam2_hiera_s.yaml"
    assert config_for_checkpoint("my_finetune.pt") is None
    if available_configs():
        for name in ("tiny", "small", "base_plus", "large"):
            assert config_for_checkpoint(f"sam2.1_hiera_{name}.pt") in available_configs()
