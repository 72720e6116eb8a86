"""Optional: the bundle checked by Codabench's own code, when a checkout of codalab/codabench is at hand.

    git clone https://github.com/codalab/codabench ~/src/codabench
    REFVPS_CODABENCH_REPO=~/src/codabench python -m pytest tests/codabench/test_codabench_optional.py

Codabench is a Django site; its unpacker needs a database only to *save* a competition. So this test
imports the checkout's ``src/apps/competitions/unpackers/v2.py`` with the Django and REST framework
modules it imports replaced by small stand-ins (a clock, a Phase status enum, a Data model that
records what it is given), and runs, on the unzipped bundle:

* ``V2Unpacker.unpack()``: pages, tasks, solutions, terms, logo, phases (dates in sequence,
  statuses), leaderboards, exactly as the site does when a bundle is uploaded;
* ``BaseUnpacker._get_data_key`` for every file the YAML names (programs, data, kits, solutions),
  which zips each folder the way the site stores it;
* the leaderboard serializer's own column checks (``api/serializers/leaderboards.py``) and the
  field limits of the ``Leaderboard`` and ``Column`` models (``leaderboards/models.py``);
* the compute worker's ``replace_legacy_metadata_command`` (``compute_worker/compute_worker.py``,
  taken from the checkout's source) on the scoring program's command, which must equal what
  tests/codabench/worker.py runs.
"""

from __future__ import annotations

import ast
import datetime as dt
import importlib
import importlib.util
import os
import sys
import types
import uuid
import zipfile
from pathlib import Path

import pytest
import yaml

from . import worker

REPO = os.environ.get("REFVPS_CODABENCH_REPO")
pytestmark = pytest.mark.skipif(not REPO, reason="set REFVPS_CODABENCH_REPO to a checkout of codalab/codabench")


