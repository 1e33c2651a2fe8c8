"""Narrations and dialogues: one manifest entry, many TTS segments, one stitch.

A narration's text is split at paragraph, sentence and clause boundaries
(runner.text.split); a dialogue's lines are its segments, each with its own
voice and settings. Every segment hears its neighbours: as `previous_text` /
`next_text`, or, on the ElevenLabs API, as `previous_request_ids` (then each
segment waits for the one before it, whose request id it needs). The
neighbours' text is not part of a segment's cache key (see plan/plan.py), so editing
one paragraph regenerates that paragraph, not the ones around it.

With `verify: transcript`, each segment is also transcribed (a job of its own)
and the stitch reports each segment's word error rate.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from runner.catalog.models import MODELS, Family, Kind, ModelInfo
from runner.manifest.expansion import ExpansionContext, extension_for, merged, plain_copy
from runner.manifest.types import (
    AudioKind,
    AudioSource,
    DialogueLine,
    Job,
    JobKind,
    NarrationSpec,
    Segment,
)

DocPath = tuple[str | int, ...]
# ElevenLabs request stitching takes at most this many ids (docs/providers.md,
# "ElevenLabs: request stitching").
MAX_REQUEST_IDS = 3
# The transcription model of each family, for `verify: transcript`.
VERIFY_MODEL = {Family.MARKET: "elevenlabs/speech-to-text", Family.ELEVENLABS: "speech-to-text"}
VERIFY_INPUT: dict[Family, dict[str, Any]] = {
                Family.MARKET: {"diarize": False, "tag_audio_events": False},
                Family.ELEVENLABS: {"model_id": "scribe_v1", "tag_audio_events": False}}


@dataclass(frozen=True, slots=True)
class _Piece:
    text: str
    paragraph: int
    overrides: dict[str, Any]


def uses_request_ids(spec: NarrationSpec, model: ModelInfo, request: dict[str, Any]) -> bool:
    if spec.context == "text" or model.family is not Family.ELEVENLABS:
        return False
    # Request stitching is not available for eleven_v3 (docs/providers.md,
    # "ElevenLabs: request stitching").
    return str(request.get("model_id", "")) != "eleven_v3"


def _read_text(ctx: ExpansionContext, raw: dict[str, Any], where: DocPath, job_id: str) -> str | None:
    text = raw.get("text")
    text_file = raw.get("text_file")
    if text_file is not None:
        from runner.manifest.filenames import local_file

        path, problem = local_file(ctx.pipeline.path.parent, str(text_file), "text file")
        if path is None:
            ctx.problem((*where, "text_file"), str(problem), job_id)
            return None
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except OSError as exc:
            ctx.problem((*where, "text_file"), f"cannot read {text_file}: {exc.strerror}", job_id)
            return None
        except UnicodeDecodeError as exc:
            ctx.problem((*where, "text_file"), f"{text_file} is not UTF-8 "
                        f"(byte 0x{exc.object[exc.start]:02x} at offset {exc.start})", job_id)
            return None
    if not isinstance(text, str) or not text.strip():
        ctx.problem(where, "the narration text is empty", job_id)
        return None
    return text


def _spec(ctx: ExpansionContext, raw: dict[str, Any], key: str, base: DocPath,
          job_id: str) -> NarrationSpec | None:
    settings = {k: v for k, v in raw.items() if k not in ("text", "text_file", "lines")}
    if key == "dialogue":
        lines = tuple(DialogueLine(str(line["text"]), line.get("voice"),
                                   dict(line.get("input") or {}))
                      for line in raw.get("lines", []) if isinstance(line, dict))
        return NarrationSpec(text="\n\n".join(line.text for line in lines), lines=lines,
                             **settings)
    max_chars = raw.get("max_chars", 1500)
    if not isinstance(max_chars, int) or not 50 <= max_chars <= 5000:
        return None  # the structure check has reported it
    text = _read_text(ctx, raw, (*base, key), job_id)
    if text is None:
        return None
    text_file = raw.get("text_file")
    return NarrationSpec(text=text, text_file=str(text_file) if text_file else None, **settings)


def _pieces(spec: NarrationSpec, model: ModelInfo) -> list[_Piece]:
    if spec.is_dialogue:
        pieces = []
        for i, line in enumerate(spec.lines):
            overrides = dict(line.input)
            if line.voice and model.voice_field:
                overrides[model.voice_field] = line.voice
            pieces.append(_Piece(line.text, i, overrides))
        return pieces
    from runner.text.split import split_text

    return [_Piece(s.text, s.paragraph_index, {}) for s in split_text(spec.text, spec.max_chars)]


def _context(pieces: list[_Piece], index: int, limit_chars: int = 5000) -> tuple[str | None,
                                                                                   str | None]:
    from runner.text.split import neighbour_context

    # neighbour_context reads only `.text`, which pieces have too.
    return neighbour_context(pieces, index, limit_chars)  # type: ignore[arg-type]


def programme_jobs(ctx: ExpansionContext, t: dict[str, Any], sub: Callable[[Any], Any],
                   request: dict[str, Any], job_id: str, base: DocPath,
                   common: dict[str, Any], variants: int,
                   output_for: Callable[[str], str | None],
                   format_of: Callable[[dict[str, Any]], str]) -> Iterator[Job]:
    """The segment jobs, verification jobs and the stitch job of one entry."""
    key = "dialogue" if "dialogue" in t else "narration"
    model: ModelInfo = common["model"]
    if model.kind is not Kind.SPEECH:
        ctx.problem((*base, "model"), f"a {key} needs a text-to-speech model; {model.id} "
                    "is not one", job_id)
        return
    if variants != 1:
        ctx.problem((*base, "variants"), f"variants are not supported for {key} jobs; use a "
                    "matrix (e.g. over voices) instead", job_id)
        return
    raw = sub(t[key])
    if not isinstance(raw, dict):
        return
    spec = _spec(ctx, raw, key, base, job_id)
    if spec is None:
        return
    pieces = _pieces(spec, model)
    seg_format = format_of(request)
    output = output_for(spec.output_format or seg_format)
    if output is None:
        return
    stem = posixpath.splitext(output)[0]
    chained = uses_request_ids(spec, model, request)
    seg_ids: list[str] = []
    verify_ids: list[str] = []
    for i, piece in enumerate(pieces):
        seg_input = {**merged(plain_copy(request), piece.overrides), "text": piece.text}
        previous_text, next_text = _context(pieces, i)
        if previous_text:
            seg_input["previous_text"] = previous_text
        if next_text:
            seg_input["next_text"] = next_text
        seg_id = f"{job_id}/{i + 1:03d}"
        seg_path = f"{stem}.segments/{i + 1:03d}"
        previous = tuple(seg_ids[-MAX_REQUEST_IDS:]) if chained else ()
        yield Job(id=seg_id, kind=JobKind.GENERATE, input=seg_input,
                  output=f"{seg_path}.{extension_for(seg_format)}", format=seg_format,
                  segment=Segment(job_id, i, piece.paragraph), context_from=previous,
                  depends_on=previous[-1:], **common)
        seg_ids.append(seg_id)
        if spec.verify == "transcript":
            verify_ids.append(f"{seg_id}.verify")
            yield _verify_job(seg_id, f"{seg_path}.transcript.json", common)
    yield Job(id=job_id, kind=JobKind.STITCH, input={}, output=output,
              format=spec.output_format or seg_format, narration=spec,
              depends_on=(*seg_ids, *verify_ids), **common)


def _verify_job(seg_id: str, output: str, common: dict[str, Any]) -> Job:
    model: ModelInfo = common["model"]
    stt = MODELS[VERIFY_MODEL[model.family]]
    fields = {**common, "model": stt}
    return Job(id=f"{seg_id}.verify", kind=JobKind.GENERATE,
               input=dict(VERIFY_INPUT[model.family]), output=output, format="json",
               audio=AudioSource(AudioKind.FROM, seg_id), depends_on=(seg_id,),
               verifies=seg_id, **fields)
