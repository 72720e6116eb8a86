"""Running an external method from its own checkout and environment, resumably.

What every external adapter (``baselines/uninext.py``, ``vdit.py``, ``mutr.py``) shares:

1. **Work folder** (``--workdir``, default ``<out>.work`` beside the predictions)::

       <workdir>/.refvps-workdir   marker: refvps made this folder and may empty its parts
       <workdir>/export/           the dataset in the layout the method reads (symlinks + JSON)
       <workdir>/cwd/              the method's working directory (symlinks for its relative paths)
       <workdir>/raw/              where the method writes its masks
       <workdir>/driver.json       the driver's configuration (script, arguments, patches)
       <workdir>/state.json        which configuration the raw masks belong to

2. **Run**: the adapter's command runs as a subprocess (the method's interpreter, its working
   directory, the adapter's environment variables); stdout and stderr go to the log file while the
   progress stage ``"masks"`` counts the masks appearing in the output folder (the CLI draws it).
3. **Convert**: every clip whose masks are all there is converted into ``<out>`` and marked done.
4. **Record**: ``<out>/run.json`` (see :mod:`refvps.predictions.record`) and the attempt's log in
   ``<out>/.logs/`` (the command, then everything the method printed). A complete run removes
   the work folder unless ``--keep-workdir``; a failed one keeps it for the next attempt.

Resuming: finished clips are marked done in ``<out>``; a new run first converts clips that the
previous attempt finished but did not convert, then exports and runs only the clips still missing.
A failing method raises :class:`MethodFailedError`, naming its log and quoting its last lines.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from baselines.convert import CONVERT_STAGE, Harvest, describe_missing, harvest
from baselines.export import ExportNames, reset_folder
from refvps.dataset.format import Dataset
from refvps.dataset.validate import open_valid_dataset
from refvps.errors import ConfigError, PredictionError, RefvpsError, UsageError
from refvps.fileio import atomic_write_json, atomic_write_text, read_json
from refvps.predictions import PredictionWriter, check_prediction_folder, done_clips
from refvps.predictions.record import (
    RunRecord,
    checkpoint_record,
    git_state,
    now_iso,
    read_run,
    resume_record,
    run_lifecycle,
    stopped_status,
)
from refvps.progress import NO_PROGRESS, Progress

DRIVER = Path(__file__).resolve().parent / "drivers" / "run_patched.py"
MARKER = ".refvps-workdir"
LOGS_DIR = ".logs"  # inside <out>: hidden, so the scorer skips it, and kept after the work folder goes
POLL_SECONDS = 2.0
LOG_TAIL_LINES = 15
MASKS_STAGE = "masks"  # progress stage: masks the method has written

logger = logging.getLogger(__name__)


class MethodFailedError(RefvpsError):
    """The external method exited with an error (its log says why)."""

    def __init__(self, message: str, *, log: Path, hint: str | None = None):
        super().__init__(message, hint=hint, path=log)
        self.log = log


# -- what an adapter produces -------------------------------------------------------------------
@dataclass
class Invocation:
    """One subprocess: its argv, working directory and the environment variables the adapter sets.

    ``upstream_argv`` is the equivalent plain upstream command (what a user would type in the
    checkout); ``argv`` is what actually runs (through the driver when patches are needed).
    """

    argv: list[str]
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    upstream_argv: list[str] | None = None
    notes: list[str] = field(default_factory=list)

    def shell(self) -> str:
        """The command as one line a user can paste into a shell."""
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        command = " ".join(shlex.quote(a) for a in self.argv)
        return f"cd {shlex.quote(str(self.cwd))} && " + (f"{env} " if env else "") + command

    def to_json(self) -> dict[str, Any]:
        return {
            "argv": list(self.argv),
            "cwd": str(self.cwd),
            "env": dict(self.env),
            "shell": self.shell(),
            "upstream_argv": list(self.upstream_argv) if self.upstream_argv else None,
            "notes": list(self.notes),
        }


@dataclass
class WorkPaths:
    root: Path

    @property
    def export(self) -> Path:
        return self.root / "export"

    @property
    def cwd(self) -> Path:
        return self.root / "cwd"

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def driver_config(self) -> Path:
        return self.root / "driver.json"

    @property
    def state(self) -> Path:
        return self.root / "state.json"


@dataclass
class RunContext:
    """Everything an adapter needs to prepare one attempt."""

    dataset: Dataset
    clip_ids: list[str]  # the clips this attempt exports and runs
    names: ExportNames
    paths: WorkPaths
    repo: Path
    python: str
    checkpoint: Path
    gpus: list[str] | None
    method_args: list[str]

    @property
    def n_gpus(self) -> int:
        return len(self.gpus) if self.gpus else 1

    def gpu_env(self) -> dict[str, str]:
        return {"CUDA_VISIBLE_DEVICES": ",".join(self.gpus)} if self.gpus else {}


class ExternalAdapter:
    """Base class of the adapters; each method's module fills in the upstream facts."""

    name: str = ""
    title: str = ""
    upstream: str = ""  # owner/name on GitHub
    upstream_commit: str = ""  # the commit the adapter was checked against
    entry_script: str = ""  # relative path of the entry point in the checkout

    def settings(self) -> dict[str, Any]:
        """Method-specific options (recorded, and part of the run's fingerprint)."""
        return {}

    def check_repo(self, repo: Path) -> None:
        """Raise :class:`ConfigError` if ``repo`` is not a usable checkout of the method."""
        check_checkout(repo, self.entry_script, self.title, self.upstream)

    def annotations_dir(self, paths: WorkPaths) -> Path:
        """Where the method writes ``<video>/<exp_id>/<frame>.png``."""
        raise NotImplementedError

    def prepare(self, ctx: RunContext) -> list[Invocation]:
        """Write the export and working folder for ``ctx.clip_ids``; return the commands to run."""
        raise NotImplementedError


