"""The ``>>>`` examples in the docstrings of refvps, rem_model and baselines run as doctests.

Every module whose source holds an example is imported and its examples run, each in a fresh
scratch folder in which ``data/synthetic`` is a small synthetic benchmark, so an example may open
that path and write relative paths without touching the checkout. An example that cannot run here
(a GPU, a download, a file the reader must bring) is marked ``# doctest: +SKIP`` in its docstring.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

from refvps.synth import generate_benchmark

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("refvps", "rem_model", "baselines")


def _modules_with_examples() -> list[str]:
    names = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if ">>>" in path.read_text(encoding="utf-8"):
                parts = path.relative_to(ROOT).with_suffix("").parts
                names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = _modules_with_examples()


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    return generate_benchmark(tmp_path_factory.mktemp("doctest-data") / "synthetic", clips=2, size=(64, 48), frames=8)


def test_the_examples_are_found():
    assert {"refvps.progress", "refvps.dataset.format", "rem_model.inference"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, synthetic, tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "synthetic").symlink_to(synthetic, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, name)
    tests = [test for test in tests if test.examples and _defined_here(test, module)]
    assert tests, f"{name} mentions '>>>' but no example was found in its docstrings"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    for test in tests:
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


def _defined_here(test: doctest.DocTest, module) -> bool:
    """Examples of this module's own docstrings (not of what it imports from elsewhere)."""
    return test.filename is None or Path(test.filename).resolve() == Path(module.__file__).resolve()
