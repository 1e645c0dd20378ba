"""Every recorded provider response, replayed through `Chat` from a loopback server: whole, cut
at random byte boundaries, with CRLF line ends, and with the connection dropped part-way. What
ipychat shows must equal what tests/provider_fixtures.py reads from the same bytes."""

from __future__ import annotations

import itertools
import json
import random
from typing import Any

import pytest

import ipychat
from tests import provider_fixtures as pf
from tests.fakeprovider import Script

FIXTURES = pf.load_all()
SINGLE = [f for f in FIXTURES if "responses" not in f]
ROUNDTRIPS = [f for f in FIXTURES if "responses" in f]
pytestmark = pytest.mark.skipif(
    not FIXTURES, reason=f"the recorded provider responses are not here ({pf.FIXTURES})"
)
VARIANTS = ["whole", "cut", "crlf", "drop"]


def _streamed(fixture: dict[str, Any]) -> bool:
    return "event-stream" in (fixture["content_type"] or "")


# CRLF line ends are an event-stream matter: JSON answers are replayed the other three ways.
CASES = [(f, v) for f in SINGLE for v in VARIANTS if v != "crlf" or _streamed(f)]


def _pieces(body: bytes, name: str, variant: str) -> tuple[list[bytes], bool]:
    """The body as the server writes it (one HTTP chunk per piece), and whether it then drops."""
    rng = random.Random(f"{name}/{variant}")
    if variant == "whole":
        return [body], False
    if variant == "drop":
        return [body[: rng.randrange(1, max(2, len(body) - 1))]], True
    cuts = sorted(rng.sample(range(1, len(body)), min(len(body) - 1, 12)))
    edges = [0, *cuts, len(body)]
    return [body[a:b] for a, b in itertools.pairwise(edges)], False


def _script(response: dict[str, Any], pieces: list[bytes], drop: bool) -> Script:
    headers = {"Content-Type": response["content_type"] or "application/json"}
    headers.update(response.get("headers") or {})
    return Script(status=response["status"], headers=headers, events=pieces, drop=drop)


def _chat(fake, response: dict[str, Any]) -> ipychat.Chat:
    chat = ipychat.Chat(base_url=fake.url, model="recorded-model")
    chat.retry = type(chat.retry)(retries=0)
    return chat


def _reply(chat: ipychat.Chat, stream: bool, **params: Any) -> tuple[Any, BaseException | None]:
    try:
        return chat.ask("hi", stream=stream, **params), None
    except ipychat.ChatError as error:
        return getattr(error, "reply", None), error


def _check(reply: Any, x: pf.Expected) -> None:
    assert reply.content.strip() == x.content.strip()
    assert reply.reasoning.strip() == x.reasoning.strip()
    assert (reply.refusal or "") == x.refusal
    calls = [
        (c["function"]["name"], pf.arguments(c["function"]["arguments"])) for c in reply.tool_calls
    ]
    assert calls == x.tool_calls
    assert reply.finish_reason == x.finish_reason
    assert reply.model == (x.model or "recorded-model")
    usage = reply.usage
    if any(x.usage.values()):
        assert usage is not None
        got = {k: getattr(usage, k) for k in x.usage}
        assert got == x.usage
    if x.cost is not None:
        assert reply.cost == pytest.approx(x.cost)
    else:
        assert reply.cost is None


