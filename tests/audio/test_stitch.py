"""Stitching real audio: durations, offsets against silence detection, loudness, formats."""

from __future__ import annotations

import itertools
import json
from array import array
from pathlib import Path

import pytest
from audiogen import loudness, make, sound_spans

from runner.audio.decode import decode_pcm
from runner.audio.formats import FormatSpec
from runner.audio.stitch import SegmentInput, StitchSettings, _Programme, stitch
from runner.audio.verify import verify_audio
from runner.errors import InvalidAudio

# (format, tone Hz, tone seconds, paragraph): mixed formats and rates on purpose.
PLAN = [
    ("mp3_44100_128", 330, 0.6, 0),
    ("mp3_44100_128", 440, 0.9, 0),
    ("pcm_24000", 550, 0.5, 0),
    ("opus_48000_64", 660, 1.1, 1),
    ("mp3_22050_32", 770, 0.7, 1),
    ("mp3_44100_128", 880, 0.8, 2),
]
LEAD_S, TAIL_S = 0.25, 0.2


@pytest.fixture(scope="module")
def segments(tmp_path_factory: pytest.TempPathFactory) -> list[SegmentInput]:
    folder = tmp_path_factory.mktemp("segments")
    out = []
    for i, (name, hz, seconds, paragraph) in enumerate(PLAN):
        spec = FormatSpec.parse(name)
        path = make(folder / f"seg{i}{'.raw' if spec.raw else spec.extension}", spec,
                    [("silence", LEAD_S), (f"tone:{hz}", seconds), ("silence", TAIL_S)])
        out.append(SegmentInput(f"s{i:02d}", path, spec, paragraph))
    return out


def _decoded_s(path: Path, spec: FormatSpec | None = None) -> float:
    return decode_pcm(path, spec, sample_rate=44100, channels=1).duration_s


def test_duration_is_sum_plus_gaps_without_trim(segments: list[SegmentInput],
                                                tmp_path: Path) -> None:
    settings = StitchSettings(gap_ms=200, paragraph_gap_ms=600, trim_silence=False, fade_ms=0,
                              target_lufs=None, output_format="mp3_44100_128")
    result = stitch(segments, tmp_path / "out.mp3", settings)
    sources = sum(_decoded_s(s.path, s.spec) for s in segments)
    gaps = 3 * 0.2 + 2 * 0.6
    decoded = _decoded_s(result.path)
    assert abs(decoded - (sources + gaps)) < 0.010
    assert abs(result.sidecar["duration_ms"] / 1000 - decoded) < 0.010
    assert abs(result.info.duration_s - decoded) < 0.002  # verify_audio agrees with ffmpeg
    assert [e["gap_before_ms"] for e in result.sidecar["segments"]] == [0, 200, 200, 600, 200, 600]


def test_offsets_match_silence_detection(segments: list[SegmentInput], tmp_path: Path) -> None:
    settings = StitchSettings(gap_ms=300, paragraph_gap_ms=700, keep_silence_ms=0, fade_ms=2,
                              target_lufs=None, output_format="mp3_44100_128")
    result = stitch(segments, tmp_path / "out.mp3", settings)
    entries = result.sidecar["segments"]
    assert [e["id"] for e in entries] == [s.segment_id for s in segments]
    total_s = _decoded_s(result.path)
    spans = sound_spans(result.path, total_s)
    assert len(spans) == len(entries), spans
    for entry, (start, end), plan in zip(entries, spans, PLAN):
        assert abs(start - entry["offset_ms"] / 1000) < 0.015, (entry, start)
        assert abs(end - (entry["offset_ms"] + entry["duration_ms"]) / 1000) < 0.015, (entry, end)
        assert abs(entry["duration_ms"] / 1000 - plan[2]) < 0.015  # only the tone is left
        assert abs(entry["trim_start_ms"] / 1000 - LEAD_S) < 0.015
    for before, after in itertools.pairwise(entries):
        assert after["offset_ms"] == pytest.approx(
            before["offset_ms"] + before["duration_ms"] + after["gap_before_ms"], abs=0.05)


