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
    """Only the module of the command run is imported, and only the format modules tried before the file's;
    a plain ``inspect`` imports no Typer and no command module (:mod:`aigclabel.cli._inspect`)."""
    jpeg = ["aigclabel.containers._stream", "aigclabel.containers.jpeg"]
    code, modules, _stdout = probe("inspect", "--json", str(labelled))
    plain = ["aigclabel.cli._console", "aigclabel.cli._inspect", "aigclabel.cli.exit_codes"]
    assert code == 0 and ours(modules) == sorted([*plain, *jpeg])
    assert [name for name in modules if name.startswith(("typer", "click"))] == []
    png = tmp_path / "labelled.png"
    code, modules, _stdout = probe("label", str(SAMPLES / "sample.png"), "-o", str(png), "-p", DEMO_PROVIDER_CODE)
    typer_path = ["aigclabel.cli._common", "aigclabel.cli._console", "aigclabel.cli._lazy", "aigclabel.cli._params"]
    typer_path += ["aigclabel.cli._root", "aigclabel.cli.exit_codes"]
    typer_path += ["aigclabel.cli.producer", *jpeg, "aigclabel.containers.png"]
    assert code == 0 and ours(modules) == sorted(typer_path)


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
        names = [cli._root._command_name(c) for c in app.registered_commands] + [
            g.name or "" for g in app.registered_groups
        ]
        in_order[info.name] = names
        for name in [*names, *(["watermark"] if hasattr(module, "watermark_app") else [])]:
            registered.setdefault(name, []).append(info.name)
    assert registered == {name: sorted(modules) for name, modules in cli.COMMANDS.items()}
    audiences = ("producer", "platform", "audit", "operations", "likeness")
    assert sorted(in_order) == sorted(audiences)
    assert list(cli.COMMANDS) == [name for module in audiences for name in in_order[module]] + ["watermark"]
    assert list(typer.main.get_command(cli.app).commands) == list(cli.COMMANDS)


#: ``aigclabel ARGS`` through Typer whatever the arguments: what ``main`` ran before the plain path existed.
THROUGH_TYPER = "import sys; from aigclabel.cli import _root; sys.argv[0] = 'aigclabel'; _root.run()"


def _run(prefix: list[str], args: list[str], env: dict[str, str]) -> tuple[int, bytes, bytes]:
    done = subprocess.run([*prefix, *args], capture_output=True, env=env, timeout=120, check=False)
    return done.returncode, done.stdout, done.stderr


def test_plain_inspect_prints_what_typer_prints(labelled: Path, tmp_path: Path) -> None:
    """``inspect [--json] FILE...`` run without Typer gives the same bytes on both streams and the same exit
    code as through Typer: labelled, unlabelled, cut-short and unreadable-as-media files, names with spaces
    and CJK, styled and plain, table and JSON, in several orders."""
    from aigclabel.cli._inspect import plain_inspect

    cut = tmp_path / "cut short.jpg"
    cut.write_bytes(labelled.read_bytes()[:300])
    chinese = tmp_path / "标注 样本.png"
    chinese.write_bytes((SAMPLES / "sample.png").read_bytes())
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\xff" * 64)
    files = [
        str(labelled),
        str(cut),
        str(chinese),
        str(garbage),
        str(SAMPLES / "sample.txt"),
        str(SAMPLES / "sample.mp3"),
    ]
    cases = [[labelled.as_posix()], files, [*files[:3], "--json"], ["--json", *files[::-1]], files[1:2], files[2:3]]
    for colour in ({"NO_COLOR": "1"}, {"FORCE_COLOR": "1", "COLUMNS": "100"}):
        env = {**_env(), **colour}
        env.pop("TERM", None)
        for case in cases:
            args = ["inspect", *case]
            assert plain_inspect(args) is not None, args
            plain = _run([sys.executable, "-m", "aigclabel"], args, env)
            typer = _run([sys.executable, "-c", THROUGH_TYPER], args, env)
            assert plain == typer, (args, colour)
            assert plain[1] or plain[2]  # something was printed: the comparison is not of two empty runs
    codes = {_run([sys.executable, "-m", "aigclabel"], ["inspect", name], _env())[0] for name in files}
    assert {0, 1} < codes and len(codes) >= 3, codes  # conforms, no label, and at least one typed error


def test_inspect_forms_with_more_to_parse_go_through_typer(labelled: Path, tmp_path: Path) -> None:
    """Any other option, a word starting with ``-``, or a file Typer would refuse is Typer's to parse and
    word: the plain form declines it, and the command answers as before (usage error 2, or the option done)."""
    from aigclabel.cli._inspect import plain_inspect

    folder, missing, dangling = tmp_path / "folder", tmp_path / "nope.jpg", tmp_path / "dangling.jpg"
    folder.mkdir()
    dangling.symlink_to(missing)
    name = str(labelled)
    declined = {
        "no file": (["inspect"], 2),
        "only --json": (["inspect", "--json"], 2),
        "help": (["inspect", "--help"], 0),
        "other option": (["inspect", "--c2pa", name], 0),
        "unknown option": (["inspect", "--jsn", name], 2),
        "separator": (["inspect", "--", name], 0),
        "missing": (["inspect", str(missing)], 2),
        "dangling link": (["inspect", str(dangling)], 2),
        "directory": (["inspect", str(folder)], 2),
        "root option first": (["--lang", "en", "inspect", name], 0),
    }
    for case, (args, code) in declined.items():
        assert plain_inspect(args) is None, case
        exit_code, modules, _stdout = probe(*args)
        assert exit_code == code and "typer" in {m.split(".")[0] for m in modules}, (case, exit_code)
