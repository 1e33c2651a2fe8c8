"""Narrations and dialogues end to end against the sandbox: segments, context, stitch,
subtitles, editing, request stitching and the transcript check."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import pytest

from runner.audio.decode import decode
from runner.audio.formats import FormatSpec
from runner.cli.exitcodes import ExitCode
from runner.engine.retry import JobOutcome
from runner.sandbox import SandboxServer
from runner.text.subtitles import parse_srt, parse_vtt
from tests.engine.helpers import assert_audio, created, output, run, stats, write_manifest

WORDS = ["keeper", "lantern", "harbour", "storm", "gull", "tide", "reef", "signal", "rope", "boat", "bell", "stone", "window", "gallery", "coast", "engine", "crew", "radio"]


def chapter(paragraphs: int) -> str:
    """Prose of `paragraphs` short, distinct paragraphs: each is one segment (a
    narration never joins paragraphs), and short ones keep the test quick."""
    rng = random.Random(7)
    seen: set[str] = set()
    out = []
    while len(out) < paragraphs:
        sentence = " ".join(rng.choice(WORDS) for _ in range(3)).capitalize() + "."
        if sentence not in seen:  # identical segments would be generated once
            seen.add(sentence)
            out.append(sentence)
    return "\n\n".join(out) + "\n"


def silent_before(samples: list[int], rate: int, at_ms: float, span_ms: float,
                  threshold: int = 400) -> bool:
    start = int((at_ms - span_ms) / 1000 * rate)
    end = int(at_ms / 1000 * rate)
    window = samples[max(0, start):end]
    return bool(window) and max(abs(s) for s in window) < threshold


def test_a_200_segment_narration(tmp_path: Path, sandbox: SandboxServer) -> None:
    (tmp_path / "chapter.txt").write_text(chapter(200))
    manifest = write_manifest(tmp_path, """
        - id: book
          model: elevenlabs/text-to-speech-turbo-2-5
          input: {voice: Brian, timestamps: true}
          output: book.mp3
          narration:
            text_file: chapter.txt
            max_chars: 60
            paragraph_gap_ms: 400
            loudness_lufs: -18
    """)
    code, plan, _result, tally = run(manifest, sandbox.url)
    assert code == ExitCode.OK, tally.failures
    segments = [p for p in plan.jobs if p.job.segment is not None]
    assert len(segments) == 200
    assert stats(sandbox.url)["tasks"]["by_model"]["elevenlabs/text-to-speech-turbo-2-5"] == 200
    # Every segment heard its neighbours.
    assert "previous_text" not in segments[0].job.input
    assert segments[1].job.input["previous_text"] == segments[0].job.input["text"]
    assert segments[1].job.input["next_text"] == segments[2].job.input["text"]
    seconds = assert_audio(output(manifest, "book.mp3"), "mp3_44100_128", min_s=100)
    sidecar = json.loads(output(manifest, "book.json").read_text())
    placed = sidecar["segments"]
    assert [s["id"] for s in placed] == [p.job.id for p in segments]
    offsets = [s["offset_ms"] for s in placed]
    assert offsets == sorted(offsets)
    ends = [s["offset_ms"] + s["duration_ms"] for s in placed]
    assert abs(ends[-1] / 1000 - seconds) < 0.1
    # Silence detection on the decoded programme: every seam is preceded by its gap.
    spec = FormatSpec.parse("mp3_44100_128")
    audio = decode(output(manifest, "book.mp3"), spec).set_channels(1)
    samples = list(audio.get_array_of_samples())
    seams = placed[1:]
    quiet = sum(silent_before(samples, audio.frame_rate, s["offset_ms"], 300) for s in seams)
    assert quiet >= 0.95 * len(seams), f"{quiet}/{len(seams)} seams preceded by silence"
    # Subtitles from the word timings, inside the programme.
    cues = parse_srt(output(manifest, "book.srt").read_text())
    assert cues and cues[-1].end_ms <= seconds * 1000 + 1
    assert all(c.start_ms < c.end_ms for c in cues)
    assert parse_vtt(output(manifest, "book.vtt").read_text()) == cues


def test_editing_one_paragraph_regenerates_its_segments_only(
        tmp_path: Path, sandbox: SandboxServer) -> None:
    paragraphs = ["The tide came in slowly.", "Mara climbed the stairs.",
                  "The lamp began to hum.", "Gulls watched from the shed."]
    (tmp_path / "c.txt").write_text("\n\n".join(paragraphs))
    manifest = write_manifest(tmp_path, """
        - id: c
          model: elevenlabs/text-to-speech-turbo-2-5
          narration: {text_file: c.txt}
    """)
    assert run(manifest, sandbox.url)[0] == 0
    before = created(sandbox.url)
    paragraphs[1] = "Mara counted the steps."
    (tmp_path / "c.txt").write_text("\n\n".join(paragraphs))
    _code, _plan, result, _tally = run(manifest, sandbox.url)
    assert result.outcomes == {"c/002": JobOutcome.DONE, "c": JobOutcome.DONE}
    assert created(sandbox.url) == before + 1
    # With --recontext, the neighbours whose context changed are regenerated too.
    paragraphs[1] = "Mara ran up the steps."
    (tmp_path / "c.txt").write_text("\n\n".join(paragraphs))
    _code, _plan, result, _tally = run(manifest, sandbox.url, recontext=True)
    assert set(result.outcomes) == {"c/001", "c/002", "c/003", "c"}


def test_a_dialogue(tmp_path: Path, sandbox: SandboxServer) -> None:
    manifest = write_manifest(tmp_path, """
        - id: gate_scene
          model: elevenlabs/text-to-speech-turbo-2-5
          input: {timestamps: true}
          dialogue:
            paragraph_gap_ms: 500
            lines:
              - {voice: George, text: "Who goes there?"}
              - {voice: Lily, text: "A friend, with news from the coast.", input: {speed: 0.9}}
              - {voice: George, text: "Then come in, quickly."}
    """)
    code, plan, _result, tally = run(manifest, sandbox.url)
    assert code == 0, tally.failures
    lines = [p.job for p in plan.jobs if p.job.segment]
    assert [j.input["voice"] for j in lines] == ["George", "Lily", "George"]
    assert lines[1].input["speed"] == 0.9 and "speed" not in lines[0].input
    assert lines[1].input["previous_text"] == "Who goes there?"
    assert_audio(output(manifest, "gate_scene.mp3"), "mp3_44100_128", min_s=2)
    vtt = output(manifest, "gate_scene.vtt").read_text()
    assert "<v George>" in vtt and "<v Lily>" in vtt


def test_request_stitching_on_the_elevenlabs_api(tmp_path: Path,
                                                 sandbox: SandboxServer) -> None:
    manifest = write_manifest(tmp_path, """
        - id: story
          model: text-to-speech
          input: {voice_id: JBFqnCBsd6RMkjVDRZzb, model_id: eleven_turbo_v2_5}
          narration:
            text: "First part of the tale.\\n\\nSecond part.\\n\\nThird part.\\n\\nThe end."
    """)
    code, plan, _result, tally = run(manifest, sandbox.url)
    assert code == 0, tally.failures
    segments = [p.job for p in plan.jobs if p.job.segment]
    assert [s.context_from for s in segments] == [
        (), ("story/001",), ("story/001", "story/002"), ("story/001", "story/002", "story/003")]
    # Each segment after the first named the earlier ones by request id (and they were valid).
    assert stats(sandbox.url)["request_stitching"] == {"previous_request_ids": 3}


def test_verify_transcript_reports_each_segment(tmp_path: Path,
                                                sandbox: SandboxServer) -> None:
    manifest = write_manifest(tmp_path, """
        - id: short
          model: elevenlabs/text-to-speech-turbo-2-5
          narration:
            text: "The bell rang twice.\\n\\nNobody answered the door."
            verify: transcript
    """)
    code, _plan, result, tally = run(manifest, sandbox.url)
    assert code == 0, tally.failures
    assert {"short/001.verify", "short/002.verify"} <= set(result.outcomes)
    verify = json.loads(output(manifest, "short.json").read_text())["verify"]
    # The sandbox transcribes its own speech exactly: no segment above the threshold.
    assert verify["wer"] == {"short/001": 0.0, "short/002": 0.0} and verify["above"] == []
    assert not tally.warnings


def test_the_transcript_check_runs_off_the_event_loop(
        tmp_path: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Comparing a segment with its transcript blocks (the old pure-Python table took
    80 ms to 0.9 s a segment): it runs in a worker thread, never where the loop runs."""
    import runner.text.wer as wer_module

    real = wer_module.wer
    on_loop: list[bool] = []

    def watched(reference: str, hypothesis: str) -> float:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return real(reference, hypothesis)

    monkeypatch.setattr(wer_module, "wer", watched)
    manifest = write_manifest(tmp_path, """
        - id: short
          model: elevenlabs/text-to-speech-turbo-2-5
          narration:
            text: "The bell rang twice.\\n\\nNobody answered the door."
            verify: transcript
    """)
    code, _, _, tally = run(manifest, sandbox.url)
    assert code == 0, tally.failures
    assert on_loop == [False, False]  # one comparison per segment, each off the loop
    verify = json.loads(output(manifest, "short.json").read_text())["verify"]
    assert verify["wer"] == {"short/001": 0.0, "short/002": 0.0}