def test_crossfade_shortens_by_the_overlap(segments: list[SegmentInput], tmp_path: Path) -> None:
    settings = StitchSettings(gap_ms=0, paragraph_gap_ms=0, crossfade_ms=80, target_lufs=None,
                              output_format="pcm_44100")
    result = stitch(segments, tmp_path / "out.wav", settings)
    entries = result.sidecar["segments"]
    assert [e["crossfade_ms"] for e in entries] == [0] + [80] * 5
    expected = sum(e["duration_ms"] for e in entries) - 5 * 80
    assert abs(result.sidecar["duration_ms"] - expected) < 0.1
    assert abs(_decoded_s(result.path) * 1000 - expected) < 10
    assert verify_audio(result.path, "pcm_44100").codec == "pcm_s16le"


def test_loudness_reaches_the_target(segments: list[SegmentInput], tmp_path: Path) -> None:
    result = stitch(segments, tmp_path / "out.mp3", StitchSettings(target_lufs=-16.0))
    measured, peak = loudness(result.path)  # ffmpeg's ebur128 over the file written
    assert abs(measured - -16.0) <= 1.0 and peak <= -1.0
    report = result.sidecar["loudness"]
    assert report["input_lufs"] < -20 and report["gain_db"] > 4
    assert report["met"] and report["problem"] is None
    assert abs(report["measured_lufs"] - measured) < 0.15  # the sidecar says what a meter finds


def _peaky(folder: Path) -> list[SegmentInput]:
    """Speech-like segments: a quiet body with loud short bursts, so that the peaks, not
    the loudness, decide how much plain gain fits."""
    out = []
    for i in range(3):
        path = folder / f"peaky{i}.wav"
        make(path, "wav", [("tone:300", 0.9), ("silence", 0.05)], volume=0.08)
        burst = folder / f"burst{i}.wav"
        make(burst, "wav", [("tone:2500", 0.01)], volume=0.9)
        joined = folder / f"seg{i}.wav"
        from audiogen import ffmpeg
        ffmpeg("-i", f"file:{path}", "-i", f"file:{burst}", "-i", f"file:{path}",
               "-filter_complex", "[0][1][2]concat=n=3:v=0:a=1", "-c:a", "pcm_s16le",
               "-y", f"file:{joined}")
        out.append(SegmentInput(f"p{i}", joined, FormatSpec.parse("wav")))
    return out


@pytest.mark.parametrize(("target", "fmt"), [(-16.0, "mp3_44100_128"), (-18.0, "pcm_44100")])
def test_a_peaky_programme_meets_its_target_through_the_limiter(
        tmp_path: Path, target: float, fmt: str) -> None:
    """One static gain capped by the true peak left such a programme 8 dB short (the
    audiobook example asked -18 and measured -21.3); the limiter lets it reach the target."""
    segments = _peaky(tmp_path)
    ext = ".mp3" if fmt.startswith("mp3") else ".wav"
    result = stitch(segments, tmp_path / f"out{ext}",
                    StitchSettings(target_lufs=target, output_format=fmt))
    measured, peak = loudness(result.path)
    assert abs(measured - target) <= 1.0, (measured, result.sidecar["loudness"])
    assert peak <= -1.0
    report = result.sidecar["loudness"]
    assert report["limiting_db"] > 3 and report["met"]
    # The limiter moved nothing in time: the programme is as long as its parts.
    assert abs(_decoded_s(result.path) - result.sidecar["duration_ms"] / 1000) < 0.03


def test_an_unreachable_target_is_reported_not_clipped(tmp_path: Path) -> None:
    loud = make(tmp_path / "loud.mp3", "mp3_44100_128", [("tone:440", 1.0)], volume=0.8)
    settings = StitchSettings(target_lufs=-3.0, max_true_peak_dbtp=-1.0, output_format="wav")
    result = stitch([SegmentInput("a", loud, FormatSpec.parse("mp3_44100_128"))],
                    tmp_path / "out.wav", settings)
    report = result.sidecar["loudness"]
    assert not report["met"] and "target -3 LUFS missed" in report["problem"]
    measured, peak = loudness(result.path)
    assert peak <= -1.0 and measured < -4  # held under the ceiling, quieter than asked


