"""C2PA interoperability: a signed manifest with the AI-generated assertion, and reading AI markers.

The EU AI Act Art. 50 route to machine-readable marking is a C2PA manifest whose ``c2pa.created``
action carries the IPTC digital source type ``trainedAlgorithmicMedia``. We write one (with
c2pa-python) beside the GB 45438 label when asked, adding a ``cn.org.tc260.aigc`` assertion that
repeats the seven label fields, and we read C2PA/IPTC AI markers for ``inspect`` and ``verify``.

Ordering matters: a C2PA hard binding hashes the file bytes outside its own manifest, so the GB
label must be written *before* the manifest; a later metadata edit (a platform adding its
propagation fields) invalidates the producer's manifest, which is reported, not hidden.

Network access is off: validation uses only the trust anchors given, never OCSP or remote
manifests. The bundled demo credentials (``aigclabel/data/c2pa-demo-*.pem``) are for the demo and
tests only; anyone can sign with them.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._extras import needs_extra
from ._io import atomic_output
from .errors import AIGCLabelError, C2PAError, MalformedFileError, UnsupportedFormatError
from .label import AIGCLabel
from .sourcetypes import AI_SOURCE_TYPES, IPTC_PREFIX, TRAINED_ALGORITHMIC_MEDIA, source_type_code
from .verify import Evidence, register_detector

if TYPE_CHECKING:
    from .containers import Container

GB_ASSERTION = "cn.org.tc260.aigc"

_OFFLINE_SETTINGS: dict[str, Any] = {
    "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
}


@dataclass(frozen=True)
class C2PACredentials:
    """An ES256 signing key with its certificate chain (end entity first), and the trust anchors."""

    chain_pem: bytes
    key_pem: bytes
    anchors_pem: bytes

    @classmethod
    def demo(cls) -> C2PACredentials:
        """The bundled demo chain: fine for demos and tests, worthless as proof of anything."""
        data = resources.files("aigclabel") / "data"
        return cls(
            chain_pem=(data / "c2pa-demo-chain.pem").read_bytes(),
            key_pem=(data / "c2pa-demo-key.pem").read_bytes(),
            anchors_pem=(data / "c2pa-demo-root.pem").read_bytes(),
        )


@dataclass
class C2PAReport:
    """What a file's C2PA manifest store says about AI generation."""

    present: bool
    validation_state: str | None = None
    ai_source_types: list[str] = field(default_factory=list)
    gb_label: AIGCLabel | None = None
    claim_generator: str | None = None
    validation_errors: list[str] = field(default_factory=list)

    @property
    def says_ai(self) -> bool:
        """True when the active manifest declares an AI digital source type."""
        return bool(self.ai_source_types)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "present": self.present,
            "validation_state": self.validation_state,
            "ai_source_types": self.ai_source_types,
            "gb_label": self.gb_label.to_dict() if self.gb_label else None,
            "claim_generator": self.claim_generator,
            "validation_errors": self.validation_errors,
        }


def _mime(path: Path) -> str:
    """The MIME type C2PA reads and signs ``path`` as: that of the container that claims it by content."""
    return _container(path).mime_type


def _container(path: Path) -> type[Container]:
    """The container that claims ``path`` by content, when C2PA reads and signs its type."""
    with needs_extra("c2pa"):
        import c2pa

    from ._media import claimed_by

    container = claimed_by(path)
    if container is None or container.mime_type not in set(c2pa.Reader.get_supported_mime_types()):
        raise UnsupportedFormatError(f"{path.name}: C2PA manifests are not supported for this file type")
    return container


def _context(anchors_pem: bytes | None) -> Any:
    with needs_extra("c2pa"):
        import c2pa

    settings: dict[str, Any] = json.loads(json.dumps(_OFFLINE_SETTINGS))
    if anchors_pem:
        settings["trust"] = {"trust_anchors": anchors_pem.decode()}
        settings["verify"]["verify_trust"] = True
    return c2pa.Context.from_dict(settings)


def write_manifest(
    src: Path | str,
    dst: Path | str,
    label: AIGCLabel,
    *,
    credentials: C2PACredentials | None = None,
    title: str | None = None,
) -> None:
    """Sign ``src`` into ``dst`` with a C2PA manifest declaring AI generation and the GB label fields."""
    with needs_extra("c2pa"):
        import c2pa

    source, target = Path(src), Path(dst)
    creds = credentials or C2PACredentials.demo()
    mime = _mime(source)
    manifest = {
        "claim_generator_info": [{"name": "aigclabel", "version": _version()}],
        "title": title or source.name,
        "format": mime,
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {"action": "c2pa.created", "digitalSourceType": IPTC_PREFIX + TRAINED_ALGORITHMIC_MEDIA}
                    ]
                },
            },
            {"label": GB_ASSERTION, "data": label.to_dict()},
        ],
    }
    info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, creds.chain_pem, creds.key_pem, None)
    try:
        with (
            c2pa.Signer.from_info(info) as signer,
            c2pa.Builder(manifest, context=_context(None)) as builder,
            atomic_output(target, mode_from=source) as tmp,
            open(source, "rb") as reader,
            open(tmp, "wb") as writer,
        ):
            builder.sign(signer, mime, reader, writer)
    except c2pa.C2paError as exc:
        raise C2PAError(f"{source.name}: C2PA signing failed: {exc}") from None


