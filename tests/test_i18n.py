"""Chinese and English for people: language choice, clause names as the texts write them, the HTML report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aigclabel.check import check_file, to_html
from aigclabel.i18n import RULE_TITLES_ZH, clause_zh, resolve_lang

from .conftest import SAMPLES


def test_language_comes_from_the_option_then_the_environment_then_the_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AIGCLABEL_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    assert resolve_lang() == "en"
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    assert resolve_lang() == "zh-CN"
    monkeypatch.setenv("AIGCLABEL_LANG", "en")
    assert resolve_lang() == "en" and resolve_lang("zh-CN") == "zh-CN"


def test_clause_names_as_the_standard_and_the_measures_write_them() -> None:
    assert clause_zh("GB 45438 §6.1, Annex E") == "GB 45438—2025 第6.1条、附录E"
    assert clause_zh("GB 45438 §5.1; Measures Art. 4(1)(1)") == (
        "GB 45438—2025 第5.1条；《人工智能生成合成内容标识办法》第四条第一款第（一）项"
    )
    assert clause_zh("Measures Art. 10") == "《人工智能生成合成内容标识办法》第十条"


def test_html_report_in_chinese_translates_every_rule(tmp_path: Path) -> None:
    report = check_file(SAMPLES / "sample.jpg", ocr=False)
    page = to_html([report], "zh-CN")
    assert '<html lang="zh-CN">' in page and "aigclabel 合规检查报告" in page and "0/1 个文件合规" in page
    for rule in report.rules:
        assert rule.rule in RULE_TITLES_ZH, f"rule {rule.rule} has no Chinese title"
        assert RULE_TITLES_ZH[rule.rule] in page
    assert "不通过" in page and "GB 45438—2025 第" in page
    assert "aigclabel compliance report" in to_html([report])  # English stays the library default


def test_cli_speaks_the_language_it_is_asked_for(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "aigclabel"]
    chinese = subprocess.run([*run, "--lang", "zh-CN", "--help"], capture_output=True, text=True, check=True)
    assert "按 GB 45438—2025 为人工智能生成合成内容添加标识" in chinese.stdout and "写入 GB 45438" in chinese.stdout
    english = subprocess.run([*run, "--help"], capture_output=True, text=True, check=True, env={"LANG": "C"})
    assert "写入" not in english.stdout
    missing = subprocess.run([*run, "inspect", str(tmp_path / "none.jpg")], capture_output=True, text=True,
                             env={"AIGCLABEL_LANG": "zh-CN", "PATH": ""})  # fmt: skip
    assert missing.returncode != 0
    report = tmp_path / "r.html"
    subprocess.run([*run, "--lang", "zh-CN", "check", "--no-ocr", str(SAMPLES / "sample.jpg"), "--html", str(report)],
                   capture_output=True)  # fmt: skip
    assert "合规检查报告" in report.read_text(encoding="utf-8")
