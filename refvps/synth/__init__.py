"""The synthetic benchmark: procedurally rendered dynamic processes in the Ref-VPS format.

>>> from refvps.synth import generate_benchmark
>>> generate_benchmark("data/synthetic", clips=12, seed=0)      # doctest: +SKIP

Every clip shows two processes side by side, the target and a distractor of another kind or colour,
over a textured background filmed by a shaking camera; four referring expressions (two annotator
styles) name the target by kind, colour and side. Seven kinds: smoke, ripples, melting, shatter,
light, wave, fire (see :mod:`refvps.synth.catalogue` for their concepts and categories).
Labels are 1 on the target, 255 (Ignore) on its ambiguous fringe, 0 elsewhere.

The same seed gives byte-identical files; clip ``i`` does not depend on how many clips are made.
This is not Ref-VPS: it is a stand-in that needs no download, for tests, demos and smoke runs.

For inspection, :func:`plan_clip` + :func:`render_clip` render one clip in memory with the target's
presence (density / alpha) and soft (ambiguous) maps; :func:`write_previews` saves preview strips.
"""

from refvps.synth.catalogue import KINDS, TEMPLATES, VARIANTS, Variant, used_taxonomy_ids
from refvps.synth.generate import (
    REFVPS_SCALE,
    generate_benchmark,
    parse_frames,
    parse_size,
    plan_benchmark,
)
from refvps.synth.plan import ClipSpec, kind_for, plan_clip
from refvps.synth.preview import overlay, write_preview, write_previews
from refvps.synth.processes import LabelRule, ProcessSpec, label_from_presence
from refvps.synth.render import ClipRenderer, FrameRender, RenderedClip, render_clip

__all__ = [
    "KINDS",
    "REFVPS_SCALE",
    "TEMPLATES",
    "VARIANTS",
    "ClipRenderer",
    "ClipSpec",
    "FrameRender",
    "LabelRule",
    "ProcessSpec",
    "RenderedClip",
    "Variant",
    "generate_benchmark",
    "kind_for",
    "label_from_presence",
    "overlay",
    "parse_frames",
    "parse_size",
    "plan_benchmark",
    "plan_clip",
    "render_clip",
    "used_taxonomy_ids",
    "write_preview",
    "write_previews",
]
