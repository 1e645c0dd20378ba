"""Hostile or odd input from the user, a file or a server: one clear line, never a traceback."""

from __future__ import annotations

import pytest

import ipychat
from ipychat._accumulate import Accumulator
from ipychat._messages import Turn
from tests.fakeprovider import event, raw_sse, sse


def test_a_cmyk_pil_image_is_converted_and_sent(fake) -> None:
    image = pytest.importorskip("PIL.Image")
    cmyk = image.new("CMYK", (4, 4), (0, 128, 255, 0))
    fake.push(sse(["a picture"]))
    ipychat.Chat(base_url=fake.url, model="m").ask("what is it?", images=[cmyk])
    part = fake.requests[-1].body["messages"][-1]["content"][1]
    assert part["image_url"]["url"].startswith("data:image/png;base64,")


@pytest.mark.parametrize("builtin", [len, max, print, sorted])
def test_a_builtin_offered_as_a_tool_is_a_clear_error(fake, builtin) -> None:
    with pytest.raises(ipychat.ConfigError, match=rf"{builtin.__name__}\(\) .*wrap it"):
        ipychat.Chat(base_url=fake.url, model="m").ask("hi", tools=[builtin])
    assert fake.requests == []


def test_chat_code_on_a_turn_without_a_reply_says_so() -> None:
    from ipychat._commands import code
    from ipychat._threads import SESSION

    SESSION.thread().turns.append(Turn({"role": "user", "content": "hi"}, [], {}))
    with pytest.raises(ipychat.ConfigError, match="no answer to take code from"):
        code(None, [], "")


MALFORMED = [
    {"choices": {"0": {}}},
    {"choices": "text"},
    {"choices": [None]},
    {"choices": [{"index": 0, "delta": "text"}]},
    42,
    None,
    [1, 2],
    {"choices": [{"index": 0, "delta": {"tool_calls": ["not a call"]}}]},
    {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": "0", "function": {}}]}}]},
]


@pytest.mark.parametrize("bad", MALFORMED, ids=[repr(b)[:40] for b in MALFORMED])
def test_a_malformed_chunk_ends_the_answer_incomplete_with_what_arrived(fake, bad) -> None:
    start = event({"model": "m", "choices": [{"index": 0, "delta": {"content": "Hello"}}]})
    fake.push(raw_sse([start, event(bad)]))
    chat = ipychat.Chat(base_url=fake.url, model="m")
    with pytest.raises(ipychat.StreamError, match="malformed chunk") as info:
        chat.ask("hi")
    assert info.value.reply.status == "incomplete" and info.value.reply.content == "Hello"
    assert "\n" not in str(info.value)


def test_a_non_string_model_or_tool_name_does_not_crash() -> None:
    acc = Accumulator()
    acc.feed({"model": 7, "choices": [{"index": 0, "delta": {"content": "x"}}]})
    acc.feed(
        {
            "choices": [
                {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"name": 5}}]}}
            ]
        }
    )
    reply = acc.reply()
    assert reply.model is None and reply.tool_calls[0]["function"]["name"] == ""


def test_no_rate_is_made_up_for_an_answer_that_arrived_at_once() -> None:
    from ipychat._messages import Reply, Usage

    plain = Reply(content="x", usage=Usage(10, 300, 310), ttft=0.5, elapsed=0.5004)
    assert plain.tokens_per_second is None


@pytest.mark.parametrize(
    ("line", "meant"),
    [("histroy", "history"), ("thread", "threads"), ("reste", "reset"), ("recrd", "record")],
)
def test_a_sub_command_typo_is_refused_and_says_what_was_meant(line, meant) -> None:
    from ipychat._commands import run_command

    with pytest.raises(ipychat.ConfigError) as info:
        run_command(None, line)
    assert str(info.value) == f"did you mean {meant}? (to ask it, %chat ask {line})"


@pytest.mark.parametrize("line", ["hi", "why", "no", "monads", "history of Rome please"])
def test_short_words_and_real_questions_stay_questions(line) -> None:
    from ipychat._commands import near_command

    assert near_command(line) is None


def test_a_save_under_an_ascii_locale_is_utf8(tmp_path) -> None:
    import subprocess
    import sys

    path = tmp_path / "t.json"
    script = (
        "import ipychat\n"
        "from ipychat._messages import Turn\n"
        "c = ipychat.Chat(base_url='http://127.0.0.1:9/v1', model='m')\n"
        "c.turns.append(Turn({'role': 'user', 'content': 'h\\u00e9llo \\u2713'}, "
        "[{'role': 'assistant', 'content': '\\u00e7a va'}], {}))\n"
        f"c.save({str(path)!r})\n"
        f"print(len(ipychat.Chat.load({str(path)!r}).turns))\n"
    )
    env = {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-500:]
    assert "héllo ✓" in path.read_text(encoding="utf-8")


def test_a_failed_save_leaves_the_old_file_whole(tmp_path, monkeypatch) -> None:
    path = tmp_path / "t.json"
    chat = ipychat.Chat(base_url="http://127.0.0.1:9/v1", model="m")
    chat.turns.append(Turn({"role": "user", "content": "one"}, [], {}))
    chat.save(path)
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", broken)
    chat.turns.append(Turn({"role": "user", "content": "two"}, [], {}))
    with pytest.raises(OSError):
        chat.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["t.json"]  # no temporary left behind


def test_retry_after_beyond_the_cap_gives_up_at_once_and_says_when(fake) -> None:
    from tests.fakeprovider import error

    fake.push(error(429, "slow down", headers={"Retry-After": "120"}))
    chat = ipychat.Chat(base_url=fake.url, model="m")
    chat.retry = type(chat.retry)(retries=3, base=0.01, max_delay=30)
    with pytest.raises(ipychat.RateLimitError, match=r"wait 120 s: try again after \d\d:\d\d"):
        chat.ask("hi")
    assert len(fake.requests) == 1


def test_terminal_output_obeys_no_control_sequence(capsys) -> None:
    from ipychat._display import TerminalFrontend

    hostile = "ok\x1b]52;c;ZXZpbA==\x07 \x1b[2J\rOVERWRITE\x9b31m\x7f done\n"
    front = TerminalFrontend()
    front.write(hostile)
    front.show({"text/plain": hostile})
    out = capsys.readouterr().out
    assert not any(ord(c) < 32 and c not in "\n\t" for c in out)
    assert "\x9b" not in out and "\x7f" not in out
    assert "\\x1b]52;c;ZXZpbA==" in out and "ok" in out and "done" in out


def test_the_approval_prompt_shows_the_arguments_escaped(monkeypatch) -> None:
    from ipychat._live import _ask_approval
    from ipychat._tools import ToolCall

    asked = []
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or "n")
    _ask_approval(ToolCall("c1", "rm", '{"path": "/tmp/x\\r                 harmless"}'))
    _ask_approval(ToolCall("c2", "rm", '{"path": "a"}\r\x1b[2Kls()'))
    assert all("\r" not in p and "\x1b" not in p for p in asked)
    assert "\\x0d" in asked[1] and "\\x1b[2K" in asked[1]
