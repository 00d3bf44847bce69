"""Hostile files made at test time (never committed): bombs, absurd declared sizes, parser traps.

Each builder returns the file's bytes; ``scale`` lets tests use a small bomb that already trips a
limit while ``bench/hostile.py`` builds the full-size one from the issue report.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mutagen.ogg import OggPage
from PIL import Image, PngImagePlugin

from aigclabel import AIGCLabel
from aigclabel.xmp import new_packet

SAMPLES = Path(__file__).resolve().parent.parent / "aigclabel" / "samples"
LABEL_JSON = AIGCLabel.for_producer("001191110000MA00DEMQ0B1DEMO", "hostile").to_json()


def _xmp_with_whitespace(spaces: int) -> bytes:
    """A labelled XMP packet with a run of ``spaces`` blanks inside its rdf:Description."""
    packet = new_packet(LABEL_JSON).decode()
    at = packet.index("<TC260:AIGC>")
    return (packet[:at] + " " * spaces + packet[at:]).encode()


def xmp_whitespace_jpeg(spaces: int = 64_000) -> bytes:
    """The sample JPEG with an APP1 XMP segment holding ``spaces`` blanks (at most one segment)."""
    body = b"http://ns.adobe.com/xap/1.0/\0" + _xmp_with_whitespace(spaces)
    if len(body) + 2 > 0xFFFF:
        raise ValueError("one APP1 segment holds at most 65,533 bytes")
    data = (SAMPLES / "sample.jpg").read_bytes()
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + data[2:]


def xmp_whitespace_png(spaces: int = 15 << 20) -> bytes:
    """A small PNG whose iTXt XMP packet holds ``spaces`` blanks."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", _xmp_with_whitespace(spaces).decode(), zip=True)
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(out, "PNG", pnginfo=info)
    return out.getvalue()


def png_pixel_flood(side: int = 7000) -> bytes:
    """A flat ``side`` x ``side`` RGB PNG: about 140 KB declaring ``side``² pixels."""
    out = io.BytesIO()
    Image.new("RGB", (side, side), (90, 120, 150)).save(out, "PNG", optimize=False, compress_level=9)
    return out.getvalue()


def png_huge_dimensions(side: int = 20_000) -> bytes:
    """A 16x16 PNG whose IHDR claims ``side`` x ``side`` pixels (over every decode limit)."""
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(out, "PNG")
    data = bytearray(out.getvalue())
    struct.pack_into(">II", data, 16, side, side)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def png_text_bomb(inflated: int = 64 << 20) -> bytes:
    """A small PNG with a zTXt chunk that inflates to ``inflated`` bytes (over Pillow's text limit)."""
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(out, "PNG")
    data = out.getvalue()
    body = b"Comment\0\0" + _deflate_zeros(inflated)
    chunk = struct.pack(">I", len(body)) + b"zTXt" + body + struct.pack(">I", zlib.crc32(b"zTXt" + body))
    return data[:33] + chunk + data[33:]


