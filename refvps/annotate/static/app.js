// refvps annotate: the page. Plain JavaScript, no build step, nothing loaded from elsewhere.
// The server holds the truth (layers, clicks, statuses, undo); the page shows it and sends edits.
"use strict";

const SHORTCUTS = [
  ["Left click", "positive point (Click tool); click a point to remove it"],
  ["Right click / Shift+click", "negative point"],
  ["Drag (Brush / Eraser)", "paint / erase the current layer; right-drag erases"],
  ["Wheel / middle-drag", "zoom / pan; Z resets the view"],
  ["← → or A D", "previous / next frame"],
  ["Shift+← →", "10 frames back / forward"],
  ["Home End M", "first / last / middle frame"],
  ["Space", "play / pause"],
  ["C B E", "Click, Brush, Eraser tool"],
  ["I", "switch layer: Target ↔ Ignore"],
  ["[ ]", "brush radius smaller / larger"],
  ["O, 9 0", "overlay on/off, opacity − / +"],
  ["P", "propagate both ways from this frame"],
  [", .", "propagate backwards / forwards"],
  ["R", "re-propagate between the keyframes around this frame"],
  ["V", "mark this frame reviewed (again: unmark)"],
  ["N, Shift+N", "next / previous frame not reviewed"],
  ["K, Shift+K", "next / previous keyframe"],
  ["F", "type a frame number"],
  ["L", "overlay style: fill, outline, hatch"],
  ["Esc", "cancel propagation"],
  ["H, Shift+H", "fill holes: this frame, all frames"],
  ["X", "clear this frame's clicks"],
  ["Delete", "clear the target on this frame (target absent)"],
  ["G", "copy Ignore to the next frame"],
  ["Ctrl+Z, Ctrl+Shift+Z / Ctrl+Y", "undo, redo"],
  ["Ctrl+S", "save masks and expressions"],
  ["?", "show / hide this list"],
];

const $ = (id) => document.getElementById(id);
const S = {
  token: document.querySelector('meta[name="refvps-token"]').content,
  client: null,
  info: null,
  clips: [],
  clipId: null,
  state: null,
  meta: null,
  frame: 0,
  tool: "click",
  layer: "target",
  radius: 12,
  opacity: 0.5,
  overlayOn: true,
  images: new Map(),
  overlays: new Map(),
  zoom: 1, panX: 0, panY: 0,
  stroke: null, pan: null, mouse: null,
  playing: null,
  polling: null,
  lastJob: null,
  chain: Promise.resolve(),
  expTimer: null,
  clipsTimer: null,
  style: "fill",          // overlay style: fill | outline | hatch
  expBase: null,          // the expressions as the server last confirmed them
  pending: [],            // edits this tab could not send because another tab took its clip
};

const STYLES = ["fill", "outline", "hatch"];

// ---------------------------------------------------------------------------------------------
// Talking to the server

function clientId() {
  let id = sessionStorage.getItem("refvps-client");
  if (!id) {
    const bytes = new Uint8Array(8);
    crypto.getRandomValues(bytes);
    id = "tab-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    sessionStorage.setItem("refvps-client", id);
  }
  return id;
}

async function api(method, path, body) {
  const opts = { method, headers: { "X-Refvps-Token": S.token, "X-Refvps-Client": S.client } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const response = await fetch(path, opts);
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    const err = new Error((data && data.error) || response.statusText);
    err.status = response.status;
    err.data = data || {};
    throw err;
  }
  return data;
}

// Edits run one after another, in the order they were made. ``intent`` describes the edit, so that
// one this tab could not send (another tab took the clip) is listed and can be sent again.
function mutate(fn, intent) {
  S.chain = S.chain.then(fn).catch((err) => {
    if (intent && err && err.data && err.data.code === "not_owner") keepPending(intent);
    showError(err);
  });
  return S.chain;
}

function keepPending(intent) {
  if (intent.kind === "expressions") S.pending = S.pending.filter((p) => p.kind !== "expressions");
  S.pending.push({ ...intent, clip: S.clipId });
}

function pendingSummary() {
  const counts = new Map();
  for (const p of S.pending) counts.set(p.what, (counts.get(p.what) || 0) + 1);
  return Array.from(counts, ([what, n]) => (n > 1 ? `${n} × ${what}` : what)).join(", ");
}

function say(text, kind) {
  const m = $("message");
  m.textContent = text || "";
  m.className = kind || "";
  m.title = text || "";
}

function showError(err) {
  const hint = err && err.data && err.data.hint ? " — " + err.data.hint : "";
  say((err && err.message ? err.message : String(err)) + hint, "error");
  if (err && err.data && err.data.code === "not_owner") showLostClip(err.message);
}

// This tab lost its clip: say exactly what it could not send, and offer to take the clip back and send it.
function showLostClip(message) {
  const id = S.clipId;
  const kept = S.pending.length
    ? "Not sent from this tab: " + pendingSummary() + ". Take the clip back to send them again, or discard them."
    : "Nothing typed here is waiting to be sent.";
  showDialog(message, kept, id ? () => openClip(id, true) : null, S.pending.length ? discardPending : null);
}

function discardPending() {
  const what = pendingSummary();
  S.pending = [];
  if (S.state) fillExpressions(S.state);
  say("discarded: " + what, "error");
}

// After this tab took its clip back: send what it could not send, in order, on the clip as it is now.
async function replayPending(clip) {
  const items = S.pending;
  S.pending = [];
  const sent = [], failed = [], notes = [];
  for (const item of items) {
    if (item.clip !== clip) { failed.push(`${item.what} (made on clip ${item.clip})`); continue; }
    if (!item.replay) { failed.push(item.what + " (not sent again: do it again if still wanted)"); continue; }
    try {
      const note = await item.replay();
      sent.push(item.what);
      if (note) notes.push(note);
    } catch (err) { failed.push(item.what + " (" + (err.message || err) + ")"); }
  }
  const parts = [];
  if (sent.length) parts.push("sent again: " + sent.join(", "));
  if (failed.length) parts.push("not sent: " + failed.join(", "));
  say(parts.concat(notes).join("; "), failed.length ? "error" : "ok");
}

