"""Markup that models write into the content: a `<think>` block, and tool calls as text.

Pure and incremental: tags may be cut anywhere between deltas, so each splitter holds back the
few characters that could still become a tag.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["Piece", "ThinkSplitter", "ToolTagSplitter", "bare_call"]

Piece = tuple[str, str]  # ("content" | "reasoning", text)


class ThinkSplitter:
    """Moves a leading `<think>…</think>` block of the content to the reasoning.

    Models served raw (llama.cpp, vLLM without a reasoning parser, Ollama) stream their thinking
    inside the content; the tags may be cut anywhere between deltas.
    """

    OPEN, CLOSE = "<think>", "</think>"

    def __init__(self) -> None:
        self._state = "start"
        self._pending = ""

    def feed(self, text: str) -> list[Piece]:
        if self._state == "answer":
            return [("content", text)] if text else []
        buf = self._pending + text
        self._pending = ""
        if self._state == "start":
            head = buf.lstrip()
            if head.startswith(self.OPEN):
                self._state = "think"
                buf = head[len(self.OPEN) :].lstrip("\n")
            elif self.OPEN.startswith(head):
                self._pending = buf  # could still become the tag
                return []
            else:
                self._state = "answer"
                return [("content", buf)] if buf else []
        end = buf.find(self.CLOSE)
        if end >= 0:
            self._state = "answer"
            out: list[Piece] = []
            if end:
                out.append(("reasoning", buf[:end]))
            rest = buf[end + len(self.CLOSE) :].lstrip("\n")
            if rest:
                out.append(("content", rest))
            return out
        keep = _partial_suffix(buf, self.CLOSE)
        if keep:
            self._pending = buf[-keep:]
            buf = buf[:-keep]
        return [("reasoning", buf)] if buf else []

    def flush(self) -> list[Piece]:
        text, self._pending = self._pending, ""
        if not text:
            return []
        return [("reasoning" if self._state == "think" else "content", text)]


class ToolTagSplitter:
    """Takes `<tool_call>{"name": …, "arguments": …}</tool_call>` blocks out of the content.

    A GGUF's own chat template (Qwen, Hermes and others) offers the tools in the prompt and the
    model answers with such blocks as plain text; llama-cpp-python passes them on as content.
    Text around them is content as usual; a block whose JSON does not parse stays visible.
    """

    OPEN, CLOSE = "<tool_call>", "</tool_call>"

    def __init__(self, prefix: str = "call_") -> None:
        self.prefix = prefix  # ids are prefix + a count; a turn gives each round its own
        self.calls: list[dict[str, Any]] = []
        self._count = 0
        self._inside = False
        self._pending = ""

    def feed(self, text: str) -> str:
        """The content to show of `text`; completed calls are appended to `calls`."""
        buf = self._pending + text
        self._pending = ""
        out: list[str] = []
        while buf:
            if not self._inside:
                start = buf.find(self.OPEN)
                if start < 0:
                    keep = _partial_suffix(buf, self.OPEN)
                    if keep:
                        self._pending = buf[-keep:]
                        buf = buf[:-keep]
                    out.append(buf)
                    break
                out.append(buf[:start])
                buf = buf[start + len(self.OPEN) :]
                self._inside = True
            else:
                end = buf.find(self.CLOSE)
                if end < 0:
                    self._pending = buf  # a call is never shown half-written
                    break
                out.append(self._take(buf[:end]))
                buf = buf[end + len(self.CLOSE) :]
                self._inside = False
        return "".join(out)

    def flush(self) -> str:
        """The end of the stream: an unclosed block is still a call if its JSON is whole."""
        text, self._pending = self._pending, ""
        if self._inside:
            self._inside = False
            return self._take(text, closed=False)
        return text

    def _take(self, body: str, *, closed: bool = True) -> str:
        call = _call_from_json(body, f"{self.prefix}{self._count}")
        if call is None:
            return self.OPEN + body + (self.CLOSE if closed else "")
        self.calls.append(call)
        self._count += 1
        return ""


def _call_from_json(text: str, call_id: str) -> dict[str, Any] | None:
    """`{"name": …, "arguments": {…}}` as an OpenAI tool call, or None."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not (isinstance(data, dict) and isinstance(data.get("name"), str) and data["name"]):
        return None
    arguments = data.get("arguments", data.get("parameters", {}))
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    function = {"name": data["name"], "arguments": arguments}
    return {"id": call_id, "type": "function", "function": function}


_BARE = re.compile(r"\s*(?:```(?:json)?\s*)?(\{.*\})\s*(?:```)?\s*", re.DOTALL)


def bare_call(text: str, names: frozenset[str], prefix: str = "call_") -> dict[str, Any] | None:
    """An answer that is nothing but one call of an offered tool, as JSON (fenced or not)."""
    match = _BARE.fullmatch(text)
    if match is None:
        return None
    call = _call_from_json(match.group(1), f"{prefix}0")
    if call is None or call["function"]["name"] not in names:
        return None
    return call


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of `text` that is a proper start of `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0
