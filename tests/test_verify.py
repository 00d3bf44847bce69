"""Platform verification (Measures Art. 6): classification, evidence, --apply, detectors, CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from aigclabel import DEMO_PROVIDER_CODE, AIGCLabel, read_label, write_label
from aigclabel._media import MediaSample
from aigclabel.cli import app
from aigclabel.signing import (
    KeyRegistry,
    SignatureState,
    SigningKey,
    demo_registry,
    demo_signing_key,
    payload_digest,
    sign,
    verify,
    verify_fields,
)
from aigclabel.verify import (
    Classification,
    Evidence,
    VerifyError,
    XmpSourceTypeDetector,
    apply,
    classify,
    register_detector,
    register_visible_labeler,
    registered_detectors,
    unregister_detector,
)
from tests.conftest import SAMPLES, require_tool

PLATFORM = "001191440300708461136T1XGW3"
AI_SOURCE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
XMP_ONLY = {"xmp": XmpSourceTypeDetector()}


@pytest.fixture(params=["jpg", "png"])
def image(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    target = tmp_path / f"image.{request.param}"
    shutil.copyfile(SAMPLES / f"sample.{request.param}", target)
    return target


def exiftool(*args: str) -> str:
    tool = require_tool("exiftool")
    return subprocess.run([tool, *args], capture_output=True, text=True, check=True).stdout


def label_signed(path: Path, key: SigningKey | None = None, value: str = "1") -> AIGCLabel:
    label = AIGCLabel.for_producer(DEMO_PROVIDER_CODE, label=value)
    if key is not None:
        label = sign(label, payload_digest(path), key)
    write_label(path, label)
    return label


# ------------------------------------------------------------------------------------- classification
def test_valid_label_is_confirmed(image: Path) -> None:
    label_signed(image, demo_signing_key())
    verdict = classify(image, None, demo_registry(), XMP_ONLY)
    assert verdict.classification is Classification.CONFIRMED
    assert verdict.label_value is not None and verdict.label_value.value == "1"
    assert verdict.signatures["producer"].state is SignatureState.VALID
    kinds = [(e.kind, e.role) for e in verdict.evidence]
    assert ("implicit-label", "label") in kinds


def test_unsigned_label_is_confirmed_but_says_unsigned(image: Path) -> None:
    label_signed(image)
    verdict = classify(image, None, KeyRegistry(), XMP_ONLY)
    assert verdict.classification is Classification.CONFIRMED
    assert verdict.signatures["producer"].state is SignatureState.UNSIGNED


def test_declared_ai_without_label_is_possible(image: Path) -> None:
    verdict = classify(image, True, KeyRegistry(), XMP_ONLY)
    assert verdict.classification is Classification.POSSIBLE
    assert any(e.kind == "declaration" for e in verdict.evidence)


def test_nothing_is_none(image: Path) -> None:
    assert classify(image, None, KeyRegistry(), XMP_ONLY).classification is Classification.NONE
    assert classify(image, False, KeyRegistry(), XMP_ONLY).classification is Classification.NONE


@pytest.mark.interop  # exiftool
def test_iptc_source_type_written_by_exiftool_is_suspected(image: Path) -> None:
    exiftool("-q", "-overwrite_original", f"-XMP-iptcExt:DigitalSourceType={AI_SOURCE}", str(image))
    verdict = classify(image, False, KeyRegistry(), XMP_ONLY)
    assert verdict.classification is Classification.SUSPECTED
    found = [e for e in verdict.evidence if e.kind == "xmp-digital-source-type"]
    assert found and found[0].location.startswith("XMP packet at byte")
    # A user declaration outranks traces (Art. 6 order).
    assert classify(image, True, KeyRegistry(), XMP_ONLY).classification is Classification.POSSIBLE


@pytest.mark.interop  # exiftool
def test_other_source_type_is_not_a_trace(image: Path) -> None:
    exiftool(
        "-q",
        "-overwrite_original",
        "-XMP-iptcExt:DigitalSourceType=http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture",
        str(image),
    )
    assert classify(image, None, KeyRegistry(), XMP_ONLY).classification is Classification.NONE


def test_tampered_label_keeps_its_class_and_reports_the_signature(image: Path) -> None:
    key = SigningKey.generate()
    label = label_signed(image, key)
    from dataclasses import replace

    write_label(image, replace(label, produce_id="forged-id"))
    registry = KeyRegistry()
    registry.add(DEMO_PROVIDER_CODE, key.public_key)
    verdict = classify(image, None, registry, XMP_ONLY)
    # Art. 6(1): the metadata states AI generation; the broken signature is reported on its own.
    assert verdict.classification is Classification.CONFIRMED
    assert verdict.signatures["producer"].state is SignatureState.INVALID
    assert any("content changed after signing" in e.detail for e in verdict.evidence if e.kind == "signature")


def test_label_moved_from_another_image_is_confirmed_with_a_broken_signature(tmp_path: Path) -> None:
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    Image.new("RGB", (24, 24), "red").save(first)
    Image.new("RGB", (24, 24), "blue").save(second)
    write_label(second, label_signed(first, demo_signing_key()))
    verdict = classify(second, None, demo_registry(), XMP_ONLY)
    assert verdict.classification is Classification.CONFIRMED
    assert "content hash" in verdict.signatures["producer"].reason


def test_truncated_payload_under_a_signed_label_reports_the_damage(tmp_path: Path) -> None:
    path = tmp_path / "t.jpg"
    shutil.copyfile(SAMPLES / "sample.jpg", path)
    label_signed(path, demo_signing_key())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 200])  # cut inside the entropy-coded data
    verdict = classify(path, None, demo_registry(), XMP_ONLY)
    assert verdict.classification is Classification.CONFIRMED
    assert verdict.signatures["producer"].state is SignatureState.INVALID
    assert "damaged" in verdict.signatures["producer"].reason


def test_earlier_platform_suspicion_stays_suspected(image: Path) -> None:
    label_signed(image, value="3")
    assert classify(image, None, KeyRegistry(), XMP_ONLY).classification is Classification.SUSPECTED


def _xmp_with_label(value: str) -> bytes:
    escaped = value.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:TC260="http://www.tc260.org.cn/ns/AIGC/1.0/">'
        f"<TC260:AIGC>{escaped}</TC260:AIGC></rdf:Description></rdf:RDF></x:xmpmeta>"
    ).encode()


@pytest.mark.parametrize(
    "stored",
    [
        json.dumps(
            {"Label": "1", "ContentProducer": DEMO_PROVIDER_CODE, "ProduceID": "p", "ReservedCode1": "x" * 3000}
        ),
        '{"Label":"1","ContentProducer":',
        json.dumps({"Label": "1", "ContentProducer": "has space", "ProduceID": "p"}),
    ],
)
def test_hostile_labels_written_by_pillow_are_suspected_not_crashes(tmp_path: Path, stored: str) -> None:
    path = tmp_path / "h.jpg"
    Image.new("RGB", (16, 16), "gray").save(path, xmp=_xmp_with_label(stored))
    verdict = classify(path, None, demo_registry(), XMP_ONLY)
    assert verdict.classification is Classification.SUSPECTED
    assert any(e.kind == "implicit-label" and e.role == "trace" for e in verdict.evidence)
    with pytest.raises(VerifyError):
        apply(verdict, "bad code", prompt="none")
    apply(verdict, PLATFORM, prompt="none")  # dropping non-conforming producer fields, keeping the rest
    label = read_label(path)
    assert label is not None and label.label == "3"
    assert [p for p in label.problems() if p.severity == "error"] == []


def test_garbage_signature_on_a_conforming_label_keeps_the_label_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "g.jpg"
    stored = {"Label": "1", "ContentProducer": DEMO_PROVIDER_CODE, "ProduceID": "p", "ReservedCode1": "{bad"}
    stored |= {"ContentPropagator": "", "PropagateID": "", "ReservedCode2": ""}  # all §6.1 a) keys: conforming
    Image.new("RGB", (16, 16), "gray").save(path, xmp=_xmp_with_label(json.dumps(stored)))
    verdict = classify(path, None, demo_registry(), XMP_ONLY)
    assert verdict.classification is Classification.CONFIRMED
    assert verdict.signatures["producer"].state is SignatureState.INVALID
    apply(verdict, PLATFORM, prompt="none")
    label = read_label(path)
    assert label is not None and (label.label, label.reserved_code1) == ("1", "{bad")  # Art. 10: not ours to fix


class MarkerDetector:
    """Finds a byte marker, as an explicit-label or watermark detector would find its trace."""

    name = "test-marker"

    def detect(self, path: Path) -> list[Evidence]:
        data = path.read_bytes()
        at = data.find(b"GENERATED-BY-AI")
        if at < 0:
            return []
        return [Evidence("watermark", "marker found", f"byte {at}", self.name, data={"watermark_payload": "w-42"})]


def test_registered_detectors_plug_in(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=_text_chunk("Comment", "GENERATED-BY-AI"))
    register_detector(MarkerDetector())
    try:
        assert "test-marker" in registered_detectors()
        verdict = classify(path, None, KeyRegistry())
        assert verdict.classification is Classification.SUSPECTED
        assert verdict.watermark_payloads == ["w-42"]
    finally:
        unregister_detector("test-marker")
    assert "test-marker" not in registered_detectors()


class BrokenDetector:
    name = "broken"

    def detect(self, path: Path) -> list[Evidence]:
        raise ZeroDivisionError("plug-in bug")


def test_a_faulty_detector_is_reported_not_fatal(image: Path) -> None:
    verdict = classify(image, True, KeyRegistry(), {"broken": BrokenDetector()})
    assert verdict.classification is Classification.POSSIBLE
    assert any(e.kind == "detector-error" and "plug-in bug" in e.detail for e in verdict.evidence)


def _text_chunk(key: str, value: str) -> object:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(key, value)
    return info


# ------------------------------------------------------------------------------------- XMP scanner
def _scan(tmp_path: Path, data: bytes, chunk: int = 1 << 20) -> list[Evidence]:
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    detector = XmpSourceTypeDetector()
    detector._CHUNK = chunk  # type: ignore[misc]
    return detector.detect(path)


def _packet(value: str) -> bytes:
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        f'Iptc4xmpExt:DigitalSourceType="{value}"/></rdf:RDF></x:xmpmeta>'
    ).encode()


def test_xmp_packet_across_chunk_boundaries(tmp_path: Path) -> None:
    data = b"\x00" * 1000 + _packet(AI_SOURCE) + b"\xff" * 1000
    for chunk in (7, 64, 1000, 1 << 20):
        found = _scan(tmp_path, data, chunk)
        assert len(found) == 1
        assert found[0].location == "XMP packet at byte 1000"


def test_xmp_scanner_survives_hostile_packets(tmp_path: Path) -> None:
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/">&b;</x:xmpmeta>'
    )
    unterminated = b"<x:xmpmeta" + b"A" * 5000
    broken = b"<x:xmpmeta <<>> </x:xmpmeta>"
    assert _scan(tmp_path, laughs + unterminated + broken + _packet(AI_SOURCE), 256) != []
    assert _scan(tmp_path, laughs + unterminated + broken, 256) == []


# ------------------------------------------------------------------------------------- apply
def assert_producer_fields_kept(path: Path, producer: AIGCLabel) -> AIGCLabel:
    """Read the label back with exiftool and check the producer's fields are untouched."""
    raw = json.loads(exiftool("-j", "-XMP:all", str(path)))[0]["Aigc"]
    written = AIGCLabel.parse(raw).label
    assert (written.label, written.content_producer, written.produce_id, written.reserved_code1) == (
        producer.label,
        producer.content_producer,
        producer.produce_id,
        producer.reserved_code1,
    )
    return written


