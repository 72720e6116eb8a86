"""Planning one synthetic clip: what the target and the distractor are, when and where, and the text.

A clip is fully determined by (seed, index, size, frames): :func:`plan_clip` draws every choice from
streams keyed by those numbers, so clip ``i`` of seed ``s`` is the same whether 12 or 111 clips are
made. Kinds cycle through a seed-dependent order, so any 7 consecutive clips show every kind.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refvps.dataset.format import REFVPS_FPS, ClipMeta, Expression, Source
from refvps.synth.catalogue import KINDS, SIDES, TEMPLATES, VARIANTS, Variant
from refvps.synth.noise import (
    ROLE_BACKGROUND,
    ROLE_CAMERA,
    ROLE_DISTRACTOR,
    ROLE_KIND_ORDER,
    ROLE_PLAN,
    ROLE_TARGET,
    ROLE_TEXT,
    luminance,
    stream,
)
from refvps.synth.processes import PROCESSES, ProcessSpec
from refvps.synth.scene import SceneSpec, plan_scene

GENERATOR_VERSION = 1
SAME_KIND_DISTRACTOR_PROBABILITY = 0.3
ABSENT_PROBABILITY = 0.15  # besides every third clip, which always has frames without the target
DARK_TARGET = 0.36  # luminance below which a target needs a bright background


@dataclass(frozen=True)
class ClipSpec:
    """Everything needed to render one clip and write its entries; rendering adds only pixels."""

    clip_id: str
    seed: int
    index: int
    width: int
    height: int
    frames: int
    target: ProcessSpec
    distractor: ProcessSpec
    scene: SceneSpec
    concept: str
    category: str
    expressions: tuple[Expression, ...]
    timing: str  # "full", "late" (target starts mid-clip) or "early" (it ends mid-clip)

    @property
    def kind(self) -> str:
        return self.target.kind

    @property
    def background_seed(self) -> tuple[int, ...]:
        return (self.seed, self.index, ROLE_BACKGROUND)

    @property
    def camera_seed(self) -> tuple[int, ...]:
        return (self.seed, self.index, ROLE_CAMERA)

    def meta(self) -> ClipMeta:
        """The clip's entry in clips.json."""
        return ClipMeta(
            clip_id=self.clip_id,
            concept=self.concept,
            category=self.category,
            fps=REFVPS_FPS,
            width=self.width,
            height=self.height,
            source=Source(
                platform="synthetic",
                uploader="refvps synth",
                license="Apache-2.0",
                video_id=self.clip_id,
                title=f"{self.target.colour} {self.kind} (synthetic)",
            ),
            notes=(
                f"Synthetic clip rendered by refvps synth (seed {self.seed}, clip {self.index}); not a Ref-VPS "
                f"video. Target: {self.target.colour} {self.kind} on the {self.target.side}; distractor: "
                f"{self.distractor.colour} {self.distractor.kind} on the {self.distractor.side}."
            ),
            extra={
                "synthetic": {
                    "generator": "refvps.synth",
                    "version": GENERATOR_VERSION,
                    "seed": self.seed,
                    "index": self.index,
                    "kind": self.kind,
                    "colour": self.target.colour,
                    "side": self.target.side,
                    "timing": self.timing,
                    "target_frames": [self.target.start, self.target.end],
                    "distractor": {
                        "kind": self.distractor.kind,
                        "colour": self.distractor.colour,
                        "side": self.distractor.side,
                    },
                }
            },
        )


def kind_for(seed: int, index: int) -> str:
    """The target kind of clip ``index``: a fresh shuffle of all kinds for every block of len(KINDS) clips."""
    block, position = divmod(index, len(KINDS))
    order = stream(seed, block, ROLE_KIND_ORDER).permutation(len(KINDS))
    return KINDS[int(order[position])]


def clip_id_for(seed: int, index: int, kind: str) -> str:
    return f"synth-s{seed}-{index:03d}-{kind}"


def frames_for(seed: int, index: int, frames: int | tuple[int, int]) -> int:
    if isinstance(frames, tuple):
        low, high = frames
        return int(stream(seed, index, ROLE_PLAN, 1).integers(low, high + 1))
    return int(frames)


