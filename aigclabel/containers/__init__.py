"""File formats that carry an implicit label: one module per format, registered by decorator.

Each module in this package defines a :class:`Container` subclass and decorates it with
:func:`register`. The core never tests file extensions itself: :func:`open_container` asks every
registered container whether it accepts the file's first bytes (and, for formats without magic
bytes such as Markdown, its suffix). Modules are discovered with :mod:`pkgutil`, so adding a format
is adding a module.

A container does three things, all on paths so that it can stream:

* :meth:`Container.read` finds **every** label in every placement the format allows, so that a
  second, conflicting label (forbidden by GB 45438 §6.1 c) is visible;
* :meth:`Container.write` replaces all of them with one label in the format's primary slot;
* :meth:`Container.strip` removes them all.

Writes go through :func:`aigclabel._io.atomic_output`: subclasses implement :meth:`Container.rewrite`
from a source path to a fresh temporary path, and never touch the source. A format that can take the
label without moving its payload (room in its metadata, or an append) also implements
:meth:`Container.plan_edit`; a label written over the file itself is then a journalled in-place edit
(:mod:`aigclabel._journal`) of those few bytes instead of a copy.
Every public method, the base class's and each module's, runs behind
:func:`aigclabel._guard.guard_method`, so whatever a parser raises on a damaged file reaches the caller
as a typed error naming the file.
"""

from __future__ import annotations

import importlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import FunctionType
from typing import ClassVar, TypeVar

from .._guard import converted, guard_method, printable
from .._io import access_error, as_path, atomic_output, check_regular, same_file
from .._journal import EditPlan, open_recovered, write_in_place
from ..errors import (
    AIGCLabelError,
    InvalidLabelError,
    MalformedFileError,
    UnsupportedFormatError,
    WriteNotSupportedError,
)
from ..label import AIGCLabel, ParsedLabel

#: How many leading bytes :func:`open_container` reads for sniffing.
SNIFF_BYTES = 4096


class MediaKind(StrEnum):
    """What a format's content is, which decides the explicit label, watermark and checks it gets.

    ``image`` is a raster picture Pillow decodes; ``document`` is a page or markup format (PDF, OOXML,
    EPUB, SVG) that carries an implicit label but is never decoded as media; ``text`` is prose whose
    explicit label is written into it (plain text, Markdown, HTML). An audio or video container may
    hold the other kind (an ``.m4a`` in MP4, an ``.ogv`` in Ogg): its streams decide
    (:func:`aigclabel._media.media_of`).
    """

    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"
    DOCUMENT = "document"
    TEXT = "text"
    #: A virtual scene (GB 45438 §5.5): a 3-D model a viewer renders, such as glTF.
    SCENE = "scene"


@dataclass(frozen=True)
class FoundLabel:
    """One label placement found in a file.

    ``parsed`` is ``None`` when the stored text is not a usable label; ``error`` then says why.
    ``location`` names the placement in the format's own terms (for example ``"XMP TC260:AIGC in
    APP1"``) so an auditor can find it with another tool.
    """

    location: str
    raw: str
    parsed: ParsedLabel | None = None
    error: str | None = None

    @classmethod
    def from_text(cls, location: str, raw: str | bytes) -> FoundLabel:
        """Parse ``raw``; a value that is not a label becomes a finding with ``error`` set."""
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        try:
            return cls(location, text, AIGCLabel.parse(raw))
        except InvalidLabelError as exc:
            return cls(location, text, error=str(exc))

    @property
    def label(self) -> AIGCLabel | None:
        """The parsed label, if any."""
        return self.parsed.label if self.parsed else None


