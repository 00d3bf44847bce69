"""Files stay what they were: failures leave nothing behind, file-system refusals are clear errors,
and links, owners, modes, xattrs and concurrent writers are kept straight (every format's CLI round
trip is in test_contract.py). Conditions that need root (tmpfs, bind mounts, another user) are skipped
without it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aigclabel import DEMO_PROVIDER_CODE, FileAccessError, NotRegularFileError, inspect, write_label
from aigclabel._io import atomic_output, is_temp_name, new_temp, sweep_stale
from aigclabel.cli import app

from ._tools import no_temp_files
from .conftest import SAMPLES, missing

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT or sys.platform != "linux", reason="needs root on Linux")


def _cli(*args: str | Path) -> tuple[int, str]:
    done = runner.invoke(app, [str(a) for a in args])
    return done.exit_code, " ".join(done.output.split())  # the error console wraps long messages


def _inspected(path: Path) -> dict[str, object]:
    code, output = _cli("inspect", "--json", path)
    rows = json.loads(output)
    assert len(rows) == 1
    row: dict[str, object] = rows[0]
    row["exit_code"] = code
    return row


def _produce_id(row: dict[str, object]) -> str:
    labels = row["labels"]  # a format may mirror one label in two places (PDF Info and XMP)
    assert isinstance(labels, list) and labels, row
    ids = {str(found["fields"]["ProduceID"]) for found in labels}
    assert len(ids) == 1, labels
    return ids.pop()


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_failed_strip_leaves_no_output(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    packet = '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    packet += '<rdf:Description xmlns:TC260="http://www.tc260.org.cn/ns/AIGC/1.0/" TC260:AIGC="x"/></rdf:RDF>'
    (tmp_path / "notes.xmp").write_text(packet)  # the closing x:xmpmeta is missing: not XML
    out = tmp_path / "out.txt"
    for command in (["strip", text, "-o", out], ["label", text, "-p", DEMO_PROVIDER_CODE, "-o", out]):
        code, output = _cli(*command)
        assert code == 4, output
        assert not out.exists() and not (tmp_path / "out.xmp").exists()
    broken = tmp_path / "broken.png"
    broken.write_bytes((SAMPLES / "sample.png").read_bytes()[:70])
    assert _cli("strip", broken, "-o", tmp_path / "x.png")[0] == 4
    assert not (tmp_path / "x.png").exists() and no_temp_files(tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifo_and_directory_inputs_are_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for command in ("inspect", "strip"):
        # The timeout only guards the test run; a correct refusal is immediate.
        done = subprocess.run(
            [sys.executable, "-m", "aigclabel", command, str(fifo)], capture_output=True, env=env, timeout=60
        )
        assert done.returncode == 8, done.stderr
        assert b"FIFO" in done.stderr and b"Traceback" not in done.stderr
    with pytest.raises(NotRegularFileError, match="directory"):
        write_label(tmp_path, _label())
    photo = tmp_path / "p.png"
    shutil.copy(SAMPLES / "sample.png", photo)
    with pytest.raises(NotRegularFileError, match="FIFO"):
        write_label(photo, _label(), fifo)


def _label() -> object:
    from aigclabel import AIGCLabel

    return AIGCLabel.for_producer(DEMO_PROVIDER_CODE)


@contextlib.contextmanager
def _tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@needs_root
def test_disk_full_is_a_clear_error_and_the_input_survives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aigclabel import _journal as journal

    with _tmpfs(tmp_path / "small", "200k") as small:
        sample = SAMPLES / "sample.tiff"
        photo = small / "photo.tiff"
        shutil.copy(sample, photo)
        with open(small / "big.txt", "wb", buffering=0) as filler, contextlib.suppress(OSError):
            while True:  # every free block
                filler.write(bytes(4096))
        for in_place in (True, False):  # the journalled edit needs room for its journal, the copy for a copy
            monkeypatch.setattr(journal, "IN_PLACE", in_place)
            code, output = _cli("label", photo, "-p", DEMO_PROVIDER_CODE)
            assert code == 8, output
            assert "no space left" in output and "Traceback" not in output
            assert photo.read_bytes() == sample.read_bytes()
            assert no_temp_files(small) and journal.pending(photo) is None


@needs_root
def test_read_only_file_system_is_a_clear_error(tmp_path: Path) -> None:
    with _tmpfs(tmp_path / "ro", "1m") as mounted:
        photo = mounted / "photo.png"
        shutil.copy(SAMPLES / "sample.png", photo)
        subprocess.run(["mount", "-o", "remount,ro", str(mounted)], check=True)
        code, output = _cli("label", photo, "-p", DEMO_PROVIDER_CODE)
        assert code == 8, output
        assert "read-only" in output
        assert photo.read_bytes() == (SAMPLES / "sample.png").read_bytes()


def _run_as(who: list[str], *args: str | Path) -> subprocess.CompletedProcess[bytes]:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        missing("setpriv is not installed", "install util-linux")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": "/tmp"}
    probe = [setpriv, *who, sys.executable, "-c", "import typer, aigclabel"]
    probed = subprocess.run(probe, capture_output=True, env=env)
    if probed.returncode != 0:
        pytest.skip(f"this Python cannot run as {who}: {probed.stderr.decode(errors='replace')[-200:]}")
    command = [setpriv, *who, sys.executable, "-m", "aigclabel", *map(str, args)]
    return subprocess.run(command, capture_output=True, env=env, timeout=120)


#: Root without the capabilities that bypass permission bits: an ordinary user for file access.
NO_OVERRIDE = ["--inh-caps=-dac_override,-dac_read_search", "--bounding-set=-dac_override,-dac_read_search"]
NOBODY = ["--reuid=nobody", "--regid=nogroup", "--clear-groups"]


@needs_root
def test_permission_denied_is_a_clear_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    photo = locked / "photo.png"
    shutil.copy(SAMPLES / "sample.png", photo)
    os.chown(locked, 65534, 65534)
    locked.chmod(0o755)
    for args in (["label", photo], ["label", SAMPLES / "sample.png", "-o", locked / "out.png"]):
        done = _run_as(NO_OVERRIDE, *args, "-p", DEMO_PROVIDER_CODE)
        assert done.returncode == 8, done.stderr
        assert b"permission denied" in done.stderr and b"Traceback" not in done.stderr
    assert photo.read_bytes() == (SAMPLES / "sample.png").read_bytes()
    assert sorted(p.name for p in locked.iterdir()) == ["photo.png"]


@needs_root
def test_another_users_file_is_refused_rather_than_taken_over() -> None:
    # Not under tmp_path: pytest's base folder is root-only, so nobody could not even reach the file.
    with tempfile.TemporaryDirectory(prefix="aigclabel-shared-") as scratch:
        shared = Path(scratch)
        shared.chmod(0o777)
        photo = shared / "photo.png"
        shutil.copy(SAMPLES / "sample.png", photo)
        photo.chmod(0o666)
        done = _run_as(NOBODY, "label", photo, "-p", DEMO_PROVIDER_CODE)
        assert done.returncode == 8 and b"belongs to user 0" in done.stderr, done.stderr
        assert photo.stat().st_uid == 0 and photo.read_bytes() == (SAMPLES / "sample.png").read_bytes()


@pytest.mark.parametrize("sample", ["sample.jpg", "sample.txt"])
def test_symlink_is_followed_and_stays_a_link(sample: str, tmp_path: Path) -> None:
    real = tmp_path / "store" / f"real{Path(sample).suffix}"
    real.parent.mkdir()
    shutil.copy(SAMPLES / sample, real)
    link = tmp_path / f"link{Path(sample).suffix}"
    link.symlink_to(os.path.relpath(real, tmp_path))
    assert _cli("label", link, "-p", DEMO_PROVIDER_CODE, "--produce-id", "via-link")[0] == 0
    assert link.is_symlink() and link.resolve() == real
    assert _produce_id(_inspected(real)) == "via-link"
    assert _produce_id(_inspected(link)) == "via-link"
    assert _hidden(tmp_path) == [] and _hidden(real.parent) == []


def test_hard_linked_file_is_refused_and_every_name_unchanged(tmp_path: Path) -> None:
    photo = tmp_path / "a.png"
    shutil.copy(SAMPLES / "sample.png", photo)
    other = tmp_path / "b.png"
    os.link(photo, other)
    code, output = _cli("label", photo, "-p", DEMO_PROVIDER_CODE)
    assert code == 8 and "2 hard links" in output, output
    assert photo.stat().st_ino == other.stat().st_ino and photo.stat().st_nlink == 2
    assert inspect(other).labels == []
    assert _cli("label", photo, "-p", DEMO_PROVIDER_CODE, "-o", tmp_path / "copy.png")[0] == 0, "-o still works"


def test_mode_owner_group_and_xattrs_are_kept(tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    shutil.copy(SAMPLES / "sample.jpg", photo)
    photo.chmod(0o640)
    try:
        os.setxattr(photo, "user.origin", b"camera-7")
    except (AttributeError, OSError) as exc:
        pytest.skip(f"no user extended attributes here: {exc}")
    if IS_ROOT:
        os.chown(photo, 65534, 65534)
    before = photo.stat()
    assert _cli("label", photo, "-p", DEMO_PROVIDER_CODE)[0] == 0
    after = photo.stat()
    assert after.st_ino != before.st_ino, "replaced by rename, not rewritten in place"
    assert (after.st_uid, after.st_gid, stat.S_IMODE(after.st_mode)) == (before.st_uid, before.st_gid, 0o640)
    assert os.getxattr(photo, "user.origin") == b"camera-7"
    assert inspect(photo).ok


def test_temporary_names_never_nest(tmp_path: Path) -> None:
    first = new_temp(tmp_path / "photo.jpg")
    second = new_temp(first, ".jpg")
    assert is_temp_name(first.name) and is_temp_name(second.name)
    assert second.name.startswith(".photo.jpg.") and second.name.count("aigclabel-tmp") == 1
    assert second.suffix == ".jpg"


_KILLED_WRITER = """
import sys, time
from pathlib import Path
from aigclabel._io import atomic_output
with atomic_output(Path(sys.argv[1])) as tmp, open(tmp, "wb") as out:
    for _ in range(64):
        out.write(b"\\0" * (1 << 20))
    out.flush()
    print(tmp.name, flush=True)
    time.sleep(600)
