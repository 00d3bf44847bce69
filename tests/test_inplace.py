"""In-place labels under an undo journal: a writer SIGKILLed at every step leaves the old file or the new one.

Each case forks a child that labels the file in place and kills itself at its k-th step
(``AIGCLABEL_JOURNAL_KILL_AT``: journal write, fsync, each half of each patch, truncate, unlink),
for k = 1, 2, ... until the write completes. After every kill the file is recovered, alternately by
:func:`aigclabel.api.recover` and by simply reading it (every open recovers first), and must then be
byte for byte the original or the uninterrupted result and carry the old label or the new one; each
of the two distinct results is also decoded by ffmpeg and its label read by an independent tool
(ffprobe, mutagen, pikepdf, exiftool, a RIFF walk written here).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import mutagen.flac
import mutagen.id3
import mutagen.wave
import pikepdf
import pytest
from PIL import Image

from aigclabel import AIGCLabel
from aigclabel import _journal as journal
from aigclabel.api import Inspection, inspect, read_label, read_labels, recover, write_label, write_label_how
from aigclabel.containers import open_container
from aigclabel.errors import InterruptedEditError, MalformedFileError
from tests._tools import exiftool_label
from tests._video import VIDEO, decode_errors, ffmpeg, ffprobe_tags, stream_hash

pytestmark = pytest.mark.interop  # ffmpeg, ffprobe, exiftool, qpdf make and read the files

H264_AAC = [*VIDEO, "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:v", "libx264", "-c:a", "aac"]
OLD = AIGCLabel.for_producer("001191440300708461136T1XGW3", "0123456789abcdef0123456789abcdef")
NEW = AIGCLabel.for_producer("001191440300708461136T1XGW3", "fedcba9876543210fedcba9876543210", label="2")
#: Longer than a sector, so that every in-place write of it changes bytes in several sectors: journalled.
LONG = AIGCLabel.for_producer(
    "001191440300708461136T1XGW3", "fedcba9876543210fedcba9876543210", label="2", reserved_code1="R" * 600
)


def _mp4_end(folder: Path) -> Path:
    return ffmpeg(folder / "end.mp4", *H264_AAC)


def _mp4_roomy(folder: Path) -> Path:
    return ffmpeg(folder / "roomy.mp4", *H264_AAC, "-moov_size", "8192")


def _mkv(folder: Path) -> Path:
    return ffmpeg(folder / "clip.mkv", *H264_AAC)


def _avi(folder: Path) -> Path:
    return ffmpeg(folder / "clip.avi", *VIDEO, "-c:v", "mpeg4")


def _pdf(folder: Path) -> Path:
    path = folder / "doc.pdf"
    with pikepdf.new() as pdf:
        pdf.add_blank_page()
        pdf.save(path)
    return path


def _pdf_info(path: Path) -> str | None:
    with pikepdf.open(path) as pdf:
        value = pdf.docinfo.get("/AIGC")
        return str(value) if value is not None else None


def _tiff(folder: Path) -> Path:
    path = folder / "image.tif"
    Image.effect_noise((64, 48), 40).convert("RGB").save(path)
    return path


def _pillow_errors(path: Path) -> str:
    with Image.open(path) as image:
        image.load()
    return ""


def _ffprobe_tag(path: Path) -> str | None:
    return ffprobe_tags(path).get("AIGC")


def _audio(name: str, *args: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        return ffmpeg(folder / name, "-f", "lavfi", "-i", "sine=frequency=440:duration=1", *args)

    return make


def _padded_mp3(folder: Path) -> Path:
    path = _audio("tagged.mp3", "-metadata", "title=kept")(folder)
    tags = mutagen.id3.ID3(path)
    tags.save(path, padding=lambda info: 2048)  # what taggers leave; ffmpeg writes none
    return path


def _mp3_tag(path: Path) -> str | None:
    frames = mutagen.id3.ID3(path).getall("TXXX:AIGC")
    return str(frames[0].text[0]) if frames else None


def _flac_tag(path: Path) -> str | None:
    values = (mutagen.flac.FLAC(path).tags or {}).get("AIGC")
    return str(values[0]) if values else None


def _riff_label(data: bytes) -> tuple[str | None, int]:
    """The ``AIGC`` chunk and the end of the RIFF form (where its size says), found by a walk of the
    RIFF (or RF64) chunks written here, not aigclabel's; a reader that honours the size stops there."""
    assert data[:4] in (b"RIFF", b"RF64")
    rf64 = data[:4] == b"RF64"
    end = 8 + int.from_bytes(data[20:28] if rf64 else data[4:8], "little")
    pos, found = 12, []
    while pos + 8 <= end:
        cid, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if rf64 and cid == b"data" and size == 0xFFFFFFFF:
            size = int.from_bytes(data[28:36], "little")
        if cid == b"AIGC":
            found.append(data[pos + 8 : pos + 8 + size].decode())
        pos += 8 + size + (size % 2 and pos + 8 + size < end)
    assert pos == end and len(found) <= 1
    return (found[0] if found else None), end


