"""In-place edits protected by an undo journal: a label written into a big file costs its metadata,
not a copy of the file.

A container that has room for the new label where it is (a ``free`` box beside ``moov``, ID3v2
padding, a FLAC ``PADDING`` block) or can append it, describes the edit as an :class:`EditPlan`:
byte patches ``(offset, new bytes)`` and the file's new length. :func:`write_in_place` then

1. compares each patch with what is on disk and keeps only the bytes that differ;
2. writes the **undo journal** beside the file (``.NAME.aigclabel-journal``): the file's identity,
   its old and new length, the original bytes of every region about to be overwritten (and of the
   tail a shorter file loses) and a SHA-256 of the state the edit leads to, sealed with a SHA-256
   over all of it; fsyncs it and its directory;
3. applies the patches, sets the new length, fsyncs the file;
4. reads the file back (the container's check); on a mismatch it rolls the edit back and raises;
5. removes the journal (without an fsync: see below).

A process killed anywhere in between leaves either no journal (the file untouched, or the edit
complete), a journal that fails its checksum (killed while writing it: the file is untouched, the
journal is dropped), or a whole journal: the next :func:`recover` (which :func:`open_container
<aigclabel.containers.open_container>` runs before any read or write of the file, and ``aigclabel
recover`` runs on demand) compares the edited regions and the length with the SHA-256 of the new
state the journal carries: when every patch is in place the edit is kept (fsynced, the journal
removed: a removal lost in a crash is therefore harmless, which saves a directory fsync per edit),
otherwise the original bytes go back, the length is restored and the journal is removed. So the
file is always the old one or the new one, as with the atomic copy, which stays the path when a
format has no room, when the output is another file, or when ``AIGCLABEL_IN_PLACE=0``.

**Appends without a journal.** A format whose readers stop where a size in its header says (a RIFF
size) can take an appended label without any journal: the new bytes go past that end first (in
pieces that each stay inside one 4 KiB block, fdatasynced when durable), then one write of the size
field, inside one disk sector, makes them part of the file (fdatasynced). A kill or a crash before
that write leaves the old file followed by bytes no reader of the format sees; the format recognises
that leftover (:meth:`Container.recover <aigclabel.containers.Container.recover>`, which its reads
and ``aigclabel recover`` run) and :func:`drop_leftover` cuts it, so the file is again byte for byte
the old one. A kill tears a write only between pages (the kernel copies a page at a time and checks
for a fatal signal between pages), so the leftover always starts with at least :data:`APPEND_HEAD`
whole bytes (the writer journals the edit instead when the next 4 KiB boundary is closer) and ends
complete or at a 4 KiB boundary; a power cut that leaves something else past the end (zeros) leaves
bytes that readers still ignore and that stay there (a later label copies such a file). The one
assumption beyond the journal's is that a disk writes a sector all or nothing (see below).

**Edits inside one sector without a journal.** When every byte an edit changes lies inside one
aligned 512-byte sector and the length stays (a relabel of the same length, where only the label's
JSON changes), the edit is one ``pwrite`` of those bytes and one ``fdatasync``, with no journal:
a kill leaves the write whole or absent (it stays inside one page, see above), and a power cut
leaves the sector old or new. That rests on two properties of the disk, the ones SQLite names
``SQLITE_IOCAP_ATOMIC512`` (an aligned 512-byte write is all or nothing) and
``SQLITE_IOCAP_POWERSAFE_OVERWRITE`` (a crash changes no byte outside the ones written): the page
cache writes back whole blocks, so the unchanged bytes around the edit go to the disk again, with
the same values, and only the one sector holding the change can differ. NVMe promises the first
(its atomic write unit on power fail is at least one logical block, and a logical block is 512
bytes or a multiple, so it holds the whole sector); copy-on-write and data-journalling file systems
give it by themselves; SATA and SAS disks, USB sticks and SD cards promise nothing: a hard disk
cut mid-sector can leave that sector unreadable, and flash without power-loss protection can lose
more than the sector being written (which no journal repairs either). SQLite's own Unix VFS does
not claim ATOMIC512 and journals every change, so this is a deliberate trade: the default,
durable write is one flush instead of three, and ``AIGCLABEL_ATOMIC_SECTOR=0`` (read at import)
turns both journal-free paths off for a disk one does not trust that far. With fsync off a power
cut is given up anyway, and what must hold is only that a kill leaves the old or the new file: an
edit inside one memory page is then one ``pwrite`` (see :func:`_apply_unjournalled`).

A reader racing an in-place write of the same file may see its metadata mid-edit (as with any tag
editor that writes in place) and report it malformed; a read after the write sees the old or the new
file. Writers are serialised by :func:`aigclabel._io.write_lock`, and recovery takes the same lock,
so it never rolls back an edit that is still running.

``AIGCLABEL_JOURNAL_KILL_AT=k`` (tests only) makes the process SIGKILL itself at the k-th step
(journal write, fsync, patch half, truncate, unlink...) of an edit or a recovery, and write each
patch in two halves so a kill can tear it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ._io import DURABLE, _fsync_directory, _group, access_error, read_at, write_lock
from .errors import InterruptedEditError

if TYPE_CHECKING:
    import hashlib

#: ``AIGCLABEL_IN_PLACE=0`` in the environment (read at import) makes every write a full atomic copy.
#: (Windows has no ``pwrite``: copies only there.)
IN_PLACE = hasattr(os, "pwrite") and os.environ.get("AIGCLABEL_IN_PLACE", "1").strip().lower() not in {
    "0",
    "false",
    "no",
    "off",
}

JOURNAL_TAG = ".aigclabel-journal"
_MAGIC = b"AIGCJNL2"
#: magic, old size, new size, st_dev, st_ino, region count, SHA-256 of the edited regions and new size
_HEADER = struct.Struct(">8sQQQQI32s")
_REGION = struct.Struct(">QII")  # offset, length of the original bytes (that follow), length of the new ones
#: Patches are compared with the disk in blocks of this size; only differing blocks are written.
_BLOCK = 512
#: Bytes the kernel writes to a file all or nothing when the writer is killed (one page).
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
#: Appended bytes are written in pieces that each stay inside one aligned block of this size: a page
#: on every system (4 KiB or a multiple), so a kill leaves each piece whole or absent.
APPEND_BLOCK = 4096
#: Bytes at the start of an append that a kill or crash never leaves torn (see the module docstring):
#: enough for a format to recognise its leftover (AVI's is 22 bytes: a pad byte, ``LIST``, ``INFO``,
#: the ``AIGC`` entry's header and ``{``).
APPEND_HEAD = 32
#: A write inside one aligned block of this size reaches the disk all or nothing.
_SECTOR = 512
#: ``AIGCLABEL_ATOMIC_SECTOR=0`` (read at import): trust no disk to write a sector all or nothing, so
#: every durable in-place edit is journalled (see the module docstring).
ATOMIC_SECTOR = os.environ.get("AIGCLABEL_ATOMIC_SECTOR", "1").strip().lower() not in {"0", "false", "no", "off"}
#: Largest journal we write: an edit bigger than this is no longer "only the metadata".
MAX_JOURNAL_BYTES = 64 << 20

_local = threading.local()
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
_EDIT_FLAGS = os.O_RDWR | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


@dataclass(frozen=True)
class EditPlan:
    """An in-place edit: ``patches`` of ``(offset, new bytes)`` (sorted, not overlapping) and the
    file's length afterwards (bytes past the old end that no patch covers read as zeros); ``check``,
    a format's own test of the edited file, runs after the read-back (raising rolls the edit back)."""

    patches: tuple[tuple[int, bytes], ...]
    size: int
    check: Callable[[Path], None] | None = None
    #: Set by a format whose readers stop at a length its header records: the offset of the one patch
    #: (inside one disk sector) that writes that length, when the only other patch appends from
    #: ``visible`` (that length now; bytes past it are a leftover to cut) to ``size``. Written without
    #: a journal: see the module docstring.
    commit: int | None = None
    visible: int = 0


