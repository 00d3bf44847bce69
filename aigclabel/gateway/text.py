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
_LINE_END = re.compile(rb"\n")
_DATA_LINE = re.compile(rb"^data: ?(.*)$", re.M)
# The fast path's tests on a compact chunk (json.dumps with separators, as servers send them).
_FINISHING = re.compile(rb'"finish_reason":(?!null)')
_INDEX = re.compile(rb'"index":(\d+)[,}]')
_CHAT_TEXT = re.compile(rb'"delta":\{(?:"role":"assistant",)?"content":"((?:[^"\\]|\\.)*)"\}')
_COMPLETION_TEXT = re.compile(rb'"text":"((?:[^"\\]|\\.)*)"')


def label_headers(labels: list[AIGCLabel]) -> dict[str, str]:
    """The implicit label as response headers (one ProduceID per labelled output, comma-separated)."""
    return {
        "AIGC-Label": labels[0].label,
        "AIGC-ContentProducer": labels[0].content_producer,
        "AIGC-ProduceID": ",".join(label.produce_id for label in labels),
    }


class SSEFramer:
    """Cuts a byte stream into complete server-sent events (each with its blank-line terminator), or with
    ``framing="ndjson"`` into JSON lines (each with its newline).

    An event growing past ``max_event`` bytes without ending raises :class:`LimitExceededError`: memory
    stays bounded whatever the upstream sends.
    """

    def __init__(self, max_event: int = MAX_EVENT_BYTES, framing: str = "sse") -> None:
        self._buffer = b""
        self.max_event = max_event
        self._end = _LINE_END if framing == "ndjson" else _EVENT_END

    def feed(self, data: bytes) -> list[bytes]:
        """The events completed by ``data``; an unfinished one is kept for the next call."""
        buffer = self._buffer + data
        events: list[bytes] = []
        start = 0
        for end in self._end.finditer(buffer):
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


class AnswerLabeller:
    """What labelling a text answer takes in every wire dialect: the label, the text put before the first
    and after the last piece of each output, the provenance mark, and per output a digest for the audit
    record. Subclasses know where a dialect keeps the text (:meth:`label_body` for a whole answer,
    :meth:`label_event` for one streamed event) and how its stream is framed (:attr:`framing`)."""

    #: How a streamed answer is cut into events: server-sent events or JSON lines.
    framing: str = "sse"
    #: What the audit record and the logs call this dialect.
    dialect: str = "chat"

    def __init__(self, settings: GatewaySettings, label: AIGCLabel, *, structured: bool = False) -> None:
        self.settings = settings
        self.label = label
        #: The client asked for JSON output (a JSON mode or schema): a program reads it, and a label or mark
        #: inside would corrupt it, so the answer gets only the implicit label (field, headers, audit).
        self.structured = structured
        self.marking = settings.text_mark and not structured
        # What label_stream puts before the first and after the last piece of a stream.
        text, fmt, where = settings.text_label, settings.text_format, settings.text_position
        start = where != "end" and not structured
        end = where != "start" and not structured
        self.head = "".join(label_stream((), label=text, position="start", fmt=fmt)) if start else ""
        self.tail = "".join(label_stream((), label=text, position="end", fmt=fmt)) if end else ""
        self.payload = Payload.for_produce_id(label.produce_id, settings.watermark_key_id)
        self.choices: dict[Any, _Choice] = {}
        #: Set once the upstream said the answer is complete.
        self.done = False
        #: How the answer ended, for the audit record.
        self.state = "complete"

    def label_body(self, body: dict[str, Any]) -> dict[str, Any]:
        """Label a whole (non-streamed) answer in place."""
        raise NotImplementedError

    def label_event(self, event: bytes) -> bytes:
        """One complete streamed event, labelled if it carries text that needs it."""
        raise NotImplementedError

    def closing(self) -> bytes:
        """Events carrying the end label of outputs whose stream ended without saying so."""
        return b""

    def _whole(self, key: Any, text: str) -> str:
        """One output's whole text, labelled and marked, recorded under ``key``."""
        if not self.structured:
            where, fmt = self.settings.text_position, self.settings.text_format
            text = label_text(text, label=self.settings.text_label, position=where, fmt=fmt)
        if self.marking:
            text = mark_text(text, self.payload, self.settings.watermark_key)
        state = self.choices.setdefault(key, _Choice(started=True, finished=True))
        state.digest.update(text.encode())
        state.chars += len(text)
        return text

    def _piece(self, state: _Choice, text: str, *, last: bool) -> str:
        """One streamed piece of an output: the head before its first piece, the tail after its last."""
        if not state.started:
            state.started = True
            text = self.head + text
        if last and not state.finished:
            state.finished = True
            text += self.tail
        return self._mark(state, text)

    def _mark(self, state: _Choice, text: str) -> str:
        if self.marking and text:
            if state.marker is None:
                state.marker = StreamMarker(self.payload, self.settings.watermark_key)
            text = state.marker.feed(text)
        state.digest.update(text.encode())
        state.chars += len(text)
        return text

    def _unfinished(self) -> list[tuple[Any, str]]:
        """Outputs that started but never ended, each with its end label (marked), now counted as ended."""
        out: list[tuple[Any, str]] = []
        if self.tail:
            for key, state in self.choices.items():
                if state.started and not state.finished and not state.tool:
                    state.finished = True
                    out.append((key, self._mark(state, self.tail)))
        return out

    def audit_detail(self) -> dict[str, Any]:
        """What the audit event records about the text: per output, its SHA-256 and length."""
        return {
            "dialect": self.dialect,
            "choices": {
                _key_name(i): {"sha256": s.digest.hexdigest(), "chars": s.chars}
                for i, s in sorted(self.choices.items())
            },
            "text_mark": self.marking,
            "position": "none (structured output)" if self.structured else self.settings.text_position,
        }

    def content_sha256(self) -> str | None:
        """SHA-256 of the first output's labelled text, as sent."""
        first = self.choices.get(min(self.choices)) if self.choices else None
        return first.digest.hexdigest() if first else None


