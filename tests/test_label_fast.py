"""The fast paths of label parsing and validation report exactly what a field-by-field check does."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aigclabel.errors import InvalidLabelError
from aigclabel.label import (
    DEMO_PROVIDER_CODE,
    FIELD_NAMES,
    MAX_FIELD_LENGTH,
    AIGCLabel,
    make_provider_code,
    provider_code_problems,
)

_ALLOWED = re.compile(r"[\x21-\x5B\x5D-\x7E]*")


def _reference_field_problems(label: AIGCLabel) -> list[tuple[str, str | None]]:
    """Too-long and bad-character findings, one field at a time, in field order."""
    found = []
    for key, value in zip(FIELD_NAMES, label.to_dict().values(), strict=True):
        if len(value) > MAX_FIELD_LENGTH:
            found.append(("vendor-length", key))
        if not _ALLOWED.fullmatch(value):
            found.append(("bad-characters", key))
    return found


_value = st.one_of(
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40),
    st.text(max_size=12),
    st.integers(0, 3).map(lambda n: "A" * (MAX_FIELD_LENGTH - 1 + n)),
    st.sampled_from([DEMO_PROVIDER_CODE, DEMO_PROVIDER_CODE[:-1] + "X", "00" + "1" * 25, ""]),
)


@pytest.mark.slow  # hypothesis
@settings(max_examples=300, deadline=None)
@given(st.lists(_value, min_size=7, max_size=7))
def test_problems_match_a_field_by_field_check(values: list[str]) -> None:
    label = AIGCLabel(*values)
    found = label.problems()
    assert [(p.code, p.field) for p in found if p.code in ("vendor-length", "bad-characters")] == (
        _reference_field_problems(label)
    )
    for key, value in (("ContentProducer", values[1]), ("ContentPropagator", values[4])):
        expected = provider_code_problems(value) if len(value) == 27 and value.startswith("00") else []
        assert [p.message for p in found if p.code == "bad-provider-code" and p.field == key] == [
            f"{key}: {m}" for m in expected
        ]


def test_many_short_fields_over_the_limit_together_are_still_clean() -> None:
    each = MAX_FIELD_LENGTH // 2
    label = AIGCLabel("1", "A" * each, "B" * each, "C" * each)
    assert label.problems() == []


def test_provider_code_problems_are_fresh_lists() -> None:
    bad = DEMO_PROVIDER_CODE[:-6] + "9DEMO"
    first = provider_code_problems(bad)
    assert first
    first.clear()
    assert provider_code_problems(bad)
    assert provider_code_problems(make_provider_code("91110000MA00DEMQ0B")) == []


def _reference_duplicates(text: str) -> list[str]:
    duplicates: list[str] = []

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                duplicates.append(key)
            seen[key] = value
        return seen

    json.loads(text, object_pairs_hook=hook)
    return sorted(set(duplicates))


_DUPLICATE_CASES = [
    '{"Label":"1","Label":"2","ContentProducer":"x"}',
    '{"AIGC":{"Label":"1","ProduceID":"a","ProduceID":"b","ProduceID":"c"}}',
    '{"Label":"1","Extra":{"k":1,"k":2,"n":[{"z":1,"z":2}]},"Extra":3}',
    '{"Label":"1","ContentProducer":"p"}',
    '{"AIGC":{"Label":"1"},"AIGC":{"Label":"2","Label":"3","x":[[{"q":1,"q":2}]]}}',
]


def test_duplicate_keys_found_anywhere_as_before() -> None:
    for text in _DUPLICATE_CASES:
        parsed = AIGCLabel.parse(text)
        reported = sorted(p.field or "" for p in parsed.problems if p.code == "duplicate-key")
        assert reported == _reference_duplicates(text), text


_raw_value = st.one_of(
    st.text(max_size=12),
    st.text(st.sampled_from('a1 "\\\x00\x1f\x7f\u00e9\u4e2d\ud800{}:,'), max_size=6),
    st.sampled_from([DEMO_PROVIDER_CODE, "1", "4", ""]),
)


@pytest.mark.slow  # hypothesis
@settings(max_examples=400, deadline=None)
@given(st.lists(_raw_value, min_size=7, max_size=7), st.booleans())
def test_canonical_text_parses_as_the_decoder_does(values: list[str], escaped: bool) -> None:
    """A label text in the canonical shape (taken without the JSON decoder) gives what the decoder
    gives for the same text with one blank added (which the shortcut does not take)."""
    quote = json.dumps if escaped else (lambda value: f'"{value}"')
    text = "{" + ",".join(f'"{key}":{quote(value)}' for key, value in zip(FIELD_NAMES, values, strict=True)) + "}"
    spaced = text.replace(":", ": ", 1)  # the first colon follows "Label"
    try:
        expected = AIGCLabel.parse(spaced)
    except InvalidLabelError:
        with pytest.raises(InvalidLabelError):
            AIGCLabel.parse(text)
        return
    assert AIGCLabel.parse(text) == expected
