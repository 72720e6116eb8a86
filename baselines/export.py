"""Exporting a Ref-VPS dataset to the Ref-YouTube-VOS validation layout that RVOS code reads.

Ref-VPS already uses the Ref-YouTube-VOS conventions, but RVOS inference scripts expect the
*competition* layout around them::

    <root>/valid/JPEGImages/<video>/<frame>.jpg                  symlinks to the Ref-VPS frames
    <root>/meta_expressions/valid/meta_expressions.json          {"videos": {video: {"expressions":
                                                                   {exp_id: {"exp", "obj_id"}}, "frames"}}}
    <root>/meta_expressions/test/meta_expressions.json           {"videos": {}}: the scripts subtract
                                                                   the test videos from the valid ones

Frames are symlinked, never copied (a benchmark export costs no disk). Clip ids that a method could
mangle (anything but letters, digits, ``_``, ``-`` and ``.``) are exported under generated names;
:class:`ExportNames` maps them back when the method's output is converted.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from refvps.dataset.format import FRAME_EXT, Clip, Dataset
from refvps.dataset.palette import encode_label_png
from refvps.errors import DatasetError, UsageError
from refvps.fileio import atomic_write_bytes, atomic_write_json, read_json

SPLIT = "valid"
NAMES_FILE = "refvps_names.json"
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def generated_name(clip_id: str) -> str:
    """The exported name of a clip id that cannot be used as it is (stable across runs)."""
    return "refvps_" + hashlib.sha1(clip_id.encode("utf-8")).hexdigest()[:12]


def is_safe_name(name: str) -> bool:
    """Whether a name can be used as a folder/file stem by RVOS code as it is."""
    return bool(_SAFE.match(name)) and not name.endswith(".jpg") and not name.endswith(".png")


@dataclass
class ExportNames:
    """Exported video name for each Ref-VPS clip id, and back.

    Expression ids and frame names are exported unchanged (Ref-VPS uses ``"0".."3"`` and
    ``00000``...), and must be safe names.
    """

    clip_to_video: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_clips(cls, clip_ids: Iterable[str]) -> "ExportNames":
        """Safe ids map to themselves; others to ``refvps_<hash>``, the same in every run."""
        clip_ids = list(clip_ids)
        mapping = {c: c if is_safe_name(c) else generated_name(c) for c in clip_ids}
        if len(set(mapping.values())) != len(mapping):
            raise UsageError(
                "two clips would be exported under the same name",
                hint="rename the clip whose id starts with 'refvps_' (that prefix is used for generated names)",
            )
        return cls(mapping)

    @property
    def video_to_clip(self) -> dict[str, str]:
        return {v: c for c, v in self.clip_to_video.items()}

    def video(self, clip_id: str) -> str:
        return self.clip_to_video[clip_id]

    def to_json(self) -> dict:
        return {"clip_to_video": dict(self.clip_to_video)}

    @classmethod
    def from_json(cls, data: dict) -> "ExportNames":
        return cls(dict(data.get("clip_to_video", {})))

    def save(self, path: Path) -> None:
        atomic_write_json(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> "ExportNames":
        return cls.from_json(read_json(path, what="export name map"))


def check_exportable(clip: Clip) -> None:
    """Expression ids and frame names go into paths unchanged: refuse ones that would break them."""
    for expression in clip.expressions:
        if not is_safe_name(expression.exp_id):
            raise DatasetError(
                f"clip {clip.id}: expression id {expression.exp_id!r} cannot be used as a folder name",
                hint="use expression ids made of letters, digits, '_' or '-' (Ref-VPS uses 0..3)",
                path=clip.root / "meta_expressions.json",
            )
    for name in clip.frame_names:
        if not is_safe_name(name):
            raise DatasetError(
                f"clip {clip.id}: frame name {name!r} cannot be used as a file name",
                hint="name frames 00000, 00001, ... (refvps.dataset.frame_name)",
                path=clip.frames_dir,
            )


def meta_expressions(clips: Sequence[Clip], names: ExportNames) -> dict:
    """The ``meta_expressions.json`` document of the exported clips (Ref-YouTube-VOS keys).

    ``obj_id`` is one label, as Ref-YouTube-VOS writes it (a union target's first): the methods'
    inference reads ``exp`` and ``frames`` only (each adapter's header lists what it reads), and
    their masks are scored against the dataset's own targets, never against this file. Every frame
    is exported, annotated or not: the methods segment whole videos, and scoring picks the frames.
    """
    videos = {}
    for clip in clips:
        videos[names.video(clip.id)] = {
            "expressions": {e.exp_id: {"exp": e.text, "obj_id": str(e.obj_id)} for e in clip.expressions},
            "frames": list(clip.frame_names),
        }
    return {"videos": dict(sorted(videos.items()))}


def link_frames(clip: Clip, target_dir: Path) -> int:
    """Symlink every frame of ``clip`` into ``target_dir`` as ``<frame>.jpg``; returns the count."""
    target_dir.mkdir(parents=True, exist_ok=True)
    for name in clip.frame_names:
        source = clip.frame_path(name).resolve()
        if not source.is_file():
            raise DatasetError(
                f"clip {clip.id}: frame {name} is missing: {clip.frame_path(name)}",
                hint=f"restore the frame, or check the dataset with: refvps validate {clip.root}",
                path=clip.frame_path(name),
            )
        link = target_dir / f"{name}{FRAME_EXT}"
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(source, link)
    return len(clip.frame_names)


def export_refytvos(dataset: Dataset, clip_ids: Sequence[str], root: Path, names: ExportNames) -> Path:
    """Write the Ref-YouTube-VOS validation layout of ``clip_ids`` under ``root`` (see module doc).

    ``root`` is emptied first: it only ever holds an export (symlinks and JSON).
    """
    clips = [dataset.clip(c) for c in clip_ids]
    for clip in clips:
        check_exportable(clip)
    reset_folder(root)
    for clip in clips:
        link_frames(clip, root / SPLIT / "JPEGImages" / names.video(clip.id))
    atomic_write_json(root / "meta_expressions" / SPLIT / "meta_expressions.json", meta_expressions(clips, names))
    # The scripts read a test split and subtract its videos from the valid ones; none here.
    atomic_write_json(root / "meta_expressions" / "test" / "meta_expressions.json", {"videos": {}})
    names.save(root / NAMES_FILE)
    return root


def write_palette_png(path: Path, size: tuple[int, int] = (16, 16)) -> Path:
    """A small all-background DAVIS-palette PNG, for scripts that only read a palette from a file."""
    return atomic_write_bytes(path, encode_label_png(np.zeros((size[1], size[0]), np.uint8)))


def reset_folder(folder: Path) -> None:
    """Empty a folder this package made (exports, shadow working folders), or create it."""
    if folder.is_symlink():
        raise UsageError(f"refusing to empty {folder}: it is a symlink", hint="pass another --workdir", path=folder)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def symlink(link: Path, target: Path) -> Path:
    """Create (or replace) a symlink ``link`` -> ``target``; parents are created."""
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.is_dir():
        shutil.rmtree(link)
    os.symlink(target, link)
    return link


def overlay(source: Path, dest: Path, overrides: dict[str, Path]) -> Path:
    """Make ``dest`` look like folder ``source`` with some entries replaced, using symlinks only.

    ``overrides`` maps a relative path inside ``source`` (``"mymodels/model_scope_diffusers"``) to
    the path it should point to instead. Folders on the way to an override become real folders
    whose other entries link to the originals, so nothing in ``source`` is ever written to.
    """
    dest.mkdir(parents=True, exist_ok=True)
    heads: dict[str, dict[str, Path]] = {}
    direct: dict[str, Path] = {}
    for rel, target in overrides.items():
        head, _, rest = rel.strip("/").partition("/")
        if rest:
            heads.setdefault(head, {})[rest] = target
        else:
            direct[head] = target
    names = set(os.listdir(source)) if source.is_dir() else set()
    for name in sorted(names | set(heads) | set(direct)):
        if name in direct:
            symlink(dest / name, direct[name])
        elif name in heads:
            overlay(source / name, dest / name, heads[name])
        else:
            symlink(dest / name, source / name)
    return dest
