from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipychat import StreamError
from ipychat._accumulate import Accumulator
from ipychat._tags import ThinkSplitter
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


# Qwen2.5's own chat template asks for tool calls in this form; llama-cpp-python passes it on.
QWEN_CALL = (
    'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
    "</tool_call>"
)


def _tagged(text: str, cuts: list[int], finish: str = "stop") -> tuple[Accumulator, str]:
    acc = Accumulator(tool_tags=frozenset({"get_weather"}))
    shown = []
    points = [0, *sorted(set(cuts)), len(text)]
    for a, b in itertools.pairwise(points):
        for _kind, piece in acc.feed(
            {"model": "m", "choices": [{"delta": {"content": text[a:b]}}]}
        ):
            shown.append(piece)
    acc.feed({"choices": [{"delta": {}, "finish_reason": finish}]})
    shown.extend(piece for _, piece in acc.flush())
    return acc, "".join(shown)


@given(st.lists(st.integers(min_value=1, max_value=len(QWEN_CALL) - 1), max_size=8))
def test_tool_call_tags_become_tool_calls_wherever_the_deltas_cut(cuts) -> None:
    acc, shown = _tagged(QWEN_CALL, cuts)
    reply = acc.reply()
    assert shown == reply.content == "Let me check.\n"
    assert reply.finish_reason == "tool_calls"
    [call] = reply.tool_calls
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert call["id"] == "call_0" and call["type"] == "function"


def test_two_tagged_calls_get_their_own_ids() -> None:
    acc, _ = _tagged(QWEN_CALL + "\n" + QWEN_CALL.replace("Paris", "Oslo"), [])
    assert [c["id"] for c in acc.reply().tool_calls] == ["call_0", "call_1"]


def test_an_unclosed_tag_at_the_end_is_still_a_call_if_its_json_is_whole() -> None:
    acc, shown = _tagged('<tool_call>\n{"name": "f", "arguments": {}}\n', [5])
    assert shown == "" and acc.reply().tool_calls[0]["function"]["name"] == "f"


def test_a_tag_whose_json_does_not_parse_stays_visible() -> None:
    text = "<tool_call>not json</tool_call> after"
    acc, shown = _tagged(text, [3, 15])
    assert shown == text and acc.reply().tool_calls == []
    assert acc.reply().finish_reason == "stop"


def test_without_tools_the_tag_is_just_text() -> None:
    acc = Accumulator()
    acc.feed({"model": "m", "choices": [{"delta": {"content": QWEN_CALL}}]})
    assert acc.reply().content == QWEN_CALL and acc.reply().tool_calls == []


def test_markup_that_only_looks_like_the_tag_is_kept() -> None:
    acc, shown = _tagged("a <tool_cal> b <tool", [4])
    assert shown == "a <tool_cal> b <tool" and not acc.reply().tool_calls


def test_an_answer_that_is_only_a_fenced_json_call_of_an_offered_tool_is_a_call() -> None:
    # What Qwen2.5-Coder-0.5B answered to "What is the weather in Paris?" with tools offered.
    text = (
        '```json\n{\n  "name": "get_weather",\n  "arguments": {\n    "city": "Paris"\n  }\n}\n```'
    )
    acc, _ = _tagged(text, [7])
    reply = acc.reply()
    assert reply.content == "" and reply.finish_reason == "tool_calls"
    assert reply.tool_calls[0]["function"]["arguments"] == '{"city": "Paris"}'


def test_json_that_names_no_offered_tool_stays_an_answer() -> None:
    text = '```json\n{"name": "Ada", "arguments": []}\n```'
    acc, shown = _tagged(text, [])
    assert shown == text and acc.reply().tool_calls == []


def test_json_with_prose_around_it_stays_an_answer() -> None:
    text = 'Call it like this: {"name": "get_weather", "arguments": {"city": "Oslo"}}'
    acc, _ = _tagged(text, [])
    assert acc.reply().content == text and acc.reply().tool_calls == []
