"""The generation-side pipeline: every layer present, each still valid after the ones that follow."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from aigclabel import DEMO_PROVIDER_CODE, AIGCLabel, MalformedFileError, inspect
from aigclabel.audit import AuditStore
from aigclabel.c2pa_manifest import C2PACredentials, read_manifest
from aigclabel.produce import ProduceOptions, label_file
from aigclabel.signing import SignatureState, demo_registry, demo_signing_key
from aigclabel.verify import Classification, classify
from aigclabel.watermark import DEMO_KEY, detect_file

from .conftest import SAMPLES


@pytest.mark.parametrize("name", ["sample.png", "sample.jpg"])
def test_all_layers_survive_each_other(tmp_path: Path, name: str) -> None:
    src = tmp_path / name
    shutil.copy(SAMPLES / name, src)
    before = src.read_bytes()
    label = AIGCLabel.for_producer(DEMO_PROVIDER_CODE, "produce-all-layers")
    with AuditStore(tmp_path / "audit.sqlite") as store:
        options = ProduceOptions(
            signing_key=demo_signing_key(), watermark_key=DEMO_KEY, c2pa=C2PACredentials.demo(), audit=store
        )
        result = label_file(src, label, tmp_path / f"out-{name}", options)
        assert src.read_bytes() == before, "the input is never modified"
        out = result.path
        assert inspect(out).ok and inspect(out).label == result.label
        verdict = classify(out, registry=demo_registry())
        assert verdict.classification is Classification.CONFIRMED
        assert verdict.signatures["producer"].state is SignatureState.VALID
        mark = detect_file(out, key=DEMO_KEY)
        assert mark is not None and mark.present and mark.matches("produce-all-layers")
        manifest = read_manifest(out, anchors_pem=C2PACredentials.demo().anchors_pem)
        assert manifest.validation_state == "Trusted" and manifest.gb_label == result.label
        traced = store.trace(watermark_payload=result.watermark_payload)
        assert [e.produce_id for e in traced] == ["produce-all-layers"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, f"out-{name}", "audit.sqlite"]), "no leftovers"


def test_failure_leaves_no_output_and_no_stage_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes((SAMPLES / "sample.png").read_bytes()[:200])
    with pytest.raises(MalformedFileError):
        label_file(broken, AIGCLabel.for_producer(DEMO_PROVIDER_CODE), tmp_path / "out.png")
    assert os.listdir(tmp_path) == ["broken.png"]
