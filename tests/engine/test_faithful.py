"""`runner run` against every documented behaviour of the real APIs (the sandbox's quirks).

Every engine test runs against the faithful sandbox (the default: every quirk on at
its faithful rate). Here each quirk is forced to show on every answer where it can,
one at a time, over a batch that touches every provider, and the run must come out
whole: every job done, every output the audio asked for, nothing created twice, and
the credits the sandbox charged equal to the credits the lockfile records (nothing
paid for twice, no paid task reported failed). The sandbox's own tests
(tests/sandbox/test_quirks.py) prove each quirk shows on the wire.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from runner.audio.containers import parse_wav
from runner.cli.exitcodes import ExitCode
from runner.engine.retry import JobOutcome, RetryPolicy
from runner.sandbox import SandboxServer
from runner.sandbox.quirks import FAITHFUL, QUIRKS
from tests.engine.helpers import assert_audio, lockfile, output, run, stats, write_manifest

AUDIO = Path(__file__).parents[2] / "pipelines" / "audio" / "interview_harbour_master.mp3"

# Every provider and every shape a quirk can touch: market TTS on both hosts, market
# sound effects in an encoded and in the raw formats, a transcription of a job's
# result and of a local file (an upload), AI/ML API music, ElevenLabs direct (sound
# effects in raw PCM, speech in WAV).
BATCH = """
    - id: tts_{provider}
      matrix: {provider: [kie, apikley]}
      provider: "{provider}"
      model: elevenlabs/text-to-speech-turbo-2-5
      input: {text: "The harbour wakes at dawn for {provider}.", voice: Brian}
    - id: sfx_{fmt}
      matrix: {fmt: [mp3_44100_128, pcm_16000, ulaw_8000, alaw_8000]}
      model: elevenlabs/sound-effect-v2
      input: {text: "Rope creaking on a mooring post", duration_seconds: 1, output_format: "{fmt}"}
    - id: stt_job
      model: elevenlabs/speech-to-text
      audio: {from: tts_kie}
    - id: stt_file
      model: elevenlabs/speech-to-text
      audio: "recordings/harbour master (take 1).mp3"
    - id: music
      model: stable-audio
      input: {prompt: calm harp, seconds_total: 2, steps: 10}
    - id: direct_{n}
      matrix: {n: [1, 2, 3, 4]}
      model: sound-generation
      input: {text: "Gull cry number {n}", duration_seconds: 1, output_format: pcm_22050}
    - id: direct_tts
      model: text-to-speech
      input: {voice_id: JBFqnCBsd6RMkjVDRZzb, model_id: eleven_flash_v2_5,
              text: "Lines are cast at noon.", output_format: wav_22050}
