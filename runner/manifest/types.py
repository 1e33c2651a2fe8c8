"""A manifest's data: the `Pipeline` of concrete `Job`s, apart from the code that reads it.

Every stage above the manifest (plan, engine, report) works on these types;
`runner.manifest.load` builds them from a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.catalog.accounts import ProviderAccount
from runner.catalog.models import ModelInfo
from runner.manifest.yaml_source import YamlDocument

if TYPE_CHECKING:
    from runner.audio.steps import PostProcess


class JobKind(StrEnum):
    GENERATE = "generate"  # one request to a provider
    STITCH = "stitch"  # local: joins a narration's segments into one programme


class AudioKind(StrEnum):
    URL = "url"
    FILE = "file"
    FROM = "from"


@dataclass(frozen=True, slots=True)
class AudioSource:
    """What a transcription job listens to. `value`: a URL, an absolute file path, or a job id."""

    kind: AudioKind
    value: str


@dataclass(frozen=True, slots=True)
class DialogueLine:
    text: str
    voice: str | None = None
    input: dict[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class NarrationSpec:
    """A programme made of TTS segments: a narration (one text, split) or a dialogue
    (ordered lines, each with its own voice and settings), and how to stitch it."""

    text: str
    text_file: str | None = None
    lines: tuple[DialogueLine, ...] = ()  # a dialogue's lines; empty for a narration
    max_chars: int = 1500
    gap_ms: int = 250
    paragraph_gap_ms: int = 750
    crossfade_ms: int = 0
    fade_ms: int = 10
    trim_silence: bool = True
    loudness_lufs: float = -16.0
    true_peak_dbtp: float = -1.0
    output_format: str | None = None
    subtitles: bool = True
    # How segments learn their neighbours: text (previous_text/next_text), request
    # ids (ElevenLabs request stitching, segments then run in order), or auto.
    context: str = "auto"
    verify: str | None = None  # "transcript": transcribe each segment, report its WER
    max_wer: float = 0.15

    @property
    def is_dialogue(self) -> bool:
        return bool(self.lines)


@dataclass(frozen=True, slots=True)
class Segment:
    """A narration job's piece: which stitch it belongs to, and where in the text."""

    parent: str
    index: int  # 0-based position in the programme
    paragraph: int


@dataclass(slots=True)
class Job:
    """One unit of work after expansion."""

    id: str
    template: int  # index of the manifest entry it came from (for error locations)
    kind: JobKind
    model: ModelInfo
    provider: str
    # What is sent, before schema defaults are filled. Never changed in place: it may be
    # the manifest's own mapping, shared with the document and, through a YAML alias or
    # with the job's variants, with other jobs (copying it was a tenth of `validate`).
    input: dict[str, Any]
    output: str  # POSIX path relative to the pipeline's output_dir
    format: str  # provider format name (mp3_44100_128, wav, json)
    variant: int = 1
    variants: int = 1
    freeze: bool = False
    audio: AudioSource | None = None
    depends_on: tuple[str, ...] = ()
    narration: NarrationSpec | None = None
    segment: Segment | None = None
    # ElevenLabs request stitching: the segments whose request ids go in
    # previous_request_ids (the engine fills them when those are fresh).
    context_from: tuple[str, ...] = ()
    # A segment's transcription check (verify: transcript): the segment it checks.
    verifies: str | None = None
    matrix: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    # Steps applied to the provider's result (runner.manifest.postprocess); None: the result as is.
    post: PostProcess | None = None
    # Where `runner export` copies the approved take (matrix values filled; {id}, {ext} not).
    approved: str | None = None

    @property
    def base_id(self) -> str:
        return self.id.split("#", 1)[0]


def generate_job(id: str, template: int, model: ModelInfo, provider: str,
                 input: dict[str, Any], output: str, format: str,
                 variant: int, variants: int, freeze: bool, audio: AudioSource | None,
                 depends_on: tuple[str, ...], matrix: dict[str, Any], notes: str,
                 post: PostProcess | None, approved: str | None) -> Job:
    """A GENERATE job. Built positionally, here beside the class so that the order of
    its fields is in view: keywords cost three times as much, on 100,000 jobs."""
    return Job(id, template, JobKind.GENERATE, model, provider, input, output, format,
               variant, variants, freeze, audio, depends_on, None, None, (), None, matrix,
               notes, post, approved)


@dataclass(slots=True)
class Pipeline:
    path: Path
    name: str
    output_dir: Path
    accounts: dict[str, ProviderAccount]
    jobs: dict[str, Job]  # in manifest order; dependencies come first
    prices: dict[str, dict[str, float]]
    document: YamlDocument
    description: str = ""

    def job_at(self, job_id: str) -> Job:
        return self.jobs[job_id]
