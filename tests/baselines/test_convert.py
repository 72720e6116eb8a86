"""Each method's output tree, made here from the ground truth with the method's own value encoding
and folder nesting, converts into predictions that ``refvps evaluate`` scores J = 100; missing or
broken masks are reported by name."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from baselines.convert import describe_missing, harvest, read_method_mask
from baselines.export import ExportNames
from baselines.external import WorkPaths
from baselines.mutr import MutrAdapter
from baselines.uninext import UninextAdapter
from baselines.vdit import VditAdapter
from refvps.dataset import ClipMeta, Dataset, DatasetWriter, Expression
from refvps.dataset.palette import DAVIS_PALETTE
from refvps.errors import PredictionError
from refvps.predictions import PredictionWriter
from refvps.scoring import evaluate

from .conftest import make_clip, own_scores


def save_like_refytvos_scripts(mask: np.ndarray, path: Path) -> None:
    """How VD-IT, MUTR and UNINEXT save a binary mask (inference_ytvos.py / uninext_vid.py):
    mask = mask.astype(np.float32); Image.fromarray(mask * 255).convert('L').save(path)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype(np.float32) * 255).convert("L").save(path)


def save_like_refdavis_scripts(mask: np.ndarray, path: Path) -> None:
    """A palette-index PNG (what Ref-DAVIS inference scripts write): index 1 for the object."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(mask.astype(np.uint8), mode="L").convert("P")
    image.putpalette(DAVIS_PALETTE.tobytes())
    image.save(path)


def write_method_tree(
    dataset_root: Path,
    annotations: Path,
    names: ExportNames,
    save=save_like_refytvos_scripts,
    skip: set[tuple[str, str, str]] = frozenset(),
) -> None:
    """``<annotations>/<video>/<exp_id>/<frame>.png`` holding the ground truth of each expression."""
    dataset = Dataset(dataset_root)
    for clip in dataset:
        for expression in clip.expressions:
            for frame in clip.frame_names:
                if (clip.id, expression.exp_id, frame) in skip:
                    continue
                mask = clip.read_label(frame) == expression.obj_id
                save(mask, annotations / names.video(clip.id) / expression.exp_id / f"{frame}.png")


ADAPTERS = {
    "vdit": VditAdapter(),
    "mutr": MutrAdapter("swin_l_p4w7"),
    "uninext": UninextAdapter("vit_huge"),
}
# Where each method writes, relative to the work folder (see each adapter's module doc).
EXPECTED_LOCATION = {
    "vdit": "raw/Annotations",  # --output_dir raw -> raw/Annotations
    "mutr": "cwd/results/swin_l_p4w7/eval/ytvos/refytvos2021_valid_swin_l_p4w7_ckpt_checkpoint/Annotations",
    "uninext": "raw/Annotations",  # OUTPUT_DIR raw -> raw/Annotations
}


@pytest.mark.parametrize("method", sorted(ADAPTERS))
def test_method_tree_converts_to_predictions_scoring_100(method, dataset_root, tmp_path):
    paths = WorkPaths(tmp_path / "work")
    annotations = ADAPTERS[method].annotations_dir(paths)
    assert annotations == paths.root / EXPECTED_LOCATION[method]
    dataset = Dataset(dataset_root)
    names = ExportNames.for_clips(dataset.clip_ids)
    write_method_tree(dataset_root, annotations, names)

    out = tmp_path / "preds"
    result = harvest(dataset, dataset.clip_ids, annotations, names, PredictionWriter(out))
    assert result.converted == dataset.clip_ids and not result.incomplete and not result.unreadable
    assert result.masks == sum(len(c.expressions) * len(c.frame_names) for c in dataset)
    scores = evaluate(out, dataset_root, bootstrap=0, strict=True)
    assert scores.summary.J == pytest.approx(100.0)
    assert scores.summary.TempCon == pytest.approx(0.0)
    own_j, own_tempcon = own_scores(
        dataset_root,
        lambda clip, expression, frame, label: (
            np.asarray(Image.open(out / clip.id / expression.exp_id / f"{frame}.png")) > 0
        ),
    )
    assert (own_j, own_tempcon) == (pytest.approx(100.0), pytest.approx(0.0))
    # The predictions are 0/255 greyscale whatever the method wrote.
    sample = out / "clip_a" / "0" / "00000.png"
    with Image.open(sample) as image:
        assert image.mode == "L" and set(np.unique(np.asarray(image))) <= {0, 255}


def test_palette_masks_convert_too(dataset_root, tmp_path):
    dataset = Dataset(dataset_root)
    names = ExportNames.for_clips(dataset.clip_ids)
    annotations = tmp_path / "Annotations"
    write_method_tree(dataset_root, annotations, names, save=save_like_refdavis_scripts)
    with Image.open(annotations / "clip_a" / "0" / "00000.png") as image:
        assert image.mode == "P"
    out = tmp_path / "preds"
    harvest(dataset, dataset.clip_ids, annotations, names, PredictionWriter(out))
    assert evaluate(out, dataset_root, bootstrap=0, strict=True).summary.J == pytest.approx(100.0)


def test_a_missing_frame_is_reported_and_its_clip_not_converted(dataset_root, tmp_path):
    dataset = Dataset(dataset_root)
    names = ExportNames.for_clips(dataset.clip_ids)
    annotations = tmp_path / "Annotations"
    write_method_tree(dataset_root, annotations, names, skip={("clip_b", "1", "00002")})
    out = tmp_path / "preds"
    writer = PredictionWriter(out)
    result = harvest(dataset, dataset.clip_ids, annotations, names, writer)
    assert result.converted == ["clip_a", "clip_c"]
    assert [c.clip_id for c in result.incomplete] == ["clip_b"]
    assert result.incomplete[0].missing == [("1", "00002")]
    message = describe_missing(result.incomplete)
    assert message.startswith("1 of 15 masks missing in 1 clip(s)")
    assert "clip_b: expression 1 frames 00002" in message
    assert writer.done_clips() == {"clip_a", "clip_c"}
    assert not (out / "clip_b").exists()


def test_missing_summary_counts_and_lists_at_most_a_few(tmp_path):
    from baselines.convert import ClipCheck

    checks = [ClipCheck(f"c{i}", 10, [("0", f"{f:05d}") for f in range(6)]) for i in range(10)]
    checks.append(ClipCheck("gone", 4, [("0", "00000"), ("0", "00001"), ("1", "00000"), ("1", "00001")]))
    text = describe_missing(checks, limit=3)
    assert text.startswith("64 of 104 masks missing in 11 clip(s)")
    assert "c0: expression 0 frames 00000, 00001, 00002, 00003 (+2 more)" in text
    assert "and 8 more clips" in text
    assert describe_missing([checks[-1]]).endswith("gone: nothing written")


def test_truncated_or_wrong_masks_are_not_converted(dataset_root, tmp_path):
    dataset = Dataset(dataset_root)
    names = ExportNames.for_clips(dataset.clip_ids)
    annotations = tmp_path / "Annotations"
    write_method_tree(dataset_root, annotations, names)
    truncated = annotations / "clip_a" / "1" / "00003.png"
    truncated.write_bytes(truncated.read_bytes()[:40])  # a crash mid-write
    wrong_size = annotations / "clip_c" / "0" / "00001.png"
    Image.new("L", (10, 10)).save(wrong_size)
    result = harvest(dataset, dataset.clip_ids, annotations, names, PredictionWriter(tmp_path / "preds"))
    assert result.converted == ["clip_b"]
    assert "cannot be decoded" in result.unreadable["clip_a"] and "00003.png" in result.unreadable["clip_a"]
    assert "10x10" in result.unreadable["clip_c"]
    assert not (tmp_path / "preds" / "clip_a").exists()  # nothing half-written


def test_colour_masks_are_refused(tmp_path):
    path = tmp_path / "m.png"
    Image.new("RGB", (4, 3), (255, 0, 0)).save(path)
    with pytest.raises(PredictionError, match="RGB image"):
        read_method_mask(path, (4, 3))


def test_values_other_than_255_still_count_as_foreground(tmp_path):
    path = tmp_path / "m.png"
    Image.fromarray(np.array([[0, 1], [128, 255]], np.uint8)).save(path)
    assert read_method_mask(path, (2, 2)).tolist() == [[False, True], [True, True]]


def test_generated_names_are_mapped_back(tmp_path):
    # Clip ids the format forbids cannot reach a method, but the name map must still round-trip.
    root = tmp_path / "odd"
    writer = DatasetWriter(root)
    rgbs, labels = make_clip(3, 3)
    writer.write_clip(
        "smoke over/the hill", rgbs, labels, [Expression("0", "smoke", 1)], ClipMeta("smoke over/the hill")
    )
    dataset = Dataset(root)
    names = ExportNames.for_clips(dataset.clip_ids)
    video = names.video("smoke over/the hill")
    assert os.sep not in video and " " not in video
    annotations = tmp_path / "Annotations"
    write_method_tree(root, annotations, names)
    assert sorted(os.listdir(annotations)) == [video]
    out = tmp_path / "preds"
    result = harvest(dataset, dataset.clip_ids, annotations, names, PredictionWriter(out))
    assert result.converted == ["smoke over/the hill"]
    got = np.asarray(Image.open(out / "smoke over/the hill" / "0" / "00000.png")) > 0
    assert np.array_equal(got, labels[0] == 1)
