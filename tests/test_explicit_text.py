"""Text labels (GB 45438 §5.1): element validation, plain/Markdown/HTML placement, unbuffered streams."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator, Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from aigclabel import AIGCLabel, api
from aigclabel.errors import InvalidLabelError, MalformedFileError, UnsupportedFormatError
from aigclabel.explicit import (
    DEFAULT_LABEL,
    ENGLISH_LABEL,
    add_text_label,
    alabel_stream,
    badge_html,
    find_text_labels,
    label_stream,
    label_text,
    validate_label_text,
)

BODY = "\n\n".join(f"第{n}段：" + "文字" * 40 for n in "一二三四") + "\n"


@pytest.mark.parametrize(
    "text", ["AI生成", "人工智能生成", "人工智能合成", "AI生成合成", "本内容由AI合成", ENGLISH_LABEL]
)
def test_conforming_label_texts_are_accepted(text: str) -> None:
    assert validate_label_text(text) == text


@pytest.mark.parametrize(
    "text", ["AI-generated", "人工智能", "生成", "ai生成", "", "   ", "AI生成\x00", "AI生成" + "x" * 200]
)
def test_non_conforming_label_texts_are_rejected(text: str) -> None:
    with pytest.raises(InvalidLabelError):
        validate_label_text(text)
    with pytest.raises(InvalidLabelError):
        label_text("正文", label=text)
    with pytest.raises(InvalidLabelError):
        list(label_stream(iter(["x"]), label=text))


@pytest.mark.parametrize(("position", "expected"), [("start", {"start"}), ("end", {"end"}), ("both", {"start", "end"})])
def test_plain_positions_are_found_where_placed(position: str, expected: set[str]) -> None:
    out = label_text(BODY, position=position)  # type: ignore[arg-type]
    assert BODY.strip() in out
    found = find_text_labels(out)
    assert {f.where for f in found} == expected
    assert all(f.text == DEFAULT_LABEL for f in found)
    assert find_text_labels(BODY) == []


def test_inline_goes_between_paragraphs_near_the_middle() -> None:
    out = label_text(BODY, position="inline")
    (found,) = find_text_labels(out)
    assert found.where == "middle"
    before, after = out.split(f"【{DEFAULT_LABEL}】")
    assert before.endswith("\n\n") and after.startswith("\n\n")
    assert out.replace(f"【{DEFAULT_LABEL}】\n\n", "") == BODY


def test_markdown_keeps_front_matter_first_and_stays_out_of_code_fences() -> None:
    doc = '---\nAIGC: {"Label":"1"}\ntitle: t\n---\n# 标题\n\n```python\nx = 1\n\ny = 2\n```\n\n段落。\n'
    for position in ("start", "end", "both", "inline"):
        out = label_text(doc, position=position, fmt="markdown")
        assert out.startswith('---\nAIGC: {"Label":"1"}\ntitle: t\n---\n')
        # the label line is never between a pair of fence markers
        in_fence = False
        for line in out.splitlines():
            if line.startswith("```"):
                in_fence = not in_fence
            if DEFAULT_LABEL in line:
                assert not in_fence, (position, out)
        assert find_text_labels(out, fmt="markdown")


def test_markdown_escapes_label_syntax() -> None:
    out = label_text("正文", label="AI*生成*_[x]", fmt="markdown")
    assert r"AI\*生成\*\_\[x\]" in out


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.labels: list[tuple[str, dict[str, str | None]]] = []
        self.stack: list[str] = []
        self.body_depth: list[bool] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack.append(tag)
        if dict(attrs).get("class") == "aigc-label":
            self.labels.append(("body" if "body" in self.stack else "outside", dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.stack:
            while self.stack.pop() != tag:
                pass


def test_html_labels_go_inside_body_escaped_and_accessible() -> None:
    doc = "<!doctype html><html><head><title>t</title></head><body class='x'><p>一</p><p>二</p></body></html>"
    out = label_text(doc, position="both", fmt="html", label="<b>AI生成</b>")
    parser = _Collect()
    parser.feed(out)
    assert [where for where, _ in parser.labels] == ["body", "body"]
    assert all(attrs.get("role") == "note" and attrs.get("aria-label") == "<b>AI生成</b>" for _, attrs in parser.labels)
    assert "<b>AI" not in out  # the label text is escaped, never markup
    assert {f.where for f in find_text_labels(out, fmt="html")} == {"start", "end"}
    bare = "<!doctype html><html><head><title>t</title></head><p>一</p></html>"  # no <body> tags
    out = label_text(bare, position="both", fmt="html")
    assert out.startswith('<!doctype html><html><head><title>t</title></head><p class="aigc-label"')
    assert out.endswith("</p>\n</html>")


def test_html_checker_ignores_labels_hidden_in_scripts() -> None:
    doc = "<html><body><script>var s='人工智能生成';</script><p>正文</p></body></html>"
    assert find_text_labels(doc, fmt="html") == []
    omitted = "<html><head><title>人工智能生成</title><body><p>人工智能生成</p>"  # </head> left out
    assert [f.text for f in find_text_labels(omitted, fmt="html")] == ["人工智能生成"]
    assert find_text_labels(doc, fmt="plain")  # as raw text the string is there


def test_stream_yields_before_the_source_is_exhausted() -> None:
    pulled: list[int] = []

    def source() -> Iterator[str]:
        for i in itertools.count():  # endless: any buffering would hang
            pulled.append(i)
            yield f"块{i}"

    stream = label_stream(source(), position="both")
    assert next(stream) == f"【{DEFAULT_LABEL}】\n\n"
    assert pulled == []  # the start label did not wait for the model
    assert next(stream) == "块0"
    assert pulled == [0]
    assert next(stream) == "块1"
    assert pulled == [0, 1]


def test_stream_end_label_follows_the_last_chunk() -> None:
    chunks = ["你", "好"]
    out = list(label_stream(iter(chunks), position="end", fmt="markdown"))
    assert out[:2] == chunks
    joined = "".join(out)
    assert [f.where for f in find_text_labels(joined, fmt="markdown")] == ["end"]


def test_async_stream_is_unbuffered() -> None:
    received: list[str] = []

    async def source() -> AsyncIterator[str]:
        yield "一"
        await asyncio.sleep(0)
        assert received[-1] == "一"  # the consumer already had the first chunk
        yield "二"

    async def run() -> list[str]:
        async for chunk in alabel_stream(source(), position="both"):
            received.append(chunk)
        return received

    out = asyncio.run(run())
    assert out[1:3] == ["一", "二"]
    assert {f.where for f in find_text_labels("".join(out))} == {"start", "end"}


def test_badge_snippet_is_accessible_persistent_and_escaped() -> None:
    snippet = badge_html("AI生成 & <合成>", placement="bottom")
    assert 'role="note"' in snippet and 'aria-label="AI生成 &amp; &lt;合成&gt;"' in snippet
    assert "position:fixed" in snippet and "aigc-badge--bottom" in snippet
    assert "<合成>" not in snippet
    with pytest.raises(InvalidLabelError):
        badge_html("AI")
    assert re.search(r"position:sticky;top:0", badge_html())


def test_text_files_keep_their_implicit_label(tmp_path: Path, demo_label: AIGCLabel) -> None:
    for name in ("notes.md", "notes.txt", "page.html"):
        src, dst = tmp_path / name, tmp_path / f"out-{name}"
        content = "<html><body><p>正文</p></body></html>" if name.endswith(".html") else "# 标题\n\n正文。\n"
        src.write_text(content, encoding="utf-8")
        api.write_label(src, demo_label)
        add_text_label(src, dst, position="end")
        assert api.read_label(dst) == demo_label, name
        assert api.inspect(dst).ok, name
        fmt = {"md": "markdown", "txt": "plain", "html": "html"}[name.rsplit(".", 1)[1]]
        assert [f.where for f in find_text_labels(dst.read_text(encoding="utf-8"), fmt=fmt)] == ["end"]  # type: ignore[arg-type]


def test_text_file_errors_are_typed(tmp_path: Path) -> None:
    bad = tmp_path / "bad.md"
    bad.write_bytes(b"\xff\xfe\x00broken")
    with pytest.raises(MalformedFileError):
        add_text_label(bad, tmp_path / "out.md", implicit="if-supported")
    rtf = tmp_path / "x.rtf"
    rtf.write_text("{\\rtf1 AI}", encoding="utf-8")
    with pytest.raises(UnsupportedFormatError):
        add_text_label(rtf, tmp_path / "out.rtf", implicit="if-supported")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.md", "x.rtf"]
