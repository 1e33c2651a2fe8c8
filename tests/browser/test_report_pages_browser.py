"""A report of more cards than one page holds, in a real headless Chromium from file://.

The build is made without a run (runner.testing.fake_build: 130 jobs of two takes,
outputs hard-linked to two real MP3s). The page holds the first part of cards;
the others load from report.parts/ as the pages, the filters or a link ask for
them: no request fails, and nothing leaves file://.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from audiogen import make

from runner.report.page import PAGE_CARDS
from runner.report.write import build_report
from runner.testing.fake_build import make_fake_build
from tests.browser.chromium import ARGS, CHROMIUM, playwright_or_skip

JOBS = 130

pytestmark = pytest.mark.browser

sync_api = playwright_or_skip()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pages")
    sources = [make(root / "a.mp3", "mp3_44100_128", [("tone:440", 0.5)]),
               make(root / "b.mp3", "mp3_44100_128", [("tone:660", 0.4)])]
    return build_report(make_fake_build(root / "build", jobs=JOBS, variants=2,
                                        sources=sources))


@pytest.fixture(scope="module")
def page(report: Path) -> Iterator[tuple[Any, list[str]]]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        view = context.new_page()
        errors: list[str] = []
        view.on("console", lambda m: errors.append(f"console: {m.text}")
                if m.type == "error" else None)
        view.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        view.on("requestfailed", lambda r: errors.append(f"failed: {r.url} {r.failure}")
                if r.failure != "net::ERR_ABORTED" else None)
        view.on("request", lambda r: errors.append(f"non-local request: {r.url}")
                if not r.url.startswith(("file:", "data:")) else None)
        view.goto(report.as_uri())
        view.wait_for_selector("body[data-ready='1']")
        yield view, errors
        context.close()
        browser.close()


def cards(view: Any) -> list[str]:
    return list(view.eval_on_selector_all("article.card", "cs => cs.map(c => c.id)"))


def test_pages_load_their_parts(page: tuple[Any, list[str]], report: Path) -> None:
    view, errors = page
    assert len(cards(view)) == PAGE_CARDS
    assert view.inner_text("#shown") == f"{JOBS} of {JOBS} shown · page 1 of 3"
    view.click("nav.pager >> nth=0 >> text=Next ›")
    view.wait_for_function("() => document.querySelector('#shown').textContent"
                           ".endsWith('page 2 of 3')")
    assert cards(view)[0] == "card-job-sfx_050"
    view.click("nav.pager >> nth=0 >> text=Next ›")
    view.wait_for_function("() => document.querySelector('#shown').textContent"
                           ".endsWith('page 3 of 3')")
    assert cards(view) == [f"card-job-sfx_{n:03d}" for n in range(100, JOBS)]
    assert view.eval_on_selector_all("audio", "as => as.length") == 2 * (JOBS - 100)
    assert errors == []


def test_search_and_links_reach_any_page(page: tuple[Any, list[str]]) -> None:
    view, errors = page
    view.fill("#search", "sfx_127")
    view.wait_for_function("() => document.querySelectorAll('article.card').length === 1")
    assert cards(view) == ["card-job-sfx_127"]
    view.fill("#search", "")
    view.wait_for_function(f"() => document.querySelectorAll('article.card').length === "
                           f"{PAGE_CARDS}")
    assert cards(view)[0] == "card-job-sfx_000"
    # A link to a take on the last page shows that page and scrolls to it.
    view.evaluate("location.hash = '#job-sfx_121~232'")
    view.wait_for_selector('[id="job-sfx_121~232"]')
    assert view.inner_text("#shown").endswith("page 3 of 3")
    assert view.eval_on_selector('[id="job-sfx_121~232"]',
                                 "e => e.getBoundingClientRect().top < innerHeight")
    assert errors == []
