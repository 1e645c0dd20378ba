"""Hostile or odd input from the user, a file or a server: one clear line, never a traceback."""

from __future__ import annotations

import pytest

import ipychat
from ipychat._accumulate import Accumulator
from ipychat._messages import Turn
from tests.fakeprovider import chunk, event, raw_sse, sse


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


@pytest.mark.parametrize(
    "cell",
    [
        "%%writefile notes.md\n%chat what is this?\n",
        's = """\n%chat what?\n"""\n',
        "x = 1\n%chat is x one?\n",
    ],
)
def test_only_a_cell_that_is_one_question_line_is_rewritten(cell) -> None:
    from ipychat._question import keep_questions

    lines = cell.splitlines(keepends=True)
    assert keep_questions(lines) == lines


def test_the_one_line_question_becomes_the_magic_call() -> None:
    from ipychat._question import keep_questions

    assert keep_questions(["%chat what is a monad?\n"]) == [
        "get_ipython().run_line_magic('chat', 'what is a monad?')\n"
    ]
    assert keep_questions(["%chat?\n"]) == ["%chat?\n"]


@pytest.mark.parametrize("bad", MALFORMED, ids=[repr(b)[:40] for b in MALFORMED])
def test_a_malformed_first_chunk_is_a_stream_error_not_a_traceback(fake, bad) -> None:
    fake.push(raw_sse([event(bad)]))
    chat = ipychat.Chat(base_url=fake.url, model="m")
    with pytest.raises(ipychat.StreamError, match="malformed chunk"):
        chat.ask("hi")
    assert chat.turns == []


def test_the_plain_request_after_an_empty_stream_may_take_its_time(fake) -> None:
    from tests.fakeprovider import Script, chunk

    role = event({"model": "m", "choices": [{"index": 0, "delta": {"role": "assistant"}}]})
    stop = event(chunk(finish="stop"))
    slow = Script(status=400, body=b'{"error": {"message": "prompt too long"}}', first_delay=3.0)
    fake.push(raw_sse([role, stop, b"data: [DONE]\n\n"]), slow)
    with pytest.raises(ipychat.BadRequestError, match="prompt too long"):
        ipychat.Chat(base_url=fake.url, model="m").ask("hi")


def test_a_providers_message_cannot_drive_the_terminal_through_an_error() -> None:
    error = ipychat.ChatError("bad \x1b]52;c;ZXZpbA==\x07 \x1b[2J\nsecond line")
    [line] = error._render_traceback_()
    inner = line.removeprefix("\x1b[31m").removesuffix("\x1b[0m")
    assert "\x1b" not in inner and "\x07" not in inner and "\n" not in inner


def test_plain_text_of_a_reply_is_inert() -> None:
    from ipychat._render import reply_bundle

    bundle = reply_bundle(ipychat.Reply(content="x\x1b[2Jy\u202egnp.exe", model="m"))
    assert "\x1b" not in bundle["text/plain"] and "\u202e" not in bundle["text/plain"]


def test_numbers_out_of_range_do_not_crash_the_footer() -> None:
    from ipychat._messages import Usage
    from ipychat._render import footer_text

    usage = Usage.from_api({"prompt_tokens": 1e400, "completion_tokens": 3, "cost": float("nan")})
    assert usage is not None and usage.cost is None and usage.prompt_tokens == 0
    footer_text(ipychat.Reply(content="x", model="m", usage=usage))


def test_a_bom_split_across_reads_loses_no_event(fake) -> None:
    body = (
        "\ufeffdata: ".encode()
        + b'{"model": "m", "choices": [{"index": 0, "delta": {"content": "Hello"}}]}\n\n'
    )
    rest = event(chunk(" world", finish="stop")) + b"data: [DONE]\n\n"
    fake.push(raw_sse([body[:1], body[1:2], body[2:], rest]))
    assert ipychat.Chat(base_url=fake.url, model="m").ask("hi").content == "Hello world"


def test_endless_blank_lines_are_bounded(fake) -> None:
    from ipychat._client import Limits

    fake.push(raw_sse([b"\n" * 50_000] * 10))
    chat = ipychat.Chat(base_url=fake.url, model="m")
    chat.limits = Limits(event_bytes=100_000)
    with pytest.raises(ipychat.StreamError, match="without an event"):
        chat.ask("hi")


def test_a_surrogate_pair_split_across_chunks_is_joined(fake, tmp_path) -> None:
    pieces = [b'data: {"model":"m","choices":[{"index":0,"delta":{"content":"ok \\ud83d"}}]}\n\n',
              b'data: {"model":"m","choices":[{"index":0,"delta":{"content":"\\ude00"}}]}\n\n',
              event(chunk(finish="stop")), b"data: [DONE]\n\n"]  # fmt: skip
    fake.push(raw_sse(pieces))
    chat = ipychat.Chat(base_url=fake.url, model="m")
    assert chat.ask("hi").content == "ok 😀"
    chat.save(tmp_path / "t.json")  # writable as UTF-8


def test_of_two_commands_one_typo_away_the_likelier_is_named() -> None:
    from ipychat._commands import near_command

    assert near_command("mode") == "model"


def test_a_split_surrogate_pair_records_to_a_cassette_and_replays(fake, tmp_path) -> None:
    from ipychat._cassette import Cassette

    head = b'data: {"model":"m","choices":[{"index":0,"delta":{"content":'
    pieces = [head + b'"ok \\ud83d"}}]}\n\n', head + b'"\\ude00"}}]}\n\n',
              event(chunk(finish="stop")), b"data: [DONE]\n\n"]  # fmt: skip
    fake.push(raw_sse(pieces))
    path = tmp_path / "c.json"
    live = ipychat.Chat(base_url=fake.url, model="m")
    live.cassette = Cassette(path, "record")
    assert live.ask("hi").content == "ok 😀"
    offline = ipychat.Chat(base_url="http://127.0.0.1:9/v1", model="m")
    offline.cassette = Cassette(path, "replay")
    assert offline.ask("hi").content == "ok 😀"
