"""PDF: incremental-update labelling checked by qpdf, pikepdf and exiftool; hostile input fuzzed."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pikepdf
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aigclabel import DEMO_PROVIDER_CODE, AIGCLabel
from aigclabel.api import inspect, read_labels, strip_label, write_label
from aigclabel.containers import open_container
from aigclabel.containers.pdf import PdfContainer
from aigclabel.errors import EncryptedPDFError, NeedsRepairError
from aigclabel.xmp import TC260_NS

from ._tools import (
    EXIFTOOL_PDF_CONFIG,
    assert_typed_error_or_valid,
    exiftool_tags,
    truncate_or_flip,
    write_exiftool_config,
)
from .conftest import require_tool

AIGC_XMP = f"{{{TC260_NS}}}AIGC"


def make_pdf(path: Path, *, object_streams: bool = False, xmp_title: str | None = None, text: str = "Hello") -> Path:
    """A one-page PDF with a real content stream, a font, an Info dictionary with a UTF-16 value and
    an indirect value, optionally an XMP packet and compressed object streams (xref stream)."""
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(200, 100))
    page = pdf.pages[0]
    font = pdf.make_indirect(
        pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica)
    )
    page.obj.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
    page.obj.Contents = pdf.make_stream(f"BT /F1 12 Tf 20 50 Td ({text}) Tj ET".encode())
    pdf.docinfo["/Title"] = pdf.make_indirect(pikepdf.String("Indirect (title)"))
    pdf.docinfo["/Author"] = pikepdf.String("作者 Author")
    if xmp_title is not None:
        with pdf.open_metadata(set_pikepdf_as_editor=False, update_docinfo=False) as meta:
            meta["dc:title"] = xmp_title
    mode = pikepdf.ObjectStreamMode.generate if object_streams else pikepdf.ObjectStreamMode.disable
    pdf.save(path, object_stream_mode=mode, compress_streams=True)
    return path


def qpdf_check(path: Path) -> str:
    result = subprocess.run([require_tool("qpdf"), "--check", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr
    return result.stdout


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.interop  # qpdf
@pytest.mark.parametrize("object_streams", [False, True], ids=["xref-table", "xref-stream"])
def test_incremental_update_is_read_by_qpdf_pikepdf_and_exiftool(
    tmp_path: Path, demo_label: AIGCLabel, object_streams: bool
) -> None:
    src = make_pdf(tmp_path / "in.pdf", object_streams=object_streams, xmp_title="Sunset")
    original = src.read_bytes()
    out = tmp_path / "out.pdf"
    write_label(src, demo_label, out)
    data = out.read_bytes()
    assert src.read_bytes() == original
    assert data.startswith(original)  # signatures over the original ByteRange stay valid
    appended = data[len(original) :]
    if object_streams:
        assert b"/Type /XRef" in appended and b"\nxref\n" not in appended
    else:
        assert b"\nxref\n" in appended and b"/Type /XRef" not in appended
    assert re.search(rb"/Prev \d+", appended)
    qpdf_check(out)
    with pikepdf.open(out) as pdf:
        assert str(pdf.docinfo["/AIGC"]) == demo_label.to_json()
        assert str(pdf.docinfo["/Title"]) == "Indirect (title)"
        assert str(pdf.docinfo["/Author"]) == "作者 Author"
        meta = pdf.open_metadata()
        assert meta[AIGC_XMP] == demo_label.to_json()
        assert meta["dc:title"] == "Sunset"  # the existing packet was merged, not replaced
        assert len(pdf.pages) == 1
    tags = exiftool_tags(out, "-PDF:all", "-XMP:all")
    assert tags["PDF:AIGC"] == demo_label.to_json()
    assert tags["XMP-TC260:Aigc"] == demo_label.to_json()
    assert tags["PDF:Title"] == "Indirect (title)"
    found = read_labels(out)
    assert [f.location for f in found] == ["Info dictionary /AIGC", "XMP TC260:AIGC in catalog /Metadata"]
    assert all(f.label == demo_label for f in found)


def test_container_is_chosen_by_content(tmp_path: Path) -> None:
    src = make_pdf(tmp_path / "document.bin")
    assert isinstance(open_container(src), PdfContainer)


@pytest.mark.interop  # qpdf
def test_labelling_twice_keeps_one_label_and_same_label_adds_nothing(tmp_path: Path, demo_label: AIGCLabel) -> None:
    src = make_pdf(tmp_path / "in.pdf", object_streams=True)
    once, twice, other = tmp_path / "1.pdf", tmp_path / "2.pdf", tmp_path / "3.pdf"
    write_label(src, demo_label, once)
    write_label(once, demo_label, twice)
    assert twice.read_bytes() == once.read_bytes()
    second = AIGCLabel.for_producer(DEMO_PROVIDER_CODE)
    write_label(once, second, other)
    assert other.read_bytes().startswith(once.read_bytes())
    qpdf_check(other)
    assert [f.label for f in read_labels(other)] == [second, second]


@pytest.mark.interop  # qpdf
def test_strip_is_incremental_and_strip_full_removes_the_bytes(tmp_path: Path, demo_label: AIGCLabel) -> None:
    src = make_pdf(tmp_path / "in.pdf", xmp_title="Kept")
    labelled, stripped, purged = tmp_path / "l.pdf", tmp_path / "s.pdf", tmp_path / "p.pdf"
    write_label(src, demo_label, labelled)
    strip_label(labelled, stripped)
    qpdf_check(stripped)
    assert read_labels(stripped) == []
    assert stripped.read_bytes().startswith(labelled.read_bytes())
    assert demo_label.produce_id.encode() in stripped.read_bytes()  # documented: the old revision remains
    with pikepdf.open(stripped) as pdf:
        assert "/AIGC" not in pdf.docinfo
        assert pdf.open_metadata()["dc:title"] == "Kept"
    PdfContainer().strip_full(labelled, purged)
    qpdf_check(purged)
    assert read_labels(purged) == []
    assert demo_label.produce_id.encode() not in purged.read_bytes()
    # Stripping a file without a label changes nothing at all.
    again = tmp_path / "again.pdf"
    strip_label(src, again)
    assert again.read_bytes() == src.read_bytes()


@pytest.mark.interop  # qpdf
def test_write_full_rewrites_and_keeps_payload_digest(tmp_path: Path, demo_label: AIGCLabel) -> None:
    src = make_pdf(tmp_path / "in.pdf")
    incremental, full = tmp_path / "inc.pdf", tmp_path / "full.pdf"
    write_label(src, demo_label, incremental)
    container = PdfContainer()
    container.write_full(incremental, full, demo_label)
    qpdf_check(full)
    assert [f.label for f in read_labels(full)] == [demo_label, demo_label]
    assert full.read_bytes().count(b"%%EOF") == 1
    base = container.payload_digest(src)
    assert container.payload_digest(incremental) == base
    assert container.payload_digest(full) == base
    changed = make_pdf(tmp_path / "changed.pdf", text="Hellp")
    assert container.payload_digest(changed) != base


@pytest.mark.interop  # exiftool
def test_reads_labels_written_by_exiftool_and_labels_on_top_of_its_update(
    tmp_path: Path, demo_label: AIGCLabel
) -> None:
    src = make_pdf(tmp_path / "in.pdf", object_streams=True)
    config = write_exiftool_config(tmp_path / "aigc.config", EXIFTOOL_PDF_CONFIG)
    foreign = '{"Label":"2","ContentProducer":"exiftool","ProduceID":"e1"}'
    subprocess.run(
        [require_tool("exiftool"), "-config", str(config), "-overwrite_original", f"-PDF:AIGC={foreign}", str(src)],
        check=True,
        capture_output=True,
    )
    found = read_labels(src)
    assert [f.raw for f in found] == [foreign]
    assert found[0].label is not None and found[0].label.label == "2"
    # Info and XMP hold one label twice by design; when they disagree, inspect says so.
    ours = tmp_path / "ours.pdf"
    write_label(make_pdf(tmp_path / "fresh.pdf"), demo_label, ours)
    assert inspect(ours).ok
    subprocess.run(
        [require_tool("exiftool"), "-config", str(config), "-overwrite_original", f"-PDF:AIGC={foreign}", str(ours)],
        check=True,
        capture_output=True,
    )
    report = inspect(ours)
    assert not report.ok and "multiple-labels" in {p.code for p in report.problems}
    # exiftool appended an update with a classic table; ours goes on top (several updates in a row).
    out = tmp_path / "out.pdf"
    write_label(src, demo_label, out)
    assert out.read_bytes().startswith(src.read_bytes())
    qpdf_check(out)
    assert [f.label for f in read_labels(out)] == [demo_label, demo_label]


@pytest.mark.interop  # exiftool
def test_reads_xmp_label_written_by_exiftool_and_merges_into_its_packet(tmp_path: Path, demo_label: AIGCLabel) -> None:
    src = make_pdf(tmp_path / "in.pdf")
    config = write_exiftool_config(tmp_path / "aigc.config", EXIFTOOL_PDF_CONFIG)
    foreign = '{"Label":"3","ContentProducer":"x","ProduceID":"y"}'
    subprocess.run(
        [
            require_tool("exiftool"),
            "-config",
            str(config),
            "-overwrite_original",
            f"-XMP-TC260:AIGC={foreign}",
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    assert [(f.location, f.raw) for f in read_labels(src)] == [("XMP TC260:AIGC in catalog /Metadata", foreign)]
    out = tmp_path / "out.pdf"
    write_label(src, demo_label, out)
    qpdf_check(out)
    assert [f.label for f in read_labels(out)] == [demo_label, demo_label]
    tags = exiftool_tags(out, "-XMP:all")
    assert tags["XMP-TC260:Aigc"] == demo_label.to_json()
    assert str(tags["XMP-x:XMPToolkit"]).startswith("Image::ExifTool")  # exiftool's packet was kept


def test_reads_label_saved_by_pikepdf_in_object_stream(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "in.pdf")
    with pikepdf.open(path, allow_overwriting_input=True) as pdf:
        pdf.docinfo["/AIGC"] = '{"Label":"1","ContentProducer":"pike","ProduceID":"p1"}'
        pdf.save(path, object_stream_mode=pikepdf.ObjectStreamMode.generate)
    found = read_labels(path)
    assert len(found) == 1 and found[0].label is not None and found[0].label.content_producer == "pike"


def test_pdf_with_a_user_password_is_refused_and_unchanged(tmp_path: Path, demo_label: AIGCLabel) -> None:
    locked = tmp_path / "locked.pdf"
    pdf = pikepdf.new()
    pdf.add_blank_page()
    pdf.save(locked, encryption=pikepdf.Encryption(owner="o", user="u", R=6))
    before = digest(locked)
    with pytest.raises(EncryptedPDFError, match="needs a password"):
        write_label(locked, demo_label)
    with pytest.raises(EncryptedPDFError):
        read_labels(locked)
    assert digest(locked) == before


def _show_encryption(path: Path) -> str:
    result = subprocess.run([require_tool("qpdf"), "--show-encryption", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.interop  # qpdf
@pytest.mark.parametrize(
    "encryption",
    [
        pikepdf.Encryption(owner="o", user="", R=3, aes=False, metadata=False),
        pikepdf.Encryption(owner="o", user="", R=4, aes=False, metadata=False),
        pikepdf.Encryption(owner="o", user="", R=4, aes=True),
        pikepdf.Encryption(owner="o", user="", R=4, aes=True, metadata=False),
        pikepdf.Encryption(owner="o", user="", R=6),
    ],
    ids=["rc4-128-r3", "rc4-r4", "aes-128", "aes-128-clear-metadata", "aes-256"],
)
def test_encrypted_pdf_with_empty_user_password_is_labelled_incrementally(
    tmp_path: Path, demo_label: AIGCLabel, encryption: pikepdf.Encryption
) -> None:
    """What a reader opens without a password gets labelled: the update's strings and stream are
    encrypted with the document key, the encryption dictionary is kept, the owner password still works."""
    plain = make_pdf(tmp_path / "plain.pdf", xmp_title="Sunset")
    src = tmp_path / "in.pdf"
    with pikepdf.open(plain) as pdf:
        pdf.save(src, encryption=encryption)
    original = src.read_bytes()
    out = write_label(src, demo_label, tmp_path / "out.pdf")
    data = out.read_bytes()
    assert data.startswith(original)
    appended = data[len(original) :]
    assert b"/AIGC <" in appended, "the Info string was not encrypted"
    if encryption.metadata:  # else /EncryptMetadata false: the XMP stream stays in clear, as the file says
        assert demo_label.produce_id.encode() not in appended, "the label was appended in clear"
    qpdf_check(out)
    assert _show_encryption(out) == _show_encryption(src)
    for password in ("", "o"):
        with pikepdf.open(out, password=password) as pdf:
            assert str(pdf.docinfo["/AIGC"]) == demo_label.to_json()
            assert str(pdf.docinfo["/Author"]) == "作者 Author"
            meta = pdf.open_metadata()
            assert meta[AIGC_XMP] == demo_label.to_json()
            assert meta["dc:title"] == "Sunset"
    tags = exiftool_tags(out, "-PDF:all", "-XMP:all")
    assert tags["PDF:AIGC"] == demo_label.to_json()
    assert PdfContainer().payload_digest(out) == PdfContainer().payload_digest(src)
    stripped = strip_label(out, tmp_path / "stripped.pdf")
    qpdf_check(stripped)
    assert read_labels(stripped) == []


@pytest.mark.interop  # qpdf
def test_damaged_xref_offset_refuses_incremental_update_and_repair_rewrites_it(
    tmp_path: Path, demo_label: AIGCLabel
) -> None:
    """qpdf recovers the file, but an update would chain to the broken section: refused, saying to use
    --repair; with it the file is rewritten whole, valid, with the label and the same pages."""
    src = make_pdf(tmp_path / "in.pdf")
    data = src.read_bytes()
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(re.sub(rb"startxref\s+\d+", b"startxref\n17", data))
    before = digest(broken)
    with pytest.raises(NeedsRepairError, match="--repair"):
        write_label(broken, demo_label)
    assert digest(broken) == before
    cli = [sys.executable, "-m", "aigclabel"]
    refused = subprocess.run([*cli, "label", str(broken), "-p", DEMO_PROVIDER_CODE], capture_output=True, text=True)
    assert refused.returncode == NeedsRepairError.exit_code and "--repair" in refused.stderr
    assert digest(broken) == before
    done = subprocess.run([*cli, "label", str(broken), "-p", DEMO_PROVIDER_CODE, "--repair"], capture_output=True)
    assert done.returncode == 0, done.stderr
    qpdf_check(broken)
    assert inspect(broken).ok
    assert PdfContainer().payload_digest(broken) == PdfContainer().payload_digest(src)
    stripped = tmp_path / "stripped.pdf"
    forced = ["--force-remove-label", "--reason", "repair test", "--db", str(tmp_path / "audit.sqlite")]
    assert subprocess.run([*cli, "strip", str(broken), "-o", str(stripped), "--repair", *forced]).returncode == 0
    qpdf_check(stripped)
    assert read_labels(stripped) == []


@pytest.mark.interop  # qpdf
def test_repair_of_a_trailer_without_size_writes_a_valid_file(tmp_path: Path, demo_label: AIGCLabel) -> None:
    """qpdf recovers a trailer that lacks /Size but, saving, writes /Size only over an existing key."""
    data = make_pdf(tmp_path / "in.pdf").read_bytes()
    broken = tmp_path / "no-size.pdf"
    broken.write_bytes(re.sub(rb"/Size \d+", b"", data))
    with pytest.raises(NeedsRepairError):
        write_label(broken, demo_label)
    out = write_label(broken, demo_label, tmp_path / "out.pdf", repair=True)
    qpdf_check(out)
    assert inspect(out).ok


@pytest.fixture(scope="module")
def fuzz_seed(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    src = make_pdf(tmp_path_factory.mktemp("seed") / "seed.pdf", object_streams=True, xmp_title="t")
    out = src.with_name("labelled.pdf")
    write_label(src, AIGCLabel.for_producer(DEMO_PROVIDER_CODE), out)
    return out.read_bytes()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_pdfs_give_typed_errors_or_valid_results(tmp_path: Path, fuzz_seed: bytes, data: st.DataObject) -> None:
    blob = truncate_or_flip(data, fuzz_seed)

    def appended_and_read_back(out: Path) -> None:
        assert out.read_bytes().startswith(blob) or out.read_bytes() == blob
        assert label in [f.label for f in read_labels(out)]

    label = AIGCLabel.for_producer(DEMO_PROVIDER_CODE)
    path, out = tmp_path / "fuzz.pdf", tmp_path / "fuzz-out.pdf"
    assert_typed_error_or_valid(path, out, blob, label, check=appended_and_read_back)
