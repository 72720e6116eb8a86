"""The catalogue: taxonomy ids exist, and the sentence templates can always tell target from distractor."""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

import pytest

from refvps.synth import KINDS, TEMPLATES, VARIANTS, used_taxonomy_ids

TAXONOMY = Path(__file__).resolve().parents[2] / "annotations" / "taxonomy.json"

# Written independently of the generator: the word stems that name each kind of process.
KIND_STEMS = {
    "smoke": ("smoke",),
    "ripples": ("rippl",),
    "melting": ("melt",),
    "shatter": ("glass", "shatter", "window", "pane"),
    "light": ("light", "lamp", "spotlight", "beam"),
    "wave": ("wave",),
    "fire": ("fire", "flame"),
}


def mentions(text: str, stem: str) -> bool:
    return re.search(rf"\b{re.escape(stem)}", text.lower()) is not None


def test_every_concept_and_category_exists_in_the_taxonomy():
    taxonomy = json.loads(TAXONOMY.read_text(encoding="utf-8"))
    categories = {c["id"]: {k["id"] for k in c["concepts"]} for c in taxonomy["categories"]}
    concepts_used, categories_used = used_taxonomy_ids()
    assert categories_used <= set(categories)
    assert concepts_used <= set().union(*categories.values())
    for variants in VARIANTS.values():
        for v in variants:
            assert v.concept in categories[v.category], f"{v.concept} is not a concept of {v.category}"


def test_the_kinds_cover_all_six_categories_of_the_paper():
    _, categories_used = used_taxonomy_ids()
    assert len(categories_used) == 6


def test_at_least_six_kinds_each_with_templates_and_variants():
    assert len(KINDS) >= 6
    for kind in KINDS:
        assert VARIANTS[kind], kind
        assert set(TEMPLATES[kind]) == {"a", "b"}
        assert all(len(TEMPLATES[kind][a]) >= 2 for a in "ab")


def test_colour_words_are_single_distinct_words_per_kind():
    for kind, variants in VARIANTS.items():
        colours = [v.colour for v in variants]
        assert len(set(colours)) == len(colours), kind
        assert all(re.fullmatch(r"[a-z]+", c) for c in colours), colours


@pytest.mark.parametrize("kind", KINDS)
def test_templates_name_their_kind_and_carry_colour_or_side(kind):
    for _annotator, templates in TEMPLATES[kind].items():
        for template in templates:
            fields = {f for _, f, _, _ in string.Formatter().parse(template) if f}
            assert fields & {"c", "s"}, f"{template!r} names neither colour nor side"
            assert any(mentions(template, stem) for stem in KIND_STEMS[kind]), template
            for other, stems in KIND_STEMS.items():
                if other != kind:
                    assert not any(mentions(template, stem) for stem in stems), (template, other)
