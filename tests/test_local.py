"""Integration tests against a real OpenAI-compatible server we did not write: the
llama-cpp-python server with the embedded Qwen2.5-Coder-0.5B model (ipychat[local])."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

import ipychat
from ipychat import local
from ipychat._display import RecordingFrontend
from ipychat._live import ask_live
from tests.kernel import Kernel

pytestmark = pytest.mark.local


@pytest.fixture(scope="module")
def server():
    srv = local.LocalServer.start()
    yield srv
    srv.stop()


@pytest.fixture
def chat(server) -> ipychat.Chat:
    return ipychat.Chat(provider="local", base_url=server.base_url, temperature=0, seed=1)


def test_streamed_answer_arrives_and_renders(chat) -> None:
    front = RecordingFrontend()
    reply = ask_live(
        chat,
        "Write a Python one-liner that sums a list `xs`.",
        frontend=front,
        owns_cell=True,
        max_tokens=120,
    )
    assert reply.content.strip() and reply.finish_reason in ("stop", "length")
    assert front.updates >= 2  # it streamed: shown, then updated
    html = front.visible()[-1]["text/html"]
    assert "ipychat-reply" in html and "qwen2.5-coder-0.5b" in html


def test_follow_up_sends_history_and_the_model_uses_it(chat) -> None:
    chat.ask("My name is Ada. Just reply OK.", max_tokens=10)
    reply = chat.ask("What is my name? Answer with the name only.", max_tokens=10)
    assert len(chat.messages) == 4
    assert "ada" in reply.content.lower()


def test_max_tokens_ends_with_length_and_says_it_was_cut(chat) -> None:
    front = RecordingFrontend()
    reply = ask_live(
        chat, "Write a long essay about rivers.", frontend=front, owns_cell=True, max_tokens=5
    )
    assert reply.finish_reason == "length"
    assert "cut at max tokens" in front.visible()[-1]["text/html"]


def test_prompt_beyond_the_context_is_one_clear_line(chat) -> None:
    with pytest.raises(ipychat.BadRequestError) as info:
        chat.ask("word " * 12000, max_tokens=5)
    message = str(info.value)
    assert message.startswith("HTTP 400") and "\n" not in message
    assert "context" in message.lower()
    assert chat.turns == []


def test_image_sent_to_the_text_only_model_says_it_takes_no_images(chat) -> None:
    png = (
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4"
        "2mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
    )
    with pytest.raises(ipychat.ConfigError, match="takes no images"):
        chat.ask("What is in this image?", images=[png], max_tokens=5)
    assert chat.turns == []


def test_throughput_ipychat_vs_plain_httpx(server, chat, capsys) -> None:
    prompt = "Count from 1 to 60, separated by commas."
    body = {
        "model": local.MODEL_ALIAS,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 120,
        "temperature": 0,
        "seed": 1,
        "stream": True,
    }
    chunks = 0
    first = None
    with httpx.stream(
        "POST", f"{server.base_url}/chat/completions", json=body, timeout=120
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                delta = json.loads(line[6:])["choices"][0]["delta"].get("content")
                if delta:
                    chunks += 1
                    first = first or time.perf_counter()
    raw = chunks / (time.perf_counter() - first)
    reply = chat.ask(prompt, max_tokens=120, history=False)
    ours = reply.tokens_per_second
    with capsys.disabled():
        print(
            f"\n[local model] plain httpx: {raw:.1f} chunks/s; ipychat: {ours:.1f} chunks/s "
            f"({reply.deltas} chunks, first token {reply.ttft:.2f} s)"
        )
    assert chunks > 10 and reply.deltas > 10 and ours > 0


def test_percent_chat_provider_local_in_a_kernel(server) -> None:
    k = Kernel({"IPYCHAT_LOCAL_URL": server.base_url})
    try:
        assert k.run("%load_ext ipychat\n%chat provider local").status == "ok"
        result = k.run("%%chat --max-tokens 5\nWrite a long poem about the sea.")
        assert result.status == "ok", result.text()
        assert "cut at max tokens" in result.text()
    finally:
        k.stop()


def test_kernel_started_server_dies_with_the_kernel() -> None:
    k = Kernel()
    try:
        assert k.run("%load_ext ipychat\n%chat provider local", timeout=180).status == "ok"
        pid = int(k.value("__import__('ipychat.local').local._server.process.pid"))
        os.kill(pid, 0)  # running
    finally:
        k.km.shutdown_kernel(now=True)  # SIGKILL: no atexit runs, only the death signal
        k.kc.stop_channels()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    pytest.fail("the local server outlived its kernel")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead
    except FileNotFoundError:
        return False


def test_port_taken_is_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(ipychat.ConfigError, match=f"port {port} is taken"):
            local.LocalServer.start(port)


def test_server_that_dies_is_a_clear_error(tmp_path, monkeypatch) -> None:
    bogus = tmp_path / "not-a-model.gguf"
    bogus.write_bytes(b"not a gguf")
    monkeypatch.setenv("IPYCHAT_LOCAL_MODEL", str(bogus))
    with pytest.raises(ipychat.ConfigError, match="exited with code"):
        local.LocalServer.start(timeout=60)


def test_hash_mismatch_is_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(local, "SHA256", "0" * 64)
    with pytest.raises(ipychat.ConfigError, match="sha256"):
        local.model_path()
    assert not (tmp_path / "ipychat" / local.MODEL_FILE).exists()


def test_missing_extra_names_the_install_command(monkeypatch) -> None:
    monkeypatch.setattr(local, "PARTS", ["ipychat_no_such_part_module"])
    monkeypatch.setenv("XDG_CACHE_HOME", "/nonexistent-ipychat-cache")
    with pytest.raises(ipychat.ConfigError, match=r"-m ipychat\.local install$"):
        local.model_path()


def test_tool_calling_protocol_with_the_local_model(chat) -> None:
    """The real server streams a tool call (forced by tool_choice, so a 0.5B model makes one);
    ipychat runs it, sends the result back, and the model answers in text."""
    seen = []

    def get_weather(city: str) -> dict:
        """Current weather in a city.

        Args:
            city: The city name, e.g. Paris.
        """
        seen.append(city)
        return {"city": city, "temperature_c": 21, "sky": "clear"}

    reply = chat.ask(
        "What is the weather in Paris?",
        tools=[get_weather],
        tool_choice="get_weather",
        max_tokens=200,
        max_rounds=1,
    )
    assert reply.status == "complete" and reply.content.strip()
    assert len(seen) == 1 and isinstance(seen[0], str) and seen[0]  # tolerant of the city
    messages = chat.messages
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    call = messages[1]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather" and call["id"]
    assert json.loads(call["function"]["arguments"]) == {"city": seen[0]}
    assert messages[2]["tool_call_id"] == call["id"]
    assert json.loads(messages[2]["content"])["temperature_c"] == 21


def test_the_installed_build_is_portable() -> None:
    """What `make test` installed: no AMX, nothing above x86-64-v3, and the stamp of its flags
    beside the wheel it came from (a natively built wheel from pip's cache would fail here on
    this project's AMX-reporting machines)."""
    from ipychat import _llama_build as build

    info = build.check_build()
    assert not info.amx and "AVX2" in info.features
    assert not any(name.startswith("AVX512") for name in info.features), info.text
    stamp = build.wheelhouse() / build.STAMP
    if os.environ.get("CI") or stamp.exists():
        assert json.loads(stamp.read_text())["CMAKE_ARGS"] == build.CMAKE_ARGS


SNIPPET = 'if a < b and c > d: print("x & y")'


def test_markup_characters_reach_the_model_as_written(chat) -> None:
    """`<`, `>`, `&` and `"` in a message: a template with HTML autoescape made them `&lt;` …
    before the model saw them, and the model echoed the entities back."""
    reply = chat.ask(
        f"Repeat this line exactly, with nothing else:\n{SNIPPET}", max_tokens=40, history=False
    )
    assert SNIPPET in reply.content, reply.content
    assert "&lt;" not in reply.content and "&#34;" not in reply.content


def test_markup_characters_in_a_message_and_a_tool_result_reach_the_model_as_written(
    server,
) -> None:
    """The prompt the server built has exactly as many tokens as the GGUF's template renders
    with the text as written; `&lt;`, `&#34;` … would make it longer. (The 0.5B model cannot be
    trusted to echo a tool result, so this counts tokens instead of reading its answer.)"""
    import jinja2.sandbox
    import llama_cpp

    template = llama_cpp.Llama(str(local.model_path()), vocab_only=True, verbose=False).metadata[
        "tokenizer.chat_template"
    ]
    messages = [
        {"role": "user", "content": f"Look at this line: {SNIPPET}"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_0",
                    "type": "function",
                    "function": {"name": "get_snippet", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_0", "content": SNIPPET},
    ]
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = lambda value, **_: json.dumps(value, ensure_ascii=False)
    prompt = env.from_string(template).render(messages=messages, add_generation_prompt=True)
    assert prompt.count(SNIPPET) == 2
    expected = httpx.post(
        f"{server.base_url.removesuffix('/v1')}/extras/tokenize/count",
        json={"input": prompt},
        timeout=30,
    ).json()["count"]
    answer = httpx.post(
        f"{server.base_url}/chat/completions",
        json={"model": local.MODEL_ALIAS, "messages": messages, "max_tokens": 1},
        timeout=60,
    ).json()
    assert answer["usage"]["prompt_tokens"] == expected


def test_a_kernel_interrupt_leaves_the_server_answering() -> None:
    """Jupyter interrupts with SIGINT to the kernel's whole process group; the server has a
    session of its own, so the next cell is answered by the same process."""
    k = Kernel()
    try:
        assert k.run("%load_ext ipychat\n%chat provider local", timeout=180).status == "ok"
        pid = int(k.value("__import__('ipychat.local').local._server.process.pid"))
        # Qwen's end tokens are banned, so the answer runs to its 400 tokens (about 20 s).
        no_end = """-p 'logit_bias={"151643": -100, "151645": -100}'"""
        msg_id = k.send(f"%%chat --max-tokens 400 {no_end}\nTell me about lighthouses.")
        time.sleep(4.0)  # well into the answer
        k.interrupt()
        interrupted = k.collect(msg_id, timeout=60)
        assert "interrupted" in interrupted.text()
        result = k.run("%%chat --max-tokens 5 --no-history\nSay hi.", timeout=120)
        assert result.status == "ok" and "connection" not in result.text(), result.text()
        assert int(k.value("__import__('ipychat.local').local._server.process.pid")) == pid
        assert _alive(pid)
    finally:
        k.stop()


def test_a_server_started_from_a_pool_worker_survives_the_pool(monkeypatch) -> None:
    monkeypatch.setattr(local, "_server", None)
    chat = ipychat.Chat(provider="local", temperature=0)
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(asyncio.run, chat.ask_async("Say hi.", max_tokens=3)).result()
    try:
        assert first.content
        time.sleep(1.0)  # the worker thread is gone: a death signal would have come
        assert local._server is not None and local._server.process.poll() is None
        assert chat.ask("Say hi.", max_tokens=3).content
    finally:
        if local._server is not None:
            local._server.stop()
        local._server = None


def test_a_server_killed_while_a_notebook_uses_it_is_said_in_one_line() -> None:
    k = Kernel()
    try:
        assert k.run("%load_ext ipychat\n%chat provider local", timeout=180).status == "ok"
        assert k.run("%%chat --max-tokens 3\nSay hi.", timeout=120).status == "ok"
        pid = int(k.value("__import__('ipychat.local').local._server.process.pid"))
        os.kill(pid, signal.SIGSEGV)  # as the AMX fault ends it
        result = k.run("%%chat --max-tokens 3\nSay hi again.", timeout=120)
        text = result.text()
        assert "the local server was killed by SIGSEGV" in text, text
        assert "rebuild llama-cpp-python portably" in text
        assert "retrying" not in text and "All connection attempts failed" not in text
        [line] = [ln for ln in text.splitlines() if "killed by SIGSEGV" in ln]
        assert "-m ipychat.local install" in line
    finally:
        k.stop()


def test_an_unforced_tool_call_written_as_text_runs_the_tool(chat) -> None:
    """Without a forced choice the server returns the model's call as text (the GGUF template
    asks for <tool_call> tags; the 0.5B model writes a fenced JSON object); ipychat parses it."""
    seen = []

    def get_weather(city: str) -> dict:
        """Current weather in a city."""
        seen.append(city)
        return {"city": city, "temperature_c": 21}

    reply = chat.ask(
        "What is the weather in Paris?", tools=[get_weather], max_tokens=80, max_rounds=1
    )
    assert seen and "paris" in seen[0].lower(), reply.content
    assert [m["role"] for m in chat.messages] == ["user", "assistant", "tool", "assistant"]