function clipUrl(suffix) {
  return "/api/clips/" + encodeURIComponent(S.clipId) + suffix;
}

function frameName(i) { return S.state ? S.state.frames[i] : ""; }

function plural(n, word) { return `${n} ${word}${n === 1 ? "" : "s"}`; }

// ---------------------------------------------------------------------------------------------
// Clip list

async function loadClips() {
  try {
    const data = await api("GET", "/api/clips");
    S.clips = data.clips;
    renderClips();
    // Clips are validated in the background; ask again until every verdict is in.
    clearTimeout(S.clipsTimer);
    if (S.clips.some((c) => c.validation_pending)) S.clipsTimer = setTimeout(loadClips, 1500);
  } catch (err) { showError(err); }
}

function renderClips() {
  const ul = $("clips");
  ul.textContent = "";
  for (const c of S.clips) {
    const li = document.createElement("li");
    li.dataset.clip = c.id;
    if (c.id === S.clipId) li.classList.add("current");
    if (!c.openable) li.classList.add("disabled");
    const id = document.createElement("div");
    id.className = "clip-id";
    id.textContent = c.id + (c.unsaved ? " •" : "");
    if (c.unsaved) id.title = "unsaved changes in its session";
    const concept = document.createElement("div");
    concept.className = "meta";
    concept.textContent = c.concept_name || c.concept || "(no concept)";
    const bar = document.createElement("div");
    bar.className = "bar";
    const fill = document.createElement("div");
    fill.style.width = (c.frames ? (100 * c.labelled / c.frames) : 0).toFixed(1) + "%";
    bar.appendChild(fill);
    const progress = document.createElement("div");
    progress.className = "meta";
    let v = c.validation_pending ? "validating…" : "not validated", cls = "v-none";
    if (c.validation) {
      v = c.validation.ok ? "valid" : plural(c.validation.errors, "error");
      cls = c.validation.ok ? "v-ok" : "v-bad";
    }
    progress.innerHTML = "";
    progress.append(`${c.labelled}/${c.frames} frames · ${c.reviewed} reviewed · ${c.masks_saved} saved · ${c.expressions}/4 expr · `);
    const vs = document.createElement("span");
    vs.className = cls;
    vs.textContent = v;
    if (c.validation && c.validation.error) vs.title = c.validation.error;
    progress.append(vs);
    if (c.locked) progress.append(` · locked by ${c.locked.holder}${c.locked.stale ? " (stale)" : ""}`);
    if (c.open_elsewhere) progress.append(" · open in another tab");
    li.append(id, concept, bar, progress);
    li.title = c.openable ? "open " + c.id : (c.refusal || "this clip cannot be opened here");
    li.addEventListener("click", () => { if (c.openable) openClip(c.id, false); });
    ul.appendChild(li);
  }
}

// ---------------------------------------------------------------------------------------------
// Opening a clip

async function openClip(id, takeOver) {
  if (S.clipId && S.clipId !== id && S.state && S.state.job && S.state.job.state === "running") {
    if (!confirm("Propagation is running on " + S.clipId + ". Switching clips cancels it. Switch?")) return;
  }
  hideDialog();
  stopPlaying();
  if (S.expTimer && S.clipId) {  // typing not sent yet: it belongs to the clip it was typed on
    if (S.clipId === id) {
      clearTimeout(S.expTimer);
      S.expTimer = null;
      keepPending(expressionsIntent(typedExpressions(), S.expBase));
    } else await sendExpressions();
  }
  let data;
  say("opening " + id + "…");  // a long clip with saved masks takes seconds to load the first time
  try {
    data = await api("POST", "/api/clips/" + encodeURIComponent(id) + "/open", { take_over: !!takeOver });
  } catch (err) {
    if (err.data && err.data.code === "locked") {
      const lock = err.data.lock || {};
      showDialog(err.message, err.data.hint, lock.can_take_over ? () => openClip(id, true) : null);
      return;
    }
    showError(err);
    return;
  }
  S.clipId = id;
  S.meta = data;
  S.images.clear();
  S.overlays.clear();
  S.zoom = 1; S.panX = 0; S.panY = 0;
  S.lastJob = null;
  applyState(data.state);
  S.frame = data.state.middle;
  $("empty-hint").hidden = true;
  $("clip-title").textContent = id;
  const concept = conceptText();
  $("concept").textContent = concept;
  $("concept-name").textContent = concept || "(not set in clips.json)";
  $("scrub").max = String(data.state.frames.length - 1);
  history.replaceState(null, "", "#clip=" + encodeURIComponent(id));
  say(data.notes && data.notes.length ? data.notes.join("; ") : "opened " + id + " on its middle frame", "ok");
  setFrame(S.frame);
  if (S.pending.length) await replayPending(id);
  fillExpressions(S.state);
  renderClips();
  refreshValidation();
  loadClips();
  $("view").focus();
}

function conceptText() {
  const row = S.clips.find((c) => c.id === S.clipId);
  if (!row) return S.meta && S.meta.concept ? S.meta.concept : "";
  const name = row.concept_name || row.concept || "";
  const category = row.category_name || row.category || "";
  return name + (category ? " (" + category + ")" : "");
}

function fillExpressions(st) {
  for (let a = 0; a < 2; a++) $("annotator-" + a).value = st.annotators[a] || "";
  for (let e = 0; e < 4; e++) $("exp-" + e).value = st.expressions[e] || "";
  S.expBase = { annotators: st.annotators.slice(), expressions: st.expressions.slice() };
  updateExpressionCount();
}

