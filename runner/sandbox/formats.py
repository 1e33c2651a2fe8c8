"""Audio output formats as the providers name them: `codec_rate[_kbps]`.

`mp3_44100_128` is MPEG audio at 44.1 kHz and 128 kbit/s, `pcm_16000` raw signed
16-bit little-endian mono without a header, `ulaw_8000`/`alaw_8000` raw G.711
bytes, `opus_48000_64` Ogg Opus, `wav_22050` a RIFF/WAVE file. The enums below
are the ones each endpoint documents; an endpoint rejects anything outside its own.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AudioFormat:
    codec: str  # mp3 | pcm | ulaw | alaw | opus | wav
    rate: int
    kbps: int = 0
    channels: int = 1

    @property
    def name(self) -> str:
        base = f"{self.codec}_{self.rate}" + (f"_{self.kbps}" if self.kbps else "")
        return base if self.channels == 1 else f"{base}_stereo"

    @property
    def extension(self) -> str:
        return {"mp3": "mp3", "opus": "opus", "wav": "wav", "ulaw": "ulaw", "alaw": "alaw"}.get(
            self.codec, "pcm"
        )

    @property
    def content_type(self) -> str:
        return {
            "mp3": "audio/mpeg",
            "opus": "audio/ogg",
            "wav": "audio/wav",
            "ulaw": "audio/basic",
            "alaw": "audio/x-alaw-basic",
        }.get(self.codec, "audio/pcm")

    @property
    def raw_samples(self) -> bool:
        """True when the chunks of this format are plain s16le samples at `rate`."""
        return self.codec in ("pcm", "wav")

    @property
    def grid(self) -> int:
        """Output samples per indivisible chunk: an MP3 frame, an Opus packet, or one sample."""
        if self.codec == "mp3":
            return 1152 if self.rate >= 32000 else 576
        if self.codec == "opus":
            return 960  # 20 ms packets at 48 kHz
        return 1


def parse_format(name: str) -> AudioFormat:
    """`mp3_44100_128` → AudioFormat; raises ValueError for anything malformed."""
    parts = name.split("_")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts[1:]):
        raise ValueError(f"malformed output format {name!r}")
    codec, rate = parts[0], int(parts[1])
    kbps = int(parts[2]) if len(parts) == 3 else 0
    if codec not in ("mp3", "pcm", "ulaw", "alaw", "opus", "wav"):
        raise ValueError(f"unknown codec in {name!r}")
    if (codec in ("mp3", "opus")) != bool(kbps):
        raise ValueError(f"{name!r}: a bitrate is required for mp3/opus and only for them")
    return AudioFormat(codec, rate, kbps)


_MP3 = ["mp3_22050_32", "mp3_44100_32", "mp3_44100_64", "mp3_44100_96", "mp3_44100_128",
        "mp3_44100_192"]
_OPUS = ["opus_48000_32", "opus_48000_64", "opus_48000_96", "opus_48000_128", "opus_48000_192"]

# The market's sound-effect-v2 enum (docs/providers.md, "Market API: sound-effect-v2").
MARKET_SFX_FORMATS: tuple[str, ...] = (
    *_MP3, "pcm_8000", "pcm_16000", "pcm_22050", "pcm_24000", "pcm_44100", "pcm_48000",
    "ulaw_8000", "alaw_8000", *_OPUS,
)
# ElevenLabs direct: the SDK's output formats (elevenlabs 2.78.0
# TextToSpeechConvertRequestOutputFormat), the same for convert, with-timestamps and
# sound generation (schemas/openapi/elevenlabs/elevenlabs.yaml `OutputFormat`).
ELEVENLABS_TTS_FORMATS: tuple[str, ...] = (
    "mp3_22050_32", "mp3_24000_48", *_MP3[1:], "pcm_8000", "pcm_16000", "pcm_22050",
    "pcm_24000", "pcm_32000", "pcm_44100", "pcm_48000", "ulaw_8000", "alaw_8000", *_OPUS,
    "wav_8000", "wav_16000", "wav_22050", "wav_24000", "wav_32000", "wav_44100", "wav_48000",
)
ELEVENLABS_SFX_FORMATS: tuple[str, ...] = ELEVENLABS_TTS_FORMATS
# The streaming endpoints list the same minus WAV (TextToSpeechStreamRequestOutputFormat):
# a RIFF header states sizes a stream cannot know in advance.
ELEVENLABS_STREAM_FORMATS: tuple[str, ...] = tuple(
    f for f in ELEVENLABS_TTS_FORMATS if not f.startswith("wav_"))
DEFAULT_FORMAT = "mp3_44100_128"
# stable-audio answers a 44.1 kHz stereo 16-bit WAV (the doc's example: 7938078 bytes for 45 s).
STABLE_AUDIO_FORMAT = AudioFormat("wav", 44100, 0, channels=2)
