"""Labelling generated images and speech held in memory: every layer through :func:`aigclabel.produce.label_file`.

Order as :mod:`aigclabel.produce` requires: the visible or audible label first (it re-encodes), then
the watermark, the signature and the implicit label. Work files live in a private temporary folder.
"""

from __future__ import annotations

import io
import mimetypes
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, UnidentifiedImageError

from ..errors import LimitExceededError, MalformedFileError, UnsupportedFormatError
from ..explicit.text import DEFAULT_LABEL
from ..produce import ProduceOptions, ProduceResult, label_file

if TYPE_CHECKING:
    from ..audit import AuditStore
    from ..explicit.audio import LabelKind
    from ..label import AIGCLabel
    from ..signing import SigningKey

#: File suffix of each ``response_format`` of ``/v1/audio/speech`` that can carry the labels.
SPEECH_SUFFIXES = {"mp3": ".mp3", "wav": ".wav", "flac": ".flac", "opus": ".opus"}


@dataclass(frozen=True)
class MediaLayers:
    """The layers added to every generated file besides the implicit label."""

    watermark_key: bytes | None = None
    watermark_key_id: int = 0
    signing_key: SigningKey | None = None
    #: Audit store, and what the event records as the file's origin (its ``path`` detail).
    audit: AuditStore | None = None
    origin: str = "generated"


def _stamp(work: Path, label: AIGCLabel, layers: MediaLayers, detail: Mapping[str, Any]) -> tuple[bytes, ProduceResult]:
    """:func:`label_file` on ``work``, then the audit event (recorded while the file still exists)."""
    options = ProduceOptions(
        signing_key=layers.signing_key, watermark_key=layers.watermark_key, watermark_key_id=layers.watermark_key_id
    )
    result = label_file(work, label, work.with_name(f"labelled{work.suffix}"), options)
    if layers.audit is not None:
        from ..audit import EventKind, file_event

        event = file_event(
            EventKind.LABEL,
            result.path,
            result.label,
            watermark_payload=result.watermark_payload,
            detail={"signed": result.signed, **detail, "path": layers.origin},
        )
        result = replace(result, audit_event_id=layers.audit.record(event))
    return result.path.read_bytes(), result


def image_suffix(data: bytes) -> str:
    """The file suffix of an encoded image, from its content (raises a typed error when it is none)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt, mime = image.format or "", image.get_format_mimetype() or ""
    except Image.DecompressionBombError as exc:
        raise LimitExceededError(f"image: {exc}") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise MalformedFileError(f"not an image Pillow can read ({exc})") from exc
    # The usual suffix (".jpg", not Pillow's first-registered ".jfif"), else any Pillow knows for the format.
    suffix = mimetypes.guess_extension(mime) if mime else None
    suffix = suffix or next((ext for ext, name in Image.registered_extensions().items() if name == fmt), None)
    if suffix is None:
        raise UnsupportedFormatError(f"image format {fmt or 'unknown'} has no file suffix")
    return suffix


def label_image_bytes(
    data: bytes,
    label: AIGCLabel,
    *,
    layers: MediaLayers,
    visible: bool = False,
    visible_text: str = DEFAULT_LABEL,
) -> tuple[bytes, ProduceResult]:
    """An encoded image with the visible label (optional), watermark (with a key), signature and implicit label."""
    from ..explicit.image import add_image_label

    suffix = image_suffix(data)
    with tempfile.TemporaryDirectory(prefix="aigclabel-gateway-") as folder:
        work = Path(folder) / f"generated{suffix}"
        work.write_bytes(data)
        if visible:
            drawn = work.with_name(f"visible{suffix}")
            add_image_label(work, drawn, text=visible_text, implicit="if-supported")
            work = drawn
        return _stamp(work, label, layers, {"visible_label": visible})


def label_speech_bytes(
    data: bytes,
    response_format: str,
    label: AIGCLabel,
    *,
    layers: MediaLayers,
    kind: LabelKind = "cue",
) -> tuple[bytes, ProduceResult]:
    """A speech file with the audible label at its start, then watermark (with a key), signature and implicit label."""
    from ..explicit.audio import add_audio_label

    suffix = SPEECH_SUFFIXES.get(response_format)
    if suffix is None:
        raise UnsupportedFormatError(
            f"speech as {response_format!r} cannot carry the implicit label; "
            f"ask for one of {', '.join(SPEECH_SUFFIXES)}"
        )
    with tempfile.TemporaryDirectory(prefix="aigclabel-gateway-") as folder:
        work = Path(folder) / f"speech{suffix}"
        work.write_bytes(data)
        audible = work.with_name(f"audible{suffix}")
        add_audio_label(work, audible, kind=kind, positions=("start",), implicit="if-supported")
        return _stamp(audible, label, layers, {"audible_label": kind})