@dataclass(frozen=True)
class Journal:
    """A parsed undo journal: how to put the file back as it was, and how to tell that the edit
    completed (then it is kept: ``new_digest`` is :func:`_state_digest` of the edited file)."""

    old_size: int
    new_size: int
    device: int
    inode: int
    regions: tuple[tuple[int, bytes, int], ...]  # (offset, original bytes, length written there)
    new_digest: bytes


def journal_path(path: Path) -> Path:
    """Where the undo journal of ``path`` lives: a hidden file beside it."""
    return Path(_journal_name(os.fspath(path)))


def _sha256(data: bytes = b"") -> hashlib._Hash:
    """A SHA-256 of ``data``; hashlib loads with the first journal written or read, not with every open."""
    import hashlib

    return hashlib.sha256(data)


def _journal_name(path: str) -> str:
    """:func:`journal_path` as a string: every open looks for a journal, and pathlib's joins cost
    more than the ``lstat`` itself (so do ``os.path``'s, which a path with one slash before its
    name does not need)."""
    if _SLASH_ONLY:
        cut = path.rfind("/") + 1
        if len(path) - cut <= 200 and (cut < 2 or path[cut - 2] != "/"):
            return f"{path[:cut]}.{path[cut:]}{JOURNAL_TAG}"
    parent, name = os.path.split(path)
    if len(name) > 200:  # keep under NAME_MAX; the hash keeps long names apart
        name = name[:100] + "." + _sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return os.path.join(parent, f".{name}{JOURNAL_TAG}")


