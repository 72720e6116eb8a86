"""Checkpoints: the authors' released files and our own, loaded strictly.

Formats read:

* **authors, ModelScope** — a torch file whose ``unet`` key is the ``UNet3DConditionModel`` state
  dict (``train_REM_MS_*.py`` saves ``{'unet', 'optimizer', 'epoch', 'args', ...}``);
* **authors, Wan** — a torch file whose ``model_state`` key is the state dict of their wrapper:
  ``backbone.dit.*`` (the ``WanTransformer3DModel``) and ``backbone.vae.*`` (the frozen VAE), and
  ``backbone.text_encoder.*`` when saved from their inference wrapper;
* **ours** — a folder with ``rem_config.json`` (the configuration and what the file holds) and
  ``model.safetensors`` with ``denoiser.*`` keys, plus ``vae.*`` and ``text_encoder.*`` (and a
  ``tokenizer/`` folder) when the checkpoint is self-contained, as the tiny models are;
* a bare denoiser state dict (``.safetensors`` or torch file).

A missing, unexpected or mis-shaped key is an error that names the keys: a checkpoint that only
half loads gives a model that silently predicts nonsense.

Memory: torch files are opened with ``mmap=True`` and safetensors files memory-mapped, and tensors
are copied into the model one at a time (in the model's dtype), so loading never holds a second
full copy of the weights. ``save_denoiser_pretrained`` writes the denoiser in diffusers'
``save_pretrained`` layout, which ``UNet3DConditionModel`` / ``WanTransformer3DModel.from_pretrained``
read.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import pickle
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import torch

from refvps.errors import ConfigError
from refvps.fileio import atomic_write_json, atomic_write_with, read_json
from rem_model.config import CONFIG_FILE, REMConfig

if TYPE_CHECKING:
    from rem_model.model import REMModel

WEIGHTS_FILE = "model.safetensors"
TOKENIZER_DIR = "tokenizer"
FORMAT_NAME = "refvps-rem"
FORMAT_VERSION = 1
# Wrapper prefixes that DDP, FSDP and activation checkpointing put in front of parameter names.
_WRAPPER_SEGMENTS = ("module.", "_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod.")
_SHOWN = 8


@dataclass
class CheckpointInfo:
    """What a checkpoint path holds, before anything is loaded."""

    path: Path
    kind: str  # "ours", "authors-ms", "authors-wan", "state-dict"
    config: REMConfig | None = None  # ours only
    components: tuple[str, ...] = ("denoiser",)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def self_contained(self) -> bool:
        return {"denoiser", "vae", "text_encoder"} <= set(self.components)


def _strip_wrappers(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for segment in _WRAPPER_SEGMENTS:
            if key.startswith(segment):
                key = key[len(segment) :]
                changed = True
        for segment in _WRAPPER_SEGMENTS[1:]:
            if f".{segment}" in key:
                key = key.replace(f".{segment}", ".")
                changed = True
    return key


def _names(keys, limit: int = _SHOWN) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


class LazyTensors(Mapping[str, torch.Tensor]):
    """Tensors of a memory-mapped safetensors file, each read only when it is asked for.

    ``names`` maps the keys this view shows to the keys in the file (a component's view of our file).
    """

    def __init__(self, handle: Any, names: Mapping[str, str]):
        self._handle = handle
        self._names = dict(names)

    def __getitem__(self, key: str) -> torch.Tensor:
        return self._handle.get_tensor(self._names[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self._handle.get_slice(self._names[key]).get_shape())


def _shape(state: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    return state.shape(key) if isinstance(state, LazyTensors) else tuple(state[key].shape)


def check_state_dict(module: torch.nn.Module, state: Mapping[str, torch.Tensor], *, what: str, path: Path) -> None:
    """Raise :class:`ConfigError` naming every missing, unexpected or mis-shaped key."""
    expected = module.state_dict()
    missing = set(expected) - set(state)
    unexpected = set(state) - set(expected)
    mis_shaped = [
        f"{k} {_shape(state, k)} vs {tuple(expected[k].shape)}"
        for k in set(expected) & set(state)
        if _shape(state, k) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_names(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_names(unexpected)}")
    if mis_shaped:
        problems.append(f"{len(mis_shaped)} key(s) of the wrong shape (checkpoint vs model): {_names(mis_shaped)}")
    if problems:
        raise ConfigError(
            f"checkpoint {path} does not fit the {what}: " + "; ".join(problems),
            hint="check that --config names the backbone the checkpoint was trained from "
            "(e.g. rem-ms for the authors' ModelScope file, rem-wan-14b for their Wan file)",
            path=path,
        )


def _torch_load(path: Path, trust: bool) -> Any:
    """Load a torch file; pickled objects beyond tensors only with ``trust`` (pickle runs code)."""
    unreadable = ConfigError(
        f"cannot read checkpoint {path}: it is not a file written by torch.save",
        hint="pass the authors' .pth file, a .safetensors state dict, or a folder written by training "
        "(OUTPUT_DIR/final); a partly downloaded file is unreadable too",
        path=path,
    )
    try:
        with torch.serialization.safe_globals([argparse.Namespace, _dt.datetime, Path, type(Path())]):
            return _load_mapped(path, weights_only=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot read checkpoint {path}: {exc.strerror or exc}", hint="check that the file is readable", path=path
        ) from None
    except pickle.UnpicklingError as exc:
        # torch's weights-only loader refuses classes it does not know ("Unsupported global") and
        # files that are no pickle at all; only the first can be loaded by trusting the file.
        if "Unsupported global" not in str(exc):
            raise unreadable from None
        if not trust:
            raise ConfigError(
                f"checkpoint {path} holds pickled Python objects beyond tensors",
                hint="load it only if you trust its source: add --trust-checkpoint (it unpickles arbitrary objects)",
                path=path,
            ) from None
    except Exception:  # noqa: BLE001 - arbitrary bytes fail the unpickler in many ways (KeyError, struct.error, ...)
        raise unreadable from None
    try:
        return _load_mapped(path, weights_only=False)
    except Exception:  # noqa: BLE001 - as above
        raise unreadable from None


def _load_mapped(path: Path, *, weights_only: bool) -> Any:
    """``torch.load`` with the file memory-mapped (tensors are read when touched); files in torch's
    legacy (pre-zip) format cannot be mapped and are read whole."""
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
    return torch.load(path, map_location="cpu", weights_only=weights_only)


def _read_safetensors(path: Path) -> LazyTensors:
    from safetensors import SafetensorError, safe_open

    try:
        handle = safe_open(str(path), framework="pt", device="cpu")
        return LazyTensors(handle, {key: key for key in handle.keys()})
    except (SafetensorError, OSError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}", hint="is the file complete?", path=path) from None


def inspect_checkpoint(path: str | Path) -> CheckpointInfo:
    """Recognise a checkpoint's format from its path (and, for ours, its rem_config.json)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(
            f"checkpoint not found: {path}",
            hint="pass the authors' .pth file, a .safetensors state dict, or a folder written by training "
            "(OUTPUT_DIR/final)",
            path=path,
        )
    if path.is_dir():
        meta_path = path / CONFIG_FILE
        if not meta_path.is_file() or not (path / WEIGHTS_FILE).is_file():
            raise ConfigError(
                f"{path} is not a REM checkpoint folder (it needs {CONFIG_FILE} and {WEIGHTS_FILE})",
                hint="pass the folder written by training (its 'final' folder), or a .pth/.safetensors file",
                path=path,
            )
        meta = read_json(meta_path, what="REM checkpoint config")
        if not isinstance(meta, dict) or "config" not in meta:
            raise ConfigError(
                f"{meta_path} lacks a 'config' entry",
                hint="the folder was not written by rem_model.save_checkpoint (training writes OUTPUT_DIR/final)",
                path=meta_path,
            )
        config = REMConfig.from_json(meta["config"], source=meta_path)
        components = tuple(meta.get("components", ["denoiser"]))
        return CheckpointInfo(path, "ours", config, components, meta)
    if path.suffix == ".safetensors":
        return CheckpointInfo(path, "state-dict")
    return CheckpointInfo(path, "torch")


