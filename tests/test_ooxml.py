"""OOXML (DOCX/XLSX/PPTX and templates): custom property AIGC, raw-copied ZIP members, hostile packages."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aigclabel import DEMO_PROVIDER_CODE, AIGCLabel
from aigclabel.api import read_labels, strip_label, write_label
from aigclabel.containers import open_container
from aigclabel.containers.ooxml import CUSTOM_NS, OOXMLContainer
from aigclabel.errors import LimitExceededError, MalformedFileError, UnsupportedFormatError

from ._tools import assert_refused, assert_typed_error_or_valid, truncate_or_flip
from .conftest import require_tool

MAIN_TYPES = {
    "docx": ("word/document.xml", "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"),
    "dotx": ("word/document.xml", "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml"),
    "xlsx": ("xl/workbook.xml", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"),
    "xltx": ("xl/workbook.xml", "application/vnd.openxmlformats-officedocument.spreadsheetml.template.main+xml"),
    "pptx": (
        "ppt/presentation.xml",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml",
    ),
    "potx": ("ppt/presentation.xml", "application/vnd.openxmlformats-officedocument.presentationml.template.main+xml"),
}
CUSTOM_WITH_OTHERS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/custom-properties" '
    'xmlns:vt="http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes">'
    '<property fmtid="{D5CDD505-2E9C-101B-9397-08002B2CF9AE}" pid="2" name="Client">'
    "<vt:lpwstr>ACME &amp; Co</vt:lpwstr></property>"
    '<property fmtid="{D5CDD505-2E9C-101B-9397-08002B2CF9AE}" pid="5" name="Reviewed">'
    "<vt:bool>true</vt:bool></property></Properties>"
)


class _Unseekable(io.RawIOBase):
    """A write-only stream without seek, so zipfile writes data descriptors (flag bit 3)."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.buffer += data
        return len(data)


def make_package(
    path: Path,
    kind: str = "docx",
    *,
    custom: str | None = None,
    descriptors: bool = False,
    strict: bool = False,
    main_by_default: bool = False,
) -> Path:
    """A minimal but valid package: stored and deflated members, a binary media part, core props.
    ``main_by_default`` types the main part by ``<Default Extension="xml">`` instead of an Override."""
    main, main_type = MAIN_TYPES[kind]
    xml_default = main_type if main_by_default else "application/xml"
    overrides = "" if main_by_default else f'<Override PartName="/{main}" ContentType="{main_type}"/>'
    overrides += (
        '<Override PartName="/docProps/core.xml" '
        'ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
    )
    rels = (
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
        f'officeDocument" Target="{main}"/>'
        '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/'
        'core-properties" Target="docProps/core.xml"/>'
    )
    if custom is not None:
        overrides += (
            '<Override PartName="/docProps/custom.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.custom-properties+xml"/>'
        )
        rel_type = (
            "http://purl.oclc.org/ooxml/officeDocument/relationships/customProperties"
            if strict
            else "http://schemas.openxmlformats.org/officeDocument/2006/relationships/custom-properties"
        )
        rels += f'<Relationship Id="rId3" Type="{rel_type}" Target="/docProps/custom.xml"/>'
    members = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            f'<Default Extension="xml" ContentType="{xml_default}"/><Default Extension="png" ContentType="image/png"/>'
            f"{overrides}</Types>"
        ),
        "_rels/.rels": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            f'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{rels}</Relationships>'
        ),
        main: f'<?xml version="1.0" encoding="UTF-8"?><root kind="{kind}">内容 {"x" * 500}</root>',
        "docProps/core.xml": (
            '<?xml version="1.0" encoding="UTF-8"?><cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/'
            'package/2006/metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/">'
            "<dc:title>Report</dc:title></cp:coreProperties>"
        ),
    }
    if custom is not None:
        members["docProps/custom.xml"] = custom
    sink = _Unseekable() if descriptors else None
    with zipfile.ZipFile(sink if sink is not None else path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text, compress_type=zipfile.ZIP_DEFLATED, compresslevel=6)
        archive.writestr("media/image1.png", bytes(range(256)) * 8, compress_type=zipfile.ZIP_STORED)
    if sink is not None:
        path.write_bytes(bytes(sink.buffer))
    return path


def raw_members(path: Path) -> dict[str, tuple[int, int, bytes]]:
    """name -> (CRC, compressed size, compressed bytes) read straight from the local headers."""
    data = path.read_bytes()
    out = {}
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None  # every member's CRC checks out
        for info in archive.infolist():
            name_len, extra_len = struct.unpack_from("<HH", data, info.header_offset + 26)
            start = info.header_offset + 30 + name_len + extra_len
            out[info.filename] = (info.CRC, info.compress_size, data[start : start + info.compress_size])
    return out