def _wav_tag(path: Path) -> str | None:
    """The ``AIGC`` chunk of a WAV whose RIFF form is the whole file (see :func:`_riff_label`)."""
    data = path.read_bytes()
    label, end = _riff_label(data)
    assert end == len(data)
    return label


def _qpdf_errors(path: Path) -> str:
    done = subprocess.run(["qpdf", "--check", str(path)], capture_output=True, text=True, check=False)
    return "" if done.returncode == 0 else done.stdout + done.stderr


#: name -> (make the unlabelled fixture, its label before the write, the label as an independent tool
#: reads it, what an independent decoder complains about)
CASES: dict[
    str, tuple[Callable[[Path], Path], AIGCLabel | None, Callable[[Path], str | None], Callable[[Path], str]]
] = {
    "mp4-moov-at-end": (_mp4_end, None, _ffprobe_tag, decode_errors),  # the file grows at its end
    "mp4-faststart-free": (_mp4_roomy, OLD, _ffprobe_tag, decode_errors),
    "mkv-void": (_mkv, None, _ffprobe_tag, decode_errors),
    "avi-junk": (_avi, OLD, _ffprobe_tag, decode_errors),
    "pdf-incremental-update": (_pdf, None, _pdf_info, _qpdf_errors),  # appended: a kill leaves a longer file
    "tiff-appended-ifd": (_tiff, None, exiftool_label, _pillow_errors),
    "mp3-id3-padding": (_padded_mp3, OLD, _mp3_tag, decode_errors),
    "flac-padding": (_audio("tone.flac"), None, _flac_tag, decode_errors),
    "wav-chunk-at-end": (
        _audio("tone.wav"),
        OLD,
        _wav_tag,
        decode_errors,
    ),  # the label chunk is appended, then replaced
}


