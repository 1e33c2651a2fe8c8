"""The report page's stylesheet and script, embedded in the page (it loads nothing else).

The script is plain ES5-level JavaScript with no library: it filters cards
(all / failed / changed in the last run / by model, plus a search over id,
prompt and text), keeps one player playing at a time, draws the playhead on
the waveforms, seeks from a waveform or a subtitle cue, and remembers which
take a person picked for each job with variants (in localStorage, shown as
`job: take` lines to paste into a manifest or a ticket). It only ever writes
text with `textContent`/`value`, so nothing from the page's data is parsed as HTML.
"""

CSS = """
:root { color-scheme: light dark; --fg: #1d2330; --muted: #5d6675; --bg: #f6f7f9;
  --card: #fff; --line: #dde1e7; --accent: #2563eb; --bad: #b42318; --bad-bg: #fde8e6;
  --new: #067647; --new-bg: #dcfae6; --wave: #7c8aa5; --played: rgba(37, 99, 235, .18); }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6e8ec; --muted: #9aa3b2; --bg: #14171c; --card: #1d2128; --line: #2e343e;
    --accent: #6ea1ff; --bad: #ff8a80; --bad-bg: #3a1f1f; --new: #6ce9a6; --new-bg: #173326;
    --wave: #8793a8; --played: rgba(110, 161, 255, .22); }
}
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg); background: var(--bg); }
header, .controls, main, section { max-width: 1200px; margin: 0 auto; padding: 0 16px; }
header { padding-top: 20px; }
h1 { margin: 0 0 4px; font-size: 22px; }
h2 { margin: 0; font-size: 16px; word-break: break-all; }
.muted, .meta { color: var(--muted); }
.controls { position: sticky; top: 0; z-index: 2; display: flex; flex-wrap: wrap; gap: 8px;
  align-items: center; padding-top: 10px; padding-bottom: 10px; background: var(--bg);
  border-bottom: 1px solid var(--line); }
.controls input[type=search] { flex: 1 1 240px; padding: 6px 10px; font: inherit;
  border: 1px solid var(--line); border-radius: 6px; background: var(--card); color: inherit; }
.controls button, .controls select { font: inherit; padding: 5px 10px; border-radius: 6px;
  border: 1px solid var(--line); background: var(--card); color: inherit; cursor: pointer; }
.controls button[aria-pressed=true] { border-color: var(--accent); color: var(--accent);
  font-weight: 600; }
#shown { color: var(--muted); margin-left: auto; }
section#problems { margin-top: 14px; }
#problems ul { margin: 6px 0 0; padding: 10px 10px 10px 28px; background: var(--bad-bg);
  border-radius: 8px; }
#problems li { margin: 2px 0; }
main { display: grid; gap: 14px; padding-top: 14px; padding-bottom: 40px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 14px; }
.card > header { padding: 0; margin: 0 0 8px; display: flex; gap: 8px; align-items: baseline;
  flex-wrap: wrap; max-width: none; }
.prompt { margin: 0 0 8px; white-space: pre-wrap; }
dl.facts { display: flex; flex-wrap: wrap; gap: 2px 16px; margin: 0 0 10px; }
dl.facts div { display: flex; gap: 4px; min-width: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; min-width: 0; }
code { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; }
code.key { display: inline-block; max-width: 11em; overflow: hidden; text-overflow: ellipsis;
  vertical-align: bottom; white-space: nowrap; }
.takes { display: grid; gap: 12px; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); }
.take { margin: 0; padding: 10px; border: 1px solid var(--line); border-radius: 8px;
  min-width: 0; }
.take figcaption { display: flex; gap: 8px; align-items: center; margin-bottom: 6px;
  flex-wrap: wrap; }
.take.bad { border-color: var(--bad); }
.player { display: grid; gap: 4px; }
.player audio { width: 100%; height: 36px; }
svg.wave { width: 100%; height: 48px; display: block; cursor: pointer; }
svg.wave path { stroke: var(--wave); stroke-width: .7; fill: none; }
svg.wave rect.played { fill: var(--played); }
.badge { display: inline-block; padding: 0 7px; border-radius: 999px; font-size: 12px;
  font-weight: 600; background: var(--line); }
.badge.bad { background: var(--bad-bg); color: var(--bad); }
.badge.new { background: var(--new-bg); color: var(--new); }
.reason { color: var(--bad); margin: 6px 0 0; white-space: pre-wrap; word-break: break-word; }
.note { color: var(--muted); font-size: 12px; margin: 4px 0 0; }
details { margin-top: 10px; }
summary { cursor: pointer; font-weight: 600; }
ol.segments { padding-left: 0; list-style: none; display: grid; gap: 8px; margin: 8px 0 0;
  grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); }
ol.segments li { min-width: 0; }
ol.segments .take .seg-text { margin: 0 0 6px; white-space: pre-wrap; }
table.cues { border-collapse: collapse; width: 100%; margin-top: 6px; }
table.cues td { border-top: 1px solid var(--line); padding: 3px 6px; vertical-align: top;
  white-space: nowrap; }
table.cues td:nth-child(2) { color: var(--muted); font: 12px ui-monospace, monospace; }
table.cues td:last-child { white-space: pre-wrap; width: 100%; }
button.seek { font: 12px ui-monospace, monospace; border: 0; background: none;
  color: var(--accent); cursor: pointer; padding: 0; white-space: nowrap; }
.transcript { white-space: pre-wrap; max-height: 18em; overflow: auto; margin: 8px 0 0;
  padding: 8px 10px; border-left: 3px solid var(--line); }
#picks textarea { width: 100%; min-height: 5em; font: 12px ui-monospace, monospace;
  background: var(--card); color: inherit; border: 1px solid var(--line); border-radius: 6px; }
#empty { text-align: center; color: var(--muted); }
label.pick { margin-left: auto; cursor: pointer; }
"""

