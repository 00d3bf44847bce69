"""The GIF sub-block skipper's run-jumping fast path lands exactly where a byte-by-byte walk does."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aigclabel.containers import gif
from aigclabel.errors import TruncatedFileError


def _reference_end(data: bytes, start: int) -> int:
    i = start
    while data[i] != 0:
        i += data[i] + 1
    return i + 1


def _sub_blocks(lengths: list[int]) -> bytes:
    return b"".join(bytes([n]) + bytes([n % 251]) * n for n in lengths) + b"\x00"


_lengths = st.lists(st.one_of(st.just(255), st.integers(1, 255)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(lead=st.integers(0, 7), lengths=_lengths, window=st.sampled_from([1, 7, 256, 300, 1 << 16]))
def test_skip_lands_after_the_terminator(lead: int, lengths: list[int], window: int) -> None:
    data = b"\x2c" * lead + _sub_blocks(lengths) + b"\x3b"
    handle = io.BytesIO(data)
    handle.seek(lead)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gif, "_WALK_WINDOW", window)
        gif._skip_sub_blocks(handle, len(data))
    assert handle.tell() == _reference_end(data, lead)


@pytest.mark.parametrize("lengths", [[255] * 5, [255, 255, 10], [3]])
def test_truncated_sequence_raises(lengths: list[int]) -> None:
    data = _sub_blocks(lengths)[:-1]  # no terminator
    handle = io.BytesIO(data)
    with pytest.raises(TruncatedFileError):
        gif._skip_sub_blocks(handle, len(data))
