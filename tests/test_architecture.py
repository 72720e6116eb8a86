"""Guards of docs/ARCHITECTURE.md: the import contracts catch what they forbid, every package has a
layer, library functions stay short, and nothing cites a document outside the repository."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("refvps", "rem_model", "baselines")
MAX_FUNCTION_LINES = 80

# Functions allowed to be longer than MAX_FUNCTION_LINES: data tables only (a literal table written
# as one function), never logic. "path::qualified name" -> why.
LONG_FUNCTION_ALLOWED: dict[str, str] = {}


def _pyproject() -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _contracts() -> dict[str, dict]:
    return {contract["id"]: contract for contract in _pyproject()["tool"]["importlinter"]["contracts"]}


# -- import contracts ------------------------------------------------------------------------------
# Each named upward import of the architecture issue, put back on a copy of the tree: the module, the
# line added at its end, and what lint-imports must then say.
REINTRODUCED = [
    ("rem_model/inference.py", "import refvps.cli.common", "rem_model.inference -> refvps.cli.common"),
    ("rem_model/train/loop.py", "import refvps.cli.common", "rem_model.train.loop -> refvps.cli.common"),
    ("rem_model/inference.py", "import rem_model.train", "rem_model.inference -> rem_model.train"),
    ("refvps/predictions/__init__.py", "import refvps.scoring", "refvps.predictions -> refvps.scoring"),
    ("baselines/reference.py", "import refvps.synth", "baselines.reference -> refvps.synth"),
    ("baselines/reference.py", "import refvps.scoring", "baselines.reference -> refvps.scoring"),
    ("baselines/reference.py", "import refvps.leaderboard", "baselines.reference -> refvps.leaderboard"),
    # ... and the general rules: nothing below the CLI imports it, no layer imports one above it, and
    # the scorer never imports PyTorch.
    ("refvps/annotate/__init__.py", "import refvps.cli.common", "refvps.annotate -> refvps.cli.common"),
    ("refvps/synth/__init__.py", "import refvps.curation", "refvps.synth -> refvps.curation"),
    ("refvps/dataset/__init__.py", "import refvps.predictions", "refvps.dataset -> refvps.predictions"),
    ("refvps/fileio.py", "import refvps.dataset", "refvps.fileio -> refvps.dataset"),
    ("refvps/scoring/__init__.py", "import torch", "refvps.scoring -> torch"),
]


def _lint_imports(tree: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    executable = Path(sys.executable).with_name("lint-imports")
    command = [str(executable)] if executable.exists() else ["lint-imports"]
    return subprocess.run(
        [*command, "--no-cache", "--config", str(tree / "pyproject.toml")],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _copy_sources(tree: Path) -> None:
    """The three packages' Python files and pyproject.toml (enough for import-linter, and cheap)."""
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            target = tree / path.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    shutil.copyfile(ROOT / "pyproject.toml", tree / "pyproject.toml")


def test_each_forbidden_import_put_back_is_reported(tmp_path):
    _copy_sources(tmp_path)
    added_lines = {}
    for relative, statement, _ in REINTRODUCED:
        path = tmp_path / relative
        text = path.read_text(encoding="utf-8")
        text = text if text.endswith("\n") else text + "\n"
        path.write_text(f"{text}{statement}  # put back by tests/test_architecture.py\n", encoding="utf-8")
        added_lines[(relative, statement)] = text.count("\n") + 1
    done = _lint_imports(tmp_path)
    report = re.sub(r"\s+", " ", done.stdout)  # the report wraps long lines
    assert done.returncode == 1, done.stdout + done.stderr
    for relative, statement, chain in REINTRODUCED:
        line = added_lines[(relative, statement)]
        # "a -> b (l.N)" or "a -> b (l.M, l.N)": the added line must be among those reported.
        pattern = re.escape(chain) + r" \((?:l\.\d+, )*l\." + str(line) + r"[,)]"
        assert re.search(pattern, report), f"{chain} (line {line} of {relative}) is not reported:\n{done.stdout}"


def test_every_package_of_the_tree_has_a_layer():
    layers = " ".join(_contracts()["layers"]["layers"])
    named = set(re.findall(r"[a-z_]+(?:\.[a-z_]+)*", layers))
    for child in sorted((ROOT / "refvps").iterdir()):
        if child.name.startswith("_") or not (child.suffix == ".py" or (child / "__init__.py").exists()):
            continue
        module = f"refvps.{child.stem}"
        assert module in named, f"{module} has no layer in pyproject.toml [tool.importlinter]: add it"
    assert {"rem_model", "baselines"} <= named


def test_the_model_libraries_are_forbidden_where_the_issue_says():
    contract = _contracts()["no-torch"]
    assert {"refvps.scoring", "refvps.dataset", "refvps.predictions", "refvps.leaderboard"} <= set(
        contract["source_modules"]
    )
    assert {"torch", "diffusers", "transformers", "accelerate"} <= set(contract["forbidden_modules"])


