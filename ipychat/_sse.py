"""Server-sent events: bytes in, events out. Pure, no I/O.

Works on bytes rather than decoded text so that a UTF-8 character split across two reads is
never decoded half-way, and so the hot loop stays a `bytes.split` (see bench/stream.py).
Line ends may be LF, CRLF or CR, with a CRLF allowed to straddle two reads.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["SSEDecoder", "SSEEvent"]


class SSEEvent(NamedTuple):
    data: str
    event: str = "message"
    id: str | None = None


class SSEDecoder:
    """Feed it chunks with `feed()`; call `flush()` once the body ends."""

    __slots__ = ("_buf", "_cr", "_data", "_event", "_id")

    def __init__(self) -> None:
        self._buf = b""
        self._cr = False  # the last chunk ended in CR: a LF opening the next one is part of it
        self._data: list[bytes] = []
        self._event = ""
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if self._cr:
            self._cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if b"\r" in chunk:
            self._cr = chunk[-1:] == b"\r"
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\n" not in chunk:
            self._buf += chunk
            return []
        lines = (self._buf + chunk).split(b"\n")
        self._buf = lines.pop()
        out: list[SSEEvent] = []
        for line in lines:
            self._line(line, out)
        return out

    def flush(self) -> list[SSEEvent]:
        """End of body: a last line without its line end, and an event without its blank line,
        still count (several providers close the stream that way)."""
        out: list[SSEEvent] = []
        if self._buf:
            self._line(self._buf, out)
            self._buf = b""
        self._line(b"", out)
        self._cr = False
        return out

    def _line(self, line: bytes, out: list[SSEEvent]) -> None:
        if not line:
            if self._data:
                data = b"\n".join(self._data).decode("utf-8", "replace")
                out.append(SSEEvent(data, self._event or "message", self._id))
                self._data = []
            self._event = ""
            return
        if line[:5] == b"data:":
            value = line[5:]
            self._data.append(value[1:] if value[:1] == b" " else value)
            return
        if line[:1] == b":":
            return  # a comment, e.g. ": keep-alive" or ": OPENROUTER PROCESSING"
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id" and b"\0" not in value:
            self._id = value.decode("utf-8", "replace")
        elif name == b"data":  # "data" with no colon: an empty data line
            self._data.append(b"")
