"""A labelling reverse proxy in front of any OpenAI-compatible server (``aigclabel gateway``).

Every chat and completion answer gets the explicit text label (in the first or last streamed chunk,
never buffering the stream), optionally the invisible Unicode provenance mark, and the implicit label
as a response field and headers; every generated image and speech file gets the implicit label, the
visible or audible label, and optionally a watermark and a signature. Each answer is recorded in the
audit store. Every other route is passed through untouched. See :func:`aigclabel.gateway.app.create_app`.
"""

from .settings import GatewaySettings

__all__ = ["GatewaySettings"]
