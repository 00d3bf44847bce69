"""The ASGI layer in front of every route: Host allow-list, loopback-only without keys, security
headers, and one JSON error shape even for exceptions nobody expected.

Why a raw ASGI middleware: it runs before routing and before the body is read, sees the socket's
local address (``scope["server"]``) so it works however the app was started (``aigclabel serve``,
``uvicorn --factory``, a test client), and can add headers to every response, including errors.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re

from .._extras import needs_extra
from .settings import ServiceSettings, is_loopback

with needs_extra("service"):
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

_log = logging.getLogger("aigclabel.service")

#: Headers on every response. The API answers JSON or files; nothing of it may be framed, sniffed or
#: referred, and nothing loads from elsewhere (the page and /docs get their own CSP with script hashes).
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
#: Paths any Host may reach: orchestrators probe by pod address, and they reveal nothing.
PROBES = frozenset({"/healthz", "/readyz"})
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def error_body(code: str, detail: str) -> bytes:
    """The one error shape: ``{"error": code, "detail": message}``."""
    return json.dumps({"error": code, "detail": detail}, ensure_ascii=False).encode()


def page_csp(html: str, *, inline_styles: bool = False) -> str:
    """A CSP for ``html`` allowing exactly its inline ``<script>``/``<style>`` blocks (by hash) and same-origin."""

    def hashes(tag: str) -> str:
        blocks = re.findall(rf"<{tag}(?:\s[^>]*)?>(.*?)</{tag}>", html, flags=re.S)
        digests = (base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() for b in blocks if b.strip())
        return " ".join(f"'sha256-{d}'" for d in digests)

    styles = "'unsafe-inline'" if inline_styles else hashes("style")
    return (
        f"default-src 'none'; script-src 'self' {hashes('script')}; style-src 'self' {styles}; "
        "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )


async def send_error(send: Send, status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
    """Answer with the one error shape (security headers are added by :class:`Guard` around ``send``)."""
    body = error_body(code, detail)
    extra = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Guard:
    """Outermost middleware of the app; see the module docstring."""

    def __init__(self, app: ASGIApp, settings: ServiceSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def secured(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", API_CSP.encode()))
                message = {**message, "headers": headers}
            await send(message)

        refusal = self._refusal(scope)
        if refusal is not None:
            await send_error(secured, *refusal)
            return
        try:
            await self.app(scope, receive, secured)
        except Exception:
            # Logged with its traceback for the operator; the client gets the one error shape, no trace.
            _log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await send_error(secured, 500, "internal-error", "the service failed on this request; it is logged")

    def _refusal(self, scope: Scope) -> tuple[int, str, str] | None:
        server = scope.get("server")
        client = scope.get("client")
        if server and client and (server[0], client[0]) == ("testserver", "testclient"):
            return None  # Starlette's in-process test transport: names no socket can carry, no network involved
        # A Unix socket (no port) is local by nature; a TCP socket must be bound to a loopback address.
        remote_capable = server is not None and server[1] is not None and not is_loopback(str(server[0]))
        if not self.settings.api_keys and remote_capable:
            # However the app was started (--factory, --host 0.0.0.0), without keys it serves loopback only.
            return 403, "loopback-only", "this service has no API keys and answers on loopback addresses only"
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        host = next((value.decode("latin-1") for name, value in headers if name == b"host"), "")
        if not self.settings.host_allowed(host) and scope.get("path") not in PROBES:
            # DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends Host: evil.example.
            return 421, "host-not-allowed", "this Host is not served here (see --allowed-host)"
        return None
