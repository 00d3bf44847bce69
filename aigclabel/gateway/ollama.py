"""Labelling answers of Ollama's own API (``/api/chat``, ``/api/generate``), whole or streamed.

Ollama streams JSON lines (``application/x-ndjson``), each a piece of the answer in ``message.content``
(chat) or ``response`` (generate), the last one with ``"done": true``. The head label goes into the first
piece, the tail into the ``done`` line; a stream that ends without one gets one more line carrying the tail.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from ..label import AIGCLabel
from .settings import GatewaySettings
from .text import LABEL_FIELD, AnswerLabeller, _Choice, _dumps

OllamaKind = Literal["chat", "generate"]


class OllamaLabeller(AnswerLabeller):
    """Labels one ``/api/chat`` or ``/api/generate`` answer, whole or as a stream of JSON lines."""

    framing = "ndjson"

    def __init__(
        self, settings: GatewaySettings, label: AIGCLabel, kind: OllamaKind, *, structured: bool = False
    ) -> None:
        super().__init__(settings, label, structured=structured)
        self.kind = kind
        self.dialect = f"ollama-{kind}"
        self._tagged = False
        self._model: Any = None

    def label_body(self, body: dict[str, Any]) -> dict[str, Any]:
        """Label a whole answer (``"stream": false``) in place and add the ``aigc`` field."""
        body[LABEL_FIELD] = self.label.to_dict()
        slot = self._slot(body)
        if slot is not None and isinstance(slot[0].get(slot[1]), str):
            slot[0][slot[1]] = self._whole(0, slot[0][slot[1]])
        self.done = True
        return body

    def label_event(self, event: bytes) -> bytes:
        """One JSON line of a streamed answer, labelled if it carries text that needs it."""
        try:
            value = json.loads(event)
        except ValueError:
            return event
        if not isinstance(value, dict) or "error" in value:
            return event
        self._model = value.get("model", self._model)
        changed = not self._tagged
        if changed:
            value[LABEL_FIELD] = self.label.to_dict()
            self._tagged = True
        slot = self._slot(value)
        state = self.choices.setdefault(0, _Choice())
        last = value.get("done") is True
        if slot is not None:
            holder, key = slot
            state.tool = state.tool or bool(holder.get("tool_calls"))
            piece = holder.get(key)
            if not state.tool and (piece is None or isinstance(piece, str)):
                text = self._piece(state, piece or "", last=last)
                if text != (piece or ""):
                    holder[key] = text
                    changed = True
        if last:
            self.done = True
        return _dumps(value) + b"\n" if changed else event

    def closing(self) -> bytes:
        """A line carrying the end label when the stream ended without ``"done": true``."""
        out = b""
        for _key, text in self._unfinished():
            piece: dict[str, Any] = (
                {"message": {"role": "assistant", "content": text}} if self.kind == "chat" else {"response": text}
            )
            out += _dumps({"model": self._model, **piece, "done": False}) + b"\n"
        return out

    def _slot(self, value: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
        if self.kind == "generate":
            return value, "response"
        message = value.get("message")
        return (message, "content") if isinstance(message, dict) else None
