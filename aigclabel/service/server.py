"""Running the service under uvicorn with the limits a public endpoint needs.

* **Header timeout**: uvicorn has a keep-alive timeout but none for a request whose headers dribble in
  (or never come), so :class:`GuardedH11Protocol` closes a connection whose request head is not complete
  within ``header_seconds``; past ``max_connections`` open connections an idle one is closed for each new
  one, so idle sockets cannot exhaust file descriptors. (Body timeouts are in the app: it reads the body.)
* **Errors in one shape**: uvicorn's own 400 for an unparsable request is JSON like the app's.
* **Bounded shutdown**: SIGTERM stops accepting, waits at most ``graceful_seconds`` for requests in flight.
* **No orphans**: a ``--workers`` child stops when its supervisor dies (kill -9 included).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Any

from .._extras import needs_extra
from .guard import error_body

with needs_extra("service"):
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

#: Environment variable naming the supervisor's PID, set by :func:`run` for ``--workers`` children.
SUPERVISOR_ENV = "AIGCLABEL_SUPERVISOR_PID"
HEADER_SECONDS_ENV = "AIGCLABEL_HEADER_SECONDS"
MAX_CONNECTIONS_ENV = "AIGCLABEL_MAX_CONNECTIONS"
GRACEFUL_ENV = "AIGCLABEL_GRACEFUL_SECONDS"


def _env_number(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a request-head timeout, a connection cap and JSON 400s."""

    header_seconds = _env_number(HEADER_SECONDS_ENV, 10.0)
    max_connections = int(_env_number(MAX_CONNECTIONS_ENV, 1000))

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Accept; past the cap, make room by closing a connection that has not sent a request head."""
        super().connection_made(transport)
        self._arm_head_timer()
        if len(self.connections) > self.max_connections:
            # Evicting an idle connection (not refusing the new one) keeps the service answering during a
            # flood of idle sockets: a real client sends its head at once and is no longer evictable.
            idle = next((c for c in self.connections if c is not self and _evictable(c)), None)
            (idle.transport if idle is not None else transport).close()

    def data_received(self, data: bytes) -> None:
        """Feed h11; the head timer runs while a request head is incomplete."""
        if self.conn.their_state is h11.IDLE:
            self._arm_head_timer()
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the head timer with the connection."""
        self._disarm_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_seconds, self._head_timeout)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a response is being written on this connection; the keep-alive logic handles it
        self._raw_error(408, "timeout", f"request head not received within {self.header_seconds:g} s")

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to an unparsable request, in the service's error shape."""
        self._raw_error(400, "bad-request", msg)

    def _raw_error(self, status: int, code: str, detail: str) -> None:
        body = error_body(code, detail)
        reason = {400: b"Bad Request", 408: b"Request Timeout"}.get(status, b"Error")
        head = (
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"x-content-type-options: nosniff\r\nconnection: close\r\n\r\n" % (status, reason, len(body))
        )
        with contextlib.suppress(RuntimeError, OSError):
            self.transport.write(head + body)
        self.transport.close()


def _evictable(connection: object) -> bool:
    """A connection with no request in progress (idle, or its head still incomplete)."""
    if not isinstance(connection, H11Protocol) or connection.transport is None:
        return False
    no_request = connection.cycle is None or connection.cycle.response_complete
    return no_request and connection.conn.their_state is h11.IDLE and not connection.transport.is_closing()


def watch_parent(interval: float = 1.0) -> asyncio.Task[None] | None:
    """In a ``--workers`` child, a task that sends this process SIGTERM once its supervisor is gone."""
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if not supervisor or not supervisor.isdigit() or int(supervisor) == os.getpid():
        return None
    parent = int(supervisor)

    async def watch() -> None:
        while True:
            await asyncio.sleep(interval)
            if os.getppid() != parent:
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
    GuardedH11Protocol.header_seconds = header_seconds
    GuardedH11Protocol.max_connections = max_connections
    uvicorn.run(
        "aigclabel.service.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        http=GuardedH11Protocol,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=max(1, round(graceful_seconds)),
        h11_max_incomplete_event_size=16 * 1024,
        server_header=False,
        **uvicorn_options,
    )