function updateExpressionCount() {
  let n = 0;
  for (let e = 0; e < 4; e++) if ($("exp-" + e).value.trim()) n++;
  $("exp-count").textContent = n + "/4 expressions written";
}

function expressionsChanged() {
  updateExpressionCount();
  clearTimeout(S.expTimer);
  S.expTimer = setTimeout(sendExpressions, 400);
}

function sendExpressions() {
  if (!S.clipId) return S.chain;
  clearTimeout(S.expTimer);
  S.expTimer = null;
  const typed = typedExpressions();
  const intent = expressionsIntent(typed, S.expBase);
  return mutate(async () => {
    const st = await api("PUT", clipUrl("/expressions"), typed);
    S.expBase = { annotators: typed.annotators.slice(), expressions: typed.expressions.slice() };
    applyState(st);
  }, intent);
}

function typedExpressions() {
  return { annotators: [0, 1].map((a) => $("annotator-" + a).value),
           expressions: [0, 1, 2, 3].map((e) => $("exp-" + e).value) };
}

function expressionsIntent(typed, base) {
  return { kind: "expressions", what: "the expressions typed here", replay: () => mergeExpressions(typed, base) };
}

// Send the text typed while this tab had lost the clip: a field typed here wins; a field only the other
// tab changed keeps its text; where both changed it, the message quotes the other tab's text it replaced.
async function mergeExpressions(typed, base) {
  const now = S.state, merged = { annotators: [], expressions: [] }, replaced = [];
  for (const key of ["annotators", "expressions"]) {
    typed[key].forEach((mine, k) => {
      const theirs = now[key][k], before = base ? base[key][k] : "";
      const keepMine = mine !== before;
      merged[key].push(keepMine ? mine : theirs);
      if (keepMine && theirs !== before && theirs !== mine) {
        replaced.push(`${key === "annotators" ? "annotator " + "AB"[k] : "expression " + (k + 1)}: "${theirs}"`);
      }
    });
  }
  applyState(await api("PUT", clipUrl("/expressions"), merged));
  fillExpressions(S.state);
  return replaced.length ? "your text replaced the other tab's " + replaced.join(", ") : "";
}

// ---------------------------------------------------------------------------------------------
// State from the server

function applyState(st) {
  if (!st) return;
  S.state = st;
  $("dirty").hidden = !st.dirty;
  $("undo").disabled = !st.undo;
  $("redo").disabled = !st.redo;
  $("undo").title = st.undo ? "undo: " + st.undo + " (Ctrl+Z)" : "nothing to undo";
  $("redo").title = st.redo ? "redo: " + st.redo + " (Ctrl+Shift+Z)" : "nothing to redo";
  const job = st.job;
  const running = job && job.state === "running";
  $("job").hidden = !job || (!running && S.lastJob === job.id + job.state);
  if (job) {
    $("job-progress").max = Math.max(1, job.total);
    $("job-progress").value = job.done;
    $("job-text").textContent = running
      ? `propagating ${job.directions.join(" + ")} from ${st.frames[job.start]}: ${job.done}/${job.total}`
      : `propagation ${job.state}: ${plural(job.written, "frame")} written, ${job.kept} kept` + (job.error ? " — " + job.error : "");
    $("cancel").disabled = !running;
  }
  for (const id of ["propagate-both", "propagate-forward", "propagate-backward", "propagate-between", "undo", "redo", "save"]) {
    if (running) $(id).disabled = true;
    else if (id.startsWith("propagate") || id === "save") $(id).disabled = false;
  }
  if (running && !S.polling) startPolling();
  if (!running && S.polling) stopPolling();
  if (job && !running && S.lastJob !== job.id + job.state) {
    S.lastJob = job.id + job.state;
    if (job.state === "failed") say("propagation failed: " + job.error + (job.hint ? " — " + job.hint : ""), "error");
    else say(`propagation ${job.state}: ${plural(job.written, "frame")} written, ${plural(job.kept, "keyframe")} kept`, "ok");
    loadClips();
  }
  const row = S.clips.find((c) => c.id === st.clip);
  if (row && (row.labelled !== st.labelled || row.unsaved !== st.dirty || row.reviewed !== st.reviewed_count)) {
    row.labelled = st.labelled;
    row.unsaved = st.dirty;
    row.reviewed = st.reviewed_count;
    renderClips();
  }
  updateFrameInfo();
  drawTimeline();
  ensureOverlay(S.frame);
  draw();
}

function startPolling() {
  S.polling = setInterval(async () => {
    try { applyState(await api("GET", clipUrl("/state"))); } catch (err) { stopPolling(); showError(err); }
  }, 300);
}

function stopPolling() {
  clearInterval(S.polling);
  S.polling = null;
}

// ---------------------------------------------------------------------------------------------
// Frames, overlays, drawing

function frameImage(i) {
  let img = S.images.get(i);
  if (!img) {
    img = new Image();
    img.decoding = "async";
    img.onload = () => { if (i === S.frame) draw(); };
    img.src = clipUrl("/frames/" + encodeURIComponent(frameName(i)) + ".jpg");
    S.images.set(i, img);
    if (S.images.size > 96) S.images.delete(S.images.keys().next().value);
  }
  return img;
}

function ensureOverlay(i) {
  if (!S.state) return null;
  const rev = S.state.revs[i] + ":" + S.style;
  const cached = S.overlays.get(i);
  if (cached && cached.rev === rev) return cached.img;
  if (cached && cached.loading === rev) return cached.img;
  const img = new Image();
  const entry = { rev: -1, loading: rev, img: cached ? cached.img : null };
  S.overlays.set(i, entry);
  img.onload = () => {
    entry.img = img; entry.rev = rev; entry.loading = null;
    if (i === S.frame) draw();
  };
  img.src = clipUrl("/overlay/" + encodeURIComponent(frameName(i)) + ".png?rev=" + S.state.revs[i] + "&style=" + S.style);
  if (S.overlays.size > 64) S.overlays.delete(S.overlays.keys().next().value);
  return entry.img;
}

