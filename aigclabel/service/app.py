"""The HTTP service: label, inspect, verify, check, report and trace over HTTP.

Uploads are the raw request body (``Content-Type: application/octet-stream`` or the file's media type)
with the file name in the ``filename`` query parameter: no multipart parsing, so the body streams
straight to a temporary file, and the size limit and read timeouts are enforced while reading, before
anything is parsed. Analysis runs in a bounded pool (a full pool answers 503 with ``Retry-After``)
under a per-request work budget (:mod:`aigclabel._budget`): a detector over its budget reports
"not searched: over budget" and the verdict is still returned. Every error, whoever raises it, has
the body ``{"error", "detail"}``; temporary paths never leak into answers or the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hmac
import json
import logging
import math
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import replace
from enum import StrEnum
from importlib import resources
from pathlib import Path, PurePath
from typing import Annotated, Any

from .. import __version__
from .. import _budget as work
from .._audio_options import LabelKind, PcmFormat, TurnPosition
from .._extras import needs_extra
from .._media import MediaSample, media_of
from ..api import inspect, write_label
from ..audit import AuditEvent, AuditStore
from ..audit.events import file_event, verdict_event
from ..audit.models import EventKind
from ..containers import MediaKind, registered
from ..errors import AIGCLabelError, AuditUnavailableError, LimitExceededError
from ..label import AIGCLabel, LabelValue
from ..signing import KeyRegistry
from ..verify import (
    Evidence,
    TraceDetector,
    Verdict,
    classify,
    detector_cost,
    detector_formats,
    detector_shares_media,
    registered_detectors,
    run_detector,
)
from .guard import Guard, page_csp
from .settings import DEFAULT_MAX_UPLOAD, ServiceSettings

with needs_extra("service"):
    from fastapi import Depends, FastAPI, HTTPException, Query, Request, Security
    from fastapi.concurrency import run_in_threadpool
    from fastapi.exceptions import RequestValidationError
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
    from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
    from starlette.background import BackgroundTask
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.requests import ClientDisconnect

__all__ = ["DEFAULT_MAX_UPLOAD", "ServiceSettings", "create_app"]

_log = logging.getLogger("aigclabel.service")

_HTTP_ERROR_CODES = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    408: "timeout",
    413: "too-large",
    415: "unsupported-media-type",
    421: "host-not-allowed",
    503: "busy",
}

#: Request media types an upload may carry. The three a cross-site HTML form or a no-preflight fetch can
#: send (text/plain, application/x-www-form-urlencoded, multipart/form-data) are not among them.
_UPLOAD_TYPES = re.compile(
    r"(application/(octet-stream|pdf|zip|epub\+zip|xhtml\+xml|vnd\.openxmlformats-officedocument\.[\w.-]+)"
    r"|image/[\w.+-]+|audio/[\w.+-]+|video/[\w.+-]+|text/(markdown|html))\s*(;.*)?",
    re.I,
)
#: Prefix of upload directories; the PID lets a restarted service delete only its dead predecessors' ones.
UPLOAD_PREFIX = "aigclabel-upload-"
#: Niceness of the heavy lane's threads (0 normal, 19 lowest).
HEAVY_NICENESS = 10
#: Longest stored file name in bytes (most file systems allow 255; the prefix directory is separate).
_MAX_NAME_BYTES = 200


class Upload:
    """A request body spooled to a private temporary directory; removed by :meth:`cleanup`."""

    def __init__(self, directory: Path, filename: str) -> None:
        self.directory = directory
        self.filename = filename
        self.path = directory / filename
        #: Set when the response streams the file itself and cleans up afterwards.
        self.keep = False

    def cleanup(self) -> None:
        """Delete the temporary directory and everything in it."""
        shutil.rmtree(self.directory, ignore_errors=True)

    def scrub(self, message: str) -> str:
        """``message`` with the temporary directory replaced by nothing (clients see their file name)."""
        return message.replace(str(self.path), self.filename).replace(str(self.directory), "")


class Declaration(StrEnum):
    """The uploader's declaration (Measures Art. 6 (2))."""

    YES = "yes"
    NO = "no"


