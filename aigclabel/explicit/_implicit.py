"""Carrying the implicit label over when an explicit label forces a re-encode (or a new file)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from .. import api
from ..errors import UnsupportedFormatError
from ..label import AIGCLabel

#: ``"require"``: fail if no container module handles the format; ``"if-supported"``: then skip.
ImplicitPolicy = Literal["require", "if-supported"]


def read_implicit(src: Path, implicit: ImplicitPolicy) -> AIGCLabel | None:
    """The source's implicit label (``None`` if it has none, or if unsupported and allowed)."""
    try:
        return api.read_label(src)
    except UnsupportedFormatError as exc:
        if implicit == "require":
            raise UnsupportedFormatError(
                f"{src}: no container module can carry this file's implicit label over ({exc}); "
                'pass implicit="if-supported" to copy the metadata verbatim without checking it'
            ) from exc
        return None


def restore_implicit(dst: Path, before: AIGCLabel | None, implicit: ImplicitPolicy) -> bool:
    """Re-apply the source's implicit label on ``dst`` if the copy lost or changed it; True if it carries it."""
    if before is None:
        return False
    try:
        after = api.read_label(dst)
    except UnsupportedFormatError:
        if implicit == "require":
            raise
        return False
    if after != before:
        api.write_label(dst, before)
    return True
