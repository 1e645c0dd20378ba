"""The live view through a recording front end (no kernel needed)."""

from __future__ import annotations

import pytest

import ipychat
from ipychat._display import RecordingFrontend
from ipychat._live import LiveView, ask_live
from ipychat._messages import Event, Reply
from tests import xss_corpus
from tests.fakeprovider import sse
from tests.test_render import problems
from tests.xss_payloads import PAYLOADS


def stream(view: LiveView, text: str, step: int = 3, kind: str = "content") -> None:
    for i in range(0, len(text), step):
        view.feed(Event(kind, text[i : i + step]))  # type: ignore[arg-type]
        view.tick()
    view.tick(force=True)  # what the poll loop does 50 ms later


def htmls(front: RecordingFrontend) -> list[str]:
    return [b["text/html"] for op, _, b in front.calls if isinstance(b, dict) and "text/html" in b]


def test_first_token_is_shown_at_once() -> None:
    front = RecordingFrontend()
    view = LiveView(front, interval=10)
    view.feed(Event("content", "Hel"))
    view.tick()
    assert front.calls and "Hel" in htmls(front)[0]


def test_updates_are_throttled() -> None:
    front = RecordingFrontend()
    view = LiveView(front, interval=10)
    for _ in range(200):
        view.feed(Event("content", "word "))
        view.tick()
    assert front.updates == 1


def test_frozen_blocks_are_sent_once() -> None:
    front = RecordingFrontend()
    view = LiveView(front, interval=0)
    paragraphs = [f"Paragraph {i} " + "text " * 30 for i in range(40)]
    stream(view, "\n\n".join(paragraphs), step=5)
    sent = "".join(htmls(front))
    assert sent.count("Paragraph 3 ") <= 3  # as tail a few times at most, then frozen once
    final_size = sum(len(h) for h in view.frozen)
    assert front.bytes_sent < 12 * final_size  # linear, not quadratic, in the answer


def test_final_output_is_one_clean_bundle_when_the_cell_is_ours() -> None:
    front = RecordingFrontend()
    view = LiveView(front, owns_cell=True, interval=0)
    stream(view, "one\n\ntwo\n\n```python\nx = 1\n```\n\nend")
    view.finish(Reply(content="one\n\ntwo\n\n```python\nx = 1\n```\n\nend", model="m"))
    visible = front.visible()
    assert len(visible) == 1
    bundle = visible[0]
    assert bundle["text/markdown"].startswith("one")
    assert "var(--jp-mirror-editor" in bundle["text/html"]  # highlighted once the fence closed


def test_code_in_an_open_fence_is_not_highlighted_yet() -> None:
    front = RecordingFrontend()
    view = LiveView(front, interval=0)
    stream(view, "```python\ndef f():\n    return 1\n")
    assert "var(--jp-mirror-editor" not in htmls(front)[-1]
    assert "return 1" in htmls(front)[-1]


def test_reasoning_panel_open_while_streaming_closed_after() -> None:
    front = RecordingFrontend()
    view = LiveView(front, owns_cell=True, interval=0)
    stream(view, "pondering deeply", kind="reasoning")
    assert "<details" in htmls(front)[-1] and " open" in htmls(front)[-1]
    stream(view, "Answer")
    reasoning_updates = [h for h in htmls(front) if "<details" in h]
    assert " open" not in reasoning_updates[-1]
    view.finish(Reply(content="Answer", reasoning="pondering deeply"))
    final = front.visible()[-1]
    assert "pondering deeply" not in final["text/markdown"]


def test_kept_notes_survive_the_final_clear() -> None:
    front = RecordingFrontend()
    view = LiveView(front, owns_cell=True, interval=0)
    view.note("↺ re-run", keep=True)
    view.note("⟳ retrying")
    stream(view, "x")
    view.finish(Reply(content="x"))
    texts = [b["text/plain"] for b in front.visible()]
    assert texts[0] == "↺ re-run" and not any("retrying" in t for t in texts)


def test_terminal_gets_plain_text_streamed() -> None:
    front = RecordingFrontend(rich=False)
    view = LiveView(front)
    stream(view, "thought", kind="reasoning")
    stream(view, "**answer**")
    view.finish(Reply(content="**answer**", model="m"))
    assert "**answer**" in front.text and "<" not in front.text
    assert front.text.rstrip().endswith("]")


