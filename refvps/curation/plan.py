"""Planning a video's clips: event spans cut at shot boundaries, end cards and short pieces dropped.

Pure functions of the shots and the review decision (no video is read here): each event span of
the decision is cut at the shot boundaries it crosses (a compilation with one span per event gives
one clip per event); a video accepted without spans gives one clip per shot. A short final shot
(<= ``end_card_max_s``) is dropped when it looks like a card (:mod:`refvps.curation.cards`), unless
the reviewer put an event inside it; pieces shorter than ``min_clip_s`` are dropped. Every drop is
returned as a note that says what and why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from refvps.curation.cards import CardCheck
from refvps.curation.crop import Box, CropParams
from refvps.curation.review import Decision, EventSpan
from refvps.curation.shots import Shot, ShotParams
from refvps.dataset.format import REFVPS_FPS

SPAN_TOL = 1e-6  # seconds: two plans with spans closer than this are the same


@dataclass(frozen=True)
class TrimParams:
    fps: float = REFVPS_FPS
    shots: ShotParams = ShotParams()
    crop: CropParams | None = CropParams()  # None: never crop
    crop_samples: int = 32  # frames per video the padding statistics are taken over
    end_card_max_s: float = 3.0
    min_clip_s: float = 1.0
    jpeg_quality: int = 95


DEFAULT_TRIM = TrimParams()


@dataclass(frozen=True)
class ClipPlan:
    """One clip to export: a span of one shot of one video, and the video's crop box."""

    clip_id: str
    video_key: str
    start_s: float
    frame_count: int
    fps: float
    shot_index: int
    event_index: int | None
    concept: str | None = None
    category: str | None = None
    crop: Box | None = None  # set once the video's box is known (None: not yet)

    @property
    def end_s(self) -> float:
        """End of the exported span: exactly ``frame_count / fps`` after the start."""
        return self.start_s + self.frame_count / self.fps

    def times(self) -> list[float]:
        return [self.start_s + k / self.fps for k in range(self.frame_count)]


Piece = tuple[float, float, int, "int | None", "str | None"]  # start, end, shot, event, concept
CardTest = Callable[[Shot], CardCheck]


def _end_card(shots: Sequence[Shot], events: Sequence[EventSpan], params: TrimParams, test: CardTest | None):
    """The note for a final shot dropped as an end card, or None when it stays."""
    last = shots[-1]
    if len(shots) < 2 or last.duration_s > params.end_card_max_s or test is None:
        return None
    if any(last.start_s <= e.start_s < last.end_s for e in events):
        return None  # the reviewer put an event inside it
    check = test(last)
    if not check.card:
        return None
    return f"end card: final shot {last.start_s:.3f}-{last.end_s:.3f} s ({last.duration_s:.2f} s) dropped, {check.describe()}"


def plan_spans(
    shots: Sequence[Shot], events: Sequence[EventSpan], params: TrimParams, looks_like_card: CardTest | None = None
) -> tuple[list[Piece], list[str]]:
    """Spans ``(start, end, shot_index, event_index, concept)`` that never cross a cut, and notes
    on what was dropped. Without ``looks_like_card`` no shot is taken for an end card."""
    if not shots:
        return [], ["video has no frames"]
    card_note = _end_card(shots, events, params, looks_like_card)
    notes = [card_note] if card_note else []
    usable = list(shots[:-1]) if card_note else list(shots)
    pieces: list[Piece] = []
    if not events:
        pieces = [(s.start_s, s.end_s, s.index, None, None) for s in usable]
    for ei, event in enumerate(events):
        for shot in usable:
            start, end = max(event.start_s, shot.start_s), min(event.end_s, shot.end_s)
            if end > start:
                pieces.append((start, end, shot.index, ei, event.concept))
        if event.end_s > usable[-1].end_s + SPAN_TOL and not card_note:
            notes.append(f"event {ei}: {event.end_s:.3f} s is past the end of the video ({usable[-1].end_s:.3f} s)")
    kept = []
    shortest = max(params.min_clip_s, 1.0 / params.fps)  # a clip has at least one frame
    for piece in pieces:
        if piece[1] - piece[0] < shortest:
            notes.append(f"piece {piece[0]:.3f}-{piece[1]:.3f} s (shot {piece[2]}) shorter than {shortest:g} s dropped")
        else:
            kept.append(piece)
    return sorted(kept, key=lambda p: p[0]), notes


def plan_video(
    key: str,
    shots: Sequence[Shot],
    decision: Decision | None,
    params: TrimParams,
    *,
    concept: str | None,
    category: str | None,
    categories: Mapping[str, str] | None = None,
    looks_like_card: CardTest | None = None,
) -> tuple[list[ClipPlan], list[str]]:
    """The clips of one video (ids ``<key>_00``, ``<key>_01``, ...) and the notes of what was dropped."""
    events = decision.events if decision else []
    spans, notes = plan_spans(shots, events, params, looks_like_card)
    plans = []
    for index, (start, end, shot_index, event_index, event_concept) in enumerate(spans):
        # floor: the exported span [start, start + n / fps) never reaches past the piece (or the cut)
        frame_count = int(math.floor((end - start) * params.fps + 1e-6))
        clip_concept = event_concept or (decision.concept if decision else None) or concept
        clip_category = (categories or {}).get(clip_concept or "", category if clip_concept == concept else None)
        plans.append(
            ClipPlan(
                clip_id=f"{key}_{index:02d}",
                video_key=key,
                start_s=float(start),
                frame_count=frame_count,
                fps=params.fps,
                shot_index=shot_index,
                event_index=event_index,
                concept=clip_concept,
                category=clip_category,
            )
        )
    return plans, notes