def _scrubbed(upload: Upload, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with temporary paths replaced by the client's file name, everywhere in it."""
    scrubbed: dict[str, Any] = json.loads(upload.scrub(json.dumps(body, ensure_ascii=False)))
    return scrubbed


def _safe_filename(name: str | None) -> str:
    """A plain file name for the upload; the extension survives because format detection and the
    returned file's name rely on it (so a 5000-character or dot-led name keeps its ``.png``), and the
    name fits a file system's 255-byte limit even in a multi-byte script."""
    base = PurePath((name or "upload").replace("\\", "/")).name
    cleaned = "".join(c for c in base if c.isalnum() or c in "._-")
    stem, dot, suffix = cleaned.rpartition(".")
    if not dot:
        stem, suffix = cleaned, ""
    suffix = "".join(c for c in suffix if c.isascii())[:16]
    stem = stem.lstrip(".")[: 127 - len(suffix)]
    while stem and len(stem.encode()) + len(suffix) + 1 > _MAX_NAME_BYTES:
        stem = stem[: max(len(stem) - 8, 0)]
    stem = stem or "upload"
    return f"{stem}.{suffix}" if suffix else stem


def upload_root(settings: ServiceSettings) -> Path:
    """Where upload directories are made."""
    return settings.work_dir or Path(tempfile.gettempdir())


def remove_stale_uploads(root: Path) -> int:
    """Delete upload directories left by service processes that no longer run (after kill -9); returns how many."""
    removed = 0
    try:
        entries = list(root.iterdir())
    except OSError:
        return 0
    for entry in entries:
        found = re.fullmatch(re.escape(UPLOAD_PREFIX) + r"(\d+)-.*", entry.name)
        if found is None or not entry.is_dir() or _alive(int(found.group(1))):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key given to `serve`.")
_bearer = HTTPBearer(auto_error=False, description="The same API key as a bearer token.")


def require_key(
    request: Request,
    header_key: Annotated[str | None, Security(_api_key_header)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> None:
    """Dependency: reject the request unless it carries a configured API key (if any are set)."""
    config: ServiceSettings = request.app.state.settings
    if not config.api_keys:
        return
    given = bearer.credentials.strip() if bearer is not None else header_key or ""
    # Every key is compared, in constant time, so timing tells nothing about which one came close.
    matches = [hmac.compare_digest(given.encode(), key.encode()) for key in config.api_keys]
    if not any(matches):
        raise HTTPException(
            401,
            "missing or wrong API key (send X-API-Key or Authorization: Bearer)",
            headers={"WWW-Authenticate": 'Bearer realm="aigclabel"'},
        )


async def receive_upload(request: Request, filename: str | None = None) -> AsyncIterator[Upload]:
    """Dependency: stream the raw body to a temporary file, enforcing type, size and read timeouts."""
    config: ServiceSettings = request.app.state.settings
    kind = request.headers.get("content-type", "")
    if not _UPLOAD_TYPES.fullmatch(kind.strip()):
        raise HTTPException(
            415, f"send the file as the raw body with Content-Type application/octet-stream (got {kind[:80]!r})"
        )
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPException(400, "Content-Length is not a number")
        if int(declared) > config.max_upload_bytes:
            raise HTTPException(413, f"upload of {declared} bytes exceeds the {config.max_upload_bytes} byte limit")
    root = upload_root(config)
    directory = Path(tempfile.mkdtemp(prefix=f"{UPLOAD_PREFIX}{os.getpid()}-", dir=root))
    upload = Upload(directory, _safe_filename(filename))
    request.state.upload = upload
    try:
        received = await _spool(request, upload.path, config)
        if received == 0:
            raise HTTPException(400, "empty request body: send the file as the raw body")
        yield upload
    finally:
        if not upload.keep:
            upload.cleanup()


async def _spool(request: Request, target: Path, config: ServiceSettings) -> int:
    """Write the body to ``target``; a slow or stalled client gets 408 instead of holding the worker."""
    close = {"Connection": "close"}
    received = 0
    started = time.monotonic()
    chunks = request.stream().__aiter__()
    with open(target, "wb") as sink:
        while True:
            try:
                chunk = await asyncio.wait_for(chunks.__anext__(), config.body_idle_seconds)
            except StopAsyncIteration:
                return received
            except TimeoutError:
                raise HTTPException(
                    408, f"no body data for {config.body_idle_seconds:g} s; upload closed", headers=close
                ) from None
            except ClientDisconnect:
                # A body cut short is the client's fault, not a server error: no 500, no traceback in the log.
                raise HTTPException(400, "the client disconnected before the whole body arrived") from None
            received += len(chunk)
            if received > config.max_upload_bytes:
                raise HTTPException(413, f"upload exceeds the {config.max_upload_bytes} byte limit", headers=close)
            elapsed = time.monotonic() - started
            if elapsed > config.body_grace and received < config.min_body_rate * elapsed:
                raise HTTPException(
                    408, f"body arriving slower than {config.min_body_rate:g} bytes/s; upload closed", headers=close
                )
            sink.write(chunk)


class _DuplexStream(Response):
    """An answer streamed while the request body is still arriving (the body is read by the answer itself).

    Starlette's ``StreamingResponse`` listens for the client's disconnect on the same receive channel the
    request body arrives on, so it cannot stream a body it is still reading; this one only sends, and a
    client that goes away ends the request stream (:class:`ClientDisconnect`), which ends the answer.
    """

    def __init__(self, content: AsyncIterator[bytes], media_type: str, headers: Mapping[str, str]) -> None:
        super().__init__(None, 200, headers, media_type)
        self.content = content

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        await send({"type": "http.response.start", "status": self.status_code, "headers": headers})
        try:
            async for chunk in self.content:
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except ClientDisconnect:
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


Keyed = Annotated[None, Depends(require_key)]
Uploaded = Annotated[Upload, Depends(receive_upload)]


class WorkPool:
    """At most ``places`` analyses at once, ``queue`` more waiting; beyond that, 503 with ``Retry-After``.

    Why: analysis is CPU-bound. Forty requests sharing two cores all finish late; a bounded pool lets
    the admitted ones finish at full speed and tells the rest, at once, when to come back. With an
    ``executor`` the work runs on its threads instead of the shared thread pool (see :func:`heavy_pool`).
    """

    def __init__(self, places: int, queue: int, executor: Executor | None = None) -> None:
        self.places = places
        self.queue = queue
        self.executor = executor
        self.busy = 0
        self.waiting = 0
        self._free = asyncio.Semaphore(places)
        #: Moving average of one analysis, seconds (for Retry-After).
        self.mean_seconds = 1.0

    def retry_after(self) -> int:
        """Seconds after which a place is likely free."""
        return max(1, math.ceil(self.mean_seconds * (self.waiting + 1) / self.places))

    @asynccontextmanager
    async def place(self) -> AsyncIterator[None]:
        """Hold a pool place for the block, or raise 503 when the pool and its queue are full."""
        if self.busy + self.waiting >= self.places + self.queue:
            raise HTTPException(
                503, "the service is at capacity; retry later", headers={"Retry-After": str(self.retry_after())}
            )
        self.waiting += 1
        try:
            await self._free.acquire()
        finally:
            self.waiting -= 1
        self.busy += 1
        started = time.monotonic()
        try:
            yield
        finally:
            self.busy -= 1
            self._free.release()
            self.mean_seconds = 0.8 * self.mean_seconds + 0.2 * (time.monotonic() - started)


def _lower_priority() -> None:
    """Thread initializer: nice this thread (Linux schedules threads separately), so decoding yields the CPU."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HEAVY_NICENESS)


def heavy_pool(settings: ServiceSettings) -> WorkPool:
    """The lane for pixel and sample analysis (unlabelled or thorough verification, compliance checks).

    Why a separate lane: a quarter of the uploads being decode bombs or long unlabelled videos must not
    queue the cheap majority (labelled files answered from their label) behind them. Heavy work gets
    half the places, on threads of lower priority, so the light lane keeps its latency.
    """
    places = max(1, settings.pool // 2)
    executor = ThreadPoolExecutor(places, thread_name_prefix="aigclabel-heavy", initializer=_lower_priority)
    return WorkPool(places, settings.queue_places, executor)


def _label_ok(path: Path) -> bool:
    """Whether ``path`` carries one conforming label (then verification takes the fast path)."""
    try:
        return inspect(path).ok
    except AIGCLabelError:
        return False


def _image_pixels(path: Path) -> int | None:
    """Pixel count from the image header (no decode), or ``None`` when Pillow does not read it."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return int(image.width) * int(image.height)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


class BudgetedDetector:
    """A trace detector run inside its own budget stage; over budget, it reports instead of searching."""

    def __init__(self, inner: TraceDetector, seconds: float) -> None:
        self.inner = inner
        self.name = inner.name
        self.formats = detector_formats(inner)
        self.cost = detector_cost(inner)
        self.shares_media = detector_shares_media(inner)
        self.seconds = seconds

    def detect(self, path: Path, media: MediaSample | None = None) -> list[Evidence]:
        """The inner detector's evidence, or a "not searched: over budget" finding."""
        with work.stage(self.name, self.seconds):
            try:
                work.check(self.name)
                # The detector charges what it decodes (pixels after its own downscaling, samples, frames).
                return run_detector(self.inner, path, media)
            except work.BudgetExceeded as exc:
                return [Evidence.skipped(self.name, f"not searched: {exc}")]


def budgeted_detectors(seconds: float) -> dict[str, BudgetedDetector]:
    """Every registered detector wrapped in :class:`BudgetedDetector` with ``seconds`` each."""
    return {name: BudgetedDetector(detector, seconds) for name, detector in registered_detectors().items()}


#: OpenAPI for the raw-body endpoints: the body is read from the stream, so FastAPI cannot infer it,
#: and clients (and schema-driven fuzzers) need to know a file is expected and which 4xx can come back.
_UPLOAD_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    },
}
_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "detail"],
    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR_SCHEMA}}}


