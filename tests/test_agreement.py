"""Measures Art. 8 (agreement clauses), Art. 9 (acceptances, label-free exports) and Art. 12 (filing
materials): generated texts, the acceptance table on a real SQLite file (migrated from the previous
head), and CLI round trips including every refusal."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from alembic import command
from typer.testing import CliRunner

from aigclabel import DEMO_PROVIDER_CODE, AIGCLabel
from aigclabel.api import write_label
from aigclabel.audit import AuditError, AuditStore
from aigclabel.cli import app
from aigclabel.compliance import ProviderConfig, clauses, filing_materials, load_provider
from aigclabel.errors import ConfigurationError
from tests.conftest import SAMPLES

runner = CliRunner()

CONFIG = """
provider_name = "示例智能科技有限公司"
producer_code = "001191440300708461136T1XGW3"
service_name = "示例助手"
watermark = true
signature = "sm2"
label_free_copies = true
retention_months = 7
[explicit]
text = ["start", "interface"]
audio = ["start"]
[implicit]
formats = ["jpeg", "png", "mp3"]
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "provider.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def _labelled_png(tmp_path: Path, name: str = "a.png") -> Path:
    image = tmp_path / name
    image.write_bytes((SAMPLES / "sample.png").read_bytes())
    write_label(image, AIGCLabel.for_producer(DEMO_PROVIDER_CODE))
    return image


# ------------------------------------------------------------------------------------ Art. 8 clauses
def test_clauses_say_what_the_configuration_says(config_file: Path) -> None:
    config = load_provider(config_file)
    zh, en = clauses(config, "zh-CN"), clauses(config, "en")
    for number in ("第八条", "第九条", "第十条"):
        assert f"《人工智能生成合成内容标识办法》{number}" in zh.body
    assert "Article 8 of the Measures" in en.body and "Article 9 of the Measures" in en.body
    for text in (zh.body, en.body):
        assert "001191440300708461136T1XGW3" in text and "SM2" in text and "7" in text
        assert "PNG image" in text and "MP4" not in text
    assert "恶意删除、篡改、伪造、隐匿" in zh.body and "主动声明" in zh.body
    assert "remove, tamper with, forge or conceal" in en.body
    assert "语音或音频节奏提示" in zh.body and "仍保留隐式标识" in zh.body
    assert zh.version != en.version and re.fullmatch(r"[0-9a-f]{64}", zh.version)
    assert f"sha256:{zh.version}" in zh.markdown()
    # Any change of configuration is a new version; without label-free copies the Art. 9 clause says so.
    other = ProviderConfig.from_dict({"provider_name": "P", "producer_code": "C", "watermark": False})
    assert "不提供无显式标识" in clauses(other).body and "不添加数字水印" in clauses(other).body
    assert clauses(other).version != zh.version


@pytest.mark.parametrize(
    ("data", "names"),
    [
        ({"producer_code": "C"}, "provider_name"),
        ({"provider_name": "P", "producer_code": "C", "explicit": {"smell": ["start"]}}, "smell"),
        ({"provider_name": "P", "producer_code": "C", "explicit": {"text": ["top"]}}, "explicit.text"),
        ({"provider_name": "P", "producer_code": "C", "implicit": {"formats": ["bmp"]}}, "bmp"),
        ({"provider_name": "P", "producer_code": "C", "retention_months": 5}, "six months"),
        ({"provider_name": "P", "producer_code": "C", "signature": "rsa"}, "signature"),
        ({"provider_name": "P", "producer_code": "C", "colour": "red"}, "colour"),
    ],
)
def test_bad_configuration_is_a_typed_error(data: dict[str, object], names: str) -> None:
    with pytest.raises(ConfigurationError, match=names):
        ProviderConfig.from_dict(data)


def test_cli_clauses_and_bad_config_file(config_file: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["agreement", "clauses", "--config", str(config_file), "--lang", "en"])
    assert result.exit_code == 0, result.output
    assert (
        result.stdout.startswith("# Labelling of AI-generated")
        and clauses(load_provider(config_file), "en").version in result.stdout
    )
    broken = tmp_path / "broken.toml"
    broken.write_text("provider_name = ", encoding="utf-8")
    result = runner.invoke(app, ["agreement", "clauses", "--config", str(broken)])
    assert (
        result.exit_code == 2
        and "not valid toml" in " ".join(result.output.split())
        and "Traceback" not in result.output
    )


