"""`runner review` in a real headless Chromium, then `runner plan` and `runner run`.

A small build is made against a sandbox on 127.0.0.1 (the real CLI in a
subprocess); `runner review --sandbox` serves it (the real CLI again); Chromium,
driven by Playwright with the system browser, uses it with the keyboard only:
approve a take, reject one with a note, pick take 2 of another job, reload, and
the decisions are still there. Then `runner plan` lists the rejected job as
"rejected: new take", and `runner run` makes exactly one new request, for it
(counted by the sandbox itself), keeping the rejected take in the cache.

Skipped, saying why, without /usr/bin/chromium or the playwright package.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.sandbox import SandboxConfig, SandboxServer
from runner.store.cache import ContentCache
from tests.browser.chromium import ARGS, CHROMIUM, playwright_or_skip
from tests.conftest import FakeClock
from tests.engine.helpers import created, lockfile, write_manifest

ARTIFACTS = Path(__file__).parent / "artifacts"
DOCS_IMAGE = Path(__file__).parent.parent.parent / "docs/images/review.png"

pytestmark = pytest.mark.browser

sync_api = playwright_or_skip()

JOBS = """
- id: door
  model: elevenlabs/sound-effect-v2
  variants: 3
  output: sfx/door_{variant}.{ext}
  input: {text: "Old wooden door creaking open slowly", duration_seconds: 1.2}
- id: coin
  model: elevenlabs/sound-effect-v2
  input: {text: "Coin pickup sparkle", duration_seconds: 0.6}
- id: steps
  model: elevenlabs/sound-effect-v2
  variants: 2
  output: sfx/steps_{variant}.{ext}
  approved: game/steps.{ext}
  input: {text: "Footsteps on gravel", duration_seconds: 1.0}