"""


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL and pid checks are POSIX")
def test_sigkill_leftovers_are_removed_by_the_next_run_but_live_writers_are_not(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def writer(target: str) -> tuple[subprocess.Popen[str], str]:
        process = subprocess.Popen(
            [sys.executable, "-c", _KILLED_WRITER, str(tmp_path / target)], stdout=subprocess.PIPE, text=True, env=env
        )
        assert process.stdout is not None
        return process, process.stdout.readline().strip()

    killed, leftover = writer("big.bin")
    live, in_progress = writer("other.bin")
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        assert (tmp_path / leftover).stat().st_size == 64 << 20
        assert f"-{killed.pid}-" in leftover and is_temp_name(leftover)
        photo = tmp_path / "photo.png"
        shutil.copy(SAMPLES / "sample.png", photo)
        done = subprocess.run(
            [sys.executable, "-m", "aigclabel", "label", str(photo), "-p", DEMO_PROVIDER_CODE], env=env, timeout=120
        )
        assert done.returncode == 0
        assert not (tmp_path / leftover).exists(), "the killed writer's temporary file is swept"
        assert (tmp_path / in_progress).exists(), "a running writer's temporary file is left alone"
        assert sweep_stale(tmp_path) == []
    finally:
        live.kill()
        live.wait()
    assert not (tmp_path / "big.bin").exists(), "the killed write never replaced anything"


_FIRST_WRITER = """
import sys
from pathlib import Path
from aigclabel._io import atomic_output
with atomic_output(Path(sys.argv[1])) as tmp:
    print("locked", flush=True)
    sys.stdin.readline()
    tmp.write_bytes(Path(sys.argv[2]).read_bytes())
