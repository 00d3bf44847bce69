"""The gateway's client for the upstream's text routes: HTTP/1.1 on an asyncio protocol with a C parser.

A streamed answer at a model's pace arrives one token per network read. Through httpx every such read
went through httpcore's pure-Python h11 state machine and anyio's socket stream (a timeout scope and an
epoll re-registration per read), and every request scanned the whole connection pool (a ``select`` per
pooled connection): about 100 µs of the gateway's CPU per lone token and a few ms per request. Here the
socket's bytes go to ``httptools`` (llhttp, the parser uvicorn uses) inside the event loop's own callback,
and the reader wakes once per batch of data that arrived: whatever came since the last turn is handed
over joined, so tokens that arrive together also leave together.

The behaviour is httpx's, with its exception types (the gateway's handlers and audit states name them):
connect and read timeouts (the read timeout counts only while the gateway waits for the upstream, not
while a slow client holds it back), backpressure (past ``limit`` unread bytes the socket is not read
until the reader catches up), keep-alive with a short idle expiry, and a connection closed (never reused)
when an answer is abandoned before its end. Everything else the gateway sends upstream (pass-through
routes with streamed request bodies, images, speech) still goes through httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Iterable
from urllib.parse import urlsplit

from .._extras import needs_extra

with needs_extra("service"):
    import httptools
    import httpx

#: Unread bytes of an answer past which the upstream socket is no longer read (backpressure).
READ_LIMIT = 64 * 1024
#: Content encodings of an answer the gateway can decode to label it.
DECODABLE = frozenset({"identity", "gzip", "deflate"})


class _Connection(asyncio.Protocol):
    """One upstream connection and the answer it is receiving."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self.loop = loop
        self.limit = limit
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.complete = False
        self.until_close = False
        self.keep_alive = False
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.paused = False
        self.error: Exception | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.last_read = 0.0
        self.timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport (uvloop's is not a subclass)

    def data_received(self, data: bytes) -> None:
        self.last_read = self.loop.time()
        if self.complete or self.error is not None:
            self._fail(httpx.RemoteProtocolError("the upstream sent bytes outside an answer"))
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"the upstream's answer is not valid HTTP/1.1 ({exc})"))
            return
        if self.buffered > self.limit and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost decides what the end means

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.until_close and self.headers_done and not self.complete and exc is None:
            self.complete = True  # an answer without a length ends with its connection
        elif not self.complete and self.error is None:
            self.error = httpx.RemoteProtocolError(
                "the upstream closed the connection before its answer ended"
                if self.headers_done
                else "the upstream closed the connection without answering"
            )
        self._cancel_timer()
        self._wake()

    # ------------------------------------------------------------------ httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:
            self.headers = []  # 1xx: the real answer follows
            return
        names = {name.lower() for name, _ in self.headers}
        self.until_close = b"content-length" not in names and b"transfer-encoding" not in names
        self.keep_alive = self.parser.should_keep_alive()  # llhttp forgets it once the message is complete
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)

    def on_message_complete(self) -> None:
        if self.headers_done:
            self.complete = True

    # ------------------------------------------------------------------ for the reader
    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _fail(self, error: Exception) -> None:
        if self.error is None:
            self.error = error
        self.close()
        self._wake()

    def close(self) -> None:
        self.closed = True
        self._cancel_timer()
        if self.transport is not None:
            self.transport.close()

    def start(self, request: bytes, read_timeout: float) -> None:
        """Send one request; the read timeout starts now."""
        assert self.transport is not None
        self._reset()
        self.parser = httptools.HttpResponseParser(self)
        self.last_read = self.loop.time()
        self.transport.write(request)
        self.timer = self.loop.call_at(self.last_read + read_timeout, self._check_timeout, read_timeout)

    def _check_timeout(self, read_timeout: float) -> None:
        """Cut the answer if the upstream has sent nothing for ``read_timeout`` while the gateway waited."""
        self.timer = None
        if self.complete or self.error is not None or self.closed:
            return
        due = self.last_read + read_timeout
        if self.paused:  # a slow client, not a slow upstream: the clock restarts when reading resumes
            self.timer = self.loop.call_later(read_timeout, self._check_timeout, read_timeout)
            return
        if self.loop.time() < due:  # bytes came meanwhile
            self.timer = self.loop.call_at(due, self._check_timeout, read_timeout)
            return
        self._fail(httpx.ReadTimeout(f"the upstream sent nothing for {read_timeout:g} s"))

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    async def wait(self) -> None:
        """Until something arrived (bytes, the end, an error)."""
        self.waiter = self.loop.create_future()
        await self.waiter

    def take(self) -> bytes:
        """The body bytes received since the last call, joined; reading resumes if it was held back."""
        chunks = self.chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.chunks = []
        self.buffered = 0
        if self.paused and not self.closed and self.transport is not None:
            self.paused = False
            self.last_read = self.loop.time()  # the read timeout counts from when the gateway wants more again
            self.transport.resume_reading()
        return data


