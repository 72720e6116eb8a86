"""Every baseline ``refvps run-baseline`` can run, and what each one needs.

The registry is data: the CLI lists it (``refvps run-baseline --list``) and builds one subcommand per
entry; the README and the leaderboard read the same facts. Nothing here imports a model.

Three kinds of baseline:

* ``reference``: computed here from the dataset alone (``empty``, ``full``, ``motion``, ``oracle``).
  They need no weights and bound the scores from below and above.
* ``builtin``: the reference REM implementation in ``rem_model`` (``rem``), run in this process.
* ``external``: a published method run from its own checkout and Python environment
  (``uninext``, ``vdit``, ``mutr``); the adapter in ``baselines/<name>.py`` exports the dataset,
  runs the method as a subprocess and converts what it writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from refvps.errors import UsageError

REFERENCE = "reference"
BUILTIN = "builtin"
EXTERNAL = "external"


@dataclass(frozen=True)
class BaselineSpec:
    """One runnable baseline.

    ``needs`` lists, in words, everything a user must have before running it (software, weights,
    hardware); ``module`` is where its code lives; for external methods ``upstream`` is the
    repository and ``upstream_commit`` the commit the adapter was checked against.
    """

    name: str
    title: str
    kind: str
    summary: str
    needs: tuple[str, ...] = ()
    module: str = ""
    paper: str | None = None
    url: str | None = None
    upstream: str | None = None
    upstream_commit: str | None = None
    extra: str | None = None  # pip extra of refvps it needs, if any
    options: tuple[str, ...] = field(default=())

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "title": self.title,
            "kind": self.kind,
            "summary": self.summary,
            "needs": list(self.needs),
            "module": self.module,
            "paper": self.paper,
            "url": self.url,
            "upstream": self.upstream,
            "upstream_commit": self.upstream_commit,
            "extra": self.extra,
            "options": list(self.options),
        }


_EXTERNAL_OPTIONS = (
    "--repo DIR",
    "--python EXE",
    "--checkpoint FILE",
    "--gpus IDS",
    "--workdir DIR",
    "--dry-run",
    "--keep-workdir",
)

BASELINES: dict[str, BaselineSpec] = {
    spec.name: spec
    for spec in (
        BaselineSpec(
            name="rem",
            title="REM (reference implementation)",
            kind=BUILTIN,
            summary="Referring Everything Model: a text-to-video diffusion backbone fine-tuned to "
            "output mask latents (rem_model/).",
            needs=(
                "pip install 'refvps[rem]' (PyTorch, diffusers, transformers, accelerate)",
                "backbone weights: a local diffusers folder or hub id (ModelScope T2V "
                "ali-vilab/text-to-video-ms-1.7b, or Wan 2.1)",
                "REM weights (--checkpoint: the authors' .pth or a refvps checkpoint), or --random-init",
                "a GPU for real configs (rem-tiny runs on a CPU)",
            ),
            module="refvps.cli.rem_cmds:run_rem",
            paper="ReferEverything: Towards Segmenting Everything We Can Speak of in Videos (arXiv:2410.23287)",
            url="https://github.com/miccooper9/ReferEverything",
            extra="rem",
            options=(
                "--config NAME",
                "--pretrained DIR|HUB_ID",
                "--checkpoint FILE",
                "--window N",
                "--device DEV",
                "--dtype bf16|fp16|fp32",
            ),
        ),
        BaselineSpec(
            name="uninext",
            title="UNINEXT",
            kind=EXTERNAL,
            summary="Universal instance perception (CVPR 2023); R-VOS inference through detectron2's "
            "train_net.py --eval-only on the 'rvos-refytb-val' split.",
            needs=(
                "a UNINEXT checkout (--repo) with its environment (--python): Python 3.7-3.8, "
                "PyTorch 1.10, the bundled detectron2 (pip install -e .), compiled Deformable-DETR ops",
                "BERT files (config.json, vocab.txt, pytorch_model.bin) in "
                "projects/UNINEXT/bert-base-uncased/ of the checkout, or --bert DIR",
                "a stage-3 checkpoint (--checkpoint): video_joint_{r50,convnext_large,vit_huge}/model_final.pth",
                "one or more CUDA GPUs (--gpus)",
            ),
            module="baselines.uninext",
            paper="Universal Instance Perception as Object Discovery and Retrieval (CVPR 2023)",
            url="https://github.com/MasterBin-IIAU/UNINEXT",
            upstream="MasterBin-IIAU/UNINEXT",
            upstream_commit="5ab03865d05d61c23799ae0bd3305b160ceb3f34",
            options=_EXTERNAL_OPTIONS + ("--variant r50|convnext_large|vit_huge", "--config-file FILE", "--bert DIR"),
        ),
        BaselineSpec(
            name="vdit",
            title="VD-IT",
            kind=EXTERNAL,
            summary="Video-diffusion features for R-VOS (ECCV 2024); inference_ytvos.py with the "
            "itcross_video_swin backbone.",
            needs=(
                "a VD-IT checkout (--repo) with its environment (--python): Python 3.8, PyTorch 1.11, "
                "transformers, diffusers, compiled Deformable-DETR ops",
                "ModelScope T2V weights (damo-vilab/text-to-video-ms-1.7b, diffusers layout) in "
                "Text-To-Video-Finetuning/mymodels/model_scope_diffusers of the checkout, or --t2v-weights DIR",
                "roberta-base and laion/CLIP-ViT-H-14-laion2B-s32B-b79K in the Hugging Face cache (loaded by hub id)",
                "the VD-IT checkpoint (--checkpoint, from huggingface.co/buxiangzhiren/VD-IT)",
                "one or more CUDA GPUs (--gpus)",
            ),
            module="baselines.vdit",
            paper="Exploring Pre-trained Text-to-Video Diffusion Models for Referring Video Object "
            "Segmentation (ECCV 2024)",
            url="https://github.com/buxiangzhiren/VD-IT",
            upstream="buxiangzhiren/VD-IT",
            upstream_commit="e44bd79618ade028f1f83fcd0e4f300264f42dbb",
            options=_EXTERNAL_OPTIONS + ("--t2v-weights DIR",),
        ),
        BaselineSpec(
            name="mutr",
            title="MUTR",
            kind=EXTERNAL,
            summary="Multi-modal unified temporal transformer (AAAI 2024); inference_ytvos.py.",
            needs=(
                "a MUTR checkout (--repo) with its environment (--python): Python 3.7, PyTorch 1.8.1, "
                "compiled Deformable-DETR ops",
                "roberta-base in the Hugging Face cache (loaded by hub id)",
                "the checkpoint of the chosen backbone (--checkpoint; --backbone, default swin_l_p4w7 "
                "as in the paper's comparison)",
                "one or more CUDA GPUs (--gpus)",
            ),
            module="baselines.mutr",
            paper="Referred by Multi-Modality: A Unified Temporal Transformer for Video Object "
            "Segmentation (AAAI 2024)",
            url="https://github.com/OpenGVLab/MUTR",
            upstream="OpenGVLab/MUTR",
            upstream_commit="c5f5044f3742193946ac398e8186c38b454b7a92",
            options=_EXTERNAL_OPTIONS + ("--backbone NAME",),
        ),
        BaselineSpec(
            name="empty",
            title="Empty (all background)",
            kind=REFERENCE,
            summary="Predicts nothing anywhere. J counts only frames where the target is absent; "
            "TempCon is 0 wherever the target is in every frame, which is why TempCon is read next to J.",
            needs=("nothing",),
            module="baselines.reference",
        ),
        BaselineSpec(
            name="full",
            title="Full (all foreground)",
            kind=REFERENCE,
            summary="Predicts the whole frame: J is the mean fraction of the frame the target covers.",
            needs=("nothing",),
            module="baselines.reference",
        ),
        BaselineSpec(
            name="motion",
            title="Motion (optical flow + frame differencing)",
            kind=REFERENCE,
            summary="A classical moving-region mask (OpenCV Farneback flow with camera motion removed, "
            "plus frame differencing), the same for every expression: a floor any learned model "
            "should beat on dynamic processes.",
            needs=("nothing (OpenCV, already a dependency)",),
            module="baselines.reference",
            options=("--flow/--no-flow", "--max-side PX"),
        ),
        BaselineSpec(
            name="oracle",
            title="Oracle (ground truth)",
            kind=REFERENCE,
            summary="Writes the ground-truth masks as predictions: must score J = 100, and checks "
            "the scorer end to end.",
            needs=("ground-truth masks (Annotations/) in the dataset",),
            module="baselines.reference",
        ),
    )
}


def baseline_names() -> list[str]:
    return list(BASELINES)


def get_baseline(name: str) -> BaselineSpec:
    """The registry entry of ``name``, or a usage error listing the names there are."""
    try:
        return BASELINES[name]
    except KeyError:
        raise UsageError(
            f"unknown baseline {name!r}",
            hint=f"choose one of: {', '.join(BASELINES)} (refvps run-baseline --list)",
        ) from None
