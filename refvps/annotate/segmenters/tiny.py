"""Tiny, randomly initialised configurations of the two real SAM2 model classes.

They run the whole click -> propagate -> save path on a CPU in seconds, without downloading
anything; the masks they produce are meaningless. Used by the tests and the benchmarks.
"""

from __future__ import annotations

from pathlib import Path


def tiny_sam2_overrides(image_size: int = 256) -> list[str]:
    """Hydra overrides that shrink ``configs/sam2.1/sam2.1_hiera_t.yaml`` to a few million weights."""
    feat = image_size // 16
    return [
        f"++model.image_size={image_size}",
        "++model.image_encoder.trunk.embed_dim=16",
        "++model.image_encoder.trunk.num_heads=1",
        "++model.image_encoder.trunk.stages=[1,1,2,1]",
        "++model.image_encoder.trunk.global_att_blocks=[3]",
        "++model.image_encoder.neck.backbone_channel_list=[128,64,32,16]",
        "++model.memory_attention.num_layers=1",
        "++model.memory_attention.layer.dim_feedforward=256",
        f"++model.memory_attention.layer.self_attention.feat_sizes=[{feat},{feat}]",
        f"++model.memory_attention.layer.cross_attention.feat_sizes=[{feat},{feat}]",
    ]


TINY_SAM2_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"


def tiny_sam2_segmenter(image_size: int = 256, device: str = "cpu"):
    """A ``sam2`` segmenter with random weights in a tiny Hiera (ckpt_path=None)."""
    import torch

    from refvps.annotate.segmenters.sam2_meta import Sam2Segmenter

    torch.manual_seed(0)
    return Sam2Segmenter.build(
        None,
        config=TINY_SAM2_CONFIG,
        device=device,
        overrides=tiny_sam2_overrides(image_size),
        allow_random_weights=True,
    )


def tiny_hf_sam2(image_size: int = 256):
    """A random ``Sam2VideoModel`` from a tiny ``Sam2VideoConfig`` and its processor."""
    import torch
    from transformers import Sam2VideoConfig, Sam2VideoModel, Sam2VideoProcessor
    from transformers.models.sam2.configuration_sam2 import Sam2HieraDetConfig, Sam2VisionConfig
    from transformers.models.sam2.image_processing_sam2 import Sam2ImageProcessor
    from transformers.models.sam2_video.video_processing_sam2_video import Sam2VideoVideoProcessor

    s = image_size
    backbone = Sam2HieraDetConfig(
        hidden_size=16,
        image_size=[s, s],
        blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[16, 32, 64, 128],
        num_attention_heads_per_stage=[1, 1, 1, 1],
        global_attention_blocks=[3],
        window_size_per_stage=[8, 4, 14, 7],
    )
    vision = Sam2VisionConfig(
        backbone_config=backbone,
        backbone_channel_list=[128, 64, 32, 16],
        backbone_feature_sizes=[[s // 4, s // 4], [s // 8, s // 8], [s // 16, s // 16]],
        fpn_hidden_size=256,
    )
    config = Sam2VideoConfig(
        vision_config=vision,
        prompt_encoder_config={"image_size": s},
        mask_decoder_config={"mlp_dim": 256},
        image_size=s,
        memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=256,
        memory_attention_rope_feat_sizes=[s // 16, s // 16],
    )
    torch.manual_seed(0)
    model = Sam2VideoModel(config).eval()
    size = {"height": s, "width": s}
    processor = Sam2VideoProcessor(
        image_processor=Sam2ImageProcessor(size=size), video_processor=Sam2VideoVideoProcessor(size=size)
    )
    return model, processor


def save_tiny_hf_sam2(folder: str | Path, image_size: int = 256) -> Path:
    """Write a tiny random Hugging Face checkpoint folder (what ``--checkpoint`` of hf-sam2 takes)."""
    folder = Path(folder)
    model, processor = tiny_hf_sam2(image_size)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
