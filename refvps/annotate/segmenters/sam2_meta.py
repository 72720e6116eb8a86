"""SAM2 through Meta's ``sam2`` package (``SAM2VideoPredictor``) with its ``.pt`` checkpoints.

Upstream: https://github.com/facebookresearch/sam2 (package ``sam2`` 1.1.0 on PyPI). The model is
built by ``build_sam2_video_predictor(config_name, ckpt_path)`` from a Hydra config *name* such as
``configs/sam2.1/sam2.1_hiera_l.yaml``; when none is given, it is read off the checkpoint's file name.

What is changed from the notebook recipe, and why:

* ``add_all_frames_to_correct_as_cond=true``: a frame that gets corrective clicks (or a mask fixed by
  hand) after tracking becomes a conditioning frame, so re-propagation keeps it instead of
  overwriting it with a worse mask (facebookresearch/sam2 issues #546, #719, #731).
* Frames are loaded lazily (a small cache of resized frames) instead of SAM2's ``init_state``
  loading the whole clip as float tensors up front (5 GB for 17 s of video; issues #196, #264, #456);
  the per-frame state is offloaded to the CPU on a GPU (``offload_state_to_cpu``).
* Propagation runs both ways (``reverse=True`` for backwards) from any frame.
"""

from __future__ import annotations

import contextlib
import re
import threading
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from refvps.annotate.frames import FrameSource, LazyFrames
from refvps.annotate.segmenters.base import Segmenter, SegmenterInfo, SegmenterSession, check_points
from refvps.errors import ConfigError, MissingDependencyError, UsageError

OBJ_ID = 1
CORRECTION_OVERRIDES = ("++model.add_all_frames_to_correct_as_cond=true",)
SAM2_INSTALL = "SAM2_BUILD_CUDA=0 pip install --no-build-isolation 'sam2>=1.0'"

# checkpoint file name -> Hydra config name (Meta's release names; see sam2/build_sam.py).
_SIZE_LETTERS = {"tiny": "t", "small": "s", "base_plus": "b+", "b+": "b+", "large": "l", "t": "t", "s": "s", "l": "l"}

_patch_lock = threading.Lock()


def _quiet_tqdm(iterable, *args, **kwargs):
    return iterable


def config_for_checkpoint(checkpoint: str | Path) -> str | None:
    """The Hydra config name of a released checkpoint, from its file name (None if it cannot tell)."""
    stem = Path(checkpoint).stem.lower()
    match = re.search(r"sam2(\.1)?[_-]hiera[_-](tiny|small|base_plus|b\+|large|t|s|l)\b", stem)
    if not match:
        return None
    version = "sam2.1" if match.group(1) else "sam2"
    letter = _SIZE_LETTERS[match.group(2)]
    return f"configs/{version}/{version}_hiera_{letter}.yaml"


def available_configs() -> list[str]:
    """The Hydra config names shipped with the installed ``sam2`` package."""
    try:
        import sam2
    except ImportError:
        return []
    base = Path(sam2.__file__).parent
    return sorted(
        str(p.relative_to(base)) for p in (base / "configs").glob("sam2*/*.yaml") if "training" not in p.parent.name
    )


def _import_sam2():
    try:
        import sam2  # noqa: F401  (initialises Hydra's config search path)
        from sam2.build_sam import build_sam2_video_predictor
    except ImportError as exc:
        error = MissingDependencyError("sam2", "annotate", "the sam2 segmenter")
        error.hint = (
            f"install Meta's SAM2 package into this environment (PyTorch first): {SAM2_INSTALL}; "
            "or use --segmenter hf-sam2 (transformers) or classic"
        )
        raise error from exc
    return build_sam2_video_predictor


