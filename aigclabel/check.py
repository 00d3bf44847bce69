"""Compliance report: each file against each GB 45438 rule that can be measured on it.

Rules carry the clause they implement. Implicit labels are judged by :func:`aigclabel.api.inspect`
(§6.1, Annex E). Explicit labels are measured on the content itself: text by pattern (§5.1), images
and video by locating the plate aigclabel draws and measuring its glyph ink height (§5.2, §5.4) and,
for video, how long it stays from the first frame (§5.4), audio by detecting the Morse "AI" rhythm
cue or our shipped spoken clip (§5.3). OCR with tesseract (chi_sim) is an optional extra check that
the plate really reads as a conforming label.

The locator recognises labels aigclabel drew (any plate of its two colours at an edge, any text);
a third-party label in another style is reported as not found, which is a limit of automatic
checking, not proof of absence: the HTML report shows a thumbnail for a human to judge.
"""

from __future__ import annotations

import base64
import html
import io
import json
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from . import api
from ._io import MAX_DECODE_PIXELS
from .errors import AIGCLabelError, LimitExceededError, MalformedFileError, UnsupportedFormatError
from .explicit.audio import CueTiming, scan_audio
from .explicit.image import DARK_PLATE, LIGHT_PLATE, LOCATE_TOLERANCE, MIN_HEIGHT_RATIO, LocatedLabel, locate_label
from .explicit.text import DEFAULT_WINDOW, TEXT_SUFFIXES, find_text_labels, read_text_file, validate_label_text
from .explicit.video import MIN_SECONDS

Status = Literal["pass", "fail", "warning", "skipped", "error"]
Kind = Literal["text", "image", "audio", "video", "unknown"]

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

    @property
    def compliant(self) -> bool:
        """No rule failed or errored (warnings and skipped rules do not count against it)."""
        return bool(self.rules) and all(r.status in ("pass", "warning", "skipped") for r in self.rules)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "path": self.path,
            "kind": self.kind,
            "compliant": self.compliant,
            "rules": [asdict(r) for r in self.rules],
        }


#: Container formats that are documents: checked for their implicit label only, never decoded as media.
DOCUMENT_CONTAINERS = frozenset({"svg", "html", "pdf", "ooxml", "epub"})


def _container_name(path: Path) -> str | None:
    from .containers import open_container

    try:
        return open_container(path).name
    except AIGCLabelError:
        return None


def detect_kind(path: Path) -> Kind:
    """What kind of content ``path`` holds: by suffix for text, else by what Pillow or PyAV can decode."""
    if path.suffix.lower() in TEXT_SUFFIXES:
        return "text"
    try:
        with Image.open(path) as im:
            im.verify()
        return "image"
    except Image.DecompressionBombError:
        return "image"  # identified as an image, just too large to decode: the image rules report the limit
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        pass
    if _container_name(path) in DOCUMENT_CONTAINERS:
        return "unknown"  # FFmpeg "opens" SVG (and more) as an image pipe it cannot decode: not a video
    try:
        with av.open(str(path), metadata_errors="replace") as container:
            videos = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
            if videos:
                return "video"
            if container.streams.audio:
                return "audio"
    except (av.error.FFmpegError, OSError):
        pass
    return "unknown"


def _implicit_rule(path: Path) -> RuleResult:
    rule, clause, title = "implicit-label", "GB 45438 §6.1, Annex E", "implicit metadata label present and valid"
    try:
        result = api.inspect(path)
    except AIGCLabelError as exc:
        return RuleResult(rule, clause, title, "error", str(exc))
    problems = [f"{p.severity} {p.code}: {p.message}" for p in result.problems]
    if result.ok:
        detail = f"label in {result.labels[0].location}"
        return RuleResult(
            rule, clause, title, "pass", detail, {"label": result.label.to_dict() if result.label else {}}
        )
    return RuleResult(rule, clause, title, "fail", "; ".join(problems) or "no conforming label")


def _text_rules(path: Path) -> list[RuleResult]:
    fmt = TEXT_SUFFIXES.get(path.suffix.lower(), "plain")
    content = read_text_file(path)
    found = find_text_labels(content, fmt=fmt)
    rule, clause, title = "text-label", "GB 45438 §5.1; Measures Art. 4(1)(1)", "text label with both elements"
    measured = {"format": fmt, "window": DEFAULT_WINDOW, "found": [asdict(f) for f in found]}
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