def _killed_write(path: Path, label: AIGCLabel | None, kill_at: int) -> bool:
    """Label (``None``: recover) ``path`` in a forked child that SIGKILLs itself at step ``kill_at``;
    True if it was killed, False if it finished first."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.environ["AIGCLABEL_JOURNAL_KILL_AT"] = str(kill_at)
            journal._local.steps = 0
            if label is None:
                recover(path)
            else:
                assert write_label_how(path, label) == "in-place"
        except BaseException:
            traceback.print_exc()
            code = 3
        finally:
            sys.stderr.flush()
            os._exit(code)
    _pid, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return True
    assert os.WEXITSTATUS(status) == 0, "the in-place write failed in the child"
    return False


def _kill_at_every_step(
    case: str, tmp_path: Path, old: AIGCLabel | None, new: AIGCLabel
) -> tuple[dict[str, int], bool, bytes, bytes]:
    """Label the fixture of ``case`` (first labelled ``old``) with ``new`` in a child killed at step 1,
    2, ... until the write completes; after each kill the file must be the old one or the new one,
    byte for byte, with the old or the new label, the payload digest unchanged, each distinct result
    read by an independent tool and decoded cleanly. Returns how many kills left the old and the new
    file, whether any left a journal, and the old and the new bytes."""
    make, _old, independent, decoder = CASES[case]
    base = make(tmp_path)
    if old is not None:
        write_label(base, old)
    original = base.read_bytes()
    digest = open_container(base).payload_digest(base)
    finished = tmp_path / f"finished{base.suffix}"
    shutil.copy(base, finished)
    assert write_label_how(finished, new) == "in-place"
    expected = finished.read_bytes()
    work = tmp_path / f"work{base.suffix}"
    outcomes = {"old": 0, "new": 0}
    checked: set[bytes] = set()
    journalled = False
    for kill_at in range(1, 100):
        shutil.copy(base, work)
        killed = _killed_write(work, new, kill_at)
        journalled |= journal.pending(work) is not None
        if killed and kill_at % 2:
            recover(work)
        after = read_label(work)  # recovers by itself when the journal is still there
        assert journal.pending(work) is None
        data = work.read_bytes()
        assert data in (original, expected), f"step {kill_at}: neither the old file nor the new one"
        assert after == (old if data == original else new)
        assert open_container(work).payload_digest(work) == digest
        if data not in checked:  # the same bytes read the same: each distinct result is checked once
            assert independent(work) == (after.to_json() if after else None)
            assert not decoder(work)
            checked.add(data)
        outcomes["old" if data == original else "new"] += 1
        if not killed:
            break
    else:
        pytest.fail("the write never finished")
    assert len(checked) == 2
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    return outcomes, journalled, original, expected


@pytest.mark.parametrize("case", sorted(CASES))
def test_killed_in_place_write_leaves_old_or_new(case: str, tmp_path: Path) -> None:
    """A label longer than a sector: a journalled edit (or a journal-free append), killed at every step."""
    old = CASES[case][1]
    outcomes, _journalled, _old, _new = _kill_at_every_step(case, tmp_path, old, LONG)
    assert outcomes["old"] > 3 and outcomes["new"] >= 2, outcomes


def _sectors(old: bytes, new: bytes) -> set[int]:
    """The 512-byte sectors in which two files of the same length differ."""
    assert len(old) == len(new)
    return {at // 512 for at in range(len(old)) if old[at] != new[at]}


#: Formats where a relabel of the same length changes only the label's bytes (and the file stays
#: as long): the edit is one write inside one sector when those bytes share one, else journalled.
SAME_LENGTH = (
    *("mp3-id3-padding", "flac-padding", "wav-chunk-at-end", "avi-junk", "mp4-moov-at-end", "mkv-void"),
    "mp4-faststart-free",  # (its label's bytes straddle two sectors with ffmpeg 5-7: journalled)
)


@pytest.mark.parametrize("case", SAME_LENGTH)
def test_relabel_inside_one_sector_is_one_write(case: str, tmp_path: Path) -> None:
    """A relabel that changes bytes of one sector only is one ``pwrite`` and one ``fdatasync``: no
    journal at any step, and a kill leaves the old file or the new one (an edit across two sectors
    keeps the journal)."""
    outcomes, journalled, original, expected = _kill_at_every_step(case, tmp_path, OLD, NEW)
    one_sector = len(_sectors(original, expected)) == 1
    assert journalled != one_sector, (case, _sectors(original, expected))
    if one_sector:
        assert outcomes["old"] >= 1 and outcomes["new"] >= 2, outcomes


@pytest.mark.parametrize(
    ("case", "durable", "atomic_sector", "journalled"),
    [
        ("mp3-id3-padding", True, True, False),  # one sector: one write
        ("mp3-id3-padding", True, False, True),  # AIGCLABEL_ATOMIC_SECTOR=0: a disk not trusted with a sector
        ("mp3-id3-padding", False, False, False),  # fsync off: a kill is all there is to survive
        ("mp4-faststart-free", True, True, True),  # two sectors
        ("mp4-faststart-free", False, True, False),  # two sectors of one page, fsync off
    ],
)
def test_which_relabels_are_journalled(
    case: str, durable: bool, atomic_sector: bool, journalled: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Durable edits skip the journal only inside one sector (and only when sectors are trusted);
    with fsync off, inside one memory page. A kill at the first step shows which path ran."""
    base = CASES[case][0](tmp_path)
    write_label(base, OLD)
    monkeypatch.setattr(journal, "DURABLE", durable)
    monkeypatch.setattr(journal, "ATOMIC_SECTOR", atomic_sector)
    assert _killed_write(base, NEW, 1)
    assert (journal.pending(base) is not None) == journalled
    assert read_label(base) == OLD and write_label_how(base, NEW) == "in-place" and read_label(base) == NEW


