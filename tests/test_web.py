"""The web page, end to end: a real server on loopback, Debian's Chromium driven by Playwright."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aigclabel import DEMO_PROVIDER_CODE, AIGCLabel, write_label
from aigclabel.signing import demo_registry, demo_signing_key, payload_digest, sign

from ._tools import free_port, wait_for_http
from .conftest import SAMPLES, require_tool

pytestmark = pytest.mark.interop  # Chromium driven by Playwright against a real server

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(os.environ.get("AIGCLABEL_SCREENSHOTS", "")) if os.environ.get("AIGCLABEL_SCREENSHOTS") else None


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The server's folder: its audit database, key registry, ledger key."""
    return tmp_path_factory.mktemp("server")


@pytest.fixture(scope="module")
def server(state: Path) -> Iterator[str]:
    from aigclabel.signing import SigningKey

    from .test_likeness_registry import KEY

    registry = state / "keys.json"
    registry.write_text(json.dumps(demo_registry().to_dict()))
    SigningKey.generate().save(state / "ledger.key")
    port = free_port()
    env = {
        **os.environ,
        "AIGCLABEL_API_KEYS": "",
        "AIGCLABEL_LEDGER_KEY": str(state / "ledger.key"),
        "AIGCLABEL_LIKENESS_KEY": KEY.hex(),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aigclabel",
            "serve",
            "--port",
            str(port),
            "--db",
            str(state / "audit.sqlite"),
            "--keys",
            str(registry),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    wait_for_http(base + "/healthz", process)
    yield base
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    executable = require_tool("chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _shoot(page: object, tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    page.screenshot(path=str(target), full_page=True)  # type: ignore[attr-defined]
    assert target.stat().st_size > 10_000, "a real rendered page, not a blank one"
    if SCREENSHOTS is not None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(target, SCREENSHOTS / name)
    return target


def _labelled_sample(photo: Path, produce_id: str) -> Path:
    """The sample PNG at ``photo`` with a demo label."""
    shutil.copy(SAMPLES / "sample.png", photo)
    write_label(photo, AIGCLabel.for_producer(DEMO_PROVIDER_CODE, produce_id))
    return photo


def _watched_page(browser: object, url: str, locale: str, height: int = 900) -> tuple[Any, list[str]]:
    """A page opened at ``url`` and the console errors it logs (a script the CSP blocks shows there)."""
    page = browser.new_page(viewport={"width": 1200, "height": height}, locale=locale)  # type: ignore[attr-defined]
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.goto(url)
    return page, problems


def test_drop_labelled_image_shows_fields_and_preview(server: str, browser: object, tmp_path: Path) -> None:
    photo = tmp_path / "generated.png"
    shutil.copy(SAMPLES / "sample.png", photo)
    label = sign(AIGCLabel.for_producer(DEMO_PROVIDER_CODE, "web-test-1"), payload_digest(photo), demo_signing_key())
    write_label(photo, label)
    page = browser.new_page(viewport={"width": 1200, "height": 900}, locale="en-US")  # type: ignore[attr-defined]
    page.goto(server + "/")
    page.set_input_files("#file", str(photo))
    page.wait_for_selector("table.label-fields")
    text = page.inner_text("#results")
    assert "web-test-1" in text and DEMO_PROVIDER_CODE in text and "conforms" in text
    assert page.inner_text("#classification") == "Classification: confirmed"
    assert "valid" in page.inner_text("#signatures")
    assert page.inner_text("#watermark")
    assert page.eval_on_selector("#preview-media", "img => img.naturalWidth") == 320
    _shoot(page, tmp_path, "web-labelled.png")
    page.close()


def test_unlabelled_and_broken_files(server: str, browser: object, tmp_path: Path) -> None:
    page = browser.new_page(locale="en-US")  # type: ignore[attr-defined]
    page.goto(server + "/")
    page.set_input_files("#file", str(SAMPLES / "sample.jpg"))
    page.wait_for_selector("#results section")
    assert "no implicit label" in page.inner_text("#results")
    assert page.inner_text("#classification") == "Classification: none"
    broken = tmp_path / "broken.png"
    broken.write_bytes((SAMPLES / "sample.png").read_bytes()[:80])
    page.set_input_files("#file", str(broken))
    page.wait_for_selector("#error")
    assert "Error 422" in page.inner_text("#error")
    _shoot(page, tmp_path, "web-error.png")
    page.close()


def test_page_speaks_chinese_to_a_chinese_browser_and_switches(server: str, browser: object, tmp_path: Path) -> None:
    photo = _labelled_sample(tmp_path / "generated.png", "web-test-zh")
    page, problems = _watched_page(browser, server + "/", "zh-CN")
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    assert page.inner_text("#status") == "尚未选择文件。" and "拖到这里" in page.inner_text("#drop")
    page.set_input_files("#file", str(photo))
    page.wait_for_selector("table.label-fields")
    assert page.inner_text("#classification") == "分类：确认（AI生成）"
    assert "隐式标识（GB 45438—2025 附录E）" in page.inner_text("#results") and "符合附录E" in page.inner_text(
        "#results"
    )
    _shoot(page, tmp_path, "web-zh.png")
    page.click("#lang")  # the report is drawn again in English, without another request
    assert page.inner_text("#classification") == "Classification: confirmed"
    assert page.evaluate("document.documentElement.lang") == "en" and page.inner_text("#lang") == "中文"
    assert not problems, problems  # the page's CSP still admits its script
    page.close()


def test_docs_render_offline_under_their_csp(server: str, browser: object) -> None:
    """Swagger UI comes from the service itself (no CDN: it was blank offline) and runs under the page's CSP."""
    page = browser.new_page()  # type: ignore[attr-defined]
    requested: list[str] = []
    problems: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.goto(server + "/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    assert page.locator(".opblock").count() >= 7
    assert all(url.startswith(server) or url.startswith("data:") for url in requested), requested
    assert not [p for p in problems if "Content Security Policy" in p], problems
    page.close()


def test_likeness_evidence_made_downloaded_and_verified(server: str, browser: object, tmp_path: Path) -> None:
    import zipfile

    from aigclabel.likeness.evidence import AUDIT_MEMBER, verify_evidence

    photo = _labelled_sample(tmp_path / "portrait.png", "web-evidence-1")
    page, problems = _watched_page(browser, server + "/", "en-US", height=1100)
    assert page.inner_text("#likeness-title") == "Likeness protection"
    page.fill("#evidence-person", "person-web")
    page.set_input_files("#evidence-source", str(photo))
    page.wait_for_selector("#evidence-download", timeout=60_000)
    with page.expect_download() as downloading:
        page.click("#evidence-download")
    saved = tmp_path / downloading.value.suggested_filename
    downloading.value.save_as(saved)
    assert saved.name == "portrait.evidence.zip"
    report = verify_evidence(saved)  # the downloaded bytes, checked by the library
    assert report.ok and report.manifest is not None and report.manifest["person"] == {"id": "person-web"}

    page.set_input_files("#evidence-zip", str(saved))
    page.wait_for_selector("#evidence-state")
    assert page.get_attribute("#evidence-state", "data-ok") == "true"
    assert "intact, signature valid" in page.inner_text("#evidence-state")
    assert "DEMO key" in page.inner_text("#evidence-subject")

    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(tampered, "w") as dst:
        for name in src.namelist():
            if name != AUDIT_MEMBER:
                dst.writestr(name, src.read(name))
    page.set_input_files("#evidence-zip", str(tampered))
    page.wait_for_selector("#evidence-state[data-ok=false]")
    assert page.locator("#evidence-problems li[data-code=member-missing]").count() == 1
    page.click("#lang")  # drawn again in Chinese without another request
    assert "已被改动或签名无效" in page.inner_text("#evidence-state")
    assert "成员被删除" in page.inner_text("#evidence-problems")
    assert page.inner_text("#evidence-made").startswith("证据包已生成")
    _shoot(page, tmp_path, "web-likeness-evidence.png")
    page.click("#lang")
    assert not problems, problems  # the page's CSP still admits its script

    not_zip = tmp_path / "not.zip"
    not_zip.write_bytes(b"PK\x03\x04 but nothing more")
    page.set_input_files("#evidence-zip", str(not_zip))
    page.wait_for_selector("#evidence-report-error")
    assert "Error 422" in page.inner_text("#evidence-report-error")
    page.close()


def test_likeness_review_queue(server: str, state: Path, browser: object, tmp_path: Path) -> None:
    from aigclabel.audit import AuditStore
    from aigclabel.likeness.ledger import ConsentLedger
    from aigclabel.likeness.registry import LikenessRegistry
    from aigclabel.likeness.scan import ReviewQueue, scan

    from .test_likeness_registry import KEY, Euclid, face

    with AuditStore(state / "audit.sqlite") as store:  # a match found earlier, waiting for a reviewer
        ledger = ConsentLedger(store, demo_signing_key())
        LikenessRegistry(store, KEY, ledger).enrol("alice", [face(1)], protected=True)
        upload = _labelled_sample(tmp_path / "upload.png", "web-scan-1")
        queued = scan(upload, LikenessRegistry(store, KEY, ledger), ledger, encoders={"face": Euclid()},
                      find=lambda _: [face(1)]).queued  # fmt: skip
    page, problems = _watched_page(browser, server + "/", "zh-CN", height=1300)
    page.click("#review-refresh")
    row = f"#review-table tr[data-review='{queued[0]}']"
    page.wait_for_selector(row)
    assert "alice" in page.inner_text(row) and "人脸" in page.inner_text(row) and "upload.png" in page.inner_text(row)
    page.click(f"{row} button[data-decision=remove]")
    page.wait_for_selector("#review-queue-error")  # no reviewer name yet: nothing was sent
    page.fill("#reviewer", "moderator-7")
    page.click(f"{row} button[data-decision=remove]")
    page.wait_for_selector("#review-empty")
    assert page.inner_text("#review-empty") == "队列为空。"
    with AuditStore(state / "audit.sqlite") as store:  # the decision, read back by the library
        decided = [r for r in ReviewQueue(ConsentLedger(store)).list(None) if r.id == queued[0]]
    assert [(r.status, r.reviewer) for r in decided] == [("remove", "moderator-7")]
    _shoot(page, tmp_path, "web-likeness-review.png")
    assert not problems, problems
    page.close()


def test_likeness_scan_of_a_real_face(server: str, state: Path, browser: object, tmp_path: Path) -> None:
    pytest.importorskip("aigclabel.likeness.face")  # the scan needs the face encoder
    from aigclabel.audit import AuditStore
    from aigclabel.likeness.ledger import ConsentLedger
    from aigclabel.likeness.registry import LikenessRegistry

    from .test_likeness_gate import _astronaut
    from .test_likeness_registry import KEY

    photo = _astronaut(tmp_path)
    with AuditStore(state / "audit.sqlite") as store:
        LikenessRegistry(store, KEY, ConsentLedger(store, demo_signing_key())).enrol_files(
            "eileen", [photo], protected=True
        )
    page, problems = _watched_page(browser, server + "/", "en-US", height=1300)
    page.set_input_files("#scan-source", str(photo))
    page.wait_for_selector("#scan-state", timeout=60_000)
    assert page.get_attribute("#scan-state", "data-clear") == "false"
    assert page.locator("#scan-matches li[data-person=eileen]").count() == 1
    page.wait_for_selector("#review-table tr td:has-text('eileen')")  # the queue is reloaded after a scan
    assert "sent to review" in page.inner_text("#scan-state")
    assert not problems, problems
    page.close()
