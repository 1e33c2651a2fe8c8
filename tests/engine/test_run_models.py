"""`runner run` against the sandbox over real HTTP: every model through every provider."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runner.sandbox import SandboxServer
from tests.engine.helpers import (
    assert_audio,
    created,
    lockfile,
    output,
    provider_requests,
    run,
    stats,
    write_manifest,
)

AUDIO = Path(__file__).parents[2] / "pipelines" / "audio" / "interview_harbour_master.mp3"


def test_every_model_through_every_provider(tmp_path: Path, sandbox: SandboxServer) -> None:
    (tmp_path / "rec.mp3").write_bytes(AUDIO.read_bytes())
    manifest = write_manifest(tmp_path, """
        - id: tts_{provider}
          matrix: {provider: [kie, apikley]}
          provider: "{provider}"
          model: elevenlabs/text-to-speech-turbo-2-5
          input: {text: "The keep gates open at dawn for {provider}.", voice: Brian}
        - id: sfx_{provider}
          matrix: {provider: [kie, apikley]}
          provider: "{provider}"
          model: elevenlabs/sound-effect-v2
          input: {text: "Door creak ({provider})", duration_seconds: 1.5,
                  output_format: opus_48000_64}
        - id: stt_{provider}
          matrix: {provider: [kie, apikley]}
          provider: "{provider}"
          model: elevenlabs/speech-to-text
          audio: {from: "tts_{provider}"}
        - id: stt_file
          model: elevenlabs/speech-to-text
          audio: rec.mp3
        - id: music
          model: stable-audio
          input: {prompt: calm harp, seconds_total: 3, steps: 10}
        - id: direct_tts
          model: text-to-speech
          input: {voice_id: JBFqnCBsd6RMkjVDRZzb, text: Hello there., output_format: pcm_16000}
        - id: direct_tts_ts
          model: text-to-speech-with-timestamps
          input: {voice_id: JBFqnCBsd6RMkjVDRZzb, text: With timings., output_format: mp3_22050_32}
        - id: direct_sfx
          model: sound-generation
          input: {text: Thunder, duration_seconds: 2, output_format: ulaw_8000}
        - id: direct_stt
          model: speech-to-text
          audio: {from: direct_tts}
          input: {model_id: scribe_v1}
    """)
    code, plan, _result, tally = run(manifest, sandbox.url)
    assert code == 0, tally.failures
    lock = lockfile(manifest)
    assert sorted(lock) == sorted(p.job.id for p in plan.jobs)
    assert_audio(output(manifest, "tts_kie.mp3"), "mp3_44100_128", min_s=1.0)
    assert_audio(output(manifest, "tts_apikley.mp3"), "mp3_44100_128", min_s=1.0)
    assert_audio(output(manifest, "sfx_kie.opus"), "opus_48000_64", min_s=1.4)
    assert_audio(output(manifest, "music.wav"), "wav", min_s=2.9)
    assert_audio(output(manifest, "direct_tts.wav"), "pcm_16000", min_s=0.5)
    assert_audio(output(manifest, "direct_tts_ts.mp3"), "mp3_22050_32", min_s=0.5)
    assert_audio(output(manifest, "direct_sfx.wav"), "ulaw_8000", min_s=1.9)
    # A transcript of a job's own speech is that speech's text, with companions.
    for job_id in ("stt_kie", "stt_apikley", "direct_stt"):
        text = output(manifest, f"{job_id}.txt").read_text()
        provider = job_id.removeprefix("stt_")
        source = f"The keep gates open at dawn for {provider}" if job_id != "direct_stt" \
            else "Hello there"
        assert source.lower() in text.lower(), (job_id, text)
        assert output(manifest, f"{job_id}.srt").read_text().startswith("1\n")
        assert lock[job_id]["companions"]["vtt"] == f"{job_id}.vtt"
    assert json.loads(output(manifest, "stt_file.json").read_text())["words"]
    counts = stats(sandbox.url)["tasks"]["by_model"]
    assert counts["elevenlabs/text-to-speech-turbo-2-5"] == 2
    assert counts["speech-to-text"] == 1 and counts["stable-audio"] == 1
    # Each entry says where the asset came from.
    assert all(lock[j]["task_id"] for j in lock)
    assert lock["music"]["provider"] == "aimlapi"
    assert created(sandbox.url) == len(plan.jobs)


def test_a_second_run_sends_nothing(tmp_path: Path, sandbox: SandboxServer) -> None:
    manifest = write_manifest(tmp_path, """
        - id: steps_{s}
          matrix: {s: [gravel, wood]}
          variants: 2
          model: elevenlabs/sound-effect-v2
          input: {text: "Footsteps on {s}", duration_seconds: 1}
    """)
    assert run(manifest, sandbox.url)[0] == 0
    lock_text = (tmp_path / "out.sandbox" / "t.lock.json").read_text()
    before = provider_requests(sandbox.url)
    code, _plan, result, tally = run(manifest, sandbox.url)
    assert code == 0
    assert provider_requests(sandbox.url) == before  # not one request
    assert tally.requests_submitted == 0 and not result.outcomes
    assert (tmp_path / "out.sandbox" / "t.lock.json").read_text() == lock_text


def test_downloads_never_exceed_the_accounts_cap(tmp_path: Path, sandbox: SandboxServer,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`limits.max_downloads`: a wave of tasks finishing together is downloaded and stored
    at most N at a time (real downloads; the spy only counts them)."""
    from runner.providers import download

    active, peak = 0, 0
    real_fetch = download.fetch

    async def counting_fetch(*args: Any, **kwargs: Any) -> Any:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        try:
            return await real_fetch(*args, **kwargs)
        finally:
            active -= 1

    monkeypatch.setattr(download, "fetch", counting_fetch)
    manifest = write_manifest(tmp_path, """
        - id: hit_{n}
          matrix: {n: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]}
          model: elevenlabs/sound-effect-v2
          input: {text: "Impact number {n}", duration_seconds: 1}
    """)
    manifest.write_text(manifest.read_text().replace(
        "limits: {requests_per_window: 200, window_s: 1, polls_per_s: 500}",
        "limits: {requests_per_window: 200, window_s: 1, polls_per_s: 500, max_downloads: 2}",
        1))
    code, _plan, _result, tally = run(manifest, sandbox.url)
    assert code == 0, tally.failures
    assert peak == 2  # reached, never passed
    for job_id, entry in lockfile(manifest).items():
        assert_audio(output(manifest, entry["output"]), "mp3_44100_128", min_s=0.9), job_id


