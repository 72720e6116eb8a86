"""Train REM with accelerate: ``refvps train-rem CONFIG``; on several GPUs
``accelerate launch -m refvps train-rem CONFIG`` (or ``torchrun --nproc_per_node N -m refvps train-rem CONFIG``).

Follows diffusers' training examples (``train_text_to_image.py``), split into small functions:
accelerate for devices and processes (DDP, or FSDP through ``accelerate config``), mixed precision
(by default whatever ``accelerate launch`` / ``accelerate config`` set), gradient accumulation,
gradient checkpointing, ``save_state`` checkpoints every ``checkpointing_steps`` and
``--resume-from-checkpoint latest``, loss and throughput logged to ``<output_dir>/train_log.jsonl``
(and to tensorboard / wandb with ``report_to``), progress reported through
:class:`refvps.progress.Progress`.

The config file (YAML or JSON) fills :class:`TrainConfig`; a minimal stage-2 run::

    model: rem-ms
    pretrained: ali-vilab/text-to-video-ms-1.7b       # or a local diffusers folder
    init_checkpoint: runs/stage1/final                 # the stage-1 result (or the authors' .pth)
    stage: 2
    data:
      - {kind: ytvos, root: data/ref-youtube-vos}
      - {kind: refcoco, root: data/refcoco, images: data/coco/train2014, max_samples: 12000}
    output_dir: runs/stage2
    mixed_precision: bf16
    gradient_checkpointing: true

Stage 1 (``stage: 1``) trains the spatial weights on one-frame samples (images); stage 2 all
weights on ``train_frames``-frame windows (videos, and images as pseudo-videos). Wan trains in one
stage (``stage: all``) on 17-frame video batches alternating with one-frame image batches, as the
authors do. The final weights go to ``<output_dir>/final`` (our checkpoint format), and the
denoiser also to ``final/unet`` or ``final/transformer`` in diffusers' ``save_pretrained`` layout.

Modules: :mod:`~rem_model.train.config` (the settings), :mod:`~rem_model.train.batches` (what is
drawn when), :mod:`~rem_model.train.loop` (the loop), :mod:`~rem_model.train.saving` (what is
written).
"""

from rem_model.train.config import TrainConfig, command_line_overrides, load_train_config
from rem_model.train.loop import TrainResult, run

__all__ = ["TrainConfig", "TrainResult", "command_line_overrides", "load_train_config", "run"]
