"""`runner report` over a hand-made build: lockfile, journal and outputs written here.

The build has variants, a mu-law WAV (which needs a preview), a narration with
segments, subtitles and sidecar, a transcript of it, and a job that failed in
the last run with a message full of markup. The page is parsed with
html.parser and checked for structure, not for looks (the browser test looks).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
from audiogen import make

from runner.audio.formats import FormatSpec, wrap_raw
from runner.report.collect import collect
from runner.report.page import APPROVED, CHANGED, FAILED, MISSED, REJECTED, UNREVIEWED
from runner.report.write import build_report
from runner.store.journal import Journal
from runner.store.lockfile import LockEntry, render_lockfile
from runner.text.subtitles import Cue, to_vtt

PROMPT = 'Big <b>boom</b> & "crash" <script>alert(1)</script>'
FAILURE = "generation failed: <img src=x onerror=alert(2)> refused by provider"

MANIFEST = f"""
version: 1
name: demo
output_dir: out
defaults:
  provider: kie
jobs:
  - id: boom
    model: elevenlabs/sound-effect-v2
    variants: 2
    output: sfx/boom_{{variant}}.{{ext}}
    input:
      text: {json.dumps(PROMPT)}
      duration_seconds: 1
  - id: beep
    model: elevenlabs/sound-effect-v2
    output: sfx/beep.wav
    input: {{text: A phone beep, output_format: ulaw_8000}}
  - id: story
    model: elevenlabs/text-to-speech-turbo-2-5
    output: story.mp3
    input: {{voice: Brian}}
    narration:
      text: "First paragraph here. It is short.\\n\\nSecond paragraph, also short."
      max_chars: 50
  - id: story_caps
    model: elevenlabs/speech-to-text
    audio: {{from: story}}
    output: caps.json
  - id: thunder
    model: elevenlabs/sound-effect-v2
    input: {{text: Distant thunder}}
  - id: interview
    model: elevenlabs/speech-to-text
    audio: {{file: talk.mp3}}
    output: interview.json
  - id: gate
    model: elevenlabs/text-to-speech-turbo-2-5
    dialogue:
      lines:
        - {{voice: George, text: "Who goes there?"}}
        - {{voice: Lily, text: "A friend."}}
        - {{voice: George, text: "Come in."}}
"""


class Tree(HTMLParser):
    """Start tags with their attributes, and the page's text, in document order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag
                and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items())]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _entry(out: Path, output: str, key: str, **extra: object) -> LockEntry:
    path = out / output
    return LockEntry(key=key, provider="kie", model="m", output=output, sha256=_sha(path),
                     size=path.stat().st_size, created_at="2025-01-01T00:00:00Z", **extra)  # type: ignore[arg-type]