def custom_xml(path: Path) -> str:
    with zipfile.ZipFile(path) as archive:
        return archive.read("docProps/custom.xml").decode()


EDITED = {"docProps/custom.xml", "_rels/.rels", "[Content_Types].xml"}


@pytest.mark.interop  # exiftool
@pytest.mark.parametrize("kind", sorted(MAIN_TYPES))
def test_label_is_written_raw_copied_and_read_by_exiftool(tmp_path: Path, demo_label: AIGCLabel, kind: str) -> None:
    src = make_package(tmp_path / f"in.{kind}", kind)
    before = src.read_bytes()
    out = tmp_path / f"out.{kind}"
    write_label(src, demo_label, out)
    assert src.read_bytes() == before
    assert isinstance(open_container(out), OOXMLContainer)
    old, new = raw_members(src), raw_members(out)
    for name in old.keys() - EDITED:
        assert new[name] == old[name], name  # same CRC, same compressed bytes
    assert set(new) == set(old) | {"docProps/custom.xml"}
    assert [f.label for f in read_labels(out)] == [demo_label]
    with zipfile.ZipFile(out) as archive:
        assert "docProps/custom.xml" in archive.read("[Content_Types].xml").decode()
        assert "relationships/custom-properties" in archive.read("_rels/.rels").decode()
    result = subprocess.run(
        [require_tool("exiftool"), "-j", "-a", "-G1", str(out)], capture_output=True, text=True, check=True
    )
    tags = json.loads(result.stdout)[0]
    assert tags["XML:AIGC"] == demo_label.to_json()
    assert tags["File:FileType"].lower() == kind


@pytest.mark.interop  # exiftool
@pytest.mark.parametrize("kind", ["xlsx", "docx"])
def test_main_part_typed_by_default_extension_is_labelled(tmp_path: Path, demo_label: AIGCLabel, kind: str) -> None:
    """``<Default Extension="xml" ContentType="...main+xml">`` types the main part as well as an Override."""
    src = make_package(tmp_path / f"in.{kind}", kind, main_by_default=True)
    assert 'Override PartName="/xl' not in src.read_bytes().decode("latin-1")
    assert isinstance(open_container(src), OOXMLContainer)
    out = write_label(src, demo_label, tmp_path / f"out.{kind}")
    old, new = raw_members(src), raw_members(out)
    assert all(new[name] == old[name] for name in old.keys() - EDITED)
    with zipfile.ZipFile(out) as archive:
        types = archive.read("[Content_Types].xml").decode()
    assert '<Override PartName="/docProps/custom.xml"' in types  # the Default would mistype it
    assert [f.label for f in read_labels(out)] == [demo_label]
    result = subprocess.run(
        [require_tool("exiftool"), "-j", "-a", "-G1", str(out)], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout)[0]["XML:AIGC"] == demo_label.to_json()
    assert read_labels(strip_label(out, tmp_path / f"stripped.{kind}")) == []


def test_merges_into_existing_custom_properties(tmp_path: Path, demo_label: AIGCLabel) -> None:
    src = make_package(tmp_path / "in.docx", custom=CUSTOM_WITH_OTHERS)
    out = tmp_path / "out.docx"
    write_label(src, demo_label, out)
    text = custom_xml(out)
    assert CUSTOM_WITH_OTHERS.split("</Properties>")[0] in text  # other properties keep their bytes
    assert 'pid="6" name="AIGC"' in text
    old, new = raw_members(src), raw_members(out)
    for name in old.keys() - {"docProps/custom.xml"}:
        assert new[name] == old[name], name  # rels and content types already registered the part
    # Labelling again replaces the label (same pid) and changes nothing else.
    second = AIGCLabel.for_producer(DEMO_PROVIDER_CODE)
    again = tmp_path / "again.docx"
    write_label(out, second, again)
    assert [f.label for f in read_labels(again)] == [second]
    assert custom_xml(again).count('name="AIGC"') == 1 and 'pid="6" name="AIGC"' in custom_xml(again)
    # Stripping gives back the original part byte for byte.
    stripped = tmp_path / "stripped.docx"
    strip_label(again, stripped)
    assert custom_xml(stripped) == CUSTOM_WITH_OTHERS
    assert read_labels(stripped) == []


