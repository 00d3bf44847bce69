"""Rich consoles built on first use, and Rich's modules loaded with the garbage collector paused.

Importing Rich costs about 15 ms of a CLI run; ``inspect --json`` and ``label`` print no Rich output
(or a single plain line), so the command modules hold these stand-ins instead of consoles. Nothing here
imports Typer: a plain ``inspect`` runs without it (:mod:`._inspect`).
"""

from __future__ import annotations

import gc
import importlib
import sys
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from rich.console import Console


class _DeferredConsole:
    __slots__ = ("_console", "_options")

    def __init__(self, options: dict[str, Any]) -> None:
        self._options = options
        self._console: Console | None = None

    def get(self) -> Console:
        if self._console is None:
            load_rich("rich.console")
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


def lazy_console(**options: Any) -> Console:
    """A :class:`rich.console.Console` made with ``options`` the first time one of its attributes is used.

    Its methods work as the console's; pass :func:`real_console` of it to a Rich object that takes a
    ``console=`` (``with console:`` and other protocols do not reach through the stand-in).
    """
    return cast("Console", _DeferredConsole(options))


def real_console(console: Console) -> Console:
    """The console behind a :func:`lazy_console` stand-in (``console`` itself if it is a real one)."""
    return console.get() if isinstance(console, _DeferredConsole) else console


def load_rich(*modules: str) -> None:
    """Import ``modules`` (Rich's: ``"rich.table"``...) with the garbage collector paused, then freeze
    what the process holds so later collections skip it.

    Rich's modules make some 30,000 objects that live until the process ends. Loaded with the collector
    on, they are walked by the collections their own imports trigger, and again by those of the command
    that prints: about 2 ms of a one-file ``inspect`` table (:mod:`aigclabel.__main__` does the same for
    start-up). Modules already loaded cost nothing; when the collector is off already (start-up), it stays
    so and nothing is frozen.
    """
    missing = [name for name in modules if name not in sys.modules]
    if not missing:
        return
    collecting = gc.isenabled()
    gc.disable()
    try:
        for name in missing:
            importlib.import_module(name)
    finally:
        if collecting:
            gc.freeze()
            gc.enable()


#: Standard output and standard error of every command, for tables and styled lines (Rich loads on first
#: use); a line of plain text goes through ``typer.echo``, which needs no Rich and reads nothing as markup.
out = lazy_console(soft_wrap=True)
err = lazy_console(stderr=True)


def say(message: object) -> None:
    """Print ``error: MESSAGE`` on standard error (the message as plain text, never Rich markup)."""
    load_rich("rich.console")
    from rich.text import Text

    from ..i18n import resolve_lang, text

    err.print(Text.assemble((text("cli.error", resolve_lang()) + ":", "bold red"), f" {message}"), highlight=False)
