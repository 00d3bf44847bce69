"""The gateway's ASGI app: labelled routes, pass-through for everything else.

The text routes, where every token passes, reach the upstream through the gateway's own pooled HTTP/1.1
client (:mod:`.upstream`); the other routes through one pooled :class:`httpx.AsyncClient`. Both stream: a
streamed answer is read from the upstream only as fast as the client takes it (backpressure), and closing
either side closes the other (cancellation). Upstream errors
(status >= 400) are passed on as they came; an unreachable or silent upstream becomes a 502 or 504 in
the OpenAI error format; an upstream that breaks off mid-stream breaks the client's stream off too.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import json
import logging
import re
import secrets
import tempfile
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from .._extras import needs_extra
from ..audit import AuditError, AuditEvent, AuditStore, EventKind
from ..errors import AIGCLabelError, LimitExceededError, RequestTooLargeError
from ..label import AIGCLabel
from .media import SPEECH_SUFFIXES, MediaLayers, label_image_bytes, label_speech_bytes
from .ollama import OllamaLabeller
from .responses import ResponsesLabeller
from .settings import GatewaySettings
from .text import LABEL_FIELD, AnswerLabeller, SSEFramer, TextLabeller, asks_structured, label_headers
from .upstream import UpstreamPool, UpstreamResponse

#: Builds the labeller of one text answer from its label and whether the client asked for JSON output.
MakeLabeller = Callable[[GatewaySettings, AIGCLabel, bool], AnswerLabeller]
#: Content types of a streamed text answer: OpenAI's server-sent events, Ollama's JSON lines.
_STREAM_TYPES = ("text/event-stream", "application/x-ndjson")

with needs_extra("service"):
    import anyio
    import httpx
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
    from starlette.routing import Route
    from starlette.types import Receive, Scope, Send

log = logging.getLogger("aigclabel.gateway")

#: Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1), plus the ones recomputed.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
     "transfer-encoding", "upgrade", "host", "content-length"}
)  # fmt: skip
#: Client credentials for the gateway: never sent upstream.
_CLIENT_SECRETS = frozenset({"authorization", "api-key", "x-api-key"})
#: Headers of an upstream answer that no longer describe a body the gateway rewrote.
_BODY_HEADERS = frozenset({"content-length", "content-encoding", "etag", "content-md5"})
#: Audit events waiting to be written, at most (answers wait for room beyond that).
_AUDIT_QUEUE = 10_000
#: How long the audit writer gathers events after the first of a group before writing them in one commit.
_AUDIT_LINGER = 0.25
#: How long an idle upstream connection is kept for reuse. Shorter than the servers' own idle timeouts
#: (uvicorn, behind vLLM and SGLang: 5 s; httpx's default is also 5 s): a request sent on a connection the
#: upstream is closing at that moment fails with a ReadError and, being a POST, cannot be retried.
_KEEPALIVE_SECONDS = 2.0
#: Bytes of a streamed answer gathered for the client before the upstream is read further (backpressure).
_BATCH_BYTES = 64 * 1024
#: Where the gateway serves the labelled images of ``url`` answers.
IMAGE_ROUTE = "/aigclabel/images"
#: Start of the name of a temporary folder holding those images.
IMAGE_DIR_PREFIX = "aigclabel-gateway-images-"
#: A kept image's name: 24 random bytes in URL-safe base64, then the image's suffix (nothing that leaves
#: the folder).
_KEPT_NAME = re.compile(r"[A-Za-z0-9_-]{32}\.[A-Za-z0-9]{1,8}")


class UpstreamBrokeOff(Exception):
    """The upstream stopped mid-answer; the client's connection is cut the same way."""


