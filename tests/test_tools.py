"""Tool calling: schemas, the loop against scripted tool-call streams, and the magic."""

from __future__ import annotations

import asyncio
from typing import Literal

import pytest

import ipychat
from ipychat._tools import schema_for
from tests.fakeprovider import chunk, event, raw_sse, sse


def lookup(city: str, days: int = 1, unit: Literal["C", "F"] = "C") -> dict:
    """Weather forecast for a city.

    Args:
        city: The city name.
        days (int): How many days,
            counted from today.
    """
    return {"city": city, "days": days, "unit": unit, "temp": 21}


def test_schema_from_signature_hints_and_docstring() -> None:
    fn = schema_for(lookup)["function"]
    assert fn["name"] == "lookup" and fn["description"] == "Weather forecast for a city."
    props = fn["parameters"]["properties"]
    assert props["city"] == {"type": "string", "description": "The city name."}
    assert props["days"] == {"type": "integer", "description": "How many days, counted from today."}
    assert props["unit"] == {"enum": ["C", "F"]}
    assert fn["parameters"]["required"] == ["city"]


def test_schema_optional_list_and_dict() -> None:
    def f(xs: list[int], opts: dict | None = None, flag: bool = False) -> None: ...

    props = schema_for(f)["function"]["parameters"]["properties"]
    assert props["xs"] == {"type": "array", "items": {"type": "integer"}}
    assert props["opts"] == {"type": "object"}
    assert props["flag"] == {"type": "boolean"}


def test_parameter_type_without_schema_is_a_clear_error() -> None:
    class Frame: ...

    def f(df: Frame) -> None: ...

    with pytest.raises(ipychat.ConfigError, match=r"parameter 'df' of f\(\) has type Frame"):
        schema_for(f)


def call_chunks(calls: list[tuple[str, str, list[str]]], reasoning: str | None = None) -> bytes:
    """Tool calls streamed the way providers do: id and name first, arguments in pieces."""
    pieces = []
    if reasoning:
        pieces.append(event(chunk(reasoning=reasoning)))
    for index, (call_id, name, parts) in enumerate(calls):
        pieces.append(
            event(
                chunk(
                    tool_calls=[
                        {
                            "index": index,
                            "id": call_id,
                            "type": "function",
                            "function": {"name": name, "arguments": ""},
                        }
                    ]
                )
            )
        )
        for part in parts:
            pieces.append(
                event(chunk(tool_calls=[{"index": index, "function": {"arguments": part}}]))
            )
    pieces.append(event(chunk(finish="tool_calls")))
    pieces.append(event("[DONE]"))
    return raw_sse(pieces)


def test_split_and_parallel_calls_run_and_the_loop_continues(chat, fake) -> None:
    fake.push(
        call_chunks(
            [
                ("c1", "lookup", ['{"ci', 'ty": "Oslo"', "}"]),
                ("c2", "lookup", ['{"city": "Rome", "days": 2}']),
            ]
        ),
        sse(["Oslo 21, Rome 21."]),
    )
    reply = chat.ask("weather?", tools=[lookup])
    assert reply.content == "Oslo 21, Rome 21."
    assert [c.name for c in reply.tool_runs] == ["lookup", "lookup"]
    sent = fake.requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool"]
    assert sent[1]["tool_calls"][0]["function"]["arguments"] == '{"city": "Oslo"}'
    assert sent[2]["tool_call_id"] == "c1" and '"Oslo"' in sent[2]["content"]
    assert '"days": 2' in sent[3]["content"]
    assert fake.requests[0].body["tools"][0]["function"]["name"] == "lookup"
    roles = [m["role"] for m in chat.messages]
    assert roles == ["user", "assistant", "tool", "tool", "assistant"]


def test_failing_tool_result_is_sent_back_and_the_turn_goes_on(chat, fake) -> None:
    def broken(x: int) -> int:
        raise ValueError("no such row")

    fake.push(call_chunks([("c1", "broken", ['{"x": 1}'])]), sse(["Sorry."]))
    reply = chat.ask("q", tools=[broken])
    assert reply.content == "Sorry." and reply.tool_runs[0].error
    assert fake.requests[-1].body["messages"][-1]["content"] == "Error: ValueError: no such row"


