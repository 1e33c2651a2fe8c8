"""Running the sandbox: in a thread (tests), in a child process (benchmarks, `run --sandbox`).

Both bind 127.0.0.1 on a free port, and a second one for kie's upload host (the
real File Upload API has a host of its own). uvicorn serves them through its
public API (`Config`, `Server.run(sockets=...)`); the sockets are the sandbox's
own `Listener`s, which note each connection they accept so that the `drop` and
`truncate` faults can cut a real socket (connections.py).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import uvicorn

from runner.sandbox.app import create_app
from runner.sandbox.config import SandboxConfig
from runner.sandbox.connections import Connections, Listener


def uvicorn_config(app: Any, *, log_level: str = "warning") -> uvicorn.Config:
    return uvicorn.Config(
        # http="auto": httptools when installed (about twice as fast), h11 otherwise.
        app, http="auto", lifespan="on", log_level=log_level, access_log=False,
        # asyncio's own loop even where uvloop is installed (uvicorn would pick it): the
        # connection-breaking faults work on asyncio's transports, and the sandbox's
        # benchmark figures stay comparable.
        loop="asyncio",
        # Many idle keep-alive connections are normal for a runner; keep them a while.
        timeout_keep_alive=30, backlog=2048, timeout_graceful_shutdown=2,
    )


def bind(connections: Connections, host: str = "127.0.0.1", port: int = 0) -> Listener:
    """A listening socket whose connections `connections` notes (the faults cut them)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and
    # without it every response waits ~40 ms for a delayed ACK (Nagle).
    sock = Listener(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.connections = connections
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    # Listen at once: a client that read the printed URL may connect before uvicorn starts.
    sock.listen(2048)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}"


def attach_upload_host(app: Any, sock: socket.socket) -> str:
    """Make `sock` the app's upload host (see app._Hosts); returns its URL."""
    sandbox = app.state.sandbox
    sandbox.upload_ports.add(sock.getsockname()[1])
    sandbox.upload_url = url_of(sock)
    return str(sandbox.upload_url)


class SandboxServer:
    """The sandbox on 127.0.0.1 in a background thread; `with SandboxServer(cfg) as url: ...`."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.app = create_app(self.config)
        self.url = ""
        self.upload_url = ""  # kie's upload host
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def sandbox(self) -> Any:
        """The live `web.Sandbox` (state, media, stats) for assertions in tests."""
        return self.app.state.sandbox

    def start(self) -> str:
        sock, upload = bind(self.sandbox.connections), bind(self.sandbox.connections)
        self.url = url_of(sock)
        self.upload_url = attach_upload_host(self.app, upload)
        self._server = uvicorn.Server(uvicorn_config(self.app))
        self._server.config.install_signal_handlers = False  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [sock, upload]},
                                        name="runner-sandbox", daemon=True)
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the sandbox server failed to start")
            threading.Event().wait(0.005)
        return self.url

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class SandboxProcess:
    """`python -m runner sandbox serve --port 0 ARGS...` in a child process, with its own core."""

    def __init__(self, args: Sequence[str] = (), *, python: str = sys.executable) -> None:
        self.args = list(args)
        self.python = python
        self.url = ""
        self.upload_url = ""
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> str:
        self._proc = subprocess.Popen(
            [self.python, "-m", "runner", "sandbox", "serve", "--port", "0", *self.args],
            stdout=subprocess.PIPE, text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        upload = self._proc.stdout.readline().strip()
        if not line.startswith("http") or not upload.startswith("http"):
            self.stop()
            raise RuntimeError(f"the sandbox process did not print its URLs (got {line!r}, "
                               f"{upload!r})")
        self.url = line
        self.upload_url = upload.split()[0]
        return line

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._proc = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def serve(config: SandboxConfig, host: str, port: int, upload_port: int) -> None:
    """Bind, print the base URL and then the upload host's URL as the first two lines of
    stdout, serve until interrupted."""
    app = create_app(config)
    sock = bind(app.state.sandbox.connections, host, port)
    upload = bind(app.state.sandbox.connections, host, upload_port)
    print(url_of(sock), flush=True)
    print(f"{attach_upload_host(app, upload)} (kie uploads)", flush=True)
    server = uvicorn.Server(uvicorn_config(app))
    server.run(sockets=[sock, upload])
