import pickle

from refvps.errors import DatasetInvalidError, MissingDependencyError, PredictionError, UsageError


def test_errors_survive_pickling_with_hint_path_and_extras():
    for error in (
        PredictionError("bad mask", hint="re-export it", path="/p/x.png"),
        UsageError("bad option", hint="see --help"),
        DatasetInvalidError("invalid", ["p1", "p2"], hint="run validate", path="/d"),
        MissingDependencyError("torch", "rem", "REM"),
    ):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert (copy.message, copy.hint, copy.path, copy.exit_code) == (
            error.message,
            error.hint,
            error.path,
            error.exit_code,
        )
        assert str(copy) == str(error)
    copy = pickle.loads(pickle.dumps(DatasetInvalidError("invalid", ["p1"], hint="h")))
    assert copy.problems == ["p1"]
