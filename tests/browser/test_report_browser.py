"""The report of a real sandbox run, in a real headless Chromium.

A small pipeline (sound effects with variants, a mu-law effect that needs a
preview, a two-paragraph narration with subtitles, a transcript of it, and a
speech job the sandbox rejects) is run twice against the embedded sandbox: the
second run changes one prompt, so "changed in the last run" means one card.
The report is then opened from file:// in Chromium, driven by Playwright's
Python package (its own driver, the Debian browser: nothing is downloaded),
and checked the way a person would use it: no console errors, every player
loads its source, filters and search change what is visible, a waveform seeks.

Skipped, saying why, when /usr/bin/chromium or the playwright package is
missing (`apt-get install chromium`, `pip install -e '.[test]'`). Set
RUNNER_CHROMIUM to use another Chromium binary, and RUNNER_DOCS_SCREENSHOT=1
to refresh docs/images/report.png as well as the test's own screenshot.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.chromium import ARGS, CHROMIUM, playwright_or_skip

HERE = Path(__file__).parent
ARTIFACTS = HERE / "artifacts"
DOCS_IMAGE = HERE.parent.parent / "docs/images/report.png"

pytestmark = pytest.mark.browser

sync_api = playwright_or_skip()

MANIFEST = """
version: 1
name: report_tour
description: Sound effects, a narration and its transcript, from the sandbox
output_dir: build/report_tour
defaults:
  provider: kie
  elevenlabs/sound-effect-v2: {output_format: mp3_44100_128}
jobs:
  - id: door_creak
    model: elevenlabs/sound-effect-v2
    variants: 2
    output: sfx/door_creak_{variant}.{ext}
    input: {text: "Old wooden door creaking open slowly, iron hinges", duration_seconds: 1.5}
  - id: phone_ring
    model: elevenlabs/sound-effect-v2
    output: sfx/phone_ring.wav
    input: {text: "Old telephone ringing twice", duration_seconds: 1, output_format: ulaw_8000}
  - id: coin_pickup
    model: elevenlabs/sound-effect-v2
    input: {text: "COIN_PROMPT", duration_seconds: 0.6}
  - id: keeper
    model: elevenlabs/text-to-speech-turbo-2-5
    output: keeper.mp3
    input: {voice: Brian, timestamps: true}
    narration:
      text: "The lighthouse had not missed a night in ninety years.\\n\\nMara meant to keep it so."
      max_chars: 60
  - id: keeper_captions
    model: elevenlabs/speech-to-text
    audio: {from: keeper}
    output: keeper_captions.json
    input: {diarize: false}
  - id: bad_voice
    model: text-to-speech
    provider: elevenlabs
    input: {text: "Nobody will hear this", voice_id: no-such-voice}
"""


def _run(manifest: Path, sandbox_url: str) -> None:
    from runner.cli.run import RunOptions, run_pipeline

    code, _, _, _ = run_pipeline(manifest, RunOptions(sandbox_url=sandbox_url))
    assert code == 1  # bad_voice fails; everything else is built


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from runner.report.write import build_report
    from runner.sandbox import SandboxConfig, SandboxServer

    root = tmp_path_factory.mktemp("tour")
    manifest = root / "tour.yaml"
    manifest.write_text(MANIFEST.replace("COIN_PROMPT", "Single gold coin pickup sparkle"))
    # A sandbox of its own, without `--sandbox`'s realistic latencies (half a minute of
    # waiting for tasks that tell the page nothing more).
    with SandboxServer(SandboxConfig()) as url:
        _run(manifest, url)
        # The second run changes one prompt: only that job is made again (and bad_voice
        # fails again), so the "changed in the last run" filter has one card to show.
        manifest.write_text(MANIFEST.replace("COIN_PROMPT", "Two gold coins clinking, bright"))
        _run(manifest, url)
    return build_report(manifest, sandbox=True)


@pytest.fixture(scope="module")
def browser(report: Path) -> Iterator[Any]:
    # Playwright's sync API keeps an event loop running in this thread, and the run
    # needs asyncio.run: so the build (`report`) is made before the browser starts.
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(browser: Any, report: Path) -> Iterator[tuple[Any, list[str]]]:
    """The report, opened from file://; the list collects every console error, page
    error and failed request while the tests use the page."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error"
            else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    # A player told to load only metadata aborts its file read once it has it
    # (net::ERR_ABORTED): that is the browser obeying preload, not a broken file.
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url} {r.failure}")
            if r.failure != "net::ERR_ABORTED" else None)
    page.on("request", lambda r: errors.append(f"non-local request: {r.url}")
            if not r.url.startswith(("file:", "data:")) else None)
    page.goto(report.as_uri())
    page.wait_for_selector("body[data-ready='1']")
    yield page, errors
    context.close()


def visible_cards(page: Any) -> list[str]:
    return list(page.eval_on_selector_all(
        "article.card", "cards => cards.filter(c => !c.hidden).map(c => c.id)"))


