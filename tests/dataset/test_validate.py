"""One broken dataset per validation rule: each must be reported with its rule, file and severity."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from refvps.dataset import write_label_png
from refvps.dataset.validate import RULES, require_valid, validate_dataset
from refvps.errors import DatasetInvalidError

from .conftest import H, W, write_small_dataset


def _edit_json(path: Path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _exps(root):
    return root / "meta_expressions.json"


def _clips(root):
    return root / "clips.json"


def _frame(root, name="00002", clip="clip_a"):
    return root / "JPEGImages" / clip / f"{name}.jpg"


def _mask(root, name="00002", clip="clip_a"):
    return root / "Annotations" / clip / f"{name}.png"


def _set_all_masks(root, clip, value_from, value_to):
    for path in (root / "Annotations" / clip).glob("*.png"):
        label = np.array(Image.open(path))
        label[label == value_from] = value_to
        write_label_png(path, label)


# rule -> (how to break the dataset, the file the problem must name, severity, needs --refvps rules)
BREAKERS = {
    "json_parse": (lambda r: _exps(r).write_text('{"videos": {"clip_a": }'), _exps, "error", False),
    "json_schema": (
        lambda r: _edit_json(_exps(r), lambda d: d["videos"]["clip_a"].pop("frames")),
        _exps,
        "error",
        False,
    ),
    "clip_folder": (
        lambda r: (
            [p.unlink() for p in (r / "JPEGImages" / "clip_b").iterdir()] and (r / "JPEGImages" / "clip_b").rmdir()
        ),
        lambda r: r / "JPEGImages" / "clip_b",
        "error",
        False,
    ),
    "missing_frame": (lambda r: _frame(r).unlink(), _frame, "error", False),
    "extra_frame": (
        lambda r: _frame(r, "00099").write_bytes(_frame(r).read_bytes()),
        lambda r: _frame(r, "00099"),
        "error",
        False,
    ),
    "duplicate_frame": (
        lambda r: _edit_json(_exps(r), lambda d: d["videos"]["clip_a"]["frames"].append("00001")),
        _exps,
        "error",
        False,
    ),
    "frame_unreadable": (lambda r: _frame(r).write_bytes(_frame(r).read_bytes()[:200]), _frame, "error", False),
    "frame_size": (lambda r: Image.new("RGB", (W + 8, H)).save(_frame(r)), _frame, "error", False),
    "missing_mask": (lambda r: _mask(r).unlink(), _mask, "error", False),
    "extra_mask": (
        lambda r: write_label_png(_mask(r, "00077"), np.zeros((H, W), np.uint8)),
        lambda r: _mask(r, "00077"),
        "error",
        False,
    ),
    "mask_unreadable": (lambda r: _mask(r).write_bytes(b"\x89PNG\r\n\x1a\n garbage"), _mask, "error", False),
    "mask_not_palette": (lambda r: Image.fromarray(np.zeros((H, W), np.uint8)).save(_mask(r)), _mask, "error", False),
    "mask_size": (lambda r: write_label_png(_mask(r), np.zeros((H + 2, W), np.uint8)), _mask, "error", False),
    "mask_values": (lambda r: write_label_png(_mask(r), np.full((H, W), 7, np.uint8)), _mask, "error", False),
    "no_expression": (
        lambda r: _edit_json(_exps(r), lambda d: d["videos"]["clip_a"].update(expressions={})),
        _exps,
        "error",
        False,
    ),
    "obj_id_absent": (
        lambda r: _edit_json(_exps(r), lambda d: d["videos"]["clip_a"]["expressions"]["3"].update(obj_id="2")),
        _exps,
        "error",
        False,
    ),
    "empty_target": (
        lambda r: _set_all_masks(r, "clip_a", 1, 0),
        lambda r: r / "Annotations" / "clip_a",
        "error",
        False,
    ),
    "expression_empty": (
        lambda r: _edit_json(_exps(r), lambda d: d["videos"]["clip_a"]["expressions"]["1"].update(exp="  ")),
        _exps,
        "error",
        False,
    ),
    "expression_duplicate": (
        lambda r: _edit_json(
            _exps(r), lambda d: d["videos"]["clip_a"]["expressions"]["1"].update(exp="The red smoke on the LEFT.")
        ),
        _exps,
        "error",
        True,
    ),
    "expression_count": (
        lambda r: _edit_json(_exps(r), lambda d: d["videos"]["clip_a"]["expressions"].pop("3")),
        _exps,
        "error",
        True,
    ),
    "annotator_count": (
        lambda r: _edit_json(_exps(r), lambda d: d["videos"]["clip_a"]["expressions"]["2"].update(annotator="a")),
        _exps,
        "error",
        True,
    ),
    "fps": (lambda r: _edit_json(_clips(r), lambda d: d["clips"]["clip_a"].update(fps=30)), _clips, "error", True),
    "clip_meta": (lambda r: _edit_json(_clips(r), lambda d: d["clips"].pop("clip_a")), _clips, "error", True),
    "orphan": (lambda r: (r / "JPEGImages" / "stray").mkdir(), lambda r: r / "JPEGImages" / "stray", "warning", False),
    "taxonomy": (
        lambda r: _edit_json(_clips(r), lambda d: d["clips"]["clip_a"].update(concept="made_up_concept")),
        _clips,
        "warning",
        False,
    ),
    # A save interrupted after its commit point (refvps.dataset.transaction), a temporary file left by a write.
    "interrupted_save": (
        lambda r: (
            (r / "Annotations" / ".refvps-save.clip_a").mkdir()
            or (r / "Annotations" / ".refvps-save.clip_a" / "journal.json").write_text(
                '{"version": 1, "expressions": []}'
            )
        ),
        lambda r: r / "Annotations" / ".refvps-save.clip_a",
        "error",
        False,
    ),
    "stray_temp_file": (
        lambda r: _mask(r).with_name(".00002.png.k3j2x.tmp").write_bytes(b"half"),
        lambda r: _mask(r).with_name(".00002.png.k3j2x.tmp"),
        "warning",
        False,
    ),
}


def test_every_rule_has_a_breaking_case():
    assert set(BREAKERS) == set(RULES)


def test_clean_dataset_is_valid(small_dataset):
    report = validate_dataset(small_dataset, refvps_rules=True)
    assert report.ok and report.problems == []
    assert (report.n_clips, report.n_frames, report.n_masks) == (2, 12, 12)


@pytest.mark.parametrize("rule", sorted(BREAKERS))
def test_each_rule_is_reported_with_its_file(tmp_path, rule):
    root = write_small_dataset(tmp_path / "ds")
    breaker, expected_path, severity, needs_refvps = BREAKERS[rule]
    breaker(root)
    report = validate_dataset(root, refvps_rules=True)
    hits = [p for p in report.problems if p.rule == rule]
    assert hits, f"rule {rule} not reported; got {[(p.rule, p.message) for p in report.problems]}"
    assert any(Path(p.path) == expected_path(root) for p in hits), [p.path for p in hits]
    assert all(p.severity == severity and p.hint for p in hits)
    assert report.ok == (severity == "warning")
    if needs_refvps:
        # The Ref-VPS-only rules are silent (or mere warnings) without --refvps.
        relaxed = validate_dataset(root, refvps_rules=False)
        assert not [p for p in relaxed.problems if p.rule == rule and p.severity == "error"]


def test_masks_without_expressions_are_one_problem_per_clip(tmp_path):
    """A clip saved with masks but no expression yet: one message for the clip that says so, not one
    'outside {0, , 255}' error per frame."""
    root = write_small_dataset(tmp_path / "ds")
    _edit_json(_exps(root), lambda d: d["videos"]["clip_a"].update(expressions={}))
    problems = validate_dataset(root).for_clip("clip_a")
    assert [p.rule for p in problems] == ["no_expression"], [(p.rule, p.message) for p in problems]
    message = problems[0].message
    assert "no expression refers" in message and "label 1 in 6 frames" in message, message
    assert "outside" not in message
    assert validate_dataset(root).for_clip("clip_b") == []


def test_require_valid_raises_with_every_error(tmp_path):
    root = write_small_dataset(tmp_path / "ds")
    _frame(root).unlink()
    _mask(root, "00001").unlink()
    with pytest.raises(DatasetInvalidError) as info:
        require_valid(root)
    assert {p.rule for p in info.value.problems} == {"missing_frame", "missing_mask"}
    assert "refvps validate" in info.value.hint


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "refvps", *map(str, args)], capture_output=True, text=True)


def test_cli_exit_codes_and_messages(tmp_path):
    root = write_small_dataset(tmp_path / "ds")
    ok = _cli("validate", root, "--refvps")
    assert ok.returncode == 0 and "valid" in ok.stdout

    _mask(root).write_bytes(b"not a png at all")
    bad = _cli("validate", root)
    assert bad.returncode == 1
    assert str(_mask(root)) in bad.stdout and "Traceback" not in bad.stdout + bad.stderr

    as_json = _cli("validate", root, "--json")
    data = json.loads(as_json.stdout)
    assert as_json.returncode == 1 and data["valid"] is False
    assert [p["rule"] for p in data["problems"]] == ["mask_unreadable"]

    usage = _cli("validate", tmp_path / "missing")
    assert usage.returncode == 2 and "Traceback" not in usage.stderr

    _exps(root).write_text("{broken")
    broken = _cli("validate", root)
    assert broken.returncode == 1 and "meta_expressions.json" in broken.stdout


def test_require_valid_can_accept_clips_without_masks(tmp_path):
    import shutil

    root = write_small_dataset(tmp_path / "ds")
    shutil.rmtree(root / "Annotations" / "clip_b")
    with pytest.raises(DatasetInvalidError):
        require_valid(root)
    report = require_valid(root, require_masks=False)
    assert [p.rule for p in report.errors] == ["missing_mask"]  # reported, but not fatal
    _frame(root, clip="clip_b").unlink()
    with pytest.raises(DatasetInvalidError, match="missing"):
        require_valid(root, require_masks=False)  # everything else still counts
