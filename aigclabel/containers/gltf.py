"""glTF 2.0 scenes (virtual scenes, GB 45438 §5.5): the label in ``asset.extras.AIGC``.

No TC260 guide names a glTF placement ([UNCONFIRMED] in our digest). glTF 2.0 §5.3 gives every object an
``extras`` member for application data, and ``asset`` is the one object every file must have, so the
label sits at ``asset.extras.AIGC`` as the Annex E JSON text, a *string*, not a nested object. A string
keeps the exact bytes every other container stores, and with them the field order the standard fixes,
through glTF tools that re-serialise objects in their own key order. A label another tool stored as a
nested object is still read.

Editing is surgical: the JSON is scanned for the spans of ``asset``, its ``extras`` and the ``AIGC``
member, and only those bytes change. Numbers, whitespace, key order and every other member stay as they
were, and write-then-strip gives the original bytes back. In a ``.glb`` only the JSON chunk is rebuilt
(padded with spaces, as glTF requires); the binary chunk and anything after it are copied byte for byte,
so buffers are untouched. The payload digest covers the JSON without the label plus every other chunk:
what a renderer draws. A ``.gltf`` file's external buffers and images are separate files, outside it.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .._io import copy_rest, file_size, read_exact
from ..errors import LimitExceededError, MalformedFileError, UnsupportedFormatError, WriteNotSupportedError
from ..label import AIGCLabel
from . import Container, FoundLabel, MediaKind, register

#: Largest glTF JSON (a ``.gltf`` file or a GLB JSON chunk) edited in memory; data URIs make some large.
MAX_JSON_BYTES = 256 << 20
#: The member of ``asset.extras`` holding the label.
LABEL_KEY = "AIGC"
_GLB_MAGIC = b"glTF"
_CHUNK_JSON = 0x4E4F534A
_HEADER = struct.Struct("<4sII")
_CHUNK = struct.Struct("<II")
_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class _Member:
    """One ``"key": value`` member of a JSON object, as character offsets into the text."""

    key: str
    start: int
    value_start: int
    value_end: int


def _skip(text: str, at: int) -> int:
    match = _WS.match(text, at)
    return match.end() if match else at


def _members(text: str, start: int, what: str) -> list[_Member]:
    """The members of the JSON object whose ``{`` is at ``start``."""
    if text[start : start + 1] != "{":
        raise MalformedFileError(f"glTF {what} is not a JSON object")
    members: list[_Member] = []
    at = _skip(text, start + 1)
    if text[at : at + 1] == "}":
        return members
    while True:
        if text[at : at + 1] != '"':
            raise MalformedFileError(f"glTF JSON: a key was expected in {what} at character {at}")
        try:
            key, after_key = _DECODER.raw_decode(text, at)
            colon = _skip(text, after_key)
            if text[colon : colon + 1] != ":":
                raise MalformedFileError(f"glTF JSON: ':' expected in {what} at character {colon}")
            value_start = _skip(text, colon + 1)
            _value, value_end = _DECODER.raw_decode(text, value_start)
        except json.JSONDecodeError as exc:
            raise MalformedFileError(f"glTF JSON is not valid in {what}: {exc}") from None
        members.append(_Member(key, at, value_start, value_end))
        at = _skip(text, value_end)
        if text[at : at + 1] == ",":
            at = _skip(text, at + 1)
        elif text[at : at + 1] == "}":
            return members
        else:
            raise MalformedFileError(f"glTF JSON: ',' or '}}' expected in {what} at character {at}")


def _last(members: list[_Member], key: str) -> _Member | None:
    """The member JSON parsers use when a key repeats: the last one."""
    return next((m for m in reversed(members) if m.key == key), None)


def _removal(text: str, members: list[_Member], index: int) -> tuple[int, int]:
    """The span that removes member ``index`` together with one separating comma (the whitespace
    around the next member stays, so removing what :func:`with_label` inserted restores every byte)."""
    member = members[index]
    if index + 1 < len(members):
        return member.start, _skip(text, member.value_end) + 1
    if index > 0:
        return members[index - 1].value_end, member.value_end
    return member.start, member.value_end


def _asset_and_extras(text: str) -> tuple[_Member, list[_Member], _Member | None, list[_Member]]:
    top = _members(text, _skip(text, 1 if text.startswith("\ufeff") else 0), "document")
    asset = _last(top, "asset")
    if asset is None:
        raise MalformedFileError("glTF has no asset object (glTF 2.0 requires one)")
    asset_members = _members(text, asset.value_start, "asset")
    extras = _last(asset_members, "extras")
    if extras is None or text[extras.value_start : extras.value_start + 1] != "{":
        return asset, asset_members, extras, []
    return asset, asset_members, extras, _members(text, extras.value_start, "asset.extras")


def labels_in(text: str, location: str) -> list[FoundLabel]:
    """Every ``AIGC`` member of ``asset.extras`` in a glTF JSON text."""
    extras_members = _asset_and_extras(text)[3]
    found: list[FoundLabel] = []
    for member in extras_members:
        if member.key == LABEL_KEY:
            value = json.loads(text[member.value_start : member.value_end])
            raw = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            found.append(FoundLabel.from_text(location, raw))
    return found


def with_label(text: str, label: AIGCLabel | None) -> str:
    """``text`` with ``label`` as the only ``asset.extras.AIGC`` (``None``: none), every other byte kept."""
    asset, asset_members, extras, extras_members = _asset_and_extras(text)
    if extras is not None and text[extras.value_start : extras.value_start + 1] != "{":
        raise WriteNotSupportedError("glTF asset.extras is not a JSON object, so it cannot take the label")
    member = f'"{LABEL_KEY}":' + json.dumps(label.to_json(), ensure_ascii=False) if label else ""
    ours = [i for i, m in enumerate(extras_members) if m.key == LABEL_KEY]
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement), applied from the end
    if extras is None:
        if label is not None:
            comma = "," if asset_members else ""
            edits.append((asset.value_start + 1, asset.value_start + 1, '"extras":{' + member + "}" + comma))
    elif label is None and len(ours) == len(extras_members) and ours:
        start, end = _removal(text, asset_members, asset_members.index(extras))  # extras held only the label
        edits.append((start, end, ""))
    else:
        drop = ours[1:] if label is not None else ours
        for index in drop:
            start, end = _removal(text, extras_members, index)
            edits.append((start, end, ""))
        if label is not None and ours:
            first = extras_members[ours[0]]
            edits.append((first.start, first.value_end, member))
        elif label is not None:
            comma = "," if extras_members else ""
            edits.append((extras.value_start + 1, extras.value_start + 1, member + comma))
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text


def _decode(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedFileError(f"{what} is not UTF-8 (glTF 2.0 requires it): {exc}") from None


def _digest_json(text: str) -> bytes:
    return hashlib.sha256(with_label(text, None).encode("utf-8")).digest()


@register
class GltfContainer(Container):
    """A glTF 2.0 scene as JSON text (``.gltf``)."""

    name = "gltf"
    description = "glTF 2.0 scene (JSON)"
    extensions = (".gltf",)
    mime_type = "model/gltf+json"
    media = MediaKind.SCENE
    primary_location = "glTF asset.extras.AIGC"

    @classmethod
    def accept(cls, head: bytes, path: Path) -> bool:
        """A ``.gltf`` file that starts like a JSON object."""
        return path.suffix.lower() == ".gltf" and head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{"

    @staticmethod
    def _text(path: Path) -> str:
        with path.open("rb") as handle:
            size = file_size(handle)
            if size > MAX_JSON_BYTES:
                raise LimitExceededError(f"glTF JSON of {size} bytes is over the {MAX_JSON_BYTES} byte limit")
            return _decode(handle.read(), "glTF JSON")

    def read(self, path: Path) -> list[FoundLabel]:
        """The label in ``asset.extras``."""
        return labels_in(self._text(path), self.primary_location)

    def rewrite(self, src: Path, dst: Path, label: AIGCLabel | None) -> None:
        """The same text with only the label member changed."""
        write_scene_json(src, dst, lambda text: with_label(text, label))

    def payload_digest(self, path: Path) -> bytes:
        """SHA-256 of the JSON without the label (external buffers are files of their own)."""
        return _digest_json(self._text(path))


@register
class GlbContainer(Container):
    """A binary glTF 2.0 scene (``.glb``): header, JSON chunk, binary chunk."""

    name = "glb"
    description = "glTF 2.0 binary scene (GLB)"
    extensions = (".glb",)
    mime_type = "model/gltf-binary"
    media = MediaKind.SCENE
    primary_location = "GLB JSON chunk asset.extras.AIGC"
    priority = 10  # four magic bytes: cheap and unambiguous

    @classmethod
    def accept(cls, head: bytes, path: Path) -> bool:
        """Files starting with the ``glTF`` magic."""
        return head[:4] == _GLB_MAGIC

    @staticmethod
    def _json(handle: BinaryIO) -> tuple[str, int]:
        """The JSON chunk's text and the declared total length, after checking the header."""
        magic, version, length = _HEADER.unpack(read_exact(handle, _HEADER.size, "GLB header"))
        if magic != _GLB_MAGIC:
            raise MalformedFileError("not a GLB file (no glTF magic)")
        if version != 2:
            raise UnsupportedFormatError(f"GLB version {version} (only glTF 2.0 binary files are handled)")
        if length > file_size(handle):
            raise MalformedFileError(f"GLB header declares {length} bytes but the file has {file_size(handle)}")
        size, kind = _CHUNK.unpack(read_exact(handle, _CHUNK.size, "GLB chunk header"))
        if kind != _CHUNK_JSON:
            raise MalformedFileError("GLB's first chunk is not its JSON chunk")
        if size > MAX_JSON_BYTES:
            raise LimitExceededError(f"GLB JSON chunk of {size} bytes is over the {MAX_JSON_BYTES} byte limit")
        data = handle.read(size)
        if len(data) != size:
            raise MalformedFileError("GLB file ends inside its JSON chunk")
        return _decode(data.rstrip(b" \x00"), "GLB JSON chunk"), length

    def read(self, path: Path) -> list[FoundLabel]:
        """The label in the JSON chunk's ``asset.extras``."""
        with path.open("rb") as handle:
            text, _length = self._json(handle)
        return labels_in(text, self.primary_location)

    def rewrite(self, src: Path, dst: Path, label: AIGCLabel | None) -> None:
        """A new JSON chunk, then every later byte copied as it was."""
        write_scene_json(src, dst, lambda text: with_label(text, label))

    def payload_digest(self, path: Path) -> bytes:
        """SHA-256 of the JSON without the label, then of every byte after the JSON chunk."""
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            text, _length = self._json(handle)
            digest.update(_digest_json(text))
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        return digest.digest()


def read_scene_json(path: Path) -> str:
    """The glTF JSON of a ``.gltf`` or ``.glb`` file."""
    with path.open("rb") as handle:
        if handle.read(4) == _GLB_MAGIC:
            handle.seek(0)
            return GlbContainer._json(handle)[0]
    return GltfContainer._text(path)


def write_scene_json(src: Path, dst: Path, edit: Callable[[str], str]) -> None:
    """Write ``src`` to the new file ``dst`` with its glTF JSON passed through ``edit``; in a GLB the JSON
    chunk is rebuilt (space-padded) and every later byte copied as it was."""
    with src.open("rb") as handle, dst.open("wb") as out:
        if handle.read(4) != _GLB_MAGIC:
            out.write(edit(GltfContainer._text(src)).encode("utf-8"))
            return
        handle.seek(0)
        text, length = GlbContainer._json(handle)
        old_chunk = handle.tell() - _HEADER.size
        data = edit(text).encode("utf-8")
        data += b" " * (-len(data) % 4)
        new_chunk = _CHUNK.size + len(data)
        out.write(_HEADER.pack(_GLB_MAGIC, 2, length - old_chunk + new_chunk))
        out.write(_CHUNK.pack(len(data), _CHUNK_JSON) + data)
        copy_rest(handle, out)
