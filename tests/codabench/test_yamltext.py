"""The YAML writer: every document reads back, with PyYAML as Codabench reads it, to what was written."""

from __future__ import annotations

import pytest
import yaml

from refvps.codabench.yamltext import dump_yaml

TRICKY = [
    "",
    "no",
    "yes",
    "null",
    "1e3",
    "0x10",
    "2026-01-01 00:00:00",
    "a: b",
    "- item",
    "# not a comment",
    'quote " and \\ backslash',
    "line\nbreak\tand tab\r",
    "control \x07 \x1b \x7f \x85",
    "unicode: Ref-VPS — é ✓ 😀",
    "line separator \u2028 and bom \ufeff",
    "  leading and trailing spaces  ",
    "{flow: [style]}",
    "&anchor *alias !tag %directive @ `",
]


@pytest.mark.parametrize("text", TRICKY)
def test_strings_round_trip(text):
    document = {"title": text, "list": [text], text or "empty": 1}
    assert yaml.safe_load(dump_yaml(document)) == document


def test_nested_document_round_trips():
    document = {
        "version": 2,
        "flag": False,
        "none": None,
        "ratio": 0.25,
        "empty_list": [],
        "empty_map": {},
        "phases": [{"index": 0, "tasks": [0, 1], "nested": {"a": [{"b": "c"}]}}, {"index": 1}],
        "matrix": [[1, 2], [3]],
        "yes": "key that YAML 1.1 would read as a boolean",
    }
    assert yaml.safe_load(dump_yaml(document)) == document


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), object(), "\ud800"])
def test_values_that_cannot_be_written(bad):
    with pytest.raises((ValueError, TypeError)):
        dump_yaml({"x": bad})