def make_build(root: Path) -> Path:
    """A build as two runs would leave it; returns the manifest."""
    manifest = root / "m.yaml"
    manifest.write_text(MANIFEST, encoding="utf-8")
    make(root / "talk.mp3", "mp3_44100_64", [("tone:300", 0.8)])  # outside the build
    out = root / "out"
    (out / "sfx").mkdir(parents=True)
    make(out / "sfx/boom_1.mp3", "mp3_44100_128", [("tone:220", 0.5)])
    make(out / "sfx/boom_2.mp3", "mp3_44100_128", [("tone:330", 0.7)], volume=0.8)
    raw = make(root / "beep.raw", "ulaw_8000", [("tone:880", 0.4)])
    (out / "sfx/beep.wav").write_bytes(wrap_raw(raw.read_bytes(), FormatSpec.parse("ulaw_8000")))
    (out / "story.segments").mkdir()
    make(out / "story.segments/001.mp3", "mp3_44100_128", [("tone:440", 0.6)])
    make(out / "story.segments/002.mp3", "mp3_44100_128", [("tone:550", 0.6)])
    make(out / "story.mp3", "mp3_44100_128", [("tone:440", 0.6), ("silence", 0.9),
                                              ("tone:550", 0.6)])
    (out / "story.json").write_text(json.dumps({"segments": [
        {"id": "story/001", "offset_ms": 0, "duration_ms": 600},
        {"id": "story/002", "offset_ms": 1500, "duration_ms": 600}], "loudness": {
        "target_lufs": -16, "max_true_peak_dbtp": -1, "measured_lufs": -25.0,
        "measured_true_peak_dbtp": -1.2, "met": False,
        "problem": "target -16 LUFS missed: measured -25.0 LUFS"}}))
    (out / "story.vtt").write_text(to_vtt([Cue(0, 600, "First paragraph <here>."),
                                           Cue(1500, 2100, "Second paragraph.")]))
    (out / "caps.json").write_text("{}")
    (out / "caps.txt").write_text("First paragraph here. Second & last.\n")
    (out / "interview.json").write_text("{}")
    (out / "interview.txt").write_text("Three hundred hertz.\n")

    entries = {
        "boom#1": _entry(out, "sfx/boom_1.mp3", "k1", variant=1, credits=1.2, task_id="t-b1",
                         duration_s=0.5),
        "boom#2": _entry(out, "sfx/boom_2.mp3", "k2", variant=2, credits=1.2, task_id="t-b2"),
        "beep": _entry(out, "sfx/beep.wav", "k3", task_id="t-beep"),
        "story/001": _entry(out, "story.segments/001.mp3", "k4"),
        "story/002": _entry(out, "story.segments/002.mp3", "k5"),
        "story": _entry(out, "story.mp3", "k6",
                        companions={"sidecar": "story.json", "vtt": "story.vtt"}),
        "story_caps": _entry(out, "caps.json", "k7", companions={"txt": "caps.txt"}),
        "interview": _entry(out, "interview.json", "k10", companions={"txt": "interview.txt"}),
    }
    (root / "m.lock.json").write_text(render_lockfile("demo", entries))
    with Journal(out / ".runner/journal.sqlite") as journal:
        for run in (1, 2):
            journal.start_run("live")
            for job_id, e in entries.items():
                if (run == 2) == (job_id == "boom#2"):
                    journal.record_asset(e.key, sha256=e.sha256, size=e.size, ext="mp3",
                                         duration_s=None, credits=None, task_id=None,
                                         result_url=None)
                    journal.record_outcome(job_id, e.key, "done", task_id=e.task_id)
            if run == 2:
                journal.record_outcome("thunder", "k8", "failed", FAILURE, task_id="t-thunder")
            journal.finish_run("finished")
    return manifest


_PART = re.compile(r"runnerReportPart\((\d+),(\[.*?\])\);", re.DOTALL)


def cards_of(report: Path) -> tuple[str, list[list[object]]]:
    """The cards' HTML, every part in order (the first is in the page, the others in
    report.parts/), and the page's index of cards."""
    page = report.read_text(encoding="utf-8")
    texts = [page] + [p.read_text(encoding="utf-8")
                      for p in sorted(report.with_name(report.stem + ".parts").glob("*.js"))]
    parts: dict[int, list[str]] = {}
    for text in texts:
        for number, cards in _PART.findall(text):
            parts[int(number)] = json.loads(cards)
    html = "".join(card for n in sorted(parts) for card in parts[n])
    index = json.loads(re.search(r'<script type="application/json" id="index">(.*?)</script>',
                                 page, re.DOTALL).group(1))  # type: ignore[union-attr]
    return html, index


def read(report: Path) -> tuple[Path, Tree, str]:
    """The report as a browser would have it once its script ran: page and cards."""
    page = report.read_text(encoding="utf-8")
    cards, _ = cards_of(report)
    tree = Tree()
    tree.feed(page.replace("</main>", cards + "</main>", 1))
    return report, tree, page + cards


def flagged(report: Path, bit: int) -> set[str]:
    return {str(entry[0]) for entry in cards_of(report)[1] if int(entry[1]) & bit}  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Tree, str]:
    root = tmp_path_factory.mktemp("report")
    manifest = make_build(root)
    return read(build_report(manifest))


def test_report_sits_at_the_output_root(built: tuple[Path, Tree, str]) -> None:
    report, _, _ = built
    assert report.name == "report.html" and report.parent.name == "out"


