"""Helpers shared by the progress tests: a live display fed scripted events, and its frame as text."""

from __future__ import annotations

import io

from rich.console import Console

from runner.engine.events import Event
from runner.progress.display import LiveDisplay

T0 = 1_760_000_000.0


def display_at(seconds: float, events: list[Event]) -> LiveDisplay:
    """A display fed `events` (without starting its Live) as seen `seconds` into the run."""
    display = LiveDisplay(io.StringIO(), clock=lambda: T0 + seconds)
    for event in events:
        display.state(event)
    return display


def rendered(display: LiveDisplay, width: int = 100) -> str:
    console = Console(record=True, width=width, file=io.StringIO(), force_terminal=True)
    console.print(display.frame())
    return console.export_text()
