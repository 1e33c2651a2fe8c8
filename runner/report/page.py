"""The report's HTML: every value escaped, every file referenced relative to the page.

Manifest text (prompts, narration, ids) is user text and outcome messages quote
providers, so every value goes through `esc` (html.escape with quotes) on its
way into text or an attribute; the only unescaped markup is built here from
numbers. File references are percent-encoded relative URLs, which work from
file:// and from any static server that serves the output folder.

Size: a card is rendered once, as a string, into a numbered part of `PART_CARDS`
cards; the page holds an index of every card (what the filters need) and the
first part, and its script shows `PAGE_CARDS` cards at a time, loading further
parts (`report.parts/NNNN.js`, plain scripts, so they load from file:// too)
only when a page needs them. Waveforms are base64 peaks drawn on a canvas, not
SVG paths. A 10,000-asset build so makes a page of about 2 MB instead of 56 MB
(bench/bench_review.py measures it); a build of one part is one file, as before.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from runner.catalog.models import Kind
from runner.manifest.types import AudioKind, Job, JobKind
from runner.report.audio import PEAKS, WAVE_HEIGHT, AudioView
from runner.report.collect import BAD_OUTCOMES, Build, Card, Take
from runner.report.static import CSS, JS
from runner.text.subtitles import Cue

PART_CARDS = 50  # cards per part file
PAGE_CARDS = 50  # cards the page shows at a time
# Card flags in the index, for the filters (bits).
FAILED, CHANGED, APPROVED, REJECTED, UNREVIEWED, MISSED = 1, 2, 4, 8, 16, 32


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def anchor(job_id: str) -> str:
    """An element id for a job: job ids hold '/' and '#', which a URL fragment mangles."""
    return "job-" + re.sub(r"[^A-Za-z0-9_.-]", lambda m: f"~{ord(m.group()):x}", job_id)


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{rest:04.1f}" if hours else f"{minutes}:{rest:04.1f}"


def clock(seconds: float) -> str:
    """A cue time as a player shows it: 1:02.5."""
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}:{rest:04.1f}"


def fmt_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def fmt_credits(credits: float | None) -> str:
    return "?" if credits is None else f"{credits:g}"


def prompt_of(job: Job) -> str:
    """What was asked, in the words the person wrote: prompt, text or narration."""
    if job.narration is not None:
        return job.narration.text
    for name in ("prompt", "text"):
        value = job.input.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def voice_of(job: Job) -> str | None:
    value = job.input.get("voice") or job.input.get("voice_id")
    return str(value) if value else None


def card_voices(card: Card) -> str | None:
    """The voices heard on a card: a narration's (its segments carry it), a dialogue's
    speakers in order of appearance, or the job's own."""
    jobs = [t.job for t in card.segments] or [t.job for t in card.takes]
    voices = list(dict.fromkeys(v for v in map(voice_of, jobs) if v))
    return ", ".join(voices) or None


def card_kind(job: Job) -> str:
    if job.kind is JobKind.STITCH:
        return "dialogue" if job.narration is not None and job.narration.is_dialogue \
            else "narration"
    return job.model.kind.value.replace("_", " ")


def fmt_lufs(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, int | float) else "?"


