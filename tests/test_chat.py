"""The Python API (SPEC §7) against the loopback provider."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

import ipychat
from tests.fakeprovider import completion, error, sse

SECRET = "sk-ipychat-TEST-9f8e7d6c5b4a"


def test_ask_returns_reply_with_usage_and_reasoning(chat, fake) -> None:
    fake.push(sse(["Hi", " there"], reasoning=["let me ", "think"]))
    reply = chat.ask("hello")
    assert (reply.content, reply.reasoning) == ("Hi there", "let me think")
    assert reply.usage.cached_tokens == 4 and reply.usage.reasoning_tokens == 2
    assert reply.finish_reason == "stop" and reply.model == "fake-model"
    assert reply.ttft is not None and not reply.interrupted


def test_second_turn_sends_history(chat, fake) -> None:
    chat.ask("one")
    chat.ask("two")
    sent = fake.requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"].startswith("Echo: one")


def test_system_prompt_goes_first(chat, fake) -> None:
    chat.system = "be terse"
    chat.ask("q")
    assert fake.requests[-1].body["messages"][0] == {"role": "system", "content": "be terse"}


def test_params_reach_the_body(chat, fake) -> None:
    params = dict(
        temperature=0.3,
        top_p=0.9,
        max_tokens=7,
        seed=1,
        stop=["x"],
        reasoning_effort="low",
        verbosity="low",
    )
    chat.ask("q", **params)
    body = fake.requests[-1].body
    assert {key: body[key] for key in params} == params
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_constructor_params_are_defaults(fake) -> None:
    c = ipychat.Chat(base_url=fake.url, model="m", temperature=0.1)
    c.ask("q")
    assert fake.requests[-1].body["temperature"] == 0.1


def test_text_only_content_is_a_plain_string(chat, fake) -> None:
    chat.ask("plain")
    assert fake.requests[-1].body["messages"][-1]["content"] == "plain"


def test_no_stream_sends_one_request_without_stream(chat, fake) -> None:
    reply = chat.ask("q", stream=False)
    assert fake.requests[-1].body["stream"] is False
    assert "stream_options" not in fake.requests[-1].body
    assert reply.content.startswith("Echo: q")


def test_failed_turn_leaves_thread_unchanged(chat, fake) -> None:
    chat.ask("one")
    before = json.dumps(chat.messages)
    fake.push(error(400, "nope"))
    with pytest.raises(ipychat.BadRequestError):
        chat.ask("two")
    assert json.dumps(chat.messages) == before


def test_broken_stream_keeps_partial_turn_marked_incomplete(chat, fake) -> None:
    fake.push(sse(["par", "tial", "never"], drop_after=3))
    with pytest.raises(ipychat.StreamError) as info:
        chat.ask("q")
    assert info.value.reply.content == "partial"
    assert chat.turns[-1].meta["status"] == "incomplete"
    assert chat.messages[-1]["content"] == "partial"


def test_stream_without_done_or_finish_is_incomplete(chat, fake) -> None:
    fake.push(sse(["abc"], done=False, usage=None, finish=""))
    reply = chat.ask("q")
    assert reply.status == "incomplete" and reply.content == "abc"


def test_stream_ending_without_done_but_finished_is_complete(chat, fake) -> None:
    fake.push(sse(["abc"], done=False))
    assert chat.ask("q").status == "complete"


def test_cancelled_stream_stores_partial_marked_interrupted(chat, fake) -> None:
    fake.push(sse(["a", "b", "c", "d", "e"], delay=0.3))

    async def run() -> None:
        async for event in chat.stream("q"):
            if event.kind == "content" and event.text == "a":
                raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(run())
    assert chat.turns[-1].meta["status"] == "interrupted"
    assert chat.messages[-1]["content"] == "a"
    assert fake.requests[-1].finished.wait(3)


def test_run_sync_interrupt_closes_connection_and_keeps_partial(chat, fake) -> None:
    from ipychat import _loop

    fake.push(sse([f"w{i} " for i in range(50)], delay=0.1))
    calls = []

    def poll() -> None:
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _loop.run_sync(chat.ask_async("q"), poll=poll)
    assert fake.requests[-1].finished.wait(2)
    assert fake.requests[-1].closed_early
    assert chat.turns[-1].meta["status"] == "interrupted"
    assert 0 < len(chat.messages[-1]["content"]) < 100


def test_ask_from_inside_a_running_loop(chat, fake) -> None:
    async def cell() -> str:
        return chat.ask("inside").content  # a notebook cell runs inside the kernel's loop

    assert asyncio.run(cell()).startswith("Echo: inside")


def test_json_mode_sets_response_format_and_parses(chat, fake) -> None:
    fake.push(sse(['{"a": ', "1}"]))
    reply = chat.ask("give json", json=True)
    assert fake.requests[-1].body["response_format"] == {"type": "json_object"}
    assert reply.data == {"a": 1}


def test_json_mode_invalid_json_keeps_raw_text_and_says_why(chat, fake) -> None:
    fake.push(sse(["not json"]))
    reply = chat.ask("give json", json=True)
    assert reply.data is None and reply.content == "not json"
    assert "valid JSON" in reply.error


def test_reset_and_undo(chat) -> None:
    chat.ask("1")
    chat.ask("2")
    chat.undo()
    assert len(chat.turns) == 1
    chat.reset()
    assert chat.messages == []


def test_save_and_load_round_trip_without_key(fake, tmp_path) -> None:
    c = ipychat.Chat(base_url=fake.url, model="m", api_key=SECRET, system="sys")
    c.ask("hello")
    path = c.save(tmp_path / "t.json")
    text = path.read_text()
    assert SECRET not in text
    data = json.loads(text)
    assert data["turns"][0]["meta"]["model"] == "m"
    loaded = ipychat.Chat.load(path)
    assert loaded.messages == c.messages


def test_key_never_in_repr_or_errors(fake) -> None:
    c = ipychat.Chat(base_url=fake.url, model="m", api_key=SECRET)
    fake.push(error(401, f"Incorrect API key provided: {SECRET}"))
    with pytest.raises(ipychat.AuthenticationError) as info:
        c.ask("x")
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)
    assert SECRET not in repr(c) and SECRET not in repr(c.settings())
    assert fake.requests[-1].headers["Authorization"] == f"Bearer {SECRET}"


def test_empty_prompt_fails_before_sending(chat, fake) -> None:
    with pytest.raises(ipychat.ConfigError, match="empty"):
        chat.ask("  ")
    assert fake.requests == []


def test_thread_registry_shares_chats() -> None:
    assert ipychat.thread("a") is ipychat.thread("a")
    assert ipychat.thread("a") is not ipychat.thread("b")


def test_fifty_concurrent_asks_each_get_their_own_answer(fake) -> None:
    c = ipychat.Chat(base_url=fake.url, model="m")

    async def run() -> list:
        return await asyncio.gather(
            *[c.ask_async(f"question {i}", history=False) for i in range(50)]
        )

    replies = asyncio.run(run())
    assert [r.content.split("\n")[0] for r in replies] == [f"Echo: question {i}" for i in range(50)]
    assert len({r.client_port for r in fake.requests}) <= 50


def test_non_streamed_reasoning(chat, fake) -> None:
    fake.push(completion("ans", reasoning="why"))
    reply = chat.ask("q", stream=False)
    assert (reply.content, reply.reasoning) == ("ans", "why")


def test_ask_in_plain_thread_without_ipython(chat) -> None:
    out = []
    t = threading.Thread(target=lambda: out.append(chat.ask("t").content))
    t.start()
    t.join(10)
    assert out and out[0].startswith("Echo: t")


def test_ask_with_images_sends_text_and_image_parts(chat, fake, tmp_path) -> None:
    png = bytes.fromhex("89504e470d0a1a0a") + b"\0" * 16
    (tmp_path / "x.png").write_bytes(png)
    chat.ask("look", images=[str(tmp_path / "x.png"), "https://example.com/y.png"])
    content = fake.requests[-1].body["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "look"}
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert content[2] == {"type": "image_url", "image_url": {"url": "https://example.com/y.png"}}


def test_context_budget_leaves_oldest_turns_out_with_a_note(chat, fake) -> None:
    chat.system = "sys"
    for i in range(5):
        chat.ask(f"question {i} " + "pad " * 100)
    chat.context_budget = 300
    events = []

    async def run() -> None:
        async for event in chat.stream("last"):
            events.append(event)

    asyncio.run(run())
    sent = fake.requests[-1].body["messages"]
    assert sent[0] == {"role": "system", "content": "sys"}
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[1]["content"].startswith("question 4") and sent[-1]["content"] == "last"
    notes = [e.text for e in events if e.kind == "note"]
    assert notes and "left out" in notes[0]
    assert len(chat.turns) == 6  # nothing deleted


def test_stalled_stream_times_out_keeping_what_arrived(chat, fake) -> None:
    from ipychat._client import Timeouts

    script = sse(["fast ", "then stalls"])
    script.pauses = {3: 0.6}  # role, keep-alive, "fast ", then a stall
    fake.push(script)
    chat.timeouts = Timeouts(read=0.2)
    with pytest.raises(ipychat.StreamError, match="timed out waiting for data") as info:
        chat.ask("q")
    assert info.value.reply.status == "incomplete"
    assert chat.turns[-1].meta["status"] == "incomplete"


def test_retries_never_happen_after_tokens_arrived(chat, fake) -> None:
    fake.push(sse(["a", "b", "c"], drop_after=2), sse(["never"]))
    with pytest.raises(ipychat.StreamError):
        chat.ask("q")
    assert len(fake.requests) == 1


def test_price_table_gives_a_cost_when_the_provider_reports_none(chat, fake) -> None:
    chat.prices = {"fake-model": {"input": 1.0, "output": 2.0, "cached_input": 0.5}}
    reply = chat.ask("q")  # usage: 12 prompt (4 cached), 5 completion
    assert reply.cost == pytest.approx((8 * 1.0 + 4 * 0.5 + 5 * 2.0) / 1e6)


def test_reported_cost_wins_over_the_price_table(chat, fake) -> None:
    from tests.fakeprovider import USAGE

    chat.prices = {"fake-model": {"input": 1.0, "output": 2.0}}
    fake.push(sse(["x"], usage={**USAGE, "cost": 0.25}))
    assert chat.ask("q").cost == 0.25


def test_a_second_turn_on_a_busy_thread_is_refused(chat, fake) -> None:
    fake.push(sse(["slow"] * 5, delay=0.1))

    async def run() -> None:
        first = chat.stream("one")
        await first.__anext__()  # the first turn is streaming
        with pytest.raises(ipychat.ConfigError, match="still answering"):
            async for _ in chat.stream("two"):
                pass
        async for _ in first:
            pass

    asyncio.run(run())
    assert [t.user["content"] for t in chat.turns] == ["one"]
