"""The chat panel driven from Python: clicks are method calls, the loop is asyncio.run's."""

from __future__ import annotations

import asyncio
import datetime
import time

import pytest

import ipychat
from ipychat._threads import SESSION
from tests.fakeprovider import error, sse

SECRET = "sk-ipychat-PANEL-0f9e8d7c6b"


@pytest.fixture
def env(fake, monkeypatch):
    monkeypatch.setenv("IPYCHAT_BASE_URL", fake.url)
    monkeypatch.setenv("IPYCHAT_MODEL", "fake-model")
    monkeypatch.setenv("IPYCHAT_API_KEY", SECRET)
    SESSION.listeners.clear()
    return fake


def run(coro):
    return asyncio.run(coro)


def test_send_streams_into_the_thread_and_transcript(env) -> None:
    async def main():
        panel = ipychat.ChatPanel()
        panel.prompt.value = "hello panel"
        await panel.send()
        return panel

    panel = run(main())
    assert ipychat.thread().turns[-1].user["content"] == "hello panel"
    assert "Echo: hello panel" in panel.transcript.value
    assert "1 turns" in panel.usage.value and "12 tokens in" in panel.usage.value
    assert panel.prompt.value == "" and panel.status.value == ""


def test_stop_cancels_at_once_and_keeps_the_partial_answer(env) -> None:
    env.push(sse([f"w{i} " for i in range(80)], delay=0.05))

    async def main():
        panel = ipychat.ChatPanel()
        panel.prompt.value = "long"
        task = panel.send()
        while "w3" not in "".join(getattr(c, "value", "") for c in _html_parts(panel)):
            await asyncio.sleep(0.02)
        start = time.monotonic()
        panel.stop()
        try:
            await task
        except asyncio.CancelledError:
            pass
        return panel, time.monotonic() - start

    panel, took = run(main())
    assert took < 0.5
    assert env.requests[-1].finished.wait(1) and env.requests[-1].closed_early
    turn = ipychat.thread().turns[-1]
    assert turn.meta["status"] == "interrupted" and turn.replies[-1]["content"].startswith("w0")
    assert "stopped" in panel.status.value and "stopped" in panel.transcript.value


def _html_parts(panel):
    out = []
    stack = list(panel.live.children)
    while stack:
        widget = stack.pop()
        out.append(widget)
        stack.extend(getattr(widget, "children", ()))
    return out


def test_error_is_one_line_and_the_prompt_is_kept(env) -> None:
    env.push(error(400, "model not found", param="model"))

    async def main():
        panel = ipychat.ChatPanel()
        panel.prompt.value = "keep me"
        await panel.send()
        return panel

    panel = run(main())
    assert "HTTP 400: model not found" in panel.status.value
    assert panel.prompt.value == "keep me"
    assert ipychat.thread().turns == []


def test_turn_asked_elsewhere_appears_in_an_open_panel(env) -> None:
    async def main():
        panel = ipychat.ChatPanel(thread="shared")
        await ipychat.thread("shared").ask_async("from a cell")
        await asyncio.sleep(0)
        return panel

    panel = run(main())
    assert "from a cell" in panel.transcript.value


def test_model_picker_fills_from_models_endpoint(env) -> None:
    async def main():
        panel = ipychat.ChatPanel()
        await panel._models_task
        return panel

    panel = run(main())
    assert "fake-reasoner" in panel.model.options and panel.model.value == "fake-model"


def test_static_html_for_where_widgets_are_not_live_and_no_key(env) -> None:
    async def main():
        panel = ipychat.ChatPanel()
        panel.prompt.value = "static"
        await panel.send()
        return panel._bundle()

    bundle = run(main())
    assert "Echo: static" in bundle["text/html"]
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert SECRET not in str(bundle)


def test_uploaded_image_becomes_a_data_url_part(env, tmp_path) -> None:
    png = bytes.fromhex("89504e470d0a1a0a") + b"\0" * 32

    async def main():
        panel = ipychat.ChatPanel()
        panel.upload.value = (
            {
                "name": "a.png",
                "type": "image/png",
                "size": len(png),
                "content": memoryview(png),
                "last_modified": datetime.datetime.now(),
            },
        )
        panel.prompt.value = "what is this"
        await panel.send()

    run(main())
    parts = env.requests[-1].body["messages"][-1]["content"]
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")


def test_stop_before_the_first_token_keeps_the_prompt(env) -> None:
    script = sse(["late"])
    script.first_delay = 1.0
    env.push(script)

    async def main():
        panel = ipychat.ChatPanel()
        panel.prompt.value = "keep this"
        task = panel.send()
        await asyncio.sleep(0.2)
        panel.stop()
        try:
            await task
        except asyncio.CancelledError:
            pass
        return panel

    panel = run(main())
    assert panel.prompt.value == "keep this" and ipychat.thread().turns == []
