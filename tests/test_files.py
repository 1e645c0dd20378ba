"""Saved threads and cassettes are others' files once saved: each malformed one is refused on
load, in one line naming the file and the field, and never crashes later."""

from __future__ import annotations

import copy
import json

import pytest

import ipychat
from ipychat._cassette import Cassette

GOOD_THREAD = {
    "system": "be brief",
    "turns": [
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "1"},
                {"role": "assistant", "content": "done"},
            ],
            "meta": {"status": "complete", "usage": {"prompt_tokens": 3}, "model": "m"},
        }
    ],
}

M = ["turns", 0, "messages"]
META = ["turns", 0, "meta"]
CALL = [*M, 1, "tool_calls"]
# name -> (where in the file, what to put there, the field the error must name)
THREAD_BREAKS = {
    "not an object": ([], [], "the file"),
    "turns missing": ([], {"system": None}, "turns"),
    "turns not a list": (["turns"], {"a": 1}, "turns"),
    "a turn not an object": (["turns"], [3], "turns[0]"),
    "no messages": (M, [], "turns[0].messages"),
    "bad role": ([*M, 1, "role"], "wizard", "messages[1].role"),
    "first not user": ([*M, 0, "role"], "assistant", "messages[0].role"),
    "content a number": ([*M, 3, "content"], 42, "messages[3].content"),
    "part of an unknown type": ([*M, 0, "content"], [{"type": "audio"}], "content[0].type"),
    "image without url": ([*M, 0, "content"], [{"type": "image_url", "image_url": {}}], "url"),
    "tool call without function": (CALL, [{"id": "c1"}], "tool_calls[0].function"),
    "arguments as an object": ([*CALL, 0, "function", "arguments"], {}, "function.arguments"),
    "tool message without id": ([*M, 2, "tool_call_id"], None, "messages[2].tool_call_id"),
    "meta not an object": (META, "x", "turns[0].meta"),
    "usage a string": ([*META, "usage"], "lots", "meta.usage"),
    "usage value a string": ([*META, "usage", "prompt_tokens"], "3", "usage.prompt_tokens"),
    "unknown status": ([*META, "status"], "great", "meta.status"),
    "system a list": (["system"], ["x"], "system"),
    "model a number": ([*META, "model"], 7, "meta.model"),
    "tool_calls a number": ([*M, 1, "tool_calls"], 5, "messages[1].tool_calls"),
    "status a list": ([*META, "status"], ["complete"], "meta.status"),
    "tools not a list": ([*META, "tools"], "abc", "meta.tools"),
    "a tool not an object": ([*META, "tools"], [1], "meta.tools[0]"),
    "params tools a string": ([*META, "params"], {"tools": "x"}, "params.tools"),
    "params tool a number": ([*META, "params"], {"tools": [5]}, "params.tools[0]"),
    "response_format a string": ([*META, "params"], {"response_format": "json"}, "response_format"),
    "tool_choice function": ([*META, "params"], {"tool_choice": {"function": 5}}, "tool_choice"),
    "user content null": ([*M, 0, "content"], None, "messages[0].content"),
}


def _set(data, path, value):
    if not path:
        return value
    data = copy.deepcopy(data)
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


def test_a_good_thread_loads(tmp_path) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps(GOOD_THREAD))
    assert len(ipychat.Chat.load(path, base_url="http://127.0.0.1:9/v1").turns) == 1


def assert_refused(path, data, load, error, field) -> None:
    """`data` written to `path` and loaded: refused with `error`, in one line naming both."""
    path.write_text(json.dumps(data))
    with pytest.raises(error) as info:
        load(path)
    message = str(info.value)
    assert str(path) in message and field in message and "\n" not in message


def load_thread(path):
    return ipychat.Chat.load(path, base_url="http://127.0.0.1:9/v1")


@pytest.mark.parametrize("name", list(THREAD_BREAKS))
def test_a_malformed_thread_is_refused_naming_the_field(tmp_path, name) -> None:
    where, value, field = THREAD_BREAKS[name]
    data = _set(GOOD_THREAD, where, value)
    assert_refused(tmp_path / "t.json", data, load_thread, ipychat.ConfigError, field)


GOOD_CASSETTE = {
    "format": 1,
    "entries": {
        "k1": {"request": {"model": "m"}, "chunks": [{"choices": []}], "done": True},
        "k2": {"request": {"model": "m"}, "error": {"status": 400, "body": {}}},
    },
}

K1, K2 = ["entries", "k1"], ["entries", "k2"]
CASSETTE_BREAKS = {
    "entries a list": (["entries"], [], "entries"),
    "entry not an object": (K1, 3, "entries['k1']"),
    "no request": ([*K1, "request"], None, "request"),
    "chunks not a list": ([*K1, "chunks"], "x", "chunks"),
    "a chunk not an object": ([*K1, "chunks"], [1], "chunks[0]"),
    "status a string": ([*K2, "error", "status"], "400", "error.status"),
    "status not an error": ([*K2, "error", "status"], 200, "error.status"),
    "done a string": ([*K1, "done"], "yes", "done"),
}


def test_a_good_cassette_loads(tmp_path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(GOOD_CASSETTE))
    assert len(Cassette(path, "replay").entries) == 2


@pytest.mark.parametrize("name", list(CASSETTE_BREAKS))
def test_a_malformed_cassette_is_refused_naming_the_field(tmp_path, name) -> None:
    where, value, field = CASSETTE_BREAKS[name]
    data = _set(GOOD_CASSETTE, where, value)
    replay = lambda path: Cassette(path, "replay")  # noqa: E731
    assert_refused(tmp_path / "c.json", data, replay, ipychat.CassetteError, field)


def test_a_cassette_request_with_bad_messages_is_refused(tmp_path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(_set(GOOD_CASSETTE, ["entries", "k1", "request", "messages"], 5)))
    with pytest.raises(ipychat.CassetteError, match=r"request\.messages"):
        Cassette(path, "replay")


def test_a_thread_with_another_form_of_tool_choice_still_loads(tmp_path) -> None:
    allowed = {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}}
    data = _set(GOOD_THREAD, [*META, "params"], {"tool_choice": allowed})
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data))
    assert len(load_thread(path).turns) == 1
