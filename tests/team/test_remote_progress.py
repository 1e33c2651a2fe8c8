"""The remote cache in the live display, the plain lines and the summary: scripted events."""

from __future__ import annotations

import io

from runner.cli.summary import remote_line
from runner.engine.events import Event, EventKind, Tally
from runner.engine.retry import JobOutcome
from runner.progress.plain import PlainLog
from tests.progress.helpers import display_at, rendered

T0 = 1_760_000_000.0
K = EventKind


def remote_script() -> list[Event]:
    return [
        Event(K.RUN_STARTED, total=3, message="team", time_s=T0),
        Event(K.REMOTE_HIT, "a", "kie", message="recorded 2026-12-01T10:00:05Z, task t1",
              size_bytes=1_200_000, busy_s=0.25, time_s=T0 + 0.3),
        Event(K.FINISHED, "a", "kie", outcome=JobOutcome.CACHED, time_s=T0 + 0.3),
        Event(K.REMOTE_MISS, "b", "kie", size_bytes=0, busy_s=0.3, time_s=T0 + 0.4),
        Event(K.REMOTE_MISS, "c", "kie", size_bytes=0, busy_s=0.35, time_s=T0 + 0.4),
        Event(K.REMOTE_STORED, "b", "kie", message="created", size_bytes=400_000, busy_s=0.5,
              time_s=T0 + 5.0),
        Event(K.REMOTE_ADOPTED, "c", "kie", message="another machine recorded this request "
              "first", size_bytes=500_000, busy_s=0.75, time_s=T0 + 6.0),
    ]


def test_the_live_display_shows_the_remote_cache_under_the_table() -> None:
    text = rendered(display_at(7.0, remote_script()))
    line = next(x for x in text.splitlines() if x.startswith("remote cache"))
    assert " ".join(line.split()) == ("remote cache hits 1 misses 2 recorded 1 adopted 1 "
                                      "2.1 MB moved busy 0.8 s")
    assert "remote cache" not in rendered(display_at(1.0, remote_script()[:1]))


def test_the_summary_counts_hits_bytes_and_time() -> None:
    tally = Tally()
    for event in remote_script():
        tally(event)
    assert tally.remote is not None
    assert remote_line(tally.remote) == (
        "remote cache: 1 hit(s), 2 miss(es), 1 recorded, 1 adopted (bought here too, but "
        "another machine recorded first: its take is kept); 2.1 MB moved, busy 0.75 s")
    assert Tally().remote is None  # no remote cache: no line


def test_plain_lines_show_remote_steps_when_verbose() -> None:
    out = io.StringIO()
    log = PlainLog(out, verbosity=1)
    for event in remote_script():
        log(event)
    log.close()
    text = out.getvalue()
    assert "remote hit  a [kie] 1200.0 kB: recorded 2026-12-01T10:00:05Z, task t1" in text
    assert "remote adopted c [kie] 500.0 kB: another machine recorded this request first" in text
    quiet = io.StringIO()
    normal = PlainLog(quiet, verbosity=0)
    for event in remote_script():
        normal(event)
    normal.close()
    assert "remote" not in quiet.getvalue()
