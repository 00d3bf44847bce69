"""The GB 45438-2025 Annex E implicit label: one source of truth for field names and validation.

An implicit label is a JSON object of seven string fields, always in this order::

    Label, ContentProducer, ProduceID, ReservedCode1, ContentPropagator, PropagateID, ReservedCode2

It is stored in two shapes, and readers must accept both:

* **bare**: the seven fields alone, used where the container slot is already named ``AIGC``
  (XMP ``TC260:AIGC``, MP4 key ``AIGC``, ID3 ``TXXX:AIGC``, RIFF chunk ``AIGC``...);
* **wrapped**: ``{"AIGC": {...seven fields...}}``, used where the slot has no name of its own
  (PNG ``tEXt`` under another keyword, EXIF UserComment).

Values should consist of GB 18030 code points 0x21, 0x23-0x5B, 0x5D-0x7E plus the escaped quote
``\\"`` (Annex E j). After JSON decoding that is printable ASCII without space or backslash; a
``"`` is allowed because JSON escapes it as ``\\"``. Annex E says "mainly", so :meth:`AIGCLabel.problems`
reports a breach and the strict constructors reject it: we write only conforming labels and read
anything that parses.

Severity of each finding follows the standard (readings taken where it is silent are marked):

* **error**: what GB 45438 requires. §6.1 a) requires five elements (Label, ContentProducer,
  ProduceID, ContentPropagator, PropagateID), so a missing key for any of them is an error;
  Annex E c) fixes the Label values; a label stating "1" (AI-generated) with an empty
  ContentProducer or ProduceID names no responsible provider (§6.1 a 2, 3); JSON types, unknown or
  repeated keys break the Annex E b) form.
* **warning**: what the standard only shows or says "may"/"mainly". The key order is the order
  Annex E b) prints, but RFC 8259 leaves object members unordered and ordinary JSON libraries
  reorder them, so a different order is reported (``field-order``) and the label is still read
  (most interoperable reading; the standard text seen does not say the order is binding).
  ReservedCode1/2 "may" carry data (Annex E f, i): a missing reserved key is a warning. A Label "2"
  or "3" with no producer is how a platform labels content of unknown origin (Measures Art. 6(2),
  (3)), so that is a warning too. Empty propagation *values* are normal before publication and not
  reported (Annex E Note 1 is unconfirmed).
* **vendor limits** are warnings naming the vendor: the standard sets no length limit; Tencent
  Cloud's API caps each field at 2048 characters (``vendor-length``). :meth:`AIGCLabel.validate`
  still refuses it, so nothing we write is rejected by a known platform.
"""

from __future__ import annotations

import functools
import json
import operator
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import Any, Literal

from .errors import InvalidLabelError

#: The seven Annex E keys, in the order the standard prints them and we write them.
FIELD_NAMES: tuple[str, ...] = (
    "Label",
    "ContentProducer",
    "ProduceID",
    "ReservedCode1",
    "ContentPropagator",
    "PropagateID",
    "ReservedCode2",
)

_FIELD_POSITION = {key: i for i, key in enumerate(FIELD_NAMES)}

#: The fields the content producer writes, which no later party rewrites (Measures Art. 10), and the
#: fields each propagating platform writes in their place (§6.1 a 4, 5; Annex E g-i).
PRODUCER_FIELDS: tuple[str, ...] = FIELD_NAMES[:4]
PROPAGATION_FIELDS: tuple[str, ...] = FIELD_NAMES[4:]

#: The reserved field each role's signature goes into; it signs every field before it (:func:`signed_fields`).
SIGNATURE_FIELDS: Mapping[Literal["producer", "propagator"], str] = {
    "producer": "ReservedCode1",
    "propagator": "ReservedCode2",
}


def signed_fields(role: Literal["producer", "propagator"]) -> tuple[str, ...]:
    """The keys a ``role``'s signature covers: every field before its own reserved field."""
    return FIELD_NAMES[: _FIELD_POSITION[SIGNATURE_FIELDS[role]]]


