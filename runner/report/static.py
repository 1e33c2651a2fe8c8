"""The report page's stylesheet and script, embedded in the page (it loads nothing else
but its own parts, from the folder beside it).

The script shows a page of cards at a time from the page's index: it filters
(all / failed / changed in the last run / unreviewed / approved / rejected / by
model, plus a search over id, prompt, text, voice and review notes), loads the
parts that hold the cards of the page shown (`<script>` elements, which work
from file://), draws the waveforms on canvases from their base64 peaks, keeps
one player playing at a time, shows the playhead, and seeks from a waveform or
a subtitle cue. Cards are HTML the report rendered and escaped
(runner/report/page.py); the script never builds markup from the data itself.
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
div.wave { position: relative; }
canvas.wave { width: 100%; height: 48px; display: block; cursor: pointer; }
div.wave .played { position: absolute; left: 0; top: 0; bottom: 0; width: 0;
  background: var(--played); pointer-events: none; }
.dur { color: var(--muted); font-size: 12px; }
.badge.ok { background: var(--new-bg); color: var(--new); }
.verdict { margin: 6px 0 0; white-space: pre-wrap; }
.miss { color: var(--bad); }
section#warnings { margin-top: 14px; }
#warnings ul { margin: 6px 0 0; padding: 10px 10px 10px 28px; background: var(--bad-bg);
  border-radius: 8px; }
nav.pager { max-width: 1200px; margin: 10px auto 0; padding: 0 16px; display: flex; gap: 8px;
  align-items: center; }
nav.pager button { font: inherit; padding: 4px 10px; border-radius: 6px;
  border: 1px solid var(--line); background: var(--card); color: inherit; cursor: pointer; }
nav.pager button:disabled { opacity: .45; cursor: default; }
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
#empty { text-align: center; color: var(--muted); }
[hidden] { display: none !important; }
"""

