"""Where the tests (and benchmarks) find the real footage: one lookup for every area.

The four 10 s 720p videos of the SAM 2 demo gallery (``02_cups``, ``03_blocks``, ``04_coffee``,
``05_default_juggle``; Apache-2.0) live outside the repository, in ``<repo root>/../shared/footage``
(CI has them there) or wherever ``$REFVPS_FOOTAGE`` points. Tests that need them skip, saying where
they were looked for, when they are absent (a user's machine).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NAMES = ("02_cups", "03_blocks", "04_coffee", "05_default_juggle")


def footage_candidates() -> list[Path]:
    """Where the four videos are looked for: ``$REFVPS_FOOTAGE``, then ``<repo root>/../shared/footage``."""
    candidates = [Path(os.environ["REFVPS_FOOTAGE"])] if os.environ.get("REFVPS_FOOTAGE") else []
    return candidates + [REPO.parent.joinpath("shared/footage")]


def find_footage() -> Path | None:
    for folder in footage_candidates():
        if all((folder / f"{name}.mp4").is_file() for name in NAMES):
            return folder
    return None


def footage_missing_reason() -> str:
    return (
        "real footage not found (looked in " + ", ".join(str(c) for c in footage_candidates()) + "): "
        "set $REFVPS_FOOTAGE to a folder holding " + ", ".join(f"{n}.mp4" for n in NAMES)
    )


def footage_dir() -> Path:
    """The folder of the four videos, or a skip that says where they were looked for."""
    folder = find_footage()
    if folder is None:
        pytest.skip(footage_missing_reason())
    return folder
