"""The ``/v1/likeness/...`` endpoints through the ASGI app: an evidence ZIP made for an upload verifies with the
library and with ``cryptography`` directly, tampering is named, hostile ZIPs are 4xx, the key guards it all."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi.testclient import TestClient

from aigclabel import DEMO_PROVIDER_CODE, AIGCLabel, write_label
from aigclabel.likeness.evidence import MANIFEST, SIGNATURE, verify_evidence
from aigclabel.signing import KeyRegistry, SigningKey, demo_signing_key, payload_digest, sign

from ._hostile import png_huge_dimensions, png_pixel_flood
from .conftest import SAMPLES
from .test_likeness_evidence import hostile
from .test_service import _client

ZIP = {"Content-Type": "application/zip"}
RAW = {"Content-Type": "application/octet-stream"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
KEY = "likeness-key-0123456789"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with _client(tmp_path, audit_url=str(tmp_path / "audit.sqlite")) as running:
        yield running


@pytest.fixture
def photo(tmp_path: Path) -> bytes:
    target = tmp_path / "photo.png"
    shutil.copy(SAMPLES / "sample.png", target)
    write_label(target, sign(AIGCLabel.for_producer(DEMO_PROVIDER_CODE, "svc-evidence-1"), payload_digest(target),
                             demo_signing_key()))  # fmt: skip
    return target.read_bytes()


def test_make_and_verify_an_evidence_package(client: TestClient, photo: bytes, tmp_path: Path) -> None:
    made = client.post(
        "/v1/likeness/evidence",
        params={"filename": "photo.png", "person": "p-9", "include_file": "true"},
        content=photo,
        headers=RAW,
    )
    assert made.status_code == 200, made.text
    assert made.headers["content-type"] == "application/zip"
    assert made.headers["x-evidence-key"] == demo_signing_key().key_id
    package = tmp_path / "got.zip"
    package.write_bytes(made.content)
    with zipfile.ZipFile(package) as archive:
        body = archive.read(MANIFEST)
        signature = json.loads(archive.read(SIGNATURE))
        assert archive.read("content/photo.png") == photo
    manifest = json.loads(body)
    Ed25519PublicKey.from_public_bytes(bytes.fromhex(manifest["signer"]["public_key"])).verify(
        bytes.fromhex(signature["signature"]), body
    )
    assert manifest["labels"]["implicit"]["ProduceID"] == "svc-evidence-1"
    assert manifest["person"] == {"id": "p-9"} and manifest["signer"]["demo"] is True
    assert "aigclabel-upload" not in body.decode(), "temporary paths must not leak"
    assert verify_evidence(package).ok
    assert list((tmp_path / "uploads").iterdir()) == [], "the upload and the package are removed"

    checked = client.post("/v1/likeness/evidence/verify", params={"filename": "got.zip"}, content=made.content,
                          headers=ZIP)  # fmt: skip
    assert checked.status_code == 200 and checked.json()["ok"] is True
    assert {p["code"] for p in checked.json()["problems"]} == {"demo-key", "key-not-pinned"}

    buffer = io.BytesIO()
    with zipfile.ZipFile(package) as src, zipfile.ZipFile(buffer, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            dst.writestr(name, data.replace(b"svc-evidence-1", b"svc-evidence-2") if name == MANIFEST else data)
    tampered = client.post("/v1/likeness/evidence/verify", content=buffer.getvalue(), headers=ZIP)
    assert tampered.status_code == 200
    assert tampered.json()["ok"] is False
    assert [p["code"] for p in tampered.json()["problems"] if p["severity"] == "error"] == ["signature-invalid"]


def test_configured_evidence_key_signs(tmp_path: Path, photo: bytes) -> None:
    key = SigningKey.generate()
    key.save(tmp_path / "evidence.key")
    registry = KeyRegistry()
    registry.add("PLATFORM", key.public_key)
    registry.save(tmp_path / "keys.json")
    with _client(tmp_path, evidence_key=tmp_path / "evidence.key", keys_file=tmp_path / "keys.json") as app:
        made = app.post("/v1/likeness/evidence", params={"filename": "p.png"}, content=photo, headers=RAW)
        assert made.status_code == 200 and made.headers["x-evidence-key"] == key.key_id
        checked = app.post("/v1/likeness/evidence/verify", content=made.content, headers=ZIP).json()
    assert checked["ok"] is True and checked["problems"] == []
    assert checked["signed_by"] == {"provider": "PLATFORM", "key_id": key.key_id, "pinned": True}
    assert checked["manifest"]["signer"]["demo"] is False


def test_hostile_packages_are_4xx(client: TestClient, tmp_path: Path) -> None:
    for name, (path, error) in hostile(tmp_path).items():
        answer = client.post("/v1/likeness/evidence/verify", content=path.read_bytes(), headers=ZIP)
        assert answer.status_code == error.http_status, (name, answer.text)  # type: ignore[attr-defined]
        assert set(answer.json()) == {"error", "detail"}
        assert "aigclabel-upload" not in answer.json()["detail"]
    garbage = client.post("/v1/likeness/evidence", params={"filename": "x.bin"}, content=b"not media", headers=RAW)
    assert garbage.status_code == 415 and garbage.json()["error"] == "unsupported-format"


def test_likeness_endpoints_need_the_key(tmp_path: Path, photo: bytes) -> None:
    keyed = _client(tmp_path, api_keys=frozenset({KEY}))
    for path in ("/v1/likeness/evidence", "/v1/likeness/evidence/verify", "/v1/likeness/people/p/templates"):
        assert keyed.post(path, content=photo, headers=RAW).status_code == 401
    assert keyed.delete("/v1/likeness/people/p").status_code == 401
    spec = keyed.get("/openapi.json").json()
    for path in ("/v1/likeness/evidence", "/v1/likeness/evidence/verify"):
        operation = spec["paths"][path]["post"]
        assert operation["requestBody"]["required"] is True and "413" in operation["responses"]


@pytest.fixture
def ledger_client(tmp_path: Path) -> Iterator[TestClient]:
    key = SigningKey.generate()
    key.save(tmp_path / "ledger.key")
    with _client(tmp_path, audit_url=str(tmp_path / "audit.sqlite"), ledger_key=tmp_path / "ledger.key") as running:
        yield running


GRANT = {
    "person": "alice",
    "grantee": "studio",
    "modality": "face",
    "distortion": True,
    "notice": {"sha256": "ab" * 32, "channel": "sms", "at": "2026-11-01T12:00:00"},
}


def test_consent_over_http_is_a_verified_chain(ledger_client: TestClient, tmp_path: Path) -> None:
    from aigclabel.audit import AuditStore
    from aigclabel.likeness.ledger import ConsentLedger

    granted = ledger_client.post("/v1/likeness/consent", json=GRANT)
    assert granted.status_code == 200, granted.text
    token = granted.json()["token"]
    assert token.startswith("aigclabel-consent:1:") and granted.json()["kind"] == "grant"
    revoked = ledger_client.post("/v1/likeness/consent/revoke", json={"person": "alice", "grant": token, "reason": "x"})
    assert revoked.status_code == 200 and revoked.json()["kind"] == "revoke"
    listed = ledger_client.get("/v1/likeness/consent", params={"person": "alice"}).json()
    assert [e["kind"] for e in listed] == ["grant", "revoke"]
    with AuditStore(tmp_path / "audit.sqlite") as store:  # read back by the library, not the service
        ledger = ConsentLedger(store)
        assert ledger.verify_chain().ok
        assert ledger.check("alice", "studio", "face", distortion=True).state == "revoked"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Content-Type": "text/plain"}, 415),  # a cross-site simple request
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415),  # a cross-site form
        ({}, 415),
        ({"Content-Type": "application/json"}, 200),
    ],
)
def test_ledger_writes_need_json(ledger_client: TestClient, headers: dict[str, str], status: int) -> None:
    answer = ledger_client.post("/v1/likeness/consent", content=json.dumps(GRANT).encode(), headers=headers)
    assert answer.status_code == status, answer.text
    if status != 200:
        assert answer.json()["error"] == "unsupported-media-type"


def test_bad_consent_requests_are_4xx(ledger_client: TestClient, client: TestClient) -> None:
    assert client.post("/v1/likeness/consent", json=GRANT).status_code == 403  # no ledger key: writes are off
    assert ledger_client.post("/v1/likeness/consent", json={**GRANT, "modality": "smell"}).status_code == 422
    bad_notice = {**GRANT, "notice": {**GRANT["notice"], "sha256": "zz" * 32}}  # type: ignore[dict-item]
    assert ledger_client.post("/v1/likeness/consent", json=bad_notice).json()["error"] == "likeness"
    unknown = ledger_client.post("/v1/likeness/consent/revoke", json={"person": "x", "grant": "0" * 64})
    assert unknown.status_code == 422 and "no grant" in unknown.json()["detail"]
    assert (
        ledger_client.post("/v1/likeness/review/999", json={"decision": "remove", "reviewer": "r"}).status_code == 422
    )
    assert (
        ledger_client.post(
            "/v1/likeness/consent", content=b"{" * 5000, headers={"Content-Type": "application/json"}
        ).status_code
        == 422
    )


def test_review_queue_over_http(ledger_client: TestClient, tmp_path: Path) -> None:
    from aigclabel.audit import AuditStore
    from aigclabel.likeness.ledger import ConsentLedger
    from aigclabel.likeness.registry import LikenessRegistry
    from aigclabel.likeness.scan import scan

    from .test_likeness_registry import KEY, Euclid, face

    with AuditStore(tmp_path / "audit.sqlite") as store:
        ledger = ConsentLedger(store, demo_signing_key())
        registry = LikenessRegistry(store, KEY, ledger)
        registry.enrol("alice", [face(1)], protected=True)
        upload = tmp_path / "upload.png"
        upload.write_bytes((SAMPLES / "sample.png").read_bytes())
        queued = scan(upload, registry, ledger, encoders={"face": Euclid()}, find=lambda _: [face(1)]).queued
    assert len(queued) == 1
    items = ledger_client.get("/v1/likeness/review").json()
    assert [(i["id"], i["person"], i["status"]) for i in items] == [(queued[0], "alice", "open")]
    decided = ledger_client.post(f"/v1/likeness/review/{queued[0]}", json={"decision": "remove", "reviewer": "mod-1"})
    assert decided.status_code == 200 and decided.json()["status"] == "remove"
    again = ledger_client.post(f"/v1/likeness/review/{queued[0]}", json={"decision": "approve", "reviewer": "mod-2"})
    assert again.status_code == 422 and "decided already" in again.json()["detail"]
    assert ledger_client.get("/v1/likeness/review").json() == []
    assert [i["reviewer"] for i in ledger_client.get("/v1/likeness/review", params={"status": "all"}).json()] == [
        "mod-1"
    ]


def test_hostile_uploads_to_gate_scan_enrol_are_4xx(ledger_client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from aigclabel.likeness.registry import KEY_ENV

    from .test_likeness_registry import KEY

    monkeypatch.setenv(KEY_ENV, KEY.hex())
    cut = (SAMPLES / "sample.png").read_bytes()[:60]
    routes = (("/v1/likeness/gate", {"grantee": "studio"}), ("/v1/likeness/scan", {}))
    for path, params in (*routes, ("/v1/likeness/people/bob/templates", {})):
        hostile_files = (("x.bin", b"not media at all"), ("cut.png", cut), ("huge.png", png_huge_dimensions()))
        for name, body in (*hostile_files, ("flood.png", png_pixel_flood())):
            answer = ledger_client.post(path, params={"filename": name, **params}, content=body, headers=RAW)
            assert 400 <= answer.status_code < 500, (path, name, answer.text)
            assert set(answer.json()) == {"error", "detail"} and "aigclabel-upload" not in answer.text


def test_without_an_audit_database_the_likeness_routes_answer_404(tmp_path: Path) -> None:
    with _client(tmp_path) as bare:
        assert bare.get("/v1/likeness/review").status_code == 404
        assert bare.get("/v1/likeness/consent").json()["error"] == "not-found"
        assert bare.post("/v1/likeness/people/p/protect", json={}).status_code == 404
        enrol = bare.post("/v1/likeness/people/p/templates", params={"filename": "a.png"}, content=b"x", headers=RAW)
        assert enrol.status_code == 404
        assert (
            bare.post("/v1/likeness/scan", params={"filename": "a.png"}, content=b"x", headers=RAW).status_code == 404
        )


def test_gate_and_scan_uploads_with_a_real_face(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("aigclabel.likeness.face")
    from aigclabel.audit import AuditStore
    from aigclabel.likeness.ledger import ConsentLedger
    from aigclabel.likeness.registry import KEY_ENV, LikenessRegistry

    from .test_likeness_gate import _astronaut
    from .test_likeness_registry import KEY

    photo = _astronaut(tmp_path)
    with AuditStore(tmp_path / "audit.sqlite") as store:
        LikenessRegistry(store, KEY, ConsentLedger(store, demo_signing_key())).enrol_files(
            "eileen", [photo], protected=True
        )
    monkeypatch.setenv(KEY_ENV, KEY.hex())
    with _client(tmp_path, audit_url=str(tmp_path / "audit.sqlite")) as app:
        gated = app.post(
            "/v1/likeness/gate",
            params={"filename": "edit.png", "grantee": "studio"},
            content=photo.read_bytes(),
            headers=RAW,
        )
        assert gated.status_code == 200, gated.text
        assert gated.json()["decision"] == "refuse" and gated.json()["people"][0]["person"] == "eileen"
        scanned = app.post(
            "/v1/likeness/scan",
            params={"filename": "up.png", "uploader": "u1"},
            content=photo.read_bytes(),
            headers=RAW,
        )
        assert scanned.status_code == 200 and len(scanned.json()["matches"]) == 1
        assert "aigclabel-upload" not in gated.text + scanned.text
        assert [i["person"] for i in app.get("/v1/likeness/review").json()] == ["eileen"]
    with AuditStore(tmp_path / "audit.sqlite") as store:  # nor in the audit log
        logged = json.dumps([e.to_dict() for e in store.events()], ensure_ascii=False)
    assert '"action": "gate"' in logged and "aigclabel-upload" not in logged and "edit.png" in logged


def _jpeg(image: object, size: tuple[int, int] | None = None) -> bytes:
    from PIL import Image

    assert isinstance(image, Image.Image)
    buffer = io.BytesIO()
    (image.resize(size) if size else image).convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def test_enrol_scan_notify_delete_a_real_face_over_http(
    ledger_client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("aigclabel.likeness.face")
    from PIL import Image

    from aigclabel.audit import AuditStore
    from aigclabel.likeness.ledger import ConsentLedger
    from aigclabel.likeness.registry import KEY_ENV, LikenessRegistry

    from .test_likeness_gate import _astronaut
    from .test_likeness_registry import KEY as TEMPLATE_KEY

    monkeypatch.setenv(KEY_ENV, TEMPLATE_KEY.hex())
    with Image.open(_astronaut(tmp_path)) as image:
        photo, resized = _jpeg(image), _jpeg(image, (384, 384))
    enrolled = ledger_client.post(
        "/v1/likeness/people/eileen/templates",
        params={"filename": "eileen.jpg", "protected": "true"},
        content=photo,
        headers=RAW,
    )
    assert enrolled.status_code == 200, enrolled.text
    assert enrolled.json()["stored"] == 1 and enrolled.json()["protected"] is True
    assert enrolled.json()["templates"] == {"face": 1} and "aigclabel-upload" not in enrolled.text
    assert list((tmp_path / "uploads").iterdir()) == [], "the enrolment photo is not kept"

    def scan() -> list[str]:
        answer = ledger_client.post("/v1/likeness/scan", params={"filename": "up.jpg"}, content=resized, headers=RAW)
        assert answer.status_code == 200, answer.text
        return [m["person"] for m in answer.json()["matches"]]

    def gate() -> str:
        answer = ledger_client.post(
            "/v1/likeness/gate", params={"filename": "edit.jpg", "grantee": "studio"}, content=resized, headers=RAW
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["decision"])

    assert scan() == ["eileen"]
    grant = {"person": "eileen", "grantee": "studio", "modality": "face", "distortion": True}
    token = ledger_client.post("/v1/likeness/consent", json=grant).json()["token"]
    assert gate() == "refuse", "a protected person's grant without notice does not count"
    notice = {"grant": token, "sha256": "cd" * 32, "channel": "email", "at": "2026-11-02T08:00:00+08:00"}
    notified = ledger_client.post("/v1/likeness/consent/notify", json=notice)
    assert notified.status_code == 200 and notified.json()["kind"] == "notify", notified.text
    assert gate() == "allow"

    deleted = ledger_client.delete("/v1/likeness/people/eileen")
    assert deleted.status_code == 200 and deleted.json() == {"person": "eileen", "templates_deleted": 1}
    assert scan() == []
    assert ledger_client.delete("/v1/likeness/people/eileen").status_code == 422
    with AuditStore(tmp_path / "audit.sqlite") as store:  # read back by the library, not the service
        ledger = ConsentLedger(store)
        assert ledger.verify_chain().ok
        assert [e.kind for e in ledger.entries("eileen")] == ["grant", "notify", "delete"]
        assert LikenessRegistry(store).people() == []


def test_protect_delete_notify_refuse_bad_requests(
    ledger_client: TestClient, client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aigclabel.audit import AuditStore
    from aigclabel.likeness.registry import KEY_ENV, LikenessRegistry

    from .test_likeness_registry import KEY as TEMPLATE_KEY
    from .test_likeness_registry import face

    monkeypatch.setenv(KEY_ENV, TEMPLATE_KEY.hex())
    enrol = ledger_client.post("/v1/likeness/people/bob/templates", params={"filename": "s.png"},
                               content=(SAMPLES / "sample.png").read_bytes(), headers=RAW)  # fmt: skip
    assert enrol.status_code == 422, enrol.text  # no face in it (or, without the [likeness] extra, no encoder)
    assert list((tmp_path / "uploads").iterdir()) == []
    with AuditStore(tmp_path / "audit.sqlite") as store:
        assert LikenessRegistry(store).people() == [], "nothing enrolled from a picture without a face"
        LikenessRegistry(store, TEMPLATE_KEY).enrol("bob", [face(1)])

    protect = ledger_client.post("/v1/likeness/people/bob/protect", json={"protected": True})
    assert protect.status_code == 200 and protect.json() == {"person": "bob", "protected": True}
    form = ledger_client.post("/v1/likeness/people/bob/protect", content=b"protected=false", headers=FORM)
    assert form.status_code == 415, "a cross-site form cannot withdraw protection"
    assert ledger_client.post("/v1/likeness/people/nobody/protect", json={}).status_code == 422
    with AuditStore(tmp_path / "audit.sqlite") as store:
        found = LikenessRegistry(store).person("bob")
        assert found is not None and found.protected

    notice = {"grant": "0" * 64, "sha256": "cd" * 32, "channel": "sms", "at": "2026-11-02T08:00:00"}
    assert client.delete("/v1/likeness/people/bob").status_code == 403  # no ledger key: writes are off
    assert client.post("/v1/likeness/consent/notify", json=notice).status_code == 403
    unknown = ledger_client.post("/v1/likeness/consent/notify", json=notice)
    assert unknown.status_code == 422 and "no grant" in unknown.json()["detail"]
    assert ledger_client.post("/v1/likeness/consent/notify", json={**notice, "sha256": "x"}).status_code == 422
    text = ledger_client.post("/v1/likeness/consent/notify", content=json.dumps(notice).encode(), headers=FORM)
    assert text.status_code == 415
    with AuditStore(tmp_path / "audit.sqlite") as store:
        assert LikenessRegistry(store).person("bob") is not None, "a refused delete deletes nothing"


@pytest.mark.interop  # ffmpeg makes the video
@pytest.mark.parametrize("gop", [None, 30])
def test_scan_finds_a_face_late_in_a_minute_of_video(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gop: int | None
) -> None:
    """60 s at 30 fps, the protected astronaut only from 40 s to 50 s (libx264's default GOP, and 1 s keyframes):
    the scan finds her within the service's default frame budget and says which times it searched."""
    pytest.importorskip("aigclabel.likeness.face")
    from aigclabel.audit import AuditStore
    from aigclabel.likeness.ledger import ConsentLedger
    from aigclabel.likeness.registry import KEY_ENV, LikenessRegistry

    from ._video import late_face_video
    from .test_likeness_gate import _astronaut
    from .test_likeness_registry import KEY

    photo = _astronaut(tmp_path)
    video = late_face_video(tmp_path / "late.mp4", photo, gop=gop)
    with AuditStore(tmp_path / "audit.sqlite") as store:
        LikenessRegistry(store, KEY, ConsentLedger(store, demo_signing_key())).enrol_files(
            "eileen", [photo], protected=True
        )
    monkeypatch.setenv(KEY_ENV, KEY.hex())
    with _client(tmp_path, audit_url=str(tmp_path / "audit.sqlite")) as app:
        scanned = app.post("/v1/likeness/scan", params={"filename": "late.mp4"}, content=video.read_bytes(),
                           headers=RAW)  # fmt: skip
    assert scanned.status_code == 200, scanned.text
    [match] = scanned.json()["matches"]
    assert match["person"] == "eileen" and 40 <= match["at"] < 50
    sampled = scanned.json()["sampled"]
    assert sampled[0] == 0 and sampled[-1] > 56 and len(sampled) == len(set(sampled))
