"""Helpers for sandbox tests: decoding audio with ffmpeg, a callback receiver."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from runner.audio.ffmpeg import ffmpeg_exe

KEY = {"Authorization": "Bearer test-key"}
XI = {"xi-api-key": "test-key"}
_RAW = {"pcm": "s16le", "ulaw": "mulaw", "alaw": "alaw"}


def decode(data: bytes, fmt: str) -> tuple[int, float]:
    """(sample rate, seconds) of `data` in provider format `fmt`, decoded by ffmpeg (raw
    formats as bare samples, or as the WAV file they may come in)."""
    codec, rate = fmt.split("_")[:2]
    bare = codec in _RAW and data[:4] != b"RIFF"
    raw = ["-f", _RAW[codec], "-ar", rate, "-ac", "1"] if bare else []
    proc = subprocess.run(
        [ffmpeg_exe(), "-v", "error", *raw, "-i", "pipe:0", "-f", "s16le", "-ac", "1",
         "-ar", rate, "pipe:1"],
        input=data, capture_output=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    info = subprocess.run([ffmpeg_exe(), "-hide_banner", *raw, "-i", "pipe:0"], input=data,
                          capture_output=True, check=False).stderr.decode()
    assert f"{rate} Hz" in info, info
    return int(rate), len(proc.stdout) / 2 / int(rate)


def generation_id(created: dict[str, Any]) -> str:
    """An AI/ML API create answer's id: `id` (the example output) or `generation_id` (the
    rendered page's sample; quirk aimlapi_generation_id)."""
    return str(created.get("id") or created["generation_id"])


def sine_wav(seconds: float) -> bytes:
    proc = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", f"sine=frequency=330:duration={seconds}",
         "-f", "wav", "pipe:1"], capture_output=True, check=True)
    return proc.stdout


class CallbackReceiver:
    """A loopback HTTP server recording every POST (body and headers)."""

    def __init__(self, status: int = 200) -> None:
        received: list[tuple[dict[str, Any], dict[str, str]]] = []
        paths: list[str] = []
        self.received = received
        self.paths = paths  # the request target of each POST: path and query
        self.event = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                paths.append(self.path)
                received.append((json.loads(body), {k.lower(): v for k, v in self.headers.items()}))
                self.send_response(status)
                self.end_headers()
                outer.event.set()

            def log_message(self, *args: Any) -> None:
                pass

        outer = self
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/callback"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def wait(self, count: int = 1, timeout_s: float = 10.0) -> list[tuple[dict[str, Any],
                                                                      dict[str, str]]]:
        """Wait (bounded) until `count` callbacks arrived; returns them."""
        deadline = threading.Event()
        for _ in range(int(timeout_s / 0.01)):
            if len(self.received) >= count:
                break
            deadline.wait(0.01)
        return self.received

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Gate:
    """A sandbox `sleep` that holds every synchronous generation until the test opens it,
    so "N requests in flight at once" does not depend on how fast threads start.

        gate = Gate(); sandbox.config.sleep = gate
        ... start requests in threads; gate.wait_in_flight(sandbox, 2); ...; gate.open()
    """

    def __init__(self) -> None:
        self._open = threading.Event()

    async def __call__(self, seconds: float) -> None:
        while not self._open.is_set():
            await asyncio.sleep(0.005)

    def open(self) -> None:
        self._open.set()

    @staticmethod
    def wait_in_flight(server: Any, count: int, timeout_s: float = 30.0) -> None:
        """Until `count` ElevenLabs requests are held (a hang guard, not a timing)."""
        for _ in range(int(timeout_s / 0.005)):
            if sum(a.in_flight for a in server.sandbox.state.accounts.values()) >= count:
                return
            threading.Event().wait(0.005)
        raise AssertionError(f"{count} requests never were in flight at once")
