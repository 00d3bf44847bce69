"""The test kit's own guards (``tests/conftest.py``), run in an inner pytest session: an external tool
used without the ``interop`` marker fails, a missing tool skips locally and fails under ``CI``, and the
quick loop (``-m "not interop"``) leaves out interop and slow tests."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).with_name("conftest.py").read_text()

INNER = """
import subprocess
import pytest
from conftest import require_tool

def test_unmarked_require_tool():
    require_tool("sh")

def test_unmarked_launch():
    subprocess.run(["exiftool", "-ver"], capture_output=True)

@pytest.mark.interop
def test_marked_missing_tool():
    require_tool("no-such-tool-aigclabel")

@pytest.mark.interop
def test_marked_tool():
    subprocess.run([require_tool("sh"), "-c", "true"], check=True)

@pytest.mark.slow
def test_slow():
    pass

def test_plain():
    pass
"""


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makeini(
        "[pytest]\nmarkers =\n    slow: slow\n    interop: interop\naddopts = --strict-markers -p no:cacheprovider"
    )
    pytester.makepyfile(test_inner=INNER)
    return pytester


def test_tools_need_the_marker_and_a_missing_tool_skips_locally(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    result = inner.runpytest_inprocess("-rs")
    result.assert_outcomes(passed=3, failed=2, skipped=1)
    result.stdout.fnmatch_lines(["*test_unmarked_require_tool runs sh but is not marked `interop`*"])
    result.stdout.fnmatch_lines(["*test_unmarked_launch runs exiftool but is not marked `interop`*"])
    result.stdout.fnmatch_lines(["*no-such-tool-aigclabel is not installed*"])


def test_a_missing_tool_fails_under_ci(inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    result = inner.runpytest_inprocess("-k", "missing")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no-such-tool-aigclabel is not installed (CI must not skip)*"])


def test_the_quick_loop_leaves_out_interop_and_slow_tests(inner: pytest.Pytester) -> None:
    result = inner.runpytest_inprocess("-m", "not interop", "-k", "not unmarked")
    result.assert_outcomes(passed=1, deselected=5)
