"""Responses recorded from real providers by other projects' test suites (../shared/fixtures/
providers/, see SOURCES.md there), and what a careful client makes of each.

The expectations are computed here from the recorded bytes with a reading of the providers'
documented dialects that shares no code with ipychat: a plain WHATWG event-stream parser, then
choice 0's deltas joined. The fixtures are other people's data and stay in ../shared.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures" / "providers"


def load_all() -> list[dict[str, Any]]:
    if not FIXTURES.is_dir():
        return []
    return [json.loads(p.read_text()) for p in sorted(FIXTURES.glob("*.json"))]


@dataclass
class Expected:
    status: int = 200
    error: str | None = None  # the provider's error message, where it sent one
    content: str = ""
    reasoning: str = ""
    refusal: str = ""
    tool_calls: list[tuple[str, Any]] = field(default_factory=list)  # (name, parsed arguments)
    finish_reason: str | None = None
    model: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    cost: float | None = None
    done: bool = False  # [DONE] arrived
    choices: dict[int, str] = field(default_factory=dict)  # index -> content, every choice

    @property
    def complete(self) -> bool:
        return self.done or self.finish_reason is not None


def events(body: str, *, whole: bool = True) -> list[tuple[str, str]]:
    """(event type, data) of a text/event-stream body, per the WHATWG parsing rules. A body cut
    off (`whole=False`) loses its unfinished line and its unfinished event, as WHATWG says; a
    whole one that ends without the last blank line still counts its last event (providers do
    close that way, and clients accept it)."""
    body = body.removeprefix("\ufeff")
    out: list[tuple[str, str]] = []
    data: list[str] = []
    kind = ""
    lines = re.split(r"\r\n|\r|\n", body)
    if not whole:
        lines.pop()  # after the last line end: a line not finished
    elif lines[-1]:
        lines.append("")
    for line in lines:
        if not line:
            if data:
                out.append((kind or "message", "\n".join(data)))
            data, kind = [], ""
            continue
        if line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            kind = value
    if whole and data:
        out.append((kind or "message", "\n".join(data)))
    return out


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _text_parts(content: Any) -> tuple[str, str]:
    """(answer, thinking) of a message content in any of the shapes providers send."""
    if content is None:
        return "", ""
    if isinstance(content, str):
        return content, ""
    if isinstance(content, dict):  # Cloudflare: structured output as an object
        return json.dumps(content, ensure_ascii=False), ""
    answer, thinking = [], []
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text" and isinstance(part.get("text"), str):
            answer.append(part["text"])
        elif part.get("type") == "thinking":
            inner = part.get("thinking")
            if isinstance(inner, str):
                thinking.append(inner)
            for piece in inner if isinstance(inner, list) else []:
                if isinstance(piece, dict) and isinstance(piece.get("text"), str):
                    thinking.append(piece["text"])
    return "".join(answer), "".join(thinking)


class _Reader:
    def __init__(self) -> None:
        self.x = Expected()
        self.content: dict[int, list[str]] = {}
        self.reasoning: list[str] = []
        self.refusal: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}

    def chunk(self, obj: Any) -> bool:
        """Take one chunk (or a whole completion); False when it ends the answer in error."""
        x = self.x
        if not isinstance(obj, dict):
            return True
        if obj.get("error"):
            error = obj["error"]
            x.error = error.get("message") if isinstance(error, dict) else str(error)
            return False
        if isinstance(obj.get("model"), str) and obj["model"] and x.model is None:
            x.model = obj["model"]
        usage = obj.get("usage")
        if isinstance(usage, dict):
            x.usage.update({k: v for k, v in usage.items() if v is not None})
        meta = obj.get("meta")
        if isinstance(meta, dict) and isinstance(meta.get("usage"), dict):
            spent = _num(meta["usage"].get("usd_spent"))
            if spent is not None:
                x.cost = spent
        for choice in obj.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            delta = choice.get("delta") or choice.get("message") or {}
            answer, thinking = _text_parts(delta.get("content"))
            self.content.setdefault(index, []).append(answer)
            if index != 0:
                continue
            said = False
            for name in ("reasoning_content", "reasoning"):
                if isinstance(delta.get(name), str) and delta[name]:
                    self.reasoning.append(delta[name])
                    said = True
                    break
            if not said:
                for detail in delta.get("reasoning_details") or []:
                    if isinstance(detail, dict) and isinstance(detail.get("text"), str):
                        self.reasoning.append(detail["text"])
            self.reasoning.append(thinking)
            if isinstance(delta.get("refusal"), str):
                self.refusal.append(delta["refusal"])
            for position, call in enumerate(delta.get("tool_calls") or []):
                slot = self.calls.setdefault(call.get("index", position), {"name": "", "args": ""})
                function = call.get("function") or {}
                if function.get("name") and not slot["name"]:
                    slot["name"] = function["name"]
                arguments = function.get("arguments")
                if isinstance(arguments, dict):
                    arguments = json.dumps(arguments)
                if isinstance(arguments, str):
                    slot["args"] += arguments
            if choice.get("finish_reason"):
                x.finish_reason = choice["finish_reason"]
        return True

    def result(self) -> Expected:
        x = self.x
        x.choices = {i: "".join(parts) for i, parts in self.content.items()}
        content = x.choices.get(0, "")
        reasoning = "".join(self.reasoning)
        head = content.lstrip()
        if head.startswith("<think>") and "</think>" in head:
            thought, _, content = head[len("<think>") :].partition("</think>")
            reasoning += thought
        elif "</think>" in content and "<think>" not in content:
            thought, _, content = content.partition("</think>")  # opened by the template
            reasoning += thought
        x.content, x.reasoning, x.refusal = content, reasoning, "".join(self.refusal)
        x.tool_calls = [
            (slot["name"], arguments(slot["args"])) for _, slot in sorted(self.calls.items())
        ]
        usage = x.usage
        if x.cost is None:
            x.cost = _num(usage.get("cost"))
        x.usage = {
            "prompt_tokens": usage.get("prompt_tokens") or 0,
            "completion_tokens": usage.get("completion_tokens") or 0,
            "cached_tokens": ((usage.get("prompt_tokens_details") or {}).get("cached_tokens"))
            or usage.get("prompt_cache_hit_tokens")
            or 0,
            "reasoning_tokens": (usage.get("completion_tokens_details") or {}).get(
                "reasoning_tokens"
            )
            or 0,
        }
        return x


def arguments(text: str) -> Any:
    """A call's arguments as data; as the text itself where it is cut off (a dropped stream)."""
    if not text.strip():
        return {}
    try:
        return json.loads(text)
    except ValueError:
        return text


def expected(response: dict[str, Any], body: str | None = None, *, whole: bool = True) -> Expected:
    """What the response says; `body` replaces the recorded one (`whole=False`: a copy cut off
    where the connection dropped)."""
    body = response["body"] if body is None else body
    status = response["status"]
    reader = _Reader()
    reader.x.status = status
    if status >= 400:
        try:
            error = json.loads(body).get("error")
        except (ValueError, AttributeError):
            error = None
        message = error.get("message") if isinstance(error, dict) else error
        reader.x.error = str(message) if message else f"HTTP {status}"
        return reader.x
    if "event-stream" not in (response.get("content_type") or ""):
        reader.chunk(json.loads(body.removeprefix("\ufeff")))
        reader.x.done = True  # a whole document is a whole answer, finish_reason or not
        return reader.result()
    for kind, data in events(body, whole=whole):
        if data == "[DONE]":
            reader.x.done = True
            break
        try:
            obj = json.loads(data)
        except ValueError:
            continue
        if kind == "error" and isinstance(obj, dict) and "error" not in obj:
            obj = {"error": obj}
        if not reader.chunk(obj):
            break
    return reader.result()