def error_document(message: str, code: str, kind: str = "gateway_error") -> dict[str, Any]:
    """An error in the OpenAI wire format, so OpenAI clients raise their usual exceptions."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _error(status: int, message: str, code: str, kind: str = "gateway_error") -> JSONResponse:
    return JSONResponse(error_document(message, code, kind), status_code=status)


class _Batches:
    """Chunks passed from the upstream reader to the client writer, joined into one write per turn.

    An upstream streaming as fast as it can delivers many events per network read; relaying each as its own
    ASGI message costs the server's framing, the middleware and a ``send`` system call per token. The reader
    (:meth:`fill`) runs until the upstream's bytes at hand are used up, and the writer (:meth:`drain`) sends
    whatever has gathered meanwhile as one message. Nothing waits for more: an event that arrives alone goes
    out alone at once, so the first token is not delayed. Past ``limit`` bytes waiting, the reader waits for
    the writer (backpressure: a slow client slows the upstream, as before).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pending: list[bytes] = []
        self.size = 0
        self.done = False
        self.failure: Exception | None = None
        self.ready = anyio.Event()
        self.room = anyio.Event()

    async def fill(self, chunks: AsyncIterator[bytes]) -> None:
        """Read ``chunks`` to their end; a failure is handed to the writer, after what came before it."""
        try:
            async for chunk in chunks:
                self.pending.append(chunk)
                self.size += len(chunk)
                self.ready.set()
                while self.size >= self.limit:
                    self.room = anyio.Event()
                    await self.room.wait()
        except Exception as exc:
            self.failure = exc
        finally:
            self.done = True
            self.ready.set()

    async def drain(self) -> AsyncIterator[bytes]:
        """Everything gathered since the last turn, joined; raises the reader's failure after the rest."""
        while True:
            if not (self.pending or self.done):
                await self.ready.wait()
                self.ready = anyio.Event()
            if self.pending:
                batch = b"".join(self.pending)
                self.pending.clear()
                self.size = 0
                self.room.set()
                yield batch
            elif self.done:
                if self.failure is not None:
                    raise self.failure
                return


