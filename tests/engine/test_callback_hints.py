"""A callback is a hint (issue 12, item 2), against the sandbox over real HTTP.

Anyone who learns the callback URL can POST to it. A forged "success" used to be
stored as the job's result, and a forged "fail" made the runner buy a new task.
Now a callback only wakes the job, which asks the provider and records what the
provider says. The receiver serves the path of `--callback-url`, caps bodies,
checks signatures against the exact task named, and counts what it refuses.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
from pathlib import Path

import httpx
import pytest

from runner.cli.exitcodes import ExitCode
from runner.cli.main import main
from runner.engine.callbacks import MAX_BODY_BYTES, CallbackHub
from runner.engine.retry import JobOutcome
from runner.providers.http import make_client
from runner.providers.market import MarketAdapter
from runner.sandbox import SandboxServer
from tests.conftest import FakeClock
from tests.engine.helpers import created, lockfile, run, stats, write_manifest
from tests.providers.mock import account

SLOW_POLLS = """
providers:
  kie:
    poll: {initial_interval_s: 600, max_interval_s: 600}
    limits: {requests_per_window: 200, window_s: 1, polls_per_s: 500}
"""


def one_job(tmp_path: Path, extra: str = SLOW_POLLS) -> Path:
    manifest = write_manifest(tmp_path, """
        - id: gong
          model: elevenlabs/sound-effect-v2
          input: {text: "A temple gong", duration_seconds: 1}
    """)
    text = manifest.read_text()
    header, _, jobs = text.partition("jobs:\n")
    # The polls of FAST are replaced: the only way to hear of the task is a callback.
    header = header.split("providers:")[0] + extra.strip() + "\n"
    manifest.write_text(header + "jobs:\n" + jobs)
    return manifest


def record_info_polls(url: str) -> int:
    return int(sum(stats(url)["requests"].get("GET /api/v1/jobs/recordInfo", {}).values()))


def forged(task_id: str, state: str, result_url: str | None = None) -> bytes:
    data: dict[str, object] = {"taskId": task_id, "state": state, "param": "{}",
                               "consumeCredits": 1}
    if result_url is not None:
        data["resultJson"] = json.dumps({"resultUrls": [result_url]})
    if state == "fail":
        data.update(failCode="500", failMsg="forged failure")
    return json.dumps({"code": 200 if state == "success" else 501, "msg": "forged",
                       "data": data}).encode()


def test_forged_callbacks_are_confirmed_with_the_provider_never_believed(
        tmp_path: Path, sandbox: SandboxServer, fake_clock: FakeClock) -> None:
    sandbox.config.update({"latency": 100})  # sandbox time: pending until the test moves it
    manifest = one_job(tmp_path)
    attack: dict[str, object] = {}

    def attacker() -> None:
        state = sandbox.sandbox.state  # type: ignore[union-attr]
        deadline = time.monotonic() + 60
        while not state.tasks and time.monotonic() < deadline:
            time.sleep(0.02)
        (task,) = state.tasks.values()
        assert task.callback_url  # what someone who learnt the URL knows
        answers = [httpx.post(task.callback_url, content=forged(
            task.task_id, "success", "http://127.0.0.1:9/evil.mp3")).status_code]
        while record_info_polls(sandbox.url) < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        answers.append(httpx.post(task.callback_url,
                                  content=forged(task.task_id, "fail")).status_code)
        while record_info_polls(sandbox.url) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        attack["answers"], attack["polls"] = answers, record_info_polls(sandbox.url)
        fake_clock.advance(101)  # the task really finishes; the sandbox calls back

    thread = threading.Thread(target=attacker)
    thread.start()
    code, _plan, result, tally = run(manifest, sandbox.url, callback_listen="127.0.0.1:0")
    thread.join(timeout=60)
    assert attack["answers"] == [200, 200]  # well-formed hints, so acknowledged
    # Each forged callback cost one poll, which said "still running": nothing recorded.
    assert attack["polls"] == 2
    assert code == ExitCode.OK and result.outcomes["gong"] is JobOutcome.DONE, tally.failures
    assert created(sandbox.url) == 1  # the forged failure bought no new task
    entry = lockfile(manifest)["gong"]
    assert entry["result_url"].startswith(sandbox.url + "/files/")  # the provider's file
    assert record_info_polls(sandbox.url) == 3  # and the real callback was confirmed too


def test_a_callback_url_with_a_path_is_served_at_that_path(
        tmp_path: Path, sandbox: SandboxServer) -> None:
    """`--callback-url https://host/kie`: every callback used to get 404 and the run
    fell back to polling without a word."""
    manifest = write_manifest(tmp_path, """
        - id: line_{n}
          matrix: {n: [1, 2, 3, 4]}
          model: elevenlabs/text-to-speech-turbo-2-5
          input: {text: "Callback line {n}."}
    """)
    manifest.write_text(manifest.read_text().replace(
        "poll: {initial_interval_s: 0.02, max_interval_s: 0.05}",
        "poll: {initial_interval_s: 20, max_interval_s: 20}", 1))
    code, _plan, _result, tally = run(manifest, sandbox.url, callback_url="http://127.0.0.1:0/kie",
                                    callback_listen="127.0.0.1:0")
    assert code == ExitCode.OK, tally.failures
    callbacks = stats(sandbox.url)["callbacks"]
    assert callbacks.get("delivered") == 4 and "failed" not in callbacks, callbacks
    assert record_info_polls(sandbox.url) == 4  # one confirming poll per task
    assert not tally.warnings
    url = sandbox.sandbox.state.tasks[next(iter(sandbox.sandbox.state.tasks))].callback_url  # type: ignore[union-attr]
    assert url is not None and "/kie/" in url


@pytest.mark.parametrize("bad", ["http://127.0.0.1:8080/hook?token=1", "ftp://host/hook",
                                 "https:///nohost", "http://host/hook#frag"])
def test_an_unusable_callback_url_is_refused_at_start(
        tmp_path: Path, sandbox: SandboxServer, bad: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, """
        - id: gong
          model: elevenlabs/sound-effect-v2
          input: {text: "A temple gong", duration_seconds: 1}
    """)
    assert main(["run", str(manifest), "--sandbox-url", sandbox.url, "--no-progress",
                 "--callback-url", bad]) == ExitCode.INVALID
    assert "--callback-url" in capsys.readouterr().err
    assert created(sandbox.url) == 0


KEY = "whk-callback-key"


def signed(task_id: str, at: float) -> dict[str, str]:
    stamp = str(int(at))
    digest = hmac.new(KEY.encode(), f"{task_id}.{stamp}".encode(), hashlib.sha256).digest()
    return {"X-Webhook-Timestamp": stamp, "X-Webhook-Signature": base64.b64encode(digest).decode()}


def test_the_receiver_caps_checks_and_counts_what_it_refuses() -> None:
    async def scenario() -> tuple[list[int], CallbackHub, bool, bool]:
        async with make_client() as client:
            adapter = MarketAdapter(account("kie"), "k", client, webhook_hmac_key=KEY)
            hub = CallbackHub("http://127.0.0.1:0/hooks/kie", "127.0.0.1:0", [adapter])
            await hub.start()
            try:
                waiter = hub.waiter("t-mine", adapter)
                base = f"http://127.0.0.1:{hub.port}/hooks/kie"
                now = time.time()
                body = json.dumps({"code": 200, "data": {"taskId": "t-mine",
                                                         "state": "success"}}).encode()
                two = json.dumps({"code": 200, "data": {"taskId": "t-mine",
                                                        "task_id": "t-attacker"}}).encode()
                statuses = []
                async with httpx.AsyncClient() as http:
                    for url, content, headers in [
                        (f"{base}/wrong-secret", body, signed("t-mine", now)),
                        (f"http://127.0.0.1:{hub.port}/{hub.secret}", body,
                         signed("t-mine", now)),  # the secret, but not under the path
                        (f"{base}/{hub.secret}", b"x" * (MAX_BODY_BYTES + 1), {}),
                        (f"{base}/{hub.secret}", b"{not json", {}),
                        (f"{base}/{hub.secret}", body, {}),  # unsigned
                        (f"{base}/{hub.secret}", two, signed("t-attacker", now)),
                        (f"{base}/{hub.secret}", body, signed("t-other", now)),
                    ]:
                        statuses.append((await http.post(url, content=content,
                                                         headers=headers)).status_code)
                    rang_before = waiter.event.is_set()
                    statuses.append((await http.post(f"{base}/{hub.secret}", content=body,
                                                     headers=signed("t-mine", now))).status_code)
                rang = await waiter.wait(5)
            finally:
                await hub.stop()
        return statuses, hub, rang_before, rang

    statuses, hub, rang_before, rang = asyncio.run(scenario())
    assert statuses == [403, 404, 413, 400, 400, 400, 400, 200]
    assert not rang_before and rang  # only the good one woke the job
    assert hub.received == 1
    assert hub.refused == {"wrong secret": 1, "wrong path": 1, "too large": 1,
                           "malformed or badly signed": 4}
    line = hub.describe_refused()
    assert line is not None and line.startswith("7 callback(s) refused")
    assert "/hooks/kie/<secret>" in line
