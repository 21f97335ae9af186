"""Text in UTF-16 or UTF-32 (a spreadsheet's "Unicode text"), or UTF-8 with a byte-order
mark, read as plain UTF-8 bytes, so the readers see the same bytes for the same text.

Only the start of a stream is looked at: a byte-order mark, or the NUL bytes that ASCII text in
UTF-16/32 without a mark is full of. Anything else passes through unchanged.
"""

from __future__ import annotations

import codecs
import io
from typing import IO

_BOMS = [  # longest first: the UTF-32-LE mark starts with the UTF-16-LE one
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
]
_SNIFF = 64


def sniff(head: bytes) -> tuple[str | None, int]:
    """(encoding, length of its byte-order mark) of text starting with ``head``; encoding is
    None for UTF-8 without a mark, an 8-bit encoding, or something that is not text."""
    for mark, encoding in _BOMS:
        if head.startswith(mark):
            return encoding, len(mark)
    if b"\x00" not in head:
        return None, 0
    quads = head[: len(head) // 4 * 4]
    if len(quads) >= 4:
        if not any(quads[1::4] + quads[2::4] + quads[3::4]) and all(quads[0::4]):
            return "utf-32-le", 0
        if not any(quads[0::4] + quads[1::4] + quads[2::4]) and all(quads[3::4]):
            return "utf-32-be", 0
    pairs = head[: len(head) // 2 * 2]
    if len(pairs) >= 2:
        if not any(pairs[1::2]) and all(pairs[0::2]):
            return "utf-16-le", 0
        if not any(pairs[0::2]) and all(pairs[1::2]):
            return "utf-16-be", 0
    return None, 0


def utf8_stream(handle: IO[bytes]) -> IO[bytes]:
    """``handle`` as UTF-8 bytes: itself if it needs nothing, else a transcoding reader.

    ``handle`` must support ``peek`` (files opened "rb" and zip members do). The transcoding
    reader is an ``io.BufferedReader`` too (``peek``, exact ``read`` sizes), and streams: it
    holds about a megabyte of the file at a time, never the whole of it.
    """
    head = handle.peek(_SNIFF)[:_SNIFF] if hasattr(handle, "peek") else b""
    encoding, mark = sniff(head)
    if encoding is None:
        return handle
    if mark:
        handle.read(mark)
    if encoding == "utf-8":
        return handle
    # The standard text layer does the decoding: a character split between two reads waits for
    # the rest, bytes that are not text become U+FFFD, and so does an incomplete last
    # character. (codecs.StreamReader/EncodedFile would drop that last one instead, and hand
    # out the undecoded bytes through the peek and readinto they pass to the file.) newline=""
    # keeps line ends as they are.
    text = io.TextIOWrapper(handle, encoding=encoding, errors="replace", newline="")
    return io.BufferedReader(_Utf8Bytes(text), buffer_size=1 << 20)


class _Utf8Bytes(io.RawIOBase):
    """The UTF-8 encoding of a text stream, as the raw stream under an ``io.BufferedReader``."""

    def __init__(self, text: io.TextIOBase):
        super().__init__()
        self._text = text

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        # A character is at most 4 bytes in UTF-8, so this many always fit: nothing is held over
        # to the next call. (The buffered reader asks for at least its buffer size.)
        encoded = self._text.read(max(1, len(buffer) // 4)).encode("utf-8")
        buffer[: len(encoded)] = encoded
        return len(encoded)