function setFrame(i) {
  if (!S.state) return;
  const n = S.state.frames.length;
  S.frame = Math.max(0, Math.min(n - 1, i));
  $("scrub").value = String(S.frame);
  frameImage(S.frame);
  ensureOverlay(S.frame);
  for (const d of [1, 2, 3, -1]) if (S.frame + d >= 0 && S.frame + d < n) frameImage(S.frame + d);
  updateFrameInfo();
  drawTimeline();
  draw();
}

function updateFrameInfo() {
  if (!S.state) return;
  const n = S.state.frames.length;
  if (document.activeElement !== $("goto")) $("goto").value = frameName(S.frame);
  $("frame-label").textContent = `(${S.frame + 1}/${n})`;
  const status = S.state.status[S.frame];
  const words = { empty: "not labelled", propagated: "propagated", clicked: "clicked (keyframe)", manual: "fixed by hand (keyframe)" };
  const points = S.state.prompts[String(S.frame)];
  let text = words[status] || status;
  if (points && points.points.length) text += ` · ${points.points.length} clicks`;
  if (S.frame === S.state.middle) text += " · middle frame";
  text += S.state.reviewed[S.frame] ? " · reviewed ✓" : " · not reviewed";
  $("frame-status").textContent = text;
  $("reviewed-count").textContent = `${S.state.reviewed_count}/${n} reviewed`;
}

function geometry() {
  const c = $("view");
  const w = c.clientWidth, h = c.clientHeight;
  const iw = S.state.width, ih = S.state.height;
  const fit = Math.min(w / iw, h / ih);
  const scale = fit * S.zoom;
  return { w, h, iw, ih, scale, ox: (w - iw * scale) / 2 + S.panX, oy: (h - ih * scale) / 2 + S.panY };
}

function toImage(ev) {
  const g = geometry();
  const rect = $("view").getBoundingClientRect();
  return [(ev.clientX - rect.left - g.ox) / g.scale, (ev.clientY - rect.top - g.oy) / g.scale];
}

function imageToClient(x, y) {
  const g = geometry();
  const rect = $("view").getBoundingClientRect();
  return [rect.left + g.ox + x * g.scale, rect.top + g.oy + y * g.scale];
}

// A cleared 2D context of a canvas sized to its CSS box on this screen (device pixels), in CSS units.
function prepareCanvas(c) {
  const dpr = window.devicePixelRatio || 1;
  const w = c.clientWidth, h = c.clientHeight;
  if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
    c.width = Math.round(w * dpr);
    c.height = Math.round(h * dpr);
  }
  const ctx = c.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  return { ctx, w, h };
}

function draw() {
  const { ctx } = prepareCanvas($("view"));
  if (!S.state) return;
  const g = geometry();
  ctx.imageSmoothingEnabled = S.zoom < 2;
  const img = S.images.get(S.frame);
  if (img && img.complete && img.naturalWidth) ctx.drawImage(img, g.ox, g.oy, g.iw * g.scale, g.ih * g.scale);
  const entry = S.overlays.get(S.frame);
  if (S.overlayOn && entry && entry.img && entry.img.complete && entry.img.naturalWidth) {
    ctx.globalAlpha = S.opacity;
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(entry.img, g.ox, g.oy, g.iw * g.scale, g.ih * g.scale);
    ctx.globalAlpha = 1;
  }
  if (S.stroke && S.stroke.preview) {
    ctx.globalAlpha = Math.max(0.35, S.opacity);
    ctx.drawImage(S.stroke.preview, g.ox, g.oy, g.iw * g.scale, g.ih * g.scale);
    ctx.globalAlpha = 1;
  }
  const prompt = S.state.prompts[String(S.frame)];
  if (prompt) {
    prompt.points.forEach(([x, y], k) => {
      const px = g.ox + x * g.scale, py = g.oy + y * g.scale;
      ctx.beginPath();
      ctx.arc(px, py, 6, 0, 2 * Math.PI);
      ctx.fillStyle = prompt.labels[k] === 1 ? "#2ee05a" : "#ff3b3b";
      ctx.fill();
      ctx.lineWidth = 2;
      ctx.strokeStyle = "#fff";
      ctx.stroke();
      ctx.fillStyle = "#000";
      ctx.fillRect(px - 3, py - 0.75, 6, 1.5);
      if (prompt.labels[k] === 1) ctx.fillRect(px - 0.75, py - 3, 1.5, 6);
    });
  }
  if (S.mouse && (S.tool === "brush" || S.tool === "eraser")) {
    ctx.beginPath();
    ctx.arc(S.mouse[0], S.mouse[1], S.radius * g.scale, 0, 2 * Math.PI);
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = S.tool === "eraser" ? "#00e5ff" : (S.layer === "ignore" ? "#ddd" : "#ff5050");
    ctx.stroke();
  }
}

function drawTimeline() {
  const { ctx, w, h } = prepareCanvas($("timeline"));
  if (!S.state) return;
  const css = getComputedStyle(document.documentElement);
  const colours = {};
  for (const s of ["empty", "propagated", "clicked", "manual"]) colours[s] = css.getPropertyValue("--" + s).trim();
  const n = S.state.frames.length;
  const step = w / n;
  for (let i = 0; i < n; i++) {
    const s = S.state.status[i];
    ctx.fillStyle = colours[s] || "#555";
    const top = s === "clicked" || s === "manual" ? 2 : 8;
    ctx.fillRect(i * step, top, Math.max(1, step - (step > 3 ? 1 : 0)), h - top - 6);
  }
  ctx.fillStyle = css.getPropertyValue("--reviewed").trim();
  for (let i = 0; i < n; i++) {
    if (S.state.reviewed[i]) ctx.fillRect(i * step, h - 4, Math.max(1, step - (step > 3 ? 1 : 0)), 4);
  }
  if (S.state.anchor !== null && S.state.anchor !== undefined) {
    ctx.fillStyle = "#fff";
    ctx.fillRect((S.state.anchor + 0.5) * step - 1, 0, 2, 3);
  }
  ctx.strokeStyle = "#fff";
  ctx.lineWidth = 2;
  ctx.strokeRect(S.frame * step + 1, 1, Math.max(2, step - 2), h - 2);
}

