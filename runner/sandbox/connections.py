"""The sandbox's open connections, so that a fault can cut one (`drop`, `truncate`).

ASGI gives an app no way to close its connection without an answer, and an ASGI
server keeps its transports to itself. The sandbox owns its listening sockets,
though (server.bind): each is a `Listener`, which notes every connection it
accepts under its two addresses, the same pair the server puts in each request's
scope (`server`, `client`). A fault shuts that socket down in both directions,
so the client sees the connection closed (after whatever was already sent), and
then waits for the server's own `http.disconnect`: the server has seen the
connection end before the app returns, and does not answer on it. All of it
public API: `socket`, and ASGI's receive. Under httpx.ASGITransport there is no
socket to cut, and the responses raise instead (web.Dropped).
"""

from __future__ import annotations

import contextlib
import socket
import weakref
from typing import Any

from starlette.types import Receive, Scope

Address = tuple[str, int]


def _address(info: Any) -> Address:
    """(host, port) of a socket address, as ASGI servers put it in a scope (IPv6 too)."""
    return str(info[0]), int(info[1])


class Connections:
    """Open connections by (server address, client address); the sockets are not kept
    alive by this table: a connection the server closed leaves it by itself."""

    def __init__(self) -> None:
        self._open: weakref.WeakValueDictionary[tuple[Address, Address], socket.socket] = \
            weakref.WeakValueDictionary()

    def note(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):  # already reset by the client: nothing to cut
            self._open[(_address(conn.getsockname()), _address(conn.getpeername()))] = conn

    async def cut(self, scope: Scope, receive: Receive) -> bool:
        """Close the connection of this request; False when it has no socket here."""
        server, client = scope.get("server"), scope.get("client")
        conn = self._open.pop((_address(server), _address(client)), None) \
            if server and client else None
        if conn is None:
            return False
        with contextlib.suppress(OSError):  # the client may have gone first
            conn.shutdown(socket.SHUT_RDWR)
        # The server reads the end of the connection and says so; until then it would
        # still answer the request (a 500 for "no response") on a socket with no reader.
        while (await receive())["type"] != "http.disconnect":
            pass
        return True


class Listener(socket.socket):
    """A listening socket that notes each connection it accepts in `connections`."""

    connections: Connections | None = None

    def accept(self) -> tuple[socket.socket, Any]:
        conn, address = super().accept()
        if self.connections is not None:
            self.connections.note(conn)
        return conn, address
