"""What the remote cache does when it is damaged or goes away: never trust a record
without its bytes, never buy because the cache could not be read."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.cli.exitcodes import ExitCode
from runner.engine.events import Event, EventKind
from runner.engine.retry import JobOutcome
from runner.sandbox import SandboxServer
from runner.team.records import INLINE_MAX_BYTES, blob_path, record_path
from tests.conftest import RemoteCacheSetup
from tests.engine.helpers import created, lockfile, provider_requests, run
from tests.services import TcpProxy
from tests.team.helpers import RemoteView, machine, outputs

# Three seconds of MP3 at 128 kb/s: too large to travel inline in its record, so a
# reader needs its blob.
LARGE = """
- id: thunder
  model: elevenlabs/sound-effect-v2
  input: {text: Rolling thunder, duration_seconds: 3}
"""


def _damage(view: RemoteView, key: str, how: str) -> None:
    record = view.record(key)
    assert record is not None and record.inline is None and record.size > INLINE_MAX_BYTES
    if how == "blob missing":
        view.delete(blob_path(record.sha256))
    elif how == "blob damaged":  # same size, other bytes: only the digest tells
        view.put(blob_path(record.sha256), b"\0" * record.size)
    else:
        view.put(record_path(key), b'{"layout": "v1", "key": "' + key.encode() + b'", trunc')


@pytest.mark.parametrize("how", ["blob missing", "blob damaged", "record damaged"])
def test_a_record_without_intact_bytes_is_a_miss_with_a_warning_then_repaired(
        how: str, tmp_path: Path, sandbox: SandboxServer,
        remote_cache: RemoteCacheSetup) -> None:
    a = machine(tmp_path, "a", LARGE)
    assert run(a, sandbox.url)[0] == ExitCode.OK
    key = lockfile(a)["thunder"]["key"]
    view = RemoteView()
    _damage(view, key, how)

    b = machine(tmp_path, "b", LARGE)
    code, _, result, tally = run(b, sandbox.url)
    assert code == ExitCode.OK
    assert result.outcomes == {"thunder": JobOutcome.DONE}  # bought: nothing usable
    assert created(sandbox.url) == 2
    expected = {"blob missing": "its bytes are missing", "blob damaged": "its bytes are "
                "damaged", "record damaged": "its record is damaged"}[how]
    assert any(expected in w and "counted as a miss" in w for w in tally.warnings), \
        tally.warnings
    assert any("this take replaced it" in w for w in tally.warnings), tally.warnings
    repaired = view.record(key)
    taken = lockfile(b)["thunder"]["sha256"]
    assert repaired is not None and repaired.sha256 == taken
    assert view.blob(taken) is not None

    c = machine(tmp_path, "c", LARGE)  # the next machine finds the repaired record
    code, _, result, _ = run(c, sandbox.url)
    assert code == ExitCode.OK and result.outcomes == {"thunder": JobOutcome.CACHED}
    assert created(sandbox.url) == 2
    assert outputs(c) == outputs(b)


def test_the_bytes_a_machine_pushes_repair_a_blob_lost_under_its_record(
        tmp_path: Path, sandbox: SandboxServer, remote_cache: RemoteCacheSetup) -> None:
    a = machine(tmp_path, "a", LARGE)
    assert run(a, sandbox.url)[0] == ExitCode.OK
    entry = lockfile(a)["thunder"]
    view = RemoteView()
    view.delete(blob_path(entry["sha256"]))
    from runner.cli.main import main

    assert main(["cache", "push", str(a), "--sandbox"]) == ExitCode.OK
    assert view.blob(entry["sha256"]) == (a.parent / "out.sandbox" / "thunder.mp3").read_bytes()


def test_a_remote_cache_that_stops_answering_mid_run_fails_the_jobs_and_buys_nothing(
        tmp_path: Path, sandbox: SandboxServer, remote_cache: RemoteCacheSetup,
        monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint_port = int(remote_cache.server.endpoint.rsplit(":", 1)[1])
    proxy = TcpProxy(endpoint_port)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{proxy.port}")
    manifest = machine(tmp_path, "a", """
        - id: step_{n}
          matrix: {n: [1, 2, 3, 4, 5]}
          model: elevenlabs/sound-effect-v2
          input: {text: "Step {n}", duration_seconds: 1}
    """)

    def cut_when_the_run_starts(event: Event) -> None:
        if event.kind is EventKind.RUN_STARTED:  # after the check at start-up, before lookups
            proxy.cut()

    code, _, result, tally = run(manifest, sandbox.url, observers=[cut_when_the_run_starts])
    assert code == ExitCode.JOBS_FAILED
    assert set(result.outcomes.values()) == {JobOutcome.FAILED}
    assert len(tally.failures) == 5
    for failure in tally.failures:
        assert failure.reason.startswith(f"remote cache {remote_cache.url} at "
                                         f"http://127.0.0.1:{proxy.port}: GET ac/v1/")
        assert "nothing was bought for this job" in failure.reason
        assert "--remote-cache-mode off" in failure.reason
    assert created(sandbox.url) == 0 and provider_requests(sandbox.url) == {}
    # The explicit way round buys them.
    code, _, result, _ = run(manifest, sandbox.url, remote_cache_mode="off")
    assert code == ExitCode.OK and created(sandbox.url) == 5


def test_a_missing_bucket_is_an_error_not_a_miss(
        tmp_path: Path, sandbox: SandboxServer, remote_cache: RemoteCacheSetup,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("RUNNER_REMOTE_CACHE", "s3://no-such-bucket/team")
    manifest = machine(tmp_path, "a", """
        - id: door
          model: elevenlabs/sound-effect-v2
          input: {text: Door creak, duration_seconds: 1}
    """)
    from runner.cli.main import main

    code = main(["run", str(manifest), "--sandbox-url", sandbox.url, "--no-progress"])
    assert code == ExitCode.JOBS_FAILED
    assert "the bucket 'no-such-bucket' does not exist" in capsys.readouterr().err
    assert created(sandbox.url) == 0
