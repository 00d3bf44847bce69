"""Shared fixtures: a conforming demo label and guards for the independent tools tests rely on."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from aigclabel import DEMO_PROVIDER_CODE, AIGCLabel

SAMPLES = Path(__file__).resolve().parent.parent / "aigclabel" / "samples"


@pytest.fixture
def demo_label() -> AIGCLabel:
    """A fresh, conforming producer label with the demo provider code."""
    return AIGCLabel.for_producer(DEMO_PROVIDER_CODE)


def require_tool(name: str) -> str:
    """Path of an external program the test needs; CI installs them all, so absence is a failure."""
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; run `make setup` (scripts/install-system-deps.sh)")
    return found
