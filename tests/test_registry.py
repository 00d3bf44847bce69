"""The container registry: every format declares what the rest of the code chooses by (MIME type, media kind)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
from PIL import Image

from aigclabel import watermark
from aigclabel._media import VIDEO_OUTPUTS, claimed_by, media_of
from aigclabel.containers import (
    SIGNATURE_MODULES,
    SIGNATURE_PRIORITY,
    Container,
    MediaKind,
    container_for_mime,
    container_for_suffix,
    containers_of,
    registered,
)
from aigclabel.errors import UnsupportedFormatError
from aigclabel.explicit.audio import AUDIO_OUTPUTS
from aigclabel.explicit.text import TEXT_FORMAT_OF
from tests._video import AUDIO, ffmpeg
from tests.conftest import SAMPLES


@pytest.mark.parametrize("name", sorted(registered()))
def test_every_container_declares_mime_type_and_media(name: str) -> None:
    cls = registered()[name]
    declared = {key for klass in cls.__mro__ if klass is not Container for key in vars(klass)}
    assert {"name", "mime_type", "media", "extensions"} <= declared, f"{name} relies on a Container default"
    assert isinstance(cls.media, MediaKind)
    assert "/" in cls.mime_type and cls.mime_type == cls.mime_type.lower()
    assert cls.extensions and all(s.startswith(".") and s == s.lower() for s in cls.extensions)


def test_suffixes_and_mime_types_name_one_container_each() -> None:
    suffixes = [s for cls in registered().values() for s in cls.extensions]
    mimes = [cls.mime_type for cls in registered().values()]
    assert len(suffixes) == len(set(suffixes))
    assert len(mimes) == len(set(mimes))
    for name, cls in registered().items():
        assert container_for_mime(cls.mime_type) is cls
        assert all(container_for_suffix(s) is cls for s in cls.extensions), name


def test_lookups() -> None:
    assert container_for_suffix(".JPG") is registered()["jpeg"]
    assert container_for_suffix("m4a") is registered()["mp4"]
    assert container_for_suffix(".bmp") is None
    assert container_for_mime("IMAGE/PNG") is registered()["png"]
    assert container_for_mime("image/bmp") is None
    assert set(containers_of(MediaKind.AUDIO)) == {"wav", "flac", "mp3", "ogg"}
    assert {"pdf", "ooxml", "epub", "svg"} == set(containers_of(MediaKind.DOCUMENT))
    assert set().union(*(containers_of(kind) for kind in MediaKind)) == set(registered())


def test_signature_first_modules_hold_exactly_the_top_priority_containers() -> None:
    """``open_container`` tries the containers of SIGNATURE_MODULES before importing the other modules; the
    full scan tries them first too only if they are exactly the containers of the highest priority."""
    first = [cls for cls in registered().values() if cls.__module__.rpartition(".")[2] in SIGNATURE_MODULES]
    top = [cls for cls in registered().values() if cls.priority >= SIGNATURE_PRIORITY]
    assert first and set(first) == set(top)
    assert all(cls.priority == SIGNATURE_PRIORITY for cls in first)
    assert {cls.__module__.rpartition(".")[2] for cls in first} == set(SIGNATURE_MODULES)


@pytest.mark.parametrize("sample", sorted(p.name for p in SAMPLES.glob("sample.*")))
def test_a_claimed_sample_has_its_containers_media(sample: str) -> None:
    """The one media probe answers from the registry; an audio or video container's streams decide."""
    path = SAMPLES / sample
    container = claimed_by(path)
    assert container is not None, f"no container claims the bundled {sample}"
    assert media_of(path) is container.media


