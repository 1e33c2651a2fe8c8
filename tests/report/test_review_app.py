"""The review server over a real socket: who may use it, and what it answers.

The server runs in a thread on 127.0.0.1 with a free port, over a build made
against the sandbox; requests are plain HTTP from httpx, as a browser (or an
attacker's page) would send them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runner.report.review_app import ReviewApp
from runner.report.review_session import ReviewSession
from runner.sandbox import SandboxServer
from tests.engine.helpers import run, write_manifest
from tests.report.helpers import serving

SECRET = "sk-live-0123456789abcdef"


@pytest.fixture
def app(tmp_path: Path, sandbox: SandboxServer,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, ReviewApp]]:
    manifest = write_manifest(tmp_path, f"""
        - id: bell
          model: elevenlabs/sound-effect-v2
          variants: 2
          output: bell_{{variant}}.{{ext}}
          input: {{text: Bell {SECRET}, duration_seconds: 1}}
        - id: beep
          model: elevenlabs/sound-effect-v2
          output: beep.wav
          input: {{text: Phone beep, duration_seconds: 1, output_format: ulaw_8000}}
    """)
    assert run(manifest, sandbox.url)[0] == 0
    monkeypatch.setenv("KIE_API_KEY", SECRET)  # a key, absurdly pasted into a prompt too
    review = ReviewApp(ReviewSession(manifest, sandbox=True, reviewer="t"))
    with serving(review) as url:
        yield url, review


def test_only_the_token_opens_it(app: tuple[str, ReviewApp]) -> None:
    url, review = app
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/[\w-]{32}/", url)
    base = url.rsplit("/", 2)[0]
    assert httpx.get(f"{base}/").status_code == 404
    assert httpx.get(f"{base}/{'x' * 32}/api/assets").status_code == 404
    assert httpx.get(f"{base}/{review.token[:-1]}/api/assets").status_code == 404
    assert httpx.get(f"{url}api/assets").status_code == 200
    assert httpx.get(url.rstrip("/"), follow_redirects=True).status_code == 200  # the page


def test_the_page_runs_under_a_strict_policy(app: tuple[str, ReviewApp]) -> None:
    url, review = app
    page = httpx.get(url)
    csp = page.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([\w-]+)'", csp)
    assert nonce and f'<script nonce="{nonce.group(1)}">' in page.text
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert page.headers["referrer-policy"] == "no-referrer"
    assert review.token not in page.text  # every URL in it is relative
    assert httpx.get(url).headers["content-security-policy"] != csp  # a nonce per page


def test_foreign_hosts_origins_and_bodies_are_refused(app: tuple[str, ReviewApp]) -> None:
    url, review = app
    port = url.split(":")[2].split("/")[0]
    rebound = httpx.get(f"{url}api/assets", headers={"Host": f"evil.example:{port}"})
    assert rebound.status_code == 421
    decide = f"{url}api/decide"
    body = {"id": "bell#1", "decision": "approved"}
    assert httpx.post(decide, json=body,
                      headers={"Origin": "http://evil.example"}).status_code == 403
    assert httpx.post(decide, content=b'{"id": "bell#1", "decision": "approved"}',
                      headers={"Content-Type": "text/plain"}).status_code == 415
    assert not review.session.review_file.exists()  # none of those wrote anything
    same_origin = httpx.post(decide, json=body, headers={"Origin": url.rsplit("/", 2)[0]})
    assert same_origin.status_code == 200
    assert same_origin.json()["asset"]["decision"] == "approved"


def test_bad_requests_say_what_is_wrong(app: tuple[str, ReviewApp]) -> None:
    url, _ = app
    wrong = httpx.post(f"{url}api/decide", json={"id": "bell#1", "decision": "maybe"})
    assert wrong.status_code == 400 and "unknown decision 'maybe'" in wrong.json()["error"]
    unknown = httpx.post(f"{url}api/pick", json={"group": "nope", "take": 1})
    assert unknown.status_code == 400 and "no job 'nope'" in unknown.json()["error"]
    many = httpx.post(f"{url}api/views", json={"ids": ["bell#1"] * 65})
    assert many.status_code == 400 and "at most 64" in many.json()["error"]
    not_json = httpx.post(f"{url}api/views", content=b"{",
                          headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400


def test_views_and_audio(app: tuple[str, ReviewApp]) -> None:
    url, _ = app
    views = httpx.post(f"{url}api/views", json={"ids": ["bell#1", "beep"]}).json()
    assert set(views) == {"bell#1", "beep"}
    assert len(views["bell#1"]["peaks"]) > 100 and abs(views["bell#1"]["d"] - 1.0) < 0.1
    assert views["bell#1"]["lufs"] < 0 and views["bell#1"]["tp"] <= 0
    assert views["beep"]["preview"]  # G.711: the player gets an MP3 preview
    part = httpx.get(f"{url}audio", params={"id": "bell#1"}, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100
    preview = httpx.get(f"{url}audio", params={"id": "beep"})
    assert preview.status_code == 200 and preview.content[:3] in (b"ID3", b"\xff\xfb")
    assert httpx.get(f"{url}audio", params={"id": "nope"}).status_code == 400


def test_configured_keys_never_reach_the_page(app: tuple[str, ReviewApp]) -> None:
    url, _ = app
    listing = httpx.get(f"{url}api/assets").text
    detail = httpx.get(f"{url}api/detail", params={"id": "bell#1"}).text
    assert SECRET not in listing + detail
    assert "[redacted]" in listing and "[redacted]" in detail
