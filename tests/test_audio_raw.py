"""The raw fast paths of the audio tag readers and the FLAC in-place plan agree with mutagen.

ID3v2 tags and FLAC comment blocks that need no special handling are read (and FLAC's comment
re-rendered) without mutagen; anything unusual goes to mutagen. Each case here is built byte by
byte, read by our reader, and compared with what mutagen itself reads from the same bytes.
"""

from __future__ import annotations

import io
import itertools
import struct
from pathlib import Path

import mutagen.flac
import mutagen.id3
import pytest

from aigclabel import AIGCLabel
from aigclabel.api import read_label, write_label_how
from aigclabel.containers import open_container
from aigclabel.containers._audio import id3_findings
from tests._video import ffmpeg

LABEL = AIGCLabel.for_producer("001191440300708461136T1XGW3", "0123456789abcdef0123456789abcdef")
JSON = LABEL.to_json().encode()


def _syncsafe(value: int) -> bytes:
    return bytes((value >> shift) & 0x7F for shift in (21, 14, 7, 0))


def _id3(major: int, frames: list[tuple[bytes, bytes]]) -> bytes:
    size = (lambda n: _syncsafe(n)) if major == 4 else (lambda n: n.to_bytes(4, "big"))
    body = b"".join(fid + size(len(data)) + b"\0\0" + data for fid, data in frames) + bytes(32)
    return b"ID3" + bytes([major, 0, 0]) + _syncsafe(len(body)) + body


_TXXX = [
    b"\0AIGC\0" + JSON,
    b"\0AIGC\0" + JSON + b"\0",
    b"\0AIGC\0",
    b"\3aigc_x\0" + JSON + b"\0" + JSON,
    b"\3AIGC\0\xff\xfe",
    b"\1\xff\xfeA\0I\0G\0C\0\0\0" + JSON.decode().encode("utf-16-le"),
    b"\0other\0hello",
    b"\3\xc3\xa9AIGC\0" + JSON,
]


def _mutagen_id3(data: bytes) -> list[tuple[str, str]]:
    tags = mutagen.id3.ID3(io.BytesIO(data), translate=False, load_v1=False)
    return [
        (f"ID3v2.{tags.version[1]} TXXX:{frame.desc}", str(text))
        for frame in tags.values()
        if frame.FrameID == "TXXX" and "aigc" in frame.desc.lower()
        for text in frame.text
    ]


@pytest.mark.parametrize("major", [3, 4])
def test_id3_labels_read_as_mutagen_reads_them(major: int) -> None:
    for combo in itertools.chain.from_iterable(itertools.product(_TXXX, repeat=k) for k in (1, 2)):
        data = _id3(major, [(b"TIT2", b"\0Title"), *((b"TXXX", body) for body in combo)])
        ours = [(found.location, found.raw) for found in id3_findings(data, "")]
        assert ours == _mutagen_id3(data), combo


def _block(kind: int, body: bytes, last: bool = False) -> bytes:
    return bytes([kind | (0x80 if last else 0)]) + len(body).to_bytes(3, "big") + body


def _comment(entries: list[bytes], extra: bytes = b"") -> bytes:
    vendor = b"Lavf60"
    items = b"".join(struct.pack("<I", len(e)) + e for e in entries)
    return struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", len(entries)) + items + extra


def _picture(data: bytes) -> bytes:
    mime, desc = b"image/png", b"cover"
    return (
        struct.pack(">II", 3, len(mime)) + mime + struct.pack(">I", len(desc)) + desc + bytes(16)
        + struct.pack(">I", len(data)) + data
    )  # fmt: skip


_ENTRIES = [b"AIGC=" + JSON, b"aigc_x=" + JSON, b"TITLE=x", b"noequals", b"AI\xc3\xa9GC=1", b"AIGC=\xff", b"AIGC\x7f=1"]


@pytest.fixture(scope="module")
def flac_parts(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """STREAMINFO body and the audio frames of a short FLAC made by ffmpeg."""
    path = ffmpeg(tmp_path_factory.mktemp("flac") / "tone.flac", "-f", "lavfi", "-i", "sine=duration=0.5")
    data = path.read_bytes()
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0
    pos = 4
    while True:
        last, length = data[pos] & 0x80, int.from_bytes(data[pos + 1 : pos + 4], "big")
        pos += 4 + length
        if last:
            return data[8:42], data[pos:]


def _layouts(streaminfo: bytes, entries: list[bytes]) -> list[list[bytes]]:
    return [
        [_block(0, streaminfo), _block(4, _comment(entries)), _block(1, bytes(512), True)],
        [_block(0, streaminfo), _block(3, bytes(18)), _block(4, _comment(entries)), _block(6, _picture(b"png")),
         _block(1, bytes(64), True)],
        [_block(0, streaminfo), _block(4, _comment(entries)), _block(4, _comment([_ENTRIES[0]])),
         _block(1, bytes(8), True)],
        [_block(0, streaminfo), _block(1, bytes(8)), _block(4, _comment(entries, b"zz"), True)],  # overflowing
    ]  # fmt: skip


def _mutagen_flac(path: Path) -> list[tuple[str, str]]:
    tags = mutagen.flac.FLAC(path).tags
    return [(f"Vorbis comment {key}", value) for key, value in (tags or []) if "aigc" in key.lower()]


@pytest.mark.interop  # ffmpeg makes the audio frames
def test_flac_labels_read_as_mutagen_reads_them(flac_parts: tuple[bytes, bytes], tmp_path: Path) -> None:
    streaminfo, audio = flac_parts
    path = tmp_path / "case.flac"
    for combo in itertools.chain.from_iterable(itertools.product(_ENTRIES, repeat=k) for k in (0, 1, 2)):
        for layout in _layouts(streaminfo, list(combo)):
            path.write_bytes(b"fLaC" + b"".join(layout) + audio)
            ours = [(found.location, found.raw) for found in open_container(path).read(path)]
            assert ours == _mutagen_flac(path), combo


@pytest.mark.interop
def test_flac_in_place_label_keeps_every_other_byte(flac_parts: tuple[bytes, bytes], tmp_path: Path) -> None:
    """The comment is re-rendered raw: other entries (even ones mutagen would rename or drop), the
    SEEKTABLE and PICTURE blocks and the audio keep their bytes; the padding absorbs the growth."""
    streaminfo, audio = flac_parts
    keep = [b"TITLE=x", b"noequals", b"AIGC\x7f=1"]
    picture = _block(6, _picture(b"png"))
    before = [_block(0, streaminfo), _block(3, bytes(18)), _block(4, _comment([*keep, b"aigc_old=1"]))]
    path = tmp_path / "roomy.flac"
    path.write_bytes(b"fLaC" + b"".join(before) + picture + _block(1, bytes(1024), True) + audio)
    size = path.stat().st_size
    assert write_label_how(path, LABEL) == "in-place"
    comment = _block(4, _comment([*keep, b"AIGC=" + JSON]))
    growth = len(comment) - len(before[2])
    expected = b"fLaC" + b"".join(before[:2]) + comment + picture + _block(1, bytes(1024 - growth), True) + audio
    assert path.stat().st_size == size and path.read_bytes() == expected
    assert read_label(path) == LABEL
    assert _mutagen_flac(path) == [("Vorbis comment AIGC", JSON.decode())]
    assert mutagen.flac.FLAC(path).pictures[0].data == b"png"
