"""The magics in a real IPython kernel (jupyter_client / nbclient) against the fake provider."""

from __future__ import annotations

import json
import time

import nbformat
import pytest
from nbclient import NotebookClient

from tests.fakeprovider import error, sse
from tests.kernel import Kernel

pytestmark = pytest.mark.kernel
SECRET = "sk-ipychat-KERNEL-7c1d2e3f4a5b"


@pytest.fixture(scope="module")
def kernel(_server):
    k = Kernel(
        {"IPYCHAT_BASE_URL": _server.url, "IPYCHAT_MODEL": "fake-model", "IPYCHAT_API_KEY": SECRET}
    )
    assert k.run("%load_ext ipychat\nimport ipychat").status == "ok"
    yield k
    k.stop()


@pytest.fixture
def k(kernel, fake):
    kernel.run(
        "import ipychat._threads as _t; _t.SESSION.threads.clear(); _t.SESSION.commands.clear()"
    )
    return kernel


def test_cell_streams_then_leaves_one_clean_bundle(k, fake) -> None:
    fake.push(sse([f"word{i} " for i in range(30)], delay=0.03))
    result = k.run("%%chat\nSay many words")
    assert result.status == "ok", result.text()
    kinds = [o["msg_type"] for o in result.outputs]
    assert "display_data" in kinds and "update_display_data" in kinds  # it streamed live
    final = result.final()
    assert len(final) == 1
    data = final[0]["data"]
    assert {"text/html", "text/markdown", "text/plain"} <= set(data)
    assert data["text/markdown"].startswith("word0 word1")
    assert "fake-model" in data["text/html"]  # the footer


def test_second_turn_sends_history(k, fake) -> None:
    k.run("%%chat\nfirst")
    k.run("%%chat\nsecond")
    messages = fake.requests[-1].body["messages"]
    assert [m["content"][:12] for m in messages] == ["first", "Echo: first\n", "second"]


def test_flags_reach_the_request_body(k, fake) -> None:
    line = (
        "%%chat -m other-model -s 'be brief' --temperature 0.5 --top-p 0.8 --max-tokens 9 "
        "--seed 3 --stop END --reasoning-effort high -p verbosity=low -p n=2 -t t1 --new"
    )
    assert k.run(f"{line}\nhello").status == "ok"
    body = fake.requests[-1].body
    assert body["model"] == "other-model"
    assert body["messages"][0] == {"role": "system", "content": "be brief"}
    expected = {
        "temperature": 0.5,
        "top_p": 0.8,
        "max_tokens": 9,
        "seed": 3,
        "stop": "END",
        "reasoning_effort": "high",
        "verbosity": "low",
        "n": 2,
    }
    assert {key: body[key] for key in expected} == expected
    assert k.value("len(ipychat.thread('t1').turns)").strip() == "1"


def test_no_stream_and_no_history(k, fake) -> None:
    k.run("%%chat\nkept")
    assert k.run("%%chat --no-stream --no-history\nside question").status == "ok"
    body = fake.requests[-1].body
    assert body["stream"] is False and len(body["messages"]) == 1
    assert k.value("len(ipychat.thread().turns)").strip() == "1"


def test_out_stores_the_reply_and_json_parses(k, fake) -> None:
    fake.push(sse(['{"x": ', "42}"]))
    assert k.run("%%chat --json -o r\ngive me json").status == "ok"
    assert fake.requests[-1].body["response_format"] == {"type": "json_object"}
    assert k.value("r.data").strip() == "{'x': 42}"
    assert k.value("type(r).__name__").strip() == "'Reply'"


def test_api_error_is_one_clear_line_and_thread_unchanged(k, fake) -> None:
    k.run("%%chat\nfirst")
    fake.push(*[error(429, "Rate limit reached", headers={"Retry-After": "0"})] * 4)
    result = k.run("%%chat\nsecond")
    assert result.status == "error"
    assert len(result.error["traceback"]) == 1
    assert "HTTP 429: Rate limit reached" in result.error["traceback"][0]
    assert k.value("len(ipychat.thread().turns)").strip() == "1"


def test_bad_flag_is_a_usage_error_and_sends_nothing(k, fake) -> None:
    result = k.run("%%chat --bogus\nhello")
    assert result.status == "error" and result.reply["ename"] == "UsageError"
    assert "unrecognized arguments: --bogus" in result.text()
    assert fake.requests == []


