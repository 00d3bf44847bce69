"""Service settings, read and validated in ONE place for the CLI, the app factory and the environment.

Why one place: the CLI used to check "no keys on a non-loopback address" on the raw option values
(``{""}`` looked like a key) and then strip them to nothing; ``uvicorn --factory`` skipped the check
altogether; and a comma inside a key split it into two. Here every key, from any source, must be a
real secret (:data:`MIN_KEY_LENGTH` visible ASCII characters, no comma), a bad value stops startup
with :class:`ServiceConfigError`, and the app itself refuses non-loopback connections when it has no
keys, however it was started.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ServiceConfigError

#: Default largest upload accepted, in bytes.
DEFAULT_MAX_UPLOAD = 512 << 20
#: Shortest API key accepted: anything shorter is guessable, or a variable that was empty.
MIN_KEY_LENGTH = 16
#: Host header values always accepted (loopback); others come from ``--allowed-host``.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})

KEYS_ENV = "AIGCLABEL_API_KEYS"
KEY_FILE_ENV = "AIGCLABEL_API_KEY_FILE"
MAX_UPLOAD_ENV = "AIGCLABEL_MAX_UPLOAD"
HOSTS_ENV = "AIGCLABEL_ALLOWED_HOSTS"
WORK_DIR_ENV = "AIGCLABEL_WORK_DIR"
POOL_ENV = "AIGCLABEL_POOL"
QUEUE_ENV = "AIGCLABEL_QUEUE"
BUDGET_ENV = "AIGCLABEL_REQUEST_SECONDS"
BODY_IDLE_ENV = "AIGCLABEL_BODY_IDLE_SECONDS"
BODY_GRACE_ENV = "AIGCLABEL_BODY_GRACE_SECONDS"
BODY_RATE_ENV = "AIGCLABEL_MIN_BODY_RATE"
EVIDENCE_KEY_ENV = "AIGCLABEL_EVIDENCE_KEY"
LEDGER_KEY_ENV = "AIGCLABEL_LEDGER_KEY"


def is_loopback(host: str) -> bool:
    """True for loopback addresses and ``localhost``."""
    name = host.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def validate_key(key: str) -> str:
    """``key`` if it is a usable secret, else :class:`ServiceConfigError` (the key itself is never echoed)."""
    if not key.strip():
        raise ServiceConfigError("an API key is empty (an unset variable?); give a real secret or none at all")
    if len(key) < MIN_KEY_LENGTH:
        raise ServiceConfigError(f"an API key is {len(key)} characters; use at least {MIN_KEY_LENGTH}")
    if not all(33 <= ord(c) <= 126 for c in key) or "," in key:
        raise ServiceConfigError("an API key holds spaces, commas or non-ASCII characters; use visible ASCII only")
    return key


def read_key_file(path: Path) -> list[str]:
    """Keys in ``path``, one per line; blank lines and ``#`` comments are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ServiceConfigError(f"cannot read the API key file {path}: {exc.__class__.__name__}") from None
    keys = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not keys:
        raise ServiceConfigError(f"the API key file {path} holds no key")
    return keys


def collect_keys(keys: Iterable[str] = (), key_file: Path | None = None) -> frozenset[str]:
    """Every key from the command line and a key file, each validated."""
    found = list(keys)
    if key_file is not None:
        found += read_key_file(key_file)
    return frozenset(validate_key(key) for key in found)


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ServiceConfigError(f"{name}={raw!r} is not a number") from None
    if not value >= minimum:
        raise ServiceConfigError(f"{name}={raw!r} must be at least {minimum:g}")
    return value


def _default_pool() -> int:
    return max(os.cpu_count() or 1, 1)


