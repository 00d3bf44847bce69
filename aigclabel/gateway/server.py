"""Running the gateway in several worker processes that share one port (``aigclabel gateway --workers N``).

The settings hold objects a process cannot hand to another (the signing key, the audit store's engine),
so the supervisor passes what rebuilds them, in the environment (never on a command line, where other
users of the machine can read it): file paths, the audit database URL, flags, and the client keys (as
``aigclabel serve --workers`` does). Each worker rebuilds its settings, opens its own audit store
connection (SQLite takes writers from several processes: see :mod:`aigclabel.audit.store`) and stops when
its supervisor is gone. The upstream's key reaches the workers as it reached the supervisor, in
``AIGCLABEL_UPSTREAM_API_KEY``.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._extras import needs_extra
from ..service.server import WORKER_HEALTHCHECK_SECONDS, GuardedHttpToolsProtocol
from .app import error_document
from .settings import GatewaySettings

with needs_extra("service"):
    from starlette.applications import Starlette

if TYPE_CHECKING:
    from ..explicit.audio import LabelKind
    from ..explicit.text import TextFormat
    from .settings import TextPosition

#: Environment variable holding a worker's :class:`GatewayOptions` as JSON.
OPTIONS_ENV = "AIGCLABEL_GATEWAY_OPTIONS"
#: Environment variable holding the client keys, one per line (kept apart from the options' JSON).
KEYS_ENV = "AIGCLABEL_GATEWAY_KEYS"
UPSTREAM_KEY_ENV = "AIGCLABEL_UPSTREAM_API_KEY"


@dataclass(frozen=True)
class GatewayOptions:
    """What the command line said, in a form every worker can rebuild its :class:`GatewaySettings` from."""

    upstream: str
    producer: str
    api_keys: frozenset[str] = field(default_factory=frozenset)
    text_label: str | None = None
    text_position: TextPosition = "start"
    text_format: TextFormat = "plain"
    text_mark: bool = False
    image_visible: bool = False
    audio_label: LabelKind = "cue"
    watermark: bool = False
    watermark_key_file: str | None = None
    sign_key: str | None = None
    demo_key: bool = False
    #: Audit database URL, or None for no audit store.
    audit_url: str | None = None
    read_timeout: float = 600.0
    #: The folder every worker keeps the images of ``url`` answers in (the supervisor's).
    image_dir: str | None = None

    def settings(self) -> GatewaySettings:
        """The settings these options describe (opens the audit store; reads the key files)."""
        from ..audit import AuditStore
        from ..cli._common import signing_key, watermark_key
        from ..explicit.text import DEFAULT_LABEL

        return GatewaySettings(
            upstream=self.upstream,
            producer=self.producer,
            upstream_api_key=os.environ.get(UPSTREAM_KEY_ENV) or None,
            api_keys=self.api_keys,
            text_label=self.text_label or DEFAULT_LABEL,
            text_position=self.text_position,
            text_format=self.text_format,
            text_mark=self.text_mark,
            image_visible=self.image_visible,
            watermark=self.watermark,
            watermark_key=watermark_key(Path(self.watermark_key_file) if self.watermark_key_file else None),
            signing_key=signing_key(Path(self.sign_key) if self.sign_key else None, self.demo_key),
            audio_label=self.audio_label,
            audit=AuditStore(self.audit_url) if self.audit_url else None,
            read_timeout=self.read_timeout,
            image_dir=Path(self.image_dir) if self.image_dir else None,
        )

    def to_env(self) -> dict[str, str]:
        """The environment :meth:`from_env` rebuilds these options from."""
        values: dict[str, Any] = {k: v for k, v in self.__dict__.items() if k != "api_keys"}
        return {OPTIONS_ENV: json.dumps(values), KEYS_ENV: "\n".join(sorted(self.api_keys))}

    @classmethod
    def from_env(cls) -> GatewayOptions:
        """The options a supervisor put in this process's environment."""
        values = json.loads(os.environ[OPTIONS_ENV])
        keys = frozenset(k for k in os.environ.get(KEYS_ENV, "").split("\n") if k)
        return cls(**values, api_keys=keys)


class GatewayProtocol(GuardedHttpToolsProtocol):
    """The service's connection guard (request-head timeout, connection cap, Nagle off) on uvicorn's
    httptools protocol, answering its own errors in the OpenAI format the gateway's clients expect."""

    @staticmethod
    def error_body(code: str, detail: str) -> bytes:
        """An error the server answers before the app sees a request, in the OpenAI wire format."""
        return json.dumps(error_document(detail, code)).encode()


def create_worker_app() -> Starlette:
    """The app of one ``--workers`` process (uvicorn's factory): settings from the environment, and a
    watch that stops the worker when its supervisor is gone. A supervisor killed with SIGKILL cannot remove
    the shared image folder, so the workers that outlive it do (whichever stops first; the rest find it gone)."""
    import shutil

    from ..service.server import orphaned, watch_parent
    from .app import create_app

    options = GatewayOptions.from_env()
    app = create_app(options.settings())
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Starlette) -> AsyncIterator[Any]:
        watcher = watch_parent()
        try:
            async with inner(application) as state:
                yield state
        finally:
            if watcher is not None:
                watcher.cancel()
            if options.image_dir and orphaned():
                shutil.rmtree(options.image_dir, ignore_errors=True)

    app.router.lifespan_context = lifespan
    return app


def run_workers(options: GatewayOptions, host: str, port: int, workers: int) -> None:
    """Serve the gateway in ``workers`` processes sharing ``host:port`` (uvicorn's supervisor restarts a
    worker that dies). The images of ``url`` answers are kept in one folder of the supervisor's, removed
    when it stops: a client fetches an image on a new connection, which any worker may take, and a worker
    that dies leaves nothing behind."""
    import tempfile

    import uvicorn

    from ..service.server import SUPERVISOR_ENV
    from .app import IMAGE_DIR_PREFIX

    with tempfile.TemporaryDirectory(prefix=IMAGE_DIR_PREFIX) as images:
        os.environ.update(replace(options, image_dir=images).to_env())
        os.environ[SUPERVISOR_ENV] = str(os.getpid())
        uvicorn.run(
            "aigclabel.gateway.server:create_worker_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            http=GatewayProtocol,
            # uvicorn's 5 s replaced every worker of a loaded machine before it had imported the app (the
            # child answers the health check only once its spawn has unpickled the config), again and again
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
            log_level="info",
        )