def test_one_player_per_audio_asset_each_with_an_existing_relative_source(
        built: tuple[Path, Tree, str]) -> None:
    report, tree, _ = built
    audios = tree.find("audio")
    # boom x2, beep, 2 segments, programme, and the programme again beside its transcript
    players = {a["data-job"] for a in audios}
    assert players == {"boom#1", "boom#2", "beep", "story/001", "story/002", "story",
                       "interview"}
    assert len(audios) == 8
    for audio in audios:
        src = audio["src"]
        assert src and not src.startswith(("/", "http:", "https:", "file:"))
        assert (report.parent / unquote(src)).is_file(), src


def test_mu_law_plays_from_a_cached_mp3_preview(built: tuple[Path, Tree, str]) -> None:
    report, tree, page = built
    (beep,) = tree.find("audio", data_job="beep")
    assert beep["src"] and beep["src"].startswith(".runner/previews/") and \
        beep["src"].endswith(".mp3")
    assert (report.parent / beep["src"]).read_bytes()[:3] in (b"ID3", b"\xff\xfb")
    assert "G.711 mu-law WAV, which browsers do not play" in page


def test_every_audio_has_a_waveform(built: tuple[Path, Tree, str]) -> None:
    _, tree, _ = built
    waves = tree.find("canvas", **{"class": "wave"})
    assert len(waves) == len(tree.find("audio"))
    for wave in waves:  # 300 bars of (min, max), one byte each, base64
        assert len(base64.b64decode(wave["data-peaks"] or "")) == 600


def test_durations_show_before_anything_plays(built: tuple[Path, Tree, str]) -> None:
    _, tree, page = built
    assert all(a["preload"] == "none" for a in tree.find("audio"))  # until scrolled to
    assert '<strong>take 1 of 2</strong><span class="dur">0.5 s</span>' in page


def test_variants_share_one_card_side_by_side(built: tuple[Path, Tree, str]) -> None:
    _, tree, _ = built
    ids = [a.get("id") for t, a in tree.tags if t in ("article", "figure")]
    card = ids.index("card-job-boom")
    assert ids[card + 1:card + 3] == ["job-boom~231", "job-boom~232"]


def test_narration_card_holds_segments_and_cues(built: tuple[Path, Tree, str]) -> None:
    _, tree, page = built
    ids = [a.get("id") for t, a in tree.tags if t in ("article", "figure")]
    story = ids.index("card-job-story")
    assert ids[story + 1:story + 4] == ["job-story", "job-story~2f001", "job-story~2f002"]
    seeks = tree.find("button", **{"class": "seek"})
    assert [s["data-t"] for s in seeks] == ["0.000", "1.500"]
    assert "First paragraph &lt;here&gt;." in page  # cue text, escaped
    assert "segment 2, paragraph 2 at 1.5 s" in "".join(tree.text)


def test_transcript_text_is_shown(built: tuple[Path, Tree, str]) -> None:
    _, tree, _ = built
    assert "First paragraph here. Second & last." in "".join(tree.text)


def test_failed_job_listed_with_reason_and_task(built: tuple[Path, Tree, str]) -> None:
    _, tree, page = built
    text = "".join(tree.text)
    assert f"failed: {FAILURE}" in text
    assert "t-thunder" in text
    assert '<a href="#job-thunder">thunder</a>' in page
    assert tree.find("article", id="card-job-thunder")
    assert flagged(report_of(built), FAILED) == {"thunder"}


def report_of(built: tuple[Path, Tree, str]) -> Path:
    return built[0]


def test_changed_means_made_by_the_last_run(built: tuple[Path, Tree, str]) -> None:
    assert flagged(report_of(built), CHANGED) == {"boom"}


def test_user_text_is_escaped_everywhere(built: tuple[Path, Tree, str]) -> None:
    report, tree, text = built
    page = report.read_text(encoding="utf-8")
    # The page's own: the index, its settings, the script, and the first part of cards.
    assert [t for t, _ in tree.tags].count("script") == 4
    assert "<img" not in text and "<b>boom" not in text  # not in the page, nor in a card
    assert "</script" not in page.split('id="index">', 1)[1].split("</script>", 1)[0]
    assert PROMPT in "".join(tree.text)
    (boom,) = [e for e in cards_of(report)[1] if e[0] == "boom"]
    assert PROMPT.lower() in str(boom[3])  # what the search looks through


