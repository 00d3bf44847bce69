"""What every command module shares: the console pair (from :mod:`._console`), the one error exit, and
options and loaders used by commands of more than one audience (signing key, watermark key, audit
database, ``--repair``)."""

# No `from __future__ import annotations`: the option aliases below are read by Typer in the commands'
# signatures. Names imported only for type checking are quoted.

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer

from ..errors import AIGCLabelError
from ._console import err as err  # re-exported: every command module prints through them
from ._console import out as out
from ._console import say as say
from .exit_codes import USAGE

if TYPE_CHECKING:
    from ..audit import AuditStore
    from ..signing import SigningKey


def fail(exc: AIGCLabelError) -> NoReturn:
    """Report ``exc`` and end the command with its exit code."""
    say(exc)
    raise typer.Exit(exc.exit_code)


def usage_error(message: str) -> NoReturn:
    """Report a usage problem Click cannot see (options that go together, a bad key file) and exit 2."""
    say(message)
    raise typer.Exit(USAGE)


_T = TypeVar("_T", bound=str)


def pick(value: str | None, default: _T, choices: tuple[_T, ...], option: str) -> _T:
    """``value`` as one of ``choices`` (``default`` when not given); any other value is a usage error."""
    if value is None:
        return default
    for choice in choices:
        if choice == value:
            return choice
    usage_error(f"{option} {value!r} is not one of {', '.join(choices)}")


#: ``--repair`` of ``label`` and ``strip``.
RepairOption = Annotated[
    bool,
    typer.Option(
        "--repair",
        help="Rewrite a damaged file that would be refused whole, repaired (a PDF qpdf repairs: drops "
        "earlier revisions and digital signatures; a cut-short MKV/WebM/AVI: remuxed, same packets).",
    ),
]

#: ``--db`` of the audit and key-registry commands.
DbOption = Annotated[
    str | None, typer.Option("--db", help="Audit database URL or SQLite file (default: $AIGCLABEL_DB).")
]


def signing_key(path: Path | None, demo: bool) -> "SigningKey | None":
    """The private key in ``path``, else the public demo key if ``demo``, else none."""
    if path is None and not demo:
        return None  # the signing stack loads only when a key is used
    from ..signing import SigningKey, demo_signing_key

    if path is not None:
        return SigningKey.load(path)
    return demo_signing_key() if demo else None


def watermark_key(path: Path | None) -> bytes:
    """The secret watermark key in ``path`` (at least 16 bytes), else the public demo key."""
    from ..watermark import DEMO_KEY

    if path is None:
        return DEMO_KEY
    key = path.read_bytes()
    if len(key) < 16:
        usage_error("a watermark key must be at least 16 bytes")
    return key


def store(db: str | None) -> "AuditStore":
    """The audit store at ``db`` (default: ``$AIGCLABEL_DB``, else the local SQLite file)."""
    from ..audit import AuditStore

    return AuditStore(db)


def optional_store(url: str | None) -> "AuditStore | None":
    """The audit store at ``url``, or none when no database is named."""
    return store(url) if url else None


def auditing(db: str | None, audit: bool | None) -> bool:
    """Record events when asked to, or by default when a database is configured."""
    from ..audit import DB_ENV

    return audit if audit is not None else bool(db or os.environ.get(DB_ENV))
