"""Other people's files: label -> inspect -> independent reader -> payload identity -> strip, file by file.

The corpus is the test media that Pillow, mutagen, pypdf, pikepdf, python-docx, python-pptx and others ship
in their sdists (downloaded by ``tests/corpus/fetch.py``, never committed). Every file some registered
container accepts (:func:`aigclabel.containers.open_container` chooses, as in real use) is copied to a
scratch folder and:

1. inspected, labelled to a new file, inspected again: exactly our label must read back;
2. compared: :func:`aigclabel.signing.payload_digest` before and after, and an independent decoder's view
   (Pillow pixels, pikepdf pages, ffmpeg stream hashes, ZIP member CRCs) must be equal;
3. stripped: no label may remain, payload and decoder view unchanged;
4. read by exiftool (one batch for the whole run): an error exiftool did not report on the input means a
   damaged output; whether exiftool sees the label is recorded.

A refusal (an :class:`~aigclabel.errors.AIGCLabelError`) is *legitimate* when the format's reference tool
also rejects the input, and a **false refusal** when it reads it. Anything else raised is a **crash**.

``python -m tests.corpus`` prints the per-format table; ``tests/test_corpus.py`` runs the same in CI.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aigclabel import DEMO_PROVIDER_CODE, AIGCLabel, _io, api
from aigclabel.containers import open_container
from aigclabel.errors import AIGCLabelError, NeedsRepairError
from aigclabel.signing import payload_digest

#: The unpacked sdists (see ``fetch.py``).
CORPUS = Path(__file__).resolve().parent / ".cache" / "files"

#: Outcomes that fail the targets (0 crashes, 0 silent losses, 0 damaged outputs, no false refusals).
FAILURES = frozenset({"crash", "loss", "damaged", "false-refusal"})
#: Every outcome, in table order.
STATUSES = ("verified", "repaired", "refused", "false-refusal", "crash", "loss", "damaged")

AUDIO_VIDEO = frozenset({"mp3", "wav", "flac", "ogg", "mp4", "matroska", "avi", "flv"})
IMAGES = frozenset({"jpeg", "png", "gif", "tiff", "webp", "heif"})


@dataclass
class Outcome:
    """What happened to one corpus file."""

    path: str  #: relative to the corpus root, e.g. ``pillow-13.0.0/Tests/images/hopper.jpg``
    format: str
    status: str = "verified"
    reason: str = ""
    #: exiftool read our label back from the labelled file.
    label_seen: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass
class Reference:
    """The reference tool's view of a file: did it read it, and what it decoded (to compare)."""

    accepted: bool
    error: str = ""
    fingerprint: object = None


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text if len(text) < 160 else text[:157] + "..."


# ---------------------------------------------------------------------------- reference tools


def _pillow(path: Path) -> Reference:
    from PIL import Image

    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
    except ImportError:  # pragma: no cover - a dev extra; HEIF files then count as reference-refused
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with Image.open(path) as image:
                image.load()
                frames = getattr(image, "n_frames", 1)
                pixels = [hashlib.sha256(image.tobytes()).hexdigest()]
                for index in range(1, min(frames, 8)):  # later frames too (MPO, APNG, GIF, TIFF pages)
                    try:
                        image.seek(index)
                        image.load()
                        pixels.append(hashlib.sha256(image.tobytes()).hexdigest())
                    except Exception as exc:  # compared as its error: the input may lack that frame
                        pixels.append(type(exc).__name__)
                return Reference(True, fingerprint=(image.mode, image.size, frames, tuple(pixels)))
        except Exception as exc:  # any failure of the reference decoder is its refusal
            return Reference(False, _short(exc))


def _pikepdf(path: Path) -> Reference:
    import pikepdf

    try:
        with pikepdf.open(path) as pdf:
            pages = []
            for page in pdf.pages:
                try:
                    contents = page.obj.get("/Contents")
                    streams = contents if isinstance(contents, pikepdf.Array) else [contents]
                    data = b"".join(c.read_bytes() for c in streams if isinstance(c, pikepdf.Stream))
                    pages.append(hashlib.sha256(data).hexdigest())
                except Exception as exc:  # an undecodable stream is compared as its error
                    pages.append(type(exc).__name__)
            return Reference(True, fingerprint=tuple(pages))
    except Exception as exc:
        return Reference(False, _short(exc))


