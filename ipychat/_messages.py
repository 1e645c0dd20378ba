"""Domain types: usage, replies, turns, and the OpenAI wire shapes they turn into."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from ._errors import StreamError

__all__ = [
    "RETRY_PARAMS",
    "Event",
    "Message",
    "Reply",
    "Turn",
    "Usage",
    "estimate_tokens",
    "message_text",
    "parse_json_reply",
    "wire_message",
]


class Message(TypedDict, total=False):
    """An OpenAI chat message as sent on the wire."""

    role: str
    content: Any
    name: str
    tool_calls: list[dict[str, Any]]
    tool_call_id: str
    reasoning_content: str


def message_text(content: Any) -> str:
    """A message's content for people: images by reference, never their base64."""
    if isinstance(content, str):
        return content
    parts = []
    for part in content or []:
        if part.get("type") == "text":
            parts.append(part.get("text", ""))
        elif part.get("type") == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            label = part.get("_source") or (
                f"data URL, {len(url) * 3 // 4 // 1024:,} kB" if url.startswith("data:") else url
            )
            parts.append(f"[image: {label}]")
    return "\n".join(parts)


def _num(value: Any) -> float | None:
    """A finite number, or None: JSON may say 1e400 (inf) and a provider NaN."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    return value if isinstance(value, int) or math.isfinite(value) else None


def _money(value: Any) -> float | None:
    """A cost as a number or as a numeric string (a gateway documents it as a string)."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return _num(value)


def _int(value: Any) -> int:
    number = _num(value)
    return int(number) if number is not None else 0


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float | None = None

    @classmethod
    def from_api(cls, usage: dict[str, Any] | None, meta: Any = None) -> Usage | None:
        """Read `usage` of a response or final chunk, in every dialect of SPEC §10."""
        if not isinstance(usage, dict) and not isinstance(meta, dict):
            return None
        usage = usage if isinstance(usage, dict) else {}
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        cached = 0
        if isinstance(prompt_details, dict):
            cached = _int(prompt_details.get("cached_tokens"))
        cached = cached or _int(usage.get("prompt_cache_hit_tokens"))
        reasoning = 0
        if isinstance(completion_details, dict):
            reasoning = _int(completion_details.get("reasoning_tokens"))
        cost = _money(usage.get("cost"))
        if cost is None and isinstance(meta, dict):
            meta_usage = meta.get("usage")
            if isinstance(meta_usage, dict):
                cost = _money(meta_usage.get("usd_spent"))
        prompt = _int(usage.get("prompt_tokens"))
        completion = _int(usage.get("completion_tokens"))
        total = _int(usage.get("total_tokens")) or prompt + completion
        return cls(prompt, completion, total, cached, reasoning, cost)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None,)}

    def __add__(self, other: Usage) -> Usage:
        cost = None
        if self.cost is not None or other.cost is not None:
            cost = (self.cost or 0.0) + (other.cost or 0.0)
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
            self.cached_tokens + other.cached_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            cost,
        )

    def price(self, table: dict[str, Any] | None, model: str | None) -> float | None:
        """The cost from a price table {model: {"input": $, "output": $, "cached_input": $}}
        in dollars per million tokens, for providers that report none."""
        entry = (table or {}).get(model or "")
        if not isinstance(entry, dict):
            return None
        fresh = self.prompt_tokens - self.cached_tokens
        cached_rate = entry.get("cached_input", entry.get("input", 0))
        total = (
            fresh * entry.get("input", 0)
            + self.cached_tokens * cached_rate
            + self.completion_tokens * entry.get("output", 0)
        )
        return total / 1e6


# What a turn kept (or a file brought) may set again on `%chat retry`: sampling only.
RETRY_PARAMS = frozenset(
    {"temperature", "top_p", "max_tokens", "max_completion_tokens", "seed", "stop",
     "reasoning_effort", "frequency_penalty", "presence_penalty", "verbosity", "stream"}
)  # fmt: skip

Status = Literal["complete", "incomplete", "interrupted"]
MIN_RATE_SPAN = 0.05  # seconds; less than that between first and last token is no measurement


