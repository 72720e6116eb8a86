"""Exceptions raised by the library.

Library code raises these; only the CLI turns them into ``Error: ... / Hint: ...`` and an exit code.
Every error carries the file it is about (when there is one) and a hint that says what to do.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any


class RefvpsError(Exception):
    """Base class of every error that refvps reports to a user.

    ``message`` says what is wrong, ``hint`` what to do about it, ``path`` which file it concerns.
    ``exit_code`` is what the CLI exits with (1 for bad data, 2 for bad usage).
    """

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, path: str | Path | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.path = Path(path) if path is not None else None

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep hint and path when an error crosses a process boundary (multiprocessing pickles it).
        state = {k: v for k, v in self.__dict__.items() if k not in ("message", "hint", "path")}
        return (_rebuild_error, (type(self), self.message, self.hint, self.path, state))

    def __str__(self) -> str:
        text = self.message
        if self.path is not None and str(self.path) not in text:
            text = f"{text} ({self.path})"
        return text


class UsageError(RefvpsError):
    """The command was called wrongly (bad option values, conflicting options)."""

    exit_code = 2


class DatasetError(RefvpsError):
    """A dataset on disk cannot be read: missing files, JSON that does not parse, bad masks."""


class DatasetInvalidError(DatasetError):
    """A dataset was read but breaks the format rules; ``problems`` lists every one."""

    def __init__(self, message: str, problems: list[Any], *, hint: str | None = None, path: str | Path | None = None):
        super().__init__(message, hint=hint, path=path)
        self.problems = problems


class PredictionError(RefvpsError):
    """Predictions that cannot be read or do not fit the dataset."""


class ConfigError(RefvpsError):
    """A configuration, checkpoint or external tool setting is wrong."""


class MissingDependencyError(RefvpsError):
    """An optional dependency (an extra) is not installed."""

    def __init__(self, package: str, extra: str, what: str):
        super().__init__(
            f"{what} needs the Python package '{package}', which is not installed",
            hint=f"install the extra: pip install 'refvps[{extra}]'",
        )
        self.package = package
        self.extra = extra


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import an optional module or raise :class:`MissingDependencyError` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(module.split(".")[0], extra, what) from exc


def _rebuild_error(
    cls: type[RefvpsError], message: str, hint: str | None, path: Path | None, state: dict[str, Any]
) -> RefvpsError:
    error = cls.__new__(cls)
    RefvpsError.__init__(error, message, hint=hint, path=path)
    error.__dict__.update(state)
    return error
