"""Simplified Chinese and English for what people read: the compliance report, the CLI's summaries, the page.

The users are Chinese providers, platforms and regulators, so Chinese comes first wherever a language is
chosen for them: ``--lang`` on the command line, then ``AIGCLABEL_LANG``, then the locale
(``LC_ALL``, ``LC_MESSAGES``, ``LANG``); the web page follows the browser. Clause names are written the
way the standard and the Measures write them (GB 45438—2025 第5.2条; 《人工智能生成合成内容标识办法》第四条).
Rule ids, JSON keys and statuses in machine output stay English: programs read those.
"""

from __future__ import annotations

import os
import re
from typing import Literal

Lang = Literal["zh-CN", "en"]
LANGS: tuple[Lang, ...] = ("zh-CN", "en")
#: Environment variable that sets the language without a ``--lang``.
LANG_ENV = "AIGCLABEL_LANG"


def resolve_lang(explicit: str | None = None) -> Lang:
    """The language to speak: ``explicit`` if given, else ``AIGCLABEL_LANG``, else the POSIX locale."""
    for value in (explicit, os.environ.get(LANG_ENV), *(os.environ.get(v) for v in ("LC_ALL", "LC_MESSAGES", "LANG"))):
        if value:
            return "zh-CN" if value.lower().replace("_", "-").startswith("zh") else "en"
    return "en"


#: Compliance-report rule titles in Chinese, by rule id (the English title is the rule's own).
RULE_TITLES_ZH: dict[str, str] = {
    "implicit-label": "文件元数据中存在符合要求的隐式标识",
    "text-label": "文本显式标识含“人工智能”和“生成/合成”两要素",
    "label-size": "文字高度不低于画面最短边的5%",
    "image-label": "图片边缘或角落有显式标识",
    "label-text": "标识文字含“人工智能”和“生成/合成”两要素",
    "label-position": "标识位于画面边缘或角落",
    "audio-label": "语音标识或“短长短短”节奏标识",
    "video-label": "视频起始画面有显式标识",
    "video-label-duration": "起始画面标识持续不少于2秒",
    "readable": "文件可被分析",
}

STATUS_ZH: dict[str, str] = {
    "pass": "通过",
    "fail": "不通过",
    "error": "错误",
    "warning": "警告",
    "review": "需人工复核",
    "skipped": "未检查",
}

_NUMERALS = "零一二三四五六七八九十"


def _chinese_number(n: int) -> str:
    if n <= 10:
        return _NUMERALS[n]
    tens, ones = divmod(n, 10)
    return ("" if tens == 1 else _NUMERALS[tens]) + "十" + (_NUMERALS[ones] if ones else "")


def clause_zh(clause: str) -> str:
    """A clause reference as the Chinese texts write it: ``GB 45438 §5.2`` → ``GB 45438—2025 第5.2条``,
    ``Measures Art. 4(1)(1)`` → ``《人工智能生成合成内容标识办法》第四条第一款第（一）项``."""

    def article(match: re.Match[str]) -> str:
        text = f"《人工智能生成合成内容标识办法》第{_chinese_number(int(match[1]))}条"
        if match[2]:
            text += f"第{_chinese_number(int(match[2]))}款"
        if match[3]:
            text += f"第（{_chinese_number(int(match[3]))}）项"
        return text

    clause = re.sub(r"Measures Art\. (\d+)(?:\((\d+)\))?(?:\((\d+)\))?", article, clause)
    clause = re.sub(r"GB 45438 §(\d+(?:\.\d+)*)", r"GB 45438—2025 第\1条", clause)
    return clause.replace("Annex E", "附录E").replace("; ", "；").replace(", ", "、")


#: The first line of each command's help in Chinese (the English help follows it), by command path.
COMMAND_HELP_ZH: dict[str, str] = {
    "label": "写入 GB 45438—2025 文件元数据隐式标识（第6.1条、附录E）。",
    "strip": "删除隐式标识：仅限可证明属于本方的标识（《办法》第十条）。",
    "mark": "添加显式标识：文字、图片、音频、视频、虚拟场景（第5.1—5.5条）。",
    "voice-turn": "为语音助手的每轮对话添加音频标识（第5.3条注3），PCM 流式输入输出。",
    "sign": "为隐式标识签名（ReservedCode1/2），绑定内容摘要。",
    "inspect": "查看文件中的全部隐式标识及其是否符合附录E。",
    "verify": "平台核验（《办法》第六条）：确认、可能、疑似。",
    "check": "合规检查报告：逐文件、逐条款（GB 45438—2025）。",
    "audit": "审计日志：追溯、导出、保存期限、第九条无显式标识副本记录。",
    "keys": "签名密钥与服务提供者编码—公钥登记。",
    "agreement": "用户协议标识条款（《办法》第八条）、用户接受记录（第九条）与算法备案标识材料（第十二条）。",
    "formats": "列出可读写的文件格式。",
    "recover": "回滚被中断的原地写入。",
    "demo": "演示：标识、签名并核验随附样例。",
    "batch": "批量处理目录下的全部文件。",
    "serve": "启动 HTTP 服务与网页。",
    "gateway": "在 OpenAI 兼容服务前运行标识网关。",
    "watermark": "隐式水印（图片、音频、文本）。",
    "likeness": "肖像与声音保护：登记、同意记录（签名哈希链）、生成前审核、平台比对与人工复核。",
}

#: Fixed strings of the reports and the CLI, by key.
_TEXT: dict[str, dict[Lang, str]] = {
    "report.title": {"zh-CN": "aigclabel 合规检查报告", "en": "aigclabel compliance report"},
    "report.summary": {"zh-CN": "{ok}/{total} 个文件合规。", "en": "{ok} of {total} files compliant."},
    "report.compliant": {"zh-CN": "合规", "en": "compliant"},
    "report.not_compliant": {"zh-CN": "不合规", "en": "NOT compliant"},
    "report.needs_review": {"zh-CN": "（需人工复核）", "en": " (needs human review)"},
    "report.rule": {"zh-CN": "规则", "en": "rule"},
    "report.clause": {"zh-CN": "条款", "en": "clause"},
    "report.status": {"zh-CN": "结果", "en": "status"},
    "report.detail": {"zh-CN": "说明", "en": "detail"},
    "report.thumbnail": {"zh-CN": "{path} 的缩略图", "en": "thumbnail of {path}"},
    "cli.error": {"zh-CN": "错误", "en": "error"},
    "cli.app": {
        "zh-CN": "按 GB 45438—2025 为人工智能生成合成内容添加标识并核验标识。",
        "en": "Label AI-generated content per GB 45438-2025 and verify those labels.",
    },
}


def text(key: str, lang: Lang, **values: object) -> str:
    """The string ``key`` in ``lang``, formatted with ``values``."""
    return _TEXT[key][lang].format(**values)


def rule_title(rule: str, title: str, lang: Lang) -> str:
    """A rule's title in ``lang`` (its own English title when no translation exists)."""
    return RULE_TITLES_ZH.get(rule, title) if lang == "zh-CN" else title


def status_name(status: str, lang: Lang) -> str:
    """A rule status in ``lang``."""
    return STATUS_ZH.get(status, status) if lang == "zh-CN" else status


def clause_name(clause: str, lang: Lang) -> str:
    """A clause reference in ``lang``."""
    return clause_zh(clause) if lang == "zh-CN" else clause
