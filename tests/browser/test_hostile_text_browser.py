"""Hostile text in a real headless Chromium: the report (from file://) and the review app
(over HTTP) show every string word for word, run none of it, and still work.

The build is tests/report/hostile.py's (made against the sandbox, a reviewer's note
through the review app's API). A `dialog` (what `alert` opens) or a page error
would mean some text ran as code.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runner.report.write import build_report
from runner.sandbox import SandboxConfig, SandboxServer
from tests.browser.chromium import ARGS, CHROMIUM, playwright_or_skip
from tests.conftest import FakeClock
from tests.report.hostile import (
    DESCRIPTION,
    NOTES,
    PROMPT,
    REVIEW_NOTE,
    make_hostile_build,
    reviewing,
)

pytestmark = pytest.mark.browser

sync_api = playwright_or_skip()


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    server = SandboxServer(SandboxConfig(clock=FakeClock()))
    server.start()
    try:
        yield make_hostile_build(tmp_path_factory.mktemp("hostile"), server.url)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def review_url(manifest: Path) -> Iterator[str]:
    with reviewing(manifest) as url:
        decided = httpx.post(f"{url}api/decide", json={
            "id": "bell#1", "decision": "rejected", "note": REVIEW_NOTE})
        assert decided.status_code == 200, decided.text
        yield url


@pytest.fixture(scope="module")
def report(manifest: Path, review_url: str) -> Path:
    return build_report(manifest, sandbox=True)  # after the reviewer's note


@pytest.fixture(scope="module")
def browser(report: Path, review_url: str) -> Iterator[Any]:
    """Started after the build: Playwright's sync API keeps an event loop of its own
    running in this thread, and the run needs its own."""
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def open_page(browser: Any, url: str) -> tuple[Any, list[str]]:
    """The page once ready, and what went wrong on the way (dialogs, errors)."""
    view = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    problems: list[str] = []
    view.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    view.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    view.on("console", lambda m: problems.append(f"console: {m.text}")
            if m.type == "error" else None)
    view.goto(url)
    view.wait_for_selector("body[data-ready='1']")
    return view, problems


def test_the_report_shows_it_and_runs_none_of_it(browser: Any, report: Path) -> None:
    view, problems = open_page(browser, report.as_uri())
    assert view.text_content("p.prompt") == PROMPT
    assert view.text_content("header p.muted") == DESCRIPTION
    assert NOTES in view.text_content("article.card dl.facts")
    assert REVIEW_NOTE in view.text_content("p.verdict")
    assert view.locator("article.card img, article.card svg, article.card b").count() == 0
    # Still works: the search finds the card by the hostile words, and hides it otherwise.
    view.fill("#search", "</script><script>")
    view.wait_for_function("() => document.querySelector('#shown').textContent"
                           ".startsWith('1 of 1')")
    view.fill("#search", "nothing like it")
    view.wait_for_function("() => !document.querySelector('#empty').hidden")
    view.fill("#search", "")
    view.wait_for_selector("article.card")
    assert problems == []


def test_the_review_app_shows_it_and_runs_none_of_it(browser: Any, review_url: str) -> None:
    view, problems = open_page(browser, review_url)
    view.click('.cell[data-id="bell#1"]')
    view.wait_for_function("() => document.querySelector('#d-title').textContent === 'bell#1'")
    view.wait_for_function("p => document.querySelector('#d-prompt').textContent === p",
                           arg=PROMPT)
    assert REVIEW_NOTE in view.text_content("#d-decision")
    assert view.locator("#detail img, #detail svg, #detail b, #list b").count() == 0
    # Still works: approve the other take with the keyboard.
    view.click('.cell[data-id="bell#2"]')
    view.keyboard.press("a")
    view.wait_for_function("() => document.querySelector('.cell[data-id=\"bell#2\"]')"
                           ".classList.contains('dec-approved')")
    assert problems == []
