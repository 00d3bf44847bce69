"""Signatures in ReservedCode1/2: round trips on real files, OpenSSL interop, hostile input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from aigclabel import DEMO_PROVIDER_CODE, AIGCLabel, read_label, write_label
from aigclabel.errors import KeyRegistryError, MissingExtraError, SignatureError
from aigclabel.signing import (
    Algorithm,
    KeyRegistry,
    PublicKey,
    SignatureState,
    SigningKey,
    canonical_message,
    demo_registry,
    demo_signing_key,
    payload_digest,
    sign,
    verify,
)
from tests.conftest import SAMPLES, require_tool

OTHER_PROVIDER = "001191440300708461136T1XGW3"
SM2_N = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123", 16)
# SubjectPublicKeyInfo prefix for an SM2 point: id-ecPublicKey + the SM2 curve OID 1.2.156.10197.1.301.
SM2_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d034200")


@pytest.fixture(params=["jpg", "png"])
def image(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    target = tmp_path / f"image.{request.param}"
    shutil.copyfile(SAMPLES / f"sample.{request.param}", target)
    return target


@pytest.fixture(params=list(Algorithm))
def key(request: pytest.FixtureRequest) -> SigningKey:
    return SigningKey.generate(request.param)


def pinned(provider: str, *keys: SigningKey) -> KeyRegistry:
    registry = KeyRegistry()
    for k in keys:
        registry.add(provider, k.public_key)
    return registry


def signed_file(path: Path, key: SigningKey, provider: str = DEMO_PROVIDER_CODE) -> AIGCLabel:
    label = sign(AIGCLabel.for_producer(provider), payload_digest(path), key)
    write_label(path, label)
    return label


def exiftool_label(path: Path) -> AIGCLabel:
    """The label as exiftool (an independent reader) decodes it from the file's XMP."""
    exiftool = require_tool("exiftool")
    out = subprocess.run([exiftool, "-j", "-XMP:all", str(path)], capture_output=True, text=True, check=True)
    return AIGCLabel.parse(json.loads(out.stdout)[0]["Aigc"]).label


# ------------------------------------------------------------------------------------- round trips
@pytest.mark.interop  # exiftool
def test_signed_label_verifies_after_independent_read_back(image: Path, key: SigningKey) -> None:
    signed_file(image, key)
    label = exiftool_label(image)
    assert label.reserved_code1.startswith('{"SecurityData":{"Type":"TC260PG"')
    check = verify(label, payload_digest(image), pinned(DEMO_PROVIDER_CODE, key))
    assert check.state is SignatureState.VALID
    assert check.proves_origin
    assert check.alg == key.alg.value


def test_security_data_fits_annex_e(key: SigningKey) -> None:
    label = sign(AIGCLabel.for_producer(DEMO_PROVIDER_CODE), bytes(32), key)
    assert label.problems() == []
    body = json.loads(label.reserved_code1)["SecurityData"]
    ds = next(e for e in body["PubSD"] if e["Type"] == "DS")
    assert ds["AlgID"] == ("1.2.156.10197.1.501" if key.alg is Algorithm.SM2 else "1.3.101.112")
    assert body["Bindings"] == [{"Type": "ContentHash", "Alg": "SHA256", "Value": "00" * 32}]


def test_canonical_message_is_the_annex_a1_form() -> None:
    label = AIGCLabel(label="1", content_producer="P", produce_id="X", reserved_code1="R", content_propagator="Q")
    assert canonical_message(label, bytes([1]) * 32, "producer") == (
        b'"Label":"1","ContentProducer":"P","ProduceID":"X","ContentHash":"SHA256:' + b"01" * 32 + b'"'
    )
    assert canonical_message(label, bytes(32), "propagator").startswith(
        b'"Label":"1","ContentProducer":"P","ProduceID":"X","ReservedCode1":"R","ContentPropagator":"Q","PropagateID":""'
    )


@pytest.mark.interop  # exiftool
def test_metadata_edit_by_exiftool_keeps_signature_valid(tmp_path: Path, key: SigningKey) -> None:
    exiftool = require_tool("exiftool")
    path = tmp_path / "a.jpg"
    shutil.copyfile(SAMPLES / "sample.jpg", path)
    signed_file(path, key)
    before = payload_digest(path)
    subprocess.run(
        [exiftool, "-q", "-overwrite_original", "-XMP-dc:Title=edited", "-EXIF:Artist=someone", str(path)], check=True
    )
    assert payload_digest(path) == before
    check = verify(exiftool_label(path), payload_digest(path), pinned(DEMO_PROVIDER_CODE, key))
    assert check.state is SignatureState.VALID


