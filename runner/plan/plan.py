"""The plan: for every job, its cache key, whether it must be generated, and its cost.

A job's cache key is the sha256 of the canonical JSON of what was asked: the
target (live or sandbox), provider family, model, the input with the schema's
defaults filled in, the variant, the audio it hears, and the keys of the jobs it
depends on. Neighbour context sent with narration segments (`previous_text`,
`next_text`) is left out: editing one paragraph regenerates that paragraph, not
its neighbours. Each segment's context has its own digest, kept in the lockfile;
with `recontext`, a segment whose context digest changed is regenerated too.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.manifest.expand import CONTEXT_FIELDS, REQUEST_ID_FIELDS
from runner.manifest.types import AudioKind, Job, JobKind, Pipeline
from runner.plan.pricing import Price, estimate, price_table
from runner.schemas.validate import fill_defaults
from runner.store.cache import ContentCache, file_digest
from runner.store.journal import Journal
from runner.store.layout import BuildLayout
from runner.store.lockfile import LockEntry, read_lockfile

if TYPE_CHECKING:
    from runner.store.reviews import Review

KEY_VERSION = 1


class State(StrEnum):
    NEW = "new"
    CHANGED = "changed"
    FORCED = "forced"
    RESTORE = "restore"  # the output is missing, or the take asked for is in the cache
    RECONTEXT = "context changed"  # a segment's neighbours changed (runner run --recontext)
    UP_TO_DATE = "up to date"
    FROZEN = "frozen"  # changed, but `freeze: true` or an approval keeps the locked asset
    # The output was edited by hand (it is not the take the runner wrote): kept until
    # `--restore ID` (put the take back) or `--force ID` (a new take) says otherwise.
    MODIFIED = "modified"
    REJECTED = "rejected: new take"  # its take was rejected in review (runner.store.reviews)
    RETAKEN = "input retaken"  # a job it depends on gets a new take: remade from that

    @property
    def needs_work(self) -> bool:
        return self in (State.NEW, State.CHANGED, State.FORCED, State.RESTORE, State.RECONTEXT,
                        State.REJECTED, State.RETAKEN)

    @property
    def new_take(self) -> bool:
        """A new take is wanted although the same request may be in the cache."""
        return self in (State.FORCED, State.RECONTEXT, State.REJECTED, State.RETAKEN)


@dataclass(slots=True)
class PlannedJob:
    job: Job
    key: str
    state: State
    cost: float | None
    locked: LockEntry | None = None
    # Post-processed jobs: the key of the provider's result under the processed asset.
    raw_key: str | None = None


@dataclass(slots=True)
class Plan:
    pipeline: Pipeline
    layout: BuildLayout
    jobs: list[PlannedJob]
    prices: dict[str, Price]
    counts: dict[State, int] = field(default_factory=dict)
    # Every job id the lockfile had, including jobs no longer in the manifest.
    locked_ids: frozenset[str] = frozenset()

    @property
    def to_generate(self) -> list[PlannedJob]:
        return [p for p in self.jobs if p.state.needs_work and p.state is not State.RESTORE]

    @property
    def estimated_cost(self) -> float:
        return round(sum(p.cost or 0.0 for p in self.to_generate), 4)

    @property
    def unpriced(self) -> list[PlannedJob]:
        return [p for p in self.to_generate if p.cost is None]


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def key_document(job: Job, target: str, upstream: list[str],
                 audio_digest: str | None) -> dict[str, Any]:
    """What a job's cache key is the hash of (`runner plan --json` shows the key)."""
    doc: dict[str, Any] = {
        "v": KEY_VERSION,
        "target": target,
        "family": job.model.family.value,
        "model": job.model.id,
        "kind": job.kind.value,
        "variant": job.variant,
        "upstream": upstream,
    }
    if job.kind is JobKind.STITCH:
        assert job.narration is not None
        settings = {k: v for k, v in _narration_settings(job).items()}
        doc["stitch"] = {**settings, "format": job.format}
        return doc
    request = job.input
    if job.segment is not None:
        request = {k: v for k, v in request.items() if k not in CONTEXT_FIELDS}
    # Request ids are filled at run time and change with every take: never part of a key.
    request = {k: v for k, v in request.items() if k not in REQUEST_ID_FIELDS}
    doc["input"] = fill_defaults(job.model, request)
    if job.audio is not None:
        doc["audio"] = {"kind": job.audio.kind.value,
                        "value": audio_digest if job.audio.kind is AudioKind.FILE
                        else job.audio.value if job.audio.kind is AudioKind.URL else None}
    return doc


