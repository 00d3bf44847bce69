"""Explicit labels for text (GB 45438 §5.1): prefix, suffix or inline, plain/Markdown/HTML aware,
and wrappers that label streamed LLM output without buffering it.

Every label string must contain the AI element ("人工智能" or "AI") and the generation element
("生成" and/or "合成"); :func:`validate_label_text` enforces that for every configured text, so an
English-only "AI-generated" badge, which §5.1 does not accept as a text prompt, is rejected.
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Literal, get_args

from .._io import atomic_output
from ..containers import container_for_suffix
from ..errors import (
    ExplicitLabelError,
    InvalidLabelError,
    LimitExceededError,
    MalformedFileError,
    UnsupportedFormatError,
)
from ._implicit import ImplicitPolicy, read_implicit, restore_implicit

Position = Literal["start", "end", "both", "inline"]
TextFormat = Literal["plain", "markdown", "html"]

#: The label text used when none is configured.
DEFAULT_LABEL = "人工智能生成"
#: A bilingual variant; the Chinese part carries both required elements.
ENGLISH_LABEL = "AI生成 (AI-generated content)"
AI_ELEMENTS = ("人工智能", "AI")
GENERATION_ELEMENTS = ("生成", "合成")
#: Longest label we accept: a label is a short prompt, not a paragraph.
MAX_LABEL_CHARS = 120
#: Characters from either end inside which a label counts as "at the start/end" (an engineering
#: choice shared with other verifiers; the standard sets no number).
DEFAULT_WINDOW = 64

# Both elements close together, in either order, on one line: "人工智能生成", "由AI生成", "合成 by AI".
_GENERATED = r"(?:生成|合成|[Gg]enerated|GENERATED|[Ss]ynthesi[sz]ed)"
_LABEL_RE = re.compile(
    rf"(?:人工智能|(?<![A-Za-z])AI)[^\n]{{0,12}}?{_GENERATED}|(?:生成|合成)[^\n]{{0,12}}?(?:人工智能|AI(?![A-Za-z]))"
)
_FRONT_MATTER_RE = re.compile(r"\A(?:\ufeff)?---[ \t]*\r?\n.*?\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S)
_MD_SPECIAL_RE = re.compile(r"([\\`*_{}\[\]<>#+!|~])")


def validate_label_text(text: str) -> str:
    """Return ``text`` if it is a conforming label prompt, else raise :class:`InvalidLabelError`."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidLabelError("label text is empty")
    if len(text) > MAX_LABEL_CHARS:
        raise InvalidLabelError(f"label text is {len(text)} characters; at most {MAX_LABEL_CHARS} allowed")
    if any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in text):
        raise InvalidLabelError("label text contains control characters")
    missing = []
    if not any(e in text for e in AI_ELEMENTS):
        missing.append('the AI element ("人工智能" or "AI")')
    if not any(e in text for e in GENERATION_ELEMENTS):
        missing.append('the generation element ("生成" or "合成")')
    if missing:
        raise InvalidLabelError(f"label text {text!r} lacks {' and '.join(missing)} (GB 45438 §5.1-5.4)")
    return text


@dataclass(frozen=True)
class _Decoration:
    head: str
    tail: str
    inline: str


def _decorate(label: str, fmt: TextFormat) -> _Decoration:
    if fmt == "plain":
        tag = f"【{label}】"
        return _Decoration(f"{tag}\n\n", f"\n\n{tag}\n", f"{tag}\n\n")
    if fmt == "markdown":
        escaped = _MD_SPECIAL_RE.sub(r"\\\1", label)
        tag = f"> **【{escaped}】**"
        return _Decoration(f"{tag}\n\n", f"\n\n{tag}\n", f"{tag}\n\n")
    if fmt == "html":
        esc = html.escape(label, quote=True)
        tag = f'<p class="aigc-label" role="note" aria-label="{esc}">【{esc}】</p>'
        return _Decoration(f"{tag}\n", f"\n{tag}\n", f"{tag}\n")
    raise ExplicitLabelError(f"unknown text format {fmt!r}; use one of {', '.join(get_args(TextFormat))}")


