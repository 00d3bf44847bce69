"""Byte-level helpers shared by the container modules: atomic output that keeps a file what it was,
recognisable temporary files, and bounded, checked reads."""

from __future__ import annotations

import contextlib
import contextvars
import errno
import functools
import os
import re
import shutil
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from .errors import AIGCLabelError, FileAccessError, LimitExceededError, NotRegularFileError, TruncatedFileError

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


@functools.cache
def _host_tag() -> str:
    """Four hex digits naming this host in temporary names (hashlib and socket load on the first write)."""
    import hashlib
    import socket

    return hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:4]


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
    prefix = f".{base[:_NAME_MAX]}.{_host_tag()}-{os.getpid()}-"
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = dst.with_name(f"{prefix}{os.urandom(4).hex()}{TEMP_TAG}{suffix}")  # as secrets.token_hex(4)
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
        pass  # exists, owned by someone else
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """True for a process that has exited but not been reaped yet (a killed writer whose parent
    died too can stay so for a moment); it never writes again. False where ``/proc`` is missing."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rpartition(b")")[2].split()[:1]
    except OSError:
        return False
    return state in ([b"Z"], [b"X"])


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
                alive = _pid_alive(int(ours["pid"])) if ours and ours["host"] == _host_tag() else None
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


def same_file(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` name one existing file (through links or different spellings)."""
    if a == b:
        return os.path.exists(a)
    try:
        return os.path.samefile(a, b)
    except FileNotFoundError:
        return False


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
def write_lock(
    path: Path, before_wait: Callable[[], None] | None = None, known: os.stat_result | None = None
) -> Iterator[os.stat_result | None]:
    """Hold an exclusive ``flock`` on the regular file at ``path`` (following symlinks); yields its stat,
    or ``None`` when there is no file there yet.

    Writers replace files by rename, so a waiter re-checks after it gets the lock that ``path`` still
    names the inode it locked, and locks the new one if not: a second writer therefore reads the
    first one's result instead of silently undoing it. The lock is re-entrant within a thread (a
    pipeline may lock the target, then write it through :func:`atomic_output`). Where ``flock`` is
    missing (Windows) or refused (some network file systems), writes go ahead unlocked.
    ``before_wait`` runs before blocking on a lock another process holds (a durability group uses
    it to release the locks it holds first, so two groups never wait on each other).
    ``known`` is ``path``'s stat if the caller just took it (it is checked again once locked).
    """
    held: set[tuple[int, int]] = _held.__dict__.setdefault("keys", set())
    fd = -1
    try:
        while True:
            try:
                st = known or os.stat(path)
            except FileNotFoundError:
                yield None
                return
            known = None
            check_regular(path, st)
            if (st.st_dev, st.st_ino) in held or fcntl is None:
                yield st
                return
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if before_wait is not None:
                        before_wait()
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
    Inside a :func:`durability_group` a durable write is complete and checked when the block ends,
    but its fsync and rename are done by the group, together with the group's other files.

    The file stays what it was. A symlink ``dst`` is followed: its target is rewritten and the link
    stays a link. A replaced file keeps its mode, owner, group and extended attributes; a new one
    gets ``mode_from``'s permission bits (else the umask's) rather than ``mkstemp``'s 0600.
    Concurrent writers of one file are serialised (:func:`write_lock`). A file with several hard
    links is refused: a rename would leave the other names with the old content, and copying the
    new content back into the shared inode is neither atomic for readers nor safe against a crash
    half-way (every name would then show a torn file), so the only write that keeps the input
    intact is one the user chooses: ``-o`` to a new file.
    """
    dst = as_path(dst)
    durable = DURABLE if durable is None else durable
    group = _group.get() if durable else None
    try:
        known = _lstat(dst)
        if known is not None and stat.S_ISLNK(known.st_mode):
            dst, known = Path(os.path.realpath(dst)), None
        if group is not None and dst in group.targets:
            group.flush()  # a second write of one file reads the first one's result
            known = None  # (and the rename changed what dst names)
        with contextlib.ExitStack() as locks:
            replaced = locks.enter_context(write_lock(dst, group.flush if group is not None else None, known))
            if replaced is not None:
                _check_replaceable(dst, replaced)
            tmp = new_temp(dst)
            try:
                yield tmp
                _copy_identity(tmp, dst, replaced, mode_from)
                if group is not None:
                    group.add(tmp, dst, locks.pop_all())  # the lock is held until the group renames
                    return
                if durable:
                    _fsync(tmp)
                os.replace(tmp, dst)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                raise
            if durable:
                _fsync_directory(dst.parent)
    except OSError as exc:
        if exc.errno is None:
            raise
        raise access_error(exc, dst) from exc


def _lstat(path: Path) -> os.stat_result | None:
    """``path``'s own stat (a symlink's, not its target's), or ``None`` where ``os.path.islink`` says False
    for an error: the lock's stat of a file that is not a link, taken once."""
    try:
        return os.lstat(path)
    except (OSError, ValueError):
        return None


