"""Compliance report: each file against each GB 45438 rule that can be measured on it.

Rules carry the clause they implement. Implicit labels are judged by :func:`aigclabel.api.inspect`
(§6.1, Annex E). Explicit labels are measured on the content itself, whoever drew them: text by
pattern in any brackets (§5.1); images and video frames by finding an aigclabel plate by colour or
any other label by OCR (:mod:`aigclabel.explicit.ocr`) and measuring its text, position and character
height (§5.2, §5.4) and, for video, the seconds it is shown from the opening (§5.4); audio by the
short-long-short-short rhythm at any pitch and speed or our spoken clip (§5.3).

Every finding carries its measured figure. A rule that cannot be decided automatically (speech at
the start of an audio file: what it says needs a listener) is ``review``, not ``fail``; the HTML
report shows a thumbnail for a person to judge.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
from PIL import Image

from . import _budget, api, i18n
from ._decode import charge_frame, check_video_pixels, decode_for_analysis, frame_image
from ._extras import needs_extra
from ._guard import hostile_input
from ._media import media_of
from .containers import MediaKind
from .errors import AIGCLabelError, LimitExceededError, MalformedFileError, UnsupportedFormatError
from .explicit.audio import CueTiming, scan_audio
from .explicit.image import DARK_PLATE, LIGHT_PLATE, LOCATE_TOLERANCE, MIN_HEIGHT_RATIO, LocatedLabel, locate_label
from .explicit.ocr import (
    downscale,
    find_image_labels,
    has_ai_element,
    has_generation_element,
    may_hold_text_in,
    ocr_engine_name,
    read_box,
)
from .explicit.text import (
    DEFAULT_WINDOW,
    TextFormat,
    TextLabelFinding,
    find_text_labels,
    read_text_file,
    text_format_of,
)
from .explicit.video import MIN_SECONDS
from .i18n import Lang

with needs_extra("media"):
    import av

Status = Literal["pass", "fail", "warning", "review", "skipped", "error"]
Kind = Literal["text", "image", "audio", "video", "document", "unknown"]

#: Seconds of video scanned from the first frame for the opening label.
VIDEO_SCAN_SECONDS = 30.0
#: A cue or spoken label within this many seconds of either end counts as "start"/"end".
AUDIO_END_WINDOW = 10.0


@dataclass
class RuleResult:
    """One rule applied to one file."""

    rule: str
    clause: str
    title: str
    status: Status
    detail: str
    measured: dict[str, Any] = field(default_factory=dict)


@dataclass
class FileReport:
    """All rule results for one file."""

    path: str
    kind: Kind
    rules: list[RuleResult] = field(default_factory=list)
    thumbnail_png: bytes | None = None
    #: CLI exit code (4) when the file is malformed or over a limit, else ``None``.
    error_code: int | None = None

    @property
    def compliant(self) -> bool:
        """No rule failed or errored (warnings, "needs review" and skipped rules do not count against it)."""
        return bool(self.rules) and all(r.status in ("pass", "warning", "review", "skipped") for r in self.rules)

    @property
    def needs_review(self) -> bool:
        """Some rule could not be decided automatically: a person has to look (or listen)."""
        return any(r.status == "review" for r in self.rules)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "path": self.path,
            "kind": self.kind,
            "compliant": self.compliant,
            "rules": [asdict(r) for r in self.rules],
        }


#: The media kinds with explicit-label rules here.
_CHECKED = frozenset({MediaKind.TEXT, MediaKind.IMAGE, MediaKind.AUDIO, MediaKind.VIDEO, MediaKind.DOCUMENT})


def detect_kind(path: Path) -> Kind:
    """What kind of content ``path`` holds (:func:`aigclabel._media.media_of`); a scene is ``"unknown"``:
    it is checked for its implicit label only."""
    media = media_of(path)
    return cast(Kind, media.value) if media in _CHECKED else "unknown"


def _implicit_rule(path: Path) -> tuple[RuleResult, AIGCLabelError | None]:
    """The implicit-label rule, and the typed error when the file could not be read."""
    rule, clause, title = "implicit-label", "GB 45438 §6.1, Annex E", "implicit metadata label present and valid"
    try:
        result = api.inspect(path)
    except AIGCLabelError as exc:
        return RuleResult(rule, clause, title, "error", str(exc)), exc
    problems = [f"{p.severity} {p.code}: {p.message}" for p in result.problems]
    if result.ok:
        detail = f"label in {result.labels[0].location}"
        return RuleResult(
            rule, clause, title, "pass", detail, {"label": result.label.to_dict() if result.label else {}}
        ), None
    return RuleResult(rule, clause, title, "fail", "; ".join(problems) or "no conforming label"), None


def _text_rules(path: Path) -> list[RuleResult]:
    fmt = text_format_of(path) or "plain"
    title = "text label with both elements"
    found = find_text_labels(read_text_file(path), fmt=fmt)
    return _prompt_rules(found, fmt, "text-label", "GB 45438 §5.1; Measures Art. 4(1)(1)", title, {})


def _document_rules(path: Path) -> list[RuleResult]:
    """A document is text a reader is shown (our reading: §5.1's prompt applies to its visible text, and
    Art. 4 ¶2 asks an exported file to carry it); aigclabel's own plate on a PDF is an image, found by name."""
    from .explicit.document import find_document_labels

    labels = find_document_labels(path)
    clause, title = "GB 45438 §5.1; Measures Art. 4 ¶2", "document label with both elements"
    rules = _prompt_rules(labels.prompts, "plain", "document-label", clause, title, {"read": labels.read.source})
    if labels.own_plate:
        return [dataclasses.replace(rules[0], status="pass", detail="aigclabel label plate on the first page or part")]
    return rules


