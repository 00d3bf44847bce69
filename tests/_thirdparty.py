"""A held-out set of explicit labels drawn the way *other* producers draw them, with the known truth.

Nothing here uses aigclabel's own labelers: images are drawn with Pillow in several CJK and Latin
fonts, colours, outlines, plates and positions; videos with ffmpeg's ``drawtext`` overlay; audio cues
as numpy tones at several pitches and speeds over music or noise, and speech with espeak-ng; text
prompts in several bracket styles. Each case says whether it complies with GB 45438 §5 and, if not,
which rule must fail (the reason a person would give), or that a person must review it.

``cases()`` lists them all (64); ``cases(small=True)`` a subset for the test suite. The benchmark
(``bench/verify.py``) runs the full set.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy.io import wavfile

from aigclabel.explicit.fonts import find_cjk_font

Maker = Callable[[Path], Path]
RATE = 16000


@dataclass(frozen=True)
class Case:
    """One file of the held-out set and its truth."""

    name: str
    kind: str
    make: Maker
    compliant: bool
    #: The rule that must fail (non-compliant), "review" when a person must decide, else None.
    reason: str | None = None
    #: Whether the file carries a label at all (verify must then find a trace, or flag it for review).
    labelled: bool = True


# ----------------------------------------------------------------------------------------- images
def _fonts() -> list[tuple[str, int]]:
    found = [(str(find_cjk_font()), 0)]
    for path, index in (
        ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
        ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 1),
    ):
        if Path(path).is_file():
            found.append((path, index))
    return found


def _latin_font() -> tuple[str, int]:
    for path in (
        "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    ):
        if Path(path).is_file():
            return path, 0
    return _fonts()[0]


def _background(index: int, size: tuple[int, int]) -> Image.Image:
    from skimage import data

    pictures = [data.astronaut, data.coffee, data.chelsea, data.rocket, data.camera, data.immunohistochemistry]
    picture = np.asarray(pictures[index % len(pictures)]())
    image = Image.fromarray(picture).convert("RGB")
    return image.resize(size, Image.Resampling.LANCZOS)


def _ink_height(text: str, font: ImageFont.FreeTypeFont) -> int:
    box = font.getbbox(text)
    return box[3] - box[1]


def draw_label(
    image: Image.Image,
    text: str,
    *,
    ratio: float,
    position: str,
    style: str,
    font: tuple[str, int],
) -> Image.Image:
    """Draw ``text`` with characters ``ratio`` of the shortest side at ``position`` in ``style``."""
    image = image.copy()
    short = min(image.size)
    size = 8
    while True:
        face = ImageFont.truetype(font[0], size, index=font[1])
        if _ink_height(text, face) >= ratio * short:
            break
        size += 1
    draw = ImageDraw.Draw(image, "RGBA")
    left, top, right, bottom = draw.textbbox((0, 0), text, font=face)
    w, h = right - left, bottom - top
    margin = int(0.04 * short)
    xs = {"l": margin, "c": (image.width - w) // 2, "r": image.width - w - margin}
    ys = {"t": margin, "m": (image.height - h) // 2, "b": image.height - h - margin}
    x, y = xs[position[1]], ys[position[0]]
    origin = (x - left, y - top)
    pad = max(3, h // 4)
    if style == "outline":
        draw.text(origin, text, font=face, fill="white", stroke_width=max(2, size // 18), stroke_fill="black")
    elif style == "red-plate":
        draw.rectangle((x - pad, y - pad, x + w + pad, y + h + pad), fill=(205, 24, 32))
        draw.text(origin, text, font=face, fill="white")
    elif style == "glass":
        draw.rectangle((x - pad, y - pad, x + w + pad, y + h + pad), fill=(0, 0, 0, 150))
        draw.text(origin, text, font=face, fill=(255, 230, 80))
    elif style == "shadow":
        draw.text((origin[0] + 3, origin[1] + 3), text, font=face, fill=(0, 0, 0, 200))
        draw.text(origin, text, font=face, fill=(120, 240, 255))
    else:  # "white-plate": dark text on a light rounded plate
        draw.rounded_rectangle((x - pad, y - pad, x + w + pad, y + h + pad), radius=pad, fill=(245, 245, 245, 230))
        draw.text(origin, text, font=face, fill=(30, 30, 30))
    return image


def _image_case(
    name: str,
    index: int,
    size: tuple[int, int],
    text: str | None,
    *,
    ratio: float = 0.065,
    position: str = "br",
    style: str = "outline",
    latin: bool = False,
    fmt: str = "jpg",
    compliant: bool = True,
    reason: str | None = None,
) -> Case:
    def make(folder: Path) -> Path:
        image = _background(index, size)
        if text is not None:
            fonts = _fonts()
            font = _latin_font() if latin else fonts[index % len(fonts)]
            image = draw_label(image, text, ratio=ratio, position=position, style=style, font=font)
        path = folder / f"{name}.{fmt}"
        image.save(path, **({"quality": 88} if fmt == "jpg" else {}))
        return path

    return Case(name, "image", make, compliant, reason, labelled=text is not None)


def image_cases() -> list[Case]:
    """28 images: 16 compliant labels in other styles, 12 that break a rule or carry none."""
    ok = [
        ("AI生成", "br", "outline", 0.065, False),
        ("人工智能生成", "tl", "red-plate", 0.06, False),
        ("由AI生成", "tr", "glass", 0.07, False),
        ("AI-generated", "bc", "outline", 0.065, True),
        ("人工智能合成", "bl", "white-plate", 0.062, False),
        ("AI生成内容", "tc", "shadow", 0.07, False),
        ("本图由人工智能生成", "br", "glass", 0.06, False),
        ("AI Generated", "tl", "red-plate", 0.066, True),
        ("AI生成", "tr", "red-plate", 0.07, False),
        ("人工智能生成", "bc", "outline", 0.064, False),
        ("内容由AI生成", "bl", "outline", 0.061, False),
        ("AI合成", "br", "white-plate", 0.068, False),
        ("人工智能生成", "tl", "shadow", 0.065, False),
        ("Generated by AI", "br", "glass", 0.065, True),
        ("AI生成", "bl", "glass", 0.075, False),
        ("疑似AI生成", "tr", "outline", 0.062, False),
    ]
    sizes = [(1280, 960), (1024, 768), (800, 1066), (1200, 675), (960, 960), (1600, 1200)]
    cases = [
        _image_case(
            f"img-ok-{i:02d}",
            i,
            sizes[i % len(sizes)],
            text,
            ratio=ratio,
            position=pos,
            style=style,
            latin=latin,
            fmt="png" if i % 4 == 3 else "jpg",
        )
        for i, (text, pos, style, ratio, latin) in enumerate(ok)
    ]
    bad = [
        ("img-small-0", "AI生成", "br", "outline", 0.033, "label-size"),
        ("img-small-1", "人工智能生成", "tl", "red-plate", 0.035, "label-size"),
        ("img-small-2", "由AI生成", "bc", "glass", 0.04, "label-size"),
        ("img-centre-0", "AI生成", "mc", "outline", 0.065, "label-position"),
        ("img-centre-1", "人工智能生成", "mc", "red-plate", 0.06, "label-position"),
        ("img-centre-2", "AI生成内容", "mc", "glass", 0.07, "label-position"),
        ("img-text-0", "AI", "br", "red-plate", 0.07, "label-text"),
        ("img-text-1", "AI ART", "tl", "outline", 0.065, "label-text"),
        ("img-text-2", "AI绘画", "tr", "glass", 0.065, "label-text"),
    ]
    cases += [
        _image_case(
            name,
            i + 2,
            sizes[i % len(sizes)],
            text,
            ratio=ratio,
            position=pos,
            style=style,
            compliant=False,
            reason=why,
        )
        for i, (name, text, pos, style, ratio, why) in enumerate(bad)
    ]
    cases += [
        _image_case("img-none-0", 0, (1280, 960), None, compliant=False, reason="image-label"),
        _image_case("img-none-1", 3, (1200, 675), None, compliant=False, reason="image-label"),
        _image_case(
            "img-none-2",
            1,
            (1024, 768),
            "旅行日记 2024",
            position="bl",
            style="white-plate",
            compliant=False,
            reason="image-label",
        ),
    ]
    # The last one carries text, but no AI element: not a label.
    return [*cases[:-1], Case(cases[-1].name, "image", cases[-1].make, False, "image-label", labelled=False)]


# ----------------------------------------------------------------------------------------- video
def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(":", "\\:").replace("'", "\\'")


def _video_case(
    name: str,
    text: str | None,
    *,
    start: float = 0.0,
    end: float = 3.0,
    ratio: float = 0.07,
    position: str = "br",
    box: bool = False,
    latin: bool = False,
    compliant: bool = True,
    reason: str | None = None,
    seconds: float = 4.0,
) -> Case:
    def make(folder: Path) -> Path:
        ffmpeg = shutil.which("ffmpeg")
        assert ffmpeg, "ffmpeg is needed to build the video cases"
        width, height = 480, 270
        path = folder / f"{name}.mp4"
        filters = []
        if text is not None:
            font = _latin_font() if latin else _fonts()[0]
            face = ImageFont.truetype(font[0], 100, index=font[1])
            size = round(100 * ratio * height / _ink_height(text, face))
            margin = int(0.05 * height)
            x = {"l": f"{margin}", "c": "(w-text_w)/2", "r": f"w-text_w-{margin}"}[position[1]]
            y = {"t": f"{margin}", "m": "(h-text_h)/2", "b": f"h-text_h-{margin}"}[position[0]]
            style = (
                "box=1:boxcolor=red@0.9:boxborderw=6:fontcolor=white"
                if box
                else "fontcolor=white:borderw=2:bordercolor=black"
            )
            filters.append(
                f"drawtext=fontfile='{_escape(font[0])}':text='{_escape(text)}':fontsize={size}:x={x}:y={y}:{style}"
                f":enable='between(t,{start},{end})'"
            )
        command = [
            ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
            "-i", f"testsrc2=s={width}x{height}:r=25:d={seconds}",
            *(["-vf", ",".join(filters)] if filters else []),
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path),
        ]  # fmt: skip
        subprocess.run(command, check=True)
        return path

    return Case(name, "video", make, compliant, reason, labelled=text is not None)


def video_cases() -> list[Case]:
    """10 videos: 5 compliant opening labels in other styles, 5 that break a rule or carry none."""
    return [
        _video_case("vid-ok-0", "AI生成", start=0.0, end=3.0),
        _video_case("vid-ok-1", "人工智能生成", start=0.2, end=3.2, box=True, position="tl"),
        _video_case("vid-ok-2", "AI生成", start=0.0, end=10.0, position="tr"),
        _video_case("vid-ok-3", "AI-generated", start=0.0, end=2.6, latin=True, position="bl"),
        _video_case("vid-ok-4", "由人工智能合成", start=0.0, end=3.5, box=True, position="bc"),
        _video_case("vid-short", "AI生成", start=0.0, end=1.0, compliant=False, reason="video-label-duration"),
        _video_case("vid-late", "AI生成", start=2.0, end=4.0, compliant=False, reason="video-label"),
        _video_case("vid-small", "AI生成", ratio=0.03, compliant=False, reason="label-size"),
        _video_case("vid-centre", "人工智能生成", position="mc", box=True, compliant=False, reason="label-position"),
        _video_case("vid-none", None, compliant=False, reason="video-label"),
    ]


# ----------------------------------------------------------------------------------------- audio
def _tone(freq: float, seconds: float, amp: float = 0.4) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    ramp = np.minimum(1.0, np.minimum(t, seconds - t) / 0.005)
    return (amp * np.sin(2 * np.pi * freq * t) * ramp).astype(np.float32)


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.float32)


def _rhythm(freq: float, dot: float, pattern: str = "SLSS") -> np.ndarray:
    parts: list[np.ndarray] = []
    for mark in pattern:
        parts += [_tone(freq, dot if mark == "S" else 3 * dot), _silence(dot)]
    return np.concatenate(parts)


def _bed(kind: str, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    if kind == "noise":
        return (0.03 * rng.standard_normal(t.size)).astype(np.float32)
    if kind == "music":  # slowly swelling chords
        x = np.zeros_like(t)
        for i, f in enumerate((196, 247, 294, 392)):
            x += 0.07 * np.sin(2 * np.pi * f * t + i) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.25 * t + i))
        return x.astype(np.float32)
    # a melody: one note every 0.5 s
    notes = rng.choice([262, 294, 330, 349, 392, 440, 494], size=int(seconds / 0.5) + 1)
    return np.concatenate([_tone(float(f), 0.5, 0.2) for f in notes])[: t.size]


def _speech(text: str, voice: str) -> np.ndarray:
    espeak = shutil.which("espeak-ng")
    assert espeak, "espeak-ng is needed to build the spoken cases"
    with tempfile.TemporaryDirectory() as folder:
        spoken = Path(folder) / "speech.wav"
        subprocess.run([espeak, "-v", voice, "-w", str(spoken), text], capture_output=True, check=True)
        rate, samples = wavfile.read(spoken)
    x = samples.astype(np.float32) / 32768.0
    idx = np.round(np.arange(0, x.size * RATE / rate) * rate / RATE).astype(int)
    return 0.8 * x[np.clip(idx, 0, x.size - 1)]


def _audio_case(
    name: str, parts: Callable[[], list[np.ndarray]], compliant: bool, reason: str | None, labelled: bool = True
) -> Case:
    def make(folder: Path) -> Path:
        path = folder / f"{name}.wav"
        pcm = np.clip(np.concatenate(parts()), -1, 1)
        wavfile.write(path, RATE, (pcm * 32767).astype(np.int16))
        return path

    return Case(name, "audio", make, compliant, reason, labelled)


def audio_cases() -> list[Case]:
    """14 audio files: rhythm cues at several pitches, speeds and places, speech, and 5 without a label."""
    cues = [
        ("aud-ok-600-150-start", 600, 0.15, "start", "music"),
        ("aud-ok-880-80-start", 880, 0.08, "start", "noise"),
        ("aud-ok-1000-120-end", 1000, 0.12, "end", "melody"),
        ("aud-ok-1500-100-start", 1500, 0.10, "start", "music"),
        ("aud-ok-2200-200-end", 2200, 0.20, "end", "noise"),
        ("aud-ok-750-60-start", 750, 0.06, "start", "melody"),
        ("aud-ok-440-240-end", 440, 0.24, "end", "music"),
    ]
    found: list[Case] = []
    for i, (name, freq, dot, where, bed) in enumerate(cues):

        def parts(
            freq: float = freq, dot: float = dot, where: str = where, bed: str = bed, seed: int = i
        ) -> list[np.ndarray]:
            body = _bed(bed, 6.0, seed)
            cue = [_rhythm(freq, dot), _silence(0.3)]
            return [*cue, body] if where == "start" else [body, _silence(0.3), *cue]

        found.append(_audio_case(name, parts, True, None))
    found += [
        _audio_case(
            "aud-speech-zh",
            lambda: [_speech("本内容由人工智能生成", "cmn"), _silence(0.3), _bed("music", 6, 9)],
            True,
            "review",
        ),
        _audio_case(
            "aud-speech-en",
            lambda: [_bed("noise", 6, 10), _speech("This audio was generated by AI", "en")],
            True,
            "review",
        ),
        _audio_case("aud-none-music", lambda: [_bed("music", 8, 11)], False, "audio-label", labelled=False),
        _audio_case("aud-none-melody", lambda: [_bed("melody", 8, 12)], False, "audio-label", labelled=False),
        _audio_case("aud-none-noise", lambda: [_bed("noise", 8, 13)], False, "audio-label", labelled=False),
        _audio_case(
            "aud-equal-beeps",
            lambda: [_rhythm(880, 0.1, "SSSS"), _bed("music", 6, 14)],
            False,
            "audio-label",
            labelled=False,
        ),
        _audio_case(
            "aud-long-short",
            lambda: [_rhythm(880, 0.1, "LSLL"), _bed("music", 6, 15)],
            False,
            "audio-label",
            labelled=False,
        ),
    ]
    return found


# ----------------------------------------------------------------------------------------- text
def _text_case(name: str, suffix: str, content: str, compliant: bool, reason: str | None = None) -> Case:
    def make(folder: Path) -> Path:
        path = folder / f"{name}{suffix}"
        path.write_text(content, encoding="utf-8")
        return path

    return Case(name, "text", make, compliant, reason, labelled=compliant)


_PARAS = ["今天我们讨论城市交通的变化。" * 6, "公共交通的使用率逐年上升。" * 6, "未来十年的规划仍有很多挑战。" * 6]


def text_cases() -> list[Case]:
    """12 texts: prompts in 7 bracket styles and places, 5 without a conforming prompt."""
    body = "\n\n".join(_PARAS)
    html = "".join(f"<p>{p}</p>" for p in _PARAS)
    return [
        _text_case("txt-ok-start", ".txt", f"【人工智能生成】\n\n{body}\n", True),
        _text_case("txt-ok-end", ".txt", f"{body}\n\n(AI生成)\n", True),
        _text_case("txt-ok-en", ".txt", f"[AI-generated]\n\n{body}\n", True),
        _text_case("md-ok-between", ".md", f"{_PARAS[0]}\n\n> 〔本文由AI生成〕\n\n{_PARAS[1]}\n\n{_PARAS[2]}\n", True),
        _text_case("md-ok-start", ".md", f"**「AI生成」**\n\n{body}\n", True),
        _text_case("html-ok-end", ".html", f"<html><body>{html}<p>《内容由人工智能生成》</p></body></html>", True),
        _text_case("html-ok-start", ".html", f"<html><body><div>〖人工智能合成〗</div>{html}</body></html>", True),
        _text_case("txt-none", ".txt", f"{body}\n", False, "text-label"),
        _text_case("md-ai-only", ".md", f"本文使用AI写作。\n\n{body}\n", False, "text-label"),
        _text_case(
            "html-no-ai", ".html", f"<html><body><p>本文由机器生成</p>{html}</body></html>", False, "text-label"
        ),
        _text_case("txt-ai-topic", ".txt", f"人工智能正在改变交通。\n\n{body}\n", False, "text-label"),
        _text_case("md-generated-only", ".md", f"{body}\n\n*自动生成于 2026-05-01*\n", False, "text-label"),
    ]


def cases(*, small: bool = False) -> list[Case]:
    """The held-out set (64 files), or with ``small`` a subset for the test suite (16 files)."""
    every = [*image_cases(), *video_cases(), *audio_cases(), *text_cases()]
    if not small:
        return every
    pick = {
        "img-ok-00", "img-ok-01", "img-ok-03", "img-small-0", "img-centre-1", "img-text-1", "img-none-2",
        "vid-ok-1", "vid-short",
        "aud-ok-880-80-start", "aud-ok-2200-200-end", "aud-speech-zh", "aud-equal-beeps",
        "md-ok-between", "html-ok-end", "md-ai-only",
    }  # fmt: skip
    return [c for c in every if c.name in pick]


def judge(case: Case, report_rules: list[tuple[str, str]]) -> tuple[bool, str]:
    """Whether ``check``'s rules ``[(rule, status)]`` match the truth, with the reason it does not."""
    failing = {rule for rule, status in report_rules if status in ("fail", "error")}
    review = any(status == "review" for _, status in report_rules)
    if case.compliant:
        if failing:
            return False, f"called non-compliant: {sorted(failing)} failed"
        if case.reason == "review" and not review:
            return False, "should ask for human review"
        return True, "ok"
    if not failing:
        return False, "called compliant"
    if failing != {case.reason}:
        return False, f"wrong reason: {sorted(failing)} failed, expected {case.reason}"
    return True, "ok"