def read_checkpoint(info: CheckpointInfo, *, trust: bool = False) -> dict[str, dict[str, torch.Tensor]]:
    """The checkpoint's tensors split by component: ``{"denoiser": {...}, "vae": {...}, ...}``."""
    if info.kind == "ours":
        flat = _read_safetensors(info.path / WEIGHTS_FILE)
        return _split_components(flat, info.path / WEIGHTS_FILE)
    if info.kind == "state-dict":
        flat = _read_safetensors(info.path)
        if any(k.startswith("denoiser.") for k in flat):
            return _split_components(flat, info.path)
        return {"denoiser": LazyTensors(flat._handle, {_strip_wrappers(k): k for k in flat})}
    data = _torch_load(info.path, trust)
    if isinstance(data, Mapping) and "unet" in data and isinstance(data["unet"], Mapping):
        info.kind = "authors-ms"
        return {"denoiser": {_strip_wrappers(k): v for k, v in data["unet"].items()}}
    if isinstance(data, Mapping) and "model_state" in data and isinstance(data["model_state"], Mapping):
        info.kind = "authors-wan"
        return _split_authors_wan(data["model_state"], info.path)
    if isinstance(data, Mapping) and data and all(isinstance(v, torch.Tensor) for v in data.values()):
        info.kind = "state-dict"
        return {"denoiser": {_strip_wrappers(k): v for k, v in data.items()}}
    keys = list(data)[:10] if isinstance(data, Mapping) else type(data).__name__
    raise ConfigError(
        f"checkpoint {info.path} is in no known format (top-level: {keys})",
        hint="expected the authors' file (key 'unet' or 'model_state'), our folder, or a state dict",
        path=info.path,
    )


