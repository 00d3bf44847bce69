"""Command-line values converted without Pydantic.

Typer (0.29) converts every non-flag parameter through a Pydantic ``TypeAdapter``, so a one-file
``aigclabel inspect`` would import Pydantic and build adapters before reading a byte: about 60 ms,
more than exiftool's whole run. The parameters of our commands are ``str``, ``Path``, enums and lists
of those, which need no Pydantic: :class:`LightGroup` gives each such parameter of the command about
to run a converter that calls Typer's own path and choice checks, so values and error messages stay
Typer's. Any other type (``int``, ``float``...) keeps Typer's converter, and so does everything if a
Typer release moves the internals used here.
"""

from __future__ import annotations

import importlib
from enum import Enum
from pathlib import Path
from typing import Any, get_args, get_origin

import typer
from typer.core import TyperGroup

try:  # Typer's path and choice checks (a private module): without them Typer converts everything itself
    _CHECKS: Any = importlib.import_module("typer._param_types")
    _CHECKS.coerce_cli_path, _CHECKS.coerce_cli_choice  # noqa: B018 - both must exist
except (ImportError, AttributeError):
    _CHECKS = None


class _Plain:
    """Converts one parameter whose type is ``str``, a ``Path``, an enum, or a list of one of those."""

    def __init__(self, item: Any, many: bool, info: Any) -> None:
        self.item, self.many, self.info = item, many, info

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        """Typer's ``RuntimeParam.coerce`` contract: ``None`` stays missing, lists convert item by item."""
        if value is None:
            return () if self.many else None
        if self.many:
            if isinstance(value, str):
                raise typer.BadParameter("Value must be an iterable.", ctx=ctx, param=param)
            return [self.one(item, param, ctx) for item in value]
        return self.one(value, param, ctx)

    def one(self, value: Any, param: Any, ctx: Any) -> Any:
        """One value: a flag's bool or a ``str`` as given, a path checked by Typer, an enum member chosen by Typer."""
        if self.item is bool:
            return value
        if self.item is str:
            return value if isinstance(value, str) else str(value)
        if issubclass(self.item, Enum):
            try:
                return _CHECKS.coerce_cli_choice(
                    value, choices=list(self.item), case_sensitive=self.info.case_sensitive, ctx=ctx
                )
            except ValueError as exc:
                raise typer.BadParameter(str(exc), ctx=ctx, param=param) from None
        path = value if isinstance(value, self.item) else self.item(value)
        return _CHECKS.coerce_cli_path(path, self.info, path_type=self.item, param=param, ctx=ctx)


def _plain(param: Any) -> _Plain | None:
    """A converter for ``param`` if its type needs no Pydantic, else ``None``."""
    descriptor: Any = getattr(param, "type_descriptor", None)
    info: Any = getattr(descriptor, "parameter_info", None)
    if info is None or getattr(descriptor, "file_annotation", True) is not None or info.parser is not None:
        return None
    annotation: Any = descriptor.annotation
    many = get_origin(annotation) is list
    if many:
        (annotation,) = get_args(annotation) or (None,)
    if annotation is str or (isinstance(annotation, type) and issubclass(annotation, Enum)):
        return _Plain(annotation, many, info)
    if annotation is bool and getattr(param, "is_flag", False) and not many:  # a flag's value is a bool or None
        return _Plain(bool, many, info)
    if isinstance(annotation, type) and issubclass(annotation, Path) and info.path_type in (None, annotation):
        return _Plain(annotation, many, info)
    return None


def _lighten(params: list[Any]) -> None:
    """Give each of ``params`` that needs no Pydantic a :class:`_Plain` converter."""
    if _CHECKS is None:
        return
    for param in params:
        if getattr(param, "_runtime_param", False) is None and (plain := _plain(param)) is not None:
            param._runtime_param = plain  # Typer builds its own there on first use


class LightGroup(TyperGroup):
    """The top-level command group: it and the command it resolves convert their values without Pydantic."""

    def get_params(self, ctx: Any) -> Any:
        """The group's parameters (``--help`` too), the plain ones given :class:`_Plain` converters."""
        params = super().get_params(ctx)
        _lighten(params)
        return params

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """The subcommand ``cmd_name``, its plain parameters given :class:`_Plain` converters."""
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _lighten(command.get_params(ctx))
        return command
