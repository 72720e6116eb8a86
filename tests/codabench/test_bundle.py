"""The bundle's contents: competition.yaml, pages, reference and public data, the starting kit; and
the refusal to build a bundle from which participants could download a test mask."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from baselines.reference import run_reference
from refvps.codabench import BundleLeakError, BundleOptions, build_bundle
from refvps.codabench.competition import participant_visible
from refvps.codabench.leak import check_no_test_masks, fingerprint_split
from refvps.codabench.plan import BundlePlan
from refvps.codabench.splits import Split
from refvps.dataset import Dataset
from refvps.errors import DatasetInvalidError

from .conftest import field_layout, settings


def names(bundle: Path) -> list[str]:
    with zipfile.ZipFile(bundle) as archive:
        return archive.namelist()


def read(bundle: Path, name: str) -> bytes:
    with zipfile.ZipFile(bundle) as archive:
        return archive.read(name)


def folders(bundle: Path, prefix: str) -> set[str]:
    """The folders directly under ``prefix`` in the bundle."""
    return {n.split("/")[1] for n in names(bundle) if n.startswith(prefix + "/") and n.count("/") >= 2}


def test_competition_yaml(bundle):
    document = yaml.safe_load(read(bundle, "competition.yaml"))
    assert document["version"] == 2 and document["title"] == "Synthetic Ref-VPS"
    dev, test = document["phases"]
    assert (dev["max_submissions_per_day"], dev["max_submissions"]) == (0, 0)  # unlimited
    assert (test["max_submissions_per_day"], test["max_submissions"]) == (3, 15)
    assert dev["start"] == "2030-01-01 00:00:00" and dev["end"] < test["start"] == "2030-03-01 00:00:00"
    assert test["end"] == "2030-06-01 00:00:00"
    tasks = {t["index"]: t for t in document["tasks"]}
    assert tasks[dev["tasks"][0]]["reference_data"] == "reference_data_dev"
    assert tasks[test["tasks"][0]]["reference_data"] == "reference_data_test"
    assert {t["scoring_program"] for t in tasks.values()} == {"scoring_program"}
    (board,) = document["leaderboards"]
    sorting = {c["key"]: c["sorting"] for c in board["columns"]}
    assert sorting == {
        "J": "desc",
        "F": "desc",
        "JF": "desc",
        "TempCon": "asc",
        "J_recall": "desc",
        "J_concept_balanced": "desc",
    }
    assert board["columns"][board["primary_index"]]["key"] == "J"
    assert not document["make_programs_available"] and document["enable_detailed_results"]
    bundled = set(names(bundle))
    for page in document["pages"]:
        assert read(bundle, page["file"]).strip(), page
    assert document["terms"] in bundled and document["image"] in bundled


def test_pages_state_the_scorer_constants_and_the_splits(bundle):
    evaluation = read(bundle, "pages/evaluation.md").decode()
    assert "0.008" in evaluation and "exceeds 0.5" in evaluation and "Lower is better" in evaluation
    data = read(bundle, "pages/data.md").decode()
    assert "| dev | Development | 3 |" in data and "| test | Test | 3 |" in data
    overview = read(bundle, "pages/overview.md").decode()
    assert "TempCon (lower is better) | lower" in overview and "3 per day, 15 in all" in overview


def test_reference_data_is_the_split_ground_truth_without_frames(bundle, split_root):
    for phase in ("dev", "test"):
        dataset = Dataset(split_root / phase)
        prefix = f"reference_data_{phase}"
        entries = [n for n in names(bundle) if n.startswith(prefix + "/")]
        assert not [n for n in entries if "JPEGImages" in n or n.endswith(".jpg")]
        assert folders(bundle, prefix) == {"Annotations"}
        assert {n.split("/")[2] for n in entries if n.count("/") == 3} == set(dataset.clip_ids)
        for clip in dataset:
            for frame in clip.frame_names:
                assert read(bundle, f"{prefix}/Annotations/{clip.id}/{frame}.png") == clip.mask_path(frame).read_bytes()
        videos = json.loads(read(bundle, f"{prefix}/meta_expressions.json"))["videos"]
        assert videos == dataset.raw_expressions


def test_public_data_hides_test_masks_only(bundle, split_root):
    test_entries = [n for n in names(bundle) if n.startswith("public_data_test/")]
    assert not [n for n in test_entries if "Annotations" in n]
    frames = {n for n in test_entries if n.endswith(".jpg")}
    assert len(frames) == sum(len(c) for c in Dataset(split_root / "test"))
    assert any(n.startswith("public_data_dev/Annotations/") for n in names(bundle))


def test_sample_submission_predicts_every_dev_mask(bundle, split_root):
    with zipfile.ZipFile(__import__("io").BytesIO(read(bundle, "starting_kit/sample_submission.zip"))) as kit:
        members = set(kit.namelist())
    expected = {
        f"{clip.id}/{e.exp_id}/{frame}.png"
        for clip in Dataset(split_root / "dev")
        for e in clip.expressions
        for frame in clip.frame_names
    }
    assert members == expected


def test_scoring_program(bundle):
    metadata = yaml.safe_load(read(bundle, "scoring_program/metadata.yaml"))
    assert metadata["command"].split()[:4] == ["python3", "-m", "refvps", "codabench-score"]
    config = json.loads(read(bundle, "scoring_program/config.json"))
    assert config["refvps_version"] == __import__("refvps").__version__
    assert config["limits"]["max_file_bytes"] == 8 * 96 * 64 + (1 << 20)


def test_same_input_same_bytes(split_root, tmp_path):
    options = BundleOptions(sample=False)
    first = build_bundle(split_root, tmp_path / "a.zip", settings(), options).out
    second = build_bundle(split_root, tmp_path / "b.zip", settings(), options).out
    assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()
    assert not list(tmp_path.glob(".*"))  # no temporary file or folder left behind


def test_field_layout_and_left_out_clips(split_root, tmp_path):
    root = field_layout(split_root, tmp_path / "data")
    clips = json.loads((root / "clips.json").read_text())
    moved = sorted(c for c, e in clips["clips"].items() if e["split"] == "dev")[0]
    clips["clips"][moved]["split"] = "train"
    (root / "clips.json").write_text(json.dumps(clips))
    report = build_bundle(root, tmp_path / "b.zip", settings(), BundleOptions(sample=False, public_frames=False))
    assert report.layout == "field" and report.splits == {"dev": 2, "test": 3} and report.left_out == {"train": 1}
    bundle = report.out
    assert moved not in {n.split("/")[2] for n in names(bundle) if n.count("/") >= 3}
    assert not [n for n in names(bundle) if n.endswith(".jpg")]  # --no-frames
    assert "source URL" in read(bundle, "pages/data.md").decode()
    dev_clips = json.loads(read(bundle, "reference_data_dev/clips.json"))["clips"]
    assert moved not in dev_clips and all(e["split"] == "dev" for e in dev_clips.values())


def test_card_and_own_pages(split_root, tmp_path):
    card = tmp_path / "CARD.md"
    card.write_text("---\nlicense: other\n---\n# My card\nProvenance of every clip.\n")
    terms = tmp_path / "terms.md"
    terms.write_text("# Our terms\n")
    options = BundleOptions(sample=False, card=card, pages={"terms": terms})
    bundle = build_bundle(split_root, tmp_path / "b.zip", settings(), options).out
    data = read(bundle, "pages/data.md").decode()
    assert "Provenance of every clip." in data and "license: other" not in data
    assert read(bundle, "pages/terms.md") == b"# Our terms\n"


def test_invalid_split_is_refused(split_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(split_root, root)
    next((root / "test" / "Annotations").glob("*/00003.png")).unlink()
    with pytest.raises(DatasetInvalidError, match="00003"):
        build_bundle(root, tmp_path / "b.zip", settings(), BundleOptions(sample=False))
    assert not (tmp_path / "b.zip").exists()


# --------------------------------------------------------------------------------------------
# Test masks never downloadable
# --------------------------------------------------------------------------------------------


def test_a_test_clip_copied_into_the_dev_split_is_refused(split_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(split_root, root)
    test_clip = Dataset(root / "test").clip_ids[0]
    copy = "renamed-copy"
    for folder in ("JPEGImages", "Annotations"):
        shutil.copytree(root / "test" / folder / test_clip, root / "dev" / folder / copy)
    for name, key in (("meta_expressions.json", "videos"), ("clips.json", "clips")):
        dev, test = (json.loads((root / s / name).read_text()) for s in ("dev", "test"))
        dev[key][copy] = test[key][test_clip]
        (root / "dev" / name).write_text(json.dumps(dev))
    with pytest.raises(BundleLeakError, match=f"public_data_dev/Annotations/{copy}/"):
        build_bundle(root, tmp_path / "b.zip", settings(), BundleOptions(sample=False))
    assert not (tmp_path / "b.zip").exists()


def test_a_test_mask_in_the_starting_kit_is_refused(split_root, tmp_path):
    clip = Dataset(split_root / "test").clip(Dataset(split_root / "test").clip_ids[0])
    telling = next(f for f in clip.frame_names if 0 < (clip.read_label(f) == 1).mean() < 1)
    shutil.copy(clip.mask_path(telling), tmp_path / "example.png")
    options = BundleOptions(sample=False, kit_files=(tmp_path / "example.png",))
    with pytest.raises(BundleLeakError, match="starting_kit/example.png .it is a copy of a test mask"):
        build_bundle(split_root, tmp_path / "b.zip", settings(), options)


def test_an_oracle_of_the_test_split_in_the_starting_kit_is_refused(split_root, tmp_path):
    # Masks re-encoded as 0/255 PNGs and zipped: no byte in common with the ground truth, same pixels.
    run_reference("oracle", split_root / "test", tmp_path / "oracle")
    kit = tmp_path / "kit" / "baseline_predictions.zip"
    kit.parent.mkdir()
    with zipfile.ZipFile(kit, "w") as archive:
        for path in sorted((tmp_path / "oracle").rglob("*.png")):
            archive.write(path, "x/" + path.relative_to(tmp_path / "oracle").as_posix())
    options = BundleOptions(sample=False, kit_files=(kit,))
    with pytest.raises(BundleLeakError, match="baseline_predictions.zip:x/.*its pixels are those of a test mask"):
        build_bundle(split_root, tmp_path / "b.zip", settings(), options)


def _document(programs_available: bool) -> dict:
    return {
        "image": "logo.png",
        "terms": "pages/terms.md",
        "pages": [],
        "phases": [{"public_data": "public_data_test", "starting_kit": "starting_kit"}],
        "tasks": [{"scoring_program": "scoring_program", "reference_data": "reference_data_test"}],
        "make_programs_available": programs_available,
    }


def test_programs_are_checked_when_participants_can_download_them(split_root):
    test = Split("test", split_root / "test", tuple(Dataset(split_root / "test").clip_ids))
    prints = fingerprint_split(test)
    clip = test.dataset().clip(test.clip_ids[0])
    plan = BundlePlan()
    plan.add_file("scoring_program/secret.png", clip.mask_path(clip.frame_names[4]))
    plan.add_file("reference_data_test/Annotations/x.png", clip.mask_path(clip.frame_names[4]))  # organisers only
    assert check_no_test_masks(plan, participant_visible(_document(False)), prints) == 0
    with pytest.raises(BundleLeakError, match="scoring_program/secret.png"):
        check_no_test_masks(plan, participant_visible(_document(True)), prints)


def test_a_test_clip_mask_folder_is_refused_by_its_path(split_root):
    test = Split("test", split_root / "test", tuple(Dataset(split_root / "test").clip_ids))
    plan = BundlePlan()
    plan.add_bytes(f"public_data_test/Annotations/{test.clip_ids[1]}/00000.png", b"anything")
    with pytest.raises(BundleLeakError, match="the masks of a test clip"):
        check_no_test_masks(plan, ["public_data_test"], fingerprint_split(test))


def test_settings_are_checked():
    from refvps.errors import UsageError

    with pytest.raises(UsageError, match="test phase must start after"):
        settings(test_start=datetime(2029, 1, 1))
    with pytest.raises(UsageError, match="submission-rule"):
        settings(submission_rule="Best")