def test_settings_show_masks_the_key(k) -> None:
    text = k.run("%chat").text()
    assert "fake-model" in text and "set (from IPYCHAT_API_KEY)" in text
    assert SECRET not in text and SECRET[-6:] not in text


def test_resolution_order_in_the_kernel(k, fake) -> None:
    k.run("%config ChatMagics.model = 'cfg-model'")
    k.run("%%chat\nq")
    assert fake.requests[-1].body["model"] == "cfg-model"
    k.run("%chat model cmd-model")
    k.run("%%chat\nq2")
    assert fake.requests[-1].body["model"] == "cmd-model"
    k.run("%%chat -m flag-model\nq3")
    assert fake.requests[-1].body["model"] == "flag-model"
    k.run("%config ChatMagics.model = ''")


def test_line_commands(k, fake, tmp_path) -> None:
    fake.push(sse(["Here:\n\n```python\nprint(1)\n```\n\nand\n\n```sh\nls\n```"]))
    k.run("%%chat\ncode please")
    k.run("%chat what is 2 plus 2")
    assert fake.requests[-1].body["messages"][-1]["content"] == "what is 2 plus 2"
    history = k.run("%chat history").text()
    assert "code please" in history and "what is 2 plus 2" in history
    assert "default: 2 turns" in k.run("%chat threads").text()
    k.run("%chat undo")
    assert k.value("len(ipychat.thread().turns)").strip() == "1"
    result = k.run("%chat code 2")
    assert result.status == "ok"
    path = tmp_path / "t.json"
    k.run(f"%chat save {path}")
    k.run("%chat reset")
    assert k.value("len(ipychat.thread().turns)").strip() == "0"
    k.run(f"%chat load {path}")
    assert k.value("len(ipychat.thread().turns)").strip() == "1"
    assert SECRET not in path.read_text()


def test_rerun_of_the_same_cell_replaces_its_turn(k, fake) -> None:
    k.run("%%chat\none", cell_id="c1")
    k.run("%%chat\ntwo", cell_id="c2")
    k.run("%%chat\nthree", cell_id="c3")
    result = k.run("%%chat\ntwo again", cell_id="c2")
    assert "dropped 1 later turn" in result.text()
    assert k.value("[t.user['content'] for t in ipychat.thread().turns]").strip() == (
        "['one', 'two again']"
    )
    assert fake.requests[-1].body["messages"][0]["content"] == "one"
    assert len(fake.requests[-1].body["messages"]) == 3


def test_running_a_notebook_twice_gives_the_same_thread(k, fake) -> None:
    cells = [("a", "%%chat\nalpha"), ("b", "%%chat\nbeta"), ("c", "%%chat -t side\ngamma")]
    for _ in range(2):
        for cell_id, code in cells:
            assert k.run(code, cell_id=cell_id).status == "ok"
    contents = "[t.user['content'] for t in ipychat.thread().turns]"
    assert k.value(contents).strip() == "['alpha', 'beta']"
    assert k.value("len(ipychat.thread('side').turns)").strip() == "1"


def test_rerun_without_cell_id_replaces_identical_last_turn(k, fake) -> None:
    k.run("%%chat\nsame")
    k.run("%%chat\nsame")
    assert k.value("len(ipychat.thread().turns)").strip() == "1"


def test_interrupt_stops_the_stream_keeps_partial_and_kernel_works(k, fake) -> None:
    fake.push(sse([f"w{i} " for i in range(100)], delay=0.1))
    seen = []
    msg_id = k.send("%%chat\nlong answer please")
    deadline = time.monotonic() + 10
    while len(fake.requests) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.8)
    start = time.monotonic()
    k.interrupt()
    result = k.collect(msg_id, on_output=lambda kind, c: seen.append(kind))
    latency = time.monotonic() - start
    assert latency < 0.5, latency
    assert fake.requests[-1].finished.wait(1) and fake.requests[-1].closed_early
    assert result.error["ename"] == "Interrupted"  # a KeyboardInterrupt: Run All stops here
    assert len(result.error["traceback"]) == 1, result.error["traceback"]  # not our stack
    text = result.text()
    assert "w0" in text and "interrupted" in text
    assert "fake-model" in result.final()[0]["data"]["text/html"]  # the model, not "?"
    assert k.value("ipychat.thread().turns[-1].meta['status']").strip() == "'interrupted'"
    assert k.run("import asyncio\nawait asyncio.sleep(0.1)").status == "ok"
    assert k.run("%%chat\nafter").status == "ok"


