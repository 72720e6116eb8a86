"""``refvps run-baseline``: the list of baselines, the subcommands, and the lazily attached ``rem``."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from baselines.registry import BASELINES, EXTERNAL, get_baseline
from refvps.errors import UsageError


def test_list_names_every_baseline_with_what_it_needs(cli):
    result = cli("run-baseline", "--list")
    assert result.code == 0, result.err
    for name in ("rem", "uninext", "vdit", "mutr", "empty", "full", "motion", "oracle"):
        assert f"\n{name} (" in "\n" + result.out
    assert result.out.count("needs ") >= len(BASELINES)
    assert "pip install 'refvps[rem]'" in result.out
    assert "bert-base-uncased" in result.out and "model_scope_diffusers" in result.out


def test_list_as_json_is_the_registry(cli):
    result = cli("run-baseline", "--list", "--json")
    data = result.json()
    assert [entry["name"] for entry in data] == list(BASELINES)
    external = [e for e in data if e["kind"] == EXTERNAL]
    assert {e["name"] for e in external} == {"uninext", "vdit", "mutr"}
    for entry in external:
        assert len(entry["upstream_commit"]) == 40 and "/" in entry["upstream"]
        assert any("--repo" in option for option in entry["options"])


def test_the_group_alone_lists_too(cli):
    assert "oracle (" in cli("run-baseline").out


def test_every_baseline_is_a_subcommand_with_help(cli):
    for name in BASELINES:
        result = cli("run-baseline", name, "--help")
        assert result.code == 0, f"{name}: {result.err}"
        assert "Usage:" in result.out


def test_external_subcommands_take_the_common_options(cli):
    for name in ("uninext", "vdit", "mutr"):
        text = cli("run-baseline", name, "--help").out
        for option in (
            "--dataset",
            "--out",
            "--repo",
            "--python",
            "--checkpoint",
            "--gpus",
            "--workdir",
            "--dry-run",
            "--keep-workdir",
        ):
            assert option in text, (name, option)


def test_unknown_baseline(cli):
    result = cli("run-baseline", "sam9")
    assert result.code == 2 and "sam9" in result.err
    with pytest.raises(UsageError, match="unknown baseline 'sam9'") as error:
        get_baseline("sam9")
    assert "oracle" in error.value.hint


def test_listing_does_not_import_pytorch():
    code = (
        "import sys; from refvps.cli import main\n"
        "try:\n    main(['run-baseline', '--list'])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules, 'cv2' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip().splitlines()[-1] == "False False", done.stderr


def test_rem_is_attached_from_the_rem_command_module(cli):
    from refvps.cli import baseline_cmds
    from refvps.cli.rem_cmds import run_rem

    command = baseline_cmds._rem_command()
    assert command.name == "rem"
    assert [p.name for p in command.params] == [p.name for p in run_rem.params]
    text = cli("run-baseline", "rem", "--help").out
    for option in ("--dataset", "--out", "--config", "--pretrained", "--checkpoint", "--window", "--device", "--dtype"):
        assert option in text


def test_rem_missing_module_is_a_clear_error(cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "refvps.cli.rem_cmds", None)  # import fails as if not installed
    assert "\nrem (" in "\n" + cli("run-baseline", "--list").out  # still listed
    result = cli("run-baseline", "rem", "--dataset", "x", "--out", "y")
    assert result.code == 1 and result.err.startswith("Error:")
    assert "pip install 'refvps[rem]'" in result.flat_err


def test_rem_without_its_extras_names_the_extra(cli, monkeypatch):
    from refvps.cli import baseline_cmds, rem_cmds

    def needs_torch(**kwargs):
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    fake = click.Command("rem", callback=needs_torch, params=[click.Option(["--dataset"])])
    monkeypatch.setattr(rem_cmds, "run_rem", fake)
    result = cli("run-baseline", "rem", "--dataset", "x")
    assert result.code == 1
    assert result.err.startswith("Error: refvps run-baseline rem needs the Python package 'torch'")
    assert "pip install 'refvps[rem]'" in result.flat_err
    assert fake.callback is needs_torch  # the REM engineer's command object itself is not changed
    assert baseline_cmds._rem_command() is not fake


def test_list_says_when_the_rem_extra_is_not_installed(cli, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    result = cli("run-baseline", "--list")
    assert "not installed here: torch (pip install 'refvps[rem]')" in " ".join(result.out.split())
    data = cli("run-baseline", "--list", "--json").json()
    assert data[0]["name"] == "rem" and data[0]["missing_packages"] == ["torch"]