def test_propagator_signature_covers_producer_signature(image: Path) -> None:
    producer, platform = SigningKey.generate(), SigningKey.generate("sm2")
    label = signed_file(image, producer)
    registry = pinned(DEMO_PROVIDER_CODE, producer).merge(pinned(OTHER_PROVIDER, platform))
    digest = payload_digest(image)
    propagated = sign(label.with_propagation(OTHER_PROVIDER), digest, platform, "propagator")
    write_label(image, propagated)
    back = read_label(image)
    assert back is not None
    assert verify(back, digest, registry, "producer").state is SignatureState.VALID
    assert verify(back, digest, registry, "propagator").state is SignatureState.VALID
    # Replacing the producer's signature with another valid one (a second producer key) breaks the propagator's.
    second = SigningKey.generate("sm2")
    registry.add(DEMO_PROVIDER_CODE, second.public_key)
    other = sign(AIGCLabel.for_producer(DEMO_PROVIDER_CODE, back.produce_id), digest, second)
    swapped = replace(back, reserved_code1=other.reserved_code1)
    assert verify(swapped, digest, registry, "producer").state is SignatureState.VALID
    assert verify(swapped, digest, registry, "propagator").state is SignatureState.INVALID


# ------------------------------------------------------------------------------------- OpenSSL interop
def _openssl() -> str:
    return require_tool("openssl")


