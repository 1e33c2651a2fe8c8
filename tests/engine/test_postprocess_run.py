"""Post-processing in real runs against the sandbox: the raw take is bought once.

Each test runs the real engine over HTTP against a sandbox on 127.0.0.1 and
counts the requests the sandbox received: changing a step must reprocess the
cached take without a single new request, also after `runner clean`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from audiogen import loudness

from runner.audio.decode import decode_pcm
from runner.audio.verify import sniff
from runner.cli.summary import render_summary
from runner.engine.retry import JobOutcome
from runner.errors import ManifestInvalid
from runner.manifest.load import load_pipeline
from runner.plan.housekeeping import clean
from runner.plan.plan import State, make_plan
from runner.sandbox import SandboxServer
from runner.store.cache import ContentCache
from runner.store.layout import Target, layout_for
from tests.engine.helpers import created, lockfile, output, run, write_manifest

JOB = """
- id: steps
  model: elevenlabs/sound-effect-v2
  variants: 2
  output: sfx/steps_{{variant}}.{{ext}}
  input: {{text: Footsteps on gravel, duration_seconds: 1.5}}
  postprocess:
    trim_silence: true
    fade_out_ms: 40
    normalize: {{lufs: {lufs}}}
    convert: {{format: ogg, sample_rate: 48000, channels: 2}}
"""


def _plan(manifest: Path) -> dict[str, State]:
    pipeline = load_pipeline(manifest)
    plan = make_plan(pipeline, layout_for(pipeline, Target.SANDBOX))
    return {p.job.id: p.state for p in plan.jobs}


def test_a_changed_step_reprocesses_the_cached_take(tmp_path: Path,
                                                    sandbox: SandboxServer) -> None:
    manifest = write_manifest(tmp_path, JOB.format(lufs=-18))
    code, _, _, tally = run(manifest, sandbox.url)
    assert code == 0, tally.failures
    assert created(sandbox.url) == 2
    locked = lockfile(manifest)
    for variant in (1, 2):
        path = output(manifest, f"sfx/steps_{variant}.ogg")
        assert sniff(path).kind == "ogg-vorbis"
        pcm = decode_pcm(path, None)
        assert (pcm.sample_rate, pcm.channels) == (48000, 2)
        lufs, peak = loudness(path)
        assert abs(lufs - -18) <= 1.0 and peak <= -1.0
        entry = locked[f"steps#{variant}"]
        assert entry["raw"]["key"] != entry["key"]  # the request's key and the asset's
    raw_blobs = {e["raw"]["sha256"] for e in locked.values()}
    cache = ContentCache(manifest.parent / "out.sandbox/.runner/cache")
    assert all(cache.get(sha, "mp3") for sha in raw_blobs)  # the provider's results stay

    # A step changes: the processed keys change, the requests' do not.
    manifest.write_text(manifest.read_text().replace("lufs: -18", "lufs: -24"))
    assert set(_plan(manifest).values()) == {State.CHANGED}
    planned = json.loads(subprocess.run(
        [sys.executable, "-m", "runner", "plan", str(manifest), "--sandbox", "--json"],
        capture_output=True, text=True, check=True).stdout)
    assert [j["cost"] for j in planned["jobs"]] == [0, 0]  # the takes are cached: no request
    code, _, result, tally = run(manifest, sandbox.url)
    assert code == 0 and created(sandbox.url) == 2  # not one new request
    assert tally.requests_submitted == 0
    assert result.outcomes == {"steps#1": JobOutcome.DONE, "steps#2": JobOutcome.DONE}
    relocked = lockfile(manifest)
    for variant in (1, 2):
        lufs, _ = loudness(output(manifest, f"sfx/steps_{variant}.ogg"))
        assert abs(lufs - -24) <= 1.0
        assert relocked[f"steps#{variant}"]["raw"] == locked[f"steps#{variant}"]["raw"]

    # `runner clean` keeps the raw takes, so the next change is free as well.
    clean(manifest, sandbox=True)
    assert all(cache.get(sha, "mp3") for sha in raw_blobs)
    manifest.write_text(manifest.read_text().replace("fade_out_ms: 40", "fade_out_ms: 90"))
    assert run(manifest, sandbox.url)[0] == 0 and created(sandbox.url) == 2


def test_a_missed_target_is_a_warning_in_the_summary(tmp_path: Path,
                                                     sandbox: SandboxServer) -> None:
    manifest = write_manifest(tmp_path, """
        - id: blip
          model: elevenlabs/sound-effect-v2
          input: {text: A short blip, duration_seconds: 0.5}
          postprocess:
            normalize: {lufs: -5, true_peak: -9}
    """)
    code, plan, result, tally = run(manifest, sandbox.url)
    assert code == 0, tally.failures  # the asset is made: a person decides what to do
    assert any("loudness: target -5 LUFS missed" in w for w in tally.warnings), tally.warnings
    summary = render_summary(plan, result, tally, manifest, None)
    assert "warning: blip: loudness: target -5 LUFS missed" in summary
    _, peak = loudness(output(manifest, "blip.mp3"))
    assert peak <= -9.0  # the ceiling holds even when the loudness cannot follow


def test_postprocess_where_it_cannot_apply_is_a_manifest_error(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, """
        - id: book
          model: elevenlabs/text-to-speech-turbo-2-5
          narration: {text: "One line."}
          postprocess: {normalize: {lufs: -18}}
        - id: caps
          model: elevenlabs/speech-to-text
          audio: {from: book}
          postprocess: {fade_in_ms: 10}
        - id: boom
          model: elevenlabs/sound-effect-v2
          input: {text: Boom}
          postprocess: {convert: {format: flac}, fade_in_ms: -1}
    """)
    try:
        load_pipeline(manifest)
    except ManifestInvalid as exc:
        lines = [str(p) for p in exc.problems]
    else:
        raise AssertionError("the manifest was accepted")
    text = "\n".join(lines)
    assert "t.yaml:" in text
    assert "(job book): postprocess is for single audio assets, not for a narration" in text
    assert "(job caps): postprocess is for single audio assets, not for " \
           "elevenlabs/speech-to-text" in text
    assert "$.jobs[2].postprocess.convert.format" in text and "'flac'" in text
    assert "$.jobs[2].postprocess.fade_in_ms" in text


def test_defaults_apply_to_assets_only(tmp_path: Path, sandbox: SandboxServer) -> None:
    manifest = write_manifest(tmp_path, """
        - id: boom
          model: elevenlabs/sound-effect-v2
          input: {text: Boom, duration_seconds: 0.8}
        - id: line
          model: elevenlabs/text-to-speech-turbo-2-5
          dialogue: {lines: [{voice: George, text: "Who goes there?"}]}
    """, extra="""
        defaults:
          postprocess: {convert: {format: wav, sample_rate: 22050}}
    """)
    pipeline = load_pipeline(manifest)
    assert pipeline.jobs["boom"].output == "boom.wav" and pipeline.jobs["boom"].post
    assert pipeline.jobs["line"].post is None and pipeline.jobs["line"].output == "line.mp3"
    code, _, _, tally = run(manifest, sandbox.url)
    assert code == 0, tally.failures
    assert decode_pcm(output(manifest, "boom.wav"), None).sample_rate == 22050
    sidecar = json.loads(output(manifest, "line.json").read_text())
    assert sidecar["loudness"]["met"]