class _AnyMeta(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Any


class _Any(metaclass=_AnyMeta):
    """Stands in for any Django or REST framework object the unpacker touches but does not need."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def __call__(self, *args, **kwargs):
        return _Any()

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Any()


class _Module(types.ModuleType):
    def _default(self, name: str) -> type:
        return _Any

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self._default(name)


class _ModelsModule(_Module):
    """``django.db.models``: field classes (``CharField``...) record their arguments."""

    def _default(self, name: str) -> type:
        return _Field if name[:1].isupper() else _Any


def _module(name: str, kind: type = _Module, **attributes) -> types.ModuleType:
    module = kind(name)
    module.__path__ = []  # a package, so that submodules can be stubbed too
    module.__dict__.update(attributes)
    return module


class _Field:
    """What a Django model field was declared with (``models.CharField(max_length=36)``)."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class _Data:
    """``datasets.models.Data``: records each dataset the unpacker would store."""

    created: list = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.key = str(uuid.uuid4())
        self.data_file = _Any()
        _Data.created.append(self)


class _ValidationError(Exception):
    pass


def _stubs() -> dict[str, types.ModuleType]:
    now = lambda: dt.datetime.now(dt.timezone.utc)  # noqa: E731
    phase = type("Phase", (), {"CURRENT": "Current", "NEXT": "Next", "PREVIOUS": "Previous", "FINAL": "Final"})
    models = _module("django.db.models", _ModelsModule, Model=object)
    modules = {
        "django": _module("django"),
        "django.utils": _module("django.utils"),
        "django.utils.timezone": _module("django.utils.timezone", now=now),
        "django.core": _module("django.core"),
        "django.core.files": _module("django.core.files"),
        "django.test": _module("django.test"),
        "django.db": _module("django.db", models=models),
        "django.db.models": models,
        "rest_framework": _module("rest_framework"),
        "rest_framework.serializers": _module("rest_framework.serializers", ValidationError=_ValidationError),
        "drf_writable_nested": _module("drf_writable_nested"),
        "api": _module("api"),
        "api.serializers": _module("api.serializers"),
        "competitions.models": _module("competitions.models", Phase=phase),
        "datasets": _module("datasets"),
        "datasets.models": _module("datasets.models", Data=_Data),
        "queues": _module("queues"),
        "tasks": _module("tasks"),
        "utils": _module("utils"),
    }
    for name in ("competitions", "serializers.competitions", "serializers.tasks", "serializers.leaderboards"):
        modules[f"api.{name}"] = _module(f"api.{name}")
    for name in ("serializers.submission_leaderboard", "serializers.fields"):
        modules[f"api.{name}"] = _module(f"api.{name}")
    for name in ("queues.models", "tasks.models", "utils.storage"):
        modules[name] = _module(name)
    for name, module in modules.items():  # "from django.utils import timezone" reads the parent's attribute
        parent, _, child = name.rpartition(".")
        if parent in modules:
            setattr(modules[parent], child, module)
    return modules


@pytest.fixture
def codabench(monkeypatch):
    """The checkout's ``src/apps`` importable, with the stand-ins in place (all undone afterwards)."""
    apps = Path(REPO).expanduser() / "src" / "apps"
    assert (apps / "competitions" / "unpackers" / "v2.py").is_file(), f"not a codabench checkout: {REPO}"
    for name in [n for n in sys.modules if n == "competitions" or n.startswith(("competitions.", "leaderboards"))]:
        monkeypatch.delitem(sys.modules, name)
    for name, module in _stubs().items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.syspath_prepend(str(apps))
    _Data.created = []
    return apps


def _load(path: Path, name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def unpacked(bundle, tmp_path):
    folder = tmp_path / "store" / "bundle"  # Codabench zips task folders two levels up: keep that inside tmp_path
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(folder)
    return folder, yaml.safe_load((folder / "competition.yaml").read_text())


def test_codabench_unpacker_accepts_the_bundle(codabench, unpacked):
    folder, document = unpacked
    v2 = importlib.import_module("competitions.unpackers.v2")
    creator = types.SimpleNamespace(id=1, username="host")
    unpacker = v2.V2Unpacker(competition_yaml=document, temp_directory=str(folder), creator=creator)
    unpacker.unpack()
    competition = unpacker.competition
    assert [p["title"] for p in competition["pages"]] == ["Overview", "Evaluation", "Data", "Terms"]
    dev, test = competition["phases"]
    assert (dev["max_submissions_per_day"], dev["max_submissions_per_person"]) == (0, 0)
    assert "has_max_submissions" not in dev  # no limit: the site's default check lets every submission through
    assert (test["max_submissions_per_day"], test["max_submissions_per_person"], test["has_max_submissions"]) == (
        3,
        15,
        True,
    )
    assert test["is_final_phase"] and dev["end"] < test["start"]
    files = [task[k] for task in competition["tasks"].values() for k in ("scoring_program", "reference_data")]
    files += [p[k] for p in competition["phases"] for k in ("public_data", "starting_kit") if p[k]]
    files += [{**s, "file_type": "solution"} for s in competition["solutions"]]
    for data in files:
        fields = {k: data[k] for k in ("file_name", "file_path", "file_type", "creator")}
        key, stored = unpacker._get_data_key(**fields)  # raises CompetitionUnpackingException for a bad path
        assert key and Path(stored).is_file()
    assert len(_Data.created) == len(files)
    # The same code refuses a broken bundle: the stand-ins do not make the checks vacuous.
    utils = importlib.import_module("competitions.unpackers.utils")
    overlapping = dict(document, phases=[dict(document["phases"][0], end="2030-12-31 00:00:00"), document["phases"][1]])
    with pytest.raises(utils.CompetitionUnpackingException, match="sequential"):
        v2.V2Unpacker(competition_yaml=overlapping, temp_directory=str(folder), creator=creator).unpack()
    with pytest.raises(utils.CompetitionUnpackingException, match="Cannot find dataset"):
        unpacker._get_data_key("reference_data_missing", str(folder / "reference_data_missing"), "reference_data", 1)


def test_codabench_leaderboard_checks_accept_the_columns(codabench, unpacked):
    _, document = unpacked
    serializers = _load(codabench / "api" / "serializers" / "leaderboards.py", "api.serializers.leaderboards_real")
    models = _load(codabench / "leaderboards" / "models.py", "leaderboards_models_real")
    (board,) = document["leaderboards"]
    columns = board["columns"]
    assert serializers.LeaderboardSerializer.validate_columns(None, columns) == columns
    with pytest.raises(_ValidationError, match="unique keys"):
        serializers.LeaderboardSerializer.validate_columns(None, [*columns, dict(columns[0], index=99)])
    for column in columns:
        assert serializers.ColumnSerializer.validate(None, column) == column
        for field in ("title", "key"):
            assert len(column[field]) <= getattr(models.Column, field).kwargs["max_length"], column
        assert column["sorting"] in dict(models.Column.SORTING)
    for field in ("title", "key"):
        assert len(board[field]) <= getattr(models.Leaderboard, field).kwargs["max_length"]
    assert board["submission_rule"] in dict(models.Leaderboard.SUBMISSION_RULES)
    assert 0 <= board["primary_index"] < len(columns)


def test_compute_worker_runs_the_command_the_tests_run(unpacked):
    folder, _ = unpacked
    source = (Path(REPO).expanduser() / "compute_worker" / "compute_worker.py").read_text()
    tree = ast.parse(source)
    (function,) = [
        n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "replace_legacy_metadata_command"
    ]
    namespace: dict = {}
    exec(compile(ast.Module([function], []), "compute_worker.py", "exec"), namespace)  # noqa: S102
    command = yaml.safe_load((folder / "scoring_program" / "metadata.yaml").read_text())["command"]
    upstream = namespace["replace_legacy_metadata_command"](command, kind="program", is_scoring=True)
    assert upstream == worker.replace_legacy_metadata_command(command, kind="program", is_scoring=True)
    assert "/app/input" in upstream and "/app/output" in upstream and "/app/program/config.json" in upstream