class TextLabeller(AnswerLabeller):
    """Labels one chat or completion answer (``/v1/chat/completions``, ``/v1/completions``), whole
    (:meth:`label_body`) or as a stream (:meth:`label_event`)."""

    def __init__(self, settings: GatewaySettings, label: AIGCLabel, kind: Kind, *, structured: bool = False) -> None:
        super().__init__(settings, label, structured=structured)
        self.kind = kind
        self.dialect = kind
        self._tagged = False
        self._last: dict[str, Any] = {}

    # ------------------------------------------------------------------ whole answers
    def label_body(self, body: dict[str, Any]) -> dict[str, Any]:
        """Label every choice of a non-streamed answer in place and add the ``aigc`` field."""
        body[LABEL_FIELD] = self.label.to_dict()
        for index, choice in enumerate(body.get("choices") or []):
            slot = self._slot(choice, "message")
            if slot is None or not isinstance(slot[0].get(slot[1]), str):
                continue  # a tool call only: no text shown to a person
            holder, key = slot
            holder[key] = self._whole(_index(choice, index), holder[key])
        self.done = True
        return body

    # ------------------------------------------------------------------ streams
    def label_event(self, event: bytes) -> bytes:
        """One complete server-sent event, labelled if it carries a chunk that needs it."""
        if self._passes_unchanged(event):
            return event
        lines, chunk = data_of(event)
        if chunk == b"[DONE]":
            self.done = True
            return self.closing() + event
        if not isinstance(chunk, dict) or "error" in chunk or not self.label_chunk(chunk):
            return event
        return replace_data(event, lines, chunk)

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
            text = self._piece(state, piece or "", last=bool(choice.get("finish_reason")))
            if text != (piece or ""):
                holder[key] = text
                changed = True
        return changed

    def _passes_unchanged(self, event: bytes) -> bool:
        """The fast path of a stream's middle: a compact one-line chunk of one choice that has started, that
        neither finishes nor calls a tool, passes unchanged (only its text is counted for the audit digest),
        without parsing its JSON. Anything else, or when the mark is on, takes the full path. Most tokens
        arrive this way, and parsing them was most of the gateway's CPU per token."""
        if self.marking or not self._tagged or not event.startswith(b"data: {"):
            return False
        if event.count(b"data:") != 1 or _FINISHING.search(event) or b'"tool_calls"' in event:
            return False
        if event.count(b'"index":') != 1 or b'"function_call"' in event or b'"error"' in event:
            return False
        index = _INDEX.search(event)
        texts = (_CHAT_TEXT if self.kind == "chat" else _COMPLETION_TEXT).findall(event)
        state = self.choices.get(int(index[1])) if index else None
        if state is None or not state.started or state.finished or state.tool or len(texts) != 1:
            return False
        raw = texts[0]
        try:
            text = json.loads(b'"' + raw + b'"') if b"\\" in raw else raw.decode("utf-8", "strict")
        except ValueError:  # UnicodeDecodeError included: the full path decides what to do with it
            return False
        state.digest.update(text.encode() if b"\\" in raw else raw)
        state.chars += len(text)
        return True

    def closing_chunks(self) -> list[dict[str, Any]]:
        """Chunks carrying the end label of choices whose stream ended without a ``finish_reason``."""
        out: list[dict[str, Any]] = []
        for index, text in self._unfinished():
            piece: dict[str, Any] = {"index": index, "finish_reason": None}
            piece.update({"delta": {"content": text}} if self.kind == "chat" else {"text": text})
            base: dict[str, Any] = {k: self._last[k] for k in ("id", "object", "created", "model") if k in self._last}
            out.append({**base, "choices": [piece]})
        return out

    def closing(self) -> bytes:
        """:meth:`closing_chunks` as server-sent events."""
        return b"".join(sse_event(chunk) for chunk in self.closing_chunks())

    # ------------------------------------------------------------------ helpers
    def _slot(self, choice: Any, container: str) -> tuple[dict[str, Any], str] | None:
        if not isinstance(choice, dict):
            return None
        if self.kind == "completion":
            return choice, "text"
        holder = choice.get(container)
        return (holder, "content") if isinstance(holder, dict) else None