@dataclass
class _Pending:
    tmp: Path
    dst: Path
    lock: contextlib.ExitStack
    owner: object
    renamed: bool = False  # its temporary file is now the target: nothing left to remove


@dataclass
class DurabilityGroup:
    """Durable writes done together: see :func:`durability_group`."""

    #: Files held before the group flushes on its own (each holds a lock and a descriptor).
    limit: int = 64
    #: Set by the caller to tell whose write each pending file is; :attr:`failed` is keyed by it.
    owner: object = None
    #: Writes whose fsync or rename failed at a flush (their targets are unchanged), by owner.
    failed: dict[object, FileAccessError] = field(default_factory=dict)
    pending: list[_Pending] = field(default_factory=list)
    targets: set[Path] = field(default_factory=set)
    #: Threads releasing the flushed files' locks (see :meth:`_release_later`), oldest first.
    releasing: list[_Releaser] = field(default_factory=list)

    def add(self, tmp: Path, dst: Path, lock: contextlib.ExitStack) -> None:
        """Take over a complete temporary file ``tmp`` that is to replace ``dst`` (locked by ``lock``)."""
        self.pending.append(_Pending(tmp, dst, lock, self.owner))
        self.targets.add(dst)
        if len(self.pending) >= self.limit:
            self.flush()

    def flush(self) -> None:
        """Make every pending file durable, rename each over its target, fsync their directories.

        One write-back round for all of them: on Linux one ``syncfs`` per file system (which flushes
        other processes' pending writes there too, and reports write-back errors since 5.8), else an
        fsync of each temporary file after all were written. A file whose sync or rename fails is
        recorded in :attr:`failed` and its target left as it was.
        """
        pending, self.pending = self.pending, []
        self.targets.clear()
        renamed: dict[Path, list[_Pending]] = {}
        released = False
        try:
            synced = []
            by_directory: dict[Path, list[_Pending]] = {}
            for item in pending:
                by_directory.setdefault(item.tmp.parent, []).append(item)
            flushed: set[int] = set()  # file systems synced whole
            for directory, items in by_directory.items():
                device = _syncfs(directory, flushed)
                for item in items:
                    try:
                        if device is None:
                            _fsync(item.tmp)
                    except OSError as exc:
                        self._fail(item, exc)
                    else:
                        synced.append(item)
            for item in synced:
                try:
                    os.replace(item.tmp, item.dst)
                except OSError as exc:
                    self._fail(item, exc)
                else:
                    item.renamed = True
                    renamed.setdefault(item.dst.parent, []).append(item)
            self._release_later(pending)
            released = True
            for directory, items in renamed.items():
                try:
                    _fsync_directory(directory)
                except OSError as exc:
                    for item in items:
                        self._fail(item, exc)
        finally:
            if not released:
                _release(pending)

    def _release_later(self, pending: list[_Pending]) -> None:
        """Release the locks of renamed files in a thread, while this one goes on with the next files.

        Closing the last descriptor of a replaced file frees the old file, and on ext4 that waits for
        the journal (1-9 ms a file measured on a busy disk, most of a durable batch's wall time). The
        new files are already renamed and their directories fsynced without it; a lock only holds
        longer. :meth:`wait` (the end of :func:`durability_group`) joins the threads, so nothing is
        open when the group returns; :data:`_RELEASE_BACKLOG` bounds the descriptors they hold.
        """
        while self.releasing and sum(len(r.pending) for r in self.releasing) + len(pending) > _RELEASE_BACKLOG:
            self.releasing.pop(0).finish()
        releaser = _Releaser(pending)
        self.releasing.append(releaser)
        releaser.start()

    def wait(self) -> None:
        """Wait for the lock releases still running; raise the first error one met."""
        while self.releasing:
            self.releasing.pop(0).finish()

    def discard(self) -> None:
        """Drop every pending file: its target stays as it was."""
        pending, self.pending = self.pending, []
        self.targets.clear()
        _release(pending)

    def _fail(self, item: _Pending, exc: OSError) -> None:
        self.failed[item.owner] = access_error(exc, item.dst)


#: Locked files (one descriptor each) whose release may still be running behind a durability group.
_RELEASE_BACKLOG = 512


class _Releaser(threading.Thread):
    """:func:`_release` in a thread (see :meth:`DurabilityGroup._release_later`)."""

    def __init__(self, pending: list[_Pending]) -> None:
        super().__init__(name="aigclabel-release", daemon=True)
        self.pending = pending
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            _release(self.pending)
        except BaseException as exc:  # re-raised by finish(), in the thread that owns the group
            self.error = exc

    def finish(self) -> None:
        self.join()
        if self.error is not None:
            raise self.error


def _release(pending: list[_Pending]) -> None:
    """Remove the temporary files not renamed and release the locks (again: a no-op)."""
    for item in pending:
        if not item.renamed:
            with contextlib.suppress(FileNotFoundError):
                item.tmp.unlink()
        item.lock.close()


