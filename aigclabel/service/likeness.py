"""The ``/v1/likeness/...`` endpoints: evidence packages, the gate and the scan, enrolment, the consent ledger.

Same contract as the rest of the service (:mod:`aigclabel.service.app`): the raw body is the upload, the API
key guards every route, analysis runs in the heavy lane under the request budget, and every error has the
``{"error", "detail"}`` body; a hostile ZIP is answered 413 or 422, never 500.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from ..likeness.evidence import EvidenceReport, make_evidence, optional_template_key, verify_evidence
from ..signing import KeyRegistry, SigningKey, demo_registry, demo_signing_key
from .app import _ERROR_DOC, Keyed, Uploaded, _scrubbed
from .app import _error as _error_doc

if TYPE_CHECKING:
    from ..audit import AuditStore
    from .settings import ServiceSettings

ZIP_TYPE = "application/zip"
PersonId = Annotated[str, Path(min_length=1, max_length=256, description="Opaque person id (no name needed)")]


def _json_only(request: Request) -> None:
    """Dependency: a ledger write must say ``Content-Type: application/json`` (see :func:`add_consent_routes`)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise HTTPException(415, f"send the request as JSON with Content-Type application/json (got {kind[:80]!r})")


def _aware(when: datetime) -> datetime:
    """A time without a zone is UTC (as on the command line)."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


class NoticeBody(BaseModel):
    """Proof the person was notified (Art. 14): the notice's SHA-256, the channel, when it was sent."""

    sha256: str = Field(min_length=64, max_length=71)
    channel: str = Field(min_length=1, max_length=256)
    at: datetime


class GrantBody(BaseModel):
    """A consent grant: who allows whom to use which likeness, for what, until when."""

    person: str = Field(min_length=1, max_length=256)
    grantee: str = Field(min_length=1, max_length=256)
    modality: Literal["face", "voice"]
    commercial: bool = False
    distortion: bool = False
    scope: str = Field(default="", max_length=2048)
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    notice: NoticeBody | None = None


class RevokeBody(BaseModel):
    """A revocation: one grant (its hash or token), or every grant of the person (to a grantee, for a modality)."""

    person: str = Field(min_length=1, max_length=256)
    grant: str | None = Field(default=None, max_length=256)
    grantee: str | None = Field(default=None, max_length=256)
    modality: Literal["face", "voice"] | None = None
    reason: str = Field(default="", max_length=2048)


class NotifyBody(NoticeBody):
    """Proof that the person of a grant (its token or hash) was notified."""

    grant: str = Field(min_length=1, max_length=256)


class ProtectBody(BaseModel):
    """Whether an enrolled person is protected (opted out: platforms match uploads against them)."""

    protected: bool = True


class ReviewBody(BaseModel):
    """A reviewer's decision on a review-queue item."""

    decision: Literal["approve", "remove", "false-match"]
    reviewer: str = Field(min_length=1, max_length=512)
    note: str = Field(default="", max_length=2048)


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
                template_key=optional_template_key() if store is not None else None,
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

    add_consent_routes(app, upload_route, analyse)


