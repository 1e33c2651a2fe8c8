"""Sandbox throughput: createTask + recordInfo + download round trips per second.

The sandbox runs in its own process (pinned to one core when the machine has
two or more), with zero latency and no faults; this process drives it over
keep-alive connections with a minimal HTTP/1.1 client so that the client is not
what is measured. Prints requests/s and round trips/s.

    python bench/bench_sandbox.py [--seconds 10] [--connections 16] [--model sfx|tts]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runner.sandbox import SandboxProcess

_INPUTS = {
    "sfx": {"model": "elevenlabs/sound-effect-v2",
            "input": {"text": "door slam in a stone hall", "duration_seconds": 2}},
    "tts": {"model": "elevenlabs/text-to-speech-turbo-2-5",
            "input": {"text": "The sandbox answers quickly.", "voice": "Rachel"}},
}


class Connection:
    """One keep-alive HTTP/1.1 connection; just enough protocol for the sandbox's answers."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Authorization: Bearer bench-key\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        return int(status_line.split()[1]), await self.reader.readexactly(length)


async def worker(url: str, model: str, deadline: float, counts: list[int]) -> None:
    parts = urlsplit(url)
    conn = Connection(parts.hostname or "127.0.0.1", parts.port or 80)
    body = json.dumps(_INPUTS[model]).encode()
    while time.perf_counter() < deadline:
        status, answer = await conn.request("POST", "/api/v1/jobs/createTask", body)
        task_id = json.loads(answer)["data"]["taskId"]
        status, answer = await conn.request("GET", f"/api/v1/jobs/recordInfo?taskId={task_id}")
        data = json.loads(answer)["data"]
        assert data["state"] == "success", data
        file_url = urlsplit(json.loads(data["resultJson"])["resultUrls"][0])
        status, audio = await conn.request("GET", file_url.path)
        assert status == 200 and len(audio) > 1000
        counts[0] += 3
        counts[1] += 1
        counts[2] += len(audio)


async def drive(url: str, model: str, seconds: float, connections: int
                ) -> tuple[int, int, int, float]:
    await asyncio.gather(*(worker(url, model, time.perf_counter() + 1.0, [0, 0, 0])
                           for _ in range(connections)))  # warm-up: clips encoded, caches hot
    counts = [0, 0, 0]
    started = time.perf_counter()
    await asyncio.gather(*(worker(url, model, started + seconds, counts)
                           for _ in range(connections)))
    return counts[0], counts[1], counts[2], time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--model", choices=sorted(_INPUTS), default="sfx")
    args = parser.parse_args()
    sandbox = SandboxProcess()
    with sandbox as url:
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) >= 2 and sandbox.pid is not None:
            os.sched_setaffinity(sandbox.pid, {cores[0]})
            os.sched_setaffinity(0, {cores[1]})
        requests, trips, size, elapsed = asyncio.run(
            drive(url, args.model, args.seconds, args.connections))
    print(f"sandbox bench ({args.model}, {args.connections} connections, {elapsed:.1f} s): "
          f"{requests / elapsed:,.0f} requests/s, {trips / elapsed:,.0f} round trips/s, "
          f"{size / trips / 1024:.1f} KiB per file")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
