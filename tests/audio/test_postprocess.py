"""Post-processing steps on real audio: trim, loop crossfade, fades, normalise, convert.

Every result is decoded by ffmpeg and measured (silence detection, ebur128),
never compared with numbers the code under test computed.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from audiogen import loudness, make, sound_spans

from runner.audio.decode import decode_pcm
from runner.audio.formats import FormatSpec
from runner.audio.loudness import Target
from runner.audio.pcm import from_le
from runner.audio.process import process
from runner.audio.steps import Convert, PostProcess, processed_key
from runner.audio.verify import sniff
from runner.manifest.postprocess import parse

MP3 = FormatSpec.parse("mp3_44100_128")


def _decoded(path: Path, rate: int = 44100, channels: int = 1) -> list[int]:
    return list(from_le(decode_pcm(path, None, sample_rate=rate, channels=channels).data))


def test_trim_silence_keeps_a_margin(tmp_path: Path) -> None:
    source = make(tmp_path / "a.mp3", MP3, [("silence", 0.6), ("tone:440", 0.5),
                                             ("silence", 0.4)])
    out = tmp_path / "out.mp3"
    done = process(source, MP3, PostProcess(trim_silence=True, keep_silence_ms=40), out)
    spans = sound_spans(out, done.duration_s)
    assert len(spans) == 1
    start, end = spans[0]
    assert abs(start - 0.04) < 0.03 and abs(done.duration_s - end - 0.04) < 0.05
    assert abs(done.duration_s - 0.58) < 0.06
    assert done.trimmed_ms[0] > 500 and done.trimmed_ms[1] > 300


def test_fades_shape_the_ends(tmp_path: Path) -> None:
    source = make(tmp_path / "a.wav", "wav", [("tone:440", 1.0)], volume=0.5)
    out = tmp_path / "out.wav"
    process(source, FormatSpec.parse("wav"), PostProcess(fade_in_ms=300, fade_out_ms=100), out)
    samples = _decoded(out)
    rate = 44100

    def peak(start_s: float, end_s: float) -> int:
        return max(abs(v) for v in samples[int(start_s * rate):int(end_s * rate)])

    middle = peak(0.45, 0.55)
    assert peak(0.0, 0.02) < 0.1 * middle  # the fade-in starts near silence
    assert 0.4 * middle < peak(0.14, 0.16) < 0.6 * middle  # halfway up at half the fade
    assert peak(0.98, 1.0) < 0.25 * middle  # and the fade-out ends near silence


def _tone_wav(path: Path, hz: float, seconds: float, amplitude: int) -> Path:
    import math
    import wave
    from array import array

    rate = 44100
    samples = array("h", (round(amplitude * math.sin(2 * math.pi * hz * i / rate))
                          for i in range(round(seconds * rate))))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


def test_loop_crossfade_makes_the_seam_continuous(tmp_path: Path) -> None:
    # A tone that ends at the crest of a cycle: looped as it is, the seam jumps.
    source = _tone_wav(tmp_path / "a.wav", 437, (437 + 0.25) / 437, 10_000)
    raw = _decoded(source)
    out = tmp_path / "loop.wav"
    done = process(source, FormatSpec.parse("wav"), PostProcess(loop_crossfade_ms=100), out)
    looped = _decoded(out)
    assert abs(done.duration_s - (len(raw) / 44100 - 0.1)) < 0.001
    assert abs(len(looped) - (len(raw) - 4410)) <= 1

    usual = max(abs(a - b) for a, b in itertools.pairwise(raw[1000:2001]))
    assert abs(raw[-1] - raw[0]) > 10 * usual  # the raw clip clicks at its loop point
    assert abs(looped[-1] - looped[0]) <= usual + 2  # the looped one runs on smoothly
    # and the seam's neighbourhood is the tone itself, not a dip: equal-power mixing
    assert max(abs(v) for v in looped[:200]) > 0.9 * 10_000


def test_normalize_reaches_the_target_under_the_ceiling(tmp_path: Path) -> None:
    source = make(tmp_path / "a.mp3", MP3, [("tone:440", 0.8), ("tone:2500", 0.02),
                                             ("tone:440", 0.8)], volume=0.15)
    out = tmp_path / "out.mp3"
    done = process(source, MP3, PostProcess(normalize=Target(-18.0, -1.0)), out)
    lufs, peak = loudness(out)
    assert abs(lufs - -18.0) <= 1.0 and peak <= -1.0
    assert done.loudness is not None and done.loudness.met


def test_convert_to_ogg_stereo_48k(tmp_path: Path) -> None:
    source = make(tmp_path / "a.mp3", MP3, [("tone:440", 0.7)])
    out = tmp_path / "out.ogg"
    post = PostProcess(convert=Convert("ogg", 48000, 2))
    done = process(source, MP3, post, out)
    assert sniff(out).kind == "ogg-vorbis"
    pcm = decode_pcm(out, None)
    assert (pcm.sample_rate, pcm.channels) == (48000, 2)
    assert abs(pcm.duration_s - 0.7) < 0.03 and done.channels == 2


def test_convert_mp3_and_wav_and_a_raw_provider_format(tmp_path: Path) -> None:
    ulaw = FormatSpec.parse("ulaw_8000")
    source = make(tmp_path / "a.raw", ulaw, [("tone:440", 0.5)])
    wav = tmp_path / "out.wav"
    process(source, ulaw, PostProcess(fade_out_ms=50), wav)  # G.711 in, 16-bit WAV out
    assert sniff(wav).kind == "wav" and decode_pcm(wav, None).sample_rate == 8000
    mp3 = tmp_path / "out.mp3"
    process(source, ulaw, PostProcess(convert=Convert("mp3", 22050, None)), mp3)
    assert sniff(mp3).kind == "mp3" and decode_pcm(mp3, None).sample_rate == 22050


def test_processing_is_byte_stable(tmp_path: Path) -> None:
    """Same take, same steps, same bytes: the processed key then names one file."""
    source = make(tmp_path / "a.mp3", MP3, [("silence", 0.2), ("tone:440", 0.6)])
    post = PostProcess(trim_silence=True, fade_out_ms=30, convert=Convert("ogg", None, None),
                       normalize=Target(-20.0))
    a, b = tmp_path / "a.ogg", tmp_path / "b.ogg"
    process(source, MP3, post, a)
    process(source, MP3, post, b)
    assert a.read_bytes() == b.read_bytes()


def test_the_key_names_the_take_and_the_steps() -> None:
    a = parse({"trim_silence": True, "normalize": {"lufs": -18}})
    b = parse({"normalize": {"lufs": -18}, "trim_silence": True})  # order does not matter
    c = parse({"trim_silence": True, "normalize": {"lufs": -20}})
    assert processed_key("r1", a) == processed_key("r1", b)
    assert processed_key("r1", a) != processed_key("r1", c)
    assert processed_key("r1", a) != processed_key("r2", a)
    assert a.normalize == Target(-18.0, -1.0)
    assert parse({"trim_silence": {"threshold_dbfs": -40, "keep_ms": 10}}).keep_silence_ms == 10
    assert parse({"convert": {"format": "ogg"}}).extension("mp3") == "ogg"
