"""The Annex E label model: shapes, field order, charset, provider codes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aigclabel import DEMO_PROVIDER_CODE, FIELD_NAMES, AIGCLabel, InvalidLabelError, LabelValue
from aigclabel.label import make_provider_code, new_produce_id, provider_code_problems, uscc_check_digit


def test_field_order_and_compact_json(demo_label: AIGCLabel) -> None:
    text = demo_label.to_json()
    assert list(json.loads(text)) == list(FIELD_NAMES)
    assert " " not in text
    wrapped = json.loads(demo_label.to_json("wrapped"))
    assert list(wrapped) == ["AIGC"] and list(wrapped["AIGC"]) == list(FIELD_NAMES)


def test_both_shapes_parse_to_the_same_label(demo_label: AIGCLabel) -> None:
    bare = AIGCLabel.parse(demo_label.to_json())
    wrapped = AIGCLabel.parse(demo_label.to_json("wrapped"))
    assert bare.label == wrapped.label == demo_label
    assert (bare.shape, wrapped.shape) == ("bare", "wrapped")
    assert bare.conforms and not bare.problems


def test_real_world_tencent_code_is_valid() -> None:
    assert provider_code_problems("001191440300708461136T1XGW3") == []
    assert provider_code_problems(DEMO_PROVIDER_CODE) == []
    assert uscc_check_digit("91440300708461136") == "T"


def test_bad_check_digit_is_reported() -> None:
    assert any("check digit" in p for p in provider_code_problems("001191440300708461136A1XGW3"))


def test_make_provider_code_roundtrip() -> None:
    code = make_provider_code("91440300708461136T", service_code="XGW3")
    assert code == "001191440300708461136T1XGW3"
    with pytest.raises(InvalidLabelError):
        make_provider_code("91440300708461136X")


@pytest.mark.parametrize("bad", ["has space", "back\\slash", "人工智能", "tab\tchar"])
def test_charset_rule_rejects_on_write(bad: str) -> None:
    with pytest.raises(InvalidLabelError, match="characters"):
        AIGCLabel.for_producer(DEMO_PROVIDER_CODE, produce_id=bad)


def test_quote_is_allowed_because_json_escapes_it() -> None:
    made = AIGCLabel.for_producer(DEMO_PROVIDER_CODE, reserved_code1='{"SecurityData":{}}')
    assert '\\"SecurityData\\"' in made.to_json()
    assert AIGCLabel.parse(made.to_json()).conforms


def test_lenient_read_reports_problems() -> None:
    parsed = AIGCLabel.parse('{"Label":1,"ContentProducer":"x","ProduceID":"y","Extra":"z"}')
    codes = {p.code for p in parsed.problems}
    assert {"not-a-string", "unknown-key", "missing-key"} <= codes
    assert parsed.label.label == "1"
    assert AIGCLabel.parse('{"Label":"AIGC","ContentProducer":"a","ProduceID":"b"}').conforms is False


def test_duplicate_keys_are_reported() -> None:
    parsed = AIGCLabel.parse('{"Label":"1","Label":"2","ContentProducer":"a","ProduceID":"b"}')
    assert any(p.code == "duplicate-key" for p in parsed.problems)


@pytest.mark.parametrize("text", ["", "[]", "null", '"x"', "{", '{"foo":"bar"}', '{"AIGC":[1]}', "{" * 100_000])
def test_not_a_label_raises_typed_error(text: str) -> None:
    with pytest.raises(InvalidLabelError):
        AIGCLabel.parse(text)


def test_propagation_keeps_producer_fields(demo_label: AIGCLabel) -> None:
    spread = demo_label.with_propagation(DEMO_PROVIDER_CODE, "p-1", label=LabelValue.CONFIRMED)
    assert spread.produce_id == demo_label.produce_id
    assert spread.content_producer == demo_label.content_producer
    assert (spread.content_propagator, spread.propagate_id) == (DEMO_PROVIDER_CODE, "p-1")


def test_produce_ids_are_unique_and_conforming() -> None:
    ids = {new_produce_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(len(i) == 32 and i.isalnum() for i in ids)


@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="\\"), max_size=80))
def test_any_conforming_value_roundtrips(value: str) -> None:
    made = AIGCLabel(label="1", content_producer="p", produce_id="i", reserved_code1=value)
    assert made.problems() == []
    assert AIGCLabel.parse(made.to_json("wrapped")).label == made


def test_severities_follow_the_standard() -> None:
    full = {"Label": "1", "ContentProducer": "a", "ProduceID": "b", "ReservedCode1": ""}
    full |= {"ContentPropagator": "", "PropagateID": "", "ReservedCode2": ""}
    assert AIGCLabel.parse(json.dumps(full)).problems == ()

    def findings(data: dict[str, str]) -> set[tuple[str, str | None, str]]:
        return {(p.code, p.field, p.severity) for p in AIGCLabel.parse(json.dumps(data)).problems}

    # §6.1 a) elements missing: errors; reserved keys missing: warnings
    no_propagation = {k: v for k, v in full.items() if k not in ("PropagateID", "ReservedCode2")}
    assert findings(no_propagation) == {
        ("missing-key", "PropagateID", "error"),
        ("missing-key", "ReservedCode2", "warning"),
    }
    # a confirmed label without a producer: error; a platform's "2"/"3" without one: warning
    assert ("missing-producer", "ContentProducer", "error") in findings(full | {"ContentProducer": ""})
    assert ("missing-producer", "ProduceID", "warning") in findings(full | {"Label": "3", "ProduceID": ""})
    # the 2048 cap is Tencent Cloud's: a warning naming it, refused only when we write
    long = AIGCLabel.parse(json.dumps(full | {"ReservedCode2": "A" * 2049}))
    assert long.conforms and [(p.code, p.severity) for p in long.problems] == [("vendor-length", "warning")]
    assert "Tencent Cloud" in long.problems[0].message
    with pytest.raises(InvalidLabelError, match="Tencent Cloud"):
        long.label.validate()


def test_field_order_is_a_finding_but_the_label_is_read() -> None:
    label = AIGCLabel.for_producer(DEMO_PROVIDER_CODE, "id-1")
    reordered = dict(reversed(list(label.to_dict().items())))
    for text in (json.dumps(reordered), json.dumps({"AIGC": reordered})):
        parsed = AIGCLabel.parse(text)
        assert parsed.label == label and parsed.conforms
        assert [(p.code, p.severity) for p in parsed.problems] == [("field-order", "warning")]
    assert AIGCLabel.parse(label.to_json("wrapped")).problems == ()
