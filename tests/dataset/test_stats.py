import json
import subprocess
import sys

import numpy as np
import pytest

from refvps.dataset import ClipMeta, DatasetWriter, Expression
from refvps.dataset.stats import compute_stats


def _write(root):
    """Three clips whose statistics are counted by hand below."""
    writer = DatasetWriter(root)
    specs = [
        # clip, frames, (w, h), concept, category, frames with Ignore, frames with target
        ("c1", 12, (40, 24), "fire", "entities_with_dynamic_boundaries", {0, 1, 2}, range(0, 12)),
        ("c2", 6, (32, 24), "fire", "entities_with_dynamic_boundaries", set(), range(2, 5)),
        ("c3", 30, (48, 32), "wave_breaking", "dynamic_environmental_changes", {5}, range(10, 30)),
    ]
    for clip_id, frames, (w, h), concept, category, ignore, target in specs:
        rgb = [np.full((h, w, 3), 90, np.uint8)] * frames
        labels = []
        for t in range(frames):
            label = np.zeros((h, w), np.uint8)
            if t in target:
                label[2:6, 2:6] = 1
            if t in ignore:
                label[10, 10] = 255
            labels.append(label)
        exps = [Expression(str(i), f"{concept} {i}", 1, "ab"[i // 2]) for i in range(4)]
        writer.write_clip(clip_id, rgb, labels, exps, ClipMeta(clip_id, concept, category, 24, w, h))
    return root


def test_stats_match_hand_counts(tmp_path):
    stats = compute_stats(_write(tmp_path))
    assert stats.clips == 3
    assert stats.frames == 12 + 6 + 30
    assert stats.concepts == 2
    assert stats.expressions == 12
    assert stats.avg_length_s == pytest.approx((0.5 + 0.25 + 1.25) / 3)
    assert (stats.min_length_s, stats.max_length_s) == (0.25, 1.25)
    assert stats.annotation_fps == [24]
    assert stats.min_resolution == (32, 24) and stats.max_resolution == (48, 32)
    assert stats.ignore_frame_share == pytest.approx(4 / 48)
    assert stats.target_frame_share == pytest.approx((12 + 3 + 20) / 48)
    rows = {c.category: (c.clips, c.frames, c.concepts) for c in stats.per_category}
    assert rows == {"entities_with_dynamic_boundaries": (2, 18, 1), "dynamic_environmental_changes": (1, 30, 1)}
    assert dict(stats.table_a())["Min-resolution"] == "32 × 24"


def test_stats_cli_json_and_plot(tmp_path):
    root = _write(tmp_path / "ds")
    plot = tmp_path / "lengths.png"
    result = subprocess.run(
        [sys.executable, "-m", "refvps", "stats", str(root), "--json", "--plot", str(plot)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["frames"] == 48 and data["max_resolution"] == [48, 32]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    table = subprocess.run([sys.executable, "-m", "refvps", "stats", str(root)], capture_output=True, text=True)
    assert "Avg len. (s)" in table.stdout and "0.67" in table.stdout

    missing = subprocess.run(
        [sys.executable, "-m", "refvps", "stats", str(tmp_path / "nope")], capture_output=True, text=True
    )
    assert missing.returncode == 1 and "Error:" in missing.stderr and "Traceback" not in missing.stderr
