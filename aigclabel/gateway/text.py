"""Labelling chat and completion answers: whole JSON bodies, or server-sent events one at a time.

The explicit label goes into the first chunk of each choice (``start``) and/or the chunk that carries
its ``finish_reason`` (``end``), so nothing is held back: every event is passed on as soon as its last
byte arrived, unchanged (byte for byte) unless a label, the mark or the ``aigc`` field went into it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import LimitExceededError
from ..explicit.text import label_stream, label_text
from ..label import AIGCLabel
from ..watermark.payload import Payload
from ..watermark.text import StreamMarker, mark_text
from .settings import GatewaySettings

Kind = Literal["chat", "completion"]
#: Response field holding the implicit label (the seven Annex E fields).
LABEL_FIELD = "aigc"

#: Longest server-sent event the gateway holds while waiting for its end.
MAX_EVENT_BYTES = 4 << 20
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_DATA_LINE = re.compile(rb"^data: ?(.*)$", re.M)


def label_headers(labels: list[AIGCLabel]) -> dict[str, str]:
    """The implicit label as response headers (one ProduceID per labelled output, comma-separated)."""
    return {
        "AIGC-Label": labels[0].label,
        "AIGC-ContentProducer": labels[0].content_producer,
        "AIGC-ProduceID": ",".join(label.produce_id for label in labels),
    }


class SSEFramer:
    """Cuts a byte stream into complete server-sent events (each with its blank-line terminator).

    An event growing past ``max_event`` bytes without ending raises :class:`LimitExceededError`: memory
    stays bounded whatever the upstream sends.
    """

    def __init__(self, max_event: int = MAX_EVENT_BYTES) -> None:
        self._buffer = b""
        self.max_event = max_event

    def feed(self, data: bytes) -> list[bytes]:
        """The events completed by ``data``; an unfinished one is kept for the next call."""
        buffer = self._buffer + data
        events: list[bytes] = []
        start = 0
        for end in _EVENT_END.finditer(buffer):
            events.append(buffer[start : end.end()])
            start = end.end()
        self._buffer = buffer[start:]
        if len(self._buffer) > self.max_event:
            raise LimitExceededError(f"an upstream event grew past {self.max_event} bytes without ending")
        return events

    def rest(self) -> bytes:
        """Bytes after the last complete event (an upstream that ended mid-event)."""
        rest, self._buffer = self._buffer, b""
        return rest


@dataclass
class _Choice:
    started: bool = False
    finished: bool = False
    tool: bool = False
    marker: StreamMarker | None = None
    digest: Any = field(default_factory=hashlib.sha256)
    chars: int = 0


class TextLabeller:
    """Labels one chat or completion answer, whole (:meth:`label_body`) or as a stream (:meth:`label_event`)."""

    def __init__(self, settings: GatewaySettings, label: AIGCLabel, kind: Kind) -> None:
        self.settings = settings
        self.label = label
        self.kind = kind
        # What label_stream puts before the first and after the last piece of a stream.
        text, fmt, where = settings.text_label, settings.text_format, settings.text_position
        self.head = "".join(label_stream((), label=text, position="start", fmt=fmt)) if where != "end" else ""
        self.tail = "".join(label_stream((), label=text, position="end", fmt=fmt)) if where != "start" else ""
        self.payload = Payload.for_produce_id(label.produce_id, settings.watermark_key_id)
        self.choices: dict[int, _Choice] = {}
        self._tagged = False
        self._last: dict[str, Any] = {}
        #: Set once the upstream sent ``[DONE]``.
        self.done = False
        #: How the answer ended, for the audit record.
        self.state = "complete"

    # ------------------------------------------------------------------ whole answers
    def label_body(self, body: dict[str, Any]) -> dict[str, Any]:
        """Label every choice of a non-streamed answer in place and add the ``aigc`` field."""
        body[LABEL_FIELD] = self.label.to_dict()
        for index, choice in enumerate(body.get("choices") or []):
            slot = self._slot(choice, "message")
            if slot is None or not isinstance(slot[0].get(slot[1]), str):
                continue  # a tool call only: no text shown to a person
            holder, key = slot
            text = label_text(
                holder[key], label=self.settings.text_label, position=self.settings.text_position,
                fmt=self.settings.text_format,
            )  # fmt: skip
            if self.settings.text_mark:
                text = mark_text(text, self.payload, self.settings.watermark_key)
            holder[key] = text
            state = self.choices.setdefault(_index(choice, index), _Choice(started=True, finished=True))
            state.digest.update(text.encode())
            state.chars += len(text)
        self.done = True
        return body

    # ------------------------------------------------------------------ streams
    def label_event(self, event: bytes) -> bytes:
        """One complete server-sent event, labelled if it carries a chunk that needs it."""
        lines = list(_DATA_LINE.finditer(event))
        if not lines:
            return event
        data = b"\n".join(line.group(1).rstrip(b"\r") for line in lines)  # several data lines make one value
        if data == b"[DONE]":
            self.done = True
            return b"".join(sse_event(chunk) for chunk in self.closing_chunks()) + event
        try:
            chunk = json.loads(data)
        except ValueError:
            return event
        if not isinstance(chunk, dict) or "error" in chunk or not self.label_chunk(chunk):
            return event
        first, last = lines[0], lines[-1]
        others = _DATA_LINE.sub(b"", event[first.end() : last.start()]).strip(b"\r\n")  # id:, event: lines kept
        kept = others + b"\n" if others else b""
        return event[: first.start()] + kept + b"data: " + _dumps(chunk) + event[last.end() :]

    def label_chunk(self, chunk: dict[str, Any]) -> bool:
        """Label one streamed chunk in place; False when it is unchanged."""
        changed = False
        if not self._tagged:
            chunk[LABEL_FIELD] = self.label.to_dict()
            self._tagged = changed = True
        self._last = chunk
        for position, choice in enumerate(chunk.get("choices") or []):
            slot = self._slot(choice, "delta")
            if slot is None:
                continue
            holder, key = slot
            piece = holder.get(key)
            state = self.choices.setdefault(_index(choice, position), _Choice())
            state.tool = state.tool or "tool_calls" in holder or "function_call" in holder
            if state.tool or not (piece is None or isinstance(piece, str)):
                continue  # a tool call is not shown to a person as text
            text = piece or ""
            if not state.started:
                state.started = True
                text = self.head + text
            if choice.get("finish_reason") and not state.finished:
                state.finished = True
                text += self.tail
            text = self._mark(state, text)
            if text != (piece or ""):
                holder[key] = text
                changed = True
        return changed

    def closing_chunks(self) -> list[dict[str, Any]]:
        """Chunks carrying the end label of choices whose stream ended without a ``finish_reason``."""
        out: list[dict[str, Any]] = []
        if not self.tail:
            return out
        for index, state in self.choices.items():
            if state.started and not state.finished and not state.tool:
                state.finished = True
                text = self._mark(state, self.tail)
                piece: dict[str, Any] = {"index": index, "finish_reason": None}
                piece.update({"delta": {"content": text}} if self.kind == "chat" else {"text": text})
                base: dict[str, Any] = {
                    k: self._last[k] for k in ("id", "object", "created", "model") if k in self._last
                }
                out.append({**base, "choices": [piece]})
        return out

    # ------------------------------------------------------------------ helpers
    def _slot(self, choice: Any, container: str) -> tuple[dict[str, Any], str] | None:
        if not isinstance(choice, dict):
            return None
        if self.kind == "completion":
            return choice, "text"
        holder = choice.get(container)
        return (holder, "content") if isinstance(holder, dict) else None

    def _mark(self, state: _Choice, text: str) -> str:
        if self.settings.text_mark and text:
            if state.marker is None:
                state.marker = StreamMarker(self.payload, self.settings.watermark_key)
            text = state.marker.feed(text)
        state.digest.update(text.encode())
        state.chars += len(text)
        return text

    def audit_detail(self) -> dict[str, Any]:
        """What the audit event records about the text: per choice, its SHA-256 and length."""
        return {
            "choices": {
                str(i): {"sha256": s.digest.hexdigest(), "chars": s.chars} for i, s in sorted(self.choices.items())
            },
            "text_mark": self.settings.text_mark,
            "position": self.settings.text_position,
        }

    def content_sha256(self) -> str | None:
        """SHA-256 of the first choice's labelled text, as sent."""
        first = self.choices.get(min(self.choices)) if self.choices else None
        return first.digest.hexdigest() if first else None


def _index(choice: dict[str, Any], default: int) -> int:
    index = choice.get("index", default)
    return index if isinstance(index, int) else default


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def sse_event(chunk: dict[str, Any]) -> bytes:
    """One chunk as a server-sent event."""
    return b"data: " + _dumps(chunk) + b"\n\n"
