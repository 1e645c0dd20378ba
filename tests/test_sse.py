from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ipychat._sse import SSEDecoder, SSEEvent


def decode(*chunks: bytes) -> list[SSEEvent]:
    decoder = SSEDecoder()
    out = []
    for c in chunks:
        out += decoder.feed(c)
    return out + decoder.flush()


def test_lf_events() -> None:
    assert decode(b"data: a\n\ndata: b\n\n") == [SSEEvent("a"), SSEEvent("b")]


def test_crlf_events() -> None:
    assert decode(b"data: a\r\n\r\ndata: b\r\n\r\n") == [SSEEvent("a"), SSEEvent("b")]


def test_cr_only_line_ends() -> None:
    assert decode(b"data: a\r\rdata: b\r\r") == [SSEEvent("a"), SSEEvent("b")]


def test_crlf_split_between_reads() -> None:
    assert decode(b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n") == [SSEEvent("a"), SSEEvent("b")]


def test_comment_lines_are_ignored() -> None:
    assert decode(b": keep-alive\n\ndata: x\n\n: OPENROUTER PROCESSING\n\n") == [SSEEvent("x")]


def test_event_split_at_every_byte() -> None:
    body = b'data: {"a": 1}\n\ndata: [DONE]\n\n'
    assert decode(*[body[i : i + 1] for i in range(len(body))]) == [
        SSEEvent('{"a": 1}'),
        SSEEvent("[DONE]"),
    ]


def test_utf8_character_split_across_reads() -> None:
    body = "data: héllo ✓\n\n".encode()
    cut = body.index("✓".encode()) + 1
    assert decode(body[:cut], body[cut:]) == [SSEEvent("héllo ✓")]


def test_multiline_data_joined_with_newline() -> None:
    assert decode(b"data: a\ndata: b\n\n") == [SSEEvent("a\nb")]


def test_data_without_space_after_colon() -> None:
    assert decode(b"data:{}\n\n") == [SSEEvent("{}")]


def test_event_and_id_fields() -> None:
    assert decode(b"event: error\nid: 7\ndata: x\n\n") == [SSEEvent("x", "error", "7")]


def test_stream_ending_without_blank_line_still_yields_last_event() -> None:
    assert decode(b"data: a\n\ndata: b") == [SSEEvent("a"), SSEEvent("b")]


def test_unicode_line_separator_is_not_a_line_break() -> None:
    assert decode("data: a\u2028b\n\n".encode()) == [SSEEvent("a\u2028b")]


def test_blank_lines_without_data_dispatch_nothing() -> None:
    assert decode(b"\n\n\n") == []


payloads = st.lists(
    st.text(
        alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]),
        max_size=20,
    ),
    min_size=1,
    max_size=8,
)


@given(payloads, st.sampled_from([b"\n", b"\r\n", b"\r"]), st.data())
def test_any_split_of_a_valid_stream_gives_the_same_events(
    items: list[str], newline: bytes, data: st.DataObject
) -> None:
    body = b"".join(b"data: " + s.encode() + newline + newline for s in items)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=10)))
    chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    expected = [SSEEvent(s) for s in items]  # exactly one space after "data:" is stripped
    assert decode(*chunks) == expected
