"""Text watermarks: green-list logits processor with a toy model, and the invisible Unicode mark."""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from aigclabel.watermark import (
    GreenListProcessor,
    Payload,
    detect_file,
    detect_green_list,
    embed_file,
    mark_text,
    read_text_mark,
    strip_text_mark,
)
from aigclabel.watermark.text import green_mask

VOCAB = 4000
PAYLOAD = Payload.for_produce_id("text-produce-id", key_id=12)


def _toy_logits(prev: int) -> npt.NDArray[np.float64]:
    """A fixed random 'language model': next-token logits depend only on the previous token."""
    return np.random.default_rng(prev).normal(0, 2.0, VOCAB)


def _generate(n: int, processor: GreenListProcessor | None, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    ids = [int(rng.integers(VOCAB))]
    for _ in range(n):
        logits = _toy_logits(ids[-1])
        if processor is not None:
            logits = processor(ids, logits)
        p = np.exp(logits - logits.max())
        ids.append(int(rng.choice(VOCAB, p=p / p.sum())))
    return ids


def test_green_mask_fraction_and_determinism() -> None:
    m = green_mask(17, 50_000, b"k", 0.25)
    assert abs(m.mean() - 0.25) < 0.01
    assert np.array_equal(m, green_mask(17, 50_000, b"k", 0.25))
    assert not np.array_equal(m, green_mask(18, 50_000, b"k", 0.25))


def test_processor_is_pure_and_shifts_green_logits() -> None:
    logits = np.zeros(VOCAB)
    out = GreenListProcessor(delta=2.0)([5, 9], logits)
    assert np.all(logits == 0)
    assert set(np.unique(out)) == {0.0, 2.0}
    assert np.array_equal(out == 2.0, green_mask(9, VOCAB))


def test_green_list_detection_without_model() -> None:
    proc = GreenListProcessor(key=b"provider key")
    marked = _generate(200, proc, seed=1)
    found = detect_green_list(marked, key=b"provider key")
    assert found.present and found.z > 6
    for seed in range(2, 6):
        plain = detect_green_list(_generate(200, None, seed), key=b"provider key")
        assert not plain.present, plain.z
    assert not detect_green_list(marked, key=b"another key").present


def test_green_list_survives_partial_edit() -> None:
    ids = _generate(300, GreenListProcessor(), seed=7)
    rng = np.random.default_rng(0)
    edited = [t if rng.random() > 0.2 else int(rng.integers(VOCAB)) for t in ids]
    assert detect_green_list(edited).present


def test_unicode_mark_roundtrip_and_normalisation() -> None:
    text = "人工智能生成的内容示例。\n\nSecond paragraph, in English.\nThird line."
    marked = mark_text(text, PAYLOAD)
    assert strip_text_mark(marked) == text
    assert marked != text
    for variant in (marked, unicodedata.normalize("NFC", marked), unicodedata.normalize("NFKC", marked)):
        found = read_text_mark(variant)
        assert found is not None and found.verified and found.payload == PAYLOAD
    excerpt = marked[marked.index("econd") - 30 :]
    got = read_text_mark(excerpt)
    assert got is not None and got.payload == PAYLOAD


def test_unicode_mark_what_strips_or_breaks_it() -> None:
    marked = mark_text("Hello world, a generated sentence.", PAYLOAD)
    ignorable = "".join(ch for ch in marked if not 0xFE00 <= ord(ch) <= 0xFE0F)
    assert read_text_mark(ignorable) is None
    ascii_only = marked.encode("ascii", "ignore").decode()
    assert read_text_mark(ascii_only) is None
    wrong = read_text_mark(marked, key=b"not the key")
    assert wrong is not None and not wrong.verified
    i = next(k for k, ch in enumerate(marked) if 0xFE00 <= ord(ch) <= 0xFE0F) + 5
    tampered = marked[:i] + chr(0xFE00 + ((ord(marked[i]) - 0xFE00) ^ 1)) + marked[i + 1 :]
    t = read_text_mark(tampered)
    assert t is None or not t.verified
    assert read_text_mark("plain text with a variation selector \ufe0f emoji") is None


def test_text_file_api(tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("第一段。\n第二段。\n", encoding="utf-8")
    embed_file(src, tmp_path / "b.txt", "file-pid")
    res = detect_file(tmp_path / "b.txt")
    assert res is not None and res.present and res.matches("file-pid")
    plain = detect_file(src)
    assert plain is not None and not plain.present


def test_markdown_syntax_is_left_intact() -> None:
    doc = "---\nAIGC: '{}'\n---\n# Title\n\n- item\n\n```python\nprint(1)\n```\n\n    code\n\n正文。\n"
    marked = mark_text(doc, PAYLOAD)
    lines = marked.split("\n")
    assert lines[:3] == ["---", "AIGC: '{}'", "---"]
    assert lines[3].startswith("# T") and lines[5].startswith("- i")
    assert lines[7:10] == ["```python", "print(1)", "```"]
    assert lines[11] == "    code"
    assert strip_text_mark(marked) == doc
    found = read_text_mark(marked)
    assert found is not None and found.verified and found.count == 3


def test_processor_accepts_a_batch() -> None:
    proc = GreenListProcessor()
    batch = proc([[1, 2, 3], [4, 5]], np.zeros((2, VOCAB)))
    assert np.array_equal(batch[0], proc([1, 2, 3], np.zeros(VOCAB)))
    assert np.array_equal(batch[1] == proc.delta, green_mask(5, VOCAB))


# Default_Ignorable_Code_Point (Unicode DerivedCoreProperties.txt): what a "remove invisible characters"
# filter removes.
_DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)  # fmt: skip


def _drop(text: str, unwanted: Callable[[str], bool]) -> str:
    return "".join(ch for ch in text if not unwanted(ch))


_DOC = "人工智能生成的第一段。第二句在这里。\n\nSecond paragraph, a generated sentence. Another sentence here.\n"
_KEPT: dict[str, Callable[[str], str]] = {
    "copy": lambda t: t,
    "NFC": lambda t: unicodedata.normalize("NFC", t),
    "NFD": lambda t: unicodedata.normalize("NFD", t),
    "NFKC": lambda t: unicodedata.normalize("NFKC", t),
    "NFKD": lambda t: unicodedata.normalize("NFKD", t),
    "format characters (Cf) dropped": lambda t: _drop(t, lambda ch: unicodedata.category(ch) == "Cf"),
    "whitespace collapsed": lambda t: " ".join(t.split()),
    "html escape/unescape": lambda t: html.unescape(html.escape(t)),
    "UTF-16": lambda t: t.encode("utf-16").decode("utf-16"),
    "GB18030": lambda t: t.encode("gb18030").decode("gb18030"),
    "excerpt with a paragraph start": lambda t: t[t.index("econd") - 40 : t.index("Another")],
}
_REMOVED: dict[str, Callable[[str], str]] = {
    "Default_Ignorable dropped": lambda t: _drop(t, lambda ch: any(a <= ord(ch) <= b for a, b in _DEFAULT_IGNORABLE)),
    "accents removed (NFKD, drop Mn)": lambda t: _drop(
        unicodedata.normalize("NFKD", t), lambda ch: unicodedata.category(ch) == "Mn"
    ),
    "ASCII only": lambda t: t.encode("ascii", "ignore").decode(),
    "Latin-1 only": lambda t: t.encode("latin-1", "ignore").decode("latin-1"),
    "excerpt without a paragraph start": lambda t: (
        t[t.index("第二句") : t.index("econd") - 5] + t[t.index("Another") :]
    ),
}


def test_what_survives_each_platform_transformation() -> None:
    """The lists in the module docstring of aigclabel.watermark.text, one transformation each."""
    marked = mark_text(_DOC, PAYLOAD)
    for name, kept in _KEPT.items():
        found = read_text_mark(kept(marked))
        assert found is not None and found.verified and found.payload == PAYLOAD, name
    for name, removed in _REMOVED.items():
        assert read_text_mark(removed(marked)) is None, name


def test_every_sentence_mark_survives_excerpts_without_a_paragraph_start() -> None:
    marked = mark_text(_DOC, PAYLOAD, every_sentence=True)
    assert strip_text_mark(marked) == _DOC
    found = read_text_mark(marked)
    assert found is not None and found.verified and found.count == 4  # 2 paragraphs x 2 sentences
    for excerpt in (marked[marked.index("。") + 1 : marked.index("\n")], marked[marked.index("generated") :]):
        got = read_text_mark(excerpt)  # one later sentence of a paragraph
        assert got is not None and got.verified and got.payload == PAYLOAD
    # Abbreviations and decimals do not start a sentence: no mark inside "e.g." or "3.14".
    plain = mark_text("Values, e.g.3.14 and 2.5, stay. Next one.", PAYLOAD, every_sentence=True)
    two = read_text_mark(plain)
    assert two is not None and two.count == 2
