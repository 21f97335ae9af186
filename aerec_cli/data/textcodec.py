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

    ``handle`` must support ``peek`` (files opened "rb" and zip members do).
    """
    head = handle.peek(_SNIFF)[:_SNIFF] if hasattr(handle, "peek") else b""
    encoding, mark = sniff(head)
    if encoding is None:
        return handle
    if mark:
        handle.read(mark)
    if encoding == "utf-8":
        return handle
    return io.BufferedReader(_Transcoder(handle, encoding), buffer_size=1 << 20)


class _Transcoder(io.RawIOBase):
    """Reads ``raw`` in ``encoding`` and gives the same text as UTF-8 bytes."""

    def __init__(self, raw: IO[bytes], encoding: str):
        super().__init__()
        self._raw = raw
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        self._pending = b""
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending and not self._done:
            block = self._raw.read(1 << 20)
            self._done = not block
            self._pending = self._decoder.decode(block, final=self._done).encode("utf-8")
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size
