"""Review: contact sheets per video, and accept/reject decisions with the paper's reasons (§4.1).

``decisions.json`` in the workspace is the source of truth. Each video is accepted with the time
span(s) of its event(s) -- a compilation gets one span per event, each becomes its own clip -- or
rejected with one of the paper's reasons::

    {"version": 1, "videos": {
      "youtube_abc": {"decision": "accept", "events": [{"start_s": 1.5, "end_s": 8.0}],
                      "concept": "candle_melting", "note": "", "decided_at": "..."},
      "tiktok_123":  {"decision": "reject", "reason": "too_fast", "note": "lightning, 3 frames"}}}

An accepted video without spans is cut into its shots (each shot a clip; a short final shot that
looks like a card is dropped). ``crop`` ([x, y, w, h] in source pixels, or "none") overrides the
automatic padding detection for that video's clips.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from refvps.curation.shots import Shot, ShotParams, cached_shots, damage_note
from refvps.curation.video import VideoProbe, probe_video, sample_frames, sample_times
from refvps.curation.workspace import VideoRecord, Workspace, read_json_member, utc_now
from refvps.errors import DatasetError, UsageError
from refvps.fileio import atomic_write_json, atomic_write_text, atomic_write_with, file_lock
from refvps.progress import NO_PROGRESS, Progress

REJECT_REASONS: dict[str, str] = {
    "no_dynamic_change": "no significant dynamic change of the subject (e.g. mostly stationary clouds)",
    "too_fast": "the process is too fast to label enough non-empty frames (e.g. a flash of lightning)",
    "shot_changes": "too many shot changes to extract an uninterrupted clip of the event",
    "irrelevant": "does not show the concept (an irrelevant search result)",
}
DECISIONS_VERSION = 1


@dataclass(frozen=True)
class EventSpan:
    start_s: float
    end_s: float
    concept: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"start_s": self.start_s, "end_s": self.end_s}
        if self.concept:
            out["concept"] = self.concept
        return out


@dataclass
class Decision:
    key: str
    decision: str  # "accept" or "reject"
    reason: str | None = None
    events: list[EventSpan] = field(default_factory=list)
    concept: str | None = None
    crop: tuple[int, int, int, int] | str | None = None  # box, "none" (no crop), or None (detect)
    note: str = ""
    reviewer: str | None = None
    decided_at: str | None = None

    @property
    def accepted(self) -> bool:
        return self.decision == "accept"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"decision": self.decision}
        if self.reason:
            out["reason"] = self.reason
        if self.decision == "accept":
            out["events"] = [e.to_json() for e in self.events]
        if self.concept:
            out["concept"] = self.concept
        if self.crop is not None:
            out["crop"] = self.crop if isinstance(self.crop, str) else list(self.crop)
        out["note"] = self.note
        if self.reviewer:
            out["reviewer"] = self.reviewer
        if self.decided_at:
            out["decided_at"] = self.decided_at
        return out


# -- parsing and validation -----------------------------------------------------------------------
def parse_time(text: str) -> float:
    """Seconds from ``12.5``, ``1:02.5`` (m:ss) or ``1:00:02`` (h:mm:ss)."""
    text = str(text).strip().rstrip("s")
    parts = text.split(":")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise UsageError(f"not a time: {text!r}", hint="write seconds (12.5) or m:ss (1:02.5)") from None
    seconds = 0.0
    for value in values:
        seconds = seconds * 60 + value
    return seconds


def parse_span(text: str) -> EventSpan:
    """An event span from ``START-END`` (seconds or m:ss), e.g. ``1.5-8`` or ``0:01.5-0:08``."""
    match = re.fullmatch(r"\s*([0-9:.]+s?)\s*(?:-|\.\.|to|,)\s*([0-9:.]+s?)\s*", str(text))
    if not match:
        raise UsageError(f"not a time span: {text!r}", hint="write START-END in seconds, e.g. --span 1.5-8.0")
    span = EventSpan(parse_time(match.group(1)), parse_time(match.group(2)))
    if not span.end_s > span.start_s >= 0:
        raise UsageError(f"empty or negative time span: {text!r}", hint="END must be after START, both >= 0")
    return span


def _decision_from_json(key: str, data: Any, path: Path) -> Decision:
    def bad(message: str, hint: str) -> DatasetError:
        return DatasetError(f"{path}: video {key!r}: {message}", hint=hint, path=path)

    if not isinstance(data, Mapping):
        raise bad("entry must be an object", 'write {"decision": "accept", "events": [...]}')
    decision = data.get("decision")
    if decision not in ("accept", "reject"):
        raise bad(f"decision must be 'accept' or 'reject', got {decision!r}", "fix the 'decision' value")
    reason = data.get("reason") or None
    if decision == "reject" and reason not in REJECT_REASONS:
        raise bad(f"unknown reject reason {reason!r}", f"use one of: {', '.join(REJECT_REASONS)}")
    events = []
    for i, entry in enumerate(data.get("events") or []):
        try:
            span = EventSpan(float(entry["start_s"]), float(entry["end_s"]), entry.get("concept") or None)
        except (KeyError, TypeError, ValueError):
            raise bad(f"event #{i} needs numeric start_s and end_s", 'write {"start_s": 1.5, "end_s": 8.0}') from None
        if not span.end_s > span.start_s >= 0:
            raise bad(f"event #{i} has end_s <= start_s or a negative start", "fix the span")
        events.append(span)
    crop = data.get("crop")
    if crop is not None and crop != "none":
        if not (
            isinstance(crop, (list, tuple))
            and len(crop) == 4
            and all(isinstance(v, int) and v >= 0 for v in crop)
            and crop[2] > 0
            and crop[3] > 0
        ):
            raise bad(
                f'crop must be [x, y, w, h] (non-negative integers) or "none", got {crop!r}', "fix or remove 'crop'"
            )
        crop = tuple(crop)
    return Decision(
        key=key,
        decision=decision,
        reason=reason,
        events=sorted(events, key=lambda e: e.start_s),
        concept=data.get("concept") or None,
        crop=crop,
        note=str(data.get("note") or ""),
        reviewer=data.get("reviewer"),
        decided_at=data.get("decided_at"),
    )


def read_decisions(path: str | Path) -> dict[str, Decision]:
    """Decisions by video key; a missing file is no decisions, a malformed one a :class:`DatasetError`."""
    path = Path(path)
    if not path.exists():
        return {}
    videos = read_json_member(path, "videos", dict, what="decisions file", hint='write {"version": 1, "videos": {...}}')
    return {key: _decision_from_json(key, entry, path) for key, entry in videos.items()}


def write_decisions(path: str | Path, decisions: Mapping[str, Decision]) -> Path:
    data = {
        "version": DECISIONS_VERSION,
        "reasons": REJECT_REASONS,
        "videos": {key: decisions[key].to_json() for key in sorted(decisions)},
    }
    return atomic_write_json(path, data)


def check_decision(decision: Decision, record: VideoRecord | None, duration_s: float | None) -> None:
    """Check a decision against what the workspace knows of the video."""
    if record is None:
        raise UsageError(
            f"no video {decision.key!r} in the workspace",
            hint="list the videos with: refvps review --workspace WS --list",
        )
    if decision.decision == "reject" and decision.reason not in REJECT_REASONS:
        raise UsageError(f"reject needs a reason, one of: {', '.join(REJECT_REASONS)}", hint="add --reason REASON")
    if duration_s:
        for span in decision.events:
            if span.start_s >= duration_s:
                raise UsageError(
                    f"span {span.start_s:g}-{span.end_s:g} s starts after the end of {decision.key} ({duration_s:.2f} s)",
                    hint="look at the contact sheet's timestamps and fix the span",
                )


def record_decisions(
    workspace: Workspace, new: Sequence[Decision], *, durations: Mapping[str, float] | None = None
) -> None:
    """Validate and merge decisions into ``decisions.json`` (under a lock; other entries are kept)."""
    records = {r.key: r for r in workspace.records()}
    for decision in new:
        duration = (durations or {}).get(decision.key)
        record = records.get(decision.key)
        if duration is None and record is not None:
            duration = record.duration_s or _probed_duration(workspace, record)
        check_decision(decision, record, duration)
    with file_lock(workspace.decisions_path):
        current = read_decisions(workspace.decisions_path)
        for decision in new:
            decision.decided_at = decision.decided_at or utc_now()
            current[decision.key] = decision
        write_decisions(workspace.decisions_path, current)


def _probed_duration(workspace: Workspace, record: VideoRecord) -> float | None:
    """The duration from the file itself (sites such as plain file links do not report one)."""
    try:
        return probe_video(workspace.video_path(record)).duration_s
    except DatasetError:
        return None


def import_decisions(workspace: Workspace, path: str | Path) -> list[Decision]:
    """Merge a decisions file exported from the review page (same format) into the workspace."""
    if not Path(path).exists():
        raise UsageError(f"decisions file not found: {path}", hint="check the path", path=path)
    imported = list(read_decisions(path).values())
    record_decisions(workspace, imported)
    return imported


# -- contact sheets -------------------------------------------------------------------------------
def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def make_contact_sheet(
    video: Path | VideoProbe,
    out_path: Path,
    *,
    header: Sequence[str] = (),
    shots: Sequence[Shot] = (),
    rows: int = 4,
    cols: int = 4,
    tile_height: int = 180,
) -> Path:
    """A PNG grid of ``rows x cols`` frames spread over the video, each stamped with its time and
    shot number, above a timeline that marks the cuts (red) and the sampled instants (ticks). A
    frame that does not decode (a damaged file) leaves its tile dark, labelled so."""
    from PIL import Image, ImageDraw

    probe = video if isinstance(video, VideoProbe) else probe_video(video)
    duration = probe.duration_s
    times = sample_times(0.0, duration, rows * cols)
    tile_w = max(32, int(round(tile_height * probe.width / max(probe.height, 1))))
    tile_w = min(tile_w, 2 * tile_height)
    pad, header_h, timeline_h = 4, 18 * max(len(header), 1) + 8, 28
    width = cols * tile_w + (cols + 1) * pad
    height = header_h + rows * (tile_height + pad) + pad + timeline_h
    sheet = Image.new("RGB", (width, height), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    font, small = _font(14), _font(12)
    for i, line in enumerate(header):
        draw.text((pad + 2, 4 + 18 * i), line, fill=(235, 235, 235), font=font)

    def shot_label(t: float) -> str:
        """Which shot ``t`` is in (none after the readable part of a damaged file)."""
        index = next((s.index for s in shots if s.start_s <= t < s.end_s), None)
        return "" if index is None else f"  shot {index + 1}/{len(shots)}"

    got, missed = sample_frames(probe, times, fmt="rgb24")
    tiles = {t: Image.fromarray(rgb).resize((tile_w, tile_height), Image.BILINEAR) for t, rgb in got}
    for k, t in enumerate(times):
        r, c = divmod(k, cols)
        x, y = pad + c * (tile_w + pad), header_h + r * (tile_height + pad)
        if t in tiles:
            sheet.paste(tiles[t], (x, y))
        label = f"{t:.2f}s" + shot_label(t)
        label += "  does not decode" if t in missed else ""
        box = draw.textbbox((x + 3, y + 3), label, font=small)
        draw.rectangle((box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2), fill=(0, 0, 0))
        draw.text((x + 3, y + 3), label, fill=(255, 255, 255), font=small)
    # Timeline: the whole video, cuts in red, sampled instants as ticks.
    top = height - timeline_h + 6
    left, right = pad, width - pad
    draw.rectangle((left, top, right, top + 10), fill=(70, 70, 70))
    scale = (right - left) / max(duration, 1e-6)
    for t in times:
        draw.line((left + t * scale, top + 10, left + t * scale, top + 14), fill=(200, 200, 200))
    for shot in shots[1:]:
        x = left + shot.start_s * scale
        draw.line((x, top - 3, x, top + 13), fill=(230, 40, 40), width=2)
    draw.text((left, top + 12), "0s", fill=(200, 200, 200), font=small)
    end_label = f"{duration:.1f}s"
    draw.text((right - draw.textlength(end_label, font=small), top + 12), end_label, fill=(200, 200, 200), font=small)
    return atomic_write_with(out_path, lambda buf: sheet.save(buf, format="PNG"))


# -- the stage ------------------------------------------------------------------------------------
@dataclass
class ReviewSummary:
    videos: int = 0
    sheets_made: list[str] = field(default_factory=list)
    sheets_kept: list[str] = field(default_factory=list)
    opted_out: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    accepted: int = 0
    rejected: int = 0
    undecided: list[str] = field(default_factory=list)
    page: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _ensure_sheet(
    ws: Workspace, record: VideoRecord, rows: int, cols: int, shot_params: ShotParams
) -> tuple[list[Shot], bool]:
    """The video's shots, and whether its contact sheet had to be made (it is kept when newer than
    the video and its shots, for the same grid)."""
    path = ws.video_path(record)
    shots = cached_shots(path, ws.shots_dir / f"{record.key}.json", shot_params)
    sheet = ws.sheets_dir / f"{record.key}.png"
    newest_input = max(path.stat().st_mtime, (ws.shots_dir / f"{record.key}.json").stat().st_mtime)
    grid_tag = ws.sheets_dir / f".{record.key}.grid"
    same_grid = grid_tag.exists() and grid_tag.read_text() == f"{rows}x{cols}"
    if sheet.exists() and sheet.stat().st_mtime >= newest_input and same_grid:
        return shots, False
    probe = probe_video(path)
    header = [
        f"{record.key}   {probe.duration_s:.2f} s   {probe.width}x{probe.height} @ {probe.fps:.2f} fps   "
        f"{len(shots)} shot{'s' if len(shots) != 1 else ''}",
        f"{(record.title or '')[:90]}",
        f"concept: {record.concept or '?'}   query: {record.query or '-'}   uploader: {record.uploader or '?'}",
    ]
    damage = damage_note(probe, shots)
    if damage:
        header[0] += f"   DAMAGED: {damage}"
    make_contact_sheet(probe, sheet, header=header, shots=shots, rows=rows, cols=cols)
    atomic_write_text(grid_tag, f"{rows}x{cols}")
    return shots, True


def _page_entry(record: VideoRecord, shots: Sequence[Shot], decision: Decision | None) -> dict[str, Any]:
    duration = shots[-1].end_s if shots else record.duration_s
    return {
        "key": record.key,
        "title": record.title or "",
        "url": record.url or "",
        "uploader": record.uploader or "",
        "concept": record.concept or "",
        "query": record.query or "",
        "duration": round(float(duration or 0.0), 3),
        "cuts": [round(s.start_s, 3) for s in shots[1:]],
        "sheet": f"sheets/{record.key}.png",
        "decision": decision.to_json() if decision else None,
    }


def review(
    workspace: Workspace | str | Path,
    *,
    rows: int = 4,
    cols: int = 4,
    shot_params: ShotParams = ShotParams(),
    progress: Progress = NO_PROGRESS,
) -> ReviewSummary:
    """Make the missing contact sheets (and the review page); report what is still undecided.

    Progress: stage ``"sheets"``, one step per video. A video that cannot be shown is a problem in
    the summary; every other sheet and the page are still made."""
    ws = (workspace if isinstance(workspace, Workspace) else Workspace(workspace)).require()
    if rows < 1 or cols < 1:
        raise UsageError("a contact sheet needs at least one row and one column", hint="use e.g. --grid 4x4")
    optout = ws.optout()
    decisions = read_decisions(ws.decisions_path)
    summary = ReviewSummary()
    entries: list[dict[str, Any]] = []
    records = ws.records()
    summary.videos = len(records)
    with progress.stage("sheets", len(records)):
        for record in records:
            progress.advance("sheets", note=record.key)
            if optout.match(record):
                summary.opted_out.append(record.key)
                continue
            try:
                shots, made = _ensure_sheet(ws, record, rows, cols, shot_params)
            except DatasetError as exc:
                summary.problems.append(f"{record.key}: {exc}" + (f" ({exc.hint})" if exc.hint else ""))
                continue
            (summary.sheets_made if made else summary.sheets_kept).append(record.key)
            decision = decisions.get(record.key)
            if decision is None:
                summary.undecided.append(record.key)
            elif decision.accepted:
                summary.accepted += 1
            else:
                summary.rejected += 1
            entries.append(_page_entry(record, shots, decision))
    summary.page = str(write_review_page(ws, entries))
    ws.log(
        "review",
        videos=summary.videos,
        sheets_made=len(summary.sheets_made),
        accepted=summary.accepted,
        rejected=summary.rejected,
        undecided=len(summary.undecided),
    )
    return summary


def write_review_page(ws: Workspace, entries: list[dict[str, Any]]) -> Path:
    """``review/index.html``: the sheets with accept/reject controls, self-contained (inline CSS and
    JS, sheets by relative path). Choices autosave in the browser; "Export decisions" downloads a
    decisions file to merge with ``refvps review --workspace WS --import FILE``."""
    data = json.dumps({"videos": entries, "reasons": REJECT_REASONS, "workspace": str(ws.root)}, ensure_ascii=False)
    data = data.replace("</", "<\\/")  # keep "</script>" in a title from ending the script
    page = _PAGE.replace("__DATA__", data).replace("__TITLE__", html.escape(f"refvps review: {ws.root.name}"))
    return atomic_write_text(ws.review_dir / "index.html", page)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body{font-family:system-ui,sans-serif;margin:0;background:#111;color:#ddd}
header{position:sticky;top:0;background:#222;padding:8px 16px;display:flex;gap:16px;align-items:center;z-index:2}
header button{font-size:15px;padding:6px 14px}
.video{border-bottom:1px solid #333;padding:12px 16px}
.video img{max-width:100%;display:block;margin:8px 0}
.video.accept{border-left:6px solid #3a3}.video.reject{border-left:6px solid #c33}
.row{display:flex;flex-wrap:wrap;gap:12px;align-items:center}
input[type=text]{width:22em}
a{color:#8bf}
.meta{color:#999;font-size:13px}
</style></head><body>
<header><b>__TITLE__</b><span id="counts"></span>
<button id="export">Export decisions</button>
<span class="meta">then: refvps review --workspace WS --import decisions-export.json</span></header>
<main id="list"></main>
<script id="data" type="application/json">__DATA__</script>
<script>
const DATA = JSON.parse(document.getElementById('data').textContent);
const STORE = 'refvps-review:' + DATA.workspace;
const saved = JSON.parse(localStorage.getItem(STORE) || '{}');
const state = {};
for (const v of DATA.videos) state[v.key] = saved[v.key] || v.decision || null;
function parseSpans(text) {
  const spans = [];
  for (const part of text.split(/[;,]/).map(s => s.trim()).filter(Boolean)) {
    const m = part.match(/^([0-9.:]+)\\s*(?:-|to)\\s*([0-9.:]+)$/);
    if (!m) throw new Error('not a span: ' + part);
    const sec = t => t.split(':').reduce((a, x) => a * 60 + parseFloat(x), 0);
    const s = sec(m[1]), e = sec(m[2]);
    if (!(e > s)) throw new Error('end must be after start: ' + part);
    spans.push({start_s: s, end_s: e});
  }
  return spans;
}
function save() { localStorage.setItem(STORE, JSON.stringify(state)); counts(); }
function counts() {
  const vals = Object.values(state);
  const a = vals.filter(d => d && d.decision === 'accept').length;
  const r = vals.filter(d => d && d.decision === 'reject').length;
  document.getElementById('counts').textContent = `${a} accepted, ${r} rejected, ${vals.length - a - r} undecided`;
}
function render() {
  const list = document.getElementById('list');
  for (const v of DATA.videos) {
    const d = state[v.key] || {};
    const div = document.createElement('section');
    div.className = 'video ' + (d.decision || '');
    const reasons = Object.entries(DATA.reasons).map(([k, t]) =>
      `<option value="${k}" ${d.reason === k ? 'selected' : ''}>${k}: ${t}</option>`).join('');
    const spans = (d.events || []).map(e => `${e.start_s}-${e.end_s}`).join(', ');
    div.innerHTML = `<div class="row"><b></b><span class="meta"></span></div>
      <img loading="lazy" alt="contact sheet">
      <div class="row">
        <label><input type="radio" name="d-${v.key}" value="accept" ${d.decision === 'accept' ? 'checked' : ''}> accept</label>
        <label>event spans (s): <input type="text" class="spans" placeholder="1.5-8.0, 12-15 (empty: every shot)" value="${spans}"></label>
        <label><input type="radio" name="d-${v.key}" value="reject" ${d.decision === 'reject' ? 'checked' : ''}> reject</label>
        <select class="reason"><option value="">reason...</option>${reasons}</select>
        <input type="text" class="note" placeholder="note">
      </div><div class="meta err"></div>`;
    div.querySelector('b').textContent = v.key;
    div.querySelector('.meta').textContent = ` ${v.duration.toFixed(2)} s, cuts at ${v.cuts.join(', ') || 'none'}; ` +
      `concept ${v.concept || '?'}; ${v.title}`;
    div.querySelector('img').src = v.sheet;
    div.querySelector('.note').value = d.note || '';
    const update = () => {
      const choice = div.querySelector(`input[name="d-${v.key}"]:checked`);
      const err = div.querySelector('.err');
      err.textContent = '';
      if (!choice) { state[v.key] = null; save(); return; }
      const entry = {decision: choice.value, note: div.querySelector('.note').value};
      const prev = state[v.key] || {};
      if (prev.concept) entry.concept = prev.concept;  // overrides set on the command line survive
      if (prev.crop) entry.crop = prev.crop;
      try {
        if (choice.value === 'accept') entry.events = parseSpans(div.querySelector('.spans').value);
        else {
          entry.reason = div.querySelector('.reason').value;
          if (!entry.reason) err.textContent = 'choose a reason';
        }
      } catch (e) { err.textContent = e.message; return; }
      state[v.key] = entry;
      div.className = 'video ' + choice.value;
      save();
    };
    div.querySelectorAll('input,select').forEach(el => el.addEventListener('change', update));
    list.appendChild(div);
  }
  counts();
}
document.getElementById('export').addEventListener('click', () => {
  const videos = {};
  for (const [k, d] of Object.entries(state)) if (d && (d.decision === 'accept' || d.reason)) videos[k] = d;
  const blob = new Blob([JSON.stringify({version: 1, videos}, null, 2)], {type: 'application/json'});
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob); a.download = 'decisions-export.json'; a.click();
});
render();
</script></body></html>
"""