@pytest.mark.parametrize(("settings", "loop_module"), [
    ({}, "uvloop"),  # the default where uvloop is installed (it is, on Linux)
    ({"RUNNER_LOOP": "asyncio"}, "asyncio"),
    ({"RUNNER_LOOP": "asyncio", "RUNNER_JOURNAL_SYNC": "FULL"}, "asyncio"),  # folders fsynced
])
def test_the_event_loop_and_full_sync_settings(tmp_path: Path, sandbox: SandboxServer,
                                               monkeypatch: pytest.MonkeyPatch,
                                               settings: dict[str, str],
                                               loop_module: str) -> None:
    import asyncio

    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    loops: set[str] = set()
    manifest = write_manifest(tmp_path, """
        - id: hit_{n}
          matrix: {n: [0, 1, 2]}
          model: elevenlabs/sound-effect-v2
          input: {text: "Impact number {n}", duration_seconds: 1}
    """)
    code, _plan, _result, tally = run(manifest, sandbox.url, observers=[
        lambda event: loops.add(type(asyncio.get_running_loop()).__module__.split(".")[0])])
    assert code == 0, tally.failures
    assert loops == {loop_module}
    for job_id, entry in lockfile(manifest).items():
        assert_audio(output(manifest, entry["output"]), "mp3_44100_128", min_s=0.9), job_id