@dataclass(frozen=True)
class ServiceSettings:
    """Explicit service settings; :meth:`from_env` reads them from ``AIGCLABEL_*`` variables."""

    api_keys: frozenset[str] = field(default_factory=frozenset)
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD
    work_dir: Path | None = None
    #: Audit database URL or SQLite path; ``None`` records nothing and disables ``/v1/trace``.
    audit_url: str | None = None
    #: Key registry file (JSON/TOML) used to check ReservedCode1/2 signatures.
    keys_file: Path | None = None
    #: Host header values accepted besides loopback; ``*`` accepts any (only with API keys).
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)
    #: Uploads analysed at once per process; more wait in a queue of ``queue`` places, then get 503.
    pool: int = field(default_factory=_default_pool)
    queue: int = 0
    #: Wall-clock budget of one request's analysis (each detector gets at most half of it).
    request_seconds: float = 20.0
    #: A body chunk must arrive within this many seconds, and the body must average at least
    #: ``min_body_rate`` bytes/s once ``body_grace`` seconds have passed.
    body_idle_seconds: float = 15.0
    min_body_rate: float = 4096.0
    body_grace: float = 15.0
    #: Private key file that signs evidence packages; ``None`` signs with the public DEMO key (flagged so).
    evidence_key: Path | None = None
    #: Private key file that signs consent-ledger entries; ``None`` turns the ledger-writing endpoints off.
    ledger_key: Path | None = None

    def __post_init__(self) -> None:
        for key in self.api_keys:
            validate_key(key)
        if self.max_upload_bytes < 1:
            raise ServiceConfigError("the upload limit must be at least 1 byte")
        if self.pool < 1 or self.queue < 0:
            raise ServiceConfigError("the worker pool needs at least one place and a non-negative queue")
        if "*" in self.allowed_hosts and not self.api_keys:
            raise ServiceConfigError("accepting any Host header needs API keys")

    @property
    def queue_places(self) -> int:
        """Requests that may wait for a pool place (default: four per place)."""
        return self.queue or 4 * self.pool

    def host_allowed(self, host: str) -> bool:
        """Whether a request's Host header (port stripped) names this service."""
        name = host.strip().lower()
        if name.startswith("["):
            name = name.split("]", 1)[0] + "]"
        elif name.count(":") == 1:
            name = name.split(":", 1)[0]
        return name in LOOPBACK_HOSTS or name in self.allowed_hosts or "*" in self.allowed_hosts

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, /, **overrides: object) -> ServiceSettings:
        """Settings from ``AIGCLABEL_API_KEYS`` (comma-separated) or ``AIGCLABEL_API_KEY_FILE`` (one per line),
        ``AIGCLABEL_MAX_UPLOAD`` (bytes), ``AIGCLABEL_DB``, ``AIGCLABEL_KEYS`` (signature key registry),
        ``AIGCLABEL_ALLOWED_HOSTS`` (comma-separated), ``AIGCLABEL_WORK_DIR``, ``AIGCLABEL_POOL``,
        ``AIGCLABEL_REQUEST_SECONDS`` and the body timeouts ``AIGCLABEL_BODY_IDLE_SECONDS``,
        ``AIGCLABEL_BODY_GRACE_SECONDS``, ``AIGCLABEL_MIN_BODY_RATE``, ``AIGCLABEL_EVIDENCE_KEY`` (the key file
        signing evidence packages), ``AIGCLABEL_LEDGER_KEY`` (the key file signing consent-ledger entries);
        ``overrides`` win over the environment."""
        source = os.environ if env is None else env
        raw_keys = source.get(KEYS_ENV)
        # An empty variable means "no keys"; a non-empty one is split and every piece must be a real key,
        # so "secret," or ",", or a key with a comma in it, stops startup instead of opening the door.
        listed = raw_keys.split(",") if raw_keys and raw_keys.strip() else []
        key_file = source.get(KEY_FILE_ENV)
        keys = collect_keys(listed, Path(key_file) if key_file else None)
        hosts = frozenset(h.strip().lower() for h in source.get(HOSTS_ENV, "").split(",") if h.strip())
        registry = source.get("AIGCLABEL_KEYS")
        work_dir = source.get(WORK_DIR_ENV)
        evidence_key = source.get(EVIDENCE_KEY_ENV)
        ledger_key = source.get(LEDGER_KEY_ENV)
        values: dict[str, object] = {
            "api_keys": keys,
            "max_upload_bytes": int(_number(source, MAX_UPLOAD_ENV, DEFAULT_MAX_UPLOAD, minimum=1)),
            "audit_url": source.get("AIGCLABEL_DB") or None,
            "keys_file": Path(registry) if registry else None,
            "allowed_hosts": hosts,
            "work_dir": Path(work_dir) if work_dir else None,
            "pool": int(_number(source, POOL_ENV, _default_pool(), minimum=1)),
            "queue": int(_number(source, QUEUE_ENV, 0, minimum=0)),
            "request_seconds": _number(source, BUDGET_ENV, 20.0, minimum=0.1),
            "body_idle_seconds": _number(source, BODY_IDLE_ENV, 15.0, minimum=0.1),
            "body_grace": _number(source, BODY_GRACE_ENV, 15.0, minimum=0),
            "min_body_rate": _number(source, BODY_RATE_ENV, 4096.0, minimum=0),
            "evidence_key": Path(evidence_key) if evidence_key else None,
            "ledger_key": Path(ledger_key) if ledger_key else None,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    def to_env(self) -> dict[str, str]:
        """The environment that makes :meth:`from_env` rebuild these settings (for ``--workers`` processes)."""
        env = {
            KEYS_ENV: ",".join(sorted(self.api_keys)),
            MAX_UPLOAD_ENV: str(self.max_upload_bytes),
            HOSTS_ENV: ",".join(sorted(self.allowed_hosts)),
            POOL_ENV: str(self.pool),
            QUEUE_ENV: str(self.queue),
            BUDGET_ENV: repr(self.request_seconds),
            BODY_IDLE_ENV: repr(self.body_idle_seconds),
            BODY_GRACE_ENV: repr(self.body_grace),
            BODY_RATE_ENV: repr(self.min_body_rate),
            "AIGCLABEL_DB": self.audit_url or "",
        }
        if self.keys_file is not None:
            env["AIGCLABEL_KEYS"] = str(self.keys_file.resolve())
        if self.work_dir is not None:
            env[WORK_DIR_ENV] = str(self.work_dir.resolve())
        if self.evidence_key is not None:
            env[EVIDENCE_KEY_ENV] = str(self.evidence_key.resolve())
        if self.ledger_key is not None:
            env[LEDGER_KEY_ENV] = str(self.ledger_key.resolve())
        return env
