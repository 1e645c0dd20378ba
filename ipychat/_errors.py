"""The one error hierarchy of ipychat.

    ChatError
    ├── ConfigError            bad settings or input, found before any request is sent
    ├── APIConnectionError     the server could not be reached or the connection broke
    │   ├── APITimeoutError    connect or read (between chunks) timed out
    │   └── LocalServerError   the embedded local server's process is gone (how, and the fix)
    ├── APIStatusError         the server answered with an HTTP error status
    │   ├── BadRequestError        400, 404, 409, 413, 422 (404 also: unknown model or path)
    │   ├── AuthenticationError    401, 403
    │   ├── RateLimitError         429
    │   └── ServerError            5xx
    ├── StreamError            the stream broke midway (error event, bad JSON, not SSE)
    └── CassetteError          replay found no recorded answer for a request

`status_error()` is the single place that maps a status code and the provider's error object to a
class and a one-line message. Messages never contain the API key: they are built from the
provider's own error text, which `redact()` scrubs of anything key-shaped we know about.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "CassetteError",
    "ChatError",
    "ConfigError",
    "RateLimitError",
    "ServerError",
    "StreamError",
]

_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a key so that every error text built later is scrubbed of it."""
    if value and len(value) >= 4:
        _secrets.add(value)


FRAGMENT = 12  # a run of this many characters of a key is as telling as the key


def redact(text: str) -> str:
    """`text` with every key we know, and every run of FRAGMENT or more of its characters (what
    survives a cut to length), replaced by `***`."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
        if len(secret) < FRAGMENT or len(text) < FRAGMENT:
            continue
        spans: list[tuple[int, int]] = []
        for start in range(len(secret) - FRAGMENT + 1):
            piece = secret[start : start + FRAGMENT]
            at = text.find(piece)
            while at >= 0:
                spans.append((at, at + FRAGMENT))
                at = text.find(piece, at + 1)
        if spans:
            text = _cut_out(text, spans)
    return text


def _cut_out(text: str, spans: list[tuple[int, int]]) -> str:
    spans.sort()
    out, last = [], 0
    for start, end in spans:
        if start < last:  # overlaps the span before: widen it
            last = max(last, end)
            continue
        out.append(text[last:start])
        out.append("***")
        last = end
    # merge: a span that began inside the previous one was folded into it above
    out.append(text[last:])
    return "".join(out)


MAX_MESSAGE = 500  # characters of a provider's message shown in one error line


def clip(text: str, limit: int = MAX_MESSAGE) -> str:
    """Redacted first, then cut: a cut must never leave part of a key behind."""
    text = redact(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ChatError(Exception):
    """Base class of every error ipychat raises on purpose: one line, at most a few hundred
    characters of anything a provider said, never a key."""

    def __init__(self, message: str) -> None:
        super().__init__(clip(" ".join(message.split()), MAX_MESSAGE + 200))

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of a traceback: the user needs the one line, not our stack,
        # and a terminal must not obey what a provider put in its message.
        from ._display import inert

        return [f"\x1b[31m{type(self).__name__}: {inert(str(self), one_line=True)}\x1b[0m"]


class ConfigError(ChatError, ValueError):
    """Settings or input are wrong; nothing was sent."""


class APIConnectionError(ChatError):
    """The server could not be reached, or the connection broke."""


class APITimeoutError(APIConnectionError):
    """Connecting, or waiting for the next chunk, took longer than the timeout."""


class LocalServerError(APIConnectionError):
    """The local server this process started has exited: retrying cannot help, so the message
    says how it ended and what to do instead of "connection failed"."""


class APIStatusError(ChatError):
    """The server answered with an HTTP error status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: Any = None,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body
        self.param = param
        self.code = code
        self.retry_after = retry_after


class BadRequestError(APIStatusError):
    """The request was refused as invalid (400, 404, 409, 413, 422)."""


class AuthenticationError(APIStatusError):
    """The key is missing, wrong, or not allowed to do this (401, 403)."""


class RateLimitError(APIStatusError):
    """Too many requests, or the quota is used up (429)."""


class ServerError(APIStatusError):
    """The provider failed (5xx)."""


class StreamError(ChatError):
    """The stream broke after it started; what arrived is kept on `.reply` (when set)."""

    reply: Any = None


class CassetteError(ChatError):
    """Replay mode found no recorded response for a request."""


_HINTS = {
    401: "check the API key (%chat key, or the provider's *_API_KEY variable)",
    403: "the key is not allowed to use this model or endpoint",
    404: "check the model name (%chat model NAME) and the base URL (it usually ends in /v1)",
    429: "rate-limited or out of credit: wait, or check your plan",
}


def _error_object(body: Any) -> dict[str, Any]:
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            return err
        if isinstance(err, str):
            return {"message": err}
    if isinstance(body, str) and body.strip():
        return {"message": redact(body.strip())}
    return {}


def _class_for(status: int) -> type[APIStatusError]:
    if status in (401, 403):
        return AuthenticationError
    if status == 429:
        return RateLimitError
    if status >= 500:
        return ServerError
    return BadRequestError


def status_error(status: int, body: Any, *, retry_after: float | None = None) -> APIStatusError:
    """Build the error for an HTTP error response: one line, status first, then a hint."""
    if isinstance(body, (bytes, str)):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        try:
            body = json.loads(text)
        except ValueError:
            body = text
    err = _error_object(body)
    detail = err.get("message") or err.get("detail") or ""
    if not isinstance(detail, str):
        detail = json.dumps(detail, default=str)
    raw = (err.get("metadata") or {}).get("raw") if isinstance(err.get("metadata"), dict) else None
    if raw:  # OpenRouter: what the upstream provider said
        raw = raw if isinstance(raw, str) else json.dumps(raw, default=str)
        detail = f"{detail} (upstream: {raw})" if detail else raw
    detail = clip(" ".join(detail.split()))
    param = err.get("param") if isinstance(err.get("param"), str) else None
    if param is not None and param.strip().lower() in ("", "none", "null"):
        param = None  # some providers send the string "None"
    code = err.get("code")
    code = str(code) if code is not None else None
    parts = [f"HTTP {status}"]
    if detail:
        parts.append(detail)
    if param:
        parts.append(f"(param: {param})")
    message = ": ".join(parts[:2]) + (" " + parts[2] if len(parts) > 2 else "")
    hint = _HINTS.get(status)
    if (status >= 500 or status == 400) and _is_no_images(detail):
        hint = "this model or server takes no images; ask without -i"
    if hint:
        message += f" — {hint}"
    return _class_for(status)(
        message, status_code=status, body=body, param=param, code=code, retry_after=retry_after
    )


def _is_no_images(detail: str) -> bool:
    # llama-cpp-python answers a list-of-parts content with a 500 "can only concatenate str
    # (not "list") to str" (LOCAL_MODEL.md); hosted APIs say so in a 400.
    text = detail.lower()
    if "concatenate str" in text and "list" in text:
        return True
    return "image" in text and any(
        s in text for s in ("not support", "only supported", "invalid content type", "no vision")
    )
