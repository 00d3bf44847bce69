"""A labelling reverse proxy in front of any OpenAI-compatible server (``aigclabel gateway``).

Every chat and completion answer gets the explicit text label (in the first or last streamed chunk,
never buffering the stream), optionally the invisible Unicode provenance mark, and the implicit label
as a response field and headers; every generated image and speech file gets the implicit label, the
visible or audible label, and optionally a watermark and a signature. Each answer is recorded in the
audit store. Every other route is passed through untouched. See :func:`aigclabel.gateway.app.create_app`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .settings import GatewaySettings

__all__ = ["GatewaySettings"]


def __getattr__(name: str) -> Any:
    # Lazy: the settings pull in the label modules, which importing the package must not.
    if name == "GatewaySettings":
        from .settings import GatewaySettings

        return GatewaySettings
    raise AttributeError(name)
