"""A loopback OpenAI-compatible server that speaks the providers' dialects, scripted per test.

    server = FakeProvider().start()
    server.push(sse(["Hel", "lo"], reasoning=["hm"]))      # the next request gets this
    ... POST {server.url}/chat/completions ...
    server.requests[-1].body                              # what the client sent

With nothing scripted it echoes: the answer quotes the last user message and counts the messages
it was sent, streamed word by word (a model name containing "reasoner" also streams DeepSeek-style
`reasoning_content` first). Run `python -m tests.fakeprovider --port 8765` to use it by hand.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: Any
    client_port: int = 0
    ended: float = 0.0  # time.monotonic() when the response ended or the client hung up
    closed_early: bool = False  # the client hung up before the response ended
    finished: threading.Event = field(default_factory=threading.Event)


@dataclass
class Script:
    """One scripted response."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None  # a plain body (JSON, error, HTML)
    events: list[bytes] | None = None  # SSE body pieces, written one by one
    delay: float = 0.0  # seconds between pieces
    first_delay: float = 0.0
    drop: bool = False  # close the socket before the body ends
    chunk_sizes: int | None = None  # re-cut the SSE body into pieces of this many bytes
    pauses: dict[int, float] = field(default_factory=dict)  # piece index -> seconds before it


def chunk(
    content: str | None = None,
    *,
    reasoning: str | None = None,
    field_name: str = "reasoning_content",
    finish: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    usage: dict[str, Any] | None = None,
    model: str = "fake-model",
    choices: bool = True,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    if content is not None:
        delta["content"] = content
    if reasoning is not None:
        delta[field_name] = reasoning
    if tool_calls is not None:
        delta["tool_calls"] = tool_calls
    body: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else [],
    }
    if usage is not None:
        body["usage"] = usage
    if extra:
        body.update(extra)
    return body


def event(data: Any, crlf: bool = False) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data)
    end = "\r\n" if crlf else "\n"
    return f"data: {text}{end}{end}".encode()


USAGE = {
    "prompt_tokens": 12,
    "completion_tokens": 5,
    "total_tokens": 17,
    "prompt_tokens_details": {"cached_tokens": 4},
    "completion_tokens_details": {"reasoning_tokens": 2},
}


def sse(
    content: list[str],
    *,
    reasoning: list[str] = (),  # type: ignore[assignment]
    field_name: str = "reasoning_content",
    finish: str = "stop",
    usage: dict[str, Any] | None = USAGE,
    usage_extra: dict[str, Any] | None = None,
    done: bool = True,
    crlf: bool = False,
    comments: bool = True,
    delay: float = 0.0,
    model: str = "fake-model",
    drop_after: int | None = None,
    chunk_sizes: int | None = None,
    first_delay: float = 0.0,
) -> Script:
    """A streamed answer in the common dialect: role chunk, deltas, finish, usage-only, [DONE]."""
    pieces = [
        event(
            chunk("", model=model, extra=None)
            | {"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]},
            crlf,
        )
    ]
    if comments:
        pieces.append(b": keep-alive\n\n" if not crlf else b": keep-alive\r\n\r\n")
    pieces += [
        event(chunk(reasoning=r, field_name=field_name, model=model), crlf) for r in reasoning
    ]
    pieces += [event(chunk(c, model=model), crlf) for c in content]
    if drop_after is not None:
        pieces = pieces[: drop_after + 1]
        return Script(
            events=pieces, delay=delay, drop=True, chunk_sizes=chunk_sizes, first_delay=first_delay
        )
    pieces.append(event(chunk(finish=finish, model=model), crlf))
    if usage is not None:
        pieces.append(
            event(chunk(usage=usage, choices=False, model=model, extra=usage_extra), crlf)
        )
    if done:
        pieces.append(event("[DONE]", crlf))
    return Script(
        events=pieces,
        delay=delay,
        chunk_sizes=chunk_sizes,
        first_delay=first_delay,
        headers={"Content-Type": "text/event-stream"},
    )


def raw_sse(pieces: list[bytes], **kw: Any) -> Script:
    return Script(events=pieces, headers={"Content-Type": "text/event-stream"}, **kw)


def completion(
    content: str,
    *,
    reasoning: str | None = None,
    finish: str = "stop",
    usage: dict[str, Any] | None = USAGE,
    model: str = "fake-model",
) -> Script:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    body = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }
    if usage is not None:
        body["usage"] = usage
    return Script(body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})


