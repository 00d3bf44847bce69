"""Which provider a public key belongs to: :class:`KeyRegistry`, loaded from JSON/TOML files or the audit store.

A signature only says which key signed. Only a key the operator *pinned* here lets a verifier say a
label comes from the provider it names.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import KeyRegistryError, SignatureError
from ..label import DEMO_PROVIDER_CODE
from . import sm2
from .keys import Algorithm, PublicKey, demo_signing_key


@dataclass(frozen=True)
class RegisteredKey:
    """One registry entry: which provider a public key belongs to, and whether the operator pinned it."""

    provider: str
    public_key: PublicKey
    pinned: bool = True
    note: str = ""

    @property
    def key_id(self) -> str:
        """The key's fingerprint."""
        return self.public_key.key_id

    def to_dict(self) -> dict[str, Any]:
        """JSON form used in registry files."""
        return {
            "provider": self.provider,
            "alg": self.public_key.alg.value,
            "public_key": self.public_key.hex,
            "key_id": self.key_id,
            "pinned": self.pinned,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RegisteredKey:
        """Parse one entry; :class:`KeyRegistryError` if it is incomplete or its key_id is wrong."""
        try:
            provider = str(data["provider"])
            public = PublicKey.from_hex(str(data["alg"]), str(data["public_key"]))
        except KeyError as exc:
            raise KeyRegistryError(f"registry entry lacks {exc.args[0]!r}") from None
        except SignatureError as exc:
            raise KeyRegistryError(f"registry entry for {data.get('provider')!r}: {exc}") from None
        claimed = data.get("key_id")
        if claimed is not None and claimed != public.key_id:
            raise KeyRegistryError(f"registry entry key_id {claimed!r} does not match its key ({public.key_id})")
        pinned = data.get("pinned", True)
        if not isinstance(pinned, bool):
            raise KeyRegistryError("registry entry 'pinned' must be true or false")
        return cls(provider, public, pinned, str(data.get("note", "")))


@dataclass
class KeyRegistry:
    """Provider code -> public keys. Load it from JSON or TOML files, or from the audit store."""

    entries: list[RegisteredKey] = field(default_factory=list)

    def add(self, provider: str, public_key: PublicKey, *, pinned: bool = True, note: str = "") -> RegisteredKey:
        """Register ``public_key`` for ``provider`` (idempotent)."""
        entry = RegisteredKey(provider, public_key, pinned, note)
        for existing in self.entries:
            if existing.key_id == entry.key_id and existing.provider != provider:
                raise KeyRegistryError(f"key {entry.key_id} is already registered to {existing.provider}")
        self.entries = [e for e in self.entries if not (e.key_id == entry.key_id and e.provider == provider)]
        self.entries.append(entry)
        return entry

    def find(self, provider: str, key_id: str) -> RegisteredKey | None:
        """The entry for ``key_id`` registered to ``provider``, if any."""
        return next((e for e in self.entries if e.provider == provider and e.key_id == key_id), None)

    def by_key_id(self, key_id: str) -> RegisteredKey | None:
        """The entry for ``key_id`` whatever its provider."""
        return next((e for e in self.entries if e.key_id == key_id), None)

    def keys_of(self, provider: str) -> list[RegisteredKey]:
        """Every key registered to ``provider``."""
        return [e for e in self.entries if e.provider == provider]

    def merge(self, other: KeyRegistry) -> KeyRegistry:
        """Add every entry of ``other``; returns self."""
        for entry in other.entries:
            self.add(entry.provider, entry.public_key, pinned=entry.pinned, note=entry.note)
        return self

    def __iter__(self) -> Iterator[RegisteredKey]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def to_dict(self) -> dict[str, Any]:
        """JSON form of a registry file."""
        return {"keys": [e.to_dict() for e in self.entries]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KeyRegistry:
        """Parse ``{"keys": [...]}``."""
        keys = data.get("keys")
        if not isinstance(keys, list):
            raise KeyRegistryError('a key registry is an object with a "keys" array')
        registry = cls()
        for item in keys:
            if not isinstance(item, Mapping):
                raise KeyRegistryError("each registry entry must be an object")
            entry = RegisteredKey.from_dict(item)
            registry.add(entry.provider, entry.public_key, pinned=entry.pinned, note=entry.note)
        return registry

    @classmethod
    def load(cls, path: Path | str) -> KeyRegistry:
        """Read a ``.json`` or ``.toml`` registry file (TOML: an array of ``[[keys]]`` tables)."""
        from .._io import read_settings

        data = read_settings(path, "key registry", KeyRegistryError)
        return cls.from_dict(data)

    def save(self, path: Path | str) -> Path:
        """Write the registry as JSON (public keys only; safe to publish)."""
        target = Path(path)
        from .._io import atomic_output

        with atomic_output(target) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return target


def demo_registry() -> KeyRegistry:
    """A registry holding only the DEMO keys, unpinned: they verify, but prove nothing.

    The SM2 DEMO key is left out when gmssl (``aigclabel[sm2]``) is not installed.
    """
    registry = KeyRegistry()
    for alg in Algorithm:
        if alg is Algorithm.SM2 and not sm2.available():
            continue  # without gmssl the SM2 DEMO key can be neither derived nor checked
        registry.add(
            DEMO_PROVIDER_CODE, demo_signing_key(alg).public_key, pinned=False, note="DEMO key: public, proves nothing"
        )
    return registry