def _prompt_rules(
    found: list[TextLabelFinding], fmt: TextFormat, rule: str, clause: str, title: str, extra: dict[str, Any]
) -> list[RuleResult]:
    measured = {"format": fmt, "window": DEFAULT_WINDOW, "found": [asdict(f) for f in found], **extra}
    ends = [f for f in found if f.where in ("start", "end")]
    if ends:
        return [RuleResult(rule, clause, title, "pass", f"{ends[0].text!r} at the {ends[0].where}", measured)]
    if found:
        return [
            RuleResult(
                rule,
                clause,
                title,
                "warning",
                f"{found[0].text!r} only in the middle (offset {found[0].offset}); conforming only if that "
                "position is appropriate",
                measured,
            )
        ]
    return [RuleResult(rule, clause, title, "fail", "no prompt with both the AI and the generation element", measured)]


def _size_rule(clause: str, glyph: int, short: int) -> RuleResult:
    ratio = glyph / short if short else 0.0
    measured = {"glyph_height_px": glyph, "short_side_px": short, "ratio": round(ratio, 4)}
    status: Status = "pass" if ratio >= MIN_HEIGHT_RATIO else "fail"
    detail = f"character height {glyph} px = {ratio:.1%} of the {short} px shortest side (at least 5 %)"
    return RuleResult("label-size", clause, "character height >= 5 % of the shortest side", status, detail, measured)


def _image_rules(path: Path, ocr: bool, prefilter: bool = True) -> tuple[list[RuleResult], bytes]:
    image, factor = decode_for_analysis(path)  # at most 16 MP analysed: a 49 MP flat PNG cost 1 GB
    rules = _picture_rules(image, "GB 45438 §5.2", ocr, prefilter)
    return [_full_scale(rule, factor) for rule in rules] if factor > 1 else rules, _thumbnail(image)


_BOXES, _LENGTHS = ("plate", "ink", "box"), ("glyph_height_px", "short_side_px")


def _full_scale(rule: RuleResult, factor: int) -> RuleResult:
    """``rule`` measured on an image analysed at 1/``factor`` scale, with its measurements in file pixels."""
    measured = {
        key: [v * factor for v in value] if key in _BOXES else value * factor if key in _LENGTHS else value
        for key, value in rule.measured.items()
    }
    return dataclasses.replace(rule, measured=measured, detail=f"{rule.detail} (analysed at 1/{factor} scale)")