def _deflate_zeros(size: int, *, raw: bool = False) -> bytes:
    """A deflate stream of ``size`` zero bytes, built from one repeated full-flush block (fast at GiB sizes)."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15 if raw else 15)
    block = 1 << 20
    chunk = bytes(block)
    head = deflater.compress(chunk) + deflater.flush(zlib.Z_FULL_FLUSH)
    repeat = deflater.compress(chunk) + deflater.flush(zlib.Z_FULL_FLUSH)
    count, rest = divmod(size, block)
    parts = [head, repeat * max(count - 1, 0)] if count else []
    tail = deflater.compress(bytes(rest)) + deflater.flush()
    stream = b"".join(parts) + tail
    if not raw:  # the zlib trailer's Adler-32 of zeros: recompute over the real length
        adler = 1
        for start in range(0, size, block):
            adler = zlib.adler32(bytes(min(block, size - start)), adler)
        stream = stream[:-4] + struct.pack(">I", adler)
    return stream


def _crc_of_zeros(size: int) -> int:
    crc, block = 0, bytes(1 << 20)
    for start in range(0, size, len(block)):
        crc = zlib.crc32(block[: min(len(block), size - start)], crc)
    return crc


def mp3_id3_zlib_bomb(inflated: int = 1 << 30) -> bytes:
    """The sample MP3 behind an ID3v2.4 tag whose compressed PRIV frame inflates to ``inflated`` bytes."""
    payload = _deflate_zeros(inflated)
    body = struct.pack(">I", inflated) + payload  # data length indicator, then the zlib stream
    size = _synchsafe(len(body))
    frame = b"PRIV" + size + b"\x00\x09" + body  # flags: compression + data length indicator
    tag = b"ID3\x04\x00\x00" + _synchsafe(len(frame)) + frame
    return tag + _audio_of(SAMPLES / "sample.mp3")


def _synchsafe(value: int) -> bytes:
    return bytes(((value >> shift) & 0x7F) for shift in (21, 14, 7, 0))


def _audio_of(mp3: Path) -> bytes:
    """The MPEG frames of ``mp3`` without its leading ID3v2 tag."""
    data = mp3.read_bytes()
    if data[:3] == b"ID3":
        size = 10 + sum(b << (7 * (3 - i)) for i, b in enumerate(data[6:10]))
        data = data[size:]
    return data


def mp3_stacked_tags(count: int = 2000) -> bytes:
    """``count`` empty ID3v2.3 tags stacked before the sample's audio."""
    tag = b"ID3\x03\x00\x00" + _synchsafe(16) + bytes(16)
    return tag * count + _audio_of(SAMPLES / "sample.mp3")


def flac_vendor_length() -> bytes:
    """The sample FLAC with a VORBIS_COMMENT block whose vendor length says 0xFFFFFFFF."""
    data = (SAMPLES / "sample.flac").read_bytes()
    pos = 4
    out = bytearray(data[:4])
    while True:
        header = data[pos]
        size = int.from_bytes(data[pos + 1 : pos + 4], "big")
        last = header & 0x80
        if header & 0x7F != 4:  # keep every block but the comment
            out += bytes([header & 0x7F]) + data[pos + 1 : pos + 4 + size]
        pos += 4 + size
        if last:
            break
    body = struct.pack("<I", 0xFFFFFFFF) + b"x" * 64
    out += bytes([0x80 | 4]) + len(body).to_bytes(3, "big") + body
    return bytes(out) + data[pos:]


def speex_rate_zero() -> bytes:
    """An Ogg Speex stream whose header declares a sample rate of 0 (mutagen divides by it)."""
    header = bytearray(80)
    header[:8] = b"Speex   "
    header[8:28] = b"1.2.0".ljust(20, b"\0")
    struct.pack_into("<iiiiiiiiiiiii", header, 28, 1, 80, 0, 1, 4, 1, -1, 320, 0, 1, 0, 0, 0)
    comment = struct.pack("<I", 7) + b"hostile" + struct.pack("<I", 0)
    pages = []
    for seq, (packet, position) in enumerate(((bytes(header), 0), (comment, 0), (b"\x00" * 40, 320))):
        page = OggPage()
        page.serial, page.sequence, page.position = 1234, seq, position
        page.first, page.last = seq == 0, seq == 2
        page.packets = [packet]
        pages.append(page.write())
    return b"".join(pages)


def ebml_huge_doctype() -> bytes:
    """A Matroska EBML header whose DocType element declares 1 GiB of text."""
    doctype = b"\x42\x82" + b"\x01" + (1 << 30).to_bytes(7, "big") + b"webm"  # 8-byte size vint
    header = b"\x1a\x45\xdf\xa3" + bytes([0x80 | len(doctype)]) + doctype
    return header + bytes(64)


def docx_zero_member(inflated: int = 0xFFFF0000, docx: Path = SAMPLES / "sample.docx") -> bytes:
    """``docx`` plus a member ``word/media/zero.bin`` of ``inflated`` zero bytes (deflated, ~1/1000 the size)."""
    return _zip_append(docx.read_bytes(), "word/media/zero.bin", _deflate_zeros(inflated, raw=True),
                       _crc_of_zeros(inflated), inflated)  # fmt: skip


