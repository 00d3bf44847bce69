"""Byte-level helpers shared by the container modules: atomic output that keeps a file what it was,
recognisable temporary files, and bounded, checked reads."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import shutil
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import FileAccessError, LimitExceededError, NotRegularFileError, TruncatedFileError

try:
    import fcntl
except ImportError:  # Windows: writers are not serialised there
    fcntl = None  # type: ignore[assignment]

#: Chunk size for streaming copies: large enough for throughput, small enough for bounded memory.
COPY_CHUNK = 1 << 20

#: Largest metadata structure (one XMP packet, one tag block) we agree to hold in memory.
MAX_METADATA_BYTES = 16 << 20

#: Largest image (in pixels) a detector or checker decodes: a few hundred KB of PNG can declare
#: gigabytes of pixels, and a platform must not let one upload take its memory. 50 MP covers 8K frames.
MAX_DECODE_PIXELS = 50_000_000

#: Whether :func:`atomic_output` fsyncs the new file before renaming it over the old one, when the
#: caller does not say. On by default: without it a crash just after an in-place write can leave
#: an empty file where the input was. ``AIGCLABEL_FSYNC=0`` in the environment (read once, at
#: import) turns it off for outputs that are cheap to redo (scratch copies, tmpfs, benchmarks);
#: the rename itself stays atomic either way.
DURABLE = os.environ.get("AIGCLABEL_FSYNC", "1").strip().lower() not in {"0", "false", "no", "off"}


#: Temporary files carry this tag, the writer's host and pid, and a random token:
#: ``.photo.jpg.<host>-<pid>-<token>.aigclabel-tmp`` (scratch copies keep the source's suffix after
#: the tag, because some formats are recognised by suffix). The pid lets a later run tell a
#: temporary file whose writer was killed from one still being written.
TEMP_TAG = ".aigclabel-tmp"

#: A temporary file whose writer cannot be checked (another host, an older naming, Windows) is
#: removed once it has not been modified for this long.
STALE_AFTER_SECONDS = 6 * 3600

_TEMP_NAME = re.compile(
    r"\.(?P<base>.*)\.(?P<host>[0-9a-f]{4})-(?P<pid>[0-9]+)-[0-9a-f]{8}\.aigclabel-tmp(?:\.[^.]*)?", re.DOTALL
)
#: Names earlier releases gave their temporary files (``mkstemp`` tokens, no pid).
_LEGACY_TEMP_NAME = re.compile(
    r"\..*\.[a-z0-9_]{8}\.aigclabel-tmp(?:\.[^.]*)?|\.aigclabel-stage-[a-z0-9_]{8}.*", re.DOTALL
)
_NAME_MAX = 100  # of the original name kept in a temporary one, so the result stays under NAME_MAX
_swept: set[str] = set()
_held = threading.local()


def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:4]


_HOST = _host_tag()


def is_temp_name(name: str) -> bool:
    """True for the name of a temporary file aigclabel creates (or created in earlier releases)."""
    return bool(_TEMP_NAME.fullmatch(name) or _LEGACY_TEMP_NAME.fullmatch(name))


def new_temp(dst: Path, suffix: str = "") -> Path:
    """Create an empty private file beside ``dst`` under a recognisable temporary name and return it.

    The name is built from ``dst``'s own name, or from the original name when ``dst`` is itself a
    temporary file, so names never nest. Stale temporary files in the directory are removed first
    (see :func:`sweep_stale`).
    """
    base = dst.name
    nested = _TEMP_NAME.fullmatch(base)
    if nested:
        base = nested["base"]
    sweep_stale(dst.parent)
    prefix = f".{base[:_NAME_MAX]}.{_HOST}-{os.getpid()}-"
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = dst.parent / f"{prefix}{secrets.token_hex(4)}{TEMP_TAG}{suffix}"
        try:
            os.close(os.open(tmp, flags, 0o600))
            return tmp
        except FileExistsError:
            continue
        except OSError as exc:
            raise access_error(exc, dst) from exc


def _pid_alive(pid: int) -> bool | None:
    """Whether process ``pid`` runs on this host; ``None`` where that cannot be asked safely
    (on Windows ``os.kill(pid, 0)`` would terminate the process)."""
    if os.name != "posix":
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def sweep_stale(directory: Path) -> list[Path]:
    """Remove the temporary files a killed writer left in ``directory``; returns what was removed.

    A file written by this host is stale when its pid is no longer running; any other (another
    host's, an older naming, or where pids cannot be checked) when it is older than
    :data:`STALE_AFTER_SECONDS`. A running writer's file is never touched. Each directory is swept
    once per process, and failures are ignored: cleaning up must never stop a write.
    """
    key = os.fspath(directory)
    if key in _swept:
        return []
    _swept.add(key)
    removed: list[Path] = []
    now = time.time()
    try:
        with os.scandir(directory or ".") as entries:
            for entry in entries:
                name = entry.name
                if not name.startswith(".") or "aigclabel-" not in name:
                    continue
                ours = _TEMP_NAME.fullmatch(name)
                if ours is None and not _LEGACY_TEMP_NAME.fullmatch(name):
                    continue
                alive = _pid_alive(int(ours["pid"])) if ours and ours["host"] == _HOST else None
                with contextlib.suppress(OSError):
                    if alive is False or (
                        alive is None and now - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER_SECONDS
                    ):
                        os.unlink(entry.path)
                        removed.append(Path(entry.path))
    except OSError:
        pass
    return removed


@contextlib.contextmanager
def scratch(beside: Path, suffix: str = "") -> Iterator[Path]:
    """A temporary file beside ``beside`` (ending in ``suffix``), removed on exit whatever happens."""
    tmp = new_temp(beside, suffix)
    try:
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def access_error(exc: OSError, path: Path | str) -> FileAccessError:
    """A :class:`FileAccessError` a person understands for ``exc``, met while working on ``path``."""
    reason = _REASONS.get(exc.errno or 0) or exc.strerror or str(exc)
    named = exc.filename if isinstance(exc.filename, str) and not is_temp_name(os.path.basename(exc.filename)) else None
    where = named or os.fspath(path)
    return FileAccessError(f"{where}: {reason}; nothing was changed")


_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOENT: "no such file or directory",
    errno.EISDIR: "is a directory",
    errno.ENOTDIR: "a part of the path is not a directory",
    errno.ENAMETOOLONG: "the file name is too long",
    errno.EIO: "input/output error",
    errno.EMFILE: "too many open files",
}


def check_regular(path: Path, st: os.stat_result) -> None:
    """Refuse anything but a regular file: a FIFO would block a reader forever, a device is no file."""
    if not stat.S_ISREG(st.st_mode):
        kind = next((what for test, what in _KINDS if test(st.st_mode)), "not a regular file")
        raise NotRegularFileError(f"{path} is {kind}, not a regular file")


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def open_regular(path: Path) -> int:
    """Open ``path`` for reading and return the descriptor, refusing (without blocking) anything
    but a regular file."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        check_regular(path, os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def write_lock(path: Path) -> Iterator[os.stat_result | None]:
    """Hold an exclusive ``flock`` on the regular file at ``path`` (following symlinks); yields its stat,
    or ``None`` when there is no file there yet.

    Writers replace files by rename, so a waiter re-checks after it gets the lock that ``path`` still
    names the inode it locked, and locks the new one if not: a second writer therefore reads the
    first one's result instead of silently undoing it. The lock is re-entrant within a thread (a
    pipeline may lock the target, then write it through :func:`atomic_output`). Where ``flock`` is
    missing (Windows) or refused (some network file systems), writes go ahead unlocked.
    """
    held: set[tuple[int, int]] = _held.__dict__.setdefault("keys", set())
    fd = -1
    try:
        while True:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                yield None
                return
            check_regular(path, st)
            if (st.st_dev, st.st_ino) in held or fcntl is None:
                yield st
                return
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:
                yield st  # unreadable or unlockable: the write itself decides
                return
            locked = os.fstat(fd)
            try:
                now = os.stat(path)
            except FileNotFoundError:
                now = None
            if now is not None and (now.st_dev, now.st_ino) == (locked.st_dev, locked.st_ino):
                break
            os.close(fd)  # replaced while we waited: lock what is there now
            fd = -1
        key = (locked.st_dev, locked.st_ino)
        held.add(key)
        try:
            yield now
        finally:
            held.discard(key)
    finally:
        if fd >= 0:
            os.close(fd)


@contextlib.contextmanager
def atomic_output(dst: Path, *, mode_from: Path | None = None, durable: bool | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``dst``; on success it replaces ``dst`` in one rename.

    On any exception the temporary file is removed and ``dst`` (which may be the input file) is
    left exactly as it was; operating-system errors (disk full, read-only, permission denied)
    become :class:`FileAccessError`. ``durable`` (default :data:`DURABLE`) fsyncs the new file
    before the rename and the directory after it, so neither exposes data still only in memory.

    The file stays what it was. A symlink ``dst`` is followed: its target is rewritten and the link
    stays a link. A replaced file keeps its mode, owner, group and extended attributes; a new one
    gets ``mode_from``'s permission bits (else the umask's) rather than ``mkstemp``'s 0600.
    Concurrent writers of one file are serialised (:func:`write_lock`). A file with several hard
    links is refused: a rename would leave the other names with the old content, and copying the
    new content back into the shared inode is neither atomic for readers nor safe against a crash
    half-way (every name would then show a torn file), so the only write that keeps the input
    intact is one the user chooses: ``-o`` to a new file.
    """
    dst = Path(dst)
    try:
        if os.path.islink(dst):
            dst = Path(os.path.realpath(dst))
        with write_lock(dst) as replaced:
            if replaced is not None:
                _check_replaceable(dst, replaced)
            tmp = new_temp(dst)
            try:
                yield tmp
                _copy_identity(tmp, dst, replaced, mode_from)
                if DURABLE if durable is None else durable:
                    _fsync(tmp)
                os.replace(tmp, dst)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                raise
            if DURABLE if durable is None else durable:
                _fsync_directory(dst.parent)
    except OSError as exc:
        if exc.errno is None:
            raise
        raise access_error(exc, dst) from exc


def _check_replaceable(dst: Path, st: os.stat_result) -> None:
    if st.st_nlink > 1:
        raise FileAccessError(
            f"{dst} has {st.st_nlink} hard links; rewriting it would leave the other names unlabelled, "
            "so it was not changed (write a copy with -o instead)"
        )
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        if st.st_uid != os.geteuid():
            raise FileAccessError(
                f"{dst} belongs to user {st.st_uid}; replacing it would make it yours, so it was not changed "
                "(run as its owner or root, or write a copy with -o)"
            )
        if st.st_gid != os.getegid() and st.st_gid not in os.getgroups():
            raise FileAccessError(
                f"{dst} belongs to group {st.st_gid}, which you are not in; replacing it would change its group, "
                "so it was not changed (write a copy with -o)"
            )


def _copy_identity(tmp: Path, dst: Path, replaced: os.stat_result | None, mode_from: Path | None) -> None:
    """Give ``tmp`` the owner, group, mode and extended attributes of the file it replaces."""
    if replaced is None:
        os.chmod(tmp, _target_mode(mode_from))
        return
    if hasattr(os, "chown"):
        mine = os.stat(tmp)
        if (mine.st_uid, mine.st_gid) != (replaced.st_uid, replaced.st_gid):
            os.chown(tmp, replaced.st_uid, replaced.st_gid)  # before chmod: chown clears set-id bits
    os.chmod(tmp, stat.S_IMODE(replaced.st_mode))
    if not hasattr(os, "listxattr"):
        return
    try:
        names = os.listxattr(dst)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return
        raise
    for name in names:
        value = os.getxattr(dst, name)
        with contextlib.suppress(OSError):
            if os.getxattr(tmp, name) == value:  # e.g. an SELinux context the new file already has
                continue
        try:
            os.setxattr(tmp, name, value)
        except OSError as exc:
            raise FileAccessError(
                f"{dst}: cannot keep its extended attribute {name} ({exc.strerror}); it was not changed"
            ) from exc


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))  # Windows fsyncs writable handles only
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable; a no-op where directories cannot be opened (Windows)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


_MISSING = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP})


def _target_mode(mode_from: Path | None) -> int:
    """Permission bits for a new file: ``mode_from``'s, else what a plain ``open()`` would give
    under the current umask."""
    if mode_from is not None:
        try:
            return stat.S_IMODE(os.stat(mode_from).st_mode)
        except OSError as exc:
            if exc.errno not in _MISSING:  # the errors Path.exists() reads as "no such file"
                raise
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def read_exact(handle: BinaryIO, size: int, what: str) -> bytes:
    """Read exactly ``size`` bytes or raise :class:`TruncatedFileError` naming ``what``."""
    if size > MAX_METADATA_BYTES:
        raise LimitExceededError(f"{what} declares {size} bytes, over the {MAX_METADATA_BYTES} byte limit")
    data = handle.read(size)
    if len(data) != size:
        raise TruncatedFileError(f"file ends inside {what} (wanted {size} bytes, got {len(data)})")
    return data


def copy_exact(src: BinaryIO, dst: BinaryIO, size: int, what: str) -> None:
    """Stream exactly ``size`` bytes from ``src`` to ``dst`` in bounded chunks."""
    remaining = size
    while remaining:
        chunk = src.read(min(COPY_CHUNK, remaining))
        if not chunk:
            raise TruncatedFileError(f"file ends inside {what} ({remaining} of {size} bytes missing)")
        dst.write(chunk)
        remaining -= len(chunk)


def copy_rest(src: BinaryIO, dst: BinaryIO) -> None:
    """Stream everything left in ``src`` to ``dst``."""
    shutil.copyfileobj(src, dst, COPY_CHUNK)


def file_size(handle: BinaryIO) -> int:
    """Size of an open seekable file, leaving its position unchanged."""
    return os.fstat(handle.fileno()).st_size
