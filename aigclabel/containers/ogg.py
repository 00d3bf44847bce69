"""Ogg Vorbis, Opus, FLAC, Speex and Theora: the label is the comment entry ``AIGC=<json>``.

TC260-PG-202510A (appendix) puts the bare seven-field JSON in the stream's comment header
(``\\x03vorbis`` for Vorbis, ``OpusTags`` for Opus; the Vorbis-comment block for Ogg FLAC, the
second header packet for Speex, ``\\x81theora`` for Theora video). The source is streamed to the
temporary output and mutagen edits the copy: it repacks only the comment packet's pages and
renumbers the later pages of that logical stream (sequence numbers and CRCs change, page bodies
and granule positions do not), so every audio and video packet is unchanged. Other comments, the
vendor string and Opus/Vorbis comment padding stay.

The codec is taken from the first packet of the first page (in an Ogg video that is the Theora
stream, whose comment header players show as the file's tags; a Skeleton stream before it is
skipped); Ogg files starting with another stream (Dirac, Kate) are left to other containers. A
file cut short inside its last page (a recording that stopped; players play what is there) is
labelled too: mutagen copies that page as it is, and the digest counts what is there. In a
chained or multiplexed file only the first labellable logical stream is labelled and read.
"""

from __future__ import annotations

import hashlib
import importlib
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from .._io import MAX_METADATA_BYTES, read_exact
from ..errors import LimitExceededError, MalformedFileError, TruncatedFileError
from ..label import AIGCLabel
from . import Container, FoundLabel, MediaKind, register
from ._audio import parse_errors, rewrite_vorbis, vorbis_findings

#: First-packet signature -> (codec name, mutagen module and class, imported when a file is opened).
_CODECS: dict[bytes, tuple[str, str]] = {
    b"\x01vorbis": ("Vorbis", "oggvorbis.OggVorbis"),
    b"OpusHead": ("Opus", "oggopus.OggOpus"),
    b"\x7fFLAC": ("FLAC", "oggflac.OggFLAC"),
    b"Speex   ": ("Speex", "oggspeex.OggSpeex"),
    b"\x80theora": ("Theora", "oggtheora.OggTheora"),
}
#: Comment packets of codecs whose comment header is self-identifying.
_COMMENT_PACKETS = (b"\x03vorbis", b"OpusTags", b"\x81theora")


def _codec(head: bytes) -> tuple[str, str] | None:
    """The codec of the first logical stream we can label, from the beginning-of-stream pages that
    open every Ogg file (a Skeleton stream, which carries no comments, may come first)."""
    pos = 0
    while len(head) >= pos + 28 and head[pos : pos + 4] == b"OggS" and head[pos + 4] == 0 and head[pos + 5] & 0x02:
        lacing = head[pos + 27 : pos + 27 + head[pos + 26]]
        first = head[pos + 27 + head[pos + 26] :]
        for signature, codec in _CODECS.items():
            if first.startswith(signature):
                return codec
        if not first.startswith(b"fishead\0"):
            return None  # a stream we do not know (Dirac, Kate...) comes first: not ours to label
        pos += 27 + len(lacing) + sum(lacing)
    return None


def _pages(handle: BinaryIO) -> Iterator[tuple[int, int, list[int], bytes]]:
    """``(serial, granule, lacing values, body)`` of every page, checked for truncation."""
    while True:
        header = handle.read(27)
        if not header:
            return
        if len(header) < 27:
            raise TruncatedFileError("file ends inside an Ogg page header")
        magic, version, _flags, granule, serial, _seq, _crc, count = struct.unpack("<4sBBqIIIB", header)
        if magic != b"OggS" or version != 0:
            raise MalformedFileError(f"no Ogg page at offset {handle.tell() - 27}")
        lacing = list(read_exact(handle, count, "Ogg lacing table"))
        body = handle.read(sum(lacing))
        yield serial, granule, lacing, body
        if len(body) < sum(lacing):
            return  # a recording cut short inside its last page: what is there counts