// ---------------------------------------------------------------------------------------------
// Mouse on the frame

function nearestPoint(ev) {
  const prompt = S.state.prompts[String(S.frame)];
  if (!prompt) return -1;
  const g = geometry();
  const [x, y] = toImage(ev);
  let best = -1, bestD = 9 / g.scale;
  prompt.points.forEach(([px, py], k) => {
    const d = Math.hypot(px - x, py - y);
    if (d <= bestD) { best = k; bestD = d; }
  });
  return best;
}

function sendPoints(points, labels, change) {
  const frame = frameName(S.frame);
  return mutate(async () => {
    say("segmenting " + frame + "…");
    const st = await api("POST", clipUrl("/points"), { frame, points, labels });
    applyState(st);
    say(points.length ? `${points.length} clicks on ${frame}` : "clicks removed on " + frame, "ok");
  }, change ? clickIntent(frame, change) : { what: "clear clicks on " + frame, replay: () => replayPoints(frame, () => [[], []]) });
}

// A click added or removed, as an edit that can be sent again on the clip's clicks as they are then.
function clickIntent(frame, change) {
  const [x, y] = change.point;
  if (change.remove) {
    return { what: "removing a click on " + frame, replay: () => replayPoints(frame, (pts, lbs) => {
      const k = pts.findIndex(([px, py]) => Math.hypot(px - x, py - y) < 0.5);
      if (k >= 0) { pts.splice(k, 1); lbs.splice(k, 1); }
      return [pts, lbs];
    }) };
  }
  return { what: (change.label ? "positive" : "negative") + " click on " + frame,
           replay: () => replayPoints(frame, (pts, lbs) => [pts.concat([[x, y]]), lbs.concat([change.label])]) };
}

async function replayPoints(frame, edit) {
  const prompt = S.state.prompts[String(S.state.frames.indexOf(frame))] || { points: [], labels: [] };
  const [points, labels] = edit(prompt.points.slice(), prompt.labels.slice());
  applyState(await api("POST", clipUrl("/points"), { frame, points, labels }));
}

function onMouseDown(ev) {
  if (!S.state) return;
  $("view").focus();
  if (ev.button === 1 || (ev.button === 0 && ev.altKey)) {
    S.pan = { x: ev.clientX, y: ev.clientY, px: S.panX, py: S.panY };
    ev.preventDefault();
    return;
  }
  const [x, y] = toImage(ev);
  if (x < 0 || y < 0 || x > S.state.width || y > S.state.height) return;
  if (S.tool === "click") {
    const prompt = S.state.prompts[String(S.frame)] || { points: [], labels: [] };
    const points = prompt.points.slice(), labels = prompt.labels.slice();
    const hit = nearestPoint(ev);
    let change;
    if (hit >= 0) {
      change = { remove: true, point: points[hit] };
      points.splice(hit, 1);
      labels.splice(hit, 1);
    } else {
      change = { point: [round2(x), round2(y)], label: ev.button === 2 || ev.shiftKey ? 0 : 1 };
      points.push(change.point);
      labels.push(change.label);
    }
    sendPoints(points, labels, change);
    return;
  }
  const erase = S.tool === "eraser" || ev.button === 2;
  const preview = document.createElement("canvas");
  preview.width = S.state.width;
  preview.height = S.state.height;
  S.stroke = { mode: erase ? "erase" : "paint", layer: S.layer, radius: S.radius, points: [[round2(x), round2(y)]], preview };
  paintPreview();
  draw();
}

function round2(v) { return Math.round(v * 100) / 100; }

function paintPreview() {
  const st = S.stroke;
  const ctx = st.preview.getContext("2d");
  ctx.fillStyle = ctx.strokeStyle = st.mode === "erase" ? "#00e5ff" : (st.layer === "ignore" ? "#aaaaaa" : "#eb2323");
  ctx.lineWidth = 2 * st.radius;
  ctx.lineCap = ctx.lineJoin = "round";
  const pts = st.points;
  ctx.beginPath();
  ctx.moveTo(pts[0][0], pts[0][1]);
  for (const [x, y] of pts) ctx.lineTo(x, y);
  if (pts.length === 1) {
    ctx.arc(pts[0][0], pts[0][1], st.radius, 0, 2 * Math.PI);
    ctx.fill();
  } else ctx.stroke();
}

function onMouseMove(ev) {
  if (!S.state) return;
  const rect = $("view").getBoundingClientRect();
  S.mouse = [ev.clientX - rect.left, ev.clientY - rect.top];
  if (S.pan) {
    S.panX = S.pan.px + ev.clientX - S.pan.x;
    S.panY = S.pan.py + ev.clientY - S.pan.y;
  } else if (S.stroke) {
    const [x, y] = toImage(ev);
    const last = S.stroke.points[S.stroke.points.length - 1];
    if (Math.hypot(x - last[0], y - last[1]) >= 0.75) {
      S.stroke.points.push([round2(x), round2(y)]);
      paintPreview();
    }
  }
  if (S.pan || S.stroke || S.tool !== "click") draw();
}

