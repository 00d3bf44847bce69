"""Running the service under uvicorn with the limits a public endpoint needs.

* **Header timeout**: uvicorn has a keep-alive timeout but none for a request whose headers dribble in
  (or never come), so :class:`HeadGuard` (mixed into uvicorn's h11 protocol here, and into its httptools
  protocol by the gateway) closes a connection whose request head is not complete within
  ``header_seconds``; past ``max_connections`` open connections an idle one is closed for each new one,
  so idle sockets cannot exhaust file descriptors. (Body timeouts are in the app: it reads the body.)
* **Nagle off** on every connection, ``--workers`` ones included (:func:`no_delay`).
* **Errors in one shape**: uvicorn's own 400 for an unparsable request is JSON like the app's.
* **Bounded shutdown**: SIGTERM stops accepting, waits at most ``graceful_seconds`` for requests in flight.
* **No orphans**: a ``--workers`` child stops when its supervisor dies (kill -9 included).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from typing import Any

from .._extras import needs_extra
from .guard import error_body

with needs_extra("service"):
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: Environment variable naming the supervisor's PID, set by :func:`run` for ``--workers`` children.
SUPERVISOR_ENV = "AIGCLABEL_SUPERVISOR_PID"
HEADER_SECONDS_ENV = "AIGCLABEL_HEADER_SECONDS"
MAX_CONNECTIONS_ENV = "AIGCLABEL_MAX_CONNECTIONS"
GRACEFUL_ENV = "AIGCLABEL_GRACEFUL_SECONDS"
#: How long uvicorn's supervisor waits for a ``--workers`` child to answer its health check (uvicorn's 5 s
#: is shorter than a spawned worker's start on a loaded machine: it was replaced before it could answer).
WORKER_HEALTHCHECK_SECONDS = 30


def _env_number(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def no_delay(transport: asyncio.BaseTransport) -> None:
    """Turn Nagle's algorithm off on a TCP connection.

    asyncio does it only for sockets whose protocol number says TCP; the listening socket uvicorn's
    supervisor makes for ``--workers`` says 0, so without this every small write a worker sends alone (a
    streamed token, a short answer) waits for the client's delayed ACK: 40 ms.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class HeadGuard:
    """What uvicorn's HTTP protocols lack in front of a public endpoint, for either of them (mixed in
    before :class:`H11Protocol` or :class:`HttpToolsProtocol`): a request-head timeout, a connection cap,
    a bound on the bytes of a request head, JSON 400s, and Nagle off (:func:`no_delay`).

    The one thing that differs between the two parsers, whether a request head is still incomplete, is
    :meth:`_head_incomplete`; :meth:`error_body` gives the error shape (the service's, or the gateway's).
    """

    header_seconds = _env_number(HEADER_SECONDS_ENV, 10.0)
    max_connections = int(_env_number(MAX_CONNECTIONS_ENV, 1000))
    #: Bytes a request head may take before the connection is answered 431 and closed.
    max_head_bytes = 64 * 1024
    error_body = staticmethod(error_body)

    # what the uvicorn protocol this is mixed into provides
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    connections: set[Any]
    cycle: Any

    _head_timer: asyncio.TimerHandle | None = None
    _head_bytes = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Accept; past the cap, make room by closing a connection that has not sent a request head."""
        super().connection_made(transport)  # type: ignore[misc]
        no_delay(transport)
        self._arm_head_timer()
        if len(self.connections) > self.max_connections:
            # Evicting an idle connection (not refusing the new one) keeps the service answering during a
            # flood of idle sockets: a real client sends its head at once and is no longer evictable.
            idle = next((c for c in self.connections if c is not self and _evictable(c)), None)
            (idle.transport if idle is not None else transport).close()

    def data_received(self, data: bytes) -> None:
        """Parse; the head timer runs while a request head is incomplete."""
        if self._head_incomplete():
            self._arm_head_timer()
        super().data_received(data)  # type: ignore[misc]
        if not self._head_incomplete():
            self._disarm_head_timer()
            self._head_bytes = 0
            return
        # Counted after parsing: bytes that leave a head incomplete are all head (a read that completes it
        # may carry a large body too, which is not the head's)
        self._head_bytes += len(data)
        if self._head_bytes > self.max_head_bytes:
            self._raw_error(431, "head-too-large", f"the request head is over {self.max_head_bytes} bytes")

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the head timer with the connection."""
        self._disarm_head_timer()
        super().connection_lost(exc)  # type: ignore[misc]

    def _head_incomplete(self) -> bool:
        """No request is being handled and no complete request head has arrived (idle, or mid-head)."""
        raise NotImplementedError

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_seconds, self._head_timeout)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._head_incomplete():
            return  # a request is in progress; the keep-alive logic handles the connection after it
        self._raw_error(408, "timeout", f"request head not received within {self.header_seconds:g} s")

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to an unparsable request, in the JSON error shape."""
        self._raw_error(400, "bad-request", msg)

    def _raw_error(self, status: int, code: str, detail: str) -> None:
        body = self.error_body(code, detail)
        reason = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}
        head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % (
            status,
            reason.get(status, b"Error"),
            len(body),
        )
        head += b"x-content-type-options: nosniff\r\nconnection: close\r\n\r\n"
        with contextlib.suppress(RuntimeError, OSError):
            self.transport.write(head + body)
        self.transport.close()


class GuardedH11Protocol(HeadGuard, H11Protocol):
    """uvicorn's h11 protocol with the :class:`HeadGuard` limits (``aigclabel serve``)."""

    def _head_incomplete(self) -> bool:
        no_request = self.cycle is None or self.cycle.response_complete
        return no_request and self.conn.their_state is h11.IDLE