def test_recovery_killed_too_is_recovered_later(tmp_path: Path) -> None:
    """A recovery SIGKILLed at each of its own steps is finished by the next one."""
    base = _mp4_end(tmp_path)
    original = base.read_bytes()
    work = tmp_path / "work.mp4"
    for kill_at in range(1, 50):
        shutil.copy(base, work)
        assert _killed_write(work, NEW, 7)  # after the journal and the first patch halves
        assert journal.pending(work) is not None
        killed = _killed_write(work, None, kill_at)
        read_labels(work)
        assert journal.pending(work) is None and work.read_bytes() == original
        if not killed:
            break
    assert kill_at > 3


@pytest.mark.parametrize("via", ["path", "symlink", "symlink-to-symlink"])
def test_reads_roll_back_an_interrupted_edit_first(via: str, tmp_path: Path) -> None:
    """inspect and read_labels (which open the file once, the symlink told by the open itself) roll
    an interrupted edit back before reading, also through a symlink whose target holds the journal."""
    base = _mp4_end(tmp_path)
    original = base.read_bytes()
    work = tmp_path / "work.mp4"
    elsewhere = tmp_path / "links"
    elsewhere.mkdir()
    target = work
    if via != "path":
        target = elsewhere / "link.mp4"
        target.symlink_to(work)
        if via == "symlink-to-symlink":
            (elsewhere / "link2.mp4").symlink_to(target)
            target = elsewhere / "link2.mp4"
    for read in (inspect, read_labels):
        shutil.copy(base, work)
        assert _killed_write(work, NEW, 7)  # after the journal and the first patch halves
        assert journal.pending(work) is not None and work.read_bytes() != original
        found = read(target)
        assert (found.labels if isinstance(found, Inspection) else found) == []
        assert journal.pending(work) is None and work.read_bytes() == original


def test_failed_read_back_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _mp4_end(tmp_path)
    original = path.read_bytes()
    container = type(open_container(path))

    def refuse(self: object, written: Path, label: AIGCLabel | None) -> None:
        raise MalformedFileError("read-back refused")

    monkeypatch.setattr(container, "check_written", refuse)
    with pytest.raises(MalformedFileError, match="read-back refused"):
        write_label(path, NEW)
    assert path.read_bytes() == original and journal.pending(path) is None


def test_where_there_is_no_room_the_copy_path_runs(tmp_path: Path) -> None:
    faststart = ffmpeg(tmp_path / "fast.mp4", *H264_AAC, "-movflags", "+faststart")
    inode = faststart.stat().st_ino
    assert write_label_how(faststart, OLD) == "copy"
    assert faststart.stat().st_ino != inode
    inode = faststart.stat().st_ino
    assert write_label_how(faststart, NEW) == "in-place"  # the label slot is now there, same size
    assert faststart.stat().st_ino == inode and read_label(faststart) == NEW
    out = tmp_path / "out.mp4"
    assert write_label_how(faststart, OLD, out) == "copy"  # another output: always a new file


def test_read_only_file_is_replaced_by_a_copy(tmp_path: Path) -> None:
    path = _mp4_roomy(tmp_path)
    path.chmod(0o444)
    if os.access(path, os.W_OK):
        pytest.skip("root writes read-only files")
    assert write_label_how(path, NEW) == "copy" and read_label(path) == NEW