def _load_weights(predictor, checkpoint: Path, config: str) -> None:
    """Load a release checkpoint ({'model': state_dict}) into the predictor, strictly."""
    import torch

    try:
        data = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise ConfigError(
            f"cannot read the SAM2 checkpoint {checkpoint}: {type(exc).__name__}: {exc}",
            hint="download it again; it is a PyTorch file holding {'model': state_dict}",
            path=checkpoint,
        ) from None
    state = data.get("model") if isinstance(data, dict) else None
    if not isinstance(state, dict):
        raise ConfigError(
            f"{checkpoint} holds no 'model' state dict; it is not a SAM2 release checkpoint",
            hint="use one of Meta's sam2/sam2.1 .pt files, or --segmenter hf-sam2 for a Hugging Face folder",
            path=checkpoint,
        )
    try:
        result = predictor.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise ConfigError(
            f"{checkpoint.name} does not fit the SAM2 config {config}: {str(exc).splitlines()[0]}",
            hint="pick the config of the same size and version (sam2 / sam2.1) as the checkpoint",
            path=checkpoint,
        ) from None
    if result.missing_keys or result.unexpected_keys:
        sample = (result.missing_keys or result.unexpected_keys)[:3]
        raise ConfigError(
            f"{checkpoint.name} does not fit the SAM2 config {config}: {len(result.missing_keys)} weights missing, "
            f"{len(result.unexpected_keys)} unexpected (e.g. {', '.join(sample)})",
            hint="pick the config of the same size and version (sam2 / sam2.1) as the checkpoint",
            path=checkpoint,
        )


class Sam2Segmenter(Segmenter):
    name = "sam2"

    def __init__(
        self, predictor, *, device: str, checkpoint: str | None, config: str, offload_state: bool, frame_cache: int = 8
    ):
        self.predictor = predictor
        self.device = device
        self.checkpoint = checkpoint
        self.config = config
        self.offload_state = offload_state
        self.frame_cache = frame_cache

    @classmethod
    def build(
        cls,
        checkpoint: str | Path | None,
        *,
        config: str | None = None,
        device: str = "auto",
        overrides: Sequence[str] = (),
        allow_random_weights: bool = False,
        offload_state: bool | None = None,
        frame_cache: int = 8,
    ) -> "Sam2Segmenter":
        """Build the predictor from a checkpoint and a Hydra config name (see the module doc)."""
        from refvps.annotate.segmenters import resolve_device

        if checkpoint is None and not allow_random_weights:
            raise UsageError(
                "--segmenter sam2 needs --checkpoint, a SAM2 .pt file such as sam2.1_hiera_large.pt",
                hint="download one on a machine with internet (docs/ANNOTATE.md, 'SAM2 checkpoints') and copy it here",
            )
        if checkpoint is not None:
            checkpoint = Path(checkpoint).expanduser()
            if not checkpoint.is_file():
                raise ConfigError(
                    f"SAM2 checkpoint not found: {checkpoint}",
                    hint="pass the path of a .pt file from Meta's release",
                    path=checkpoint,
                )
        build_predictor = _import_sam2()
        if config is None:
            config = config_for_checkpoint(checkpoint) if checkpoint is not None else None
            if config is None:
                raise UsageError(
                    f"cannot tell the SAM2 config of {checkpoint.name if checkpoint else 'random weights'}",
                    hint="pass --sam2-config, one of: " + ", ".join(available_configs()),
                )
        device = resolve_device(device)
        if offload_state is None:
            offload_state = device.startswith("cuda")
        from hydra.errors import MissingConfigException

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                # Weights are loaded below, by us, so a wrong file gets an error that says what is wrong.
                predictor = build_predictor(
                    config, None, device=device, hydra_overrides_extra=list(CORRECTION_OVERRIDES) + list(overrides)
                )
        except MissingConfigException:
            raise UsageError(
                f"no SAM2 config named {config!r}",
                hint="use a Hydra config name, one of: " + ", ".join(available_configs()),
            ) from None
        if checkpoint is not None:
            _load_weights(predictor, checkpoint, config)
        return cls(
            predictor,
            device=device,
            checkpoint=str(checkpoint) if checkpoint else None,
            config=config,
            offload_state=offload_state,
            frame_cache=frame_cache,
        )

    def info(self) -> SegmenterInfo:
        return SegmenterInfo(
            name=self.name,
            description="SAM2 (Meta's sam2 package)",
            device=self.device,
            checkpoint=Path(self.checkpoint).name if self.checkpoint else "random weights (test)",
            config=self.config,
            details={"offload_state_to_cpu": self.offload_state, "image_size": int(self.predictor.image_size)},
        )

    def open(self, frames: FrameSource) -> "Sam2Session":
        return Sam2Session(frames, self)

    def autocast(self):
        import torch

        if self.device.startswith("cuda"):
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()


