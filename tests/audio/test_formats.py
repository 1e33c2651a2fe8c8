"""Format specs, WAV wrapping, verification of real files in every format, and rejections."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from audiogen import PROVIDER_FORMATS, audio_dir, ffmpeg, format_file, make  # noqa: F401

from runner.audio.containers import ogg_crc, parse_wav
from runner.audio.decode import decode, decode_many, decode_pcm, duration_s
from runner.audio.formats import (
    Codec,
    FormatSpec,
    WavWriter,
    carries_wav_header,
    wav_header,
    wrap_raw,
)
from runner.audio.verify import sniff, verify_audio
from runner.errors import AudioError, InvalidAudio


@pytest.mark.parametrize(("name", "codec", "rate", "kbps", "ext"), [
    ("mp3_44100_128", Codec.MP3, 44100, 128, ".mp3"),
    ("mp3_22050_32", Codec.MP3, 22050, 32, ".mp3"),
    ("pcm_24000", Codec.PCM, 24000, None, ".wav"),
    ("ulaw_8000", Codec.ULAW, 8000, None, ".wav"),
    ("alaw_8000", Codec.ALAW, 8000, None, ".wav"),
    ("opus_48000_64", Codec.OPUS, 48000, 64, ".opus"),
    ("wav", Codec.WAV, None, None, ".wav"),
    ("wav_44100", Codec.WAV, 44100, None, ".wav"),
])
def test_format_names_parse(name: str, codec: Codec, rate: int | None, kbps: int | None,
                            ext: str) -> None:
    spec = FormatSpec.parse(name)
    assert (spec.codec, spec.sample_rate, spec.bitrate_kbps, spec.extension) == (codec, rate, kbps, ext)
    assert spec.raw == (codec in (Codec.PCM, Codec.ULAW, Codec.ALAW))


@pytest.mark.parametrize("name", PROVIDER_FORMATS)
def test_every_provider_format_parses(name: str) -> None:
    assert FormatSpec.parse(name).name == name


@pytest.mark.parametrize("name", ["mp3", "mp3_44100", "pcm_44100_16", "opus_44100_64",
                                  "flac_44100", "pcm_44101", "wav_44100_128", ""])
def test_bad_format_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="format"):
        FormatSpec.parse(name)


@pytest.mark.parametrize("name", PROVIDER_FORMATS)
def test_every_format_verifies_and_matches_ffmpeg(audio_dir: Path, name: str) -> None:  # noqa: F811
    spec = FormatSpec.parse(name)
    path = format_file(audio_dir, name)
    info = verify_audio(path, spec, decode_check=True)
    assert info.sample_rate == (spec.sample_rate or 44100)
    assert abs(info.duration_s - 1.0) < 0.03
    # The structural duration agrees with what ffmpeg decodes (gapless info honoured).
    assert abs(info.duration_s - duration_s(path, spec)) < 0.002
    if spec.codec is Codec.MP3:
        assert info.bitrate_kbps == spec.bitrate_kbps


@pytest.mark.parametrize("name", ["pcm_24000", "ulaw_8000", "alaw_8000", "pcm_44100"])
def test_raw_audio_wrapped_in_wav_is_the_same_samples(audio_dir: Path, name: str,  # noqa: F811
                                                      tmp_path: Path) -> None:
    spec = FormatSpec.parse(name)
    raw = format_file(audio_dir, name).read_bytes()
    wrapped = tmp_path / f"x{spec.extension}"
    wrapped.write_bytes(wrap_raw(raw, spec))
    layout = parse_wav(wrapped.read_bytes())
    tag = struct.unpack_from("<H", wrapped.read_bytes(), 20)[0]
    assert tag == {"pcm_s16le": 1, "pcm_mulaw": 7, "pcm_alaw": 6}[spec.codec.value]
    assert layout.data_bytes == len(raw) and layout.info.sample_rate == spec.sample_rate
    assert verify_audio(wrapped, spec).codec == spec.codec.value
    assert sniff(wrapped).kind == "wav"
    assert decode_pcm(wrapped).data == decode_pcm(raw, spec).data


@pytest.mark.parametrize("name", ["pcm_24000", "ulaw_8000", "alaw_8000"])
def test_a_wav_wrapped_twice_is_caught(audio_dir: Path, name: str,  # noqa: F811
                                       tmp_path: Path) -> None:
    """A provider's WAV wrapped once more parses as a valid WAV (the inner header plays as
    a click): verification must refuse it, and wrap_raw must not make one."""
    spec = FormatSpec.parse(name)
    provider_wav = wrap_raw(format_file(audio_dir, name).read_bytes(), spec)
    assert carries_wav_header(provider_wav) and wrap_raw(provider_wav, spec) == provider_wav
    twice = tmp_path / "twice.wav"
    twice.write_bytes(wav_header(spec, len(provider_wav)) + provider_wav)
    parse_wav(twice.read_bytes())  # structurally sound: only the second look catches it
    with pytest.raises(InvalidAudio, match="wrapped in WAV twice"):
        verify_audio(twice, spec)
    once = tmp_path / "once.wav"
    once.write_bytes(provider_wav)
    assert verify_audio(once, spec).codec == spec.codec.value


def test_wav_writer_streams_to_the_same_bytes_as_wrap_raw(audio_dir: Path) -> None:  # noqa: F811
    for name in ("pcm_24000", "ulaw_8000"):
        spec = FormatSpec.parse(name)
        raw = format_file(audio_dir, name).read_bytes()[:-1]  # odd length for G.711: padding
        if spec.codec is Codec.PCM:
            raw = raw[:-1]
        buffer = io.BytesIO()
        writer = WavWriter(buffer, spec)
        assert parse_wav(buffer.getvalue()).data_bytes == 0  # mid-stream: claims nothing
        for i in range(0, len(raw), 1000):
            writer.write(raw[i:i + 1000])
        assert writer.finish() == len(raw)
        assert buffer.getvalue() == wrap_raw(raw, spec)


def test_wav_header_refuses_non_raw_formats() -> None:
    with pytest.raises(ValueError):
        wav_header(FormatSpec.parse("mp3_44100_128"), 10)


def test_raw_pcm_with_half_a_sample_is_truncated(tmp_path: Path) -> None:
    path = tmp_path / "odd.raw"
    path.write_bytes(bytes(4801))
    with pytest.raises(InvalidAudio, match="whole number of 2-byte samples"):
        verify_audio(path, "pcm_24000")
    with pytest.raises(InvalidAudio):
        wrap_raw(bytes(3), FormatSpec.parse("pcm_24000"))


def _expect(path: Path, spec: str, *fragments: str) -> str:
    with pytest.raises(InvalidAudio) as caught:
        verify_audio(path, spec)
    message = str(caught.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message
    assert isinstance(caught.value, AudioError)
    return message


def test_truncated_mp3_names_the_frame(audio_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    data = format_file(audio_dir, "mp3_44100_128").read_bytes()
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(data[:len(data) // 2 + 7])
    _expect(cut, "mp3_44100_128", "truncated: frame", "runs past end of file")


def test_mp3_cut_at_a_frame_boundary_is_caught_by_the_info_header(audio_dir: Path,  # noqa: F811
                                                                  tmp_path: Path) -> None:
    data = format_file(audio_dir, "mp3_44100_128").read_bytes()
    # 128 kbps at 44.1 kHz: frames of 417 or 418 bytes; find a boundary by walking.
    from runner.audio.mp3frames import find_first_frame, skip_id3v2
    pos = find_first_frame(data, skip_id3v2(data))
    assert pos is not None
    for _ in range(10):
        pos += 144 * 128000 // 44100 + ((data[pos + 2] >> 1) & 1)
    cut = tmp_path / "boundary.mp3"
    cut.write_bytes(data[:pos])
    _expect(cut, "mp3_44100_128", "truncated", "header declares")


def test_html_error_page_saved_as_mp3(tmp_path: Path) -> None:
    page = tmp_path / "err.mp3"
    page.write_text("<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head></html>")
    _expect(page, "mp3_44100_128", "expected mp3 at 44100 Hz", "HTML document", "502 Bad Gateway")
    assert sniff(page).kind == "html"


def test_json_error_body_saved_as_raw_pcm(tmp_path: Path) -> None:
    body = tmp_path / "err.raw"
    body.write_text('{"detail": {"status": "quota_exceeded"}}')
    _expect(body, "pcm_24000", "JSON document", "quota_exceeded")


def test_mislabelled_files(audio_dir: Path) -> None:  # noqa: F811
    _expect(format_file(audio_dir, "wav"), "mp3_44100_128",
            "expected mp3 at 44100 Hz, found WAV pcm_s16le 44100 Hz stereo")
    _expect(format_file(audio_dir, "mp3_22050_32"), "mp3_44100_128",
            "expected mp3 at 44100 Hz, found mp3 22050 Hz")
    _expect(format_file(audio_dir, "opus_48000_64"), "mp3_44100_128", "found Ogg Opus")
    _expect(format_file(audio_dir, "mp3_44100_128"), "opus_48000_64", "expected Ogg Opus")
    _expect(format_file(audio_dir, "mp3_44100_128"), "pcm_24000", "expected PCM s16le",
            "found MP3")


def test_wav_of_the_wrong_g711_law_is_rejected(audio_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    ulaw = tmp_path / "u.wav"
    ulaw.write_bytes(wrap_raw(format_file(audio_dir, "ulaw_8000").read_bytes(),
                              FormatSpec.parse("ulaw_8000")))
    _expect(ulaw, "alaw_8000", "expected G.711 A-law at 8000 Hz, found WAV pcm_mulaw 8000 Hz")


def test_wav_claiming_more_data_than_present(audio_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    data = format_file(audio_dir, "wav").read_bytes()
    truncated = tmp_path / "short.wav"
    truncated.write_bytes(data[:len(data) // 2])
    _expect(truncated, "wav", "truncated: the RIFF header declares")
    # RIFF size consistent, data chunk lying: the data check must catch it alone.
    layout = parse_wav(data)
    lying = bytearray(data)
    struct.pack_into("<I", lying, layout.data_offset - 4, layout.data_bytes + 4000)
    liar = tmp_path / "liar.wav"
    liar.write_bytes(bytes(lying))
    _expect(liar, "wav", "truncated: the data chunk declares")


def test_ogg_with_a_broken_page(audio_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    data = bytearray(format_file(audio_dir, "opus_48000_64").read_bytes())
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x40
    bad = tmp_path / "flip.opus"
    bad.write_bytes(bytes(flipped))
    _expect(bad, "opus_48000_64", "fails its CRC check")
    assert verify_audio(bad, "opus_48000_64", check_crc=False).codec == "opus"  # CRC is opt-out
    second = data.find(b"OggS", 200)
    broken = bytearray(data)
    broken[second:second + 4] = b"OggX"
    bad.write_bytes(bytes(broken))
    _expect(bad, "opus_48000_64", "no Ogg page at byte")
    bad.write_bytes(bytes(data[:len(data) - 100]))
    _expect(bad, "opus_48000_64", "truncated")
    last = data.rfind(b"OggS")
    bad.write_bytes(bytes(data[:last]))
    _expect(bad, "opus_48000_64", "no end-of-stream page")


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    _expect(empty, "mp3_44100_128", "empty file")
    _expect(empty, "pcm_24000", "empty file")
    assert sniff(empty).kind == "empty"
    _expect(tmp_path / "missing.mp3", "mp3_44100_128", "cannot read")


def test_too_short_is_rejected(tmp_path: Path) -> None:
    blip = make(tmp_path / "blip.mp3", "mp3_44100_128", [("tone:440", 0.02)])
    _expect(blip, "mp3_44100_128", "less than the 50 ms minimum")


def test_id3_and_trailing_tags_are_tolerated(audio_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    data = format_file(audio_dir, "mp3_44100_128").read_bytes()
    tagged = tmp_path / "tagged.mp3"
    id3v1 = b"TAG" + bytes(125)
    ape_footer = b"APETAGEX" + struct.pack("<IIII", 2000, 32, 0, 0) + bytes(8)
    tagged.write_bytes(data + ape_footer + id3v1)
    assert abs(verify_audio(tagged, "mp3_44100_128").duration_s - 1.0) < 0.03
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(data + b"garbage after the last frame")
    _expect(junk, "mp3_44100_128", "corrupt")


def test_sniff_names_what_a_file_is(audio_dir: Path) -> None:  # noqa: F811
    assert sniff(format_file(audio_dir, "mp3_44100_128")).description.startswith("MP3 (MPEG-1")
    assert sniff(format_file(audio_dir, "mp3_22050_32")).description.startswith("MP3 (MPEG-2")
    assert sniff(format_file(audio_dir, "opus_48000_64")).kind == "ogg-opus"
    assert sniff(format_file(audio_dir, "wav")).description == "WAV pcm_s16le 44100 Hz stereo"
    assert sniff(format_file(audio_dir, "pcm_24000")).kind == "unknown"  # bare samples


def test_ogg_crc_matches_ffmpeg_pages(audio_dir: Path) -> None:  # noqa: F811
    data = format_file(audio_dir, "opus_48000_64").read_bytes()
    size = 27 + data[26] + sum(data[27:27 + data[26]])
    page = data[:22] + bytes(4) + data[26:size]
    assert ogg_crc(page) == struct.unpack_from("<I", data, 22)[0]


def test_decode_builds_an_audiosegment_without_ffprobe(audio_dir: Path,  # noqa: F811
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # no ffprobe (nor ffmpeg) to find on PATH
    segment = decode(format_file(audio_dir, "ulaw_8000"), FormatSpec.parse("ulaw_8000"))
    assert (segment.frame_rate, segment.channels, segment.sample_width) == (8000, 1, 2)
    assert abs(len(segment) - 1000) <= 1
    stereo = decode(format_file(audio_dir, "wav").read_bytes())
    assert stereo.channels == 2
    resampled = decode(format_file(audio_dir, "opus_48000_64"), sample_rate=22050, channels=1)
    assert resampled.frame_rate == 22050 and abs(len(resampled) - 1000) <= 2


def test_decode_of_garbage_names_the_file(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.mp3"
    garbage.write_bytes(b"\x00\x01" * 500)
    with pytest.raises(InvalidAudio, match="ffmpeg cannot decode"):
        decode_pcm(garbage)


def test_decode_many_keeps_order_and_names_a_bad_file(audio_dir: Path,  # noqa: F811
                                                      tmp_path: Path) -> None:
    names = ["mp3_44100_128", "pcm_24000", "opus_48000_64", "ulaw_8000", "wav"] * 3
    sources = [(format_file(audio_dir, n), FormatSpec.parse(n)) for n in names]
    batched = list(decode_many(sources, sample_rate=16000, channels=1, batch_size=4, workers=2))
    alone = [decode_pcm(p, s, sample_rate=16000, channels=1).data for p, s in sources]
    assert batched == alone
    bad = tmp_path / "bad.mp3"
    bad.write_text("<html>oops</html>")
    with pytest.raises(InvalidAudio, match="bad.mp3"):
        list(decode_many([*sources[:3], (bad, None)], sample_rate=16000, channels=1,
                         batch_size=8))


def test_decode_check_catches_headers_that_lie(audio_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    # An Ogg Opus file whose last granule claims a second more than its packets hold,
    # with a valid CRC: structurally sound, caught only by decoding.
    data = bytearray(format_file(audio_dir, "opus_48000_64").read_bytes())
    last = data.rfind(b"OggS")
    granule = struct.unpack_from("<q", data, last + 6)[0]
    struct.pack_into("<q", data, last + 6, granule + 48000)
    struct.pack_into("<I", data, last + 22, 0)
    struct.pack_into("<I", data, last + 22, ogg_crc(bytes(data[last:])))
    liar = tmp_path / "liar.opus"
    liar.write_bytes(bytes(data))
    assert abs(verify_audio(liar, "opus_48000_64").duration_s - 2.0) < 0.001
    _expect_decoded = pytest.raises(InvalidAudio, match="decodes to 1.0.. s of audio, its headers")
    with _expect_decoded:
        verify_audio(liar, "opus_48000_64", decode_check=True)
