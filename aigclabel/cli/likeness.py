"""Commands protecting a person's face and voice (Civil Code Art. 1019, 1023; Deep Synthesis Provisions
Art. 14, 17): ``likeness ...``. ``likeness evidence make/verify`` writes and checks the signed evidence
package (:mod:`aigclabel.likeness.evidence`).
"""

# No `from __future__ import annotations`: Typer reads the signature of every command on each run.

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import AIGCLabelError
from ._common import DbOption, fail, optional_store, out, signing_key
from .exit_codes import LABEL_PROBLEM

likeness_app = typer.Typer(
    help="Likeness protection: enrol faces and voices, record consent, gate edits, scan uploads, review.",
    no_args_is_help=True,
)
evidence_app = typer.Typer(
    help="Evidence packages: one signed ZIP of a file's hashes, labels, signatures, watermark trace and audit records.",
    no_args_is_help=True,
)


@evidence_app.command("make")
def evidence_make(
    file: Annotated[Path, typer.Argument(help="The file the evidence is about.", exists=True, dir_okay=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="The ZIP to write.")],
    person: Annotated[str | None, typer.Option("--person", help="The person (registry id) it concerns.")] = None,
    include_file: Annotated[
        bool, typer.Option("--include-file", help="Put the file itself in the package (personal data!).")
    ] = False,
    key: Annotated[
        Path | None, typer.Option("--key", help="Private key file that signs the manifest (default: DEMO key).")
    ] = None,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """Write FILE's evidence package: hashes, labels, signatures, watermark trace, audit excerpts, signed."""
    import os
    import zipfile

    from ..audit import DB_ENV
    from ..likeness.evidence import MANIFEST, make_evidence

    try:
        store = optional_store(db or os.environ.get(DB_ENV))
        made = make_evidence(file, person, store, signing_key(key, demo=True), output=output, include_file=include_file)
    except AIGCLabelError as exc:
        fail(exc)
    with zipfile.ZipFile(made) as archive:
        manifest = json.loads(archive.read(MANIFEST))
    if as_json:
        sys.stdout.write(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
        return
    signer = manifest["signer"]
    demo = " (DEMO key: integrity only)" if signer["demo"] else ""
    typer.echo(f"{made}: {len(manifest['members'])} members, signed by {signer['key_id']}{demo}")


@evidence_app.command("verify")
def evidence_verify(
    package: Annotated[Path, typer.Argument(help="The evidence ZIP.", exists=True, dir_okay=False)],
    keys: Annotated[
        list[Path] | None, typer.Option("--keys", help="Key registry file (JSON or TOML); repeatable.")
    ] = None,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check every member's hash and the manifest's signature; exit 1 when anything is wrong.

    The DEMO keys are always known (unpinned: a package they signed verifies with a warning)."""
    import os

    from rich.text import Text

    from ..audit import DB_ENV
    from ..likeness.evidence import verify_evidence
    from .platform import _registry

    try:
        registry = _registry(keys, True, db, use_db=bool(db or os.environ.get(DB_ENV)))
        report = verify_evidence(package, registry)
    except AIGCLabelError as exc:
        fail(exc)
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n")
    else:
        state = ("OK", "green") if report.ok else ("NOT VALID", "bold red")
        out.print(Text.assemble(f"{package}: ", state), highlight=False)
        for problem in report.problems:
            out.print(Text(f"  {problem.severity}: {problem.code}: {problem.message}"), highlight=False)
    if not report.ok:
        raise typer.Exit(LABEL_PROBLEM)


likeness_app.add_typer(evidence_app, name="evidence")

app = typer.Typer()
app.add_typer(likeness_app, name="likeness")