JS = r"""
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("config").textContent);
  var index = JSON.parse(document.getElementById("index").textContent);
  var main = document.getElementById("cards");
  var search = document.getElementById("search");
  var model = document.getElementById("model");
  var shown = document.getElementById("shown");
  var empty = document.getElementById("empty");
  var pagers = Array.prototype.slice.call(document.querySelectorAll("nav.pager"));
  var buttons = Array.prototype.slice.call(document.querySelectorAll("[data-filter]"));
  var byBase = {};
  index.forEach(function (entry, i) { byBase[entry[0]] = i; });
  var parts = {}, waiting = {};
  var filter = "all", page = 0, filtered = [], generation = 0;

  // Parts call this when they load (the first one is in the page itself).
  window.runnerReportPart = function (n, cards) {
    parts[n] = cards;
    (waiting[n] || []).forEach(function (done) { done(); });
    delete waiting[n];
  };
  function loadPart(n) {
    return new Promise(function (resolve, reject) {
      if (parts[n]) { resolve(); return; }
      if (waiting[n]) { waiting[n].push(resolve); return; }
      waiting[n] = [resolve];
      var script = document.createElement("script");
      script.src = config.parts + "/" + String(n).padStart(4, "0") + ".js";
      script.onerror = function () { reject(new Error("cannot load " + script.src)); };
      document.head.appendChild(script);
    });
  }

  function matches(entry) {
    var words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    var m = model.value;
    return (filter === "all" || (entry[1] & config.bits[filter]) !== 0) &&
      (!m || entry[2].indexOf(Number(m)) >= 0) &&
      words.every(function (w) { return entry[3].indexOf(w) >= 0; });
  }
  function apply(keepPage) {
    filtered = [];
    index.forEach(function (entry, i) { if (matches(entry)) { filtered.push(i); } });
    if (!keepPage) { page = 0; }
    return render();
  }
  function pages() { return Math.max(1, Math.ceil(filtered.length / config.page)); }
  function render() {
    var mine = ++generation;
    var slice = filtered.slice(page * config.page, (page + 1) * config.page);
    var need = [];
    slice.forEach(function (i) {
      var n = Math.floor(i / config.part);
      if (need.indexOf(n) < 0) { need.push(n); }
    });
    return Promise.all(need.map(loadPart)).then(function () {
      if (mine !== generation) { return; }  // a newer filter won
      document.querySelectorAll("audio").forEach(function (a) { a.pause(); });
      main.innerHTML = slice.map(function (i) {
        return parts[Math.floor(i / config.part)][i % config.part];
      }).join("");
      main.querySelectorAll("canvas.wave").forEach(paint);
      main.querySelectorAll("audio").forEach(function (a) { nearby.observe(a); });
      shown.textContent = filtered.length + " of " + index.length + " shown" +
        (pages() > 1 ? " · page " + (page + 1) + " of " + pages() : "");
      empty.hidden = filtered.length > 0;
      pagers.forEach(drawPager);
    }, function (err) {
      shown.textContent = err.message;
    });
  }
  function drawPager(nav) {
    nav.textContent = "";
    if (pages() < 2) { return; }
    var prev = document.createElement("button");
    prev.type = "button";
    prev.textContent = "‹ Previous";
    prev.disabled = page === 0;
    prev.addEventListener("click", function () { page -= 1; render(); });
    var next = document.createElement("button");
    next.type = "button";
    next.textContent = "Next ›";
    next.disabled = page >= pages() - 1;
    next.addEventListener("click", function () { page += 1; render(); });
    var where = document.createElement("span");
    where.textContent = "page " + (page + 1) + " of " + pages();
    nav.append(prev, where, next);
  }
  function setFilter(name) {
    filter = name;
    buttons.forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.getAttribute("data-filter") === name));
    });
    return apply(false);
  }
  buttons.forEach(function (b) {
    b.addEventListener("click", function () { setFilter(b.getAttribute("data-filter")); });
  });
  search.addEventListener("input", function () { apply(false); });
  model.addEventListener("change", function () { apply(false); });

  // A link to a job (the problem list, a transcript's source) shows the page it is on,
  // clearing the filters when they hide it. Ids are letters, digits, "_.-": a take's
  // anchor is "job-" + its card's id, then "~23" (#) or "~2f" (/) and the rest.
  function reveal(hash) {
    var target = decodeURIComponent(hash.replace(/^#/, ""));
    if (target.indexOf("job-") !== 0) { return; }
    var card = byBase[target.slice(4).split("~")[0]];
    if (card === undefined) { return; }
    var at = filtered.indexOf(card);
    var ready = Promise.resolve();
    if (at < 0) {
      search.value = "";
      model.value = "";
      filter = "all";
      buttons.forEach(function (b) {
        b.setAttribute("aria-pressed", String(b.getAttribute("data-filter") === "all"));
      });
      filtered = index.map(function (_, i) { return i; });
      at = card;
    }
    var wanted = Math.floor(at / config.page);
    if (wanted !== page || !document.getElementById(target)) {
      page = wanted;
      ready = render();
    }
    ready.then(function () {
      var element = document.getElementById(target);
      if (element) { element.scrollIntoView(); }
    });
  }
  window.addEventListener("hashchange", function () { reveal(location.hash); });
  document.addEventListener("click", function (e) {
    var link = e.target.closest && e.target.closest('a[href^="#job-"]');
    if (link && link.getAttribute("href") === location.hash) { reveal(location.hash); }
  });

  function paint(canvas) {
    var raw = atob(canvas.getAttribute("data-peaks") || "");
    var ctx = canvas.getContext("2d");
    var w = canvas.width, h = canvas.height, mid = h / 2, bars = raw.length / 2;
    var css = getComputedStyle(document.documentElement);
    ctx.clearRect(0, 0, w, h);
    ctx.fillStyle = css.getPropertyValue("--wave");
    if (!bars) { ctx.fillRect(0, mid, w, 1); return; }
    function y(v) { return mid - Math.sign(v) * Math.sqrt(Math.abs(v) / 100) * mid; }
    for (var i = 0; i < bars; i++) {
      // Square root of the level: a take at -30 dBFS stays visible beside one at 0 dBFS.
      var lo = raw.charCodeAt(2 * i) - 128, hi = raw.charCodeAt(2 * i + 1) - 128;
      var x = i * w / bars;
      ctx.fillRect(x, y(hi), Math.max(0.7, w / bars * 0.7), Math.max(0.7, y(lo) - y(hi)));
    }
  }

  // A player near the viewport loads its metadata (duration, seekable) before it plays.
  var nearby = new IntersectionObserver(function (seen) {
    seen.forEach(function (e) {
      if (e.isIntersecting) {
        nearby.unobserve(e.target);
        if (e.target.readyState === 0 && e.target.paused) {
          e.target.preload = "metadata";
          e.target.load();  // a suspended preload="none" player does not start by itself
        }
      }
    });
  }, {rootMargin: "300px"});

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
    var shade = player && player.querySelector(".played");
    var d = e.target.duration || Number(player && player.getAttribute("data-duration"));
    if (shade && d) {
      shade.style.width = (Math.min(1, e.target.currentTime / d) * 100) + "%";
    }
  }, true);
  document.addEventListener("click", function (e) {
    var canvas = e.target.closest && e.target.closest("canvas.wave");
    if (canvas) {
      var player = playerOf(canvas);
      var audio = player.querySelector("audio");
      var box = canvas.getBoundingClientRect();
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

  // The first part is in a script after this one: start once the page is parsed.
  document.addEventListener("DOMContentLoaded", function () {
    apply(false).then(function () {
      if (location.hash) { reveal(location.hash); }
      document.body.setAttribute("data-ready-ms", String(Math.round(performance.now())));
      document.body.setAttribute("data-ready", "1");
    });
  });
}());
"""