#: ZIP members the label writers may change; every other member must keep its CRC.
_ZIP_METADATA = ("[Content_Types].xml", "_rels/.rels", "docProps/custom.xml")


def _zip(path: Path) -> Reference:
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            if bad is not None:
                return Reference(False, f"zipfile: bad CRC in {bad}")
            members = sorted(
                (i.filename, i.CRC)
                for i in archive.infolist()
                if i.filename not in _ZIP_METADATA and not i.filename.endswith(".opf")
            )
            return Reference(True, fingerprint=tuple(members))
    except Exception as exc:
        return Reference(False, _short(exc))


def _xml(path: Path) -> Reference:
    from xml.etree import ElementTree

    try:
        ElementTree.parse(path)
        return Reference(True)
    except Exception as exc:
        return Reference(False, _short(exc))


def _text(path: Path) -> Reference:
    return Reference(True)


def _ffmpeg(path: Path) -> Reference:
    """ffmpeg must demux the audio and video streams; the fingerprint is its per-stream packet hash
    (``-c copy -f streamhash``: the coded packets, nothing decoded)."""
    hashed = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-i",
            str(path),
            "-map",
            "0:a?",
            "-map",
            "0:v?",
            "-c",
            "copy",
            "-f",
            "streamhash",
            "-",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if hashed.returncode != 0 or not hashed.stdout.strip():
        return Reference(False, "ffmpeg: " + (hashed.stderr.strip().splitlines() or ["no streams"])[-1][:150])
    return Reference(True, fingerprint=hashed.stdout)


#: Format name -> reference reader. A format missing here is compared by payload digest only.
REFERENCES: dict[str, Callable[[Path], Reference]] = {
    **dict.fromkeys(IMAGES, _pillow),
    **dict.fromkeys(AUDIO_VIDEO, _ffmpeg),
    "pdf": _pikepdf,
    "ooxml": _zip,
    "epub": _zip,
    "svg": _xml,
    "html": _text,
    "markdown": _text,
    "text": _text,
}


def reference(fmt: str, path: Path) -> Reference:
    """The reference tool's view of ``path`` as a file of format ``fmt``."""
    return REFERENCES.get(fmt, _text)(path)


# ---------------------------------------------------------------------------- corpus selection


def corpus_files(root: Path = CORPUS) -> Iterator[tuple[str, Path, str]]:
    """``(relative path, path, format)`` of every file some container accepts, in a stable order."""
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder, name)
            try:
                fmt = open_container(path).name
            except AIGCLabelError:
                continue  # not a format we label (or empty): nothing to verify
            yield path.relative_to(root).as_posix(), path, fmt


def sample(
    files: Iterable[tuple[str, Path, str]], per_format: int | None, always: Iterable[str] = ()
) -> list[tuple[str, Path, str]]:
    """At most ``per_format`` files of each format, chosen by a hash of the path (deterministic,
    spread over every project), plus every path in ``always``."""
    if per_format is None:
        return list(files)
    keep = set(always)
    by_format: dict[str, list[tuple[str, Path, str]]] = {}
    for item in files:
        by_format.setdefault(item[2], []).append(item)
    chosen: list[tuple[str, Path, str]] = []
    for items in by_format.values():
        ranked = sorted(items, key=lambda i: hashlib.sha1(i[0].encode()).digest())
        chosen += [i for n, i in enumerate(ranked) if n < per_format or i[0] in keep]
    return sorted(chosen)


# ---------------------------------------------------------------------------- one file


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _Fail(Exception):
    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def _compare(fmt: str, before: Reference, path: Path, what: str) -> None:
    after = reference(fmt, path)
    if before.accepted and not after.accepted:
        raise _Fail("damaged", f"{what}: the reference reader no longer opens it ({after.error})")
    if before.accepted and before.fingerprint is not None and after.fingerprint != before.fingerprint:
        raise _Fail("loss", f"{what}: the reference reader decodes different content")


