"""Files that ship with refvps: the ``annotations/`` folder (taxonomy, query templates, JSON schemas).

``refvps/resources/annotations`` is a link to the repository's top-level ``annotations/`` folder, so a
source checkout, an editable install and a built wheel all find the same files.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from refvps.errors import ConfigError, DatasetError
from refvps.fileio import read_json


def annotations_dir() -> Path:
    """The folder holding the taxonomy, query templates, schemas and annotation guide."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "annotations", here.parents[1] / "annotations"):
        if (candidate / "taxonomy.json").exists():
            return candidate
    raise ConfigError(
        "the annotations folder (taxonomy.json, schemas/) is missing from this installation",
        hint="reinstall refvps from its repository: pip install -e .",
    )


@lru_cache(maxsize=None)
def load_resource_json(relative: str) -> Any:
    """Read a JSON file from the annotations folder, e.g. ``schemas/clips.schema.json``."""
    path = annotations_dir() / relative
    if not path.is_file():
        raise ConfigError(f"resource file missing: {path}", hint="reinstall refvps", path=path)
    try:
        return read_json(path, what="refvps resource file")
    except DatasetError as exc:  # a shipped file, not the user's data: the installation is broken
        raise ConfigError(exc.message, hint="restore the file or reinstall refvps", path=path) from None


def load_taxonomy(path: str | Path | None = None) -> dict[str, Any]:
    """The concept taxonomy (categories -> concepts); ``path`` overrides the shipped file."""
    if path is None:
        return load_resource_json("taxonomy.json")
    return read_json(path, what="taxonomy file")
