"""Document label cost: aigclabel vs peers on the same files, in the same run.

* **PDF** (a many-page document, one image per page): our incremental update
  (:func:`aigclabel.write_label`) vs exiftool writing the same ``/AIGC`` Info key (``-PDF:AIGC=`` with
  a user-defined tag; exiftool also appends an incremental update) vs a full pikepdf rewrite
  (:meth:`PdfContainer.write_full`). Also reports how many bytes each adds.
* **DOCX** with a large stored media part: our raw-copy ZIP rewrite vs the usual Python approach of
  re-creating the archive with :mod:`zipfile` (every member decompressed and recompressed).

Each operation runs ``--repeat`` times on a fresh copy; the best time is kept. The script prints
ratios; it asserts nothing (timings depend on the machine and its load).

Usage: ``python bench/documents.py [--pages 300] [--media-mb 32] [--repeat 5]``
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pikepdf

from aigclabel import DEMO_PROVIDER_CODE, AIGCLabel, write_label
from aigclabel.containers.pdf import PdfContainer

EXIFTOOL_CONFIG = """%Image::ExifTool::UserDefined = (
    'Image::ExifTool::PDF::Info' => { AIGC => { } },
);
1;
"""


def best_of(repeat: int, source: Path, work: Path, action: Callable[[Path], None]) -> tuple[float, int]:
    """Best wall time of ``action`` on fresh copies of ``source``, and the output size."""
    best = float("inf")
    size = 0
    for _ in range(repeat):
        shutil.copyfile(source, work)
        start = time.perf_counter()
        action(work)
        best = min(best, time.perf_counter() - start)
        size = work.stat().st_size
    return best, size


def make_pdf(path: Path, pages: int) -> None:
    """``pages`` pages, each with its own 96x96 RGB image (incompressible) and a text line."""
    pdf = pikepdf.new()
    rng = np.random.default_rng(0)
    for number in range(pages):
        image = pikepdf.Stream(pdf, rng.integers(0, 255, 96 * 96 * 3, dtype=np.uint8).tobytes())
        image.Type, image.Subtype = pikepdf.Name.XObject, pikepdf.Name.Image
        image.Width, image.Height, image.BitsPerComponent = 96, 96, 8
        image.ColorSpace = pikepdf.Name.DeviceRGB
        pdf.add_blank_page(page_size=(595, 842))
        page = pdf.pages[-1]
        page.obj.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=pdf.make_indirect(image)))
        page.obj.Contents = pdf.make_stream(f"q 200 0 0 200 50 50 cm /Im0 Do Q BT ({number}) Tj ET".encode())
    pdf.save(path, object_stream_mode=pikepdf.ObjectStreamMode.generate)


def make_docx(path: Path, media_mb: int) -> None:
    rng = np.random.default_rng(1)
    types = (
        '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
        'content-types"><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/'
        'document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.'
        'main+xml"/></Types>'
    )
    rels = (
        '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/'
        '2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/'
        '2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>'
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", types)
        archive.writestr("_rels/.rels", rels)
        archive.writestr("word/document.xml", "<w:document>" + "<w:p>text</w:p>" * 20000 + "</w:document>")
        archive.writestr("word/media/video.mp4", rng.bytes(media_mb << 20), compress_type=zipfile.ZIP_STORED)
        archive.writestr("word/media/data.bin", bytes(8 << 20))


def zipfile_rewrite(path: Path, custom: str) -> None:
    """The peer: what a script using only :mod:`zipfile` does to add one part."""
    out = path.with_suffix(".tmp")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info.filename), compress_type=info.compress_type)
        dst.writestr("docProps/custom.xml", custom, compress_type=zipfile.ZIP_DEFLATED)
    out.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--media-mb", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    label = AIGCLabel.for_producer(DEMO_PROVIDER_CODE)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = folder / "aigc.config"
        config.write_text(EXIFTOOL_CONFIG)
        pdf, work = folder / "doc.pdf", folder / "work.pdf"
        make_pdf(pdf, args.pages)
        base = pdf.stat().st_size
        ours, ours_size = best_of(args.repeat, pdf, work, lambda p: write_label(p, label))
        exif, exif_size = best_of(
            args.repeat,
            pdf,
            work,
            lambda p: subprocess.run(
                ["exiftool", "-config", str(config), "-overwrite_original", f"-PDF:AIGC={label.to_json()}", str(p)],
                check=True,
                capture_output=True,
            ),
        )
        full, full_size = best_of(args.repeat, pdf, work, lambda p: PdfContainer().write_full(p, p, label))
        print(f"PDF {args.pages} pages, {base / 1e6:.1f} MB (best of {args.repeat})")
        print(f"  aigclabel incremental : {ours * 1e3:8.1f} ms  +{ours_size - base} bytes")
        print(f"  exiftool              : {exif * 1e3:8.1f} ms  +{exif_size - base} bytes  ({exif / ours:.1f}x ours)")
        print(f"  pikepdf full rewrite  : {full * 1e3:8.1f} ms  {full_size - base:+d} bytes  ({full / ours:.1f}x ours)")

        docx, work_docx = folder / "doc.docx", folder / "work.docx"
        make_docx(docx, args.media_mb)
        ours, _ = best_of(args.repeat, docx, work_docx, lambda p: write_label(p, label))
        custom = f'<Properties><property name="AIGC"><lpwstr>{label.to_json()}</lpwstr></property></Properties>'
        peer, _ = best_of(args.repeat, docx, work_docx, lambda p: zipfile_rewrite(p, custom))
        print(f"DOCX with {args.media_mb} MB stored + 8 MB deflated media, {docx.stat().st_size / 1e6:.1f} MB")
        print(f"  aigclabel raw copy    : {ours * 1e3:8.1f} ms")
        print(f"  zipfile re-create     : {peer * 1e3:8.1f} ms  ({peer / ours:.1f}x ours)")


if __name__ == "__main__":
    main()
