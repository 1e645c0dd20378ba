from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from ipychat._messages import Reply, Usage
from ipychat._render import footer_text, reasoning_html, render_markdown, reply_bundle
from tests import xss_corpus
from tests.xss_payloads import PAYLOADS

BAD_TAGS = {
    "script",
    "iframe",
    "style",
    "form",
    "input",
    "button",
    "object",
    "embed",
    "meta",
    "link",
    "base",
    "textarea",
    "img",
    "svg",
    "math",
    "video",
    "source",
    "marquee",
    "body",
    "select",
    "option",
    "noscript",
}


class Checker(HTMLParser):
    """Collects every real tag and attribute, as a browser would parse them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in BAD_TAGS:
            self.problems.append(f"tag <{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"handler {name}")
            if name in ("href", "src", "action", "formaction", "srcdoc", "data"):
                scheme = re.sub(r"[\x00-\x20]", "", value or "").lower()
                if scheme.startswith(("javascript:", "vbscript:", "data:")) or name == "srcdoc":
                    self.problems.append(f"{name}={value}")
            if name == "style" and "url(" in (value or ""):
                self.problems.append("style url")


def problems(html: str) -> list[str]:
    checker = Checker()
    checker.feed(html)
    checker.close()
    return checker.problems


@pytest.mark.parametrize("payload", PAYLOADS)
def test_hostile_markdown_renders_inert(payload: str) -> None:
    assert problems(render_markdown(payload)) == []


@pytest.mark.parametrize("payload", PAYLOADS)
def test_hostile_reasoning_and_footer_render_inert(payload: str) -> None:
    reply = Reply(
        content=payload, reasoning=payload, model=payload, error=payload, status="incomplete"
    )
    assert problems(reply_bundle(reply)["text/html"]) == []


def test_checker_catches_a_real_handler() -> None:
    assert problems('<img src=x onerror="x()">') == ["tag <img>", "handler onerror"]


def test_payload_split_across_blocks_stays_inert() -> None:
    html = render_markdown("<scr\n\nipt>alert(1)</script>")
    assert "<script" not in html


def test_raw_html_shows_as_text() -> None:
    assert "&lt;b&gt;bold&lt;/b&gt;" in render_markdown("<b>bold</b>")


def test_safe_links_keep_href() -> None:
    assert 'href="https://example.com"' in render_markdown("[x](https://example.com)")


def test_images_become_links_not_loads() -> None:
    html = render_markdown("![cat](https://example.com/cat.png)")
    assert "<img" not in html and 'href="https://example.com/cat.png"' in html


def test_fenced_code_is_highlighted_with_theme_variables() -> None:
    html = render_markdown("```python\ndef f():\n    return 1\n```")
    assert "var(--jp-mirror-editor-keyword-color" in html
    assert "def" in html and "<pre" in html


def test_unknown_language_is_plain_escaped() -> None:
    html = render_markdown("```nolang\n<b>x</b>\n```")
    assert "&lt;b&gt;" in html and "<span" not in html


def test_tables_lists_and_inline_code_render() -> None:
    html = render_markdown("| a |\n|---|\n| 1 |\n\n- x\n- y\n\nuse `f()`")
    assert "<table>" in html and "<li>x</li>" in html and "<code>f()</code>" in html


def test_bundle_has_html_markdown_and_plain() -> None:
    bundle = reply_bundle(Reply(content="**hi**", reasoning="hmm", model="m"))
    assert set(bundle) == {"text/html", "text/markdown", "text/plain"}
    assert bundle["text/markdown"] == "**hi**"
    assert "hmm" not in bundle["text/markdown"] and "hmm" not in bundle["text/plain"]
    assert "<strong>hi</strong>" in bundle["text/html"]
    assert "<details" in bundle["text/html"] and " open" not in bundle["text/html"]


def test_reasoning_panel_open_while_streaming_with_summary() -> None:
    html = reasoning_html("thinking", open_=True, seconds=1.5, tokens=12)
    assert "<details" in html and " open" in html and "Reasoning · 12 tokens · 1.5 s" in html


def test_footer_fields() -> None:
    reply = Reply(
        content="x",
        model="gpt",
        ttft=0.25,
        elapsed=2.25,
        usage=Usage(100, 40, 140, cached_tokens=60, reasoning_tokens=10, cost=0.0021),
    )
    text = footer_text(reply)
    for part in [
        "gpt",
        "100 in (60 cached)",
        "40 out (10 reasoning)",
        "$0.0021",
        "first token 0.25 s",
        "20 tok/s",
    ]:
        assert part in text


def test_footer_says_when_cut_at_max_tokens() -> None:
    assert "cut at max tokens" in footer_text(Reply(content="x", finish_reason="length"))


def test_footer_says_content_filter_and_interrupted() -> None:
    assert "content filter" in footer_text(Reply(finish_reason="content_filter"))
    assert "interrupted" in footer_text(Reply(status="interrupted"))


def test_reply_repr_mimebundle() -> None:
    assert Reply(content="a")._repr_mimebundle_()["text/plain"] == "a"


CORPUS = xss_corpus.load()
corpus_case = pytest.mark.skipif(
    not CORPUS, reason=f"the XSS corpus is not here ({xss_corpus.CORPUS})"
)


@corpus_case
@pytest.mark.parametrize("case", CORPUS, ids=[c["id"] for c in CORPUS])
def test_corpus_answer_renders_inert_on_every_static_path(case) -> None:
    payload = case["payload"]
    assert problems(render_markdown(payload)) == [], case["source"]
    reply = Reply(content=payload, reasoning=payload, model="m", error=payload, status="incomplete")
    assert problems(reply_bundle(reply)["text/html"]) == [], case["source"]


@pytest.mark.parametrize(
    ("dollars", "shown"),
    [(0.00032, "$0.00032"), (0.0000041, "$0.0000041"), (0.0021, "$0.0021"), (0.5, "$0.50"),
     (1.234, "$1.23"), (0, "$0")],
)  # fmt: skip
def test_costs_show_two_significant_digits(dollars, shown) -> None:
    from ipychat._render import money

    assert money(dollars) == shown
    reply = Reply(content="x", model="m", usage=Usage(1, 1, 2, cost=dollars))
    assert shown in footer_text(reply)


def test_a_refusal_is_shown_as_the_answer_and_marked() -> None:
    reply = Reply(content="", refusal="I can't help with that.", model="m", finish_reason="stop")
    bundle = reply_bundle(reply)
    assert "I can&#x27;t help with that." in bundle["text/html"] or "I can't" in bundle["text/html"]
    assert bundle["text/markdown"] == "I can't help with that."
    assert (
        "the model refused" in bundle["text/plain"] and "the model refused" in bundle["text/html"]
    )