def script_json(value: object) -> str:
    """JSON safe inside a <script> element: no `</script>` can end it early."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")


@dataclass(frozen=True, slots=True)
class Rendered:
    page: str
    parts: list[str]  # part files' text, part 1 onwards (part 0 is inside the page)


def model_label(job: Job) -> str:
    model_id = job.input.get("model_id")
    return f"{job.model.id} ({model_id})" if model_id else job.model.id


class Page:
    """Renders one Build; `root` is the folder the page is written to."""

    def __init__(self, build: Build, root: Path) -> None:
        self.build = build
        self.root = root
        self.takes = {t.job.id: t for c in build.cards for t in c.all_takes}

    def href(self, path: Path) -> str:
        return quote(Path(os.path.relpath(path, self.root)).as_posix(), safe="/")

    # --- pieces ---------------------------------------------------------------------
    def facts(self, pairs: Iterable[tuple[str, str | None]]) -> str:
        """A <dl> of label/value pairs; values are already-escaped HTML, None is left out."""
        items = "".join(f"<div><dt>{esc(k)}</dt><dd>{v}</dd></div>" for k, v in pairs
                        if v is not None)
        return f'<dl class="facts">{items}</dl>' if items else ""

    def badges(self, take: Take) -> str:
        out = []
        if take.status in ("failed", "uncertain", "skipped", "interrupted", "missing"):
            out.append(f'<span class="badge bad">{esc(take.status)}</span>')
        elif take.status == "not built":
            out.append('<span class="badge">not built</span>')
        if take.changed:
            out.append('<span class="badge new">new in last run</span>')
        if take.picked:
            out.append('<span class="badge ok">picked</span>')
        elif take.decision is not None and take.decision.decision is not None:
            decision = take.decision.decision.value
            out.append(f'<span class="badge {"ok" if decision == "approved" else "bad"}">'
                       f"{esc(decision)}</span>")
        if take.target_missed:
            out.append('<span class="badge bad">loudness target missed</span>')
        return "".join(out)

    def target(self, take: Take) -> str:
        t = take.target or {}
        reached = (f"measured {fmt_lufs(t.get('measured_lufs'))} LUFS, "
                   f"{fmt_lufs(t.get('measured_true_peak_dbtp'))} dBTP")
        asked = (f"{fmt_lufs(t.get('target_lufs'))} LUFS, true peak at most "
                 f"{fmt_lufs(t.get('max_true_peak_dbtp'))} dBTP")
        if take.target_missed:
            return f'<span class="miss">{esc(asked)}: {esc(take.target_missed)}</span>'
        return esc(f"{asked}: {reached}")

    def decision(self, take: Take) -> str:
        """The reviewer's words about this take, and about an earlier one it replaced."""
        out = ""
        mark = take.decision
        if mark is not None and mark.note:
            out += (f'<p class="verdict">{esc(mark.decision.value if mark.decision else "")}'
                    f'{esc(" by " + mark.by if mark.by else "")}: {esc(mark.note)}</p>')
        earlier = take.earlier
        if earlier is not None and earlier.decision is not None:
            note = f": {earlier.note}" if earlier.note else ""
            out += f'<p class="note">An earlier take was {esc(earlier.decision.value)}' \
                   f"{esc(note)}.</p>"
        return out

    def player(self, take: Take) -> str:
        if take.missing and take.entry is not None:
            return f'<p class="reason">output file missing: {esc(take.entry.output)}</p>'
        return self.audio(take.audio, take.job.id) if take.audio else ""

    def audio(self, view: AudioView, job_id: str, *, inside: bool = True) -> str:
        """Waveform and player; `inside`: the file is in the report's folder, so linkable."""
        if view.play is None:
            return f'<p class="reason">cannot show this file: {esc(view.problem)}</p>'
        note = ""
        if view.preview_reason and inside:
            note = (f'<p class="note">Playing an MP3 preview: the file is '
                    f'{esc(view.preview_reason)}. <a href="{esc(self.href(view.path))}">'
                    "Original file</a>.</p>")
        elif view.preview_reason:
            note = f'<p class="note">Playing {esc(view.preview_reason)}.</p>'
        duration = f' data-duration="{view.duration_s:.3f}"' if view.duration_s else ""
        # The page's script switches a player to preload="metadata" when it scrolls into
        # view, so it shows its duration before anything plays without a page of players
        # all loading at once (each one a media pipeline in the browser).
        return (f'<div class="player"{duration}><div class="wave">'
                f'<canvas class="wave" width="{PEAKS}" height="{WAVE_HEIGHT}" role="img" '
                f'aria-label="waveform" data-peaks="{view.peaks_b64}"></canvas>'
                '<div class="played"></div></div>'
                f'<audio controls preload="none" src="{esc(self.href(view.play))}"'
                f' data-job="{esc(job_id)}"></audio></div>{note}')

    def take_facts(self, take: Take) -> str:
        entry = take.entry
        duration = entry.duration_s if entry and entry.duration_s is not None else \
            (take.audio.duration_s if take.audio else None)
        task = take.task_id
        view = take.audio
        loud = None
        if view is not None and view.play is not None and job_makes_audio(take):
            loud = (f"{fmt_lufs(view.lufs)} LUFS, true peak {fmt_lufs(view.true_peak_dbtp)} dBTP"
                    if view.lufs is not None else "not measurable (too short or silent)")
        return self.facts([
            ("duration", esc(fmt_s(duration)) if entry and duration is not None else None),
            ("loudness", esc(loud) if loud else None),
            ("target", self.target(take) if take.target else None),
            ("credits", esc(fmt_credits(entry.credits)) if entry else None),
            ("size", esc(fmt_size(entry.size)) if entry else None),
            ("task", f"<code>{esc(task)}</code>" if task else None),
            ("key", f'<code class="key" title="{esc(entry.key)}">{esc(entry.key)}</code>'
             if entry else None),
            ("made", esc(entry.created_at) if entry else None),
            ("file", f'<a href="{esc(self.href(self.build.layout.output_path(entry.output)))}">'
                     f"{esc(entry.output)}</a>" if entry and not take.missing else None),
        ])

    def reason(self, take: Take) -> str:
        if take.status not in ("failed", "uncertain", "skipped", "interrupted"):
            return ""
        assert take.outcome is not None
        kept = " The asset shown is the one from an earlier run." if take.entry else ""
        message = take.outcome.message or "no message recorded"
        return f'<p class="reason">{esc(take.status)}: {esc(message)}{esc(kept)}</p>'

    def take(self, take: Take, caption: str) -> str:
        job = take.job
        bad = " bad" if take.status in ("failed", "uncertain", "skipped", "interrupted",
                                         "missing") else ""
        seconds = take.entry.duration_s if take.entry and take.entry.duration_s else \
            (take.audio.duration_s if take.audio else None)
        length = f'<span class="dur">{esc(fmt_s(seconds))}</span>' \
            if seconds and job.model.makes_audio and not take.missing else ""
        seg_text = f'<p class="seg-text">{esc(prompt_of(job))}</p>' if job.segment else ""
        return (f'<figure class="take{bad}" id="{esc(anchor(job.id))}" '
                f'data-status="{esc(take.status)}"><figcaption><strong>{esc(caption)}</strong>'
                f"{length}{self.badges(take)}</figcaption>{seg_text}{self.player(take)}"
                f"{self.transcript(take)}{self.decision(take)}{self.take_facts(take)}"
                f"{self.reason(take)}</figure>")

    def heard(self, take: Take) -> Take | None:
        """The take whose audio a transcript heard, when it is in the build and playable."""
        audio = take.job.audio
        heard = self.takes.get(audio.value) if audio and audio.kind is AudioKind.FROM else None
        return heard if heard is not None and heard.audio is not None \
            and heard.audio.play is not None and not heard.missing else None

    def transcript(self, take: Take) -> str:
        job = take.job
        if job.model.kind is not Kind.TRANSCRIPT or take.entry is None:
            return ""
        source = ""
        if job.audio is not None and job.audio.kind is AudioKind.FROM:
            source = (f'<p class="note">Heard: <a href="#{esc(anchor(job.audio.value))}">'
                      f"{esc(job.audio.value)}</a></p>")
            heard = self.heard(take)
            if heard is not None:
                source += self.player(heard)
        elif job.audio is not None:
            shown = job.audio.value
            if job.audio.kind is AudioKind.FILE:
                shown = os.path.relpath(shown, self.build.pipeline.path.parent)
            source = f'<p class="note">Heard: <code>{esc(shown)}</code></p>'
            if take.heard is not None:
                inside = take.heard.path.is_relative_to(self.build.layout.output_dir)
                source += self.audio(take.heard, job.id, inside=inside)
        text = take.text if take.text is not None else "(no transcript text)"
        return f'{source}<div class="transcript">{esc(text.strip())}</div>'

    def cues(self, cues: list[Cue], seekable: bool) -> str:
        if not cues:
            return ""
        rows = []
        for cue in cues:
            start = cue.start_ms / 1000
            at = (f'<button type="button" class="seek" data-t="{start:.3f}">{clock(start)}'
                  "</button>" if seekable else clock(start))
            speaker = esc(cue.speaker) if cue.speaker else ""
            rows.append(f"<tr><td>{at}</td><td>{clock(cue.end_ms / 1000)}</td>"
                        f"<td>{speaker}</td><td>{esc(cue.text)}</td></tr>")
        return (f'<details class="cues"><summary>Subtitles ({len(cues)} cues)</summary>'
                f'<table class="cues">{"".join(rows)}</table></details>')

    def segments(self, card: Card) -> str:
        if not card.segments:
            return ""
        placed = {str(s.get("id")): s for s in card.sidecar.get("segments", [])
                  if isinstance(s, dict)}
        items = []
        for seg in card.segments:
            index = seg.job.segment.index + 1 if seg.job.segment else 0
            where = placed.get(seg.job.id)
            at = f" at {fmt_s(float(where['offset_ms']) / 1000)}" if where and \
                isinstance(where.get("offset_ms"), int | float) else ""
            paragraph = seg.job.segment.paragraph + 1 if seg.job.segment else 0
            items.append(f"<li>{self.take(seg, f'segment {index}, paragraph {paragraph}{at}')}"
                         "</li>")
        bad = sum(1 for s in card.segments if s.status != "ok")
        state = f", {bad} not ok" if bad else ""
        opened = " open" if bad else ""  # a person looking at a failure needs to see which
        return (f'<details class="segments"{opened}><summary>Segments ({len(card.segments)}'
                f'{esc(state)})</summary><ol class="segments">{"".join(items)}</ol></details>')

    def flags(self, card: Card) -> int:
        takes = card.all_takes
        flags = 0
        if any(t.status in (*BAD_OUTCOMES, "missing") for t in takes):
            flags |= FAILED
        if any(t.changed for t in takes):
            flags |= CHANGED
        decided = [t.decision.decision.value for t in takes if t.decision and t.decision.decision]
        if "approved" in decided:
            flags |= APPROVED
        if "rejected" in decided:
            flags |= REJECTED
        if any(t.entry is not None and not t.missing and t.decision is None
               and t.job.model.makes_audio for t in takes):
            flags |= UNREVIEWED
        if any(t.target_missed for t in takes):
            flags |= MISSED
        return flags

    def search_text(self, card: Card) -> str:
        return " ".join([card.base_id, *(t.job.id for t in card.all_takes),
                         *(prompt_of(t.job) for t in card.takes), card_voices(card) or "",
                         *(t.text or "" for t in card.takes),
                         *(t.decision.note for t in card.all_takes if t.decision)]).lower()

    def card(self, card: Card) -> str:
        first = card.takes[0].job
        takes = card.all_takes
        many = len(card.takes) > 1
        rendered = "".join(
            self.take(t, f"take {t.job.variant} of {t.job.variants}" if many else
                      ("programme" if t.job.kind is JobKind.STITCH else "asset"))
            for t in card.takes)
        programme = card.takes[0] if first.kind is JobKind.STITCH else None
        # A cue can seek the card's first player: the programme, or the audio a
        # transcript heard when it is shown.
        cues = self.cues(programme.cues, seekable=True) if programme else \
            "".join(self.cues(t.cues, seekable=self.heard(t) is not None or t.heard is not None)
                    for t in card.takes)
        prompt = prompt_of(first)
        prompt_html = ""
        if prompt and first.kind is JobKind.STITCH:
            prompt_html = (f'<details class="text"><summary>Text ({len(prompt)} characters)'
                           f'</summary><p class="prompt">{esc(prompt)}</p></details>')
        elif prompt:
            prompt_html = f'<p class="prompt">{esc(prompt)}</p>'
        voices = card_voices(card)
        facts = self.facts([
            ("model", esc(model_label(first))), ("provider", esc(first.provider)),
            ("voices" if voices and "," in voices else "voice", esc(voices) if voices else None),
            ("format", esc(first.format)),
            ("post-processing", esc(first.post.describe()) if first.post else None),
            ("credits", esc(fmt_credits(sum(t.entry.credits or 0 for t in takes if t.entry)))
             if len(takes) > 1 and any(t.entry for t in takes) else None),
            ("notes", esc(first.notes) if first.notes else None),
        ])
        return (f'<article class="card" id="card-{esc(anchor(card.base_id))}">'
                f'<header><h2>{esc(card.base_id)}</h2>'
                f'<span class="badge">{esc(card_kind(first))}</span>'
                f"</header>{prompt_html}{facts}"
                f'<div class="takes">{rendered}</div>{self.segments(card)}{cues}</article>')

    def problems(self) -> str:
        problems = self.build.problems
        if not problems:
            return ""
        items = []
        for t in problems:
            assert t.outcome is not None
            task = f" (task <code>{esc(t.task_id)}</code>)" if t.task_id else ""
            items.append(f'<li><a href="#{esc(anchor(t.job.id))}">{esc(t.job.id)}</a> '
                         f'<span class="badge bad">{esc(t.status)}</span> '
                         f"{esc(t.outcome.message or 'no message recorded')}{task}</li>")
        return (f'<section id="problems"><h2>Problems ({len(problems)})</h2>'
                f'<ul>{"".join(items)}</ul></section>')

    def warnings(self) -> str:
        """Loudness targets that were missed: never silent."""
        missed = self.build.missed_targets
        if not missed:
            return ""
        items = "".join(f'<li><a href="#{esc(anchor(t.job.id))}">{esc(t.job.id)}</a> '
                        f"{esc(t.target_missed)}</li>" for t in missed)
        return (f'<section id="warnings"><h2>Warnings ({len(missed)})</h2>'
                f"<ul>{items}</ul></section>")

    def render(self, parts_dir: str) -> Rendered:
        build = self.build
        pipeline = build.pipeline
        takes = [t for c in build.cards for t in c.all_takes]
        assets = [t for t in takes if t.entry is not None]
        # Segments are inside their programme: counting both would count them twice.
        total_s = sum((t.entry.duration_s or 0) for t in assets
                      if t.entry and t.job.segment is None and t.job.model.makes_audio)
        credits = sum((t.entry.credits or 0) for t in assets if t.entry)
        models = sorted({t.job.model.id for t in takes})
        number = {m: i for i, m in enumerate(models)}
        options = "".join(f'<option value="{i}">{esc(m)}</option>' for i, m in enumerate(models))
        index = []
        chunks: list[list[str]] = []
        for i, card in enumerate(build.cards):
            if i % PART_CARDS == 0:
                chunks.append([])
            chunks[-1].append(self.card(card))
            index.append([card.base_id, self.flags(card),
                          sorted({number[t.job.model.id] for t in card.all_takes}),
                          self.search_text(card)])
        counts = {name: sum(1 for e in index if isinstance(e[1], int) and e[1] & bit)
                  for name, bit in (("failed", FAILED), ("changed", CHANGED),
                                    ("approved", APPROVED), ("rejected", REJECTED),
                                    ("unreviewed", UNREVIEWED))}
        run = f" · last run #{build.last_run_id}" if build.last_run_id else " · never run"
        now = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        review = ""
        if build.review_file is not None:
            review = (f" · decisions from {esc(os.path.relpath(build.review_file, self.root))}"
                      " (make them with <code>runner review</code>)")
        buttons = "".join(
            f'<button type="button" data-filter="{name}" aria-pressed="false">{label} '
            f"({counts[name]})</button>"
            for name, label in (("failed", "Failed"), ("changed", "Changed in last run"),
                                ("unreviewed", "Unreviewed"), ("approved", "Approved"),
                                ("rejected", "Rejected")))
        first_part = chunks[0] if chunks else []
        config = {"page": PAGE_CARDS, "part": PART_CARDS, "parts": parts_dir,
                  "bits": {"failed": FAILED, "changed": CHANGED, "approved": APPROVED,
                           "rejected": REJECTED, "unreviewed": UNREVIEWED}}
        page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(pipeline.name)} · runner report</title>