class Container(ABC):
    """One file format. Subclasses set the class attributes and implement the abstract methods."""

    #: Short lowercase format name, e.g. ``"jpeg"``.
    name: ClassVar[str]
    #: Human-readable description, e.g. ``"JPEG image"``.
    description: ClassVar[str]
    #: Suffixes (lowercase, with dot) this format normally uses.
    extensions: ClassVar[tuple[str, ...]] = ()
    #: Primary MIME type.
    mime_type: ClassVar[str] = "application/octet-stream"
    #: The kind of content the format is made for (every container declares it).
    media: ClassVar[MediaKind]
    #: Where :meth:`write` puts the label, in the format's own terms.
    primary_location: ClassVar[str] = ""
    #: False for formats we can read but not write losslessly.
    can_write: ClassVar[bool] = True
    #: Higher runs first in :func:`open_container`; use it when one format is a subtype of another,
    #: or for an unambiguous signature that is cheap to test.
    priority: ClassVar[int] = 0
    #: Locations :meth:`write` fills with the same label together (e.g. PDF Info and XMP); identical
    #: labels in exactly these count as one label in :func:`aigclabel.api.inspect`.
    mirrored_locations: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: object) -> None:
        """Put every public method a format module defines behind :func:`aigclabel._guard.guard_method`,
        so no parser exception escapes as anything but a typed error naming the file, whatever the
        module forgot."""
        super().__init_subclass__(**kwargs)
        _guard_public_methods(cls)

    @classmethod
    @abstractmethod
    def accept(cls, head: bytes, path: Path) -> bool:
        """True if this container handles the file whose first bytes are ``head``."""

    @abstractmethod
    def read(self, path: Path) -> list[FoundLabel]:
        """Every label placement in the file, in file order. Raises MalformedFileError if corrupt."""

    def read_opened(self, path: Path, fd: int, head: bytes, size: int) -> list[FoundLabel]:
        """:meth:`read`, given a descriptor of ``path`` open for reading (the caller closes it), its
        first bytes ``head`` (up to :data:`SNIFF_BYTES`) and its size, all of which a format may use
        instead of opening and reading the file again (the default reopens it)."""
        return self.read(path)

    @abstractmethod
    def rewrite(self, src: Path, dst: Path, label: AIGCLabel | None) -> None:
        """Write ``src`` to the new file ``dst`` with ``label`` as its only label (``None``: none).

        ``dst`` is a temporary path created by the caller; ``src`` must not be modified.
        """

    def payload_digest(self, path: Path) -> bytes:
        """SHA-256 over the media payload only: the bytes a decoder renders, with every metadata
        structure (the label included) left out.

        Adding or editing metadata must leave it unchanged, any change to what is rendered must
        change it. Signatures in ReservedCode1/2 bind the label to this digest, so a platform can add
        its propagation fields without breaking the producer's signature. Each module documents what
        it counts as payload.
        """
        raise UnsupportedFormatError(f"payload digest is not implemented for {self.description} files")

    def plan_edit(self, path: Path, label: AIGCLabel | None) -> EditPlan | None:
        """The in-place edit giving ``path`` ``label`` as its only label (``None``: none), or ``None``
        when the format has no room for it there (the default): :meth:`write` then writes a copy.

        The plan may only touch metadata (payload bytes and their offsets stay as they are); the
        edited file is read back with :meth:`check_written` like a copy.
        """
        return None

    def may_carry_c2pa(self, path: Path) -> bool:
        """False only when the file certainly holds no embedded C2PA manifest store, so a reader need not be
        started on it; True (the default) when it may hold one."""
        return True

    def recover(self, path: Path) -> str | None:
        """Cut what an interrupted in-place append without a journal left past the end its readers see
        (see :attr:`EditPlan.commit`): ``"trimmed"``, or None when nothing was left (the default)."""
        return None

    def write(self, src: Path, dst: Path, label: AIGCLabel) -> str:
        """Write ``src`` to ``dst`` (may be the same path) carrying ``label`` as its only label.

        Returns how: ``"in-place"`` (a journalled edit of the metadata, see :meth:`plan_edit`) or
        ``"copy"`` (a new file renamed over ``dst``).
        """
        label.validate()
        if not self.can_write:
            raise WriteNotSupportedError(f"{self.description} files can be read but not labelled losslessly")
        return self._replace(as_path(src), as_path(dst), label)

    def strip(self, src: Path, dst: Path) -> str:
        """Write ``src`` to ``dst`` (may be the same path) without any implicit label; returns how, as :meth:`write`."""
        if not self.can_write:
            raise WriteNotSupportedError(f"{self.description} files can be read but not rewritten losslessly")
        return self._replace(as_path(src), as_path(dst), None)

    def _replace(self, src: Path, dst: Path, label: AIGCLabel | None) -> str:
        if _edits_in_place(type(self)) and (src == dst or same_file(src, dst)):  # (missing: the copy says so)
            done = write_in_place(src, lambda: self.plan_edit(src, label), lambda: self.check_written(src, label))
            if done is not None:
                return "in-place"
        with atomic_output(dst, mode_from=src) as tmp:
            self._rewrite_checked(src, tmp, label)
        return "copy"

    def _rewrite_checked(self, src: Path, tmp: Path, label: AIGCLabel | None) -> None:
        """:meth:`rewrite`, then :meth:`check_written` of the result. A format that can read its new file
        back through the descriptor it wrote it with overrides this (same check, no second open)."""
        self.rewrite(src, tmp, label)
        self.check_written(tmp, label)

    def repair(self, src: Path, dst: Path, label: AIGCLabel | None) -> None:
        """Rewrite a file :meth:`write` refused with :class:`~aigclabel.errors.NeedsRepairError` whole,
        repaired, with ``label`` as its only label (``None``: none). Formats without such a rewrite
        raise :class:`WriteNotSupportedError`."""
        raise WriteNotSupportedError(f"aigclabel cannot repair {self.description} files; re-save it with its editor")

    def distinct_labels(self, found: list[FoundLabel]) -> list[FoundLabel]:
        """``found`` with the copies a format keeps by design (:attr:`mirrored_locations`) counted once."""
        mirrored = [f for f in found if f.location in self.mirrored_locations]
        if len(mirrored) > 1 and mirrored[0].label is not None and all(f.label == mirrored[0].label for f in mirrored):
            return [f for f in found if f not in mirrored[1:]]
        return found

    def check_written(self, written: Path, label: AIGCLabel | None) -> None:
        """Read a freshly written file back: it must carry exactly ``label`` (or nothing).

        A structure that hides the new label, or keeps an old one, is refused here, before the
        output replaces anything, so a writer bug can never leave a file with two labels or none.
        """
        self._check_found(self.read(written), label)

    def _check_found(self, found: list[FoundLabel], label: AIGCLabel | None) -> None:
        """:meth:`check_written`'s judgement of what the read-back found."""
        labels = [f.label for f in self.distinct_labels(found)]
        if labels != ([label] if label is not None else []):
            raise MalformedFileError(
                f"{self.description} did not read back as written (found {len(labels)} labels); input left unchanged"
            )