#: Key of the wrapped shape ``{"AIGC": {...}}``.
WRAPPER_KEY = "AIGC"

#: Longest value per field a known platform accepts. The standard sets no limit; Tencent Cloud's API
#: caps each field at 2048 characters. Reading reports a longer value as a warning naming the vendor;
#: writing refuses it (an SM2 ``SecurityData`` fits well within it).
MAX_FIELD_LENGTH = 2048

#: Who imposes :data:`MAX_FIELD_LENGTH` (named in the finding).
FIELD_LENGTH_VENDOR = "Tencent Cloud"

#: The five elements GB 45438 §6.1 a) requires; the two reserved keys are optional content (Annex E f, i).
REQUIRED_ELEMENTS: frozenset[str] = frozenset(
    ("Label", "ContentProducer", "ProduceID", "ContentPropagator", "PropagateID")
)

#: Findings :meth:`AIGCLabel.validate` refuses although they are warnings: vendor limits, which a
#: label we write must still meet.
_REFUSED_ON_WRITE = frozenset({"vendor-length"})

#: Longest raw label text we try to parse; anything longer is hostile or not a label.
MAX_LABEL_TEXT = 64 * 1024

#: What a field value may hold after JSON decoding (Annex E j): printable ASCII without space or backslash.
VALUE_PATTERN = re.compile(r"[\x21-\x5B\x5D-\x7E]*")
_PROVIDER_CODE = re.compile(r"00[0-9A-Z]{25}")
_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_USCC_VALUE = {c: i for i, c in enumerate(_USCC_CHARS)}

LabelShape = Literal["bare", "wrapped"]
Severity = Literal["error", "warning"]


class LabelValue(StrEnum):
    """Values of the ``Label`` field (Annex E c), also the platform classes of Measures Art. 6."""

    CONFIRMED = "1"
    POSSIBLE = "2"
    SUSPECTED = "3"

    @property
    def meaning(self) -> str:
        """Plain-English meaning of the value."""
        return {"1": "AI-generated", "2": "possibly AI-generated", "3": "suspected AI-generated"}[self.value]


_LABEL_VALUES = frozenset(v.value for v in LabelValue)


@dataclass(frozen=True)
class Problem:
    """One finding about a label or a file: a stable code, a sentence, and how bad it is."""

    code: str
    message: str
    severity: Severity = "error"
    field: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        """JSON-ready form."""
        return {
            "code": self.code,
            "message": self.message,
            "severity": self.severity,
            "field": self.field,
        }