def test_payloads_streamed_char_by_char_never_render_live_markup() -> None:
    for payload in PAYLOADS:
        front = RecordingFrontend()
        view = LiveView(front, owns_cell=True, interval=0)
        stream(view, payload, step=1)
        view.finish(Reply(content=payload))
        for html in htmls(front):
            assert problems(html) == [], payload


def test_ask_live_streams_into_a_frontend(chat, fake) -> None:
    fake.push(sse(["Hello", " **world**"], reasoning=["hmm"]))
    front = RecordingFrontend()
    reply = ask_live(chat, "q", frontend=front, owns_cell=True)
    assert reply.content == "Hello **world**"
    final = front.visible()[-1]
    assert "<strong>world</strong>" in final["text/html"]
    assert "12 in (4 cached)" in final["text/html"]


@pytest.mark.skipif(not xss_corpus.load(), reason="the XSS corpus (../shared) is not here")
def test_corpus_answers_streamed_in_pieces_never_render_live_markup() -> None:
    for case in xss_corpus.load():
        payload = case["payload"]
        front = RecordingFrontend()
        view = LiveView(front, owns_cell=True, interval=0)
        stream(view, payload, step=max(1, len(payload) // 5))
        view.finish(Reply(content=payload))
        for html in htmls(front):
            assert problems(html) == [], case["id"]


def _final_html(front: RecordingFrontend) -> str:
    return "".join(b.get("text/html", "") for b in front.visible())


def test_the_retry_note_goes_once_the_answer_arrives() -> None:
    front = RecordingFrontend()
    view = LiveView(front, owns_cell=False, interval=0)
    view.feed(Event("retry", "rate-limited, retrying in 1.0 s (1/3)"))
    assert "retrying" in str(front.visible())
    stream(view, "the answer")
    assert "retrying" not in str(front.visible())
    view.finish(Reply(content="the answer", model="m"))
    assert "retrying" not in str(front.visible())


def test_no_stale_retry_note_stands_above_the_final_error(chat, fake) -> None:
    from tests.fakeprovider import error

    fake.push(*[error(429, "slow down", headers={"Retry-After": "0"}) for _ in range(4)])
    front = RecordingFrontend()
    with pytest.raises(ipychat.RateLimitError):
        ask_live(chat, "q", frontend=front, owns_cell=True)
    assert "retrying" not in str(front.visible())


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            "See [the docs][d].\n\nMore text.\n\n[d]: https://example.com/docs",
            'href="https://example.com/docs"',
        ),
        ("| a | b |\n|:--|--:|\n| 1 | 2 |\n\nafter", 'style="text-align: right;"'),
        ("Here:\n\n```python\ndef f(n):\n    if n <= 0:\n        return 1", "<pre"),
    ],
    ids=["reference link", "table alignment", "fence cut by max_tokens"],
)
def test_what_streaming_splits_renders_as_a_whole_answer_would(answer, expected) -> None:
    front = RecordingFrontend()
    view = LiveView(front, owns_cell=True, interval=0)
    stream(view, answer, step=4)
    view.finish(Reply(content=answer, model="m", finish_reason="length"))
    final = _final_html(front)
    assert expected in final and "```" not in final


def test_a_tool_turn_keeps_what_the_tool_printed_and_agrees_with_the_reply() -> None:
    from ipychat._tools import ToolCall

    front = RecordingFrontend()
    view = LiveView(front, owns_cell=True, interval=0)
    stream(view, "Let me check.")
    call = ToolCall("c1", "lookup", "{}")
    view.feed(Event("tool", data=call))
    printed = front.show({"text/plain": "TOOL PRINTED"})  # what the user's tool printed
    call.result = "42"
    view.feed(Event("tool", data=call))
    stream(view, "It is **42**.")
    view.finish(Reply(content="It is **42**.", model="m"))
    shown = front.visible()
    assert {"text/plain": "TOOL PRINTED"} in shown and printed
    final = shown[-1]
    assert final["text/markdown"] == "It is **42**." and final["text/plain"].startswith("It is")
    assert "<strong>42</strong>" in final["text/html"] and "Let me check" not in final["text/html"]
