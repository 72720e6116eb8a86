import subprocess
import sys

from refvps import __version__
from refvps.cli import COMMANDS


def _run(*args):
    return subprocess.run([sys.executable, "-m", "refvps", *args], capture_output=True, text=True)


def test_help_lists_every_command_with_one_line():
    result = _run("--help")
    assert result.returncode == 0
    for name in COMMANDS:
        assert name in result.stdout


def test_version():
    result = _run("--version")
    assert result.returncode == 0 and __version__ in result.stdout


def test_every_registered_command_imports_and_has_help():
    for name in COMMANDS:
        result = _run(name, "--help")
        assert result.returncode == 0, f"{name}: {result.stderr}"
        assert "Usage:" in result.stdout


def test_unknown_command_is_a_usage_error():
    result = _run("no-such-command")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_errors_show_traceback_only_with_debug(tmp_path):
    plain = _run("stats", str(tmp_path / "missing"))
    assert plain.returncode == 1
    assert plain.stderr.startswith("Error:") and "Hint:" in plain.stderr and "Traceback" not in plain.stderr
    debug = _run("--debug", "stats", str(tmp_path / "missing"))
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_os_errors_name_the_path_without_traceback(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    # A file where a folder is needed: the OS error must be reported with the path.
    result = _run("stats", str(blocker / "sub"), "--plot", str(blocker / "plot.png"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "Error:" in result.stderr


def test_interrupt_is_reported_with_resume_hint():
    from refvps.cli import _report

    assert _report(KeyboardInterrupt(), debug=False) == 130
