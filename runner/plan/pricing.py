"""What a job is expected to cost, in the provider's credits.

cost = per_request + per_1k_chars x characters / 1000 + per_second x seconds
       + per_step x steps

Defaults and their sources (override any of them with `prices:` in a manifest):
- stable-audio: 252 credits ("AI/ML Tokens") per step, from AI/ML API's Stable
  Audio page ("consuming a total of 252 AI/ML Tokens per step"); steps default 100.
- sound-generation (ElevenLabs direct): 25 credits per second of set duration,
  100 per generation when the model picks the duration (ElevenLabs'
  sound-generation pricing note, docs/providers.md "Prices"), i.e. an assumed 4 s.
- text-to-speech (ElevenLabs direct): 1 credit per character (ElevenLabs bills
  characters; Flash/Turbo models cost half, set `prices:` when you use them).
- speech-to-text (ElevenLabs direct): billed by audio hours on ElevenLabs plans;
  no credit figure is published (docs/providers.md, "Prices"), so no default.
- market models (kie.ai, apikley): the provider documents (docs/providers.md) publish no
  price list (their callback examples show `consumeCredits: 100`, a
  placeholder). The defaults are the sandbox's own price list (docs/sandbox.md):
  12 credits per 1,000 characters of speech, 1.2 per second of sound effect,
  3.5 per minute of transcribed audio, whole credits, at least 1 per request.
  They are marked as estimates in `runner plan`; set `prices:` from your
  account's price page for real figures.

`runner plan` shows the estimate; `--max-credits` reserves the worst case
(`worst_case`), the most the provider can bill for the request as sent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runner.catalog.models import Kind
from runner.manifest.types import Job, JobKind

# Assumed length of a sound effect whose duration the model chooses.
AUTO_DURATION_S = 4.0


@dataclass(frozen=True, slots=True)
class Price:
    per_request: float = 0.0
    per_1k_chars: float = 0.0
    per_second: float = 0.0
    per_step: float = 0.0
    minimum: float = 0.0  # the least a request costs
    whole_credits: bool = False  # the provider bills whole credits (rounded up)
    estimate: bool = False  # not from a published price list
    # Seconds billed when the request leaves the length to the model; None: the
    # length it chose, so at worst the longest it makes (its schema's maximum).
    auto_seconds: float | None = None


DEFAULT_PRICES: dict[str, Price] = {
    "elevenlabs/text-to-speech-turbo-2-5": Price(per_1k_chars=12.0, minimum=1.0,
                                                 whole_credits=True, estimate=True),
    "elevenlabs/sound-effect-v2": Price(per_second=1.2, minimum=1.0, whole_credits=True,
                                        estimate=True),
    "elevenlabs/speech-to-text": Price(per_second=3.5 / 60, minimum=1.0, whole_credits=True,
                                       estimate=True),
    "stable-audio": Price(per_step=252.0),
    "text-to-speech": Price(per_1k_chars=1000.0),
    "text-to-speech-with-timestamps": Price(per_1k_chars=1000.0),
    # A flat 100 when the model picks the length (the pricing note), 25 per second set.
    "sound-generation": Price(per_second=25.0, auto_seconds=AUTO_DURATION_S),
}


def price_table(overrides: Mapping[str, Mapping[str, Any]]) -> dict[str, Price]:
    table = dict(DEFAULT_PRICES)
    for model, fields in overrides.items():
        table[model] = Price(**{k: float(v) for k, v in fields.items()})  # type: ignore[arg-type]
    return table


def estimate(job: Job, prices: Mapping[str, Price],
             audio_seconds: float | None = None) -> float | None:
    """Estimated credits for one job, or None when no price or no measure is known.

    `audio_seconds` is the length of the audio a transcription job will hear, when known.
    """
    return _cost(job, prices, audio_seconds, worst=False)


def worst_case(job: Job, prices: Mapping[str, Price],
               audio_seconds: float | None = None) -> float | None:
    """The most the provider can bill for the job's request, or None when that is not
    known (no price, or a transcription of audio of unknown length).

    What `--max-credits` reserves. It differs from the estimate where the request
    leaves something to the model: a sound effect without `duration_seconds` is
    billed for the length the model chose, so the worst case is the longest it
    makes (22 s on the market: 27 credits, where the estimate assumes 4 s: 5).
    """
    return _cost(job, prices, audio_seconds, worst=True)


def _cost(job: Job, prices: Mapping[str, Price], audio_seconds: float | None,
          *, worst: bool) -> float | None:
    if job.kind is JobKind.STITCH:
        return 0.0  # local work
    price = prices.get(job.model.id)
    if price is None:
        return None
    request = job.input
    cost = price.per_request
    if price.per_1k_chars:
        cost += price.per_1k_chars * len(str(request.get("text", ""))) / 1000.0
    if price.per_step:
        cost += price.per_step * float(request.get("steps", 100))
    if price.per_second:
        seconds = _seconds(job, price, audio_seconds, worst=worst)
        if seconds is None:
            return None
        cost += price.per_second * seconds
    if price.whole_credits:
        cost = math.ceil(round(cost, 6))
    return round(max(cost, price.minimum), 4)


def _seconds(job: Job, price: Price, audio_seconds: float | None, *,
             worst: bool) -> float | None:
    request = job.input
    if job.model.kind is Kind.TRANSCRIPT:
        return audio_seconds
    if "duration_seconds" in request:
        return float(request["duration_seconds"])
    if "seconds_total" in request:
        return float(request["seconds_total"])
    if price.auto_seconds is not None:
        return price.auto_seconds
    if worst:
        return _longest_s(job)
    return AUTO_DURATION_S


def _longest_s(job: Job) -> float | None:
    """The longest sound the model makes when it picks the length: its input schema's
    maximum `duration_seconds` (or `seconds_total`); None when the schema sets none."""
    from runner.schemas.validate import model_schema

    properties = model_schema(job.model).get("properties", {})
    for name in ("duration_seconds", "seconds_total"):
        maximum = properties.get(name, {}).get("maximum")
        if isinstance(maximum, (int, float)):
            return float(maximum)
    return None
