import json
import os

import pytest

from refvps.fileio import atomic_write_bytes, atomic_write_json


def test_interrupted_write_leaves_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "data.json"
    atomic_write_json(target, {"v": 1})

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        atomic_write_json(target, {"v": 2})
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["data.json"]  # no temp file left behind


def test_atomic_write_creates_parents(tmp_path):
    path = atomic_write_bytes(tmp_path / "a" / "b" / "c.bin", b"xyz")
    assert path.read_bytes() == b"xyz"


def test_atomic_files_get_umask_permissions_not_0600(tmp_path):
    mask = os.umask(0o022)
    try:
        import importlib

        import refvps.fileio as fileio

        importlib.reload(fileio)
        path = fileio.atomic_write_bytes(tmp_path / "f.bin", b"1")
        assert path.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(mask)