def _round_trip(src: Path, labelled: Path, stripped: Path, fmt: str, before: Reference, repair: bool) -> str:
    """Label, check, strip, check; raises :class:`_Fail` or the library's error. Returns the stage
    reached, for the message of an unexpected exception."""
    original = _sha256(src)
    label = AIGCLabel.for_producer(DEMO_PROVIDER_CODE)
    api.inspect(src)
    digest = payload_digest(src)
    api.write_label(src, label, labelled, repair=repair)
    if _sha256(src) != original:
        raise _Fail("loss", "labelling modified the input file")
    inspection = api.inspect(labelled)
    if inspection.label != label or not inspection.ok:
        raise _Fail("loss", f"labelled file reads back {len(inspection.labels)} labels, not ours")
    if payload_digest(labelled) != digest:
        raise _Fail("loss", "payload digest changed by labelling")
    _compare(fmt, before, labelled, "labelled")
    api.strip_label(labelled, stripped, repair=repair)
    if api.read_labels(stripped):
        raise _Fail("loss", "a label survived strip")
    if payload_digest(stripped) != digest:
        raise _Fail("loss", "payload digest changed by strip")
    _compare(fmt, before, stripped, "stripped")
    return "done"


def check_file(rel: str, source: Path, fmt: str, work: Path) -> tuple[Outcome, Path | None]:
    """Run the whole round trip on a copy of ``source`` in ``work``; returns the outcome and the labelled
    file (kept for the exiftool batch), or ``None`` when nothing was written. A file refused with
    :class:`NeedsRepairError` is tried again with ``repair=True`` (``--repair``)."""
    outcome = Outcome(rel, fmt)
    work.mkdir(parents=True, exist_ok=True)
    src = work / ("in" + source.suffix)
    shutil.copyfile(source, src)
    labelled, stripped = work / ("labelled" + source.suffix), work / ("stripped" + source.suffix)
    before = reference(fmt, src)
    repair = False
    while True:
        try:
            _round_trip(src, labelled, stripped, fmt, before, repair)
            if repair:
                outcome.status = "repaired"
        except NeedsRepairError as exc:
            if not repair:
                outcome.reason, repair = f"without --repair: {_short(exc)}", True
                continue
            outcome.status, outcome.reason = "false-refusal", f"--repair: {_short(exc)}"
        except _Fail as fail:
            outcome.status, outcome.reason = fail.status, fail.reason
        except AIGCLabelError as exc:
            outcome.reason = ("--repair: " if repair else "") + _short(exc)
            if before.accepted:
                outcome.status = "false-refusal"
            else:
                outcome.status = "refused"
                outcome.notes.append(f"reference refuses too: {before.error}")
        except Exception as exc:  # the point is to count these
            outcome.status, outcome.reason = "crash", _short(exc)
        break
    keep = labelled if outcome.status in ("verified", "repaired") else None
    return outcome, keep


# ---------------------------------------------------------------------------- exiftool batch

_EXIFTOOL_CONFIG = """%Image::ExifTool::UserDefined = (
    'Image::ExifTool::PDF::Info' => { AIGC => { } },
    'Image::ExifTool::XMP::Main' => {
        TC260 => { SubDirectory => { TagTable => 'Image::ExifTool::UserDefined::TC260' } },
    },
);
%Image::ExifTool::UserDefined::TC260 = (
    GROUPS => { 0 => 'XMP', 1 => 'XMP-TC260', 2 => 'Image' },
    NAMESPACE => { 'TC260' => 'http://www.tc260.org.cn/ns/AIGC/1.0/' },
    AIGC => { },
);
1;
"""


