"""PDF documents: Info dictionary key ``/AIGC`` plus ``TC260:AIGC`` in the catalog's XMP metadata.

TC260-PG-20258A §6.3 puts the bare seven-field JSON in the document Info dictionary under
``/AIGC`` (a PDF text string; the JSON is ASCII, so it is written as a literal string). PDF 2.0
deprecates the Info dictionary in favour of XMP, so the same value also goes into the catalog
``/Metadata`` stream as the TC260 XMP property (merged into an existing packet by
:mod:`aigclabel.xmp`). Both are one label in two synchronised placements, not two labels under
GB 45438 §6.1 c): ISO 32000 defines the Info dictionary and the catalog XMP as two encodings of the
*same* document metadata that a writer keeps equivalent (PDF 2.0 readers take XMP, older ones and
TC260's guide take Info), so a reader sees the one label whichever it consults. §6.1 c) forbids
keeping a second label beside the first (appending instead of replacing); that is what the check
flags elsewhere. :attr:`PdfContainer.mirrored_locations` makes identical copies count once;
:meth:`PdfContainer.read` still reports each, so copies that differ are flagged as conflicting.

**Incremental update.** :meth:`PdfContainer.rewrite` never rewrites the document: it copies the
original bytes unchanged and appends a PDF incremental update (ISO 32000-1 §7.5.6) holding a new
version of the Info dictionary, a new Metadata stream, the catalog if it had no ``/Metadata`` yet,
and a cross-reference section whose trailer keeps ``/Root``, ``/Info`` and ``/ID`` and points at
the previous section with ``/Prev``. The original file is a byte-identical prefix of the result, so
existing digital signatures still verify over their ``/ByteRange``. When the previous section is a
cross-reference *stream* (PDF 1.5+), the update carries an xref stream too: a classic table after
an xref stream confuses many readers. pikepdf (qpdf) is used only to read the object graph; the
appended bytes are ours.

**Stripping** is another incremental update without ``/AIGC`` and the XMP property. The earlier
revision, and with it the old label, stays in the file (that is what makes signatures survive).
Callers who need the label bytes gone use :meth:`PdfContainer.strip_full` (or
:meth:`PdfContainer.write_full`), which rewrite the whole file with pikepdf and drop old revisions
— and invalidate any signature.

**Encrypted PDFs** that open without a password (empty user password: any reader shows them) are
labelled by the same incremental update: its strings and the new Metadata stream are encrypted with
the document key (RC4, AES-128 or AES-256, per object as the security handler says; metadata stays
clear under ``/EncryptMetadata false``) and its trailer keeps ``/Encrypt`` and ``/ID``, so the owner
password and permissions are untouched. A PDF that needs a user password raises
:class:`EncryptedPDFError`.

**Damaged PDFs** that qpdf repairs on opening raise :class:`~aigclabel.errors.NeedsRepairError`: an
update would chain to the broken cross-reference data. ``--repair`` (:meth:`PdfContainer.repair`)
rewrites them whole instead. A warning qpdf already gives for the input does not fail the check of
the output.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from .. import xmp
from .._io import COPY_CHUNK, MAX_METADATA_BYTES, atomic_output, copy_rest, file_size
from .._journal import EditPlan
from ..errors import (
    EncryptedPDFError,
    LimitExceededError,
    MalformedFileError,
    NeedsRepairError,
    TruncatedFileError,
)
from ..label import AIGCLabel
from . import Container, FoundLabel, MediaKind, register

if TYPE_CHECKING:  # pikepdf (and numpy with it) costs 0.15 s to import: each function imports it when it runs
    import pikepdf

INFO_KEY = "/AIGC"
XMP_LOCATION = "XMP TC260:AIGC in catalog /Metadata"
_STARTXREF = re.compile(rb"startxref\s*(\d+)")
_OBJ_HEADER = re.compile(rb"\s*(\d+)\s+(\d+)\s+obj\b")
#: What a refusal of a damaged file tells the user to do.
_REPAIR_HINT = (
    "use `aigclabel label --repair` (or `strip --repair`; in Python `write_label(..., repair=True)`) to rewrite "
    "it whole with qpdf's repair: that drops earlier revisions and invalidates digital signatures"
)
#: How far from the end of the file we look for the last ``startxref``.
_TAIL = 4096


def copy_dict(obj: pikepdf.Object) -> pikepdf.Dictionary:
    """A direct shallow copy of a dictionary object (references inside stay references)."""
    import pikepdf

    return pikepdf.Dictionary(cast("Mapping[str, Any]", obj))


def _is_label_key(key: str) -> bool:
    """Annex E a): the label is any field whose name contains ``AIGC``."""
    return "aigc" in key.casefold()


@contextlib.contextmanager
def open_pdf(path: Path) -> Iterator[pikepdf.Pdf]:
    """Open with pikepdf; qpdf's errors on damaged files, inside the block too, become typed errors."""
    import pikepdf

    try:
        pdf = pikepdf.open(path)
    except pikepdf.PasswordError:
        raise EncryptedPDFError(f"{path} is an encrypted PDF that needs a password") from None
    except (pikepdf.PdfError, RuntimeError, ValueError) as exc:
        raise MalformedFileError(f"{path} is not a readable PDF: {exc}") from None
    try:
        with pdf:
            yield pdf
    except (pikepdf.PdfError, RuntimeError, ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        raise MalformedFileError(f"{path} is a damaged PDF: {type(exc).__name__}: {exc}") from None


def _stream_data(stream: pikepdf.Stream, what: str) -> bytes:
    """Decoded stream data with a bound on both sizes (a metadata stream can be a flate bomb)."""
    import pikepdf

    raw = stream.read_raw_bytes()
    if len(raw) > MAX_METADATA_BYTES:
        raise MalformedFileError(f"{what} is {len(raw)} bytes (limit {MAX_METADATA_BYTES})")
    filters = stream.stream_dict.get("/Filter")
    names = [str(f) for f in filters] if isinstance(filters, pikepdf.Array) else [str(filters)] if filters else []
    if not names:
        return bytes(raw)
    if names == ["/FlateDecode"] and "/DecodeParms" not in stream.stream_dict:
        inflater = zlib.decompressobj()
        try:
            data = inflater.decompress(raw, MAX_METADATA_BYTES + 1)
        except zlib.error as exc:
            raise MalformedFileError(f"{what} is bad flate data: {exc}") from None
        if len(data) > MAX_METADATA_BYTES:
            raise MalformedFileError(f"{what} inflates past {MAX_METADATA_BYTES} bytes")
        return data
    if len(raw) > 64 * 1024:
        raise MalformedFileError(f"{what} uses filters {names} on {len(raw)} bytes; refusing to decode")
    try:
        return bytes(stream.read_bytes())
    except pikepdf.PdfError as exc:
        raise MalformedFileError(f"{what} cannot be decoded: {exc}") from None


def refuse_repaired(pdf: pikepdf.Pdf, path: Path) -> list[str]:
    """An update appended to a file qpdf had to repair would chain to the damaged section. Returns
    qpdf's other warnings about the input (qpdf hands each warning out once)."""
    pdf.Root.get("/Pages")  # make qpdf resolve the catalog, so repair warnings are in
    warnings = qpdf_warnings(pdf, path)
    damage = [w for w in warnings if "damaged" in w or "xref" in w.lower()]
    if damage:
        raise NeedsRepairError(
            f"PDF cross-reference data is damaged ({damage[0]}); an incremental update would chain to it: "
            + _REPAIR_HINT
        )
    return warnings


def qpdf_warnings(pdf: pikepdf.Pdf, path: Path) -> list[str]:
    """qpdf's warnings without the file name, so those of an input and its output compare."""
    return [w.replace(str(path), "").lstrip(": ") for w in pdf.get_warnings()]


def _verify(path: Path, value: str | None, known: Iterable[str] = ()) -> None:
    """Re-open what we wrote: it must parse without new warnings (``known``: the input's own, which the
    unchanged prefix still causes) and carry exactly the intended label."""
    with open_pdf(path) as pdf:
        info_values = [f.raw for f in _info_labels(pdf)]
        _packet, xmp_values = _xmp_values(pdf)
        old = set(known)
        warnings = [w for w in qpdf_warnings(pdf, path) if w not in old]
    wanted = [value] if value is not None else []
    if warnings or info_values != wanted or xmp_values != wanted:
        detail = warnings[0] if warnings else "label did not read back"
        raise MalformedFileError(f"the written PDF could not be verified ({detail}); the input was left as it was")


def _metadata_stream(pdf: pikepdf.Pdf) -> pikepdf.Stream | None:
    import pikepdf

    meta = pdf.Root.get("/Metadata")
    return meta if isinstance(meta, pikepdf.Stream) else None


def _info(pdf: pikepdf.Pdf) -> pikepdf.Dictionary | None:
    import pikepdf

    info = pdf.trailer.get("/Info")
    return info if isinstance(info, pikepdf.Dictionary) else None


def _info_labels(pdf: pikepdf.Pdf) -> list[FoundLabel]:
    import pikepdf

    info = _info(pdf)
    found: list[FoundLabel] = []
    if info is None:
        return found
    for key in info.keys():  # noqa: SIM118 - pikepdf dictionaries iterate keys only via keys()
        if not _is_label_key(key):
            continue
        value = info.get(key)
        if isinstance(value, pikepdf.String):
            found.append(FoundLabel.from_text(f"Info dictionary {key}", str(value)))
        else:
            found.append(FoundLabel(f"Info dictionary {key}", repr(value), error="value is not a PDF string"))
    return found


def _xmp_values(pdf: pikepdf.Pdf) -> tuple[bytes | None, list[str]]:
    stream = _metadata_stream(pdf)
    if stream is None:
        return None, []
    packet = _stream_data(stream, "catalog /Metadata stream")
    return packet, xmp.find_aigc(packet)


def _literal(text: str) -> bytes:
    """A PDF literal string for ASCII ``text`` (parentheses and backslashes escaped)."""
    body = text.encode("ascii").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    return b"(" + body.replace(b"\r", b"\\r") + b")"


def _rc4(key: bytes, data: bytes) -> bytes:
    """RC4 (ISO 32000-1 §7.6.2, security handler revisions 2-4 without AES): key schedule and stream."""
    box = list(range(256))
    j = 0
    for i in range(256):
        j = (j + box[i] + key[i % len(key)]) & 0xFF
        box[i], box[j] = box[j], box[i]
    out = bytearray(len(data))
    i = j = 0
    for n, byte in enumerate(data):
        i = (i + 1) & 0xFF
        j = (j + box[i]) & 0xFF
        box[i], box[j] = box[j], box[i]
        out[n] = byte ^ box[(box[i] + box[j]) & 0xFF]
    return bytes(out)


def _aes_cbc(key: bytes, data: bytes) -> bytes:
    """AES-CBC with a random IV in front and PKCS#7 padding (ISO 32000-1 §7.6.2, AESV2 and AESV3)."""
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(data) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return iv + encryptor.update(padded) + encryptor.finalize()


class _Seal:
    """Encrypts the strings and streams of the objects an incremental update appends to an encrypted
    PDF with the document's own key, which qpdf derives when the user password is empty. Nothing
    else about the encryption changes: the update's trailer points at the same ``/Encrypt``."""

    def __init__(self, pdf: pikepdf.Pdf) -> None:
        import pikepdf

        info = pdf.encryption
        self.key = bytes(info.encryption_key)
        # pikepdf's EncryptionMethod enum is not exported; its member names are stable.
        self.strings, self.streams = info.string_method.name, info.stream_method.name
        if info.V < 4:  # no crypt filters before V4: everything is RC4 (pikepdf then reports "none")
            self.strings = self.streams = "rc4"
        encrypt = pdf.trailer.get("/Encrypt")
        flag = encrypt.get("/EncryptMetadata") if isinstance(encrypt, pikepdf.Dictionary) else None
        self.metadata = not (isinstance(flag, bool) and not flag)
        supported = {"none", "rc4", "aes", "aesv3"}
        if not self.key or self.strings not in supported or self.streams not in supported:
            raise EncryptedPDFError("this PDF uses an encryption method aigclabel cannot write; it was left unchanged")

    def _apply(self, method: str, ref: tuple[int, int], data: bytes) -> bytes:
        if method == "none":
            return data
        if method == "aesv3":
            return _aes_cbc(self.key, data)  # AES-256 uses the file key itself (ISO 32000-2 §7.6.3.3)
        salt = b"sAlT" if method == "aes" else b""
        seed = self.key + ref[0].to_bytes(4, "little")[:3] + ref[1].to_bytes(2, "little") + salt
        key = hashlib.md5(seed, usedforsecurity=False).digest()[: min(len(self.key) + 5, 16)]
        return _aes_cbc(key, data) if salt else _rc4(key, data)

    def string(self, ref: tuple[int, int], data: bytes) -> bytes:
        """A hex string literal of ``data`` encrypted for object ``ref``."""
        return b"<" + self._apply(self.strings, ref, data).hex().encode() + b">"

    def stream(self, ref: tuple[int, int], data: bytes, metadata: bool) -> bytes:
        """Stream ``data`` encrypted for object ``ref`` (metadata stays clear with /EncryptMetadata false)."""
        return data if metadata and not self.metadata else self._apply(self.streams, ref, data)


def unparse(obj: Any, seal: _Seal | None, ref: tuple[int, int]) -> bytes:
    """``obj`` in PDF syntax, its strings encrypted for object ``ref`` when ``seal`` is given."""
    import pikepdf

    if isinstance(obj, pikepdf.Object) and obj.is_indirect:
        return b"%d %d R" % obj.objgen
    if seal is None and isinstance(obj, pikepdf.Object):
        return bytes(obj.unparse())
    if isinstance(obj, pikepdf.String):
        return seal.string(ref, bytes(obj)) if seal is not None else bytes(obj.unparse())
    if isinstance(obj, pikepdf.Dictionary):
        items = (pikepdf.Name(key).unparse() + b" " + unparse(obj.get(key), seal, ref) for key in obj.keys())  # noqa: SIM118
        return b"<< " + b" ".join(items) + b" >>"
    if isinstance(obj, pikepdf.Array):
        return b"[ " + b" ".join(unparse(item, seal, ref) for item in obj) + b" ]"
    return bytes(pikepdf.Array([obj]).unparse())[1:-1].strip()  # numbers, booleans, names, null


class IncrementalUpdate:
    """New versions of objects appended to a PDF as one incremental update (ISO 32000-1 §7.5.6).

    Finds the previous cross-reference section, allocates object numbers after ``/Size``, encrypts with
    the document key when the file is encrypted (:attr:`seal`), and serialises the objects with a
    cross-reference section of the previous one's kind (table or stream) whose trailer keeps
    ``/Root``, ``/ID`` and ``/Encrypt`` and chains with ``/Prev``. The caller writes the original bytes
    followed by :meth:`serialise`'s result.
    """

    def __init__(self, src: Path, pdf: pikepdf.Pdf) -> None:
        with open(src, "rb") as handle:
            self.size = file_size(handle)
            handle.seek(max(0, self.size - _TAIL))
            tail = handle.read()
            prev_matches = list(_STARTXREF.finditer(tail))
            if not prev_matches:
                raise TruncatedFileError("PDF has no startxref at its end (truncated?)")
            self.prev = int(prev_matches[-1].group(1))
            if self.prev >= self.size:
                raise MalformedFileError("PDF startxref points past the end of the file")
            handle.seek(self.prev)
            at_prev = handle.read(64)
        if at_prev.startswith(b"xref"):
            self.xref_stream = False
        elif _OBJ_HEADER.match(at_prev):
            self.xref_stream = True
        else:
            raise NeedsRepairError(
                "PDF cross-reference offset is damaged, so an incremental update would be unreliable: " + _REPAIR_HINT
            )
        self.newline = tail.endswith((b"\n", b"\r"))
        self.pdf = pdf
        self.seal = _Seal(pdf) if pdf.is_encrypted else None
        size_entry = pdf.trailer.get("/Size")
        self.next_num = int(size_entry) if isinstance(size_entry, int) else 1
        #: Object bodies (without ``obj``/``endobj``) by (number, generation).
        self.objects: dict[tuple[int, int], bytes] = {}

    def allocate(self) -> tuple[int, int]:
        """A fresh object number for a new object."""
        self.next_num += 1
        return self.next_num - 1, 0

    def serialise(self, info_ref: tuple[int, int] | None) -> bytes:
        """The update's bytes: :attr:`objects`, the cross-reference section and the trailer (``/Info``
        pointing at ``info_ref``)."""
        import pikepdf

        pdf, objects = self.pdf, self.objects
        self.next_num = max([self.next_num, *(num + 1 for num, _gen in objects)])
        trailer: list[bytes] = [b"/Root %d %d R" % pdf.Root.objgen]
        if info_ref is not None:
            trailer.append(b"/Info %d %d R" % info_ref)
        ident = pdf.trailer.get("/ID")
        if isinstance(ident, pikepdf.Array):
            trailer.append(b"/ID " + ident.unparse())
        if self.seal is not None:  # the same encryption dictionary (never itself encrypted)
            trailer.append(b"/Encrypt " + unparse(pdf.trailer.get("/Encrypt"), None, (0, 0)))
        trailer.append(b"/Prev %d" % self.prev)

        size = self.size
        out = bytearray(b"" if self.newline else b"\n")
        offsets: dict[tuple[int, int], int] = {}
        for ref in sorted(objects):
            offsets[ref] = size + len(out)
            out += b"%d %d obj\n" % ref + objects[ref] + b"\nendobj\n"
        if self.xref_stream:
            xref_ref = self.allocate()
            offsets[xref_ref] = size + len(out)
            out += _xref_stream(xref_ref, offsets, self.next_num, trailer)
        else:
            xref_at = size + len(out)
            out += _xref_table(offsets)
            out += b"trailer\n<< /Size %d " % self.next_num + b" ".join(trailer) + b" >>\n"
            out += b"startxref\n%d\n%%%%EOF\n" % xref_at
        return bytes(out)


@register
class PdfContainer(Container):
    """PDF documents, labelled by incremental update."""

    name = "pdf"
    description = "PDF document"
    extensions = (".pdf",)
    mime_type = "application/pdf"
    media = MediaKind.DOCUMENT
    primary_location = "Info dictionary /AIGC and XMP TC260:AIGC in the catalog /Metadata"
    mirrored_locations = frozenset({f"Info dictionary {INFO_KEY}", XMP_LOCATION})

    @classmethod
    def accept(cls, head: bytes, path: Path) -> bool:
        # The header may follow up to 1024 bytes of junk (ISO 32000-1 Annex H), as readers allow.
        return b"%PDF-" in head[:1024]

    # ------------------------------------------------------------------ reading
    def read(self, path: Path) -> list[FoundLabel]:
        with open_pdf(path) as pdf:
            found = _info_labels(pdf)
            _packet, values = _xmp_values(pdf)
            found.extend(FoundLabel.from_text(XMP_LOCATION, v) for v in values)
            return found

    # ------------------------------------------------------------------ incremental writing
    def rewrite(self, src: Path, dst: Path, label: AIGCLabel | None) -> None:
        update, check = self._appended(src, label)
        with open(src, "rb") as source, open(dst, "wb") as out:
            copy_rest(source, out)
            out.write(update)
        if update:
            check(dst)

    def plan_edit(self, path: Path, label: AIGCLabel | None) -> EditPlan | None:
        """The incremental update appended to the file itself: the same bytes :meth:`rewrite` adds
        after its copy, checked the same way (no new qpdf warning)."""
        update, check = self._appended(path, label)
        total = os.stat(path).st_size
        return EditPlan(((total, update),) if update else (), total + len(update), check if update else None)

    def _appended(self, src: Path, label: AIGCLabel | None) -> tuple[bytes, Callable[[Path], None]]:
        """The incremental update giving ``src`` ``label`` (``b""`` when it already has exactly that),
        and the check of a file carrying it."""
        value = label.to_json() if label is not None else None
        with open_pdf(src) as pdf:
            current = _info_labels(pdf)
            packet, xmp_values = _xmp_values(pdf)
            known = refuse_repaired(pdf, src)
            info_values = [f.raw for f in current]
            wanted = [value] if value is not None else []
            # Already exactly as asked: append nothing, so the file stays byte-identical.
            unchanged = info_values == wanted and xmp_values == wanted
            update = b"" if unchanged else self._update(src, pdf, value, packet)
            known += qpdf_warnings(pdf, src)
        return update, lambda written: _verify(written, value, known)

    def _update(self, src: Path, pdf: pikepdf.Pdf, value: str | None, packet: bytes | None) -> bytes:
        import pikepdf

        update = IncrementalUpdate(src, pdf)
        seal, allocate, objects = update.seal, update.allocate, update.objects

        # Info dictionary: a new version of the same object (or a new object if there was none).
        info = _info(pdf)
        info_ref: tuple[int, int] | None = None
        if info is not None or value is not None:
            copy = copy_dict(info) if info is not None else pikepdf.Dictionary()
            for key in list(copy.keys()):
                if _is_label_key(key):
                    del copy[key]
            info_ref = info.objgen if info is not None and info.is_indirect else allocate()
            update.next_num = max(update.next_num, info_ref[0] + 1)
            body = unparse(copy, seal, info_ref)
            if value is not None:
                literal = seal.string(info_ref, value.encode("ascii")) if seal is not None else _literal(value)
                body = body[:-2].rstrip() + b" " + INFO_KEY.encode() + b" " + literal + b" >>"
            objects[info_ref] = body

        # XMP: edit the packet losslessly and store it as a new version of the Metadata stream.
        meta = _metadata_stream(pdf)
        new_packet: bytes | None
        if value is not None:
            new_packet = xmp.set_aigc(packet, value)
        else:
            new_packet = xmp.remove_aigc(packet) if packet is not None else None
        root = pdf.Root
        if root.objgen[0] <= 0 or (meta is not None and meta.objgen[0] <= 0):
            raise MalformedFileError("PDF catalog or its metadata is not an indirect object")
        if meta is not None and packet is not None and new_packet != packet:
            if new_packet is None:  # nothing but our label was in it: unlink it from the catalog
                catalog = copy_dict(root)
                del catalog["/Metadata"]
                objects[root.objgen] = unparse(catalog, seal, root.objgen)
            else:
                objects[meta.objgen] = _stream_object(_sealed(seal, meta.objgen, new_packet))
        elif meta is None and new_packet is not None:
            meta_ref = allocate()
            objects[meta_ref] = _stream_object(_sealed(seal, meta_ref, new_packet))
            catalog = copy_dict(root)
            if "/Metadata" in catalog:
                del catalog["/Metadata"]
            body = unparse(catalog, seal, root.objgen)
            objects[root.objgen] = body[:-2].rstrip() + b" /Metadata %d %d R >>" % meta_ref

        return update.serialise(info_ref)

    # ------------------------------------------------------------------ full rewrite
    def write_full(self, src: Path, dst: Path, label: AIGCLabel) -> None:
        """Label by rewriting the whole file with pikepdf: older revisions (and any old label bytes)
        are dropped, and existing digital signatures are invalidated."""
        label.validate()
        self._full(Path(src), Path(dst), label.to_json())

    def strip_full(self, src: Path, dst: Path) -> None:
        """Remove the label and every earlier revision that contained it, by a full pikepdf rewrite."""
        self._full(Path(src), Path(dst), None)

    def repair(self, src: Path, dst: Path, label: AIGCLabel | None) -> None:
        """A damaged PDF rewritten whole by pikepdf after qpdf's repair (:meth:`write_full`)."""
        if label is not None:
            label.validate()
        self._full(Path(src), Path(dst), label.to_json() if label is not None else None)

    def _full(self, src: Path, dst: Path, value: str | None) -> None:
        import pikepdf

        with open_pdf(src) as pdf, atomic_output(dst, mode_from=src) as tmp:
            if pdf.is_encrypted:
                raise EncryptedPDFError(f"{src} is encrypted; labelling it would need its encryption key")
            info = _info(pdf)
            if info is not None:
                for key in list(info.keys()):
                    if _is_label_key(key):
                        del info[key]
            if value is not None:
                if info is None:
                    pdf.trailer.Info = pdf.make_indirect(pikepdf.Dictionary())
                    info = _info(pdf)
                    assert info is not None
                info[INFO_KEY] = pikepdf.String(value)
            packet, _values = _xmp_values(pdf)
            new_packet = (
                xmp.set_aigc(packet, value) if value is not None else xmp.remove_aigc(packet) if packet else None
            )
            if new_packet is None:
                if "/Metadata" in pdf.Root:
                    del pdf.Root["/Metadata"]
            elif new_packet != packet:
                stream = pikepdf.Stream(pdf, new_packet)
                stream.Type = pikepdf.Name.Metadata
                stream.Subtype = pikepdf.Name.XML
                pdf.Root.Metadata = pdf.make_indirect(stream)
            if "/Size" not in pdf.trailer:
                # qpdf writes the real /Size only over an existing key: without one (a repaired
                # trailer that lacked it) the output would be damaged the same way
                pdf.trailer.Size = 0
            pdf.save(tmp, fix_metadata_version=False)
            _verify(tmp, value)

    # ------------------------------------------------------------------ payload
    def payload_digest(self, path: Path) -> bytes:
        """SHA-256 over what is rendered: for each page in order, its boxes, rotation, decoded
        content streams, resources and annotations, walked canonically (dictionary keys sorted,
        indirect objects identified by first-visit order, not by object number). ``/Metadata``,
        ``/PieceInfo``, ``/LastModified`` and the Info dictionary are excluded, so labelling (even a
        full rewrite that renumbers objects or recompresses streams) leaves it unchanged."""
        digest = hashlib.sha256()
        with open_pdf(path) as pdf:
            _check_inflation(pdf)
            seen: dict[tuple[int, int], int] = {}
            for number, page in enumerate(pdf.pages):
                digest.update(b"page %d\n" % number)
                obj = page.obj
                for key in ("/MediaBox", "/CropBox", "/Rotate", "/UserUnit", "/Contents", "/Resources", "/Annots"):
                    value = obj.get(key)
                    if value is not None:
                        digest.update(key.encode())
                        _canonical(value, digest.update, seen, 0)
        return digest.digest()


#: Most bytes the payload digest may inflate over all Flate streams: a 0.5 MB PDF whose page content
#: inflates to 512 MiB cost 25-55 s and 1.1 GB before this bound. A page of text inflates to tens of KB.
MAX_DIGEST_INFLATE = 256 << 20


def _check_inflation(pdf: pikepdf.Pdf) -> None:
    """Raise :class:`LimitExceededError` when the Flate streams inflate past :data:`MAX_DIGEST_INFLATE`.

    pikepdf decodes a stream into one buffer, with no bound, so the sizes are counted first, in
    bounded chunks (damaged data stops the count: pikepdf then falls back to the raw bytes).
    """
    import pikepdf

    total = 0
    for obj in pdf.objects:
        if not isinstance(obj, pikepdf.Stream):
            continue
        filters = obj.stream_dict.get("/Filter")
        first = filters[0] if isinstance(filters, pikepdf.Array) and len(filters) else filters
        if first is None or str(first) != "/FlateDecode":
            continue
        inflater, data = zlib.decompressobj(), obj.read_raw_bytes()
        with contextlib.suppress(zlib.error):
            while data:
                total += len(inflater.decompress(data, COPY_CHUNK))
                if total > MAX_DIGEST_INFLATE:
                    raise LimitExceededError(f"PDF streams inflate past {MAX_DIGEST_INFLATE} bytes (flate bomb?)")
                data = inflater.unconsumed_tail


def _decoded_digest(stream: pikepdf.Stream) -> tuple[int, bytes]:
    """Length and SHA-256 of the stream's decoded data (generalized filters), as pikepdf decodes it.

    A plain Flate stream is inflated and hashed in bounded chunks: pikepdf would hold all of it,
    twice (its buffer and the Python copy).
    """
    import pikepdf

    filters = stream.stream_dict.get("/Filter")
    if str(filters) == "/FlateDecode" and "/DecodeParms" not in stream.stream_dict:
        inflater, data, digest, size = zlib.decompressobj(), stream.read_raw_bytes(), hashlib.sha256(), 0
        try:
            while data:
                out = inflater.decompress(data, COPY_CHUNK)
                digest.update(out)
                size += len(out)
                data = inflater.unconsumed_tail
            if inflater.eof:
                return size, digest.digest()
        except zlib.error:
            pass  # damaged or truncated: let pikepdf decide, as before
    try:
        decoded = stream.read_bytes(decode_level=pikepdf.StreamDecodeLevel.generalized)
    except pikepdf.PdfError:
        decoded = stream.read_raw_bytes()
    return len(decoded), hashlib.sha256(decoded).digest()


_SKIP_KEYS = frozenset({"/Metadata", "/PieceInfo", "/LastModified", "/Parent", "/P", "/Length", "/DL"})
_MAX_DEPTH = 64


def _canonical(obj: Any, feed: Callable[[bytes], object], seen: dict[tuple[int, int], int], depth: int) -> None:
    """Feed a renumbering-independent serialisation of ``obj`` (and what it references)."""
    import pikepdf

    if depth > _MAX_DEPTH:
        raise MalformedFileError("PDF object graph nests too deeply")
    if isinstance(obj, pikepdf.Object) and obj.is_indirect:
        ref = obj.objgen
        if ref in seen:
            feed(b"@%d" % seen[ref])
            return
        seen[ref] = len(seen)
    if isinstance(obj, pikepdf.Stream):
        feed(b"stream")
        _canonical_items(obj.stream_dict.items(), feed, seen, depth, stream=True)
        size, hashed = _decoded_digest(obj)
        feed(b"%d:" % size)
        feed(hashed)
    elif isinstance(obj, pikepdf.Dictionary):
        feed(b"<<")
        _canonical_items(obj.items(), feed, seen, depth, stream=False)
        feed(b">>")
    elif isinstance(obj, pikepdf.Array):
        feed(b"[")
        for item in obj:
            _canonical(item, feed, seen, depth + 1)
        feed(b"]")
    elif isinstance(obj, pikepdf.Object):
        feed(obj.unparse(resolved=True))
    else:
        feed(repr(obj).encode())
    feed(b";")


def _canonical_items(
    items: Iterable[tuple[str, Any]],
    feed: Callable[[bytes], object],
    seen: dict[tuple[int, int], int],
    depth: int,
    *,
    stream: bool,
) -> None:
    for key, value in sorted(items, key=lambda kv: kv[0]):
        if key in _SKIP_KEYS or (stream and key in ("/Filter", "/DecodeParms")):
            continue
        feed(key.encode())
        _canonical(value, feed, seen, depth + 1)


def _sealed(seal: _Seal | None, ref: tuple[int, int], packet: bytes) -> bytes:
    return seal.stream(ref, packet, metadata=True) if seal is not None else packet


def _stream_object(data: bytes) -> bytes:
    return b"<< /Type /Metadata /Subtype /XML /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


def _runs(numbers: list[int]) -> list[tuple[int, int]]:
    """Contiguous runs ``(first, count)`` of sorted object numbers."""
    runs: list[tuple[int, int]] = []
    for number in numbers:
        if runs and runs[-1][0] + runs[-1][1] == number:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((number, 1))
    return runs


def _xref_table(offsets: dict[tuple[int, int], int]) -> bytes:
    by_number = {num: (gen, off) for (num, gen), off in offsets.items()}
    out = bytearray(b"xref\n")
    for first, count in _runs(sorted(by_number)):
        out += b"%d %d\n" % (first, count)
        for number in range(first, first + count):
            gen, off = by_number[number]
            out += b"%010d %05d n\r\n" % (off, gen)
    return bytes(out)


def _xref_stream(ref: tuple[int, int], offsets: dict[tuple[int, int], int], size: int, trailer: list[bytes]) -> bytes:
    by_number = {num: (gen, off) for (num, gen), off in offsets.items()}
    width = max(4, (max(off for _g, off in by_number.values()).bit_length() + 7) // 8)
    runs = _runs(sorted(by_number))
    data = bytearray()
    for first, count in runs:
        for number in range(first, first + count):
            gen, off = by_number[number]
            data += b"\x01" + off.to_bytes(width, "big") + gen.to_bytes(2, "big")
    index = b" ".join(b"%d %d" % run for run in runs)
    head = b"<< /Type /XRef /Size %d /W [ 1 %d 2 ] /Index [ %s ] " % (size, width, index)
    head += b" ".join(trailer) + b" /Length %d >>" % len(data)
    body = b"%d %d obj\n" % ref + head + b"\nstream\n" + bytes(data) + b"\nendstream\nendobj\n"
    return body + b"startxref\n%d\n%%%%EOF\n" % offsets[ref]
