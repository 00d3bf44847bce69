"""Hostile files from the "bounded work" issue: every command answers with a documented exit code,
never a traceback, within bounded memory. The bombs are built here at test time (``tests/_hostile.py``)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from click.testing import CliRunner
from PIL import Image

from aigclabel import AIGCLabel, api, xmp
from aigclabel._decode import decode_for_analysis
from aigclabel.cli import app
from aigclabel.cli.exit_codes import EXIT_CODES
from aigclabel.containers import open_container
from aigclabel.errors import LimitExceededError

from . import _hostile

runner = CliRunner()
#: The click command built once: typer rebuilds it on every invoke, 80 % of a fast command's time.
COMMAND = typer.main.get_command(app)
REPO = Path(__file__).resolve().parent.parent
PRODUCER = "001191110000MA00DEMQ0B1DEMO"
#: The exit codes ``aigclabel --help`` documents.
DOCUMENTED = set(EXIT_CODES)
#: Address-space cap of the CLI children: a regression that allocates gigabytes fails as MemoryError.
ADDRESS_SPACE = 1536 << 20


#: Strip past the Art. 10 guard (these files carry unsigned labels) so the container code is reached.
FORCED_STRIP = ["--force-remove-label", "--reason", "hostile-input test"]


def commands(path: Path, out: Path) -> dict[str, list[str]]:
    """Every command that reads a file, as CLI arguments."""
    return {
        "label": ["label", "-p", PRODUCER, "-o", str(out), str(path)],
        "inspect": ["inspect", "--json", str(path)],
        "inspect-watermark": ["inspect", "--watermark", str(path)],
        "strip": ["strip", "-o", str(out), *FORCED_STRIP, "--db", str(out.with_name("audit.sqlite")), str(path)],
        "check": ["check", str(path)],
        "verify": ["verify", "--json", str(path)],
        "watermark-detect": ["watermark", "detect", str(path)],
    }


def run(args: list[str]) -> tuple[int, str]:
    """Run the CLI in process; an exception escaping it (a traceback for a user) fails the test."""
    result = runner.invoke(COMMAND, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{args[0]} raised {result.exception!r}") from result.exception
    assert result.exit_code in DOCUMENTED, (args, result.exit_code)
    return result.exit_code, result.output


def hostile(tmp_path: Path, name: str, build: Callable[[], bytes]) -> Path:
    path = tmp_path / name
    path.write_bytes(build())
    return path


CHILD_PREFIX = """
import re, resource, runpy, sys
from pathlib import Path
resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
sys.argv = ["aigclabel", *sys.argv[1:]]
try:
    runpy.run_module("aigclabel", run_name="__main__")
finally:
    status = Path("/proc/self/status").read_text()
    sys.stderr.write("\\nVmHWM " + re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1) + "\\n")
"""


def run_capped(args: list[str]) -> tuple[int, str, int]:
    """The CLI in a child under :data:`ADDRESS_SPACE`: (exit code, stderr, peak RSS in KiB from VmHWM)."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD_PREFIX.format(cap=ADDRESS_SPACE), *args],
        capture_output=True, text=True, timeout=120, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    match = re.search(r"VmHWM (\d+)", done.stderr)
    assert match, done.stderr
    return done.returncode, done.stderr, int(match.group(1))


def test_speex_with_sample_rate_zero_is_malformed(tmp_path: Path) -> None:
    path = hostile(tmp_path, "rate0.spx", _hostile.speex_rate_zero)
    for name, args in commands(path, tmp_path / "out.spx").items():
        code, output = run(args)
        expected = 1 if name == "watermark-detect" else 4  # FFmpeg decodes it: just no watermark
        assert code == expected, (name, output)
    assert not (tmp_path / "out.spx").exists()


def test_lone_surrogate_in_label_json_is_an_unreadable_label(tmp_path: Path) -> None:
    path = hostile(tmp_path, "surrogate.png", _hostile.surrogate_label_png)
    code, output = run(["inspect", "--json", str(path)])
    assert code == 1
    [found] = json.loads(output)[0]["labels"]
    assert "surrogate" in found["error"]
    code, output = run(["verify", "--json", str(path)])
    assert code in (0, 1)