def test_silence_has_no_loudness_to_correct(tmp_path: Path) -> None:
    quiet = make(tmp_path / "quiet.wav", "wav", [("silence", 1.0)])
    result = stitch([SegmentInput("a", quiet, FormatSpec.parse("wav"))], tmp_path / "out.wav",
                    StitchSettings(target_lufs=-16.0, output_format="wav", trim_silence=False))
    report = result.sidecar["loudness"]
    assert not report["met"] and "no measurable loudness" in report["problem"]
    assert report["gain_db"] == 0


@pytest.mark.parametrize("name", ["opus_48000_64", "ulaw_8000", "wav", "mp3_22050_32"])
def test_output_formats(segments: list[SegmentInput], tmp_path: Path, name: str) -> None:
    spec = FormatSpec.parse(name)
    result = stitch(segments[:3], tmp_path / f"out{spec.extension}",
                    StitchSettings(output_format=name, target_lufs=None))
    info = verify_audio(result.path, spec)
    assert info.sample_rate == (spec.sample_rate or 44100)  # wav: the highest input rate
    assert abs(info.duration_s * 1000 - result.sidecar["duration_ms"]) < 10
    assert json.loads(result.sidecar_path.read_text())["format"] == name


def test_a_bad_input_is_named_and_nothing_is_left_behind(segments: list[SegmentInput],
                                                         tmp_path: Path) -> None:
    bad = tmp_path / "in" / "bad.mp3"
    bad.parent.mkdir()
    bad.write_text("<!DOCTYPE html><html>rate limited</html>")
    out = tmp_path / "out"
    with pytest.raises(InvalidAudio, match="bad.mp3"):
        stitch([*segments[:2], SegmentInput("x", bad, FormatSpec.parse("mp3_44100_128"))],
               out / "prog.mp3")
    # Unverified (spec None) input fails in decoding instead, still by name, still clean.
    with pytest.raises(InvalidAudio, match="bad.mp3"):
        stitch([*segments[:2], SegmentInput("x", bad, None)], out / "prog.mp3")
    assert list(out.iterdir()) == []


def test_progress_and_clean_folder(segments: list[SegmentInput], tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    result = stitch(segments, tmp_path / "prog.mp3", StitchSettings(target_lufs=None),
                    progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 6) for i in range(1, 7)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prog.mp3", "prog.mp3.json"]
    assert result.sidecar_path.name == "prog.mp3.json"


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="gap_ms"):
        StitchSettings(gap_ms=-1)
    with pytest.raises(ValueError, match="format"):
        StitchSettings(output_format="flac")
    with pytest.raises(ValueError, match="target_lufs"):
        StitchSettings(target_lufs=5)


def test_programme_places_with_gaps_and_crossfades() -> None:
    out = bytearray()
    programme = _Programme([out.extend], channels=1, hold=4)
    a, b, c = array("h", [1000] * 10), array("h", [1000] * 8), array("h", [-500] * 6)
    assert programme.place(a, gap=0, crossfade=4) == (0, 0)
    assert programme.place(b, gap=0, crossfade=4) == (6, 4)  # overlaps a's last 4 frames
    assert programme.place(c, gap=3, crossfade=4) == (17, 0)  # a gap: no crossfade
    programme.close()
    samples = array("h", bytes(out))
    assert programme.frames == len(samples) == 10 + 8 - 4 + 3 + 6
    assert samples[:14].tolist() == [1000] * 14  # equal signals crossfade to the same level
    assert samples[14:17].tolist() == [0, 0, 0] and samples[17:].tolist() == [-500] * 6


def test_stereo_inputs_make_stereo_mp3_but_mono_raw_outputs(tmp_path: Path) -> None:
    music = make(tmp_path / "music.wav", "wav", [("tone:440", 0.5)])  # 16-bit stereo WAV
    inputs = [SegmentInput("m", music, FormatSpec.parse("wav"))]
    stereo = stitch(inputs, tmp_path / "a.mp3", StitchSettings(target_lufs=None))
    assert stereo.info.channels == 2 and stereo.sidecar["channels"] == 2
    mono = stitch(inputs, tmp_path / "b.wav",
                  StitchSettings(target_lufs=None, output_format="pcm_22050"))
    assert mono.info.channels == 1 and mono.info.sample_rate == 22050
