"""Helpers shared by the container tests: independent-tool interop and the hostile-input harness.

One copy of each helper, so a fix to how we drive exiftool/libxmp or how we fuzz reaches every format.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
from hypothesis import strategies as st
from PIL import Image

from aigclabel import AIGCLabel, AIGCLabelError, api
from aigclabel._io import is_temp_name
from aigclabel.containers import Container
from aigclabel.xmp import TC260_NS
from tests.conftest import require_tool

# ---------------------------------------------------------------------------- local servers


def run_forked(target: Callable[..., None], args: list[tuple[object, ...]], timeout: float = 120) -> None:
    """Run ``target(*a)`` for each ``a`` in its own forked process, all at once; each must exit 0."""
    import multiprocessing

    fork = multiprocessing.get_context("fork")
    workers = [fork.Process(target=target, args=a) for a in args]
    for proc in workers:
        proc.start()
    for proc in workers:
        proc.join(timeout)
    assert [p.exitcode for p in workers] == [0] * len(workers)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_http(url: str, process: subprocess.Popen[bytes], seconds: float = 30) -> None:
    """Poll ``url`` until it answers; kill ``process`` and fail the test (with its stderr) if it dies or stalls."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("service did not start: " + (process.stderr.read().decode() if process.stderr else ""))
            time.sleep(0.2)


# ---------------------------------------------------------------------------- exiftool

_CONFIG_HEAD = "%Image::ExifTool::UserDefined = (\n"

#: exiftool config defining the TC260 XMP namespace (exiftool cannot write ``XMP-TC260:AIGC`` without it).
EXIFTOOL_CONFIG = (
    _CONFIG_HEAD
    + """    'Image::ExifTool::XMP::Main' => {
        TC260 => { SubDirectory => { TagTable => 'Image::ExifTool::UserDefined::TC260' } },
    },
);
%Image::ExifTool::UserDefined::TC260 = (
    GROUPS => { 0 => 'XMP', 1 => 'XMP-TC260', 2 => 'Image' },
    NAMESPACE => { 'TC260' => 'http://www.tc260.org.cn/ns/AIGC/1.0/' },
    WRITABLE => 'string',
    AIGC => { },
);
1;
"""
)

#: The same, plus a writable ``/AIGC`` key in the PDF Info dictionary.
EXIFTOOL_PDF_CONFIG = EXIFTOOL_CONFIG.replace(
    _CONFIG_HEAD, _CONFIG_HEAD + "    'Image::ExifTool::PDF::Info' => { AIGC => { } },\n", 1
)


def write_exiftool_config(path: Path, text: str = EXIFTOOL_CONFIG) -> Path:
    """Write an exiftool ``-config`` file to ``path`` (a file name, or a folder for ``tc260.config``)."""
    config = path / "tc260.config" if path.is_dir() else path
    config.write_text(text)
    return config


def exiftool_json(*args: str | Path, config: Path | None = None) -> list[dict[str, object]]:
    """exiftool ``-j -G1`` output for ``args``; ``-config`` goes first, as exiftool requires."""
    exe = require_tool("exiftool")
    first = ["-config", str(config)] if config else []
    done = subprocess.run([exe, *first, "-j", "-G1", *map(str, args)], capture_output=True, text=True, check=True)
    result: list[dict[str, object]] = json.loads(done.stdout)
    return result


def exiftool_tags(path: Path, *args: str) -> dict[str, object]:
    """Every tag exiftool sees in ``path`` (``-a``), keyed by family-1 group (``XMP-TC260:Aigc`` etc.)."""
    result = subprocess.run(
        [require_tool("exiftool"), "-j", "-a", "-G1", *args, str(path)], capture_output=True, text=True, check=True
    )
    tags: dict[str, object] = json.loads(result.stdout)[0]
    return tags


def exiftool_read(path: Path) -> dict[str, object]:
    """`exiftool_tags` with structures kept whole (``-struct``)."""
    return exiftool_tags(path, "-struct")


def exiftool_label(path: Path) -> str | None:
    """The one ``XMP-TC260:AIGC`` value exiftool reads (asserts there is at most one)."""
    tags = exiftool_read(path)
    values = [v for k, v in tags.items() if k.lower() == "xmp-tc260:aigc"]
    assert len(values) <= 1
    return str(values[0]) if values else None


def exiftool_write(path: Path, value: str, tmp_path: Path) -> None:
    """Write ``TC260:AIGC`` with exiftool, which needs a config defining the namespace."""
    config = write_exiftool_config(tmp_path / "tc260.config")
    subprocess.run(
        [
            require_tool("exiftool"),
            "-config",
            str(config),
            "-overwrite_original",
            f"-XMP-TC260:AIGC={value}",
            str(path),
        ],
        capture_output=True,
        check=True,
    )


# ---------------------------------------------------------------------------- libxmp (exempi) and Pillow


DC_NS = "http://purl.org/dc/elements/1.1/"