def test_stacked_id3_tags_are_over_a_limit_not_an_unknown_format(tmp_path: Path) -> None:
    path = hostile(tmp_path, "stacked.mp3", _hostile.mp3_stacked_tags)
    for args in (["inspect", str(path)], ["label", "-p", PRODUCER, str(path)], ["check", str(path)]):
        code, output = run(args)
        assert code == 4, output
        assert "stacked ID3v2 tags" in output


def test_ebml_doctype_of_a_gibibyte_is_over_a_limit(tmp_path: Path) -> None:
    path = hostile(tmp_path, "doctype.webm", _hostile.ebml_huge_doctype)
    for args in (["inspect", str(path)], ["label", "-p", PRODUCER, str(path)], ["check", str(path)]):
        code, output = run(args)
        assert code == 4 and "DocType" in output, output


def test_flac_vendor_length_past_the_block_is_malformed(tmp_path: Path) -> None:
    path = hostile(tmp_path, "vendor.flac", _hostile.flac_vendor_length)
    for args in (["inspect", str(path)], ["label", "-p", PRODUCER, str(path)], ["check", str(path)]):
        assert run(args)[0] == 4


def test_text_chunk_bomb_is_not_searched(tmp_path: Path) -> None:
    path = hostile(tmp_path, "ztxt.png", _hostile.png_text_bomb)
    code, output = run(["watermark", "detect", str(path)])
    assert code == 4 and "not searched" in output
    code, output = run(["inspect", "--watermark", str(path)])
    assert code == 1 and "not searched" in output  # no label; the watermark search was skipped, not crashed


def test_huge_declared_dimensions_are_not_searched(tmp_path: Path) -> None:
    path = hostile(tmp_path, "huge.png", _hostile.png_huge_dimensions)
    code, output = run(["watermark", "detect", str(path)])
    assert code == 4 and "not searched" in output
    code, output = run(["inspect", "--watermark", str(path)])
    assert code == 1 and "not searched" in output
    assert run(["check", str(path)])[0] == 4
    assert run(["verify", "--json", str(path)])[0] in (0, 1)


def test_check_exit_code_is_4_for_a_malformed_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.mp3"
    path.write_bytes(_hostile.mp3_stacked_tags(3)[:40])
    code, _ = run(["check", str(path)])
    assert code == 4


@pytest.mark.slow  # CLI children under a memory cap
def test_id3_zlib_bomb_is_refused_before_anything_inflates_it(tmp_path: Path) -> None:
    """256 MiB of zeros in one compressed ID3v2.4 frame: every command stops at the frame limit."""
    path = hostile(tmp_path, "bomb.mp3", lambda: _hostile.mp3_id3_zlib_bomb(256 << 20))
    for name in ("inspect", "check"):  # check hands files to FFmpeg, which inflated it to 2 GB
        code, stderr, peak_kib = run_capped(commands(path, tmp_path / "out.mp3")[name])
        assert code == 4, (name, stderr)
        assert "Traceback" not in stderr and "needs more memory" not in stderr
        assert peak_kib < 400 << 10, f"{name}: peak RSS {peak_kib >> 10} MiB"


@pytest.mark.parametrize("spaces", [64_000])
def test_whitespace_in_an_xmp_packet_costs_linear_time_in_jpeg(tmp_path: Path, spaces: int) -> None:
    path = hostile(tmp_path, "spaces.jpg", lambda: _hostile.xmp_whitespace_jpeg(spaces))
    out = tmp_path / "out.jpg"
    assert run(["label", "-p", PRODUCER, "-o", str(out), str(path)])[0] == 0
    db = str(tmp_path / "audit.sqlite")
    assert run(["strip", "-o", str(tmp_path / "bare.jpg"), *FORCED_STRIP, "--db", db, str(out)])[0] == 0


LINEAR_CHILD = """
from aigclabel import xmp
import sys
packet = xmp.new_packet("{}").decode()
at = packet.index("<TC260:AIGC>")
spaces = " " * (int(sys.argv[1]) - len(packet))
padded = (packet[:at] + spaces + packet[at:] + spaces).encode()
edited = xmp.set_aigc(padded, '{"Label":"2"}')
assert xmp.find_aigc(edited) == ['{"Label":"2"}']
assert xmp.remove_aigc(padded) is None
"""