def _rgb_distance(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a, float) - np.asarray(b, float)))


def _pick_distractor_kind(rng, target: Variant) -> str:
    same_kind = len(VARIANTS[target.kind]) > 1 and rng.random() < SAME_KIND_DISTRACTOR_PROBABILITY
    kinds = [target.kind] if same_kind else [k for k in KINDS if k != target.kind]
    if luminance(target.rgb) < DARK_TARGET:
        # A light beam needs a dim scene, where a dark target would not show.
        kinds = [k for k in kinds if k != "light"] or kinds
    return kinds[int(rng.integers(len(kinds)))]


def _pick_distractor(rng, kind: str, target: Variant, lightness: float) -> Variant:
    """Another colour name, a visibly different colour, and one that shows against the background."""
    options = [v for v in VARIANTS[kind] if v.colour != target.colour]
    distinct = [v for v in options if _rgb_distance(v.rgb, target.rgb) > 90]
    options = distinct or options
    visible = [v for v in options if abs(luminance(v.rgb) - lightness) > 0.2]
    options = visible or options
    return options[int(rng.integers(len(options)))]


def _timing(rng, index: int, kind: str, frames: int) -> tuple[str, int, int]:
    allowed = PROCESSES[kind].absences
    forced = index % 3 == 1
    if allowed and (forced or rng.random() < ABSENT_PROBABILITY):
        mode = str(allowed[int(rng.integers(len(allowed)))])
    else:
        mode = "full"
    if mode == "late":
        return mode, max(1, int(round(frames * rng.uniform(0.15, 0.3)))), frames
    if mode == "early":
        return mode, 0, min(frames - 1, int(round(frames * rng.uniform(0.7, 0.85))))
    return mode, 0, frames


def write_expressions(rng, variant: Variant, side: str) -> tuple[Expression, ...]:
    """Two sentences from each annotator style, naming the target's kind and its colour and/or side."""
    words = {"c": variant.colour, "s": side, **variant.words}
    expressions = []
    for annotator in ("a", "b"):
        templates = TEMPLATES[variant.kind][annotator]
        for choice in rng.choice(len(templates), size=2, replace=False):
            text = templates[int(choice)].format(**words)
            expressions.append(Expression(str(len(expressions)), text, 1, annotator))
    return tuple(expressions)


def plan_clip(
    seed: int, index: int, *, size: tuple[int, int] = (256, 144), frames: int | tuple[int, int] = 24
) -> ClipSpec:
    """The plan of clip ``index`` of the benchmark with ``seed`` (size = (width, height))."""
    width, height = int(size[0]), int(size[1])
    n_frames = frames_for(seed, index, frames)
    kind = kind_for(seed, index)
    rng = stream(seed, index, ROLE_PLAN)
    variants = VARIANTS[kind]
    target = variants[int(rng.integers(len(variants)))]
    side = SIDES[int(rng.integers(2))]
    other_side = SIDES[1 - SIDES.index(side)]
    distractor_kind = _pick_distractor_kind(rng, target)
    scene = plan_scene(
        rng, target.rgb, dark="light" in (kind, distractor_kind) and luminance(target.rgb) >= DARK_TARGET
    )
    distractor = _pick_distractor(rng, distractor_kind, target, scene.lightness)
    timing, start, end = _timing(rng, index, kind, n_frames)
    expressions = write_expressions(stream(seed, index, ROLE_TEXT), target, side)

    def spec(variant: Variant, where: str, first: int, last: int, role: int) -> ProcessSpec:
        words = tuple(sorted({**variant.words, "variant": variant.name}.items()))
        return ProcessSpec(variant.kind, variant.colour, variant.rgb, where, first, last, (seed, index, role), words)

    return ClipSpec(
        clip_id=clip_id_for(seed, index, kind),
        seed=seed,
        index=index,
        width=width,
        height=height,
        frames=n_frames,
        target=spec(target, side, start, end, ROLE_TARGET),
        distractor=spec(distractor, other_side, 0, n_frames, ROLE_DISTRACTOR),
        scene=scene,
        concept=target.concept,
        category=target.category,
        expressions=expressions,
        timing=timing,
    )