def test_strict_package_custom_part_is_edited_in_its_own_namespace(tmp_path: Path, demo_label: AIGCLabel) -> None:
    strict = (
        CUSTOM_WITH_OTHERS.replace(
            "http://schemas.openxmlformats.org/officeDocument/2006/custom-properties",
            "http://purl.oclc.org/ooxml/officeDocument/customProperties",
        )
        .replace(
            "http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes",
            "http://purl.oclc.org/ooxml/officeDocument/docPropsVTypes",
        )
        .replace("xmlns:vt=", "xmlns:v=")
        .replace("vt:", "v:")
    )
    src = make_package(tmp_path / "strict.docx", custom=strict, strict=True)
    write_label(src, demo_label)
    text = custom_xml(src)
    assert '<v:lpwstr>{"Label":"1"' in text and text.startswith(strict.split("</Properties>")[0])
    assert [f.label for f in read_labels(src)] == [demo_label]
    strip_label(src)
    assert custom_xml(src) == strict


def test_labelling_twice_is_byte_identical_and_strip_of_unlabelled_is_noop(
    tmp_path: Path, demo_label: AIGCLabel
) -> None:
    src = make_package(tmp_path / "in.xlsx", "xlsx")
    once, twice, stripped = tmp_path / "1.xlsx", tmp_path / "2.xlsx", tmp_path / "s.xlsx"
    write_label(src, demo_label, once)
    write_label(once, demo_label, twice)
    assert raw_members(twice) == raw_members(once)
    strip_label(src, stripped)
    assert raw_members(stripped) == raw_members(src)


def test_members_with_data_descriptors_are_copied_verbatim(tmp_path: Path, demo_label: AIGCLabel) -> None:
    src = make_package(tmp_path / "in.pptx", "pptx", descriptors=True)
    with zipfile.ZipFile(src) as archive:
        assert all(info.flag_bits & 0x08 for info in archive.infolist())
    out = tmp_path / "out.pptx"
    write_label(src, demo_label, out)
    old, new = raw_members(src), raw_members(out)
    for name in old.keys() - EDITED:
        assert new[name] == old[name], name
    assert [f.label for f in read_labels(out)] == [demo_label]


def test_payload_digest_ignores_properties_but_not_content(tmp_path: Path, demo_label: AIGCLabel) -> None:
    src = make_package(tmp_path / "in.docx")
    out = tmp_path / "out.docx"
    write_label(src, demo_label, out)
    container = OOXMLContainer()
    assert container.payload_digest(src) == container.payload_digest(out)
    other = make_package(tmp_path / "other.docx", "dotx")  # different main part text
    assert container.payload_digest(other) != container.payload_digest(src)


def test_other_zip_files_are_not_taken(tmp_path: Path) -> None:
    plain = tmp_path / "archive.docx"
    with zipfile.ZipFile(plain, "w") as archive:
        archive.writestr("readme.txt", "not a document")
    renamed = tmp_path / "archive.zip"
    renamed.write_bytes(plain.read_bytes())
    for path in (plain, renamed):  # a ZIP without Office content types is not ours, whatever its name
        with pytest.raises(UnsupportedFormatError):
            open_container(path)
    truncated = tmp_path / "truncated.docx"
    truncated.write_bytes(make_package(tmp_path / "whole.docx").read_bytes()[:-30])
    with pytest.raises(MalformedFileError):  # a damaged DOCX is still reported as a damaged DOCX
        read_labels(truncated)


def test_zip_bomb_and_entity_attack_are_refused(tmp_path: Path, demo_label: AIGCLabel) -> None:
    bomb = make_package(tmp_path / "bomb.docx", custom="<Properties/>" + " " * (40 << 20))
    with pytest.raises(LimitExceededError):
        read_labels(bomb)
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        f'<Properties xmlns="{CUSTOM_NS}"><property name="AIGC"><x>&lol2;</x></property></Properties>'
    )
    hostile = make_package(tmp_path / "laughs.docx", custom=laughs)
    assert_refused(hostile, MalformedFileError, demo_label, match="forbidden")


@pytest.fixture(scope="module")
def fuzz_seed(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    src = make_package(tmp_path_factory.mktemp("seed") / "seed.docx", custom=CUSTOM_WITH_OTHERS)
    write_label(src, AIGCLabel.for_producer(DEMO_PROVIDER_CODE))
    return src.read_bytes()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_packages_give_typed_errors_or_valid_results(
    tmp_path: Path, fuzz_seed: bytes, data: st.DataObject
) -> None:
    blob = truncate_or_flip(data, fuzz_seed)
    label = AIGCLabel.for_producer(DEMO_PROVIDER_CODE)
    # Members we do not edit are copied raw, damaged or not; the label itself must read back.
    assert_typed_error_or_valid(tmp_path / "fuzz.docx", tmp_path / "fuzz-out.docx", blob, label)