def test_stale_and_damaged_journals(tmp_path: Path) -> None:
    path = _mp4_end(tmp_path)
    original = path.read_bytes()
    where = journal.journal_path(path)
    where.write_bytes(b"AIGCJNL1 cut short by a kill")  # the writer died while writing it
    assert recover(path) == "discarded" and not where.exists() and path.read_bytes() == original
    shutil.copy(path, tmp_path / "twin.mp4")
    assert _killed_write(tmp_path / "twin.mp4", NEW, 7)
    os.replace(journal.journal_path(tmp_path / "twin.mp4"), where)  # a journal of another inode
    assert read_label(path) is None and not where.exists() and path.read_bytes() == original
    assert _killed_write(path, NEW, 7)
    with open(path, "ab") as handle:  # changed by something else since: never rolled back blindly
        handle.write(bytes(1 << 16))
    with pytest.raises(InterruptedEditError, match="neither the old"):
        read_labels(path)
    assert where.exists()


def test_journal_names_stay_short(tmp_path: Path) -> None:
    long = tmp_path / ("x" * 250 + ".mp4")
    assert len(journal.journal_path(long).name) < 255
    sample = journal.Journal(10, 12, 1, 2, ((0, b"ab", 2), (10, b"", 2)), bytes(32))
    assert journal._decode(journal._encode(sample)) == sample
    assert journal._decode(journal._encode(sample)[:-1]) is None


def test_a_complete_edit_whose_journal_survived_is_kept(tmp_path: Path) -> None:
    """Killed after the edit and its fsync, before the journal went: the new file stays."""
    path = _mp4_roomy(tmp_path)
    finished = tmp_path / "finished.mp4"
    shutil.copy(path, finished)
    write_label(finished, NEW)
    for kill_at in range(1, 30):
        work = tmp_path / "work.mp4"
        shutil.copy(path, work)
        if not _killed_write(work, NEW, kill_at):
            break
        if work.read_bytes() == finished.read_bytes() and journal.pending(work) is not None:
            assert recover(work) == "completed" and read_label(work) == NEW
            return
    pytest.fail("no step left a complete edit with its journal")


