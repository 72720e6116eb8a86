"""SAM2 through transformers: ``Sam2VideoModel`` + ``Sam2VideoProcessor`` from a Hugging Face folder.

Upstream: transformers ``models/sam2_video`` (4.57+). The checkpoint is a folder written by
``save_pretrained`` (``config.json``, ``model.safetensors``, processor files) or, on a machine with
internet, a hub id such as ``facebook/sam2.1-hiera-large``.

Differences from the documented recipe, and why:

* Frames are processed lazily: the inference session's ``processed_frames`` is a mapping that
  resizes and normalises a frame when the model asks for it (keeping a few), instead of
  ``init_video_session(video=...)`` processing the whole clip up front.
* A frame that receives clicks or a hand-fixed mask after it was tracked is stored as a
  conditioning frame (as ``add_all_frames_to_correct_as_cond`` does in Meta's package), so a later
  propagation keeps it.
* Inputs on a frame are run at once (``model(session, frame_idx)``): transformers consumes a frame's
  new inputs only when it runs that frame, so several prompted frames must each be run when added.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from refvps.annotate.frames import FrameSource, LazyFrames
from refvps.annotate.segmenters.base import Segmenter, SegmenterInfo, SegmenterSession, check_points
from refvps.errors import ConfigError, UsageError, require

OBJ_ID = 1


class HfSam2Segmenter(Segmenter):
    name = "hf-sam2"

    def __init__(
        self,
        model,
        processor,
        *,
        device: str,
        checkpoint: str | None,
        dtype=None,
        offload_state: bool = False,
        frame_cache: int = 8,
    ):
        import torch

        self.device = device
        self.dtype = dtype or torch.float32
        self.model = model.to(device=device, dtype=self.dtype).eval()
        self.processor = processor
        self.checkpoint = checkpoint
        self.offload_state = offload_state
        self.frame_cache = frame_cache

    @classmethod
    def build(
        cls,
        checkpoint: str | Path | None,
        *,
        device: str = "auto",
        dtype: str | None = None,
        offload_state: bool | None = None,
        frame_cache: int = 8,
    ) -> "HfSam2Segmenter":
        from refvps.annotate.segmenters import resolve_device

        if checkpoint is None:
            raise UsageError(
                "--segmenter hf-sam2 needs --checkpoint: a Hugging Face folder (or hub id, e.g. facebook/sam2.1-hiera-large)",
                hint="see docs/ANNOTATE.md, 'SAM2 checkpoints', for copying one onto an offline machine",
            )
        path = Path(checkpoint).expanduser()
        local = path.exists()
        if local and not (path / "config.json").is_file():
            raise ConfigError(
                f"{path} is not a Hugging Face checkpoint folder (no config.json)",
                hint="pass the folder written by save_pretrained / huggingface-cli download",
                path=path,
            )
        if not local and (str(checkpoint).startswith((".", "/", "~")) or str(checkpoint).count("/") != 1):
            raise ConfigError(f"checkpoint folder not found: {checkpoint}", hint="check the path", path=path)
        require("transformers", "annotate", "the hf-sam2 segmenter")
        import torch
        from transformers import Sam2VideoModel, Sam2VideoProcessor

        device = resolve_device(device)
        torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}.get(
            dtype or ("bfloat16" if device.startswith("cuda") else "float32")
        )
        if torch_dtype is None:
            raise UsageError(f"unknown dtype {dtype!r}", hint="use float32, bfloat16 or float16")
        source = str(path) if local else str(checkpoint)
        try:
            model = Sam2VideoModel.from_pretrained(source, local_files_only=local)
            processor = Sam2VideoProcessor.from_pretrained(source, local_files_only=local)
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(
                f"cannot load a SAM2 video model from {checkpoint}: {exc}",
                hint="the folder must hold a Sam2VideoModel (config.json model_type 'sam2_video' "
                "or 'sam2') and its processor files",
                path=path if local else None,
            ) from None
        if offload_state is None:
            offload_state = device.startswith("cuda")
        return cls(
            model,
            processor,
            device=device,
            checkpoint=source,
            dtype=torch_dtype,
            offload_state=offload_state,
            frame_cache=frame_cache,
        )

    def info(self) -> SegmenterInfo:
        name = Path(self.checkpoint).name if self.checkpoint else "random weights (test)"
        return SegmenterInfo(
            name=self.name,
            description="SAM2 (transformers Sam2VideoModel)",
            device=self.device,
            checkpoint=name,
            details={
                "dtype": str(self.dtype).replace("torch.", ""),
                "offload_state_to_cpu": self.offload_state,
                "image_size": int(self.processor.target_size),
            },
        )

    def open(self, frames: FrameSource) -> "HfSam2Session":
        return HfSam2Session(frames, self)


class LazyProcessedFrames(LazyFrames, Mapping):
    """``processed_frames`` of an inference session, computed per frame on first use."""

    def __init__(self, frames: FrameSource, video_processor, dtype, cache_size: int = 8):
        self.video_processor = video_processor
        self.dtype = dtype
        super().__init__(frames, cache_size)

    def _load(self, index: int):
        rgb = self.frames[index]
        batch = self.video_processor(videos=[np.array(rgb[None])], return_tensors="pt")  # a writable copy
        return batch.pixel_values_videos[0][0].to(self.dtype)

    def __getitem__(self, index):
        index = int(index)
        if not 0 <= index < len(self.frames):
            raise KeyError(index)
        return self._cache[index]

    def __iter__(self):
        return iter(range(len(self.frames)))


class HfSam2Session(SegmenterSession):
    def __init__(self, frames: FrameSource, segmenter: HfSam2Segmenter):
        super().__init__(frames)
        self.seg = segmenter
        self.model = segmenter.model
        self.processor = segmenter.processor
        height, width = frames.shape
        state_device = "cpu" if segmenter.offload_state else segmenter.device
        self.session = self.processor.init_video_session(
            video=None,
            inference_device=segmenter.device,
            inference_state_device=state_device,
            video_storage_device="cpu",
            dtype=segmenter.dtype,
        )
        self.images = LazyProcessedFrames(
            frames, self.processor.video_processor, segmenter.dtype, segmenter.frame_cache
        )
        self.session.processed_frames = self.images
        self.session.video_height = height
        self.session.video_width = width

    def _mask(self, pred_masks) -> np.ndarray:
        height, width = self.frames.shape
        masks = self.processor.post_process_masks(
            [pred_masks.float().cpu()], original_sizes=[[height, width]], binarize=True
        )[0]
        return masks[0, 0].numpy().astype(bool)

    def _obj_idx(self) -> int | None:
        return self.session._obj_id_to_idx.get(OBJ_ID)

    def _run_frame(self, frame: int):
        import torch

        with torch.inference_mode():
            output = self.model(inference_session=self.session, frame_idx=frame)
        # A corrected frame that had been tracked is stored as non-conditioning; promote it, so
        # propagation keeps it (what add_all_frames_to_correct_as_cond does in Meta's package).
        outputs = self.session.output_dict_per_obj[self._obj_idx()]
        if frame in outputs["non_cond_frame_outputs"]:
            outputs["cond_frame_outputs"][frame] = outputs["non_cond_frame_outputs"].pop(frame)
        return output

    def add_points(self, frame: int, points: Sequence[Sequence[float]], labels: Sequence[int]) -> np.ndarray:
        check_points(points, labels, self.frames.shape)
        self.processor.add_inputs_to_inference_session(
            self.session,
            frame_idx=frame,
            obj_ids=OBJ_ID,
            input_points=[[[[float(x), float(y)] for x, y in points]]],
            input_labels=[[[int(v) for v in labels]]],
            clear_old_inputs=True,
        )
        return self._mask(self._run_frame(frame).pred_masks)

    def add_mask(self, frame: int, mask: np.ndarray) -> None:
        self.processor.add_inputs_to_inference_session(
            self.session,
            frame_idx=frame,
            obj_ids=OBJ_ID,
            input_masks=np.asarray(mask, bool),
        )
        self._run_frame(frame)

    def clear_prompts(self, frame: int) -> None:
        obj_idx = self._obj_idx()
        if obj_idx is None:
            return
        self.session.remove_point_inputs(obj_idx, frame)
        self.session.remove_mask_inputs(obj_idx, frame)
        outputs = self.session.output_dict_per_obj[obj_idx]
        outputs["cond_frame_outputs"].pop(frame, None)
        outputs["non_cond_frame_outputs"].pop(frame, None)
        self.session.frames_tracked_per_obj[obj_idx].pop(frame, None)

    def propagate(
        self, start: int, reverse: bool, start_mask: np.ndarray | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        obj_idx = self._obj_idx()
        if obj_idx is None or not self.session.output_dict_per_obj[obj_idx]["cond_frame_outputs"]:
            raise RuntimeError("SAM2 has no prompt yet; click on the target first")
        iterator = self.model.propagate_in_video_iterator(self.session, start_frame_idx=start, reverse=reverse)
        try:
            for output in iterator:
                yield int(output.frame_idx), self._mask(output.pred_masks)
        finally:
            iterator.close()

    def close(self) -> None:
        try:
            self.session.reset_inference_session()
        except Exception:  # noqa: BLE001 - best effort; the session is dropped anyway
            pass
        self.session = None
        if self.seg.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()
