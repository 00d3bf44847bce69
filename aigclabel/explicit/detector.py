"""Explicit-label detectors and visible labelers for :mod:`aigclabel.verify` (register themselves on import).

Detectors (each a trace for Art. 6 "suspected"):

* ``explicit-image-label``: a visible label of any style on an image: an aigclabel plate by colour
  (:func:`locate_label`), any other by OCR (:mod:`aigclabel.explicit.ocr`), with its height and place;
* ``explicit-video-label``: the same on the first seconds of a video, with the seconds it is shown;
* ``explicit-audio-label``: the §5.3 rhythm cue at any tone (300-3000 Hz) and speed (dot 60-250 ms),
  or aigclabel's spoken clip; speech at the start or end is noted for human review (not a trace);
* ``explicit-text-label``: a prompt with both elements in text, Markdown or HTML, in any brackets;
* ``explicit-document-label``: the same prompt in a document's visible text (PDF pages, Word headers, body
  and footers, slides, sheets' strings and text boxes, EPUB chapters, SVG text), or aigclabel's own plate
  (on a PDF an image, which has no text).

Visible labelers (used by ``verify --apply --prompt burn`` only; each re-encodes the content): the
classification's prompt (人工智能生成 / 可能为人工智能生成 / 疑似人工智能生成) drawn on images and on
the opening of videos, written into text, Markdown and HTML, and for audio the rhythm cue (plus the
spoken prompt for *confirmed*) prepended.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .. import _budget
from .._io import MAX_DECODE_PIXELS
from .._media import MediaSample
from ..containers import MediaKind, containers_of, open_container
from ..errors import AIGCLabelError, LimitExceededError
from ..verify import PROMPTS, Classification, Evidence, register_detector, register_visible_labeler
from .ocr import ImageTextLabel

if TYPE_CHECKING:
    from PIL import Image

#: Image containers searched frame by frame like a video (an animated GIF's label may come later),
#: not as one still picture.
_SEARCHED_AS_VIDEO = frozenset({"gif"})
#: The containers each detector is called on, by media kind (:attr:`aigclabel.containers.Container.media`).
IMAGE_FORMATS = frozenset(containers_of(MediaKind.IMAGE)) - _SEARCHED_AS_VIDEO
VIDEO_FORMATS = frozenset(containers_of(MediaKind.VIDEO)) | _SEARCHED_AS_VIDEO
AUDIO_FORMATS = frozenset(containers_of(MediaKind.AUDIO))
TEXT_FORMATS = frozenset(containers_of(MediaKind.TEXT))
DOCUMENT_FORMATS = frozenset(containers_of(MediaKind.DOCUMENT))


def _format(path: Path) -> str | None:
    try:
        return open_container(path).name
    except AIGCLabelError:
        return None


def _too_large(detector: str, what: str) -> Evidence:
    limit = MAX_DECODE_PIXELS // 1_000_000
    return Evidence.skipped(detector, f"{what} is over the {limit} MP scan limit; not searched")


#: The label search decodes an image at no less than this (JPEG at a DCT scale, which is fast) and reads
#: it at :data:`aigclabel.explicit.ocr.OCR_SIDE`; ratios do not depend on the scale.
SEARCH_SIDE = 512


class ExplicitImageLabelDetector:
    """Finds a visible label of any style on a still image: an aigclabel plate by colour, else OCR."""

    name = "explicit-image-label"
    formats = IMAGE_FORMATS
    #: Reads the upload's shared decode (:class:`aigclabel._media.MediaSample`).
    shares_media = True
    #: The stroke pre-filter (~1.2 ms for a 2 MP JPEG: the shared decode halved twice, then its strokes), then
    #: where it finds strokes dense enough for text, the search copies, the plate locator and OCR (lines found
    #: on a 448 px copy of the shared decode): ~0.05 s.
    cost = 30.0

    def __init__(self, *, prefilter: bool = True) -> None:
        #: Whether :func:`aigclabel.explicit.ocr.may_hold_text` may skip the search (off: the search runs
        #: on every picture, as the recall benchmark's reference does).
        self.prefilter = prefilter

    def detect(self, path: Path, media: MediaSample | None = None) -> list[Evidence]:
        """Evidence of a visible label on a still image (empty for other files)."""
        from . import locate_label
        from .ocr import (
            downscale,
            find_image_labels,
            has_ai_element,
            may_hold_text_in,
            ocr_engine_name,
            read_box,
        )

        sample = media if media is not None else MediaSample(path, _format(path))
        try:
            decoded, _ = sample.analysis_image()
        except _budget.BudgetExceeded:
            raise
        except LimitExceededError as exc:  # over our scan limit or Pillow's bomb limits: not searched
            return [Evidence.skipped(self.name, str(exc))]
        except AIGCLabelError:  # not an image Pillow decodes: no evidence either way
            return []
        # The pre-filter reads the shared pixels halved to about the detection copy's size: the search
        # copies are made only for a picture it passes.
        if self.prefilter and not may_hold_text_in(decoded, sample.analysis_pixels()):
            return []  # no strokes dense enough for a line of text: neither a plate nor any other label
        image = _search_copy(decoded, sample.container, sample)
        small = downscale(image)
        engine = ocr_engine_name() is not None
        plate = locate_label(image)
        text = read_box(image, plate.plate) if plate is not None and engine else None
        if plate is not None and (text is None or has_ai_element(text)):  # a plate reading 旅行日记 is no label
            x0, y0, _, _ = plate.plate
            reads = f" reading {text!r}" if text else ""
            return [
                Evidence(
                    "explicit-label",
                    f"visible label plate{reads}, characters {plate.glyph_ratio:.1%} of the shortest side",
                    f"{x0 / image.width:.0%},{y0 / image.height:.0%} of the picture",
                    self.name,
                    data={"ratio": round(plate.glyph_ratio, 4), "text": text},
                )
            ]
        if not engine:
            skipped = "no OCR engine: labels of other styles not searched"
            return [Evidence.skipped(self.name, skipped)]
        return [_text_evidence(found, self.name, image.size) for found in find_image_labels(image, small=small)[:1]]


def _search_copy(image: Image.Image, container: str | None, sample: MediaSample | None = None) -> Image.Image:
    """The RGB copy the label search reads: a JPEG at the DCT scale a ``draft`` to :data:`SEARCH_SIDE`
    would have decoded (what this detector read before the decode was shared), at most 4x that.

    A 2 MP JPEG is halved from the upload's shared array (``sample``, which the watermark detector reads too)
    by :func:`aigclabel.explicit.ocr.halve`, Pillow's ``reduce(2)`` bit for bit on even sizes.
    """
    rgb = image.convert("RGB") if image.mode != "RGB" else image
    if container == "jpeg":
        factor = 8
        while factor > 1 and min(rgb.width, rgb.height) // factor < SEARCH_SIDE:
            factor //= 2
        if factor == 2 and rgb is image and sample is not None and rgb.width % 2 == 0 and rgb.height % 2 == 0:
            from PIL import Image

            from .ocr import halve

            rgb = Image.fromarray(halve(sample.analysis_pixels()))
        elif factor > 1:
            rgb = rgb.reduce(factor)
    if max(rgb.size) > SEARCH_SIDE * 4:
        rgb = rgb.copy() if rgb is image else rgb
        rgb.thumbnail((SEARCH_SIDE * 4, SEARCH_SIDE * 4))
    return rgb


def _text_evidence(found: ImageTextLabel, source: str, size: tuple[int, int], when: str = "") -> Evidence:
    """A trace for a line of text with the AI element, with the figures a person checks."""
    x0, y0, _, _ = found.box
    elements = "AI and generation elements" if found.has_generation else "AI element only"
    return Evidence(
        "explicit-label",
        f"visible text {found.text!r} ({elements}), characters {found.ratio:.1%} of the shortest side, "
        f"{found.position}{when}",
        f"{x0 / size[0]:.0%},{y0 / size[1]:.0%} of the picture",
        source,
        data=found.to_dict(),
    )


class ExplicitVideoLabelDetector:
    """Finds a visible label on the first seconds of a video and reports when it is shown."""

    name = "explicit-video-label"
    formats = VIDEO_FORMATS
    #: Decodes up to ~5 s of frames, OCR a few of them, re-reads the label box on others.
    cost = 150.0

    def __init__(self, *, prefilter: bool = True) -> None:
        #: Whether the stroke pre-filter may skip the search on a frame (as for still images).
        self.prefilter = prefilter

    def detect(self, path: Path) -> list[Evidence]:
        """Evidence of a visible label on the video's opening (or first seconds), with its span."""
        from ..check import _video_rules

        try:
            rules, _ = _video_rules(path, ocr=True, prefilter=self.prefilter)
        except AIGCLabelError as exc:
            return [Evidence.skipped(self.name, f"not searched: {exc}")]
        first = rules[0]
        if "start_s" not in first.measured:
            return []
        where = f"{first.measured['start_s']:.2f}-{first.measured['end_s']:.2f} s"
        return [Evidence("explicit-label", first.detail, where, self.name, data=dict(first.measured))]