def test_async_tools_are_awaited(chat, fake) -> None:
    async def slow(n: int) -> int:
        await asyncio.sleep(0.01)
        return n * 2

    fake.push(call_chunks([("c1", "slow", ['{"n": 21}'])]), sse(["42"]))
    chat.ask("q", tools=[slow])
    assert fake.requests[-1].body["messages"][-1]["content"] == "42"


def test_round_limit_forces_an_answer(chat, fake) -> None:
    fake.push(
        call_chunks([("a", "lookup", ['{"city": "A"}'])]),
        call_chunks([("b", "lookup", ['{"city": "B"}'])]),
        sse(["done"]),
    )
    reply = chat.ask("q", tools=[lookup], max_rounds=2)
    assert fake.requests[-1].body["tool_choice"] == "none"
    assert reply.content == "done" and len(reply.tool_runs) == 2


def test_deepseek_reasoning_is_kept_on_tool_call_turns(fake) -> None:
    chat = ipychat.Chat(provider="deepseek", base_url=fake.url, model="deepseek-reasoner")
    fake.push(
        call_chunks([("c1", "lookup", ['{"city": "Oslo"}'])], reasoning="need data"), sse(["ok"])
    )
    chat.ask("q", tools=[lookup])
    assistant = fake.requests[-1].body["messages"][1]
    assert assistant["reasoning_content"] == "need data" and assistant["tool_calls"]
    chat.ask("follow up")
    assert fake.requests[-1].body["messages"][1]["reasoning_content"] == "need data"


def test_deepseek_gets_empty_reasoning_rather_than_none(fake) -> None:
    chat = ipychat.Chat(provider="deepseek", base_url=fake.url, model="deepseek-chat")
    fake.push(call_chunks([("c1", "lookup", ['{"city": "Oslo"}'])]), sse(["ok"]))
    chat.ask("q", tools=[lookup])
    assert fake.requests[-1].body["messages"][1]["reasoning_content"] == ""


def test_other_providers_never_get_reasoning_back(chat, fake) -> None:
    """Cerebras and older vLLM answer 400 to an assistant message with reasoning_content."""
    fake.push(
        call_chunks([("c1", "lookup", ['{"city": "Oslo"}'])], reasoning="need data"), sse(["ok"])
    )
    chat.ask("q", tools=[lookup])
    chat.ask("follow up")
    for request in fake.requests[1:]:
        assert all("reasoning_content" not in m for m in request.body["messages"])


def test_declined_call_is_reported_to_the_model(chat, fake) -> None:
    ran = []

    async def no(call) -> bool:
        return False

    def record(city: str) -> str:
        ran.append(city)
        return "sunny"

    fake.push(call_chunks([("c1", "record", ['{"city": "X"}'])]), sse(["fine"]))
    asyncio.run(chat.ask_async("q", tools=[record], approve=no))
    assert "declined" in fake.requests[-1].body["messages"][-1]["content"]
    assert ran == []


def test_unknown_tool_and_bad_arguments_become_errors_not_crashes(chat, fake) -> None:
    fake.push(call_chunks([("c1", "nope", ["{}"]), ("c2", "lookup", ["{not json"])]), sse(["ok"]))
    reply = chat.ask("q", tools=[lookup])
    results = [m["content"] for m in fake.requests[-1].body["messages"] if m["role"] == "tool"]
    assert "no tool named 'nope'" in results[0] and "not valid JSON" in results[1]
    assert reply.content == "ok"


def test_tool_choice_name_becomes_a_function_choice(chat, fake) -> None:
    chat.ask("q", tools=[lookup], tool_choice="lookup")
    assert fake.requests[-1].body["tool_choice"] == {
        "type": "function",
        "function": {"name": "lookup"},
    }