def error(
    status: int,
    message: str = "bad",
    *,
    param: str | None = None,
    code: str | None = None,
    type_: str = "invalid_request_error",
    headers: dict[str, str] | None = None,
) -> Script:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return Script(
        status=status,
        body=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._send_plain(
                200,
                json.dumps(
                    {
                        "object": "list",
                        "data": [
                            {"id": "fake-model", "object": "model"},
                            {"id": "fake-reasoner", "object": "model"},
                        ],
                    }
                ).encode(),
            )
        else:
            self._send_plain(404, b'{"error": {"message": "not found"}}')

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        record = Recorded(self.path, dict(self.headers.items()), body, self.client_address[1])
        self.server.owner.requests.append(record)
        try:
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send_plain(404, b'{"error": {"message": "unknown path"}}')
                return
            script = self.server.owner.next_script(body)
            self._play(script, record)
        except (BrokenPipeError, ConnectionResetError):
            record.closed_early = True
        finally:
            record.ended = time.monotonic()
            record.finished.set()

    def _send_plain(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        headers = {"Content-Type": "application/json", **(headers or {})}
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _play(self, script: Script, record: Recorded) -> None:
        if script.first_delay:
            time.sleep(script.first_delay)
        if script.events is None:
            self._send_plain(script.status, script.body or b"", script.headers)
            return
        self.send_response(script.status)
        for key, value in script.headers.items():
            self.send_header(key, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        pieces = script.events
        if script.chunk_sizes:
            blob = b"".join(pieces)
            n = script.chunk_sizes
            pieces = [blob[i : i + n] for i in range(0, len(blob), n)]
        for index, piece in enumerate(pieces):
            if index and script.delay:
                time.sleep(script.delay)
            if index in script.pauses:
                time.sleep(script.pauses[index])
            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.flush()
        if script.drop:
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: FakeProvider

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up mid-stream is part of the tests


class FakeProvider:
    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.requests: list[Recorded] = []
        self.scripts: deque[Script] = deque()
        self.default_delay = 0.0
        self._server: _Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeProvider:
        self._server = _Server(("127.0.0.1", self.port), _Handler)
        self._server.owner = self
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def push(self, *scripts: Script) -> None:
        self.scripts.extend(scripts)

    def reset(self) -> None:
        self.scripts.clear()
        self.requests.clear()
        self.default_delay = 0.0

    def next_script(self, body: Any) -> Script:
        if self.scripts:
            return self.scripts.popleft()
        return self.echo(body)

    def echo(self, body: Any) -> Script:
        messages = body.get("messages", []) if isinstance(body, dict) else []
        last = messages[-1].get("content") if messages else ""
        seen = ""
        if isinstance(last, list):
            images = [p["image_url"]["url"] for p in last if p.get("type") == "image_url"]
            kinds = [u.split(";")[0][5:] if u.startswith("data:") else u for u in images]
            seen = f" (with {len(images)} images: {', '.join(kinds)})" if images else ""
            last = " ".join(p.get("text", "") for p in last if p.get("type") == "text") + seen
        model = body.get("model", "fake-model") if isinstance(body, dict) else "fake-model"
        text = f"Echo: {last}\n\n(I was sent {len(messages)} messages.)"
        words = [w + " " for w in text.split(" ")]
        words[-1] = words[-1][:-1]
        reasoning = ["Thinking ", "about ", "it."] if "reasoner" in model else []
        if isinstance(body, dict) and not body.get("stream"):
            return completion(text, reasoning="".join(reasoning) or None, model=model)
        return sse(words, reasoning=reasoning, delay=self.default_delay, model=model)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--delay", type=float, default=0.02, help="seconds between echo words")
    options = parser.parse_args()
    fake = FakeProvider(options.port).start()
    fake.default_delay = options.delay
    print(f"fake provider at {fake.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()