def libxmp_write(path: Path, value: str, *, extra: Mapping[tuple[str, str], str] | None = None) -> None:
    """The TC260 image guide's own method (python-xmp-toolkit on exempi).

    ``extra`` sets more properties in the same packet, keyed by (namespace URI, name).
    """
    from libxmp import XMPFiles, XMPMeta

    XMPMeta.register_namespace(TC260_NS, "TC260")
    xmpfile = XMPFiles(file_path=str(path), open_forupdate=True)
    xmp = xmpfile.get_xmp() or XMPMeta()
    xmp.set_property(TC260_NS, "AIGC", value)
    for (namespace, name), other in (extra or {}).items():
        xmp.set_property(namespace, name, other)
    assert xmpfile.can_put_xmp(xmp)
    xmpfile.put_xmp(xmp)
    xmpfile.close_file()


def libxmp_read(path: Path) -> str | None:
    """``TC260:AIGC`` as python-xmp-toolkit reads it, or None."""
    from libxmp import XMPFiles, XMPMeta

    XMPMeta.register_namespace(TC260_NS, "TC260")
    xmpfile = XMPFiles(file_path=str(path))
    xmp = xmpfile.get_xmp()
    xmpfile.close_file()
    if xmp is None or not xmp.does_property_exist(TC260_NS, "AIGC"):
        return None
    return str(xmp.get_property(TC260_NS, "AIGC"))


def pillow_xmp_label(packet: bytes | str) -> str | None:
    """TC260:AIGC from the XMP bytes Pillow hands out, parsed with ElementTree (not our parser)."""
    text = packet.decode() if isinstance(packet, bytes) else packet
    root = ElementTree.fromstring(text[text.index("<x:xmpmeta") : text.rindex("</x:xmpmeta>") + 12])
    element = root.find(f".//{{{TC260_NS}}}AIGC")
    return None if element is None else element.text


FOREIGN_XMP = (
    b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
    b' <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"'
    b' xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="Paint 1.0">'
    b'<dc:title><rdf:Alt><rdf:li xml:lang="x-default">Sunset</rdf:li></rdf:Alt></dc:title>'
    b"</rdf:Description>\n </rdf:RDF></x:xmpmeta>\n" + b" " * 300 + b'\n<?xpacket end="w"?>'
)


def make_exif() -> Image.Exif:
    """EXIF with IFD0 Make = "Camera" (checked with exiftool after our rewrite)."""
    exif = Image.Exif()
    exif[0x010F] = "Camera"
    return exif


def pixels(path: Path) -> list[np.ndarray]:
    """Decoded pixels of every frame (Pillow is the independent decoder)."""
    with Image.open(path) as image:
        frames = []
        for index in range(getattr(image, "n_frames", 1)):
            image.seek(index)
            frames.append(np.asarray(image.convert("RGBA")).copy())
        return frames