def check_checkout(repo: Path, entry_script: str, title: str, upstream: str) -> None:
    if not repo.is_dir():
        raise ConfigError(
            f"--repo {repo} is not a folder",
            hint=f"clone https://github.com/{upstream} and pass its folder",
            path=repo,
        )
    if not (repo / entry_script).is_file():
        raise ConfigError(
            f"{repo} is not a {title} checkout: {entry_script} is missing",
            hint=f"pass the folder you cloned https://github.com/{upstream} into",
            path=repo / entry_script,
        )


def resolve_python(python: str) -> str:
    """The method's interpreter as an absolute path, or a clear error."""
    found = shutil.which(python) if os.sep not in python else (python if os.path.isfile(python) else None)
    if not found or not os.access(found, os.X_OK):
        raise ConfigError(
            f"--python {python}: no such executable",
            hint="pass the interpreter of the method's own environment, e.g. ~/miniconda3/envs/vdit/bin/python",
        )
    return os.path.abspath(found)


def parse_gpus(gpus: str | None) -> list[str] | None:
    """``"0,1"`` -> ``["0", "1"]`` (CUDA device ids, as in CUDA_VISIBLE_DEVICES); None -> inherit."""
    if gpus is None or gpus.strip() == "":
        return None
    ids = [g.strip() for g in gpus.split(",")]
    if any(not g.isdigit() for g in ids) or len(set(ids)) != len(ids):
        raise UsageError(
            f"--gpus {gpus!r} is not a list of GPU ids",
            hint="pass CUDA device ids separated by commas, e.g. --gpus 0 or --gpus 0,1,2,3",
        )
    return ids


def driver_invocation(
    ctx: RunContext,
    *,
    script: Path,
    argv: Sequence[str],
    patches: Sequence[dict[str, Any]],
    cwd: Path,
    env: dict[str, str],
    notes: Sequence[str] = (),
) -> Invocation:
    """Run ``script argv`` through the patching driver with the method's interpreter."""
    config = {
        "script": str(script),
        "argv": [str(a) for a in argv],
        "sys_path": [str(script.parent)],
        "patches": list(patches),
    }
    atomic_write_json(ctx.paths.driver_config, config)
    return Invocation(
        argv=[ctx.python, str(DRIVER), str(ctx.paths.driver_config)],
        cwd=cwd,
        env=dict(env),
        upstream_argv=[ctx.python, str(script), *[str(a) for a in argv]],
        notes=list(notes),
    )