def test_no_external_references(built: tuple[Path, Tree, str]) -> None:
    _, tree, page = built
    for tag, attrs in tree.tags:
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            assert not value.startswith(("http:", "https:", "//")), (tag, value)
    assert "http://" not in page and "https://" not in page


def test_model_filter_lists_every_model(built: tuple[Path, Tree, str]) -> None:
    _, tree, _ = built
    options = [o["value"] for o in tree.find("option")]
    assert options == ["", "0", "1", "2"]
    assert "<option value=\"2\">elevenlabs/text-to-speech-turbo-2-5</option>" in built[2]


def test_a_second_report_reuses_the_cached_peaks(tmp_path: Path) -> None:
    manifest = make_build(tmp_path)
    first = cards_of(build_report(manifest))[0]
    peaks = sorted((tmp_path / "out/.runner/peaks").iterdir())
    assert len(peaks) == 7  # one per distinct audio file
    stamps = [p.stat().st_mtime_ns for p in peaks]
    second = cards_of(build_report(manifest, out=tmp_path / "elsewhere"))[0]
    assert [p.stat().st_mtime_ns for p in peaks] == stamps  # nothing decoded again
    # Written elsewhere, the page reaches the outputs through a longer relative path.
    assert 'src="../out/sfx/boom_1.mp3"' in second and 'src="sfx/boom_1.mp3"' in first


def test_missing_output_is_reported_not_fatal(tmp_path: Path) -> None:
    manifest = make_build(tmp_path)
    (tmp_path / "out/sfx/boom_1.mp3").unlink()
    build = collect(manifest)
    (boom,) = [c for c in build.cards if c.base_id == "boom"]
    assert [t.status for t in boom.takes] == ["missing", "ok"]
    assert "output file missing: sfx/boom_1.mp3" in cards_of(build_report(manifest))[0]


