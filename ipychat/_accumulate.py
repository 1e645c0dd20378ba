"""Deltas in, a Reply out: the pure half of streaming, shared by streamed and plain requests."""

from __future__ import annotations

import json
import re
from typing import Any

from ._errors import StreamError
from ._messages import Reply, Usage

__all__ = ["Accumulator", "ThinkSplitter", "ToolTagSplitter"]

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


class Accumulator:
    """Feed it `chat.completion(.chunk)` objects; it returns the text pieces to show and keeps
    everything needed to build the final `Reply`."""

    def __init__(self, *, tool_tags: frozenset[str] | None = None, call_ids: str = "call_") -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.usage: Usage | None = None
        self.model: str | None = None
        self.finish_reason: str | None = None
        self.id: str | None = None
        self.deltas = 0  # chunks that carried text: a token count when usage is missing
        self._think = ThinkSplitter()
        # The offered tools' names, where calls arrive as text (see ToolTagSplitter).
        self._tags = ToolTagSplitter(call_ids) if tool_tags is not None else None
        self._tool_names = tool_tags or frozenset()

    @property
    def started(self) -> bool:
        return bool(self.content or self.reasoning or self.tool_calls)

    def feed(self, chunk: dict[str, Any]) -> list[Piece]:
        return self._feed(chunk)

    def feed_many(self, chunks: list[dict[str, Any]]) -> list[Piece]:
        """Several chunks at once, pieces of the same kind joined: what a stream delivers in one
        network read is shown as one update."""
        out: list[Piece] = []
        content = self.content
        fast = self._fast()
        run: list[str] = []  # content pieces not yet in `out`
        for chunk in chunks:
            if fast and "usage" not in chunk and "error" not in chunk and "meta" not in chunk:
                # By far most chunks carry only a piece of the answer: take it directly.
                choices = chunk.get("choices")
                if choices and len(choices) == 1:
                    choice = choices[0]
                    delta = choice.get("delta")
                    if (
                        delta
                        and choice.get("finish_reason") is None
                        and not delta.get("tool_calls")
                        and not delta.get("reasoning_content")
                        and not delta.get("reasoning")
                    ):
                        text = delta.get("content")
                        if text.__class__ is str:
                            if text:
                                content.append(text)
                                run.append(text)
                                self.deltas += 1
                            continue
            pieces = self._feed(chunk)
            for kind, text in pieces:
                if kind == "content":
                    run.append(text)
                    continue
                if run:
                    out.append(("content", "".join(run)))
                    run = []
                if out and out[-1][0] == kind:
                    out[-1] = (kind, out[-1][1] + text)
                else:
                    out.append((kind, text))
            fast = self._fast()
        if run:
            out.append(("content", "".join(run)))
        return out

    def _fast(self) -> bool:
        return self._think._state == "answer" and self.model is not None and self._tags is None

    def _content(self, text: str) -> list[Piece]:
        pieces = self._think.feed(text)
        if self._tags is None:
            return pieces
        shown = [(k, self._tags.feed(t) if k == "content" else t) for k, t in pieces]
        self._take_tag_calls()
        return [(k, t) for k, t in shown if t]

    def _take_tag_calls(self) -> None:
        assert self._tags is not None
        for call in self._tags.calls:
            self._add_tool_calls([{**call, "index": len(self.tool_calls)}])
        self._tags.calls = []

    def _feed(self, chunk: dict[str, Any]) -> list[Piece]:
        error = chunk.get("error")
        if error:
            raise StreamError(f"the provider sent an error mid-stream: {_error_text(error)}")
        if self.model is None:
            self.model = chunk.get("model")
            self.id = chunk.get("id")
        if chunk.get("usage") or chunk.get("meta"):
            usage = Usage.from_api(chunk.get("usage"), chunk.get("meta"))
            if usage is not None:
                self.usage = usage
        choices = chunk.get("choices")
        if not choices:
            return []  # e.g. the usage-only final chunk
        choice = choices[0]
        delta = choice.get("delta") or choice.get("message") or {}
        out: list[Piece] = []
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            self.reasoning.append(reasoning)
            out.append(("reasoning", reasoning))
        text = delta.get("content")
        if isinstance(text, str) and text:
            for kind, piece in self._content(text):
                (self.content if kind == "content" else self.reasoning).append(piece)
                out.append((kind, piece))
        if reasoning or text:
            self.deltas += 1
        calls = delta.get("tool_calls")
        if calls:
            self._add_tool_calls(calls)
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]
        return out

    def flush(self) -> list[Piece]:
        out = self._think.flush()
        if self._tags is not None:
            shown = [(k, self._tags.feed(t) if k == "content" else t) for k, t in out]
            shown.append(("content", self._tags.flush()))
            out = [(k, t) for k, t in shown if t]
            self._take_tag_calls()
            if not self.tool_calls:
                whole = "".join(self.content) + "".join(t for k, t in out if k == "content")
                call = bare_call(whole, self._tool_names, self._tags.prefix)
                if call is not None:
                    # The whole answer was one call written as JSON (small models do this
                    # instead of the tags): it is a call, not text.
                    self.content = []
                    out = [(k, t) for k, t in out if k != "content"]
                    self._add_tool_calls([{**call, "index": 0}])
            if self.tool_calls and self.finish_reason == "stop":
                self.finish_reason = "tool_calls"
        for kind, piece in out:
            (self.content if kind == "content" else self.reasoning).append(piece)
        return out

    def _add_tool_calls(self, calls: list[dict[str, Any]]) -> None:
        for position, call in enumerate(calls):
            index = call.get("index", position)
            slot = self.tool_calls.setdefault(
                index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
            )
            if call.get("id"):
                slot["id"] = call["id"]
            function = call.get("function") or {}
            if function.get("name") and not slot["function"]["name"]:
                slot["function"]["name"] = function["name"]  # llama-cpp-python repeats it
            if function.get("arguments"):
                slot["function"]["arguments"] += function["arguments"]

    def reply(self, **extra: Any) -> Reply:
        return Reply(
            content="".join(self.content),
            reasoning="".join(self.reasoning),
            model=self.model,
            finish_reason=self.finish_reason,
            usage=self.usage,
            tool_calls=[self.tool_calls[i] for i in sorted(self.tool_calls)],
            id=self.id,
            deltas=self.deltas,
            **extra,
        )


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        message = error.get("message") or error.get("type") or error
        code = error.get("code")
        return f"{message} (code {code})" if code else str(message)
    return str(error)
