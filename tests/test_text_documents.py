"""HTML, Markdown, SVG, plain text (XMP sidecar) and EPUB: lossless textual labels, read back by
exiftool, PyYAML, ElementTree and zipfile; hostile and damaged input fuzzed."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aigclabel import DEMO_PROVIDER_CODE, AIGCLabel
from aigclabel.api import read_labels, strip_label, write_label
from aigclabel.containers import open_container
from aigclabel.containers.epub import EpubContainer
from aigclabel.containers.html import HtmlContainer
from aigclabel.containers.text import TextContainer
from aigclabel.errors import MalformedFileError, UnsupportedFormatError
from aigclabel.xmp import TC260_NS, find_aigc, set_aigc

from ._tools import assert_refused, assert_typed_error_or_valid, exiftool_tags, truncate_or_flip


def roundtrip(tmp_path: Path, name: str, content: bytes, label: AIGCLabel) -> bytes:
    """Label, check idempotence and that strip gives the original bytes back; return the labelled bytes."""
    src = tmp_path / name
    src.write_bytes(content)
    out = tmp_path / f"labelled-{name}"
    write_label(src, label, out)
    assert src.read_bytes() == content
    labelled = out.read_bytes()
    assert [f.label for f in read_labels(out)] == [label]
    again = tmp_path / f"again-{name}"
    write_label(out, label, again)
    assert again.read_bytes() == labelled
    stripped = tmp_path / f"stripped-{name}"
    strip_label(out, stripped)
    assert stripped.read_bytes() == content
    container = open_container(src)
    assert container.payload_digest(src) == container.payload_digest(out)
    return labelled


# ---------------------------------------------------------------------------------------------- HTML
HTML_PAGES = {
    "indented.html": '<!DOCTYPE html>\n<html lang="zh">\n  <head>\n    <meta charset="utf-8">\n'
    "    <title>中文标题</title>\n  </head>\n  <body><p>正文</p></body>\n</html>\n",
    "minified.html": "<!doctype html><html><head><meta charset=utf-8><title>x</title></head><body>x</body></html>",
    "crlf-no-head.html": "<!DOCTYPE html>\r\n<title>no head tag</title>\r\n<p>para</p>\r\n",
    "fragment.htm": "just text <b>bold</b>\n",
    "xhtml.xhtml": '<?xml version="1.0" encoding="UTF-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml"><head>\n'
    '<meta http-equiv="Content-Type" content="text/html; charset=utf-8"/>\n<title>t</title>\n</head><body/></html>\n',
}


@pytest.mark.interop  # exiftool
@pytest.mark.parametrize("name", sorted(HTML_PAGES))
def test_html_meta_is_lossless_and_read_by_exiftool(tmp_path: Path, demo_label: AIGCLabel, name: str) -> None:
    labelled = roundtrip(tmp_path, name, HTML_PAGES[name].encode(), demo_label)
    escaped = demo_label.to_json().replace('"', "&quot;")
    assert f'<meta name="AIGC" content="{escaped}"'.encode() in labelled
    tags = exiftool_tags(tmp_path / f"labelled-{name}")
    # exiftool parses only a <head> with quoted attributes; where it sees the title it must see the label.
    if name in ("indented.html", "xhtml.xhtml") or "HTML:Title" in tags:
        assert tags["HTML:AIGC"] == demo_label.to_json()


def test_html_meta_goes_after_charset_and_ignores_comments_and_scripts(tmp_path: Path, demo_label: AIGCLabel) -> None:
    page = (
        '<html><head>\n<!-- <meta name="AIGC" content=\'{"Label":"3"}\'> -->\n'
        '<script>var s = \'<meta name="AIGC" content="x">\';</script>\n<meta charset="utf-8">\n</head>'
        "<body></body></html>"
    )
    path = tmp_path / "p.html"
    path.write_text(page)
    assert read_labels(path) == []
    write_label(path, demo_label)
    text = path.read_text()
    assert text.index('<meta charset="utf-8">\n<meta name="AIGC"') > text.index("</script>")
    assert [f.label for f in read_labels(path)] == [demo_label]


def test_html_bogus_markup_in_head_is_tolerated(tmp_path: Path, demo_label: AIGCLabel) -> None:
    page = b"<html><head><![foo bar]><meta charset=utf-8></head></html>"  # the stdlib tokenizer asserts here
    labelled = roundtrip(tmp_path, "bogus.html", page, demo_label)
    assert labelled.startswith(b'<html><head><![foo bar]><meta charset=utf-8><meta name="AIGC"')


def test_html_replaces_foreign_labels_with_one(tmp_path: Path, demo_label: AIGCLabel) -> None:
    page = (
        '<html><head><meta name="aigc" content="{&quot;Label&quot;:&quot;2&quot;}">'
        "<meta name='AIGC' content='not json'></head></html>"
    )
    path = tmp_path / "two.html"
    path.write_text(page)
    found = read_labels(path)
    assert len(found) == 2 and found[0].label is not None and found[1].error
    write_label(path, demo_label)
    assert [f.label for f in read_labels(path)] == [demo_label]


# ------------------------------------------------------------------------------------------ Markdown
def front_matter(data: bytes) -> dict[str, object]:
    text = data.decode()
    assert text.startswith("---")
    loaded: dict[str, object] = yaml.safe_load(text.split("---", 2)[1])
    return loaded


@pytest.mark.parametrize(
    "content",
    [
        "# Title\n\nBody 中文\n",
        '---\ntitle: "Hello: world"\ntags: [a, b]\n# a comment\n---\n# Body\n',
        "---\r\ntitle: x\r\ndate: 2020-01-01\r\n---\r\nbody\r\n",
        "---\nnot front matter, no closing fence\n",
    ],
    ids=["no-front-matter", "front-matter", "crlf", "thematic-break"],
)
def test_markdown_front_matter_is_lossless_and_valid_yaml(tmp_path: Path, demo_label: AIGCLabel, content: str) -> None:
    labelled = roundtrip(tmp_path, "doc.md", content.encode(), demo_label)
    loaded = front_matter(labelled)
    assert loaded["AIGC"] == demo_label.to_dict()  # PyYAML sees seven strings
    if content.startswith("---\ntitle"):
        assert loaded["title"] == "Hello: world" and loaded["tags"] == ["a", "b"]
        assert labelled.startswith(b'---\ntitle: "Hello: world"\ntags: [a, b]\n# a comment\n')
    assert b"    Label: '1'\n" in labelled.replace(b"\r\n", b"\n")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("json-string", '---\nAIGC: \'{"Label":"2","ContentProducer":"p","ProduceID":"q"}\'\n---\n'),
        ("flow-json", '---\nAIGC: {"Label": "2", "ContentProducer": "p", "ProduceID": "q"}\n---\n'),
        ("flow-yaml", "---\nAIGC: {Label: '2', ContentProducer: p, ProduceID: q}\n---\n"),
        ("mapping-plain", '---\nAIGC:\n  Label: "2"\n  ContentProducer: p # producer\n  ProduceID: q\n---\nx\n'),
        ("appended", '# Notes\n\ntext\n\nAIGC:\n    Label: "2"\n    ContentProducer: p\n    ProduceID: q\n'),
    ],
)
def test_markdown_reads_every_form_and_writing_leaves_one(
    tmp_path: Path, demo_label: AIGCLabel, name: str, content: str
) -> None:
    path = tmp_path / f"{name}.md"
    path.write_text(content)
    found = read_labels(path)
    assert len(found) == 1
    assert found[0].label is not None
    assert (found[0].label.label, found[0].label.content_producer, found[0].label.produce_id) == ("2", "p", "q")
    write_label(path, demo_label)
    assert [f.label for f in read_labels(path)] == [demo_label]
    assert front_matter(path.read_bytes())["AIGC"] == demo_label.to_dict()


def test_markdown_prose_mentioning_aigc_is_not_a_label(tmp_path: Path, demo_label: AIGCLabel) -> None:
    prose = "# Notes\n\nAIGC:\nthe rules took effect in 2025.\n\nAIGC:\n    Label: '1'\n    ContentProducer: p\n"
    path = tmp_path / "prose.md"
    path.write_text(prose)
    assert [f.location for f in read_labels(path)] == ["AIGC: block at the end of the file"]
    write_label(path, demo_label)
    assert [f.label for f in read_labels(path)] == [demo_label]
    assert "AIGC:\nthe rules took effect in 2025.\n" in path.read_text()  # the prose stays


def test_markdown_label_written_by_pyyaml_is_read(tmp_path: Path) -> None:
    label = AIGCLabel.for_producer(DEMO_PROVIDER_CODE)
    path = tmp_path / "yaml.md"
    path.write_text("---\n" + yaml.safe_dump({"title": "t", "AIGC": label.to_dict()}, sort_keys=False) + "---\nbody\n")
    assert [f.label for f in read_labels(path)] == [label]


# ----------------------------------------------------------------------------------------------- SVG
SVGS = {
    "plain.svg": '<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" '
    'height="10">\n  <rect width="5" height="5" fill="red"/>\n</svg>\n',
    "inkscape.svg": '<svg xmlns="http://www.w3.org/2000/svg" xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
    'xmlns:cc="http://creativecommons.org/ns#"><metadata id="m"><rdf:RDF><cc:Work rdf:about="">'
    '<cc:license rdf:resource="https://creativecommons.org/licenses/by/4.0/"/></cc:Work></rdf:RDF></metadata>'
    '<circle r="3"/></svg>',
    "doctype.svg": '<!-- a > comment --><!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
    '"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n<svg xmlns="http://www.w3.org/2000/svg" data-x="a>b">'
    "<metadata/><g/></svg>",
}


@pytest.mark.interop  # exiftool
@pytest.mark.parametrize("name", sorted(SVGS))
def test_svg_xmp_is_read_by_exiftool(tmp_path: Path, demo_label: AIGCLabel, name: str) -> None:
    roundtrip(tmp_path, name, SVGS[name].encode(), demo_label)
    labelled_path = tmp_path / f"labelled-{name}"
    if name == "doctype.svg":  # the empty <metadata/> is left alone; ours is added beside it
        assert b"<metadata/><g/>" in labelled_path.read_bytes()
    root = ET.parse(labelled_path).getroot()  # an independent XML parser finds exactly one value
    assert [e.text for e in root.iter(f"{{{TC260_NS}}}AIGC")] == [demo_label.to_json()]
    if name == "doctype.svg":
        return  # exiftool does not recognise an SVG that starts with a comment and a DOCTYPE
    tags = exiftool_tags(labelled_path)
    values = [v for k, v in tags.items() if k.startswith("XMP-TC260:")]
    assert values == [demo_label.to_json()]
    if name == "inkscape.svg":
        assert tags["XMP-cc:WorkLicense"] == "https://creativecommons.org/licenses/by/4.0/"


def test_svg_entity_attack_and_non_svg_xml_are_refused(tmp_path: Path, demo_label: AIGCLabel) -> None:
    hostile = tmp_path / "laughs.svg"
    hostile.write_text(
        '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
        '<svg xmlns="http://www.w3.org/2000/svg"><text>&b;</text></svg>'
    )
    assert_refused(hostile, MalformedFileError, demo_label)
    other = tmp_path / "feed.xml"
    other.write_text('<?xml version="1.0"?><rss version="2.0"><channel/></rss>')
    with pytest.raises(UnsupportedFormatError):
        open_container(other)
    html_with_svg = tmp_path / "inline.html"
    html_with_svg.write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    assert isinstance(open_container(html_with_svg), HtmlContainer)


# ---------------------------------------------------------------------------------------- plain text
@pytest.mark.interop  # exiftool
def test_text_label_goes_to_an_xmp_sidecar_read_by_exiftool(tmp_path: Path, demo_label: AIGCLabel) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes("人工智能 text\n".encode())
    sidecar = tmp_path / "notes.xmp"
    sidecar.write_bytes(  # a sidecar that already holds other metadata
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:format>text/plain</dc:format>'
        b"</rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    before = path.read_bytes()
    write_label(path, demo_label)
    assert path.read_bytes() == before  # the text itself is never touched
    assert isinstance(open_container(path), TextContainer)
    assert [f.label for f in read_labels(path)] == [demo_label]
    tags = exiftool_tags(sidecar)
    assert tags["XMP-TC260:Aigc"] == demo_label.to_json()
    assert tags["XMP-dc:Format"] == "text/plain"  # merged into the existing sidecar
    copy = tmp_path / "copy.txt"
    write_label(path, demo_label, copy)
    assert copy.read_bytes() == before and find_aigc((tmp_path / "copy.xmp").read_bytes()) == [demo_label.to_json()]
    strip_label(path)
    assert read_labels(path) == [] and b"dc:format" in sidecar.read_bytes()
    strip_label(copy)  # the copy's sidecar inherited the other metadata, which stays
    assert find_aigc((tmp_path / "copy.xmp").read_bytes()) == []
    assert b"dc:format" in (tmp_path / "copy.xmp").read_bytes()
    bare = tmp_path / "bare.txt"
    bare.write_text("x")
    write_label(bare, demo_label)
    strip_label(bare)
    assert not (tmp_path / "bare.xmp").exists()  # nothing else was in it: the sidecar is deleted
    (tmp_path / "copy.txt.xmp").write_bytes(set_aigc(None, demo_label.to_json()))
    assert [f.location for f in read_labels(copy)] == ["XMP sidecar copy.txt.xmp TC260:AIGC"]
    write_label(copy, demo_label)  # the darktable-style sidecar's label moves to the primary one
    assert [f.location for f in read_labels(copy)] == ["XMP sidecar copy.xmp TC260:AIGC"]
    TextContainer().payload_digest(path)  # streams the file


# ---------------------------------------------------------------------------------------------- EPUB
OPF = """<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="uid">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
    <dc:identifier id="uid">urn:uuid:1234</dc:identifier>
    <dc:title>Test</dc:title>
    <dc:language>zh</dc:language>
    <meta property="dcterms:modified">2025-01-01T00:00:00Z</meta>
  </metadata>
  <manifest><item id="c1" href="c1.xhtml" media-type="application/xhtml+xml" properties="nav"/></manifest>
  <spine><itemref idref="c1"/></spine>
