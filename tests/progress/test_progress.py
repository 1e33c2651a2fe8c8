"""Progress output: plain lines, JSON lines, the live table; scripted events, no sleeping."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from runner.engine.events import Event, EventKind
from runner.engine.retry import JobOutcome
from runner.progress.display import LiveDisplay, Mode, cli_observers, make_observers
from runner.progress.plain import JsonLog, PlainLog
from runner.progress.state import RateWindow, RunState
from runner.sandbox import SandboxServer
from tests.engine.helpers import run, write_manifest
from tests.progress.helpers import T0, display_at, rendered

K = EventKind
# Any SGR colour: 30-37/90-97 foreground, 40-47/100-107 background, 38;/48; extended.
COLOUR = re.compile(r"\x1b\[[0-9;]*?(?:\b3[0-7]|\b9[0-7]|\b4[0-7]|\b10[0-7]|\b38;|\b48;)[0-9;]*m")


def script() -> list[Event]:
    """A small run: two kie jobs (one retried, then done), one failed, a stopped account,
    a stitch with progress, and polls."""
    return [
        Event(K.RUN_STARTED, total=4, message="demo", time_s=T0),
        Event(K.QUEUED, "a", "kie", time_s=T0),
        Event(K.QUEUED, "b", "kie", time_s=T0),
        Event(K.QUEUED, "x", "eleven", time_s=T0),
        Event(K.RETRY, "a", "kie", message="429 too many requests", delay_s=2.0, time_s=T0 + 0.5),
        Event(K.SUBMITTED, "a", "kie", task_id="t-a", time_s=T0 + 2.5),
        Event(K.SUBMITTED, "b", "kie", task_id="t-b", time_s=T0 + 2.6),
        Event(K.POLLED, "a", "kie", task_id="t-a", message="generating", time_s=T0 + 3.0),
        Event(K.SUCCEEDED, "a", "kie", task_id="t-a", credits=12.0, time_s=T0 + 4.0),
        Event(K.STORED, "a", "kie", task_id="t-a", time_s=T0 + 4.2),
        Event(K.FINISHED, "a", "kie", outcome=JobOutcome.DONE, time_s=T0 + 4.3),
        Event(K.ACCOUNT_STOPPED, provider="eleven", message="401: invalid API key",
              time_s=T0 + 5.0),
        Event(K.FINISHED, "x", "eleven", outcome=JobOutcome.FAILED, task_id=None,
              message="401: invalid API key", time_s=T0 + 5.0),
        Event(K.QUEUED, "book", "kie", time_s=T0 + 6.0),
        *[Event(K.STITCH_PROGRESS, "book", "kie", done=i, total=20, time_s=T0 + 6.0 + i / 10)
          for i in range(8)],
    ]


def ending() -> list[Event]:
    return [
        *[Event(K.STITCH_PROGRESS, "book", "kie", done=i, total=20, time_s=T0 + 8.0)
          for i in range(8, 21)],
        Event(K.FINISHED, "book", "kie", outcome=JobOutcome.DONE, time_s=T0 + 9.0),
        Event(K.FINISHED, "b", "kie", outcome=JobOutcome.FAILED, task_id="t-b",
              message="generation failed: SENSITIVE_WORD", time_s=T0 + 9.5),
        Event(K.RUN_FINISHED, time_s=T0 + 10.0),
    ]


def plain(verbosity: int, events: list[Event]) -> list[str]:
    out = io.StringIO()
    log = PlainLog(out, verbosity)
    for event in events:
        log(event)
    return out.getvalue().splitlines()


def test_plain_lines_at_normal_verbosity() -> None:
    assert plain(0, script() + ending()) == [
        "    +0.0s run started: demo: 4 job(s) to do",
        "    +0.5s retry       a [kie] again in 2 s: 429 too many requests",
        "    +2.5s submitted   a [kie] task t-a",
        "    +2.6s submitted   b [kie] task t-b",
        "    +4.3s done        a [kie] task t-a",
        "    +5.0s account stopped [eleven]: 401: invalid API key",
        "    +5.0s failed      x [eleven]: 401: invalid API key",
        # Stitch progress: every 10 % at normal verbosity (20 segments: every 2).
        "    +6.0s stitch      book [kie] 0/20",
        "    +6.2s stitch      book [kie] 2/20",
        "    +6.4s stitch      book [kie] 4/20",
        "    +6.6s stitch      book [kie] 6/20",
        *[f"    +8.0s stitch      book [kie] {i}/20" for i in range(8, 21, 2)],
        "    +9.0s done        book [kie]",
        "    +9.5s failed      b [kie] task t-b: generation failed: SENSITIVE_WORD",
        "   +10.0s run finished",
    ]


def test_plain_verbose_adds_queued_polls_and_every_step() -> None:
    lines = plain(1, script() + ending())
    assert "    +0.0s queued      a [kie]" in lines
    assert "    +3.0s polled      a [kie] task t-a: generating" in lines
    assert "    +4.0s succeeded   a [kie] task t-a 12 credits" in lines
    assert "    +6.1s stitch      book [kie] 1/20" in lines
    assert len(lines) == len(script() + ending())


def test_quiet_prints_only_failures() -> None:
    assert plain(-1, script() + ending()) == [
        "    +5.0s failed      x [eleven]: 401: invalid API key",
        "    +9.5s failed      b [kie] task t-b: generation failed: SENSITIVE_WORD",
    ]


def json_lines(verbosity: int) -> list[dict[str, object]]:
    out = io.StringIO()
    log = JsonLog(out, verbosity)
    for event in script() + ending():
        log(event)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_json_one_object_per_event_polls_only_when_verbose() -> None:
    events = script() + ending()
    normal = json_lines(0)
    assert [o["event"] for o in normal] == [e.kind.value for e in events
                                            if e.kind is not K.POLLED]
    assert normal[0] == {"event": "run_started", "message": "demo", "total": 4, "time": T0}
    succeeded = next(o for o in normal if o["event"] == "succeeded")
    assert succeeded == {"event": "succeeded", "job": "a", "provider": "kie", "task_id": "t-a",
                         "credits": 12.0, "time": T0 + 4.0}
    assert len(json_lines(1)) == len(events)
    assert [(o["job"], o["outcome"]) for o in json_lines(-1)] == [("x", "failed"),
                                                                   ("b", "failed")]


def test_make_observers_picks_the_mode() -> None:
    def kind(**options: object) -> type:
        observers, close = make_observers(stream=io.StringIO(), **options)  # type: ignore[arg-type]
        close()
        assert len(observers) == 1
        return type(observers[0])

    assert kind(is_terminal=True, mode="auto", verbosity=0, no_color=False) is LiveDisplay
    assert kind(is_terminal=False, mode="auto", verbosity=0, no_color=False) is PlainLog
    assert kind(is_terminal=False, mode="rich", verbosity=0, no_color=False) is LiveDisplay
    assert kind(is_terminal=True, mode="plain", verbosity=1, no_color=False) is PlainLog
    assert kind(is_terminal=True, mode="auto", verbosity=-1, no_color=False) is PlainLog
    assert kind(is_terminal=True, mode="json", verbosity=0, no_color=False) is JsonLog


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_cli_flags_to_observers() -> None:
    def kind(log_format: str, progress: bool | None, verbosity: int = 0,
             stream: io.StringIO | None = None, **env: str) -> type:
        observers, close = cli_observers(log_format=log_format, progress=progress,
                                         verbosity=verbosity, stream=stream or Tty(), env=env)
        close()
        return type(observers[0])

    assert kind("text", None) is LiveDisplay
    assert kind("text", None, stream=io.StringIO()) is PlainLog  # not a terminal
    assert kind("text", None, TERM="dumb") is PlainLog  # cannot redraw in place
    assert kind("text", True, stream=io.StringIO()) is LiveDisplay  # --progress
    assert kind("text", False) is PlainLog  # --no-progress
    assert kind("text", None, verbosity=-1) is PlainLog  # -q
    assert kind("json", True) is JsonLog  # --log-format json wins
    observers, close = cli_observers(log_format="text", progress=None, verbosity=0,
                                     stream=Tty(), env={"NO_COLOR": "1"})
    close()
    assert isinstance(observers[0], LiveDisplay) and observers[0].console.no_color


def test_live_display_verbose_prints_normal_lines_above() -> None:
    out = io.StringIO()
    display = LiveDisplay(out, verbosity=1, no_color=True)
    for event in script() + ending():
        display(event)
    display.close()
    text = out.getvalue()
    assert "submitted   a [kie] task t-a" in text and "done        a [kie] task t-a" in text
    assert "polled" not in text and "queued" not in text


def row(text: str, name: str) -> list[str]:
    return next(line.split() for line in text.splitlines() if line.split()[:1] == [name])


def test_rich_table_shows_per_provider_numbers() -> None:
    text = rendered(display_at(8.0, script()))
    assert "account submit/s in flight fetch pending done cached failed retries credits" \
        in " ".join(text.split())
    # submits: 2 in the last 8 s; b at the provider; nothing pending; a done; 1 retry.
    assert row(text, "kie") == ["kie", "0.2", "1", "0", "0", "1", "0", "0", "1", "12"]
    assert row(text, "eleven") == ["eleven", "0.0", "0", "0", "0", "0", "0", "1", "0", "0"]
    # pending: 4 jobs - 2 finished - b at the provider - book stitching.
    assert row(text, "total") == ["total", "0.2", "1", "0", "0", "1", "0", "1", "1", "12"]
    assert "demo" in text and "2/4 jobs" in text and "elapsed 0:08" in text
    assert "ETA 0:08" in text  # 2 finished in 8 s: 2 to go at 0.25/s
    assert re.search(r"stitch +book ━+─+ 7/20\n", text)
    assert "eleven stopped: 401: invalid API key" in text


def test_rich_table_phases_and_finish() -> None:
    events = script()
    display = display_at(4.1, [e for e in events if e.time_s <= T0 + 4.1])
    assert row(rendered(display), "kie")[2:5] == ["1", "1", "0"]  # b in flight, a fetching
    text = rendered(display_at(99.0, events + ending()))
    assert "finished" in text and "elapsed 0:10" in text  # frozen at RUN_FINISHED
    assert "stitch" not in text
    assert row(text, "kie")[5:8] == ["2", "0", "1"]


def test_live_display_draws_lines_and_final_frame_without_colour() -> None:
    out = io.StringIO()
    observers, close = make_observers(stream=out, is_terminal=True, mode="auto", verbosity=0,
                                      no_color=True)
    for event in script() + ending():
        observers[0](event)
    close()
    close()  # idempotent
    text = out.getvalue()
    assert "failed      x [eleven]: 401: invalid API key" in text
    assert "account stopped [eleven]" in text
    assert "submitted" not in text  # normal verbosity: only what needs attention
    assert "\x1b[" in text  # a live display (cursor control) ...
    assert not COLOUR.search(text)  # ... without colour
    final = text.rsplit("demo", 1)[1]
    assert "4/4 jobs" in final and "finished" in final


def test_no_color_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    out = io.StringIO()
    display = LiveDisplay(out)
    for event in script():
        display.state(event)
    display.console.print(display.frame())
    assert "\x1b[" in out.getvalue() and not COLOUR.search(out.getvalue())
    monkeypatch.delenv("NO_COLOR")
    coloured = io.StringIO()
    LiveDisplay(coloured).console.print(display.frame())
    assert COLOUR.search(coloured.getvalue())  # the pattern does see colours


def test_plain_and_json_have_no_escapes() -> None:
    modes: tuple[Mode, ...] = ("plain", "json")
    for mode in modes:
        out = io.StringIO()
        observers, close = make_observers(stream=out, is_terminal=True, mode=mode,
                                          verbosity=1, no_color=False)
        for event in script() + ending():
            observers[0](event)
        close()
        assert out.getvalue() and "\x1b" not in out.getvalue()


def test_rate_window_counts_the_last_seconds_only() -> None:
    window = RateWindow(10)
    for i in range(20):
        window.add(T0 + i * 0.5)  # 2 per second for 10 s
    assert window.rate_per_s(T0 + 9.9, T0) == pytest.approx(20 / 9.9)
    assert window.rate_per_s(T0 + 14.5, T0) == pytest.approx(10 / 10.0, abs=0.15)
    assert window.rate_per_s(T0 + 30, T0) == 0.0  # all slots stale
    window.add(T0 + 30.2)  # reuses a stale slot
    assert window.rate_per_s(T0 + 30.5, T0) == pytest.approx(1 / 9.5)  # 9 s + this one
    early = RateWindow(10)
    for i in range(4):
        early.add(T0 + i * 0.5)
    assert early.rate_per_s(T0 + 2.0, T0) == 2.0  # 2 s into the run: not over 10 s
    first = RateWindow(10)
    for _ in range(3):
        first.add(T0 + 0.1)
    assert first.rate_per_s(T0 + 0.2, T0) == 3.0  # under 1 s: counted over 1 s


def test_eta_ignores_cached_jobs() -> None:
    state = RunState(clock=lambda: T0 + 10)
    state(Event(K.RUN_STARTED, total=12, time_s=T0))
    for i in range(10):
        state(Event(K.FINISHED, f"c{i}", "kie", outcome=JobOutcome.CACHED, time_s=T0))
    assert state.eta_s() is None  # cached jobs say nothing about how fast work goes
    state(Event(K.FINISHED, "d", "kie", outcome=JobOutcome.DONE, time_s=T0 + 5))
    assert state.eta_s() == pytest.approx(10.0)  # 1 job per 10 s, 1 to go
    state(Event(K.FINISHED, "e", "kie", outcome=JobOutcome.DONE, time_s=T0 + 6))
    assert state.eta_s() == 0.0


def test_credits_of_a_result_another_machine_bought_are_not_counted() -> None:
    state = RunState(clock=lambda: T0 + 1)
    state(Event(K.RUN_STARTED, total=2, time_s=T0))
    state(Event(K.SUCCEEDED, "mine", "kie", credits=3.0, time_s=T0))
    # Another machine bought it (the team's ledger): collecting its task costs nothing.
    state(Event(K.CLAIM_TAKEN, "theirs", "kie", task_id="t1", time_s=T0))
    state(Event(K.SUCCEEDED, "theirs", "kie", credits=3.0, time_s=T0))
    assert state.rows["kie"].credits == 3.0


def test_interrupted_jobs_are_not_failures() -> None:
    state = RunState(clock=lambda: T0 + 1)
    state(Event(K.RUN_STARTED, total=3, time_s=T0))
    for job, outcome in (("a", JobOutcome.INTERRUPTED), ("b", JobOutcome.SKIPPED),
                         ("c", JobOutcome.UNCERTAIN)):
        state(Event(K.QUEUED, job, "kie", time_s=T0))
        state(Event(K.FINISHED, job, "kie", outcome=outcome, time_s=T0))
    assert state.rows["kie"].failed == 2 and state.remaining == 0


def test_sandbox_run_json_log(tmp_path: Path, sandbox: SandboxServer) -> None:
    manifest = write_manifest(tmp_path, """
        - id: beep_{n}
          matrix: {n: [1, 2]}
          model: elevenlabs/sound-effect-v2
          input: {text: "Beep {n}", duration_seconds: 0.5}
    """, extra="defaults: {provider: kie}")
    out = io.StringIO()
    observers, close = make_observers(stream=out, is_terminal=False, mode="json", verbosity=1,
                                      no_color=False)
    code, _, _, _ = run(manifest, sandbox.url, observers=observers)
    close()
    assert code == 0
    assert "sandbox-key" not in out.getvalue()  # keys never reach an event
    objects = [json.loads(line) for line in out.getvalue().splitlines()]
    assert objects[0]["event"] == "run_started" and objects[-1]["event"] == "run_finished"
    finished = {o["job"]: o["outcome"] for o in objects if o["event"] == "finished"}
    assert finished == {"beep_1": "done", "beep_2": "done"}
    assert {o["event"] for o in objects} >= {"queued", "submitted", "succeeded", "stored"}
