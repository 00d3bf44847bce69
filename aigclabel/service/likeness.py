"""The ``/v1/likeness/...`` endpoints: evidence packages for an upload, and their verification.

Same contract as the rest of the service (:mod:`aigclabel.service.app`): the raw body is the upload, the API
key guards every route, analysis runs in the heavy lane under the request budget, and every error has the
``{"error", "detail"}`` body; a hostile ZIP is answered 413 or 422, never 500.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, Query
from fastapi.responses import FileResponse, JSONResponse
from starlette.background import BackgroundTask

from ..likeness.evidence import EvidenceReport, make_evidence, verify_evidence
from ..signing import KeyRegistry, SigningKey, demo_registry, demo_signing_key
from .app import _ERROR_DOC, Keyed, Uploaded

if TYPE_CHECKING:
    from ..audit import AuditStore
    from .settings import ServiceSettings

ZIP_TYPE = "application/zip"


def evidence_key(settings: ServiceSettings) -> SigningKey:
    """The key that signs the service's evidence packages (the DEMO key when none is configured)."""
    return SigningKey.load(settings.evidence_key) if settings.evidence_key else demo_signing_key()


def known_keys(registry: KeyRegistry | None, store: AuditStore | None) -> KeyRegistry:
    """Keys an evidence signature is checked against: the service's registry, the audit store's, the DEMO keys."""
    known = KeyRegistry().merge(registry or KeyRegistry())
    if store is not None:
        known.merge(store.key_registry())
    return known.merge(demo_registry())


def add_likeness_routes(
    app: FastAPI,
    upload_route: Callable[..., Callable[[Callable[..., Any]], Callable[..., Any]]],
    analyse: Callable[..., Any],
) -> None:
    """Register the likeness endpoints on ``app`` with the service's upload route and work pool (``analyse``)."""
    config: ServiceSettings = app.state.settings
    signer = evidence_key(config)

    @upload_route(
        "/v1/likeness/evidence",
        "Evidence package (signed ZIP) for the uploaded file: hashes, labels, signatures, watermark trace, audit",
        response_class=FileResponse,
        responses={200: {"description": "The evidence ZIP", "content": {ZIP_TYPE: {}}}, **_ERROR_DOC},
        tags=["likeness"],
    )
    async def evidence_make(
        _: Keyed,
        upload: Uploaded,
        person: Annotated[str | None, Query(max_length=256, description="The person (registry id) concerned")] = None,
        include_file: Annotated[bool, Query(description="Put the file itself in the package")] = False,
    ) -> FileResponse:
        """The file's evidence package, signed with the service's evidence key (``AIGCLABEL_EVIDENCE_KEY``;
        without one, the public DEMO key, which the manifest flags)."""
        store: AuditStore | None = app.state.audit
        package = upload.directory / ".evidence.zip"  # an upload name never starts with a dot
        await analyse(
            lambda: make_evidence(
                upload.path,
                person,
                store,
                signer,
                output=package,
                include_file=include_file,
                registry=known_keys(app.state.registry, store),
                detectors=app.state.detectors,
            ),
            heavy=True,
        )
        upload.keep = True
        stem = upload.filename.rpartition(".")[0] or upload.filename
        return FileResponse(
            package,
            filename=f"{stem}.evidence.zip",
            media_type=ZIP_TYPE,
            headers={"X-Evidence-Key": signer.key_id},
            background=BackgroundTask(upload.cleanup),
        )

    @upload_route(
        "/v1/likeness/evidence/verify",
        "Check an evidence package: every member's hash and the manifest's signature",
        responses={200: {"description": "What is wrong, if anything (ok: true when nothing)"}, **_ERROR_DOC},
        tags=["likeness"],
    )
    async def evidence_check(_: Keyed, upload: Uploaded) -> JSONResponse:
        """Tampering is reported in the answer (``ok: false`` with each problem); a ZIP that is hostile or no ZIP
        at all is answered 413 or 422."""
        store: AuditStore | None = app.state.audit
        limit = 2 * config.max_upload_bytes  # members are stored uncompressed or nearly: more is a bomb
        report: EvidenceReport = await analyse(
            lambda: verify_evidence(upload.path, known_keys(app.state.registry, store), max_bytes=limit)
        )
        body = report.to_dict()
        body["path"] = upload.filename
        return JSONResponse(body)
