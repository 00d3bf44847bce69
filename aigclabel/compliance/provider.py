"""The provider configuration the agreement clauses and the filing materials are generated from.

A TOML or JSON file::

    provider_name = "示例智能科技有限公司"
    producer_code = "001191440300708461136T1XGW3"   # ContentProducer written into implicit labels
    service_name = "示例助手"                          # optional
    watermark = true                                 # invisible watermark in image/audio/video/text
    signature = "sm2"                                # "sm2", "ed25519" or "" (labels not signed)
    label_free_copies = true                         # Art. 9 copies without the explicit label offered
    retention_months = 6                             # audit-log retention, at least six months (Art. 9)

    [explicit]                                       # where the explicit label goes, per modality
    text = ["start", "interface"]
    image = ["corner"]

    [implicit]
    formats = ["jpeg", "png", "mp4"]                 # default: every registered writable format
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._io import read_settings
from ..containers import MediaKind, registered
from ..errors import ConfigurationError

#: Explicit-label positions a configuration may name: (zh-CN, en).
POSITIONS: dict[str, tuple[str, str]] = {
    "start": ("开头", "at the start"),
    "end": ("结尾", "at the end"),
    "middle": ("中间适当位置", "at an appropriate position in the middle"),
    "corner": ("画面适当位置（角落）", "at an appropriate position in the picture (a corner)"),
    "opening-frames": ("起始画面", "in the opening frames"),
    "playback-area": ("播放区域周边", "around the playback area"),
    "interface": ("交互界面或内容周边", "in the interactive interface or around the content"),
    "first-page": ("首页", "on the first page"),
}

#: The longest the Art. 9 logs may be kept for is the provider's choice; the shortest is six months.
MIN_RETENTION_MONTHS = 6
_SIGNATURES = ("", "sm2", "ed25519")


@dataclass(frozen=True)
class ProviderConfig:
    """One provider's labelling set-up (see the module docstring for the file format)."""

    provider_name: str
    producer_code: str
    service_name: str = ""
    explicit: dict[MediaKind, tuple[str, ...]] = field(default_factory=dict)
    formats: tuple[str, ...] = ()
    watermark: bool = False
    signature: str = ""
    label_free_copies: bool = False
    retention_months: int = MIN_RETENTION_MONTHS

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProviderConfig:
        """Validate ``data``; anything unusable is a :class:`ConfigurationError` naming the key."""
        known = {"provider_name", "producer_code", "service_name", "explicit", "implicit", "watermark", "signature"}
        known |= {"label_free_copies", "retention_months"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigurationError(f"provider configuration: unknown key(s) {', '.join(unknown)}")
        name, code = data.get("provider_name"), data.get("producer_code")
        if not isinstance(name, str) or not name.strip() or not isinstance(code, str) or not code.strip():
            raise ConfigurationError("provider configuration: provider_name and producer_code are required text")
        explicit = _explicit(data.get("explicit", {}))
        implicit = data.get("implicit", {})
        if not isinstance(implicit, dict):
            raise ConfigurationError("provider configuration: [implicit] must be a table")
        writable = sorted(n for n, c in registered().items() if c.can_write)
        formats = implicit.get("formats", writable)
        if not isinstance(formats, list) or not all(isinstance(f, str) for f in formats):
            raise ConfigurationError("provider configuration: implicit.formats must be a list of format names")
        bad = sorted(set(formats) - set(writable))
        if bad:
            raise ConfigurationError(
                f"provider configuration: unknown format(s) {', '.join(bad)}; known: {', '.join(writable)}"
            )
        signature = data.get("signature", "") or ""
        if signature not in _SIGNATURES:
            raise ConfigurationError("provider configuration: signature is 'sm2', 'ed25519' or empty")
        months = data.get("retention_months", MIN_RETENTION_MONTHS)
        if not isinstance(months, int) or isinstance(months, bool) or months < MIN_RETENTION_MONTHS:
            raise ConfigurationError(
                f"provider configuration: retention_months must be a whole number >= {MIN_RETENTION_MONTHS} "
                "(Measures Art. 9: logs of label-free copies are kept at least six months)"
            )
        flags = {key: data.get(key, False) for key in ("watermark", "label_free_copies")}
        for key, value in flags.items():
            if not isinstance(value, bool):
                raise ConfigurationError(f"provider configuration: {key} must be true or false")
        return cls(
            provider_name=name.strip(),
            producer_code=code.strip(),
            service_name=str(data.get("service_name", "")).strip(),
            explicit=explicit,
            formats=tuple(formats),
            watermark=flags["watermark"],
            signature=signature,
            label_free_copies=flags["label_free_copies"],
            retention_months=months,
        )


def _explicit(table: object) -> dict[MediaKind, tuple[str, ...]]:
    if not isinstance(table, dict):
        raise ConfigurationError("provider configuration: [explicit] must be a table of modality = [positions]")
    result: dict[MediaKind, tuple[str, ...]] = {}
    for key, positions in table.items():
        try:
            media = MediaKind(key)
        except ValueError:
            kinds = ", ".join(m.value for m in MediaKind)
            raise ConfigurationError(f"provider configuration: explicit.{key}: not a modality ({kinds})") from None
        if isinstance(positions, str):
            positions = [positions]
        if not isinstance(positions, list) or not positions or not all(p in POSITIONS for p in positions):
            raise ConfigurationError(
                f"provider configuration: explicit.{key} must list positions from {', '.join(POSITIONS)}"
            )
        result[media] = tuple(positions)
    return result


def load_provider(path: Path | str) -> ProviderConfig:
    """Read and validate a provider configuration file (``.toml``, else JSON)."""
    return ProviderConfig.from_dict(read_settings(path, "provider configuration", ConfigurationError))
