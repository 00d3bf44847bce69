"""An accessible HTML/CSS badge for chat and other interactive interfaces (GB 45438 §5.6).

§5.6 lets an interactive service show a text prompt *persistently* near the generated content or at
the top, bottom or background of the interface instead of labelling every turn. The badge is a
plain element with ``role="note"`` and an ``aria-label`` so screen readers announce it, and it stays
in place (``position: sticky``/``fixed``) while the conversation scrolls.
"""

from __future__ import annotations

import html
from typing import Literal, get_args

from ..errors import ExplicitLabelError
from .text import DEFAULT_LABEL, validate_label_text

BadgePlacement = Literal["top", "bottom", "inline"]

_CSS = """
.aigc-badge{display:inline-flex;align-items:center;gap:.35em;font:600 14px/1.3 system-ui,"Noto Sans SC",
"Microsoft YaHei","PingFang SC",sans-serif;color:#fff;background:#1f1f1f;border-radius:.4em;padding:.3em .7em;
z-index:2147483000}
.aigc-badge--top{position:sticky;top:0}
.aigc-badge--bottom{position:fixed;bottom:.75em;right:.75em}
.aigc-badge--inline{position:static;margin:.25em 0}
@media (prefers-color-scheme:dark){.aigc-badge{color:#111;background:#f5f5f5}}
@media print{.aigc-badge{position:static}}
""".strip()


def badge_css() -> str:
    """The stylesheet for :func:`badge_html` (both colour schemes keep a contrast ratio above 15:1)."""
    return _CSS


def badge_html(
    text: str = DEFAULT_LABEL, *, placement: BadgePlacement = "top", lang: str = "zh-CN", include_css: bool = True
) -> str:
    """An HTML snippet showing the label persistently at the top or bottom of the interface, or inline
    next to one message. ``text`` must contain both required elements."""
    validate_label_text(text)
    if placement not in ("top", "bottom", "inline"):
        raise ExplicitLabelError(
            f"unknown badge placement {placement!r}; use one of {', '.join(get_args(BadgePlacement))}"
        )
    esc = html.escape(text, quote=True)
    style = f"<style>{_CSS}</style>\n" if include_css else ""
    return (
        f'{style}<div class="aigc-badge aigc-badge--{placement}" role="note" aria-label="{esc}" '
        f'lang="{html.escape(lang, quote=True)}" data-aigc-label="1">{esc}</div>'
    )
