"""Deltas in, a Reply out: the pure half of streaming, shared by streamed and plain requests.

Every provider's dialect is read here, in one place (SPEC §10 and what the recordings in
../shared/fixtures/providers show): choices by their `index` (choice 0 is the answer), content
as a string, a list of text/thinking parts or an object, reasoning as `reasoning_content`,
`reasoning` or `reasoning_details`, `refusal`, tool-call arguments as text or as an object, and
usage that arrives in pieces across chunks. A chunk of the wrong shape is a `StreamError` (the
answer so far is kept as incomplete), never a TypeError from deep inside.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ._errors import StreamError
from ._messages import Reply, Usage
from ._tags import Piece, ThinkSplitter, ToolTagSplitter, bare_call

__all__ = ["Accumulator", "Choice", "Piece"]


@dataclass
class Choice:
    """One of several answers to a request with `n` > 1."""

    index: int
    content: str = ""
    finish_reason: str | None = None


def _shape(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _malformed(what: str, value: Any) -> StreamError:
    return StreamError(f"the provider sent a malformed chunk: {what} is {_shape(value)}")


def content_parts(content: Any) -> tuple[str, str]:
    """(answer, thinking) of a message's content in the shapes providers send: a string; a list
    of parts, text and (Mistral's Magistral) thinking; an object (Cloudflare's structured
    output), shown as its JSON."""
    if content is None or isinstance(content, str):
        return content or "", ""
    if isinstance(content, dict):
        return json.dumps(content, ensure_ascii=False), ""
    if not isinstance(content, list):
        raise _malformed("content", content)
    answer: list[str] = []
    thinking: list[str] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            answer.append(part["text"])
        elif kind == "thinking":
            inner = part.get("thinking")
            if isinstance(inner, str):
                thinking.append(inner)
            elif isinstance(inner, list):
                thinking.extend(
                    p["text"]
                    for p in inner
                    if isinstance(p, dict) and isinstance(p.get("text"), str)
                )
    return "".join(answer), "".join(thinking)


def _reasoning(delta: dict[str, Any]) -> str:
    for name in ("reasoning_content", "reasoning"):
        value = delta.get(name)
        if isinstance(value, str) and value:
            return value
    # OpenRouter sends `reasoning` and the same text again in `reasoning_details`; Snowflake only
    # the details.
    details = delta.get("reasoning_details")
    if isinstance(details, list):
        return "".join(
            d["text"] for d in details if isinstance(d, dict) and isinstance(d.get("text"), str)
        )
    return ""


class Accumulator:
    """Feed it `chat.completion(.chunk)` objects; it returns the text pieces to show and keeps
    everything needed to build the final `Reply`."""

    def __init__(self, *, tool_tags: frozenset[str] | None = None, call_ids: str = "call_") -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.refusal: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.usage: Usage | None = None
        self.model: str | None = None
        self.finish_reason: str | None = None
        self.id: str | None = None
        self.done = False  # the stream said [DONE]
        self.deltas = 0  # chunks that carried text: a token count when usage is missing
        self.others: dict[int, Choice] = {}  # choices other than 0, when n > 1
        self._usage: dict[str, Any] = {}  # usage as merged from every chunk that carried some
        self._meta: dict[str, Any] | None = None
        self._call_ids = call_ids  # the prefix of ids made up for calls that came without one
        self._think = ThinkSplitter()
        # The offered tools' names, where calls arrive as text (see ToolTagSplitter).
        self._tags = ToolTagSplitter(call_ids) if tool_tags is not None else None
        self._tool_names = tool_tags or frozenset()

    @property
    def started(self) -> bool:
        return bool(self.content or self.reasoning or self.tool_calls or self.refusal)

    @property
    def complete(self) -> bool:
        """[DONE] or a finish_reason: whatever happens to the connection after it, the answer
        is whole (Snowflake never sends a finish_reason)."""
        return self.done or self.finish_reason is not None

    def feed(self, chunk: Any) -> list[Piece]:
        return self._feed(chunk)

    def feed_many(self, chunks: list[Any]) -> list[Piece]:
        """Several chunks at once, pieces of the same kind joined: what a stream delivers in one
        network read is shown as one update."""
        out: list[Piece] = []
        content = self.content
        fast = self._fast()
        run: list[str] = []  # content pieces not yet in `out`
        for chunk in chunks:
            if fast and chunk.__class__ is dict and "usage" not in chunk and "error" not in chunk:
                # By far most chunks carry only a piece of the answer: take it directly.
                choices = chunk.get("choices")
                if choices.__class__ is list and len(choices) == 1:
                    choice = choices[0]
                    delta = choice.get("delta") if choice.__class__ is dict else None
                    if (
                        delta.__class__ is dict
                        and len(delta) <= 2
                        and choice.get("index", 0) == 0
                        and choice.get("finish_reason") is None
                        and "meta" not in chunk
                    ):
                        text = delta.get("content")
                        if text.__class__ is str and (len(delta) == 1 or "role" in delta):
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
        return pieces if self._tags is None else self._untag(pieces)

    def _untag(self, pieces: list[Piece], *, end: bool = False) -> list[Piece]:
        """The content pieces without their tool-call tags (the calls taken into tool_calls);
        `end`: the stream is over, so a held-back tag is settled too."""
        assert self._tags is not None
        shown = [(k, self._tags.feed(t) if k == "content" else t) for k, t in pieces]
        if end:
            shown.append(("content", self._tags.flush()))
        for call in self._tags.calls:
            self._add_tool_calls([{**call, "index": len(self.tool_calls)}])
        self._tags.calls = []
        return [(k, t) for k, t in shown if t]

    def _feed(self, chunk: Any) -> list[Piece]:
        if not isinstance(chunk, dict):
            raise _malformed("an event", chunk)
        error = chunk.get("error")
        if error:
            raise StreamError(f"the provider sent an error mid-stream: {_error_text(error)}")
        model = chunk.get("model")
        if self.model is None and isinstance(model, str) and model:  # Azure's first is ""
            self.model = model
        if self.id is None and isinstance(chunk.get("id"), str) and chunk["id"]:
            self.id = chunk["id"]
        usage, meta = chunk.get("usage"), chunk.get("meta")
        if isinstance(usage, dict) or isinstance(meta, dict):
            if isinstance(usage, dict):
                self._usage.update({k: v for k, v in usage.items() if v is not None})
            if isinstance(meta, dict):
                self._meta = meta
            self.usage = Usage.from_api(self._usage, self._meta)
        choices = chunk.get("choices")
        if choices is None:
            return []  # e.g. the usage-only final chunk
        if not isinstance(choices, list):
            raise _malformed("choices", choices)
        out: list[Piece] = []
        for choice in choices:
            if not isinstance(choice, dict):
                raise _malformed("a choice", choice)
            index = choice.get("index", 0)
            if not isinstance(index, int) or isinstance(index, bool):
                raise _malformed("a choice's index", index)
            delta = choice.get("delta")
            if delta is None:
                delta = choice.get("message")
            if delta is None:
                delta = {}
            if not isinstance(delta, dict):
                raise _malformed("a delta", delta)
            finish = choice.get("finish_reason")
            if index != 0:
                other = self.others.setdefault(index, Choice(index))
                other.content += content_parts(delta.get("content"))[0]
                if isinstance(finish, str) and finish:
                    other.finish_reason = finish
                continue
            out.extend(self._choice(delta))
            if isinstance(finish, str) and finish:
                self.finish_reason = finish
        return out

    def _choice(self, delta: dict[str, Any]) -> list[Piece]:
        out: list[Piece] = []
        reasoning = _reasoning(delta)
        if reasoning:
            self.reasoning.append(reasoning)
            out.append(("reasoning", reasoning))
        text, thinking = content_parts(delta.get("content"))
        if thinking:
            self.reasoning.append(thinking)
            out.append(("reasoning", thinking))
        if text:
            if isinstance(delta.get("content"), dict):
                pieces: list[Piece] = [("content", text)]  # JSON, not markup to look into
            else:
                pieces = self._content(text)
            for kind, piece in pieces:
                (self.content if kind == "content" else self.reasoning).append(piece)
                out.append((kind, piece))
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            self.refusal.append(refusal)
            out.append(("content", refusal))  # shown where the answer goes
        if reasoning or text or thinking or refusal:
            self.deltas += 1
        calls = delta.get("tool_calls")
        if calls is not None:
            if not isinstance(calls, list):
                raise _malformed("tool_calls", calls)
            self._add_tool_calls(calls)
        return out

    def flush(self) -> list[Piece]:
        out = self._think.flush()
        if self._tags is not None:
            out = self._untag(out, end=True)
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

    def _add_tool_calls(self, calls: list[Any]) -> None:
        for position, call in enumerate(calls):
            if not isinstance(call, dict):
                raise _malformed("a tool call", call)
            index = call.get("index", position)
            if not isinstance(index, int) or isinstance(index, bool):
                raise _malformed("a tool call's index", index)
            slot = self.tool_calls.setdefault(
                index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
            )
            if isinstance(call.get("id"), str) and call["id"]:
                slot["id"] = call["id"]
            function = call.get("function") or {}
            if not isinstance(function, dict):
                raise _malformed("a tool call's function", function)
            name = function.get("name")
            if isinstance(name, str) and name and not slot["function"]["name"]:
                slot["function"]["name"] = name  # llama-cpp-python repeats it
            arguments = function.get("arguments")
            if isinstance(arguments, (dict, list)):
                arguments = json.dumps(arguments, ensure_ascii=False)  # sent as an object
            if isinstance(arguments, str):
                slot["function"]["arguments"] += arguments
            elif arguments is not None:
                raise _malformed("a tool call's arguments", arguments)

    def reply(self, **extra: Any) -> Reply:
        content, reasoning = _whole("".join(self.content)), _whole("".join(self.reasoning))
        if "</think>" in content and "<think>" not in content:
            # The template opened the block (Qwen3, DeepSeek-R1 distills): only its end shows.
            thought, _, content = content.partition("</think>")
            reasoning, content = reasoning + thought, content.lstrip("\n")
        calls = [self.tool_calls[i] for i in sorted(self.tool_calls)]
        for number, call in enumerate(calls):
            if not call["id"]:
                call["id"] = f"{self._call_ids}{number}"  # Gemini sends ""
        choices = [Choice(0, content, self.finish_reason)]
        choices += [self.others[i] for i in sorted(self.others)]
        return Reply(
            content=content,
            reasoning=reasoning,
            refusal="".join(self.refusal) or None,
            model=self.model,
            finish_reason=self.finish_reason,
            usage=self.usage,
            tool_calls=calls,
            id=self.id,
            deltas=self.deltas,
            choices=choices,
            **extra,
        )


def _whole(text: str) -> str:
    """Surrogate pairs escaped in JSON (`\\ud83d` then `\\ude00`) that arrived in two chunks
    joined into their character; a lone one replaced: the text must be writable as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        message = error.get("message") or error.get("type") or error
        code = error.get("code")
        return f"{message} (code {code})" if code else str(message)
    return str(error)
