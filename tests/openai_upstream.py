"""A small server speaking the OpenAI wire format, for the gateway's tests and benchmark (loopback only).

It streams tokens with a set delay (``extra_body={"delay": seconds, "tokens": n}``), and misbehaves on
request through the model name: ``fail-500``/``fail-429`` answer an error, ``stall`` stops sending after
a few tokens (for at most ``STALL_SECONDS``), ``disconnect`` cuts the connection after a few tokens.
:class:`Upstream` remembers what it saw (the Authorization header, streams that ended early) so tests can
check what the gateway forwarded. :func:`serve` runs any ASGI app on a free loopback port in a thread.
"""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

#: Longest a ``stall`` stream waits before giving up by itself (tests never wait that long).
STALL_SECONDS = 20.0
#: Tokens a misbehaving stream sends before it stalls or disconnects.
BEFORE_TROUBLE = 3


@dataclass
class Upstream:
    """What the fake upstream saw; read by the tests."""

    authorizations: list[str | None] = field(default_factory=list)
    #: Streams whose reader went away before the last token (counted when the generator is closed).
    cut_streams: int = 0
    #: Tokens sent by every stream so far.
    sent_tokens: int = 0
    finished_streams: int = 0
    paths: list[str] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)


class _Stream(StreamingResponse):
    """Closes its generator as soon as the response ends, so an early close is seen at once."""

    body_iterator: AsyncIterator[bytes]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.body_iterator.aclose()  # type: ignore[attr-defined]


def token(i: int) -> str:
    """The ``i``-th token of every answer."""
    return f"word{i} "


def _png(seed: int, size: int = 256) -> bytes:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (size // 8, size // 8, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _speech(fmt: str, seconds: float = 1.0, rate: int = 24000) -> bytes:
    import av

    samples = (0.3 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)
    codec, container = {"wav": ("pcm_s16le", "wav"), "mp3": ("libmp3lame", "mp3"), "flac": ("flac", "flac")}[fmt]
    out = io.BytesIO()
    with av.open(out, mode="w", format=container) as handle:
        stream: Any = handle.add_stream(codec, rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="fltp", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            handle.mux(packet)
        for packet in stream.encode(None):
            handle.mux(packet)
    return out.getvalue()


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "upstream_test", "code": str(status)}}, status)


def _typed(event: dict[str, Any], number: int) -> bytes:
    """A Responses API server-sent event: ``event:`` line, then the data with its ``sequence_number``."""
    data = json.dumps({**event, "sequence_number": number}, separators=(",", ":")).encode()
    return b"event: " + event["type"].encode() + b"\ndata: " + data + b"\n\n"


