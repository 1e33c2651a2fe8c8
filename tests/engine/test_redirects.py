"""Redirects of result URLs and API calls (issue 12, item 7), over real HTTP.

A result URL redirecting to `file://` or `ftp://` used to crash the whole run
(every run, since the next one fetched it again); the ElevenLabs `xi-api-key`
followed a redirect to any host; a public URL could lead into private address
space. The sandbox's `redirects` knob answers requests under a path prefix with
a redirect; a small recorder on another origin shows what a client sent there.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from runner.cli.exitcodes import ExitCode
from runner.engine.retry import JobOutcome
from runner.errors import DownloadRefused
from runner.providers.download import _next_hop, is_private
from runner.sandbox import SandboxServer
from tests.engine.helpers import (
    assert_audio,
    created,
    output,
    provider_requests,
    run,
    write_manifest,
)

JOBS = """
- id: hit_{n}
  matrix: {n: [1, 2, 3]}
  model: elevenlabs/sound-effect-v2
  input: {text: "Hit {n}", duration_seconds: 1}
"""


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/x.mp3"])
def test_a_redirect_to_another_scheme_fails_the_job_not_the_run(
        tmp_path: Path, sandbox: SandboxServer, target: str) -> None:
    sandbox.config.update({"redirects": {"/files/": target}})
    manifest = write_manifest(tmp_path, JOBS)
    code, _, result, tally = run(manifest, sandbox.url)
    assert code == ExitCode.JOBS_FAILED
    assert set(result.outcomes.values()) == {JobOutcome.FAILED}
    scheme = target.split(":")[0]
    for failure in tally.failures:
        assert failure.task_id and failure.task_id in failure.reason
        assert f"redirects to a '{scheme}:' URL; only http and https are followed" in \
            failure.reason
    # Not retried: a bad redirect stays bad. One download attempt per job.
    assert provider_requests(sandbox.url)["GET (no route)"] == {"302": 3}
    assert created(sandbox.url) == 3

    # The next run (the redirect gone) collects the same tasks: nothing bought again.
    sandbox.config.update({"redirects": {}})
    code, _, result, tally = run(manifest, sandbox.url)
    assert code == ExitCode.OK, tally.failures
    assert created(sandbox.url) == 3


def test_a_redirect_to_this_sandbox_under_another_name_is_followed(
        tmp_path: Path, sandbox: SandboxServer) -> None:
    """Loopback to loopback: the account itself is there, so private space is fine."""
    port = sandbox.url.rsplit(":", 1)[1]
    sandbox.config.update({"redirects": {"/files/": f"http://localhost:{port}{{path}}"}})
    manifest = write_manifest(tmp_path, JOBS)
    code, _, _result, tally = run(manifest, sandbox.url)
    assert code == ExitCode.OK, tally.failures
    for n in (1, 2, 3):
        assert_audio(output(manifest, f"hit_{n}.mp3"), "mp3_44100_128", min_s=0.9)


class Recorder(ThreadingHTTPServer):
    """Another origin: records the headers of every request, answers 401."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                recorder.seen.append({k.lower(): v for k, v in self.headers.items()})
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                body = b'{"detail": {"status": "invalid_api_key", "message": "no key"}}'
                self.send_response(401)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_the_elevenlabs_key_never_follows_a_redirect_to_another_host(
        tmp_path: Path, sandbox: SandboxServer, recorder: Recorder) -> None:
    port = recorder.server_address[1]
    sandbox.config.update({"redirects": {
        "/v1/sound-generation": f"http://localhost:{port}{{path}}"}})
    manifest = write_manifest(tmp_path, """
        - id: boom
          model: sound-generation
          input: {text: "A distant boom", duration_seconds: 1}
    """)
    code, _, result, _tally = run(manifest, sandbox.url)
    assert recorder.seen, "the 307 was not followed at all"
    for headers in recorder.seen:
        assert "xi-api-key" not in headers, headers
        assert "authorization" not in headers
    assert "sandbox-key-elevenlabs" not in repr(recorder.seen)
    assert result.outcomes["boom"] is not JobOutcome.DONE
    assert code != ExitCode.OK


def test_a_public_url_may_not_lead_into_private_address_space() -> None:
    async def hop(url: str, location: str, allow_private: bool = False) -> str:
        answer = httpx.Response(302, headers={"location": location})
        return await _next_hop(url, answer, allow_private=allow_private, job_id="j")

    async def scenario() -> None:
        public = "http://93.184.216.34/result.mp3"  # an address literal: no lookup needed
        for inside in ("http://127.0.0.1:8080/x", "http://10.1.2.3/x", "http://192.168.0.9/x",
                       "http://169.254.169.254/latest/meta-data", "http://[::1]/x",
                       "http://localhost/x", "http://[::ffff:127.0.0.1]/x"):
            with pytest.raises(DownloadRefused, match="into private address space"):
                await hop(public, inside)
            assert await hop(public, inside, allow_private=True) == inside
            assert await hop("http://127.0.0.1:9/a", inside) == inside  # already inside
        assert await hop(public, "/other.mp3") == "http://93.184.216.34/other.mp3"
        assert await hop(public, "https://8.8.8.8/x") == "https://8.8.8.8/x"
        with pytest.raises(DownloadRefused, match="'gopher:'"):
            await hop(public, "gopher://8.8.8.8/x", allow_private=True)
        assert await is_private("http://127.0.0.1:1/") and not await is_private(public)

    asyncio.run(scenario())


def test_an_api_call_redirected_to_another_scheme_fails_that_job(
        tmp_path: Path, sandbox: SandboxServer) -> None:
    sandbox.config.update({"redirects": {"/v1/sound-generation": "ftp://127.0.0.1/x"}})
    manifest = write_manifest(tmp_path, """
        - id: boom
          model: sound-generation
          input: {text: "A distant boom", duration_seconds: 1}
    """)
    code, _, result, tally = run(manifest, sandbox.url)
    assert code == ExitCode.JOBS_FAILED
    assert result.outcomes["boom"] is JobOutcome.FAILED
    [failure] = tally.failures
    assert "a redirect to a 'ftp:' URL; only http and https are followed" in failure.reason
    assert "sandbox-key-elevenlabs" not in failure.reason