def context_digest(job: Job) -> str | None:
    """A narration segment's neighbour context, hashed (None for other jobs)."""
    if job.segment is None:
        return None
    context = {k: job.input.get(k) for k in CONTEXT_FIELDS}
    return hashlib.sha256(canonical_json(context)).hexdigest()[:16]


def _narration_settings(job: Job) -> dict[str, Any]:
    assert job.narration is not None
    spec = job.narration
    # The words are in the segments' keys (upstream); here only how they are joined.
    return {name: getattr(spec, name) for name in spec.__slots__
            if name not in ("text", "text_file", "lines")}


def make_plan(pipeline: Pipeline, layout: BuildLayout, *, force: Collection[str] = (),
              recontext: bool = False, locked: Mapping[str, LockEntry] | None = None,
              outputs: Mapping[str, tuple[str, int, int]] | None = None,
              restore: Collection[str] = (),
              in_cache: Callable[[str], bool] | None = None,
              review: Review | None = None) -> Plan:
    """Plan a build. `outputs` is the journal's record of written outputs (path →
    sha256, size, mtime_ns): an output whose size and mtime still match is trusted
    without hashing it; any other existing output is hashed and compared.

    `restore`: jobs whose hand-edited output may be replaced by their take.
    `in_cache(key)`: whether the cache holds a take of that request; a new or
    changed job whose take is there is restored for nothing, as `run` will.
    `review` (default: the review file beside the lockfile) freezes approved takes and
    remakes rejected ones."""
    from runner.audio.steps import processed_key
    from runner.store.reviews import read_review, review_path

    locked = read_lockfile(layout.lockfile) if locked is None else locked
    review = read_review(review_path(layout)) if review is None else review
    states: dict[str, State] = {}
    outputs = outputs or {}
    prices = price_table(pipeline.prices)
    keys: dict[str, str] = {}
    digests: dict[str, str] = {}
    planned = []
    forced = set(force)
    restoring = set(restore)
    paying: set[str] = set()  # keys this run will pay for once
    for job in pipeline.jobs.values():  # dependencies come first
        audio_digest = None
        if job.audio is not None and job.audio.kind is AudioKind.FILE:
            audio_digest = digests.get(job.audio.value) or file_digest(Path(job.audio.value))
            digests[job.audio.value] = audio_digest
        upstream = [keys[d] for d in job.depends_on if d in keys]
        doc = key_document(job, layout.target.value, upstream, audio_digest)
        key = hashlib.sha256(canonical_json(doc)).hexdigest()
        raw_key = None
        if job.post is not None:  # the request's key, and the processed asset's own
            raw_key, key = key, processed_key(key, job.post)
        entry = locked.get(job.id)
        state = _state(job, key, entry, layout, forced, outputs)
        if state is State.MODIFIED and _named(job, restoring):
            state = State.RESTORE if entry is not None and entry.key == key else State.CHANGED
        if state in (State.NEW, State.CHANGED) and in_cache is not None and in_cache(key):
            state = State.RESTORE  # an earlier take of this very request: no request
        if recontext and state is State.UP_TO_DATE and entry is not None \
                and entry.context is not None and entry.context != context_digest(job):
            state = State.RECONTEXT  # its neighbours' text changed, and that was asked for
        state = _reviewed(state, job, entry, raw_key, review)
        if state in (State.UP_TO_DATE, State.RESTORE) and any(
                states[d].new_take for d in job.depends_on if d in states):
            state = State.RETAKEN  # e.g. a stitch whose segment gets a new take
        if state in (State.FROZEN, State.MODIFIED) and entry is not None:
            key = entry.key  # dependents build on the asset that is kept
        keys[job.id] = key
        states[job.id] = state
        # A restore costs nothing, nor does a second job making the very same request
        # in this run (the engine sends it once and both get its take), nor a changed
        # post-processing step when the provider's take is in the cache.
        paid_key = raw_key or key
        reprocess = raw_key is not None and not state.new_take and in_cache is not None \
            and in_cache(raw_key)
        cost = 0.0 if state is State.RESTORE or reprocess \
            or (state.needs_work and paid_key in paying) else estimate(job, prices)
        if state.needs_work:
            paying.add(paid_key)
        planned.append(PlannedJob(job, key, state, cost, entry, raw_key))
    counts: dict[State, int] = {}
    for p in planned:
        counts[p.state] = counts.get(p.state, 0) + 1
    return Plan(pipeline, layout, planned, prices, counts, frozenset(locked))


