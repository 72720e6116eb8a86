"""What the synthetic benchmark can show and how annotators describe it.

The catalogue maps every process kind and variant to a concept and a category of the Ref-VPS taxonomy
(``annotations/taxonomy.json``; the ids are kept here in code so that generation never reads the
taxonomy file, and a test checks that each id exists there), and holds the two annotator styles'
sentence templates.

Annotator "a" describes appearance (colour, motion, place); annotator "b" describes the event in
everyday words. Every template names the process and carries the target's colour ``{c}`` or side
``{s}`` (or both), so that a sentence picks out the target even when the distractor is a process of
the same kind. The distractor's colour and side are different from the target's and never appear.
"""

from __future__ import annotations

from dataclasses import dataclass, field

KINDS: tuple[str, ...] = ("smoke", "ripples", "melting", "shatter", "light", "wave", "fire")


@dataclass(frozen=True)
class Variant:
    """One look of a process kind: its colour (a single word used in sentences) and taxonomy ids."""

    kind: str
    name: str
    colour: str
    rgb: tuple[int, int, int]
    concept: str
    category: str
    words: dict[str, str] = field(default_factory=dict)  # extra template words, e.g. {"m": "ice cube"}


def _v(kind, name, colour, rgb, concept, category, **words) -> Variant:
    return Variant(kind, name, colour, rgb, concept, category, dict(words))


_PATTERN = "pattern_evolution"
_MOTION = "motion_patterns"
_OBJECT = "temporal_object_changes"
_INTERACTION = "interaction_sequences"
_ENVIRONMENT = "dynamic_environmental_changes"
_BOUNDARY = "entities_with_dynamic_boundaries"

VARIANTS: dict[str, tuple[Variant, ...]] = {
    "smoke": (
        _v("smoke", "chimney", "white", (236, 236, 232), "smoke_rising_from_a_chimney", _PATTERN, src="chimney"),
        _v("smoke", "chimney", "grey", (128, 130, 136), "smoke_dispersing", _PATTERN, src="chimney"),
        _v("smoke", "chimney", "black", (28, 28, 32), "smoke_dispersing", _PATTERN, src="chimney"),
        _v("smoke", "canister", "purple", (150, 60, 200), "coloured_smoke_bomb", _PATTERN, src="canister"),
        _v("smoke", "canister", "orange", (245, 125, 30), "coloured_smoke_bomb", _PATTERN, src="canister"),
        _v("smoke", "canister", "red", (215, 35, 40), "coloured_smoke_bomb", _PATTERN, src="canister"),
        _v("smoke", "canister", "green", (50, 185, 75), "coloured_smoke_bomb", _PATTERN, src="canister"),
        _v("smoke", "canister", "yellow", (240, 210, 45), "coloured_smoke_bomb", _PATTERN, src="canister"),
    ),
    "ripples": (
        _v("ripples", "pond", "blue", (35, 80, 165), "water_ripples", _MOTION),
        _v("ripples", "pond", "green", (40, 125, 80), "water_ripples", _MOTION),
        _v("ripples", "pond", "brown", (110, 78, 45), "water_ripples", _MOTION),
        _v("ripples", "pond", "teal", (25, 135, 145), "water_ripples", _MOTION),
    ),
    "melting": (
        _v("melting", "ice", "white", (215, 235, 248), "ice_melting", _OBJECT, m="ice cube"),
        _v("melting", "chocolate", "brown", (95, 55, 28), "chocolate_melting", _OBJECT, m="chocolate bar"),
        _v("melting", "ice_cream", "pink", (248, 150, 190), "ice_cream_melting", _OBJECT, m="ice cream"),
        _v("melting", "candle", "red", (205, 30, 45), "candle_melting", _OBJECT, m="candle"),
        _v("melting", "candle", "yellow", (245, 215, 70), "candle_melting", _OBJECT, m="candle"),
    ),
    "shatter": (
        _v("shatter", "pane", "blue", (110, 165, 235), "glass_shattering", _INTERACTION),
        _v("shatter", "pane", "green", (100, 210, 130), "glass_shattering", _INTERACTION),
        _v("shatter", "pane", "amber", (235, 165, 55), "glass_shattering", _INTERACTION),
        _v("shatter", "pane", "red", (225, 75, 80), "glass_shattering", _INTERACTION),
    ),
    "light": (
        _v("light", "spot", "yellow", (255, 215, 90), "light_flickering", _PATTERN),
        _v("light", "spot", "white", (255, 250, 235), "light_flickering", _PATTERN),
        _v("light", "spot", "red", (255, 70, 55), "light_flickering", _PATTERN),
        _v("light", "spot", "blue", (90, 150, 255), "light_flickering", _PATTERN),
        _v("light", "spot", "green", (100, 255, 120), "light_flickering", _PATTERN),
    ),
    "wave": (
        _v("wave", "sea", "blue", (25, 75, 150), "wave_breaking", _ENVIRONMENT),
        _v("wave", "sea", "teal", (30, 150, 155), "wave_breaking", _ENVIRONMENT),
        _v("wave", "sea", "green", (35, 115, 85), "wave_breaking", _ENVIRONMENT),
        _v("wave", "sea", "grey", (100, 112, 125), "wave_breaking", _ENVIRONMENT),
    ),
    "fire": (
        _v("fire", "campfire", "orange", (255, 135, 25), "campfire_flames", _BOUNDARY, src="logs"),
        _v("fire", "gas", "blue", (70, 125, 255), "fire", _BOUNDARY, src="burner"),
        _v("fire", "chemical", "green", (80, 235, 90), "fire", _BOUNDARY, src="burner"),
    ),
}

