"""Planning: expressions, distractors, timing, kind coverage, and independence from the clip count."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from refvps.synth import KINDS, VARIANTS, plan_benchmark, plan_clip, render_clip

from .test_catalogue import KIND_STEMS, mentions

SEEDS = range(6)
N = 21  # three full cycles of kinds per seed


def all_specs():
    for seed in SEEDS:
        yield from plan_benchmark(N, seed, (128, 72), 16)


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def test_four_expressions_two_per_annotator():
    for spec in all_specs():
        expressions = spec.expressions
        assert [e.exp_id for e in expressions] == ["0", "1", "2", "3"]
        assert Counter(e.annotator for e in expressions) == {"a": 2, "b": 2}
        assert all(e.obj_id == 1 for e in expressions)
        assert len({e.text.lower() for e in expressions}) == 4


def test_text_names_the_target_and_never_the_distractor():
    same_kind = 0
    for spec in all_specs():
        target, distractor = spec.target, spec.distractor
        assert target.colour != distractor.colour
        assert target.side != distractor.side
        same_kind += target.kind == distractor.kind
        all_colours = {v.colour for vs in VARIANTS.values() for v in vs}
        for expression in spec.expressions:
            text = expression.text
            found = words(text)
            # Names the target's kind...
            assert any(mentions(text, stem) for stem in KIND_STEMS[target.kind]), text
            # ...and an attribute that separates it from the distractor when the kinds are the same.
            assert target.colour in found or target.side in found, text
            # Never the distractor's colour or side, nor any colour but the target's.
            assert distractor.colour not in found and distractor.side not in found, text
            assert (found & all_colours) <= {target.colour}, text
            if distractor.kind != target.kind:
                assert not any(mentions(text, stem) for stem in KIND_STEMS[distractor.kind]), text
    assert same_kind > 0, "some clips pair the target with a distractor of the same kind"


def test_every_kind_in_every_block_of_clips():
    for seed in SEEDS:
        specs = plan_benchmark(len(KINDS), seed, (128, 72), 16)
        assert sorted(spec.kind for spec in specs) == sorted(KINDS)


def test_clip_plans_do_not_depend_on_the_number_of_clips():
    assert plan_benchmark(9, 4, (128, 72), 16)[:5] == plan_benchmark(5, 4, (128, 72), 16)


def test_concept_and_category_come_from_the_target_variant():
    for spec in all_specs():
        variant = next(v for v in VARIANTS[spec.kind] if v.colour == spec.target.colour)
        assert (spec.concept, spec.category) == (variant.concept, variant.category)
        meta = spec.meta().to_json()
        assert meta["fps"] == 24 and (meta["width"], meta["height"]) == (128, 72)
        assert meta["source"]["platform"] == "synthetic"
        assert "synthetic" in meta["notes"].lower() and "not a ref-vps" in meta["notes"].lower()


def test_varied_lengths_within_the_range():
    lengths = [spec.frames for spec in plan_benchmark(30, 0, (64, 36), (60, 400))]
    assert min(lengths) >= 60 and max(lengths) <= 400
    assert len(set(lengths)) > 10


def test_some_clips_start_or_end_mid_clip_and_every_clip_has_its_target():
    specs = plan_benchmark(9, 0, (96, 54), 12)
    timings = Counter(spec.timing for spec in specs)
    assert timings["late"] + timings["early"] >= 3  # every third clip at least, when its kind allows
    empty_frames = 0
    for spec in specs:
        labels = render_clip(spec).labels
        present = (labels == 1).any(axis=(1, 2))
        assert present.any(), f"{spec.clip_id}: target never visible"
        empty_frames += int((~present).sum())
        if spec.timing == "late":
            assert not present[: spec.target.start].any()
            assert present[spec.target.start :].any()
        if spec.timing == "early":
            assert not present[spec.target.end :].any()
    assert empty_frames > 0


def test_plan_clip_is_a_pure_function_of_its_arguments():
    a = plan_clip(7, 3, size=(128, 72), frames=16)
    b = plan_clip(7, 3, size=(128, 72), frames=16)
    assert a == b
    assert plan_clip(8, 3, size=(128, 72), frames=16) != a
    np.testing.assert_array_equal(render_clip(a).frames[::5], render_clip(b).frames[::5])


def test_extreme_sizes_and_short_clips_still_show_every_target():
    # Every clip must show its target at least once (a validation rule), whatever the size and length.
    for size in ((32, 32), (400, 40), (40, 160)):
        for spec in plan_benchmark(14, 2, size, 8):
            labels = render_clip(spec).labels
            assert (labels == 1).any(), f"{spec.clip_id} at {size}: target never visible"