class UpstreamResponse:
    """An upstream answer whose head has arrived; its body is read with :meth:`read_some` (or the httpx-like
    :meth:`aiter_bytes` / :meth:`aiter_raw`), and :meth:`aclose` gives the connection back or closes it."""

    def __init__(self, pool: UpstreamPool, connection: _Connection) -> None:
        self._pool = pool
        self._connection: _Connection | None = connection
        self.status_code = connection.parser.get_status_code()
        self.headers = httpx.Headers([(k.decode("latin-1"), v.decode("latin-1")) for k, v in connection.headers])
        encoding = self.headers.get("content-encoding", "identity").lower()
        #: Whether :meth:`aiter_bytes` can decode the body (identity, gzip, deflate).
        self.decodable = encoding in DECODABLE
        self._decoder = zlib.decompressobj(zlib.MAX_WBITS | 32) if encoding in ("gzip", "deflate") else None

    async def read_some(self) -> bytes:
        """The body bytes that arrived since the last call (waiting for some if none did); ``b""`` at the end.
        Raises the httpx exception of a connection that broke off or a read that timed out."""
        connection = self._connection
        if connection is None:
            return b""
        while not connection.chunks:
            if connection.complete:
                await self.aclose()
                return b""
            if connection.error is not None:
                error = connection.error
                await self.aclose()
                raise error
            await connection.wait()
        return connection.take()

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body as it came (compressed stays compressed)."""
        while data := await self.read_some():
            yield data

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body, decompressed (gzip, deflate)."""
        async for data in self.aiter_raw():
            if self._decoder is not None:
                data = self._decoder.decompress(data)
            if data:
                yield data
        if self._decoder is not None and (rest := self._decoder.flush()):
            yield rest

    def abort(self) -> None:
        """Close the connection now (the client went away); a reader waiting on it wakes with an error."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection._fail(httpx.ReadError("the gateway's client went away"))

    async def aclose(self) -> None:
        """Give the connection back for reuse if the answer was read to its end, else close it."""
        connection, self._connection = self._connection, None
        if connection is not None:
            self._pool.release(connection)


class UpstreamPool:
    """Keep-alive connections to one upstream origin."""

    def __init__(
        self, root: str, *, connect_timeout: float, read_timeout: float, keepalive: float, max_idle: int = 256,
        limit: int = READ_LIMIT,
    ) -> None:  # fmt: skip
        parts = urlsplit(root)
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if self.tls else 80)
        self.prefix = parts.path.rstrip("/")
        self.host_header = parts.netloc.rpartition("@")[2].encode("idna")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.keepalive = keepalive
        self.max_idle = max_idle
        self.limit = limit
        self._idle: list[_Connection] = []
        self._ssl: ssl.SSLContext | None = ssl.create_default_context() if self.tls else None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, connection = await loop.create_connection(
                    lambda: _Connection(loop, self.limit), self.host, self.port, ssl=self._ssl,
                    server_hostname=self.host if self._ssl else None,
                )  # fmt: skip
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"no connection to the upstream within {self.connect_timeout:g} s") from exc
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        return connection

    def _reusable(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed and now - connection.idle_since < self.keepalive:
                return connection
            connection.close()
        return None

    async def request(
        self, method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes
    ) -> UpstreamResponse:
        """Send a request with a whole body; the answer once its head has arrived."""
        head = [f"{method} {self.prefix}{target} HTTP/1.1\r\n".encode("latin-1"), b"host: ", self.host_header, b"\r\n"]
        for name, value in headers:
            head += (name.encode("latin-1"), b": ", value.encode("latin-1"), b"\r\n")
        if body or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
            head.append(b"content-length: %d\r\n" % len(body))
        head.append(b"\r\n")
        request = b"".join(head) + body
        connection = self._reusable() or await self._connect()
        connection.start(request, self.read_timeout)
        try:
            while not connection.headers_done:
                if connection.error is not None:
                    raise connection.error
                await connection.wait()
        except BaseException:
            connection.close()
            raise
        return UpstreamResponse(self, connection)

    def release(self, connection: _Connection) -> None:
        """After an answer: keep the connection for the next request if it ended cleanly, else close it."""
        connection._cancel_timer()
        if (
            connection.complete and not connection.closed and not connection.chunks
            and connection.keep_alive and len(self._idle) < self.max_idle
        ):  # fmt: skip
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()

    def close(self) -> None:
        """Close every idle connection."""
        for connection in self._idle:
            with contextlib.suppress(RuntimeError):
                connection.close()
        self._idle.clear()