def _picture_rules(image: Image.Image, clause: str, ocr: bool, prefilter: bool = True) -> list[RuleResult]:
    """Where the label is, what it says and how tall it is, on one picture (an image or a video frame).

    An aigclabel plate is found by colour (fast, exact ink box); any other style by OCR
    (:func:`aigclabel.explicit.ocr.find_image_labels`), which also reads an aigclabel plate's text.
    With ``prefilter``, a picture on which :func:`aigclabel.explicit.ocr.may_hold_text` finds no
    strokes as dense as a line of text skips both searches (the verify detector's gate; its recall is
    measured by ``bench/verify.py --prefilter-only``).
    """
    title = "visible label on an edge or corner"
    engine = ocr and ocr_engine_name() is not None
    searched = not prefilter or may_hold_text_in(image)
    small = downscale(image) if searched else None
    located = locate_label(image) if searched else None
    found = find_image_labels(image, small=small) if searched and engine else []
    if located is not None and not found:
        # An aigclabel-style plate OCR did not pick out in the whole picture: read the plate itself.
        text = read_box(image, located.plate) if engine else None
        if text is None or has_ai_element(text):
            rules = [
                RuleResult(
                    "image-label",
                    clause,
                    title,
                    "pass",
                    f"aigclabel-style plate at {located.plate}",
                    {"plate": list(located.plate), "ink": list(located.ink), "box": list(located.plate)},
                ),
                _size_rule(clause, located.glyph_height, located.short_side),
            ]
            return rules + ([_text_rule(clause, text)] if text is not None else [])
    if not engine:
        why = "OCR is off or unavailable" if ocr else "OCR was not asked for"
        return [RuleResult("image-label", clause, title, "review", f"no aigclabel plate found; {why}: look at it")]
    if not found:
        return [
            RuleResult("image-label", clause, title, "fail", "no visible text with the AI element (人工智能/AI) found")
        ]
    best = found[0]
    measured = best.to_dict()
    rules = [
        RuleResult("image-label", clause, title, "pass", f"{best.text!r} at {best.box}", measured),
        _text_rule(clause, best.text),
        RuleResult(
            "label-position",
            clause,
            "label at an edge or corner of the picture",
            "pass" if best.position != "centre" else "fail",
            f"label is {_PLACES[best.position]}",
            {"position": best.position, "box": list(best.box)},
        ),
        _size_rule(clause, best.glyph_height, best.short_side),
    ]
    return rules


_PLACES = {
    "corner": "in a corner",
    "edge": "at an edge",
    "centre": "in the centre part of the picture, not at an edge or corner",
}


def _text_rule(clause: str, text: str) -> RuleResult:
    """The label's text carries both elements (§5: the AI element and the generation element)."""
    title = "label text has the AI and the generation element"
    measured = {"ocr": text}
    missing = [
        *(["no AI element (人工智能/AI)"] if not has_ai_element(text) else []),
        *(["no generation element (生成/合成/generated)"] if not has_generation_element(text) else []),
    ]
    detail = f"OCR read {text!r}" + (": " + ", ".join(missing) if missing else "")
    return RuleResult("label-text", clause, title, "fail" if missing else "pass", detail, measured)


def _thumbnail(image: Image.Image) -> bytes:
    thumb = image.copy()
    thumb.thumbnail((240, 240))
    buf = io.BytesIO()
    thumb.save(buf, format="PNG")
    return buf.getvalue()


def _audio_rules(path: Path, timing: CueTiming | None) -> list[RuleResult]:
    scan = scan_audio(path, timing)
    duration, cues, spoken = scan.duration, scan.cues, scan.spoken

    def where(t: float, length: float) -> str:
        to_start, to_end = t, duration - (t + length)
        if to_start <= AUDIO_END_WINDOW and to_start <= to_end:
            return "start"
        return "end" if to_end <= AUDIO_END_WINDOW else "middle"

    speech = [(a, b, where(a, b - a)) for a, b in scan.speech]
    measured: dict[str, Any] = {
        "duration_s": round(duration, 3),
        "cues": [
            {
                "start_s": round(c.start, 3),
                "frequency_hz": round(c.frequency),
                "dot_ms": round(c.dot * 1000),
                "tones_s": [round(x, 3) for x in c.tones],
                "gaps_s": [round(x, 3) for x in c.gaps],
                "position": where(c.start, c.end - c.start),
            }
            for c in cues
        ],
        "spoken_label_s": [round(t, 3) for t in spoken],
        "speech_s": [{"start_s": round(a, 2), "end_s": round(b, 2), "position": p} for a, b, p in speech],
        "analysed_s": round(scan.analysed, 3),
    }
    if scan.not_searched is not None:
        a, b = scan.not_searched
        measured["not_searched"] = {"start_s": round(a, 3), "end_s": round(b, 3), "reason": "over budget"}
    clause = "GB 45438 §5.3"
    title = "spoken label or short-long-short-short rhythm cue"
    if cues:
        found = ", ".join(
            f"{c.start:.2f} s ({where(c.start, c.end - c.start)}, {c.frequency:.0f} Hz, dot {c.dot * 1000:.0f} ms)"
            for c in cues
        )
        tones = "/".join(f"{x * 1000:.0f}" for x in cues[0].tones)
        detail = f"rhythm cue at {found}; tones {tones} ms"
        if spoken:
            detail += "; spoken label at " + ", ".join(f"{t:.2f} s" for t in spoken)
        return [RuleResult("audio-label", clause, title, "pass", detail, measured)]
    if spoken:
        return [RuleResult("audio-label", clause, title, "pass", f"spoken label at {spoken[0]:.2f} s", measured)]
    ends = [(a, b, p) for a, b, p in speech if p != "middle"]
    if ends:
        spans = ", ".join(f"{a:.2f}-{b:.2f} s ({p})" for a, b, p in ends)
        return [
            RuleResult(
                "audio-label",
                clause,
                title,
                "review",
                f"speech at {spans}: needs human review (whether it says the content is AI-generated cannot be "
                "recognised offline)",
                measured,
            )
        ]
    if scan.not_searched is not None:
        a, b = scan.not_searched
        detail = (
            f"no rhythm cue and no speech in the {scan.analysed:.0f} s analysed (the start and the end); "
            f"{a:.0f}-{b:.0f} s of the middle not searched: over budget"
        )
        return [RuleResult("audio-label", clause, title, "review", detail, measured)]
    return [
        RuleResult(
            "audio-label", clause, title, "fail", "no rhythm cue and no speech at the start or the end", measured
        )
    ]


