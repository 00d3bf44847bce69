"""The HTTP service: real requests through the ASGI app, real files, 4xx on every kind of bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from aigclabel import DEMO_PROVIDER_CODE, inspect
from aigclabel.audit import AuditStore
from aigclabel.service import ServiceSettings, create_app

from .conftest import SAMPLES

RAW = {"Content-Type": "application/octet-stream"}


def _client(tmp_path: Path, **settings: object) -> TestClient:
    work = tmp_path / "uploads"
    work.mkdir(exist_ok=True)
    return TestClient(create_app(ServiceSettings(work_dir=work, **settings)))  # type: ignore[arg-type]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with _client(tmp_path, audit_url=str(tmp_path / "audit.sqlite")) as running:
        yield running


def test_label_then_inspect_roundtrip(client: TestClient, tmp_path: Path) -> None:
    body = (SAMPLES / "sample.png").read_bytes()
    labelled = client.post(
        "/v1/label",
        params={"filename": "x.png", "producer": DEMO_PROVIDER_CODE, "produce_id": "job-1"},
        content=body,
        headers=RAW,
    )
    assert labelled.status_code == 200, labelled.text
    assert labelled.headers["x-aigc-produceid"] == "job-1"
    out = tmp_path / "out.png"
    out.write_bytes(labelled.content)
    report = inspect(out)  # read back by the library, independent of the service
    assert report.ok and report.label is not None and report.label.produce_id == "job-1"
    seen = client.post("/v1/inspect", params={"filename": "out.png"}, content=labelled.content, headers=RAW)
    assert seen.status_code == 200
    assert seen.json()["labels"][0]["fields"]["ContentProducer"] == DEMO_PROVIDER_CODE
    assert list((tmp_path / "uploads").iterdir()) == [], "temporary upload directories are removed"


def test_unlabelled_file_reports_no_label(client: TestClient) -> None:
    seen = client.post(
        "/v1/report", params={"filename": "s.png"}, content=(SAMPLES / "sample.png").read_bytes(), headers=RAW
    )
    assert seen.status_code == 200
    assert seen.json()["inspection"]["ok"] is False
    assert seen.json()["inspection"]["labels"] == []


@pytest.mark.parametrize(
    ("body", "params", "status", "error"),
    [
        (b"this is not any media format at all", {"filename": "x.bin"}, 415, "unsupported-format"),
        ((SAMPLES / "sample.png").read_bytes()[:60], {"filename": "t.png"}, 422, "malformed-file"),
    ],
)
def test_bad_files_get_4xx_with_clear_message(
    client: TestClient, body: bytes, params: dict[str, str], status: int, error: str
) -> None:
    answer = client.post("/v1/inspect", params=params, content=body, headers=RAW)
    assert answer.status_code == status
    assert answer.json()["error"] == error
    assert "aigclabel-" not in answer.json()["detail"], "temporary paths must not leak"


def test_invalid_label_values_are_422(client: TestClient) -> None:
    answer = client.post(
        "/v1/label",
        params={"filename": "x.png", "producer": DEMO_PROVIDER_CODE, "produce_id": "has space"},
        content=(SAMPLES / "sample.png").read_bytes(),
        headers=RAW,
    )
    assert answer.status_code == 422
    assert "characters" in answer.json()["detail"]


def test_empty_and_oversized_uploads(tmp_path: Path) -> None:
    small = _client(tmp_path, max_upload_bytes=1000)
    assert small.post("/v1/inspect", content=b"", headers=RAW).status_code == 400
    too_big = small.post("/v1/inspect", params={"filename": "s.png"}, content=b"\0" * 5000, headers=RAW)
    assert too_big.status_code == 413


def test_streamed_oversized_upload_without_length_is_stopped(tmp_path: Path) -> None:
    small = _client(tmp_path, max_upload_bytes=1000)
    chunks = (b"\0" * 400 for _ in range(10))
    answer = small.post("/v1/inspect", params={"filename": "s.png"}, content=chunks, headers=RAW)
    assert answer.status_code == 413
    assert list((tmp_path / "uploads").iterdir()) == []


def test_api_keys(tmp_path: Path) -> None:
    keyed = _client(tmp_path, api_keys=frozenset({"s3cret"}))
    body = (SAMPLES / "sample.png").read_bytes()
    assert keyed.post("/v1/inspect", params={"filename": "s.png"}, content=body, headers=RAW).status_code == 401
    wrong = keyed.post("/v1/inspect", params={"filename": "s.png"}, content=body, headers={**RAW, "X-API-Key": "nope"})
    assert wrong.status_code == 401
    right = keyed.post(
        "/v1/inspect", params={"filename": "s.png"}, content=body, headers={**RAW, "X-API-Key": "s3cret"}
    )
    assert right.status_code == 200
    bearer = {**RAW, "Authorization": "Bearer s3cret"}
    assert keyed.post("/v1/inspect", params={"filename": "s.png"}, content=body, headers=bearer).status_code == 200


def test_hostile_filename_stays_in_the_upload_directory(client: TestClient, tmp_path: Path) -> None:
    body = (SAMPLES / "sample.png").read_bytes()
    answer = client.post("/v1/inspect", params={"filename": "../../../../tmp/evil.png"}, content=body, headers=RAW)
    assert answer.status_code == 200
    assert answer.json()["path"] == "evil.png"


def test_openapi_lists_the_endpoints(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert {"/v1/inspect", "/v1/label", "/v1/report", "/v1/formats", "/v1/verify", "/v1/check", "/v1/trace"} <= set(
        schema["paths"]
    )
    assert json.dumps(schema)  # serialisable


def test_web_page_is_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "Drop a file here" in page.text


def test_verify_classifies_and_every_step_is_traceable(client: TestClient, tmp_path: Path) -> None:
    png = (SAMPLES / "sample.png").read_bytes()
    labelled = client.post(
        "/v1/label", params={"filename": "a.png", "producer": DEMO_PROVIDER_CODE, "produce_id": "trace-me"},
        content=png, headers=RAW,
    ).content  # fmt: skip
    confirmed = client.post("/v1/verify", params={"filename": "a.png"}, content=labelled, headers=RAW).json()
    assert confirmed["classification"] == "confirmed" and confirmed["path"] == "a.png"
    declared = client.post("/v1/verify", params={"filename": "b.png", "declared_ai": "yes"}, content=png, headers=RAW)
    assert declared.json()["classification"] == "possible"
    plain = client.post("/v1/verify", params={"filename": "c.png", "declared_ai": "no"}, content=png, headers=RAW)
    assert plain.json()["classification"] == "none"
    bad = client.post("/v1/verify", params={"filename": "c.png", "declared_ai": "maybe"}, content=png, headers=RAW)
    assert bad.status_code == 422
    events = client.get("/v1/trace", params={"produce_id": "trace-me"}).json()
    assert [e["kind"] for e in events] == ["label", "verify"]
    with AuditStore(tmp_path / "audit.sqlite") as store:  # the database itself, read independently
        assert store.count() == 4


def test_trace_without_audit_store_is_404(tmp_path: Path) -> None:
    with _client(tmp_path) as running:
        answer = running.get("/v1/trace", params={"produce_id": "x"})
    assert answer.status_code == 404 and "AIGCLABEL_DB" in answer.json()["detail"]


def test_check_reports_rules_with_clauses(client: TestClient) -> None:
    answer = client.post("/v1/check", params={"filename": "s.png"}, content=(SAMPLES / "sample.png").read_bytes(),
                         headers=RAW)  # fmt: skip
    assert answer.status_code == 200
    body = answer.json()
    assert body["compliant"] is False
    assert all(rule["clause"] for rule in body["rules"])
