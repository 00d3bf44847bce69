"""Labelling answers of the OpenAI Responses API (``/v1/responses``), whole or streamed.

A Responses answer keeps its text in ``output[i].content[j]`` parts of type ``output_text``; a stream
sends each part as ``response.output_text.delta`` events and then repeats the whole text in the
``...output_text.done``, ``...content_part.done``, ``...output_item.done`` and ``response.completed``
events. The head label goes into the first delta of each part. The tail cannot wait for a delta that may
never come, so when a part's ``done`` arrives one extra delta carrying the tail is sent before it (the
``sequence_number`` of every later event moves up by one), and every repeated copy of the text is
replaced by the text as the client received it, so the final response equals the sum of its deltas.
"""

from __future__ import annotations

from typing import Any

from .text import LABEL_FIELD, AnswerLabeller, _Choice, data_of, replace_data, sse_event

_TEXT_PART = "output_text"


class ResponsesLabeller(AnswerLabeller):
    """Labels one ``/v1/responses`` answer, whole (:meth:`label_body`) or streamed (:meth:`label_event`)."""

    dialect = "responses"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: The text of each (output_index, content_index) part as the client received it.
        self.sent: dict[tuple[int, int], list[str]] = {}
        self._shift = 0
        self._item_ids: dict[int, str] = {}

    # ------------------------------------------------------------------ whole answers
    def label_body(self, body: dict[str, Any]) -> dict[str, Any]:
        """Label every ``output_text`` part of a whole answer in place and add the ``aigc`` field."""
        body[LABEL_FIELD] = self.label.to_dict()
        for key, part in _text_parts(body.get("output")):
            part["text"] = self._whole(key, part["text"])
        self.done = True
        return body

    # ------------------------------------------------------------------ streams
    def label_event(self, event: bytes) -> bytes:
        """One complete server-sent event, labelled where it carries text or the response object."""
        lines, value = data_of(event)
        if not isinstance(value, dict):
            return event
        kind = value.get("type")
        prefix = b""
        if isinstance(value.get("response"), dict):
            response = value["response"]
            response[LABEL_FIELD] = self.label.to_dict()
            if kind in ("response.completed", "response.incomplete", "response.failed"):
                prefix = self.closing()
                self.done = True
            self._restore(response.get("output"))
        elif kind == "response.output_text.delta" and isinstance(value.get("delta"), str):
            key = _key(value)
            self._item_ids[key[0]] = str(value.get("item_id", ""))
            value["delta"] = self._send(key, value["delta"], last=False)
        elif kind == "response.output_text.done":
            key = _key(value)
            state = self.choices.setdefault(key, _Choice())
            if self.tail and not state.finished:
                tail = self._send(key, "", last=True)
                extra = {**value, "type": "response.output_text.delta", "delta": tail}
                extra.pop("text", None)
                extra.pop("logprobs", None)
                self._renumber(extra)
                prefix = sse_event(extra, "response.output_text.delta")
                self._shift += 1
            state.finished = True
            if key in self.sent:
                value["text"] = "".join(self.sent[key])
        elif kind == "response.content_part.done" and isinstance(value.get("part"), dict):
            self._restore_part(_key(value), value["part"])
        elif kind == "response.output_item.done" and isinstance(value.get("item"), dict):
            index = value.get("output_index", 0)
            self._restore([value["item"]], first=index if isinstance(index, int) else 0)
        self._renumber(value)
        return prefix + replace_data(event, lines, value)

    def closing(self) -> bytes:
        """Deltas carrying the end label of parts whose ``done`` never came."""
        out = b""
        for key, text in self._unfinished():
            self.sent.setdefault(key, []).append(text)
            delta = {
                "type": "response.output_text.delta", "item_id": self._item_ids.get(key[0], ""),
                "output_index": key[0], "content_index": key[1], "delta": text,
            }  # fmt: skip
            out += sse_event(delta, "response.output_text.delta")
        return out

    # ------------------------------------------------------------------ helpers
    def _send(self, key: tuple[int, int], text: str, *, last: bool) -> str:
        state = self.choices.setdefault(key, _Choice())
        text = self._piece(state, text, last=last)
        self.sent.setdefault(key, []).append(text)
        return text

    def _renumber(self, value: dict[str, Any]) -> None:
        number = value.get("sequence_number")
        if self._shift and isinstance(number, int):
            value["sequence_number"] = number + self._shift

    def _restore(self, output: Any, first: int = 0) -> None:
        """Every repeated copy of a part's text replaced by the text the client received."""
        for (i, j), part in _text_parts(output):
            self._restore_part((first + i, j), part)

    def _restore_part(self, key: tuple[int, int], part: dict[str, Any]) -> None:
        if part.get("type") == _TEXT_PART and key in self.sent:
            part["text"] = "".join(self.sent[key])


def _key(value: dict[str, Any]) -> tuple[int, int]:
    i, j = value.get("output_index", 0), value.get("content_index", 0)
    return (i if isinstance(i, int) else 0, j if isinstance(j, int) else 0)


def _text_parts(output: Any) -> list[tuple[tuple[int, int], dict[str, Any]]]:
    """The ``output_text`` parts of a response's ``output`` list, each with its (item, part) index."""
    found: list[tuple[tuple[int, int], dict[str, Any]]] = []
    for i, item in enumerate(output if isinstance(output, list) else []):
        if not isinstance(item, dict) or item.get("type", "message") != "message":
            continue  # reasoning, tool calls: not text shown as the answer
        for j, part in enumerate(item.get("content") or []):
            if isinstance(part, dict) and part.get("type") == _TEXT_PART and isinstance(part.get("text"), str):
                found.append(((i, j), part))
    return found