</package>
"""
CONTAINER_XML = (
    '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
    '<rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles>'
    "</container>"
)


def make_epub(path: Path, opf: str = OPF) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        archive.writestr("META-INF/container.xml", CONTAINER_XML, compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr("OEBPS/content.opf", opf, compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr(
            "OEBPS/c1.xhtml",
            '<html xmlns="http://www.w3.org/1999/xhtml"><head><title>t</title></head><body><p>第一章</p></body></html>',
            compress_type=zipfile.ZIP_DEFLATED,
        )
    return path


def raw_members(path: Path) -> dict[str, tuple[int, bytes]]:
    data = path.read_bytes()
    out = {}
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        for info in archive.infolist():
            name_len, extra_len = struct.unpack_from("<HH", data, info.header_offset + 26)
            start = info.header_offset + 30 + name_len + extra_len
            out[info.filename] = (info.CRC, data[start : start + info.compress_size])
    return out


@pytest.mark.interop  # exiftool
def test_epub_opf_meta_is_lossless(tmp_path: Path, demo_label: AIGCLabel) -> None:
    src = make_epub(tmp_path / "book.epub")
    out = tmp_path / "labelled.epub"
    write_label(src, demo_label, out)
    assert isinstance(open_container(out), EpubContainer)
    data = out.read_bytes()
    assert data[30:38] == b"mimetype" and data[38:58] == b"application/epub+zip"  # first and stored
    old, new = raw_members(src), raw_members(out)
    for name in old.keys() - {"OEBPS/content.opf"}:
        assert new[name] == old[name], name
    with zipfile.ZipFile(out) as archive:
        opf = archive.read("OEBPS/content.opf").decode()
    escaped = demo_label.to_json().replace('"', "&quot;")
    assert f'    <meta name="AIGC" content="{escaped}"/>\n  </metadata>' in opf
    assert [f.label for f in read_labels(out)] == [demo_label]
    assert exiftool_tags(out)["File:FileType"] == "EPUB"
    again = tmp_path / "again.epub"
    write_label(out, demo_label, again)
    assert again.read_bytes() == data
    stripped = tmp_path / "stripped.epub"
    strip_label(out, stripped)
    with zipfile.ZipFile(stripped) as archive:
        assert archive.read("OEBPS/content.opf").decode() == OPF
    container = EpubContainer()
    assert container.payload_digest(src) == container.payload_digest(out)


def test_epub3_property_form_is_read_and_replaced(tmp_path: Path, demo_label: AIGCLabel) -> None:
    opf = OPF.replace(
        "  </metadata>",
        '    <meta property="tc260:AIGC">{"Label":"2","ContentProducer":"p","ProduceID":"q"}</meta>\n  </metadata>',
    )
    path = make_epub(tmp_path / "book.epub", opf)
    found = read_labels(path)
    assert len(found) == 1 and found[0].label is not None and found[0].label.label == "2"
    write_label(path, demo_label)
    assert [f.label for f in read_labels(path)] == [demo_label]


def test_zip_that_is_neither_epub_nor_office_is_not_taken(tmp_path: Path) -> None:
    path = tmp_path / "book.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.text")
    with pytest.raises(UnsupportedFormatError):
        open_container(path)


# ------------------------------------------------------------------------------------------- fuzzing
FUZZ_SEEDS = {
    "page.html": HTML_PAGES["indented.html"].encode(),
    "doc.md": b"---\ntitle: t\nAIGC:\n    Label: '1'\n    ContentProducer: 'p'\n    ProduceID: 'q'\n---\nbody\n",
    "image.svg": SVGS["inkscape.svg"].encode(),
}


@pytest.mark.slow  # hypothesis
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from([*sorted(FUZZ_SEEDS), "book.epub"]), data=st.data())
def test_fuzzed_documents_give_typed_errors_or_valid_results(tmp_path: Path, name: str, data: st.DataObject) -> None:
    seed = make_epub(tmp_path / "seed.epub").read_bytes() if name == "book.epub" else FUZZ_SEEDS[name]
    blob = truncate_or_flip(data, seed, min_length=1, max_flips=6)
    label = AIGCLabel.for_producer(DEMO_PROVIDER_CODE)
    # One label in ``out``, whatever was there before.
    assert_typed_error_or_valid(tmp_path / name, tmp_path / f"out-{name}", blob, label)
