"""`runner report` over a hand-made build: lockfile, journal and outputs written here.

The build has variants, a mu-law WAV (which needs a preview), a narration with
segments, subtitles and sidecar, a transcript of it, and a job that failed in
the last run with a message full of markup. The page is parsed with
html.parser and checked for structure, not for looks (the browser test looks).
"""

from __future__ import annotations

import hashlib
import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
from audiogen import make

from runner.audioformat import FormatSpec, wrap_raw
from runner.report import build_report, collect
from runner.store.journal import Journal
from runner.store.lockfile import LockEntry, render_lockfile
from runner.subtitles import Cue, to_vtt

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
        {"id": "story/002", "offset_ms": 1500, "duration_ms": 600}]}))
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


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Tree, str]:
    root = tmp_path_factory.mktemp("report")
    manifest = make_build(root)
    report = build_report(manifest)
    page = report.read_text(encoding="utf-8")
    tree = Tree()
    tree.feed(page)
    return report, tree, page


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
    assert len(tree.find("svg", **{"class": "wave"})) == len(tree.find("audio"))


def test_variants_share_one_card_side_by_side(built: tuple[Path, Tree, str]) -> None:
    _, tree, _ = built
    ids = [a.get("id") for t, a in tree.tags if t in ("article", "figure")]
    card = ids.index("card-job-boom")
    assert ids[card + 1:card + 3] == ["job-boom~231", "job-boom~232"]
    picks = tree.find("input", **{"class": "pick"})
    assert [(p["data-job"], p["value"]) for p in picks] == [("boom", "1"), ("boom", "2")]


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
    (card,) = tree.find("article", id="card-job-thunder")
    assert card["data-failed"] == "1"


def test_changed_means_made_by_the_last_run(built: tuple[Path, Tree, str]) -> None:
    _, tree, _ = built
    changed = {a["id"] for a in tree.find("article") if a["data-changed"] == "1"}
    assert changed == {"card-job-boom"}


def test_user_text_is_escaped_everywhere(built: tuple[Path, Tree, str]) -> None:
    _, tree, page = built
    assert [t for t, _ in tree.tags].count("script") == 1  # only the page's own
    assert "<img" not in page and "<b>boom" not in page
    assert PROMPT in "".join(tree.text)
    (card,) = tree.find("article", id="card-job-boom")
    assert PROMPT.lower() in (card["data-search"] or "")


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
    assert options == ["", "elevenlabs/sound-effect-v2", "elevenlabs/speech-to-text",
                       "elevenlabs/text-to-speech-turbo-2-5"]


def test_a_second_report_reuses_the_cached_peaks(tmp_path: Path) -> None:
    manifest = make_build(tmp_path)
    first = build_report(manifest).read_text(encoding="utf-8")
    peaks = sorted((tmp_path / "out/.runner/peaks").iterdir())
    assert len(peaks) == 7  # one per distinct audio file
    stamps = [p.stat().st_mtime_ns for p in peaks]
    second = build_report(manifest, out=tmp_path / "elsewhere").read_text(encoding="utf-8")
    assert [p.stat().st_mtime_ns for p in peaks] == stamps  # nothing decoded again
    # Written elsewhere, the page reaches the outputs through a longer relative path.
    assert 'src="../out/sfx/boom_1.mp3"' in second and 'src="sfx/boom_1.mp3"' in first


def test_missing_output_is_reported_not_fatal(tmp_path: Path) -> None:
    manifest = make_build(tmp_path)
    (tmp_path / "out/sfx/boom_1.mp3").unlink()
    build = collect(manifest)
    (boom,) = [c for c in build.cards if c.base_id == "boom"]
    assert [t.status for t in boom.takes] == ["missing", "ok"]
    page = build_report(manifest).read_text(encoding="utf-8")
    assert "output file missing: sfx/boom_1.mp3" in page


def test_configured_keys_never_reach_the_page(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = make_build(tmp_path)
    secret = "sk-live-0123456789abcdef"
    # A key that (absurdly) sits in a prompt is still scrubbed from the page.
    manifest.write_text(manifest.read_text().replace("Distant thunder", f"thunder {secret}"))
    monkeypatch.setenv("KIE_API_KEY", secret)
    page = build_report(manifest).read_text(encoding="utf-8")
    assert secret not in page and "[redacted]" in page


def test_a_failed_rebuild_keeps_showing_the_earlier_asset(tmp_path: Path) -> None:
    manifest = make_build(tmp_path)
    with Journal(tmp_path / "out/.runner/journal.sqlite") as journal:
        journal.start_run("live")
        journal.record_outcome("beep", "k9", "uncertain", "sent, no answer", task_id="t-lost")
        journal.finish_run("finished")
    tree = Tree()
    tree.feed(build_report(manifest).read_text(encoding="utf-8"))
    text = "".join(tree.text)
    assert "uncertain: sent, no answer The asset shown is the one from an earlier run." in text
    assert "t-lost" in text  # the lost task is the one to ask the provider about
    assert tree.find("audio", data_job="beep")
    flagged = {a["id"] for a in tree.find("article") if a["data-failed"] == "1"}
    assert flagged == {"card-job-beep", "card-job-thunder"}
    assert not [a for a in tree.find("article") if a["data-changed"] == "1"]


def test_a_local_source_outside_the_folder_plays_from_a_copy(
        built: tuple[Path, Tree, str]) -> None:
    report, tree, page = built
    (talk,) = tree.find("audio", data_job="interview")
    assert talk["src"] and talk["src"].startswith(".runner/previews/")
    assert (report.parent / talk["src"]).is_file()
    assert "Heard: talk.mp3" in "".join(tree.text)
    assert "Playing a copy of a file outside the report&#x27;s folder." in page
    assert not [a for _, a in tree.tags if (a.get("href") or "").startswith("..")]