def ocr_text(image: Image.Image, located: LocatedLabel) -> str | None:
    """Read the plate with tesseract (chi_sim, one text line); ``None`` if tesseract is unavailable."""
    exe = shutil.which("tesseract")
    if exe is None:
        return None
    crop = image.convert("L").crop(located.plate)
    if located.dark_plate:
        crop = ImageOps.invert(crop)
    scale = max(1.0, 48 / max(1, located.glyph_height))
    crop = crop.resize((round(crop.width * scale), round(crop.height * scale)), Image.Resampling.LANCZOS)
    crop = crop.point(lambda v: 255 if v > 128 else 0)
    crop = ImageOps.expand(crop, border=20, fill=255)
    buf = io.BytesIO()
    crop.save(buf, format="PNG")
    try:
        done = subprocess.run(
            [exe, "stdin", "stdout", "-l", "chi_sim", "--psm", "7"],
            input=buf.getvalue(),
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.decode("utf-8", "replace").strip().replace(" ", "") if done.returncode == 0 else None


def _size_rule(clause: str, located: LocatedLabel) -> RuleResult:
    ratio = located.glyph_ratio
    measured = {"glyph_height_px": located.glyph_height, "short_side_px": located.short_side, "ratio": round(ratio, 4)}
    status: Status = "pass" if ratio >= MIN_HEIGHT_RATIO else "fail"
    detail = f"glyph ink height {located.glyph_height} px = {ratio:.1%} of the {located.short_side} px shortest side"
    return RuleResult("label-size", clause, "character height >= 5 % of the shortest side", status, detail, measured)


def _image_rules(path: Path, ocr: bool) -> tuple[list[RuleResult], bytes]:
    try:
        with Image.open(path) as opened:
            if opened.width * opened.height > MAX_DECODE_PIXELS:
                raise LimitExceededError(
                    f"{path}: {opened.width}x{opened.height} image is over the "
                    f"{MAX_DECODE_PIXELS // 1_000_000} MP scan limit"
                )
            image = ImageOps.exif_transpose(opened) or opened
            image.load()
            image = image.convert("RGB")
    except Image.DecompressionBombError as exc:
        raise LimitExceededError(f"{path}: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise MalformedFileError(f"{path}: cannot decode image ({exc})") from exc
    clause = "GB 45438 §5.2"
    located = locate_label(image)
    rules: list[RuleResult] = []
    if located is None:
        rules.append(
            RuleResult(
                "image-label", clause, "visible label on an edge or corner", "fail", "no aigclabel label plate found"
            )
        )
    else:
        rules.append(
            RuleResult(
                "image-label",
                clause,
                "visible label on an edge or corner",
                "pass",
                f"plate at {located.plate}",
                {"plate": list(located.plate), "ink": list(located.ink)},
            )
        )
        rules.append(_size_rule(clause, located))
        if ocr:
            rules.append(_ocr_rule(image, located, clause))
    return rules, _thumbnail(image)


def _ocr_rule(image: Image.Image, located: LocatedLabel, clause: str) -> RuleResult:
    text = ocr_text(image, located)
    title = "OCR reads a conforming label"
    if text is None:
        return RuleResult("label-ocr", clause, title, "skipped", "tesseract with chi_sim is not available")
    try:
        validate_label_text(text)
    except AIGCLabelError:
        return RuleResult("label-ocr", clause, title, "warning", f"OCR read {text!r}", {"ocr": text})
    return RuleResult("label-ocr", clause, title, "pass", f"OCR read {text!r}", {"ocr": text})


def _thumbnail(image: Image.Image) -> bytes:
    thumb = image.copy()
    thumb.thumbnail((240, 240))
    buf = io.BytesIO()
    thumb.save(buf, format="PNG")
    return buf.getvalue()


def _audio_rules(path: Path, timing: CueTiming) -> list[RuleResult]:
    scan = scan_audio(path, timing)
    duration, cues, spoken = scan.duration, scan.cues, scan.spoken

    def where(t: float, length: float) -> str:
        to_start, to_end = t, duration - (t + length)
        if to_start <= AUDIO_END_WINDOW and to_start <= to_end:
            return "start"
        return "end" if to_end <= AUDIO_END_WINDOW else "middle"

    measured: dict[str, Any] = {
        "duration_s": round(duration, 3),
        "cues": [
            {
                "start_s": round(c.start, 3),
                "tones_s": [round(x, 3) for x in c.tones],
                "gaps_s": [round(x, 3) for x in c.gaps],
                "position": where(c.start, c.end - c.start),
            }
            for c in cues
        ],
        "spoken_label_s": [round(t, 3) for t in spoken],
    }
    clause = "GB 45438 §5.3"
    title = "spoken label or short-long-short-short rhythm cue"
    if cues:
        found = ", ".join(f"{c.start:.2f} s ({where(c.start, c.end - c.start)})" for c in cues)
        tones = "/".join(f"{x * 1000:.0f}" for x in cues[0].tones)
        detail = f"rhythm cue at {found}; tones {tones} ms"
        if spoken:
            detail += "; spoken label at " + ", ".join(f"{t:.2f} s" for t in spoken)
        return [RuleResult("audio-label", clause, title, "pass", detail, measured)]
    if spoken:
        return [RuleResult("audio-label", clause, title, "pass", f"spoken label at {spoken[0]:.2f} s", measured)]
    return [RuleResult("audio-label", clause, title, "fail", "no rhythm cue or aigclabel spoken label found", measured)]


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


def _video_rules(path: Path, ocr: bool) -> tuple[list[RuleResult], bytes | None]:
    clause = "GB 45438 §5.4"
    thumb: bytes | None = None
    first: LocatedLabel | None = None
    first_image: Image.Image | None = None
    reference = (0.0, 0.0)
    t0: float | None = None
    covered_until: float | None = None
    last = 0.0
    frames = 0
    try:
        with av.open(str(path), metadata_errors="replace") as container:
            stream = container.streams.video[0]
            rate = float(stream.average_rate or stream.guessed_rate or 25)
            for frame in container.decode(stream):
                time = float(frame.time) if frame.time is not None else last + 1 / rate
                last = time
                t0 = time if t0 is None else t0
                if time - t0 > VIDEO_SCAN_SECONDS:
                    break
                image = frame.to_image()  # type: ignore[no-untyped-call]
                angle = round(float(getattr(frame, "rotation", 0) or 0)) % 360
                if angle in (90, 180, 270):  # judge the frame as it is displayed
                    image = image.rotate(angle, expand=True)
                frames += 1
                if thumb is None:
                    thumb = _thumbnail(image)
                located = locate_label(image) if first is None else _same_plate(image, first, reference)
                if located is None:
                    covered_until = time
                    break
                if first is None:
                    first, first_image, reference = located, image, _plate_fill(image, located)
            else:
                covered_until = last + 1 / rate  # label on every frame: shown until the last frame ends
    except av.error.FFmpegError as exc:
        raise MalformedFileError(f"{path}: cannot decode video ({exc})") from exc
    if first is None or t0 is None:
        return [
            RuleResult("video-label", clause, "label on the opening frames", "fail", "no label on the first frame")
        ], thumb
    seconds = (covered_until or last) - t0
    rules = [
        RuleResult("video-label", clause, "label on the opening frames", "pass", f"plate at {first.plate} on frame 0"),
        _size_rule(clause, first),
        RuleResult(
            "video-label-duration",
            clause,
            "opening label lasts >= 2 s",
            "pass" if seconds >= MIN_SECONDS - 1e-6 else "fail",
            f"label on every frame for the first {seconds:.2f} s ({frames} frames scanned)",
            {"seconds": round(seconds, 3)},
        ),
    ]
    if ocr and first_image is not None:
        rules.append(_ocr_rule(first_image, first, clause))
    return rules, thumb


def check_file(
    path: Path | str, *, implicit: bool = True, ocr: bool = False, timing: CueTiming | None = None
) -> FileReport:
    """Apply every applicable rule to one file; never raises for bad files (they become ``error`` rules)."""
    path = Path(path)
    report = FileReport(path=str(path), kind="unknown")
    try:
        if not path.is_file():
            raise UnsupportedFormatError(f"{path}: not a file")
        report.kind = detect_kind(path)
        if report.kind == "text":
            report.rules += _text_rules(path)
        elif report.kind == "image":
            rules, report.thumbnail_png = _image_rules(path, ocr)
            report.rules += rules
        elif report.kind == "audio":
            report.rules += _audio_rules(path, timing or CueTiming())
        elif report.kind == "video":
            rules, report.thumbnail_png = _video_rules(path, ocr)
            report.rules += rules
        else:
            raise UnsupportedFormatError(f"{path}: not a text, image, audio or video file aigclabel can check")
    except AIGCLabelError as exc:
        report.rules.append(RuleResult("readable", "-", "file can be analysed", "error", str(exc)))
        return report
    if implicit:
        report.rules.insert(0, _implicit_rule(path))
    return report


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
.pass{color:#0a6b2a}.fail,.error{color:#b00020;font-weight:bold}.warning{color:#8a5a00}.skipped{color:#666}
.file{display:flex;gap:1.5em;align-items:flex-start}img{border:1px solid #ccc;max-width:240px}
"""


def to_html(reports: Sequence[FileReport]) -> str:
    """A self-contained HTML report (thumbnails inline as data: URIs; all file-derived text escaped)."""
    e = html.escape
    ok = sum(r.compliant for r in reports)
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        "<title>aigclabel compliance report</title>",
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>aigclabel compliance report</h1><p>{ok} of {len(reports)} files compliant.</p>",
    ]
    for report in reports:
        verdict = "compliant" if report.compliant else "NOT compliant"
        cls = "pass" if report.compliant else "fail"
        parts.append(f'<h2>{e(report.path)} <span class="{cls}">{verdict}</span></h2><div class="file">')
        if report.thumbnail_png:
            data = base64.b64encode(report.thumbnail_png).decode("ascii")
            parts.append(f'<img alt="thumbnail of {e(report.path)}" src="data:image/png;base64,{data}">')
        parts.append("<table><tr><th>rule</th><th>clause</th><th>status</th><th>detail</th></tr>")
        for rule in report.rules:
            parts.append(
                f"<tr><td>{e(rule.rule)}<br><small>{e(rule.title)}</small></td><td>{e(rule.clause)}</td>"
                f'<td class="{e(rule.status)}">{e(rule.status)}</td><td>{e(rule.detail)}</td></tr>'
            )
        parts.append("</table></div>")
    parts.append("</body></html>")
    return "\n".join(parts)