@pytest.mark.parametrize(("fixture", "variant"), CASES, ids=[f"{f['name']}-{v}" for f, v in CASES])
def test_recorded_response_reads_as_recorded(fake, fixture, variant) -> None:
    streamed = _streamed(fixture)
    body = fixture["body"]
    if variant == "crlf":
        body = body.replace("\r\n", "\n").replace("\n", "\r\n")
    raw = body.encode()
    pieces, drop = _pieces(raw, fixture["name"], variant)
    fake.push(_script(fixture, pieces, drop))
    reply, error = _reply(_chat(fake, fixture), bool(fixture.get("request_stream")))

    if drop and not streamed:
        assert isinstance(error, ipychat.ChatError) and reply is None  # half a document
        return
    sent = b"".join(pieces).decode("utf-8", "replace")
    x = pf.expected(fixture, sent if drop else body, whole=not drop)
    if x.status >= 400 and drop:
        assert isinstance(error, ipychat.ChatError) and reply is None  # half an error body
        return
    if x.status >= 400:
        assert error is not None and reply is None
        assert isinstance(error, ipychat.APIStatusError) and error.status_code == x.status
        assert x.error[:60] in str(error) and "\n" not in str(error)
        return
    if x.error is not None and not drop:
        assert isinstance(error, ipychat.StreamError) and x.error[:60] in str(error)
        assert reply is not None and reply.status == "incomplete"
        _check(reply, x)
        return
    if drop and not x.complete:
        assert error is not None
        started = x.content or x.reasoning or x.tool_calls or x.refusal
        if not started:
            return  # nothing arrived: a connection error, nothing to keep
        assert reply is not None and reply.status == "incomplete"
        _check(reply, x)
        return
    assert error is None, error
    assert reply.status == ("complete" if x.complete else "incomplete")
    _check(reply, x)
    if len(x.choices) > 1:
        assert [c.content for c in reply.choices] == [x.choices[i] for i in sorted(x.choices)]


@pytest.mark.parametrize("fixture", ROUNDTRIPS, ids=[f["name"] for f in ROUNDTRIPS])
def test_recorded_tool_round_trip(fake, fixture) -> None:
    """The recorded tool call runs a stand-in with the recorded result, and the follow-up
    request ipychat sends carries the call and the result as the recorded one did."""
    first, followup = fixture["first_request"], fixture["followup_request"]
    results = {m["tool_call_id"]: m["content"] for m in followup["messages"] if m["role"] == "tool"}
    recorded_calls = [
        c
        for m in followup["messages"]
        if m["role"] == "assistant"
        for c in m.get("tool_calls") or []
    ]
    by_args = {
        (c["function"]["name"], c["function"]["arguments"]): results[c["id"]]
        for c in recorded_calls
    }

    def stand_in(name: str) -> Any:
        def tool(**kwargs: Any) -> str:
            for (called, arguments), result in by_args.items():
                if called == name and json.loads(arguments or "{}") == kwargs:
                    return result
            raise AssertionError(f"unexpected call {name}({kwargs})")

        tool.__name__ = name
        return tool

    tools = [stand_in(spec["function"]["name"]) for spec in first["tools"]]
    for response in fixture["responses"]:
        fake.push(_script(response, [response["body"].encode()], False))
    chat = _chat(fake, fixture)
    prompt = first["messages"][-1]["content"]
    if isinstance(prompt, list):
        prompt = "".join(p["text"] for p in prompt if p.get("type") == "text")
    reply = chat.ask(prompt, tools=tools)
    sent = fake.requests[1].body["messages"]
    sent_calls = [c for m in sent if m.get("tool_calls") for c in m["tool_calls"]]
    assert [
        (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"] or "{}"))
        for c in sent_calls
    ] == [
        (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"] or "{}"))
        for c in recorded_calls
    ]
    assert {m["tool_call_id"]: m["content"] for m in sent if m["role"] == "tool"} == results
    x = pf.expected(fixture["responses"][-1])
    assert reply.status == "complete"
    assert reply.content.strip() == x.content.strip()


@pytest.mark.parametrize(
    ("name", "field"),
    [("oai-py-refusal-stream", "refusal"), ("pai-snowflake-reasoning-details-stream", "reasoning")],
)
def test_a_drop_after_a_refusal_or_reasoning_details_is_not_retried(fake, name, field) -> None:
    """Once a refusal or reasoning_details have arrived the answer has begun: asking again
    would show them twice."""
    fixture = next(f for f in SINGLE if f["name"] == name)
    events = fixture["body"].encode().split(b"\n\n")
    prefix = b"\n\n".join(events[:3]) + b"\n\n"
    fake.push(_script(fixture, [prefix], True), _script(fixture, [fixture["body"].encode()], False))
    chat = ipychat.Chat(base_url=fake.url, model="recorded-model")
    chat.retry = type(chat.retry)(retries=3, base=0.01, max_delay=0.05)
    reply, error = _reply(chat, True)
    assert isinstance(error, ipychat.StreamError) and len(fake.requests) == 1
    x = pf.expected(fixture, prefix.decode(), whole=False)
    assert (reply.refusal or "") == x.refusal and reply.reasoning.strip() == x.reasoning.strip()
    assert getattr(x, field)
