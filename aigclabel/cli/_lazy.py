"""Subcommands built on first use (Click's "lazily loading subcommands" pattern, in Typer).

Typer builds the Click command of every registered command before it parses a word: it imports each
command module and reads each signature, about 15 ms of a one-file ``aigclabel inspect``. The root group
instead holds a :class:`LazyCommands` mapping: the names are known up front, and a command's module is
imported and its Click command built (by Typer's own functions, so options, help and errors are Typer's)
only when that name is looked up. ``--help`` and the "did you mean" suggestion iterate the mapping, which
builds everything, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typer._click import Command


class LazyCommands(MutableMapping[str, "Command"]):
    """Commands by name, in ``names`` order; ``build(name)`` makes each one the first time it is read."""

    def __init__(self, names: tuple[str, ...], build: Callable[[str], Command]) -> None:
        self._names = list(names)
        self._build = build
        self._built: dict[str, Command] = {}

    def __getitem__(self, name: str) -> Command:
        if name not in self._built:
            if name not in self._names:
                raise KeyError(name)
            self._built[name] = self._build(name)
        return self._built[name]

    def __setitem__(self, name: str, command: Command) -> None:
        if name not in self._names:
            self._names.append(name)
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        self._names.remove(name)
        self._built.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._names))

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: Any) -> bool:
        return name in self._names