# The authors' Wan wrapper (models/want2v_wrapper.py) keeps the backbone under these prefixes.
_AUTHORS_WAN_PREFIXES = {"backbone.dit.": "denoiser", "backbone.vae.": "vae", "backbone.text_encoder.": "text_encoder"}


def _split_authors_wan(state: Mapping[str, torch.Tensor], path: Path) -> dict[str, dict[str, torch.Tensor]]:
    parts: dict[str, dict[str, torch.Tensor]] = {}
    other = []
    for key, value in state.items():
        key = _strip_wrappers(key)
        prefix = next((p for p in _AUTHORS_WAN_PREFIXES if key.startswith(p)), None)
        if prefix is None:
            other.append(key)
            continue
        parts.setdefault(_AUTHORS_WAN_PREFIXES[prefix], {})[key[len(prefix) :]] = value
    if other or "denoiser" not in parts:
        raise ConfigError(
            f"checkpoint {path}: 'model_state' has keys outside {', '.join(_AUTHORS_WAN_PREFIXES)}: "
            + (_names(other) if other else "(no backbone.dit keys)"),
            hint="this is not a checkpoint of the authors' Wan wrapper",
            path=path,
        )
    return parts


def _split_components(flat: LazyTensors, path: Path) -> dict[str, LazyTensors]:
    names: dict[str, dict[str, str]] = {}
    for key in flat:
        component, _, rest = key.partition(".")
        if component not in ("denoiser", "vae", "text_encoder") or not rest:
            raise ConfigError(
                f"{path}: key {key!r} belongs to no component (denoiser., vae., text_encoder.)",
                hint="the file was not written by rem_model.save_checkpoint",
                path=path,
            )
        names.setdefault(component, {})[rest] = key
    return {component: LazyTensors(flat._handle, keys) for component, keys in names.items()}


def load_into(model: "REMModel", parts: Mapping[str, Mapping[str, torch.Tensor]], path: Path) -> list[str]:
    """Load each component strictly (every key, every shape), one tensor at a time into the model's
    own tensors (so in the model's dtype, parts kept in float32 included); returns the components."""
    modules = {"denoiser": model.denoiser, "vae": model.vae, "text_encoder": model.text_encoder}
    loaded = []
    for component, state in parts.items():
        module = modules[component]
        check_state_dict(module, state, what=f"{model.config.name} {component}", path=path)
        targets = module.state_dict(keep_vars=True)
        with torch.no_grad():
            for key in state:
                targets[key].copy_(state[key])
        loaded.append(component)
    return loaded


# VAE settings that live in its config, not in its weights: a self-contained checkpoint must carry them.
_VAE_SCALING_KEYS = ("scaling_factor", "shift_factor", "latents_mean", "latents_std")


