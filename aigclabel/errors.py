"""Typed errors raised by aigclabel.

Every error a user can provoke with a bad file or a bad value is one of these, so callers (the CLI,
the HTTP service) can turn it into a clear message and an exit code or 4xx status without ever
catching a bare ``Exception``.
"""

from __future__ import annotations


class AIGCLabelError(Exception):
    """Base class of every error aigclabel raises on purpose."""

    #: Process exit code the CLI uses for this kind of error.
    exit_code: int = 10


class InvalidLabelError(AIGCLabelError, ValueError):
    """A label value breaks GB 45438 Annex E (unknown Label, bad characters, missing producer...)."""

    exit_code = 5


class UnsupportedFormatError(AIGCLabelError):
    """No container module recognises the file, or the format cannot hold a label."""

    exit_code = 3


class WriteNotSupportedError(UnsupportedFormatError):
    """The format is recognised and readable, but cannot be written losslessly."""

    exit_code = 3


class MalformedFileError(AIGCLabelError):
    """The file is corrupt, hostile or not what its signature claims; nothing was written."""

    exit_code = 4


class TruncatedFileError(MalformedFileError):
    """The file ends before a structure it declares is complete."""


class LimitExceededError(MalformedFileError):
    """A declared size exceeds what aigclabel is willing to load into memory."""


class FileAccessError(AIGCLabelError):
    """The file system refused what was asked (permission denied, disk full, read-only, a file
    that is not a regular one, or a file whose identity a rewrite would break); nothing was changed."""

    exit_code = 8


class NotRegularFileError(FileAccessError):
    """The path names a directory, FIFO, socket or device rather than a regular file."""


class NeedsRepairError(MalformedFileError):
    """The file is damaged in a way its format's reference tools recover from, but writing into it as
    it is would not be safe; ``--repair`` (``repair=True``) rewrites it whole, repaired, instead."""


class LabelRemovalRefusedError(AIGCLabelError):
    """Removing a label was refused: it is not provably the caller's (Measures Art. 10 forbids removing
    labels); the producer's key, or an override with a reason that is logged, is needed."""

    exit_code = 9


class ConfigurationError(AIGCLabelError):
    """A setting that cannot work (an empty API key, a bad number, an unsafe bind); exits like a usage error."""

    exit_code = 2