"""


def runner_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runner", *args], capture_output=True,
                          text=True, timeout=240, check=False)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    server = SandboxServer(SandboxConfig(clock=FakeClock()))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory, sandbox: SandboxServer) -> Path:
    manifest = write_manifest(tmp_path_factory.mktemp("review"), JOBS)
    done = runner_cli("run", str(manifest), "--sandbox-url", sandbox.url, "--no-progress", "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    return manifest


@pytest.fixture(scope="module")
def server(build: Path) -> Iterator[str]:
    """`runner review FILE --sandbox` in a subprocess; its URL from the first line it prints."""
    proc = subprocess.Popen([sys.executable, "-m", "runner", "review", str(build), "--sandbox",
                             "--reviewer", "tester"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or ()],
                     daemon=True).start()
    try:
        first = lines.get(timeout=60)  # a hang guard: it prints as soon as it listens
        match = re.match(r"review: (http://127\.0\.0\.1:\d+/[\w-]{20,}/)$", first.strip())
        assert match, first
        yield match.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def page(server: str) -> Iterator[tuple[Any, list[str]]]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 850})
        view = context.new_page()
        errors: list[str] = []
        view.on("console", lambda m: errors.append(f"console: {m.text}")
                if m.type == "error" else None)
        view.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        view.on("request", lambda r: errors.append(f"non-local request: {r.url}")
                if not r.url.startswith(("http://127.0.0.1:", "data:")) else None)
        view.goto(server)
        view.wait_for_selector("body[data-ready='1']")
        yield view, errors
        context.close()
        browser.close()


def selected(view: Any) -> str:
    return str(view.get_attribute(".cell.sel", "data-id"))


def cell(view: Any, job_id: str) -> Any:
    return view.locator(f'.cell[data-id="{job_id}"]')


def wait_selected(view: Any, job_id: str) -> None:
    view.wait_for_function("id => { const c = document.querySelector('.cell.sel');"
                           " return c && c.dataset.id === id; }", arg=job_id)


def test_keyboard_review_survives_a_reload(page: tuple[Any, list[str]], build: Path) -> None:
    view, errors = page
    assert selected(view) == "door#1"
    view.keyboard.press("j")
    wait_selected(view, "door#2")
    view.keyboard.press("k")
    wait_selected(view, "door#1")

    view.keyboard.press("a")  # approve door#1: the cursor moves on to the next undecided take
    wait_selected(view, "door#2")
    assert "dec-approved" in (cell(view, "door#1").get_attribute("class") or "")

    view.keyboard.press("r")  # reject door#2, with a note
    view.wait_for_selector("#note-form:not([hidden])")
    view.keyboard.type("hinge too shrill")
    view.keyboard.press("Enter")
    wait_selected(view, "door#3")
    assert "dec-rejected" in (cell(view, "door#2").get_attribute("class") or "")

    view.keyboard.press("j")  # coin
    view.keyboard.press("j")  # steps#1
    wait_selected(view, "steps#1")
    view.keyboard.press("2")  # pick take 2 of steps
    view.wait_for_selector('.cell.chosen[data-id="steps#2"]')

    # What is on disk right now, before any reload: one line per decision, sorted.
    review = build.parent / "out.sandbox" / "t.review.jsonl"
    lines = [json.loads(line) for line in review.read_text().splitlines()]
    assert lines[0] == {"review": 1, "pipeline": "t"}
    decided = {(d["job"], d.get("decision"), d.get("pick"), d.get("note")) for d in lines[1:]}
    assert decided == {("door#1", "approved", None, None),
                       ("door#2", "rejected", None, "hinge too shrill"),
                       ("steps", None, 2, None), ("steps#2", "approved", None, None)}
    assert [d["job"] for d in lines[1:]] == sorted(d["job"] for d in lines[1:])
    assert all(d["by"] == "tester" for d in lines[1:])
    assert (build.parent / "out.sandbox" / "game" / "steps.mp3").is_file()  # approved: path

    view.reload()
    view.wait_for_selector("body[data-ready='1']")
    assert "dec-approved" in (cell(view, "door#1").get_attribute("class") or "")
    assert "dec-rejected" in (cell(view, "door#2").get_attribute("class") or "")
    assert cell(view, "door#2").get_attribute("title") == "door#2: hinge too shrill"
    assert "chosen" in (cell(view, "steps#2").get_attribute("class") or "")
    assert "chosen" not in (cell(view, "steps#1").get_attribute("class") or "")
    assert view.inner_text("#counts") == "2 approved · 1 rejected · 3 to review"
    cell(view, "door#2").click()
    view.wait_for_function("() => document.querySelector('#d-decision').textContent"
                           ".includes('hinge too shrill')")
    ARTIFACTS.mkdir(exist_ok=True)
    view.wait_for_function("() => document.querySelector('#d-facts').textContent"
                           ".includes('task')")  # the detail has loaded
    view.screenshot(path=str(ARTIFACTS / "review.png"))
    if os.environ.get("RUNNER_DOCS_SCREENSHOT"):
        shutil.copyfile(ARTIFACTS / "review.png", DOCS_IMAGE)
    assert errors == []


def test_space_plays_and_l_loops(page: tuple[Any, list[str]]) -> None:
    view, errors = page
    cell(view, "coin").click()
    wait_selected(view, "coin")
    view.wait_for_function("() => document.querySelector('#player').readyState >= 1")
    view.keyboard.press(" ")
    view.wait_for_function("() => !document.querySelector('#player').paused")
    view.keyboard.press(" ")
    view.wait_for_function("() => document.querySelector('#player').paused")
    view.keyboard.press("l")
    assert view.eval_on_selector("#player", "p => p.loop") is True
    assert view.inner_text("#d-loop") == "loop on"
    view.keyboard.press("l")
    assert view.eval_on_selector("#player", "p => p.loop") is False
    # The page states the duration before anything plays, and the player agrees.
    duration = view.eval_on_selector("#player", "p => p.duration")
    shown = float(cell(view, "coin").locator(".dur").inner_text().removesuffix(" s"))
    assert abs(duration - shown) < 0.15
    assert re.fullmatch(r"-?\d+\.\d LUFS · -?\d+\.\d dBTP",
                        cell(view, "coin").locator(".loud").inner_text())
    assert errors == []


def test_filters(page: tuple[Any, list[str]]) -> None:
    view, errors = page

    def rows() -> list[str]:
        return list(view.eval_on_selector_all(".row .gid", "ns => ns.map(n => n.textContent)"))

    view.select_option("#f-review", "rejected")
    assert rows() == ["door"] and view.inner_text("#shown") == "3 of 6 takes shown"
    view.select_option("#f-review", "unreviewed")
    assert rows() == ["door", "coin", "steps"]
    view.select_option("#f-review", "")
    view.fill("#search", "gravel")
    view.wait_for_function("() => document.querySelectorAll('.row').length === 1")
    assert rows() == ["steps"]
    view.fill("#search", "")
    view.wait_for_function("() => document.querySelectorAll('.row').length === 3")
    assert errors == []


def test_plan_then_one_new_request(page: tuple[Any, list[str]], build: Path,
                                   sandbox: SandboxServer) -> None:
    # Runs after the review above (tests of a module run in file order).
    before_lock = lockfile(build)
    plan = runner_cli("plan", str(build), "--sandbox")
    assert plan.returncode == 0, plan.stderr
    states = {line.split()[0]: line for line in plan.stdout.splitlines() if line}
    assert "rejected: new take" in states["door#2"]
    assert all("up to date" in states[j] for j in ("door#1", "door#3", "coin", "steps#1",
                                                   "steps#2"))
    assert "1 to generate" in plan.stdout

    before = created(sandbox.url)
    run = runner_cli("run", str(build), "--sandbox-url", sandbox.url, "--no-progress", "-q")
    assert run.returncode == 0, run.stdout + run.stderr
    assert created(sandbox.url) == before + 1  # exactly one new request
    assert "1 requests" in run.stdout
    after_lock = lockfile(build)
    assert after_lock["door#2"]["task_id"] != before_lock["door#2"]["task_id"]
    assert after_lock["door#2"]["sha256"] != before_lock["door#2"]["sha256"]  # a new take
    for job in ("door#1", "door#3", "coin", "steps#1", "steps#2"):
        assert after_lock[job] == before_lock[job]
    cache = ContentCache(build.parent / "out.sandbox" / ".runner" / "cache")
    assert cache.get(before_lock["door#2"]["sha256"], "mp3") is not None  # rejected take kept
    again = runner_cli("plan", str(build), "--sandbox")
    assert "0 to generate" in again.stdout  # the new take is unreviewed, not rejected
