"""Other people's files (the test media of Pillow, mutagen, pypdf, pikepdf, python-docx, python-pptx...):
label, inspect, independent reader, payload identity and strip on every format (see ``tests/corpus``).

A format's test fails on any crash, silent loss, damaged output or false refusal, except the ones listed
in :data:`KNOWN`; each of those is its own strict xfail, so fixing it turns that test red until the
entry is removed. ``make corpus`` downloads the corpus (``make test`` does it first); without it these
tests skip, unless ``CI`` or ``AIGCLABEL_CORPUS=required`` (set by the Makefile) makes the absence a failure.
"""

from __future__ import annotations

import os

import pytest

from aigclabel.containers import registered
from tests.conftest import missing
from tests.corpus import CORPUS, FAILURES, Outcome, run_corpus

pytestmark = pytest.mark.interop  # the downloaded corpus of other projects' files

#: Files per format in the CI sample (hash-chosen, so the same every run); ``python -m tests.corpus``
#: runs them all.
PER_FORMAT = 40

#: Known failures: corpus path -> why. Remove the entry with the fix (its xfail is strict).
KNOWN: dict[str, str] = {
    # images
    "pillow-13.0.0/Tests/images/tiff_wrong_bits_per_sample.tiff": "TIFF: strip 35 MB past EOF, re-save advised",
    "pillow-13.0.0/Tests/images/avif/star.avifs": "HEIF: image sequences are read-only",
    # PDF
    "pikepdf-10.18.0/tests/resources/cyclic-toc.pdf": "PDF: --repair makes qpdf's page repair explicit: digest moves",
}


@pytest.fixture(scope="module")
def outcomes() -> dict[str, Outcome]:
    """The corpus sample's outcomes by path (computed once for the module)."""
    if not CORPUS.is_dir():
        if os.environ.get("AIGCLABEL_CORPUS") == "required":
            pytest.fail(f"the corpus is missing ({CORPUS.name}): `make corpus` should have downloaded it")
        missing("the corpus of other projects' files is not downloaded", "run `make corpus`")
    return {o.path: o for o in run_corpus(PER_FORMAT, always=KNOWN)}


@pytest.mark.parametrize("fmt", sorted(registered()))
def test_corpus_format(fmt: str, outcomes: dict[str, Outcome]) -> None:
    """Every sampled file of ``fmt`` is labelled losslessly or refused because it is really broken."""
    mine = [o for o in outcomes.values() if o.format == fmt]
    if not mine:
        pytest.skip(f"the corpus has no {fmt} file")
    failed = [f"{o.status} {o.path}: {o.reason}" for o in mine if o.status in FAILURES and o.path not in KNOWN]
    assert not failed, "\n".join(failed)


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(p, marks=pytest.mark.xfail(strict=True, reason=why, raises=AssertionError), id=p)
        for p, why in KNOWN.items()
    ],
)
def test_known_failure(path: str, outcomes: dict[str, Outcome]) -> None:
    """A known false refusal or loss; passes (and so fails strictly) once it is fixed."""
    if path not in outcomes:  # not an AssertionError, so the xfail does not hide it
        raise LookupError(f"{path} is not in the corpus any more: remove it from KNOWN")
    outcome = outcomes[path]
    assert outcome.status not in FAILURES, outcome.reason
