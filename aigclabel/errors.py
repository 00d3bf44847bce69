"""Typed errors raised by aigclabel.

Every error a user can provoke with a bad file or a bad value is one of these, so callers (the CLI,
the HTTP service) can turn it into a clear message and an exit code or 4xx status without ever
catching a bare ``Exception``. Each class carries its CLI ``exit_code`` and the ``http_status`` and
``http_error`` code the service answers with; subclasses inherit both unless they set their own.

The tree (exit code; HTTP status and error code; other base classes in brackets)::

    AIGCLabelError                               exit 10  HTTP 400 bad-request
      InvalidLabelError [ValueError]             exit 5   HTTP 422 invalid-label
        ExplicitLabelError                       exit 5   HTTP 422 invalid-label
      UnsupportedFormatError                     exit 3   HTTP 415 unsupported-format
        WriteNotSupportedError                   exit 3   HTTP 415 unsupported-format
          EncryptedPDFError                      exit 3   HTTP 415 unsupported-format
        CannotCarryMarkError [ValueError]        exit 3   HTTP 422 cannot-carry-mark
      MalformedFileError                         exit 4   HTTP 422 malformed-file
        TruncatedFileError                       exit 4   HTTP 422 malformed-file
        LimitExceededError                       exit 4   HTTP 413 too-large
          BudgetExceeded                         exit 4   HTTP 413 too-large
        NeedsRepairError                         exit 4   HTTP 422 malformed-file
      FileAccessError                            exit 8   HTTP 400 bad-request
        NotRegularFileError                      exit 8   HTTP 400 bad-request
        InterruptedEditError                     exit 8   HTTP 400 bad-request
      LabelRemovalRefusedError                   exit 9   HTTP 400 bad-request
      ExportRefusedError                         exit 9   HTTP 400 bad-request
      ConfigurationError                         exit 2   HTTP 400 bad-request
        ServiceConfigError                       exit 2   HTTP 400 bad-request
        GatewayConfigError [ValueError]          exit 2   HTTP 400 bad-request
        MissingExtraError [ImportError]          exit 2   HTTP 501 extra-not-installed
      RetentionError [ValueError]                exit 2   HTTP 400 bad-request
      FontNotFoundError                          exit 3   HTTP 400 bad-request
      SignatureError                             exit 6   HTTP 400 bad-request
        KeyRegistryError                         exit 6   HTTP 400 bad-request
      VerifyError                                exit 5   HTTP 400 bad-request
      C2PAError                                  exit 4   HTTP 400 bad-request
      AuditError                                 exit 7   HTTP 400 bad-request
        AuditUnavailableError                    exit 7   HTTP 503 audit-unavailable
      RequestTooLargeError                       exit 10  HTTP 413 too-large
      LikenessError                              exit 11  HTTP 422 likeness
        TemplateKeyError                         exit 11  HTTP 422 likeness
        ConsentChainError                        exit 12  HTTP 409 consent-chain-broken

``tests/test_errors.py`` checks this tree against the classes, so it cannot go stale.
"""

from __future__ import annotations


class AIGCLabelError(Exception):
    """Base class of every error aigclabel raises on purpose."""

    #: Process exit code the CLI uses for this kind of error.
    exit_code: int = 10
    #: HTTP status the service answers with.
    http_status: int = 400
    #: The ``error`` member of the service's JSON answer.
    http_error: str = "bad-request"


class InvalidLabelError(AIGCLabelError, ValueError):
    """A label value breaks GB 45438 Annex E (unknown Label, bad characters, missing producer...)."""

    exit_code = 5
    http_status = 422
    http_error = "invalid-label"


class ExplicitLabelError(InvalidLabelError):
    """A visible label cannot be made as asked: an unknown placement, position or text format, or a
    layout measured for another image size (a label text without the required elements is an
    :class:`InvalidLabelError` already)."""


class UnsupportedFormatError(AIGCLabelError):
    """No container module recognises the file, or the format cannot hold a label."""

    exit_code = 3
    http_status = 415
    http_error = "unsupported-format"


class WriteNotSupportedError(UnsupportedFormatError):
    """The format is recognised and readable, but cannot be written losslessly."""

    exit_code = 3


class CannotCarryMarkError(UnsupportedFormatError, ValueError):
    """The media is too small or too short for an invisible watermark: an image under 32x32 pixels, audio
    under a quarter of a second or sampled under 8 kHz. A ValueError too, as the array-level embedders
    raised before it existed."""

    http_status = 422
    http_error = "cannot-carry-mark"


class EncryptedPDFError(WriteNotSupportedError):
    """The PDF needs a password to open (or uses an encryption method aigclabel cannot write)."""


class MalformedFileError(AIGCLabelError):
    """The file is corrupt, hostile or not what its signature claims; nothing was written."""

    exit_code = 4
    http_status = 422
    http_error = "malformed-file"


class TruncatedFileError(MalformedFileError):
    """The file ends before a structure it declares is complete."""


