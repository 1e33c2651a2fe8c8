"""`runner run` against a misbehaving sandbox: every fault kind, one at a time and mixed.

Invariants checked everywhere: a request is never created twice behind the
user's back (each job's task count is one, plus one per generation failure),
every job ends done or with a reason that says what to do, and every output on
disk is complete audio matching the lockfile.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from runner.cli.exitcodes import ExitCode
from runner.engine.retry import JobOutcome
from runner.sandbox import SandboxServer
from tests.engine.helpers import assert_audio, lockfile, output, run, stats, write_manifest

JOBS = 12


def sfx_manifest(folder: Path, count: int = JOBS) -> Path:
    return write_manifest(folder, f"""
        - id: hit_{{n}}
          matrix: {{n: [{', '.join(str(i) for i in range(count))}]}}
          model: elevenlabs/sound-effect-v2
          input: {{text: "Impact number {{n}}", duration_seconds: 1}}
    """)


def assert_outputs_match_lock(manifest: Path) -> None:
    for job_id, entry in lockfile(manifest).items():
        path = output(manifest, entry["output"])
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"], job_id
        assert_audio(path, "mp3_44100_128", min_s=0.9)


def tasks_per_input(sandbox: SandboxServer) -> list[int]:
    return list(stats(sandbox.url)["tasks"]["by_input_hash"].values())


@pytest.mark.parametrize("fault", ["429", "455", "500", "truncate"])
def test_refusals_and_broken_downloads_are_retried_until_done(
        tmp_path: Path, sandbox: SandboxServer, fault: str) -> None:
    sandbox.config.update({"faults": f"{fault}=0.4", "seed": 7})
    manifest = sfx_manifest(tmp_path)
    code, _plan, _result, tally = run(manifest, sandbox.url)
    assert code == ExitCode.OK, tally.failures
    assert tally.outcomes[JobOutcome.DONE] == JOBS
    assert tally.retries > 0 and stats(sandbox.url)["faults"].get(fault, 0) > 0
    assert tasks_per_input(sandbox) == [1] * JOBS  # refused requests created nothing
    assert_outputs_match_lock(manifest)


def test_generation_failures_make_new_tasks_up_to_the_limit(
        tmp_path: Path, sandbox: SandboxServer) -> None:
    sandbox.config.update({"faults": "501=0.5", "seed": 3})
    manifest = sfx_manifest(tmp_path)
    code, _plan, result, tally = run(manifest, sandbox.url)
    failed = [f for f in tally.failures if result.outcomes[f.job_id] is JobOutcome.FAILED]
    assert all("generation failed" in f.reason for f in failed)
    assert code == (ExitCode.JOBS_FAILED if failed else ExitCode.OK)
    per_input = tasks_per_input(sandbox)
    # Done jobs took 1-3 tasks; failed ones exactly 3 (the first + 2 regenerations).
    assert sum(per_input) == JOBS + stats(sandbox.url)["faults"]["501"]
    assert max(per_input) <= 3 and per_input.count(3) >= len(failed)
    assert tally.outcomes[JobOutcome.DONE] + len(failed) == JOBS
    assert_outputs_match_lock(manifest)


@pytest.mark.parametrize("fault", ["drop", "slow"])
def test_an_unanswered_create_is_reported_never_resent(
        tmp_path: Path, sandbox: SandboxServer, fault: str) -> None:
    sandbox.config.update({"faults": f"{fault}=0.3", "seed": 11, "slow_response_s": 2.0})
    manifest = sfx_manifest(tmp_path)
    code, _plan, result, tally = run(manifest, sandbox.url, read_timeout_s=0.5)
    uncertain = [f for f in tally.failures if result.outcomes[f.job_id] is JobOutcome.UNCERTAIN]
    for failure in uncertain:
        assert f"--resubmit-uncertain {failure.job_id}" in failure.reason
    assert code == (ExitCode.JOBS_FAILED if uncertain else ExitCode.OK)
    assert max(tasks_per_input(sandbox)) == 1  # never sent twice
    assert_outputs_match_lock(manifest)
    # A second run does not resend them either: they stay uncertain until a person decides.
    sandbox.config.update({"faults": ""})
    code, _, result2, _ = run(manifest, sandbox.url)
    assert {j for j, o in result2.outcomes.items() if o is JobOutcome.UNCERTAIN} == \
        {f.job_id for f in uncertain}
    assert max(tasks_per_input(sandbox)) == 1
    if uncertain:  # ... and asking for it resends exactly those
        target = uncertain[0].job_id
        code, _, result3, _ = run(manifest, sandbox.url, resubmit_uncertain=[target])
        assert result3.outcomes[target] is JobOutcome.DONE


def test_mixed_faults(tmp_path: Path, sandbox: SandboxServer) -> None:
    sandbox.config.update({"faults": "429=0.1,455=0.05,500=0.05,501=0.1,truncate=0.1",
                           "seed": 5})
    manifest = sfx_manifest(tmp_path, 30)
    _code, _plan, _result, tally = run(manifest, sandbox.url)
    assert tally.outcomes[JobOutcome.DONE] + tally.outcomes[JobOutcome.FAILED] == 30
    assert all("generation failed" in f.reason for f in tally.failures)
    # One task per job, plus one per failed generation, except the last of a job that
    # failed three times (the third failure ends the job: no new task). Which job a
    # 501 strikes depends on timing, so a job failing three times happens (~1 in 30).
    failed_jobs = tally.outcomes[JobOutcome.FAILED]
    assert sum(tasks_per_input(sandbox)) == \
        30 + stats(sandbox.url)["faults"].get("501", 0) - failed_jobs
    assert_outputs_match_lock(manifest)


def test_out_of_credits_mid_run_stops_the_account(tmp_path: Path,
                                                  sandbox: SandboxServer) -> None:
    sandbox.config.update({"credits": 20})  # a few sound effects' worth
    manifest = sfx_manifest(tmp_path, 20)
    code, _plan, result, tally = run(manifest, sandbox.url)
    assert code == ExitCode.ACCOUNT_REFUSED
    assert "kie" in tally.stopped_accounts
    done = tally.outcomes[JobOutcome.DONE]
    assert 0 < done < 20
    skipped = [f for f in tally.failures if result.outcomes[f.job_id] is JobOutcome.SKIPPED]
    assert len(skipped) == 20 - done
    assert all("account 'kie'" in f.reason for f in skipped), skipped
    assert len(lockfile(manifest)) == done
    assert_outputs_match_lock(manifest)


def test_an_expired_result_url_is_refreshed(tmp_path: Path, sandbox: SandboxServer) -> None:
    sandbox.config.update({"faults": "expire=1.0"})
    manifest = sfx_manifest(tmp_path, 3)
    code, _plan, _result, tally = run(manifest, sandbox.url)
    assert code == ExitCode.OK, tally.failures
    requests = stats(sandbox.url)["requests"]
    assert requests["POST /api/v1/common/download-url"]["200"] == 3
    assert_outputs_match_lock(manifest)


def test_a_callback_driven_run(tmp_path: Path, sandbox: SandboxServer) -> None:
    sandbox.config.update({"faults": "callback_dup=0.5", "seed": 2})
    manifest = write_manifest(tmp_path, """
        - id: line_{n}
          matrix: {n: [1, 2, 3, 4, 5, 6]}
          model: elevenlabs/text-to-speech-turbo-2-5
          input: {text: "Callback line {n}."}
    """, extra="")
    text = manifest.read_text().replace("max_interval_s: 0.05", "max_interval_s: 30")
    manifest.write_text(text.replace("initial_interval_s: 0.02", "initial_interval_s: 30"))
    code, _plan, _result, tally = run(manifest, sandbox.url, callback_listen="127.0.0.1:0")
    assert code == ExitCode.OK, tally.failures
    sandbox_stats = stats(sandbox.url)
    assert sandbox_stats["callbacks"]["delivered"] >= 6
    # Every job heard of its result from a callback and confirmed it with one poll (the
    # callback is a hint, the provider's answer is what counts); the polling schedule
    # (every 30 s) never ran, and duplicated callbacks cost nothing more.
    assert sandbox_stats["requests"]["GET /api/v1/jobs/recordInfo"] == {"200": 6}


def test_a_budget_smaller_than_the_plan_stops_in_time(tmp_path: Path,
                                                      sandbox: SandboxServer) -> None:
    manifest = sfx_manifest(tmp_path, 60)  # 2 credits each: 120 planned
    # 50 tasks in flight at once: each reserves its cost before it is sent.
    text = manifest.read_text().replace("requests_per_window: 200, window_s: 1, polls_per_s: 500",
                                        "requests_per_window: 200, window_s: 1, polls_per_s: 500, max_in_flight: 50")
    manifest.write_text(text)
    code, plan, result, tally = run(manifest, sandbox.url, max_credits=31)
    assert plan.estimated_cost == 120
    assert code == ExitCode.JOBS_FAILED
    assert tally.budget_stop and "--max-credits 31" in tally.budget_stop
    done = tally.outcomes[JobOutcome.DONE]
    assert done == 15  # 15 x 2 = 30 fits, a 16th would make 32
    skipped = [f for f in tally.failures if result.outcomes[f.job_id] is JobOutcome.SKIPPED]
    assert len(skipped) == 45 and all("--max-credits 31" in f.reason for f in skipped)
    assert stats(sandbox.url)["credits_used"]["total"] <= 31
    assert stats(sandbox.url)["tasks"]["total"] == 15


def test_a_download_that_keeps_failing_says_how_often_it_was_tried(
        tmp_path: Path, sandbox: SandboxServer) -> None:
    """Every request a job repeats gives up with the policy's reason, which says how many
    attempts were made (submissions always did; a download said only its last error).
    The task stays in the journal: the next run collects it without a new request."""
    sandbox.config.update({"faults": "truncate=1.0"})
    manifest = sfx_manifest(tmp_path, 1)
    code, _plan, result, tally = run(manifest, sandbox.url)
    assert code == ExitCode.JOBS_FAILED and result.outcomes == {"hit_0": JobOutcome.FAILED}
    (failure,) = tally.failures
    assert failure.reason.startswith(f"download of task {failure.task_id}'s result: ")
    assert failure.reason.endswith("(gave up after 6 attempts)"), failure.reason
    assert stats(sandbox.url)["faults"]["truncate"] == 6
    sandbox.config.update({"faults": ""})
    code, _plan, result, tally = run(manifest, sandbox.url)
    assert code == ExitCode.OK and result.outcomes == {"hit_0": JobOutcome.DONE}
    assert tasks_per_input(sandbox) == [1]  # collected, not bought again
    assert_outputs_match_lock(manifest)


def test_an_upload_the_account_refuses_skips_the_job_as_a_refused_submission_does(
        tmp_path: Path, sandbox: SandboxServer) -> None:
    """A refused key stops the account wherever it is met first. Before any task exists
    (a submission, or the upload of a transcription's audio) nothing was bought, and the
    job runs once the account is fixed: skipped, with the same reason, not failed."""
    sandbox.config.update({"api_keys": ["someone-else's-key"]})
    audio = Path(__file__).parents[2] / "pipelines" / "audio" / "interview_harbour_master.mp3"
    (tmp_path / "take.mp3").write_bytes(audio.read_bytes())
    manifest = write_manifest(tmp_path, """
        - id: stt
          model: elevenlabs/speech-to-text
          audio: take.mp3
    """)
    code, _plan, result, tally = run(manifest, sandbox.url)
    assert code == ExitCode.ACCOUNT_REFUSED and "kie" in tally.stopped_accounts
    assert result.outcomes == {"stt": JobOutcome.SKIPPED}
    (failure,) = tally.failures
    assert failure.reason.startswith("not run: account 'kie' refused it ("), failure.reason
    assert stats(sandbox.url)["tasks"]["total"] == 0
