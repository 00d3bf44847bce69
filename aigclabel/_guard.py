"""The one boundary where whatever a parser raises on hostile bytes becomes a typed error.

Third-party parsers (mutagen, PyAV, Pillow, pikepdf, zipfile, struct, zlib, expat...) raise dozens of
exception types on damaged input, and new versions add more; keeping a list of them is how a
ZeroDivisionError from mutagen's Speex reader once reached the user as a traceback. So every
exception that is not already an :class:`~aigclabel.errors.AIGCLabelError` is converted here:

* ``RecursionError`` -> :class:`MalformedFileError` (the file nests too deeply);
* ``MemoryError`` -> :class:`LimitExceededError`, saying a size limit is missing: the real fix is a
  limit checked before allocating, and the hostile-file tests run under an address-space cap and
  fail on this message, so it never hides a regression;
* Pillow's decompression-bomb and text-chunk limits -> :class:`LimitExceededError`;
* an ``OSError`` with an ``errno`` (disk full, permission denied...) is a failure of the machine,
  not of the file: :class:`~aigclabel.errors.FileAccessError` (:func:`aigclabel._io.access_error`);
* everything else -> :class:`MalformedFileError` naming the exception type.

:class:`aigclabel.containers.Container` applies it to every public method of the base class and of
each format module (``read``, ``write``, ``strip``, ``repair``, ``payload_digest``...), so callers need
no guard of their own; the decode helpers of ``check``, the watermark reader
and the verify detectors use :func:`hostile_input` directly.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from ._io import access_error
from .errors import AIGCLabelError, LimitExceededError, MalformedFileError

_F = TypeVar("_F", bound=Callable[..., Any])

#: Longest exception text quoted in a message (parsers sometimes put whole buffers in them).
_MAX_DETAIL = 300
#: Exceptions that mean "over a library's own size limit", by class name (no import needed).
_LIMIT_TYPES = frozenset({"DecompressionBombError"})
#: ... and by message, for libraries that raise a plain ValueError (Pillow's PNG text chunks).
_LIMIT_MESSAGES = ("Decompressed Data Too Large", "Decompressed data too large")


def printable(text: str) -> str:
    """``text`` safe to print on any UTF-8 stream: lone surrogates become ``\\udXXX`` escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _detail(exc: BaseException) -> str:
    text = printable(str(exc)) or type(exc).__name__
    if len(text) > _MAX_DETAIL:
        text = text[:_MAX_DETAIL] + "..."
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text


def converted(exc: Exception, where: str, path: Path | str) -> AIGCLabelError:
    """The typed error for ``exc``, raised while parsing ``where`` (in the file ``path``)."""
    if isinstance(exc, AIGCLabelError):
        return exc
    if isinstance(exc, RecursionError):
        return MalformedFileError(f"{where} nests too deeply")
    if isinstance(exc, MemoryError):
        return LimitExceededError(f"{where} needs more memory than this process may use (a size limit is missing)")
    if isinstance(exc, OSError) and exc.errno is not None:
        return access_error(exc, path)
    if type(exc).__name__ in _LIMIT_TYPES or any(m in str(exc) for m in _LIMIT_MESSAGES):
        return LimitExceededError(f"{where} is over a decoder size limit ({_detail(exc)}); not searched")
    return MalformedFileError(f"{where} is malformed ({_detail(exc)})")


@contextlib.contextmanager
def hostile_input(path: Path | str, what: str) -> Iterator[None]:
    """Run the body, turning any parser exception into a typed error about ``what`` in ``path``."""
    try:
        yield
    except AIGCLabelError:
        raise
    except Exception as exc:  # every parser exception, not a hand-kept list (see the module docstring)
        _reraise(exc, f"{printable(str(path))}: {what}", path)


def _reraise(exc: Exception, where: str, path: Path | str) -> NoReturn:
    raise converted(exc, where, path) from exc


def guard_method(method: _F) -> _F:
    """Wrap a container method whose first argument is the file path in :func:`hostile_input`."""
    if getattr(method, "_hostile_guarded", False):
        return method

    @functools.wraps(method)
    def guarded(self: Any, path: Path, *args: Any, **kwargs: Any) -> Any:
        try:  # a plain try: free on the fast path, unlike a context manager (bulk inspection calls this per file)
            return method(self, path, *args, **kwargs)
        except AIGCLabelError:
            raise
        except Exception as exc:
            _reraise(exc, f"{printable(str(path))}: {getattr(self, 'description', 'file')}", path)

    guarded._hostile_guarded = True  # type: ignore[attr-defined]
    return guarded  # type: ignore[return-value]
