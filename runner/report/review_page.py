"""The review app's one page: style and script here, markup in templates/review.html;
served by runner/report/review_app.py.

The script keeps every take of the build in memory (a few hundred bytes each)
and puts in the page only the rows in view (a virtualised list of fixed-height
rows), so a 10,000-asset build scrolls and filters as fast as a small one.
Waveforms and loudness are asked for only for the rows in view, a batch at a
time, and drawn on canvases. Data from the build is only ever put in the page as
text (`textContent`), never parsed as HTML. Every URL is relative to the page,
whose path holds the session's secret, so requests carry it without cookies.

Keys: j/k or up/down move between takes, left/right between the takes of one
job, space plays or pauses, l loops, a approves, r rejects (a note box opens:
Enter saves, Escape cancels), u clears, 1-9 pick a take of a job with variants,
/ searches, ? shows the keys. After a decision the cursor moves to the next
take nobody has decided about.
"""

from __future__ import annotations

from markupsafe import Markup

from runner.report.markup import render_template

CSS = """
:root { color-scheme: light dark; --fg: #1d2330; --muted: #5d6675; --bg: #f6f7f9;
  --card: #fff; --line: #dde1e7; --accent: #2563eb; --sel: rgba(37, 99, 235, .12);
  --ok: #067647; --ok-bg: #dcfae6; --bad: #b42318; --bad-bg: #fde8e6; --wave: #7c8aa5;
  --star: #b54708; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6e8ec; --muted: #9aa3b2; --bg: #14171c; --card: #1d2128; --line: #2e343e;
    --accent: #6ea1ff; --sel: rgba(110, 161, 255, .16); --ok: #6ce9a6; --ok-bg: #173326;
    --bad: #ff8a80; --bad-bg: #3a1f1f; --wave: #8793a8; --star: #fdb022; }
}
* { box-sizing: border-box; }
[hidden] { display: none !important; }
html, body { height: 100%; margin: 0; }
body { display: grid; grid-template-rows: auto auto 1fr auto; color: var(--fg);
  background: var(--bg); font: 13px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; }
header { display: flex; gap: 12px; align-items: baseline; padding: 8px 14px 4px; }
header h1 { font-size: 17px; margin: 0; }
.muted { color: var(--muted); }
nav { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; padding: 6px 14px;
  border-bottom: 1px solid var(--line); }
nav input[type=search] { flex: 1 1 220px; }
nav input, nav select, nav button, .actions button, #note-form input, #note-form button {
  font: inherit; padding: 4px 8px; border: 1px solid var(--line); border-radius: 6px;
  background: var(--card); color: inherit; }
#shown { margin-left: auto; color: var(--muted); }
main { display: grid; grid-template-columns: minmax(0, 1fr) 440px; min-height: 0; }
#list { position: relative; overflow: auto; min-height: 0; outline: none; }
#spacer { width: 1px; }
.row { position: absolute; left: 0; right: 0; height: ROW_Hpx; padding: 6px 10px;
  border-bottom: 1px solid var(--line); overflow: hidden; }
.row .head { display: flex; gap: 8px; white-space: nowrap; overflow: hidden; height: 18px; }
.row .gid { font-weight: 600; }
.row .kind, .row .model, .row .voice { color: var(--muted); }
.row .prompt { overflow: hidden; text-overflow: ellipsis; }
.takes { display: flex; gap: 6px; margin-top: 4px; overflow-x: auto; }
.cell { flex: 0 0 236px; display: grid; grid-template-columns: 18px 150px 1fr;
  grid-template-rows: 30px 16px; column-gap: 6px; padding: 4px 6px; border-radius: 6px;
  border: 1px solid var(--line); background: var(--card); cursor: pointer; }
.cell canvas { grid-row: 1; grid-column: 2; width: 150px; height: 30px; }
.cell .num { grid-row: 1 / 3; font-weight: 600; color: var(--muted); align-self: center; }
.cell .dur { grid-row: 1; grid-column: 3; align-self: center; text-align: right; }
.cell .loud { grid-row: 2; grid-column: 2; color: var(--muted); font-size: 11px;
  white-space: nowrap; }
.cell .mark { grid-row: 2; grid-column: 3; text-align: right; font-size: 11px;
  white-space: nowrap; }
.cell.sel { outline: 2px solid var(--accent); background: var(--sel); }
.cell.dec-approved { border-color: var(--ok); }
.cell.dec-approved .mark { color: var(--ok); }
.cell.dec-rejected { border-color: var(--bad); background: var(--bad-bg); }
.cell.dec-rejected .mark { color: var(--bad); }
.cell.chosen .num { color: var(--star); }
.cell.unbuilt { opacity: .55; }
#detail { border-left: 1px solid var(--line); overflow: auto; padding: 10px 14px;
  min-height: 0; }
#detail h2 { font-size: 15px; margin: 0 0 4px; word-break: break-all; }
#wave-wrap { position: relative; margin: 6px 0 0; }
#d-wave { width: 100%; height: 140px; display: block; cursor: pointer;
  background: var(--card); border: 1px solid var(--line); border-radius: 6px; }
#d-head { position: absolute; top: 0; bottom: 22px; width: 2px; background: var(--accent);
  left: 0; pointer-events: none; }
.transport { display: flex; gap: 12px; margin: 6px 0; color: var(--muted); }
.transport .on { color: var(--accent); font-weight: 600; }
.actions { display: flex; gap: 6px; flex-wrap: wrap; margin: 8px 0; }
.actions button { cursor: pointer; }
kbd { font: 11px ui-monospace, monospace; border: 1px solid var(--line); border-radius: 3px;
  padding: 0 3px; }
#note-form { display: flex; gap: 6px; margin: 6px 0; }
#note-form input { flex: 1; }
#d-decision.approved { color: var(--ok); font-weight: 600; }
#d-decision.rejected { color: var(--bad); font-weight: 600; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 10px; margin: 8px 0; }
dt { color: var(--muted); }
dd { margin: 0; word-break: break-all; }
pre { white-space: pre-wrap; word-break: break-word; font: 12px ui-monospace, monospace;
  background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 6px; }
#player { width: 100%; margin-top: 6px; }
footer { padding: 4px 14px; border-top: 1px solid var(--line); color: var(--muted);
  min-height: 24px; }
footer.error { color: var(--bad); }
#help { position: fixed; inset: 10% 25%; background: var(--card); border: 1px solid var(--line);
  border-radius: 10px; padding: 16px 20px; box-shadow: 0 8px 30px rgba(0, 0, 0, .25);
  z-index: 5; overflow: auto; }
#help table td { padding: 2px 10px 2px 0; }
.miss { color: var(--bad); }
"""

