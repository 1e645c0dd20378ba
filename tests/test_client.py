"""The HTTP layer against a real loopback server speaking the providers' dialects."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

import ipychat
from ipychat._client import STREAM_DONE, Request, RetryNotice, RetryPolicy, iter_chunks, retry_after
from tests.fakeprovider import Script, chunk, completion, error, event, raw_sse, sse

FAST = RetryPolicy(retries=3, base=0.01, max_delay=0.05)


def collect(fake, body=None, policy=FAST) -> list:
    body = body or {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}

    async def run() -> list:
        out = []
        request = Request(f"{fake.url}/chat/completions", body)
        async for batch in iter_chunks(request, policy):
            if batch is not STREAM_DONE:
                out.extend(batch if isinstance(batch, list) else [batch])
        return out

    return asyncio.run(run())


def test_streams_chunks_until_done(fake) -> None:
    fake.push(sse(["a", "b"]))
    chunks = collect(fake)
    assert [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]] == [
        None,
        "a",
        "b",
        None,
    ]
    assert chunks[-1]["usage"]["prompt_tokens"] == 12


def test_crlf_stream_split_at_every_byte(fake) -> None:
    fake.push(sse(["héllo", " ✓"], crlf=True, chunk_sizes=1))
    text = "".join(
        c["choices"][0]["delta"].get("content") or "" for c in collect(fake) if c["choices"]
    )
    assert text == "héllo ✓"


def test_key_is_sent_as_bearer_header(fake) -> None:
    async def run() -> None:
        request = Request(
            f"{fake.url}/chat/completions", {"model": "m", "messages": []}, key="sk-xyz"
        )
        [c async for c in iter_chunks(request)]

    fake.push(completion("ok"))
    asyncio.run(run())
    assert fake.requests[-1].headers["Authorization"] == "Bearer sk-xyz"


def test_retries_429_honouring_retry_after(fake) -> None:
    fake.push(error(429, "slow down", headers={"Retry-After": "0.2"}), sse(["ok"]))
    start = time.perf_counter()
    chunks = collect(fake, policy=RetryPolicy(retries=3, base=0.01, max_delay=5))
    assert time.perf_counter() - start >= 0.2
    assert isinstance(chunks[0], RetryNotice) and "rate-limited" in chunks[0].text
    assert len(fake.requests) == 2


def test_retries_5xx_then_gives_up_with_server_error(fake) -> None:
    fake.push(*[error(503, "busy")] * 4)
    with pytest.raises(ipychat.ServerError, match="HTTP 503: busy"):
        collect(fake)
    assert len(fake.requests) == 4  # one try and three retries


def test_400_is_not_retried(fake) -> None:
    fake.push(error(400, "bad param", param="temperature"))
    with pytest.raises(ipychat.BadRequestError, match="param: temperature"):
        collect(fake)
    assert len(fake.requests) == 1


def test_connection_refused_is_retried_then_raised() -> None:
    class Closed:
        url = "http://127.0.0.1:9/v1"

    with pytest.raises(ipychat.APIConnectionError):
        collect(Closed())


def test_error_event_mid_stream(fake) -> None:
    fake.push(raw_sse([event(chunk("part")), event({"error": {"message": "overloaded"}})]))
    chunks = collect(fake)
    assert chunks[-1] == {"error": {"message": "overloaded"}}  # the accumulator raises on it


def test_invalid_json_event_is_a_stream_error(fake) -> None:
    fake.push(raw_sse([event(chunk("a")), b"data: {not json\n\n"]))
    with pytest.raises(ipychat.StreamError, match="invalid JSON"):
        collect(fake)


def test_html_body_with_200_is_a_clear_error(fake) -> None:
    fake.push(Script(body=b"<html>login page</html>", headers={"Content-Type": "text/html"}))
    with pytest.raises(ipychat.StreamError, match=r"not an event stream|no events"):
        collect(fake)


def test_json_answer_to_a_stream_request_is_accepted(fake) -> None:
    fake.push(completion("whole"))
    assert collect(fake)[0]["choices"][0]["message"]["content"] == "whole"


def test_dropped_connection_after_first_chunk_is_not_retried(fake) -> None:
    fake.push(sse(["a", "b", "c"], drop_after=2))
    with pytest.raises(ipychat.APIConnectionError):
        collect(fake)
    assert len(fake.requests) == 1


def test_read_timeout_between_chunks_after_text_is_not_retried(fake) -> None:
    from ipychat._client import Timeouts

    script = sse(["a", "b"])
    script.pauses = {3: 0.5}  # role, keep-alive, "a", then a stall
    fake.push(script, sse(["never"]))

    async def run() -> None:
        request = Request(
            f"{fake.url}/chat/completions",
            {"model": "m", "messages": [], "stream": True},
            timeouts=Timeouts(read=0.1),
        )
        [c async for c in iter_chunks(request, FAST)]

    with pytest.raises(ipychat.APITimeoutError, match="waiting for data"):
        asyncio.run(run())
    assert len(fake.requests) == 1


def test_silence_after_a_role_only_chunk_is_retried(fake) -> None:
    from ipychat._client import Timeouts

    script = sse(["a"])
    script.pauses = {1: 0.5}  # the role chunk, then a long silence (a model thinking)
    fake.push(script, sse(["answer"]))
    request = Request(
        f"{fake.url}/chat/completions",
        {"model": "m", "messages": [], "stream": True},
        timeouts=Timeouts(read=0.1),
    )

    async def run() -> list:
        out = []
        async for batch in iter_chunks(request, FAST):
            if batch is not STREAM_DONE:
                out.extend(batch if isinstance(batch, list) else [batch])
        return out

    chunks = asyncio.run(run())
    assert "answer" in [
        c["choices"][0]["delta"].get("content")
        for c in chunks
        if isinstance(c, dict) and c.get("choices")
    ]
    assert len(fake.requests) == 2


def test_retry_after_http_date() -> None:
    from email.utils import formatdate

    value = retry_after({"retry-after": formatdate(time.time() + 30, usegmt=True)})
    assert 25 < value <= 31
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({}) is None


def test_connections_are_reused_on_ipychats_own_loop(fake) -> None:
    """`Chat.ask` runs on the private loop, whose pooled client lives as long as it does."""
    chat = ipychat.Chat(base_url=fake.url, model="m")
    fake.push(sse(["a"]), sse(["b"]), sse(["c"]))
    for _ in range(3):
        chat.ask("hi", history=False)
    assert len({r.client_port for r in fake.requests}) == 1


def test_calls_on_the_callers_loops_leave_no_open_transport(fake) -> None:
    """asyncio.run() closes its loop without a word: a client kept for it would leak its
    sockets, so such a call's client closes with the call."""
    import gc
    import warnings

    chat = ipychat.Chat(base_url=fake.url, model="m")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for _ in range(30):
            asyncio.run(chat.ask_async("hi", history=False))
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert all(r.finished.wait(2) for r in fake.requests)


