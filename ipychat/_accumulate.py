"""Deltas in, a Reply out: the pure half of streaming, shared by streamed and plain requests."""

from __future__ import annotations

from typing import Any

from ._errors import StreamError
from ._messages import Reply, Usage

__all__ = ["Accumulator", "ThinkSplitter"]

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


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of `text` that is a proper start of `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0


class Accumulator:
    """Feed it `chat.completion(.chunk)` objects; it returns the text pieces to show and keeps
    everything needed to build the final `Reply`."""

    def __init__(self) -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.usage: Usage | None = None
        self.model: str | None = None
        self.finish_reason: str | None = None
        self.id: str | None = None
        self.deltas = 0  # chunks that carried text: a token count when usage is missing
        self._think = ThinkSplitter()

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
        fast = self._think._state == "answer" and self.model is not None
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
            fast = self._think._state == "answer" and self.model is not None
        if run:
            out.append(("content", "".join(run)))
        return out

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
            for kind, piece in self._think.feed(text):
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