def _syncfs(directory: Path, flushed: set[int]) -> int | None:
    """``syncfs`` the file system holding ``directory`` unless it is in ``flushed``; its device
    number, or ``None`` where that is unavailable or failed (the caller then fsyncs each file, which
    also tells which one failed)."""
    if not _SYNCFS_REPORTS_ERRORS:
        return None
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        device = os.fstat(fd).st_dev
        if device in flushed:
            return device
        if _libc_syncfs()(fd) != 0:
            return None
        flushed.add(device)
        return device
    finally:
        os.close(fd)


def _kernel_at_least(version: tuple[int, int]) -> bool:
    match = re.match(r"(\d+)\.(\d+)", os.uname().release) if hasattr(os, "uname") else None
    return bool(match) and (int(match[1]), int(match[2])) >= version  # type: ignore[index]


#: ``syncfs`` reports write-back errors from Linux 5.8 on; before, it returned 0 whatever happened.
_SYNCFS_REPORTS_ERRORS = sys.platform.startswith("linux") and _kernel_at_least((5, 8))


@functools.cache
def _libc_syncfs() -> Callable[[int], int]:
    import ctypes  # only when a group flushes: ctypes costs a few ms at import

    function: Callable[[int], int] = ctypes.CDLL(None, use_errno=True).syncfs
    return function


_group: contextvars.ContextVar[DurabilityGroup | None] = contextvars.ContextVar("aigclabel_durability", default=None)


@contextlib.contextmanager
def durability_group(limit: int = 64) -> Iterator[DurabilityGroup]:
    """Group the durable writes of :func:`atomic_output` in this block (this thread or task).

    Each write is complete and checked when its own block ends, but its file is fsynced and renamed
    over the target by the group, ``limit`` files at a time and at the end of this block, so many
    small files cost one write-back round rather than one each. Every target is durable when the
    block returns (except those in :attr:`DurabilityGroup.failed`, which are unchanged); until then a
    target shows its old content, and a crash leaves each one old or new. A target's lock is held
    until its rename (a thread releases it soon after; all are released when the block returns).
    On an exception the pending files are dropped, their targets unchanged.
    """
    group = DurabilityGroup(limit=limit)
    token = _group.set(group)
    try:
        yield group
    except BaseException:
        group.discard()
        with contextlib.suppress(Exception):  # the error in flight matters more than a release's
            group.wait()
        raise
    else:
        try:
            group.flush()
        finally:
            group.wait()
    finally:
        _group.reset(token)


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


def as_path(path: Path | str) -> Path:
    """``path`` as a :class:`Path`, without re-parsing one (``Path(Path)`` does on Python < 3.12,
    which showed in per-file profiles of bulk writes)."""
    return path if isinstance(path, Path) else Path(path)


def read_exact(handle: BinaryIO, size: int, what: str) -> bytes:
    """Read exactly ``size`` bytes or raise :class:`TruncatedFileError` naming ``what``."""
    _check_metadata_size(size, what)
    return _exactly(handle.read(size), size, what)


def read_at(fd: int, offset: int, size: int) -> bytes:
    """Up to ``size`` bytes at ``offset`` of ``fd`` (fewer only at the end of the file): ``pread``,
    which leaves the descriptor's position alone, or a seek and reads where the OS lacks it. Walkers
    of metadata read this way rather than through a buffered handle, which would refill a whole
    buffer at every seek."""
    if _PREAD:
        first = os.pread(fd, size, offset)
        if len(first) == size or not first:
            return first  # the common case: one call
        parts = [first]
        offset, size = offset + len(first), size - len(first)
    else:
        parts = []
        os.lseek(fd, offset, os.SEEK_SET)
    while size > 0:
        chunk = os.pread(fd, size, offset) if _PREAD else os.read(fd, size)
        if not chunk:
            break  # the end of the file (a short read before it is rare, but allowed)
        parts.append(chunk)
        offset += len(chunk)
        size -= len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def read_exact_at(fd: int, offset: int, size: int, what: str) -> bytes:
    """:func:`read_exact` at ``offset`` of ``fd``, through :func:`read_at`."""
    _check_metadata_size(size, what)
    return _exactly(read_at(fd, offset, size), size, what)


_PREAD = hasattr(os, "pread")


def _check_metadata_size(size: int, what: str) -> None:
    if size > MAX_METADATA_BYTES:
        raise LimitExceededError(f"{what} declares {size} bytes, over the {MAX_METADATA_BYTES} byte limit")


def _exactly(data: bytes, size: int, what: str) -> bytes:
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


def read_settings(path: Path | str, what: str, error: type[AIGCLabelError]) -> dict[str, Any]:
    """The table in a ``.toml`` (else JSON) settings file; an unreadable or malformed file raises ``error``
    naming ``what`` it is (``"key registry"``)."""
    import json
    import tomllib

    target = Path(path)
    try:
        text = target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read {what} {target}: {exc}") from None
    try:
        data = tomllib.loads(text) if target.suffix.lower() == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise error(f"{target}: not valid {target.suffix.lstrip('.') or 'JSON'}: {exc}") from None
    if not isinstance(data, dict):
        raise error(f"{target}: a {what} is a table/object")
    return data