def test_empty_stream_is_asked_again_without_streaming_to_get_the_real_error(fake) -> None:
    fake.push(raw_sse([]), error(400, "maximum context length is 8192", code="ctx"))
    with pytest.raises(ipychat.BadRequestError, match="maximum context length"):
        collect(fake)
    assert fake.requests[-1].body["stream"] is False
    assert "stream_options" not in fake.requests[-1].body


def test_empty_stream_then_a_plain_answer_is_used(fake) -> None:
    fake.push(raw_sse([]), completion("fine"))
    assert collect(fake)[0]["choices"][0]["message"]["content"] == "fine"


def test_a_server_process_that_is_gone_is_said_instead_of_retried() -> None:
    """A dead local server refuses connections: its own account replaces "connection failed",
    at once, with no retries and no backoff."""
    from ipychat._errors import LocalServerError

    asked = []

    def diagnose():
        asked.append(1)
        return LocalServerError("the local server was killed by SIGSEGV: …")

    async def run() -> list:
        request = Request("http://127.0.0.1:9/v1/chat/completions", {"stream": True}, None)
        request.diagnose = diagnose
        return [b async for b in iter_chunks(request, RetryPolicy(retries=3, base=5.0))]

    started = time.monotonic()
    with pytest.raises(ipychat.APIConnectionError, match="killed by SIGSEGV"):
        asyncio.run(run())
    assert asked == [1] and time.monotonic() - started < 2


