"""Tool calls that arrive as text: what the local server's GGUF template makes of them, played
through `Chat` by the loopback provider (the real server is in test_local.py)."""

from __future__ import annotations

import pytest

import ipychat
from ipychat._cassette import Cassette
from tests.fakeprovider import sse

PARIS = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
ROME = PARIS.replace("Paris", "Rome")


@pytest.fixture
def seen() -> list[str]:
    return []


@pytest.fixture
def get_weather(seen):
    def get_weather(city: str) -> str:
        """Current weather in a city."""
        seen.append(city)
        return f"21 C in {city}"

    return get_weather


def local_chat(fake) -> ipychat.Chat:
    chat = ipychat.Chat(provider="local", base_url=fake.url)
    chat.retry = type(chat.retry)(retries=0)
    return chat


def test_a_tagged_call_from_the_local_server_runs_the_tool(fake, seen, get_weather) -> None:
    fake.push(sse(["Let me look.\n", PARIS[:9], PARIS[9:30], PARIS[30:]]), sse(["It is 21 C."]))
    reply = local_chat(fake).ask("Weather in Paris?", tools=[get_weather])
    assert seen == ["Paris"] and reply.content == "It is 21 C."
    assert [m["role"] for m in fake.requests[1].body["messages"]] == ["user", "assistant", "tool"]
    call = fake.requests[1].body["messages"][1]["tool_calls"][0]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert fake.requests[1].body["messages"][2]["tool_call_id"] == call["id"]


def test_other_providers_keep_the_tag_as_text(fake, seen, get_weather) -> None:
    fake.push(sse([PARIS]))
    chat = ipychat.Chat(base_url=fake.url, model="m")
    reply = chat.ask("Weather in Paris?", tools=[get_weather])
    assert seen == [] and reply.content == PARIS


def test_tool_choice_none_offers_no_tools_and_runs_none(fake, seen, get_weather) -> None:
    fake.push(sse(['{"name": "get_weather", "arguments": {"city": "Paris"}}']))
    reply = local_chat(fake).ask("Weather?", tools=[get_weather], tool_choice="none")
    assert seen == [] and "get_weather" in reply.content
    assert "tools" not in fake.requests[0].body and "tool_choice" not in fake.requests[0].body


def test_each_round_gets_its_own_call_ids(fake, seen, get_weather) -> None:
    fake.push(sse([PARIS]), sse([ROME]), sse(["Done."]))
    local_chat(fake).ask("Weather?", tools=[get_weather], max_rounds=3)
    assert seen == ["Paris", "Rome"]
    messages = fake.requests[2].body["messages"]
    ids = [m["tool_calls"][0]["id"] for m in messages if m.get("tool_calls")]
    assert len(ids) == len(set(ids)) == 2
    assert [m["tool_call_id"] for m in messages if m["role"] == "tool"] == ids


def test_the_last_round_is_offered_no_tools(fake, seen, get_weather) -> None:
    fake.push(sse([PARIS]), sse(["It is 21 C."]))
    local_chat(fake).ask("Weather?", tools=[get_weather], max_rounds=1)
    assert "tools" in fake.requests[0].body and "tools" not in fake.requests[1].body


def test_a_replayed_local_turn_runs_the_tool_again(fake, seen, get_weather, tmp_path) -> None:
    path = tmp_path / "local.cassette.json"
    live = local_chat(fake)
    live.cassette = Cassette(path, "record")
    fake.push(sse([PARIS]), sse(["It is 21 C."]))
    live.ask("Weather in Paris?", tools=[get_weather])
    offline = ipychat.Chat(provider="local", base_url="http://127.0.0.1:9/v1")
    offline.cassette = Cassette(path, "replay")
    reply = offline.ask("Weather in Paris?", tools=[get_weather])
    assert seen == ["Paris", "Paris"] and reply.content == "It is 21 C."
    assert [m["role"] for m in offline.messages] == ["user", "assistant", "tool", "assistant"]