def test_cli_killed_label_then_recover(tmp_path: Path) -> None:
    """The real command, killed mid-edit, then `aigclabel recover`; `label --json` says how it wrote."""
    path = _mp4_roomy(tmp_path)
    original = path.read_bytes()
    command = [sys.executable, "-m", "aigclabel"]
    env = {**os.environ, "AIGCLABEL_JOURNAL_KILL_AT": "6"}
    killed = subprocess.run([*command, "label", str(path), "-p", OLD.content_producer], env=env, check=False)
    assert killed.returncode == -signal.SIGKILL and journal.pending(path) is not None
    done = subprocess.run([*command, "recover", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.strip() == f"{path}: rolled back"
    assert path.read_bytes() == original and journal.pending(path) is None
    labelled = subprocess.run(
        [*command, "label", str(path), "-p", OLD.content_producer, "--json"], capture_output=True, text=True, check=True
    )
    assert json.loads(labelled.stdout)["write"] == "in-place" and _ffprobe_tag(path) is not None


def _riff_ending(
    make: Callable[[Path], Path], residue: int | None = None, *, odd: bool = False, filler: bytes = b"JUNK"
) -> Callable[[Path], Path]:
    """The RIFF file ``make`` writes (WAV or AVI), its RIFF form ending ``residue`` bytes past a 4 KiB
    boundary, by a ``filler`` chunk added at its end (odd-sized and without its pad byte when ``odd``;
    a ``LIST`` filler is a list of type ``PAD ``)."""

    def made(folder: Path) -> Path:
        path = make(folder)
        if residue is None:
            return path
        data = path.read_bytes()
        size = (residue - len(data) - 8) % 4096
        assert size % 2 == odd
        data += filler + size.to_bytes(4, "little") + (b"PAD " if filler == b"LIST" else b"").ljust(size, b"\0")
        path.write_bytes(data[:4] + (len(data) - 8).to_bytes(4, "little") + data[8:])
        return path

    return made


def _sox_samples(path: Path) -> bytes:
    """The samples as sox (its own WAV reader) decodes them."""
    return subprocess.run(["sox", str(path), "-t", "raw", "-"], capture_output=True, check=True).stdout


def _wav_media(path: Path) -> tuple[object, ...]:
    """What independent readers make of a WAV: a RIFF walk, sox, ffmpeg and (no RF64) mutagen."""
    data = path.read_bytes()
    info = mutagen.wave.WAVE(path).info if data[:4] == b"RIFF" else None
    return _riff_label(data), _sox_samples(path), stream_hash(path), info and (info.length, info.sample_rate)


def _avi_media(path: Path) -> tuple[object, ...]:
    """What independent readers make of an AVI: a RIFF walk and ffmpeg's packets (ffmpeg also reads
    a ``LIST/INFO`` past the RIFF end: the test checks its label apart)."""
    return _riff_label(path.read_bytes()), stream_hash(path)


def _bitexact_avi(residue: int) -> Callable[[Path], Path]:
    """An AVI with no ``LIST/INFO`` (ffmpeg's bitexact mode) and 1 KB of ``JUNK`` before ``movi``,
    which :data:`BIG` does not fit: its label is appended after ``idx1`` (and a list that ffmpeg reads
    past, unlike a ``JUNK`` chunk there, which ends its walk) at ``residue`` bytes past 4 KiB."""

    def make(folder: Path) -> Path:
        return ffmpeg(folder / "clip.avi", *VIDEO, "-c:v", "mpeg4", "-fflags", "+bitexact")

    return _riff_ending(make, residue, filler=b"LIST")


#: A label longer than the ``JUNK`` room ffmpeg leaves in an AVI.
BIG = AIGCLabel.for_producer(
    "001191440300708461136T1XGW3", "fedcba9876543210fedcba9876543210", label="2", reserved_code1="R" * 1000
)
_WAV = _audio("tone.wav")

#: name -> (the unlabelled file, distinct leftovers a kill can leave: the whole appended chunk, and a
#: part of it cut at a 4 KiB boundary when it crosses one; none when its head would, then it is
#: journalled; the label; how independent readers see the media, the RIFF end and the labels; the
#: label as an independent tool reads it)
FIRST_APPEND: dict[
    str,
    tuple[Callable[[Path], Path], int, AIGCLabel, Callable[[Path], tuple[object, ...]], Callable[[Path], str | None]],
] = {
    "wav": (_WAV, 1, NEW, _wav_media, _wav_tag),
    "wav-crossing-4k": (_riff_ending(_WAV, 4096 - 64), 2, NEW, _wav_media, _wav_tag),
    # the append starts with the pad byte
    "wav-odd-last-chunk": (_riff_ending(_WAV, 4096 - 63, odd=True), 2, NEW, _wav_media, _wav_tag),
    # the commit is the ds64 RIFF size
    "rf64": (_audio("tone.wav", "-rf64", "always"), 1, NEW, _wav_media, _wav_tag),
    "wav-head-at-4k-edge": (_riff_ending(_WAV, 4096 - 6), 0, NEW, _wav_media, _wav_tag),
    "avi": (_bitexact_avi(100), 1, BIG, _avi_media, _ffprobe_tag),
    "avi-crossing-4k": (_bitexact_avi(4096 - 64), 2, BIG, _avi_media, _ffprobe_tag),
    "avi-head-at-4k-edge": (_bitexact_avi(4096 - 20), 0, BIG, _avi_media, _ffprobe_tag),
}


@pytest.mark.parametrize("case", sorted(FIRST_APPEND))
def test_first_riff_label_is_appended_then_shown(case: str, tmp_path: Path) -> None:
    """A first WAV label (a chunk) or AVI label (a ``LIST/INFO`` after ``idx1``) goes past the RIFF
    end, then one write of the RIFF size shows it, with no journal. Killed at every step, the file is
    the new one, or the old one followed by bytes past its RIFF end: independent readers (a RIFF walk,
    ffmpeg; sox and mutagen for WAV, ffprobe for AVI) see exactly the old file, and the next open or
    ``recover`` cuts the leftover, so the file is again byte for byte the old one."""
    make, leftovers, label, media, tag = FIRST_APPEND[case]
    base = make(tmp_path)
    original = base.read_bytes()
    seen_as = media(base)
    assert seen_as[0] == (None, len(original)) and not decode_errors(base)
    finished = tmp_path / f"finished{base.suffix}"
    shutil.copy(base, finished)
    assert write_label_how(finished, label) == "in-place"
    expected = finished.read_bytes()
    assert tag(finished) == label.to_json() and stream_hash(finished) == stream_hash(base)
    assert open_container(finished).payload_digest(finished) == open_container(base).payload_digest(base)
    work, again = tmp_path / f"work{base.suffix}", tmp_path / f"again{base.suffix}"
    seen: set[bytes] = set()
    journalled = False
    for kill_at in range(1, 40):
        shutil.copy(base, work)
        killed = _killed_write(work, label, kill_at)
        data = work.read_bytes()
        journalled |= journal.pending(work) is not None
        if not journalled and data not in (original, expected):
            assert data.startswith(original), f"step {kill_at}: more than bytes past the RIFF end changed"
            if data not in seen:
                assert media(work) == seen_as and not decode_errors(work)
                if case.startswith("avi"):  # ffmpeg reads a LIST/INFO past the RIFF end (see avi.py)
                    assert label.to_json().startswith(tag(work) or ""), f"step {kill_at}: not the new label"
                shutil.copy(work, again)  # the next label writes over the leftover
                assert write_label_how(again, label) == "in-place" and again.read_bytes() == expected
                seen.add(data)
            assert (recover(work) == "trimmed") if kill_at % 2 else (read_label(work) is None)
            assert work.read_bytes() == original
        read_label(work)  # rolls a journalled edit back or forward
        assert work.read_bytes() in (original, expected) and journal.pending(work) is None
        if not killed:
            break
    assert len(seen) == leftovers and journalled == (not leftovers)
    assert kill_at > 4 and sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    assert tag(work) == label.to_json()


def test_bytes_past_the_riff_end_that_are_not_a_leftover_are_kept(tmp_path: Path) -> None:
    """Other bytes after the RIFF end (some writers leave them) are nobody's leftover: kept by reads,
    ``recover`` and the label's copy."""
    data = _audio("tone.wav")(tmp_path).read_bytes()
    chunk = b"AIGC" + (20).to_bytes(4, "little") + b"{" + bytes(19)
    path = tmp_path / "trailing.wav"
    for tail in (b"trailing junk", chunk + b"!", chunk[:-2], chunk[:8] + b"[" + chunk[9:], bytes(28)):
        path.write_bytes(data + tail)
        assert recover(path) is None and read_label(path) is None and path.read_bytes() == data + tail
        assert write_label_how(path, NEW) == "copy" and read_label(path) == NEW
        assert path.read_bytes().endswith(tail) and _riff_label(path.read_bytes())[0] == NEW.to_json()


def test_avi_bytes_past_the_riff_end_that_are_not_a_leftover_are_kept(tmp_path: Path) -> None:
    """A whole list after the RIFF that is not exactly an appended label is kept, and ignored."""
    data = _bitexact_avi(100)(tmp_path).read_bytes()
    entry = b"AIGC" + (20).to_bytes(4, "little") + b"{" + bytes(19)
    path = tmp_path / "trailing.avi"
    someone_elses = b"INFOISFT" + (4).to_bytes(4, "little") + b"Lavf"
    for body in (someone_elses, b"INFO" + entry + entry, b"INFO" + entry[:8] + b"["):
        tail = b"LIST" + len(body).to_bytes(4, "little") + body.ljust(len(body) + len(body) % 2, b"\0")
        path.write_bytes(data + tail)
        assert recover(path) is None and read_label(path) is None and path.read_bytes() == data + tail
        assert write_label_how(path, NEW) == "in-place" and read_label(path) == NEW  # (in the JUNK before movi)
        assert path.read_bytes().endswith(tail)


@pytest.mark.parametrize(("make", "label"), [(_WAV, NEW), (_bitexact_avi(100), BIG)], ids=["wav", "avi"])
def test_cli_recover_trims_a_riff_leftover(make: Callable[[Path], Path], label: AIGCLabel, tmp_path: Path) -> None:
    path = make(tmp_path)
    original = path.read_bytes()
    assert _killed_write(path, label, 1) and len(path.read_bytes()) > len(original)
    command = [sys.executable, "-m", "aigclabel", "recover", str(path)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.strip() == f"{path}: trimmed"
    assert path.read_bytes() == original
