"""What the gateway labels and how, and where it forwards to."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from ..errors import GatewayConfigError
from ..explicit.text import DEFAULT_LABEL, TextFormat, validate_label_text
from ..label import AIGCLabel
from ..watermark.payload import DEMO_KEY

if TYPE_CHECKING:
    from ..audit import AuditStore
    from ..explicit.audio import LabelKind
    from ..signing import SigningKey

TextPosition = Literal["start", "end", "both"]


@dataclass(frozen=True)
class GatewaySettings:
    """Gateway configuration; ``upstream`` is the upstream server's root (a trailing ``/v1`` is dropped)."""

    upstream: str
    #: ContentProducer of every label (the provider's 27-character code).
    producer: str
    #: Sent to the upstream as ``Authorization: Bearer``; the client's own Authorization never is.
    upstream_api_key: str | None = None
    #: Keys clients must present to the gateway; empty: no key asked (the CLI then binds to loopback only).
    api_keys: frozenset[str] = field(default_factory=frozenset)
    text_label: str = DEFAULT_LABEL
    text_position: TextPosition = "start"
    text_format: TextFormat = "plain"
    #: Insert the invisible Unicode provenance mark (variation selectors) into every text answer.
    text_mark: bool = False
    #: Draw the visible label on every image.
    image_visible: bool = False
    #: Embed the invisible watermark in every image and speech file.
    watermark: bool = False
    #: Key of the watermark and of the text mark (default: the public demo key).
    watermark_key: bytes = DEMO_KEY
    watermark_key_id: int = 0
    #: Sign ReservedCode1 of every image and speech file.
    signing_key: SigningKey | None = None
    #: Audible label of speech: the rhythm cue, the spoken label, or both.
    audio_label: LabelKind = "cue"
    audit: AuditStore | None = None
    connect_timeout: float = 10.0
    #: Longest wait for the next bytes from the upstream (a stalled stream is cut after it).
    read_timeout: float = 600.0
    #: Largest request body read on a labelled route, and largest image or audio answer labelled.
    max_body_bytes: int = 64 << 20
    #: How many labelled images the gateway keeps to serve ``url`` answers (oldest dropped first).
    kept_images: int = 256
    #: The folder of those images when several processes serve one address (``--workers``): a client may
    #: fetch an image from another worker than the one that made it. ``None``: a temporary folder of this
    #: process's own, removed when it stops.
    image_dir: Path | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.upstream)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise GatewayConfigError(f"upstream {self.upstream!r} is not an http:// or https:// URL")
        AIGCLabel.for_producer(self.producer)  # a bad producer code fails at start, not on the first answer
        validate_label_text(self.text_label)
        if self.text_position not in ("start", "end", "both"):
            raise GatewayConfigError(f"text position must be start, end or both, not {self.text_position!r}")

    @property
    def upstream_root(self) -> str:
        """The upstream URL without a trailing slash or ``/v1`` (request paths keep their own ``/v1``)."""
        root = self.upstream.rstrip("/")
        return root[:-3] if root.endswith("/v1") else root

    def new_label(self) -> AIGCLabel:
        """A producer label with a fresh ProduceID for one answer or one file."""
        return AIGCLabel.for_producer(self.producer)