_SLASH_ONLY = os.sep == "/" and not os.altsep


def _lexists(path: str) -> bool:
    """:func:`os.path.lexists` without the exception it raises and catches when nothing is there (the
    common case of a journal lookup, where the exception cost more than the system call)."""
    if _ACCESS_NOFOLLOW:
        try:
            return os.access(path, os.F_OK, effective_ids=True, follow_symlinks=False)
        except ValueError:  # an embedded NUL, as lexists
            return False
    return os.path.lexists(path)


_ACCESS_NOFOLLOW = os.access in os.supports_follow_symlinks and os.access in os.supports_effective_ids


def _arm() -> None:
    """Read the test hook's variable once per edit or recovery (the environment is slow to query,
    and a test sets it in a forked child after import)."""
    _local.kill_at = int(os.environ.get("AIGCLABEL_JOURNAL_KILL_AT") or 0)


def _step() -> None:
    """One step of an edit or a recovery; see the module docstring for the test hook."""
    target = getattr(_local, "kill_at", 0)
    if not target:
        return
    _local.steps = getattr(_local, "steps", 0) + 1
    if _local.steps == target:
        os.kill(os.getpid(), signal.SIGKILL)


def _kill_hook() -> bool:
    return bool(getattr(_local, "kill_at", 0))


def _pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    if _kill_hook() and len(view) > 1:  # two halves, so a kill can leave a torn region behind
        half = len(view) // 2
        _pwrite_all_plain(fd, view[:half], offset)
        _step()
        view, offset = view[half:], offset + half
    _pwrite_all_plain(fd, view, offset)
    _step()


def _pwrite_all_plain(fd: int, view: memoryview, offset: int) -> None:
    while view:
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done


def _differing(fd: int, plan: EditPlan, old_size: int) -> list[tuple[int, bytes, bytes]]:
    """``(offset, new bytes, old bytes)`` spans where the plan changes the file, in blocks of
    :data:`_BLOCK` (merged when adjacent); bytes past the old end count as changed."""
    spans: list[tuple[int, bytes, bytes]] = []
    for offset, data in plan.patches:
        old = read_at(fd, offset, min(len(data), max(old_size - offset, 0)))
        start = None
        for at in range(0, len(data), _BLOCK):
            same = data[at : at + _BLOCK] == old[at : at + _BLOCK]
            if not same and start is None:
                start = at
            elif same and start is not None:
                spans.append((offset + start, data[start:at], old[start:at]))
                start = None
        if start is not None:
            spans.append((offset + start, data[start:], old[start:]))
    return spans


def _encode(journal: Journal) -> bytes:
    parts = [
        _HEADER.pack(
            _MAGIC,
            journal.old_size,
            journal.new_size,
            journal.device,
            journal.inode,
            len(journal.regions),
            journal.new_digest,
        )
    ]
    for offset, data, written in journal.regions:
        parts += [_REGION.pack(offset, len(data), written), data]
    body = b"".join(parts)
    return body + _sha256(body).digest()