# -- options and results ------------------------------------------------------------------------
@dataclass
class ExternalOptions:
    dataset: Path
    out: Path
    repo: Path
    python: str
    checkpoint: Path
    gpus: list[str] | None = None
    workdir: Path | None = None
    dry_run: bool = False
    keep_workdir: bool = False
    clips: list[str] | None = None
    method_args: list[str] = field(default_factory=list)


@dataclass
class RunSummary:
    method: str
    out: Path
    status: str  # "complete" or "dry-run"
    clips: int
    already_done: int = 0
    converted: int = 0
    workdir: Path | None = None
    log: Path | None = None
    commands: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("out", "workdir", "log"):
            data[key] = str(data[key]) if data[key] is not None else None
        return data


def default_workdir(out: Path) -> Path:
    return out.parent / f"{out.name}.work"


def prepare_workdir(workdir: Path, method: str) -> WorkPaths:
    """Create the work folder, or reuse one refvps made for the same method."""
    marker = workdir / MARKER
    if workdir.exists():
        if not workdir.is_dir():
            raise UsageError(f"--workdir {workdir} is a file", hint="pass a folder", path=workdir)
        if marker.exists():
            owner = marker.read_text(encoding="utf-8").strip()
            if owner and owner != method:
                raise UsageError(
                    f"work folder {workdir} belongs to a '{owner}' run, not '{method}'",
                    hint="pass another --workdir (or another --out, whose default work folder differs)",
                    path=workdir,
                )
        elif any(workdir.iterdir()):
            raise UsageError(
                f"--workdir {workdir} is not empty and was not made by refvps",
                hint="pass a new or empty folder: refvps empties parts of its work folder",
                path=workdir,
            )
    workdir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(marker, method + "\n")
    paths = WorkPaths(workdir.resolve())
    paths.raw.mkdir(exist_ok=True)
    return paths


@contextlib.contextmanager
def exclusive(paths: WorkPaths):
    """Hold the work folder for one run; a second run on it fails at once instead of interleaving."""
    lock_path = paths.root / ".lock"
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(
                f"another refvps run is using the work folder {paths.root}",
                hint="wait for it to finish, or give this run another --out / --workdir",
                path=paths.root,
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 16384))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    # tqdm redraws with carriage returns: keep the last state of each line.
    kept = [line.rsplit("\r", 1)[-1] for line in text.splitlines()]
    kept = [line for line in kept if line.strip()]
    return "\n".join(kept[-lines:])


def _last_line(path: Path) -> str | None:
    tail = _log_tail(path, 1)
    return tail[-100:] if tail else None


def _count_new_masks(annotations: Path, videos: Sequence[str], since: float) -> int:
    count = 0
    for video in videos:
        video_dir = annotations / video
        if not video_dir.is_dir():
            continue
        for exp_dir in os.scandir(video_dir):
            if not exp_dir.is_dir():
                continue
            for entry in os.scandir(exp_dir.path):
                if entry.name.endswith(".png"):
                    try:
                        if entry.stat().st_mtime >= since:
                            count += 1
                    except FileNotFoundError:
                        pass
    return count


