"""The prediction readers: one source class and one picklable per-clip reader per format."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from refvps.dataset import frame_name
from refvps.predictions import FORMAT_PNG_TREE, FORMAT_RLE, FORMAT_ZIP, PngTreeSource, RleSource, ZipSource
from refvps.predictions.readers import close_archives, open_predictions

from .conftest import CLIPS, EXPRESSIONS, H, W


@pytest.mark.parametrize(
    ("key", "source_type", "format_name"),
    [("tree", PngTreeSource, FORMAT_PNG_TREE), ("zip", ZipSource, FORMAT_ZIP), ("rle", RleSource, FORMAT_RLE)],
)
def test_each_format_has_its_reader_and_reads_the_written_masks(scored_case, key, source_type, format_name):
    source = open_predictions(scored_case[key])
    assert type(source) is source_type and source.format == format_name
    assert source.clip_ids == sorted(CLIPS)
    assert source.n_items() == len(EXPRESSIONS) * sum(frames for frames, _, _ in CLIPS.values())
    for clip_id in CLIPS:
        # What a worker process receives: the clip's reader, pickled.
        reader = pickle.loads(pickle.dumps(source.clip(clip_id)))
        for exp_id in EXPRESSIONS:
            for t, expected in enumerate(scored_case["predictions"][(clip_id, exp_id)]):
                assert reader.has(exp_id, frame_name(t))
                mask = reader.read_raw(exp_id, frame_name(t), (H, W)) != 0
                np.testing.assert_array_equal(mask, expected, err_msg=reader.describe(exp_id, frame_name(t)))
        assert not reader.has("0", frame_name(99))
    close_archives()


def test_a_clip_without_predictions_gets_an_empty_reader(scored_case):
    for key in ("tree", "zip", "rle"):
        reader = open_predictions(scored_case[key]).clip("not_a_clip")
        assert reader.locators == {} and not reader.has("0", "00000")


def test_descriptions_name_the_file_member_or_entry(scored_case):
    tree = open_predictions(scored_case["tree"]).clip("clip_a")
    assert tree.describe("0", "00001") == str(scored_case["tree"] / "clip_a" / "0" / "00001.png")
    member = open_predictions(scored_case["zip"]).clip("clip_a").describe("0", "00001")
    assert member == f"{scored_case['zip']}:submission/Annotations/clip_a/0/00001.png"
    entry = open_predictions(scored_case["rle"]).clip("clip_a").describe("0", "00001")
    assert entry.startswith(f"{scored_case['rle']}: entry 1 ") and "'clip_a'" in entry
