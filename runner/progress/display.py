"""What a person sees while a run goes: a live table in a terminal, lines otherwise.

    observers, close = cli_observers(log_format="text", progress=None, verbosity=0)
    try:
        run_pipeline(manifest, RunOptions(..., observers=observers))
    finally:
        close()  # stops the live display, restores the cursor

In a terminal (`mode="auto"` on a tty, or `mode="rich"`) a `rich` live display
shows one row per provider account (submits per second over the last 10 s,
tasks in flight, results being fetched, pending, done, cached, failed,
retries, credits), a total with elapsed time and ETA, and a bar for each stitch
in progress. Events only update counters (`progress_state.RunState`, O(1) per
event); frames are built from those counters on rich's refresh thread, at most
four a second and only when something on screen can have changed. Failures,
stopped accounts and a stopped budget are also printed above the table, since
a counter alone does not say why; with -v every normal-verbosity line is.

Otherwise (`mode="plain"`, a pipe or a file, or -q) one line per event that
matters, and with `mode="json"` one JSON object per event: see
`runner.progress.plain`.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal, TextIO, cast

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from runner.engine.events import Event, EventKind, Observer
from runner.engine.retry import JobOutcome
from runner.progress.plain import (
    NORMAL,
    QUIET,
    JsonLog,
    Lines,
    PlainLog,
    is_failure,
    plain_wanted,
)
from runner.progress.state import AccountRow, Phase, RunState

Mode = Literal["auto", "rich", "plain", "json"]

# At most four frames a second: smooth enough for counters. A frame costs about a
# millisecond of CPU (measured: 4 accounts, 3 stitch bars), so under 0.5 % of a core
# while events stream in, and a quarter of that while the run waits on providers.
REFRESH_PER_S = 4.0
MAX_BARS = 6  # more stitches at once are summarised in one line
MAX_NAME = 24  # longer account names and job ids are cut
_COLUMNS = ("submit/s", "in flight", "fetch", "pending", "done", "cached", "failed",
            "retries", "credits")
_ALERT_KINDS = frozenset({EventKind.ACCOUNT_STOPPED, EventKind.BUDGET_STOPPED,
                          EventKind.WARNING})


def make_observers(*, stream: TextIO, is_terminal: bool, mode: Mode = "auto",
                   verbosity: int = NORMAL, no_color: bool = False,
                   clock: Callable[[], float] = time.time,
                   ) -> tuple[list[Observer], Callable[[], None]]:
    """The observers to add to `RunOptions.observers`, and `close()` for when the run
    ends (it stops the live display and restores the cursor; safe to call twice).

    `mode`: "auto" is the live display if `is_terminal` else plain lines; "rich"
    forces the live display (terminal escapes even into a file); "plain" and
    "json" write lines. `verbosity`: -1 quiet (failures only; never a live display),
    0 normal, 1 verbose. `no_color` (set it when NO_COLOR is set) drops colours.
    """
    if mode == "json":
        json_log = JsonLog(stream, verbosity)
        return [json_log], json_log.close
    if mode == "plain" or verbosity <= QUIET or (mode == "auto" and not is_terminal):
        plain = PlainLog(stream, verbosity)
        return [plain], plain.close
    display = LiveDisplay(stream, verbosity=verbosity, no_color=no_color, clock=clock)
    return [display], display.close


def cli_observers(*, log_format: str, progress: bool | None, verbosity: int,
                  stream: TextIO | None = None, env: Mapping[str, str] | None = None,
                  ) -> tuple[list[Observer], Callable[[], None]]:
    """`make_observers` from `runner run`'s flags: `--log-format {text,json}`,
    `--progress/--no-progress` (None: neither given), `-q`/`-v` as -1/1.

    Everything goes to stderr: stdout keeps only the summary, so `runner run … >
    summary.txt` or `2> events.jsonl` separate the two. A TERM=dumb terminal cannot
    redraw in place, so it gets plain lines; NO_COLOR (any non-empty value) drops colour.
    """
    env = os.environ if env is None else env
    out = cast(TextIO, Unbreakable(sys.stderr if stream is None else stream))
    mode: Mode = "json" if log_format == "json" else (
        "auto" if progress is None else "rich" if progress else "plain")
    is_terminal = out.isatty() and env.get("TERM") != "dumb"
    return make_observers(stream=out, is_terminal=is_terminal, mode=mode,
                          verbosity=verbosity, no_color=bool(env.get("NO_COLOR")))


class Unbreakable:
    """A stream whose reader may go away (`runner run 2>&1 | head -3`): the first
    failed write or flush silences it, and the run goes on to its end and its
    lockfile. A progress line lost is nothing; a run aborted half-recorded is."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                return self.stream.write(text)
            except (OSError, ValueError):  # EPIPE, EIO; ValueError: closed by someone else
                self.broken = True
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self.stream.flush()
            except (OSError, ValueError):
                self.broken = True

    def isatty(self) -> bool:
        return not self.broken and self.stream.isatty()

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, ... as the stream's
        return getattr(self.stream, name)


