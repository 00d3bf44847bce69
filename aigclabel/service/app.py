"""The HTTP service: label, inspect (and, as they are wired in, verify, check, trace) over HTTP.

Uploads are the raw request body (``Content-Type: application/octet-stream``) with the file name in
the ``filename`` query parameter: no multipart parsing, so the body streams straight to a temporary
file and the size limit is enforced while reading, before anything is parsed. Every
:class:`~aigclabel.errors.AIGCLabelError` becomes a 4xx with a JSON body ``{"error", "detail"}``;
temporary paths never leak into messages.
"""

from __future__ import annotations

import hmac
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path, PurePath
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from .. import __version__
from ..api import inspect, write_label
from ..audit import AuditEvent, AuditStore
from ..audit.events import file_event, verdict_event
from ..audit.models import EventKind
from ..containers import registered
from ..errors import (
    AIGCLabelError,
    InvalidLabelError,
    LimitExceededError,
    MalformedFileError,
    UnsupportedFormatError,
)
from ..label import AIGCLabel, LabelValue
from ..signing import KeyRegistry
from ..verify import Verdict, classify

#: Default largest upload accepted, in bytes.
DEFAULT_MAX_UPLOAD = 512 << 20

_STATUS_BY_ERROR: tuple[tuple[type[AIGCLabelError], int, str], ...] = (
    (LimitExceededError, 413, "too-large"),
    (UnsupportedFormatError, 415, "unsupported-format"),
    (MalformedFileError, 422, "malformed-file"),
    (InvalidLabelError, 422, "invalid-label"),
    (AIGCLabelError, 400, "bad-request"),
)


_HTTP_ERROR_CODES = {
    400: "bad-request",
    401: "unauthorized",
    404: "not-found",
    405: "method-not-allowed",
    413: "too-large",
}


@dataclass(frozen=True)
class ServiceSettings:
    """Explicit service settings; :meth:`from_env` reads them from ``AIGCLABEL_*`` variables."""

    api_keys: frozenset[str] = field(default_factory=frozenset)
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD
    work_dir: Path | None = None
    #: Audit database URL or SQLite path; ``None`` records nothing and disables ``/v1/trace``.
    audit_url: str | None = None
    #: Key registry file (JSON/TOML) used to check ReservedCode1/2 signatures.
    keys_file: Path | None = None

    @classmethod
    def from_env(cls) -> ServiceSettings:
        """``AIGCLABEL_API_KEYS`` (comma-separated), ``AIGCLABEL_MAX_UPLOAD`` (bytes),
        ``AIGCLABEL_DB`` (audit database), ``AIGCLABEL_KEYS`` (key registry file)."""
        keys = frozenset(k.strip() for k in os.environ.get("AIGCLABEL_API_KEYS", "").split(",") if k.strip())
        limit = int(os.environ.get("AIGCLABEL_MAX_UPLOAD", DEFAULT_MAX_UPLOAD))
        registry = os.environ.get("AIGCLABEL_KEYS")
        return cls(
            api_keys=keys,
            max_upload_bytes=limit,
            audit_url=os.environ.get("AIGCLABEL_DB") or None,
            keys_file=Path(registry) if registry else None,
        )


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
    returned file's name rely on it (so a 5000-character or dot-led name keeps its ``.png``)."""
    base = PurePath((name or "upload").replace("\\", "/")).name
    cleaned = "".join(c for c in base if c.isalnum() or c in "._-")
    stem, dot, suffix = cleaned.rpartition(".")
    if not dot:
        stem, suffix = cleaned, ""
    suffix = suffix[:16]
    stem = stem.lstrip(".")[: 127 - len(suffix)] or "upload"
    return f"{stem}.{suffix}" if suffix else stem


def require_key(request: Request) -> None:
    """Dependency: reject the request unless it carries a configured API key (if any are set)."""
    config: ServiceSettings = request.app.state.settings
    if not config.api_keys:
        return
    given = request.headers.get("x-api-key") or ""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    if not any(hmac.compare_digest(given.encode(), key.encode()) for key in config.api_keys):
        raise HTTPException(401, "missing or wrong API key (send X-API-Key or Authorization: Bearer)")


async def receive_upload(request: Request, filename: str | None = None) -> AsyncIterator[Upload]:
    """Dependency: stream the raw body to a temporary file, enforcing the size limit while reading."""
    config: ServiceSettings = request.app.state.settings
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPException(400, "Content-Length is not a number")
        if int(declared) > config.max_upload_bytes:
            raise HTTPException(413, f"upload of {declared} bytes exceeds the {config.max_upload_bytes} byte limit")
    directory = Path(tempfile.mkdtemp(prefix="aigclabel-", dir=config.work_dir))
    upload = Upload(directory, _safe_filename(filename))
    request.state.upload = upload
    try:
        received = 0
        with open(upload.path, "wb") as sink:
            try:
                async for chunk in request.stream():
                    received += len(chunk)
                    if received > config.max_upload_bytes:
                        raise HTTPException(413, f"upload exceeds the {config.max_upload_bytes} byte limit")
                    sink.write(chunk)
            except ClientDisconnect:
                # A body cut short is the client's fault, not a server error: no 500, no traceback in the log.
                raise HTTPException(400, "the client disconnected before the whole body arrived") from None
        if received == 0:
            raise HTTPException(400, "empty request body: send the file as the raw body")
        yield upload
    finally:
        if not upload.keep:
            upload.cleanup()


