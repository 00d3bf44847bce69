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
import pikepdf
import pytest
from PIL import Image

from aigclabel import AIGCLabel
from aigclabel import _journal as journal
from aigclabel.api import read_label, read_labels, recover, write_label, write_label_how
from aigclabel.containers import open_container
from aigclabel.errors import InterruptedEditError, MalformedFileError
from tests._tools import exiftool_label
from tests._video import VIDEO, decode_errors, ffmpeg, ffprobe_tags

pytestmark = pytest.mark.interop  # ffmpeg, ffprobe, exiftool, qpdf make and read the files

H264_AAC = [*VIDEO, "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:v", "libx264", "-c:a", "aac"]
OLD = AIGCLabel.for_producer("001191440300708461136T1XGW3", "0123456789abcdef0123456789abcdef")
NEW = AIGCLabel.for_producer("001191440300708461136T1XGW3", "fedcba9876543210fedcba9876543210", label="2")


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


def _wav_tag(path: Path) -> str | None:
    """The ``AIGC`` chunk, found by a walk of the RIFF chunks written here (not aigclabel's)."""
    data = path.read_bytes()
    assert data[:4] == b"RIFF" and int.from_bytes(data[4:8], "little") == len(data) - 8
    pos, found = 12, []
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if cid == b"AIGC":
            found.append(data[pos + 8 : pos + 8 + size].decode())
        pos += 8 + size + size % 2
    assert pos == len(data) and len(found) <= 1
    return found[0] if found else None


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


@pytest.mark.parametrize("case", sorted(CASES))
def test_killed_in_place_write_leaves_old_or_new(case: str, tmp_path: Path) -> None:
    make, old, independent, decoder = CASES[case]
    base = make(tmp_path)
    if old is not None:
        write_label(base, old)
    original = base.read_bytes()
    digest = open_container(base).payload_digest(base)
    finished = tmp_path / f"finished{base.suffix}"
    shutil.copy(base, finished)
    assert write_label_how(finished, NEW) == "in-place"
    expected = finished.read_bytes()
    work = tmp_path / f"work{base.suffix}"
    outcomes = {"old": 0, "new": 0}
    checked: set[bytes] = set()
    for kill_at in range(1, 100):
        shutil.copy(base, work)
        killed = _killed_write(work, NEW, kill_at)
        if killed and kill_at % 2:
            recover(work)
        after = read_label(work)  # recovers by itself when the journal is still there
        assert journal.pending(work) is None
        data = work.read_bytes()
        assert data in (original, expected), f"step {kill_at}: neither the old file nor the new one"
        assert after == (old if data == original else NEW)
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
    assert kill_at > 6 and outcomes["old"] > 3 and outcomes["new"] >= 2, outcomes
    assert len(checked) == 2
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


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