def _plate_fill(image: Image.Image, located: LocatedLabel) -> tuple[float, float]:
    """Fractions of the plate rectangle in plate colour and in ink colour."""
    plate, ink = DARK_PLATE if located.dark_plate else LIGHT_PLATE
    region = np.asarray(image.convert("RGB").crop(located.plate), dtype=np.int16)
    near_plate = np.abs(region - np.array(plate, dtype=np.int16)).max(axis=2) < LOCATE_TOLERANCE
    near_ink = np.abs(region - np.array(ink, dtype=np.int16)).max(axis=2) < LOCATE_TOLERANCE * 2
    return float(near_plate.mean()), float(near_ink.mean())


def _same_plate(image: Image.Image, first: LocatedLabel, reference: tuple[float, float]) -> LocatedLabel | None:
    """``first`` if the same plate with about the same ink is still on ``image``: a cheap per-frame test
    (the full locator runs on frame 0 only)."""
    want_plate, want_ink = reference
    got_plate, got_ink = _plate_fill(image, first)
    if got_plate >= 0.85 * want_plate and abs(got_ink - want_ink) <= 0.25 * want_ink + 0.01:
        return first
    return None


@dataclass
class _Track:
    """A label followed across video frames: first and last frame time it was seen on."""

    start: float
    last: float
    box: tuple[int, int, int, int]
    rules: list[RuleResult]
    plate: LocatedLabel | None = None
    reference: tuple[float, float] = (0.0, 0.0)


#: Seconds between full OCR searches for a label in the opening of a video, and between re-reads of a found one.
VIDEO_SEARCH_STEP = 0.25
VIDEO_TRACK_STEP = 0.1
#: A label that first appears later than this is not on the opening frames.
VIDEO_OPENING_SLACK = 0.5
#: How far into a video a late-starting label is still searched for (to report where it is).
VIDEO_SEARCH_SECONDS = 5.0


def _frames(path: Path) -> Iterator[tuple[float, Image.Image, float]]:
    """(time from the first frame, the frame as displayed, frame duration) over :data:`VIDEO_SCAN_SECONDS`."""
    try:
        with av.open(str(path), metadata_errors="replace") as container:
            stream = container.streams.video[0]
            check_video_pixels(path, stream)
            step = 1 / float(stream.average_rate or stream.guessed_rate or 25)
            t0: float | None = None
            last = -step
            for frame in container.decode(stream):
                time = float(frame.time) if frame.time is not None else last + step
                last = time
                t0 = time if t0 is None else t0
                if time - t0 > VIDEO_SCAN_SECONDS:
                    return
                charge_frame(frame)
                yield time - t0, frame_image(path, frame), step  # judged as it is displayed
    except av.error.FFmpegError as exc:
        raise MalformedFileError(f"{path}: cannot decode video ({exc})") from exc


def _still_there(track: _Track, image: Image.Image) -> bool:
    if track.plate is not None:
        return _same_plate(image, track.plate, track.reference) is not None
    return has_ai_element(read_box(image, track.box))


