"""Hostile text in every free-text field comes out of the report and the review app as
text: escaped in HTML, and inside `<script>` elements written so that nothing ends them.

The build is real (made against the sandbox; the reviewer's note goes through the
review app's own API); the pages are parsed with html.parser, as a browser would
build its document (tests/browser/test_hostile_text_browser.py runs them in one).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from runner.report.review_page import render
from runner.report.write import build_report
from runner.sandbox import SandboxConfig, SandboxServer
from tests.conftest import FakeClock
from tests.report.hostile import (
    DESCRIPTION,
    HOSTILE,
    NOTES,
    PROMPT,
    REVIEW_NOTE,
    make_hostile_build,
    reviewing,
)

OWN_SCRIPTS = 4  # the report's index, settings, script, and first part of cards


class Document(HTMLParser):
    """Elements, attributes and the text a reader sees (not the scripts' or style's)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.scripts: list[str] = []
        self._inside: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._inside = tag if tag in ("script", "style") else None

    def handle_endtag(self, tag: str) -> None:
        self._inside = None

    def handle_data(self, data: str) -> None:
        if self._inside == "script":
            self.scripts.append(data)
        elif self._inside is None:
            self.text.append(data)


def parse(page: str) -> Document:
    document = Document()
    document.feed(page)
    document.close()
    return document


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    server = SandboxServer(SandboxConfig(clock=FakeClock()))
    server.start()
    try:
        manifest = make_hostile_build(tmp_path_factory.mktemp("hostile"), server.url)
        with reviewing(manifest) as url:
            decided = httpx.post(f"{url}api/decide", json={
                "id": "bell#1", "decision": "rejected", "note": REVIEW_NOTE})
            assert decided.status_code == 200, decided.text
            answers = {"page": httpx.get(url), "assets": httpx.get(f"{url}api/assets"),
                       "detail": httpx.get(f"{url}api/detail", params={"id": "bell#1"})}
        report = build_report(manifest, sandbox=True)
        yield {"report": report, **answers}
    finally:
        server.stop()


def test_the_report_shows_hostile_text_as_text(built: dict[str, Any]) -> None:
    page = built["report"].read_text(encoding="utf-8")
    cards = json.loads(re.search(r"runnerReportPart\(0,(\[.*\])\);</script>", page,
                                 re.DOTALL).group(1))  # type: ignore[union-attr]
    assert len(cards) == 1
    # The document the page's script builds: the page, its card in <main>.
    document = parse(page.replace("</main>", cards[0] + "</main>", 1))
    tags = [tag for tag, _ in document.tags]
    assert tags.count("script") == OWN_SCRIPTS
    assert not {"img", "svg", "b", "i", "textarea"} & set(tags)
    assert not [(tag, name) for tag, attrs in document.tags for name in attrs
                if name.startswith("on")]
    shown = "".join(document.text)
    for text in (PROMPT, NOTES, DESCRIPTION, REVIEW_NOTE):
        assert text in shown  # word for word, as the person wrote it


def test_json_inside_the_report_cannot_end_its_script(built: dict[str, Any]) -> None:
    document = parse(built["report"].read_text(encoding="utf-8"))
    assert len(document.scripts) == OWN_SCRIPTS
    index, config, _, first_part = document.scripts
    for script in (index, config, first_part):
        assert "</" not in script and "<!--" not in script
    assert json.loads(config)["parts"] == "report.parts"
    (entry,) = json.loads(index)
    assert PROMPT.lower() in entry[3] and REVIEW_NOTE.lower() in entry[3]  # the search's
    assert first_part.startswith("runnerReportPart(0,")
    (card,) = json.loads(first_part.removeprefix("runnerReportPart(0,").removesuffix(");"))
    assert "<script" not in card and "&lt;/script&gt;&lt;script&gt;" in card


def test_the_review_app_answers_hostile_text_as_data(built: dict[str, Any]) -> None:
    for name in ("assets", "detail"):
        answer = built[name]
        assert answer.headers["content-type"].startswith("application/json")
        assert answer.headers["x-content-type-options"] == "nosniff"
    detail = built["detail"].json()
    assert detail["prompt"] == PROMPT
    (group,) = built["assets"].json()["groups"]
    assert group["prompt"] == PROMPT
    take = next(a for a in group["assets"] if a["id"] == "bell#1")
    assert take["note"] == REVIEW_NOTE and take["by"] == "<b>tester</b>"
    # The page holds nothing of the build: its script asks for it and shows it as text.
    page = built["page"].text
    assert not any(text in page for text in HOSTILE) and "tester" not in page
    assert len(parse(page).scripts) == 1


@pytest.mark.parametrize("title", ['</title><script>alert(1)</script>', '"quoted" & \'single\''])
def test_the_review_page_escapes_its_title(title: str) -> None:
    document = parse(render(title, "nonce-value"))
    assert [tag for tag, _ in document.tags].count("script") == 1
    assert f"review · {title}" in document.text and title in document.text  # title, h1
    assert ("script", {"nonce": "nonce-value"}) in document.tags

