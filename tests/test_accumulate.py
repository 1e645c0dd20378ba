from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipychat import StreamError
from ipychat._accumulate import Accumulator, ThinkSplitter
from tests.fakeprovider import chunk


def feed_all(*chunks: dict) -> Accumulator:
    acc = Accumulator()
    for c in chunks:
        acc.feed(c)
    acc.flush()
    return acc


def test_content_deltas_join() -> None:
    acc = feed_all(chunk("Hel"), chunk("lo"), chunk(finish="stop"))
    reply = acc.reply()
    assert (reply.content, reply.finish_reason) == ("Hello", "stop")


def test_reasoning_content_field_goes_to_reasoning() -> None:
    reply = feed_all(chunk(reasoning="think"), chunk("answer")).reply()
    assert (reply.reasoning, reply.content) == ("think", "answer")


def test_reasoning_field_of_openrouter_goes_to_reasoning() -> None:
    reply = feed_all(chunk(reasoning="r", field_name="reasoning"), chunk("a")).reply()
    assert (reply.reasoning, reply.content) == ("r", "a")


def test_think_tags_split_across_chunks() -> None:
    parts = ["<th", "ink>pla", "n</thi", "nk>\n\nThe answer"]
    reply = feed_all(*[chunk(p) for p in parts]).reply()
    assert (reply.reasoning, reply.content) == ("plan", "The answer")


def test_text_that_only_starts_like_think_is_content() -> None:
    reply = feed_all(chunk("<th"), chunk("is is html")).reply()
    assert (reply.reasoning, reply.content) == ("", "<this is html")


def test_unclosed_think_is_all_reasoning() -> None:
    reply = feed_all(chunk("<think>still thinking</"), chunk("th")).reply()
    assert (reply.reasoning, reply.content) == ("still thinking</th", "")


def test_usage_only_final_chunk_with_empty_choices() -> None:
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 3,
        "total_tokens": 13,
        "prompt_tokens_details": {"cached_tokens": 8},
        "completion_tokens_details": {"reasoning_tokens": 2},
        "cost": 0.0012,
    }
    reply = feed_all(chunk("x"), chunk(usage=usage, choices=False)).reply()
    u = reply.usage
    assert (u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.reasoning_tokens) == (
        10,
        3,
        8,
        2,
    )
    assert reply.cost == 0.0012


def test_deepseek_prompt_cache_hit_tokens() -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 3, "prompt_cache_hit_tokens": 6}
    assert feed_all(chunk(usage=usage, choices=False)).reply().usage.cached_tokens == 6


def test_cost_from_meta_usage_usd_spent() -> None:
    c = chunk(
        usage={"prompt_tokens": 1, "completion_tokens": 1},
        choices=False,
        extra={"meta": {"usage": {"usd_spent": 0.5}}},
    )
    assert feed_all(c).reply().cost == 0.5


def test_tool_call_arguments_accumulate_across_chunks() -> None:
    first = [
        {
            "index": 0,
            "id": "call_1",
            "type": "function",
            "function": {"name": "lookup", "arguments": '{"q"'},
        }
    ]
    second = [{"index": 0, "function": {"arguments": ': "x"}'}}]
    third = [{"index": 1, "id": "call_2", "function": {"name": "other", "arguments": "{}"}}]
    reply = feed_all(
        chunk(tool_calls=first),
        chunk(tool_calls=second),
        chunk(tool_calls=third),
        chunk(finish="tool_calls"),
    ).reply()
    assert [c["function"]["name"] for c in reply.tool_calls] == ["lookup", "other"]
    assert reply.tool_calls[0]["function"]["arguments"] == '{"q": "x"}'
    assert reply.tool_calls[0]["id"] == "call_1"
    assert reply.finish_reason == "tool_calls"


def test_error_object_mid_stream_raises_stream_error() -> None:
    acc = Accumulator()
    acc.feed(chunk("partial"))
    with pytest.raises(StreamError, match="overloaded"):
        acc.feed({"error": {"message": "overloaded", "code": 529}})
    assert acc.reply().content == "partial"


def test_non_streamed_message_is_read_like_a_delta() -> None:
    body = {
        "model": "m",
        "choices": [
            {
                "index": 0,
                "finish_reason": "length",
                "message": {"role": "assistant", "content": "hi", "reasoning_content": "r"},
            }
        ],
    }
    reply = feed_all(body).reply()
    assert (reply.content, reply.reasoning, reply.finish_reason, reply.model) == (
        "hi",
        "r",
        "length",
        "m",
    )


@given(st.text(max_size=60), st.text(max_size=60), st.data())
def test_think_splitter_any_split_keeps_reasoning_and_answer(
    thought: str, answer: str, data: st.DataObject
) -> None:
    thought = thought.replace("</think>", "")
    answer = answer.lstrip().lstrip("\n")
    if answer.startswith("<"):
        answer = "x" + answer
    text = f"<think>{thought}</think>{answer}"
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=8)))
    splitter = ThinkSplitter()
    pieces = []
    for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True):
        pieces += splitter.feed(text[a:b])
    pieces += splitter.flush()
    reasoning = "".join(t for k, t in pieces if k == "reasoning")
    content = "".join(t for k, t in pieces if k == "content")
    assert reasoning == thought.lstrip("\n")
    assert content == answer


@given(st.lists(st.text(max_size=10), max_size=20))
def test_accumulator_content_is_the_concatenation_of_deltas(deltas: list[str]) -> None:
    if "".join(deltas).lstrip().startswith("<"):
        return
    acc = feed_all(*[chunk(d) for d in deltas])
    assert acc.reply().content == "".join(deltas)


def test_feed_many_joins_what_arrives_together() -> None:
    acc = Accumulator()
    pieces = acc.feed_many(
        [
            chunk("", model="m"),
            chunk(reasoning="r1"),
            chunk(reasoning="r2"),
            chunk("a"),
            chunk("b"),
            chunk(finish="stop"),
        ]
    )
    assert pieces == [("reasoning", "r1r2"), ("content", "ab")]
    assert acc.reply().content == "ab" and acc.finish_reason == "stop"


@given(
    st.lists(
        st.tuples(st.sampled_from(["content", "reasoning", "finish"]), st.text(max_size=5)),
        max_size=25,
    ),
    st.integers(1, 6),
)
def test_feed_many_in_any_batches_equals_one_by_one(items, size) -> None:
    chunks = [chunk("", model="m")]
    for kind, text in items:
        if kind == "content":
            chunks.append(chunk("x" + text))
        elif kind == "reasoning":
            chunks.append(chunk(reasoning=text))
        else:
            chunks.append(chunk(finish="stop"))
    one = Accumulator()
    singles = [p for c in chunks for p in one.feed(c)]
    many = Accumulator()
    batched = [p for i in range(0, len(chunks), size) for p in many.feed_many(chunks[i : i + size])]
    assert one.reply() == many.reply()
    join = lambda ps, k: "".join(t for kind, t in ps if kind == k)  # noqa: E731
    assert join(singles, "content") == join(batched, "content")
    assert join(singles, "reasoning") == join(batched, "reasoning")
