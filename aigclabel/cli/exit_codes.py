"""The exit codes of ``aigclabel``, in one table: the CLI's own (0, 1, 2) and those of the typed errors,
whose code is the class's ``exit_code`` (:mod:`aigclabel.errors`). ``aigclabel --help`` prints it, and
``tests/test_cli.py`` checks the README's copy and that every error class the CLI can raise is in it.
"""

from __future__ import annotations

from .. import errors

#: Success; for ``inspect``, every file carries one conforming label.
OK = 0
#: A file without one conforming label (``check``: not compliant; ``batch``: some files failed).
LABEL_PROBLEM = 1
#: A bad option or argument (Click's own, and the CLI's checks of option combinations).
USAGE = 2

_CLI_CODES: tuple[tuple[int, str], ...] = (
    (OK, "success (inspect: every file carries exactly one conforming label)"),
    (LABEL_PROBLEM, "a file has no label, several, or a non-conforming one (check: not compliant; "
     "watermark detect: no mark; batch: some files failed; likeness evidence verify: package altered or not "
     "validly signed; likeness gate: not allowed; likeness scan: a match sent to review)"),
    (USAGE, "usage error (bad option or argument)"),
)  # fmt: skip

#: What each error class the CLI reports means; its code is the class's ``exit_code``. A class missing
#: here whose ``exit_code`` differs from its base's fails ``tests/test_cli.py``.
ERROR_MEANINGS: tuple[tuple[type[errors.AIGCLabelError], str], ...] = (
    (errors.ConfigurationError, "a setting that cannot work (serve, gateway)"),
    (errors.MissingExtraError, "an optional part not installed (the message names the extra, e.g. aigclabel[sm2])"),
    (errors.RetentionError, "a retention period below six months"),
    (errors.UnsupportedFormatError, "unsupported format, or one that cannot be written losslessly"),
    (errors.FontNotFoundError, "no font with CJK glyphs for a visible label"),
    (errors.MalformedFileError, "malformed, truncated or hostile file, or one over a size limit; nothing was "
     "written (check too)"),
    (errors.C2PAError, "a C2PA manifest that cannot be signed or read"),
    (errors.InvalidLabelError, "invalid label value (bad Label, characters outside Annex E, no producer...)"),
    (errors.VerifyError, "a verification result that cannot be applied (verify --apply)"),
    (errors.SignatureError, "key or signature error"),
    (errors.AuditError, "audit database error"),
    (errors.FileAccessError, "the file system refused: permission denied, disk full, read-only, not a regular "
     "file (FIFO, device, directory), or a rewrite that would change the file's owner or break its hard "
     "links; nothing was changed"),
    (errors.LabelRemovalRefusedError, "strip refused: the label is not provably yours (Measures Art. 10; see "
     "--force-remove-label)"),
    (errors.ExportRefusedError, "audit record-export refused: no implicit label, or no accepted user agreement "
     "(Measures Art. 9; see --override-no-label / --override-no-agreement)"),
    (errors.LikenessError, "a likeness request that cannot be done (no face or voice to enrol, unknown person "
     "or grant, bad consent token, wrong template key)"),
    (errors.ConsentChainError, "the consent ledger does not verify (an entry altered, inserted, deleted, "
     "reordered or cut off the end)"),
)  # fmt: skip


def _table() -> dict[int, str]:
    meanings: dict[int, list[str]] = {}
    for code, meaning in _CLI_CODES:
        meanings.setdefault(code, []).append(meaning)
    for cls, meaning in ERROR_MEANINGS:
        meanings.setdefault(cls.exit_code, []).append(meaning)
    return {code: "; ".join(meanings[code]) for code in sorted(meanings)}


#: Exit code -> what it means (the meanings of several error classes sharing a code joined by "; ").
EXIT_CODES: dict[int, str] = _table()


def help_text(width: int = 76) -> str:
    """The table as ``aigclabel --help`` shows it: a block Click prints as it is (``\\b``), wrapped to ``width``."""
    import textwrap

    lines = ["Exit codes:", "", "\b"]
    for code, meaning in EXIT_CODES.items():
        lines += textwrap.wrap(meaning, width, initial_indent=f"{code:<3}", subsequent_indent="   ")
    return "\n".join(lines)


def markdown() -> str:
    """The table as the README shows it (Markdown)."""
    rows = [f"| {code} | {meaning} |" for code, meaning in EXIT_CODES.items()]
    return "\n".join(["| exit code | meaning |", "| --- | --- |", *rows])