class LimitExceededError(MalformedFileError):
    """A declared size exceeds what aigclabel is willing to load into memory."""

    http_status = 413
    http_error = "too-large"


class BudgetExceeded(LimitExceededError):
    """The request's (or detector's) work budget is spent; the work was not done."""


class FileAccessError(AIGCLabelError):
    """The file system refused what was asked (permission denied, disk full, read-only, a file
    that is not a regular one, or a file whose identity a rewrite would break); nothing was changed."""

    exit_code = 8


class NotRegularFileError(FileAccessError):
    """The path names a directory, FIFO, socket or device rather than a regular file."""


class InterruptedEditError(FileAccessError):
    """An in-place write of the file was interrupted and its undo journal could not be applied (the file
    cannot be written, or it changed since); ``aigclabel recover`` retries once that is fixed."""


class NeedsRepairError(MalformedFileError):
    """The file is damaged in a way its format's reference tools recover from, but writing into it as
    it is would not be safe; ``--repair`` (``repair=True``) rewrites it whole, repaired, instead."""


class LabelRemovalRefusedError(AIGCLabelError):
    """Removing a label was refused: it is not provably the caller's (Measures Art. 10 forbids removing
    labels); the producer's key, or an override with a reason that is logged, is needed."""

    exit_code = 9


class ExportRefusedError(AIGCLabelError):
    """A copy without the explicit label (Measures Art. 9) was refused: the file carries no implicit label
    (Art. 9 waives only the explicit one), or the recipient has accepted no user agreement; an override
    with a reason, which is logged, is needed."""

    exit_code = 9


class ConfigurationError(AIGCLabelError):
    """A setting that cannot work (an empty API key, a bad number, an unsafe bind); exits like a usage error."""

    exit_code = 2


class ServiceConfigError(ConfigurationError):
    """A service setting is unusable (empty or weak API key, bad number, unsafe bind)."""


class GatewayConfigError(ConfigurationError, ValueError):
    """A gateway setting that cannot work (an upstream that is no HTTP URL...)."""


class MissingExtraError(ConfigurationError, ImportError):
    """An optional part of aigclabel is not installed; the message names the extra that adds it.

    Also an :class:`ImportError`, since it stands for one: code that falls back when an optional module
    cannot be imported (the verify detectors, the OCR engine) keeps doing so."""

    http_status = 501
    http_error = "extra-not-installed"

    def __init__(self, feature: str, extra: str, module: str | None = None) -> None:
        self.feature, self.extra = feature, extra
        missing = f" ({module})" if module else ""
        super().__init__(
            f"{feature} needs an optional dependency that is not installed{missing}: pip install 'aigclabel[{extra}]'"
        )
        self.name = module

    def __reduce__(self) -> tuple[type[MissingExtraError], tuple[str, str, str | None]]:
        return type(self), (self.feature, self.extra, self.name)


class RetentionError(AIGCLabelError, ValueError):
    """A retention period shorter than the law allows, or a bad clock value."""

    exit_code = 2


class FontNotFoundError(AIGCLabelError):
    """No font with CJK glyphs is available (install the project's dependencies)."""

    exit_code = 3


class SignatureError(AIGCLabelError):
    """A key or signature cannot be made, loaded or parsed (bad key file, unknown algorithm...)."""

    exit_code = 6


class KeyRegistryError(SignatureError):
    """A key registry file is malformed or contradicts itself."""


class VerifyError(AIGCLabelError):
    """A verification result cannot be applied (nothing to label, or a bad propagator value)."""

    exit_code = 5


class C2PAError(AIGCLabelError):
    """c2pa-python refused to sign or read the file."""

    exit_code = 4


class AuditError(AIGCLabelError):
    """The audit database cannot be opened or written, or an event is not acceptable."""

    exit_code = 7


class AuditUnavailableError(AuditError):
    """The audit database did not answer (down, unreachable, locked): retry later.

    The message names the failure class only; the driver's text (host, port, user) stays in ``__cause__``.
    """

    http_status = 503
    http_error = "audit-unavailable"


class RequestTooLargeError(AIGCLabelError):
    """A request body is over the gateway's size limit."""

    http_status = 413
    http_error = "too-large"


class LikenessError(AIGCLabelError):
    """A likeness request that cannot be done: no face or voice in an enrolment file, an unknown person or
    consent entry, a malformed consent token or a review that was decided already."""

    exit_code = 11
    http_status = 422
    http_error = "likeness"


class TemplateKeyError(LikenessError):
    """The template encryption key is missing, malformed or not the one the templates were encrypted with
    (AES-GCM refused them): nothing was decrypted."""


class ConsentChainError(LikenessError):
    """The consent ledger fails verification: an entry was altered, inserted, deleted, reordered or cut off
    the end, or a signature does not verify; no consent is read from a broken ledger."""

    exit_code = 12
    http_status = 409
    http_error = "consent-chain-broken"