JS = r"""
(function () {
  "use strict";
  var cards = Array.prototype.slice.call(document.querySelectorAll("article.card"));
  var search = document.getElementById("search");
  var model = document.getElementById("model");
  var shown = document.getElementById("shown");
  var empty = document.getElementById("empty");
  var buttons = Array.prototype.slice.call(document.querySelectorAll("[data-filter]"));
  var filter = "all";

  function apply() {
    var words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    var m = model.value;
    var n = 0;
    cards.forEach(function (card) {
      var hay = card.getAttribute("data-search") || "";
      var ok = (filter === "all" || card.getAttribute("data-" + filter) === "1") &&
        (!m || (card.getAttribute("data-models") || "").split("|").indexOf(m) >= 0) &&
        words.every(function (w) { return hay.indexOf(w) >= 0; });
      card.hidden = !ok;
      if (ok) { n += 1; }
    });
    shown.textContent = n + " of " + cards.length + " shown";
    empty.hidden = n > 0;
  }
  function setFilter(name) {
    filter = name;
    buttons.forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.getAttribute("data-filter") === name));
    });
    apply();
  }
  buttons.forEach(function (b) {
    b.addEventListener("click", function () { setFilter(b.getAttribute("data-filter")); });
  });
  search.addEventListener("input", apply);
  model.addEventListener("change", apply);
  // A link from the problem list to a card the filters hide shows everything again.
  window.addEventListener("hashchange", function () {
    var target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
    var card = target && target.closest("article.card");
    if (card && card.hidden) {
      search.value = ""; model.value = ""; setFilter("all");
      target.scrollIntoView();
    }
  });

  function playerOf(el) { return el.closest(".player"); }
  function play(audio) {
    var p = audio.play();
    if (p && p.catch) { p.catch(function () {}); }  // refused autoplay is not an error here
  }
  // One sound at a time: comparing takes means hearing one, then the next.
  document.addEventListener("play", function (e) {
    document.querySelectorAll("audio").forEach(function (a) {
      if (a !== e.target && !a.paused) { a.pause(); }
    });
  }, true);
  document.addEventListener("timeupdate", function (e) {
    var player = playerOf(e.target);
    var rect = player && player.querySelector("rect.played");
    var d = e.target.duration || Number(player && player.getAttribute("data-duration"));
    if (rect && d) {
      var bars = Number(player.querySelector("svg.wave").getAttribute("data-bars"));
      rect.setAttribute("width", String(Math.min(1, e.target.currentTime / d) * bars));
    }
  }, true);
  document.addEventListener("click", function (e) {
    var svg = e.target.closest && e.target.closest("svg.wave");
    if (svg) {
      var player = playerOf(svg);
      var audio = player.querySelector("audio");
      var box = svg.getBoundingClientRect();
      var d = audio && (audio.duration || Number(player.getAttribute("data-duration")));
      if (audio && d && box.width) {
        audio.currentTime = Math.max(0, (e.clientX - box.left) / box.width) * d;
        play(audio);
      }
      return;
    }
    var seek = e.target.closest && e.target.closest("button.seek");
    if (seek) {
      var card = seek.closest("article.card");
      var main = card && card.querySelector(".takes audio");
      if (main) { main.currentTime = Number(seek.getAttribute("data-t")); play(main); }
    }
  });

  // Picks: which take of each job with variants a person chose.
  var box = document.getElementById("picks-text");
  var store = "runner-picks:" + document.body.getAttribute("data-pipeline");
  var picks = {};
  try { picks = JSON.parse(window.localStorage.getItem(store) || "{}") || {}; } catch (err) {}
  function showPicks() {
    if (!box) { return; }
    box.value = Object.keys(picks).sort().map(function (k) {
      return k + ": " + picks[k];
    }).join("\n");
  }
  document.querySelectorAll("input.pick").forEach(function (input) {
    if (picks[input.getAttribute("data-job")] === input.value) { input.checked = true; }
    input.addEventListener("change", function () {
      picks[input.getAttribute("data-job")] = input.value;
      try { window.localStorage.setItem(store, JSON.stringify(picks)); } catch (err) {}
      showPicks();
    });
  });
  showPicks();
  apply();
}());
"""
