"""A missing extra is a typed error that names it; `scripts/check-core-install.sh` proves the same on a
real core install. Here a package is made unimportable in a fresh interpreter (``sys.modules[name] =
None``, which makes ``import name`` raise ``ModuleNotFoundError`` as if it were not installed)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from aigclabel import DEMO_PROVIDER_CODE
from aigclabel._extras import needs_extra
from aigclabel.errors import AIGCLabelError, ConfigurationError, MissingExtraError
from tests.conftest import SAMPLES

ROOT = Path(__file__).resolve().parent.parent


def test_missing_module_becomes_missing_extra_error() -> None:
    with pytest.raises(MissingExtraError) as caught, needs_extra("media"):
        import aigclabel_test_absent_module  # type: ignore[import-not-found]  # noqa: F401
    error = caught.value
    assert isinstance(error, ConfigurationError) and isinstance(error, ImportError)
    assert error.exit_code == 2 and error.extra == "media" and error.name == "aigclabel_test_absent_module"
    assert "pip install 'aigclabel[media]'" in str(error) and "aigclabel_test_absent_module" in str(error)
    copy = pickle.loads(pickle.dumps(error))  # crosses process pools (batch) intact
    assert str(copy) == str(error) and copy.name == error.name and copy.extra == "media"


def test_own_missing_module_is_a_bug_not_an_extra() -> None:
    with pytest.raises(ModuleNotFoundError) as caught, needs_extra("media"):
        import aigclabel.no_such_module  # type: ignore[import-not-found]  # noqa: F401
    assert not isinstance(caught.value, AIGCLabelError)


def _cli_without(blocked: tuple[str, ...], *args: str) -> subprocess.CompletedProcess[str]:
    probe = (
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        "sys.argv = ['aigclabel', *sys.argv[1:]]\n"
        "from aigclabel.cli import main\n"
        "main()\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), "COLUMNS": "300"}
    return subprocess.run(
        [sys.executable, "-c", probe, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


@pytest.mark.parametrize(
    ("blocked", "extra", "args"),
    [
        (("scipy", "cv2", "av"), "media", ("mark", str(SAMPLES / "sample.png"), "-o", "{tmp}/marked.png")),
        (("sqlalchemy", "alembic"), "audit", ("audit", "trace", "x", "--db", "{tmp}/audit.sqlite")),
        (("c2pa",), "c2pa", ("inspect", "--c2pa", str(SAMPLES / "sample.jpg"))),
    ],
)
def test_cli_names_the_missing_extra(
    tmp_path: Path, blocked: tuple[str, ...], extra: str, args: tuple[str, ...]
) -> None:
    done = _cli_without(blocked, *(arg.format(tmp=tmp_path) for arg in args))
    assert done.returncode == 2, done.stderr
    assert f"pip install 'aigclabel[{extra}]'" in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_label_and_inspect_need_no_extra(tmp_path: Path) -> None:
    """The core commands still work with every extra's packages unimportable."""
    blocked = ("scipy", "cv2", "av", "pillow_heif", "sqlalchemy", "alembic", "c2pa", "gmssl", "fastapi", "distributed")
    out = tmp_path / "out.mp4"
    done = _cli_without(blocked, "label", str(SAMPLES / "sample.mp4"), "-o", str(out), "-p", DEMO_PROVIDER_CODE)
    assert done.returncode == 0, done.stderr
    done = _cli_without(blocked, "inspect", "--json", str(out))
    assert done.returncode == 0 and '"ok": true' in done.stdout, done.stderr


@pytest.mark.skipif(
    not (getattr(os, "confstr", lambda _: "")("CS_GNU_LIBC_VERSION") or "").startswith("glibc"), reason="glibc only"
)
def test_pixel_detectors_keep_their_working_memory() -> None:
    """Once OpenCV is imported through aigclabel, blocks of a detector's size freed at the top of the heap are
    kept for the next picture instead of being given back and faulted in again; with AIGCLABEL_MALLOC_TUNE=0,
    glibc's own thresholds trim three freed 12 MB blocks every round. A fresh interpreter each time."""
    probe = (
        "import resource, numpy as np\n"
        "import aigclabel._opencv\n"
        "def round_():\n"
        "    blocks = [np.ones(3 << 20, dtype=np.float32) for _ in range(3)]\n"
        "    del blocks\n"
        "round_()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for _ in range(5):\n"
        "    round_()\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 5)\n"
    )
    faults = {}
    for tune in ("1", "0"):
        env = {**os.environ, "AIGCLABEL_MALLOC_TUNE": tune}
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
        faults[tune] = int(done.stdout)  # page faults a round
    assert faults["1"] < 100 and faults["0"] > faults["1"], faults


@pytest.mark.parametrize(
    ("setting", "expected"),
    [(None, "1"), ("3", "3"), ("auto", "default"), ("many", "1 warned")],
)
def test_opencv_thread_pool_follows_aigclabel_cv_threads(setting: str | None, expected: str) -> None:
    """The detectors' OpenCV runs on one thread unless AIGCLABEL_CV_THREADS says otherwise (a fresh
    interpreter each time: the setting is read once, when OpenCV is first imported through aigclabel)."""
    env = {key: value for key, value in os.environ.items() if key != "AIGCLABEL_CV_THREADS"}
    if setting is not None:
        env["AIGCLABEL_CV_THREADS"] = setting
    probe = (
        "import warnings, cv2\n"
        "default = cv2.getNumThreads()\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    import aigclabel.watermark.image\n"
        "count = cv2.getNumThreads()\n"
        "shown = 'default' if count == default else str(count)\n"
        "print(shown + (' warned' if any('AIGCLABEL_CV_THREADS' in str(w.message) for w in caught) else ''))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == expected
