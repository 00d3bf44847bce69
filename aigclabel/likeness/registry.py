"""Enrolled people and their templates: embeddings only, encrypted at rest with the operator's key.

The Facial Recognition Measures ask for minimal storage: a photo or voice clip given for enrolment is read,
turned into embeddings by the face or voice encoder, and dropped; only the embeddings are kept, each sealed
with AES-256-GCM under a 32-byte key the operator supplies (a file, or ``$AIGCLABEL_LIKENESS_KEY``, as 64 hex
digits, base64, or 32 raw bytes in a file). The associated data binds each ciphertext to its person,
modality and model, so a template copied to another person's row does not decrypt. A wrong key is a
:class:`~aigclabel.errors.TemplateKeyError`, never garbage. Deleting a person deletes their templates and
leaves a signed ``delete`` entry (no biometrics) in the consent ledger.

A person may be *protected* (opted out): platforms match uploads against protected people (:mod:`.scan`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._extras import needs_extra
from ..audit import AuditStore
from ..audit.models import LikenessPerson, LikenessTemplate
from ..errors import AuditUnavailableError, LikenessError, TemplateKeyError
from .types import MODALITIES, Encoder, Likeness, Modality

with needs_extra("audit"):
    from sqlalchemy import delete, func, select
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.orm import Session

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from .ledger import ConsentLedger

#: Environment variable holding the template key (64 hex digits or base64 of 32 bytes).
KEY_ENV = "AIGCLABEL_LIKENESS_KEY"
_AD_PREFIX = b"aigclabel likeness template v1\x00"
_ENCODERS = {"face": ("aigclabel.likeness.face", "FaceEncoder"), "voice": ("aigclabel.likeness.voice", "VoiceEncoder")}
_encoder_cache: dict[str, Encoder] = {}


def _parse_key(data: bytes, where: str) -> bytes:
    if len(data) == 32:
        return data
    textual = data.strip()
    try:
        if len(textual) == 64:
            return bytes.fromhex(textual.decode("ascii"))
        decoded = base64.b64decode(textual, validate=True)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        decoded = b""
    if len(decoded) != 32:
        raise TemplateKeyError(f"{where} is not a 32-byte key (64 hex digits, base64, or 32 raw bytes)")
    return decoded


def load_template_key(path: Path | str | None = None) -> bytes:
    """The 32-byte template key from ``path``, else from ``$AIGCLABEL_LIKENESS_KEY``; :class:`TemplateKeyError`
    when neither holds one."""
    if path is not None:
        try:
            return _parse_key(Path(path).read_bytes(), f"key file {path}")
        except OSError as exc:
            raise TemplateKeyError(f"cannot read the template key file {path}: {exc.strerror}") from None
    value = os.environ.get(KEY_ENV)
    if not value:
        raise TemplateKeyError(f"no template key: give a key file or set ${KEY_ENV}")
    return _parse_key(value.encode(), f"${KEY_ENV}")


def new_template_key(path: Path | str) -> bytes:
    """Make a random key and write it as hex to ``path`` (mode 0600, never overwriting)."""
    key = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise TemplateKeyError(f"{path} exists; refusing to overwrite a template key") from None
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key.hex() + "\n")
    return key


def key_id(key: bytes) -> str:
    """A fingerprint of a template key, stored with each template (it says which key, not the key)."""
    return hashlib.sha256(b"aigclabel template key id\x00" + key).hexdigest()[:16]


def encoder_for(modality: Modality) -> Encoder:
    """The face or voice encoder (one per process; needs the ``likeness`` extra)."""
    if modality not in _encoder_cache:
        module_name, class_name = _ENCODERS[modality]
        try:
            with needs_extra("likeness"):
                module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            raise LikenessError(f"this aigclabel has no {modality} encoder ({module_name})") from None
        _encoder_cache[modality] = getattr(module, class_name)()
    return _encoder_cache[modality]


def modalities_of(path: Path) -> tuple[Modality, ...]:
    """Which likenesses a file can hold: faces in an image, faces and voices in a video, a voice in audio."""
    from .._media import media_of
    from ..containers import MediaKind

    kind = media_of(path)
    found: dict[MediaKind | None, tuple[Modality, ...]] = {
        MediaKind.IMAGE: ("face",),
        MediaKind.VIDEO: ("face", "voice") if _has_audio(path) else ("face",),
        MediaKind.AUDIO: ("voice",),
    }
    if kind not in found:
        from ..errors import UnsupportedFormatError

        raise UnsupportedFormatError(f"{path.name}: not an image, video or audio file, so no face or voice to find")
    return found[kind]


def _has_audio(path: Path) -> bool:
    """Whether a video has a sound track to listen for voices in."""
    with needs_extra("media"):
        import av

    try:
        with av.open(str(path), metadata_errors="replace") as container:
            return bool(container.streams.audio)
    except (av.error.FFmpegError, OSError, ValueError):
        return False


def find_likenesses(path: Path, modalities: Sequence[Modality] | None = None) -> list[Likeness]:
    """Every face and voice the encoders find in ``path`` (a video's audio track may have no voice)."""
    found: list[Likeness] = []
    for modality in modalities or modalities_of(path):
        encoder: Any = encoder_for(modality)
        found.extend(encoder.find_in_file(path))
    return found


#: In an enrolment photo, a detection scoring under this share of the best one in the same frame is taken
#: for a detector false alarm (the HOG detector scores true faces 0.7-2 and false ones about 0.1).
WEAK_DETECTION = 0.5


def _one_face_per_frame(path: Path, found: list[Likeness]) -> list[Likeness]:
    """The one face of each photo or frame; :class:`LikenessError` when a frame shows two confident faces."""
    frames: dict[float | None, list[Likeness]] = {}
    for item in found:
        frames.setdefault(item.at, []).append(item)
    kept = []
    for faces in frames.values():
        best = max(face.quality for face in faces)
        confident = [face for face in faces if face.quality >= WEAK_DETECTION * best]
        if len(confident) > 1:
            raise LikenessError(f"{path.name}: enrolment needs one face per photo or frame, found {len(confident)}")
        kept.extend(confident)
    return kept


@dataclass(frozen=True)
class Template:
    """One decrypted template."""

    person: str
    modality: Modality
    model: str
    vector: npt.NDArray[np.float32]


@dataclass(frozen=True)
class Person:
    """An enrolled person: id, opt-out flag, when enrolled, and how many templates of each modality."""

    person: str
    protected: bool
    created: datetime
    templates: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "person": self.person,
            "protected": self.protected,
            "created": self.created.isoformat(),
            "templates": dict(self.templates),
        }


