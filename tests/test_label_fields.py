"""Label field metadata is declared once in aigclabel.label; these pin what the rest of the code derives from it."""

from __future__ import annotations

from aigclabel.label import (
    DEMO_PROVIDER_CODE,
    FIELD_ATTRS,
    FIELD_NAMES,
    MAX_FIELD_LENGTH,
    PRODUCER_FIELDS,
    PROPAGATION_FIELDS,
    AIGCLabel,
    looks_like_label_json,
    signed_fields,
    value_conforms,
)


def test_producer_and_propagation_fields_split_the_seven_in_order() -> None:
    assert PRODUCER_FIELDS + PROPAGATION_FIELDS == FIELD_NAMES
    assert signed_fields("producer") == ("Label", "ContentProducer", "ProduceID")
    assert signed_fields("propagator") == FIELD_NAMES[:6]


def test_with_propagation_changes_only_the_propagation_fields() -> None:
    producer = AIGCLabel.for_producer(DEMO_PROVIDER_CODE, reserved_code1="sig")
    platform = producer.with_propagation(DEMO_PROVIDER_CODE, "share-1", reserved_code2="sig2")
    before, after = producer.to_dict(), platform.to_dict()
    assert [key for key in FIELD_NAMES if before[key] != after[key]] == list(PROPAGATION_FIELDS)
    assert all(after[key] == getattr(platform, FIELD_ATTRS[key]) for key in FIELD_NAMES)


def test_value_limits() -> None:
    assert value_conforms("a" * MAX_FIELD_LENGTH) and not value_conforms("a" * (MAX_FIELD_LENGTH + 1))
    assert value_conforms('quote"ok') and not value_conforms("no space") and not value_conforms("back\\slash")
    assert looks_like_label_json(' {"Label":"1"}\x00') and not looks_like_label_json("Label: 1")


def test_the_audit_log_stores_a_whole_field() -> None:
    from aigclabel.audit.models import MAX_ID_LENGTH

    assert MAX_ID_LENGTH == MAX_FIELD_LENGTH