def test_configured_keys_never_reach_the_page(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = make_build(tmp_path)
    secret = "sk-live-0123456789abcdef"
    # A key that (absurdly) sits in a prompt is still scrubbed from the page.
    manifest.write_text(manifest.read_text().replace("Distant thunder", f"thunder {secret}"))
    monkeypatch.setenv("KIE_API_KEY", secret)
    report = build_report(manifest)
    page = report.read_text(encoding="utf-8")
    assert secret not in page and "[redacted]" in page
    assert secret not in cards_of(report)[0]


def test_a_failed_rebuild_keeps_showing_the_earlier_asset(tmp_path: Path) -> None:
    manifest = make_build(tmp_path)
    with Journal(tmp_path / "out/.runner/journal.sqlite") as journal:
        journal.start_run("live")
        journal.record_outcome("beep", "k9", "uncertain", "sent, no answer", task_id="t-lost")
        journal.finish_run("finished")
    report, tree, _ = read(build_report(manifest))
    text = "".join(tree.text)
    assert "uncertain: sent, no answer The asset shown is the one from an earlier run." in text
    assert "t-lost" in text  # the lost task is the one to ask the provider about
    assert tree.find("audio", data_job="beep")
    assert flagged(report, FAILED) == {"beep", "thunder"}
    assert flagged(report, CHANGED) == set()


def test_a_local_source_outside_the_folder_plays_from_a_copy(
        built: tuple[Path, Tree, str]) -> None:
    report, tree, _page = built
    (talk,) = tree.find("audio", data_job="interview")
    assert talk["src"] and talk["src"].startswith(".runner/previews/")
    assert (report.parent / talk["src"]).is_file()
    assert "Heard: talk.mp3" in "".join(tree.text)
    assert "Playing a copy of a file outside the report's folder." in "".join(tree.text)
    assert not [a for _, a in tree.tags if (a.get("href") or "").startswith("..")]


def test_narration_and_dialogue_cards_show_their_voices(built: tuple[Path, Tree, str]) -> None:
    _, _, text = built
    story = text.split('id="card-job-story"', 1)[1].split("</article>", 1)[0]
    assert '<span class="badge">narration</span>' in story
    assert "<dt>voice</dt><dd>Brian</dd>" in story
    gate = text.split('id="card-job-gate"', 1)[1].split("</article>", 1)[0]
    assert '<span class="badge">dialogue</span>' in gate  # not "narration"
    assert "<dt>voices</dt><dd>George, Lily</dd>" in gate


def test_loudness_per_asset_and_a_missed_target(built: tuple[Path, Tree, str]) -> None:
    report, _, text = built
    boom = text.split('id="job-boom~232"', 1)[1].split("</figure>", 1)[0]
    found = re.search(r"<dt>loudness</dt><dd>(-?\d+\.\d) LUFS, true peak (-?\d+\.\d) dBTP", boom)
    assert found, boom
    assert -40 < float(found.group(1)) < 0 and float(found.group(2)) <= 0
    # The programme asked -16 LUFS and missed: said on its card and at the top.
    story = text.split('id="job-story"', 1)[1].split("</figure>", 1)[0]
    assert "loudness target missed" in story
    assert "target -16 LUFS missed: measured -25.0 LUFS" in story
    warnings = text.split('<section id="warnings">', 1)[1].split("</section>", 1)[0]
    assert '<a href="#job-story">story</a> target -16 LUFS missed' in warnings
    assert flagged(report, MISSED) == {"story"}


def test_review_decisions_are_shown(tmp_path: Path) -> None:
    from runner.store.reviews import Decision, Mark, Take, record

    manifest = make_build(tmp_path)
    lock = json.loads((tmp_path / "m.lock.json").read_text())["jobs"]

    def take(job: str) -> Take:
        return Take(lock[job]["sha256"], lock[job].get("task_id"))

    record(tmp_path / "m.review.jsonl", "demo", [
        Mark("boom#1", take("boom#1"), "2026-12-03T10:00:00.000Z", Decision.REJECTED,
             note="clipped <at> the end", by="ana"),
        Mark("boom#2", take("boom#2"), "2026-12-03T10:00:01.000Z", Decision.APPROVED, by="ana"),
        Mark("boom", take("boom#2"), "2026-12-03T10:00:01.000Z", pick=2, by="ana"),
        Mark("beep", Take("0" * 64, "t-old"), "2026-12-03T10:00:02.000Z", Decision.REJECTED,
             note="too loud", by="ben"),  # about a take the job no longer holds
    ])
    report, _, text = read(build_report(manifest))
    one = text.split('id="job-boom~231"', 1)[1].split("</figure>", 1)[0]
    assert '<span class="badge bad">rejected</span>' in one
    assert "rejected by ana: clipped &lt;at&gt; the end" in one
    two = text.split('id="job-boom~232"', 1)[1].split("</figure>", 1)[0]
    assert '<span class="badge ok">picked</span>' in two
    beep = text.split('id="job-beep"', 1)[1].split("</figure>", 1)[0]
    assert "An earlier take was rejected: too loud." in beep and "badge bad\">rejected" not in beep
    assert flagged(report, REJECTED) == flagged(report, APPROVED) == {"boom"}
    assert "beep" in flagged(report, UNREVIEWED) and "boom" not in flagged(report, UNREVIEWED)
    assert "decisions from ../m.review.jsonl" in text


def test_a_large_build_is_split_into_parts(tmp_path: Path) -> None:
    from runner.report.page import PART_CARDS
    from runner.testing.fake_build import make_fake_build

    sources = [make(tmp_path / "a.mp3", "mp3_44100_128", [("tone:440", 0.4)]),
               make(tmp_path / "b.mp3", "mp3_44100_128", [("tone:660", 0.3)])]
    manifest = make_fake_build(tmp_path / "big", jobs=2 * PART_CARDS + 7, variants=2,
                               sources=sources)
    report = build_report(manifest)
    parts = sorted(p.name for p in (report.parent / "report.parts").iterdir())
    assert parts == ["0001.js", "0002.js"]  # part 0 is in the page
    cards, index = cards_of(report)
    assert len(index) == 2 * PART_CARDS + 7 and cards.count("<article") == len(index)
    page = report.read_text(encoding="utf-8")
    assert page.count("\\u003carticle") == PART_CARDS  # only the first part is in the page
    # A smaller build written there later removes the parts it no longer has.
    small = make_fake_build(tmp_path / "small", jobs=3, variants=1, sources=sources)
    report = build_report(small, out=report)
    assert not list((report.parent / "report.parts").glob("*.js"))