def _decode(data: bytes) -> Journal | None:
    """The journal in ``data``, or None when it is incomplete or damaged (its writer was killed
    before the edit began)."""
    if len(data) < _HEADER.size + 32 or _sha256(data[:-32]).digest() != data[-32:]:
        return None
    magic, old_size, new_size, device, inode, count, new_digest = _HEADER.unpack_from(data)
    if magic != _MAGIC:
        return None
    regions: list[tuple[int, bytes, int]] = []
    pos = _HEADER.size
    for _ in range(count):
        if pos + _REGION.size > len(data) - 32:
            return None
        offset, length, written = _REGION.unpack_from(data, pos)
        pos += _REGION.size
        regions.append((offset, data[pos : pos + length], written))
        pos += length
    if pos != len(data) - 32:
        return None
    return Journal(old_size, new_size, device, inode, tuple(regions), new_digest)


def _state_digest(fd: int, regions: tuple[tuple[int, bytes, int], ...], size: int) -> bytes:
    """SHA-256 of the bytes now in the edited regions and of ``size``: equal to the journal's
    ``new_digest`` once every patch and the new length are in place."""
    digest = _sha256(struct.pack(">Q", size))
    for offset, _old, written in regions:
        digest.update(struct.pack(">QI", offset, written) + read_at(fd, offset, written))
    return digest.digest()


def _fsync(fd: int) -> None:
    if DURABLE:  # the data and the length are what a rollback or a reader needs, not the timestamps
        getattr(os, "fdatasync", os.fsync)(fd)
    _step()


def _store(path: str, journal: Journal) -> None:
    """Write the journal beside the file, durably, before the file is touched."""
    fd = os.open(path, _CREATE_FLAGS, 0o600)
    try:
        _pwrite_all(fd, _encode(journal), 0)
        _fsync(fd)
        os.close(fd)
        if DURABLE:
            _fsync_directory(Path(os.path.dirname(path) or "."))
    except BaseException:  # a disk full: the file is untouched, so no journal may stay behind
        with contextlib.suppress(OSError):
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    _step()


def _remove(path: str | Path) -> None:
    """Drop a journal. Not fsynced: one that comes back after a crash finds its file either edited
    completely (kept as it is) or back as it was (rolled back again), and is dropped then."""
    os.unlink(path)
    _step()


def _roll_back(fd: int, journal: Journal) -> None:
    for offset, data, _written in journal.regions:
        if data:
            _pwrite_all(fd, data, offset)
    os.ftruncate(fd, journal.old_size)
    _step()
    _fsync(fd)


@contextlib.contextmanager
def _active(journal: str) -> Iterator[None]:
    """Mark ``journal`` as this thread's own edit, which :func:`recover` must leave alone."""
    mine: set[str] = _local.__dict__.setdefault("active", set())
    mine.add(journal)
    try:
        yield
    finally:
        mine.discard(journal)


def write_in_place(path: Path, plan_edit: Callable[[], EditPlan | None], verify: Callable[[], None]) -> int | None:
    """Apply the edit ``plan_edit()`` describes to ``path`` in place, journalled; returns the number of
    bytes written to the file, or ``None`` when nothing was done (no plan, in-place writing off, a
    file with several hard links, not a regular file) and the caller should write a copy instead.

    ``plan_edit`` runs under the file's write lock, so the plan matches the bytes it patches.
    ``verify`` reads the edited file back and raises if it is wrong; the edit is then rolled back.
    """
    if not IN_PLACE:
        return None
    _arm()
    try:
        if os.path.islink(path):
            path = Path(os.path.realpath(path))
        group = _group.get()
        if group is not None and path in group.targets:
            group.flush()  # a pending copy of this file must land before we edit it
        with write_lock(path) as st:
            if st is None or st.st_nlink != 1:
                return None  # a new file, or hard links: the copy path says what it makes of it
            if _lexists(_journal_name(os.fspath(path))):  # (a symlink was resolved above)
                recover(path)
            try:
                fd = os.open(path, _EDIT_FLAGS)
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ETXTBSY):
                    return None  # a read-only file in a writable directory can still be replaced
                raise
            try:
                plan = plan_edit()
                return None if plan is None else _apply(fd, path, plan, verify)
            finally:
                os.close(fd)
    except OSError as exc:
        if exc.errno is None:
            raise
        raise access_error(exc, path) from exc


