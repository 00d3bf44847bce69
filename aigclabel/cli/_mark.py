"""The labellers behind ``aigclabel mark``: one per media kind, chosen from :data:`LABELLERS` by the file's kind.

Imported only when ``mark`` runs (the dataclass and the dispatch table cost a millisecond of every start).
Each labeller checks ``--position`` and ``--audio-label`` against its explicit module's own choices.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, get_args

from .._media import media_of
from ..containers import MediaKind
from ..errors import UnsupportedFormatError
from ._common import pick

if TYPE_CHECKING:
    from ..explicit._implicit import ImplicitPolicy


def mark_file(file: Path, request: MarkRequest) -> str:
    """Write ``request.output``, a copy of ``file`` with the explicit label of its media kind; what was done."""
    media = media_of(file)
    labeller = LABELLERS.get(media) if media is not None else None
    if labeller is None:
        raise UnsupportedFormatError(f"{file}: not a text, image, audio, video, document or glTF scene file")
    return labeller(file, request)


@dataclass(frozen=True)
class MarkRequest:
    """The options of ``mark``; ``position`` and ``audio_kind`` are checked by the labeller of the file's kind."""

    output: Path
    text: str | None
    position: str | None
    seconds: float
    persistent: bool
    audio_kind: str
    mix: bool
    implicit: ImplicitPolicy


def _mark_text(file: Path, request: MarkRequest) -> str:
    from ..explicit.text import DEFAULT_LABEL, Position, add_text_label

    position = pick(request.position, "start", get_args(Position), "--position")
    label = request.text or DEFAULT_LABEL
    add_text_label(file, request.output, label=label, position=position, implicit=request.implicit)
    return "text label added"


def _mark_image(file: Path, request: MarkRequest) -> str:
    from ..explicit.image import Placement, add_image_label
    from ..explicit.text import DEFAULT_LABEL

    placement = pick(request.position, "bottom-right", get_args(Placement), "--position")
    text = request.text or DEFAULT_LABEL
    layout = add_image_label(file, request.output, text=text, placement=placement, implicit=request.implicit).layout
    return (
        f"glyph height {layout.glyph_height} px ({layout.glyph_ratio:.1%} of the shortest side), "
        f"smallest glyph {layout.smallest_glyph} px ({layout.smallest_glyph_ratio:.1%})"
    )


def _mark_audio(file: Path, request: MarkRequest) -> str:
    from ..explicit.audio import AudioPosition, LabelKind, add_audio_label

    kind = pick(request.audio_kind, "both", get_args(LabelKind), "--audio-label")
    positions = tuple(
        pick(where, "start", get_args(AudioPosition), "--position")
        for where in (request.position or "start").split(",")
    )
    done = add_audio_label(
        file,
        request.output,
        kind=kind,
        positions=positions,
        mode="mix" if request.mix else "insert",
        implicit=request.implicit,
    )
    return "labels at " + ", ".join(f"{offset:.2f} s" for offset in done.offsets)


def _mark_video(file: Path, request: MarkRequest) -> str:
    from ..explicit.image import Placement
    from ..explicit.text import DEFAULT_LABEL
    from ..explicit.video import add_video_label

    done = add_video_label(
        file,
        request.output,
        text=request.text or DEFAULT_LABEL,
        placement=pick(request.position, "bottom-right", get_args(Placement), "--position"),
        seconds=request.seconds,
        persistent=request.persistent,
        implicit=request.implicit,
    )
    return f"label on {done.labelled_frames} of {done.frames} frames ({done.labelled_seconds:.2f} s)"


def _mark_scene(file: Path, request: MarkRequest) -> str:
    from ..explicit.scene import add_scene_label
    from ..explicit.text import DEFAULT_LABEL

    done = add_scene_label(file, request.output, text=request.text or DEFAULT_LABEL, implicit=request.implicit)
    if done.free_standing:
        return "label plate above the scene (it has no camera)"
    return f"label plate in the view of {done.cameras} camera(s), smallest glyph {done.glyph_ratio:.1%} of the view"


def _mark_document(file: Path, request: MarkRequest) -> str:
    from ..explicit.document import add_document_label
    from ..explicit.text import DEFAULT_LABEL

    if request.position is not None:
        raise ValueError("--position does not apply to documents (the label goes at the top of the first page)")
    done = add_document_label(file, request.output, text=request.text or DEFAULT_LABEL, implicit=request.implicit)
    return done.where


#: The explicit labeller of each media kind ``mark`` labels.
LABELLERS: dict[MediaKind, Callable[[Path, MarkRequest], str]] = {
    MediaKind.TEXT: _mark_text,
    MediaKind.IMAGE: _mark_image,
    MediaKind.AUDIO: _mark_audio,
    MediaKind.VIDEO: _mark_video,
    MediaKind.SCENE: _mark_scene,
    MediaKind.DOCUMENT: _mark_document,
}
