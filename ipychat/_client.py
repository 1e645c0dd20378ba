"""The HTTP layer: build the request, send it, turn the answer into chunk dicts.

One `httpx.AsyncClient` (one connection pool) per event loop, created on first use: a pool's
connections belong to the loop that opened them, and the magics, the widget and user code may each
stream from a different loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import functools
import json
import logging
import random
import time
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ChatError,
    ConfigError,
    StreamError,
    clip,
    redact,
    status_error,
)
from ._sse import EventTooLarge, SSEDecoder

if TYPE_CHECKING:
    import httpx

__all__ = [
    "STREAM_DONE",
    "Limits",
    "Request",
    "RetryNotice",
    "RetryPolicy",
    "StreamDone",
    "Timeouts",
    "get_client",
    "iter_chunks",
]

USER_AGENT = "ipychat/0.1"


@dataclass(frozen=True)
class Timeouts:
    connect: float = 10.0
    read: float = 120.0  # the longest wait for the next chunk; reasoning models pause long
    write: float = 30.0


@dataclass(frozen=True)
class Limits:
    """How much of what a server sends is read: nothing it sends is unbounded. Each limit, when
    passed, is one line that names it (set `Chat.limits` to change them)."""

    event_bytes: int = 8 << 20  # one SSE event, or a whole plain (non-streamed) answer
    error_bytes: int = 64 << 10  # an error body, as sent and once decompressed


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 3
    base: float = 0.5
    max_delay: float = 30.0
    max_total: float = 60.0  # give up when the waits would add up to more than this

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_delay)
        backoff = min(self.base * 2**attempt, self.max_delay)
        return backoff * (0.75 + random.random() / 2)  # jitter spreads out synchronized clients


@dataclass
class Request:
    """One chat-completions call. `key` is sent as a header and nowhere else.

    `diagnose`, where the server is a process of ours, is asked after a connection error whether
    that process is gone; its error (how it ended, the fix) then replaces "connection failed"
    and nothing is retried. `tool_tags`: the server leaves tool calls as `<tool_call>` text in
    the content (a GGUF's own chat template), so the accumulator parses them out.
    """

    url: str
    body: dict[str, Any]
    key: str | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    limits: Limits = field(default_factory=Limits)
    diagnose: Callable[[], ChatError | None] | None = field(default=None, compare=False)
    tool_tags: bool = False
    reasoning_echo: bool = False  # the provider wants tool calls' reasoning back (wire_message)

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if self.stream:
            headers["Accept"] = "text/event-stream"
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        return headers

    def __repr__(self) -> str:
        return f"Request({self.url!r}, model={self.body.get('model')!r})"

    def without_streaming(self) -> Request:
        body = {k: v for k, v in self.body.items() if k != "stream_options"}
        body["stream"] = False
        return dataclasses.replace(self, body=body)


_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)


def new_client() -> httpx.AsyncClient:
    import httpx

    _guard_logs()
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
    return httpx.AsyncClient(limits=limits, timeout=None, trust_env=True)


class _Redacting(logging.Filter):
    """httpx and httpcore log headers at DEBUG (a proxy that echoes the key in a response
    header would put it in the log): every record from them is scrubbed of keys."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


_LOGGERS = ("httpx", "httpcore", "httpcore.http11", "httpcore.http2", "httpcore.connection",
            "httpcore.proxy")  # fmt: skip
_filter = _Redacting()


def _guard_logs() -> None:
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _filter not in logger.filters:
            logger.addFilter(_filter)


def get_client() -> httpx.AsyncClient:
    """The running loop's pooled client (ipychat's own loop's, for iter_chunks)."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = _clients[loop] = new_client()
    return client


MAX_RETRY_AFTER = 86_400.0


def retry_after(headers: Any) -> float | None:
    """`Retry-After` as seconds, from either of its forms (seconds, or an HTTP date)."""
    value = headers.get("retry-after") if headers is not None else None
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        # inf, nan or 1e20 are no waits anyone can honour: a day is the most that counts.
        return min(max(0.0, seconds), MAX_RETRY_AFTER) if seconds == seconds else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(0.0, when.timestamp() - time.time()), MAX_RETRY_AFTER)


class StreamDone:
    """Yielded by `iter_chunks` when the stream said `[DONE]`: the answer is whole, even
    without a finish_reason (Snowflake), and nothing after it is read."""

    def __repr__(self) -> str:
        return "STREAM_DONE"


STREAM_DONE = StreamDone()


@dataclass(frozen=True)
class RetryNotice:
    """Yielded by `iter_chunks` before it waits to try again."""

    text: str
    delay: float


def _retryable(error: Exception) -> bool:
    if isinstance(error, APIStatusError):
        return error.status_code == 429 or error.status_code >= 500
    return isinstance(error, APIConnectionError)


async def iter_chunks(
    request: Request,
    policy: RetryPolicy = RetryPolicy(),
    client: httpx.AsyncClient | None = None,
) -> AsyncIterator[list[dict[str, Any]] | RetryNotice | StreamDone]:
    """Yield lists of response chunks, one list per network read (a plain response is one
    chunk), then STREAM_DONE if the stream said so. Failures before the first chunk are retried
    per `policy`, each wait announced by a `RetryNotice`; once a chunk has been yielded nothing
    is retried."""
    owned = None
    if client is None:
        from ._loop import owns_running_loop

        # ipychat's own loop lives as long as the kernel and keeps one pool; a loop of the
        # caller's (asyncio.run, the kernel's) may close without a word, so its client is this
        # call's and closes with it.
        client = get_client() if owns_running_loop() else (owned := new_client())
    try:
        async for batch in _with_retries(request, policy, client):
            yield batch
    finally:
        if owned is not None:
            await owned.aclose()


async def _with_retries(
    request: Request, policy: RetryPolicy, client: httpx.AsyncClient
) -> AsyncIterator[list[dict[str, Any]] | RetryNotice | StreamDone]:
    waited = 0.0
    attempt = 0
    while True:
        started = False
        try:
            async with contextlib.aclosing(_attempt(client, request)) as attempt_chunks:
                async for batch in attempt_chunks:
                    # A role-only first chunk is not a token: a long silence after it (a
                    # reasoning model thinking) that ends in a dropped connection is still
                    # retried.
                    started = started or (batch is not STREAM_DONE and _carries_answer(batch))
                    yield batch
            return
        except EmptyStream:
            # llama-cpp-python (and others) answer a request that fails once streaming has
            # begun, e.g. a prompt beyond the context or an image for a text-only model, with
            # 200 and an empty stream. Nothing was generated, so asking again without
            # streaming is safe, and it returns the server's real error (or the answer).
            request = request.without_streaming()
        except (APIStatusError, APIConnectionError) as error:
            if isinstance(error, APIConnectionError) and request.diagnose is not None:
                gone = await _diagnosis(request.diagnose)
                if gone is not None:
                    raise gone from None
            if started or not _retryable(error) or attempt >= policy.retries:
                raise
            after = error.retry_after if isinstance(error, APIStatusError) else None
            if isinstance(error, APIStatusError) and after is not None and after > policy.max_delay:
                # Asking again sooner than the server said would only be refused again.
                fmt = "%H:%M:%S" if after < 43_200 else "%Y-%m-%d %H:%M"
                when = time.strftime(fmt, time.localtime(time.time() + after))
                raise type(error)(
                    f"{error.message} — the server asks to wait {after:.0f} s: try again "
                    f"after {when}",
                    status_code=error.status_code,
                    body=error.body,
                    param=error.param,
                    code=error.code,
                    retry_after=after,
                ) from None
            delay = policy.delay(attempt, after)
            if waited + delay > policy.max_total:
                raise
            attempt += 1
            waited += delay
            text = f"{_retry_reason(error)}, retrying in {delay:.1f} s ({attempt}/{policy.retries})"
            yield RetryNotice(text, delay)
            await asyncio.sleep(delay)


async def _diagnosis(diagnose: Callable[[], ChatError | None]) -> ChatError | None:
    """The process's own account of a broken connection. A dying server closes its sockets a
    moment before it can be reaped, so it is asked for up to a second."""
    for _ in range(20):
        error = diagnose()
        if error is not None:
            return error
        await asyncio.sleep(0.05)
    return None


AFTER_DONE = 0.25  # seconds to read the rest of a body after [DONE], for the connection's reuse


async def _drain(reads: AsyncIterator[bytes]) -> None:
    async for _ in reads:
        pass


def _says_something(batch: list[Any]) -> bool:
    for chunk in batch:
        if not isinstance(chunk, dict) or chunk.get("error") or chunk.get("usage"):
            return True  # a malformed chunk is for the accumulator to name
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return True
        for choice in choices:
            if not isinstance(choice, dict):
                return True
            delta = choice.get("delta", choice.get("message", {}))
            if not isinstance(delta, dict) or any(delta.get(k) for k in _ANSWER_KEYS):
                return True
    return False


_ANSWER_KEYS = (
    "content", "reasoning_content", "reasoning", "tool_calls", "refusal", "reasoning_details"
)  # fmt: skip


def _carries_answer(batch: list[Any]) -> bool:
    """Whether the answer has begun (nothing is retried after that): text of any kind, a
    refusal, a tool call, a finish, usage, an error, or a chunk too malformed to tell."""
    if _says_something(batch):
        return True
    for chunk in batch:
        for choice in chunk.get("choices") or ():
            if choice.get("finish_reason"):
                return True
    return False


def _retry_reason(error: Exception) -> str:
    if isinstance(error, APIStatusError):
        return "rate-limited" if error.status_code == 429 else f"server error {error.status_code}"
    return "connection failed"


async def _attempt(
    client: httpx.AsyncClient, request: Request
) -> AsyncIterator[list[dict[str, Any]] | StreamDone]:
    import httpx

    timeout = _httpx_timeout(request.timeouts)
    try:
        async with client.stream(
            "POST", request.url, json=request.body, headers=request.headers(), timeout=timeout
        ) as response:
            limits = request.limits
            if response.status_code >= 400:
                body = await _read_error(response, limits.error_bytes)
                raise status_error(
                    response.status_code, body, retry_after=retry_after(response.headers)
                )
            ctype = response.headers.get("content-type", "")
            if not request.stream or "json" in ctype:
                # Some servers ignore "stream": true and answer with one JSON document.
                answer = _parse_json(await _read_capped(response, limits.event_bytes))
                _cost_header(answer, response.headers)
                yield [answer]
                return
            async with contextlib.aclosing(_sse_chunks(response, ctype, limits)) as batches:
                async for batch in batches:
                    yield batch
    except httpx.TimeoutException as error:
        what = "connecting" if isinstance(error, httpx.ConnectTimeout) else "waiting for data"
        raise APITimeoutError(f"timed out {what} from {_origin(request.url)}") from None
    except httpx.TransportError as error:
        reason = type(error).__name__
        detail = str(error) or reason
        raise APIConnectionError(f"connection to {_origin(request.url)} failed: {detail}") from None
    except (httpx.InvalidURL, UnicodeError) as error:
        # A URL the check before sending let through (an IDNA label, an address out of range).
        raise ConfigError(
            f"the base URL cannot be requested ({type(error).__name__}: {error})"
        ) from None


@functools.lru_cache(maxsize=32)
def _httpx_timeout(t: Timeouts) -> httpx.Timeout:
    import httpx

    return httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.connect)


class EmptyStream(StreamError):
    """200 with an event stream that carried no bytes at all."""


async def _read_capped(response: httpx.Response, cap: int) -> bytes:
    """The body, decompressed, refused once it passes `cap` bytes."""
    parts: list[bytes] = []
    size = 0
    async for piece in response.aiter_bytes():
        size += len(piece)
        if size > cap:
            raise StreamError(
                f"the answer is larger than {cap:,} bytes; raise Chat.limits.event_bytes if "
                "it is meant to be"
            )
        parts.append(piece)
    return b"".join(parts)


async def _read_error(response: httpx.Response, cap: int) -> bytes:
    """At most `cap` bytes of an error body, as sent and once decompressed: a small gzip body
    may inflate to gigabytes, and all the user needs of it is a line."""
    raw: list[bytes] = []
    size = 0
    async for piece in response.aiter_raw():
        raw.append(piece)
        size += len(piece)
        if size >= cap:
            break
    data = b"".join(raw)[:cap]
    encoding = response.headers.get("content-encoding", "").lower().strip()
    if encoding in ("gzip", "x-gzip", "deflate"):
        import zlib

        wbits = 16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS
        try:
            data = zlib.decompressobj(wbits).decompress(data, cap)
        except zlib.error:
            data = b""
    elif encoding and encoding != "identity":
        data = b""  # br, zstd: not worth a decoder for an error line; the status says enough
    return data


def _cost_header(answer: dict[str, Any], headers: Any) -> None:
    """LiteLLM reports a plain answer's cost only in a response header."""
    cost = headers.get("x-litellm-response-cost")
    if cost is None:
        return
    usage = answer.get("usage")
    if isinstance(usage, dict) and usage.get("cost") is None:
        usage["cost"] = cost
    elif usage is None:
        answer["usage"] = {"cost": cost}


async def _sse_chunks(
    response: httpx.Response, ctype: str, limits: Limits = Limits()
) -> AsyncIterator[list[dict[str, Any]] | StreamDone]:
    """The chunks of each network read, as one list: a fast stream costs one trip through the
    generators, and one call of the JSON parser, per read instead of per event."""
    decoder = SSEDecoder(limits.event_bytes)
    done = False
    seen_any = False
    said = False  # a chunk carried an answer, usage or an error
    received = 0
    reads = response.aiter_bytes()
    head: bytes | None = b""  # the first bytes, until it is known whether they open with a BOM
    quiet = 0  # bytes since the last event: blank lines and comments are bounded too
    async for raw in reads:
        if head is not None:
            head += raw
            if len(head) < len(BOM) and BOM.startswith(head):
                continue  # a BOM may arrive split across reads
            raw, head = head.removeprefix(BOM), None  # WHATWG's decoder drops it
        received += len(raw)
        quiet += len(raw)
        if quiet > limits.event_bytes:
            raise StreamError(
                f"the stream sent more than {limits.event_bytes:,} bytes without an event; "
                "raise Chat.limits.event_bytes if it is meant to be"
            )
        try:
            datas = decoder.feed_data(raw)
        except EventTooLarge as error:
            raise StreamError(
                f"the stream sent {error}; raise Chat.limits.event_bytes if it is meant to be"
            ) from None
        if datas:
            quiet = 0
        if not datas:
            if not seen_any and raw.lstrip()[:1] == b"<" and "event-stream" not in ctype:
                raise StreamError(
                    f"the server answered 200 with {ctype or 'no content type'}, "
                    "not an event stream; check the base URL"
                )
            continue
        seen_any = True
        datas, done = _until_done(datas)
        if datas:
            batch = load_batch(datas)
            said = said or _says_something(batch)
            yield batch
        if done:
            # Nothing after [DONE] counts: not a stall, not a drop, not an error. What follows
            # at once (the body's end) is read, so the connection goes back to the pool.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(_drain(reads), AFTER_DONE)
            break
    if not done:
        # An event the body ended without its blank line still counts.
        datas, done = _until_done([event.data.encode() for event in decoder.flush()])
        seen_any = seen_any or done or bool(datas)
        if datas:
            batch = load_batch(datas)
            said = said or _says_something(batch)
            yield batch
    if not received:
        raise EmptyStream("the server sent an empty stream")
    if seen_any and not said:
        # Only a role and a finish: what a gateway makes of a server whose stream failed
        # before its first token (LiteLLM over llama-cpp-python); the plain request says why.
        raise EmptyStream("the server sent a stream with no answer in it")
    if done:
        yield STREAM_DONE
        return
    if not seen_any:
        raise StreamError(
            f"the server answered 200 with {ctype or 'no content type'} and no events; "
            "check the base URL"
        )


DONE = b"[DONE]"
BOM = b"\xef\xbb\xbf"


def _until_done(datas: list[bytes]) -> tuple[list[bytes], bool]:
    """The events before `[DONE]`, and whether it came."""
    if DONE in datas:
        return datas[: datas.index(DONE)], True
    return datas, False


def load_batch(datas: list[bytes]) -> list[Any]:
    """Parse several JSON documents with one call: as one array. A payload that would change
    the count (or does not parse) sends us back to one document at a time, for the error."""
    if len(datas) > 1:
        try:
            batch = json.loads(b"[" + b",".join(datas) + b"]")
        except ValueError:
            pass
        else:
            if len(batch) == len(datas):
                return batch  # type: ignore[no-any-return]
    out = []
    for data in datas:
        try:
            out.append(json.loads(data))
        except ValueError:
            text = clip(data[:4096].decode("utf-8", "replace"), 80)
            raise StreamError(f"the stream sent invalid JSON: {text!r}") from None
    return out


def _parse_json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        text = clip(body[:4096].decode("utf-8", "replace"), 80)
        raise StreamError(f"the server answered 200 with invalid JSON: {text!r}") from None
    if not isinstance(data, dict):
        raise StreamError("the server answered 200 with JSON that is not an object")
    return data


def _origin(url: str) -> str:
    """Scheme, host and port: never a user or password the URL may carry."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{netloc}"