def _apply(fd: int, path: Path, plan: EditPlan, verify: Callable[[], None]) -> int | None:
    st = os.fstat(fd)
    old_size = st.st_size
    if (
        plan.commit is not None
        and (ATOMIC_SECTOR or not DURABLE)
        and (done := _apply_append(fd, path, plan, verify, old_size)) is not None
    ):
        return done
    spans = _differing(fd, plan, old_size)
    regions = [(offset, old, len(new)) for offset, new, old in spans]
    if plan.size < old_size:
        regions.append((plan.size, read_at(fd, plan.size, old_size - plan.size), 0))
    if sum(len(data) for _offset, data, _written in regions) > MAX_JOURNAL_BYTES:
        return None  # no longer "only the metadata": a copy costs about the same and is simpler
    if not spans and plan.size == old_size:
        verify()
        return 0
    if plan.size == old_size and (ATOMIC_SECTOR or not DURABLE):
        changed = _changed_range(spans, _SECTOR if DURABLE else _PAGE)
        if changed is not None:
            return _apply_unjournalled(fd, path, plan, spans, changed, verify)
    new_digest = _sha256(struct.pack(">Q", plan.size))
    for offset, new, _old in spans:
        new_digest.update(struct.pack(">QI", offset, len(new)) + new)
    for offset, _old, written in regions[len(spans) :]:
        new_digest.update(struct.pack(">QI", offset, written))
    journal = Journal(old_size, plan.size, st.st_dev, st.st_ino, tuple(regions), new_digest.digest())
    where = _journal_name(os.fspath(path))
    with _active(where):
        _store(where, journal)
        try:
            for offset, new, _old in spans:
                _pwrite_all(fd, new, offset)
            if plan.size != old_size and not (spans and spans[-1][0] + len(spans[-1][1]) == plan.size > old_size):
                os.ftruncate(fd, plan.size)  # (not when the last patch already ends the longer file)
                _step()
            _fsync(fd)
            _read_back(path, plan, verify)
        except BaseException:
            with contextlib.suppress(OSError):
                _roll_back(fd, journal)
                _remove(where)
            raise
        _remove(where)
    return sum(len(new) for _offset, new, _old in spans)


def _read_back(path: Path, plan: EditPlan, verify: Callable[[], None]) -> None:
    """The caller's read-back of the edited file, then the format's own check; either raises to undo."""
    verify()
    if plan.check is not None:
        plan.check(path)


def _within(offset: int, length: int, block: int = _PAGE) -> bool:
    return offset // block == (offset + length - 1) // block


def _apply_append(fd: int, path: Path, plan: EditPlan, verify: Callable[[], None], old_size: int) -> int | None:
    """An append made visible by one small write (:attr:`EditPlan.commit`), without a journal; None
    when the plan is not of that shape or a kill could tear the head of the append (the journal
    then guards it)."""
    commit = next((patch for patch in plan.patches if patch[0] == plan.commit), None)
    appended = [patch for patch in plan.patches if patch[0] != plan.commit]
    if commit is None or len(appended) != 1:
        return None
    at, data = appended[0]
    offset, size_field = commit
    if (
        at != plan.visible
        or at + len(data) != plan.size
        or not data
        or offset + len(size_field) > at
        or not _within(offset, len(size_field), _SECTOR)
        or (-at % APPEND_BLOCK or APPEND_BLOCK) < min(len(data), APPEND_HEAD)
    ):
        return None
    old_field = read_at(fd, offset, len(size_field))
    view = memoryview(data)
    try:
        if old_size != at:
            os.ftruncate(fd, at)  # the leftover of an interrupted append (or nothing to keep)
            _step()
        done = 0
        while done < len(data):
            piece = min(len(data), done + (-(at + done) % APPEND_BLOCK or APPEND_BLOCK))
            _pwrite_all_plain(fd, view[done:piece], at + done)
            _step()
            done = piece
        _fsync(fd)  # the appended bytes reach the disk before the size that shows them
        _pwrite_all_plain(fd, memoryview(size_field), offset)
        _step()
        _fsync(fd)
        _read_back(path, plan, verify)
    except BaseException:
        with contextlib.suppress(OSError):
            _pwrite_all_plain(fd, memoryview(old_field), offset)
            os.ftruncate(fd, at)
            _fsync(fd)
        raise
    return len(data) + len(size_field)