def _split_front_matter(text: str) -> tuple[str, str]:
    match = _FRONT_MATTER_RE.match(text)
    return (text[: match.end()], text[match.end() :]) if match else ("", text)


def _fence_free_boundaries(body: str) -> list[int]:
    """Offsets just after blank-line paragraph breaks that are not inside a ``` code fence."""
    out: list[int] = []
    in_fence = False
    offset = 0
    lines = body.splitlines(keepends=True)
    for i, line in enumerate(lines):
        offset += len(line)
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        if not in_fence and not line.strip() and i + 1 < len(lines):
            out.append(offset)
    return out


def _html_body_span(doc: str) -> tuple[int, int]:
    """Where the visible content sits: inside <body>, or after </head>/<html>/<!doctype> when the
    optional tags are omitted, and before </body> or </html>."""
    start = 0
    for pattern in (r"<body\b[^>]*>", r"</head\s*>", r"<html\b[^>]*>", r"<!doctype[^>]*>"):
        found = re.search(pattern, doc, re.I)
        if found:
            start = found.end()
            break
    end = len(doc)
    for pattern in (r"</body\s*>", r"</html\s*>"):
        closing = [m for m in re.finditer(pattern, doc, re.I) if m.start() >= start]
        if closing:
            end = closing[-1].start()
            break
    return start, end


def label_text(
    content: str, *, label: str = DEFAULT_LABEL, position: Position = "start", fmt: TextFormat = "plain"
) -> str:
    """``content`` with a visible label at the start, end, both, or an inline paragraph break.

    Markdown: the label goes after any YAML front matter (which may hold the implicit label) and
    never inside a code fence. HTML: inside ``<body>`` when there is one.
    """
    validate_label_text(label)
    deco = _decorate(label, fmt)
    if fmt == "html":
        start, end = _html_body_span(content)
        head, body, tail = content[:start], content[start:end], content[end:]
    elif fmt == "markdown":
        head, body = _split_front_matter(content)
        tail = ""
    else:
        head, body, tail = "", content, ""
    if position == "inline":
        if fmt == "html":
            marks = [m.end() for m in re.finditer(r"</(?:p|div|section|pre|ul|ol|table|h[1-6])\s*>", body, re.I)]
        else:
            marks = _fence_free_boundaries(body)
        marks = [m for m in marks if 0 < m < len(body)]
        if not marks:  # no paragraph to put it between: fall back to the start, which always conforms
            return head + deco.head + body + tail
        mid = min(marks, key=lambda m: abs(m - len(body) / 2))
        sep = "\n" if fmt == "html" else ""
        return head + body[:mid] + sep + deco.inline + body[mid:].lstrip("\n" if fmt == "html" else "") + tail
    if position not in ("start", "end", "both"):
        raise ExplicitLabelError(f"unknown label position {position!r}; use one of {', '.join(get_args(Position))}")
    if position in ("start", "both"):
        body = deco.head + body
    if position in ("end", "both"):
        body = body.rstrip("\n") + deco.tail
    return head + body + tail


def label_stream(
    chunks: Iterable[str],
    *,
    label: str = DEFAULT_LABEL,
    position: Literal["start", "end", "both"] = "start",
    fmt: TextFormat = "plain",
) -> Iterator[str]:
    """Label a stream of text chunks (e.g. streamed LLM output) without buffering it.

    The start label is yielded before the first chunk is requested; each chunk is passed on as soon
    as it arrives; the end label follows the last chunk.
    """
    validate_label_text(label)
    deco = _decorate(label, fmt)
    if position in ("start", "both"):
        yield deco.head
    yield from chunks
    if position in ("end", "both"):
        yield deco.tail