JS = r"""
(function () {
  "use strict";
  const ROW_H = __ROW_H__, OVERSCAN = 4, BATCH = 16;
  const $ = (s) => document.querySelector(s);
  const list = $("#list"), spacer = $("#spacer"), player = $("#player");
  const status = $("footer");
  let data = null, groups = [], shown = [], rendered = new Map();
  const views = new Map(), pending = new Set();
  let cursor = null;  // {s: index into shown, a: index of the take in its group}
  const filters = {text: "", model: "", state: "", review: "", changed: false};

  function say(text, error) {
    status.textContent = text;
    status.className = error ? "error" : "";
  }
  async function api(path, body) {
    const init = body === undefined ? {} : {method: "POST", body: JSON.stringify(body),
                                           headers: {"Content-Type": "application/json"}};
    const answer = await fetch(path, init);
    const json = await answer.json().catch(() => ({error: answer.statusText}));
    if (!answer.ok) { throw new Error(json.error || answer.statusText); }
    return json;
  }
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }
  function fmtS(s) {
    if (s === null || s === undefined || isNaN(s)) { return "?"; }
    if (s < 60) { return s.toFixed(1) + " s"; }
    const m = Math.floor(s / 60);
    return m + ":" + (s - 60 * m).toFixed(1).padStart(4, "0");
  }
  function clock(s) {
    const m = Math.floor(s / 60);
    return m + ":" + (s - 60 * m).toFixed(1).padStart(4, "0");
  }
  function loudText(v) {
    if (!v) { return "…"; }
    if (v.problem) { return "cannot decode"; }
    const lufs = v.lufs === null ? "– LUFS" : v.lufs.toFixed(1) + " LUFS";
    const tp = v.tp === null ? "" : " · " + v.tp.toFixed(1) + " dBTP";
    return lufs + tp;
  }

  // --- the model ------------------------------------------------------------------
  const asset = (s, a) => groups[shown[s]].assets[a];
  const built = (x) => x.built;
  function assetMatches(x) {
    if (filters.state && x.status !== filters.state) { return false; }
    if (filters.review === "unreviewed" && x.decision) { return false; }
    if (filters.review && filters.review !== "unreviewed" && x.decision !== filters.review) {
      return false;
    }
    return !filters.changed || x.changed;
  }
  function groupMatches(g) {
    if (filters.model !== "" && String(g.model) !== filters.model) { return false; }
    if (filters.text) {
      const hay = g.hay || (g.hay = (g.id + " " + g.prompt + " " + g.voices.join(" ") + " " +
                                     g.kind).toLowerCase());
      if (!filters.text.split(/\s+/).every((w) => hay.indexOf(w) >= 0)) { return false; }
    }
    return g.assets.some(assetMatches);
  }
  function applyFilters() {
    const keep = cursor && shown.length ? asset(cursor.s, cursor.a).id : null;
    shown = [];
    groups.forEach((g, i) => { if (groupMatches(g)) { shown.push(i); } });
    let takes = 0, all = 0;
    shown.forEach((i) => { takes += groups[i].assets.length; });
    groups.forEach((g) => { all += g.assets.length; });
    $("#shown").textContent = takes + " of " + all + " takes shown";
    spacer.style.height = (shown.length * ROW_H) + "px";
    rendered.forEach((row) => row.remove());
    rendered.clear();
    cursor = null;
    if (keep) { const at = locate(keep); if (at) { cursor = at; } }
    if (!cursor && shown.length) { cursor = {s: 0, a: 0}; }
    $("#empty").hidden = shown.length > 0;
    draw();
    if (cursor) { select(cursor.s, cursor.a, {scroll: true}); }
  }
  function locate(id) {
    for (let s = 0; s < shown.length; s++) {
      const a = groups[shown[s]].assets.findIndex((x) => x.id === id);
      if (a >= 0) { return {s: s, a: a}; }
    }
    return null;
  }
  function counts() {
    let ok = 0, bad = 0, none = 0;
    groups.forEach((g) => g.assets.forEach((x) => {
      if (x.decision === "approved") { ok++; } else if (x.decision === "rejected") { bad++; }
      else if (built(x)) { none++; }
    }));
    $("#counts").textContent = ok + " approved · " + bad + " rejected · " + none +
      " to review";
  }

  // --- the virtualised list ---------------------------------------------------------
  // Colours are read once (and again when the scheme changes): reading computed style
  // while rows are being added would force a layout per waveform.
  let colours = null;
  function colour(name) {
    if (!colours) {
      const css = getComputedStyle(document.documentElement);
      colours = {};
      ["--line", "--wave", "--sel", "--muted"].forEach((n) => {
        colours[n] = css.getPropertyValue(n);
      });
    }
    return colours[name];
  }
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
    colours = null;
    rendered.forEach((row) => row.remove());
    rendered.clear();
    draw();
    paintDetail();
  });
  function paintWave(canvas, view, played) {
    const ctx = canvas.getContext("2d");
    const w = canvas.width, h = canvas.height, mid = h / 2;
    ctx.clearRect(0, 0, w, h);
    if (!view || !view.bytes) {
      ctx.fillStyle = colour("--line");
      ctx.fillRect(0, mid - 0.5, w, 1);
      return;
    }
    const bars = view.bytes.length / 2;
    const y = (v) => mid - Math.sign(v) * Math.sqrt(Math.abs(v) / 100) * (mid - 1);
    ctx.fillStyle = colour("--wave");
    for (let i = 0; i < bars; i++) {
      const lo = view.bytes[2 * i] - 128, hi = view.bytes[2 * i + 1] - 128;
      const x = Math.floor(i * w / bars), next = Math.max(x + 1, Math.floor((i + 1) * w / bars));
      ctx.fillRect(x, y(hi), Math.max(1, next - x - (w / bars > 2 ? 1 : 0)),
                   Math.max(1, y(lo) - y(hi)));
    }
    if (played) {
      ctx.fillStyle = colour("--sel");
      ctx.fillRect(0, 0, played * w, h);
    }
  }
  function markText(x) {
    const parts = [];
    if (x.chosen) { parts.push("★ picked"); }
    if (x.decision === "approved" && !x.chosen) { parts.push("✓ approved"); }
    if (x.decision === "rejected") { parts.push("✗ rejected"); }
    if (!x.decision && !built(x)) { parts.push(x.status); }
    return parts.join(" ");
  }
  function cell(x, s, a) {
    const c = el("div", "cell");
    c.dataset.id = x.id;
    c.dataset.s = s;
    c.dataset.a = a;
    c.classList.toggle("dec-approved", x.decision === "approved");
    c.classList.toggle("dec-rejected", x.decision === "rejected");
    c.classList.toggle("chosen", !!x.chosen);
    c.classList.toggle("unbuilt", !built(x));
    c.classList.toggle("sel", !!cursor && cursor.s === s && cursor.a === a);
    c.title = x.note ? x.id + ": " + x.note : x.id;
    const canvas = el("canvas");
    canvas.width = 150;
    canvas.height = 30;
    c.append(el("span", "num", String(x.take)), canvas, el("span", "dur", fmtS(x.duration)),
             el("span", "loud", built(x) ? loudText(views.get(x.id)) : ""),
             el("span", "mark", markText(x)));
    paintWave(canvas, views.get(x.id));
    return c;
  }
  function row(s) {
    const g = groups[shown[s]];
    const r = el("div", "row");
    r.style.top = (s * ROW_H) + "px";
    r.dataset.s = s;
    const head = el("div", "head");
    head.append(el("span", "gid", g.id),
                el("span", "kind", g.kind + (g.parent ? " of " + g.parent : "")),
                el("span", "model", data.models[g.model]));
    if (g.voices.length) { head.append(el("span", "voice", "voice: " + g.voices.join(", "))); }
    head.append(el("span", "prompt", g.prompt));
    const takes = el("div", "takes");
    g.assets.forEach((x, a) => takes.append(cell(x, s, a)));
    r.append(head, takes);
    return r;
  }
  function windowRange() {
    const first = Math.max(0, Math.floor(list.scrollTop / ROW_H) - OVERSCAN);
    const last = Math.min(shown.length - 1,
                          Math.ceil((list.scrollTop + list.clientHeight) / ROW_H) + OVERSCAN);
    return [first, last];
  }
  function draw() {
    const [first, last] = windowRange();
    rendered.forEach((node, s) => {
      if (s < first || s > last) { node.remove(); rendered.delete(s); }
    });
    for (let s = first; s <= last; s++) {
      if (!rendered.has(s)) {
        const node = row(s);
        rendered.set(s, node);
        list.append(node);
      }
    }
    scheduleViews();
  }
  function redrawGroup(gi) {
    const s = shown.indexOf(gi);
    if (s >= 0 && rendered.has(s)) {
      const node = row(s);
      rendered.get(s).replaceWith(node);
      rendered.set(s, node);
    }
  }
  let scrollQueued = false;
  list.addEventListener("scroll", () => {
    if (!scrollQueued) {
      scrollQueued = true;
      requestAnimationFrame(() => { scrollQueued = false; draw(); });
    }
  });
  window.addEventListener("resize", () => { draw(); paintDetail(); });

  // --- waveforms and loudness, for the rows in view only ------------------------------
  let viewTimer = null;
  function scheduleViews() {
    clearTimeout(viewTimer);
    viewTimer = setTimeout(fetchViews, 60);
  }
  async function fetchViews() {
    const [first, last] = windowRange();
    const ids = [];
    const selected = cursor && shown.length ? asset(cursor.s, cursor.a) : null;
    if (selected && built(selected) && !views.has(selected.id) && !pending.has(selected.id)) {
      ids.push(selected.id);
    }
    for (let s = first; s <= last; s++) {
      groups[shown[s]].assets.forEach((x) => {
        if (built(x) && !views.has(x.id) && !pending.has(x.id) && ids.indexOf(x.id) < 0) {
          ids.push(x.id);
        }
      });
    }
    for (let i = 0; i < ids.length; i += BATCH) {
      const batch = ids.slice(i, i + BATCH);
      batch.forEach((id) => pending.add(id));
      api("api/views", {ids: batch}).then((answer) => {
        Object.keys(answer).forEach((id) => {
          const v = answer[id];
          if (v.peaks) {
            const raw = atob(v.peaks), bytes = new Uint8Array(raw.length);
            for (let k = 0; k < raw.length; k++) { bytes[k] = raw.charCodeAt(k); }
            v.bytes = bytes;
          }
          views.set(id, v);
          pending.delete(id);
          refreshCell(id);
        });
      }).catch((err) => {
        batch.forEach((id) => pending.delete(id));
        say("waveforms: " + err.message, true);
      });
    }
  }
  function refreshCell(id) {
    const at = locate(id);
    if (at && rendered.has(at.s)) {
      const old = rendered.get(at.s).querySelector('.cell[data-a="' + at.a + '"]');
      if (old) { old.replaceWith(cell(asset(at.s, at.a), at.s, at.a)); }
    }
    if (cursor && shown.length && asset(cursor.s, cursor.a).id === id) { showDetail(); }
  }

  // --- the selected take --------------------------------------------------------------
  let detail = null, detailTimer = null, sourceTimer = null, loop = false;
  function select(s, a, options) {
    if (!shown.length) { return; }
    const wasPlaying = !player.paused;
    const previous = cursor;
    cursor = {s: s, a: a};
    if (previous && rendered.has(previous.s)) {
      const old = rendered.get(previous.s).querySelector('.cell[data-a="' + previous.a + '"]');
      if (old) { old.classList.remove("sel"); }
    }
    if ((options && options.scroll) || !rendered.has(s)) {
      const top = s * ROW_H;
      if (top < list.scrollTop) { list.scrollTop = top; }
      else if (top + ROW_H > list.scrollTop + list.clientHeight) {
        list.scrollTop = top + ROW_H - list.clientHeight;
      }
      draw();
    }
    const here = rendered.get(s) && rendered.get(s).querySelector('.cell[data-a="' + a + '"]');
    if (here) { here.classList.add("sel"); }
    const x = asset(s, a);
    const src = built(x) ? "audio?id=" + encodeURIComponent(x.id) : "";
    // Holding j should not start a download per take passed: the player follows the
    // cursor once it rests (at once when something is playing: keep listening).
    clearTimeout(sourceTimer);
    const load = () => {
      if (player.getAttribute("src") !== src) {
        if (src) { player.src = src; } else { player.removeAttribute("src"); player.load(); }
        if (wasPlaying && src) { play(); }
      }
      player.loop = loop;
    };
    if (wasPlaying) { load(); } else { sourceTimer = setTimeout(load, 120); }
    detail = null;
    showDetail();
    clearTimeout(detailTimer);
    detailTimer = setTimeout(() => loadDetail(x.id), 120);
    scheduleViews();
  }
  async function loadDetail(id) {
    try {
      const d = await api("api/detail?id=" + encodeURIComponent(id));
      if (cursor && asset(cursor.s, cursor.a).id === id) { detail = d; showDetail(); }
    } catch (err) { say(err.message, true); }
  }
  function fact(dl, name, value) {
    if (value === null || value === undefined || value === "") { return; }
    dl.append(el("dt", null, name), el("dd", null, String(value)));
  }
  function showDetail() {
    if (!cursor || !shown.length) { return; }
    const x = asset(cursor.s, cursor.a), g = groups[shown[cursor.s]];
    const v = views.get(x.id);
    $("#d-title").textContent = x.id;
    $("#d-sub").textContent = g.kind + " · " + data.models[g.model] +
      (g.voices.length ? " · voice " + g.voices.join(", ") : "") +
      (g.assets.length > 1 ? " · take " + x.take + " of " + g.assets.length : "");
    const dec = $("#d-decision");
    dec.className = x.decision || "";
    dec.textContent = x.decision ? (x.decision + (x.chosen ? ", picked" : "") +
      (x.by ? " by " + x.by : "") + (x.note ? ": " + x.note : "")) :
      (built(x) ? "not reviewed" : x.status);
    $("#d-earlier").textContent = x.earlier ? "An earlier take was " + x.earlier.decision +
      (x.earlier.note ? ": " + x.earlier.note : "") + "." : "";
    $("#d-time").textContent = clock(player.currentTime || 0) + " / " + fmtS(x.duration);
    $("#d-loud").textContent = built(x) ? loudText(v) : "";
    const dl = $("#d-facts");
    dl.textContent = "";
    fact(dl, "status", x.status);
    fact(dl, "duration", fmtS(x.duration));
    if (v && v.lufs !== undefined) {
      fact(dl, "loudness", v.lufs === null ? "not measurable (too short or silent)"
                                           : v.lufs.toFixed(1) + " LUFS");
      fact(dl, "true peak", v.tp === null ? null : v.tp.toFixed(1) + " dBTP");
    }
    $("#d-prompt").textContent = detail ? detail.prompt : g.prompt;
    if (detail) {
      const t = detail.loudness_target;
      if (t && t.target_lufs !== null && t.target_lufs !== undefined) {
        const line = "asked " + t.target_lufs + " LUFS (≤ " + t.max_true_peak_dbtp +
          " dBTP), measured " + (t.measured_lufs === null ? "?" : t.measured_lufs) +
          " LUFS, " + (t.measured_true_peak_dbtp === null ? "?" : t.measured_true_peak_dbtp) +
          " dBTP" + (t.met ? "" : " — " + (t.problem || "missed"));
        fact(dl, "target", line);
        if (!t.met) { dl.lastChild.classList.add("miss"); }
      }
      fact(dl, "post-processing", detail.postprocess);
      fact(dl, "model", detail.model);
      fact(dl, "provider", detail.provider);
      fact(dl, "format", detail.format);
      fact(dl, "file", detail.output);
      fact(dl, "credits", detail.credits);
      fact(dl, "task", detail.task);
      fact(dl, "made", detail.made);
      fact(dl, "key", detail.key);
      fact(dl, "exported to", detail.approved_path);
      fact(dl, "failure", detail.reason);
      $("#d-input").textContent = JSON.stringify(detail.narration || detail.input, null, 2);
    }
    paintDetail();
  }
  function paintDetail() {
    const canvas = $("#d-wave");
    const box = canvas.getBoundingClientRect();
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.max(1, Math.round(box.width * ratio));
    canvas.height = Math.round(140 * ratio);
    const ctx = canvas.getContext("2d");
    const scale = 22 * ratio;
    const wave = document.createElement("canvas");
    wave.width = canvas.width;
    wave.height = canvas.height - scale;
    if (!cursor || !shown.length) { return; }
    const x = asset(cursor.s, cursor.a);
    paintWave(wave, views.get(x.id));
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(wave, 0, 0);
    // The time scale: a tick every step, labelled, chosen so that about 8 fit.
    const d = duration();
    if (!d) { return; }
    const steps = [0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800];
    const step = steps.find((t) => d / t <= 8) || 3600;
    ctx.fillStyle = colour("--muted");
    ctx.font = (11 * ratio) + "px system-ui, sans-serif";
    ctx.textBaseline = "top";
    for (let t = 0; t <= d + 1e-9; t += step) {
      const px = Math.round(t / d * (canvas.width - 1));
      ctx.fillRect(px, wave.height, Math.max(1, ratio), 5 * ratio);
      const label = step < 1 ? t.toFixed(step < 0.1 ? 2 : 1) + "s" : clock(t).replace(/\.0$/, "");
      const width = ctx.measureText(label).width;
      ctx.fillText(label, Math.min(Math.max(0, px - width / 2), canvas.width - width),
                   wave.height + 7 * ratio);
    }
    movePlayhead();
  }
  function duration() {
    if (!cursor || !shown.length) { return 0; }
    const x = asset(cursor.s, cursor.a), v = views.get(x.id);
    return player.duration && isFinite(player.duration) ? player.duration :
      (x.duration || (v && v.d) || 0);
  }
  function movePlayhead() {
    const d = duration(), box = $("#d-wave").getBoundingClientRect();
    $("#d-head").style.left = (d ? Math.min(1, player.currentTime / d) * (box.width - 2) : 0) +
      "px";
    if (cursor && shown.length) {
      $("#d-time").textContent = clock(player.currentTime || 0) + " / " +
        fmtS(asset(cursor.s, cursor.a).duration || d);
    }
  }
  function tick() {
    movePlayhead();
    if (!player.paused) { requestAnimationFrame(tick); }
  }
  player.addEventListener("play", () => requestAnimationFrame(tick));
  player.addEventListener("seeked", movePlayhead);
  player.addEventListener("loadedmetadata", paintDetail);
  $("#d-wave").addEventListener("click", (e) => {
    const box = e.currentTarget.getBoundingClientRect(), d = duration();
    if (cursor && shown.length && built(asset(cursor.s, cursor.a)) && player.paused) {
      const src = "audio?id=" + encodeURIComponent(asset(cursor.s, cursor.a).id);
      if (player.getAttribute("src") !== src) { clearTimeout(sourceTimer); player.src = src; }
    }
    if (d && player.getAttribute("src")) {
      player.currentTime = Math.max(0, Math.min(1, (e.clientX - box.left) / box.width)) * d;
      play();
    }
  });
  function toggle() {
    if (!cursor || !shown.length) { return; }
    const x = asset(cursor.s, cursor.a);
    if (!built(x)) { say(x.id + " has no take to play", true); return; }
    const src = "audio?id=" + encodeURIComponent(x.id);
    if (player.getAttribute("src") !== src) {  // the cursor moved a moment ago
      clearTimeout(sourceTimer);
      player.src = src;
      player.loop = loop;
    }
    if (player.paused) { play(); } else { player.pause(); }
  }
  function play() {
    const p = player.play();
    if (p && p.catch) { p.catch((err) => say("cannot play: " + err.message, true)); }
  }

  // --- decisions --------------------------------------------------------------------
  function update(x) {
    const at = locate(x.id);
    const gi = at ? shown[at.s] : groups.findIndex((g) => g.assets.some((y) => y.id === x.id));
    if (gi < 0) { return; }
    const g = groups[gi];
    const i = g.assets.findIndex((y) => y.id === x.id);
    g.assets[i] = x;
    redrawGroup(gi);
  }
  function nextUndecided(fromGroupEnd) {
    if (!cursor) { return null; }
    let s = cursor.s, a = cursor.a;
    for (let n = 0; n < shown.length + 1; n++) {
      const g = groups[shown[s]];
      const start = n === 0 ? (fromGroupEnd ? g.assets.length : a + 1) : 0;
      for (let k = start; k < g.assets.length; k++) {
        if (!g.assets[k].decision && built(g.assets[k])) { return {s: s, a: k}; }
      }
      s = (s + 1) % shown.length;
    }
    return null;
  }
  function advance(fromGroupEnd) {
    const next = nextUndecided(fromGroupEnd);
    if (next) { select(next.s, next.a, {scroll: true}); }
    else { say("every take shown has a decision"); showDetail(); }
  }
  async function decide(decision, note) {
    if (!cursor || !shown.length) { return; }
    const x = asset(cursor.s, cursor.a);
    try {
      const answer = await api("api/decide", {id: x.id, decision: decision, note: note || ""});
      update(answer.asset);
      (answer.group || []).forEach(update);
      counts();
      say((decision === "unreviewed" ? "cleared " : decision + " ") + x.id + " · saved to " +
          data.review_file);
      if (decision === "unreviewed") { select(cursor.s, cursor.a); } else { advance(false); }
    } catch (err) { say(err.message, true); }
  }
  async function pick(n) {
    if (!cursor || !shown.length) { return; }
    const g = groups[shown[cursor.s]];
    if (g.assets.length < 2) { say(g.id + " has one take: approve it with a", true); return; }
    if (n > g.assets.length) { say(g.id + " has " + g.assets.length + " takes", true); return; }
    try {
      const answer = await api("api/pick", {group: g.id, take: n});
      answer.assets.forEach(update);
      counts();
      say("picked take " + n + " of " + g.id + " · saved to " + data.review_file);
      cursor = {s: cursor.s, a: n - 1};
      advance(true);
    } catch (err) { say(err.message, true); }
  }
  const noteForm = $("#note-form"), noteBox = $("#note");
  function askNote() {
    if (!cursor || !shown.length) { return; }
    noteForm.hidden = false;
    noteBox.value = "";
    noteBox.focus();
  }
  noteForm.addEventListener("submit", (e) => {
    e.preventDefault();
    noteForm.hidden = true;
    const note = noteBox.value;
    noteBox.blur();
    decide("rejected", note);
  });
  noteBox.addEventListener("keydown", (e) => {
    if (e.key === "Escape") { e.preventDefault(); noteForm.hidden = true; noteBox.blur(); }
  });
  document.querySelectorAll("[data-act]").forEach((b) => b.addEventListener("click", () => {
    const act = b.getAttribute("data-act");
    if (act === "rejected") { askNote(); } else { decide(act); }
  }));
  list.addEventListener("click", (e) => {
    const c = e.target.closest(".cell");
    if (c) { select(Number(c.dataset.s), Number(c.dataset.a)); list.focus(); }
  });

  // --- keys ---------------------------------------------------------------------------
  function move(delta) {
    if (!cursor || !shown.length) { return; }
    let s = cursor.s, a = cursor.a + delta;
    while (a < 0 && s > 0) { s--; a += groups[shown[s]].assets.length; }
    while (s < shown.length && a >= groups[shown[s]].assets.length) {
      a -= groups[shown[s]].assets.length;
      s++;
    }
    if (s >= shown.length) { s = shown.length - 1; a = groups[shown[s]].assets.length - 1; }
    select(s, Math.max(0, a), {scroll: true});
  }
  function within(delta) {
    if (!cursor || !shown.length) { return; }
    const n = groups[shown[cursor.s]].assets.length;
    select(cursor.s, Math.max(0, Math.min(n - 1, cursor.a + delta)), {scroll: true});
  }
  document.addEventListener("keydown", (e) => {
    const t = e.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA")) {
      if (e.key === "Escape") { t.blur(); }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) { return; }
    const k = e.key;
    let handled = true;
    if (k === "j" || k === "ArrowDown") { move(1); }
    else if (k === "k" || k === "ArrowUp") { move(-1); }
    else if (k === "ArrowRight") { within(1); }
    else if (k === "ArrowLeft") { within(-1); }
    else if (k === " ") { toggle(); }
    else if (k === "l") {
      loop = !loop;
      player.loop = loop;
      $("#d-loop").textContent = loop ? "loop on" : "loop off";
      $("#d-loop").className = loop ? "on" : "";
    } else if (k === "a") { decide("approved"); }
    else if (k === "r") { askNote(); }
    else if (k === "u") { decide("unreviewed"); }
    else if (/^[1-9]$/.test(k)) { pick(Number(k)); }
    else if (k === "/") { $("#search").focus(); }
    else if (k === "?") { $("#help").hidden = !$("#help").hidden; }
    else if (k === "Escape") { $("#help").hidden = true; }
    else { handled = false; }
    if (handled) { e.preventDefault(); }
  });

  // --- filters ----------------------------------------------------------------------
  let searchTimer = null;
  $("#search").addEventListener("input", (e) => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      filters.text = e.target.value.trim().toLowerCase();
      applyFilters();
    }, 120);
  });
  [["#f-model", "model"], ["#f-state", "state"], ["#f-review", "review"]].forEach(([id, key]) => {
    $(id).addEventListener("change", (e) => { filters[key] = e.target.value; applyFilters(); });
  });
  $("#f-changed").addEventListener("change", (e) => {
    filters.changed = e.target.checked;
    applyFilters();
  });

  async function start() {
    try {
      const started = performance.now();
      data = await api("api/assets");
      groups = data.groups;
      $("#title").textContent = data.pipeline;
      $("#target").textContent = data.target + " build · decisions in " + data.review_file;
      data.models.forEach((m, i) => {
        const o = el("option", null, m);
        o.value = String(i);
        $("#f-model").append(o);
      });
      counts();
      applyFilters();
      list.focus();
      document.body.dataset.ready = "1";
      document.body.dataset.loadMs = String(Math.round(performance.now() - started));
      say("j/k move · space plays · a approve · r reject · 1-9 pick · ? all keys");
    } catch (err) { say("cannot load the build: " + err.message, true); }
  }
  start();
}());
"""

ROW_H = 92


def render(title: str, nonce: str) -> str:
    """The page (templates/review.html); `nonce` lets its own style and script run under a
    strict CSP. The title (the pipeline's name) is escaped like any value."""
    return render_template(
        "review.html", title=title, nonce=nonce,
        # The page's own style and script, with the row height they share.
        css=Markup(CSS.replace("ROW_Hpx", f"{ROW_H}px")),
        js=Markup(JS.replace("__ROW_H__", str(ROW_H))))