class LiveDisplay:
    """An observer driving a `rich.live.Live` table on `stream` (stderr: the summary
    goes to stdout and must not be mixed into the table)."""

    def __init__(self, stream: TextIO, *, verbosity: int = NORMAL, no_color: bool = False,
                 clock: Callable[[], float] = time.time,
                 refresh_per_s: float = REFRESH_PER_S) -> None:
        self.state = RunState(clock)
        self.verbosity = verbosity
        self.refresh_per_s = refresh_per_s
        # The caller chose a live display: draw it even where rich would not guess a
        # terminal (`--progress` into a recording, a forced tty in CI).
        # no_color=None lets rich read NO_COLOR itself, so the variable works even
        # if the caller did not pass it on.
        self.console = Console(file=stream, force_terminal=True, no_color=no_color or None,
                               highlight=False)
        # Events arrive on the event loop's thread; frames are built on rich's refresh
        # thread. The lock keeps a frame from seeing a half-applied event; it is held
        # for a few counter updates per event and for building (not drawing) a frame.
        self.lock = threading.Lock()
        self.lines = Lines()
        # Lines to print above the table, printed by the refresh thread once a frame:
        # printing while a Live is up redraws the table, which must not happen per event.
        self.above: list[Text] = []
        self.live: _Live | None = None

    def __call__(self, event: Event) -> None:
        line = self.lines.line(event, self._print_above(event))
        with self.lock:
            self.state(event)
            if line is not None:
                alert = is_failure(event) or event.kind in _ALERT_KINDS
                self.above.append(Text(line, style="red" if alert else ""))
        if event.kind is EventKind.RUN_STARTED and self.live is None and event.total:
            # A run with nothing to do shows no table: the summary says so.
            self.live = _Live(self, console=self.console, get_renderable=self.frame,
                              refresh_per_second=self.refresh_per_s, transient=False,
                              redirect_stdout=False, redirect_stderr=True)
            self.live.start()
        if event.kind is EventKind.RUN_FINISHED:
            self.close()

    def print_above(self) -> None:
        """Print the lines gathered since the last frame (called by the refresh thread)."""
        with self.lock:
            lines, self.above = self.above, []
        if lines:
            self.console.print(Text("\n").join(lines), soft_wrap=True)

    def _print_above(self, event: Event) -> bool:
        if self.verbosity > NORMAL:
            return plain_wanted(event, NORMAL) and event.kind not in (
                EventKind.RUN_STARTED, EventKind.RUN_FINISHED, EventKind.STITCH_PROGRESS)
        return is_failure(event) or event.kind in _ALERT_KINDS

    def close(self) -> None:
        """Draw the last frame and leave it on screen (idempotent)."""
        live, self.live = self.live, None
        if live is not None:
            live.stop()
        self.print_above()  # lines of a run that never started a table

    def frame(self) -> RenderableType:
        """One frame of the display, built from the counters as they are now.

        Plain styled lines with column widths computed here, not a rich Table: a
        table's layout costs milliseconds per frame, these lines a fraction of one.
        """
        with self.lock:
            lines = [self._header(), *self._table(), *self._remote(), *self._bars(),
                     *self._stops()]
        frame = Text("\n").join(lines)
        frame.no_wrap, frame.overflow = True, "ellipsis"  # a narrow terminal crops, never wraps
        return Group(frame)  # Console.print would merge a bare Text and lose no_wrap

    def _header(self) -> Text:
        state = self.state
        done = state.total - state.remaining
        ending = "finished" if state.finished_s is not None else f"ETA {_eta(state.eta_s())}"
        count = f" {done}/{state.total} jobs "
        times = f"elapsed {_clock(state.elapsed_s)}  {ending}"
        # The bar takes what the words leave of the line, so 80 columns show it all.
        room = self.console.width - len(state.title) - len(count) - len(times) - 1
        return Text.assemble((state.title, "bold"), " ",
                             _bar(done, state.total, max(10, min(40, room))), count,
                             (times, "cyan"))

    def _table(self) -> list[Text]:
        rows = sorted(self.state.rows.values(), key=lambda r: r.name)
        now_s, since_s = self.state.now_s(), self.state.started_s
        rates = [row.submits.rate_per_s(now_s, since_s) for row in rows]
        total = AccountRow("total")
        for row in rows:
            for phase, n in row.phases.items():
                total.phases[phase] += n
            for outcome, n in row.outcomes.items():
                total.outcomes[outcome] += n
            total.retries += row.retries
            total.credits += row.credits
        body = [self._cells(row, rate, row.phases[Phase.WAITING])
                for row, rate in zip(rows, rates, strict=True)]
        # The total's "pending" also counts jobs still waiting for their inputs.
        foot = self._cells(total, sum(rates), self.state.pending())
        head = [("account", "bold"), *((name, "bold") for name in _COLUMNS)]
        widths = [max(len(cells[i][0]) for cells in (head, *body, foot))
                  for i in range(len(head))]
        widths[0] = min(widths[0], MAX_NAME)
        rule = Text("─" * (sum(widths) + len(widths) - 1), style="dim")
        return [_line(head, widths), rule, *(_line(cells, widths) for cells in body), rule,
                _line(foot, widths, "bold")]

    def _remote(self) -> list[Text]:
        """The team's remote cache under the table: what it answered, what it cost."""
        remote = self.state.remote
        if remote is None:
            return []
        adopted = f"  adopted {remote.adopted}" if remote.adopted else ""
        return [Text(f"remote cache  hits {remote.hits}  misses {remote.misses}  recorded "
                     f"{remote.stored}{adopted}  {remote.bytes_moved / 1e6:.1f} MB moved  "
                     f"busy {remote.busy_s:.1f} s", style="cyan")]

    def _stops(self) -> list[Text]:
        """Why accounts or the budget stopped: a reason is too long for a column."""
        lines = [Text(f"{row.name} stopped: {row.stopped}", style="red")
                 for row in sorted(self.state.rows.values(), key=lambda r: r.name)
                 if row.stopped]
        if self.state.budget_stop:
            lines.append(Text(f"budget stopped: {self.state.budget_stop}", style="red"))
        return lines

    @staticmethod
    def _cells(row: AccountRow, rate_per_s: float, pending: int) -> list[tuple[str, str]]:
        failed = row.failed
        return [
            (row.name, "red" if row.stopped else ""),
            (f"{rate_per_s:.1f}", ""),
            (str(row.phases[Phase.AT_PROVIDER]), ""),
            (str(row.phases[Phase.FETCHING]), ""),
            (str(pending), ""),
            (str(row.outcomes[JobOutcome.DONE]), "green"),
            (str(row.outcomes[JobOutcome.CACHED]), ""),
            (str(failed), "red" if failed else ""),
            (str(row.retries), "yellow" if row.retries else ""),
            (_number(row.credits), ""),
        ]

    def _bars(self) -> list[Text]:
        bars = sorted(self.state.bars.values(), key=lambda b: b.job_id)
        width = min(MAX_NAME, max((len(b.job_id) for b in bars[:MAX_BARS]), default=0))
        lines = [Text.assemble((f"{bar.label:<8}", "magenta"), _fit(bar.job_id, width), " ",
                               _bar(bar.done, bar.total, 30), f" {bar.done}/{bar.total}",
                               " finishing" if bar.done >= bar.total else "")
                 for bar in bars[:MAX_BARS]]
        if len(bars) > MAX_BARS:
            lines.append(Text(f"and {len(bars) - MAX_BARS} more", style="dim"))
        return lines


