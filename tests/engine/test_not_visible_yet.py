"""The market's documented `recordInfo is null` (issue 12, item 5).

A task just created may not be visible to recordInfo yet: the market answers
`{"code": 422, "msg": "recordInfo is null"}` (or a success with `data: null`).
That used to fail the job after it was paid for; a later run then bought it
again. The sandbox's `invisible_s` knob hides each new task that long (in
sandbox time: these tests use a sandbox on the real clock, and short windows).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.cli.exitcodes import ExitCode
from runner.engine.retry import JobOutcome
from runner.sandbox import SandboxConfig, SandboxServer
from runner.store.journal import Journal
from tests.engine.helpers import (
    created,
    lockfile,
    provider_requests,
    run,
    stats,
    write_manifest,
)

JOBS = """
- id: hit_{n}
  matrix: {n: [1, 2, 3, 4]}
  model: elevenlabs/sound-effect-v2
  input: {text: "Hit {n}", duration_seconds: 1}
"""


@pytest.fixture
def real_time_sandbox() -> SandboxServer:
    server = SandboxServer(SandboxConfig())
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("answer", ["422", "null"])
def test_a_task_not_visible_yet_is_polled_until_it_is(
        tmp_path: Path, real_time_sandbox: SandboxServer, answer: str) -> None:
    sandbox = real_time_sandbox
    sandbox.config.update({"invisible_s": 0.5, "invisible_answer": answer})
    manifest = write_manifest(tmp_path, JOBS)
    code, _, result, tally = run(manifest, sandbox.url)
    assert code == ExitCode.OK, tally.failures
    assert set(result.outcomes.values()) == {JobOutcome.DONE}
    assert created(sandbox.url) == 4  # nothing bought twice
    polls = provider_requests(sandbox.url)["GET /api/v1/jobs/recordInfo"]
    assert polls["200"] > 4  # the "not visible yet" answers were asked again
    if answer == "422":  # the market says it in the body, under HTTP 200
        assert stats(sandbox.url)["body_codes"]["GET /api/v1/jobs/recordInfo"]["422"] > 0
    assert len(lockfile(manifest)) == 4


def test_past_the_grace_period_the_task_is_reported_then_collected_by_the_next_run(
        tmp_path: Path, real_time_sandbox: SandboxServer) -> None:
    sandbox = real_time_sandbox
    sandbox.config.update({"invisible_s": 3600})
    manifest = write_manifest(tmp_path, JOBS)
    text = manifest.read_text().replace("poll: {initial_interval_s: 0.02, max_interval_s: 0.05}",
                                        "poll: {initial_interval_s: 0.02, max_interval_s: 0.05, "
                                        "visibility_grace_s: 0.5}", 1)
    manifest.write_text(text)
    code, _, result, tally = run(manifest, sandbox.url)
    assert code == ExitCode.JOBS_FAILED
    assert set(result.outcomes.values()) == {JobOutcome.UNCERTAIN}
    tasks = {f.job_id: f.task_id for f in tally.failures}
    for failure in tally.failures:
        assert failure.task_id and failure.task_id.startswith("task_")
        assert f"task {failure.task_id} was created, but the provider still has no record of " \
               "it 0.5 s later" in failure.reason
        assert f"--resubmit-uncertain {failure.job_id}" in failure.reason
        assert "run again to collect it" in failure.reason
    assert created(sandbox.url) == 4

    # The tasks become visible: the next run collects those very tasks, buying nothing.
    sandbox.config.update({"invisible_s": 0})
    code, _, result, tally = run(manifest, sandbox.url)
    assert code == ExitCode.OK, tally.failures
    assert created(sandbox.url) == 4
    assert {job: entry["task_id"] for job, entry in lockfile(manifest).items()} == tasks
    with Journal(tmp_path / "out.sandbox" / ".runner" / "journal.sqlite", readonly=True) as j:
        states = [r[0] for r in j.db.execute("SELECT state FROM tasks")]
    assert states == ["materialized"] * 4