def takes_in(journal: Journal | None, cache: ContentCache | None) -> Callable[[str], bool] | None:
    """`make_plan`'s `in_cache`: the journal knows the request's take and the cache
    still holds it (what the engine checks before it would send the request)."""
    if journal is None or cache is None:
        return None

    def has(key: str) -> bool:
        asset = journal.asset(key)
        return asset is not None and cache.get(asset.sha256, asset.ext) is not None

    return has


def _reviewed(state: State, job: Job, entry: LockEntry | None, raw_key: str | None,
              review: Review) -> State:
    """What review decisions about the locked take change: an approved take is frozen
    (unless only its post-processing changed: that reprocesses the same take, free);
    a rejected one gets a new take, unless its output was edited by hand (a new take
    would overwrite that: it waits for --force or --restore). `--force` overrides both."""
    if state is State.FORCED or entry is None:
        return state
    if review.rejected(job.id, entry) and job.kind is not JobKind.STITCH:
        # A changed request brings a new take anyway; otherwise this one must be remade.
        return state if state in (State.CHANGED, State.MODIFIED) else State.REJECTED
    if review.approved(job.id, entry) and state in (State.CHANGED, State.RECONTEXT):
        same_take = raw_key is not None and entry.raw is not None \
            and entry.raw.get("key") == raw_key
        return state if same_take else State.FROZEN
    return state


def _named(job: Job, ids: set[str]) -> bool:
    """`--force`/`--restore ID`: a base id names its variants, a programme its segments."""
    return job.id in ids or job.base_id in ids or bool(job.segment and job.segment.parent in ids)


def _state(job: Job, key: str, entry: LockEntry | None, layout: BuildLayout,
           forced: set[str], outputs: Mapping[str, tuple[str, int, int]]) -> State:
    if _named(job, forced):
        return State.FORCED
    if entry is None:
        return State.NEW
    found = _output_found(layout, job, entry, outputs)
    if entry.key != key:
        if job.freeze:
            return State.FROZEN
        # A new take would be written over a hand-edited file: it waits for a word.
        return State.MODIFIED if found is _Found.ALTERED else State.CHANGED
    return {_Found.INTACT: State.UP_TO_DATE, _Found.MISSING: State.RESTORE,
            _Found.ALTERED: State.MODIFIED}[found]


class _Found(StrEnum):
    INTACT = "intact"  # the take the runner wrote
    MISSING = "missing"  # no file, a damaged one, or the job's output moved elsewhere
    ALTERED = "altered"  # a file that is not the take but is sound: edited by hand


def _output_found(layout: BuildLayout, job: Job, entry: LockEntry,
                  outputs: Mapping[str, tuple[str, int, int]]) -> _Found:
    """Is the job's output the locked file? Cheap when the journal vouches for it."""
    output = job.output
    if output != entry.output:
        return _Found.MISSING
    path = os.path.join(layout.output_dir, output)
    try:
        st = os.stat(path)
    except OSError:
        return _Found.MISSING
    known = outputs.get(output)
    if known is not None and known == (entry.sha256, st.st_size, st.st_mtime_ns):
        return _Found.INTACT
    if st.st_size == entry.size and file_digest(Path(path)) == entry.sha256:
        return _Found.INTACT
    return _Found.ALTERED if _sound(Path(path), job) else _Found.MISSING


def _sound(path: Path, job: Job) -> bool:
    """Is a changed output still a file of its kind (a take trimmed in an editor), or is
    it damaged (cut short, overwritten with zeros), which only restoring repairs?"""
    if job.format == "json":
        try:
            json.loads(path.read_bytes())
        except (OSError, ValueError):
            return False
        return True
    from runner.audio.formats import FormatSpec, InvalidAudio
    from runner.audio.verify import sniff, verify_audio

    if job.post is not None:  # processed: not in the provider's format any more
        try:
            return sniff(path).kind != "unknown"
        except OSError:
            return False

    try:
        verify_audio(path, FormatSpec.parse(job.format))
    except (InvalidAudio, OSError, ValueError):
        return False
    return True