<link rel="icon" href="data:,">
<style>{CSS}</style></head>
<body data-pipeline="{esc(pipeline.name)}">
<header><h1>{esc(pipeline.name)}</h1>
<p class="muted">{esc(pipeline.description)}</p>
<p class="meta">{esc(build.layout.target.value)} build · {len(build.cards)} jobs · \
{len(assets)} assets · {esc(fmt_s(total_s))} of audio · {esc(fmt_credits(round(credits, 4)))} \
credits{esc(run)}{review} · report made {esc(now)}</p></header>
<nav class="controls" aria-label="filters">
<input type="search" id="search" placeholder="Search id, prompt, text, voice, note" \
aria-label="search">
<button type="button" data-filter="all" aria-pressed="true">All ({len(build.cards)})</button>
{buttons}
<select id="model" aria-label="model"><option value="">All models</option>{options}</select>
<span id="shown"></span></nav>
{self.problems()}{self.warnings()}
<nav class="pager" aria-label="pages"></nav>
<main id="cards"><noscript><p>The report needs JavaScript to show its cards.</p></noscript>\
</main><p id="empty" hidden>No job matches.</p>
<nav class="pager" aria-label="pages"></nav>
<script type="application/json" id="index">{script_json(index)}</script>
<script type="application/json" id="config">{script_json(config)}</script>
<script>{JS}</script>
<script>runnerReportPart(0,{script_json(first_part)});</script>
</body></html>
"""
        parts = [f"runnerReportPart({n},{script_json(chunk)});\n"
                 for n, chunk in enumerate(chunks) if n > 0]
        return Rendered(page, parts)


def job_makes_audio(take: Take) -> bool:
    return take.job.model.kind is not Kind.TRANSCRIPT


def render_report(build: Build, root: Path, parts_dir: str = "report.parts") -> Rendered:
    """The page and its parts; `root` is the folder the page is written to, `parts_dir`
    the folder of the parts, relative to it."""
    return Page(build, root).render(parts_dir)