@dataclass(frozen=True)
class AIGCLabel:
    """An Annex E implicit label. Instances are immutable; use :meth:`with_propagation` to extend."""

    label: str = LabelValue.CONFIRMED.value
    content_producer: str = ""
    produce_id: str = ""
    reserved_code1: str = ""
    content_propagator: str = ""
    propagate_id: str = ""
    reserved_code2: str = ""

    # ------------------------------------------------------------------ construction
    @classmethod
    def for_producer(
        cls,
        content_producer: str,
        produce_id: str | None = None,
        *,
        label: LabelValue | str = LabelValue.CONFIRMED,
        reserved_code1: str = "",
    ) -> AIGCLabel:
        """A generation-side label; a fresh ProduceID is made when none is given.

        Raises :class:`InvalidLabelError` if the result does not conform.
        """
        made = cls(
            label=LabelValue(label).value,
            content_producer=content_producer,
            produce_id=produce_id if produce_id is not None else new_produce_id(),
            reserved_code1=reserved_code1,
        )
        made.validate(role="producer")
        return made

    def with_propagation(
        self,
        content_propagator: str,
        propagate_id: str | None = None,
        *,
        reserved_code2: str = "",
        label: LabelValue | str | None = None,
    ) -> AIGCLabel:
        """A copy carrying a platform's propagation fields; the producer's fields are kept."""
        made = replace(
            self,
            label=self.label if label is None else LabelValue(label).value,
            content_propagator=content_propagator,
            propagate_id=propagate_id if propagate_id is not None else new_produce_id(),
            reserved_code2=reserved_code2,
        )
        made.validate(role="propagator")
        return made

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> AIGCLabel:
        """Build from a mapping keyed by the Annex E names (missing keys become ``""``).

        Non-string values are converted leniently (a numeric ``Label`` is common in the wild);
        :meth:`parse` reports that as a problem.
        """
        values = {}
        for attr, key in zip(_ATTRS, FIELD_NAMES, strict=True):
            value = data.get(key, "")
            if value is None:
                value = ""
            if isinstance(value, (dict, list)):
                raise InvalidLabelError(f"field {key} must be a string, not a JSON {type(value).__name__}")
            values[attr] = value if isinstance(value, str) else json.dumps(value)
        return cls(**values)

    @classmethod
    def parse(cls, text: str | bytes) -> ParsedLabel:
        """Parse a stored label in either shape; conformance problems are reported, not raised.

        Raises :class:`InvalidLabelError` only when the text is not a JSON object with label fields.
        """
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidLabelError(f"label is not UTF-8 text: {exc}") from None
        if (known := _SERIALISED.get(text)) is not None:  # see _SERIALISED
            parsed: ParsedLabel | None = known.__dict__.get("_parsed")
            if parsed is None:  # immutable both, so one result serves every read of this text
                parsed = ParsedLabel.bare(known)
                object.__setattr__(known, "_parsed", parsed)
            return parsed
        text = text.strip().lstrip("\ufeff").rstrip("\x00")
        if len(text) > MAX_LABEL_TEXT:
            raise InvalidLabelError(f"label text is {len(text)} characters, over the {MAX_LABEL_TEXT} limit")
        if (canonical := _CANONICAL(text)) is not None:  # see _CANONICAL: the decoder would give these values
            return ParsedLabel.bare(cls(*canonical.groups()))
        try:
            data = _DECODER.decode(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise InvalidLabelError(f"label is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidLabelError("label JSON must be an object")
        if "\\u" in text:  # only a \uD8xx escape can smuggle in a lone surrogate, which no output can encode
            try:
                json.dumps(data, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidLabelError("label JSON holds a lone UTF-16 surrogate escape (not Unicode text)") from None
        duplicates = data.duplicates if isinstance(data, _Object) else ()  # the wrapper's, nested ones too
        if not duplicates and tuple(data) == FIELD_NAMES and all(type(v) is str for v in data.values()):
            # The shape every conforming writer stores: each key check below would pass, so only the
            # label's own problems are left (the same result, a third cheaper for a platform's uploads).
            return ParsedLabel.bare(cls(*data.values()))
        shape: LabelShape = "bare"
        if set(data) == {WRAPPER_KEY}:
            inner = data[WRAPPER_KEY]
            if isinstance(inner, str):  # some writers double-encode the inner object
                return cls.parse(inner)
            if not isinstance(inner, dict):
                raise InvalidLabelError('"AIGC" must hold an object of the seven label fields')
            data, shape = inner, "wrapped"
        if not any(key in data for key in FIELD_NAMES):
            raise InvalidLabelError("JSON object has none of the Annex E label fields")
        problems: list[Problem] = []
        for key in sorted(set(duplicates)):
            problems.append(Problem("duplicate-key", f"key {key} appears more than once", field=key))
        for key in data:
            if key not in FIELD_NAMES:
                problems.append(Problem("unknown-key", f"unknown key {key!r} (keys are case-sensitive)", field=key))
        for key in FIELD_NAMES:
            if key not in data:
                if key in REQUIRED_ELEMENTS:
                    message = f"key {key} is missing (GB 45438 §6.1 a) requires this element)"
                    problems.append(Problem("missing-key", message, field=key))
                else:
                    problems.append(Problem("missing-key", f"key {key} is missing (Annex E b)", "warning", key))
            elif not isinstance(data[key], str):
                problems.append(Problem("not-a-string", f"{key} must be a JSON string", field=key))
        present = [key for key in data if key in _FIELD_POSITION]
        if present != sorted(present, key=_FIELD_POSITION.__getitem__):
            problems.append(
                Problem(
                    "field-order",
                    f"keys are in the order {', '.join(present)}; Annex E b) prints {', '.join(FIELD_NAMES)}",
                    "warning",
                )
            )
        label = cls.from_mapping(data)
        problems.extend(label.problems())
        return ParsedLabel(label=label, shape=shape, problems=tuple(problems))

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, str]:
        """The seven fields keyed by their Annex E names, in order."""
        return {key: getattr(self, attr) for attr, key in zip(_ATTRS, FIELD_NAMES, strict=True)}

    def to_json(self, shape: LabelShape = "bare") -> str:
        """Compact JSON in the given shape, ASCII only, keys in Annex E order."""
        cached: str | None = self.__dict__.get("_json")
        if shape == "bare" and cached is not None:
            return cached  # a write serialises its label several times (render, read-back check)
        body: dict[str, Any] = self.to_dict()
        if shape == "wrapped":
            body = {WRAPPER_KEY: body}
        text = json.dumps(body, ensure_ascii=True, separators=(",", ":"))
        if shape == "bare":
            object.__setattr__(self, "_json", text)  # immutable instance: the text never goes stale
            if len(text) <= MAX_LABEL_TEXT and "\\u" not in text and all(type(v) is str for v in body.values()):
                if len(_SERIALISED) >= _SERIALISED_MAX:
                    _SERIALISED.clear()
                _SERIALISED[text] = self
        return text

    # ------------------------------------------------------------------ validation
    def problems(self, role: Literal["any", "producer", "propagator"] = "any") -> list[Problem]:
        """Every way this label departs from Annex E (empty list when it conforms)."""
        found: list[Problem] = []
        if self.label not in _LABEL_VALUES:
            found.append(
                Problem("bad-label-value", f'Label must be "1", "2" or "3", not {self.label!r}', field="Label")
            )
        values: tuple[str, ...] = _VALUES(self)
        # The common case, every field short and clean, costs one regex match over all of them
        # (a run of allowed characters is allowed whatever the boundaries); only a failure looks
        # at the fields one by one to say which and why.
        joined = "".join(values)
        if len(joined) > MAX_FIELD_LENGTH or VALUE_PATTERN.fullmatch(joined) is None:
            for value, key in zip(values, FIELD_NAMES, strict=True):
                if len(value) > MAX_FIELD_LENGTH:
                    message = (
                        f"{key} is {len(value)} characters; {FIELD_LENGTH_VENDOR} accepts at most "
                        f"{MAX_FIELD_LENGTH} (a vendor limit, GB 45438 sets none)"
                    )
                    found.append(Problem("vendor-length", message, "warning", key))
                if not VALUE_PATTERN.fullmatch(value):
                    bad = sorted({c for c in value if not VALUE_PATTERN.fullmatch(c)})
                    shown = ", ".join(repr(c) for c in bad[:5])
                    found.append(
                        Problem(
                            "bad-characters",
                            f"{key} has characters outside printable ASCII without space or backslash: {shown}",
                            field=key,
                        )
                    )
        if role in ("any", "producer") and not (self.content_producer and self.produce_id):
            # A confirmed label must name its provider (§6.1 a); a "2"/"3" may come from a platform
            # labelling content of unknown origin (Measures Art. 6(2), (3)).
            severity: Severity = "error" if role == "producer" or self.label == LabelValue.CONFIRMED else "warning"
            for attr, key in (("content_producer", "ContentProducer"), ("produce_id", "ProduceID")):
                if not getattr(self, attr):
                    found.append(Problem("missing-producer", f"{key} is empty", severity, key))
        if role == "propagator":
            for attr, key in (("content_propagator", "ContentPropagator"), ("propagate_id", "PropagateID")):
                if not getattr(self, attr):
                    found.append(Problem("missing-propagator", f"{key} is empty", field=key))
        for code, key in ((self.content_producer, "ContentProducer"), (self.content_propagator, "ContentPropagator")):
            if len(code) == 27 and code.startswith("00"):
                for message in _provider_code_problems(code):
                    found.append(Problem("bad-provider-code", f"{key}: {message}", "warning", key))
        return found

    def validate(self, role: Literal["any", "producer", "propagator"] = "any") -> None:
        """Raise :class:`InvalidLabelError` listing every error-severity problem and every vendor limit
        breached (what we write must be accepted by every known platform)."""
        errors = [p.message for p in self.problems(role) if p.severity == "error" or p.code in _REFUSED_ON_WRITE]
        if errors:
            raise InvalidLabelError("invalid AIGC label: " + "; ".join(errors))

    @property
    def value(self) -> LabelValue | None:
        """The ``Label`` field as an enum, or ``None`` when it is not one of the three values."""
        try:
            return LabelValue(self.label)
        except ValueError:
            return None


_ATTRS: tuple[str, ...] = tuple(f.name for f in fields(AIGCLabel))
#: The seven values of a label in Annex E order, in one call.
_VALUES: Callable[[AIGCLabel], tuple[str, ...]] = operator.attrgetter(*_ATTRS)
#: The :class:`AIGCLabel` attribute of each Annex E key (``"ProduceID"`` -> ``"produce_id"``).
FIELD_ATTRS: Mapping[str, str] = dict(zip(FIELD_NAMES, _ATTRS, strict=True))


def value_conforms(value: str) -> bool:
    """True for a field value of Annex E characters within :data:`MAX_FIELD_LENGTH` (what we write)."""
    return len(value) <= MAX_FIELD_LENGTH and VALUE_PATTERN.fullmatch(value) is not None


def looks_like_label_json(text: str) -> bool:
    """True when free text (a comment, a user comment) is probably a label in either shape, so a reader
    reports it, even broken, rather than passing it over."""
    text = text.strip().strip("\x00").strip()
    return text.startswith("{") and any(f'"{key}"' in text for key in (WRAPPER_KEY, *FIELD_NAMES[:2]))


class _Object(dict[str, Any]):
    """A decoded JSON object that remembers every key repeated in it or in anything nested in it,
    including values a later duplicate replaced (the decoder sees those; the result does not)."""

    duplicates: tuple[str, ...] = ()


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    made = _Object(pairs)
    repeated: list[str] = []
    if len(made) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                repeated.append(key)
            seen.add(key)
    for _, value in pairs:
        if isinstance(value, _Object):
            repeated.extend(value.duplicates)
        elif isinstance(value, list):
            stack = [value]  # arrays are built without a hook: look for objects inside them
            while stack:
                for item in stack.pop():
                    if isinstance(item, _Object):
                        repeated.extend(item.duplicates)
                    elif isinstance(item, list):
                        stack.append(item)
    if repeated:
        made.duplicates = tuple(repeated)
    return made


#: The text every conforming writer stores, as this package writes it: the seven keys in order, no
#: blanks, string values without escapes (no ``"``, ``\\`` or control character, which JSON refuses
#: unescaped). Its groups are exactly the values the JSON decoder would give, with no duplicate key,
#: so :meth:`AIGCLabel.parse` takes them without decoding (a third of a parse).
_CANONICAL = re.compile(r"\{" + ",".join(rf'"{key}":"([^"\\\x00-\x1f]*)"' for key in FIELD_NAMES) + r"\}").fullmatch

#: One decoder for every label: building a decoder per call cost as much as decoding a label.
_DECODER = json.JSONDecoder(object_pairs_hook=_object)

#: The labels this process serialised lately, by their exact text: reading one back (every write's
#: read-back check does) needs no JSON parse, because parsing that text gives an equal label, shape
#: "bare" and no problems but the label's own (all seven keys present, in order, no escapes).
#: Texts over the size limit or with ``\u`` escapes are not kept: :meth:`AIGCLabel.parse` refuses some.
_SERIALISED: dict[str, AIGCLabel] = {}
_SERIALISED_MAX = 256


@dataclass(frozen=True)
class ParsedLabel:
    """A label read from a file, with the shape it was stored in and what is wrong with it."""

    label: AIGCLabel
    shape: LabelShape
    problems: tuple[Problem, ...] = field(default=())

    @classmethod
    def bare(cls, label: AIGCLabel) -> ParsedLabel:
        """``label`` as read from the shape every conforming writer stores (the seven keys in order, all
        strings, no others): the key checks all pass, so only the label's own problems are left."""
        return cls(label, "bare", tuple(label.problems()))

    @property
    def conforms(self) -> bool:
        """True when no error-severity problem was found."""
        return not any(p.severity == "error" for p in self.problems)


# ---------------------------------------------------------------------- identifiers
def new_produce_id() -> str:
    """A unique content ID: 32 lowercase hex digits (a UUIDv7, so IDs sort by creation time)."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10)) >> 6  # 74 random bits, as secrets.randbits(74) draws them
    value = (millis & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (rand >> 62) << 64 | 0b10 << 62 | (rand & ((1 << 62) - 1))
    return f"{value:032x}"  # what uuid.UUID(int=value).hex gives, without loading uuid (and platform) on every run


def uscc_check_digit(first17: str) -> str:
    """Check character of an 18-character unified social credit code (GB 32100-2015)."""
    if len(first17) != 17 or any(c not in _USCC_CHARS for c in first17):
        raise InvalidLabelError(f"not the first 17 characters of a USCC: {first17!r}")
    total = sum(map(int.__mul__, map(_USCC_VALUE.__getitem__, first17), _USCC_WEIGHTS))
    return _USCC_CHARS[(31 - total % 31) % 31]


def make_provider_code(
    subject_id: str,
    *,
    subject_type: str = "1",
    binding_type: str = "1",
    service_type: Literal["0", "1", "2"] = "1",
    service_code: str = "0000",
) -> str:
    """Build a 27-character service-provider code per TC260-PG-20252A.

    Layout: ``00`` + subject type + binding type + 18-character subject ID + 5-character service
    extension (``00000`` when unused, else service type 1=generation / 2=propagation and a
    4-character code chosen by the provider). Only organisations bound by USCC (``1``/``1``) are
    confirmed by public sources; other subject and binding digits are accepted as given.
    """
    extension = "00000" if service_type == "0" else service_type + service_code
    code = f"00{subject_type}{binding_type}{subject_id}{extension}"
    problems = provider_code_problems(code)
    if problems:
        raise InvalidLabelError("invalid provider code: " + "; ".join(problems))
    return code


def provider_code_problems(code: str) -> list[str]:
    """Why ``code`` is not a well-formed TC260-PG-20252A provider code (empty list if it is)."""
    return list(_provider_code_problems(code))


@functools.lru_cache(maxsize=256)  # a platform sees the same few provider codes on every file
def _provider_code_problems(code: str) -> tuple[str, ...]:
    if not _PROVIDER_CODE.fullmatch(code):
        return (f"{code!r} is not 27 digits/upper-case letters starting with 00",)
    found: list[str] = []
    subject_type, binding_type, subject_id, extension = code[2], code[3], code[4:22], code[22:]
    if subject_type == "1" and binding_type == "1":
        if any(c not in _USCC_CHARS for c in subject_id):
            found.append(f"subject ID {subject_id} uses letters a USCC never has (I, O, S, V, Z)")
        elif uscc_check_digit(subject_id[:17]) != subject_id[17]:
            found.append(f"subject ID {subject_id} fails the USCC check digit")
    if extension != "00000" and extension[0] not in "12":
        found.append(f"service extension {extension} must be 00000 or start with 1 (generation) or 2 (propagation)")
    return tuple(found)


#: A syntactically valid code for demos and tests only; it names no real organisation.
DEMO_PROVIDER_CODE = "001191110000MA00DEMQ0B1DEMO"
