"""``refvps run-baseline``: run a baseline on a dataset and write Ref-VPS predictions.

``refvps run-baseline --list`` lists every baseline with what it needs; each baseline is a
subcommand (``refvps run-baseline NAME --dataset ROOT --out PRED ...``). The work is done by the
``baselines`` package (registry, reference baselines, one adapter per external method); ``rem`` is
the REM engineer's command, attached lazily so that listing baselines never imports PyTorch.
"""

from __future__ import annotations

import copy
import functools
import importlib
import shlex
from pathlib import Path

import click
from rich.markup import escape

from refvps.cli.common import RichProgress, console, print_json
from refvps.errors import MissingDependencyError, RefvpsError

PATH = click.Path(path_type=Path)
REM_PACKAGES = {"torch", "torchvision", "diffusers", "transformers", "accelerate", "peft", "safetensors"}


# -- the group ------------------------------------------------------------------------------------
class BaselineGroup(click.Group):
    """Subcommands in registry order; ``rem`` is imported only when it is run or asked for help."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from baselines.registry import baseline_names

        return baseline_names()

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name == "rem":
            return _rem_command()
        return _COMMANDS.get(name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from baselines.registry import BASELINES

        with formatter.section("Baselines"):
            formatter.write_dl([(spec.name, f"[{spec.kind}] {spec.title}") for spec in BASELINES.values()])


@click.group(
    "run-baseline",
    cls=BaselineGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option("--list", "list_", is_flag=True, help="List the baselines and what each needs, then exit.")
@click.option("--json", "as_json", is_flag=True, help="With --list: print the registry as JSON.")
@click.pass_context
def run_baseline(ctx: click.Context, list_: bool, as_json: bool) -> None:
    """Run a baseline on a Ref-VPS-format dataset: 'refvps run-baseline NAME --dataset ROOT --out PRED'.

    Reference baselines (empty, full, motion, oracle) need nothing; rem runs the REM reference
    implementation; uninext, vdit and mutr drive the published code from its own checkout and
    environment (--repo, --python, --checkpoint). 'refvps run-baseline --list' says what each needs.
    """
    if list_ or ctx.invoked_subcommand is None:
        _print_registry(as_json)
        ctx.exit(0)


def _print_registry(as_json: bool) -> None:
    from baselines.registry import BASELINES

    missing = {"rem": _missing_rem_packages()}
    if as_json:
        print_json([{**spec.to_json(), "missing_packages": missing.get(spec.name, [])} for spec in BASELINES.values()])
        return
    console.print("[bold]refvps run-baseline NAME --dataset ROOT --out PRED [...][/]\n")
    for spec in BASELINES.values():
        console.print(f"[bold]{spec.name}[/] [dim]({spec.kind})[/]  {escape(spec.title)}", soft_wrap=True)
        if missing.get(spec.name):
            install = escape(f"{', '.join(missing[spec.name])} (pip install 'refvps[{spec.extra}]')")
            console.print(f"  [yellow]not installed here[/]: {install}", soft_wrap=True)
        console.print(f"  {escape(spec.summary)}", soft_wrap=True)
        for need in spec.needs:
            console.print(f"  [green]needs[/] {escape(need)}", soft_wrap=True)
        if spec.options:
            console.print(f"  [dim]options: {escape(', '.join(spec.options))}[/]", soft_wrap=True)
        console.print()


def _missing_rem_packages() -> list[str]:
    """The REM extra's packages that are not installed (found without importing them)."""
    import importlib.util

    return sorted(
        p for p in ("torch", "diffusers", "transformers", "accelerate") if importlib.util.find_spec(p) is None
    )


# -- shared options -------------------------------------------------------------------------------
def _dataset_options(command):
    command = click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")(command)
    command = click.option("--clip", "clips", multiple=True, help="Only these clips (repeatable).")(command)
    command = click.option(
        "--out",
        "-o",
        type=PATH,
        required=True,
        help="Prediction folder (<out>/<clip>/<exp_id>/<frame>.png); an interrupted run resumes.",
    )(command)
    command = click.option(
        "--dataset",
        "-d",
        "dataset_root",
        required=True,
        type=click.Path(path_type=Path, exists=True, file_okay=False),
        help="Root of the Ref-VPS-format dataset (the folder with meta_expressions.json).",
    )(command)
    return command