def _audio_packets(handle: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """``(stream index, packet)`` for every packet that is not a comment/metadata header."""
    streams: dict[int, int] = {}
    counts: dict[int, int] = {}
    partial: dict[int, bytearray] = {}
    codec: dict[int, bytes] = {}
    for serial, _granule, lacing, body in _pages(handle):
        index = streams.setdefault(serial, len(streams))
        buffer = partial.setdefault(serial, bytearray())
        pos = 0
        for value in lacing:
            buffer += body[pos : pos + value]
            pos += value
            if len(buffer) > MAX_METADATA_BYTES:
                raise LimitExceededError(f"Ogg packet over {MAX_METADATA_BYTES} bytes")
            if value == 255:
                continue
            packet = bytes(buffer)
            buffer.clear()
            number = counts.get(serial, 0)
            counts[serial] = number + 1
            if number == 0:
                codec[serial] = packet[:8]
            kind = codec[serial]
            if packet.startswith(_COMMENT_PACKETS) or (kind == b"Speex   " and number == 1):
                continue
            if kind.startswith(b"\x7fFLAC"):
                if number == 0:
                    packet = packet[17:51]  # the STREAMINFO body; the mapping header counts blocks
                elif packet[:1] != b"\xff":
                    continue  # a metadata block, not an audio frame
            yield index, packet


@register
class Ogg(Container):
    """Ogg-encapsulated audio (Vorbis, Opus, FLAC, Speex) and Theora video."""

    name: ClassVar[str] = "ogg"
    description: ClassVar[str] = "Ogg audio/video"
    extensions: ClassVar[tuple[str, ...]] = (".ogg", ".oga", ".opus", ".spx", ".ogv")
    mime_type: ClassVar[str] = "audio/ogg"
    media: ClassVar[MediaKind] = MediaKind.AUDIO
    primary_location: ClassVar[str] = "Vorbis comment AIGC"

    @classmethod
    def accept(cls, head: bytes, path: Path) -> bool:
        """A beginning-of-stream Ogg page whose first packet is a Vorbis, Opus, FLAC, Speex or Theora header."""
        return _codec(head) is not None

    @staticmethod
    def _open(path: Path) -> tuple[str, Any]:
        with open(path, "rb") as handle:
            head = handle.read(512)
        found = _codec(head)
        if found is None:
            raise MalformedFileError(f"{path}: first Ogg page is not a Vorbis, Opus, FLAC, Speex or Theora header")
        name, kind = found
        module, cls = kind.split(".")
        return name, getattr(importlib.import_module(f"mutagen.{module}"), cls)(path)

    def read(self, path: Path) -> list[FoundLabel]:
        """Every ``*AIGC*=`` entry of the first stream's comment header."""
        with parse_errors(path, "Ogg stream"):
            name, audio = self._open(path)
            return vorbis_findings(audio.tags, f"{name} comment")

    def rewrite(self, src: Path, dst: Path, label: AIGCLabel | None) -> None:
        """Stream ``src`` to ``dst``, then let mutagen replace the comment packet of the copy."""
        rewrite_vorbis(src, dst, label, "Ogg stream", lambda path: self._open(path)[1])

    def payload_digest(self, path: Path) -> bytes:
        """SHA-256 over every packet except comment headers, each prefixed by its logical-stream
        index (order of first appearance, not the random serial) and its length (8 bytes little
        endian each). The identification and setup headers are included (a decoder needs them);
        for Ogg FLAC only the STREAMINFO body of the first packet is, plus the audio frames.
        Page headers (sequence numbers, CRCs, granule positions) and page boundaries are left out:
        the first two change whenever the comment packet is repacked.
        """
        digest = hashlib.sha256()
        with open(path, "rb") as handle, parse_errors(path, "Ogg stream"):
            for index, packet in _audio_packets(handle):
                digest.update(struct.pack("<QQ", index, len(packet)))
                digest.update(packet)
        return digest.digest()
