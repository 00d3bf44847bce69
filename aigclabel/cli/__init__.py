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

The commands stay thin: each parses options, calls the library and prints. Every module is imported at
start (Typer reads every command's signature), so commands import what they use inside their body
(``tests/test_cli_imports.py`` holds a one-file ``inspect`` and ``label`` to that).

To add a command, write it in the module of whoever runs it under that module's ``@app.command()``; it
joins the top level by itself. Report a typed error with :func:`._common.fail` (its exit code comes from
the class, :mod:`.exit_codes`) and print through :data:`._common.out` / :data:`._common.err`.
"""

# No `from __future__ import annotations`: Typer reads the signature of every command on each run.

import atexit
import gc
import inspect
import os
import sys
from typing import Annotated

import typer

from ..errors import AIGCLabelError
from ..i18n import COMMAND_HELP_ZH, LANG_ENV, resolve_lang, text
from . import audit, likeness, operations, platform, producer
from ._common import say
from ._params import LightGroup
from .exit_codes import help_text

__all__ = ["app", "main"]

app = typer.Typer(
    name="aigclabel",
    help=f"Label AI-generated content per GB 45438-2025 and verify those labels.\n\n{help_text()}",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    cls=LightGroup,
)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"aigclabel {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    lang: Annotated[
        str | None,
        typer.Option("--lang", help="zh-CN or en (default: $AIGCLABEL_LANG, then the locale). 语言：zh-CN 或 en。"),
    ] = None,
) -> None:
    """Label AI-generated content per GB 45438-2025 and verify those labels."""


watermark_app = typer.Typer(
    help="Invisible watermarks (image, audio, text) carrying a ProduceID digest.", no_args_is_help=True
)
watermark_app.add_typer(producer.watermark_app)
watermark_app.add_typer(platform.watermark_app)

# Without a name, each module's commands join the top level (listed by `--help` in this order).
for module in (producer, platform, audit, operations, likeness):
    app.add_typer(module.app)
app.add_typer(watermark_app, name="watermark")


def _speak(argv: list[str]) -> None:
    """Take ``--lang`` before Click parses anything, so help and messages are in that language; in
    Chinese, every command's help starts with its Chinese line."""
    for index, arg in enumerate(argv):
        if arg.startswith("--lang="):
            os.environ[LANG_ENV] = arg.partition("=")[2]
        elif arg == "--lang" and index + 1 < len(argv):
            os.environ[LANG_ENV] = argv[index + 1]
    lang = resolve_lang()
    if lang != "zh-CN":
        return
    app.info.help = f"{text('cli.app', lang)}\n\n{app.info.help}"
    for module in (producer, platform, audit, operations, likeness):
        for command in module.app.registered_commands:
            name = command.name or (command.callback.__name__.replace("_", "-") if command.callback else "")
            if name in COMMAND_HELP_ZH:
                english = command.help or inspect.getdoc(command.callback) or ""
                command.help = f"{COMMAND_HELP_ZH[name]}\n\n{english}"
        for group in module.app.registered_groups:
            if group.name in COMMAND_HELP_ZH and group.typer_instance is not None:
                english = group.typer_instance.info.help or ""
                group.typer_instance.info.help = f"{COMMAND_HELP_ZH[group.name]} {english}"
    watermark_app.info.help = f"{COMMAND_HELP_ZH['watermark']} {watermark_app.info.help}"


def main() -> None:
    """Console-script entry point. An operating-system error no command turned into a typed one
    (disk full, permission denied) still ends with a message and exit code 8, not a traceback."""
    from .._io import access_error

    _speak(sys.argv[1:])
    # At exit the interpreter's last garbage collections walk every object the imports made (20 ms of
    # a one-file run); frozen objects are skipped, and the operating system frees the memory anyway.
    atexit.register(gc.freeze)
    try:
        app()
    except AIGCLabelError as exc:  # raised outside a command's own handling, e.g. a missing extra on import
        say(exc)
        sys.exit(exc.exit_code)
    except OSError as exc:
        if exc.errno is None:
            raise
        error = access_error(exc, exc.filename or "file")
        say(error)
        sys.exit(error.exit_code)
