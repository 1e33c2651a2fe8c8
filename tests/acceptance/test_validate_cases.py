"""`runner validate` over bad manifests: every problem reported with its line.

Each case is a manifest and the problems it must produce, as (line, text that
the message must contain). The CLI is called in-process (the same `main` the
console script runs); test_cli.py runs the installed command itself.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from runner.cli import main

HEAD = "version: 1\nname: t\njobs:\n"
SFX = "elevenlabs/sound-effect-v2"
TTS = "elevenlabs/text-to-speech-turbo-2-5"
STT = "elevenlabs/speech-to-text"


def sfx_job(extra: str = "", text: str = "Door creak", job_id: str = "a") -> str:
    return (f"  - id: {job_id}\n    model: {SFX}\n    input:\n      text: {text}\n"
            + textwrap.indent(extra, "    "))


CASES: dict[str, tuple[str, list[tuple[int, str]]]] = {
    "yaml_syntax_unclosed_flow": (
        HEAD + "  - id: a\n    model: [x, y\n    input: {}\n",
        [(6, "YAML syntax error: while parsing a flow sequence started at line 5: did not "
             "find expected ',' or ']'")],
    ),
    "tab_indentation": (
        HEAD + "  - id: a\n\tmodel: x\n",
        [(5, "tab character")],
    ),
    "duplicate_key": (
        HEAD + f"  - id: a\n    model: {SFX}\n    model: {SFX}\n    input: {{text: x}}\n",
        [(6, "duplicate key 'model' (first defined at line 5)")],
    ),
    "duplicate_job_ids": (
        HEAD + sfx_job() + sfx_job(),
        [(8, "duplicate job id 'a'; first used by jobs[0] at line 4")],
    ),
    "duplicate_ids_from_matrix": (
        HEAD + sfx_job(job_id="steps_gravel")
        + f"  - id: steps_{{s}}\n    model: {SFX}\n    matrix: {{s: [wood, gravel]}}\n"
          "    input: {text: 'steps on {s}'}\n",
        [(8, "duplicate job id 'steps_gravel' (made by matrix expansion)")],
    ),
    "unknown_model": (
        HEAD + "  - id: a\n    model: elevenlabs/sound-efect-v2\n    input: {text: x}\n",
        [(5, "did you mean 'elevenlabs/sound-effect-v2'?")],
    ),
    "unknown_provider": (
        HEAD + sfx_job("provider: kei\n"),
        [(8, "unknown provider 'kei' (did you mean 'kie'?)")],
    ),
    "provider_does_not_offer_model": (
        HEAD + sfx_job("provider: aimlapi\n"),
        [(8, "provider 'aimlapi' does not offer elevenlabs/sound-effect-v2")],
    ),
    "wrong_type": (
        HEAD + sfx_job("  duration_seconds: two\n"),
        [(8, "expected a number, got 'two'")],
    ),
    "duration_too_short": (
        HEAD + sfx_job("  duration_seconds: 0.4\n"),
        [(8, "0.4 is out of range: must be at least 0.5")],
    ),
    "duration_too_long": (
        HEAD + sfx_job("  duration_seconds: 22.1\n"),
        [(8, "22.1 is out of range: must be at most 22")],
    ),
    "speed_out_of_range": (
        HEAD + f"  - id: v\n    model: {TTS}\n    input:\n      text: Hello\n      speed: 1.3\n",
        [(8, "1.3 is out of range: must be at most 1.2")],
    ),
    "text_too_long": (
        HEAD + sfx_job(text="x" * 5001),
        [(7, "too long: 5,001 characters, at most 5,000 allowed")],
    ),
    "unknown_voice": (
        HEAD + f"  - id: v\n    model: {TTS}\n    input:\n      text: Hi\n      voice: Rachl\n",
        [(8, "'Rachl' is not one of ['Rachel'")],
    ),
    "voice_suggestion": (
        HEAD + f"  - id: v\n    model: {TTS}\n    input:\n      text: Hi\n      voice: Rachl\n",
        [(8, "(did you mean 'Rachel'?)")],
    ),
    "misspelled_input_key": (
        HEAD + sfx_job("  durration_seconds: 2\n"),
        [(8, "unknown key 'durration_seconds' (did you mean 'duration_seconds'?)")],
    ),
    "misspelled_job_key": (
        HEAD + sfx_job("varaints: 3\n"),
        [(8, "unknown key 'varaints' (did you mean 'variants'?)")],
    ),
    "missing_required_text": (
        HEAD + f"  - id: a\n    model: {SFX}\n    input:\n      loop: true\n",
        [(7, "missing required key 'text'")],
    ),
    "output_escapes_with_dotdot": (
        HEAD + sfx_job("output: ../../etc/passwd\n"),
        [(8, "leaves output_dir")],
    ),
    "output_absolute": (
        HEAD + sfx_job("output: /tmp/a.mp3\n"),
        [(8, "is an absolute path")],
    ),
    "two_jobs_same_output": (
        HEAD + sfx_job("output: same.mp3\n") + sfx_job("output: same.mp3\n", job_id="b"),
        [(13, "output 'same.mp3' is also written by job 'a'")],
    ),
    "variants_without_placeholder": (
        HEAD + sfx_job("variants: 3\noutput: one.mp3\n"),
        [(9, "has 3 variants but its output has no {variant} placeholder")],
    ),
    "from_missing_job": (
        HEAD + f"  - id: t\n    model: {STT}\n    audio: {{from: nowhere}}\n",
        [(6, "from: no job 'nowhere'")],
    ),
    "from_transcript_job": (
        HEAD + f"  - id: t1\n    model: {STT}\n    audio: {{url: 'https://x.test/a.mp3'}}\n"
        f"  - id: t2\n    model: {STT}\n    audio: {{from: t1}}\n",
        [(9, "job 't1' makes a transcript, not audio")],
    ),
    "dependency_cycle": (
        HEAD + f"  - id: t\n    model: {STT}\n    audio: {{from: t}}\n",
        [(4, "dependency cycle: t -> t")],
    ),
    "from_job_with_variants": (
        HEAD + sfx_job("variants: 2\n")
        + f"  - id: t\n    model: {STT}\n    audio: {{from: a}}\n",
        [(11, "job 'a' has 2 variants; name one: a#1, a#2")],
    ),
    "empty_file": ("", [(1, "the file is empty")]),
    "only_comments": ("# nothing here\n", [(1, "the file is empty")]),
    "python_object_tag": (
        HEAD + "  - id: !!python/object/apply:os.system ['echo pwned']\n    model: x\n",
        [(4, "tag !!python/object/apply:os.system is not allowed")],
    ),
    "local_tag": (
        HEAD + "  - id: !secret a\n    model: x\n",
        [(4, "tag !secret is not allowed")],
    ),
    "missing_audio_for_stt": (
        HEAD + f"  - id: t\n    model: {STT}\n",
        [(4, "missing audio to transcribe")],
    ),
    "unknown_matrix_variable": (
        HEAD + f"  - id: s_{{surface}}\n    model: {SFX}\n    matrix: {{surface: [a, b]}}\n"
        "    input: {text: 'steps on {sufrace}'}\n",
        [(4, "unknown matrix variable {sufrace} (did you mean 'surface'?)")],
    ),
    "matrix_id_without_variable": (
        HEAD + f"  - id: s\n    model: {SFX}\n    matrix: {{surface: [a, b]}}\n"
        "    input: {text: x}\n",
        [(4, "a matrix job's id must use a matrix variable")],
    ),
    "bad_version_and_name": (
        "version: 2\nname: 'has space'\njobs:\n" + sfx_job(),
        [(1, "2 is not one of [1]"), (2, "does not match the pattern")],
    ),
    "missing_jobs": ("version: 1\nname: t\n", [(1, "missing required key 'jobs'")]),
    "bad_default_value": (
        "version: 1\nname: t\ndefaults:\n  " + SFX + ":\n    prompt_influence: 1.5\njobs:\n"
        + sfx_job(),
        [(5, "1.5 is out of range: must be at most 1")],
    ),
    "downloads_cap_zero": (
        "version: 1\nname: t\nproviders:\n  kie:\n    limits: {max_downloads: 0}\njobs:\n"
        + sfx_job(),
        [(5, "$.providers.kie.limits.max_downloads: 0 is out of range: must be at least 1")],
    ),
    "custom_provider_without_type": (
        "version: 1\nname: t\nproviders:\n  kie2:\n    api_key_env: K2\njobs:\n" + sfx_job(),
        [(4, "provider 'kie2' is not built in (did you mean 'kie'?); an extra account needs "
             "`type:`")],
    ),
    "narration_file_missing": (
        HEAD + f"  - id: n\n    model: {TTS}\n    narration: {{text_file: nope.txt}}\n",
        [(6, "no such text file: nope.txt")],
    ),
    "narration_max_chars_over_api_limit": (
        HEAD + f"  - id: n\n    model: {TTS}\n    narration: {{text: 'Hello.', max_chars: 6000}}\n",
        [(6, "6000 is out of range: must be at most 5000")],
    ),
    "narration_with_sfx_model": (
        HEAD + f"  - id: n\n    model: {SFX}\n    narration: {{text: 'Hello there.'}}\n",
        [(5, "a narration needs a text-to-speech model")],
    ),
    "audio_file_missing": (
        HEAD + f"  - id: t\n    model: {STT}\n    audio: {{file: missing.wav}}\n",
        [(6, "no such audio file: missing.wav")],
    ),
}


def run_validate(tmp_path: Path, text: str | bytes, capsys: pytest.CaptureFixture[str]
                 ) -> tuple[int, list[str]]:
    manifest = tmp_path / "m.yaml"
    if isinstance(text, bytes):
        manifest.write_bytes(text)
    else:
        manifest.write_text(text, encoding="utf-8")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        code = main(["validate", "m.yaml"])
    finally:
        os.chdir(cwd)
    return code, capsys.readouterr().out.splitlines()


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_manifest_reports_line_and_message(name: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    text, expected = CASES[name]
    code, lines = run_validate(tmp_path, text, capsys)
    assert code == 2, lines
    assert lines[-1].endswith("found"), lines
    for line_no, fragment in expected:
        matching = [ln for ln in lines if ln.startswith(f"m.yaml:{line_no}:") and fragment in ln]
        assert matching, f"expected m.yaml:{line_no}: ...{fragment}... in:\n" + "\n".join(lines)


def test_all_problems_of_a_file_are_reported_at_once(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    text = (HEAD + sfx_job("  duration_seconds: 0.4\n")
            + f"  - id: v\n    model: {TTS}\n    input:\n      text: Hi\n      voice: Rachl\n"
            + sfx_job("output: ../x.mp3\n", job_id="c"))
    code, lines = run_validate(tmp_path, text, capsys)
    assert code == 2
    problems = [ln for ln in lines if ln.startswith("m.yaml:")]
    assert [ln.split(":")[1] for ln in problems] == ["8", "13", "18"], lines
    assert lines[-1] == "3 problems found"


def test_every_problem_names_its_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = run_validate(tmp_path, HEAD + sfx_job("  duration_seconds: 30\n", job_id="boom"),
                               capsys)
    assert code == 2
    assert lines[0].startswith("m.yaml:8:") and "$.jobs[0].input.duration_seconds (job boom)" \
        in lines[0]


def test_matrix_errors_are_reported_once_with_a_count(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    text = (HEAD + f"  - id: s_{{surface}}\n    model: {SFX}\n"
            "    matrix: {surface: [a, b, c]}\n    input: {text: 'x {surface}', loop: maybe}\n")
    code, lines = run_validate(tmp_path, text, capsys)
    assert code == 2
    problems = [ln for ln in lines if ln.startswith("m.yaml:")]
    assert len(problems) == 1, lines
    assert "(job s_a and 2 more)" in problems[0] and "expected true or false" in problems[0]


def test_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = run_validate(tmp_path, HEAD.encode() + b"  - id: caf\xe9\n", capsys)
    assert code == 2
    assert lines[0].startswith("m.yaml:4:") and "not UTF-8: byte 0xe9" in lines[0]


def test_output_escaping_through_symlink(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "link").symlink_to(outside)
    text = "version: 1\nname: t\noutput_dir: build\njobs:\n" + sfx_job("output: link/a.mp3\n")
    code, lines = run_validate(tmp_path, text, capsys)
    assert code == 2
    assert lines[0].startswith("m.yaml:9:") and "through a symbolic link" in lines[0], lines


def test_alias_bomb_is_rejected_quickly_in_bounded_memory(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import resource

    levels = ["a: &a [" + ",".join(["lol"] * 10) + "]"]
    for i, name in enumerate("bcdefghij"):
        prev = "abcdefghij"[i]
        levels.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 10) + "]")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code, lines = run_validate(tmp_path, "\n".join(levels) + "\n", capsys)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert code == 2
    assert "an alias bomb" in lines[0]
    # 10**10 values if expanded: memory stays flat because nothing is expanded.
    assert grown_kib < 100_000, grown_kib


def test_valid_manifest_is_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = run_validate(tmp_path, HEAD + sfx_job("variants: 2\n"), capsys)
    assert code == 0, lines
    assert lines == ["m.yaml: ok (2 jobs)"]
