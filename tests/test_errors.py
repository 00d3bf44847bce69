"""The error hierarchy: every class lives in aigclabel.errors, and its docstring tree is the real one."""

from __future__ import annotations

import importlib
import pkgutil
import re

import aigclabel
from aigclabel import errors
from aigclabel.errors import AIGCLabelError

#: Modules that run something when imported (the CLI entry point, Alembic's migration environment).
_NOT_IMPORTED = ("aigclabel.__main__", "aigclabel.audit.migrations")


def _all_subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _all_subclasses(sub)
    return found


def test_every_error_class_is_defined_in_errors() -> None:
    for info in pkgutil.walk_packages(aigclabel.__path__, "aigclabel."):
        if not info.name.startswith(_NOT_IMPORTED):
            importlib.import_module(info.name)
    elsewhere = sorted(
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in _all_subclasses(AIGCLabelError)
        if cls.__module__.startswith("aigclabel") and cls.__module__ != "aigclabel.errors"
    )
    assert elsewhere == [], "error classes belong in aigclabel/errors.py"


_TREE_LINE = re.compile(
    r"^(?P<indent> *)(?P<name>\w+)(?: \[(?P<extra>[\w, ]+)\])?"
    r" +exit (?P<exit>\d+) +HTTP (?P<status>\d+) (?P<code>[\w-]+)$"
)


def _docstring_tree() -> dict[str, tuple[str | None, tuple[str, ...], int, int, str]]:
    """Each class named in the docstring's tree: (parent, other bases, exit code, HTTP status, error code)."""
    doc = errors.__doc__ or ""
    block = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    tree: dict[str, tuple[str | None, tuple[str, ...], int, int, str]] = {}
    parents: list[str] = []
    for line in block.splitlines():
        match = _TREE_LINE.match(line[4:])
        assert match, f"not a tree line: {line!r}"
        depth = len(match["indent"]) // 2
        parents[depth:] = [match["name"]]
        extra = tuple(name.strip() for name in match["extra"].split(",")) if match["extra"] else ()
        parent = parents[depth - 1] if depth else None
        tree[match["name"]] = (parent, extra, int(match["exit"]), int(match["status"]), match["code"])
    return tree


def _real_tree() -> dict[str, tuple[str | None, tuple[str, ...], int, int, str]]:
    tree: dict[str, tuple[str | None, tuple[str, ...], int, int, str]] = {}
    for cls in [AIGCLabelError, *_all_subclasses(AIGCLabelError)]:
        if cls.__module__ != "aigclabel.errors":
            continue
        ours = [base.__name__ for base in cls.__bases__ if issubclass(base, AIGCLabelError)]
        assert len(ours) <= 1, f"{cls.__name__} has two aigclabel parents"
        others = tuple(base.__name__ for base in cls.__bases__ if not issubclass(base, AIGCLabelError))
        parent = ours[0] if ours else None
        tree[cls.__name__] = (parent, () if parent is None else others, cls.exit_code, cls.http_status, cls.http_error)
    return tree


def test_docstring_tree_matches_the_classes() -> None:
    assert _docstring_tree() == _real_tree()


def test_value_errors_stay_value_errors() -> None:
    # Callers (and typer's option parsing) catch ValueError for these.
    for cls in (errors.InvalidLabelError, errors.RetentionError, errors.GatewayConfigError):
        assert issubclass(cls, ValueError)


def test_explicit_labels_refuse_bad_options_with_typed_errors() -> None:
    from PIL import Image

    from aigclabel.explicit import badge_html, label_text, plan_label
    from aigclabel.explicit.image import draw_label

    refusals = {
        "placement 'middle'; use one of bottom-right": lambda: plan_label((640, 480), placement="middle"),  # type: ignore[arg-type]
        "position 'below'; use one of start, end, both, inline": lambda: label_text("x", position="below"),  # type: ignore[arg-type]
        "format 'rtf'; use one of plain, markdown, html": lambda: label_text("x", fmt="rtf"),  # type: ignore[arg-type]
        "placement 'left'; use one of top, bottom, inline": lambda: badge_html(placement="left"),  # type: ignore[arg-type]
        "planned for a 640x480 image, but this one is 320x240": lambda: draw_label(
            Image.new("RGB", (320, 240)), plan_label((640, 480))
        ),
    }
    for message, call in refusals.items():
        try:
            call()
        except errors.ExplicitLabelError as exc:
            assert isinstance(exc, ValueError)
            assert message in str(exc)
        else:
            raise AssertionError(f"accepted: {message}")
