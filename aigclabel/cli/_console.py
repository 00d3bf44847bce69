"""Rich consoles built on first use.

Importing Rich costs about 25 ms of a CLI run; ``inspect --json`` and ``label`` print no Rich output
(or a single plain line), so the command modules hold these stand-ins instead of consoles.
"""

from __future__ import annotations

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
