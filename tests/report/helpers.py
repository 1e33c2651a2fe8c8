"""The review app served for a test: in a thread of its own, on 127.0.0.1."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from runner.report.review_app import ReviewApp, serve


@contextmanager
def serving(review: ReviewApp) -> Iterator[str]:
    """`review` served in a thread with its own event loop; yields its URL, and stops
    the server when the block ends."""
    urls: list[str] = []
    started = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def ready(url: str) -> None:
        urls.append(url)
        started.set()

    thread = threading.Thread(target=lambda: loop.run_until_complete(
        serve(review, ready=ready, stop=stop)), daemon=True)
    thread.start()
    try:
        assert started.wait(60)  # a hang guard
        yield urls[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()
