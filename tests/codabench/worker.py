"""Codabench, played by hand: what the platform does with a bundle and a submission, without docker.

Each step follows codalab/codabench at commit c7dbc756b07b133f8e552ae626fab54817ed93f3:

* ``unpack_bundle``: ``src/apps/competitions/tasks.py:unpack_competition`` extracts the bundle and
  reads ``competition.yaml`` with ``yaml.safe_load``; ``unpackers/utils.py:zip_if_directory`` zips a
  task's folder with ``shutil.make_archive`` before storing it.
* ``CodabenchRun``: ``compute_worker/compute_worker.py``'s ``Run``. ``_get_bundle`` extracts each zip
  with ``ZipFile.extractall`` into ``program/``, ``input/ref``, ``input/res``; a results-only
  submission runs a prediction step first, in which ``_run_program_directory`` finds no
  ``metadata`` in the submission and copies it into ``output/`` (``shutil.copytree``), and
  ``push_output`` writes the step's ``metadata`` file there and zips ``output/`` (``make_archive``):
  that zip is what the scoring step extracts into ``input/res``. The scoring step reads the scoring
  program's ``metadata.yaml`` (``yaml.load(..., FullLoader)``), rewrites its legacy ``$`` variables
  (:func:`replace_legacy_metadata_command`, transcribed), and runs the command in the image with
  ``working_dir=/app/program`` and ``PYTHONUNBUFFERED=1``; docker-py splits a string command with
  ``shlex.split``. ``push_scores`` reads ``output/scores.json`` (``json.load``).

Docker cannot run here, so the one liberty taken is the container's bind mounts: ``/app/program``,
``/app/output``, ``/app/input`` and ``/app/shared`` are this run's folders, and the image's
``python3`` is this interpreter. The command's peak memory is measured with ``os.wait4`` (:func:`measured_run`).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import yaml


def replace_legacy_metadata_command(command, kind, is_scoring, ingestion_only_during_scoring=False):
    # Transcribed from compute_worker.py (see the module docstring).
    vars_to_replace = [
        ("$input", "/app/input_data" if kind == "ingestion" else "/app/input"),
        ("$output", "/app/output"),
        ("$program", "/app/ingestion_program" if ingestion_only_during_scoring and is_scoring else "/app/program"),
        ("$ingestion_program", "/app/program"),
        ("$hidden", "/app/input/ref"),
        ("$shared", "/app/shared"),
        ("$submission_program", "/app/ingested_program"),
        ("$tmp", "/app/output"),
        ("$predictions", "/app/input/res" if is_scoring else "/app/output"),
    ]
    for var_string, var_replacement in vars_to_replace:
        command = command.replace(var_string, var_replacement)
    return command


def zip_if_directory(path: Path, where: Path) -> Path:
    """A bundle folder zipped as Codabench stores it (the archive is written to ``where``)."""
    if not path.is_dir():
        return path
    return Path(shutil.make_archive(str(where / path.name), "zip", path))


@dataclass
class Competition:
    folder: Path  # the extracted bundle
    yaml: dict
    store: Path  # where folders were zipped

    def task_file(self, phase_index: int, key: str) -> Path:
        phase = self.yaml["phases"][phase_index]
        task = next(t for t in self.yaml["tasks"] if t["index"] == phase["tasks"][0])
        return zip_if_directory(self.folder / task[key], self.store)


def unpack_bundle(bundle: Path, work: Path) -> Competition:
    folder, store = work / "bundle", work / "store"
    store.mkdir(parents=True)
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(folder)
    document = yaml.safe_load((folder / "competition.yaml").read_text())
    return Competition(folder, document, store)


class WorkerFailure(Exception):
    """The worker fails the submission itself (SubmissionException), before any scoring program runs."""


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    maxrss_mib: float
    scores: dict | None  # what push_scores would send; None when it raises "Could not find scores file"
    output: Path


class CodabenchRun:
    """One submission through the prediction step and the scoring step of the compute worker."""

    def __init__(self, root: Path):
        self.root = root

    def _get_bundle(self, zip_file: Path, destination: str) -> None:
        with zipfile.ZipFile(zip_file, "r") as archive:
            archive.extractall(os.path.join(self.root, destination))

    def prediction_step(self, submission_zip: Path) -> Path:
        step = self.root / "prediction"
        step.mkdir(parents=True)
        with zipfile.ZipFile(submission_zip) as archive:
            archive.extractall(step / "program")
        program, output = step / "program", step / "output"
        if not program.exists():  # "no program to execute"; push_output then fails to write its metadata
            raise WorkerFailure("Metadata file not found")
        assert not (program / "metadata.yaml").exists() and not (program / "metadata").exists()
        shutil.copytree(program, output)  # "Program directory missing metadata": results submission
        status = {"exitCode": None, "elapsedTime": None, "ingestionExitCode": None, "ingestionElapsedTime": None}
        (output / "metadata").write_text(yaml.dump(status, default_flow_style=False))
        return Path(shutil.make_archive(str(step / "prediction_result"), "zip", output))

    def scoring_step(self, scoring_program: Path, reference_data: Path, prediction_result: Path) -> Outcome:
        for zip_file, destination in (
            (scoring_program, "program"),
            (reference_data, "input/ref"),
            (prediction_result, "input/res"),
        ):
            self._get_bundle(zip_file, destination)
        return self.run_program()

    def run_program(self) -> Outcome:
        program, output = self.root / "program", self.root / "output"
        output.mkdir(exist_ok=True)
        (self.root / "shared").mkdir(exist_ok=True)
        metadata = yaml.load((program / "metadata.yaml").read_text(), Loader=yaml.FullLoader)
        command = replace_legacy_metadata_command(metadata["command"], kind="program", is_scoring=True)
        argv = [self._mount(a) for a in shlex.split(command)]
        if argv[0] == "python3":
            argv[0] = sys.executable
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(self.root / "stdout.txt", "w+") as out, open(self.root / "stderr.txt", "w+") as err:
            returncode, maxrss_mib = measured_run(argv, cwd=program, env=env, stdout=out, stderr=err)
            out.seek(0), err.seek(0)
            stdout, stderr = out.read(), err.read()
        scores_file = output / "scores.json"
        scores = json.loads(scores_file.read_text()) if scores_file.exists() else None
        return Outcome(returncode, stdout, stderr, maxrss_mib, scores, output)

    def _mount(self, argument: str) -> str:
        for name in ("program", "output", "input", "shared"):
            mount = f"/app/{name}"
            if argument == mount or argument.startswith(mount + "/"):
                return str(self.root / name) + argument[len(mount) :]
        return argument


# Linux carries a parent's resident size into the peak of a child it forks (the child starts with a
# copy of its page tables), so a command forked from pytest would report at least pytest's size. The
# command is forked from this small launcher instead, which reports the command's own peak.
_LAUNCHER = """
import os, sys
report, argv = int(sys.argv[1]), sys.argv[2:]
pid = os.fork()
if pid == 0:
    os.close(report)
    os.execvp(argv[0], argv)
_, status, usage = os.wait4(pid, 0)
os.write(report, str(usage.ru_maxrss).encode())
sys.exit(os.waitstatus_to_exitcode(status))
"""


def measured_run(argv: list[str], **popen) -> tuple[int, float]:
    """Run ``argv`` (``popen``: :class:`subprocess.Popen` options); return its exit status and its peak
    resident memory in MiB."""
    read, write = os.pipe()
    process = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(write), *argv], pass_fds=(write,), **popen)
    os.close(write)
    with os.fdopen(read) as report:
        text = report.read()
    process.wait()
    return process.returncode, int(text or 0) / 1024


def submit(competition: Competition, phase_index: int, submission_zip: Path, work: Path) -> Outcome:
    """Codabench's two steps for one results submission to a phase."""
    run = CodabenchRun(work)
    prediction_result = run.prediction_step(submission_zip)
    return run.scoring_step(
        competition.task_file(phase_index, "scoring_program"),
        competition.task_file(phase_index, "reference_data"),
        prediction_result,
    )


def zip_folder(folder: Path, out: Path) -> Path:
    """What ``cd folder && zip -r ../out.zip .`` makes (the way the starting kit says to zip)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return out
