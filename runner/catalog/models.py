"""The catalogue of models `runner` knows: who serves them, what they make.

A manifest's `model` names one entry here. Each entry belongs to one provider
family (the protocol spoken) and has one input JSON Schema, derived from the
provider's OpenAPI document into `schemas/models/<schema_name>.schema.json`.
Market models keep the market's names (`elevenlabs/sound-effect-v2`); the
ElevenLabs direct API has no model names of its own beyond `model_id`, so its
entries are named after its endpoints (`text-to-speech`, `sound-generation`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Family(StrEnum):
    """A provider protocol. kie.ai and apikley speak the same market jobs API."""

    MARKET = "market"
    AIMLAPI = "aimlapi"
    ELEVENLABS = "elevenlabs"


class Kind(StrEnum):
    """What a model produces; decides outputs, pricing and how results are stored."""

    SOUND_EFFECT = "sound_effect"
    SPEECH = "speech"
    TRANSCRIPT = "transcript"
    MUSIC = "music"


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    family: Family
    kind: Kind
    # The input field that selects the audio format, if the model has one.
    format_field: str | None
    # The format the provider returns when none is asked for.
    default_format: str
    summary: str
    # Transcription models: the input fields the runner fills with the audio to
    # transcribe, for a public URL and for local bytes (None: upload, then URL).
    audio_url_field: str | None = None
    audio_file_field: str | None = None
    # Speech models: the input field naming the voice (dialogue lines set it).
    voice_field: str | None = None

    @property
    def schema_name(self) -> str:
        """File stem of the derived input schema under `schemas/models/`."""
        return self.id.replace("/", "--")

    @property
    def makes_audio(self) -> bool:
        return self.kind is not Kind.TRANSCRIPT


MODELS: dict[str, ModelInfo] = {
    m.id: m
    for m in (
        ModelInfo(
            "elevenlabs/text-to-speech-turbo-2-5", Family.MARKET, Kind.SPEECH,
            format_field=None, default_format="mp3_44100_128",
            summary="ElevenLabs Turbo v2.5 text to speech on the market jobs API",
            voice_field="voice",
        ),
        ModelInfo(
            "elevenlabs/sound-effect-v2", Family.MARKET, Kind.SOUND_EFFECT,
            format_field="output_format", default_format="mp3_44100_128",
            summary="ElevenLabs sound effects v2 on the market jobs API",
        ),
        ModelInfo(
            "elevenlabs/speech-to-text", Family.MARKET, Kind.TRANSCRIPT,
            format_field=None, default_format="json",
            summary="ElevenLabs speech to text on the market jobs API",
            audio_url_field="audio_url",
        ),
        ModelInfo(
            "stable-audio", Family.AIMLAPI, Kind.MUSIC,
            format_field=None, default_format="wav",
            summary="Stable Audio music and cues on AI/ML API",
        ),
        ModelInfo(
            "text-to-speech", Family.ELEVENLABS, Kind.SPEECH,
            format_field="output_format", default_format="mp3_44100_128",
            summary="ElevenLabs direct: POST /v1/text-to-speech/{voice_id}",
            voice_field="voice_id",
        ),
        ModelInfo(
            "text-to-speech-with-timestamps", Family.ELEVENLABS, Kind.SPEECH,
            format_field="output_format", default_format="mp3_44100_128",
            summary="ElevenLabs direct: POST /v1/text-to-speech/{voice_id}/with-timestamps",
            voice_field="voice_id",
        ),
        ModelInfo(
            "sound-generation", Family.ELEVENLABS, Kind.SOUND_EFFECT,
            format_field="output_format", default_format="mp3_44100_128",
            summary="ElevenLabs direct: POST /v1/sound-generation",
        ),
        ModelInfo(
            "speech-to-text", Family.ELEVENLABS, Kind.TRANSCRIPT,
            format_field=None, default_format="json",
            summary="ElevenLabs direct: POST /v1/speech-to-text",
            audio_url_field="source_url", audio_file_field="file",
        ),
    )
}
