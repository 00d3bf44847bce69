"""The Typer application behind ``aigclabel``: its root group, whose commands are built on first use
(:data:`aigclabel.cli.COMMANDS`), ``--version``, ``--lang`` and the Chinese help."""

# No `from __future__ import annotations`: Typer reads the signature of every command on each run.

import importlib
import inspect
import os
import sys
from types import ModuleType
from typing import Annotated, Any

import typer
from typer.main import get_command_from_info, get_command_name, get_group_from_info
from typer.models import TyperInfo

from ..i18n import COMMAND_HELP_ZH, LANG_ENV, resolve_lang, text
from . import COMMANDS, end_start_up
from ._lazy import LazyCommands
from ._params import LightGroup
from .exit_codes import help_text

__all__ = ["app", "run"]

_WATERMARK_HELP = "Invisible watermarks (image, audio, text) carrying a ProduceID digest."


class _Root(LightGroup):
    """The ``aigclabel`` group: its commands are built on first use from :data:`COMMANDS`."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = LazyCommands(tuple(COMMANDS), _build)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        """The command to run (its module now imported): start-up is over, see :func:`aigclabel.cli.main`."""
        found = super().resolve_command(ctx, args)
        end_start_up()
        return found


app = typer.Typer(
    name="aigclabel",
    help=f"Label AI-generated content per GB 45438-2025 and verify those labels.\n\n{help_text()}",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    cls=_Root,
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


#: Whether :func:`main` speaks Chinese, and the modules whose command help already starts with its Chinese line.
_chinese = False
_localized: set[str] = set()


def _module(name: str) -> ModuleType:
    """The command module ``name`` of this package, its help in Chinese when that is the language."""
    module = importlib.import_module(f".{name}", __package__)
    if _chinese and module.__name__ not in _localized:
        _localized.add(module.__name__)
        _localize(module.app)
    return module


def _build(name: str) -> Any:
    """The Click command (or group) ``name``, built by Typer from the module :data:`COMMANDS` names."""
    options: dict[str, Any] = {
        "pretty_exceptions_short": app.pretty_exceptions_short,
        "rich_markup_mode": app.rich_markup_mode,
    }
    if name == "watermark":
        help = _WATERMARK_HELP
        if _chinese:
            help = f"{COMMAND_HELP_ZH['watermark']} {help}"
        watermark_app = typer.Typer(help=help, no_args_is_help=True)
        for module_name in COMMANDS[name]:
            watermark_app.add_typer(_module(module_name).watermark_app)
        return get_group_from_info(TyperInfo(watermark_app), suggest_commands=app.suggest_commands, **options)
    (module_name,) = COMMANDS[name]
    module_app = _module(module_name).app
    for command in module_app.registered_commands:
        if _command_name(command) == name:
            return get_command_from_info(command, **options)
    for group in module_app.registered_groups:
        if group.name == name:
            return get_group_from_info(group, suggest_commands=app.suggest_commands, **options)
    raise LookupError(f"{module_name} defines no command {name!r}")


def _command_name(command: Any) -> str:
    """The name Typer gives a registered command: its own, else its function's."""
    return str(command.name or (get_command_name(command.callback.__name__) if command.callback else ""))


def _localize(module_app: typer.Typer) -> None:
    """Start the help of each of ``module_app``'s commands and groups with its Chinese line."""
    for command in module_app.registered_commands:
        name = _command_name(command)
        if name in COMMAND_HELP_ZH:
            english = command.help or inspect.getdoc(command.callback) or ""
            command.help = f"{COMMAND_HELP_ZH[name]}\n\n{english}"
    for group in module_app.registered_groups:
        if group.name in COMMAND_HELP_ZH and group.typer_instance is not None:
            english = group.typer_instance.info.help or ""
            group.typer_instance.info.help = f"{COMMAND_HELP_ZH[group.name]} {english}"


def speak(argv: list[str]) -> None:
    """Take ``--lang`` before Click parses anything, so help and messages are in that language; in
    Chinese, every command's help starts with its Chinese line (added as its module loads)."""
    for index, arg in enumerate(argv):
        if arg.startswith("--lang="):
            os.environ[LANG_ENV] = arg.partition("=")[2]
        elif arg == "--lang" and index + 1 < len(argv):
            os.environ[LANG_ENV] = argv[index + 1]
    global _chinese
    lang = resolve_lang()
    if lang == "zh-CN" and not _chinese:
        _chinese = True
        app.info.help = f"{text('cli.app', lang)}\n\n{app.info.help}"


def run() -> None:
    """Parse the command line with Typer and run the command it names."""
    speak(sys.argv[1:])
    app()
