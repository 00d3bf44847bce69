"""The CLI imports only what a command needs: reading or labelling a JPEG loads no numpy, pikepdf or PyAV.

Each command runs in a fresh interpreter (``python -m aigclabel`` through :mod:`runpy`), which then
reports which heavy packages ended up in ``sys.modules``. The timing itself is measured by ``bench/cli.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aigclabel import DEMO_PROVIDER_CODE
from tests.conftest import SAMPLES

ROOT = Path(__file__).resolve().parent.parent
#: Packages that cost tens of milliseconds each to import and that no JPEG command needs (Typer would
#: import Pydantic to convert arguments; aigclabel.cli._params converts them without it).
HEAVY = ("numpy", "pikepdf", "av", "cv2", "scipy", "PIL", "sqlalchemy", "pydantic", "mutagen")
MARK = "imports-probe:"

PROBE = f"""
import gc, json, runpy, sys
sys.argv = ["aigclabel", *sys.argv[1:]]
code = 0
try:
    runpy.run_module("aigclabel", run_name="__main__", alter_sys=True)
except SystemExit as exit:
    code = exit.code
gc_state = {{"enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}}
if "rich.table" in sys.modules:  # Rich's objects frozen: not among those the collector walks
    gc_state["rich_frozen"] = all(id(o) != id(sys.modules["rich.table"].__dict__) for o in gc.get_objects())
sys.stderr.write("\\n{MARK}" + json.dumps({{"code": code, "modules": sorted(sys.modules), "gc": gc_state}}) + "\\n")
"""


def run_cli(*args: str) -> tuple[int, list[str], str]:
    """Run ``aigclabel ARGS`` in a fresh interpreter: (exit code, heavy top-level packages imported, stdout)."""
    code, modules, stdout = probe(*args)
    return code, sorted({name.split(".")[0] for name in modules} & {*HEAVY, "rich"}), stdout


def probe(*args: str) -> tuple[int, list[str], str]:
    """Run ``aigclabel ARGS`` in a fresh interpreter: (exit code, every module imported, stdout)."""
    code, modules, stdout, _gc = _probe_gc(*args)
    return code, modules, stdout


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def _probe_gc(*args: str) -> tuple[int, list[str], str, dict[str, Any]]:
    """:func:`probe`, and the garbage collector's state when the command has finished."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=_env(), timeout=120, check=False
    )
    lines = [line for line in done.stderr.splitlines() if line.startswith(MARK)]
    assert lines, f"the probe did not finish: {done.stderr}"
    report = json.loads(lines[-1].removeprefix(MARK))
    return report["code"], report["modules"], done.stdout, report["gc"]


def ours(modules: list[str]) -> list[str]:
    """The command and format modules among ``modules``."""
    return [name for name in modules if name.startswith(("aigclabel.cli.", "aigclabel.containers."))]


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample JPEG labelled by ``aigclabel label`` (run under the probe: it must stay light too)."""
    out = tmp_path_factory.mktemp("cli-imports") / "labelled.jpg"
    code, loaded, stdout = run_cli("label", str(SAMPLES / "sample.jpg"), "-o", str(out), "-p", DEMO_PROVIDER_CODE)
    assert code == 0 and stdout.startswith(f"labelled {out}"), stdout
    assert loaded == [], f"`aigclabel label` on a JPEG imported {loaded}"
    return out


def test_label_jpeg_imports_nothing_heavy(labelled: Path) -> None:
    assert labelled.read_bytes()[:2] == b"\xff\xd8"


def test_inspect_json_jpeg_imports_nothing_heavy(labelled: Path) -> None:
    code, loaded, stdout = run_cli("inspect", "--json", str(labelled))
    assert code == 0
    [report] = json.loads(stdout)
    assert report["format"] == "jpeg" and report["ok"] and len(report["labels"]) == 1
    assert loaded == [], f"`aigclabel inspect --json` on a JPEG imported {loaded}"


def test_one_file_commands_import_one_command_module_and_their_format_modules(labelled: Path, tmp_path: Path) -> None:
    """Only the module of the command run is imported, and only the format modules tried before the file's."""
    common = ["aigclabel.cli._common", "aigclabel.cli._console", "aigclabel.cli._lazy", "aigclabel.cli._params"]
    common += ["aigclabel.cli.exit_codes"]
    jpeg = ["aigclabel.containers._stream", "aigclabel.containers.jpeg"]
    code, modules, _stdout = probe("inspect", "--json", str(labelled))
    assert code == 0 and ours(modules) == sorted([*common, "aigclabel.cli.platform", *jpeg])
    png = tmp_path / "labelled.png"
    code, modules, _stdout = probe("label", str(SAMPLES / "sample.png"), "-o", str(png), "-p", DEMO_PROVIDER_CODE)
    assert code == 0 and ours(modules) == sorted([*common, "aigclabel.cli.producer", *jpeg, "aigclabel.containers.png"])


def test_one_file_commands_leave_out_what_only_other_paths_use(labelled: Path, tmp_path: Path) -> None:
    """Reading a label needs no ElementTree (expat reads it), no digest, no signing stack; writing one
    takes a temporary name (hashlib, socket) but no more."""
    unused = ("xml.etree", "defusedxml", "secrets", "aigclabel.signing", "aigclabel.audit")
    code, modules, _stdout = probe("inspect", "--json", str(labelled))
    assert code == 0
    assert [name for name in modules if name.startswith((*unused, "hashlib", "socket"))] == []
    out = tmp_path / "again.jpg"
    code, modules, _stdout = probe("label", str(labelled), "-o", str(out), "-p", DEMO_PROVIDER_CODE)
    assert code == 0 and [name for name in modules if name.startswith(unused)] == []


def test_inspect_table_jpeg_imports_no_numpy_pikepdf_or_av(labelled: Path) -> None:
    code, loaded, stdout = run_cli("inspect", str(labelled))
    assert code == 0 and "conforms" in stdout and DEMO_PROVIDER_CODE in stdout
    assert loaded == ["rich"], f"`aigclabel inspect` on a JPEG imported {loaded} (only Rich draws its table)"


def test_inspect_table_loads_no_emoji_table(labelled: Path) -> None:
    """The table's words are Rich ``Text``, not strings: Rich's emoji-code pass (and its 1.5 ms table of
    emoji names) never runs, and a ``:name:`` in a label stays as written."""
    code, modules, stdout = probe("inspect", str(labelled))
    assert code == 0 and "ContentProducer" in stdout
    assert "rich._emoji_codes" not in modules and "rich.table" in modules


def test_inspect_table_loads_only_the_rich_modules_a_table_needs(labelled: Path) -> None:
    """Drawing the table loads what Rich's console, table and text modules import and nothing more (no
    pretty-printer, traceback, markdown, progress or emoji names), with the collector paused so the
    command's collections skip them (:func:`aigclabel.cli._console.load_rich`)."""
    code = "import json, sys, rich.console, rich.table, rich.text; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=_env())
    needed = [name for name in json.loads(done.stdout) if name.startswith("rich.")]
    exit_code, modules, stdout, gc_state = _probe_gc("inspect", str(labelled))
    assert exit_code == 0 and "ContentProducer" in stdout
    assert [name for name in modules if name.startswith("rich.")] == needed
    assert gc_state["enabled"] and gc_state["rich_frozen"], gc_state


def test_package_import_is_lazy_and_start_up_objects_are_frozen(labelled: Path) -> None:
    """``import aigclabel`` imports no submodule (its names load on first use), so ``python -m aigclabel``
    can turn the garbage collector off before the command line's imports; the command then runs with
    the collector back on and what start-up made frozen (later collections skip it)."""
    code = "import sys, aigclabel; print(sorted(m for m in sys.modules if m.startswith('aigclabel.')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=_env())
    assert done.stdout.strip() == "[]"
    for args in (("inspect", str(labelled)), ("inspect", "--json", str(labelled))):
        exit_code, _modules, _stdout, gc_state = _probe_gc(*args)
        assert exit_code == 0 and gc_state["enabled"] and gc_state["frozen"] > 10_000, gc_state
    exit_code, _modules, stdout, gc_state = _probe_gc("--help")  # no command runs: the collector is back on
    assert exit_code == 0 and "inspect" in stdout and gc_state["enabled"], gc_state


def test_arguments_converted_without_pydantic_keep_typer_checks(tmp_path: Path) -> None:
    """Values and refusals of the converted parameters: paths checked, enum values chosen, others Typer's."""
    from typer.testing import CliRunner

    from aigclabel import inspect
    from aigclabel.cli import app

    runner = CliRunner()
    photo = tmp_path / "p.jpg"
    photo.write_bytes((SAMPLES / "sample.jpg").read_bytes())
    out = tmp_path / "out.jpg"
    done = runner.invoke(app, ["label", str(photo), "-p", DEMO_PROVIDER_CODE, "-o", str(out), "--label", "3"])
    assert done.exit_code == 0, done.output
    found = inspect(out).labels[0].label
    assert found is not None and found.label == "3" and found.content_producer == DEMO_PROVIDER_CODE
    refused = {
        "missing file": (["inspect", str(tmp_path / "nope.jpg")], "does not exist"),
        "directory": (["inspect", str(tmp_path)], "is a directory"),
        "bad enum value": (["label", str(photo), "-p", DEMO_PROVIDER_CODE, "--label", "7"], "'7' is not one of"),
        "int option (Typer's own converter)": (["batch", "inspect", str(tmp_path), "--workers", "x"], "integer"),
    }
    for case, (args, message) in refused.items():
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and message in result.output, (case, result.output)


def test_command_table_names_every_command_of_every_module_in_help_order() -> None:
    """``aigclabel.cli.COMMANDS`` (which module to import for a command) agrees with what the modules
    register, in the order ``--help`` listed them when every module was imported at start."""
    import importlib
    import pkgutil

    import typer

    from aigclabel import cli

    registered: dict[str, list[str]] = {}
    in_order: dict[str, list[str]] = {}
    for info in pkgutil.iter_modules(cli.__path__):
        module = importlib.import_module(f"aigclabel.cli.{info.name}")
        app = getattr(module, "app", None)
        if info.name.startswith("_") or not isinstance(app, typer.Typer):
            continue
        names = [cli._command_name(c) for c in app.registered_commands] + [g.name or "" for g in app.registered_groups]
        in_order[info.name] = names
        for name in [*names, *(["watermark"] if hasattr(module, "watermark_app") else [])]:
            registered.setdefault(name, []).append(info.name)
    assert registered == {name: sorted(modules) for name, modules in cli.COMMANDS.items()}
    audiences = ("producer", "platform", "audit", "operations", "likeness")
    assert sorted(in_order) == sorted(audiences)
    assert list(cli.COMMANDS) == [name for module in audiences for name in in_order[module]] + ["watermark"]
    assert list(typer.main.get_command(cli.app).commands) == list(cli.COMMANDS)