def drop_leftover(path: Path, length_of: Callable[[BinaryIO], int | None]) -> bool:
    """Cut the bytes an interrupted append (:attr:`EditPlan.commit`) left past what ``path``'s readers
    see. ``length_of`` reads the file (open for reading and writing, under its write lock) and returns
    the length it had before the append, or None when no leftover is there. True when it cut.
    Raises :class:`~aigclabel.errors.FileAccessError` when the file cannot be written."""
    _arm()
    try:
        with write_lock(path) as st:
            if st is None:
                return False
            with open(path, "r+b") as handle:
                length = length_of(handle)
                if length is None or length >= os.fstat(handle.fileno()).st_size:
                    return False
                os.ftruncate(handle.fileno(), length)
                _step()
                _fsync(handle.fileno())
                return True
    except OSError as exc:
        raise access_error(exc, path) from exc


def _changed_range(spans: list[tuple[int, bytes, bytes]], block: int) -> tuple[int, int] | None:
    """``(first, end)`` of the bytes ``spans`` change (not the whole :data:`_BLOCK` blocks that hold
    them), when they lie inside one aligned ``block``; else None."""
    if not spans or spans[-1][0] + len(spans[-1][1]) - spans[0][0] > block + 2 * _BLOCK:
        return None  # (a quick refusal: the spans alone cover more than one block can hold)
    first = last = -1
    for offset, new, old in spans:
        if len(new) != len(old):
            return None  # (bytes past the old end)
        # The first and last differing byte, found in C: the XOR's highest and lowest set bits.
        diff = int.from_bytes(new, "big") ^ int.from_bytes(old, "big")
        if diff:
            if first < 0:
                first = offset + len(new) - 1 - (diff.bit_length() - 1) // 8
            last = offset + len(new) - 1 - ((diff & -diff).bit_length() - 1) // 8
    if first < 0 or first // block != last // block:
        return None
    return first, last + 1


def _apply_unjournalled(
    fd: int,
    path: Path,
    plan: EditPlan,
    spans: list[tuple[int, bytes, bytes]],
    changed: tuple[int, int],
    verify: Callable[[], None],
) -> int:
    """An edit whose changed bytes lie inside one aligned sector (durable) or one memory page (fsync
    off): one ``pwrite`` of those bytes, fdatasynced when durable, and no journal. A killed process
    completes the write or never starts it (the kernel copies a page at a time and checks for a fatal
    signal only between pages); a power cut leaves the sector old or new under the assumption the
    module docstring states. With fsync off a journal would add only survival of a power cut, which
    fsync off gives up anyway (mutagen's case). A failed read-back puts the old bytes back."""
    first, end = changed
    old = read_at(fd, first, end - first)
    new = bytearray(old)
    for offset, data, _old in spans:
        low, high = max(offset, first), min(offset + len(data), end)
        if low < high:
            new[low - first : high - first] = data[low - offset : high - offset]
    _step()
    _pwrite_all_plain(fd, memoryview(new), first)
    _step()
    try:
        _fsync(fd)
        _read_back(path, plan, verify)
    except BaseException:
        with contextlib.suppress(OSError):
            _pwrite_all_plain(fd, memoryview(old), first)
            _fsync(fd)
        raise
    return len(new)


def pending(path: Path) -> Path | None:
    """The journal of an interrupted edit of ``path`` (following a symlink), or None: one existence
    check (:func:`_lexists`) when there is none, so every open can afford it."""
    where = _journal_name(os.fspath(path))
    if _lexists(where):
        return Path(where)
    if os.path.islink(path):
        where = _journal_name(os.path.realpath(path))
        if _lexists(where):
            return Path(where)
    return None


