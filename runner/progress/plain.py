"""Progress as lines: one plain line per event that matters, or one JSON object per event.

For logs, pipes, CI and `--no-progress`. Which events are written depends on
the verbosity (-1 quiet, 0 normal, 1 verbose):

| events                                              | plain      | json       |
| --------------------------------------------------- | ---------- | ---------- |
| finished as failed / uncertain / skipped            | always     | always     |
| run started/finished, submitted, retry, finished,   | normal, -v | normal, -v |
|   account stopped, budget stopped                   |            |            |
| stitch progress                                     | every 10 % | normal, -v |
|                                                     | (all: -v)  |            |
| claim adopted (a stopped machine's task collected)  | normal, -v | normal, -v |
| queued, uploaded, succeeded, stored, remote cache   | -v         | normal, -v |
|   hit / miss / recorded / adopted, claim held /     |            |            |
|   taken (another machine's request)                 |            |            |
| polled                                              | -v         | -v         |

JSON leaves out polls at normal verbosity because a long task is polled many
times and each poll only repeats "still running"; everything else is one
object per event, for machines to filter. Lines reach the stream within 0.2 s
(a `tail -f` or a CI log shows them as they happen) without a write system
call per line: a 10,000-job run makes ~50,000 events.

Events carry no secrets (no keys, no headers), and neither do these lines.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import TextIO

from runner.engine.events import Event, EventKind
from runner.progress.state import FAILURES

QUIET, NORMAL, VERBOSE = -1, 0, 1

_NORMAL_KINDS = frozenset({
    EventKind.RUN_STARTED, EventKind.SUBMITTED, EventKind.RETRY, EventKind.FINISHED,
    EventKind.ACCOUNT_STOPPED, EventKind.BUDGET_STOPPED, EventKind.RUN_FINISHED,
    EventKind.WARNING, EventKind.CLAIM_ADOPTED,
})
# Stitch progress lines at normal verbosity: about this many per stitch.
_STITCH_STEPS = 10


def is_failure(event: Event) -> bool:
    return event.kind is EventKind.FINISHED and event.outcome in FAILURES


def plain_wanted(event: Event, verbosity: int) -> bool:
    if verbosity >= VERBOSE or is_failure(event):
        return True
    if verbosity <= QUIET:
        return False
    if event.kind is EventKind.STITCH_PROGRESS:
        done, total = event.done or 0, event.total or 0
        step = max(1, total // _STITCH_STEPS)
        return done == total or done % step == 0
    return event.kind in _NORMAL_KINDS


def json_wanted(event: Event, verbosity: int) -> bool:
    if verbosity >= VERBOSE or is_failure(event):
        return True
    if verbosity <= QUIET:
        return False
    return event.kind is not EventKind.POLLED


def _label(event: Event) -> str:
    if event.kind is EventKind.FINISHED and event.outcome is not None:
        return event.outcome.value
    if event.kind is EventKind.STITCH_PROGRESS:
        return "stitch"
    return event.kind.value.replace("_", " ")


def format_line(event: Event, started_s: float) -> str:
    """`  +12.3s submitted   ui_click [kie] task 5f2c…: message`."""
    kind = event.kind
    stamp = f"{event.time_s - started_s:+8.1f}s"
    if kind is EventKind.RUN_STARTED:
        name = f"{event.message}: " if event.message else ""
        return f"{stamp} run started: {name}{event.total or 0} job(s) to do"
    if kind is EventKind.RUN_FINISHED:
        return f"{stamp} run finished"
    parts = [stamp, f"{_label(event):<11}"]
    if event.job_id is not None:
        parts.append(event.job_id)
    if event.provider is not None:
        parts.append(f"[{event.provider}]")
    if event.task_id is not None:
        parts.append(f"task {event.task_id}")
    if event.done is not None and event.total is not None:
        parts.append(f"{event.done}/{event.total}")
    if event.credits:
        parts.append(f"{event.credits:g} credits")
    if event.size_bytes:
        parts.append(f"{event.size_bytes / 1e3:.1f} kB")
    if event.delay_s is not None:
        parts.append(f"again in {event.delay_s:g} s")
    line = " ".join(parts)
    return f"{line}: {event.message}" if event.message else line


class Lines:
    """Plain lines for events: the time relative to the run's start, and the task id
    on a job's FINISHED line (the event carries one only when a job fails)."""

    def __init__(self) -> None:
        self.started_s: float | None = None
        # Task id by job, from SUBMITTED to FINISHED: holds only the jobs in progress.
        self.tasks: dict[str, str] = {}

    def line(self, event: Event, wanted: bool) -> str | None:
        """Follow `event`; its line if `wanted` (every event must pass through here)."""
        if self.started_s is None or event.kind is EventKind.RUN_STARTED:
            self.started_s = event.time_s
        if event.job_id is not None:
            if event.kind is EventKind.SUBMITTED and event.task_id is not None:
                self.tasks[event.job_id] = event.task_id
            elif event.kind is EventKind.FINISHED:
                task_id = self.tasks.pop(event.job_id, None)
                if event.task_id is None and task_id is not None:
                    event = replace(event, task_id=task_id)
        return format_line(event, self.started_s) if wanted else None


class _Flusher:
    """Flushes a stream at most every `FLUSH_AFTER_S`, soon after a write."""

    FLUSH_AFTER_S = 0.2

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.pending = False

    def wrote(self) -> None:
        if self.pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not inside a run's event loop: flush at once
            self.stream.flush()
            return
        self.pending = True
        loop.call_later(self.FLUSH_AFTER_S, self.flush)

    def flush(self) -> None:
        self.pending = False
        self.stream.flush()


class PlainLog:
    """An observer writing one plain line per event that matters (see the module table)."""

    def __init__(self, stream: TextIO, verbosity: int = NORMAL) -> None:
        self.stream = stream
        self.verbosity = verbosity
        self.lines = Lines()
        self.flusher = _Flusher(stream)

    def __call__(self, event: Event) -> None:
        line = self.lines.line(event, plain_wanted(event, self.verbosity))
        if line is not None:
            self.stream.write(line + "\n")
            self.flusher.wrote()

    def close(self) -> None:
        self.flusher.flush()


class JsonLog:
    """An observer writing `Event.to_json()` as one compact object per line."""

    def __init__(self, stream: TextIO, verbosity: int = NORMAL) -> None:
        self.stream = stream
        self.verbosity = verbosity
        self.flusher = _Flusher(stream)

    def __call__(self, event: Event) -> None:
        if json_wanted(event, self.verbosity):
            self.stream.write(json.dumps(event.to_json(), separators=(",", ":")) + "\n")
            self.flusher.wrote()

    def close(self) -> None:
        self.flusher.flush()