"""
FORMATS = {"tts_kie": "mp3_44100_128", "tts_apikley": "mp3_44100_128",
           "sfx_mp3_44100_128": "mp3_44100_128", "sfx_pcm_16000": "pcm_16000",
           "sfx_ulaw_8000": "ulaw_8000", "sfx_alaw_8000": "alaw_8000", "music": "wav",
           "direct_tts": "wav_22050", **{f"direct_{n}": "pcm_22050" for n in range(1, 5)}}
# What else a quirk needs in order to show: errors for the error shapes, failed
# generations for the failure fields, more ElevenLabs requests at once than the plan
# allows for the concurrency 429.
# The market's error answers must not depend on which provider the random faults
# happen to strike (with faults alone, often no market request met one): a rate limit
# of 3 per second on kie's key makes its six jobs, sent at once, meet 429s for certain,
# and retries patient enough for a one-second window get them through (the window runs
# on the real clock: the fixture's clock stands still).
NEEDS: dict[str, dict[str, Any]] = {
    "market_error_status": {"faults": "429=0.15,455=0.1,500=0.1", "seed": 4,
                            "rate_limit": "kie=3/1"},
    "market_fail_fields": {"faults": "501=0.2", "seed": 8},
    "elevenlabs_legacy_429": {"max_concurrent": 1},
}


PATIENT_RETRIES = RetryPolicy(base_delay_s=0.3, max_delay_s=1.5)


def hold_until_refused(sandbox: SandboxServer) -> Callable[[float], Awaitable[None]]:
    """A sandbox `sleep` that holds an ElevenLabs generation until a concurrent one has been
    refused (a 429 did show), so the refusal does not depend on thread timing; the
    deadline is a hang guard only."""
    async def hold(seconds: float) -> None:
        stats = sandbox.sandbox.state.stats
        for _ in range(2000):
            if stats.quirks["elevenlabs_legacy_429"]:
                return
            await asyncio.sleep(0.005)

    return hold


def batch(folder: Path) -> Path:
    recordings = folder / "recordings"
    recordings.mkdir()
    (recordings / "harbour master (take 1).mp3").write_bytes(AUDIO.read_bytes())
    return write_manifest(folder, BATCH)


def assert_whole(manifest: Path, sandbox: SandboxServer, result: Any, tally: Any) -> None:
    """Every job done (or, only with injected generation failures, failed after its
    regenerations, having paid nothing), every output verified, each request created
    once (or once more per failed generation), the credits charged the credits recorded."""
    lock = lockfile(manifest)
    failed = {f.job_id: f.reason for f in tally.failures}
    assert set(result.outcomes.values()) <= {JobOutcome.DONE, JobOutcome.FAILED}
    assert all("generation failed" in reason for reason in failed.values()), failed
    assert set(lock) == {j for j, o in result.outcomes.items() if o is JobOutcome.DONE}
    for job_id, fmt in FORMATS.items():
        if job_id in lock:
            assert_audio(output(manifest, lock[job_id]["output"]), fmt, min_s=0.9)
    for job_id in {"stt_job", "stt_file"} & set(lock):
        assert output(manifest, f"{job_id}.txt").read_text().strip()
    if "stt_job" in lock:
        assert "harbour wakes at dawn for kie" in output(manifest, "stt_job.txt").read_text(
        ).lower()
    sandbox_stats = stats(sandbox.url)
    failed_generations = sandbox_stats["faults"].get("501", 0)
    assert sum(sandbox_stats["tasks"]["by_input_hash"].values()) == len(lock) + failed_generations
    if not failed_generations:
        assert not failed
    # Failed generations cost nothing; every credit charged is one the lockfile records.
    charged = sandbox_stats["credits_used"]["total"]
    recorded = sum(entry["credits"] or 0 for entry in lock.values())
    assert math.isclose(charged, recorded, abs_tol=1e-6), (charged, recorded)


def test_the_engine_runs_against_the_faithful_sandbox(sandbox: SandboxServer) -> None:
    """The fixture every engine test uses is the faithful mode: every quirk on."""
    assert sandbox.config.quirks == FAITHFUL
    assert all(rate > 0 for rate in FAITHFUL.values()) and set(FAITHFUL) == set(QUIRKS)
    assert sandbox.config.elevenlabs_plan == "creator" and sandbox.upload_url


def test_a_batch_against_the_faithful_defaults(tmp_path: Path, sandbox: SandboxServer) -> None:
    manifest = batch(tmp_path)
    code, _plan, result, tally = run(manifest, sandbox.url)
    assert code == ExitCode.OK, tally.failures
    assert_whole(manifest, sandbox, result, tally)
    shown = stats(sandbox.url)["quirks"]
    # The ones a plain batch meets without errors or contention, all showed.
    assert {"market_message_key", "market_fail_fields", "market_result_object_null",
            "market_record_id", "market_upload_host"} <= set(shown), shown


@pytest.mark.parametrize("quirk", sorted(QUIRKS))
def test_each_quirk_forced_on_every_answer(tmp_path: Path, sandbox: SandboxServer,
                                           quirk: str) -> None:
    sandbox.config.update({"quirks": f"{quirk}=1", **NEEDS.get(quirk, {})})
    if quirk == "elevenlabs_legacy_429":
        sandbox.config.sleep = hold_until_refused(sandbox)
    manifest = batch(tmp_path)
    patient = {}
    if "rate_limit" in NEEDS.get(quirk, {}):
        sandbox.config.clock = time.time
        patient = {"retry_policy": PATIENT_RETRIES}
    code, _plan, result, tally = run(manifest, sandbox.url, **patient)
    # Only injected generation failures may fail a job (after its two regenerations).
    assert code == (ExitCode.JOBS_FAILED if tally.failures else ExitCode.OK), tally.failures
    assert stats(sandbox.url)["quirks"].get(quirk, 0) > 0  # it did show
    assert_whole(manifest, sandbox, result, tally)


def served_files(sandbox: SandboxServer) -> dict[str, bytes]:
    """sha256 -> bytes of every result file the sandbox served, by its result URLs."""
    out = {}
    for task in sandbox.sandbox.state.tasks.values():
        for url in (task.result or {}).get("resultUrls") or []:
            data = httpx.get(url).content
            out[hashlib.sha256(data).hexdigest()] = data
    return out


# pcm_48000 for 3 s is larger than the download buffer: the streamed-to-file path.
@pytest.mark.parametrize(("fmt", "seconds"), [("pcm_16000", 1), ("ulaw_8000", 1),
                                              ("alaw_8000", 1), ("pcm_48000", 3)])
def test_a_raw_result_that_comes_as_wav_is_not_wrapped_again(
        tmp_path: Path, sandbox: SandboxServer, fmt: str, seconds: int) -> None:
    sandbox.config.update({"quirks": "market_raw_as_wav=1"})
    manifest = write_manifest(tmp_path, f"""
        - id: splash
          model: elevenlabs/sound-effect-v2
          input: {{text: "Splash", duration_seconds: {seconds}, output_format: {fmt}}}
    """)
    code, _plan, _result, tally = run(manifest, sandbox.url)
    assert code == ExitCode.OK, tally.failures
    written = output(manifest, "splash.wav").read_bytes()
    layout = parse_wav(written)
    assert written[layout.data_offset:layout.data_offset + 4] != b"RIFF"  # one header only
    # Kept exactly as the provider sent it: a WAV already is what the runner writes.
    assert hashlib.sha256(written).hexdigest() in served_files(sandbox)
    assert lockfile(manifest)["splash"]["sha256"] == hashlib.sha256(written).hexdigest()
    assert_audio(output(manifest, "splash.wav"), fmt, min_s=0.9)


def test_uploads_go_to_their_own_host(tmp_path: Path, sandbox: SandboxServer) -> None:
    """The API host refuses uploads (market_upload_host); two local files of the same name
    in different folders each get transcribed, not one twice (a reused upload name
    overwrites); names that need percent-encoding survive the round trip."""
    for folder, text in (("monday", "Monday"), ("tuesday", "Tuesday")):
        (tmp_path / folder).mkdir()
        speech = httpx.post(f"{sandbox.url}/v1/text-to-speech/JBFqnCBsd6RMkjVDRZzb",
                            headers={"xi-api-key": "k"},
                            json={"text": f"Notes for {text} morning."})
        (tmp_path / folder / "notes #1 (ß).mp3").write_bytes(speech.content)
    sandbox.sandbox.reset()
    manifest = write_manifest(tmp_path, """
        - id: stt_{day}
          matrix: {day: [monday, tuesday]}
          model: elevenlabs/speech-to-text
          audio: "{day}/notes #1 (ß).mp3"
    """)
    code, _plan, _result, tally = run(manifest, sandbox.url)
    assert code == ExitCode.OK, tally.failures
    assert "monday morning" in output(manifest, "stt_monday.txt").read_text().lower()
    assert "tuesday morning" in output(manifest, "stt_tuesday.txt").read_text().lower()
    requests = stats(sandbox.url)["requests"]
    assert requests["uploads: POST /api/file-stream-upload"] == {"200": 2}
    assert "POST /api/file-stream-upload" not in requests  # never the API host
    uploads = [f for f in sandbox.sandbox.media.files.values() if f.owner]
    assert len(uploads) == 2 and all("%" not in f.name and "#" in f.name for f in uploads)


def test_elevenlabs_credits_follow_the_character_cost_header(
        tmp_path: Path, sandbox: SandboxServer) -> None:
    """Flash/Turbo bill half a credit per character: the lockfile records what was billed."""
    text = "Forty-one characters of speech, exactly!"
    manifest = write_manifest(tmp_path, f"""
        - id: line_{{model}}
          matrix: {{model: [eleven_flash_v2_5, eleven_multilingual_v2]}}
          model: text-to-speech
          input: {{voice_id: JBFqnCBsd6RMkjVDRZzb, model_id: "{{model}}", text: "{text}"}}
    """)
    code, _plan, _result, tally = run(manifest, sandbox.url)
    assert code == ExitCode.OK, tally.failures
    lock = lockfile(manifest)
    assert lock["line_eleven_flash_v2_5"]["credits"] == math.ceil(len(text) / 2)
    assert lock["line_eleven_multilingual_v2"]["credits"] == len(text)
    assert stats(sandbox.url)["credits_used"]["elevenlabs"] == math.ceil(len(text) / 2) + len(text)



@pytest.mark.parametrize(("provider", "model", "inputs", "credits"), [
    ("kie", "elevenlabs/sound-effect-v2", '{text: "Bell {n}", duration_seconds: 1}', 5),  # 402
    ("aimlapi", "stable-audio", '{prompt: "Harp {n}", seconds_total: 1, steps: 10}', 6000),  # 403
    ("elevenlabs", "sound-generation", '{text: "Bell {n}", duration_seconds: 1}', 60),  # 401
])
def test_running_out_of_credits_stops_the_account(tmp_path: Path, sandbox: SandboxServer,
                                                  provider: str, model: str, inputs: str,
                                                  credits: int) -> None:
    """Each provider's way of saying "out of credits" (market body code 402, AI/ML API 403,
    ElevenLabs 401 quota_exceeded) stops the account; what was paid for is kept."""
    sandbox.config.update({"credits": credits})
    manifest = write_manifest(tmp_path, f"""
        - id: job_{{n}}
          matrix: {{n: [1, 2, 3, 4, 5, 6]}}
          model: {model}
          input: {inputs}
    """)
    code, _plan, result, tally = run(manifest, sandbox.url)
    assert code == ExitCode.ACCOUNT_REFUSED and provider in tally.stopped_accounts
    done = [job for job, outcome in result.outcomes.items() if outcome is JobOutcome.DONE]
    assert len(done) == 2
    assert {o for o in result.outcomes.values()} == {JobOutcome.DONE, JobOutcome.SKIPPED}
    lock = lockfile(manifest)
    assert sorted(lock) == sorted(done)
    charged = stats(sandbox.url)["credits_used"]["total"]
    assert math.isclose(charged, sum(entry["credits"] for entry in lock.values()))


def test_the_upload_base_url_can_still_be_overridden(tmp_path: Path, sandbox: SandboxServer,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """RUNNER_KIE_UPLOAD_BASE_URL wins over the sandbox's upload host (here: the API host,
    which takes uploads once the quirk that refuses them there is off)."""
    sandbox.config.update({"quirks": "market_upload_host=0"})
    monkeypatch.setenv("RUNNER_KIE_UPLOAD_BASE_URL", sandbox.url)
    (tmp_path / "take.mp3").write_bytes(AUDIO.read_bytes())
    manifest = write_manifest(tmp_path, """
        - id: stt
          model: elevenlabs/speech-to-text
          audio: take.mp3
    """)
    code, _plan, _result, tally = run(manifest, sandbox.url)
    assert code == ExitCode.OK, tally.failures
    requests = stats(sandbox.url)["requests"]
    assert requests["POST /api/file-stream-upload"] == {"200": 1}
    assert "uploads: POST /api/file-stream-upload" not in requests