@pytest.mark.interop  # exiftool
def test_apply_keeps_producer_fields_and_signs_propagation(image: Path) -> None:
    producer = label_signed(image, demo_signing_key())
    before = payload_digest(image)
    verdict = classify(image, None, demo_registry(), XMP_ONLY)
    platform_key = demo_signing_key("sm2")
    applied = apply(verdict, DEMO_PROVIDER_CODE, propagate_id="post-77", key=platform_key, prompt="none")
    assert applied.visible == "not requested"
    written = assert_producer_fields_kept(image, producer)
    assert (written.content_propagator, written.propagate_id) == (DEMO_PROVIDER_CODE, "post-77")
    assert payload_digest(image) == before
    assert verify(written, before, demo_registry(), "producer").state is SignatureState.VALID
    assert verify(written, before, demo_registry(), "propagator").state is SignatureState.VALID


@pytest.mark.interop  # exiftool
def test_apply_possible_and_suspected_write_label_2_and_3(tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    Image.new("RGB", (16, 16), "green").save(path)
    out = tmp_path / "out.png"
    apply(classify(path, True, KeyRegistry(), XMP_ONLY), PLATFORM, output=out, prompt="none")
    label = read_label(out)
    assert label is not None and label.label == "2" and label.content_producer == ""
    assert read_label(path) is None  # the input is untouched when -o is given
    exiftool("-q", "-overwrite_original", f"-XMP-iptcExt:DigitalSourceType={AI_SOURCE}", str(path))
    apply(classify(path, None, KeyRegistry(), XMP_ONLY), PLATFORM, prompt="none")
    label = read_label(path)
    assert label is not None and label.label == "3" and label.content_propagator == PLATFORM


def test_apply_refuses_none(image: Path) -> None:
    with pytest.raises(VerifyError):
        apply(classify(image, None, KeyRegistry(), XMP_ONLY), PLATFORM)


def test_apply_rejects_bad_propagator(image: Path) -> None:
    with pytest.raises(VerifyError):
        apply(classify(image, True, KeyRegistry(), XMP_ONLY), "bad code with spaces", prompt="none")


class BoxLabeler:
    """A real visible labeler: draws a box with Pillow and re-encodes PNG."""

    name = "test-box"

    def supports(self, path: Path) -> bool:
        return path.suffix == ".png"

    def add_label(self, src: Path, dst: Path, classification: Classification) -> None:
        with Image.open(src) as im:
            drawn = im.convert("RGB")
        ImageDraw.Draw(drawn).rectangle((0, 0, 4, 4), fill="white")
        drawn.save(dst, format="PNG")


def test_apply_with_visible_labeler_signs_the_new_payload(tmp_path: Path) -> None:
    from aigclabel import verify as verify_module

    path = tmp_path / "v.png"
    Image.new("RGB", (16, 16), "black").save(path)
    label_signed(path, demo_signing_key())
    old = payload_digest(path)
    platform_key = SigningKey.generate("sm2")
    registry = demo_registry()
    registry.add(PLATFORM, platform_key.public_key)  # pinned
    register_visible_labeler(BoxLabeler())
    try:
        applied = apply(classify(path, None, registry, XMP_ONLY), PLATFORM, key=platform_key, prompt="burn")
    finally:
        verify_module._LABELERS.pop("test-box", None)
    assert applied.visible == "added by test-box"
    new = payload_digest(path)
    assert new != old
    with Image.open(path) as im:
        assert im.convert("RGB").getpixel((1, 1)) == (255, 255, 255)
    label = read_label(path)
    assert label is not None
    assert verify(label, new, registry, "propagator").state is SignatureState.VALID
    # The producer's signature was bound to the old pixels: alone it no longer matches...
    assert verify(label, new, registry, "producer").state is SignatureState.INVALID
    # ...but the pinned propagator vouches for the old payload, so the pair still verifies.
    checks = verify_fields(label, new, registry)
    assert checks["producer"].state is SignatureState.VALID
    assert "visible label" in checks["producer"].reason
    assert checks["propagator"].source_digest == old.hex()
    assert classify(path, None, registry, XMP_ONLY).classification is Classification.CONFIRMED
    # An unpinned (or unknown) propagator key cannot vouch for an earlier payload.
    unpinned = demo_registry()
    unpinned.add(PLATFORM, platform_key.public_key, pinned=False)
    assert verify_fields(label, new, unpinned)["producer"].state is SignatureState.INVALID
    assert verify_fields(label, new, demo_registry())["producer"].state is SignatureState.INVALID
    assert not list(tmp_path.glob("*.aigclabel-tmp*"))


def _gradient(path: Path, size: int = 384) -> Path:
    import numpy as np

    y, x = np.mgrid[0:size, 0:size]
    noise = np.random.default_rng(7).normal(0, 8, (size, size, 3))
    pixels = np.stack([x * 255 / size, y * 255 / size, (x + y) * 127 / size], -1) + noise
    Image.fromarray(np.clip(pixels, 0, 255).astype("uint8")).save(path)
    return path


def test_apply_draws_the_visible_prompt_and_the_explicit_detector_finds_it(tmp_path: Path) -> None:
    path = _gradient(tmp_path / "g.png")
    with Image.open(path) as im:
        before = im.convert("RGB").tobytes()
    applied = apply(classify(path, True, KeyRegistry()), PLATFORM, prompt="burn")
    assert applied.visible == "added by explicit-image"
    with Image.open(path) as im:
        assert im.convert("RGB").tobytes() != before
    label = read_label(path)
    assert label is not None and label.label == "2"
    # Someone strips the implicit label: the visible prompt is still a trace.
    from aigclabel import strip_label

    strip_label(path)
    verdict = classify(path, None, KeyRegistry())
    assert verdict.classification is Classification.SUSPECTED
    assert [e.source for e in verdict.evidence if e.role == "trace"] == ["explicit-image-label"]


def test_visible_label_failure_is_reported_and_the_implicit_label_still_written(tmp_path: Path) -> None:
    path = tmp_path / "tiny.png"
    Image.new("RGB", (16, 16), "navy").save(path)
    applied = apply(classify(path, True, KeyRegistry(), XMP_ONLY), PLATFORM, key=SigningKey.generate(), prompt="burn")
    assert applied.visible.startswith("failed (explicit-image")
    label = read_label(path)
    assert label is not None and label.label == "2" and label.reserved_code2
    assert not list(tmp_path.glob("*.aigclabel-tmp*"))


def test_watermark_is_a_trace_and_is_traceable_in_the_audit_log(tmp_path: Path) -> None:
    from aigclabel.audit import AuditStore, verdict_event
    from aigclabel.watermark import embed_file

    path = embed_file(_gradient(tmp_path / "w.png"), tmp_path / "marked.png", produce_id="job-123")
    verdict = classify(path, None, KeyRegistry())
    assert verdict.classification is Classification.SUSPECTED
    assert len(verdict.watermark_payloads) == 1
    store = AuditStore(tmp_path / "audit.sqlite")
    event_id = store.record(verdict_event(verdict))
    [found] = store.trace(watermark_payload=verdict.watermark_payloads[0])
    assert found.id == event_id and found.detail["classification"] == "suspected"
    store.close()


# ------------------------------------------------------------------------------------- CLI
def test_cli_verify_json_and_apply(tmp_path: Path) -> None:
    path = tmp_path / "c.jpg"
    shutil.copyfile(SAMPLES / "sample.jpg", path)
    runner = CliRunner()
    result = runner.invoke(app, ["verify", str(path), "--declared-ai", "yes", "--json", "--no-audit"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["classification"] == "possible" and body["label_value"] == "2"
    keyfile = tmp_path / "k.json"
    assert runner.invoke(app, ["keys", "generate", "--out", str(keyfile), "--alg", "sm2"]).exit_code == 0
    db = tmp_path / "audit.sqlite"
    result = runner.invoke(
        app,
        ["verify", str(path), "--declared-ai", "yes", "--apply", "--propagator", PLATFORM, "--key", str(keyfile),
         "--db", str(db)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "prompt file" in result.stdout
    page = json.loads((tmp_path / "c.jpg.aigc-prompt.json").read_text(encoding="utf-8"))
    assert (page["prompt"], page["label"]) == ("可能为人工智能生成", "2")
    label = read_label(path)
    assert label is not None and label.label == "2" and label.reserved_code2.startswith('{"SecurityData"')
    trace = runner.invoke(app, ["audit", "trace", "--produce-id", "x", "--propagate-id", label.propagate_id,
                                "--db", str(db)])  # fmt: skip
    assert trace.exit_code == 0, trace.output
    assert json.loads(trace.stdout.splitlines()[0])["detail"]["classification"] == "possible"


def test_cli_verify_usage_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.png"
    shutil.copyfile(SAMPLES / "sample.png", path)
    runner = CliRunner()
    assert runner.invoke(app, ["verify", str(path), "--declared-ai", "maybe"]).exit_code == 2
    assert runner.invoke(app, ["verify", str(path), "--declared-ai", "yes", "--apply", "--no-audit"]).exit_code == 2
    bad = tmp_path / "junk.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    result = runner.invoke(app, ["verify", str(bad), "--no-audit"])
    assert result.exit_code in (3, 4)


# ------------------------------------------------------------------------------------- fast path
class CountingDetector:
    """Records every call (and the shared call order), finds nothing unless told to."""

    def __init__(
        self, name: str, calls: list[str], *, cost: float | None = None, formats: set[str] | None = None
    ) -> None:
        self.name = name
        self.calls = calls
        if cost is not None:
            self.cost = cost
        self.formats = formats

    def detect(self, path: Path) -> list[Evidence]:
        self.calls.append(self.name)
        return [Evidence("watermark", "found", "-", self.name)] if self.name == "finds" else []


def test_confirmed_label_skips_detectors_unless_thorough(image: Path) -> None:
    label_signed(image, demo_signing_key())
    calls: list[str] = []
    chosen = {"finds": CountingDetector("finds", calls)}
    fast = classify(image, None, demo_registry(), chosen)
    assert fast.classification is Classification.CONFIRMED
    assert calls == [] and fast.detectors == [] and fast.skipped_detectors == ["finds"]
    full = classify(image, None, demo_registry(), chosen, thorough=True)
    assert calls == ["finds"] and full.detectors == ["finds"]
    assert full.classification is Classification.CONFIRMED  # a trace never outranks a valid label
    assert [e.source for e in full.evidence if e.role == "trace"] == ["finds"]


def test_detectors_still_run_without_a_valid_label(image: Path) -> None:
    calls: list[str] = []
    chosen = {"finds": CountingDetector("finds", calls)}
    assert classify(image, None, KeyRegistry(), chosen).classification is Classification.SUSPECTED
    assert calls == ["finds"]
    # A non-conforming label states nothing: the detectors must run.
    Image.open(image).save(image, xmp=_xmp_with_label('{"Label":"1","ContentProducer":'))
    assert classify(image, None, KeyRegistry(), chosen).classification is Classification.SUSPECTED
    assert calls == ["finds", "finds"]
    # A conforming Label=3 states "suspected"; no trace can change that, so they are skipped.
    label_signed(image, value="3")
    assert classify(image, None, KeyRegistry(), chosen).classification is Classification.SUSPECTED
    assert calls == ["finds"] * 2


def test_detectors_run_cheapest_first_and_only_on_their_formats(tmp_path: Path) -> None:
    png = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(png)
    calls: list[str] = []
    chosen = {
        "dear": CountingDetector("dear", calls, cost=100),
        "legacy": CountingDetector("legacy", calls),  # no cost: the default, between the two
        "cheap": CountingDetector("cheap", calls, cost=1),
        "audio-only": CountingDetector("audio-only", calls, cost=0, formats={"wav", "flac"}),
        "png-only": CountingDetector("png-only", calls, cost=2, formats={"png"}),
    }
    verdict = classify(png, None, KeyRegistry(), chosen)
    assert calls == ["cheap", "png-only", "legacy", "dear"]
    assert verdict.skipped_detectors == ["audio-only"]
    assert "audio-only" not in verdict.detectors


def test_builtin_image_detectors_are_not_called_on_audio(tmp_path: Path) -> None:
    from aigclabel.verify import plan_detectors

    names = [name for name, _ in plan_detectors(registered_detectors(), "wav")]
    assert "explicit-image-label" not in names
    assert "xmp-digital-source-type" in names
    pdf = [name for name, _ in plan_detectors(registered_detectors(), "pdf")]
    assert pdf[0] == "xmp-digital-source-type" and "watermark" not in pdf


def test_cli_and_service_thorough(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from aigclabel.service import ServiceSettings, create_app

    path = tmp_path / "c.png"
    shutil.copyfile(SAMPLES / "sample.png", path)
    label_signed(path)
    runner = CliRunner()
    fast = json.loads(runner.invoke(app, ["verify", str(path), "--json", "--no-audit"]).stdout)
    assert fast["classification"] == "confirmed" and fast["detectors"] == []
    assert "explicit-image-label" in fast["skipped_detectors"]
    full = json.loads(runner.invoke(app, ["verify", str(path), "--json", "--no-audit", "--thorough"]).stdout)
    assert full["classification"] == "confirmed" and "explicit-image-label" in full["detectors"]
    work = tmp_path / "uploads"
    work.mkdir()
    with TestClient(create_app(ServiceSettings(work_dir=work))) as client:
        body = path.read_bytes()
        raw = {"Content-Type": "application/octet-stream"}
        seen = client.post("/v1/verify", params={"filename": "c.png"}, content=body, headers=raw).json()
        assert seen["classification"] == "confirmed" and seen["detectors"] == []
        params = {"filename": "c.png", "thorough": "true"}
        seen = client.post("/v1/verify", params=params, content=body, headers=raw).json()
        assert "explicit-image-label" in seen["detectors"]


# ------------------------------------------------------------------------------------- Art. 6 chain
def test_reencoded_label_1_jpeg_stays_confirmed_and_reports_the_signature(tmp_path: Path) -> None:
    path = tmp_path / "p.jpg"
    shutil.copyfile(SAMPLES / "sample.jpg", path)
    label_signed(path, demo_signing_key())
    again = tmp_path / "q80.jpg"
    with Image.open(path) as im:  # an ordinary re-encode that keeps the XMP packet
        im.save(again, quality=80, xmp=im.info["xmp"])
    verdict = classify(again, None, demo_registry(), XMP_ONLY)
    assert verdict.classification is Classification.CONFIRMED
    assert verdict.signatures["producer"].state is SignatureState.INVALID
    [note] = [e for e in verdict.evidence if e.kind == "signature"]
    assert note.role == "info" and "content changed after signing" in note.detail


@pytest.mark.parametrize(("value", "expected"), [("2", Classification.POSSIBLE), ("3", Classification.SUSPECTED)])
def test_platform_labels_keep_their_class_along_a_chain(image: Path, value: str, expected: Classification) -> None:
    label_signed(image, value=value)
    for hop, platform in enumerate((PLATFORM, DEMO_PROVIDER_CODE)):
        verdict = classify(image, None, KeyRegistry(), XMP_ONLY)
        assert verdict.classification is expected, f"hop {hop}"
        apply(verdict, platform, prompt="none")
        label = read_label(image)
        assert label is not None and label.label == value and label.content_propagator == platform
    assert classify(image, None, KeyRegistry(), XMP_ONLY).classification is expected


@pytest.mark.interop  # exiftool
def test_apply_keeps_every_producer_field_and_the_payload(image: Path) -> None:
    producer = label_signed(image, demo_signing_key())
    before = payload_digest(image)
    verdict = classify(image, True, demo_registry(), XMP_ONLY)
    applied = apply(verdict, PLATFORM)  # default: the prompt goes into a prompt file, the content is untouched
    assert applied.prompt == "人工智能生成" and applied.prompt_file is not None
    page = json.loads(applied.prompt_file.read_text(encoding="utf-8"))
    assert page["prompt"] == "人工智能生成" and page["content"] == image.name
    assert_producer_fields_kept(image, producer)
    assert payload_digest(image) == before
    # The next platform in the chain still sees a valid producer signature and confirms.
    following = classify(image, None, demo_registry(), XMP_ONLY)
    assert following.classification is Classification.CONFIRMED
    assert following.signatures["producer"].state is SignatureState.VALID


def test_burn_in_never_paints_over_an_existing_label(tmp_path: Path) -> None:
    from aigclabel.explicit import add_image_label

    plain = _gradient(tmp_path / "plain.png")
    path = tmp_path / "labelled.png"
    add_image_label(plain, path, implicit="if-supported")
    with Image.open(path) as im:
        pixels = im.convert("RGB").tobytes()
    applied = apply(classify(path, True, KeyRegistry()), PLATFORM, prompt="burn")
    assert applied.visible.startswith("not added: the content already shows a visible label")
    with Image.open(path) as im:
        assert im.convert("RGB").tobytes() == pixels


def test_burn_in_writes_text_and_audio_prompts_when_asked(tmp_path: Path) -> None:
    import numpy as np
    from scipy.io import wavfile

    from aigclabel.explicit.audio import detect_rhythm, load_mono

    text = tmp_path / "answer.md"
    text.write_text("第一段。\n\n第二段。\n", encoding="utf-8")
    applied = apply(classify(text, True, KeyRegistry(), XMP_ONLY), PLATFORM, prompt="burn")
    assert applied.visible == "added by explicit-text"
    from aigclabel.explicit.text import find_text_labels

    [found] = find_text_labels(text.read_text(encoding="utf-8"), fmt="markdown")
    assert (found.text, found.where) == ("人工智能生成", "start")
    assert "【可能为人工智能生成】" in text.read_text(encoding="utf-8")
    sound = tmp_path / "voice.wav"
    wavfile.write(sound, 16000, (np.sin(np.arange(32000) * 0.05) * 8000).astype(np.int16))
    applied = apply(classify(sound, True, KeyRegistry(), XMP_ONLY), PLATFORM, prompt="burn")
    assert applied.visible == "added by explicit-audio"
    [cue] = detect_rhythm(load_mono(sound), 8000)
    assert cue.start < 1.0 and cue.frequency == pytest.approx(1000, abs=15)
    label = read_label(sound)
    assert label is not None and label.label == "2"


@pytest.mark.interop  # ffmpeg
def test_burn_in_overlays_the_opening_of_a_video_when_asked(tmp_path: Path) -> None:
    from aigclabel.check import check_file

    ffmpeg = require_tool("ffmpeg")
    clip = tmp_path / "clip.mp4"
    subprocess.run(
        [ffmpeg, "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=3",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(clip)],
        check=True,
    )  # fmt: skip
    applied = apply(classify(clip, True, KeyRegistry(), XMP_ONLY), PLATFORM, prompt="burn")
    assert applied.visible == "added by explicit-video"
    rules = {r.rule: r for r in check_file(clip).rules}
    assert rules["implicit-label"].status == "pass"
    assert rules["video-label"].status == "pass" and rules["video-label-duration"].measured["seconds"] >= 2.0


class _Recorder:
    """A detector that takes the shared decode and notes the picture it was handed."""

    shares_media = True
    formats = frozenset({"jpeg"})

    def __init__(self, name: str, seen: list[tuple[str, object]]) -> None:
        self.name, self.seen = name, seen

    def detect(self, path: Path, media: MediaSample | None = None) -> list[Evidence]:
        assert media is not None
        self.seen.append((self.name, media.analysis_image()[0]))
        return []


class _OldStyle:
    """A detector written before the shared decode: ``detect(path)`` only."""

    name = "old-style"

    def __init__(self, seen: list[tuple[str, object]]) -> None:
        self.seen = seen

    def detect(self, path: Path) -> list[Evidence]:
        self.seen.append((self.name, path))
        return [Evidence("watermark", "old-style trace", "-", self.name)]


def test_detectors_of_one_upload_share_one_decode(tmp_path: Path) -> None:
    path = tmp_path / "upload.jpg"
    shutil.copyfile(SAMPLES / "sample.jpg", path)
    seen: list[tuple[str, object]] = []
    chosen = {"a": _Recorder("a", seen), "b": _Recorder("b", seen), "old-style": _OldStyle(seen)}
    verdict = classify(path, None, KeyRegistry(), chosen)  # type: ignore[arg-type]
    assert verdict.classification is Classification.SUSPECTED  # the old-style detector still counts
    pictures = {name: picture for name, picture in seen}
    assert set(pictures) == {"a", "b", "old-style"}
    assert pictures["a"] is pictures["b"]  # one decode, handed to both
    with Image.open(path) as original:
        assert pictures["a"].size == original.size  # type: ignore[attr-defined]


def test_visible_label_found_through_the_shared_decode(tmp_path: Path) -> None:
    from aigclabel.explicit import add_image_label

    path = tmp_path / "photo.jpg"
    image = Image.new("RGB", (1600, 1200), (90, 140, 60))
    ImageDraw.Draw(image).rectangle((40, 900, 700, 1100), fill=(250, 250, 250))
    image.save(path, quality=90)
    painted = tmp_path / "painted.jpg"
    add_image_label(path, painted, implicit="never")
    detector = registered_detectors()["explicit-image-label"]
    alone = [e.to_dict() for e in detector.detect(painted)]
    verdict = classify(painted, None, KeyRegistry(), {"explicit-image-label": detector})
    assert alone and alone[0]["kind"] == "explicit-label"
    assert [e.to_dict() for e in verdict.evidence if e.source == "explicit-image-label"] == alone