def _external_options(command):
    options = [
        click.option(
            "--method-arg",
            "method_args",
            multiple=True,
            metavar="ARG",
            help="Extra argument appended to the method's command (repeatable).",
        ),
        click.option("--keep-workdir", is_flag=True, help="Keep the work folder after a complete run."),
        click.option("--dry-run", is_flag=True, help="Write the exported input and print every command, run nothing."),
        click.option(
            "--workdir",
            type=PATH,
            default=None,
            help="Work folder for the export, the method's outputs (default: <out>.work).",
        ),
        click.option(
            "--gpus",
            default=None,
            metavar="IDS",
            help="CUDA device ids, e.g. 0 or 0,1,2,3 (sets CUDA_VISIBLE_DEVICES; one worker per GPU). "
            "Default: one GPU, CUDA_VISIBLE_DEVICES as inherited.",
        ),
        click.option("--checkpoint", type=PATH, required=True, help="The method's weights file."),
        click.option(
            "--python",
            "python_exe",
            required=True,
            metavar="EXE",
            help="Python interpreter of the method's own environment.",
        ),
        click.option(
            "--repo",
            type=click.Path(path_type=Path, file_okay=False),
            required=True,
            help="The method's checkout (git clone of its repository).",
        ),
    ]
    for option in options:
        command = option(command)
    return _dataset_options(command)


# -- reference baselines --------------------------------------------------------------------------
def _run_reference(
    name: str, dataset_root: Path, out: Path, clips: tuple[str, ...], as_json: bool, motion=None
) -> None:
    from baselines.reference import CLIPS_STAGE, MotionConfig, run_reference

    with RichProgress(transient=True, disable=as_json, labels={CLIPS_STAGE: name}) as progress:
        summary = run_reference(
            name, dataset_root, out, clips=list(clips) or None, motion=motion or MotionConfig(), progress=progress
        )
    _print_summary(summary, as_json)


def _reference_command(name: str, help_text: str) -> click.Command:
    @click.command(name, help=help_text)
    @_dataset_options
    def command(dataset_root: Path, out: Path, clips: tuple[str, ...], as_json: bool) -> None:
        _run_reference(name, dataset_root, out, clips, as_json)

    return command


@click.command("motion")
@_dataset_options
@click.option("--no-flow", is_flag=True, help="Frame differencing only (no optical flow): faster, weaker.")
@click.option(
    "--max-side",
    type=click.IntRange(min=16),
    default=320,
    show_default=True,
    help="Analyse frames at this size (longer side), then resize the masks back.",
)
def motion_cmd(
    dataset_root: Path, out: Path, clips: tuple[str, ...], as_json: bool, no_flow: bool, max_side: int
) -> None:
    """Moving-region masks (OpenCV optical flow + frame differencing, camera motion removed).

    The same mask for every expression of a clip: a floor that any learned model should beat on
    dynamic processes.
    """
    from baselines.reference import MotionConfig

    _run_reference("motion", dataset_root, out, clips, as_json, MotionConfig(use_flow=not no_flow, max_side=max_side))


# -- external methods -----------------------------------------------------------------------------
def _run_external(
    adapter,
    *,
    dataset_root,
    out,
    repo,
    python_exe,
    checkpoint,
    gpus,
    workdir,
    dry_run,
    keep_workdir,
    clips,
    method_args,
    as_json,
) -> None:
    from baselines.convert import CONVERT_STAGE
    from baselines.external import MASKS_STAGE, ExternalOptions, parse_gpus, run_external

    options = ExternalOptions(
        dataset=dataset_root,
        out=out,
        repo=repo,
        python=python_exe,
        checkpoint=checkpoint,
        gpus=parse_gpus(gpus),
        workdir=workdir,
        dry_run=dry_run,
        keep_workdir=keep_workdir,
        clips=list(clips) or None,
        method_args=list(method_args),
    )
    if dry_run:
        summary = run_external(adapter, options)
        if as_json:
            print_json(summary.to_json())
            return
        console.print(
            f"exported {summary.clips - summary.already_done} clip(s) to "
            f"{escape(str(summary.workdir))}/export (nothing was run)",
            soft_wrap=True,
        )
        for command in summary.commands:
            console.print(f"\n[bold]command[/] (working directory {escape(command['cwd'])}):")
            console.print(command["shell"], markup=False, soft_wrap=True, highlight=False)
            if command.get("upstream_argv"):
                console.print("[bold]equivalent upstream command:[/]")
                console.print(shlex.join(command["upstream_argv"]), markup=False, soft_wrap=True)
            for note in command.get("notes", []):
                console.print(f"[dim]note: {escape(note)}[/]", soft_wrap=True)
        return
    labels = {MASKS_STAGE: f"{adapter.title}:", CONVERT_STAGE: "converting"}
    with RichProgress(disable=as_json, labels=labels) as progress:
        summary = run_external(adapter, options, progress)
    _print_summary(summary, as_json)


def _print_summary(summary, as_json: bool) -> None:
    if as_json:
        print_json(summary.to_json())
        return
    console.print(
        f"{summary.method}: {summary.clips} clips in {escape(str(summary.out))} "
        f"({summary.already_done} already done, {summary.converted} written now); run record: "
        f"{escape(str(Path(summary.out) / 'run.json'))}",
        soft_wrap=True,
    )
    if summary.log:
        console.print(f"[dim]log: {escape(str(summary.log))}[/]", soft_wrap=True)