function onMouseUp() {
  if (S.pan) { S.pan = null; return; }
  const st = S.stroke;
  if (!st) return;
  const frame = frameName(S.frame);
  const chunks = [];
  for (let k = 0; k < st.points.length; k += 4000) chunks.push(st.points.slice(Math.max(0, k - 1), k + 4000));
  const send = async () => {
    let state = null;
    for (const points of chunks) {
      state = await api("POST", clipUrl("/stroke"), { frame, layer: st.layer, mode: st.mode, radius: st.radius, points });
    }
    return state;
  };
  const what = `${st.mode === "erase" ? "eraser" : "brush"} stroke (${st.layer}) on ${frame}`;
  mutate(async () => {
    const state = await send();
    if (S.stroke === st) S.stroke = null;
    applyState(state);
  }, { what, replay: async () => applyState(await send()) }).finally(() => { if (S.stroke === st) { S.stroke = null; draw(); } });
}

function onWheel(ev) {
  if (!S.state) return;
  ev.preventDefault();
  const rect = $("view").getBoundingClientRect();
  const mx = ev.clientX - rect.left, my = ev.clientY - rect.top;
  const g = geometry();
  const ix = (mx - g.ox) / g.scale, iy = (my - g.oy) / g.scale;
  const factor = ev.deltaY < 0 ? 1.2 : 1 / 1.2;
  S.zoom = Math.max(1, Math.min(16, S.zoom * factor));
  if (S.zoom === 1) { S.panX = 0; S.panY = 0; }
  else {
    const g2 = geometry();
    S.panX += mx - (g2.ox + ix * g2.scale);
    S.panY += my - (g2.oy + iy * g2.scale);
  }
  draw();
}

// ---------------------------------------------------------------------------------------------
// Actions

function propagate(direction) {
  if (!S.state) return;
  const frame = frameName(S.frame);
  return mutate(async () => {
    S.lastJob = null;
    applyState(await api("POST", clipUrl("/propagate"), { frame, direction }));
    say(direction === "between" ? "re-propagating between the keyframes around " + frame + " (from both ends)"
                                : "propagating " + direction + " from " + frame + " (keyframes are kept)");
  }, { what: `propagation (${direction}) from ${frame}` });  // not sent again: the clip may have changed
}

// An edit that is one request. ``again``: whether it can be sent again after the clip was taken back.
function simple(path, body, done, again) {
  if (!S.state) return;
  const send = async () => applyState(await api("POST", clipUrl(path), body));
  const what = path.slice(1).replace("_", " ") + (body && body.frame ? " on " + body.frame : "");
  return mutate(async () => {
    await send();
    if (done) say(done, "ok");
  }, { what, replay: again ? send : null });
}

function toggleReviewed() {
  if (!S.state) return;
  const frame = frameName(S.frame), reviewed = !S.state.reviewed[S.frame];
  return simple("/reviewed", { frame, reviewed }, reviewed ? frame + " marked reviewed" : frame + " not reviewed any more", true);
}

// The next frame (step +1 or -1, wrapping round) for which ``test(i)`` holds; null when none.
function seek(step, test, what) {
  if (!S.state) return;
  const n = S.state.frames.length;
  for (let k = 1; k < n; k++) {
    const i = (S.frame + step * k + n) % n;
    if (test(i)) { setFrame(i); return i; }
  }
  say("no " + what, "ok");
  return null;
}

const isKeyframe = (i) => S.state.status[i] === "clicked" || S.state.status[i] === "manual";

function gotoFrame(text) {
  if (!S.state) return;
  const value = text.trim();
  let i = S.state.frames.indexOf(value);
  if (i < 0 && /^\d+$/.test(value)) i = S.state.frames.findIndex((f) => /^\d+$/.test(f) && parseInt(f, 10) === parseInt(value, 10));
  if (i < 0) { say(`no frame ${value} (frames ${S.state.frames[0]}–${S.state.frames[S.state.frames.length - 1]})`, "error"); return; }
  $("view").focus();
  setFrame(i);
}

function setStyle(style) {
  S.style = style;
  $("overlay-style").value = style;
  ensureOverlay(S.frame);
  draw();
}

async function save(allowUnlabelled) {
  if (!S.state) return;
  if (S.expTimer) await sendExpressions();
  return mutate(async () => {
    say("saving…");
    let result;
    try {
      result = await api("POST", clipUrl("/save"), { allow_unlabelled: !!allowUnlabelled });
    } catch (err) {
      if (err.data && err.data.code === "unlabelled") {
        const n = err.data.frames.length;
        if (confirm(`${n} frames were never labelled (first: ${err.data.frames.slice(0, 5).join(", ")}). ` +
                    "Save them as 'target absent'?")) {
          setTimeout(() => save(true), 0);
        } else say("not saved: propagate through the whole clip first", "error");
        return;
      }
      throw err;
    }
    applyState(result.state);
    showValidation(result.save.problems, result.save.ok);
    if (!result.save.ok) $("validation").scrollIntoView({ block: "nearest" });
    say(`saved ${result.save.written} masks and ${result.save.expressions} expressions` +
        (result.save.ok ? " — valid" : " — see Validation"), result.save.ok ? "ok" : "error");
    loadClips();
  });
}

async function refreshValidation() {
  if (!S.clipId) return;
  try {
    const v = await api("GET", clipUrl("/validation"));
    showValidation(v.problems, v.ok);
  } catch (err) { showError(err); }
}

function showValidation(problems, ok) {
  const ul = $("validation");
  ul.textContent = "";
  const head = document.createElement("li");
  head.className = ok ? "ok" : "error";
  const errors = problems.filter((p) => p.severity === "error").length;
  head.textContent = ok ? `valid (saved files)${problems.length ? ", " + problems.length + " warnings" : ""}`
                        : `${errors} errors in the saved files`;
  head.id = "validation-summary";
  ul.appendChild(head);
  for (const p of problems.slice(0, 40)) {
    const li = document.createElement("li");
    li.className = p.severity;
    li.textContent = `${p.rule}: ${p.message}`;
    li.title = `${p.path}\nfix: ${p.hint}`;
    ul.appendChild(li);
  }
}

