"""Plain-text files: the label goes into an XMP sidecar next to the file, the text stays untouched.

A ``.txt`` file has no metadata slot, and TC260-PG-20258A's text placement was not found
([UNCONFIRMED] in our digest). Anything written *into* the text (a header line, zero-width
characters) would change what readers see and is the explicit label's job, handled elsewhere. So the
implicit label goes beside it, in an **XMP sidecar** holding ``TC260:AIGC`` exactly as in images:

* ``notes.txt`` → ``notes.xmp``: the sidecar naming of the XMP specification (Part 3, "same name,
  extension .xmp"), used by Adobe tools, exiftool (``-o %d%f.xmp``) and digiKam, so every XMP-aware
  tool already knows where to look and how to read it. We chose it over an ad-hoc
  ``notes.txt.aigc.json`` for that reason;
* the reader also checks ``notes.txt.xmp`` (the darktable-style name) and reports both, so a label
  left there by another tool is seen; writing and stripping clear both.

An existing sidecar is merged into (other XMP properties are kept). Caveat of the convention: a
sidecar is shared by every file with the same stem (``notes.txt`` and ``notes.jpg``), and it does
not travel with the text when only the ``.txt`` is copied. The text bytes are never modified, so
:meth:`TextContainer.payload_digest` is simply the SHA-256 of the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path

from .. import xmp
from .._io import COPY_CHUNK, MAX_METADATA_BYTES, atomic_output, open_regular, same_file, write_lock
from ..errors import LimitExceededError
from ..label import AIGCLabel
from . import Container, FoundLabel, MediaKind, register


def sidecars(path: Path) -> tuple[Path, Path]:
    """The primary sidecar (``notes.xmp``) and the alternative one (``notes.txt.xmp``).

    A symlinked text is labelled through its target's sidecars, as every other format labels the
    target, so the link and the target read the same label.
    """
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    return path.with_suffix(".xmp"), path.with_name(path.name + ".xmp")


def _load(path: Path) -> bytes | None:
    try:
        fd = open_regular(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    with open(fd, "rb") as handle:
        if os.fstat(fd).st_size > MAX_METADATA_BYTES:
            raise LimitExceededError(f"XMP sidecar {path.name} is over {MAX_METADATA_BYTES} bytes")
        return handle.read()


def _store(sidecar: Path, packet: bytes | None) -> None:
    if packet is None:
        sidecar.unlink(missing_ok=True)
        return
    with atomic_output(sidecar) as tmp:
        tmp.write_bytes(packet)


@register
class TextContainer(Container):
    """Plain-text files (by suffix), labelled through an XMP sidecar."""

    name = "text"
    description = "plain-text file"
    extensions = (".txt", ".text")
    mime_type = "text/plain"
    media = MediaKind.TEXT
    primary_location = "XMP sidecar <name>.xmp, TC260:AIGC"
    priority = -10  # formats with real magic bytes win over a misleading suffix

    @classmethod
    def accept(cls, head: bytes, path: Path) -> bool:
        return path.suffix.lower() in cls.extensions and b"\0" not in head

    def read(self, path: Path) -> list[FoundLabel]:
        found: list[FoundLabel] = []
        for sidecar in dict.fromkeys(sidecars(path)):
            packet = _load(sidecar)
            if packet is not None:
                location = f"XMP sidecar {sidecar.name} TC260:AIGC"
                found.extend(FoundLabel.from_text(location, value) for value in xmp.find_aigc(packet))
        return found

    def rewrite(self, src: Path, dst: Path, label: AIGCLabel | None) -> None:
        """Copy the text unchanged; the label itself is written by :meth:`write` beside the final path."""
        with open(src, "rb") as source, open(dst, "wb") as out:
            shutil.copyfileobj(source, out, COPY_CHUNK)

    def write(self, src: Path, dst: Path, label: AIGCLabel) -> str:
        """Label ``dst`` (a copy of ``src`` when they differ) through its XMP sidecar (written as a copy)."""
        label.validate()
        self._apply(Path(src), Path(dst), label.to_json())
        return "copy"

    def strip(self, src: Path, dst: Path) -> str:
        """Remove ``TC260:AIGC`` from the sidecars of ``dst``; an emptied sidecar is deleted."""
        self._apply(Path(src), Path(dst), None)
        return "copy"

    def _apply(self, src: Path, dst: Path, value: str | None) -> None:
        """Every new packet is built before anything is written, and a copied text only appears once
        its sidecar is stored, so a failure (a corrupt sidecar, a full disk) leaves no output behind.

        The sidecar starts from the source's; a source without one (a scratch copy made by a
        pipeline) starts from the destination's own, so labelling in place keeps its other XMP.
        """
        with write_lock(dst):
            primary, alternative = sidecars(dst)
            src_primary, src_alternative = sidecars(src)
            in_place = same_file(src, dst)
            base = _load(primary if in_place else src_primary)
            if base is None and not in_place:
                base = _load(primary)
            new_primary = xmp.set_aigc(base, value) if value is not None else None
            if value is None and base is not None:
                new_primary = xmp.remove_aigc(base)
            other = _load(alternative if in_place else src_alternative)
            clear_other = other is not None and bool(xmp.find_aigc(other))
            new_other = xmp.remove_aigc(other) if other is not None and clear_other else None
            with contextlib.ExitStack() as stack:
                if not in_place:
                    tmp = stack.enter_context(atomic_output(dst, mode_from=src))
                    self.rewrite(src, tmp, None)
                if value is not None or base is not None:
                    _store(primary, new_primary)
                if clear_other:
                    _store(alternative, new_other)

    def payload_digest(self, path: Path) -> bytes:
        """SHA-256 of the file's bytes (the label lives in the sidecar, never in the text)."""
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(COPY_CHUNK):
                digest.update(chunk)
        return digest.digest()
