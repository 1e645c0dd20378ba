"""Server-sent events: bytes in, events out. Pure, no I/O.

Works on bytes rather than decoded text so that a UTF-8 character split across two reads is
never decoded half-way, and so the hot loop stays a `bytes.split` (see bench/stream.py).
Line ends may be LF, CRLF or CR, with a CRLF allowed to straddle two reads.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["EventTooLarge", "SSEDecoder", "SSEEvent"]

MAX_EVENT = 8 << 20  # bytes of one event (or of a line still waiting for its end)


class EventTooLarge(ValueError):
    """An event, or a line without its end, grew past the decoder's `max_size`."""


class SSEEvent(NamedTuple):
    data: str
    event: str = "message"
    id: str | None = None


Raw = tuple[bytes, str, "str | None"]  # data (undecoded), event type ("" = message), id


class SSEDecoder:
    """Feed it chunks with `feed()` (or `feed_data()`); call `flush()` once the body ends."""

    __slots__ = ("_buf", "_cr", "_data", "_event", "_id", "_size", "max_size")

    def __init__(self, max_size: int = MAX_EVENT) -> None:
        self.max_size = max_size
        self._size = 0  # bytes of the data lines of the event being read
        self._buf = b""
        self._cr = False  # the last chunk ended in CR: a LF opening the next one is part of it
        self._data: list[bytes] = []
        self._event = ""
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        return [_event(raw) for raw in self._feed(chunk)]

    def feed_data(self, chunk: bytes) -> list[bytes]:
        """Only each event's data, undecoded: all a chat-completions stream needs, and the
        JSON parser takes bytes (see _client.py)."""
        return [raw[0] for raw in self._feed(chunk)]

    def flush(self) -> list[SSEEvent]:
        """End of body: a last line without its line end, and an event without its blank line,
        still count (several providers close the stream that way)."""
        out: list[Raw] = []
        if self._buf:
            self._line(self._buf, out)
            self._buf = b""
        self._line(b"", out)
        self._cr = False
        return [_event(raw) for raw in out]

    def _feed(self, chunk: bytes) -> list[Raw]:
        if self._cr:
            self._cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if b"\r" in chunk:
            self._cr = chunk[-1:] == b"\r"
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\n" not in chunk:
            self._buf += chunk
            if len(self._buf) > self.max_size:
                raise EventTooLarge(f"a line of more than {self.max_size:,} bytes")
            return []
        lines = (self._buf + chunk).split(b"\n")
        self._buf = lines.pop()
        if len(self._buf) > self.max_size:
            raise EventTooLarge(f"a line of more than {self.max_size:,} bytes")
        out: list[Raw] = []
        data = self._data
        for line in lines:
            # The common shape, "data: {...}" then a blank line, without a method call.
            if line[:6] == b"data: ":
                data.append(line[6:])
                self._size += len(line)
                if self._size > self.max_size:
                    raise EventTooLarge(f"an event of more than {self.max_size:,} bytes")
            elif not line and len(data) == 1 and not self._event and self._id is None:
                out.append((data[0], "", None))
                data.clear()
                self._size = 0
            else:
                self._line(line, out)
        return out

    def _line(self, line: bytes, out: list[Raw]) -> None:
        if not line:
            if self._data:
                out.append((b"\n".join(self._data), self._event, self._id))
                self._data.clear()
            self._event = ""
            self._size = 0
            return
        if line[:5] == b"data:":
            value = line[5:]
            self._data.append(value[1:] if value[:1] == b" " else value)
            self._size += len(value)
            if self._size > self.max_size:
                raise EventTooLarge(f"an event of more than {self.max_size:,} bytes")
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


def _event(raw: Raw) -> SSEEvent:
    return SSEEvent(raw[0].decode("utf-8", "replace"), raw[1] or "message", raw[2])