class _ClosingStream(StreamingResponse):
    """A streamed response whose iterator is closed as soon as the response ends, however it ends
    (so a client that went away closes the upstream connection at once, not at garbage collection),
    then runs ``after`` (the audit record: after the last byte, so it never delays the answer).
    Chunks that arrive together leave together (:class:`_Batches`)."""

    body_iterator: AsyncIterator[bytes]

    def __init__(
        self, content: AsyncIterator[bytes], status_code: int, headers: Mapping[str, str],
        after: Callable[[], Awaitable[None]] | None = None,
    ) -> None:  # fmt: skip
        super().__init__(content, status_code, headers)
        self.after = after

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        batches = _Batches(_BATCH_BYTES)
        async with anyio.create_task_group() as group:
            group.start_soon(batches.fill, self.body_iterator)
            async for batch in batches.drain():
                await send({"type": "http.response.body", "body": batch, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except UpstreamBrokeOff as exc:
            # Returning without the closing chunk makes the server drop the connection: the client's stream
            # breaks off as the upstream's did, and the log gets a line instead of a traceback.
            log.warning("%s; the client's stream is cut too", exc)
        finally:
            with anyio.CancelScope(shield=True):
                await self.body_iterator.aclose()  # type: ignore[attr-defined]
                if self.after is not None:
                    await self.after()


class _LabelledStream(Response):
    """A labelled text stream: the upstream's events, each passed through its labeller the moment it is
    complete, one write to the client per read from the upstream (whatever arrived meanwhile, joined).

    A raw ASGI response in one task: no body iterator, no reader task, one ``await`` per read, since at a
    model's pace every token is a read of its own. A client that goes away closes the upstream connection
    at once (a listener on ``receive`` cuts it, which wakes the reader); a slow client holds the upstream
    back (``send`` waits for the socket to drain while the upstream's unread bytes pile up to the
    pool's limit, and it stops reading). ``after`` (the audit record) runs once the answer has ended,
    however it ended.
    """

    def __init__(
        self, upstream: UpstreamResponse, labeller: AnswerLabeller, headers: Mapping[str, str],
        after: Callable[[], Awaitable[None]],
    ) -> None:  # fmt: skip
        self.status_code = upstream.status_code
        self.background = None
        self.upstream = upstream
        self.labeller = labeller
        self.after = after
        self.gone = False
        self.init_headers(headers)

    async def _listen(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        self.upstream.abort()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        labeller, upstream = self.labeller, self.upstream
        framer = SSEFramer(framing=labeller.framing)
        labeller.state = "client-disconnected"
        listener = asyncio.get_running_loop().create_task(self._listen(receive))
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            try:
                while data := await upstream.read_some():
                    events = framer.feed(data)
                    if events:
                        body = b"".join(map(labeller.label_event, events)) if len(events) > 1 else None
                        body = labeller.label_event(events[0]) if body is None else body
                        await send({"type": "http.response.body", "body": body, "more_body": True})
            except (httpx.TransportError, LimitExceededError) as exc:
                if self.gone:
                    return
                labeller.state = f"upstream-broke-off: {type(exc).__name__}"
                # Returning without the closing message makes the server drop the connection: the client's
                # stream breaks off as the upstream's did, and the log gets a line instead of a traceback.
                log.warning("%s; the client's stream is cut too", labeller.state)
                return
            if self.gone:
                return
            rest = framer.rest()
            if rest.strip() and labeller.framing == "ndjson":
                rest = labeller.label_event(rest)  # a last JSON line without its newline
            closing = labeller.closing()
            await send({"type": "http.response.body", "body": closing + rest, "more_body": False})
            if not self.gone:
                labeller.state = "complete" if labeller.done else "upstream-ended-without-done"
        finally:
            listener.cancel()
            await upstream.aclose()
            with anyio.CancelScope(shield=True):
                await self.after()


class Gateway:
    """The proxy: one per app, holding the upstream client and the kept images."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.root = settings.upstream_root
        self.client: httpx.AsyncClient | None = None
        self.pool: UpstreamPool | None = None
        self.kept: OrderedDict[str, Path] = OrderedDict()
        self.image_dir: Path | None = None
        self.audit_queue: MemoryObjectSendStream[AuditEvent] | None = None
        self.layers = MediaLayers(
            watermark_key=settings.watermark_key if settings.watermark else None,
            watermark_key_id=settings.watermark_key_id,
            signing_key=settings.signing_key,
            audit=settings.audit,
        )

    # ------------------------------------------------------------------ lifecycle
    @asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        """Open the upstream connection pool, the image folder and the audit writer; close them on shutdown
        (the audit events still queued are written first)."""
        timeout = httpx.Timeout(self.settings.read_timeout, connect=self.settings.connect_timeout)
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=256, keepalive_expiry=_KEEPALIVE_SECONDS)
        own_folder = None
        if self.settings.image_dir is None:
            own_folder = tempfile.TemporaryDirectory(prefix=IMAGE_DIR_PREFIX)
            self.image_dir = Path(own_folder.name)
        else:
            self.image_dir = self.settings.image_dir
        sender, receiver = anyio.create_memory_object_stream[AuditEvent](max_buffer_size=_AUDIT_QUEUE)
        closing = anyio.Event()
        async with (
            httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False) as client,
            anyio.create_task_group() as tasks,
        ):
            self.client = client
            self.pool = pool = UpstreamPool(
                self.root, connect_timeout=self.settings.connect_timeout, read_timeout=self.settings.read_timeout,
                keepalive=_KEEPALIVE_SECONDS,
            )  # fmt: skip
            if self.settings.audit is not None:
                self.audit_queue = sender
                tasks.start_soon(self._write_audit, receiver, self.settings.audit, closing)
            else:
                receiver.close()
            try:
                yield
            finally:
                self.client = None
                self.pool = None
                pool.close()
                if own_folder is not None:
                    own_folder.cleanup()
                sender.close()
                closing.set()

    @staticmethod
    async def _write_audit(
        events: MemoryObjectReceiveStream[AuditEvent], store: AuditStore, closing: anyio.Event
    ) -> None:
        """Write queued events in groups: after the first of a group, wait :data:`_AUDIT_LINGER` for more, then
        write all that gathered in one transaction. A commit (an fsync with SQLite) per answer was a sixth
        of the gateway's CPU per request; this is at most a few per second, whatever the request rate. When
        the queue closes (shutdown) the events still in it are written before this returns."""
        async with events:
            async for first in events:
                with anyio.move_on_after(_AUDIT_LINGER):
                    await closing.wait()
                batch = [first]
                with contextlib.suppress(anyio.WouldBlock, anyio.EndOfStream):
                    while len(batch) < _AUDIT_QUEUE:
                        batch.append(events.receive_nowait())
                try:
                    await anyio.to_thread.run_sync(store.record_many, batch)
                except AuditError as exc:
                    log.error("%d audit events not recorded: %s", len(batch), exc)

    # ------------------------------------------------------------------ upstream
    def _upstream_headers(self, request: Request, *, identity: bool) -> dict[str, str]:
        headers = {k: v for k, v in request.headers.items() if k not in _HOP_BY_HOP and k not in _CLIENT_SECRETS}
        if not identity and "content-length" in request.headers:
            headers["content-length"] = request.headers["content-length"]  # a streamed body keeps its declared size
        if self.settings.upstream_api_key:
            headers["authorization"] = f"Bearer {self.settings.upstream_api_key}"
        if identity:
            headers["accept-encoding"] = "identity"  # a body the gateway rewrites must arrive uncompressed
        return headers

    async def _send(self, request: Request, content: Any, *, identity: bool) -> httpx.Response | Response:
        """The upstream's answer (headers read, body not yet), or an error response to give the client."""
        assert self.client is not None
        url = self.root + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        upstream = self.client.build_request(
            request.method, url, headers=self._upstream_headers(request, identity=identity), content=content
        )
        try:
            return await self.client.send(upstream, stream=True)
        except httpx.TimeoutException as exc:
            return _error(504, f"the upstream did not answer in time ({type(exc).__name__})", "upstream_timeout")
        except httpx.TransportError as exc:
            return _error(502, f"the upstream cannot be reached ({type(exc).__name__}: {exc})", "upstream_unreachable")
        except ClientDisconnect:
            return Response(status_code=499)

    async def _send_text(self, request: Request, body: bytes) -> UpstreamResponse | Response:
        """The upstream's answer to a text route (headers read, body not yet), or an error response to give
        the client: through the gateway's own HTTP/1.1 client (:mod:`.upstream`), the path every token takes."""
        assert self.pool is not None
        scope = request.scope
        target = scope["path"] + (f"?{scope['query_string'].decode('latin-1')}" if scope["query_string"] else "")
        headers = self._upstream_headers(request, identity=True)
        try:
            return await self.pool.request(request.method, target, headers.items(), body)
        except httpx.TimeoutException as exc:
            return _error(504, f"the upstream did not answer in time ({type(exc).__name__})", "upstream_timeout")
        except httpx.TransportError as exc:
            return _error(502, f"the upstream cannot be reached ({type(exc).__name__}: {exc})", "upstream_unreachable")

    @staticmethod
    def _headers(upstream: httpx.Response | UpstreamResponse, *, rewritten: bool) -> dict[str, str]:
        drop = _HOP_BY_HOP | _BODY_HEADERS if rewritten else _HOP_BY_HOP - {"content-length"}
        return {k: v for k, v in upstream.headers.items() if k.lower() not in drop}

    def _relay(self, upstream: httpx.Response | UpstreamResponse) -> Response:
        """The upstream's answer as it came, streamed raw (compressed bytes stay compressed)."""

        async def body() -> AsyncIterator[bytes]:
            try:
                async for data in upstream.aiter_raw():
                    yield data
            except httpx.TransportError as exc:
                raise UpstreamBrokeOff(f"upstream broke off: {type(exc).__name__}") from exc
            finally:
                with anyio.CancelScope(shield=True):
                    await upstream.aclose()

        return _ClosingStream(
            body(), status_code=upstream.status_code, headers=self._headers(upstream, rewritten=False)
        )

    async def _read(self, upstream: httpx.Response | UpstreamResponse) -> bytes:
        """A whole (bounded) upstream body."""
        limit = self.settings.max_body_bytes
        parts: list[bytes] = []
        size = 0
        try:
            async for data in upstream.aiter_bytes():
                size += len(data)
                if size > limit:
                    raise LimitExceededError(f"the upstream's answer is over {limit} bytes")
                parts.append(data)
        finally:
            await upstream.aclose()
        return b"".join(parts)

    async def _request_body(self, request: Request) -> bytes:
        limit = self.settings.max_body_bytes
        parts: list[bytes] = []
        size = 0
        async for data in request.stream():
            size += len(data)
            if size > limit:
                raise RequestTooLargeError(f"the request body is over {limit} bytes")
            parts.append(data)
        return b"".join(parts)

    async def _audit(self, make: Callable[..., AuditEvent], *args: Any, **kwargs: Any) -> None:
        """Queue ``make(*args, **kwargs)`` for the audit writer (no-op without a store)."""
        if self.audit_queue is not None:
            with anyio.CancelScope(shield=True):
                await self.audit_queue.send(make(*args, **kwargs))

    def _event(self, labeller: AnswerLabeller, route: str, **detail: Any) -> AuditEvent:
        """The audit event of one text answer (its ``path`` detail names the route)."""
        return AuditEvent(
            kind=EventKind.LABEL,
            produce_id=labeller.label.produce_id,
            provider_code=labeller.label.content_producer,
            content_sha256=labeller.content_sha256(),
            watermark_payload=labeller.payload.hex() if self.settings.text_mark else None,
            detail={"path": f"gateway:{route}", **labeller.audit_detail(), "state": labeller.state, **detail},
        )

    # ------------------------------------------------------------------ routes
    async def passthrough(self, request: Request) -> Response:
        """Any route the gateway does not label: request and answer streamed through untouched."""
        has_body = "content-length" in request.headers or "transfer-encoding" in request.headers
        upstream = await self._send(request, request.stream() if has_body else None, identity=False)
        return upstream if isinstance(upstream, Response) else self._relay(upstream)

    async def text(self, request: Request, make: MakeLabeller) -> Response:
        """A text route (chat, completions, responses, Ollama's chat and generate): label the answer,
        streamed or whole."""
        body = await self._request_body(request)
        upstream = await self._send_text(request, body)
        if isinstance(upstream, Response):
            return upstream
        if upstream.status_code >= 400:
            return self._relay(upstream)
        if not upstream.decodable:
            await upstream.aclose()
            encoding = upstream.headers.get("content-encoding")
            return _error(502, f"the upstream answered in {encoding} encoding; cannot label it", "unlabelable_answer")
        label = self.settings.new_label()
        labeller = make(self.settings, label, _structured(body))
        ctype = upstream.headers.get("content-type", "")
        headers = {**self._headers(upstream, rewritten=True), **label_headers([label])}
        route = request.scope["path"]
        if ctype.startswith(_STREAM_TYPES):
            after = partial(self._audit, self._event, labeller, route, stream=True)
            return _LabelledStream(upstream, labeller, headers, after)
        if not ctype.startswith("application/json"):
            await upstream.aclose()
            return _error(
                502, f"the upstream answered {ctype or 'without a content type'}; cannot label it", "unlabelable_answer"
            )
        try:
            answer = json.loads(await self._read(upstream))
        except ValueError:
            return _error(502, "the upstream's answer is not JSON; cannot label it", "unlabelable_answer")
        if not isinstance(answer, dict):
            return _error(502, "the upstream's answer is not a JSON object; cannot label it", "unlabelable_answer")
        labeller.label_body(answer)
        record = BackgroundTask(self._audit, self._event, labeller, route, stream=False)
        return JSONResponse(answer, upstream.status_code, headers, background=record)

    async def images(self, request: Request) -> Response:
        """``/v1/images/generations`` and ``/v1/images/edits``: label every image, ``b64_json`` or ``url``."""
        upstream = await self._send(request, await self._request_body(request), identity=True)
        if isinstance(upstream, Response):
            return upstream
        if upstream.status_code >= 400:
            return self._relay(upstream)
        try:
            answer = json.loads(await self._read(upstream))
        except ValueError:
            answer = None
        items = answer.get("data") if isinstance(answer, dict) else None
        if not (isinstance(items, list) and all(isinstance(item, dict) for item in items)):
            return _error(
                502, "the upstream's image answer is not the OpenAI JSON shape; cannot label it", "unlabelable_answer"
            )
        labels: list[AIGCLabel] = []
        for number, item in enumerate(items):
            label = self.settings.new_label()
            if isinstance(item.get("b64_json"), str):
                try:
                    data = base64.b64decode(item["b64_json"], validate=True)
                except (binascii.Error, ValueError):
                    return _error(502, f"image {number}: b64_json is not base64", "unlabelable_answer")
            elif isinstance(item.get("url"), str):
                fetched = await self._fetch_image(item["url"])
                if isinstance(fetched, Response):
                    return fetched
                data = fetched
            else:
                return _error(502, f"image {number} has neither b64_json nor url", "unlabelable_answer")
            layers = replace(self.layers, origin=f"gateway:{request.url.path}[{number}]")
            labelled, result = await anyio.to_thread.run_sync(
                partial(
                    label_image_bytes, data, label, layers=layers, visible=self.settings.image_visible,
                    visible_text=self.settings.text_label,
                )
            )  # fmt: skip
            if "b64_json" in item and isinstance(item["b64_json"], str):
                item["b64_json"] = base64.b64encode(labelled).decode("ascii")
            else:
                item["url"] = self._keep_image(request, labelled, result.path.suffix)
            item[LABEL_FIELD] = result.label.to_dict()
            labels.append(result.label)
        headers = {**self._headers(upstream, rewritten=True), **(label_headers(labels) if labels else {})}
        return JSONResponse(answer, upstream.status_code, headers)

    async def _fetch_image(self, url: str) -> bytes | Response:
        """An image an ``url`` answer points to, fetched only from the upstream's own origin."""
        assert self.client is not None
        absolute = urljoin(self.root + "/", url)
        mine, theirs = urlsplit(self.root), urlsplit(absolute)
        if (theirs.scheme, theirs.netloc) != (mine.scheme, mine.netloc):
            return _error(
                502,
                "an image url points outside the upstream; the gateway fetches only from the upstream",
                "foreign_image_url",
            )
        headers = (
            {"authorization": f"Bearer {self.settings.upstream_api_key}"} if self.settings.upstream_api_key else {}
        )
        try:
            fetched = await self.client.send(self.client.build_request("GET", absolute, headers=headers), stream=True)
        except httpx.TimeoutException:
            return _error(504, "the upstream did not deliver an image in time", "upstream_timeout")
        except httpx.TransportError as exc:
            return _error(
                502, f"cannot fetch an image from the upstream ({type(exc).__name__})", "upstream_unreachable"
            )
        if fetched.status_code >= 400:
            await fetched.aclose()
            return _error(
                502, f"the upstream answered {fetched.status_code} for an image url", "upstream_image_missing"
            )
        return await self._read(fetched)

    def _keep_image(self, request: Request, data: bytes, suffix: str) -> str:
        assert self.image_dir is not None
        name = secrets.token_urlsafe(24) + suffix
        path = self.image_dir / name
        path.write_bytes(data)
        self.kept[name] = path
        while len(self.kept) > self.settings.kept_images:
            self.kept.popitem(last=False)[1].unlink(missing_ok=True)
        return str(request.url_for("kept_image", name=name))

    async def kept_image(self, request: Request) -> Response:
        """A labelled image of an earlier ``url`` answer (names are unguessable, like signed URLs)."""
        name = request.path_params["name"]
        path = self.kept.get(name)
        if path is None and self.settings.image_dir is not None and _KEPT_NAME.fullmatch(name):
            # Kept by another worker serving this address (the folder is theirs too), if it still is.
            shared = self.settings.image_dir / name
            path = shared if shared.is_file() else None
        if path is None:
            return _error(
                404, "no such image (it may have been dropped: the gateway keeps only the newest)", "not_found"
            )
        return FileResponse(path)

    async def speech(self, request: Request) -> Response:
        """``/v1/audio/speech``: the audible label and the implicit label in the returned file."""
        body = await self._request_body(request)
        try:
            asked = json.loads(body).get("response_format") or "mp3"
        except (ValueError, AttributeError):
            asked = "mp3"  # the upstream will refuse the body itself
        if asked not in SPEECH_SUFFIXES:  # refused before the upstream spends time on it
            message = (
                f"response_format {asked!r} cannot carry the implicit label; use one of {', '.join(SPEECH_SUFFIXES)}"
            )
            return _error(400, message, "unsupported_response_format", "invalid_request_error")
        upstream = await self._send(request, body, identity=True)
        if isinstance(upstream, Response):
            return upstream
        if upstream.status_code >= 400:
            return self._relay(upstream)
        data = await self._read(upstream)
        label = self.settings.new_label()
        layers = replace(self.layers, origin=f"gateway:{request.url.path}")
        labelled, result = await anyio.to_thread.run_sync(
            lambda: label_speech_bytes(data, str(asked), label, layers=layers, kind=self.settings.audio_label)
        )
        headers = {**self._headers(upstream, rewritten=True), **label_headers([result.label])}
        return Response(labelled, upstream.status_code, headers)


def _guard(
    gateway: Gateway, handler: Callable[[Request], Awaitable[Response]]
) -> Callable[[Request], Awaitable[Response]]:
    """Check the client's gateway key, and turn typed errors into OpenAI-style error answers."""
    keys = gateway.settings.api_keys

    async def endpoint(request: Request) -> Response:
        if keys:
            given = request.headers.get("authorization", "")
            token = given[7:] if given[:7].lower() == "bearer " else ""
            if not any(hmac.compare_digest(token.encode(), key.encode()) for key in keys):
                return _error(
                    401,
                    "missing or wrong gateway API key (Authorization: Bearer ...)",
                    "invalid_api_key",
                    "authentication_error",
                )
        try:
            return await handler(request)
        except RequestTooLargeError as exc:
            return _error(413, str(exc), "too_large")
        except AIGCLabelError as exc:
            return _error(502, f"the upstream's answer cannot be labelled: {exc}", "unlabelable_answer")
        except ClientDisconnect:
            return Response(status_code=499)

    return endpoint


def _text(settings: GatewaySettings, label: AIGCLabel, structured: bool, *, kind: Any) -> AnswerLabeller:
    return TextLabeller(settings, label, kind, structured=structured)


def _responses(settings: GatewaySettings, label: AIGCLabel, structured: bool) -> AnswerLabeller:
    return ResponsesLabeller(settings, label, structured=structured)


def _ollama(settings: GatewaySettings, label: AIGCLabel, structured: bool, *, kind: Any) -> AnswerLabeller:
    return OllamaLabeller(settings, label, kind, structured=structured)


def _structured(body: bytes) -> bool:
    """Whether the request asks for JSON output (parsed only when a format field may be in it)."""
    if b'"response_format"' not in body and b'"format"' not in body:
        return False
    try:
        return asks_structured(json.loads(body))
    except ValueError:
        return False


def create_app(settings: GatewaySettings) -> Starlette:
    """The gateway as an ASGI app (run it with uvicorn, or ``aigclabel gateway``)."""
    gateway = Gateway(settings)
    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

    def text_route(make: MakeLabeller) -> Callable[[Request], Awaitable[Response]]:
        return _guard(gateway, partial(gateway.text, make=make))

    async def health(_request: Request) -> Response:
        return JSONResponse({"status": "ok", "labels": "aigclabel gateway"})

    routes = [
        Route("/v1/chat/completions", text_route(partial(_text, kind="chat")), methods=["POST"]),
        Route("/v1/completions", text_route(partial(_text, kind="completion")), methods=["POST"]),
        Route("/v1/responses", text_route(_responses), methods=["POST"]),
        Route("/api/chat", text_route(partial(_ollama, kind="chat")), methods=["POST"]),
        Route("/api/generate", text_route(partial(_ollama, kind="generate")), methods=["POST"]),
        Route("/v1/images/generations", _guard(gateway, gateway.images), methods=["POST"]),
        Route("/v1/images/edits", _guard(gateway, gateway.images), methods=["POST"]),
        Route("/v1/audio/speech", _guard(gateway, gateway.speech), methods=["POST"]),
        Route(IMAGE_ROUTE + "/{name}", gateway.kept_image, methods=["GET"], name="kept_image"),
        Route("/aigclabel/health", health, methods=["GET"]),
        Route("/{path:path}", _guard(gateway, gateway.passthrough), methods=methods),
    ]
    app = Starlette(routes=routes, lifespan=gateway.lifespan)
    app.state.gateway = gateway
    return app