def test_notebook_run_by_nbclient_keeps_the_key_out(_server, fake, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("IPYCHAT_BASE_URL", _server.url)
    monkeypatch.setenv("IPYCHAT_MODEL", "fake-model")
    monkeypatch.setenv("IPYCHAT_API_KEY", SECRET)
    saved = tmp_path / "thread.json"
    fake.push(
        sse(["ok"]),
        error(401, f"Incorrect API key provided: {SECRET}"),
        error(503, "down"),
        sse(["recovered"]),
    )
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(src)
        for src in [
            "%load_ext ipychat",
            "%chat",
            "%%chat\nhello",
            "%%chat\nbad key",
            "%%chat\nretry me",
            "%chat history",
            f"%chat save {saved}",
            "import ipychat\nprint(repr(ipychat.thread()), ipychat.thread().settings())",
        ]
    ]
    NotebookClient(nb, timeout=60, kernel_name="python3", allow_errors=True).execute()
    path = tmp_path / "run.ipynb"
    nbformat.write(nb, path)
    text = path.read_text() + saved.read_text()
    assert "recovered" in text and "HTTP 401" in text
    assert SECRET not in text
    assert json.loads(saved.read_text())["turns"]


LEAK_PROBE = """
import asyncio as _a, os as _os, ipychat._loop as _L
async def _tasks():
    return len([t for t in _a.all_tasks() if t is not _a.current_task()])
_n_tasks = _a.run_coroutine_threadsafe(_tasks(), _L.get_loop()).result(5)
def _is_socket(fd):
    try:
        return _os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    except OSError:  # the listing's own fd, closed by now
        return False
_n_socks = sum(_is_socket(f) for f in _os.listdir("/proc/self/fd"))
print(_n_tasks, _n_socks)
"""


def probe(k) -> tuple[int, int]:
    result = k.run(LEAK_PROBE)
    text = "".join(o["content"]["text"] for o in result.outputs if o["msg_type"] == "stream")
    tasks, socks = text.split()
    return int(tasks), int(socks)


def test_twenty_interrupts_in_a_row_leak_nothing(k, fake) -> None:
    latencies = []
    baseline = None
    for i in range(20):
        fake.push(sse([f"w{j} " for j in range(60)], delay=0.05))
        count = len(fake.requests)
        msg_id = k.send(f"%%chat\nstream number {i}")
        deadline = time.monotonic() + 10
        while len(fake.requests) == count and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
        start = time.monotonic()
        k.interrupt()
        result = k.collect(msg_id)
        latencies.append(time.monotonic() - start)
        assert result.reply.get("ename") == "Interrupted", result.text()[-300:]
        assert fake.requests[-1].finished.wait(1) and fake.requests[-1].closed_early
        if baseline is None:
            baseline = probe(k)
    assert max(latencies) < 0.5, latencies
    tasks, socks = probe(k)
    assert tasks == 0
    assert socks <= baseline[1]
    assert k.run("import asyncio\nawait asyncio.sleep(0.05)").status == "ok"
    fake.push(sse(["fine"]))
    assert "fine" in k.run("%%chat\nstill there").text()


def test_interpolation_in_a_cell_with_code_braces(k, fake) -> None:
    k.run("import pandas as pd\nwho = 'Ada'\ntable = pd.DataFrame({'x': [1, 2]})")
    cell = (
        "%%chat\nHi {who}, rows: {len(table)}; literal {{who}}.\n{table}\n"
        "```python\nd = {k: v for k, v in {'a': 1}.items()}\nprint(f'{who}')\n```\n"
        'JSON stays: {"a": 1}'
    )
    assert k.run(cell).status == "ok"
    sent = fake.requests[-1].body["messages"][-1]["content"]
    assert sent.startswith("Hi Ada, rows: 2; literal {who}.\n|  | x |")
    assert "d = {k: v for k, v in {'a': 1}.items()}\nprint(f'{who}')" in sent
    assert sent.endswith('JSON stays: {"a": 1}')
    k.run("%%chat --no-interpolate\nkeep {who}")
    assert fake.requests[-1].body["messages"][-1]["content"] == "keep {who}"


