"""The expat fast path of :func:`aigclabel.xmp.find_aigc` against a full defusedxml tree walk."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import defusedxml.ElementTree as SafeET
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aigclabel import MalformedFileError
from aigclabel.xmp import TC260_NS, find_aigc, has_properties, new_packet, remove_aigc, set_aigc

_TAG = f"{{{TC260_NS}}}AIGC"


def _reference(packet: str) -> list[str]:
    """What a whole ElementTree says, walked in document order (the pre-expat implementation)."""
    root = SafeET.fromstring(packet.strip("\x00 \t\r\n\ufeff"))
    found: list[str] = []
    for element in root.iter():
        if _TAG in element.attrib:
            found.append(element.attrib[_TAG])
        if element.tag == _TAG:
            found.append(element.text or "")
    return found


def _wrap(body: str) -> str:
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" xmlns:T="{TC260_NS}" xmlns:U="{TC260_NS}">{body}</rdf:Description>'
        '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    )


CASES = [
    "<T:AIGC>plain</T:AIGC>",
    "<T:AIGC/>",
    "<T:AIGC></T:AIGC>",
    "<T:AIGC>a<!-- c -->b<?pi x?>c</T:AIGC>",
    "<T:AIGC><![CDATA[<raw & text>]]>tail</T:AIGC>",
    "<T:AIGC>&quot;q&quot; &amp; &#x4E2D;&lt;</T:AIGC>",
    "<T:AIGC>before<x>inner</x>after</T:AIGC>",
    "<T:AIGC>outer<U:AIGC>inner</U:AIGC>after</T:AIGC>",
    '<rdf:li T:AIGC="attr"/><T:AIGC>elem</T:AIGC>',
    '<T:AIGC T:AIGC="both">text</T:AIGC>',
    '<x xmlns="' + TC260_NS + '"><AIGC>default namespace</AIGC></x>',
    '<x AIGC="unqualified attribute is not ours"/><AIGC>no namespace</AIGC>',
    "<T:AIGC>one</T:AIGC><U:AIGC>two</U:AIGC>",
    "<T:AIGC>\n  spaced \t\n</T:AIGC>",
]


@pytest.mark.parametrize("body", CASES)
def test_same_values_as_a_tree_walk(body: str) -> None:
    packet = _wrap(body)
    expected = _reference(packet)
    assert find_aigc(packet) == expected
    assert find_aigc(packet.encode()) == expected


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["T:AIGC", "U:AIGC", "rdf:li", "T:Other"]),
            st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF, exclude_categories=("Cs",)), max_size=20),
            st.booleans(),
        ),
        max_size=6,
    )
)
def test_same_values_as_a_tree_walk_generated(items: list[tuple[str, str, bool]]) -> None:
    parts = []
    for tag, text, as_attr in items:
        value = text.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
        parts.append(f'<{tag} T:AIGC="{value}"/>' if as_attr else f"<{tag}>{value}</{tag}>")
    packet = _wrap("".join(parts))
    assert find_aigc(packet) == _reference(packet)


@pytest.mark.parametrize(
    "packet",
    [
        f'<!DOCTYPE x><x xmlns:T="{TC260_NS}"><T:AIGC>v</T:AIGC></x>',
        f'<!DOCTYPE x SYSTEM "http://example.invalid/x.dtd"><x xmlns:T="{TC260_NS}"/>',
        f'<!DOCTYPE x [<!ENTITY a "b">]><x xmlns:T="{TC260_NS}"><T:AIGC>&a;</T:AIGC></x>',
        f'<!DOCTYPE x [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><x xmlns:T="{TC260_NS}"/>',
    ],
)
def test_any_doctype_is_refused_by_readers_and_editors(packet: str) -> None:
    with pytest.raises(MalformedFileError, match="forbidden"):
        find_aigc(packet)
    with pytest.raises(MalformedFileError, match="forbidden"):
        set_aigc(packet.encode(), "{}")
    with pytest.raises(MalformedFileError, match="forbidden"):
        remove_aigc(packet.encode())
    with pytest.raises(MalformedFileError, match="forbidden"):
        has_properties(packet)


@pytest.mark.parametrize(
    "packet",
    [
        _wrap("<T:AIGC>unclosed"),
        _wrap("<T:AIGC>&undefined;</T:AIGC>"),
        _wrap("<Z:AIGC>unbound prefix</Z:AIGC>"),
        _wrap("<T:AIGC>v</T:AIGC>") + "<junk/>",
        _wrap('<T:AIGC a="1" a="2">v</T:AIGC>'),
    ],
)
def test_malformed_packets_raise_like_the_tree_parser(packet: str) -> None:
    with pytest.raises(ET.ParseError):
        _reference(packet)
    with pytest.raises(MalformedFileError, match="not well-formed"):
        find_aigc(packet)


def test_edits_still_verified_through_the_fast_path() -> None:
    packet = set_aigc(new_packet('{"Label":"1"}'), '{"Label":"2"}')
    assert find_aigc(packet) == _reference(packet.decode()) == ['{"Label":"2"}']


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80) | st.text(alphabet='{}":,&;<>quotamp \r\n\t\x01ABC', max_size=40))
def test_our_own_packets_read_without_the_parser_as_with_it(value: str) -> None:
    """A packet :func:`new_packet` wrote is read without expat (bytes in); the value must be what
    the tree walk reads, and anything outside the plain subset must take the parser."""
    packet = new_packet(value)
    try:
        expected = _reference(packet.decode())
    except ET.ParseError:
        with pytest.raises(MalformedFileError):
            find_aigc(packet)
        return
    assert find_aigc(packet) == expected