@pytest.mark.interop
def test_streams_and_content_decide_what_no_container_settles(tmp_path: Path) -> None:
    """MP4 without video is audio; a BMP (no container) is an image by Pillow; an HTML file that does not
    sniff as HTML is text by its suffix; bytes nothing decodes are nothing."""
    m4a = ffmpeg(tmp_path / "tone.m4a", *AUDIO, "-c:a", "aac")
    assert claimed_by(m4a) is registered()["mp4"] and media_of(m4a) is MediaKind.AUDIO
    bmp = tmp_path / "picture.bmp"
    Image.new("RGB", (8, 8), "red").save(bmp)
    assert claimed_by(bmp) is None and media_of(bmp) is MediaKind.IMAGE
    page = tmp_path / "notes.html"
    page.write_text("just words, no markup\n", encoding="utf-8")
    assert media_of(page) is MediaKind.TEXT
    noise = tmp_path / "noise.bin"
    noise.write_bytes(bytes(range(256)) * 4)
    assert media_of(noise) is None


#: Tables of per-format knowledge the registry cannot derive, and the media kind whose every container
#: each must list (an entry may say "not supported", but a new format cannot be missed silently).
PER_FORMAT_TABLES: list[tuple[str, Mapping[str, object], MediaKind]] = [
    ("watermark IMAGE_MARKED", watermark.IMAGE_MARKED, MediaKind.IMAGE),
    ("watermark TEXT_MARKED", watermark.TEXT_MARKED, MediaKind.TEXT),
    ("watermark AUDIO_OUTPUTS", watermark.AUDIO_OUTPUTS, MediaKind.AUDIO),
    ("VIDEO_OUTPUTS (watermark, visible label)", VIDEO_OUTPUTS, MediaKind.VIDEO),
    ("explicit.audio AUDIO_OUTPUTS", AUDIO_OUTPUTS, MediaKind.AUDIO),
    ("explicit.text TEXT_FORMAT_OF", TEXT_FORMAT_OF, MediaKind.TEXT),
]


@pytest.mark.parametrize(("table", "entries", "media"), PER_FORMAT_TABLES, ids=[t[0] for t in PER_FORMAT_TABLES])
def test_per_format_tables_list_every_container_of_their_media(
    table: str, entries: Mapping[str, object], media: MediaKind
) -> None:
    missing = set(containers_of(media)) - set(entries)
    assert not missing, f"{table} has no entry for {sorted(missing)}: add one (or declare it unsupported)"
    assert set(entries) <= set(registered()), f"{table} names a container that is not registered"
    for name, outputs in entries.items():
        if isinstance(outputs, dict):  # output tables: suffix -> how to write it, within the container's own
            assert set(outputs) <= set(registered()[name].extensions), f"{table}[{name}]"


def test_a_format_declared_unsupported_is_refused(tmp_path: Path) -> None:
    """GIF is an image the watermark does not mark (IMAGE_MARKED), HTML text it does not (TEXT_MARKED)."""
    for sample in ("sample.gif", "sample.html"):
        with pytest.raises(UnsupportedFormatError):
            watermark.embed_file(SAMPLES / sample, tmp_path / sample, "produce-1")
        assert not (tmp_path / sample).exists()


def test_detectors_and_c2pa_choose_formats_from_the_registry() -> None:
    """The verify detectors are called on containers by media kind; C2PA uses the container's MIME type."""
    from aigclabel.c2pa_manifest import _mime
    from aigclabel.explicit.detector import AUDIO_FORMATS, IMAGE_FORMATS, TEXT_FORMATS, VIDEO_FORMATS
    from aigclabel.watermark.detector import WATERMARK_FORMATS

    searched = IMAGE_FORMATS | VIDEO_FORMATS | AUDIO_FORMATS | TEXT_FORMATS
    media = (MediaKind.IMAGE, MediaKind.VIDEO, MediaKind.AUDIO, MediaKind.TEXT)
    assert searched == {name for kind in media for name in containers_of(kind)}
    assert not WATERMARK_FORMATS & {*containers_of(MediaKind.DOCUMENT), *containers_of(MediaKind.SCENE)}
    assert _mime(SAMPLES / "sample.heic") == registered()["heif"].mime_type