def _video_rules(path: Path, ocr: bool, prefilter: bool = True) -> tuple[list[RuleResult], bytes | None]:
    """The opening label of a video: found on the first frames (plate or OCR), followed frame to frame.

    Frames are searched every :data:`VIDEO_SEARCH_STEP` s over the first second and every other step
    up to :data:`VIDEO_SEARCH_SECONDS` s; once a label is found its start is refined on the frames
    since the previous search, and it is re-read every :data:`VIDEO_TRACK_STEP` s (its end refined
    the same way), so the span is exact to the frame while OCR runs only a few times.
    """
    clause = "GB 45438 §5.4"
    thumb: bytes | None = None
    track: _Track | None = None
    pending: list[tuple[float, Image.Image]] = []  # frames since the last look, to refine an edge
    next_look = 0.0
    end: float | None = None
    last_time, last_step, frames = 0.0, 0.04, 0
    stopped = ""
    scan = _frames(path)
    while True:
        try:
            time, image, step = next(scan)
        except StopIteration:
            break
        except _budget.BudgetExceeded as exc:
            if track is None:
                raise
            stopped = f"; scan stopped at {last_time:.2f} s ({exc})"
            break
        frames += 1
        last_time, last_step = time, step
        if thumb is None:
            thumb = _thumbnail(image)
        if time + 1e-6 < next_look:
            pending.append((time, image))
            continue
        if track is None:
            rules = _picture_rules(image, clause, ocr, prefilter) if time <= VIDEO_SEARCH_SECONDS else []
            if rules and rules[0].status == "pass":
                plate = locate_label(image) if "plate" in rules[0].measured else None
                x0, y0, x1, y1 = (int(v) for v in rules[0].measured.get("box") or rules[0].measured["plate"])
                track = _Track(time, time, (x0, y0, x1, y1), rules, plate)
                if plate is not None:
                    track.reference = _plate_fill(image, plate)
                for earlier, frame in reversed(pending):  # the label may have appeared since the last search
                    if not _still_there(track, frame):
                        break
                    track.start = earlier
            elif time > VIDEO_SEARCH_SECONDS:
                break
            # Densely over the opening second (where a conforming label starts), sparser after it.
            next_look = time + (VIDEO_SEARCH_STEP if time < 1.0 else 2 * VIDEO_SEARCH_STEP)
        elif _still_there(track, image):
            track.last = time
            next_look = time + VIDEO_TRACK_STEP
        else:
            end = track.last + step
            for earlier, frame in pending:
                if not _still_there(track, frame):
                    break
                end = earlier + step
            break
        pending = []
    if track is None:
        title = "label on the opening frames"
        return [RuleResult("video-label", clause, title, "fail", "no visible label found")], thumb
    if end is None:  # still there on the last frame looked at: shown until the last frame scanned ends
        end = last_time + last_step
    seconds = end - track.start
    opening = track.start <= VIDEO_OPENING_SLACK
    first, *details = track.rules
    rules = [
        RuleResult(
            "video-label",
            clause,
            "label on the opening frames",
            "pass" if opening else "fail",
            f"{first.detail}, shown from {track.start:.2f} s to {end:.2f} s"
            + ("" if opening else f" (appears only at {track.start:.2f} s, not on the opening frames)"),
            {**first.measured, "start_s": round(track.start, 3), "end_s": round(end, 3)},
        ),
        *details,
        RuleResult(
            "video-label-duration",
            clause,
            "opening label lasts >= 2 s",
            "pass" if seconds >= MIN_SECONDS - 1e-6 else "fail",
            f"label shown for {seconds:.2f} s, from {track.start:.2f} s to {end:.2f} s ({frames} frames decoded)"
            + stopped,
            {"seconds": round(seconds, 3), "start_s": round(track.start, 3), "end_s": round(end, 3)},
        ),
    ]
    return rules, thumb