def recover(path: Path) -> str | None:
    """Finish what an interrupted in-place edit of ``path`` left: roll the file back from its
    journal (or keep it, when the edit is complete) and remove the journal. Returns what was done:
    ``"rolled back"``, ``"completed"`` (the writer died after its edit was in place and synced),
    ``"discarded"`` (a journal whose writer died before touching the file, or that belongs to a file
    since replaced), or None when there was nothing to do.

    Raises :class:`InterruptedEditError` when the journal cannot be applied (the file cannot be
    written, or its length shows it was changed by something else since); the journal is then kept.
    """
    where = pending(path)
    if where is None or os.fspath(where) in _local.__dict__.get("active", ()):
        return None
    _arm()
    real = Path(os.path.realpath(path)) if os.path.islink(path) else path
    try:
        with write_lock(real):
            return _recover_locked(real, where)
    except OSError as exc:
        if exc.errno is None:
            raise
        raise InterruptedEditError(
            f"{path} has an interrupted aigclabel edit ({where.name}) that could not be rolled back "
            f"({access_error(exc, path)}); run `aigclabel recover` on it as a user who can write it"
        ) from exc


def _recover_locked(path: Path, where: Path) -> str | None:
    try:
        with open(where, "rb") as handle:
            journal = _decode(handle.read(MAX_JOURNAL_BYTES + (1 << 20)))
    except FileNotFoundError:
        return None  # the writer we waited for finished and removed it
    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        _remove(where)
        return "discarded"
    try:
        st = os.fstat(fd)
        if journal is None or (st.st_dev, st.st_ino) != (journal.device, journal.inode):
            _remove(where)
            return "discarded"
        if st.st_size == journal.new_size and _state_digest(fd, journal.regions, st.st_size) == journal.new_digest:
            _fsync(fd)  # killed before its fsync maybe: what a reader sees now must also be what a crash leaves
            outcome = "completed"
        else:
            _check_fits(path, where, journal, st.st_size)
            _roll_back(fd, journal)
            outcome = "rolled back"
    finally:
        os.close(fd)
    _remove(where)
    return outcome


def _check_fits(path: Path, where: Path, journal: Journal, size: int) -> None:
    """Refuse to roll back a file whose length shows that something else changed it since."""
    low, high = sorted((journal.old_size, journal.new_size))
    if not low <= size <= high:
        raise InterruptedEditError(
            f"{path} has an interrupted aigclabel edit ({where.name}), but its length ({size}) is "
            f"neither the old ({journal.old_size}) nor the new one ({journal.new_size}): it was changed "
            "since, so it was not rolled back; remove the journal once you have checked the file"
        )


def recover_before_open(path: Path) -> None:
    """Roll back an interrupted edit of ``path`` if one left a journal (cheap when none did)."""
    if pending(path) is not None:
        recover(path)


#: ``open`` flags of :func:`open_recovered`; ``O_NOFOLLOW`` makes the open itself tell a symlink.
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def open_recovered(path: Path) -> int:
    """:func:`recover_before_open`, then open ``path`` for reading (without blocking on a FIFO):
    the descriptor. Raises the ``OSError`` of the open.

    Costs one ``lstat`` (the journal's name) besides the open: the open itself, with ``O_NOFOLLOW``,
    tells whether ``path`` is a symlink, whose journal lies beside its target, instead of a second
    ``lstat``. Only when that open fails (a symlink, or any other error) is the symlink's journal
    looked for as :func:`pending` does, before the open is retried the ordinary way. Either way no
    byte of the file is read before its journal, if any, is handled."""
    name = os.fspath(path)
    if _lexists(_journal_name(name)):
        recover(path)
    elif not _NOFOLLOW:
        recover_before_open(path)
    else:
        try:
            return os.open(name, _READ_FLAGS | _NOFOLLOW)
        except OSError:
            recover_before_open(path)  # a symlink (ELOOP, EMLINK on BSD) or an error the next open repeats
    return os.open(name, _READ_FLAGS)


__all__ = [
    "IN_PLACE",
    "JOURNAL_TAG",
    "EditPlan",
    "drop_leftover",
    "journal_path",
    "open_recovered",
    "pending",
    "recover",
    "recover_before_open",
    "write_in_place",
]