@pytest.mark.kernel
class TestInKernel:
    @pytest.fixture(scope="class")
    @classmethod
    def k(cls, _server):
        from tests.kernel import Kernel

        kernel = Kernel({"IPYCHAT_BASE_URL": _server.url, "IPYCHAT_MODEL": "fake-model"})
        kernel.run(
            "%load_ext ipychat\nimport ipychat\ncalls = []\n"
            "def lookup(city: str) -> dict:\n"
            "    '''Weather.\n\n    Args:\n        city: the city\n    '''\n"
            "    calls.append(city)\n    return {'city': city, 'temp': 21}\n"
        )
        yield kernel
        kernel.stop()

    def test_auto_runs_calls_and_shows_a_panel(self, k, fake) -> None:
        fake.push(call_chunks([("c1", "lookup", ['{"city": ', '"Oslo"}'])]), sse(["21 in Oslo"]))
        result = k.run("%%chat --tools lookup --auto\nweather in Oslo")
        assert result.status == "ok", result.text()
        final = result.final()[-1]["data"]["text/html"]
        assert "⚙ lookup" in final and "21 in Oslo" in final
        assert k.value("calls[-1]").strip() == "'Oslo'"
        roles = k.value("[m['role'] for m in ipychat.thread().turns[-1].messages]")
        assert roles.strip() == "['user', 'assistant', 'tool', 'assistant']"

    def test_each_call_is_approved_at_a_prompt(self, k, fake) -> None:
        fake.push(
            call_chunks([("c1", "lookup", ['{"city": "Rome"}'])]),
            sse(["ok"]),
            call_chunks([("c2", "lookup", ['{"city": "Paris"}'])]),
            sse(["no"]),
        )
        k.run("calls.clear()")
        result = k.collect(k.send("%%chat --tools lookup\nRome?", allow_stdin=True), answers=["y"])
        assert result.status == "ok" and "lookup" in result.prompts[0]
        assert k.value("calls").strip() == "['Rome']"
        result = k.collect(k.send("%%chat --tools lookup\nParis?", allow_stdin=True), answers=["n"])
        assert k.value("calls").strip() == "['Rome']"
        assert "declined" in fake.requests[-1].body["messages"][-1]["content"]

    def test_without_stdin_the_call_is_declined_with_a_hint(self, k, fake) -> None:
        fake.push(call_chunks([("c1", "lookup", ['{"city": "Nice"}'])]), sse(["ok"]))
        result = k.run("%%chat --tools lookup\nNice?")
        assert result.status == "ok"
        assert "use --auto" in result.text()

    def test_unknown_tool_name_is_a_usage_error(self, k, fake) -> None:
        result = k.run("%%chat --tools nothere\nq")
        assert result.reply["ename"] == "UsageError" and fake.requests == []


def test_a_forced_tool_choice_applies_to_the_first_round_only(chat, fake) -> None:
    fake.push(call_chunks([("c1", "lookup", ['{"city": "Oslo"}'])]), sse(["21"]))
    chat.ask("q", tools=[lookup], tool_choice="lookup")
    assert fake.requests[0].body["tool_choice"]["function"]["name"] == "lookup"
    assert fake.requests[1].body["tool_choice"] == "auto"


def test_error_in_a_later_round_leaves_the_thread_as_it_was(chat, fake) -> None:
    from tests.fakeprovider import error

    fake.push(
        call_chunks([("c1", "lookup", ['{"city": "Oslo"}'])]),
        *[error(400, "bad request in round two")],
    )
    with pytest.raises(ipychat.BadRequestError):
        chat.ask("q", tools=[lookup])
    assert chat.turns == []


def test_usage_adds_up_over_tool_rounds(chat, fake) -> None:
    from tests.fakeprovider import USAGE, chunk, event

    first = call_chunks([("c1", "lookup", ['{"city": "Oslo"}'])])
    first.events.insert(-1, event(chunk(usage={**USAGE, "cost": 0.5}, choices=False)))
    fake.push(first, sse(["done"], usage={**USAGE, "cost": 0.01}))
    reply = chat.ask("q", tools=[lookup])
    assert reply.usage.prompt_tokens == 24 and reply.cost == pytest.approx(0.51)


def test_tool_calls_nobody_ran_are_not_kept_in_the_thread(chat, fake) -> None:
    fake.push(call_chunks([("c1", "lookup", ['{"city": "Oslo"}'])]))
    reply = chat.ask("q", tools=[])  # raw schemas would be passed with -p tools=...
    assert reply.tool_calls and "tool_calls" not in chat.messages[-1]