def docx_two_custom(first: str = '"Label":"1"', second: str = '"Label":"3"') -> bytes:
    """The sample DOCX labelled, then given a second ``docProps/custom.xml`` member with another Label."""
    import tempfile

    from aigclabel import api

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "doc.docx"
        path.write_bytes((SAMPLES / "sample.docx").read_bytes())
        api.write_label(path, AIGCLabel.for_producer("001191110000MA00DEMQ0B1DEMO", "first"))
        data = path.read_bytes()
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        custom = archive.read("docProps/custom.xml")
    other = custom.replace(b"&quot;Label&quot;:&quot;1&quot;", b"&quot;Label&quot;:&quot;3&quot;")
    if other == custom:
        other = custom.replace(first.encode(), second.encode())
    assert other != custom, "the second member must carry another Label"
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = deflater.compress(other) + deflater.flush()
    return _zip_append(data, "docProps/custom.xml", body, zlib.crc32(other), len(other))


def _zip_append(data: bytes, name: str, deflated: bytes, crc: int, size: int) -> bytes:
    """``data`` (a ZIP without comment) with one more deflated member appended before its central directory."""
    eocd = data.rindex(b"PK\x05\x06")
    _, _, _, _, count, cd_size, cd_offset, _ = struct.unpack_from("<4s4H2LH", data, eocd)
    raw = name.encode()
    offset = cd_offset
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0x21, crc, len(deflated), size, len(raw), 0)
    central = struct.pack(
        "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0x21, crc, len(deflated), size, len(raw), 0, 0, 0, 0, 0, offset
    )
    cd = data[cd_offset : cd_offset + cd_size] + central + raw
    new_cd_offset = offset + len(local) + len(raw) + len(deflated)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count + 1, count + 1, len(cd), new_cd_offset, 0)
    return data[:cd_offset] + local + raw + deflated + cd + end


def pdf_flate_bomb(inflated: int = 512 << 20) -> bytes:
    """The sample PDF whose first page's content stream inflates to ``inflated`` zero bytes."""
    import pikepdf

    with pikepdf.open(SAMPLES / "sample.pdf") as pdf:
        stream = pikepdf.Stream(pdf, b"")
        stream.write(_deflate_zeros(inflated), filter=pikepdf.Name.FlateDecode)
        pdf.pages[0].obj.Contents = pdf.make_indirect(stream)
        out = io.BytesIO()
        pdf.save(out)
    return out.getvalue()


def surrogate_label_png() -> bytes:
    """The sample PNG labelled with JSON whose ContentProducer holds a lone surrogate escape."""
    text = LABEL_JSON.replace('"ContentProducer":"', '"ContentProducer":"\\ud800')
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", new_packet(text).decode(), zip=False)
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 20, 30)).save(out, "PNG", pnginfo=info)
    return out.getvalue()


@dataclass(frozen=True)
class Hostile:
    """One hostile case: a file name (its suffix picks the format for text formats) and its bytes."""

    name: str
    build: Callable[[], bytes]


#: The cases of the issue report, at the sizes it gives (bench) — tests pass smaller scales.
FULL_SIZE: tuple[Hostile, ...] = (
    Hostile("speex-rate-0.spx", speex_rate_zero),
    Hostile("xmp-spaces.jpg", xmp_whitespace_jpeg),
    Hostile("xmp-spaces.png", xmp_whitespace_png),
    Hostile("id3-zlib-bomb.mp3", mp3_id3_zlib_bomb),
    Hostile("pixel-flood.png", png_pixel_flood),
    Hostile("ztxt-bomb.png", png_text_bomb),
    Hostile("huge-dimensions.png", png_huge_dimensions),
    Hostile("zero-member.docx", docx_zero_member),
    Hostile("vendor-length.flac", flac_vendor_length),
    Hostile("stacked-id3.mp3", mp3_stacked_tags),
    Hostile("huge-doctype.webm", ebml_huge_doctype),
    Hostile("two-custom.docx", docx_two_custom),
    Hostile("flate-bomb.pdf", pdf_flate_bomb),
    Hostile("surrogate.png", surrogate_label_png),
)