# -- function length -------------------------------------------------------------------------------
def _functions(path: Path):
    """(qualified name, first line, number of lines) of every function and method in a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                yield name, child.lineno, child.end_lineno - child.lineno + 1
                yield from visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                yield from visit(child, f"{prefix}{child.name}.")

    yield from visit(tree, "")


def long_functions(root: Path = ROOT, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            for name, line, length in _functions(path):
                if length > limit and f"{relative}::{name}" not in LONG_FUNCTION_ALLOWED:
                    found.append(f"{relative}:{line} {name} ({length} lines)")
    return found


def test_no_library_function_is_longer_than_80_lines():
    found = long_functions()
    assert not found, f"functions longer than {MAX_FUNCTION_LINES} lines (split them along their steps):\n" + "\n".join(
        found
    )


def test_the_length_guard_sees_nested_functions_and_methods(tmp_path):
    def body(indent: str, lines: int) -> str:
        return "".join(f"{indent}x{k} = {k}\n" for k in range(lines))

    package = tmp_path / "refvps"
    package.mkdir()
    (tmp_path / "rem_model").mkdir()
    (tmp_path / "baselines").mkdir()
    nested = "class A:\n    def outer(self):\n        def inner():\n" + body(" " * 12, MAX_FUNCTION_LINES)
    at_limit = "def fits():\n" + body(" " * 4, MAX_FUNCTION_LINES - 1)
    (package / "m.py").write_text(nested + at_limit)
    assert long_functions(tmp_path) == [
        f"refvps/m.py:2 A.outer ({MAX_FUNCTION_LINES + 2} lines)",
        f"refvps/m.py:3 A.outer.inner ({MAX_FUNCTION_LINES + 1} lines)",
    ]


# -- documents outside the repository --------------------------------------------------------------
TEXT_SUFFIXES = {".py", ".md", ".txt", ".toml", ".yaml", ".yml", ".json", ".html", ".js", ".css", ".sh", ".cfg"}
SKIPPED_DIRS = {"node_modules", "__pycache__"}  # and hidden folders (.git, .venv ...)
OUTPUT_DIRS = {"venv", "runs", "data", "work", "build", "dist"}  # at the top: made by runs, not written by us
DESIGN_CITATION = re.compile(r"DESIGN(?:\.md|\s*§)")


def design_citations(root: Path = ROOT) -> list[str]:
    """``path:line`` of every mention of DESIGN.md or "DESIGN §" in the repository's text files."""
    found = []
    for folder, dirs, files in os.walk(root):
        top = Path(folder) == root
        dirs[:] = sorted(
            d for d in dirs if d not in SKIPPED_DIRS and not d.startswith(".") and not (top and d in OUTPUT_DIRS)
        )
        for name in sorted(files):
            path = Path(folder) / name
            if path.suffix not in TEXT_SUFFIXES or path == Path(__file__).resolve() or path.is_symlink():
                continue
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except (UnicodeDecodeError, OSError):
                continue
            found += [
                f"{path.relative_to(root)}:{k}" for k, line in enumerate(lines, 1) if DESIGN_CITATION.search(line)
            ]
    return found


def test_nothing_cites_a_design_document_outside_the_repository():
    found = design_citations()
    assert not found, "cite the project's own docs/ (ARCHITECTURE.md, FORMAT.md, METRICS.md) instead:\n" + "\n".join(
        found
    )


def test_the_citation_guard_finds_both_spellings(tmp_path):
    (tmp_path / "a.py").write_text('"""See DESIGN §3."""\n')
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "b.md").write_text("fine\nas in ../shared/DESIGN.md\n")
    (tmp_path / "c.md").write_text("a DESIGNER's note\n")
    (tmp_path / "pkg" / "data").mkdir(parents=True)  # a package's data/ is read; the top-level data/ is output
    (tmp_path / "pkg" / "data" / "d.py").write_text("# DESIGN.md\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "e.md").write_text("DESIGN.md\n")
    assert design_citations(tmp_path) == ["a.py:1", "docs/b.md:2", "pkg/data/d.py:1"]


# -- test habits -------------------------------------------------------------------------------------
OWN_MODULE_SKIP = re.compile(r"""importorskip\(\s*["'](?:refvps|rem_model|baselines)\b""")


def own_module_skips(root: Path = ROOT) -> list[str]:
    """``path:line`` of tests that skip when one of the project's own modules fails to import."""
    found = []
    for path in sorted((root / "tests").rglob("*.py")):
        if path == Path(__file__).resolve():  # its examples below
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        found += [f"{path.relative_to(root)}:{k}" for k, line in enumerate(lines, 1) if OWN_MODULE_SKIP.search(line)]
    return found


def test_tests_never_skip_on_the_projects_own_imports():
    found = own_module_skips()
    assert not found, "import the project's modules directly (an import regression must fail):\n" + "\n".join(found)


def test_the_skip_guard_tells_own_modules_from_optional_packages(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text(
        'torch = pytest.importorskip("torch")\nsynth = pytest.importorskip("refvps.synth")\n'
        "m = pytest.importorskip( 'rem_model' )\nrefvps_like = pytest.importorskip('refvpsx')\n"
    )
    assert own_module_skips(tmp_path) == ["tests/test_x.py:2", "tests/test_x.py:3"]