def _edits_in_place(cls: type[Container]) -> bool:
    """Whether ``cls`` can plan in-place edits at all: a format without :meth:`Container.plan_edit`
    goes straight to the copy, without taking the file's lock and opening it for an edit first."""
    return cls.plan_edit is not Container.plan_edit


#: Public methods whose first argument is not the file's path (nothing in them parses a file).
_UNGUARDED = frozenset({"distinct_labels"})


def _guard_public_methods(cls: type) -> None:
    """Wrap each public method ``cls`` itself defines (they take the file's path first) in
    :func:`~aigclabel._guard.guard_method`: ``struct.error``, ``IndexError``, ``zlib.error``... from a
    parser become :class:`MalformedFileError` (or the right typed error) naming the file."""
    for name, method in list(vars(cls).items()):
        if (
            isinstance(method, FunctionType)
            and not name.startswith("_")
            and name not in _UNGUARDED
            and not getattr(method, "__isabstractmethod__", False)
        ):
            setattr(cls, name, guard_method(method))


_guard_public_methods(Container)  # write, strip, repair, check_written, payload_digest of the base itself

#: The priority of a container whose signature at the very start of a file begins no other format: it
#: is tried before the costlier sniffers (MP3 frame chains, HTML, MP4 boxes). The modules defining
#: such containers are :data:`SIGNATURE_MODULES`.
SIGNATURE_PRIORITY = 20
#: Modules whose containers (all of priority :data:`SIGNATURE_PRIORITY`, and only theirs) :func:`open_container`
#: tries before it imports the other format modules, so a one-file command on a JPEG or PNG loads one
#: or two format modules instead of all of them (``tests/test_registry.py`` holds the two to agree).
SIGNATURE_MODULES = ("jpeg", "png")

_C = TypeVar("_C", bound=type[Container])
_REGISTRY: dict[str, type[Container]] = {}
_order: tuple[type[Container], ...] = ()  # _REGISTRY by priority; emptied by register()
_signature: tuple[type[Container], ...] = ()  # see _signature_first; emptied by register()
_by_module: dict[str, tuple[type[Container], ...]] = {}  # the containers of each signature module imported so far
_loaded = False


