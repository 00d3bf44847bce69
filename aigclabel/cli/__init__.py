"""Command-line interface: the ``aigclabel`` command, built from one module per audience.

====================  ===============================================================================
:mod:`.producer`      an AI service provider labelling what it generates: ``label``, ``mark``, ``sign``,
                      ``strip``, ``watermark embed``
:mod:`.platform`      a platform checking what it receives or spreads: ``inspect``, ``verify``, ``check``,
                      ``watermark detect``
:mod:`.audit`         whoever keeps the records: ``audit ...``, ``keys ...``
:mod:`.operations`    whoever runs aigclabel as a service or over many files: ``batch``, ``serve``,
                      ``gateway``, ``demo``, ``formats``
:mod:`.likeness`      whoever protects faces and voices: ``likeness ...`` (enrol, consent, gate, scan,
                      review)
====================  ===============================================================================

The commands stay thin: each parses options, calls the library and prints. Typer's application is in
:mod:`._root`; only the module of the command being run is imported (:data:`COMMANDS` names it;
:mod:`._lazy`), and commands import what they use inside their body (``tests/test_cli_imports.py`` holds
a one-file ``inspect`` and ``label`` to that). A plain ``inspect FILE...`` runs without Typer at all
(:mod:`._inspect`).

To add a command, write it in the module of whoever runs it under that module's ``@app.command()`` and
add its name to :data:`COMMANDS` (a test fails until the two agree). Report a typed error with
:func:`._common.fail` (its exit code comes from the class, :mod:`.exit_codes`) and print through
:data:`._common.out` / :data:`._common.err`.
"""

import atexit
import gc
import os
import sys
from typing import TYPE_CHECKING, Any

from ..errors import AIGCLabelError

if TYPE_CHECKING:
    import typer

    app: typer.Typer

__all__ = ["COMMANDS", "app", "main"]

#: Every top-level command, in ``--help`` order, and the module (of this package) that defines it; a
#: command is built from its module only when it is run. ``watermark`` gathers both audiences' halves.
COMMANDS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("label", "strip", "mark", "voice-turn", "sign"), ("producer",)),
    **dict.fromkeys(("inspect", "verify", "check"), ("platform",)),
    **dict.fromkeys(("audit", "keys", "agreement"), ("audit",)),
    **dict.fromkeys(("formats", "recover", "demo", "batch", "serve", "gateway"), ("operations",)),
    "likeness": ("likeness",),
    "watermark": ("producer", "platform"),
}


def __getattr__(name: str) -> Any:
    """``app``, the Typer application (:mod:`._root`), imported on first use: a plain ``inspect`` needs none."""
    if name == "app":
        from ._root import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Whether the garbage collector is off until the command to run is imported (:func:`main`).
_gc_paused = False


def end_start_up() -> None:
    """Move what start-up made to the permanent generation and turn the collector back on."""
    global _gc_paused
    if _gc_paused:
        _gc_paused = False
        gc.freeze()
        gc.enable()


def main(*, gc_paused: bool = False) -> None:
    """Console-script entry point. An operating-system error no command turned into a typed one
    (disk full, permission denied) still ends with a message and exit code 8, not a traceback.

    ``gc_paused``: the caller turned the garbage collector off before importing this package
    (:mod:`aigclabel.__main__`); it stays off until the command to run is imported, then what start-up
    made is frozen (later collections skip it) and the collector runs as usual for the command."""
    from .._io import access_error
    from ._console import say

    global _gc_paused
    _gc_paused = gc_paused

    # At exit the interpreter's last garbage collections walk every object the imports made (20 ms of
    # a one-file run); frozen objects are skipped, and the operating system frees the memory anyway.
    atexit.register(gc.freeze)
    try:
        if not _run_plain(sys.argv[1:]):
            from ._root import run

            run()
    except AIGCLabelError as exc:  # raised outside a command's own handling, e.g. a missing extra on import
        say(exc)
        sys.exit(exc.exit_code)
    except OSError as exc:
        if exc.errno is None:
            raise
        error = access_error(exc, exc.filename or "file")
        say(error)
        sys.exit(error.exit_code)
    finally:
        if _gc_paused:  # no command ran (help, a usage error)
            _gc_paused = False
            gc.enable()


def _run_plain(argv: list[str]) -> bool:
    """Run ``argv`` without Typer when it is a plain ``inspect`` (:mod:`._inspect`) and exit; ``False``
    otherwise. What Click does around a command is done here too: a closed output pipe exits 1 quietly,
    Ctrl-C exits 130."""
    if argv[:1] != ["inspect"]:  # the only command with a plain form: other commands skip its module
        return False
    from ._inspect import inspect_files, plain_inspect

    plain = plain_inspect(argv)
    if plain is None:
        return False
    files, as_json = plain
    end_start_up()
    try:
        code = inspect_files(files, as_json=as_json)
        sys.stdout.flush()
    except BrokenPipeError:
        # As Click does: no "Exception ignored" message when the interpreter flushes the closed pipe at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code)
