"""What a training run writes: ``checkpoint-N`` accelerate states (pruned, written atomically) and the
final weights, in our checkpoint format and in diffusers' ``save_pretrained`` layout."""

from __future__ import annotations

import shutil
from pathlib import Path

from refvps.errors import ConfigError
from rem_model.checkpoints import WEIGHTS_FILE
from rem_model.model import REMModel
from rem_model.train.batches import TrainState
from rem_model.train.config import TrainConfig

CHECKPOINT_PREFIX = "checkpoint-"
PARTIAL_SUFFIX = ".partial"
FINAL_DIR = "final"


def numbered_checkpoints(output_dir: Path) -> list[Path]:
    """The ``checkpoint-N`` folders of ``output_dir``, oldest (lowest N) first."""
    found = [
        p for p in output_dir.glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir() and p.name[len(CHECKPOINT_PREFIX) :].isdigit()
    ]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX) :]))


def find_checkpoint(output_dir: Path, which: str) -> Path | None:
    """``latest`` → the highest ``checkpoint-N`` in ``output_dir`` (None if there is none); else a path."""
    if which != "latest":
        path = Path(which)
        if not path.is_dir():
            raise ConfigError(
                f"checkpoint to resume from not found: {path}", hint="pass 'latest' or a checkpoint-N folder", path=path
            )
        return path
    found = numbered_checkpoints(output_dir)
    return found[-1] if found else None


def check_new_run(output_dir: Path, resume: str | None) -> None:
    """Refuse to start a new run (no ``resume``) in an ``output_dir`` that holds another run's
    ``checkpoint-N`` folders or final weights: the new run's pruning would delete its own checkpoints
    first (the numbers sort below the old ones), overwrite the old ones of the same step and the final
    weights, and a later ``--resume-from-checkpoint latest`` would take the old run's newest state."""
    if resume:
        return
    found = numbered_checkpoints(output_dir)
    if found or (output_dir / FINAL_DIR / WEIGHTS_FILE).is_file():
        held = found[-1].name if found else f"{FINAL_DIR}/"
        raise ConfigError(
            f"{output_dir} already holds a training run ({held}): a new run there would overwrite it",
            hint="continue that run with --resume-from-checkpoint latest, or start this one in another --output-dir",
            path=output_dir,
        )


def prune_checkpoints(output_dir: Path, keep: int | None) -> None:
    """Delete the oldest checkpoints so that ``keep`` − 1 remain before the next one is saved."""
    if keep is None:
        return
    found = numbered_checkpoints(output_dir)
    for path in found[: max(0, len(found) - keep + 1)]:
        shutil.rmtree(path, ignore_errors=True)


def save_training_state(accelerator, output_dir: Path, state: TrainState, config: TrainConfig) -> Path:
    """``accelerator.save_state`` into ``checkpoint-<step>``, keeping at most the configured number.

    Every process takes part (FSDP gathers shards). The state is written to ``checkpoint-<step>.partial``
    and renamed when complete, so a run killed while saving never leaves a broken ``checkpoint-<step>``
    for ``--resume-from-checkpoint latest`` to pick.
    """
    path = output_dir / f"{CHECKPOINT_PREFIX}{state.global_step}"
    partial = path.with_name(path.name + PARTIAL_SUFFIX)
    if accelerator.is_main_process:
        prune_checkpoints(output_dir, config.checkpoints_total_limit)
        shutil.rmtree(partial, ignore_errors=True)  # left by a run killed while saving
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if path.exists():
            shutil.rmtree(path)  # the same step saved again (a resumed run)
        partial.rename(path)
    accelerator.wait_for_everyone()
    return path


def save_final(
    accelerator, model: REMModel, denoiser, output_dir: Path, config: TrainConfig, state: TrainState
) -> Path | None:
    """The trained weights (LoRA merged), written by the main process: our checkpoint format in
    ``<output_dir>/final`` and, with ``save_diffusers``, the denoiser in diffusers' layout in
    ``final/unet`` (ModelScope) or ``final/transformer`` (Wan)."""
    from rem_model.checkpoints import save_checkpoint, save_denoiser_pretrained

    full_state = accelerator.get_state_dict(denoiser)  # gathers FSDP shards
    if not accelerator.is_main_process:
        return None
    final = output_dir / FINAL_DIR
    metadata = {
        "base": config.pretrained or model.config.hub_id,
        "init_checkpoint": config.init_checkpoint,
        "training": {"stage": config.stage, "steps": state.global_step, "config": config.to_json()},
    }
    save_checkpoint(model, final, metadata=metadata, denoiser_state=full_state)
    if config.save_diffusers:
        save_denoiser_pretrained(model, final, full_state)
    return final