class LazySam2Frames(LazyFrames):
    """What ``inference_state['images']`` holds: frames resized and normalised on first use, as SAM2 does."""

    def __init__(self, frames: FrameSource, image_size: int, cache_size: int = 8):
        import torch

        super().__init__(frames, cache_size)
        self.image_size = int(image_size)
        self.mean = torch.tensor((0.485, 0.456, 0.406), dtype=torch.float32)[:, None, None]
        self.std = torch.tensor((0.229, 0.224, 0.225), dtype=torch.float32)[:, None, None]

    def _load(self, index: int):
        import torch
        from PIL import Image

        # Same resize as sam2.utils.misc._load_img_as_tensor (PIL's default filter, square).
        image = Image.fromarray(self.frames[index]).resize((self.image_size, self.image_size))
        tensor = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        return (tensor - self.mean) / self.std

    def __getitem__(self, index: int):
        return self._cache[int(index)]


class Sam2Session(SegmenterSession):
    def __init__(self, frames: FrameSource, segmenter: Sam2Segmenter):
        super().__init__(frames)
        self.seg = segmenter
        self.predictor = segmenter.predictor
        self.images = LazySam2Frames(frames, self.predictor.image_size, segmenter.frame_cache)
        self.state = self._init_state()

    def _init_state(self):
        import sam2.sam2_video_predictor as video_module

        height, width = self.frames.shape
        images = self.images

        def lazy_loader(**_kwargs):
            return images, height, width

        folder = str(self.frames.paths[0].parent)
        with _patch_lock, warnings.catch_warnings(), self.seg.autocast():
            warnings.simplefilter("ignore", UserWarning)
            original = getattr(video_module, "load_video_frames", None)
            if original is not None:
                video_module.load_video_frames = lazy_loader
            try:
                state = self.predictor.init_state(
                    video_path=folder,
                    offload_video_to_cpu=True,
                    offload_state_to_cpu=self.seg.offload_state,
                )
            finally:
                if original is not None:
                    video_module.load_video_frames = original
        # If a future sam2 loads frames another way, it still works (just without lazy loading).
        self.lazy = state.get("images") is images
        # SAM2 draws its own tqdm bar per propagation; the page and the CLI show progress already.
        if hasattr(video_module, "tqdm"):
            video_module.tqdm = _quiet_tqdm
        return state

    def _has_object(self) -> bool:
        return OBJ_ID in self.state["obj_id_to_idx"]

    @staticmethod
    def _mask(masks) -> np.ndarray:
        return (masks[0, 0] > 0.0).float().cpu().numpy().astype(bool)

    def add_points(self, frame: int, points: Sequence[Sequence[float]], labels: Sequence[int]) -> np.ndarray:
        check_points(points, labels, self.frames.shape)
        with warnings.catch_warnings(), self.seg.autocast():
            warnings.simplefilter("ignore", UserWarning)
            _, _, masks = self.predictor.add_new_points_or_box(
                self.state,
                frame_idx=frame,
                obj_id=OBJ_ID,
                points=np.asarray(points, np.float32).reshape(-1, 2),
                labels=np.asarray(labels, np.int32),
                clear_old_points=True,
            )
        return self._mask(masks)

    def add_mask(self, frame: int, mask: np.ndarray) -> None:
        with warnings.catch_warnings(), self.seg.autocast():
            warnings.simplefilter("ignore", UserWarning)
            self.predictor.add_new_mask(self.state, frame_idx=frame, obj_id=OBJ_ID, mask=np.asarray(mask, bool))

    def clear_prompts(self, frame: int) -> None:
        if not self._has_object():
            return
        with warnings.catch_warnings(), self.seg.autocast():
            warnings.simplefilter("ignore", UserWarning)
            self.predictor.clear_all_prompts_in_frame(self.state, frame, OBJ_ID, need_output=False)

    def propagate(
        self, start: int, reverse: bool, start_mask: np.ndarray | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        if not self._has_object():
            raise RuntimeError("SAM2 has no prompt yet; click on the target first")
        with warnings.catch_warnings(), self.seg.autocast():
            warnings.simplefilter("ignore", UserWarning)
            iterator = self.predictor.propagate_in_video(self.state, start_frame_idx=start, reverse=reverse)
            try:
                for frame, _obj_ids, masks in iterator:
                    yield int(frame), self._mask(masks)
            finally:
                iterator.close()

    def close(self) -> None:
        try:
            self.predictor.reset_state(self.state)
        finally:
            self.state = None
            if self.seg.device.startswith("cuda"):
                import torch

                torch.cuda.empty_cache()