class ExplicitAudioLabelDetector:
    """Finds the §5.3 rhythm cue at any pitch and speed, or aigclabel's spoken clip; flags speech at the ends."""

    name = "explicit-audio-label"
    formats = AUDIO_FORMATS
    #: Decodes at 8 kHz mono and runs a few filters: ~0.1 s per minute of audio.
    cost = 60.0

    def detect(self, path: Path) -> list[Evidence]:
        """Evidence of an audible label (cue or our clip); speech at the start/end as a note for review."""
        from ..check import AUDIO_END_WINDOW
        from .audio import scan_audio

        try:
            scan = scan_audio(path)
        except AIGCLabelError as exc:
            return [Evidence.skipped(self.name, f"not searched: {exc}")]
        found = [
            Evidence(
                "explicit-label",
                f"rhythm cue (short-long-short-short) at {cue.frequency:.0f} Hz, dot {cue.dot * 1000:.0f} ms",
                f"{cue.start:.2f} s",
                self.name,
                data={
                    "start_s": round(cue.start, 3),
                    "frequency_hz": round(cue.frequency),
                    "dot_ms": round(cue.dot * 1000),
                },
            )
            for cue in scan.cues
        ]
        found += [
            Evidence("explicit-label", "aigclabel's spoken label", f"{t:.2f} s", self.name, data={"start_s": t})
            for t in scan.spoken
        ]
        if not found:
            found += [
                Evidence(
                    "speech",
                    "speech at the start/end: needs human review (it may be a spoken AI label)",
                    f"{a:.2f}-{b:.2f} s",
                    self.name,
                    "info",
                )
                for a, b in scan.speech
                if a <= AUDIO_END_WINDOW or scan.duration - b <= AUDIO_END_WINDOW
            ]
        return found