def _terminate(process: subprocess.Popen) -> None:
    """Stop the method and everything it started (its own process group), politely first."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_logged(invocation: Invocation, log_path: Path, *, on_poll=None, poll: float = POLL_SECONDS) -> int:
    """Run one command with its output appended to ``log_path``; returns its exit status."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(invocation.env)
    env.setdefault("PYTHONUNBUFFERED", "1")
    with open(log_path, "ab") as log:
        header = [
            f"# refvps {now_iso()}",
            f"# cwd: {invocation.cwd}",
            f"# env: {json.dumps(invocation.env)}",
            f"# command: {invocation.shell()}",
        ]
        if invocation.upstream_argv:
            header.append(f"# upstream command: {shlex.join(invocation.upstream_argv)}")
        log.write(("\n".join(header) + "\n").encode())
        log.flush()
        try:
            process = subprocess.Popen(
                invocation.argv,
                cwd=invocation.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so it can be stopped as a whole
            )
        except OSError as exc:
            raise ConfigError(
                f"cannot start {invocation.argv[0]}: {exc}",
                hint="check --python (the method's interpreter) and --repo",
                path=log_path,
            ) from None
        try:
            while True:
                try:
                    code = process.wait(timeout=poll)
                    break
                except subprocess.TimeoutExpired:
                    if on_poll is not None:
                        on_poll()
        except BaseException:
            _terminate(process)
            raise
        finally:
            log.write(f"\n# refvps: exit status {process.returncode} at {now_iso()}\n".encode())
    return code


# -- the whole run --------------------------------------------------------------------------------
@dataclass
class ExternalRun:
    """One run of an external method once its inputs were checked: what every phase of it reads."""

    adapter: ExternalAdapter
    options: ExternalOptions
    out: Path
    dataset: Dataset
    selected: list[str]  # the clips of this run, finished or not
    repo: Path
    python: str
    checkpoint: Path
    paths: WorkPaths
    progress: Progress = NO_PROGRESS
    names: ExportNames = field(init=False)

    def __post_init__(self) -> None:
        self.names = ExportNames.for_clips(self.selected)

    @property
    def annotations(self) -> Path:
        """Where the method writes its masks."""
        return self.adapter.annotations_dir(self.paths)

    def context(self, clip_ids: list[str]) -> RunContext:
        return RunContext(
            self.dataset,
            clip_ids,
            self.names,
            self.paths,
            self.repo,
            self.python,
            self.checkpoint,
            self.options.gpus,
            list(self.options.method_args),
        )

    def summary(self, done: int, converted: int, **fields: Any) -> RunSummary:
        """The summary of a complete run (the work folder is named only when it is kept)."""
        workdir = self.paths.root if self.options.keep_workdir else None
        return RunSummary(
            self.adapter.name, self.out, "complete", len(self.selected), done, converted, workdir=workdir, **fields
        )


def run_external(adapter: ExternalAdapter, options: ExternalOptions, progress: Progress = NO_PROGRESS) -> RunSummary:
    """Export, run, convert and record one external method on a dataset (see the module doc).

    ``progress`` gets two stages: ``"masks"`` (the masks the method has written, noted with the
    last line of its log) and ``"converting"`` (clips converted into ``options.out``).
    """
    out = Path(options.out)
    check_prediction_folder(out, options.dataset)
    dataset, selected = open_valid_dataset(options.dataset, options.clips, check_masks=False, require_masks=False)
    repo = Path(options.repo).resolve()
    adapter.check_repo(repo)
    python = resolve_python(options.python)
    checkpoint = Path(options.checkpoint)
    if not checkpoint.is_file():
        raise ConfigError(
            f"checkpoint not found: {checkpoint}",
            hint=f"download the {adapter.title} weights and pass the file with --checkpoint",
            path=checkpoint,
        )
    paths = prepare_workdir(Path(options.workdir) if options.workdir else default_workdir(out), adapter.name)
    run = ExternalRun(adapter, options, out, dataset, selected, repo, python, checkpoint.resolve(), paths, progress)
    with exclusive(paths):
        return _dry_run(run) if options.dry_run else _run_locked(run)


def _dry_run(run: ExternalRun) -> RunSummary:
    """Export the clips still to do and return the commands that would run them; run nothing."""
    finished = done_clips(run.out)
    pending = [c for c in run.selected if c not in finished]
    invocations = run.adapter.prepare(run.context(pending or run.selected))
    return RunSummary(
        run.adapter.name,
        run.out,
        "dry-run",
        len(run.selected),
        len(run.selected) - len(pending),
        workdir=run.paths.root,
        commands=[i.to_json() for i in invocations],
    )


