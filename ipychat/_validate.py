"""The shape of files ipychat reads back: saved threads and cassettes.

Anyone may have written them, so they are checked whole when loaded, and a bad one is refused
in one line that names the file and the field (`turns[2].messages[1].content`). Otherwise a
malformed file loads and fails later, in the panel or the next request, far from its cause.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._errors import ConfigError

__all__ = ["check_cassette", "check_thread"]

ROLES = {"system", "developer", "user", "assistant", "tool"}
STATUSES = {"complete", "incomplete", "interrupted"}


class _Bad(Exception):
    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where} {problem}")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _need(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        names = " or ".join(k.__name__ for k in _as_tuple(kind))
        raise _Bad(where, f"must be {names}, not {_kind(value)}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _message(message: Any, where: str) -> None:
    _need(message, dict, where)
    role = message.get("role")
    if role not in ROLES:
        raise _Bad(f"{where}.role", f"must be one of {', '.join(sorted(ROLES))}, not {role!r}")
    content = message.get("content")
    if isinstance(content, list):
        for i, part in enumerate(content):
            at = f"{where}.content[{i}]"
            _need(part, dict, at)
            if part.get("type") == "text":
                _need(part.get("text"), str, f"{at}.text")
            elif part.get("type") == "image_url":
                image = _need(part.get("image_url"), dict, f"{at}.image_url")
                _need(image.get("url"), str, f"{at}.image_url.url")
            else:
                raise _Bad(f"{at}.type", f"must be text or image_url, not {part.get('type')!r}")
    elif content is not None:
        _need(content, str, f"{where}.content")
    for i, call in enumerate(_need(message.get("tool_calls") or [], list, f"{where}.tool_calls")):
        at = f"{where}.tool_calls[{i}]"
        _need(call, dict, at)
        _need(call.get("id", ""), str, f"{at}.id")
        function = _need(call.get("function"), dict, f"{at}.function")
        _need(function.get("name"), str, f"{at}.function.name")
        _need(function.get("arguments", ""), str, f"{at}.function.arguments")
    if role == "tool":
        _need(message.get("tool_call_id"), str, f"{where}.tool_call_id")
    if role == "user" and content is None:
        raise _Bad(f"{where}.content", "must be text or parts: a user message says something")


def _meta(meta: Any, where: str) -> None:
    _need(meta, dict, where)
    if "status" in meta and (not isinstance(meta["status"], str) or meta["status"] not in STATUSES):
        raise _Bad(f"{where}.status", f"must be one of {', '.join(sorted(STATUSES))}")
    for i, tool in enumerate(_need(meta.get("tools") or [], list, f"{where}.tools")):
        _need(tool, dict, f"{where}.tools[{i}]")
        _need(tool.get("name"), str, f"{where}.tools[{i}].name")
    usage = meta.get("usage")
    if usage is not None:
        _need(usage, dict, f"{where}.usage")
        for name, value in usage.items():
            _need(value, (int, float), f"{where}.usage.{name}")
    if "params" in meta:
        params = _need(meta["params"], dict, f"{where}.params")
        for i, tool in enumerate(_need(params.get("tools") or [], list, f"{where}.params.tools")):
            spec = _need(tool, dict, f"{where}.params.tools[{i}]")
            function = _need(spec.get("function"), dict, f"{where}.params.tools[{i}].function")
            _need(function.get("name"), str, f"{where}.params.tools[{i}].function.name")
        choice = params.get("tool_choice")
        if isinstance(choice, dict):
            if "function" in choice:  # {"type": "allowed_tools", …} and others pass through
                at = f"{where}.params.tool_choice.function"
                _need(_need(choice["function"], dict, at).get("name"), str, f"{at}.name")
        elif choice is not None:
            _need(choice, str, f"{where}.params.tool_choice")
        if params.get("response_format") is not None:
            _need(params["response_format"], dict, f"{where}.params.response_format")
    for name in ("model", "request_model", "cell_id", "error", "reasoning", "finish_reason"):
        if meta.get(name) is not None:
            _need(meta[name], str, f"{where}.{name}")


def check_thread(data: Any, path: Path) -> None:
    try:
        _need(data, dict, "the file")
        if data.get("system") is not None:
            _need(data["system"], str, "system")
        turns = _need(data.get("turns"), list, "turns")
        for t, turn in enumerate(turns):
            _need(turn, dict, f"turns[{t}]")
            messages = _need(turn.get("messages"), list, f"turns[{t}].messages")
            if not messages:
                raise _Bad(f"turns[{t}].messages", "is empty")
            for m, message in enumerate(messages):
                _message(message, f"turns[{t}].messages[{m}]")
            if messages[0].get("role") != "user":
                raise _Bad(f"turns[{t}].messages[0].role", "must be user: a turn starts with one")
            _meta(turn.get("meta", {}), f"turns[{t}].meta")
    except _Bad as bad:
        raise ConfigError(f"{path} is not a valid saved thread: {bad}") from None


def check_cassette(data: Any, path: Path) -> None:
    from ._errors import CassetteError

    try:
        _need(data, dict, "the file")
        entries = _need(data.get("entries", {}), dict, "entries")
        for key, entry in entries.items():
            at = f"entries[{key!r}]"
            _need(entry, dict, at)
            request = _need(entry.get("request"), dict, f"{at}.request")
            if "messages" in request:
                for m, message in enumerate(
                    _need(request["messages"], list, f"{at}.request.messages")
                ):
                    _need(message, dict, f"{at}.request.messages[{m}]")
            if "error" in entry:
                error = _need(entry["error"], dict, f"{at}.error")
                status = _need(error.get("status"), int, f"{at}.error.status")
                if not 400 <= status <= 599:
                    raise _Bad(f"{at}.error.status", f"must be an HTTP error status, not {status}")
                continue
            chunks = _need(entry.get("chunks"), list, f"{at}.chunks")
            for i, chunk in enumerate(chunks):
                _need(chunk, dict, f"{at}.chunks[{i}]")
            if "done" in entry:
                _need(entry["done"], bool, f"{at}.done")
    except _Bad as bad:
        raise CassetteError(f"{path} is not a valid cassette: {bad}") from None