LOAD_ALL = """async () => {
  const results = [];
  for (const audio of document.querySelectorAll("audio")) {
    audio.preload = "metadata";
    const settled = new Promise(resolve => {
      const done = () => resolve();
      audio.addEventListener("loadedmetadata", done, {once: true});
      audio.addEventListener("error", done, {once: true});
      setTimeout(done, 5000);
    });
    audio.load();
    await settled;
    const player = audio.closest(".player");
    results.push({job: audio.dataset.job, src: audio.getAttribute("src"),
                  readyState: audio.readyState, error: audio.error && audio.error.code,
                  duration: audio.duration,
                  expected: Number(player.getAttribute("data-duration"))});
  }
  return results;
}"""


def test_page_opens_without_console_errors(page: tuple[Any, list[str]]) -> None:
    view, errors = page
    assert view.title() == "report_tour · runner report"
    assert errors == []


def test_every_player_loads_its_source(page: tuple[Any, list[str]]) -> None:
    view, errors = page
    players = view.evaluate(LOAD_ALL)
    jobs = {p["job"] for p in players}
    assert {"door_creak#1", "door_creak#2", "phone_ring", "coin_pickup", "keeper",
            "keeper/001", "keeper/002"} <= jobs, jobs
    for p in players:
        assert p["error"] is None and p["readyState"] >= 1, p
        assert abs(p["duration"] - p["expected"]) < 0.25, p  # the page's number is right
    (ring,) = [p for p in players if p["job"] == "phone_ring"]
    assert ring["src"].startswith(".runner/previews/")  # mu-law plays through its preview
    assert errors == []


def test_filters_change_what_is_visible(page: tuple[Any, list[str]]) -> None:
    view, errors = page
    everything = visible_cards(view)
    assert len(everything) == 6
    view.click("button[data-filter=failed]")
    assert visible_cards(view) == ["card-job-bad_voice"]
    assert "voice" in view.inner_text("#card-job-bad_voice .reason")
    view.click("button[data-filter=changed]")
    assert visible_cards(view) == ["card-job-coin_pickup"]
    view.click("button[data-filter=all]")
    view.select_option("#model", "elevenlabs/speech-to-text")
    assert visible_cards(view) == ["card-job-keeper_captions"]
    view.select_option("#model", "")
    assert view.inner_text("#shown") == "6 of 6 shown"
    assert errors == []


def test_search_matches_ids_prompts_and_text(page: tuple[Any, list[str]]) -> None:
    view, errors = page
    view.fill("#search", "hinges")  # a prompt
    assert visible_cards(view) == ["card-job-door_creak"]
    view.fill("#search", "mara keep")  # narration text, every word must match
    assert set(visible_cards(view)) >= {"card-job-keeper"}
    view.fill("#search", "phone_ring")  # an id
    assert visible_cards(view) == ["card-job-phone_ring"]
    view.fill("#search", "zebra crossing")
    assert visible_cards(view) == [] and view.is_visible("#empty")
    view.fill("#search", "")
    assert len(visible_cards(view)) == 6
    assert errors == []


def test_a_click_on_a_waveform_seeks(page: tuple[Any, list[str]]) -> None:
    view, errors = page
    wave = view.locator("#job-keeper canvas.wave")
    box = wave.bounding_box()
    wave.click(position={"x": box["width"] / 2, "y": box["height"] / 2})
    at, duration = view.eval_on_selector(
        "#job-keeper audio", "a => [a.currentTime, a.duration]")
    view.eval_on_selector("#job-keeper audio", "a => a.pause()")
    assert abs(at - duration / 2) < 0.1 * duration
    assert errors == []


def test_durations_show_before_playing_and_waveforms_are_drawn(
        page: tuple[Any, list[str]]) -> None:
    view, errors = page
    # Nothing has played: each take's caption states its length, and the player (told to
    # load metadata) knows it too, instead of 0:00.
    rows = view.eval_on_selector_all("figure.take", """figs => figs
        .filter(f => f.querySelector(':scope > figcaption .dur') && f.querySelector('audio'))
        .map(f => [f.id, f.querySelector(':scope > figcaption .dur').textContent,
                   f.querySelector('audio').preload])""")
    assert len(rows) >= 6
    for job, shown, _ in rows:
        # Scrolled into view, the player loads its metadata by itself (no click, no play).
        view.eval_on_selector(f'[id="{job}"]', """f => {
            const closed = f.closest('details'); if (closed) { closed.open = true; }
            f.scrollIntoView(); }""")
        view.wait_for_function(f"""() => document.querySelector('[id="{job}"] audio')
                               .readyState >= 1""")
        duration = view.eval_on_selector(f'[id="{job}"] audio', "a => a.duration")
        assert abs(duration - float(shown.removesuffix(" s"))) < 0.15, (job, shown, duration)
    # A drawn canvas has non-blank pixels.
    inked = view.eval_on_selector("#job-keeper canvas.wave", """c => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) { if (d[i]) { n++; } } return n; }""")
    assert inked > 100
    assert errors == []


def test_screenshot(page: tuple[Any, list[str]], tmp_path: Path) -> None:
    view, errors = page
    view.evaluate("window.scrollTo(0, 0)")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    view.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("RUNNER_DOCS_SCREENSHOT"):
        DOCS_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        view.screenshot(path=str(tmp_path / "docs.png"), full_page=True,
                        clip={"x": 0, "y": 0, "width": 1280, "height": 1300})
        shutil.copyfile(tmp_path / "docs.png", DOCS_IMAGE)
    assert errors == []