@dataclass
class Reply:
    """One answer of the model: what the user reads, plus what it cost and how it ended."""

    content: str = ""
    reasoning: str = ""
    model: str | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    data: Any = None
    status: Status = "complete"
    error: str | None = None
    ttft: float | None = None  # seconds from request to first token
    elapsed: float | None = None  # seconds from request to last byte
    reasoning_time: float | None = None
    id: str | None = None
    deltas: int = 0  # streamed chunks with text; stands in for tokens when usage is missing
    tool_runs: list[Any] = field(default_factory=list)  # ToolCall records of calls ipychat ran
    refusal: str | None = None  # the model declined (OpenAI's `refusal`), shown as the answer
    choices: list[Any] = field(default_factory=list)  # every choice when n > 1; 0 is `content`

    @property
    def cost(self) -> float | None:
        return self.usage.cost if self.usage else None

    @property
    def interrupted(self) -> bool:
        return self.status == "interrupted"

    @property
    def incomplete(self) -> bool:
        return self.status != "complete"

    @property
    def tokens_per_second(self) -> float | None:
        """Tokens after the first, over the time they took; None when there is nothing to
        measure (a plain answer, or a stream that arrived in one read)."""
        tokens = (self.usage.completion_tokens if self.usage else 0) or self.deltas
        if tokens < 2 or self.elapsed is None or self.ttft is None:
            return None
        span = self.elapsed - self.ttft
        return tokens / span if span >= MIN_RATE_SPAN else None

    def message(self) -> Message:
        """The assistant message this reply adds to a thread."""
        # A refusal is what the model said: the thread keeps it as its answer.
        msg: Message = {"role": "assistant", "content": self.content or self.refusal or ""}
        if self.tool_calls:
            msg["tool_calls"] = self.tool_calls
            # Kept with the call; whether it is sent back is the provider's (wire_message).
            msg["reasoning_content"] = self.reasoning
        return msg

    def __str__(self) -> str:
        return self.content

    def __repr__(self) -> str:
        text = self.content if len(self.content) <= 60 else self.content[:57] + "..."
        extra = f", status={self.status!r}" if self.status != "complete" else ""
        return f"Reply({text!r}, model={self.model!r}{extra})"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        # The one reference from the core up to rendering; lazy, so the core imports without it.
        from ._render import reply_bundle

        return reply_bundle(self)


@dataclass
class Turn:
    """A user message and what came back for it, with the metadata saved alongside."""

    user: Message
    replies: list[Message]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def messages(self) -> list[Message]:
        return [self.user, *self.replies]

    @property
    def status(self) -> str:
        return str(self.meta.get("status", "complete"))

    def to_dict(self) -> dict[str, Any]:
        """What a saved thread keeps: the live `Reply` object and private caches stay out."""
        meta = {k: v for k, v in self.meta.items() if k != "reply" and not k.startswith("_")}
        return {"messages": self.messages, "meta": meta}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Turn:
        messages = list(data.get("messages") or [])
        if not messages or messages[0].get("role") != "user":
            raise ValueError("a saved turn must start with a user message")
        return cls(messages[0], messages[1:], dict(data.get("meta") or {}))


@dataclass
class Event:
    """What `Chat.stream()` yields.

    kind: "content" and "reasoning" carry `text` deltas; "retry" carries a note and `delay`;
    "note" is a line to show (e.g. turns left out to fit the context budget);
    "tool" carries a `ToolCall` as `data` (before and after it runs); "reply" is last and
    carries the finished `reply`.
    """

    kind: Literal["content", "reasoning", "retry", "note", "tool", "reply"]
    text: str = ""
    reply: Reply | None = None
    delay: float = 0.0
    data: Any = None  # "tool": the ToolCall, sent once before it runs and once after


def estimate_tokens(messages: list[Message]) -> int:
    """About four characters a token, images at a flat 800: a budget, not a bill."""
    total = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            total += len(content) // 4 + 4
        elif isinstance(content, list):
            for part in content:
                total += 800 if part.get("type") == "image_url" else len(part.get("text", "")) // 4
        for call in message.get("tool_calls") or []:
            total += len(json.dumps(call)) // 4
    return total


def wire_message(message: Message, reasoning_echo: bool = False) -> Message:
    """The message as sent: content parts lose ipychat's private keys (`_source`), and the
    reasoning of an assistant's tool call goes back only to a provider that wants it (the
    preset's `reasoning_echo`: DeepSeek's thinking models answer 400 without it, even as "";
    Cerebras and older vLLM answer 400 with it)."""
    if message.get("role") == "assistant":
        if reasoning_echo and message.get("tool_calls"):
            if "reasoning_content" not in message:
                message = {**message, "reasoning_content": ""}
        elif "reasoning_content" in message:
            message = {k: v for k, v in message.items() if k != "reasoning_content"}  # type: ignore[assignment]
    content = message.get("content")
    if not isinstance(content, list) or not any(
        isinstance(p, dict) and any(k.startswith("_") for k in p) for p in content
    ):
        return message
    clean = [{k: v for k, v in p.items() if not k.startswith("_")} for p in content]
    return {**message, "content": clean}  # type: ignore[typeddict-item]


def parse_json_reply(text: str) -> Any:
    cleaned = text.strip()
    if cleaned.startswith("```"):
        cleaned = cleaned.strip("`")
        cleaned = cleaned[4:] if cleaned.startswith("json") else cleaned
    try:
        return json.loads(cleaned)
    except ValueError as exc:
        raise StreamError(f"the model did not return valid JSON ({exc}); raw text kept") from None
