"""The service under attack and under operation, in process: each test is one finding of the hostile review
(open door, evasion, surface, operations) kept as a regression. Loopback only, bounded loops."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from sqlalchemy import create_engine
from typer.testing import CliRunner

from aigclabel import DEMO_PROVIDER_CODE, AIGCLabel
from aigclabel import _budget as work
from aigclabel._decode import video_frames
from aigclabel.cli import app as cli
from aigclabel.errors import ServiceConfigError
from aigclabel.service import ServiceSettings, create_app
from aigclabel.service.app import UPLOAD_PREFIX, WorkPool

from ._video import ffmpeg
from .conftest import SAMPLES
from .test_service import RAW, UPLOAD_ENDPOINTS, _blank_png

KEY = "k3y-0123456789abcdef"
PNG = (SAMPLES / "sample.png").read_bytes()


def _app_client(tmp_path: Path, base_url: str = "http://127.0.0.1", **settings: object) -> TestClient:
    work_dir = tmp_path / "uploads"
    work_dir.mkdir(exist_ok=True)
    settings.setdefault("audit_url", str(tmp_path / "audit.sqlite"))
    return TestClient(create_app(ServiceSettings(work_dir=work_dir, **settings)), base_url=base_url)  # type: ignore[arg-type]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with _app_client(tmp_path) as running:
        yield running


# ------------------------------------------------------------------------------------------ open door


@pytest.mark.parametrize("value", ["", " ", ",", "longsecret-abcdefgh,x", "short", "has space in it 123456"])
def test_keys_that_are_not_secrets_stop_startup_from_every_source(value: str, tmp_path: Path) -> None:
    """`--api-key "$API_KEY"` with the variable unset must not open the service; nor may a comma split a key."""
    if value.strip(", "):
        with pytest.raises(ServiceConfigError):
            ServiceSettings.from_env({"AIGCLABEL_API_KEYS": value})
    with pytest.raises(ServiceConfigError):
        ServiceSettings(api_keys=frozenset({value}))
    answer = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--port", "1", "--api-key", value])
    assert answer.exit_code == 2, answer.output
    key_file = tmp_path / "keys.txt"
    key_file.write_text(f"# operators' keys\n{value}\n")
    with pytest.raises(ServiceConfigError):
        ServiceSettings.from_env({"AIGCLABEL_API_KEY_FILE": str(key_file)})


def test_key_file_and_empty_variable(tmp_path: Path) -> None:
    key_file = tmp_path / "keys.txt"
    key_file.write_text(f"# comment\n\n{KEY}\nsecond-key-0123456789\n")
    settings = ServiceSettings.from_env({"AIGCLABEL_API_KEY_FILE": str(key_file), "AIGCLABEL_API_KEYS": ""})
    assert settings.api_keys == {KEY, "second-key-0123456789"}
    assert ServiceSettings.from_env({"AIGCLABEL_API_KEYS": ""}).api_keys == frozenset()
    with pytest.raises(ServiceConfigError, match="not a number"):
        ServiceSettings.from_env({"AIGCLABEL_MAX_UPLOAD": "lots"})
    assert ServiceSettings.from_env({"AIGCLABEL_MAX_UPLOAD": "1000"}).max_upload_bytes == 1000


def test_keyless_app_on_a_public_address_answers_nothing(tmp_path: Path) -> None:
    """`uvicorn --factory --host 0.0.0.0` bypasses the CLI: the app itself refuses non-loopback sockets."""
    with _app_client(tmp_path, base_url="http://10.1.2.3", allowed_hosts=frozenset({"10.1.2.3"})) as public:
        for endpoint in UPLOAD_ENDPOINTS:
            answer = public.post(endpoint, params={"filename": "s.png"}, content=PNG, headers=RAW)
            assert answer.status_code == 403 and answer.json()["error"] == "loopback-only"
        assert public.get("/v1/formats").status_code == 403
    keyed = _app_client(
        tmp_path, base_url="http://10.1.2.3", allowed_hosts=frozenset({"10.1.2.3"}), api_keys=frozenset({KEY})
    )
    with keyed:
        assert keyed.get("/v1/formats", headers={"X-API-Key": KEY}).status_code == 200


def test_auth_answers_401_with_www_authenticate_before_the_body(tmp_path: Path) -> None:
    with _app_client(tmp_path, api_keys=frozenset({KEY})) as keyed:
        for endpoint in UPLOAD_ENDPOINTS:
            answer = keyed.post(endpoint, content=b"\0" * 10, headers=RAW)
            assert answer.status_code == 401 and answer.headers["www-authenticate"].startswith("Bearer")
            assert answer.json()["error"] == "unauthorized"
        assert keyed.get("/v1/trace", params={"produce_id": "x"}).status_code == 401
        ok = keyed.post("/v1/inspect", params={"filename": "s.png"}, content=PNG, headers={**RAW, "X-API-Key": KEY})
        assert ok.status_code == 200


# ------------------------------------------------------------------------------------------ surface


def test_host_allow_list_stops_dns_rebinding(client: TestClient) -> None:
    rebound = client.post(
        "/v1/inspect", params={"filename": "s.png"}, content=PNG, headers={**RAW, "Host": "evil.example"}
    )
    assert rebound.status_code == 421 and rebound.json()["error"] == "host-not-allowed"
    for host in ("localhost:8080", "127.0.0.1", "[::1]:8080"):
        assert client.get("/v1/formats", headers={"Host": host}).status_code == 200, host
    assert client.get("/healthz", headers={"Host": "10.0.0.7:8080"}).status_code == 200, "probes come by pod address"


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None]
)
def test_cross_site_form_content_types_are_refused(client: TestClient, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    answer = client.post("/v1/verify", params={"filename": "s.png"}, content=PNG, headers=headers)
    assert answer.status_code == 415 and answer.json()["error"] == "unsupported-media-type"
    assert client.post(
        "/v1/inspect", params={"filename": "s.png"}, content=PNG, headers={"Content-Type": "image/png"}
    ).is_success


def test_security_headers_everywhere_and_a_hash_csp_on_the_page(client: TestClient) -> None:
    for answer in (client.get("/"), client.get("/v1/formats"), client.get("/nope"), client.get("/openapi.json")):
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    page = client.get("/").headers["content-security-policy"]
    assert "'sha256-" in page and "unsafe-inline" not in page.split("style-src")[0]


def test_docs_are_served_without_a_cdn_and_openapi_declares_the_key(client: TestClient) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert not re.search(r"(src|href)=['\"]https?://", docs.text), "no asset may come from elsewhere"
    for asset in re.findall(r"/docs/assets/[\w.-]+", docs.text):
        assert client.get(asset).status_code == 200, asset
    schema = client.get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"apiKey", "http"}
    assert schema["paths"]["/v1/verify"]["post"]["security"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("get", "/nope", 404), ("delete", "/v1/verify", 405), ("post", "/v1/label?filename=a.png", 422)],
)
def test_every_error_has_one_shape(client: TestClient, method: str, path: str, status: int) -> None:
    answer = client.request(method, path, content=PNG, headers=RAW)
    assert answer.status_code == status
    assert set(answer.json()) == {"error", "detail"} and isinstance(answer.json()["detail"], str)


def test_long_non_ascii_file_name_is_not_a_500(client: TestClient) -> None:
    name = "标签" * 200 + ".png"
    answer = client.post("/v1/inspect", params={"filename": name}, content=PNG, headers=RAW)
    assert answer.status_code == 200
    assert answer.json()["path"].endswith(".png") and len(answer.json()["path"].encode()) <= 200
    made = client.post("/v1/label", params={"filename": name, "producer": DEMO_PROVIDER_CODE}, content=PNG, headers=RAW)
    assert made.status_code == 200


@pytest.mark.parametrize("sample", ["sample.svg", "sample.docx"])
def test_check_does_not_call_documents_video(client: TestClient, sample: str) -> None:
    answer = client.post("/v1/check", params={"filename": sample}, content=(SAMPLES / sample).read_bytes(), headers=RAW)
    assert answer.status_code == 200, answer.text
    assert answer.json()["kind"] == "document" and "Decoder" not in answer.text  # its text is read, not decoded
    assert [r["rule"] for r in answer.json()["rules"]] == ["implicit-label", "document-label"]


# ------------------------------------------------------------------------------------------ evasion


def _png_with_produce_id(produce_id: str) -> bytes:
    label = json.loads(AIGCLabel.for_producer(DEMO_PROVIDER_CODE, "placeholder").to_json())
    label = {k: (produce_id if v == "placeholder" else v) for k, v in label.items()}
    info = PngInfo()
    info.add_text("AIGC", json.dumps(label))
    buffer = io.BytesIO()
    Image.open(io.BytesIO(PNG)).save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


@pytest.mark.parametrize("produce_id", ["x" * 3000, "nul\x00inside"])
def test_hostile_produce_id_still_gets_a_verdict_and_an_audit_row(client: TestClient, produce_id: str) -> None:
    """A 4xx here reads as "unlabelled" to a platform: the verdict must come back, and the event be kept."""
    body = _png_with_produce_id(produce_id)
    for endpoint in ("/v1/verify", "/v1/report"):
        answer = client.post(endpoint, params={"filename": "evil.png"}, content=body, headers=RAW)
        assert answer.status_code == 200, answer.text
    store = client.app.state.audit  # type: ignore[attr-defined]
    assert store.count("verify") == 2


def test_trace_with_nul_is_empty_and_shows_no_temporary_paths(client: TestClient) -> None:
    assert client.get("/v1/trace", params={"produce_id": "a\x00b"}).json() == []
    made = client.post(
        "/v1/label",
        params={"filename": "x.png", "producer": DEMO_PROVIDER_CODE, "produce_id": "trace-me"},
        content=PNG,
        headers=RAW,
    )
    client.post("/v1/verify", params={"filename": "y.png"}, content=made.content, headers=RAW)
    events = client.get("/v1/trace", params={"produce_id": "trace-me"}).json()
    assert [e["kind"] for e in events] == ["label", "verify"]
    assert UPLOAD_PREFIX not in json.dumps(events) and "/tmp" not in json.dumps(events)
    assert [e["detail"]["path"] for e in events] == ["x.png", "y.png"]
    assert all(e["delivered"] is True for e in events), "the responses were handed over in full"


# ------------------------------------------------------------------------------------------ unbounded work


def test_pixel_bomb_is_not_searched_and_the_verdict_still_comes_back(client: TestClient) -> None:
    """A 143 KB PNG of 7000x7000 took 57 s and 1.6 GB; now the detectors refuse it before decoding."""
    bomb = _blank_png(7000, 7000)
    answer = client.post("/v1/verify", params={"filename": "bomb.png"}, content=bomb, headers=RAW)
    assert answer.status_code == 200, answer.text
    skipped = [e for e in answer.json()["evidence"] if e["kind"] == "detector-skipped"]
    assert skipped and all("not searched: over budget" in e["detail"] for e in skipped)
    assert {e["source"] for e in skipped} >= {"watermark"}


def test_budget_caps_audio_samples_and_video_frames() -> None:
    from aigclabel.check import check_file
    from aigclabel.watermark import detect_file

    with work.budget(work.Budget(samples=1000)), pytest.raises(work.BudgetExceeded, match="samples"):
        detect_file(SAMPLES / "sample.wav")
    with work.budget(work.Budget(frames=1)), work.stage("watermark") as spent:
        assert detect_file(SAMPLES / "sample.mp4") is not None  # the sampler takes what the budget leaves
        assert spent is not None and spent.used_frames == 1
    with work.budget(work.Budget(frames=1)):
        (rule,) = check_file(SAMPLES / "sample.mp4").rules  # the opening is read frame after frame
    assert rule.status == "error" and "needs 2.0 frames decoded, the request budget is 1 frames" in rule.detail
    with work.budget(work.Budget(seconds=0.0001, deadline=1.0)), pytest.raises(work.BudgetExceeded, match="time"):
        work.check("test")
    assert detect_file(SAMPLES / "sample.wav") is not None  # outside a budget nothing changes


@pytest.mark.interop  # ffmpeg
def test_huge_frame_video_is_refused_before_decoding(client: TestClient, tmp_path: Path) -> None:
    """75 KB of H.264 declaring 5000x5000 frames (25 MP, under the 50 MP scan limit): each frame is charged to the
    pixel budget like an image, so the service refuses it from the declared size instead of decoding 25 MP frames;
    at 8000x8000 (over the scan limit) the CLI refuses it too. Both are typed errors, no traceback."""
    huge = ffmpeg(tmp_path / "huge.mp4", "-f", "lavfi", "-i", "color=c=gray:s=5000x5000:r=25", "-frames:v", "2",
                  "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "10k", "-pix_fmt", "yuv420p")  # fmt: skip
    body = huge.read_bytes()
    assert len(body) < 200_000
    checked = client.post("/v1/check", params={"filename": "huge.mp4"}, content=body, headers=RAW)
    assert checked.status_code == 413, checked.text
    assert checked.json()["error"] == "too-large" and "5000x5000 video's frames is 25.0 MP" in checked.json()["detail"]
    verified = client.post("/v1/verify", params={"filename": "huge.mp4"}, content=body, headers=RAW)
    assert verified.status_code == 200, verified.text
    skipped = {e["source"]: e["detail"] for e in verified.json()["evidence"] if e["kind"] == "detector-skipped"}
    assert {"watermark", "explicit-video-label"} <= set(skipped), verified.text
    assert all("not searched: over budget" in detail for detail in skipped.values())
    with work.budget(work.Budget()), pytest.raises(work.BudgetExceeded, match=r"25\.0 MP"):
        next(video_frames(huge))  # the likeness scan's sampler
    bigger = ffmpeg(tmp_path / "bigger.mp4", "-f", "lavfi", "-i", "color=c=gray:s=8000x8000:r=25", "-frames:v", "1",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")  # fmt: skip
    for command in (["check"], ["watermark", "detect"]):
        answer = CliRunner().invoke(cli, [*command, str(bigger)])
        assert answer.exit_code == 4 and "8000x8000 video is over the 50 MP scan limit" in answer.output, answer.output
        assert answer.exception is None or isinstance(answer.exception, SystemExit)


def test_full_pool_answers_503_with_retry_after() -> None:
    async def scenario() -> None:
        pool = WorkPool(places=1, queue=0)
        async with pool.place():
            with pytest.raises(HTTPException) as refused:
                async with pool.place():
                    pass
            assert refused.value.status_code == 503 and int(refused.value.headers["Retry-After"]) >= 1
        async with pool.place():  # free again
            pass

    asyncio.run(scenario())


# ------------------------------------------------------------------------------------------ operations


def test_health_and_readiness_check_the_database_and_allow_head(client: TestClient) -> None:
    assert client.head("/healthz").status_code == 200
    assert client.head("/readyz").status_code == 200
    assert client.get("/readyz").json()["database"] == "ok"


def test_database_outage_is_503_without_the_host(client: TestClient) -> None:
    """The outage used to answer 400 "bad-request" naming the database host and port."""
    store = client.app.state.audit  # type: ignore[attr-defined]
    store.engine = create_engine(
        "postgresql+psycopg://audit:pw@127.0.0.1:1/audit", connect_args={"connect_timeout": 2}
    )  # a port nothing listens on: a real refused connection
    answer = client.post("/v1/verify", params={"filename": "s.png"}, content=PNG, headers=RAW)
    assert answer.status_code == 503 and answer.json()["error"] == "audit-unavailable"
    assert "127.0.0.1" not in answer.text and ":1" not in answer.text and "audit:pw" not in answer.text
    assert answer.headers["retry-after"]
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").json()["database"] == "unavailable"
    assert client.get("/v1/trace", params={"produce_id": "x"}).status_code == 503


def test_startup_removes_only_dead_processes_upload_folders(tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    dead = 4_194_000
    while True:
        try:
            os.kill(dead, 0)
            dead -= 1
        except ProcessLookupError:
            break
        except PermissionError:
            dead -= 1
    stale = uploads / f"{UPLOAD_PREFIX}{dead}-abc"
    (stale / "big.bin").parent.mkdir()
    (stale / "big.bin").write_bytes(b"\0" * 1000)
    live = uploads / f"{UPLOAD_PREFIX}{os.getpid()}-def"
    live.mkdir()
    with _app_client(tmp_path):
        assert not stale.exists() and live.exists()


def test_an_unexpected_exception_is_a_500_in_the_error_shape_with_headers(tmp_path: Path) -> None:
    app = create_app(ServiceSettings(work_dir=tmp_path))

    def broken() -> None:
        raise RuntimeError("/secret/internal/path exploded")

    app.add_api_route("/broken", broken)
    with TestClient(app, base_url="http://127.0.0.1") as running:
        answer = running.get("/broken")
    assert answer.status_code == 500 and answer.json()["error"] == "internal-error"
    assert "/secret" not in answer.text and answer.headers["x-content-type-options"] == "nosniff"