async def alabel_stream(
    chunks: AsyncIterable[str],
    *,
    label: str = DEFAULT_LABEL,
    position: Literal["start", "end", "both"] = "start",
    fmt: TextFormat = "plain",
) -> AsyncIterator[str]:
    """Async form of :func:`label_stream` for async LLM clients."""
    validate_label_text(label)
    deco = _decorate(label, fmt)
    if position in ("start", "both"):
        yield deco.head
    async for chunk in chunks:
        yield chunk
    if position in ("end", "both"):
        yield deco.tail


#: How each text container's content is labelled, for :func:`add_text_label` and the checker. A test
#: keeps every text container listed.
TEXT_FORMAT_OF: dict[str, TextFormat] = {"text": "plain", "markdown": "markdown", "html": "html"}


def text_format_of(path: Path) -> TextFormat | None:
    """The text format of a file by its suffix (the registered text containers' suffixes), or ``None``."""
    container = container_for_suffix(path.suffix) if path.suffix else None
    return TEXT_FORMAT_OF.get(container.name) if container is not None else None


#: Largest text file read into memory (a text label needs the whole document to place it).
MAX_TEXT_BYTES = 64 << 20


def read_text_file(path: Path) -> str:
    """A UTF-8 text file's content, with typed errors for oversize or undecodable files."""
    if path.stat().st_size > MAX_TEXT_BYTES:
        raise LimitExceededError(f"{path}: text over {MAX_TEXT_BYTES} bytes")
    try:
        return path.read_text("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MalformedFileError(f"{path}: not UTF-8 text ({exc})") from exc


def add_text_label(
    src: Path | str,
    dst: Path | str,
    *,
    label: str = DEFAULT_LABEL,
    position: Position = "start",
    fmt: TextFormat | None = None,
    implicit: ImplicitPolicy = "require",
) -> Path:
    """Write ``src`` with a visible label to ``dst`` (atomically), carrying its implicit label over.

    The format follows the suffix (.txt/.md/.html) unless ``fmt`` is given.
    """
    src, dst = Path(src), Path(dst)
    if fmt is None:
        fmt = text_format_of(src)
        if fmt is None:
            raise UnsupportedFormatError(f"{src}: text labels need a .txt, .md or .html file (or fmt=)")
    before = read_implicit(src, implicit)
    result = label_text(read_text_file(src), label=label, position=position, fmt=fmt)
    with atomic_output(dst, mode_from=src) as tmp:
        tmp.write_text(result, encoding="utf-8")
    restore_implicit(dst, before, implicit)
    return dst


class _VisibleText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self._skip = 0  # </head> may be omitted: the body is visible whatever came before
        elif tag in ("script", "style", "template", "head"):
            self._skip += 1
        elif tag in ("p", "div", "br", "li", "section", "h1", "h2", "h3", "h4", "h5", "h6", "tr"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "template", "head") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def visible_text(content: str, fmt: TextFormat) -> str:
    """The text a reader sees: HTML without tags, scripts and styles; Markdown without front matter."""
    if fmt == "html":
        parser = _VisibleText()
        parser.feed(content)
        parser.close()
        return "".join(parser.parts)
    if fmt == "markdown":
        return _split_front_matter(content)[1]
    return content


@dataclass(frozen=True)
class TextLabelFinding:
    """Where a conforming label prompt was found in a text."""

    text: str
    offset: int
    where: Literal["start", "end", "middle"]


def find_text_labels(
    content: str, *, fmt: TextFormat = "plain", window: int = DEFAULT_WINDOW
) -> list[TextLabelFinding]:
    """Every label prompt (both required elements) in the visible text, with its position class."""
    text = visible_text(content, fmt)
    stripped_start = len(text) - len(text.lstrip())
    stripped_end = len(text.rstrip())
    found: list[TextLabelFinding] = []
    for match in _LABEL_RE.finditer(text):
        to_start, to_end = match.start() - stripped_start, stripped_end - match.end()
        if to_start < window and to_start <= to_end:
            where: Literal["start", "end", "middle"] = "start"
        elif to_end < window:
            where = "end"
        else:
            where = "middle"
        found.append(TextLabelFinding(match.group(0), match.start(), where))
    return found
