"""textcodec: UTF-16/32 (with or without a byte-order mark) and UTF-8 with one are read as the
same UTF-8 bytes as plain UTF-8, a block at a time, with bytes that are not text replaced."""

from __future__ import annotations

import io

import pytest

from aerec_cli.data import textcodec

TEXT = "user,item,rating\r\nu1,Café,4\nü2,日本,5\n𝄞,x,3\n"


def opened(data: bytes) -> io.BufferedReader:
    return io.BufferedReader(io.BytesIO(data))


def read_in(stream, size: int) -> bytes:
    parts = []
    while part := stream.read(size):
        assert len(part) <= size
        parts.append(part)
    return b"".join(parts)


@pytest.mark.parametrize(
    "encoding",
    ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be", "utf-8-sig"],
)
@pytest.mark.parametrize("size", [1, 3, 64, 1 << 22])
def test_other_unicode_encodings_read_as_utf8(encoding, size):
    ascii_start = "1,2,3\n" + TEXT  # without a mark, UTF-16/32 is told by its NUL bytes
    stream = textcodec.utf8_stream(opened(ascii_start.encode(encoding)))
    assert read_in(stream, size) == ascii_start.encode("utf-8")


def test_utf8_and_8_bit_text_pass_through_untouched():
    for data in (TEXT.encode("utf-8"), "1,Café,3\n".encode("latin-1"), bytes(range(1, 256))):
        handle = opened(data)
        assert textcodec.utf8_stream(handle) is handle
        assert handle.read() == data


def test_bytes_that_are_not_text_become_replacement_characters():
    bom = b"\xff\xfe"
    lone_surrogate = bom + "1,".encode("utf-16-le") + b"\x00\xd8" + "x,3\n".encode("utf-16-le")
    assert textcodec.utf8_stream(opened(lone_surrogate)).read() == "1,\ufffdx,3\n".encode()
    cut_short = bom + "1,2,3\n".encode("utf-16-le") + b"4"  # half of a last character
    assert textcodec.utf8_stream(opened(cut_short)).read() == "1,2,3\n\ufffd".encode()


def test_the_transcoded_stream_peeks_and_streams():
    line = "1,2,3,978300760\n"
    data = (line * 500_000).encode("utf-16-le")  # 16 MB
    handle = opened(data)
    stream = textcodec.utf8_stream(handle)
    assert stream.peek(5)[:5] == b"1,2,3"
    assert stream.read(len(line)) == line.encode()
    assert handle.tell() < 4 << 20  # read a block ahead, not the whole file
