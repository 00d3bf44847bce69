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

from .conftest import SAMPLES
from .test_likeness_evidence import hostile
from .test_service import _client

ZIP = {"Content-Type": "application/zip"}
RAW = {"Content-Type": "application/octet-stream"}
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
    for path in ("/v1/likeness/evidence", "/v1/likeness/evidence/verify"):
        assert keyed.post(path, content=photo, headers=RAW).status_code == 401
    spec = keyed.get("/openapi.json").json()
    for path in ("/v1/likeness/evidence", "/v1/likeness/evidence/verify"):
        operation = spec["paths"][path]["post"]
        assert operation["requestBody"]["required"] is True and "413" in operation["responses"]
