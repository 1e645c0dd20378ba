"""Split streaming markdown into finished top-level blocks and an unfinished tail. Pure.

A block is finished at a blank line outside a code fence once the next block has begun: a list
continues across blank lines while the next line is an item or indented, and a fence holds its
own blank lines until it closes. Finished blocks never change, so they are rendered once.
"""

from __future__ import annotations

import re

__all__ = ["BlockSplitter", "whole_blocks"]

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ITEM = re.compile(r"^\s*(?:[-*+]|\d{1,9}[.)])(?:\s|$)")


class BlockSplitter:
    """`feed(text)` returns the blocks that text finished; `tail` is the rest so far."""

    def __init__(self) -> None:
        self._buf = ""  # text of the unfinished block, starting at its first line
        self._scanned = 0  # offset in _buf of the first line not yet looked at
        self._fence: str | None = None  # the opening fence while inside one
        self._list = False  # the block is a list: blank lines do not end it by themselves
        self._blank_at: int | None = None  # where the blank run after the content started

    @property
    def tail(self) -> str:
        return self._buf

    @property
    def fence(self) -> str | None:
        """The fence the tail is inside, if any (to close it for a preview render)."""
        return self._fence

    def feed(self, text: str) -> list[str]:
        self._buf += text
        done: list[str] = []
        buf = self._buf
        pos = self._scanned
        while True:
            end = buf.find("\n", pos)
            if end < 0:
                break
            line = buf[pos:end]
            start = pos
            pos = end + 1
            if self._fence is not None:
                match = _FENCE.match(line.lstrip())
                if (
                    match
                    and match.group(1)[0] == self._fence[0]
                    and len(match.group(1)) >= len(self._fence)
                    and not line.strip().strip(self._fence[0])
                ):
                    self._fence = None
                continue
            if not line.strip():
                if self._blank_at is None and buf[:start].strip():
                    self._blank_at = start
                continue
            if self._blank_at is not None:
                if self._list and (_ITEM.match(line) or line[:1] in (" ", "\t")):
                    self._blank_at = None
                else:
                    done.append(buf[: self._blank_at].rstrip("\n"))
                    buf = buf[start:]
                    pos -= start
                    self._blank_at = None
                    self._list = False
            if not buf[: pos - len(line) - 1].strip() and _ITEM.match(line):
                self._list = True  # the block opens with a list item
            match = _FENCE.match(line.lstrip())
            if match:
                self._fence = match.group(1)
        self._buf = buf
        self._scanned = pos
        return done

    def finish(self) -> list[str]:
        """The end of the text: whatever is left is one last block. A fence still open (an
        answer cut by max_tokens inside code) is closed, so it renders as the code it is."""
        done = self.feed("\n")  # the last line may lack its line end
        rest = self._buf.strip("\n")
        if self._fence is not None and rest.strip():
            rest += "\n" + self._fence
        self._buf, self._scanned, self._fence, self._blank_at = "", 0, None, None
        self._list = False
        return done + ([rest] if rest.strip() else [])


def whole_blocks(text: str) -> str:
    """`text` as the splitter reads it in the end: the same blocks, an open fence closed."""
    splitter = BlockSplitter()
    return "\n\n".join([*splitter.feed(text), *splitter.finish()])