def test_a_live_process_after_a_connection_error_is_retried_as_usual() -> None:
    async def run() -> list:
        request = Request("http://127.0.0.1:9/v1/chat/completions", {"stream": True}, None)
        request.diagnose = lambda: None
        return [b async for b in iter_chunks(request, FAST)]

    with pytest.raises(ipychat.APIConnectionError, match="connection to"):
        asyncio.run(run())


def test_without_streaming_keeps_the_diagnosis_and_the_tool_tags() -> None:
    request = Request("u", {"stream": True}, "k", diagnose=lambda: None, tool_tags=True)
    plain = request.without_streaming()
    assert plain.diagnose is request.diagnose and plain.tool_tags and not plain.stream


def test_an_event_without_end_is_capped_in_one_line(fake) -> None:
    from ipychat._client import Limits

    fake.push(raw_sse([b"data: " + b"x" * 200_000]))

    async def run() -> list:
        request = Request(f"{fake.url}/chat/completions", {"stream": True}, None)
        request.limits = Limits(event_bytes=100_000)
        return [b async for b in iter_chunks(request, FAST)]

    with pytest.raises(ipychat.StreamError, match="more than 100,000 bytes"):
        asyncio.run(run())


def test_a_gzip_bomb_error_body_is_read_only_to_its_cap(fake) -> None:
    import resource
    import zlib

    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip, made piecewise
    block = b"A" * (1 << 20)
    parts = [packer.compress(b'{"error": {"message": "')]
    parts += [packer.compress(block) for _ in range(300)]  # 300 MB inflated
    bomb = b"".join([*parts, packer.compress(b'"}}'), packer.flush()])
    fake.push(Script(status=500, body=bomb, headers={"Content-Encoding": "gzip"}))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ipychat.ServerError) as info:
        collect(fake, policy=type(FAST)(retries=0))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100 and len(str(info.value)) < 800


def test_a_huge_error_message_is_one_short_line(fake) -> None:
    fake.push(Script(status=400, body=json.dumps({"error": {"message": "B" * 5_000_000}}).encode()))
    with pytest.raises(ipychat.BadRequestError) as info:
        collect(fake)
    assert len(str(info.value)) < 800 and "\n" not in str(info.value)


def test_a_cost_only_in_litellms_header_is_read(fake) -> None:
    fake.push(
        Script(
            body=json.dumps(
                {
                    "model": "m",
                    "choices": [
                        {"index": 0, "message": {"content": "hi"}, "finish_reason": "stop"}
                    ],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 1},
                }
            ).encode(),
            headers={"x-litellm-response-cost": "0.00042"},
        )
    )
    reply = ipychat.Chat(base_url=fake.url, model="m").ask("hi", stream=False)
    assert reply.cost == pytest.approx(0.00042)


def test_a_stream_with_only_a_finish_is_asked_again_plainly_for_the_real_error(fake) -> None:
    """What LiteLLM makes of llama-cpp-python's empty stream on an over-long prompt."""
    role = event({"model": "m", "choices": [{"index": 0, "delta": {"role": "assistant"}}]})
    stop = event({"model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    fake.push(raw_sse([role, stop, b"data: [DONE]\n\n"]), error(400, "context length exceeded"))
    with pytest.raises(ipychat.BadRequestError, match="context length exceeded"):
        ipychat.Chat(base_url=fake.url, model="m").ask("hi")
    assert fake.requests[-1].body["stream"] is False