# Sentence templates: {c} colour word, {s} side ("left"/"right"), plus the variant's words.
TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "smoke": {
        "a": (
            "the {c} smoke rising on the {s}",
            "{c} smoke spreading and thinning out on the {s} side",
            "the plume of {c} smoke drifting upwards",
            "the {c} smoke slowly dispersing in the air",
        ),
        "b": (
            "smoke coming out of the {src} on the {s}",
            "the {c} smoke from the {src}",
            "{c} smoke billowing up and fading away",
            "the smoke on the {s} that drifts off",
        ),
    },
    "ripples": {
        "a": (
            "the ripples spreading across the {c} pond on the {s}",
            "rings of ripples expanding in the {c} water",
            "the ripples on the {s}",
            "concentric ripples growing on the {s} side",
        ),
        "b": (
            "ripples where a drop hit the {c} pond",
            "the {c} water rippling on the {s}",
            "little ripples moving outwards in the pond on the {s}",
            "the rippling circles on the {c} surface",
        ),
    },
    "melting": {
        "a": (
            "the {c} {m} melting on the {s}",
            "the {c} {m} slowly melting into a puddle",
            "the melting {m} on the {s} side",
            "{c} {m} losing its shape as it melts",
        ),
        "b": (
            "the {m} on the {s} that is melting away",
            "{c} {m} melting into liquid",
            "the puddle of melting {c} {m}",
            "melting {m} on the {s}",
        ),
    },
    "shatter": {
        "a": (
            "the {c} glass pane shattering on the {s}",
            "the pane of {c} glass breaking into pieces",
            "the shattering window glass on the {s} side",
            "{c} glass fragments flying apart",
        ),
        "b": (
            "the window on the {s} that gets smashed",
            "{c} glass smashing into shards",
            "pieces of the {c} window glass falling down",
            "the glass on the {s} breaking",
        ),
    },
    "light": {
        "a": (
            "the {c} light flickering on the {s}",
            "the {c} beam of light sweeping across the floor",
            "the flickering {c} spotlight on the {s} side",
            "the moving {c} light beam",
        ),
        "b": (
            "the lamp on the {s} switching on and off",
            "{c} light moving around",
            "the spot of {c} light on the {s}",
            "the light on the {s} that keeps flickering",
        ),
    },
    "wave": {
        "a": (
            "the {c} wave rising and breaking on the {s}",
            "the {c} wave curling over",
            "the breaking wave on the {s} side",
            "the {c} wave swelling up and crashing down",
        ),
        "b": (
            "the {c} water of the wave surging up",
            "the wave crashing on the {s}",
            "a {c} wave that breaks into foam",
            "the big wave on the {s}",
        ),
    },
    "fire": {
        "a": (
            "the {c} flames flickering on the {s}",
            "the {c} fire burning on the {s} side",
            "{c} flames dancing above the {src}",
            "the tongues of {c} fire",
        ),
        "b": (
            "the fire on the {s}",
            "{c} fire flaring up from the {src}",
            "the burning {c} flames",
            "the flames of the fire on the {s}",
        ),
    },
}

SIDES = ("left", "right")


def used_taxonomy_ids() -> tuple[set[str], set[str]]:
    """(concept ids, category ids) that the generator writes to clips.json."""
    concepts = {v.concept for variants in VARIANTS.values() for v in variants}
    categories = {v.category for variants in VARIANTS.values() for v in variants}
    return concepts, categories
