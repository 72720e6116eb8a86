"""Fixtures shared by every area of the suite."""

from __future__ import annotations

import pytest


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    @property
    def error(self) -> str:
        """stderr from the 'Error:' line on (progress bars drawn before it are left out), unwrapped."""
        start = self.err.find("Error:")
        return " ".join(self.err[start:].split()) if start >= 0 else ""

    @property
    def flat_err(self) -> str:
        return " ".join(self.err.split())  # rich wraps long lines

    def json(self):
        import json

        return json.loads(self.out)


@pytest.fixture
def cli(capsys):
    """Run ``refvps ARGS`` in this process (as the console script does) and capture its output."""
    from refvps.cli import main

    def run(*args) -> CliResult:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
