"""The command line: documented exit codes, JSON output, and file-derived text shown verbatim."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from aigclabel import DEMO_PROVIDER_CODE, errors, inspect
from aigclabel.audit import AuditStore
from aigclabel.cli import app
from aigclabel.cli.exit_codes import ERROR_MEANINGS, EXIT_CODES, markdown

from .conftest import SAMPLES

runner = CliRunner()


def test_label_inspect_strip_cycle_and_exit_codes(tmp_path: Path) -> None:
    photo = tmp_path / "p.jpg"
    shutil.copy(SAMPLES / "sample.jpg", photo)
    assert runner.invoke(app, ["inspect", str(photo)]).exit_code == 1, "no label yet"
    done = runner.invoke(app, ["label", str(photo), "--producer", DEMO_PROVIDER_CODE, "--produce-id", "[b]id[/b]"])
    assert done.exit_code == 0, done.output
    assert "[b]id[/b]" in done.output, "file-derived text is printed verbatim, not as markup"
    shown = runner.invoke(app, ["inspect", str(photo)])
    assert shown.exit_code == 0 and "[b]id[/b]" in shown.output
    data = json.loads(runner.invoke(app, ["inspect", "--json", str(photo)]).output)
    assert data[0]["labels"][0]["fields"]["ProduceID"] == "[b]id[/b]"
    clean = tmp_path / "clean.jpg"
    db = str(tmp_path / "audit.sqlite")
    refused = runner.invoke(app, ["strip", str(photo), "-o", str(clean), "--db", db])
    assert refused.exit_code == 9 and not clean.exists(), "an unsigned label is not provably ours (Art. 10)"
    forced = ["--force-remove-label", "--reason", "cycle test", "--db", db]
    assert runner.invoke(app, ["strip", str(photo), "-o", str(clean), *forced]).exit_code == 0
    assert inspect(clean).labels == [] and inspect(photo).ok


def test_error_exit_codes(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"definitely not media" * 10)
    broken = tmp_path / "broken.png"
    broken.write_bytes((SAMPLES / "sample.png").read_bytes()[:70])
    photo = tmp_path / "ok.png"
    shutil.copy(SAMPLES / "sample.png", photo)
    assert runner.invoke(app, ["inspect", str(junk)]).exit_code == 3
    assert runner.invoke(app, ["label", str(broken), "-p", DEMO_PROVIDER_CODE]).exit_code == 4
    assert broken.read_bytes() == (SAMPLES / "sample.png").read_bytes()[:70], "input untouched"
    assert runner.invoke(app, ["label", str(photo), "-p", "has space"]).exit_code == 5
    assert runner.invoke(app, ["label", str(photo)]).exit_code == 2, "missing --producer is a usage error"
    mixed = runner.invoke(app, ["inspect", "--json", str(photo), str(junk)])
    assert mixed.exit_code == 3
    assert {row.get("error") is not None for row in json.loads(mixed.output)} == {True, False}


def test_exit_code_table_covers_every_error_class_and_is_the_readme_and_help_table() -> None:
    """One table: every error class's code is in it, the README shows it as it is, ``--help`` prints it."""
    described = {cls for cls, _ in ERROR_MEANINGS}
    for cls in vars(errors).values():
        if not (isinstance(cls, type) and issubclass(cls, errors.AIGCLabelError)) or cls is errors.AIGCLabelError:
            continue
        if cls.exit_code == errors.AIGCLabelError.exit_code:
            continue  # the base class's code: raised by the service only (RequestTooLargeError), never the CLI
        assert cls.exit_code in EXIT_CODES, cls
        parent = next(base for base in cls.__mro__[1:] if issubclass(base, errors.AIGCLabelError))
        if cls.exit_code != parent.exit_code:
            assert cls in described, f"{cls.__name__} sets exit code {cls.exit_code}: say what it means"
    assert markdown() in (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    shown = " ".join(runner.invoke(app, ["--help"], terminal_width=200).output.split())
    for code, meaning in EXIT_CODES.items():
        assert f"{code} {meaning}" in shown, code


def test_formats_lists_every_family() -> None:
    listing = runner.invoke(app, ["formats"]).output
    for name in ("jpeg", "png", "mp3", "wav", "mp4", "pdf", "ooxml"):
        assert name in listing


def test_demo_labels_every_bundled_sample(tmp_path: Path) -> None:
    done = runner.invoke(app, ["demo", "--dir", str(tmp_path / "demo")])
    assert done.exit_code == 0, done.output
    samples = [p for p in SAMPLES.iterdir() if p.is_file()]
    assert len(samples) >= 16, "images, audio, video and documents are all bundled"
    assert all(inspect(tmp_path / "demo" / p.name).ok for p in samples)
    assert f"{len(samples)} of {len(samples)} sample files labelled, signed" in done.output
    with AuditStore(tmp_path / "demo" / "audit.sqlite") as store:
        assert store.count("label") == len(samples)


def test_label_with_every_layer_is_audited(tmp_path: Path) -> None:
    photo = tmp_path / "p.png"
    shutil.copy(SAMPLES / "sample.png", photo)
    db = tmp_path / "audit.sqlite"
    args = ["label", str(photo), "-p", DEMO_PROVIDER_CODE, "--produce-id", "cli-layers", "--demo-key", "--watermark"]
    done = runner.invoke(app, [*args, "--c2pa", "--db", str(db)])
    assert done.exit_code == 0, done.output
    assert "(watermark, signed, c2pa, audited)" in done.output
    traced = runner.invoke(app, ["audit", "trace", "--db", str(db), "--produce-id", "cli-layers"])
    assert traced.exit_code == 0, traced.output
    assert [json.loads(line)["kind"] for line in traced.output.splitlines()] == ["label"]
    shown = runner.invoke(app, ["inspect", "--json", "--watermark", "--c2pa", str(photo)])
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.output)[0]
    assert report["watermark"]["present"] and report["c2pa"]["ai_source_types"] == ["trainedAlgorithmicMedia"]
