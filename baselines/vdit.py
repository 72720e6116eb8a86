"""VD-IT adapter: run VD-IT's Ref-YouTube-VOS inference on a Ref-VPS dataset.

Upstream: https://github.com/buxiangzhiren/VD-IT
Checked against commit e44bd79618ade028f1f83fcd0e4f300264f42dbb (2024-09-28), reading
``inference_ytvos.py``, ``opts.py``, ``scripts/dist_test_ytvos_vdit.sh``,
``models/itcross_video_swin_transformer.py``, ``Text-To-Video-Finetuning/train_itcross_pn.py``,
``docs/data.md``, ``docs/install.md`` and ``README.md``. Not run end to end with the real model
(no GPU, no weights here); the real ``inference_ytvos.py`` did run through this adapter on a CPU with
a stub model (``tests/baselines/test_upstream_optional.py``), and the tests drive a stand-in script
with the same inputs, outputs and traps. Like MUTR's, the script exits 0 when a worker process
crashed, so only the completeness check after the run tells a failed run from a good one.

What the upstream script does, and what this adapter does about it:

* Entry point: ``python inference_ytvos.py --with_box_refine --binary --freeze_text_encoder --eval
  --ngpu N --output_dir D --resume CKPT --backbone itcross_video_swin --amp`` (the flags of
  ``scripts/dist_test_ytvos_vdit.sh``), plus ``--ytvos_path`` (``opts.py``, default
  ``./data/ref-youtube-vos``) pointing at our export. ``--ngpu`` defaults to 8 in ``opts.py``; we
  pass the number of ``--gpus``.
* Reads ``<ytvos_path>/valid/JPEGImages/<video>/<frame>.jpg`` and
  ``<ytvos_path>/meta_expressions/valid/meta_expressions.json`` (``videos[v]["expressions"][e]["exp"]``,
  ``videos[v]["frames"]``), and ``meta_expressions/test/meta_expressions.json`` whose videos it
  subtracts. Frames are resized to a shorter side of 360 and a whole video goes through the model at
  once (long clips need GPU memory).
* Writes ``<output_dir>/Annotations/<video>/<exp_id>/<frame>.png``, greyscale 0/255
  (``Image.fromarray(mask * 255).convert('L')``), at the frame's size.
* Trap: ``assert len(video_list) == 202`` (the Ref-YouTube-VOS validation size). Patched in
  memory by the driver to ``> 0``.
* Trap: ``os.environ['CUDA_VISIBLE_DEVICES'] = '7'`` at import time (line 36). Patched away by the
  driver; the GPUs come from ``--gpus`` through ``CUDA_VISIBLE_DEVICES``, and each worker process
  uses ``torch.cuda.set_device(pid)`` within them.
* Relative paths, resolved from the working directory: ``sys.path.append('./Text-To-Video-Finetuning')``
  and the T2V weights ``./Text-To-Video-Finetuning/mymodels/model_scope_diffusers`` (the default of
  ``FeatureExtractor``). The working directory is ``<workdir>/cwd`` with
  ``Text-To-Video-Finetuning`` linking to the checkout's (an overlay with ``mymodels/model_scope_diffusers``
  replaced when ``--t2v-weights`` is given), so nothing in the checkout is written to.
* ``roberta-base`` and ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K`` load by hub id: they must be in the
  Hugging Face cache (``HF_HOME`` is passed through) or downloadable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from baselines.export import export_refytvos, overlay, reset_folder, symlink
from baselines.external import ExternalAdapter, Invocation, RunContext, WorkPaths, driver_invocation
from refvps.errors import ConfigError

UPSTREAM = "buxiangzhiren/VD-IT"
UPSTREAM_COMMIT = "e44bd79618ade028f1f83fcd0e4f300264f42dbb"
ENTRY_SCRIPT = "inference_ytvos.py"
T2V_FOLDER = "Text-To-Video-Finetuning"
T2V_WEIGHTS = "Text-To-Video-Finetuning/mymodels/model_scope_diffusers"
BACKBONE = "itcross_video_swin"
FIXED_FLAGS = ["--with_box_refine", "--binary", "--freeze_text_encoder", "--eval"]

# Source patches applied in memory by baselines/drivers/run_patched.py (line counts unchanged).
PATCHES = [
    {
        "name": "cuda-visible-devices",
        "pattern": r"""^os\.environ\[[ \t]*['"]CUDA_VISIBLE_DEVICES['"][ \t]*\][ \t]*=[ \t]*['"][^'"\n]*['"][ \t]*$""",
        "replacement": "pass  # refvps: GPUs come from CUDA_VISIBLE_DEVICES set by the caller (--gpus)",
        "required": False,
        "why": "the script pins CUDA_VISIBLE_DEVICES='7' at import time",
    },
    {
        "name": "202-videos",
        "pattern": r"^([ \t]*)assert len\(video_list\) == 202\b.*$",
        "replacement": r"\1assert len(video_list) > 0, 'refvps: no videos to process'",
        "required": False,
        "why": "the script asserts the 202 videos of Ref-YouTube-VOS valid",
    },
]