"""


def _waiting_on_flock(pid: int) -> bool:
    return any("-> FLOCK" in line and f" {pid} " in line for line in Path("/proc/locks").read_text().splitlines())


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux /proc/locks to see a blocked writer")
def test_concurrent_writers_are_serialised(tmp_path: Path) -> None:
    """The second writer waits for the first and labels its result; without the lock it would label
    the old bytes and one of the two writes would be lost."""
    from PIL import Image

    target = tmp_path / "shared.png"
    shutil.copy(SAMPLES / "sample.png", target)
    replacement = tmp_path / "replacement.png"
    Image.new("RGB", (8, 8), (200, 10, 10)).save(replacement)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen(
        [sys.executable, "-c", _FIRST_WRITER, str(target), str(replacement)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert first.stdout is not None and first.stdin is not None
    assert first.stdout.readline().strip() == "locked"
    second = subprocess.Popen(
        [sys.executable, "-m", "aigclabel", "label", str(target), "-p", DEMO_PROVIDER_CODE, "--produce-id", "second"],
        env=env,
    )
    try:
        while not _waiting_on_flock(second.pid):
            assert second.poll() is None, "the second writer did not wait for the first"
        first.stdin.write("go\n")
        first.stdin.flush()
        assert first.wait(timeout=120) == 0
        assert second.wait(timeout=120) == 0
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.kill()
    with Image.open(target) as image:
        assert image.getpixel((0, 0)) == (200, 10, 10), "the second writer worked on the first one's result"
    assert _produce_id(_inspected(target)) == "second"
    assert no_temp_files(tmp_path)


def test_os_errors_are_typed_in_the_library(tmp_path: Path) -> None:
    missing_dir = tmp_path / "no" / "such" / "dir" / "out.png"
    with pytest.raises(FileAccessError, match="no such file"):
        write_label(SAMPLES / "sample.png", _label(), missing_dir)  # type: ignore[arg-type]
    with pytest.raises(FileAccessError), atomic_output(tmp_path / "x.bin") as tmp:
        tmp.write_bytes(b"x")
        raise PermissionError(13, "Permission denied")
    assert not (tmp_path / "x.bin").exists() and no_temp_files(tmp_path)