Keyed = Annotated[None, Depends(require_key)]
Uploaded = Annotated[Upload, Depends(receive_upload)]

#: OpenAPI for the raw-body endpoints: the body is read from the stream, so FastAPI cannot infer it,
#: and clients (and schema-driven fuzzers) need to know a file is expected and which 4xx can come back.
_UPLOAD_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    },
}
_ERROR_DOC: dict[int | str, dict[str, Any]] = {
    400: {"description": "Empty body, bad Content-Length or otherwise unusable request"},
    413: {"description": "Upload larger than the configured limit"},
    415: {"description": "Not a format aigclabel reads"},
    422: {"description": "Malformed file, invalid label value or invalid query parameter"},
}


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the FastAPI application with the given settings (default: from the environment)."""
    config = settings or ServiceSettings.from_env()

    @asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[None]:
        application.state.audit = AuditStore(config.audit_url) if config.audit_url else None
        application.state.registry = KeyRegistry.load(config.keys_file) if config.keys_file else None
        try:
            yield
        finally:
            if application.state.audit is not None:
                application.state.audit.close()

    app = FastAPI(
        title="aigclabel",
        version=__version__,
        description="Label AI-generated content per GB 45438-2025 and verify those labels.",
        lifespan=lifespan,
    )
    app.state.settings = config

    @app.exception_handler(AIGCLabelError)
    async def _label_error(request: Request, exc: AIGCLabelError) -> JSONResponse:
        upload: Upload | None = getattr(request.state, "upload", None)
        message = upload.scrub(str(exc)) if upload else str(exc)
        for kind, status, code in _STATUS_BY_ERROR:
            if isinstance(exc, kind):
                return JSONResponse({"error": code, "detail": message}, status_code=status)
        raise AssertionError("unreachable: AIGCLabelError is in the table")  # pragma: no cover

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Same body shape as the library errors above, so clients read one format for every 4xx.
        code = _HTTP_ERROR_CODES.get(exc.status_code, "bad-request")
        return JSONResponse({"error": code, "detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    def upload_route(path: str, summary: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """``app.post`` for the raw-body upload endpoints: the body and the 4xx answers documented once."""
        options.setdefault("responses", _ERROR_DOC)
        return app.post(path, summary=summary, openapi_extra=_UPLOAD_DOC, **options)

    async def threaded(function: Callable[..., Any], *args: Any) -> Any:
        return await run_in_threadpool(function, *args)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        html = (resources.files("aigclabel.service") / "static" / "index.html").read_text(encoding="utf-8")
        return HTMLResponse(html)

    @app.get("/v1/formats", summary="Formats that can be read and written")
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

    @upload_route("/v1/inspect", "Every implicit label in the uploaded file")
    async def inspect_upload(_: Keyed, upload: Uploaded) -> dict[str, Any]:
        result = await threaded(inspect, upload.path)
        body: dict[str, Any] = result.to_dict()
        body["path"] = upload.filename
        return body

    def record(event: AuditEvent) -> None:
        store: AuditStore | None = app.state.audit
        if store is not None:
            store.record(event)

    def verify_and_record(path: Path, declared_ai: bool | None, thorough: bool = False) -> Verdict:
        verdict = classify(path, declared_ai, app.state.registry, thorough=thorough)
        record(verdict_event(verdict))
        return verdict

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
    ) -> dict[str, Any]:
        said = None if declared_ai is None else declared_ai is Declaration.YES
        verdict = await threaded(verify_and_record, upload.path, said, thorough)
        return _scrubbed(upload, verdict.to_dict())

    @upload_route("/v1/check", "GB 45438 compliance report, per rule with its clause")
    async def check_upload(_: Keyed, upload: Uploaded) -> dict[str, Any]:
        from ..check import check_files

        reports = await threaded(check_files, [upload.path])
        return _scrubbed(upload, reports[0].to_dict())

    @app.get(
        "/v1/trace",
        summary="Audit events for a ProduceID, content hash or watermark payload",
        responses={400: _ERROR_DOC[400], 404: {"description": "No audit store is configured"}},
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
        events = await threaded(
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
    async def report_upload(_: Keyed, upload: Uploaded) -> dict[str, Any]:
        verdict = await threaded(verify_and_record, upload.path, None, True)  # the page shows the watermark too
        assert verdict.inspection is not None  # classify always sets it
        result = verdict.inspection
        marks = [e for e in verdict.evidence if e.source == "watermark"]
        watermark = None
        if "watermark" in verdict.detectors:
            payload = next((str(e.data["watermark_payload"]) for e in marks if "watermark_payload" in e.data), None)
            watermark = {"present": bool(marks), "payload": payload, "detail": marks[0].detail if marks else None}
        body = {"inspection": result.to_dict(), "verdict": verdict.to_dict(), "watermark": watermark}
        return _scrubbed(upload, body)

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
        await threaded(write_label, upload.path, made)
        await threaded(record, file_event(EventKind.LABEL, upload.path, made, detail={"filename": upload.filename}))
        upload.keep = True
        return FileResponse(
            upload.path,
            filename=upload.filename,
            media_type="application/octet-stream",
            headers={"X-AIGC-ProduceID": made.produce_id},
            background=BackgroundTask(upload.cleanup),
        )

    return app