def _key_name(key: Any) -> str:
    return ".".join(map(str, key)) if isinstance(key, tuple) else str(key)


def _index(choice: dict[str, Any], default: int) -> int:
    index = choice.get("index", default)
    return index if isinstance(index, int) else default


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def sse_event(chunk: dict[str, Any], event: str | None = None) -> bytes:
    """One chunk as a server-sent event (with an ``event:`` line when ``event`` is given)."""
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + _dumps(chunk) + b"\n\n"


def data_of(event: bytes) -> tuple[list[re.Match[bytes]], Any]:
    """The ``data:`` lines of a server-sent event and their value parsed as JSON (``None`` when not JSON;
    the bytes ``[DONE]`` for OpenAI's end marker)."""
    lines = list(_DATA_LINE.finditer(event))
    if not lines:
        return lines, None
    data = b"\n".join(line.group(1).rstrip(b"\r") for line in lines)  # several data lines make one value
    if data == b"[DONE]":
        return lines, data
    try:
        return lines, json.loads(data)
    except ValueError:
        return lines, None


def replace_data(event: bytes, lines: list[re.Match[bytes]], value: dict[str, Any]) -> bytes:
    """``event`` with its data lines replaced by one line holding ``value`` (``id:``/``event:`` lines kept)."""
    first, last = lines[0], lines[-1]
    others = _DATA_LINE.sub(b"", event[first.end() : last.start()]).strip(b"\r\n")
    kept = others + b"\n" if others else b""
    return event[: first.start()] + kept + b"data: " + _dumps(value) + event[last.end() :]


def asks_structured(request: Any) -> bool:
    """Whether a parsed request body asks for JSON output: OpenAI's ``response_format`` (chat/completions),
    the Responses API's ``text.format``, or Ollama's ``format``."""
    if not isinstance(request, dict):
        return False
    fmt = request.get("response_format")
    text = request.get("text")
    if isinstance(text, dict):
        fmt = fmt or text.get("format")
    if isinstance(fmt, dict):
        return fmt.get("type") in ("json_object", "json_schema")
    ollama = request.get("format")
    return bool(ollama) and (ollama == "json" or isinstance(ollama, dict))