class ExplicitTextLabelDetector:
    """Finds a text prompt with both elements in any bracket style, at the start, the end or in between."""

    name = "explicit-text-label"
    formats = TEXT_FORMATS
    #: One regular-expression pass over the visible text.
    cost = 5.0

    def detect(self, path: Path) -> list[Evidence]:
        """Evidence of a text label prompt."""
        from .text import find_text_labels, read_text_file, text_format_of

        try:
            content = read_text_file(path)
        except (AIGCLabelError, OSError, UnicodeError):
            return []
        fmt = text_format_of(path) or ("html" if _format(path) == "html" else "plain")
        return [
            Evidence("explicit-label", f"text prompt {f.text!r} at the {f.where}", f"character {f.offset}", self.name)
            for f in find_text_labels(content, fmt=fmt)[:3]
        ]


class ExplicitDocumentLabelDetector:
    """Finds a label prompt with both elements in a document's visible text, or aigclabel's own plate."""

    name = "explicit-document-label"
    formats = DOCUMENT_FORMATS
    #: Parsing a few pages or parts, then one regular-expression pass.
    cost = 20.0

    def detect(self, path: Path) -> list[Evidence]:
        """Evidence of a document label prompt."""
        from .document import find_document_labels

        try:
            labels = find_document_labels(path)
        except AIGCLabelError as exc:
            return [Evidence.skipped(self.name, f"document text not read: {exc}")]
        found = [
            Evidence(
                "explicit-label",
                f"document prompt {f.text!r} at the {f.where}",
                f"{labels.read.source}, character {f.offset}",
                self.name,
            )
            for f in labels.prompts[:3]
        ]
        if labels.own_plate:
            found.append(Evidence("explicit-label", "aigclabel label plate", "first page or part", self.name))
        return found