@pytest.mark.slow  # a 16 MB packet
def test_a_16_mb_xmp_packet_is_edited_in_linear_time() -> None:
    """Quadratic whitespace handling took minutes at 64 KB; 16 MB must finish well inside the guard."""
    subprocess.run([sys.executable, "-c", LINEAR_CHILD, str(16 << 20)], check=True, timeout=30, cwd=REPO)


def test_removing_the_label_keeps_the_other_whitespace() -> None:
    packet = xmp.new_packet('{"Label":"1"}').replace(b"<TC260:AIGC>", b"  \n   <TC260:AIGC>")
    edited = xmp.set_aigc(packet, '{"Label":"2"}')
    assert xmp.find_aigc(edited) == ['{"Label":"2"}']
    assert b"  \n   <TC260:AIGC>" not in edited


def test_a_second_custom_properties_part_is_a_second_label(tmp_path: Path) -> None:
    """Two ``docProps/custom.xml`` members (Label 1 and 3): read shows both, label leaves one part."""
    path = hostile(tmp_path, "two.docx", _hostile.docx_two_custom)
    found = api.inspect(path)
    assert [f.label.label for f in found.labels if f.label] == ["1", "3"]
    assert "multiple-labels" in [p.code for p in found.problems]
    out = tmp_path / "one.docx"
    api.write_label(path, AIGCLabel.for_producer(PRODUCER, "again"), out)
    with zipfile.ZipFile(out) as archive:
        assert [i.filename for i in archive.infolist()].count("docProps/custom.xml") == 1
    assert [f.label.produce_id for f in api.read_labels(out) if f.label] == ["again"]


def test_payload_digest_refuses_an_inflate_bomb_before_inflating(tmp_path: Path) -> None:
    """A DOCX member of 64 MiB of zeros (1000:1) is refused from its declared sizes alone."""
    path = hostile(tmp_path, "zero.docx", lambda: _hostile.docx_zero_member(64 << 20))
    container = open_container(path)
    with pytest.raises(LimitExceededError, match="zip bomb"):
        container.payload_digest(path)
    assert api.read_labels(path) == []  # reading the label parts is unaffected


@pytest.mark.slow  # large images
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_analysis_decodes_large_images_at_half_scale(tmp_path: Path, fmt: str) -> None:
    """Over 16 MP, check/verify/watermark detect analyse half scale (JPEG decoded so by its IDCT);
    the 7000x7000 PNG of the issue went from 1.0-1.3 GB to 0.4-0.56 GB (bench/hostile.py)."""
    path = tmp_path / f"big.{fmt.lower()}"
    Image.new("RGB", (4100, 4002), (90, 120, 150)).save(path, fmt)
    image, factor = decode_for_analysis(path)
    assert (factor, image.size, image.mode) == (2, (2050, 2001), "RGB")
    small = tmp_path / f"small.{fmt.lower()}"
    Image.new("RGB", (4000, 4000), (90, 120, 150)).save(small, fmt)
    assert decode_for_analysis(small)[0].size == (4000, 4000)


@pytest.mark.slow  # a flate bomb
def test_pdf_payload_digest_refuses_a_flate_bomb_and_streams_the_rest(tmp_path: Path) -> None:
    """300 MiB of zeros in one content stream: refused after counting; 8 MiB: hashed in chunks,
    with the digest pikepdf's own decoding gives."""
    path = hostile(tmp_path, "bomb.pdf", lambda: _hostile.pdf_flate_bomb(300 << 20))
    with pytest.raises(LimitExceededError, match="flate bomb"):
        open_container(path).payload_digest(path)
    small = hostile(tmp_path, "zeros.pdf", lambda: _hostile.pdf_flate_bomb(8 << 20))
    import pikepdf

    from aigclabel.containers.pdf import _decoded_digest

    with pikepdf.open(small) as pdf:
        stream = pdf.pages[0].obj.Contents
        assert _decoded_digest(stream) == (8 << 20, hashlib.sha256(stream.read_bytes()).digest())
