"""Python functions as tools: JSON schemas from signatures, and running the calls. Core, pure
apart from calling the user's functions."""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import time
import types
import typing
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._errors import ConfigError

__all__ = ["MAX_RESULT_CHARS", "Tool", "ToolCall", "schema_for", "tools_from"]

MAX_RESULT_CHARS = 16_000  # a tool's result is cut to this before it is sent to the model

_SIMPLE = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _type_schema(annotation: Any, where: str) -> dict[str, Any]:
    if annotation is inspect.Parameter.empty or annotation is Any:
        return {}
    if isinstance(annotation, str):  # a hint that did not resolve (a local class, a typo)
        simple = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict}
        if annotation in simple:
            return _type_schema(simple[annotation], where)
        raise ConfigError(
            f"{where} has type {annotation}, which has no JSON schema; use str, int, float, "
            "bool, list, dict or Literal"
        )
    if annotation in _SIMPLE:
        return {"type": _SIMPLE[annotation]}
    if annotation is type(None):
        return {"type": "null"}
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _type_schema(options[0], where)
        return {"anyOf": [_type_schema(a, where) for a in options]}
    if annotation in (list, tuple, set) or origin in (list, tuple, set, Sequence):
        item = _type_schema(args[0], where) if args else {}
        return {"type": "array", "items": item} if item else {"type": "array"}
    if annotation is dict or origin is dict:
        return {"type": "object"}
    name = getattr(annotation, "__name__", repr(annotation))
    raise ConfigError(
        f"{where} has type {name}, which has no JSON schema; use str, int, float, bool, "
        "list, dict or Literal"
    )


_ARGS = re.compile(r"^\s*(Args|Arguments|Parameters):\s*$", re.M)


def _doc_parts(fn: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    doc = inspect.getdoc(fn) or ""
    match = _ARGS.search(doc)
    summary = (doc[: match.start()] if match else doc).strip()
    params: dict[str, str] = {}
    if match:
        current = None
        for line in doc[match.end() :].splitlines():
            if line.strip() and not line.startswith((" ", "\t")):
                break  # the next section
            item = re.match(r"^\s{2,}(\w+)\s*(\([^)]*\))?\s*:\s*(.*)$", line)
            if item:
                current = item.group(1)
                params[current] = item.group(3).strip()
            elif current and line.strip():
                params[current] += " " + line.strip()
    return summary, params


def schema_for(fn: Callable[..., Any]) -> dict[str, Any]:
    """The `tools` entry for a function, from its signature, type hints and docstring."""
    name = getattr(fn, "__name__", None)
    if not name or not callable(fn):
        raise ConfigError(f"{fn!r} is not a function that can be offered as a tool")
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        hints = {}
    summary, docs = _doc_parts(fn)
    properties: dict[str, Any] = {}
    required = []
    wrap = f"wrap it in a function of your own, e.g. def my_{name}(x: str) -> str: return {name}(x)"
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        raise ConfigError(
            f"{name}() has no signature Python can read (a builtin?); {wrap}"
        ) from None
    if inspect.isbuiltin(fn) or any(p.kind is p.POSITIONAL_ONLY for p in parameters):
        # The model names the arguments; a builtin (or any positional-only parameter) cannot
        # be called with names.
        raise ConfigError(f"{name}() is a builtin that takes no named arguments; {wrap}")
    for param in parameters:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(param.name, param.annotation)
        schema = _type_schema(annotation, f"parameter {param.name!r} of {name}()")
        if param.name in docs:
            schema["description"] = docs[param.name]
        properties[param.name] = schema
        if param.default is inspect.Parameter.empty:
            required.append(param.name)
    function: dict[str, Any] = {
        "name": name,
        "parameters": {"type": "object", "properties": properties, "required": required},
    }
    if summary:
        function["description"] = summary
    return {"type": "function", "function": function}


@dataclass
class Tool:
    fn: Callable[..., Any]
    schema: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.schema["function"]["name"])


def tools_from(functions: Sequence[Callable[..., Any]]) -> dict[str, Tool]:
    tools: dict[str, Tool] = {}
    for fn in functions:
        tool = Tool(fn, schema_for(fn))
        tools[tool.name] = tool
    return tools


@dataclass
class ToolCall:
    """One requested call and what came of it; shown in the cell and kept in the thread."""

    id: str
    name: str
    arguments: str
    result: str | None = None
    error: bool = False
    approved: bool = True
    duration: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def message(self) -> dict[str, Any]:
        return {"role": "tool", "tool_call_id": self.id, "content": self.result or ""}


def encode_result(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f"… (cut at {MAX_RESULT_CHARS:,} characters)"
    return text


Approver = Callable[[ToolCall], Awaitable[bool]]
Runner = Callable[[Callable[..., Any], dict[str, Any]], Awaitable[Any]]


async def direct_runner(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """Coroutine functions are awaited; plain ones run in a worker thread, off the event loop,
    so a tool may block, or itself call `Chat.ask()`, without stalling or deadlocking it."""
    if inspect.iscoroutinefunction(fn):
        return await fn(**kwargs)
    result = await asyncio.to_thread(fn, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


async def run_call(
    call: ToolCall, tools: dict[str, Tool], runner: Runner, approve: Approver | None
) -> ToolCall:
    """Run one call; every failure becomes the tool's result, so the turn goes on."""
    tool = tools.get(call.name)
    if tool is None:
        call.result, call.error = f"Error: there is no tool named {call.name!r}", True
        return call
    try:
        kwargs = json.loads(call.arguments or "{}")
        if not isinstance(kwargs, dict):
            raise ValueError("arguments must be a JSON object")
    except ValueError as exc:
        call.result, call.error = f"Error: the arguments are not valid JSON ({exc})", True
        return call
    if approve is not None and not await approve(call):
        call.approved = False
        call.result = "The user declined to run this tool call."
        return call
    start = time.perf_counter()
    try:
        call.result = encode_result(await runner(tool.fn, kwargs))
    except Exception as exc:
        call.result, call.error = f"Error: {type(exc).__name__}: {exc}", True
    call.duration = time.perf_counter() - start
    return call