@click.command("uninext")
@_external_options
@click.option(
    "--variant",
    type=click.Choice(["r50", "convnext_large", "vit_huge"]),
    default="vit_huge",
    show_default=True,
    help="Which UNINEXT model (the eval-vid/video_joint_<variant>_eval_rvos.yaml config); the paper's is vit_huge.",
)
@click.option(
    "--config-file", type=PATH, default=None, help="Another detectron2 config (absolute, or relative to --repo)."
)
@click.option(
    "--bert",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=None,
    help="Folder with bert-base-uncased's config.json, vocab.txt, pytorch_model.bin "
    "(default: the checkout's projects/UNINEXT/bert-base-uncased).",
)
def uninext_cmd(variant, config_file, bert, **kwargs) -> None:
    """UNINEXT (CVPR 2023) from its checkout: detectron2 train_net.py --eval-only on the exported data.

    --method-arg adds detectron2 config overrides as KEY VALUE pairs (e.g. --method-arg
    INPUT.MIN_SIZE_TEST --method-arg 480).
    """
    from baselines.uninext import UninextAdapter

    _run_external(UninextAdapter(variant=variant, config_file=config_file, bert=bert), **kwargs)


@click.command("vdit")
@_external_options
@click.option(
    "--t2v-weights",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=None,
    help="ModelScope text-to-video weights in diffusers layout (default: the checkout's "
    "Text-To-Video-Finetuning/mymodels/model_scope_diffusers).",
)
@click.option("--no-amp", is_flag=True, help="Run without --amp (the upstream test script uses --amp).")
def vdit_cmd(t2v_weights, no_amp, **kwargs) -> None:
    """VD-IT (ECCV 2024) from its checkout: inference_ytvos.py on the exported data."""
    from baselines.vdit import VditAdapter

    _run_external(VditAdapter(t2v_weights=t2v_weights, amp=not no_amp), **kwargs)


@click.command("mutr")
@_external_options
@click.option(
    "--backbone",
    default="swin_l_p4w7",
    show_default=True,
    help="MUTR backbone of the checkpoint (resnet50, resnet101, swin_l_p4w7, video_swin_b_p4w7, ...).",
)
def mutr_cmd(backbone, **kwargs) -> None:
    """MUTR (AAAI 2024) from its checkout: inference_ytvos.py on the exported data."""
    from baselines.mutr import MutrAdapter

    _run_external(MutrAdapter(backbone=backbone), **kwargs)


# -- rem (lazy) -------------------------------------------------------------------------------------
def _rem_command() -> click.Command:
    try:
        command = importlib.import_module("refvps.cli.rem_cmds").run_rem
    except (ImportError, AttributeError) as exc:  # not installed, a missing extra, or an older build
        return _unavailable_rem(exc)
    return _guard_extras(command)


def _missing_rem_error(exc: BaseException) -> RefvpsError:
    name = getattr(exc, "name", None) or ""
    top = name.split(".")[0]
    if top in REM_PACKAGES:
        return MissingDependencyError(top, "rem", "refvps run-baseline rem")
    return RefvpsError(
        f"the rem baseline is not available in this build ({exc})",
        hint="install refvps with the REM extra: pip install 'refvps[rem]'",
    )


def _unavailable_rem(exc: BaseException) -> click.Command:
    def callback(args):
        raise _missing_rem_error(exc)

    return click.Command(
        "rem",
        callback=callback,
        params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        help=f"REM reference implementation (not available: {exc}; pip install 'refvps[rem]').",
        add_help_option=False,
    )


def _guard_extras(command: click.Command) -> click.Command:
    """The REM command, turning a missing PyTorch/diffusers import into an 'install the extra' error."""
    guarded = copy.copy(command)
    original = command.callback

    @functools.wraps(original)
    def callback(*args, **kwargs):
        try:
            return original(*args, **kwargs)
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] in REM_PACKAGES:
                raise _missing_rem_error(exc) from exc
            raise

    guarded.callback = callback
    return guarded


_COMMANDS: dict[str, click.Command] = {
    "uninext": uninext_cmd,
    "vdit": vdit_cmd,
    "mutr": mutr_cmd,
    "empty": _reference_command(
        "empty",
        "All background: every mask empty (J counts target-absent frames; TempCon 0 "
        "where the target is always present).",
    ),
    "full": _reference_command("full", "All foreground: every mask the whole frame."),
    "motion": motion_cmd,
    "oracle": _reference_command("oracle", "The ground truth as predictions: must score J = 100 (checks the scorer)."),
}
