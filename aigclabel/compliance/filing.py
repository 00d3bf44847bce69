"""The labelling part of the algorithm-filing (备案) and security-assessment materials (Measures Art. 12).

Built from the provider configuration (which labels, where, which watermark and signature schemes,
retention) and, when given, the audit store (what was actually done: events per kind, formats
labelled, label-free exports, agreement acceptances, and the period they cover).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..containers import MediaKind, container_for_suffix, registered
from ..i18n import Lang
from .agreement import MEDIA_NAMES, STANDARD_EN, STANDARD_ZH, article, checked_lang
from .provider import POSITIONS, ProviderConfig

if TYPE_CHECKING:
    from ..audit import AuditStore

#: Watermark schemes per modality: (zh-CN, en).
WATERMARK_SCHEMES: dict[MediaKind, tuple[str, str]] = {
    MediaKind.IMAGE: ("带密钥的分块周期扩频水印，自同步", "keyed tile-periodic spread spectrum, self-synchronising"),
    MediaKind.AUDIO: ("500 Hz–4 kHz 频段带密钥扩频水印", "keyed spread spectrum in the 500 Hz-4 kHz band"),
    MediaKind.VIDEO: ("逐帧图像水印，抽帧平均检测", "the image mark on every frame, detected on averaged frames"),
    MediaKind.TEXT: (
        "生成时绿名单水印及不可见 Unicode 来源标记",
        "generation-time green list and invisible-Unicode mark",
    ),
}
_SIGNATURE_SCHEMES = {
    "sm2": ("SM3withSM2（OID 1.2.156.10197.1.501）", "SM3withSM2 (OID 1.2.156.10197.1.501)"),
    "ed25519": ("Ed25519（RFC 8032）", "Ed25519 (RFC 8032)"),
}


@dataclass(frozen=True)
class FilingMaterials:
    """The materials as data (``to_dict``, the ``--json`` output) and as Markdown in ``lang``."""

    lang: Lang
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return self.data

    def markdown(self) -> str:
        """The materials as a Markdown document in :attr:`lang`."""
        zh = self.lang == "zh-CN"
        d = self.data
        i = 0 if zh else 1
        yes_no = ("是", "否") if zh else ("yes", "no")
        lines = [
            f"# {'人工智能生成合成内容标识材料（算法备案）' if zh else 'Labelling materials for the algorithm filing'}",
            "",
            f"{'依据' if zh else 'Under'}{'' if zh else ' '}{article(12, self.lang)}{'；' if zh else '; '}"
            f"{STANDARD_ZH if zh else STANDARD_EN}",
            "",
            f"- {'服务提供者' if zh else 'Provider'}: {d['provider']['name']} ({d['provider']['code']})",
            "",
            f"## {'显式标识' if zh else 'Explicit labels'}",
            "",
        ]
        sep = "、" if zh else ", "
        explicit = d["explicit"].items()
        lines += [f"- {_media(m, i)}: {sep.join(POSITIONS[p][i] for p in ps)}" for m, ps in explicit] or ["- —"]
        lines += ["", f"## {'隐式标识（文件元数据）' if zh else 'Implicit labels (file metadata)'}", ""]
        lines += ["| 格式 | 类型 | 位置 |" if zh else "| format | media | location |", "|---|---|---|"]
        lines += [f"| {f['description']} | {_media(f['media'], i)} | `{f['location']}` |" for f in d["implicit"]]
        w, s = d["watermark"], d["signature"]
        lines += ["", f"## {'数字水印与数字签名' if zh else 'Watermark and signature'}", ""]
        lines.append(f"- {'数字水印' if zh else 'Watermark'}: {yes_no[0] if w['enabled'] else yes_no[1]}")
        lines += [f"  - {_media(m, i)}: {scheme[i]}" for m, scheme in w["schemes"].items()]
        sig = _SIGNATURE_SCHEMES[s["algorithm"]][i] if s["algorithm"] else yes_no[1]
        lines.append(f"- {'数字签名' if zh else 'Signature'}: {sig}")
        lines += [
            "",
            f"## {'无显式标识内容与日志留存' if zh else 'Label-free copies and log retention'}"
            f" ({article(9, self.lang)})",
            "",
            f"- {'提供无显式标识内容' if zh else 'Supplies copies without the explicit label'}: "
            f"{yes_no[0] if d['label_free_copies'] else yes_no[1]}",
            f"- {'日志保存期限（月）' if zh else 'Log retention (months)'}: {d['retention_months']}",
        ]
        figures = d.get("figures")
        if figures is not None:
            lines += ["", f"## {'运行数据（审计日志）' if zh else 'Figures from the audit log'}", ""]
            period = figures["period"]
            span = f"{period[0]} – {period[1]}" if period else "—"
            lines.append(f"- {'期间' if zh else 'Period'}: {span}")
            lines += [f"- {'事件' if zh else 'events'} `{k}`: {n}" for k, n in figures["events"].items()]
            lines += [
                f"- {'已标识格式' if zh else 'labelled format'} `{k}`: {n}" for k, n in figures["formats"].items()
            ]
            lines.append(f"- {'无显式标识导出的接收用户数' if zh else 'export recipients'}: {figures['recipients']}")
            lines.append(
                f"- {'协议接受记录 / 用户数' if zh else 'agreement acceptances / users'}: "
                f"{figures['acceptances']} / {figures['accepting_users']}"
            )
        return "\n".join(lines) + "\n"


def _media(value: str, lang_index: int) -> str:
    return MEDIA_NAMES[MediaKind(value)][lang_index]


def _figures(store: AuditStore) -> dict[str, Any]:
    from ..audit import EventKind

    formats: Counter[str] = Counter()
    recipients: set[str] = set()
    for event in store.events(kinds=[EventKind.LABEL, EventKind.EXPORT_UNLABELED]):
        if event.kind == EventKind.EXPORT_UNLABELED:
            recipients.add(event.recipient or "")
            continue
        container = container_for_suffix(Path(str(event.detail.get("path", ""))).suffix or ".")
        formats[container.name if container else "unknown"] += 1
    acceptances = store.acceptance_of()
    period = store.time_range()
    return {
        "period": [t.isoformat() for t in period] if period else None,
        "events": {kind.value: store.count(kind) for kind in EventKind},
        "formats": dict(sorted(formats.items())),
        "recipients": len(recipients),
        "acceptances": len(acceptances),
        "accepting_users": len({a.user for a in acceptances}),
    }


def filing_materials(config: ProviderConfig, store: AuditStore | None = None, lang: str = "zh-CN") -> FilingMaterials:
    """The Art. 12 labelling materials for ``config``, with figures from ``store`` when given."""
    containers = registered()
    data: dict[str, Any] = {
        "provider": {"name": config.provider_name, "code": config.producer_code, "service": config.service_name},
        "explicit": {media.value: list(positions) for media, positions in config.explicit.items()},
        "implicit": [
            {
                "format": name,
                "description": containers[name].description,
                "media": containers[name].media.value,
                "location": containers[name].primary_location,
            }
            for name in config.formats
        ],
        "watermark": {
            "enabled": config.watermark,
            "schemes": {m.value: list(s) for m, s in WATERMARK_SCHEMES.items()} if config.watermark else {},
        },
        "signature": {"algorithm": config.signature or None},
        "label_free_copies": config.label_free_copies,
        "retention_months": config.retention_months,
    }
    if store is not None:
        data["figures"] = _figures(store)
    return FilingMaterials(lang=checked_lang(lang), data=data)