def register(cls: _C) -> _C:
    """Class decorator adding a container to the registry under ``cls.name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise RuntimeError(f"two containers named {cls.name!r}")
    global _order, _signature
    _REGISTRY[cls.name] = cls
    _order = _signature = ()
    _by_module.clear()
    return cls


def _load_plugins() -> None:
    global _loaded
    if _loaded:
        return
    import pkgutil  # only here: reading one file imports its format's module alone

    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
    _loaded = True


def registered() -> dict[str, type[Container]]:
    """All registered containers by name (loads the plugin modules on first use)."""
    _load_plugins()
    return dict(_REGISTRY)


def containers_of(media: MediaKind) -> dict[str, type[Container]]:
    """The registered containers of one media kind, by name."""
    return {name: cls for name, cls in registered().items() if cls.media is media}


def container_for_suffix(suffix: str) -> type[Container] | None:
    """The container whose :attr:`Container.extensions` include ``suffix`` (``".jpg"`` or ``"JPG"``), if any."""
    suffix = suffix.lower() if suffix.startswith(".") else f".{suffix.lower()}"
    return next((cls for cls in registered().values() if suffix in cls.extensions), None)


def container_for_mime(mime_type: str) -> type[Container] | None:
    """The container whose :attr:`Container.mime_type` is ``mime_type``, if any."""
    mime_type = mime_type.lower()
    return next((cls for cls in registered().values() if cls.mime_type == mime_type), None)


def _signature_first() -> Iterator[type[Container]]:
    """The containers of :data:`SIGNATURE_MODULES`, importing each module only when the previous ones'
    containers are done with: they come first in :func:`_ordered` too, so trying them first changes
    nothing but how many modules a file costs. Once every one is imported they are kept in
    :data:`_signature`, which :func:`_choose` tries without coming here (an import per module and
    file cost a tenth of a bulk PNG inspection); until then each module's containers are kept as it is
    imported, so a run of JPEGs, which never gets to the PNG module, does not import again per file."""
    global _signature
    names = tuple(f"{__name__}.{module}" for module in SIGNATURE_MODULES)
    for name in names:
        found = _by_module.get(name)
        if found is None:  # a batch of JPEGs never gets past the first module: keep what each one gave
            importlib.import_module(name)
            found = _by_module[name] = tuple(cls for cls in list(_REGISTRY.values()) if cls.__module__ == name)
        yield from found
    _signature = tuple(cls for name in names for cls in list(_REGISTRY.values()) if cls.__module__ == name)


def _ordered() -> tuple[type[Container], ...]:
    global _order
    _load_plugins()
    if not _order:
        _order = tuple(sorted(_REGISTRY.values(), key=lambda c: -c.priority))
    return _order


def _sniff(path: Path) -> tuple[int, bytes, int]:
    """Open ``path`` (after handling an interrupted edit's journal) and read its first
    :data:`SNIFF_BYTES`: the descriptor, those bytes and the file's size. Read without the
    buffered-file machinery: this runs once per file, so it should cost a few syscalls (the fstat
    refuses a FIFO or device before any read could block on it). The caller closes the descriptor."""
    try:
        fd = open_recovered(path)
    except FileNotFoundError:
        raise UnsupportedFormatError(f"{path}: no such file") from None
    except OSError as exc:
        raise access_error(exc, path) from None
    try:
        st = os.fstat(fd)
        check_regular(path, st)
        head = os.read(fd, SNIFF_BYTES)
        while head and len(head) < SNIFF_BYTES:  # short reads happen on pipes and some filesystems
            more = os.read(fd, SNIFF_BYTES - len(head))
            if not more:
                break
            head += more
    except BaseException as exc:
        os.close(fd)
        if isinstance(exc, OSError) and exc.errno is not None:
            raise access_error(exc, path) from None
        raise
    return fd, head, st.st_size


def _choose(path: Path, head: bytes) -> Container:
    """The container accepting a file that starts with ``head``."""
    try:  # a plain try, not hostile_input's context manager: this runs once per file in bulk inspection
        for cls in (_signature or _signature_first()) if not _loaded else ():
            if cls.accept(head, path):
                return cls()
        for cls in _ordered():
            if cls.accept(head, path):
                return cls()
    except AIGCLabelError:
        raise
    except Exception as exc:  # a sniffer's parser failed on hostile bytes: a typed error, as hostile_input gives
        raise converted(exc, f"{printable(str(path))}: file header", path) from exc
    if not head:
        raise MalformedFileError(f"{path} is empty")
    raise UnsupportedFormatError(f"{path}: not a format aigclabel knows ({len(registered())} formats registered)")


def open_container(path: Path | str) -> Container:
    """The container for the file at ``path``, chosen by its content (and suffix for text formats).

    Raises :class:`UnsupportedFormatError` when no registered container accepts it,
    :class:`~aigclabel.errors.NotRegularFileError` for a directory, FIFO, socket or device (refused
    without blocking), and :class:`~aigclabel.errors.FileAccessError` when it cannot be read.
    """
    if not isinstance(path, Path):
        path = Path(path)
    fd, head, _ = _sniff(path)
    try:
        return _choose(path, head)
    finally:
        os.close(fd)


def read_found(path: Path) -> tuple[Container, list[FoundLabel]]:
    """:func:`open_container` and its :meth:`Container.read` of ``path`` in one: the container reads
    through the descriptor and the first bytes the sniff already has (one open per file)."""
    fd, head, size = _sniff(path)
    try:
        container = _choose(path, head)
        return container, container.read_opened(path, fd, head, size)
    finally:
        os.close(fd)
