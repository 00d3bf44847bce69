"""The demo job behind ``make demo``: the whole generation-to-platform round trip on bundled samples.

Each sample file is copied, stamped by the producer (implicit label with a ReservedCode1 signature by
the built-in DEMO key, recorded in a SQLite audit log beside the copies), then checked as a platform
would (Measures Art. 6 classification and signature verification against the demo key registry).
Everything runs offline on embedded defaults; the DEMO key is public and proves nothing.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .audit import AuditStore
from .errors import AIGCLabelError
from .label import DEMO_PROVIDER_CODE, AIGCLabel
from .produce import ProduceOptions, label_file
from .signing import demo_registry, demo_signing_key
from .verify import classify


@dataclass(frozen=True)
class DemoRow:
    """One sample's outcome."""

    name: str
    format: str
    location: str
    produce_id: str
    signature: str
    classification: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Labelled, signature valid, classified as confirmed."""
        return self.error is None and self.signature == "valid" and self.classification == "confirmed"


def run_demo(directory: Path) -> list[DemoRow]:
    """Label, sign, audit and verify a copy of every bundled sample in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    samples = resources.files("aigclabel") / "samples"
    key, registry = demo_signing_key(), demo_registry()
    rows: list[DemoRow] = []
    with AuditStore(directory / "audit.sqlite") as store:
        options = ProduceOptions(signing_key=key, audit=store)
        for sample in sorted(samples.iterdir(), key=lambda s: s.name):
            if not sample.is_file() or sample.name.startswith("."):
                continue
            target = directory / sample.name
            with sample.open("rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            try:
                produced = label_file(target, AIGCLabel.for_producer(DEMO_PROVIDER_CODE), options=options)
                verdict = classify(target, registry=registry)
                found = next(iter(verdict.evidence), None)
                rows.append(
                    DemoRow(
                        name=sample.name,
                        format=verdict.format,
                        location=found.location if found else "-",
                        produce_id=produced.label.produce_id,
                        signature=verdict.signatures["producer"].state.value,
                        classification=verdict.classification.value,
                    )
                )
            except AIGCLabelError as exc:
                rows.append(DemoRow(sample.name, "-", "-", "-", "-", "-", error=str(exc)))
    return rows
