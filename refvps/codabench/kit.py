"""The starting kit's sample submission: the ``motion`` baseline's masks for the dev split, zipped
exactly as a participant would zip a submission (``<clip_id>/<exp_id>/<frame>.png`` at the top)."""

from __future__ import annotations

import logging
import os
import zipfile
from pathlib import Path

from baselines.reference import run_reference
from refvps.codabench.plan import ZIP_DATE
from refvps.codabench.splits import LAYOUT_FIELD, Split

log = logging.getLogger(__name__)


def _mask_files(folder: Path) -> list[Path]:
    """The PNGs of a prediction tree, without the run's bookkeeping (``run.json``, ``.done/``)."""
    found = []
    for current, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(current) / f for f in sorted(files) if f.endswith(".png") and not f.startswith(".")]
    return found


def zip_tree(folder: Path, files: list[Path], out: Path) -> Path:
    """``files`` (under ``folder``) zipped at their relative paths, reproducibly (sorted, fixed dates)."""
    with zipfile.ZipFile(out, "w") as archive:
        for path in sorted(files):
            info = zipfile.ZipInfo(path.relative_to(folder).as_posix(), date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes(), compress_type=zipfile.ZIP_STORED)
    return out


def sample_submission(dev: Split, layout: str, workdir: Path) -> Path:
    """Run the motion baseline on the ``dev`` split in ``workdir`` and return the zip of its masks."""
    predictions = workdir / "motion"
    clips = list(dev.clip_ids) if layout == LAYOUT_FIELD else None
    log.info(
        "running the motion baseline on the %s split (%d clips) for the sample submission", dev.name, len(dev.clip_ids)
    )
    run_reference("motion", dev.root, predictions, clips=clips)
    return zip_tree(predictions, _mask_files(predictions), workdir / "sample_submission.zip")