@dataclass(frozen=True)
class Match:
    """A likeness in some content that is within ``threshold`` of an enrolled person's template."""

    person: str
    modality: Modality
    distance: float
    threshold: float
    model: str
    where: tuple[float, ...]
    at: float | None
    protected: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what a decision record keeps)."""
        return {
            "person": self.person,
            "modality": self.modality,
            "distance": round(self.distance, 6),
            "threshold": self.threshold,
            "model": self.model,
            "where": [round(v, 3) for v in self.where],
            "at": self.at,
            "protected": self.protected,
        }


class LikenessRegistry:
    """Enrolled people and their encrypted templates in the audit database of ``store``.

    ``key``: the 32-byte template key (:func:`load_template_key`); without it people can be listed, protected
    and deleted, but no template stored or read. ``ledger``: where deletions are recorded.
    """

    def __init__(self, store: AuditStore, key: bytes | None = None, ledger: ConsentLedger | None = None) -> None:
        if key is not None and len(key) != 32:
            raise TemplateKeyError("the template key is 32 bytes (AES-256)")
        self.store = store
        self.ledger = ledger
        self._key_bytes = key
        self._key_id = key_id(key) if key is not None else ""

    @property
    def _key(self) -> bytes:
        if self._key_bytes is None:
            raise TemplateKeyError(f"templates need the template key: give a key file or set ${KEY_ENV}")
        return self._key_bytes

    @staticmethod
    def _ad(person: str, modality: str, model: str) -> bytes:
        return _AD_PREFIX + b"\x00".join(part.encode() for part in (person, modality, model))

    def _seal(self, person: str, likeness: Likeness) -> LikenessTemplate:
        import numpy as np
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        vector = np.ascontiguousarray(likeness.vector, dtype="<f4")
        if vector.ndim != 1 or not np.all(np.isfinite(vector)):
            raise LikenessError("a template is a one-dimensional finite embedding")
        nonce = secrets.token_bytes(12)
        sealed = AESGCM(self._key).encrypt(nonce, vector.tobytes(), self._ad(person, likeness.modality, likeness.model))
        return LikenessTemplate(
            person_id=person,
            modality=likeness.modality,
            model=likeness.model,
            key_id=self._key_id,
            nonce=nonce,
            ciphertext=sealed,
            created=self.store.clock(),
        )

    def _open(self, row: LikenessTemplate) -> Template:
        import numpy as np
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            plain = AESGCM(self._key).decrypt(
                row.nonce, row.ciphertext, self._ad(row.person_id, row.modality, row.model)
            )
        except InvalidTag:
            which = "another key" if row.key_id != self._key_id else "this key, but it was altered or moved"
            raise TemplateKeyError(
                f"template {row.id} of {row.person_id} does not decrypt: it was sealed with {which}"
            ) from None
        modality: Modality = "voice" if row.modality == "voice" else "face"
        return Template(row.person_id, modality, row.model, np.frombuffer(plain, dtype="<f4").astype(np.float32))

    def _session(self) -> Session:
        return Session(self.store.engine)

    def enrol(self, person: str, likenesses: Iterable[Likeness], *, protected: bool | None = None) -> int:
        """Store ``likenesses`` as ``person``'s templates (creating the person); returns how many were stored."""
        from .ledger import _text

        person = _text(person, "a person id")
        found = list(likenesses)
        if not found:
            raise LikenessError(f"nothing to enrol for {person}: no face or voice was found")
        rows = [self._seal(person, item) for item in found]
        try:
            with self._session() as session, session.begin():
                row = session.get(LikenessPerson, person)
                if row is None:
                    row = LikenessPerson(person_id=person, protected=bool(protected), created=self.store.clock())
                    session.add(row)
                elif protected is not None:
                    row.protected = protected
                session.flush()
                session.add_all(rows)
        except SQLAlchemyError as exc:
            raise AuditUnavailableError(f"cannot store templates: {exc.__class__.__name__}") from exc
        return len(rows)

    def enrol_files(
        self,
        person: str,
        paths: Iterable[Path | str],
        *,
        modality: Modality | None = None,
        protected: bool | None = None,
    ) -> int:
        """Enrol ``person`` from photos, videos or voice clips: each photo or frame must show one face (weak
        detections beside a confident one are dropped, see :func:`_one_face_per_frame`), each clip one speaker;
        only the embeddings are kept. A voice clip's windows are averaged into one template."""
        import numpy as np

        made: list[Likeness] = []
        for item in paths:
            path = Path(item)
            here: list[Likeness] = []
            for kind in (modality,) if modality else modalities_of(path):
                found = find_likenesses(path, [kind])
                if kind == "face":
                    here.extend(_one_face_per_frame(path, found))
                elif found:
                    mean = np.mean([x.vector for x in found], axis=0).astype(np.float32)
                    mean /= max(float(np.linalg.norm(mean)), 1e-12)
                    span = (found[0].where[0], found[-1].where[-1])
                    here.append(Likeness("voice", mean, span, found[0].model))
            if not here:
                raise LikenessError(f"{path.name}: no face or voice found to enrol")
            made.extend(here)
        return self.enrol(person, made, protected=protected)

    def set_protected(self, person: str, protected: bool = True) -> None:
        """Mark ``person`` as opted out (protected) or not."""
        with self._session() as session, session.begin():
            row = session.get(LikenessPerson, person)
            if row is None:
                raise LikenessError(f"no enrolled person {person!r}")
            row.protected = protected

    def delete(self, person: str) -> int:
        """Delete ``person`` and every template; the ledger (when given) records it. Returns templates deleted."""
        with self._session() as session, session.begin():
            if session.get(LikenessPerson, person) is None:
                raise LikenessError(f"no enrolled person {person!r}")
            gone = session.execute(delete(LikenessTemplate).where(LikenessTemplate.person_id == person))
            session.execute(delete(LikenessPerson).where(LikenessPerson.person_id == person))
            count = int(getattr(gone, "rowcount", 0) or 0)
        if self.ledger is not None:
            self.ledger.record_deletion(person, count)
        return count

    def people(self) -> list[Person]:
        """Every enrolled person with template counts (nothing is decrypted)."""
        with self._session() as session:
            counts: dict[str, dict[str, int]] = {}
            query = select(LikenessTemplate.person_id, LikenessTemplate.modality, func.count()).group_by(
                LikenessTemplate.person_id, LikenessTemplate.modality
            )
            for person, modality, count in session.execute(query):
                counts.setdefault(person, {})[modality] = int(count)
            rows = session.scalars(select(LikenessPerson).order_by(LikenessPerson.person_id))
            return [Person(r.person_id, r.protected, r.created, counts.get(r.person_id, {})) for r in rows]

    def person(self, person: str) -> Person | None:
        """One enrolled person, or ``None``."""
        return next((p for p in self.people() if p.person == person), None)

    def templates(self, *, modality: Modality | None = None, person: str | None = None) -> list[Template]:
        """Decrypted templates (of one modality / person)."""
        query = select(LikenessTemplate).order_by(LikenessTemplate.id)
        if modality is not None:
            query = query.where(LikenessTemplate.modality == modality)
        if person is not None:
            query = query.where(LikenessTemplate.person_id == person)
        with self._session() as session:
            return [self._open(row) for row in session.scalars(query)]

    def match(
        self,
        likenesses: Iterable[Likeness],
        *,
        protected_only: bool = False,
        encoders: dict[str, Encoder] | None = None,
    ) -> list[Match]:
        """For each likeness, the closest enrolled person of the same model within the encoder's threshold."""
        people = {p.person: p.protected for p in self.people()}
        by_modality: dict[str, list[Template]] = {m: self.templates(modality=m) for m in MODALITIES}
        found: list[Match] = []
        for item in likenesses:
            encoder = (encoders or {}).get(item.modality) or encoder_for(item.modality)
            best: tuple[float, str] | None = None
            for template in by_modality[item.modality]:
                if template.model != item.model or (protected_only and not people.get(template.person)):
                    continue
                distance = float(encoder.distance(item.vector, template.vector))
                if best is None or distance < best[0]:
                    best = (distance, template.person)
            if best is not None and best[0] <= encoder.threshold:
                found.append(
                    Match(
                        best[1],
                        item.modality,
                        best[0],
                        encoder.threshold,
                        item.model,
                        item.where,
                        item.at,
                        people.get(best[1], False),
                    )
                )
        return found