def vae_settings(vae: torch.nn.Module, declared: Mapping[str, Any]) -> dict[str, Any]:
    """``declared`` (the REM config's VAE arguments) updated with the scaling the VAE really uses.

    A VAE whose ``scaling_factor`` (or Wan ``latents_mean/std``) was set after it was built, e.g.
    by ``register_to_config``, would otherwise be rebuilt from the checkpoint with the old value.
    """
    import inspect

    defaults = inspect.signature(type(vae).__init__).parameters
    settings = dict(declared)
    for key in _VAE_SCALING_KEYS:
        value = vae.config.get(key)
        if value is None:
            continue
        value = list(value) if isinstance(value, (list, tuple)) else value
        default = defaults[key].default if key in defaults else None
        default = list(default) if isinstance(default, (list, tuple)) else default
        if value != settings.get(key, default):
            settings[key] = value
    return settings


def save_checkpoint(
    model: "REMModel",
    out: str | Path,
    *,
    self_contained: bool | None = None,
    metadata: Mapping[str, Any] | None = None,
    denoiser_state: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Write our checkpoint folder: ``rem_config.json`` + ``model.safetensors`` (+ ``tokenizer/``).

    ``self_contained`` stores the frozen VAE and text encoder too (default: only for models with
    no pretrained backbone to come from, i.e. those without a hub id). LoRA is merged in;
    ``denoiser_state`` is a full state dict of the denoiser (default: the model's own).
    """
    from safetensors.torch import save

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if self_contained is None:
        self_contained = model.config.hub_id is None
    state = model.merged_denoiser_state_dict(dict(denoiser_state) if denoiser_state is not None else None)
    tensors = {f"denoiser.{k}": v.detach().cpu().contiguous() for k, v in state.items()}
    components = ["denoiser"]
    if self_contained:
        for name, module in (("vae", model.vae), ("text_encoder", model.text_encoder)):
            tensors.update({f"{name}.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()})
            components.append(name)
        model.tokenizer.save_pretrained(str(out / TOKENIZER_DIR))
        components.append("tokenizer")
    tensors = _unshared(tensors)
    atomic_write_with(out / WEIGHTS_FILE, lambda buf: buf.write(save(tensors, metadata={"format": FORMAT_NAME})))
    config = model.config
    if self_contained:
        config = config.replace(vae=vae_settings(model.vae, config.vae))
    meta = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "components": components,
        "config": config.to_json(),
        **(dict(metadata) if metadata else {}),
    }
    atomic_write_json(out / CONFIG_FILE, meta)
    return out


def _unshared(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tied weights (UMT5's shared embedding is also its encoder's) as separate copies: safetensors
    refuses tensors that share memory; each key loads back into the same tied parameter."""
    seen: set[tuple[int, int]] = set()
    out = {}
    for key, value in tensors.items():
        where = (value.untyped_storage().data_ptr(), value.storage_offset())
        out[key] = value.clone() if where in seen else value
        seen.add(where)
    return out


# Where a diffusers pipeline folder keeps the denoiser of each family.
DIFFUSERS_SUBFOLDER = {"modelscope": "unet", "wan": "transformer"}


def save_denoiser_pretrained(
    model: "REMModel", out: str | Path, denoiser_state: Mapping[str, torch.Tensor] | None = None
) -> Path:
    """Write the denoiser (LoRA merged) in diffusers' ``save_pretrained`` layout at
    ``out/unet`` (ModelScope) or ``out/transformer`` (Wan): ``config.json`` + safetensors weights, so
    that ``UNet3DConditionModel.from_pretrained(out, subfolder="unet")`` (or
    ``WanTransformer3DModel.from_pretrained(out, subfolder="transformer")``) reads it, and a copy of
    the backbone's pipeline folder with this folder swapped in is a pipeline with REM's denoiser.

    ``denoiser_state`` is a full state dict (e.g. gathered from FSDP shards); default: the model's.
    The module that is saved is built on the meta device and takes the tensors as they are (no copy).
    """
    from accelerate import init_empty_weights

    folder = Path(out) / DIFFUSERS_SUBFOLDER[model.config.family]
    state = model.merged_denoiser_state_dict(dict(denoiser_state) if denoiser_state is not None else None)
    with init_empty_weights():  # parameters on the meta device; buffers (e.g. rotary tables) real
        fresh = type(model.denoiser).from_config(model.denoiser.config)
    fresh.load_state_dict({k: v.detach().cpu().contiguous() for k, v in state.items()}, strict=True, assign=True)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    fresh.save_pretrained(str(partial))
    if folder.exists():
        shutil.rmtree(folder)
    partial.rename(folder)
    return folder