_ERROR_DOC: dict[int | str, dict[str, Any]] = {
    400: _error("Empty body, bad Content-Length or otherwise unusable request"),
    401: _error("Missing or wrong API key"),
    408: _error("The body arrived too slowly"),
    413: _error("Upload larger than the configured limit"),
    415: _error("Not a format aigclabel reads, or a Content-Type uploads do not use"),
    422: _error("Malformed file, invalid label value or invalid query parameter"),
    503: _error("Pool full (see Retry-After) or audit database unavailable"),
}


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for problem in exc.errors():
        where = ".".join(str(p) for p in problem.get("loc", ()) if p not in ("query", "body"))
        parts.append(f"{where}: {problem.get('msg', 'invalid')}" if where else str(problem.get("msg", "invalid")))
    return "; ".join(parts) or "invalid request"


def _docs_assets() -> Path | None:
    """Swagger UI files shipped by the ``swagger-ui-bundle`` package (served locally: no CDN)."""
    try:
        import swagger_ui_bundle  # type: ignore[import-untyped]
    except ImportError:
        return None
    return Path(swagger_ui_bundle.swagger_ui_path)


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the FastAPI application with the given settings (default: from the environment, validated)."""
    config = settings or ServiceSettings.from_env()
    assets = _docs_assets()

    @asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[None]:
        root = upload_root(config)
        removed = remove_stale_uploads(root)
        if removed:
            _log.warning("removed %d upload directories left by stopped service processes", removed)
        application.state.audit = AuditStore(config.audit_url) if config.audit_url else None
        application.state.registry = KeyRegistry.load(config.keys_file) if config.keys_file else None
        application.state.detectors = budgeted_detectors(config.request_seconds / 2)
        application.state.heavy = heavy_pool(config)
        from .server import watch_parent

        watcher = watch_parent()
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
            application.state.heavy.executor.shutdown(wait=False, cancel_futures=True)
            if application.state.audit is not None:
                application.state.audit.close()

    app = FastAPI(
        title="aigclabel",
        version=__version__,
        description="Label AI-generated content per GB 45438-2025 and verify those labels.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = config
    app.state.pool = WorkPool(config.pool, config.queue_places)
    app.add_middleware(Guard, settings=config)

    def upload_of(request: Request) -> Upload | None:
        return getattr(request.state, "upload", None)

    @app.exception_handler(AIGCLabelError)
    async def _label_error(request: Request, exc: AIGCLabelError) -> JSONResponse:
        upload = upload_of(request)
        message = upload.scrub(str(exc)) if upload else str(exc)
        headers = None
        if isinstance(exc, AuditUnavailableError):
            # The driver's message names the database host and port: logged, never answered.
            _log.error("audit database unavailable: %s", exc.__cause__ or exc)
            message, headers = "the audit database is unavailable; retry later", {"Retry-After": "5"}
        # Status and error code come from the class (aigclabel.errors lists them all).
        return JSONResponse({"error": exc.http_error, "detail": message}, status_code=exc.http_status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Same body shape as the library errors above, so clients read one format for every 4xx.
        code = _HTTP_ERROR_CODES.get(exc.status_code, "bad-request")
        return JSONResponse({"error": code, "detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": "invalid-parameter", "detail": _validation_detail(exc)}, status_code=422)

    def upload_route(path: str, summary: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """``app.post`` for the raw-body upload endpoints: the body and the error answers documented once."""
        options.setdefault("responses", _ERROR_DOC)
        return app.post(path, summary=summary, openapi_extra=_UPLOAD_DOC, **options)

    async def analyse(function: Callable[..., Any], *args: Any, heavy: bool = False) -> Any:
        """Run ``function`` in a place of the light or heavy lane, in a worker thread, under a fresh budget."""
        pool: WorkPool = app.state.heavy if heavy else app.state.pool
        async with pool.place():
            limits = work.Budget(seconds=config.request_seconds)

            def run() -> Any:
                with work.budget(limits):
                    return function(*args)

            if pool.executor is None:
                return await run_in_threadpool(run)
            context = contextvars.copy_context()
            return await asyncio.get_running_loop().run_in_executor(pool.executor, context.run, run)

    async def health(database: bool) -> Response:
        store: AuditStore | None = app.state.audit
        state = "none"
        if store is not None:
            try:
                await asyncio.wait_for(run_in_threadpool(store.ping), 10)
                state = "ok"
            except (AuditUnavailableError, TimeoutError):
                state = "unavailable"
        if database and state == "unavailable":
            return JSONResponse(
                {"error": "not-ready", "detail": "the audit database is unavailable"},
                status_code=503,
                headers={"Retry-After": "5"},
            )
        return JSONResponse({"status": "ok", "version": __version__, "database": state})

    @app.api_route("/healthz", methods=["GET", "HEAD"], include_in_schema=False)
    async def healthz() -> Response:
        """Liveness: the process answers (the database state is reported, not required)."""
        return await health(database=False)

    @app.api_route("/readyz", methods=["GET", "HEAD"], include_in_schema=False)
    async def readyz() -> Response:
        """Readiness: 503 while the audit database does not answer."""
        return await health(database=True)

    page_html = (resources.files("aigclabel.service") / "static" / "index.html").read_text(encoding="utf-8")
    page_policy = page_csp(page_html)

    @app.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(page_html, headers={"Content-Security-Policy": page_policy})

    if assets is not None:
        from starlette.staticfiles import StaticFiles

        app.mount("/docs/assets", StaticFiles(directory=assets), name="docs-assets")

        @app.get("/docs", include_in_schema=False)
        async def docs() -> HTMLResponse:
            html = get_swagger_ui_html(
                openapi_url="/openapi.json",
                title="aigclabel API",
                swagger_js_url="/docs/assets/swagger-ui-bundle.js",
                swagger_css_url="/docs/assets/swagger-ui.css",
                swagger_favicon_url="/docs/assets/favicon-32x32.png",
            )
            text = bytes(html.body).decode()
            return HTMLResponse(text, headers={"Content-Security-Policy": page_csp(text, inline_styles=True)})

    @app.get("/v1/formats", summary="Formats that can be read and written", responses={401: _ERROR_DOC[401]})
    async def formats(_: Keyed) -> list[dict[str, Any]]:
        return [
            {
                "name": name,
                "description": cls.description,
                "extensions": list(cls.extensions),
                "location": cls.primary_location,
                "writable": cls.can_write,
            }
            for name, cls in sorted(registered().items())
        ]

    @app.post(
        "/v1/audio/turn",
        summary="Label one voice-assistant turn of raw PCM, streamed in and out (GB 45438 §5.3 note 3)",
        openapi_extra=_UPLOAD_DOC,
        responses={200: {"description": "The turn with its audible label, as it streams"}, **_ERROR_DOC},
        response_class=Response,
    )
    async def voice_turn(
        _: Keyed,
        request: Request,
        rate: Annotated[int, Query(ge=8000, le=384000, description="Sample rate in Hz")],
        channels: Annotated[int, Query(ge=1, le=8, description="Interleaved channels")] = 1,
        sample_format: Annotated[PcmFormat, Query(alias="format", description="Raw PCM sample format")] = "s16le",
        kind: Annotated[LabelKind, Query(description="cue (rhythm), speech or both")] = "cue",
        position: Annotated[TurnPosition, Query(description="start, end or both (of the turn)")] = "start",
    ) -> Response:
        """The request body streams straight into the answer: the label first (with ``start``), every chunk of
        the turn as it arrives, then the closing label (with ``end``). Nothing is buffered, so a TTS engine
        can pipe a turn through while it speaks."""
        from ..explicit.audio import PcmTurnLabeller

        limit = config.max_upload_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise LimitExceededError(f"the turn is {declared} bytes; this service takes at most {limit}")
        labeller = PcmTurnLabeller(rate, channels=channels, sample_format=sample_format, kind=kind, position=position)

        async def body() -> AsyncIterator[bytes]:
            yield labeller.head()
            async for chunk in request.stream():
                if labeller.content_bytes + len(chunk) > limit:
                    return  # ends the answer short: past the limit nothing more is labelled or sent
                yield labeller.feed(chunk)
            yield labeller.tail()

        headers = {"X-AIGC-Label": f"{kind} at {position}"}
        return _DuplexStream(body(), media_type="application/octet-stream", headers=headers)

    @upload_route("/v1/inspect", "Every implicit label in the uploaded file")
    async def inspect_upload(_: Keyed, upload: Uploaded) -> dict[str, Any]:
        result = await analyse(inspect, upload.path)
        body: dict[str, Any] = result.to_dict()
        body["path"] = upload.filename
        return body

    def private(upload: Upload, event: AuditEvent) -> AuditEvent:
        """``event`` as the log keeps it: the client's file name, never the temporary path, and undelivered."""
        detail: Mapping[str, Any] = _scrubbed(upload, {**event.detail, "path": upload.filename})
        return replace(event, detail=detail, delivered=False)

    def record(upload: Upload, event: AuditEvent) -> int | None:
        store: AuditStore | None = app.state.audit
        return store.record(private(upload, event)) if store is not None else None

    def delivered(event_id: int | None) -> BackgroundTask | None:
        """Marks the event delivered once the response has been handed over in full."""
        store: AuditStore | None = app.state.audit
        if store is None or event_id is None:
            return None

        def mark() -> None:
            try:
                store.mark_delivered([event_id])
            except AuditUnavailableError as exc:  # the answer went out; the flag stays false, logged
                _log.error("cannot mark audit event %d delivered: %s", event_id, exc.__cause__ or exc)

        return BackgroundTask(run_in_threadpool, mark)

    async def verify_and_record(upload: Upload, declared_ai: bool | None, thorough: bool) -> tuple[Verdict, int | None]:
        # A labelled file is answered from its label (milliseconds); anything else runs the detectors.
        heavy = thorough or not await analyse(_label_ok, upload.path)
        verdict: Verdict = await analyse(
            lambda: classify(upload.path, declared_ai, app.state.registry, app.state.detectors, thorough=thorough),
            heavy=heavy,
        )
        event_id = await run_in_threadpool(record, upload, verdict_event(verdict))
        return verdict, event_id

    @upload_route("/v1/verify", "Platform classification per Measures Art. 6, with the evidence")
    async def verify_upload(
        _: Keyed,
        upload: Uploaded,
        declared_ai: Annotated[
            Declaration | None, Query(description="The uploader's declaration: yes = AI-generated")
        ] = None,
        thorough: Annotated[
            bool, Query(description="Run every trace detector even when a valid label already confirms")
        ] = False,
    ) -> JSONResponse:
        said = None if declared_ai is None else declared_ai is Declaration.YES
        verdict, event_id = await verify_and_record(upload, said, thorough)
        return JSONResponse(_scrubbed(upload, verdict.to_dict()), background=delivered(event_id))

    @upload_route("/v1/check", "GB 45438 compliance report, per rule with its clause")
    async def check_upload(_: Keyed, upload: Uploaded) -> dict[str, Any]:
        from .._decode import check_video_file
        from ..check import check_files

        def checked() -> Any:
            pixels = _image_pixels(upload.path)
            if pixels is not None:
                work.require_pixels(pixels, "the image")
            elif media_of(upload.path) is MediaKind.VIDEO:
                check_video_file(upload.path)  # its frames, like an image, from the header
            return check_files([upload.path])

        try:
            reports = await analyse(checked, heavy=True)
        except work.BudgetExceeded as exc:
            raise LimitExceededError(f"not checked: {exc}") from None
        return _scrubbed(upload, reports[0].to_dict())

    @app.get(
        "/v1/trace",
        summary="Audit events for a ProduceID, content hash or watermark payload",
        responses={400: _ERROR_DOC[400], 401: _ERROR_DOC[401], 404: _error("No audit store is configured")},
    )
    async def trace(
        _: Keyed,
        produce_id: str | None = None,
        propagate_id: str | None = None,
        content_sha256: str | None = None,
        payload_digest: str | None = None,
        watermark_payload: str | None = None,
    ) -> list[dict[str, Any]]:
        store: AuditStore | None = app.state.audit
        if store is None:
            raise HTTPException(404, "no audit store is configured (set AIGCLABEL_DB)")
        events = await run_in_threadpool(
            lambda: store.trace(
                produce_id=produce_id,
                propagate_id=propagate_id,
                content_sha256=content_sha256,
                payload_digest=payload_digest,
                watermark_payload=watermark_payload,
            )
        )
        return [event.to_dict() for event in events]

    @upload_route("/v1/report", "Everything the web page shows: labels, platform verdict, watermark")
    async def report_upload(_: Keyed, upload: Uploaded) -> JSONResponse:
        verdict, event_id = await verify_and_record(upload, None, True)  # the page shows the watermark too
        assert verdict.inspection is not None  # classify always sets it
        result = verdict.inspection
        marks = [e for e in verdict.evidence if e.source == "watermark"]
        watermark = None
        if "watermark" in verdict.detectors:
            payload = next((str(e.data["watermark_payload"]) for e in marks if "watermark_payload" in e.data), None)
            watermark = {"present": bool(marks), "payload": payload, "detail": marks[0].detail if marks else None}
        body = {"inspection": result.to_dict(), "verdict": verdict.to_dict(), "watermark": watermark}
        return JSONResponse(_scrubbed(upload, body), background=delivered(event_id))

    @upload_route(
        "/v1/label",
        "Return the uploaded file carrying a GB 45438 implicit label",
        response_class=FileResponse,
        responses={
            200: {"description": "The labelled file", "content": _UPLOAD_DOC["requestBody"]["content"]},
            **_ERROR_DOC,
        },
    )
    async def label_upload(
        _: Keyed,
        upload: Uploaded,
        producer: Annotated[str, Query(description="ContentProducer: the 27-character provider code")],
        produce_id: Annotated[str | None, Query(description="ProduceID (default: a fresh unique ID)")] = None,
        label: Annotated[LabelValue, Query(description="1 AI-generated, 2 possibly, 3 suspected")] = (
            LabelValue.CONFIRMED
        ),
    ) -> FileResponse:
        made = AIGCLabel.for_producer(producer, produce_id, label=label)
        await analyse(write_label, upload.path, made)
        event_id = await run_in_threadpool(record, upload, file_event(EventKind.LABEL, upload.path, made))
        upload.keep = True
        marker = delivered(event_id)

        async def finish() -> None:
            upload.cleanup()
            if marker is not None:
                await marker()

        return FileResponse(
            upload.path,
            filename=upload.filename,
            media_type="application/octet-stream",
            headers={"X-AIGC-ProduceID": made.produce_id},
            background=BackgroundTask(finish),
        )

    from .likeness import add_likeness_routes

    add_likeness_routes(app, upload_route, analyse)
    return app