def test_retry_replaces_the_last_answer(k, fake) -> None:
    fake.push(sse(["first answer"]), sse(["second answer"]))
    k.run("%%chat --temperature 0.7\nquestion")
    assert k.run("%chat retry").status == "ok"
    assert fake.requests[-1].body["temperature"] == 0.7
    assert fake.requests[-1].body["messages"][-1]["content"] == "question"
    answers = k.value("[t.replies[-1]['content'] for t in ipychat.thread().turns]")
    assert answers.strip() == "['second answer']"


def test_code_puts_a_block_into_the_next_cell(k, fake) -> None:
    fake.push(sse(["Two:\n\n```python\nprint(1)\n```\n\n```sh\nls -la\n```"]))
    k.run("%%chat\ncode")
    result = k.run("%chat code 2")
    payload = result.reply["payload"]
    assert payload and payload[0]["source"] == "set_next_input"
    assert payload[0]["text"] == "ls -la"
    bad = k.run("%chat code 3")
    assert bad.reply["ename"] == "UsageError" and "2 code block(s)" in bad.text()


def test_context_budget_note_in_the_cell(k, fake) -> None:
    for i in range(3):
        k.run(f"%%chat\nquestion {i} " + "pad " * 200)
    k.run("%config ChatMagics.context_budget = 400")
    try:
        result = k.run("%%chat\nlast")
    finally:
        k.run("%config ChatMagics.context_budget = 0")
    assert "left out of this request" in result.text()
    assert k.value("len(ipychat.thread().turns)").strip() == "4"


def test_retry_shows_a_live_note_then_the_answer(k, fake) -> None:
    fake.push(error(429, "slow down", headers={"Retry-After": "1"}), sse(["made it"]))
    result = k.run("%%chat\nretry me")
    assert result.status == "ok"
    shown = result.text()
    assert "rate-limited, retrying in 1.0 s (1/3)" in shown  # live, while it waited
    final = result.final()
    assert len(final) == 1 and "made it" in final[0]["data"]["text/markdown"]


def test_new_and_system_change_the_thread_only_when_the_turn_happens(k, fake) -> None:
    k.run("%%chat -s 'old system'\nfirst")
    fake.push(error(400, "nope"))
    result = k.run("%%chat --new -s 'new system'\nfails")
    assert result.status == "error"
    assert k.value("(len(ipychat.thread().turns), ipychat.thread().system)").strip() == (
        "(1, 'old system')"
    )
    assert k.run("%%chat --new -s 'new system'\nworks").status == "ok"
    assert k.value("(len(ipychat.thread().turns), ipychat.thread().system)").strip() == (
        "(1, 'new system')"
    )
    assert fake.requests[-1].body["messages"][0] == {"role": "system", "content": "new system"}


def test_key_typed_for_one_provider_is_not_sent_to_the_next(k, fake) -> None:
    k.run(
        "import ipychat._threads as t, ipychat._settings as s\n"
        "t.SESSION.commands['api_key'] = s.Secret('sk-typed-for-openai-000')"
    )
    text = k.run("%chat provider deepseek").text()
    assert "key from %chat key was dropped" in text
    assert k.value("'api_key' in t.SESSION.commands").strip() == "False"
    k.run("%chat provider openai")  # restore a preset with no key either
    k.run("t.SESSION.commands.clear()")


def test_a_question_that_starts_like_a_command_is_asked(k, fake) -> None:
    k.run("%chat history of Rome in one line")
    assert fake.requests[-1].body["messages"][-1]["content"] == "history of Rome in one line"
    k.run("%chat ask model railways in one line")
    assert fake.requests[-1].body["messages"][-1]["content"] == "model railways in one line"


def test_retry_keeps_json_mode_and_the_model(k, fake) -> None:
    fake.push(sse(['{"a": 1}']), sse(['{"a": 2}']))
    k.run("%%chat --json -m other-model -o r\ngive json")
    assert k.run("%chat retry").status == "ok"
    body = fake.requests[-1].body
    assert body["response_format"] == {"type": "json_object"} and body["model"] == "other-model"
    assert k.value("ipychat.thread().last.data").strip() == "{'a': 2}"
    assert k.value("len(ipychat.thread().turns)").strip() == "1"