@pytest.mark.interop  # openssl
def test_sm2_signature_verifies_with_openssl(tmp_path: Path) -> None:
    key = SigningKey.generate("sm2")
    message = canonical_message(AIGCLabel.for_producer(DEMO_PROVIDER_CODE), bytes(32), "producer")
    spki = SM2_SPKI_PREFIX + key.public_key.raw
    (tmp_path / "pub.der").write_bytes(spki)
    (tmp_path / "msg").write_bytes(message)
    (tmp_path / "sig").write_bytes(key.sign(message))
    done = subprocess.run(
        [_openssl(), "pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-inkey", "pub.der", "-rawin",
         "-digest", "sm3", "-pkeyopt", "distid:1234567812345678", "-in", "msg", "-sigfile", "sig"],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    assert "Verified Successfully" in done.stdout
    (tmp_path / "msg").write_bytes(message + b"x")
    done = subprocess.run(
        [_openssl(), "pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-inkey", "pub.der", "-rawin",
         "-digest", "sm3", "-pkeyopt", "distid:1234567812345678", "-in", "msg", "-sigfile", "sig"],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode != 0


@pytest.mark.interop  # openssl
def test_openssl_sm2_signature_verifies_here(tmp_path: Path) -> None:
    openssl = _openssl()
    subprocess.run([openssl, "genpkey", "-algorithm", "SM2", "-out", "k.pem"], cwd=tmp_path, check=True)
    der = subprocess.run(
        [openssl, "pkey", "-in", "k.pem", "-pubout", "-outform", "DER"], cwd=tmp_path, capture_output=True, check=True
    ).stdout
    public = PublicKey(Algorithm.SM2, der[-65:])
    message = b'"Label":"1","ContentProducer":"X","ProduceID":"Y"'
    (tmp_path / "msg").write_bytes(message)
    subprocess.run(
        [openssl, "pkeyutl", "-sign", "-inkey", "k.pem", "-rawin", "-digest", "sm3",
         "-pkeyopt", "distid:1234567812345678", "-in", "msg", "-out", "sig"],
        cwd=tmp_path, check=True,
    )  # fmt: skip
    signature = (tmp_path / "sig").read_bytes()
    assert public.verify(message, signature)
    assert not public.verify(message + b" ", signature)


@pytest.mark.interop  # openssl
def test_ed25519_signature_verifies_with_openssl(tmp_path: Path) -> None:
    key = SigningKey.generate("ed25519")
    message = b'"Label":"1","ContentProducer":"X","ProduceID":"Y"'
    spki = serialization.load_der_public_key(bytes.fromhex("302a300506032b6570032100") + key.public_key.raw)
    (tmp_path / "pub.pem").write_bytes(
        spki.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (tmp_path / "msg").write_bytes(message)
    (tmp_path / "sig").write_bytes(key.sign(message))
    done = subprocess.run(
        [_openssl(), "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin", "-in", "msg", "-sigfile", "sig"],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_sm2_nonces_are_fresh() -> None:
    key = demo_signing_key("sm2")
    assert key.sign(b"m") != key.sign(b"m")
    assert key.public_key.verify(b"m", key.sign(b"m"))


# ------------------------------------------------------------------------------------- hostile input
def test_forged_fields_after_signing_are_invalid(image: Path, key: SigningKey) -> None:
    label = signed_file(image, key)
    digest = payload_digest(image)
    registry = pinned(DEMO_PROVIDER_CODE, key)
    for forged in (
        replace(label, produce_id="another-id"),
        replace(label, label="2"),
    ):
        check = verify(forged, digest, registry)
        assert check.state is SignatureState.INVALID
        assert "does not verify" in check.reason
    # The same signature claiming another producer: that provider has no such key.
    stolen = replace(label, content_producer=OTHER_PROVIDER)
    registry.add(OTHER_PROVIDER, SigningKey.generate().public_key)
    assert verify(stolen, digest, registry).state is SignatureState.INVALID


def test_label_moved_to_another_file_is_invalid(tmp_path: Path, key: SigningKey) -> None:
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    Image.new("RGB", (32, 32), (200, 10, 10)).save(first)
    Image.new("RGB", (32, 32), (10, 200, 10)).save(second)
    label = signed_file(first, key)
    write_label(second, label)  # replay the whole label, signature included
    check = verify(read_label(second) or label, payload_digest(second), pinned(DEMO_PROVIDER_CODE, key))
    assert check.state is SignatureState.INVALID
    assert "content hash" in check.reason


def test_payload_edit_is_invalid(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "a.png"
    Image.new("RGB", (32, 32), (200, 10, 10)).save(path)
    label = signed_file(path, key)
    with Image.open(path) as im:
        pixels = im.copy()
    pixels.putpixel((3, 3), (0, 0, 0))
    pixels.save(path)
    write_label(path, label)  # attacker restores the label after editing the picture
    assert verify(label, payload_digest(path), pinned(DEMO_PROVIDER_CODE, key)).state is SignatureState.INVALID


def test_binding_edited_to_match_still_fails(key: SigningKey) -> None:
    label = sign(AIGCLabel.for_producer(DEMO_PROVIDER_CODE), bytes(32), key)
    other = bytes([7]) * 32
    tampered = replace(label, reserved_code1=label.reserved_code1.replace("00" * 32, other.hex()))
    assert verify(tampered, other, pinned(DEMO_PROVIDER_CODE, key)).state is SignatureState.INVALID


def test_wrong_and_foreign_keys(key: SigningKey) -> None:
    label = sign(AIGCLabel.for_producer(DEMO_PROVIDER_CODE), bytes(32), key)
    # Provider pinned to another key: a signature by an unregistered key is a forgery.
    assert verify(label, bytes(32), pinned(DEMO_PROVIDER_CODE, SigningKey.generate())).state is SignatureState.INVALID
    # Key registered to a different provider.
    assert verify(label, bytes(32), pinned(OTHER_PROVIDER, key)).state is SignatureState.INVALID
    # Nobody knows the key: self-consistent but proves nothing.
    check = verify(label, bytes(32), KeyRegistry())
    assert check.state is SignatureState.UNKNOWN_KEY
    assert not check.proves_origin


def _with_rc1(value: str) -> AIGCLabel:
    return AIGCLabel(label="1", content_producer=DEMO_PROVIDER_CODE, produce_id="x", reserved_code1=value)


def _security(**changes: object) -> str:
    key = demo_signing_key()
    data = json.loads(sign(AIGCLabel(label="1", content_producer=DEMO_PROVIDER_CODE, produce_id="x"), bytes(32), key)
                      .reserved_code1)  # fmt: skip
    ds = data["SecurityData"]["PubSD"][1]
    ds.update(changes)
    return json.dumps(data, separators=(",", ":"))


@pytest.mark.parametrize(
    ("value", "state", "reason"),
    [
        ("", SignatureState.UNSIGNED, "empty"),
        ('{"SecurityData":{"Type":"TC260PG"', SignatureState.INVALID, "malformed JSON"),
        ('{"SecurityData":{"Type":"TC260PG","Type":"X"}}', SignatureState.INVALID, "malformed JSON"),
        ("[" * 1500 + "]" * 500, SignatureState.UNVERIFIABLE, "another scheme"),
        ("e862483430d978cbf828b8b24296ef9328d843a0", SignatureState.UNVERIFIABLE, "another scheme"),
        ('{"Other":1}', SignatureState.UNVERIFIABLE, "another scheme"),
        ('{"SecurityData":[]}', SignatureState.INVALID, "Type"),
        ('{"SecurityData":{"Type":"TC260PG","PubSD":{}}}', SignatureState.INVALID, "array"),
        ('{"SecurityData":{"Type":"TC260PG","PubSD":[]}}', SignatureState.INVALID, "no DS"),
        ("x" * 5000, SignatureState.INVALID, "over 2048"),
        (_security(AlgID="1.2.840.113549.1.1.11"), SignatureState.INVALID, "unknown signature algorithm"),
        (_security(Signature="zz"), SignatureState.INVALID, "not hex"),
        (_security(Signature=""), SignatureState.INVALID, "does not verify"),
        (_security(TBSData={"Type": "Md", "Fields": ["Label"]}), SignatureState.INVALID, "TBSData"),
        (_security(KeyID=None), SignatureState.INVALID, "KeyID"),
    ],
)
def test_hostile_reserved_code(value: str, state: SignatureState, reason: str) -> None:
    check = verify(_with_rc1(value), bytes(32), demo_registry())
    assert check.state is state
    assert reason in check.reason


def test_deep_nesting_within_the_length_limit_is_handled() -> None:
    for depth in (900, 1015):
        value = '{"a":' + "[" * depth + "]" * depth + "}"
        assert len(value) <= 2048
        check = verify(_with_rc1(value), bytes(32), demo_registry())
        assert check.state in (SignatureState.INVALID, SignatureState.UNVERIFIABLE)


def test_sm2_out_of_range_signature_values() -> None:
    public = demo_signing_key("sm2").public_key
    for r, s in ((0, 1), (1, 0), (SM2_N, 1), (1, SM2_N)):
        assert not public.verify(b"m", encode_dss_signature(r, s))
    assert not public.verify(b"m", b"\x30\x03garbage")


def test_invalid_public_keys_are_rejected() -> None:
    with pytest.raises(SignatureError, match="not a point"):
        PublicKey(Algorithm.SM2, b"\x04" + bytes(64))
    with pytest.raises(SignatureError):
        PublicKey.from_hex("ed25519", "abcd")
    with pytest.raises(SignatureError, match="unknown signature algorithm"):
        PublicKey.from_hex("rsa", "00")


@pytest.mark.slow  # hypothesis
@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_reserved_code_never_raises(value: str) -> None:
    assert verify(_with_rc1(value), bytes(32), demo_registry()).state in set(SignatureState)


# ------------------------------------------------------------------------------------- keys & registry
def test_demo_keys_are_deterministic_and_unpinned() -> None:
    assert demo_signing_key().key_id == demo_signing_key().key_id
    assert demo_signing_key("sm2").public_key == demo_signing_key("sm2").public_key
    label = sign(AIGCLabel.for_producer(DEMO_PROVIDER_CODE), bytes(32), demo_signing_key())
    check = verify(label, bytes(32), demo_registry())
    assert check.state is SignatureState.VALID
    assert not check.proves_origin
    assert "DEMO" in check.reason


def test_key_files_round_trip(tmp_path: Path, key: SigningKey) -> None:
    path = key.save(tmp_path / "key.json")
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert SigningKey.load(path).public_key == key.public_key
    with pytest.raises(FileExistsError):
        key.save(path)


def test_ed25519_pem_key_loads(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "k.pem").write_bytes(pem)
    loaded = SigningKey.load(tmp_path / "k.pem")
    assert loaded.sign(b"m") == private.sign(b"m")


@pytest.mark.parametrize("content", ["", "{", "[]", '{"alg":"rsa","private_key":"00"}', '{"alg":"sm2"}'])
def test_bad_key_files_give_typed_errors(tmp_path: Path, content: str) -> None:
    (tmp_path / "k.json").write_text(content)
    with pytest.raises(SignatureError):
        SigningKey.load(tmp_path / "k.json")


def test_registry_files_json_and_toml(tmp_path: Path) -> None:
    ed, sm = SigningKey.generate(), SigningKey.generate("sm2")
    registry = KeyRegistry()
    registry.add(DEMO_PROVIDER_CODE, ed.public_key)
    registry.add(OTHER_PROVIDER, sm.public_key, pinned=False, note="staging")
    loaded = KeyRegistry.load(registry.save(tmp_path / "keys.json"))
    assert loaded.entries == registry.entries
    (tmp_path / "keys.toml").write_text(
        f'[[keys]]\nprovider = "{OTHER_PROVIDER}"\nalg = "SM2"\npublic_key = "{sm.public_key.hex}"\npinned = false\n'
    )
    toml = KeyRegistry.load(tmp_path / "keys.toml")
    entry = toml.find(OTHER_PROVIDER, sm.key_id)
    assert entry is not None
    assert not entry.pinned


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"keys": {}}',
        '{"keys": [{"provider": "X"}]}',
        '{"keys": [{"provider": "X", "alg": "ed25519", "public_key": "00"}]}',
        '{"keys": [{"provider": "X", "alg": "ed25519", "public_key": "' + "11" * 32 + '", "key_id": "forged"}]}',
    ],
)
def test_bad_registry_files(tmp_path: Path, content: str) -> None:
    (tmp_path / "r.json").write_text(content)
    with pytest.raises(KeyRegistryError):
        KeyRegistry.load(tmp_path / "r.json")


def test_one_key_cannot_belong_to_two_providers() -> None:
    key = SigningKey.generate()
    registry = pinned(DEMO_PROVIDER_CODE, key)
    with pytest.raises(KeyRegistryError):
        registry.add(OTHER_PROVIDER, key.public_key)


# ------------------------------------------------------------------------------------- optional libraries
def test_importing_signing_loads_no_crypto_library() -> None:
    code = "import sys, aigclabel.signing; print(sorted(m for m in ('cryptography', 'gmssl') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "[]"


@pytest.fixture
def sm2_signed(image: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, SigningKey, AIGCLabel]:
    """An image signed with an SM2 key, then gmssl made unimportable (as on an install without ``[sm2]``)."""
    sm = SigningKey.generate("sm2")
    label = signed_file(image, sm)
    monkeypatch.setitem(sys.modules, "gmssl", None)
    monkeypatch.setitem(sys.modules, "gmssl.sm2", None)
    return image, sm, label


def test_sm2_without_gmssl_names_the_extra(sm2_signed: tuple[Path, SigningKey, AIGCLabel]) -> None:
    image, sm, label = sm2_signed
    with pytest.raises(MissingExtraError, match=r"pip install 'aigclabel\[sm2\]'") as caught:
        SigningKey.generate("sm2")
    assert caught.value.extra == "sm2" and caught.value.exit_code == 2
    with pytest.raises(MissingExtraError):
        sm.sign(b"message")
    # Checking never raises: the signature reads as unverifiable, with the same advice.
    check = verify(label, payload_digest(image), pinned(DEMO_PROVIDER_CODE, sm))
    assert check.state is SignatureState.UNVERIFIABLE
    assert "aigclabel[sm2]" in check.reason
    # SM2 public keys still parse, so registries listing them still load; the SM2 DEMO key is left out.
    assert PublicKey.from_hex("sm2", sm.public_key.hex) == sm.public_key
    assert [entry.public_key.alg for entry in demo_registry()] == [Algorithm.ED25519]
    ed = SigningKey.generate()
    ed_label = sign(AIGCLabel.for_producer(DEMO_PROVIDER_CODE), bytes(32), ed)
    assert verify(ed_label, bytes(32), pinned(DEMO_PROVIDER_CODE, ed)).state is SignatureState.VALID


def test_cli_sm2_key_without_gmssl_exits_2(sm2_signed: tuple[Path, SigningKey, AIGCLabel], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from aigclabel.cli import app

    result = CliRunner().invoke(app, ["keys", "generate", "--out", str(tmp_path / "k.json"), "--alg", "sm2"])
    assert result.exit_code == 2
    assert "aigclabel[sm2]" in result.output
    assert not (tmp_path / "k.json").exists()