function showDialog(text, hint, takeOver, discard) {
  $("dialog-text").textContent = text;
  $("dialog-hint").textContent = hint || "";
  const btn = $("take-over");
  btn.hidden = !takeOver;
  btn.textContent = discard ? "Take back and send again" : "Take over";
  btn.onclick = takeOver ? () => { hideDialog(); takeOver(); } : null;
  $("dialog-discard").hidden = !discard;
  $("dialog").hidden = false;
}

function hideDialog() { $("dialog").hidden = true; }

function setTool(tool) {
  S.tool = tool;
  for (const r of document.querySelectorAll('input[name="tool"]')) r.checked = r.value === tool;
  $("view").style.cursor = tool === "click" ? "crosshair" : "none";
  draw();
}

function setLayer(layer) {
  S.layer = layer;
  for (const r of document.querySelectorAll('input[name="layer"]')) r.checked = r.value === layer;
  say("layer: " + layer);
  draw();
}

function setRadius(r) {
  S.radius = Math.max(1, Math.min(120, Math.round(r)));
  $("radius").value = String(S.radius);
  $("radius-value").textContent = String(S.radius);
  draw();
}

function setOpacity(v) {
  S.opacity = Math.max(0, Math.min(1, v));
  $("opacity").value = String(Math.round(S.opacity * 100));
  $("opacity-value").textContent = String(Math.round(S.opacity * 100));
  draw();
}

function togglePlay() {
  if (S.playing) return stopPlaying();
  if (!S.state) return;
  const fps = Math.min(24, (S.meta && S.meta.fps) || 24);
  $("play").textContent = "❚❚";
  S.playing = setInterval(() => {
    const next = (S.frame + 1) % S.state.frames.length;
    const img = frameImage(next);
    if (img.complete) setFrame(next);
  }, 1000 / fps);
}

function stopPlaying() {
  if (S.playing) clearInterval(S.playing);
  S.playing = null;
  $("play").textContent = "▶▶";
}

function onKey(ev) {
  const inField = ev.target instanceof HTMLInputElement && ev.target.type !== "range" && ev.target.type !== "radio";
  const ctrl = ev.ctrlKey || ev.metaKey;
  if (ctrl && ev.key.toLowerCase() === "s") { ev.preventDefault(); save(false); return; }
  if (inField) return;
  if (!S.state && ev.key !== "?") return;
  const k = ev.key;
  let handled = true;
  if (ctrl && k.toLowerCase() === "z" && !ev.shiftKey) simple("/undo", undefined);
  else if (ctrl && (k.toLowerCase() === "y" || (k.toLowerCase() === "z" && ev.shiftKey))) simple("/redo", undefined);
  else if (ctrl) handled = false;
  else if (k === "ArrowLeft" || k === "a") setFrame(S.frame - (ev.shiftKey ? 10 : 1));
  else if (k === "ArrowRight" || k === "d") setFrame(S.frame + (ev.shiftKey ? 10 : 1));
  else if (k === "Home") setFrame(0);
  else if (k === "End") setFrame(S.state.frames.length - 1);
  else if (k === "m") setFrame(S.state.middle);
  else if (k === " ") togglePlay();
  else if (k === "c") setTool("click");
  else if (k === "b") setTool("brush");
  else if (k === "e") setTool("eraser");
  else if (k === "i") setLayer(S.layer === "target" ? "ignore" : "target");
  else if (k === "[") setRadius(S.radius / 1.25);
  else if (k === "]") setRadius(S.radius * 1.25 + 1);
  else if (k === "o") { S.overlayOn = !S.overlayOn; draw(); }
  else if (k === "9") setOpacity(S.opacity - 0.1);
  else if (k === "0") setOpacity(S.opacity + 0.1);
  else if (k === "p") propagate("both");
  else if (k === ".") propagate("forward");
  else if (k === ",") propagate("backward");
  else if (k === "r") propagate("between");
  else if (k === "v") toggleReviewed();
  else if (k === "n") seek(1, (i) => !S.state.reviewed[i], "frame left to review");
  else if (k === "N") seek(-1, (i) => !S.state.reviewed[i], "frame left to review");
  else if (k === "k") seek(1, isKeyframe, "keyframe");
  else if (k === "K") seek(-1, isKeyframe, "keyframe");
  else if (k === "f") { $("goto").focus(); $("goto").select(); }
  else if (k === "l") setStyle(STYLES[(STYLES.indexOf(S.style) + 1) % STYLES.length]);
  else if (k === "Escape") { hideDialog(); simple("/cancel", undefined, "cancelling…"); }
  else if (k === "h") simple("/fill_holes", { frame: frameName(S.frame), layer: S.layer }, "holes filled", true);
  else if (k === "H") simple("/fill_holes", { frame: null, layer: S.layer }, "holes filled in every frame", true);
  else if (k === "x") sendPoints([], []);
  else if (k === "Delete") simple("/clear", { frame: frameName(S.frame), layer: "target" }, "target cleared", true);
  else if (k === "g") simple("/copy_ignore", { frame: frameName(S.frame), to: "next" }, "Ignore copied to the next frame", true);
  else if (k === "z") { S.zoom = 1; S.panX = 0; S.panY = 0; draw(); }
  else if (k === "?") { const t = $("shortcuts"); t.hidden = !t.hidden; }
  else handled = false;
  if (handled) ev.preventDefault();
}

function onTimeline(ev) {
  if (!S.state) return;
  const rect = $("timeline").getBoundingClientRect();
  const i = Math.floor(((ev.clientX - rect.left) / rect.width) * S.state.frames.length);
  setFrame(i);
}

// ---------------------------------------------------------------------------------------------
// Start

