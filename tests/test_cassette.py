"""Record and replay (SPEC §8)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import ipychat
from ipychat._cassette import Cassette, request_key
from tests.fakeprovider import error, sse

SECRET = "sk-ipychat-CASSETTE-1a2b3c4d5e"


def test_key_is_stable_and_order_independent() -> None:
    assert request_key({"a": 1, "b": [1, 2]}) == request_key({"b": [1, 2], "a": 1})
    assert request_key({"a": 1}) != request_key({"a": 2})


def test_record_then_replay_without_network_or_key(fake, tmp_path) -> None:
    path = tmp_path / "c.json"
    live = ipychat.Chat(base_url=fake.url, model="m", api_key=SECRET)
    live.cassette = Cassette(path, "record")
    fake.push(sse(["Hel", "lo"], reasoning=["hm"]))
    first = live.ask("hi")
    assert SECRET not in path.read_text()
    entry = next(iter(json.loads(path.read_text())["entries"].values()))
    assert entry["request"]["messages"] == [{"role": "user", "content": "hi"}]

    offline = ipychat.Chat(base_url="https://unreachable.invalid/v1", model="m")
    offline.cassette = Cassette(path, "replay")
    events = []

    async def run() -> None:
        async for event in offline.stream("hi"):
            events.append(event)

    import asyncio

    asyncio.run(run())
    reply = events[-1].reply
    assert (reply.content, reply.reasoning) == (first.content, first.reasoning)
    assert [e.text for e in events if e.kind == "content"] == ["Hel", "lo"]  # streamed


def test_replay_miss_names_the_file_and_what_differs(fake, tmp_path) -> None:
    path = tmp_path / "c.json"
    chat = ipychat.Chat(base_url=fake.url, model="m")
    chat.cassette = Cassette(path, "record")
    chat.ask("hello", temperature=0.1)
    chat.reset()
    chat.cassette = Cassette(path, "replay")
    with pytest.raises(ipychat.CassetteError) as info:
        chat.ask("hello", temperature=0.9)
    assert str(path) in str(info.value) and "temperature" in str(info.value)
    with pytest.raises(ipychat.CassetteError, match="message 1"):
        chat.ask("other text", temperature=0.1)
    assert len(fake.requests) == 1  # nothing reached the network in replay


def test_recorded_errors_replay_as_errors(fake, tmp_path) -> None:
    path = tmp_path / "c.json"
    chat = ipychat.Chat(base_url=fake.url, model="m")
    chat.cassette = Cassette(path, "record")
    fake.push(error(400, "bad temperature", param="temperature"))
    with pytest.raises(ipychat.BadRequestError):
        chat.ask("x")
    chat.cassette = Cassette(path, "replay")
    with pytest.raises(ipychat.BadRequestError, match="bad temperature"):
        chat.ask("x")


def test_auto_mode_records_misses_and_replays_hits(fake, tmp_path) -> None:
    chat = ipychat.Chat(base_url=fake.url, model="m")
    chat.cassette = Cassette(tmp_path / "c.json", "auto")
    chat.ask("a", history=False)
    chat.ask("a", history=False)
    assert len(fake.requests) == 1


def test_replay_of_missing_file_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ipychat.CassetteError, match="record it first"):
        Cassette(tmp_path / "none.json", "replay")


NOTEBOOK = [
    "%load_ext ipychat",
    "%%chat\nWhat is 2 + 2?",
    "%%chat -o r\nAnd times 3?",
    "print(r.content)",
    "%chat history",
]


def run_notebook(env: dict[str, str], monkeypatch) -> nbformat.NotebookNode:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in NOTEBOOK]
    NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    return nb


def outputs_text(nb: nbformat.NotebookNode) -> list[str]:
    texts = []
    for cell in nb.cells:
        for out in cell.outputs:
            data = out.get("data", {})
            texts.append(out.get("text") or data.get("text/markdown") or data.get("text/plain"))
    return texts


@pytest.mark.kernel
def test_notebook_replays_offline_with_the_same_outputs(
    _server, fake, tmp_path, monkeypatch
) -> None:
    cassette = str(tmp_path / "nb.cassette.json")
    recorded = run_notebook(
        {
            "IPYCHAT_BASE_URL": _server.url,
            "IPYCHAT_MODEL": "fake-model",
            "IPYCHAT_API_KEY": SECRET,
            "IPYCHAT_CASSETTE": cassette,
            "IPYCHAT_CASSETTE_MODE": "record",
        },
        monkeypatch,
    )
    assert len(fake.requests) == 2
    monkeypatch.delenv("IPYCHAT_API_KEY")
    replayed = run_notebook(
        {"IPYCHAT_BASE_URL": "https://api.example.invalid/v1", "IPYCHAT_CASSETTE_MODE": "replay"},
        monkeypatch,
    )
    assert len(fake.requests) == 2  # the provider saw nothing new
    assert outputs_text(replayed) == outputs_text(recorded)
    assert "Echo: And times 3?" in "".join(outputs_text(replayed))
    assert SECRET not in Path(cassette).read_text()


def test_momentary_errors_are_not_recorded(fake, tmp_path) -> None:
    chat = ipychat.Chat(base_url=fake.url, model="m")
    chat.retry = type(chat.retry)(retries=0)
    chat.cassette = Cassette(tmp_path / "c.json", "auto")
    fake.push(error(401, "bad key"))
    with pytest.raises(ipychat.AuthenticationError):
        chat.ask("x")
    chat.ask("x")  # the key was fixed: this must reach the provider, not replay the 401
    assert len(fake.requests) == 2 and chat.turns[-1].replies[-1]["content"].startswith("Echo")
