"""The report's HTML: every value escaped, every file referenced relative to the page.

Manifest text (prompts, narration, ids) is user text and outcome messages quote
providers, so no value reaches the page but through an escaping tool: the page
is a Jinja2 template with autoescape (templates/report.html), and the cards are
markupsafe `Markup` fragments made by `markup.html`, which escapes every value
that is not itself `Markup` (text and attributes alike, quotes included). JSON
inside a `<script>` is the one thing HTML escaping cannot protect (a script's
text is not HTML): `script_json` writes `<` as `\u003c`, so no `</script>` ends
it. File references are percent-encoded relative URLs, which work from file://
and from any static server that serves the output folder.

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
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from markupsafe import Markup

from runner.catalog.models import Kind
from runner.manifest.types import AudioKind, Job, JobKind
from runner.report.audio import PEAKS, WAVE_HEIGHT, AudioView
from runner.report.collect import BAD_OUTCOMES, Build, Card, Take
from runner.report.markup import html, render_template
from runner.report.static import CSS, JS
from runner.text.subtitles import Cue

PART_CARDS = 50  # cards per part file
PAGE_CARDS = 50  # cards the page shows at a time
# Card flags in the index, for the filters (bits).
FAILED, CHANGED, APPROVED, REJECTED, UNREVIEWED, MISSED = 1, 2, 4, 8, 16, 32


def join(pieces: Iterable[Markup | str]) -> Markup:
    """Fragments one after the other; plain text among them is escaped."""
    return Markup("").join(pieces)


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


def script_json(value: object) -> Markup:
    """JSON safe inside a <script> element: no `</script>` (nor `<!--`) can end it early.
    Not HTML-escaped: a script's text is read as it is, entities and all."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    return Markup(text)  # safe: JSON with every "<" written as \u003c


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
    def facts(self, pairs: Iterable[tuple[str, Markup | str | None]]) -> Markup:
        """A <dl> of label/value pairs: text is escaped, Markup kept, None left out."""
        items = join(html("<div><dt>{}</dt><dd>{}</dd></div>", k, v)
                     for k, v in pairs if v is not None)
        return html('<dl class="facts">{}</dl>', items) if items else Markup()

    def badges(self, take: Take) -> Markup:
        out = []
        if take.status in ("failed", "uncertain", "skipped", "interrupted", "missing"):
            out.append(html('<span class="badge bad">{}</span>', take.status))
        elif take.status == "not built":
            out.append(Markup('<span class="badge">not built</span>'))
        if take.changed:
            out.append(Markup('<span class="badge new">new in last run</span>'))
        if take.picked:
            out.append(Markup('<span class="badge ok">picked</span>'))
        elif take.decision is not None and take.decision.decision is not None:
            decision = take.decision.decision.value
            out.append(html('<span class="badge {}">{}</span>',
                            "ok" if decision == "approved" else "bad", decision))
        if take.target_missed:
            out.append(Markup('<span class="badge bad">loudness target missed</span>'))
        return join(out)

    def target(self, take: Take) -> Markup:
        t = take.target or {}
        reached = (f"measured {fmt_lufs(t.get('measured_lufs'))} LUFS, "
                   f"{fmt_lufs(t.get('measured_true_peak_dbtp'))} dBTP")
        asked = (f"{fmt_lufs(t.get('target_lufs'))} LUFS, true peak at most "
                 f"{fmt_lufs(t.get('max_true_peak_dbtp'))} dBTP")
        if take.target_missed:
            return html('<span class="miss">{}: {}</span>', asked, take.target_missed)
        return html("{}: {}", asked, reached)

    def decision(self, take: Take) -> Markup:
        """The reviewer's words about this take, and about an earlier one it replaced."""
        out = []
        mark = take.decision
        if mark is not None and mark.note:
            out.append(html('<p class="verdict">{}{}: {}</p>',
                            mark.decision.value if mark.decision else "",
                            " by " + mark.by if mark.by else "", mark.note))
        earlier = take.earlier
        if earlier is not None and earlier.decision is not None:
            note = f": {earlier.note}" if earlier.note else ""
            out.append(html('<p class="note">An earlier take was {}{}.</p>',
                            earlier.decision.value, note))
        return join(out)

    def player(self, take: Take) -> Markup:
        if take.missing and take.entry is not None:
            return html('<p class="reason">output file missing: {}</p>', take.entry.output)
        return self.audio(take.audio, take.job.id) if take.audio else Markup()

    def audio(self, view: AudioView, job_id: str, *, inside: bool = True) -> Markup:
        """Waveform and player; `inside`: the file is in the report's folder, so linkable."""
        if view.play is None:
            return html('<p class="reason">cannot show this file: {}</p>', view.problem)
        note = Markup()
        if view.preview_reason and inside:
            note = html('<p class="note">Playing an MP3 preview: the file is {}. '
                        '<a href="{}">Original file</a>.</p>',
                        view.preview_reason, self.href(view.path))
        elif view.preview_reason:
            note = html('<p class="note">Playing {}.</p>', view.preview_reason)
        duration = html(' data-duration="{}"', f"{view.duration_s:.3f}") \
            if view.duration_s else Markup()
        # The page's script switches a player to preload="metadata" when it scrolls into
        # view, so it shows its duration before anything plays without a page of players
        # all loading at once (each one a media pipeline in the browser).
        return html('<div class="player"{}><div class="wave">'
                    '<canvas class="wave" width="{}" height="{}" role="img" '
                    'aria-label="waveform" data-peaks="{}"></canvas>'
                    '<div class="played"></div></div>'
                    '<audio controls preload="none" src="{}" data-job="{}"></audio></div>{}',
                    duration, PEAKS, WAVE_HEIGHT, view.peaks_b64, self.href(view.play), job_id,
                    note)

    def take_facts(self, take: Take) -> Markup:
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
            ("duration", fmt_s(duration) if entry and duration is not None else None),
            ("loudness", loud or None),
            ("target", self.target(take) if take.target else None),
            ("credits", fmt_credits(entry.credits) if entry else None),
            ("size", fmt_size(entry.size) if entry else None),
            ("task", html("<code>{}</code>", task) if task else None),
            ("key", html('<code class="key" title="{0}">{0}</code>', entry.key)
             if entry else None),
            ("made", entry.created_at if entry else None),
            ("file", html('<a href="{}">{}</a>',
                          self.href(self.build.layout.output_path(entry.output)), entry.output)
             if entry and not take.missing else None),
        ])

    def reason(self, take: Take) -> Markup:
        if take.status not in ("failed", "uncertain", "skipped", "interrupted"):
            return Markup()
        assert take.outcome is not None
        kept = " The asset shown is the one from an earlier run." if take.entry else ""
        message = take.outcome.message or "no message recorded"
        return html('<p class="reason">{}: {}{}</p>', take.status, message, kept)

    def take(self, take: Take, caption: str) -> Markup:
        job = take.job
        bad = " bad" if take.status in ("failed", "uncertain", "skipped", "interrupted",
                                         "missing") else ""
        seconds = take.entry.duration_s if take.entry and take.entry.duration_s else \
            (take.audio.duration_s if take.audio else None)
        length = html('<span class="dur">{}</span>', fmt_s(seconds)) \
            if seconds and job.model.makes_audio and not take.missing else Markup()
        seg_text = html('<p class="seg-text">{}</p>', prompt_of(job)) \
            if job.segment else Markup()
        return html('<figure class="take{}" id="{}" data-status="{}"><figcaption>'
                    "<strong>{}</strong>{}{}</figcaption>{}{}{}{}{}{}</figure>",
                    bad, anchor(job.id), take.status, caption, length, self.badges(take),
                    seg_text, self.player(take), self.transcript(take), self.decision(take),
                    self.take_facts(take), self.reason(take))

    def heard(self, take: Take) -> Take | None:
        """The take whose audio a transcript heard, when it is in the build and playable."""
        audio = take.job.audio
        heard = self.takes.get(audio.value) if audio and audio.kind is AudioKind.FROM else None
        return heard if heard is not None and heard.audio is not None \
            and heard.audio.play is not None and not heard.missing else None

    def transcript(self, take: Take) -> Markup:
        job = take.job
        if job.model.kind is not Kind.TRANSCRIPT or take.entry is None:
            return Markup()
        source = Markup()
        if job.audio is not None and job.audio.kind is AudioKind.FROM:
            source = html('<p class="note">Heard: <a href="#{}">{}</a></p>',
                          anchor(job.audio.value), job.audio.value)
            heard = self.heard(take)
            if heard is not None:
                source += self.player(heard)
        elif job.audio is not None:
            shown = job.audio.value
            if job.audio.kind is AudioKind.FILE:
                shown = os.path.relpath(shown, self.build.pipeline.path.parent)
            source = html('<p class="note">Heard: <code>{}</code></p>', shown)
            if take.heard is not None:
                inside = take.heard.path.is_relative_to(self.build.layout.output_dir)
                source += self.audio(take.heard, job.id, inside=inside)
        text = take.text if take.text is not None else "(no transcript text)"
        return source + html('<div class="transcript">{}</div>', text.strip())

    def cues(self, cues: list[Cue], seekable: bool) -> Markup:
        if not cues:
            return Markup()
        rows = []
        for cue in cues:
            start = cue.start_ms / 1000
            at = html('<button type="button" class="seek" data-t="{}">{}</button>',
                      f"{start:.3f}", clock(start)) if seekable else clock(start)
            rows.append(html("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                             at, clock(cue.end_ms / 1000), cue.speaker or "", cue.text))
        return html('<details class="cues"><summary>Subtitles ({} cues)</summary>'
                    '<table class="cues">{}</table></details>', len(cues), join(rows))

    def segments(self, card: Card) -> Markup:
        if not card.segments:
            return Markup()
        placed = {str(s.get("id")): s for s in card.sidecar.get("segments", [])
                  if isinstance(s, dict)}
        items = []
        for seg in card.segments:
            index = seg.job.segment.index + 1 if seg.job.segment else 0
            where = placed.get(seg.job.id)
            at = f" at {fmt_s(float(where['offset_ms']) / 1000)}" if where and \
                isinstance(where.get("offset_ms"), int | float) else ""
            paragraph = seg.job.segment.paragraph + 1 if seg.job.segment else 0
            items.append(html("<li>{}</li>",
                              self.take(seg, f"segment {index}, paragraph {paragraph}{at}")))
        bad = sum(1 for s in card.segments if s.status != "ok")
        state = f", {bad} not ok" if bad else ""
        opened = " open" if bad else ""  # a person looking at a failure needs to see which
        return html('<details class="segments"{}><summary>Segments ({}{})</summary>'
                    '<ol class="segments">{}</ol></details>',
                    opened, len(card.segments), state, join(items))

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

    def card(self, card: Card) -> Markup:
        first = card.takes[0].job
        takes = card.all_takes
        many = len(card.takes) > 1
        rendered = join(
            self.take(t, f"take {t.job.variant} of {t.job.variants}" if many else
                      ("programme" if t.job.kind is JobKind.STITCH else "asset"))
            for t in card.takes)
        programme = card.takes[0] if first.kind is JobKind.STITCH else None
        # A cue can seek the card's first player: the programme, or the audio a
        # transcript heard when it is shown.
        cues = self.cues(programme.cues, seekable=True) if programme else \
            join(self.cues(t.cues, seekable=self.heard(t) is not None or t.heard is not None)
                 for t in card.takes)
        prompt = prompt_of(first)
        prompt_html = Markup()
        if prompt and first.kind is JobKind.STITCH:
            prompt_html = html('<details class="text"><summary>Text ({} characters)</summary>'
                               '<p class="prompt">{}</p></details>', len(prompt), prompt)
        elif prompt:
            prompt_html = html('<p class="prompt">{}</p>', prompt)
        voices = card_voices(card)
        facts = self.facts([
            ("model", model_label(first)), ("provider", first.provider),
            ("voices" if voices and "," in voices else "voice", voices or None),
            ("format", first.format),
            ("post-processing", first.post.describe() if first.post else None),
            ("credits", fmt_credits(sum(t.entry.credits or 0 for t in takes if t.entry))
             if len(takes) > 1 and any(t.entry for t in takes) else None),
            ("notes", first.notes or None),
        ])
        return html('<article class="card" id="card-{}"><header><h2>{}</h2>'
                    '<span class="badge">{}</span></header>{}{}'
                    '<div class="takes">{}</div>{}{}</article>',
                    anchor(card.base_id), card.base_id, card_kind(first), prompt_html, facts,
                    rendered, self.segments(card), cues)

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
        index = []
        chunks: list[list[Markup]] = []
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
        filters = [(name, label, counts[name]) for name, label in (
            ("failed", "Failed"), ("changed", "Changed in last run"),
            ("unreviewed", "Unreviewed"), ("approved", "Approved"), ("rejected", "Rejected"))]
        problems = []
        for t in build.problems:
            assert t.outcome is not None
            problems.append({"anchor": anchor(t.job.id), "id": t.job.id, "status": t.status,
                             "message": t.outcome.message or "no message recorded",
                             "task_id": t.task_id})
        warnings = [{"anchor": anchor(t.job.id), "id": t.job.id, "message": t.target_missed}
                    for t in build.missed_targets]  # loudness targets missed: never silent
        config = {"page": PAGE_CARDS, "part": PART_CARDS, "parts": parts_dir,
                  "bits": {"failed": FAILED, "changed": CHANGED, "approved": APPROVED,
                           "rejected": REJECTED, "unreviewed": UNREVIEWED}}
        page = render_template(
            "report.html", pipeline=pipeline, target=build.layout.target.value,
            jobs=len(build.cards), assets=len(assets), audio=fmt_s(total_s),
            credits=fmt_credits(round(credits, 4)), last_run=build.last_run_id,
            review_file=os.path.relpath(build.review_file, self.root)
            if build.review_file is not None else None,
            now=dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            filters=filters, models=models, problems=problems, warnings=warnings,
            index=script_json(index), config=script_json(config),
            first_part=script_json(chunks[0] if chunks else []),
            css=Markup(CSS), js=Markup(JS))  # the page's own style and script
        parts = [f"runnerReportPart({n},{script_json(chunk)});\n"
                 for n, chunk in enumerate(chunks) if n > 0]
        return Rendered(page, parts)


def job_makes_audio(take: Take) -> bool:
    return take.job.model.kind is not Kind.TRANSCRIPT


def render_report(build: Build, root: Path, parts_dir: str = "report.parts") -> Rendered:
    """The page and its parts; `root` is the folder the page is written to, `parts_dir`
    the folder of the parts, relative to it."""
    return Page(build, root).render(parts_dir)