function renderShortcuts() {
  const table = $("shortcuts");
  for (const [keys, what] of SHORTCUTS) {
    const tr = document.createElement("tr");
    const a = document.createElement("td");
    const b = document.createElement("td");
    a.textContent = keys;
    b.textContent = what;
    tr.append(a, b);
    table.appendChild(tr);
  }
}

function wire() {
  const view = $("view");
  view.addEventListener("mousedown", onMouseDown);
  window.addEventListener("mousemove", onMouseMove);
  window.addEventListener("mouseup", onMouseUp);
  view.addEventListener("mouseleave", () => { S.mouse = null; draw(); });
  view.addEventListener("contextmenu", (ev) => ev.preventDefault());
  view.addEventListener("wheel", onWheel, { passive: false });
  document.addEventListener("keydown", onKey);
  window.addEventListener("resize", () => { draw(); drawTimeline(); });
  let scrubbing = false;
  $("timeline").addEventListener("mousedown", (ev) => { scrubbing = true; onTimeline(ev); });
  window.addEventListener("mousemove", (ev) => { if (scrubbing) onTimeline(ev); });
  window.addEventListener("mouseup", () => { scrubbing = false; });
  $("scrub").addEventListener("input", (ev) => setFrame(parseInt(ev.target.value, 10)));
  $("prev-frame").onclick = () => setFrame(S.frame - 1);
  $("next-frame").onclick = () => setFrame(S.frame + 1);
  $("play").onclick = togglePlay;
  for (const r of document.querySelectorAll('input[name="tool"]')) r.addEventListener("change", () => setTool(r.value));
  for (const r of document.querySelectorAll('input[name="layer"]')) r.addEventListener("change", () => setLayer(r.value));
  $("radius").addEventListener("input", (ev) => setRadius(parseInt(ev.target.value, 10)));
  $("opacity").addEventListener("input", (ev) => setOpacity(parseInt(ev.target.value, 10) / 100));
  $("propagate-both").onclick = () => propagate("both");
  $("propagate-forward").onclick = () => propagate("forward");
  $("propagate-backward").onclick = () => propagate("backward");
  $("propagate-between").onclick = () => propagate("between");
  $("mark-reviewed").onclick = toggleReviewed;
  $("next-unreviewed").onclick = () => seek(1, (i) => !S.state.reviewed[i], "frame left to review");
  $("next-keyframe").onclick = () => seek(1, isKeyframe, "keyframe");
  $("goto").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") { ev.preventDefault(); gotoFrame(ev.target.value); }
    else if (ev.key === "Escape") { ev.target.value = frameName(S.frame); $("view").focus(); }
  });
  $("overlay-style").addEventListener("change", (ev) => setStyle(ev.target.value));
  $("dialog-discard").onclick = () => { hideDialog(); discardPending(); };
  $("cancel").onclick = () => simple("/cancel", undefined, "cancelling…");
  $("fill-holes").onclick = () => simple("/fill_holes", { frame: frameName(S.frame), layer: S.layer }, "holes filled", true);
  $("fill-holes-all").onclick = () => simple("/fill_holes", { frame: null, layer: S.layer }, "holes filled in every frame", true);
  $("clear-points").onclick = () => sendPoints([], []);
  $("clear-target").onclick = () => simple("/clear", { frame: frameName(S.frame), layer: "target" }, "target cleared", true);
  $("clear-ignore").onclick = () => simple("/clear", { frame: frameName(S.frame), layer: "ignore" }, "Ignore cleared", true);
  $("copy-ignore-next").onclick = () => simple("/copy_ignore", { frame: frameName(S.frame), to: "next" }, "Ignore copied to the next frame", true);
  $("copy-ignore-all").onclick = () => simple("/copy_ignore", { frame: frameName(S.frame), to: "all" }, "Ignore copied to every frame", true);
  $("undo").onclick = () => simple("/undo", undefined);
  $("redo").onclick = () => simple("/redo", undefined);
  $("save").onclick = () => save(false);
  $("refresh-clips").onclick = loadClips;
  $("revalidate").onclick = refreshValidation;
  $("dialog-close").onclick = hideDialog;
  // Closing or reloading the tab lets another tab open this clip without a takeover (a reload of
  // this tab takes it back). keepalive lets the request outlive the page.
  window.addEventListener("pagehide", () => {
    if (S.clipId) {
      fetch(clipUrl("/release"), { method: "POST", keepalive: true,
                                   headers: { "X-Refvps-Token": S.token, "X-Refvps-Client": S.client } })
        .catch(() => {});  // the server may be gone already: nothing to release then
    }
  });
  for (const id of ["annotator-0", "annotator-1", "exp-0", "exp-1", "exp-2", "exp-3"]) $(id).addEventListener("input", expressionsChanged);
}

async function start() {
  S.client = clientId();
  renderShortcuts();
  wire();
  setRadius(12);
  setOpacity(0.5);
  try {
    S.info = await api("GET", "/api/info");
  } catch (err) { showError(err); return; }
  const seg = S.info.segmenter;
  $("segmenter").textContent = `segmenter: ${seg.name}` + (seg.checkpoint ? ` · ${seg.checkpoint}` : "") + ` · ${seg.device}`;
  $("segmenter").title = seg.description + (seg.config ? "\nconfig: " + seg.config : "");
  $("fallback").hidden = !seg.fallback;
  $("root").textContent = S.info.root;
  if (S.info.recovered && S.info.recovered.length) say(S.info.recovered.join("; "), "ok");
  await loadClips();
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("clip");
  const initial = fromHash || S.info.initial_clip;
  if (initial && S.clips.some((c) => c.id === initial)) openClip(initial, false);
}

// A small hook for scripted tests of the page (coordinates, state); it changes nothing.
window.__refvps = { imageToClient, state: () => S.state, frame: () => S.frame, idle: () => S.chain,
                    pending: () => S.pending.map((p) => p.what), style: () => S.style };

start();
