"""C2PA manifests: signed offline beside the GB label, AI markers read back, tampering detected."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from aigclabel import DEMO_PROVIDER_CODE, AIGCLabel, inspect, write_label
from aigclabel._io import COPY_CHUNK
from aigclabel.c2pa_manifest import C2PACredentials, generate_demo_credentials, read_manifest, write_manifest
from aigclabel.containers.jpeg import JpegContainer, _read_header

from .conftest import SAMPLES

pytestmark = pytest.mark.interop  # the c2pa SDK


@pytest.mark.parametrize("name", ["sample.jpg", "sample.png"])
def test_manifest_declares_ai_and_keeps_gb_label(tmp_path: Path, name: str, demo_label: AIGCLabel) -> None:
    src = tmp_path / name
    shutil.copy(SAMPLES / name, src)
    write_label(src, demo_label)
    out = tmp_path / f"signed-{name}"
    write_manifest(src, out, demo_label)
    report = read_manifest(out, anchors_pem=C2PACredentials.demo().anchors_pem)
    assert report.present and report.validation_state == "Trusted", report.validation_errors
    assert report.ai_source_types == ["trainedAlgorithmicMedia"]
    assert report.gb_label == demo_label
    assert inspect(out).label == demo_label, "the GB label survives manifest embedding"
    untrusted = read_manifest(out)
    assert untrusted.validation_state == "Valid"
    assert any("untrusted" in e for e in untrusted.validation_errors)


def test_pixel_tampering_and_later_metadata_edits_are_reported(tmp_path: Path, demo_label: AIGCLabel) -> None:
    src = tmp_path / "a.jpg"
    shutil.copy(SAMPLES / "sample.jpg", src)
    signed = tmp_path / "signed.jpg"
    write_manifest(src, signed, demo_label)
    data = bytearray(signed.read_bytes())
    data[-200] ^= 0x55  # inside the entropy-coded image data, before EOI
    tampered = tmp_path / "tampered.jpg"
    tampered.write_bytes(bytes(data))
    broken = read_manifest(tampered, anchors_pem=C2PACredentials.demo().anchors_pem)
    assert broken.validation_state == "Invalid"
    assert any("mismatch" in e for e in broken.validation_errors)
    relabelled = tmp_path / "relabelled.jpg"
    write_label(signed, demo_label.with_propagation(DEMO_PROVIDER_CODE, "p1"), relabelled)
    after = read_manifest(relabelled, anchors_pem=C2PACredentials.demo().anchors_pem)
    assert after.validation_state == "Invalid", "a platform's later edit is visible, not hidden"


def test_jpeg_precheck_passes_every_file_with_an_app11_segment(tmp_path: Path, demo_label: AIGCLabel) -> None:
    """The reader is skipped only on a JPEG without FF EB: wherever C2PA's APP11 segments lie, and across reads."""
    signed = tmp_path / "signed.jpg"
    write_manifest(SAMPLES / "sample.jpg", signed, demo_label)
    jpeg = JpegContainer()
    assert jpeg.may_carry_c2pa(signed) and read_manifest(signed).present
    assert not jpeg.may_carry_c2pa(SAMPLES / "sample.jpg")
    data = signed.read_bytes()
    with open(signed, "rb") as handle:
        app11 = [s for s in _read_header(handle).segments if s.marker == 0xEB]
    assert app11
    rest = bytearray(data)
    for segment in reversed(app11):
        del rest[segment.start : segment.end]
    after_scan = tmp_path / "after-scan.jpg"  # the segments moved behind the entropy-coded data, before EOI
    after_scan.write_bytes(bytes(rest[:-2]) + b"".join(data[s.start : s.end] for s in app11) + bytes(rest[-2:]))
    assert jpeg.may_carry_c2pa(after_scan)
    unmarked = tmp_path / "unmarked.jpg"
    unmarked.write_bytes(bytes(rest))
    assert not jpeg.may_carry_c2pa(unmarked) and not read_manifest(unmarked).present
    split = tmp_path / "split.jpg"  # FF at the end of one read, EB at the start of the next
    split.write_bytes(b"\xff\xd8\xff" + bytes(COPY_CHUNK - 4) + b"\xff\xeb" + bytes(100))
    assert jpeg.may_carry_c2pa(split)


def test_files_without_manifest_or_unsupported_types(tmp_path: Path) -> None:
    assert read_manifest(SAMPLES / "sample.jpg").present is False
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert read_manifest(text).present is False


def test_fresh_credentials_sign_and_verify(tmp_path: Path, demo_label: AIGCLabel) -> None:
    generate_demo_credentials(tmp_path / "creds")
    creds = C2PACredentials(
        chain_pem=(tmp_path / "creds" / "c2pa-demo-chain.pem").read_bytes(),
        key_pem=(tmp_path / "creds" / "c2pa-demo-key.pem").read_bytes(),
        anchors_pem=(tmp_path / "creds" / "c2pa-demo-root.pem").read_bytes(),
    )
    out = tmp_path / "x.png"
    write_manifest(SAMPLES / "sample.png", out, demo_label, credentials=creds)
    assert read_manifest(out, anchors_pem=creds.anchors_pem).validation_state == "Trusted"
    assert read_manifest(out, anchors_pem=C2PACredentials.demo().anchors_pem).validation_state != "Trusted"