def test_a_loaded_thread_cannot_redirect_a_retry_or_multiply_it(k, fake, tmp_path) -> None:
    """A saved thread is a file anyone may have written: `%chat retry` takes only the model and
    sampling settings from it, never a base URL, provider or key, nor `n`."""
    fake.push(sse(["first"]))
    k.run("%%chat --temperature 0.3\nhello")
    path = tmp_path / "t.json"
    k.run(f"%chat save {path}")
    data = json.loads(path.read_text())
    data["turns"][0]["meta"]["params"].update(
        {"base_url": "https://evil.example/v1", "provider": "openrouter", "n": 50,
         "api_key": "sk-attacker-0123456789"}
    )  # fmt: skip
    path.write_text(json.dumps(data))
    k.run("%chat reset")
    k.run(f"%chat load {path}")
    fake.push(sse(["again"]))
    result = k.run("%chat retry")
    assert result.status == "ok", result.text()
    body = fake.requests[-1].body
    assert body["temperature"] == 0.3 and "n" not in body
    assert fake.requests[-1].headers["Authorization"] == f"Bearer {SECRET}"


def test_a_failed_turn_leaves_the_configured_system_prompt_unapplied(k, fake) -> None:
    k.run("%config ChatMagics.system = 'Be terse.'")
    try:
        fake.push(error(400, "bad request"))
        k.run("%%chat\nhello")
        assert k.value("ipychat.thread().system").strip() == "None"
        fake.push(sse(["hi"]))
        k.run("%%chat\nhello")
        assert k.value("ipychat.thread().system").strip() == "'Be terse.'"
        assert fake.requests[-1].body["messages"][0] == {"role": "system", "content": "Be terse."}
    finally:
        k.run("%config ChatMagics.system = ''")


def test_a_failed_retry_writes_nothing_onto_the_old_turn(k, fake) -> None:
    fake.push(sse(["first"]))
    k.run("%%chat\nhello")
    before = k.value("sorted(ipychat.thread().turns[-1].meta)")
    fake.push(error(400, "bad request"))
    k.run("%chat retry")
    assert k.value("sorted(ipychat.thread().turns[-1].meta)") == before
    assert k.value("ipychat.thread().turns[-1].replies[-1]['content']").strip() == "'first'"
    fake.push(sse(["second"]))
    k.run("%chat retry")
    assert k.value("len(ipychat.thread().turns)").strip() == "1"
    assert k.value("ipychat.thread().turns[-1].replies[-1]['content']").strip() == "'second'"


def test_a_one_line_question_may_end_in_a_question_mark(k, fake) -> None:
    fake.push(sse(["A monad is a monoid in the category of endofunctors."]))
    result = k.run("%chat what is a monad?")
    assert result.status == "ok", result.text()
    assert fake.requests[-1].body["messages"][-1]["content"] == "what is a monad?"
    assert "endofunctors" in result.text()


def test_chat_question_mark_alone_still_shows_help(k, fake) -> None:
    result = k.run("%chat?")
    assert result.status == "ok" and fake.requests == []
    assert "chat" in json.dumps(result.reply.get("payload", [])) + result.text()


def test_what_a_tool_prints_stays_in_the_cell(k, fake) -> None:
    from tests.test_tools import call_chunks

    k.run(
        "def lookup(city: str) -> str:\n"
        "    '''Weather.'''\n"
        "    print('TOOL PRINTED', city)\n"
        "    return 'sunny'"
    )
    fake.push(call_chunks([("c1", "lookup", ['{"city": "Oslo"}'])]), sse(["It is sunny."]))
    result = k.run("%%chat --tools lookup --auto\nweather in Oslo?")
    assert result.status == "ok", result.text()
    final = result.final()
    assert any("TOOL PRINTED Oslo" in str(out) for out in final)
    answer = [o for o in final if "text/markdown" in o.get("data", {})][-1]["data"]
    assert answer["text/markdown"] == "It is sunny."


def test_a_line_question_keeps_what_the_cell_printed_before_it(k, fake) -> None:
    fake.push(sse(["hello back"]))
    result = k.run("print('BEFORE THE QUESTION')\n%chat hello there friend")
    assert result.status == "ok", result.text()
    final = str(result.final())
    assert "BEFORE THE QUESTION" in final and "hello back" in final


def test_a_retry_that_breaks_midway_keeps_the_good_answer(k, fake) -> None:
    fake.push(sse(["The good full answer."]))
    k.run("%%chat\nhello")
    fake.push(sse(["Partial ", "ans", "wer"], drop_after=2))
    k.run("%chat retry")
    assert k.value("ipychat.thread().turns[-1].replies[-1]['content']").strip() == (
        "'The good full answer.'"
    )