# ------------------------------------------------------------------------ acceptances in the store
def test_migration_from_the_previous_head_keeps_events(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite"
    old = AuditStore(db, migrate=False)
    command.upgrade(old._alembic_config(), "0002")
    old.record_many([])  # nothing; the events table exists at 0002
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO aigclabel_events (ts, kind, detail) VALUES ('2026-01-01 00:00:00', 'label', '{}')")
        assert "aigclabel_acceptances" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    old.close()
    store = AuditStore(db)
    assert store.schema_revision() == store.head_revision() and store.head_revision() >= "0003"
    assert store.count() == 1
    first = store.record_acceptance("user-1", "A" * 64, "zh-CN")
    again = store.record_acceptance("user-1", "sha256:" + "a" * 64, "zh-CN")
    assert again == first and first.version == "a" * 64
    store.record_acceptance("user-1", "b" * 64, "en")
    assert [a.version for a in store.acceptance_of("user-1")] == ["b" * 64, "a" * 64]
    assert store.acceptance_of("nobody") == []
    with pytest.raises(AuditError, match="64 hex"):
        store.record_acceptance("user-1", "v1", "en")
    with pytest.raises(AuditError, match="user id"):
        store.record_acceptance("", "a" * 64, "en")
    store.close()
    # Read back by sqlite3 itself, not through our model.
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT user_id, version, lang FROM aigclabel_acceptances ORDER BY id").fetchall()
    assert rows == [("user-1", "a" * 64, "zh-CN"), ("user-1", "b" * 64, "en")]
    store = AuditStore(db)
    command.downgrade(store._alembic_config(), "0002")
    assert store.schema_revision() == "0002" and store.count() == 1
    store.close()


def test_cli_accept_and_list(config_file: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "a.sqlite")
    version = clauses(load_provider(config_file), "zh-CN").version
    ok = ["agreement", "accept", "--user", "u-1", "--version", version, "--config", str(config_file), "--db", db]
    result = runner.invoke(app, ok)
    assert result.exit_code == 0, result.output
    stale = ["agreement", "accept", "--user", "u-1", "--version", "f" * 64, "--config", str(config_file), "--db", db]
    result = runner.invoke(app, stale)
    assert result.exit_code == 2 and "not the current" in " ".join(result.output.split())
    listed = runner.invoke(app, ["agreement", "list", "--user", "u-1", "--db", db])
    assert listed.exit_code == 0
    [row] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (row["user"], row["version"], row["lang"]) == ("u-1", version, "zh-CN")
    assert runner.invoke(app, ["agreement", "list", "--user", "u-2", "--db", db]).exit_code == 1


# ------------------------------------------------------------------------------- Art. 9 exports
def test_record_export_refusals_and_overrides(tmp_path: Path) -> None:
    db = str(tmp_path / "a.sqlite")
    bare = tmp_path / "bare.png"
    bare.write_bytes((SAMPLES / "sample.png").read_bytes())
    labelled = _labelled_png(tmp_path)

    def export(path: Path, *extra: str) -> tuple[int, str]:
        result = runner.invoke(app, ["audit", "record-export", str(path), "--recipient", "u-1", "--db", db, *extra])
        return result.exit_code, result.output

    code, output = export(bare)
    assert code == 9 and "no implicit label" in " ".join(output.split()) and "Traceback" not in output
    code, output = export(labelled)
    assert code == 9 and "has not accepted" in " ".join(output.split())
    store = AuditStore(db)
    assert store.count("export_unlabeled") == 0
    accepted = store.record_acceptance("u-1", "c" * 64, "zh-CN")
    code, output = export(labelled, "--agreement-version", "d" * 64)
    assert code == 9 and "version" in output
    assert export(labelled)[0] == 0
    assert export(bare, "--override-no-label", "legacy archive, ticket 7")[0] == 0
    assert export(labelled, "--override-no-agreement", "court order")[0] == 0  # u-1 has one; it is used
    events = list(store.events(kinds=["export_unlabeled"]))
    assert [e.detail["acceptance_id"] for e in events] == [accepted.id] * 3
    assert events[0].detail["implicit_label"] is True and "override" not in events[0].detail
    assert events[1].detail["override"] == {"no_implicit_label": "legacy archive, ticket 7"}
    assert events[0].recipient == "u-1" and events[0].produce_id
    # A recipient with no acceptance: the override reason is what the event keeps.
    result = runner.invoke(
        app,
        ["audit", "record-export", str(labelled), "--recipient", "u-2", "--override-no-agreement", "x", "--db", db],
    )
    assert result.exit_code == 0
    last = list(store.events(kinds=["export_unlabeled"]))[-1]
    assert last.detail["override"] == {"no_agreement": "x"} and "acceptance_id" not in last.detail
    store.close()


# ------------------------------------------------------------------------------ Art. 12 filing
def test_filing_materials_with_figures(config_file: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "a.sqlite")
    labelled = _labelled_png(tmp_path)
    fresh = tmp_path / "b.png"
    fresh.write_bytes((SAMPLES / "sample.png").read_bytes())
    result = runner.invoke(app, ["label", str(fresh), "-p", DEMO_PROVIDER_CODE, "--db", db])
    assert result.exit_code == 0, result.output
    store = AuditStore(db)
    store.record_acceptance("u-1", "c" * 64, "zh-CN")
    assert (
        runner.invoke(app, ["audit", "record-export", str(labelled), "--recipient", "u-1", "--db", db]).exit_code == 0
    )
    result = runner.invoke(app, ["agreement", "filing", "--config", str(config_file), "--json", "--db", db])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [f["format"] for f in data["implicit"]] == ["jpeg", "png", "mp3"]
    assert data["implicit"][1]["location"] == "XMP TC260:AIGC in iTXt XML:com.adobe.xmp"
    assert data["signature"]["algorithm"] == "sm2" and "image" in data["watermark"]["schemes"]
    figures = data["figures"]
    assert figures["events"]["export_unlabeled"] == 1 and figures["recipients"] == 1
    assert figures["events"]["label"] == 1 and figures["formats"] == {"png": 1}
    assert (figures["acceptances"], figures["accepting_users"]) == (1, 1) and figures["period"]
    zh = runner.invoke(app, ["agreement", "filing", "--config", str(config_file), "--lang", "zh-CN", "--db", db]).stdout
    assert "《人工智能生成合成内容标识办法》第十二条" in zh and "SM3withSM2" in zh and "iTXt" in zh
    assert "- 文本: 开头、交互界面或内容周边" in zh and "| PNG image | 图片 |" in zh
    en = filing_materials(load_provider(config_file), None, "en").markdown()
    assert "Article 12 of the Measures" in en and "Figures" not in en
    store.close()


def test_clauses_need_no_audit_extra(config_file: Path) -> None:
    # A core install (no [audit]: no SQLAlchemy) generates the agreement text; only the store needs the extra.
    import subprocess
    import sys

    code = (
        "import sys; from aigclabel.compliance import clauses, filing_materials, load_provider; "
        f"c = load_provider({str(config_file)!r}); clauses(c); filing_materials(c).markdown(); "
        "print('sqlalchemy' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
