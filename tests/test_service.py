"""The HTTP service: real requests through the ASGI app, real files, 4xx on every kind of bad input."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from aigclabel import DEMO_PROVIDER_CODE, inspect
from aigclabel.audit import AuditStore
from aigclabel.service import ServiceSettings, create_app

from .conftest import SAMPLES

RAW = {"Content-Type": "application/octet-stream"}


def _client(tmp_path: Path, **settings: object) -> TestClient:
    work = tmp_path / "uploads"
    work.mkdir(exist_ok=True)
    app = create_app(ServiceSettings(work_dir=work, **settings))  # type: ignore[arg-type]
    return TestClient(app, base_url="http://127.0.0.1")


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
    empty = small.post("/v1/inspect", content=b"", headers=RAW)
    assert empty.status_code == 400
    assert empty.json()["error"] == "bad-request" and "empty request body" in empty.json()["detail"]
    too_big = small.post("/v1/inspect", params={"filename": "s.png"}, content=b"\0" * 5000, headers=RAW)
    assert too_big.status_code == 413


def test_streamed_oversized_upload_without_length_is_stopped(tmp_path: Path) -> None:
    small = _client(tmp_path, max_upload_bytes=1000)
    chunks = (b"\0" * 400 for _ in range(10))
    answer = small.post("/v1/inspect", params={"filename": "s.png"}, content=chunks, headers=RAW)
    assert answer.status_code == 413
    assert list((tmp_path / "uploads").iterdir()) == []


def test_api_keys(tmp_path: Path) -> None:
    keyed = _client(tmp_path, api_keys=frozenset({"s3cret-0123456789abcdef"}))
    body = (SAMPLES / "sample.png").read_bytes()
    assert keyed.post("/v1/inspect", params={"filename": "s.png"}, content=body, headers=RAW).status_code == 401
    wrong = keyed.post("/v1/inspect", params={"filename": "s.png"}, content=body, headers={**RAW, "X-API-Key": "nope"})
    assert wrong.status_code == 401
    keyed_headers = {**RAW, "X-API-Key": "s3cret-0123456789abcdef"}
    right = keyed.post("/v1/inspect", params={"filename": "s.png"}, content=body, headers=keyed_headers)
    assert right.status_code == 200
    bearer = {**RAW, "Authorization": "Bearer s3cret-0123456789abcdef"}
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


UPLOAD_ENDPOINTS = ("/v1/inspect", "/v1/verify", "/v1/check", "/v1/report", "/v1/label")


def test_openapi_documents_the_raw_body_and_its_errors(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for endpoint in UPLOAD_ENDPOINTS:
        operation = paths[endpoint]["post"]
        body = operation["requestBody"]
        assert body["required"] is True
        assert body["content"]["application/octet-stream"]["schema"]["format"] == "binary", endpoint
        assert {"400", "413", "415", "422"} <= set(operation["responses"]), endpoint
    assert set(paths["/v1/label"]["post"]["responses"]["200"]["content"]) == {"application/octet-stream"}


def _assert_clean_answer(answer: Response, where: str) -> None:
    assert answer.status_code == 200 or 400 <= answer.status_code < 500, f"{where}: {answer.status_code} {answer.text}"
    if answer.status_code >= 400:
        detail = answer.json()["detail"]
        assert detail and "aigclabel-" not in str(detail), where


@pytest.mark.slow  # every format's damaged bodies through the service (~20 s loaded)
@pytest.mark.parametrize("sample", sorted(SAMPLES.glob("sample.*")), ids=lambda p: p.suffix[1:])
def test_hostile_bodies_of_every_format_get_4xx_never_5xx(client: TestClient, sample: Path) -> None:
    data = sample.read_bytes()
    flipped = bytearray(data)
    for i in range(7, len(flipped), max(1, len(flipped) // 16)):  # sixteen bit flips spread over the file
        flipped[i] ^= 0x10
    hostile = [
        (sample.name, data[: len(data) // 2]),
        (sample.name, bytes(flipped)),
        ("x.gif" if sample.suffix != ".gif" else "x.wav", data),  # wrong extension
    ]
    for filename, body in hostile:
        for endpoint in UPLOAD_ENDPOINTS:
            params = {"filename": filename, "producer": DEMO_PROVIDER_CODE}
            answer = client.post(endpoint, params=params, content=body, headers=RAW)
            _assert_clean_answer(answer, f"{endpoint} {filename} ({len(body)} bytes)")


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("\u202e.png", "upload.png"),
        ("a" * 5000 + ".png", "a" * 124 + ".png"),
        ("..", "upload"),
        ("名字.png", "名字.png"),
    ],
)
def test_odd_filenames_are_sanitised_and_keep_their_extension(client: TestClient, filename: str, expected: str) -> None:
    png = (SAMPLES / "sample.png").read_bytes()
    seen = client.post("/v1/inspect", params={"filename": filename}, content=png, headers=RAW)
    assert seen.status_code == 200 and seen.json()["path"] == expected
    labelled = client.post(
        "/v1/label", params={"filename": filename, "producer": DEMO_PROVIDER_CODE}, content=png, headers=RAW
    )
    assert labelled.status_code == 200
    assert quote(expected) in labelled.headers["content-disposition"]


@pytest.mark.parametrize(
    ("endpoint", "params"),
    [
        ("/v1/label", {"producer": "has a space"}),
        ("/v1/label", {"producer": DEMO_PROVIDER_CODE, "label": "9"}),
        ("/v1/label", {}),  # producer is required
        ("/v1/verify", {"thorough": "maybe"}),
        ("/v1/verify", {"declared_ai": "maybe"}),
    ],
)
def test_bad_query_values_are_422_with_a_message(client: TestClient, endpoint: str, params: dict[str, str]) -> None:
    png = (SAMPLES / "sample.png").read_bytes()
    answer = client.post(endpoint, params={"filename": "x.png", **params}, content=png, headers=RAW)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]


def test_declared_length_beyond_the_limit_is_413_before_reading(tmp_path: Path) -> None:
    with _client(tmp_path, max_upload_bytes=1000) as small:
        headers = {**RAW, "Content-Length": str(10**15)}
        answer = small.post("/v1/inspect", params={"filename": "s.png"}, content=b"\0" * 10, headers=headers)
    assert answer.status_code == 413 and "limit" in answer.json()["detail"]
    assert list((tmp_path / "uploads").iterdir()) == []


def test_client_disconnect_mid_upload_is_a_4xx_not_an_exception(tmp_path: Path) -> None:
    """A client that sends part of its body and hangs up must not raise out of the app (a 500 and a
    traceback in the server log); the partial upload is removed."""
    app = create_app(ServiceSettings(work_dir=tmp_path, audit_url=str(tmp_path / "audit.sqlite")))
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v1/inspect", "raw_path": b"/v1/inspect", "root_path": "", "query_string": b"filename=x.png",
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/octet-stream"),
                    (b"content-length", b"10")],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
    }  # fmt: skip
    incoming = iter([{"type": "http.request", "body": b"abc", "more_body": True}, {"type": "http.disconnect"}])
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return next(incoming, {"type": "http.disconnect"})

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    with TestClient(app) as running:  # lifespan up: the app is in its serving state
        running.portal.call(app, scope, receive, send)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 400
    assert b"disconnected" in b"".join(m.get("body", b"") for m in sent)  # type: ignore[misc]
    assert [p for p in tmp_path.iterdir() if p.name.startswith("aigclabel-")] == []


def _blank_png(width: int, height: int) -> bytes:
    """A valid greyscale PNG of the given size; all-zero rows deflate to almost nothing."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    deflate, row = zlib.compressobj(9), b"\0" * (width + 1)
    pixels = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def test_decompression_bomb_image_is_reported_not_a_500(client: TestClient) -> None:
    """Found by fuzzing: a PNG past Pillow's hard pixel limit made /v1/check's kind detection raise
    DecompressionBombError (a 500). It is an image, and the check reports the limit instead."""
    bomb = _blank_png(13_500, 13_500)  # 182 MP: over Pillow's 2x bomb limit, ~180 kB on the wire
    assert len(bomb) < 1 << 20
    for endpoint in UPLOAD_ENDPOINTS:
        params = {"filename": "bomb.png", "producer": DEMO_PROVIDER_CODE}
        _assert_clean_answer(client.post(endpoint, params=params, content=bomb, headers=RAW), endpoint)
    report = client.post("/v1/check", params={"filename": "bomb.png"}, content=bomb, headers=RAW).json()
    assert report["kind"] == "image" and report["compliant"] is False
    assert any(rule["status"] == "error" and "pixels" in rule["detail"] for rule in report["rules"])
    assert "aigclabel-" not in json.dumps(report)
