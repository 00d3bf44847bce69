"""The TC260 XMP property editor: lossless edits of foreign packets, both value forms, hostile XML."""

from __future__ import annotations

import pytest

from aigclabel import MalformedFileError
from aigclabel.xmp import TC260_NS, find_aigc, has_properties, new_packet, remove_aigc, set_aigc

FOREIGN = (
    b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
    b' <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:xmp="http://ns.adobe.com/xap/1.0/"'
    b' xmp:CreatorTool="Paint 1.0"><dc:title><rdf:Alt><rdf:li xml:lang="x-default">Sunset</rdf:li></rdf:Alt></dc:title>'
    b"</rdf:Description>\n </rdf:RDF></x:xmpmeta>\n" + b" " * 200 + b'\n<?xpacket end="w"?>'
)


def test_new_packet_roundtrip() -> None:
    assert find_aigc(new_packet('{"Label":"1"}')) == ['{"Label":"1"}']


def test_set_then_remove_restores_foreign_packet_byte_for_byte() -> None:
    labelled = set_aigc(FOREIGN, '{"Label":"1","ContentProducer":"a&b<c>"}')
    assert find_aigc(labelled) == ['{"Label":"1","ContentProducer":"a&b<c>"}']
    assert b"Sunset" in labelled and b'xmp:CreatorTool="Paint 1.0"' in labelled
    assert remove_aigc(labelled) == FOREIGN


def test_set_replaces_attribute_form_under_another_prefix() -> None:
    packet = FOREIGN.replace(
        b'xmp:CreatorTool="Paint 1.0"', f'xmlns:T="{TC260_NS}" T:AIGC="{{&quot;Label&quot;:&quot;2&quot;}}"'.encode()
    )
    assert find_aigc(packet) == ['{"Label":"2"}']
    assert find_aigc(set_aigc(packet, "{}")) == ["{}"]


def test_remove_reports_empty_packet_as_none() -> None:
    assert remove_aigc(new_packet("{}")) is None
    assert has_properties(FOREIGN)


@pytest.mark.parametrize(
    "hostile",
    [
        b'<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]><x>&b;' + TC260_NS.encode() + b"</x>",
        b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;' + TC260_NS.encode() + b"</x>",
        b"<x:xmpmeta " + TC260_NS.encode(),
        b"\xff\xfe" + TC260_NS.encode(),
    ],
)
def test_hostile_or_broken_xml_raises_typed_error(hostile: bytes) -> None:
    with pytest.raises(MalformedFileError):
        find_aigc(hostile)
    with pytest.raises(MalformedFileError):
        set_aigc(hostile, "{}")
