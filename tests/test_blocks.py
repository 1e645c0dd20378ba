from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ipychat._blocks import BlockSplitter


def split(text: str, step: int = 0) -> list[str]:
    s = BlockSplitter()
    out = []
    if step:
        for i in range(0, len(text), step):
            out += s.feed(text[i : i + step])
    else:
        out += s.feed(text)
    return out + s.finish()


def test_paragraphs_split_at_blank_lines() -> None:
    assert split("one\n\ntwo\n\nthree") == ["one", "two", "three"]


def test_block_is_not_finished_until_the_next_one_begins() -> None:
    s = BlockSplitter()
    assert s.feed("one\n\n") == []
    assert s.feed("tw") == []  # a list could still continue: the line decides
    assert s.feed("o\n") == ["one"]
    assert s.tail == "two\n"


def test_fence_with_blank_lines_stays_one_block() -> None:
    text = "```python\na = 1\n\n\nb = 2\n```\n\nafter"
    assert split(text) == ["```python\na = 1\n\n\nb = 2\n```", "after"]


def test_tilde_fence_and_longer_closing_fence() -> None:
    assert split("~~~\nx\n\ny\n~~~~\n\nz") == ["~~~\nx\n\ny\n~~~~", "z"]


def test_fence_that_never_closes_is_the_tail() -> None:
    s = BlockSplitter()
    s.feed("intro\n\n```py\nx = 1\n\ny = 2\n")
    assert s.fence == "```"
    assert s.tail.startswith("```py")


def test_loose_list_stays_one_block() -> None:
    text = "- a\n\n- b\n\n  more b\n\n1. c\n\nafter"
    assert split(text) == ["- a\n\n- b\n\n  more b\n\n1. c", "after"]


def test_nested_list_stays_with_its_parent() -> None:
    text = "1. top\n   - nested\n\n   - nested two\n2. next\n\npara"
    assert split(text) == ["1. top\n   - nested\n\n   - nested two\n2. next", "para"]


def test_table_is_one_block() -> None:
    text = "| a | b |\n|---|---|\n| 1 | 2 |\n\nnext"
    assert split(text) == ["| a | b |\n|---|---|\n| 1 | 2 |", "next"]


def test_fence_inside_list_item_keeps_its_blank_lines() -> None:
    text = "- step:\n\n  ```sh\n  a\n\n  b\n  ```\n\ndone"
    assert split(text) == ["- step:\n\n  ```sh\n  a\n\n  b\n  ```", "done"]


def test_paragraph_after_list_without_indent_is_a_new_block() -> None:
    assert split("- a\n- b\n\nText") == ["- a\n- b", "Text"]


blocks = st.lists(
    st.sampled_from(
        [
            "para",
            "two\nlines",
            "- a\n- b",
            "- a\n\n- b",
            "```\nx\n\ny\n```",
            "| a |\n|---|\n| 1 |",
            "# Head",
            "1. one\n2. two",
        ]
    ),
    min_size=1,
    max_size=6,
)


@given(blocks, st.integers(1, 7))
def test_any_feed_size_gives_the_same_blocks(parts: list[str], step: int) -> None:
    text = "\n\n".join(parts)
    assert split(text, step) == split(text)
    assert "\n\n".join(split(text)) == text