def _fit(text: str, width: int) -> str:
    return text.ljust(width) if len(text) <= width else text[:width - 1] + "…"


def _line(cells: list[tuple[str, str]], widths: list[int], style: str = "") -> Text:
    """One row: the first cell left-aligned, the numbers right-aligned, one space apart."""
    line = Text(style=style)
    for i, ((value, cell_style), width) in enumerate(zip(cells, widths, strict=True)):
        line.append((_fit(value, width) if i == 0 else value.rjust(width))
                    + (" " if i < len(cells) - 1 else ""), style=cell_style)
    return line


def _bar(done: int, total: int, width: int) -> Text:
    """A progress bar: heavy and green for what is done, thin and dim for the rest (so
    it still reads without colour)."""
    filled = width * min(done, total) // max(total, 1)
    return Text.assemble(("━" * filled, "green"), ("─" * (width - filled), "dim"))


class _Live(Live):
    """A Live that prints the display's pending lines above itself before each frame."""

    def __init__(self, display: LiveDisplay, **options: Any) -> None:
        super().__init__(**options)
        self.display = display
        self.drawn: tuple[int, int, int] | None = None

    def refresh(self) -> None:
        self.display.print_above()
        # Redraw only when a number on screen can have changed (an event, the elapsed
        # second, the terminal's width): a quiet wait for slow tasks costs one frame a
        # second, not four. The last frame (after stop) is always drawn.
        key = (self.display.state.version, int(self.display.state.elapsed_s),
               self.console.width)
        if key != self.drawn or not self.is_started:
            self.drawn = key
            super().refresh()


def _clock(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _eta(seconds: float | None) -> str:
    return "—" if seconds is None else _clock(seconds + 0.999)  # round up: never "0:00" early


def _number(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"


__all__ = ["LiveDisplay", "Mode", "cli_observers", "make_observers"]