def check_file(
    path: Path | str,
    *,
    implicit: bool = True,
    ocr: bool = True,
    timing: CueTiming | None = None,
    prefilter: bool = True,
) -> FileReport:
    """Apply every applicable rule to one file; never raises for bad files (they become ``error`` rules).

    ``ocr`` reads visible labels of any style (off: only aigclabel plates are recognised); ``timing``
    restricts audio cues to that exact timing (default: any rhythm GB 45438 §5.3 plausibly allows);
    ``prefilter`` lets the OCR pre-filter skip the label search on pictures and frames that cannot hold
    a line of text (off: every picture is searched, the reference its recall is measured against).
    """
    path = Path(path)
    report = FileReport(path=str(path), kind="unknown")
    error: AIGCLabelError | None = None
    try:
        if not path.is_file():
            raise UnsupportedFormatError(f"{path}: not a file")
        # Our bounded parsers read the file first: one over their limits never reaches a decoder.
        rule, error = _implicit_rule(path)
        if isinstance(error, LimitExceededError):
            raise error
        with hostile_input(path, "content"):
            _apply_rules(report, path, ocr, timing, prefilter)
    except AIGCLabelError as exc:
        if isinstance(exc, UnsupportedFormatError) and isinstance(error, MalformedFileError):
            exc = error  # a file nothing can decode is a damaged one of ours
        report.rules.append(RuleResult("readable", "-", "file can be analysed", "error", str(exc)))
        if isinstance(exc, MalformedFileError):  # not one check has no rules for (that stays "not compliant")
            report.error_code = exc.exit_code
        return report
    if implicit:
        report.rules.insert(0, rule)
        if isinstance(error, MalformedFileError):
            report.error_code = error.exit_code
    return report


def _apply_rules(report: FileReport, path: Path, ocr: bool, timing: CueTiming | None, prefilter: bool) -> None:
    report.kind = detect_kind(path)
    if report.kind == "text":
        report.rules += _text_rules(path)
    elif report.kind == "image":
        rules, report.thumbnail_png = _image_rules(path, ocr, prefilter)
        report.rules += rules
    elif report.kind == "audio":
        report.rules += _audio_rules(path, timing)
    elif report.kind == "video":
        rules, report.thumbnail_png = _video_rules(path, ocr, prefilter)
        report.rules += rules
    elif report.kind == "document":
        report.rules += _document_rules(path)
    else:
        raise UnsupportedFormatError(f"{path}: not a text, image, audio, video or document file aigclabel can check")


def check_files(paths: Iterable[Path | str], **options: Any) -> list[FileReport]:
    """:func:`check_file` on each path."""
    return [check_file(p, **options) for p in paths]


def to_json(reports: Sequence[FileReport]) -> str:
    """The JSON report: one object per file."""
    return json.dumps([r.to_dict() for r in reports], ensure_ascii=False, indent=2)


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#111}
table{border-collapse:collapse;margin:.5em 0 2em}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
.pass{color:#0a6b2a}.fail,.error{color:#b00020;font-weight:bold}.warning{color:#8a5a00}.review{color:#0b4f9c;font-weight:bold}.skipped{color:#666}
.file{display:flex;gap:1.5em;align-items:flex-start}img{border:1px solid #ccc;max-width:240px}
"""


def to_html(reports: Sequence[FileReport], lang: Lang = "en") -> str:
    """A self-contained HTML report in ``lang`` (thumbnails inline as data: URIs; all file-derived text
    escaped). Rule ids and the measured details stay as the checks wrote them."""
    e = html.escape
    ok = sum(r.compliant for r in reports)
    parts = [
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">',
        f"<title>{e(i18n.text('report.title', lang))}</title>",
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{e(i18n.text('report.title', lang))}</h1>"
        f"<p>{e(i18n.text('report.summary', lang, ok=ok, total=len(reports)))}</p>",
    ]
    head = "".join(f"<th>{e(i18n.text(f'report.{key}', lang))}</th>" for key in ("rule", "clause", "status", "detail"))
    for report in reports:
        verdict = i18n.text("report.compliant" if report.compliant else "report.not_compliant", lang)
        cls = "pass" if report.compliant else "fail"
        parts.append(f'<h2>{e(report.path)} <span class="{cls}">{e(verdict)}</span></h2><div class="file">')
        if report.thumbnail_png:
            data = base64.b64encode(report.thumbnail_png).decode("ascii")
            alt = i18n.text("report.thumbnail", lang, path=report.path)
            parts.append(f'<img alt="{e(alt)}" src="data:image/png;base64,{data}">')
        parts.append(f"<table><tr>{head}</tr>")
        for rule in report.rules:
            title, clause = i18n.rule_title(rule.rule, rule.title, lang), i18n.clause_name(rule.clause, lang)
            status = i18n.status_name(rule.status, lang)
            parts.append(
                f"<tr><td>{e(rule.rule)}<br><small>{e(title)}</small></td><td>{e(clause)}</td>"
                f'<td class="{e(rule.status)}">{e(status)}</td><td>{e(rule.detail)}</td></tr>'
            )
        parts.append("</table></div>")
    parts.append("</body></html>")
    return "\n".join(parts)
