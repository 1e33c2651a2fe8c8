"""Loudness: reading ffmpeg's meter, targets, and real narrations at their target.

The narration test is the issue's case end to end: sandbox speech (peaky, like
real TTS: its plain gain is capped by its peaks) stitched at -16 and -23 LUFS,
then measured by ffmpeg's ebur128 over the file written.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from audiogen import loudness

from runner.audio.loudness import Target, describe_miss, parse_summary
from runner.errors import AudioError
from runner.sandbox import SandboxServer
from tests.engine.helpers import output, run, write_manifest

SUMMARY = """[Parsed_ebur128_0 @ 0x1] Summary:

  Integrated loudness:
    I:         {lufs} LUFS
    Threshold: -31.8 LUFS

  Loudness range:
    LRA:         1.8 LU

  True peak:
    Peak:       {peak} dBFS
"""


def test_the_meter_summary_is_read() -> None:
    m = parse_summary("noise\n" + SUMMARY.format(lufs="-21.6", peak="-1.4"))
    assert (m.integrated_lufs, m.true_peak_dbtp, m.range_lu) == (-21.6, -1.4, 1.8)
    silent = parse_summary(SUMMARY.format(lufs="-70.0", peak="-inf"))
    assert silent.integrated_lufs is None and silent.true_peak_dbtp is None
    with pytest.raises(AudioError, match="no loudness summary"):
        parse_summary("Input #0, mp3\n")


def test_targets_are_checked() -> None:
    with pytest.raises(ValueError, match="between -70 and 0 LUFS"):
        Target(3.0)
    with pytest.raises(ValueError, match="true-peak ceiling"):
        Target(-16.0, 1.5)
    assert describe_miss({"target_lufs": -16, "met": True}) is None
    assert describe_miss({"target_lufs": -16, "met": False, "problem": "x"}) == "x"
    assert describe_miss({"target_lufs": None}) is None


@pytest.mark.parametrize("target", [-16, -23])
def test_a_narration_meets_its_target(tmp_path: Path, sandbox: SandboxServer,
                                      target: int) -> None:
    paragraphs = ["The lighthouse at Gull Point had not missed a night in ninety years.",
                  "Mara climbed the stairs with the oil can, counting the steps.",
                  "Outside, the gulls argued over the harbour and the tide came in."]
    (tmp_path / "c.txt").write_text("\n\n".join(paragraphs))
    manifest = write_manifest(tmp_path, f"""
        - id: chapter
          model: elevenlabs/text-to-speech-turbo-2-5
          input: {{voice: Brian}}
          narration: {{text_file: c.txt, loudness_lufs: {target}}}
    """)
    code, _, _, tally = run(manifest, sandbox.url)
    assert code == 0, tally.failures
    assert not tally.warnings
    lufs, peak = loudness(output(manifest, "chapter.mp3"))
    assert abs(lufs - target) <= 1.0, lufs
    assert peak <= -1.0, peak