def add_consent_routes(
    app: FastAPI,
    upload_route: Callable[..., Callable[[Callable[..., Any]], Callable[..., Any]]],
    analyse: Callable[..., Any],
) -> None:
    """Register the enrolment, gate, scan, review-queue and consent-ledger endpoints (the audit database holds
    them all).

    Writes to the ledger (consent grant, revoke and notify, review approve and remove, deleting a person) are
    signed with the key file in ``AIGCLABEL_LEDGER_KEY``; without one they are refused with 403. Their bodies
    (and the protect switch's) are JSON with ``Content-Type: application/json``, which no cross-site form or
    simple request can send, so a page elsewhere cannot make a browser grant consent on a keyless loopback
    service; a ``DELETE`` and an upload's media type need a CORS preflight, which the service never grants.
    """
    from ..likeness.ledger import ConsentLedger, Notice, Purposes
    from ..likeness.registry import LikenessRegistry, load_template_key
    from ..likeness.scan import ReviewQueue, scan
    from ..likeness.types import Modality

    config: ServiceSettings = app.state.settings
    ledger_key = SigningKey.load(config.ledger_key) if config.ledger_key else None
    not_found: dict[int | str, dict[str, Any]] = {404: _error_doc("No audit database is configured (set AIGCLABEL_DB)")}

    def store_of() -> AuditStore:
        store: AuditStore | None = app.state.audit
        if store is None:
            raise HTTPException(404, "no audit database is configured (set AIGCLABEL_DB)")
        return store

    def ledger(write: bool = False) -> ConsentLedger:
        if write and ledger_key is None:
            raise HTTPException(403, "this service has no ledger key (AIGCLABEL_LEDGER_KEY): ledger writes are off")
        return ConsentLedger(store_of(), ledger_key)

    def registry(consent: ConsentLedger) -> LikenessRegistry:
        return LikenessRegistry(consent.store, load_template_key(), consent)

    forbidden: dict[int | str, dict[str, Any]] = {403: _error_doc("No ledger key configured")}

    @upload_route(
        "/v1/likeness/people/{person}/templates",
        "Enrol a person from a photo, video or voice clip: embeddings only, encrypted; the upload is not kept",
        responses={**_ERROR_DOC, **not_found},
        tags=["likeness"],
    )
    async def enrol_upload(
        _: Keyed,
        upload: Uploaded,
        person: PersonId,
        modality: Annotated[Literal["face", "voice"] | None, Query(description="Default: by the file")] = None,
        protected: Annotated[bool | None, Query(description="Opt-out: platforms match uploads against them")] = None,
    ) -> JSONResponse:
        """How many templates were stored and the person's record (template key from
        ``$AIGCLABEL_LIKENESS_KEY``); each photo or frame must show one face."""
        consent = ledger()
        people = registry(consent)
        chosen: Modality | None = modality

        def enrol() -> dict[str, Any]:
            count = people.enrol_files(person, [upload.path], modality=chosen, protected=protected)
            enrolled = people.person(person)
            return {"stored": count, **(enrolled.to_dict() if enrolled else {"person": person})}

        return JSONResponse(_scrubbed(upload, await analyse(enrol, heavy=True)))

    @app.post(
        "/v1/likeness/people/{person}/protect",
        summary="Protect an enrolled person (opt-out: platforms match uploads against them), or withdraw it",
        responses={**_ERROR_DOC, **not_found},
        tags=["likeness"],
        dependencies=[Depends(_json_only)],
    )
    async def protect(_: Keyed, person: PersonId, body: ProtectBody) -> dict[str, Any]:
        people = LikenessRegistry(store_of())
        await run_in_threadpool(people.set_protected, person, body.protected)
        return {"person": person, "protected": body.protected}

    @app.delete(
        "/v1/likeness/people/{person}",
        summary="Delete a person and their templates; the ledger keeps a signed deletion entry (no biometrics)",
        responses={**_ERROR_DOC, **not_found, **forbidden},
        tags=["likeness"],
    )
    async def delete_person(_: Keyed, person: PersonId) -> dict[str, Any]:
        consent = ledger(write=True)
        count = await run_in_threadpool(LikenessRegistry(consent.store, None, consent).delete, person)
        return {"person": person, "templates_deleted": count}

    @upload_route(
        "/v1/likeness/gate",
        "Generation-time gate: may the grantee publish this edited face or voice? (Deep Synthesis Art. 14)",
        responses={**_ERROR_DOC, **not_found},
        tags=["likeness"],
    )
    async def gate_upload(
        _: Keyed,
        upload: Uploaded,
        grantee: Annotated[str, Query(min_length=1, max_length=256, description="Who asks to edit or publish")],
        distortion: Annotated[bool, Query(description="The edit distorts the likeness")] = True,
        commercial: Annotated[bool, Query(description="For commercial use")] = False,
    ) -> JSONResponse:
        """allow / consent-required / refuse for the faces and voices in the upload (the edit's output), with
        the scores, threshold and model; recorded in the audit log."""
        from ..likeness.gate import gate

        consent = ledger()
        decided = await analyse(
            lambda: gate(
                registry(consent),
                consent,
                grantee=grantee,
                output=upload.path,
                distortion=distortion,
                commercial=commercial,
            ),
            heavy=True,
        )
        return JSONResponse(_scrubbed(upload, decided.to_dict()))

    @upload_route(
        "/v1/likeness/scan",
        "Platform scan: match the upload against the protected people; matches without a token go to review",
        responses={**_ERROR_DOC, **not_found},
        tags=["likeness"],
    )
    async def scan_upload(
        _: Keyed,
        upload: Uploaded,
        uploader: Annotated[str | None, Query(max_length=512, description="Who uploaded it")] = None,
        token: Annotated[list[str] | None, Query(max_length=200, description="Consent tokens presented")] = None,
    ) -> JSONResponse:
        """Every match with a protected person, whether a consent token cleared it, else its review id."""
        consent = ledger()
        found = await analyse(
            lambda: scan(upload.path, registry(consent), consent, tokens=token or [], uploader=uploader), heavy=True
        )
        return JSONResponse(_scrubbed(upload, found.to_dict()))

    @app.get(
        "/v1/likeness/review", summary="The review queue", responses={**_ERROR_DOC, **not_found}, tags=["likeness"]
    )
    async def review_list(
        _: Keyed,
        status: Annotated[str, Query(max_length=32, description="open, approve, remove, false-match or all")] = "open",
    ) -> list[dict[str, Any]]:
        queue = ReviewQueue(ledger())
        found = await run_in_threadpool(queue.list, None if status == "all" else status)
        return [item.to_dict() for item in found]

    @app.post(
        "/v1/likeness/review/{review_id}",
        summary="Decide a review item: approve, remove or false-match (approve and remove are signed ledger entries)",
        responses={**_ERROR_DOC, **not_found, **forbidden},
        tags=["likeness"],
        dependencies=[Depends(_json_only)],
    )
    async def review_decide(_: Keyed, review_id: int, body: ReviewBody) -> dict[str, Any]:
        queue = ReviewQueue(ledger(write=body.decision != "false-match"))
        decided = await run_in_threadpool(queue.decide, review_id, body.decision, body.reviewer, body.note)
        return decided.to_dict()

    @app.get(
        "/v1/likeness/consent",
        summary="Consent-ledger entries",
        responses={**_ERROR_DOC, **not_found},
        tags=["likeness"],
    )
    async def consent_list(
        _: Keyed, person: Annotated[str | None, Query(max_length=256, description="Only this person's")] = None
    ) -> list[dict[str, Any]]:
        consent = ledger()
        return [entry.to_dict() for entry in await run_in_threadpool(consent.entries, person)]

    @app.post(
        "/v1/likeness/consent",
        summary="Record a person's consent (Deep Synthesis Art. 14): a signed, hash-chained ledger entry",
        responses={**_ERROR_DOC, **not_found, **forbidden},
        tags=["likeness"],
        dependencies=[Depends(_json_only)],
    )
    async def consent_grant(_: Keyed, body: GrantBody) -> dict[str, Any]:
        """The grant entry, with the consent ``token`` an uploader presents to the scan."""
        consent = ledger(write=True)
        notice = Notice(body.notice.sha256, body.notice.channel, _aware(body.notice.at)) if body.notice else None
        modality: Modality = body.modality
        entry = await run_in_threadpool(
            lambda: consent.grant(
                body.person,
                body.grantee,
                modality,
                purposes=Purposes(body.commercial, body.distortion, body.scope),
                valid_from=_aware(body.valid_from) if body.valid_from else None,
                valid_until=_aware(body.valid_until) if body.valid_until else None,
                notice=notice,
            )
        )
        return entry.to_dict()

    @app.post(
        "/v1/likeness/consent/revoke",
        summary="Revoke consent, effective at once: one grant, or all of a person's (to a grantee, for a modality)",
        responses={**_ERROR_DOC, **not_found, **forbidden},
        tags=["likeness"],
        dependencies=[Depends(_json_only)],
    )
    async def consent_revoke(_: Keyed, body: RevokeBody) -> dict[str, Any]:
        consent = ledger(write=True)
        modality: Modality | None = body.modality
        entry = await run_in_threadpool(
            lambda: consent.revoke(
                body.person, grant=body.grant, grantee=body.grantee, modality=modality, reason=body.reason
            )
        )
        return entry.to_dict()

    @app.post(
        "/v1/likeness/consent/notify",
        summary="Record proof that the person of a grant was notified (Deep Synthesis Art. 14): a signed entry",
        responses={**_ERROR_DOC, **not_found, **forbidden},
        tags=["likeness"],
        dependencies=[Depends(_json_only)],
    )
    async def consent_notify(_: Keyed, body: NotifyBody) -> dict[str, Any]:
        """The notify entry; from then on the grant counts (a grant without notice is ``not-notified``)."""
        consent = ledger(write=True)
        notice = Notice(body.sha256, body.channel, _aware(body.at))
        entry = await run_in_threadpool(consent.notify, body.grant, notice)
        return entry.to_dict()
