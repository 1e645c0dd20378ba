"""Streams always close, and calls may nest: what happens around a turn, not in it."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

import ipychat
from tests.fakeprovider import chunk, event, raw_sse, sse


def test_an_error_event_mid_stream_closes_the_response_at_once(fake) -> None:
    script = raw_sse([event(chunk("part")), event({"error": {"message": "overloaded"}})])
    script.events += [event(chunk("never")) for _ in range(50)]
    script.delay = 0.1  # the server would go on for 5 s
    fake.push(script)
    chat = ipychat.Chat(base_url=fake.url, model="m")
    started = time.monotonic()
    with pytest.raises(ipychat.StreamError, match="overloaded"):
        chat.ask("hi")
    assert fake.requests[-1].finished.wait(2) and fake.requests[-1].closed_early
    assert fake.requests[-1].ended - started < 1.5


def test_break_out_of_stream_then_ask_again_at_once(fake, caplog) -> None:
    chat = ipychat.Chat(base_url=fake.url, model="m")
    fake.push(sse([f"w{i} " for i in range(40)], delay=0.05), sse(["second"]))

    async def run() -> str:
        async for e in chat.stream("first"):
            if e.kind == "content":
                break
        reply = await chat.ask_async("again")
        return reply.content

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        assert asyncio.run(run()) == "second"
    assert "never retrieved" not in caplog.text and "already running" not in caplog.text
    assert fake.requests[0].finished.wait(3) and fake.requests[0].closed_early
    assert [t.meta["status"] for t in chat.turns] == ["interrupted", "complete"]


def test_a_tool_that_asks_a_chat_itself_does_not_deadlock(fake) -> None:
    inner = ipychat.Chat(base_url=fake.url, model="m")

    def second_opinion(question: str) -> str:
        """Ask another model."""
        return inner.ask(question, history=False).content

    call = {"index": 0, "id": "c1", "type": "function",
            "function": {"name": "second_opinion", "arguments": '{"question": "q2"}'}}  # fmt: skip
    fake.push(
        raw_sse(
            [
                event(chunk(tool_calls=[call])),
                event(chunk(finish="tool_calls")),
                b"data: [DONE]\n\n",
            ]
        ),
        sse(["inner answer"]),
        sse(["outer answer"]),
    )
    outer = ipychat.Chat(base_url=fake.url, model="m")
    reply = outer.ask("q1", tools=[second_opinion])
    assert reply.content == "outer answer"
    assert reply.tool_runs[0].result == "inner answer"


def test_ask_from_inside_ipychats_loop_is_a_clear_error(fake) -> None:
    chat = ipychat.Chat(base_url=fake.url, model="m")

    async def nested() -> str:
        return chat.ask("hi").content

    async def tool() -> str:
        """An async tool that wrongly calls the sync API."""
        return await nested()

    from ipychat._loop import run_sync

    with pytest.raises(ipychat.ConfigError, match="ask_async"):
        run_sync(nested())
    assert tool is not None


def test_a_stall_after_done_neither_delays_nor_breaks_the_answer(fake) -> None:
    script = sse(["all ", "here"])
    script.events.append(b": still here\n\n")
    script.pauses = {len(script.events) - 1: 8.0}  # the server holds the connection open
    fake.push(script)
    started = time.monotonic()
    reply = ipychat.Chat(base_url=fake.url, model="m").ask("hi")
    assert reply.status == "complete" and reply.content == "all here"
    assert time.monotonic() - started < 2


def test_a_drop_after_the_finish_keeps_the_answer_complete(fake) -> None:
    pieces = [event(chunk("whole answer")), event(chunk(finish="stop"))]
    fake.push(raw_sse(pieces, drop=True))  # no usage, no [DONE]: the connection just goes
    reply = ipychat.Chat(base_url=fake.url, model="m").ask("hi")
    assert reply.status == "complete" and reply.content == "whole answer"


def test_done_without_a_finish_reason_is_complete(fake) -> None:
    fake.push(raw_sse([event(chunk("Snowflake style")), b"data: [DONE]\n\n"]))
    reply = ipychat.Chat(base_url=fake.url, model="m").ask("hi")
    assert reply.status == "complete" and reply.finish_reason is None
