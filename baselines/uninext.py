"""UNINEXT adapter: run UNINEXT's R-VOS inference (Ref-YouTube-VOS protocol) on a Ref-VPS dataset.

Upstream: https://github.com/MasterBin-IIAU/UNINEXT
Checked against commit 5ab03865d05d61c23799ae0bd3305b160ceb3f34 (2023-07-18), reading
``launch.py``, ``projects/UNINEXT/train_net.py``, ``assets/infer*.sh``, ``assets/DATA.md``,
``assets/INSTALL.md``, ``assets/MODEL_ZOO.md``, ``conversion/convert_refytvos2ytvis_val.py``,
``projects/UNINEXT/configs/eval-vid/video_joint_*_eval_rvos.yaml``,
``projects/UNINEXT/uninext/data/datasets/builtin.py`` and ``ytvis.py``,
``projects/UNINEXT/uninext/uninext_vid.py`` and ``models/deformable_detr/bert_model.py``.
Not run here (no GPU, no weights, and ``train_net.py`` needs the compiled detectron2 and CUDA ops);
the real ``conversion/convert_refytvos2ytvis_val.py`` run on this adapter's export gives exactly the
``valid.json`` the adapter writes (``tests/baselines/test_upstream_optional.py``), and the tests drive
a stand-in ``train_net.py`` with the same inputs, outputs and traps.

What the upstream code does, and what this adapter does about it:

* Entry point: ``python3 launch.py --nn 1 --eval-only --uni 1 --config-file
  projects/UNINEXT/configs/eval-vid/video_joint_<variant>_eval_rvos.yaml --resume OUTPUT_DIR
  outputs/<exp>`` (``assets/infer*.sh``). ``launch.py`` only changes into the checkout and runs
  ``python3 projects/UNINEXT/train_net.py --num-gpus=<--np, default 8> <other args>`` through a shell.
  We run ``train_net.py`` ourselves with the method's interpreter (``python3`` on ``PATH`` may be
  another environment) and ``--num-gpus`` = the number of ``--gpus`` (not 8).
* Weights: ``--resume`` makes detectron2 load ``OUTPUT_DIR/last_checkpoint`` if present, else
  ``MODEL.WEIGHTS``; we pass ``MODEL.WEIGHTS <--checkpoint>`` without ``--resume``, so the file given
  is the file loaded and the checkout's ``outputs/`` is not used.
* Data: ``builtin.py`` registers ``rvos-refytb-val`` as images ``ref-youtube-vos/valid/JPEGImages`` and
  annotations ``ref-youtube-vos/valid.json`` under ``$DETECTRON2_DATASETS`` (default ``datasets``).
  ``valid.json`` is what ``conversion/convert_refytvos2ytvis_val.py`` makes from
  ``meta_expressions``: ``{"videos": [{"height", "width", "length", "file_names": ["<video>/<frame>.jpg"],
  "id", "expressions": [text], "video", "exp_id"}], "categories": [{"supercategory": "object",
  "id": 1, "name": "object"}]}``, one entry per expression, ids from 1. That script asserts the 202
  videos of Ref-YouTube-VOS valid, so the adapter writes the same JSON itself. The eval configs test
  on Ref-DAVIS too; we pass ``DATASETS.TEST ('rvos-refytb-val',)``.
* Writes ``OUTPUT_DIR/Annotations/<video>/<exp_id>/<frame>.png``, greyscale 0/255
  (``Image.fromarray(mask * 255).convert('L')``), at the size in the JSON (the frame's).
* Relative paths, resolved from the working directory: the BERT files
  ``projects/UNINEXT/bert-base-uncased`` (tokenizer, config and weights) and the Ref-DAVIS palette
  ``datasets/ref-davis/DAVIS/Annotations_unsupervised/480p/bear/00000.png``. The working directory is
  ``<workdir>/cwd``: its ``projects/UNINEXT/bert-base-uncased`` links to the checkout's folder or to
  ``--bert DIR``, its ``datasets`` to the export (which holds a DAVIS-palette PNG at that path).
* ``PYTHONPATH`` starts with the checkout, so its bundled ``detectron2`` (with the
  ``detectron2.projects.uninext`` finder) is the one imported.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from baselines.export import export_refytvos, reset_folder, symlink, write_palette_png
from baselines.external import ExternalAdapter, Invocation, RunContext, WorkPaths
from refvps.dataset.format import image_size
from refvps.errors import ConfigError, UsageError
from refvps.fileio import atomic_write_json

UPSTREAM = "MasterBin-IIAU/UNINEXT"
UPSTREAM_COMMIT = "5ab03865d05d61c23799ae0bd3305b160ceb3f34"
ENTRY_SCRIPT = "projects/UNINEXT/train_net.py"
VARIANTS = ("r50", "convnext_large", "vit_huge")
DEFAULT_VARIANT = "vit_huge"  # the paper's UNINEXT rows (Ref-DAVIS 72.5, Ref-YTB 70.1 J&F) are ViT-H
CONFIG_TEMPLATE = "projects/UNINEXT/configs/eval-vid/video_joint_{variant}_eval_rvos.yaml"
BERT_FOLDER = "projects/UNINEXT/bert-base-uncased"
BERT_FILES = ("config.json", "vocab.txt")
DATASET_NAME = "rvos-refytb-val"
IMAGE_ROOT = "ref-youtube-vos/valid/JPEGImages"  # builtin.py, _PREDEFINED_SPLITS_REFYTBVOS
JSON_FILE = "ref-youtube-vos/valid.json"
DAVIS_PALETTE_IMAGE = "ref-davis/DAVIS/Annotations_unsupervised/480p/bear/00000.png"  # under datasets/
CATEGORIES = [{"supercategory": "object", "id": 1, "name": "object"}]


def ytvis_valid_json(meta: dict, frames_root: Path) -> dict:
    """``valid.json`` as ``conversion/convert_refytvos2ytvis_val.py`` builds it, without the 202 check.

    ``meta`` is the ``videos`` mapping of ``meta_expressions.json`` (test videos already left out);
    ``frames_root`` the ``JPEGImages`` folder, to read each video's size from its first frame.
    """
    videos = []
    inst_idx = 0
    for video in sorted(meta):
        entry = meta[video]
        frames = [f"{video}/{name}.jpg" for name in entry["frames"]]
        width, height = image_size(frames_root / frames[0])
        for exp_id, expression in entry["expressions"].items():
            inst_idx += 1
            videos.append(
                {
                    "height": height,
                    "width": width,
                    "length": len(frames),
                    "file_names": frames,
                    "id": inst_idx,
                    "expressions": [expression["exp"]],
                    "video": video,
                    "exp_id": exp_id,
                }
            )
    return {"videos": videos, "categories": CATEGORIES}


class UninextAdapter(ExternalAdapter):
    name = "uninext"
    title = "UNINEXT"
    upstream = UPSTREAM
    upstream_commit = UPSTREAM_COMMIT
    entry_script = ENTRY_SCRIPT

    def __init__(self, variant: str = DEFAULT_VARIANT, config_file: Path | None = None, bert: Path | None = None):
        if variant not in VARIANTS:
            raise UsageError(
                f"--variant {variant!r} is not a UNINEXT model", hint=f"choose one of {', '.join(VARIANTS)}"
            )
        self.variant = variant
        self.config_file = Path(config_file) if config_file else None
        self.bert = Path(bert).resolve() if bert else None

    def config_path(self, repo: Path) -> Path:
        if self.config_file is not None:
            return self.config_file if self.config_file.is_absolute() else (repo / self.config_file)
        return repo / CONFIG_TEMPLATE.format(variant=self.variant)

    def bert_path(self, repo: Path) -> Path:
        return self.bert or (repo / BERT_FOLDER)

    def settings(self) -> dict[str, Any]:
        return {
            "variant": None if self.config_file else self.variant,
            "config_file": str(self.config_file) if self.config_file else CONFIG_TEMPLATE.format(variant=self.variant),
            "bert": str(self.bert) if self.bert else None,
        }

    def check_repo(self, repo: Path) -> None:
        super().check_repo(repo)
        config = self.config_path(repo)
        if not config.is_file():
            raise ConfigError(
                f"UNINEXT config not found: {config}",
                hint=f"pass --variant ({', '.join(VARIANTS)}) or an existing --config-file",
                path=config,
            )
        bert = self.bert_path(repo)
        missing = [f for f in BERT_FILES if not (bert / f).is_file()]
        if missing:
            raise ConfigError(
                f"the BERT files UNINEXT loads are not in {bert} (missing {', '.join(missing)})",
                hint="download config.json, vocab.txt and pytorch_model.bin of bert-base-uncased into "
                f"{repo / BERT_FOLDER} as UNINEXT's assets/DATA.md says, or pass their folder with --bert",
                path=bert,
            )

    def annotations_dir(self, paths: WorkPaths) -> Path:
        return paths.raw / "Annotations"

    def datasets_root(self, paths: WorkPaths) -> Path:
        return paths.export / "datasets"

    def command(self, ctx: RunContext) -> list[str]:
        return [
            ctx.python,
            str(ctx.repo / ENTRY_SCRIPT),
            "--num-gpus",
            str(ctx.n_gpus),
            "--eval-only",
            "--uni",
            "1",
            "--config-file",
            str(self.config_path(ctx.repo)),
            # detectron2 config overrides (KEY VALUE pairs; --method-arg adds more)
            "OUTPUT_DIR",
            str(ctx.paths.raw),
            "MODEL.WEIGHTS",
            str(ctx.checkpoint),
            "DATASETS.TEST",
            f"('{DATASET_NAME}',)",
        ] + list(ctx.method_args)

    def prepare(self, ctx: RunContext) -> list[Invocation]:
        datasets = self.datasets_root(ctx.paths)
        reset_folder(ctx.paths.export)
        ytvos = export_refytvos(ctx.dataset, ctx.clip_ids, datasets / "ref-youtube-vos", ctx.names)
        meta = json.loads((ytvos / "meta_expressions" / "valid" / "meta_expressions.json").read_text())["videos"]
        atomic_write_json(datasets / JSON_FILE, ytvis_valid_json(meta, datasets / IMAGE_ROOT))
        write_palette_png(datasets / DAVIS_PALETTE_IMAGE)

        reset_folder(ctx.paths.cwd)
        symlink(ctx.paths.cwd / BERT_FOLDER, self.bert_path(ctx.repo))
        symlink(ctx.paths.cwd / "datasets", datasets)
        pythonpath = os.pathsep.join(p for p in (str(ctx.repo), os.environ.get("PYTHONPATH", "")) if p)
        env = {**ctx.gpu_env(), "DETECTRON2_DATASETS": str(datasets), "PYTHONPATH": pythonpath}
        argv = self.command(ctx)
        return [
            Invocation(
                argv=argv,
                cwd=ctx.paths.cwd,
                env=env,
                upstream_argv=[ctx.python, "launch.py", "--nn", "1", "--np", str(ctx.n_gpus), *argv[4:]],
                notes=[
                    f"runs train_net.py directly (what launch.py runs) with --num-gpus {ctx.n_gpus} "
                    "instead of launch.py's default of 8",
                    f"working directory {ctx.paths.cwd}: {BERT_FOLDER} links to {self.bert_path(ctx.repo)}, "
                    f"datasets/ to the export",
                ],
            )
        ]