class GuardedHttpToolsProtocol(HeadGuard, HttpToolsProtocol):
    """uvicorn's httptools protocol with the :class:`HeadGuard` limits (``aigclabel gateway``: its C
    parser and response writer cost a streamed token less than h11's)."""

    def _head_incomplete(self) -> bool:
        # uvicorn makes a request's cycle when its head is complete: until then the last one (or none) stands
        return self.cycle is None or bool(self.cycle.response_complete)


def _evictable(connection: object) -> bool:
    """A connection with no request in progress (idle, or its head still incomplete)."""
    if not isinstance(connection, HeadGuard) or connection.transport is None:
        return False
    return connection._head_incomplete() and not connection.transport.is_closing()


def _supervisor() -> int | None:
    """The pid of this ``--workers`` child's supervisor (``None`` in a single process or the supervisor)."""
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if not supervisor or not supervisor.isdigit() or int(supervisor) == os.getpid():
        return None
    return int(supervisor)


def orphaned() -> bool:
    """Whether this is a ``--workers`` child whose supervisor is gone (killed: it cleaned nothing up)."""
    parent = _supervisor()
    return parent is not None and os.getppid() != parent


def watch_parent(interval: float = 1.0) -> asyncio.Task[None] | None:
    """In a ``--workers`` child, a task that sends this process SIGTERM once its supervisor is gone."""
    if _supervisor() is None:
        return None

    async def watch() -> None:
        while True:
            await asyncio.sleep(interval)
            if orphaned():
                os.kill(os.getpid(), signal.SIGTERM)
                return

    return asyncio.get_running_loop().create_task(watch())


def run(
    host: str,
    port: int,
    workers: int,
    env: dict[str, str],
    *,
    graceful_seconds: float | None = None,
    header_seconds: float | None = None,
    max_connections: int | None = None,
    **uvicorn_options: Any,
) -> None:
    """Serve ``aigclabel.service.app:create_app`` with settings passed through ``env`` (so every worker has them).

    Unset limits come from ``AIGCLABEL_GRACEFUL_SECONDS`` (20), ``AIGCLABEL_HEADER_SECONDS`` (10) and
    ``AIGCLABEL_MAX_CONNECTIONS`` (1000).
    """
    import uvicorn

    graceful_seconds = graceful_seconds if graceful_seconds is not None else _env_number(GRACEFUL_ENV, 20.0)
    header_seconds = header_seconds if header_seconds is not None else _env_number(HEADER_SECONDS_ENV, 10.0)
    max_connections = max_connections if max_connections is not None else int(_env_number(MAX_CONNECTIONS_ENV, 1000))

    os.environ.update(env)
    os.environ[SUPERVISOR_ENV] = str(os.getpid())
    os.environ[HEADER_SECONDS_ENV] = repr(header_seconds)
    os.environ[MAX_CONNECTIONS_ENV] = str(max_connections)
    HeadGuard.header_seconds = header_seconds
    HeadGuard.max_connections = max_connections
    uvicorn.run(
        "aigclabel.service.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        http=GuardedH11Protocol,
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=max(1, round(graceful_seconds)),
        h11_max_incomplete_event_size=16 * 1024,
        server_header=False,
        **uvicorn_options,
    )
