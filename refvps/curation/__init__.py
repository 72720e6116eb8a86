"""Curation: concept taxonomy -> search queries -> fetch -> review -> trim into a Ref-VPS dataset.

Each stage reads and writes one workspace folder (:class:`Workspace`), skips work it finds done,
and carries provenance (source URL, uploader, license, retrieval time, query, trim span, crop)
forward into the dataset's ``clips.json``. See docs/CURATION.md and the paper §4.1-4.2.

>>> from refvps.curation import Workspace, read_fetch_input, fetch, review, trim_workspace  # doctest: +SKIP
>>> fetch("ws", read_fetch_input("queries.csv"))                                          # doctest: +SKIP
"""

from refvps.curation.cards import CardCheck, CardParams, check_card
from refvps.curation.crop import CropParams, apply_crop, detect_crop, union_box
from refvps.curation.fetch import FetchItem, FetchOptions, FetchReport, YtDlpSearcher, fetch, read_fetch_input
from refvps.curation.plan import ClipPlan, TrimParams, plan_spans
from refvps.curation.queries import (
    Concept,
    QueryRow,
    find_taxonomy,
    generate_queries,
    llm_queries,
    load_taxonomy,
    load_templates,
    parse_llm_queries,
    write_queries_csv,
)
from refvps.curation.review import REJECT_REASONS, Decision, EventSpan, read_decisions, record_decisions, review
from refvps.curation.shots import Shot, ShotParams, detect_shots
from refvps.curation.trim import TrimSummary, trim_video, trim_workspace
from refvps.curation.video import VideoProbe, frames_at, probe_video, sample_frames
from refvps.curation.workspace import OptOutList, VideoRecord, Workspace

__all__ = [
    "REJECT_REASONS",
    "CardCheck",
    "CardParams",
    "ClipPlan",
    "Concept",
    "CropParams",
    "Decision",
    "EventSpan",
    "FetchItem",
    "FetchOptions",
    "FetchReport",
    "OptOutList",
    "QueryRow",
    "Shot",
    "ShotParams",
    "TrimParams",
    "TrimSummary",
    "VideoProbe",
    "VideoRecord",
    "Workspace",
    "YtDlpSearcher",
    "apply_crop",
    "check_card",
    "detect_crop",
    "detect_shots",
    "fetch",
    "find_taxonomy",
    "frames_at",
    "generate_queries",
    "llm_queries",
    "load_taxonomy",
    "load_templates",
    "parse_llm_queries",
    "plan_spans",
    "probe_video",
    "read_decisions",
    "read_fetch_input",
    "record_decisions",
    "review",
    "sample_frames",
    "trim_video",
    "trim_workspace",
    "union_box",
    "write_queries_csv",
]