def exiftool_batch(paths: list[Path], scratch: Path) -> dict[str, dict[str, Any]]:
    """exiftool ``-j -a -u -G1`` of every path in one process, keyed by path."""
    if not paths or shutil.which("exiftool") is None:
        return {}
    config = scratch / "tc260.config"
    config.write_text(_EXIFTOOL_CONFIG)
    args = scratch / "exiftool.args"
    args.write_text("".join(f"{p}\n" for p in paths))
    done = subprocess.run(
        ["exiftool", "-config", str(config), "-j", "-a", "-u", "-G1", "-charset", "filename=utf8", "-@", str(args)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    return {entry["SourceFile"]: entry for entry in json.loads(done.stdout or "[]")}


def _exiftool_errors(tags: dict[str, Any]) -> str | None:
    return next((str(v) for k, v in tags.items() if k.endswith(":Error")), None)


# ---------------------------------------------------------------------------- the run


def run(
    files: Iterable[tuple[str, Path, str]], scratch: Path, progress: Callable[[Outcome], None] | None = None
) -> list[Outcome]:
    """Check every file; then one exiftool pass over inputs and labelled outputs."""
    outcomes: list[Outcome] = []
    pairs: list[tuple[Outcome, Path, Path]] = []
    durable, _io.DURABLE = _io.DURABLE, False  # scratch copies: fsync would only measure the disk
    try:
        for index, (rel, source, fmt) in enumerate(files):
            work = scratch / f"{index:05d}"
            outcome, labelled = check_file(rel, source, fmt, work)
            outcome.reason = outcome.reason.replace(f"{work}{os.sep}", "")
            outcomes.append(outcome)
            if labelled is not None:
                pairs.append((outcome, labelled.with_name("in" + labelled.suffix), labelled))
            if progress:
                progress(outcome)
    finally:
        _io.DURABLE = durable
    tags = exiftool_batch([p for _, src, out in pairs for p in (src, out)], scratch)
    for outcome, src, out in pairs:
        before, after = tags.get(str(src), {}), tags.get(str(out), {})
        error = _exiftool_errors(after)
        if error and not _exiftool_errors(before):
            outcome.status, outcome.reason = "damaged", f"exiftool reads the labelled file with: {error}"
        produce_id = next(
            (f.label.produce_id for f in api.read_labels(out) if f.label is not None),
            None,
        )
        if produce_id and any(produce_id in str(v) for v in after.values()):
            outcome.label_seen = True
    return outcomes


def run_corpus(per_format: int | None = None, always: Iterable[str] = (), root: Path = CORPUS) -> list[Outcome]:
    """:func:`run` over the (sampled) corpus in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="aigclabel-corpus-") as scratch:
        return run(sample(corpus_files(root), per_format, always), Path(scratch))


def table(outcomes: list[Outcome]) -> str:
    """The per-format Markdown table, then every refusal and failure with its reason."""
    by_format: dict[str, Counter[str]] = {}
    seen: Counter[str] = Counter()
    for o in outcomes:
        by_format.setdefault(o.format, Counter())[o.status] += 1
        seen[o.format] += o.label_seen
    names = {"repaired": "verified with --repair", "false-refusal": "false refusal"}
    head = "| format | files | verified | label seen by exiftool | " + " | ".join(names.get(s, s) for s in STATUSES[1:])
    head += " |"
    lines = [head, "|" + " --- |" * (4 + len(STATUSES) - 1)]
    total: Counter[str] = Counter()
    for fmt in sorted(by_format):
        counts = by_format[fmt]
        total.update(counts)
        n = sum(counts.values())
        cells = [str(counts[s]) for s in STATUSES[1:]]
        lines.append(f"| {fmt} | {n} | {counts['verified']} | {seen[fmt]} | " + " | ".join(cells) + " |")
    n = sum(total.values())
    cells = [str(total[s]) for s in STATUSES[1:]]
    lines.append(f"| **all** | {n} | {total['verified']} | {sum(seen.values())} | " + " | ".join(cells) + " |")
    details = [f"- {o.status}: `{o.path}` ({o.format}): {o.reason}" for o in outcomes if o.status != "verified"]
    return "\n".join([*lines, "", *details])
