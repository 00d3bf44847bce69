"""Shared fixtures: a conforming demo label, and the guards for what tests need from outside Python.

Tests that need an independent external tool or server, or that are slow, carry the ``interop`` marker,
so ``python -m pytest -m "not interop"`` is the quick local loop. The marker cannot silently go stale:
a test that runs an external tool (through :func:`require_tool` or by launching one of
:data:`EXTERNAL_TOOLS`) without it fails with a message saying so. A missing tool or resource skips
on a developer machine and fails when ``CI`` is set: CI installs everything, so it must not skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from aigclabel import DEMO_PROVIDER_CODE, AIGCLabel

SAMPLES = Path(__file__).resolve().parent.parent / "aigclabel" / "samples"
INTEROP = "interop"
#: Programs whose use makes a test ``interop``: the independent readers and servers the tests check
#: against (also enforced for any program reached through :func:`require_tool`).
EXTERNAL_TOOLS = frozenset(
    {
        *("exiftool", "ffmpeg", "ffprobe", "qpdf", "sox", "espeak-ng", "tesseract", "openssl"),
        *("mkvmerge", "mkvextract", "mkvinfo", "mkvpropedit", "libreoffice", "soffice", "chromium"),
        *("initdb", "pg_ctl", "postgres", "pg_config", "c2patool"),
    }
)

_running: pytest.Item | None = None


@pytest.fixture
def demo_label() -> AIGCLabel:
    """A fresh, conforming producer label with the demo provider code."""
    return AIGCLabel.for_producer(DEMO_PROVIDER_CODE)


def missing(what: str, remedy: str) -> NoReturn:
    """Stop a test whose tool or resource is absent: skip on a developer machine, fail under ``CI``."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} (CI must not skip); {remedy}")
    pytest.skip(f"{what}; {remedy}")


def require_interop(what: str) -> None:
    """Fail the running test unless it is marked ``interop``: it ``what`` (e.g. "runs exiftool")."""
    if _running is not None and _running.get_closest_marker(INTEROP) is None:
        pytest.fail(
            f"{_running.nodeid} {what} but is not marked `interop`: add `@pytest.mark.interop` "
            "(or `pytestmark = pytest.mark.interop` in the module) so `pytest -m 'not interop'` leaves it out"
        )


def require_tool(name: str) -> str:
    """Path of the external program ``name`` the running (``interop``) test needs."""
    require_interop(f"runs {name}")
    found = shutil.which(name)
    if found is None:
        missing(f"{name} is not installed", "run `make setup` (scripts/install-system-deps.sh)")
    return found


def require_module(name: str) -> Any:
    """The Python module ``name`` (a dev dependency), imported; skipped without it, failed under ``CI``."""
    try:
        return __import__(name, fromlist=["_"])
    except ImportError:
        missing(f"the Python module {name} is not installed", "run `make setup`")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test marked ``slow`` is left out of the quick loop too."""
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(INTEROP)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Remember the running test, for :func:`require_interop`."""
    global _running
    _running = item
    try:
        return (yield)
    finally:
        _running = None


@pytest.fixture(scope="session", autouse=True)
def external_tools_need_the_marker() -> Iterator[None]:
    """Any launch of one of :data:`EXTERNAL_TOOLS` (directly or by a helper) checks the running test's marker."""
    original = subprocess.Popen.__init__

    def checked(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        first = args.split()[0] if isinstance(args, str) else next(iter(args), "") if args else ""
        name = os.path.basename(os.fsdecode(first))
        if name in EXTERNAL_TOOLS:
            require_interop(f"runs {name}")
        original(self, args, *rest, **kwargs)

    subprocess.Popen.__init__ = checked  # type: ignore[method-assign]
    try:
        yield
    finally:
        subprocess.Popen.__init__ = original  # type: ignore[method-assign]