def _run_locked(run: ExternalRun) -> RunSummary:
    """Convert what an earlier attempt left, then run the method on the clips still missing (if any)."""
    writer = PredictionWriter(run.out)
    done = writer.done_clips() & set(run.selected)
    record, previous = _start_record(run, done)
    pending = [c for c in run.selected if c not in done]
    converted = 0
    if pending:  # masks a previous attempt wrote but did not convert
        before = harvest(run.dataset, pending, run.annotations, run.names, writer, info={"method": run.adapter.name})
        converted += len(before.converted)
        pending = [c for c in pending if c not in before.converted]
    if not pending:  # nothing to run: the record keeps the commands of the attempt that did the work
        earlier = previous or {}
        RunRecord(run.out, record).finish(
            "complete",
            exit_status=earlier.get("exit_status", 0),
            commands=earlier.get("commands", []),
            started=earlier.get("started") or now_iso(),
        )
        _cleanup(run.paths, run.options.keep_workdir)
        return run.summary(len(done), converted)
    return _attempt(run, record, writer, pending, already_done=len(done), converted=converted)


def _start_record(run: ExternalRun, done: set[str]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The ``run.json`` record of this run and the previous one, after checking that the finished
    clips came from the same configuration (an other one empties the work folder's raw masks)."""
    adapter = run.adapter
    if run.checkpoint.stat().st_size > 256 << 20:
        logger.info("reading %s for its sha256 (recorded in run.json)", run.checkpoint.name)
    ckpt = checkpoint_record(run.checkpoint, (read_run(run.out) or {}).get("checkpoint"))
    git = git_state(run.repo)
    fingerprint = {
        "method": adapter.name,
        "checkpoint_sha256": ckpt["sha256"],
        "settings": adapter.settings(),
        "method_args": list(run.options.method_args),
        "upstream_commit": git["commit"],
    }
    previous = resume_record(run.out, fingerprint, done)
    _sync_state(run.paths, fingerprint, adapter)
    same = previous is not None and previous.get("fingerprint") == fingerprint
    record: dict[str, Any] = {
        "method": adapter.name,
        "title": adapter.title,
        "kind": "external",
        "dataset": str(Path(run.options.dataset).resolve()),
        "clips": len(run.selected),
        "upstream": {"repository": adapter.upstream, "checked_commit": adapter.upstream_commit, **git},
        "checkpoint": ckpt,
        "settings": adapter.settings(),
        "method_args": list(run.options.method_args),
        "gpus": run.options.gpus,
        "fingerprint": fingerprint,
        "workdir": str(run.paths.root),
        "attempts": list(previous.get("attempts", [])) if same and previous else [],
    }
    if git["commit"] and git["commit"] != adapter.upstream_commit:
        record["warning"] = (
            f"the checkout is at {git['commit']}; the adapter was checked against {adapter.upstream_commit}"
        )
        logger.warning(record["warning"])
    return record, previous


def _attempt(
    run: ExternalRun,
    record: dict[str, Any],
    writer: PredictionWriter,
    pending: list[str],
    *,
    already_done: int,
    converted: int,
) -> RunSummary:
    """Run the method on the ``pending`` clips, convert what it wrote and record the attempt."""
    invocations = run.adapter.prepare(run.context(pending))
    attempt_no = len(record["attempts"]) + 1
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_path = run.out / LOGS_DIR / f"{run.adapter.name}-attempt-{attempt_no:03d}-{stamp}.log"
    started = now_iso()
    record.update(commands=[i.to_json() for i in invocations], started=started, exit_status=None, log=str(log_path))
    info = {"method": run.adapter.name}
    with run_lifecycle(run.out, record) as lifecycle:
        try:
            code = _execute(run, invocations, log_path, pending)
        except BaseException as exc:
            # What the method finished before it stopped is kept; run_lifecycle records the status.
            result = harvest(run.dataset, pending, run.annotations, run.names, writer, info=info)
            _add_attempt(record, started, None, log_path, pending, result.converted, status=stopped_status(exc))
            raise
        with run.progress.stage(CONVERT_STAGE, len(pending)):
            result = harvest(run.dataset, pending, run.annotations, run.names, writer, info=info, progress=run.progress)
        status = "complete" if code == 0 and not result.pending else "failed"
        _add_attempt(record, started, code, log_path, pending, result.converted, status=status)
        lifecycle.finish(status, exit_status=code)
    converted += len(result.converted)
    _raise_for_failure(run, code, result, log_path, kept=already_done + converted)
    _cleanup(run.paths, run.options.keep_workdir)
    return run.summary(already_done, converted, log=log_path, commands=[i.to_json() for i in invocations])


def _execute(run: ExternalRun, invocations: list[Invocation], log_path: Path, pending: list[str]) -> int:
    """Run the commands one after the other (stopping at the first failure); returns the exit status.

    While they run, the ``"masks"`` stage counts the masks appearing in the method's output folder.
    """
    annotations = run.annotations
    videos = [run.names.video(c) for c in pending]
    expected = sum(len(clip.expressions) * len(clip.frame_names) for clip in map(run.dataset.clip, pending))
    since = time.time() - 1.0
    code = 0

    def poll() -> None:
        last = _last_line(log_path)
        run.progress.update(
            MASKS_STAGE, _count_new_masks(annotations, videos, since), note=last[-60:] if last else None
        )

    with run.progress.stage(MASKS_STAGE, expected, note=f"{len(pending)} clips"):
        for invocation in invocations:
            code = run_logged(invocation, log_path, on_poll=poll)
            if code != 0:
                break
        run.progress.update(MASKS_STAGE, _count_new_masks(annotations, videos, since))
    return code


def _raise_for_failure(run: ExternalRun, code: int, result: Harvest, log_path: Path, *, kept: int) -> None:
    """A failing method, or one that exited 0 without writing every mask, is an error naming its log."""
    title = run.adapter.title
    if code != 0:
        raise MethodFailedError(
            f"{title} exited with status {code}; its log is {log_path}\nlast lines of the log:\n{_log_tail(log_path)}",
            log=log_path,
            hint=f"fix what the log shows and run the same command again: the {kept} finished clip(s) "
            f"are kept and only the other {len(result.pending)} run",
        )
    if result.pending:
        parts = [describe_missing(result.incomplete)] if result.incomplete else []
        if result.unreadable:
            first = next(iter(result.unreadable.items()))
            parts.append(f"{len(result.unreadable)} clip(s) with unreadable masks, e.g. {first[0]}: {first[1]}")
        problems = "; ".join(parts)
        # The upstream scripts run their workers with multiprocessing and exit 0 even when a worker
        # crashed, so the log's end is the likeliest place for the reason.
        raise PredictionError(
            f"{title} finished (exit status 0) but did not write every mask: {problems}. "
            f"Its log is {log_path}\nlast lines of the log:\n{_log_tail(log_path)}",
            hint="read the log (a worker that crashed, a skipped video, out of memory?); running the same "
            "command again predicts only the missing clips",
            path=log_path,
        )


def _add_attempt(
    record: dict,
    started: str,
    code: int | None,
    log: Path,
    clips: list[str],
    converted: list[str],
    *,
    status: str,
) -> None:
    record["attempts"].append(
        {
            "started": started,
            "finished": now_iso(),
            "exit_status": code,
            "status": status,
            "log": str(log),
            "clips": len(clips),
            "converted": len(converted),
        }
    )
    record.update(exit_status=code)


def _sync_state(paths: WorkPaths, fingerprint: dict, adapter: ExternalAdapter) -> None:
    """Raw masks from another configuration must not be converted: empty them if it changed."""
    state = read_json(paths.state, what="work folder state") if paths.state.exists() else None
    if state is not None and state.get("fingerprint") != fingerprint:
        for folder in (paths.raw, paths.cwd):
            if folder.exists():
                reset_folder(folder)
    atomic_write_json(paths.state, {"method": adapter.name, "fingerprint": fingerprint})


def _cleanup(paths: WorkPaths, keep: bool) -> None:
    """Remove the work folder after a complete run (symlinks, JSON and the raw masks, all converted)."""
    if keep or not (paths.root / MARKER).exists():
        return
    shutil.rmtree(paths.root)
