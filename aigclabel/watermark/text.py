"""Text watermarks: a generation-time green-list mark and an invisible-Unicode provenance mark.

**Green list (Kirchenbauer et al. 2023, "KGW").** At every generation step the vocabulary is split,
by a keyed hash of the previous token, into a "green" fraction ``gamma`` and the rest; the provider
adds ``delta`` to the green logits before sampling. The text then over-uses green tokens, which a
detector holding the key can count over token ids alone -- no model needed -- and turn into a
z-score. It is framework-neutral: :class:`GreenListProcessor` takes and returns a plain numpy vector.

What removes it (honestly): paraphrasing or translating (by a person or another model), heavy edits
(a z-score needs roughly 50+ surviving tokens at ``delta=2``), re-tokenising with a different
tokenizer (the detector must use the generator's tokenizer), and low-entropy text (code, lists,
boilerplate) where the model had no freedom to choose green tokens. Copy-paste, NFKC and plain-text
fields do NOT remove it: it lives in the word choice itself.

**Invisible Unicode mark.** The 64-bit payload plus a 32-bit keyed MAC is written as 26 variation
selectors (U+FE00..U+FE0F, 4 bits each) after the first letter of each line (not in code or front matter).
The run always starts with U+FE0A, which no standardized or emoji variation sequence uses, so fonts do
not swap the glyph of the letter it follows (U+FE00-FE02 would, for some CJK compatibility ideographs). It gives
exact provenance (the ProduceID digest). What survives which transformation (each line is a test in
``tests/test_watermark_text.py``):

* kept: copy-paste of the string; Unicode normalisation NFC, NFD, NFKC, NFKD (variation selectors have no
  decomposition); filters of *format* characters (General_Category Cf: ZWSP, ZWJ, BOM, bidi controls),
  since variation selectors are Mn, not Cf; collapsing whitespace or joining lines; HTML escaping and
  unescaping; UTF-8/UTF-16/GB18030 round trips; an excerpt that contains one paragraph's first letter and
  the 26 selectors after it.
* removed (the text then reads as unmarked): filters of Default_Ignorable_Code_Point (which includes
  U+FE00-FE0F; many sanitisers, some chat/social platforms and search indexes); "remove accents" pipelines
  that drop nonspacing marks (NFKD then drop Mn); ASCII- or Latin-1-only fields; an excerpt that starts
  after a paragraph's first letter and ends before the next paragraph (unless marked with
  ``every_sentence=True``: then an excerpt with one sentence start keeps it); retyping, OCR, paraphrase and
  translation. A length limit counts the 26 selectors per paragraph.
* broken (reads as absent or unverified, never as another ProduceID): editing or truncating inside the
  selector run, which breaks its MAC.

No invisible-character mark survives a Default_Ignorable filter by construction: that filter exists to
remove every code point that renders as nothing. What survives it must be visible (a change of the text
itself: the green-list mark above, in the word choice, or the explicit label of GB 45438).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .payload import DEMO_KEY, Payload

__all__ = [
    "GreenListDetection",
    "GreenListProcessor",
    "StreamMarker",
    "TextMark",
    "detect_green_list",
    "green_mask",
    "mark_text",
    "read_text_mark",
    "strip_text_mark",
]

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
#: Default z-score threshold for the green-list detector (one-sided normal tail P(z >= 4.75) ~ 1e-6 under H0).
GREEN_Z_THRESHOLD = 4.75


def _seed(key: bytes, prev_token: int) -> np.uint64:
    d = hmac.new(key, b"kgw" + int(prev_token).to_bytes(8, "big", signed=True), hashlib.sha256).digest()
    return np.uint64(int.from_bytes(d[:8], "big"))


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64 finaliser: a fast keyed-per-seed hash of every vocabulary id at once."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def green_mask(prev_token: int, vocab_size: int, key: bytes = DEMO_KEY, gamma: float = 0.25) -> npt.NDArray[np.bool_]:
    """Boolean mask of the green tokens that follow ``prev_token``."""
    ids = np.arange(vocab_size, dtype=np.uint64)
    with np.errstate(over="ignore"):
        h = _mix(ids * np.uint64(0x9E3779B97F4A7C15) + _seed(key, prev_token))
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53) < gamma


def _is_green(prev_token: int, token: int, key: bytes, gamma: float) -> bool:
    with np.errstate(over="ignore"):
        h = _mix(np.array([token], dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) + _seed(key, prev_token))
    return bool(float(h[0] >> np.uint64(11)) / float(1 << 53) < gamma)


@dataclass(frozen=True)
class GreenListProcessor:
    """Logits processor: call with the token ids so far and the next-token logits (any numpy vector)."""

    key: bytes = DEMO_KEY
    gamma: float = 0.25
    delta: float = 2.0

    def __call__(
        self, input_ids: Sequence[int] | Sequence[Sequence[int]], logits: npt.ArrayLike
    ) -> npt.NDArray[np.float64]:
        """Return the logits with ``delta`` added to the green list seeded by the last token.

        ``logits`` is one next-token vector with ``input_ids`` its sequence, or a (batch, vocab) matrix
        with one id sequence per row (the shape Hugging Face-style processors receive).
        """
        out = np.array(logits, dtype=np.float64, copy=True)
        if out.ndim == 1:
            rows: list[tuple[npt.NDArray[np.float64], Sequence[int]]] = [(out, input_ids)]  # type: ignore[list-item]
        else:
            rows = list(zip(out, input_ids, strict=True))  # type: ignore[arg-type]
        for row, ids in rows:
            if len(ids) > 0:
                row[green_mask(int(ids[-1]), row.shape[-1], self.key, self.gamma)] += self.delta
        return out


@dataclass(frozen=True)
class GreenListDetection:
    """Green-token count and its z-score; ``present`` when ``z >= threshold``."""

    present: bool
    z: float
    green: int
    scored: int
    threshold: float


def detect_green_list(
    token_ids: Sequence[int], key: bytes = DEMO_KEY, gamma: float = 0.25, threshold: float = GREEN_Z_THRESHOLD
) -> GreenListDetection:
    """Count green tokens (repeated bigrams scored once, so copy-pasted passages cannot inflate z)."""
    seen: set[tuple[int, int]] = set()
    green = 0
    for prev, tok in itertools.pairwise(token_ids):
        pair = (int(prev), int(tok))
        if pair in seen:
            continue
        seen.add(pair)
        green += _is_green(pair[0], pair[1], key, gamma)
    n = len(seen)
    z = (green - gamma * n) / math.sqrt(n * gamma * (1 - gamma)) if n else 0.0
    return GreenListDetection(z >= threshold, z, green, n, threshold)


# --- invisible Unicode mark -------------------------------------------------------------------------

_VS0 = 0xFE00
_MAGIC = 0xA1
_NIBBLES = 26  # 8-bit magic + 64-bit payload + 32-bit MAC


@dataclass(frozen=True)
class TextMark:
    """An invisible mark found in text; ``verified`` is False when it fails the MAC for the given key."""

    payload: Payload
    verified: bool
    count: int


def _text_mac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, b"aigclabel-text-mark" + data, hashlib.sha256).digest()[:4]


def _encode_mark(payload: Payload, key: bytes) -> str:
    data = payload.to_bytes()
    raw = bytes([_MAGIC]) + data + _text_mac(key, data)
    return "".join(chr(_VS0 + (b >> 4)) + chr(_VS0 + (b & 15)) for b in raw)


#: Where a sentence ends: CJK full stops end one at once, Latin ones when whitespace follows.
_SENTENCE_END = re.compile(r"[。！？；][\s\u3000]*|[.!?](?:[\s\u3000]+)")


def _mark_sentences(line: str, mark: str) -> str:
    """``line`` with ``mark`` after the first letter of every sentence that starts in it after its first."""
    out: list[str] = []
    pos = 0
    for m in _SENTENCE_END.finditer(line):
        nxt = m.end()
        if nxt < len(line) and unicodedata.category(line[nxt]).startswith("L"):
            out.append(line[pos : nxt + 1] + mark)
            pos = nxt + 1
    out.append(line[pos:])
    return "".join(out)


def mark_text(text: str, payload: Payload, key: bytes = DEMO_KEY, *, every_sentence: bool = False) -> str:
    """Insert the invisible mark after the first letter of every line that starts a paragraph.

    After a *letter* (not the first character) so Markdown syntax stays intact (``# Title`` keeps its
    heading, ``- item`` its bullet); YAML front matter, fenced and indented code are left untouched.
    ``every_sentence`` also marks the first letter of every later sentence of those lines, so an excerpt
    that holds one whole sentence keeps the mark (26 more invisible code points per sentence).
    """
    mark = _encode_mark(payload, key)
    lines = strip_text_mark(text).split("\n")
    out: list[str] = []
    fence: str | None = None
    front = bool(lines) and lines[0].strip() == "---"
    prev_blank = True
    for n, line in enumerate(lines):
        stripped = line.strip()
        if front:
            out.append(line)
            front = not (n > 0 and stripped in ("---", "..."))
            continue
        if fence is not None:
            out.append(line)
            if stripped.startswith(fence):
                fence = None
            continue
        if stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
            out.append(line)
            continue
        i = next((k for k, ch in enumerate(line) if unicodedata.category(ch).startswith("L")), None)
        indented_code = line.startswith(("    ", "\t")) and prev_blank
        if i is None or indented_code:
            out.append(line)
        else:
            rest = _mark_sentences(line[i + 1 :], mark) if every_sentence else line[i + 1 :]
            out.append(line[: i + 1] + mark + rest)
        prev_blank = not stripped
    return "\n".join(out)


def _runs(text: str) -> list[str]:
    runs: list[str] = []
    cur: list[str] = []
    for ch in text + "\0":
        if _VS0 <= ord(ch) <= _VS0 + 15:
            cur.append(ch)
        else:
            if len(cur) >= _NIBBLES:
                runs.append("".join(cur))
            cur = []
    return runs


def read_text_mark(text: str, key: bytes = DEMO_KEY) -> TextMark | None:
    """The first well-formed invisible mark in ``text`` (verified ones preferred), or None."""
    found: dict[bytes, int] = {}
    for run in _runs(text):
        for start in range(len(run) - _NIBBLES + 1):
            chunk = run[start : start + _NIBBLES]
            raw = bytes(((ord(chunk[2 * k]) - _VS0) << 4) | (ord(chunk[2 * k + 1]) - _VS0) for k in range(13))
            if raw[0] == _MAGIC:
                found[raw[1:]] = found.get(raw[1:], 0) + 1
    best: TextMark | None = None
    for raw, count in found.items():
        data, mac = raw[:8], raw[8:]
        mark = TextMark(Payload.from_bytes(data), hmac.compare_digest(mac, _text_mac(key, data)), count)
        if best is None or (mark.verified, mark.count) > (best.verified, best.count):
            best = mark
    return best


def strip_text_mark(text: str) -> str:
    """Remove every run of variation selectors long enough to be a mark."""
    for run in _runs(text):
        text = text.replace(run, "")
    return text


class StreamMarker:
    """Insert the invisible mark into text that arrives in pieces (streamed LLM output), without buffering it.

    Each piece comes back at once, marked after the first letter of every line as :func:`mark_text` does,
    fenced and indented code left alone; only the characters of the current line before its first
    letter are remembered. Front matter is not recognised (generated answers do not start with one).
    """

    def __init__(self, payload: Payload, key: bytes = DEMO_KEY) -> None:
        self._mark = _encode_mark(payload, key)
        self._prefix: list[str] = []  # the current line up to its first letter
        self._lettered = False
        self._fence: str | None = None
        self._prev_blank = True

    def _end_line(self) -> None:
        stripped = "".join(self._prefix).strip()
        if not self._lettered and stripped.startswith(("```", "~~~")):
            self._toggle_fence(stripped)
        if not self._lettered:
            self._prev_blank = not stripped
        self._prefix, self._lettered = [], False

    def _toggle_fence(self, stripped: str) -> None:
        if self._fence is None:
            self._fence = stripped[:3]
        elif stripped.startswith(self._fence):
            self._fence = None

    def feed(self, piece: str) -> str:
        """``piece`` with the mark inserted where a line's first letter is in it."""
        out: list[str] = []
        start = 0
        for i, ch in enumerate(piece):
            if ch == "\n":
                self._end_line()
            elif not self._lettered:
                if not unicodedata.category(ch).startswith("L"):
                    if len(self._prefix) < 64:  # a fence or indent is decided by its first characters
                        self._prefix.append(ch)
                    continue
                self._lettered = True
                prefix = "".join(self._prefix)
                stripped = prefix.strip()
                code = prefix.startswith(("    ", "\t")) and self._prev_blank
                self._prev_blank = False
                if stripped.startswith(("```", "~~~")):
                    self._toggle_fence(stripped)
                elif self._fence is None and not code:
                    out.append(piece[start : i + 1])
                    out.append(self._mark)
                    start = i + 1
        out.append(piece[start:])
        return "".join(out)
