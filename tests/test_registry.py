"""The container registry: every format declares what the rest of the code chooses by (MIME type, media kind)."""

from __future__ import annotations

import pytest

from aigclabel.containers import (
    Container,
    MediaKind,
    container_for_mime,
    container_for_suffix,
    containers_of,
    registered,
)


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