def same_pixels(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    """Same frame count, shapes and values."""
    return len(a) == len(b) and all(x.shape == y.shape and (x == y).all() for x, y in zip(a, b, strict=True))


def label_of(path: Path) -> list[AIGCLabel | None]:
    """The parsed labels ``api.read_labels`` finds, in order."""
    return [found.label for found in api.read_labels(path)]


# ---------------------------------------------------------------------------- hostile input


def no_temp_files(folder: Path) -> bool:
    """True when no atomic-write temporary file was left behind in ``folder``."""
    return not [p for p in folder.iterdir() if is_temp_name(p.name)]


def fuzz_once(tmp_path: Path, name: str, mutate: Callable[[bytes], bytes], original: bytes) -> None:
    """Mutated bytes give a typed error or a valid result, and a failed in-place write leaves them intact.

    Works on ``name`` in a scratch folder under ``tmp_path`` (hypothesis shares ``tmp_path`` between
    examples), removed afterwards.
    """
    work = tmp_path / "fuzz"
    work.mkdir(exist_ok=True)
    path = work / name
    label = AIGCLabel.for_producer("001191110000MA00DEMQ0B1DEMO", "fuzz")
    mutated = mutate(original)
    path.write_bytes(mutated)
    with contextlib.suppress(AIGCLabelError):
        api.read_labels(path)
    try:
        api.write_label(path, label)
    except AIGCLabelError:
        assert path.read_bytes() == mutated
    else:
        assert [f.label for f in api.read_labels(path)] == [label]
    assert no_temp_files(work)
    shutil.rmtree(work)


def cut_and_flip(cut: int, flips: list[int], *, keep: int = 0) -> Callable[[bytes], bytes]:
    """A mutation for `fuzz_once`: cut at ``cut`` (never below ``keep`` bytes), then flip bit numbers ``flips``."""

    def mutate(data: bytes) -> bytes:
        out = bytearray(data[: max(cut, keep)] if cut < len(data) else data)
        for bit in flips:
            if bit // 8 < len(out):
                out[bit // 8] ^= 1 << (bit % 8)
        return bytes(out)

    return mutate


def truncate_or_flip(
    data: st.DataObject,
    original: bytes,
    *,
    at: st.SearchStrategy[int] | None = None,
    min_length: int = 0,
    max_flips: int = 8,
) -> bytes:
    """Either ``original`` cut short, or with 1..``max_flips`` bits flipped at offsets drawn from ``at``.

    ``at`` defaults to anywhere in the file; offsets past the end wrap around.
    """
    mutated = bytearray(original)
    if data.draw(st.booleans(), label="truncate"):
        return bytes(mutated[: data.draw(st.integers(min_length, len(mutated) - 1), label="cut")])
    spots = st.integers(0, len(mutated) - 1) if at is None else at
    for _ in range(data.draw(st.integers(1, max_flips), label="flips")):
        spot = data.draw(spots, label="at")
        mutated[spot % len(mutated)] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    return bytes(mutated)


def assert_typed_error_or_valid(
    path: Path,
    out: Path,
    mutated: bytes,
    label: AIGCLabel,
    *,
    container: Container | None = None,
    check: Callable[[Path], None] | None = None,
) -> None:
    """Label hostile bytes from ``path`` into ``out``: a typed error that leaves no ``out``, or a valid result.

    Reads and writes go through ``container`` when given (else through the public API, which picks the
    container by content). ``check`` replaces the default "``out`` reads back exactly ``[label]``".
    The input file is never changed.
    """
    read = api.read_labels if container is None else container.read
    out.unlink(missing_ok=True)
    path.write_bytes(mutated)
    with contextlib.suppress(AIGCLabelError):
        read(path)
    try:
        if container is None:
            api.write_label(path, label, out)
        else:
            container.write(path, out, label)
    except AIGCLabelError:
        assert not out.exists()
    else:
        if check is None:
            assert [f.label for f in read(out)] == [label]
        else:
            check(out)
    assert path.read_bytes() == mutated


def assert_hostile_cases(
    container: Container,
    cases: Mapping[str, tuple[bytes, type[Exception]]],
    folder: Path,
    suffix: str,
    label: AIGCLabel,
    *,
    or_on_write: bool = False,
) -> None:
    """Each case: reading raises its typed error, labeling raises a typed error, the file is unchanged.

    ``or_on_write``: the error may come from labeling instead, for damage only a rewrite parses (MP4
    chunk-offset tables are read only to shift them).
    """
    for name, (data, error) in cases.items():
        path = folder / f"{name}{suffix}"
        path.write_bytes(data)
        with pytest.raises(error):
            container.read(path)
            if or_on_write:
                api.write_label(path, label)
        with pytest.raises(AIGCLabelError):
            api.write_label(path, label)
        assert path.read_bytes() == data, name


def assert_refused(
    path: Path, error: type[Exception], label: AIGCLabel, *, match: str | None = None, write_match: str | None = None
) -> None:
    """Reading ``path`` raises ``error`` (matching ``match``), labeling it in place raises ``error`` (matching
    ``write_match``), and the file is unchanged."""
    before = path.read_bytes()
    with pytest.raises(error, match=match):
        api.read_labels(path)
    with pytest.raises(error, match=write_match):
        api.write_label(path, label)
    assert path.read_bytes() == before


def assert_refused_untouched(path: Path, data: bytes, error: type[Exception], match: str, label: AIGCLabel) -> None:
    """``data`` written to ``path`` is refused by read and write alike (same ``match``); nothing else appears
    in its folder."""
    path.write_bytes(data)
    assert_refused(path, error, label, match=match, write_match=match)
    assert path.read_bytes() == data
    assert [p.name for p in path.parent.iterdir()] == [path.name]


class FuzzDir:
    """A scratch folder for hypothesis tests, which cannot use ``tmp_path``: made on first use."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._path: Path | None = None

    @property
    def path(self) -> Path:
        """The folder, created on first use."""
        if self._path is None:
            self._path = Path(tempfile.mkdtemp(prefix=self.prefix))
        return self._path

    def cleanup(self) -> None:
        """Remove the folder (call from ``teardown_module``)."""
        if self._path is not None:
            shutil.rmtree(self._path, ignore_errors=True)
            self._path = None


def run_every_action(path: Path, out: Path, mutated: bytes, container: Container) -> None:
    """inspect, write, strip and payload digest on hostile bytes: only typed errors, input unchanged,
    no temporary file left. ``out`` is what strip wrote (if it succeeded), for the caller to check and remove."""
    path.write_bytes(mutated)
    label = AIGCLabel.for_producer("001191110000MA00DEMQ0B1DEMO")
    for action in (
        lambda: api.inspect(path),
        lambda: api.write_label(path, label, out),
        lambda: out.unlink(missing_ok=True),  # what the caller checks is strip's output, never write's
        lambda: api.strip_label(path, out),
        lambda: container.payload_digest(path),
    ):
        with contextlib.suppress(AIGCLabelError):
            action()
    assert path.read_bytes() == mutated
    assert no_temp_files(path.parent)