class ExplicitImageLabeler:
    """Draws the classification's prompt on still images (re-encodes them)."""

    name = "explicit-image"

    def supports(self, path: Path) -> bool:
        """True for still-image formats."""
        return _format(path) in IMAGE_FORMATS

    def add_label(self, src: Path, dst: Path, classification: Classification) -> None:
        """Write ``src`` with the visible prompt to ``dst``."""
        from . import add_image_label

        add_image_label(src, dst, text=PROMPTS[classification], implicit="if-supported")


class ExplicitVideoLabeler:
    """Overlays the classification's prompt on the first seconds of a video (re-encodes it)."""

    name = "explicit-video"

    def supports(self, path: Path) -> bool:
        """True for the video formats :func:`add_video_label` writes."""
        from .._media import VIDEO_OUTPUTS, output_for

        return output_for(VIDEO_OUTPUTS, path) is not None and _format(path) is not None

    def add_label(self, src: Path, dst: Path, classification: Classification) -> None:
        """Write ``src`` with the prompt on its opening seconds to ``dst``."""
        from .video import add_video_label

        add_video_label(src, dst, text=PROMPTS[classification], implicit="if-supported")


class ExplicitAudioLabeler:
    """Prepends the rhythm cue (and, for *confirmed*, the spoken prompt) to audio (re-encodes it)."""

    name = "explicit-audio"

    def supports(self, path: Path) -> bool:
        """True for the audio formats :func:`add_audio_label` writes."""
        from .._media import output_for
        from .audio import AUDIO_OUTPUTS

        return output_for(AUDIO_OUTPUTS, path) is not None

    def add_label(self, src: Path, dst: Path, classification: Classification) -> None:
        """Write ``src`` with the audible prompt at its start to ``dst``."""
        from .audio import LabelKind, add_audio_label

        # The shipped spoken clip says 人工智能生成; for possible/suspected only the neutral cue fits.
        kind: LabelKind = "both" if classification is Classification.CONFIRMED else "cue"
        add_audio_label(src, dst, kind=kind, implicit="if-supported")


class ExplicitTextLabeler:
    """Writes the classification's prompt at the start of a text, Markdown or HTML file."""

    name = "explicit-text"

    def supports(self, path: Path) -> bool:
        """True for the text formats :func:`add_text_label` writes."""
        from .text import text_format_of

        return text_format_of(path) is not None

    def add_label(self, src: Path, dst: Path, classification: Classification) -> None:
        """Write ``src`` with the prompt at its start to ``dst``."""
        from .text import add_text_label

        add_text_label(src, dst, label=PROMPTS[classification], implicit="if-supported")


for _detector in (
    ExplicitImageLabelDetector(),
    ExplicitVideoLabelDetector(),
    ExplicitAudioLabelDetector(),
    ExplicitTextLabelDetector(),
    ExplicitDocumentLabelDetector(),
):
    register_detector(_detector)
for _labeler in (ExplicitImageLabeler(), ExplicitVideoLabeler(), ExplicitAudioLabeler(), ExplicitTextLabeler()):
    register_visible_labeler(_labeler)
