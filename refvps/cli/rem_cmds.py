"""CLI of the REM reference implementation: ``refvps train-rem`` and the ``rem`` runner of
``refvps run-baseline`` (thin: parse, call :mod:`rem_model`, print)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from refvps.cli.common import RichProgress, console, print_json
from refvps.errors import RefvpsError

PATH = click.Path(path_type=Path)


class TrainingInterrupted(RefvpsError):
    """Ctrl-C during ``refvps train-rem`` (exit status 130, as any interruption)."""

    exit_code = 130


# -- train-rem ------------------------------------------------------------------------------------
@click.command("train-rem")
@click.argument("config", type=PATH)
@click.option(
    "--output-dir", type=PATH, default=None, help="Where checkpoints and the final weights go (overrides output_dir)."
)
@click.option("--resume-from-checkpoint", "resume", default=None, help="'latest' or a checkpoint-N folder.")
@click.option("--max-steps", type=int, default=None, help="Stop after this many optimiser steps (overrides max_steps).")
@click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override any key of the config (repeatable)."
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary at the end (no progress bar).")
@click.option("--no-progress", is_flag=True, help="No progress bar (log lines only).")
def train_rem(config, output_dir, resume, max_steps, overrides, as_json, no_progress):
    """Train the reference REM model from a YAML/JSON config file.

    One process here; on several GPUs run the same command under accelerate,
    'accelerate launch -m refvps train-rem CONFIG' (DDP, or FSDP via 'accelerate config'; its
    mixed precision is used unless the config sets one), or under
    'torchrun --nproc_per_node N -m refvps train-rem CONFIG'.
    Checkpoints are accelerate save_state folders (checkpoint-N); '--resume-from-checkpoint latest'
    continues from the newest (a new run refuses a folder that holds another run's checkpoints). The final weights land in OUTPUT_DIR/final (and the denoiser in
    diffusers' save_pretrained layout in final/unet or final/transformer).
    """
    from rem_model.train import command_line_overrides, load_train_config, run

    items = command_line_overrides(overrides, output_dir=output_dir, resume=resume, max_steps=max_steps)
    train_config = load_train_config(config, items)
    try:
        with RichProgress(disable=as_json or no_progress, labels={"steps": "REM"}) as progress:
            result = run(train_config, progress=progress)
    except KeyboardInterrupt:
        # Not the generic "run the same command again": a new run refuses a folder holding checkpoints.
        raise TrainingInterrupted(
            "interrupted",
            hint="run the same command with --resume-from-checkpoint latest: it continues from the newest "
            f"checkpoint-N in {train_config.output_dir}",
        ) from None
    if not result.is_main_process:
        return  # under a multi-process launch, one summary (the main process's)
    summary = {
        "steps": result.global_step,
        "final": str(result.final_dir) if result.final_dir else None,
        "last_loss": result.last_loss,
        "seconds": round(result.seconds, 1),
        "output_dir": train_config.output_dir,
    }
    if as_json:
        print_json(summary)
    else:
        console.print(f"trained {result.global_step} steps in {result.seconds:.0f} s; final loss {result.last_loss}")
        if result.final_dir:
            console.print(f"weights: {escape(str(result.final_dir))}")


# -- run-baseline rem -----------------------------------------------------------------------------
@click.command("rem")
@click.option(
    "--dataset",
    "-d",
    "dataset_root",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    required=True,
    help="Root of the Ref-VPS-format dataset (the folder with meta_expressions.json).",
)
@click.option(
    "--out",
    "-o",
    type=PATH,
    required=True,
    help="Prediction folder (<out>/<clip>/<exp_id>/<frame>.png); an interrupted run resumes.",
)
@click.option(
    "--config",
    "config_name",
    default=None,
    help="rem-ms, rem-wan-1.3b, rem-wan-14b, rem-tiny, rem-wan-tiny (default: the checkpoint's, else rem-ms).",
)
@click.option(
    "--pretrained", default=None, help="Backbone: a local diffusers folder or a hub id (default: the config's hub id)."
)
@click.option(
    "--checkpoint",
    type=PATH,
    default=None,
    help="REM weights: the authors' .pth (unet / model_state) or our checkpoint folder.",
)
@click.option(
    "--window",
    type=int,
    default=None,
    help="Frames per window (default: 72 ModelScope, 73 Wan, shorter for short clips; Wan needs 4k+1).",
)
@click.option(
    "--stride",
    type=int,
    default=None,
    help="Frames between window starts, at most --window (default: window - window // 4, so windows overlap "
    "by a quarter).",
)
@click.option(
    "--blend",
    type=click.Choice(["probs", "latents", "first"]),
    default="probs",
    show_default=True,
    help="Frames seen by several windows: mean mask probability, mean latent (ModelScope), or the first "
    "window's (with --stride equal to --window: the authors' scripts).",
)
@click.option(
    "--aspect",
    type=click.Choice(["squash", "pad"]),
    default="squash",
    show_default=True,
    help="squash: resize to the model size (the authors'); pad: keep the aspect ratio, letterbox.",
)
@click.option("--expression-batch", type=int, default=4, show_default=True, help="Expressions per denoiser call.")
@click.option("--device", default=None, help="cpu, cuda, cuda:1, ... (default: this process's accelerator device).")
@click.option(
    "--dtype",
    type=click.Choice(["bf16", "fp16", "fp32"]),
    default=None,
    help="Precision (default: bf16 on a GPU, fp32 on a CPU).",
)
@click.option("--clip", "clips", multiple=True, help="Only these clips (repeatable).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the t = 0 noise.")
@click.option(
    "--random-init", is_flag=True, help="Random weights from the config (no download; for testing the pipeline)."
)
@click.option(
    "--trust-checkpoint",
    is_flag=True,
    help="Allow a torch checkpoint that holds pickled objects (only from a source you trust).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def run_rem(
    dataset_root,
    out,
    config_name,
    pretrained,
    checkpoint,
    window,
    stride,
    blend,
    aspect,
    expression_batch,
    device,
    dtype,
    clips,
    seed,
    random_init,
    trust_checkpoint,
    as_json,
):
    """Run REM on a Ref-VPS-format dataset and write predictions that 'refvps evaluate' reads.

    Every frame of every clip is predicted for every expression. Several GPUs:
    'accelerate launch -m refvps run-baseline rem ...' splits the clips across processes.
    An interrupted run resumes: finished clips are not redone.
    """
    import torch

    from refvps.dataset.validate import open_valid_dataset
    from refvps.predictions import check_prediction_folder
    from rem_model.builder import build_rem
    from rem_model.distributed import process_state
    from rem_model.inference import InferenceOptions, predict_dataset

    # Dataset and output folder first: a wrong path should not wait for the weights to load.
    check_prediction_folder(out, dataset_root)
    dataset, selected = open_valid_dataset(dataset_root, clips, check_masks=False, require_masks=False)
    if config_name is None and checkpoint is None:
        config_name = "rem-ms"  # with a checkpoint of ours, the config comes from the checkpoint
    state = process_state()
    device = device or str(state.device)
    if dtype is None:
        dtype = "bf16" if torch.device(device).type == "cuda" else "fp32"
    model = build_rem(
        config_name,
        pretrained=pretrained,
        checkpoint=checkpoint,
        device=device,
        dtype=dtype,
        random_init=random_init,
        seed=seed,
        trust_checkpoint=trust_checkpoint,
    )
    options = InferenceOptions(
        window=window, stride=stride, blend=blend, aspect=aspect, expression_batch=expression_batch, seed=seed
    )
    run_info = {
        "pretrained": str(pretrained) if pretrained else model.config.hub_id,
        "checkpoint": str(Path(checkpoint).resolve()) if checkpoint else None,
        "device": device,
        "dtype": dtype,
        "random_init": random_init,
    }
    with RichProgress(disable=as_json or not state.is_main_process, labels={"frames": "REM"}) as progress:
        summary = predict_dataset(model, dataset, out, options, clip_ids=selected, progress=progress, run_info=run_info)
    if state.is_main_process:  # under 'accelerate launch', one summary (the main process's)
        _print_summary(summary, model.config.name, out, dataset_root, as_json)


def _print_summary(summary, config_name: str, out: Path, dataset_root: Path, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "out": str(out),
                "config": config_name,
                "clips_predicted": len(summary.clips_predicted),
                "clips_resumed": len(summary.clips_skipped),
                "frames": summary.frames,
                "frame_expressions": summary.frame_expressions,
                "seconds": round(summary.seconds, 2),
                "frame_expressions_per_s": round(summary.frame_expressions_per_s, 2),
            }
        )
        return
    console.print(
        f"REM ({config_name}): {len(summary.clips_predicted)} clips predicted, "
        f"{len(summary.clips_skipped)} already done, {summary.frame_expressions} frame-expressions "
        f"in {summary.seconds:.1f} s -> {escape(str(out))}"
    )
    console.print(f"score them with: refvps evaluate {escape(str(out))} --dataset {escape(str(dataset_root))}")