class VditAdapter(ExternalAdapter):
    name = "vdit"
    title = "VD-IT"
    upstream = UPSTREAM
    upstream_commit = UPSTREAM_COMMIT
    entry_script = ENTRY_SCRIPT

    def __init__(self, t2v_weights: Path | None = None, amp: bool = True):
        self.t2v_weights = Path(t2v_weights).resolve() if t2v_weights else None
        self.amp = amp

    def settings(self) -> dict[str, Any]:
        return {
            "backbone": BACKBONE,
            "t2v_weights": str(self.t2v_weights) if self.t2v_weights else None,
            "amp": self.amp,
        }

    def check_repo(self, repo: Path) -> None:
        super().check_repo(repo)
        if not (repo / T2V_FOLDER).is_dir():
            raise ConfigError(
                f"{repo} has no {T2V_FOLDER}/ folder (VD-IT imports its modules from there)",
                hint=f"use a full clone of https://github.com/{UPSTREAM}",
                path=repo / T2V_FOLDER,
            )
        weights = self.t2v_weights or (repo / T2V_WEIGHTS)
        if not (weights / "unet").is_dir():
            raise ConfigError(
                f"the ModelScope text-to-video weights are not in {weights} (no unet/ folder)",
                hint="clone https://huggingface.co/damo-vilab/text-to-video-ms-1.7b there (VD-IT's README), "
                "or pass the folder with --t2v-weights",
                path=weights,
            )

    def annotations_dir(self, paths: WorkPaths) -> Path:
        return paths.raw / "Annotations"

    def data_root(self, paths: WorkPaths) -> Path:
        return paths.export / "ref-youtube-vos"

    def command_args(self, ctx: RunContext) -> list[str]:
        args = FIXED_FLAGS + [
            "--ngpu",
            str(ctx.n_gpus),
            "--output_dir",
            str(ctx.paths.raw),
            "--resume",
            str(ctx.checkpoint),
            "--backbone",
            BACKBONE,
            "--ytvos_path",
            str(self.data_root(ctx.paths)),
        ]
        if self.amp:
            args.append("--amp")
        return args + list(ctx.method_args)

    def prepare(self, ctx: RunContext) -> list[Invocation]:
        reset_folder(ctx.paths.export)
        export_refytvos(ctx.dataset, ctx.clip_ids, self.data_root(ctx.paths), ctx.names)
        reset_folder(ctx.paths.cwd)
        t2v = ctx.repo / T2V_FOLDER
        if self.t2v_weights is None:
            symlink(ctx.paths.cwd / T2V_FOLDER, t2v)
        else:
            rel = T2V_WEIGHTS.split("/", 1)[1]  # mymodels/model_scope_diffusers
            overlay(t2v, ctx.paths.cwd / T2V_FOLDER, {rel: self.t2v_weights})
        return [
            driver_invocation(
                ctx,
                script=ctx.repo / ENTRY_SCRIPT,
                argv=self.command_args(ctx),
                patches=PATCHES,
                cwd=ctx.paths.cwd,
                env=ctx.gpu_env(),
                notes=[
                    "runs inference_ytvos.py through baselines/drivers/run_patched.py, which removes the "
                    "hard-coded CUDA_VISIBLE_DEVICES='7' and the 202-video assertion in memory",
                    f"working directory {ctx.paths.cwd}: {T2V_FOLDER} links to the checkout's",
                ],
            )
        ]
