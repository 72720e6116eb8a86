"""The ``refvps`` command line: a thin layer that parses arguments, calls the library and prints.

Commands are imported only when run, so ``refvps evaluate`` never imports PyTorch. Errors raised by
the library (:class:`refvps.errors.RefvpsError`) print as ``Error: ... / Hint: ...`` with a non-zero
exit; anything unexpected does too, and ``--debug`` shows the traceback.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from refvps import __version__
from refvps.cli.common import configure_logging, err_console
from refvps.cli.common import report_error as _report  # the one place errors become messages

# name -> (module, attribute, one-line help). One module per area of the toolkit.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "synth": ("refvps.cli.synth_cmds", "synth", "Generate a synthetic Ref-VPS-format benchmark."),
    "validate": ("refvps.cli.dataset_cmds", "validate", "Check a dataset against every rule of the format."),
    "stats": ("refvps.cli.dataset_cmds", "stats", "Print a dataset's statistics (the paper's Table A)."),
    "evaluate": ("refvps.cli.scoring_cmds", "evaluate", "Score predictions: J, F, J&F, TempCon, breakdowns, CIs."),
    "leaderboard": (
        "refvps.cli.scoring_cmds",
        "leaderboard",
        "Build leaderboard pages (Markdown, CSV, HTML) from results.",
    ),
    "run-baseline": (
        "refvps.cli.baseline_cmds",
        "run_baseline",
        "Run a baseline (REM, UNINEXT, VD-IT, MUTR, reference) on a dataset.",
    ),
    "train-rem": ("refvps.cli.rem_cmds", "train_rem", "Train the reference REM model from a config file."),
    "queries": ("refvps.cli.curate_cmds", "queries", "Write search queries for every concept of the taxonomy."),
    "fetch": ("refvps.cli.curate_cmds", "fetch", "Download candidate videos with yt-dlp, with provenance."),
    "review": ("refvps.cli.curate_cmds", "review", "Make contact sheets and record accept/reject decisions."),
    "trim": ("refvps.cli.curate_cmds", "trim", "Cut accepted videos into clips at 24 fps (shots, crops, end cards)."),
    "annotate": ("refvps.cli.annotate_cmds", "annotate", "Label masks, Ignore regions and expressions with SAM2."),
    "codabench": ("refvps.cli.codabench_cmds", "codabench", "Build a Codabench bundle: dev and hidden-test phases."),
    "codabench-score": ("refvps.cli.codabench_cmds", "codabench_score", "Score a submission on Codabench's worker."),
    "convert": ("refvps.cli.convert_cmds", "convert", "Convert Ref-DAVIS, Ref-YouTube-VOS, MeViS, VSPW or BURST."),
    "export-submission": ("refvps.cli.convert_cmds", "export_submission", "Zip predictions for an official server."),
}


class LazyGroup(click.Group):
    """A click group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module_name, attribute, _ = COMMANDS[name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("refvps"):
                raise click.UsageError(f"the '{name}' command is not available in this build") from exc
            raise
        return getattr(module, attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # One line each, without importing every command module (and PyTorch with it).
        rows = [(name, help_text) for name, (_, _, help_text) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="refvps")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors (and debug log lines).")
@click.option("--quiet", "-q", is_flag=True, help="Only warnings and errors from the library, no info lines.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, quiet: bool) -> None:
    """refvps: the toolkit for Ref-VPS, Referring Video Process Segmentation.

    Generate or build a benchmark, label it, run baselines, and score predictions with
    ignore-aware J, boundary F, J&F and temporal consistency.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    configure_logging(logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``refvps`` script."""
    args = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in args
    try:
        # Without standalone mode, click returns the code given to ctx.exit() instead of exiting.
        code = cli.main(args=args, prog_name="refvps", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort as exc:
        # click turns Ctrl-C into Abort; report it as an interruption, with the resume hint.
        if isinstance(exc.__context__, KeyboardInterrupt) or isinstance(exc.__cause__, KeyboardInterrupt):
            sys.exit(_report(KeyboardInterrupt(), debug))
        err_console.print("[bold red]Error:[/] aborted")
        sys.exit(1)
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - the CLI is where exceptions become messages
        sys.exit(_report(exc, debug))
    sys.exit(code if isinstance(code, int) else 0)