def read_manifest(path: Path | str, *, anchors_pem: bytes | None = None) -> C2PAReport:
    """The AI markers of the file's active C2PA manifest (``present=False`` when it has none)."""
    with needs_extra("c2pa"):
        import c2pa

    source = Path(path)
    try:
        container = _container(source)
    except UnsupportedFormatError:
        return C2PAReport(present=False)
    if not container().may_carry_c2pa(source):  # the format's own check, much cheaper than the reader's
        return C2PAReport(present=False)
    mime = container.mime_type
    try:
        with open(source, "rb") as stream, c2pa.Reader(mime, stream, context=_context(anchors_pem)) as reader:
            store = json.loads(reader.json())
            state = str(reader.get_validation_state())
    except c2pa.C2paError as exc:
        text = str(exc)
        if "ManifestNotFound" in text or "JumbfNotFound" in text or "no JUMBF" in text.lower():
            return C2PAReport(present=False)
        raise MalformedFileError(f"{source.name}: unreadable C2PA manifest: {text}") from None
    return _report(store, state)


def _report(store: dict[str, Any], state: str) -> C2PAReport:
    active = store.get("manifests", {}).get(store.get("active_manifest", ""), {})
    report = C2PAReport(present=True, validation_state=state)
    generators = active.get("claim_generator_info") or []
    if generators:
        report.claim_generator = str(generators[0].get("name"))
    for assertion in active.get("assertions", []):
        label_name = str(assertion.get("label", ""))
        data = assertion.get("data") or {}
        if label_name.startswith("c2pa.actions"):
            for action in data.get("actions", []):
                source_type = source_type_code(str(action.get("digitalSourceType", "")))
                if source_type in AI_SOURCE_TYPES and source_type not in report.ai_source_types:
                    report.ai_source_types.append(source_type)
        elif label_name == GB_ASSERTION and isinstance(data, dict):
            try:
                report.gb_label = AIGCLabel.from_mapping(data)
            except AIGCLabelError:
                report.validation_errors.append(f"{GB_ASSERTION} assertion is not a label")
    for status in store.get("validation_status") or []:
        report.validation_errors.append(f"{status.get('code')}: {status.get('explanation', '')}".strip())
    return report


def _version() -> str:
    from . import __version__

    return __version__


def generate_demo_credentials(directory: Path, *, years: int = 10) -> None:
    """Write a fresh demo root CA and ES256 end-entity chain into ``directory`` (c2pa-demo-*.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    until = now + datetime.timedelta(days=365 * years)
    root_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aigclabel demo root CA (not trusted)")])
    leaf_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "aigclabel demo signer (not trusted)"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "aigclabel demo"),
        ]
    )
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(leaf_name)
        .issuer_name(root_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "c2pa-demo-root.pem").write_bytes(root.public_bytes(pem))
    (directory / "c2pa-demo-chain.pem").write_bytes(leaf.public_bytes(pem) + root.public_bytes(pem))
    (directory / "c2pa-demo-key.pem").write_bytes(
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


class C2PADetector:
    """Trace detector for :mod:`aigclabel.verify`: a C2PA manifest declaring an AI source type.

    Without pinned trust anchors the manifest's signer is not trusted, so this counts as a trace
    (content *suspected*), never as a confirmed label.
    """

    name = "c2pa"
    #: Reads the manifest store only (no pixel decoding): cheap, after the XMP byte scan.
    cost = 5.0

    def detect(self, path: Path) -> list[Evidence]:
        """Evidence from the file's active manifest (empty when there is none or it says nothing of AI)."""
        try:
            report = read_manifest(path)
        except AIGCLabelError:
            return []
        if not report.says_ai:
            return []
        state = report.validation_state or "unknown"
        return [
            Evidence(
                kind="c2pa-ai-assertion",
                detail=f"C2PA manifest ({state}) declares digital source type {', '.join(report.ai_source_types)}",
                location="C2PA manifest store",
                source=self.name,
                data=report.to_dict(),
            )
        ]


register_detector(C2PADetector())