def create_upstream(seen: Upstream | None = None) -> Starlette:
    """The fake OpenAI-compatible server; ``seen`` records what it received."""
    seen = seen if seen is not None else Upstream()
    images: dict[str, bytes] = {}

    def note(request: Request, body: bytes) -> None:
        seen.authorizations.append(request.headers.get("authorization"))
        seen.paths.append(request.url.path)
        seen.bodies.append(body)

    async def asked(request: Request) -> tuple[dict[str, Any], str, Response | None]:
        """The JSON request (noted), its model, and the error a ``fail-NNN`` model asks for."""
        body = await request.body()
        note(request, body)
        ask = json.loads(body)
        model = str(ask.get("model", "tiny"))
        refused = _error(int(model[5:]), f"upstream refuses with {model[5:]}") if model.startswith("fail-") else None
        return ask, model, refused

    async def completions(request: Request) -> Response:
        ask, model, refused = await asked(request)
        if refused is not None:
            return refused
        chat = request.url.path.endswith("/chat/completions")
        n_tokens, delay = int(ask.get("tokens", 8)), float(ask.get("delay", 0.0))
        size = int(ask.get("token_size", 0))  # pads every token to this many characters
        first_delay = float(ask.get("first_delay", delay))
        n_choices = int(ask.get("n", 1))
        made = {"id": "cmpl-test", "created": 1700000000, "model": model}
        kind = "chat.completion" if chat else "text_completion"

        def choice(index: int, text: str | None, finish: str | None, first: bool = False) -> dict[str, Any]:
            if not chat:
                return {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish}
            delta: dict[str, Any] = {"role": "assistant", "content": ""} if first else {}
            if text is not None:
                delta["content"] = text
            return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}

        if not ask.get("stream"):
            await anyio.sleep(first_delay)
            text = "".join(token(i) for i in range(n_tokens))
            key = {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
            body_out = {
                **made,
                "object": kind,
                "choices": [{"index": c, **key, "finish_reason": "stop"} for c in range(n_choices)],
                "usage": {"prompt_tokens": 3, "completion_tokens": n_tokens, "total_tokens": n_tokens + 3},
            }
            return JSONResponse(body_out)

        def event(choices: list[dict[str, Any]]) -> bytes:
            chunk = {**made, "object": kind + ("" if not chat else ".chunk"), "choices": choices}
            return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"

        async def stream() -> AsyncIterator[bytes]:
            done = False
            try:
                if chat:
                    yield event([choice(c, None, None, first=True) for c in range(n_choices)])
                for i in range(n_tokens):
                    await anyio.sleep(first_delay if i == 0 else delay)
                    if i == BEFORE_TROUBLE and model == "stall":
                        await anyio.sleep(STALL_SECONDS)
                    if i == BEFORE_TROUBLE and model == "disconnect":
                        raise ConnectionAbortedError("the test upstream drops the connection")
                    yield event([choice(c, token(i).ljust(size, "."), None) for c in range(n_choices)])
                    seen.sent_tokens += 1
                yield event([choice(c, None, "stop") for c in range(n_choices)])
                yield b"data: [DONE]\n\n"
                done = True
            finally:
                if done:
                    seen.finished_streams += 1
                else:
                    seen.cut_streams += 1

        return _Stream(stream(), media_type="text/event-stream")

    async def generations(request: Request) -> Response:
        if request.url.path.endswith("/edits"):
            form = await request.form()
            upload: Any = form["image"]
            source = await upload.read()
            note(request, source)
            ask: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
        else:
            body = await request.body()
            note(request, body)
            ask = json.loads(body)
        model = str(ask.get("model", "tiny"))
        if model.startswith("fail-"):
            return _error(int(model[5:]), f"upstream refuses with {model[5:]}")
        if model == "bad-shape":
            return JSONResponse({"created": 1700000000, "data": "not a list"})
        data = []
        for i in range(int(ask.get("n", 1))):
            png = _png(len(images) + i)
            if ask.get("response_format") == "url":
                name = f"img-{len(images)}.png"
                images[name] = png
                url = f"http://example.invalid/{name}" if model == "foreign-url" else f"{request.base_url}files/{name}"
                data.append({"url": url})
            else:
                import base64

                data.append({"b64_json": base64.b64encode(png).decode()})
        return JSONResponse({"created": 1700000000, "data": data})

    async def files(request: Request) -> Response:
        note(request, b"")
        found = images.get(request.path_params["name"])
        return Response(found, media_type="image/png") if found else _error(404, "no such file")

    async def speech(request: Request) -> Response:
        body = await request.body()
        note(request, body)
        ask = json.loads(body)
        fmt = ask.get("response_format", "mp3")
        media = {"mp3": "audio/mpeg", "wav": "audio/wav", "flac": "audio/flac"}
        if fmt not in media:
            return _error(400, f"format {fmt} not offered by the test upstream")
        return Response(_speech(fmt), media_type=media[fmt])

    async def responses(request: Request) -> Response:
        """The Responses API: one message output item with one ``output_text`` part, typed events when streamed."""
        ask, model, refused = await asked(request)
        if refused is not None:
            return refused
        n_tokens, delay = int(ask.get("tokens", 8)), float(ask.get("delay", 0.0))
        text = "".join(token(i) for i in range(n_tokens))

        def part(done: str) -> dict[str, Any]:
            return {"type": "output_text", "text": done, "annotations": []}

        def item(done: str | None) -> dict[str, Any]:
            content = [] if done is None else [part(done)]
            status = "in_progress" if done is None else "completed"
            return {"id": "msg_1", "type": "message", "status": status, "role": "assistant", "content": content}

        def response(status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
            return {
                "id": "resp_1", "object": "response", "created_at": 1700000000, "status": status, "model": model,
                "output": output, "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
                "usage": {"input_tokens": 3, "output_tokens": n_tokens, "total_tokens": n_tokens + 3,
                          "input_tokens_details": {"cached_tokens": 0},
                          "output_tokens_details": {"reasoning_tokens": 0}},
            }  # fmt: skip

        if not ask.get("stream"):
            return JSONResponse(response("completed", [item(text)]))
        at = {"item_id": "msg_1", "output_index": 0, "content_index": 0}

        async def stream() -> AsyncIterator[bytes]:
            events: list[dict[str, Any]] = [
                {"type": "response.created", "response": response("in_progress", [])},
                {"type": "response.output_item.added", "output_index": 0, "item": item(None)},
                {"type": "response.content_part.added", **at, "part": part("")},
            ]
            for number, event in enumerate(events):
                yield _typed(event, number)
            number = len(events)
            for i in range(n_tokens):
                await anyio.sleep(delay)
                yield _typed({"type": "response.output_text.delta", **at, "delta": token(i), "logprobs": []}, number)
                number += 1
                seen.sent_tokens += 1
            for event in (
                {"type": "response.output_text.done", **at, "text": text, "logprobs": []},
                {"type": "response.content_part.done", **at, "part": part(text)},
                {"type": "response.output_item.done", "output_index": 0, "item": item(text)},
                {"type": "response.completed", "response": response("completed", [item(text)])},
            ):
                yield _typed(event, number)
                number += 1

        return _Stream(stream(), media_type="text/event-stream")

    async def ollama(request: Request) -> Response:
        """Ollama's own API: JSON lines when streamed (its default), one object when ``"stream": false``."""
        body = await request.body()
        note(request, body)
        ask = json.loads(body)
        model = str(ask.get("model", "tiny"))
        if model.startswith("fail-"):
            return JSONResponse({"error": f"upstream refuses with {model[5:]}"}, int(model[5:]))
        n_tokens = int(ask.get("options", {}).get("tokens", 8))
        chat = request.url.path.endswith("/chat")

        def line(text: str, done: bool) -> dict[str, Any]:
            piece = {"message": {"role": "assistant", "content": text}} if chat else {"response": text}
            end = {"done_reason": "stop", "eval_count": n_tokens} if done else {}
            return {"model": model, "created_at": "2026-11-28T00:00:00Z", **piece, "done": done, **end}

        if ask.get("stream") is False:
            return JSONResponse(line("".join(token(i) for i in range(n_tokens)), True))

        async def stream() -> AsyncIterator[bytes]:
            for i in range(n_tokens):
                if i == BEFORE_TROUBLE and model == "disconnect":
                    raise ConnectionAbortedError("the test upstream drops the connection")
                yield json.dumps(line(token(i), False)).encode() + b"\n"
                seen.sent_tokens += 1
            if model != "no-done":
                yield json.dumps(line("", True)).encode() + b"\n"

        return _Stream(stream(), media_type="application/x-ndjson")

    async def models(request: Request) -> Response:
        note(request, b"")
        return JSONResponse({"object": "list", "data": [{"id": "tiny", "object": "model", "owned_by": "test"}]})

    async def echo(request: Request) -> Response:
        body = await request.body()
        note(request, body)
        return Response(body, headers={"x-echo-method": request.method}, media_type="application/octet-stream")

    return Starlette(
        routes=[
            Route("/v1/chat/completions", completions, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/v1/responses", responses, methods=["POST"]),
            Route("/api/chat", ollama, methods=["POST"]),
            Route("/api/generate", ollama, methods=["POST"]),
            Route("/v1/images/generations", generations, methods=["POST"]),
            Route("/v1/images/edits", generations, methods=["POST"]),
            Route("/v1/audio/speech", speech, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/echo", echo, methods=["GET", "POST", "PUT"]),
            Route("/files/{name}", files, methods=["GET"]),
        ]
    )


@contextmanager
def serve(app: ASGIApp, *, lifespan: str = "auto", tls: tuple[Path, Path] | None = None) -> Iterator[str]:
    """Run ``app`` on a free 127.0.0.1 port in a thread; yields its base URL, stops it on exit. With ``tls``
    (a certificate and its key, PEM files) it serves HTTPS."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    certificates = {"ssl_certfile": str(tls[0]), "ssl_keyfile": str(tls[1])} if tls else {}
    config = uvicorn.Config(app, log_level="critical", lifespan=lifespan, timeout_graceful_shutdown=1, **certificates)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
