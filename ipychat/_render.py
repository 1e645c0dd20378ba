"""Markdown → safe HTML, and the pieces of a reply's output (reasoning panel, footer, bundle).

Model output is untrusted. Python-Markdown runs with its raw-HTML handling removed, so any tag
in the text comes out escaped, as text; the result then goes through nh3 (the ammonia sanitizer)
with a small allow-list, which also drops `javascript:`/`data:` links. Images in model markdown
become links: loading them would let injected text send data to any server. Code is highlighted
after sanitizing, from the escaped text, into spans whose colours are the front end's CSS
variables, so light and dark themes both read well.
"""

from __future__ import annotations

import html
import math
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ._errors import clip

if TYPE_CHECKING:
    from ._messages import Reply

__all__ = ["footer_text", "reasoning_html", "render_code", "render_markdown", "reply_bundle"]

_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "code",
    "del",
    "details",
    "div",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "kbd",
    "li",
    "ol",
    "p",
    "pre",
    "s",
    "span",
    "strong",
    "sub",
    "summary",
    "sup",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
}
_ATTRS = {
    "a": {"href", "title"},
    "code": {"class"},
    "td": {"align", "style"},
    "th": {"align", "style"},
    "ol": {"start"},
}
_IMG = re.compile(r'<img alt="([^"]*)" src="([^"]*)"(?: title="[^"]*")? ?/?>')
_CODE = re.compile(r'<pre><code(?: class="language-([\w+#.-]+)")?>(.*?)</code></pre>', re.S)

WRAP = (
    '<div class="ipychat-reply" style="color: var(--jp-content-font-color1, inherit); '
    'line-height: 1.5">{}</div>'
)
# The <code> inside is made transparent: JupyterLab gives inline code a background and padding
# of its own, which inside a <pre> painted a strip behind every line.
PRE = (
    '<pre style="background: var(--jp-layout-color2, rgba(127,127,127,.12)); '
    'padding: 6px 8px; border-radius: 4px; overflow-x: auto">'
    '<code style="background: transparent; padding: 0; border: 0">{}</code></pre>'
)

# The same look in fewer bytes: the live tail is re-sent many times.
TAIL_PRE = '<pre style="background:var(--jp-layout-color2,#8881);padding:6px 8px">{}</pre>'


@lru_cache(maxsize=1)
def _markdown() -> Any:
    import markdown

    md = markdown.Markdown(extensions=["fenced_code", "tables", "sane_lists"])
    md.preprocessors.deregister("html_block")
    md.inlinePatterns.deregister("html")
    return md


def render_markdown(text: str, *, highlight: bool = True) -> str:
    """Safe HTML for one piece of model markdown (no wrapper)."""
    import nh3

    md = _markdown()
    md.reset()
    out = md.convert(text)
    out = _IMG.sub(lambda m: f'<a href="{m.group(2)}">[image: {m.group(1)}]</a>', out)
    out = nh3.clean(
        out,
        tags=_TAGS,
        attributes=_ATTRS,
        url_schemes={"http", "https", "mailto"},
        attribute_filter=_no_hidden_scheme,
    )
    return _CODE.sub(_highlight_match if highlight else _plain_match, out)


_SPACE = re.compile(r"[\x00-\x20\x7f]+")
_BAD_SCHEMES = ("javascript:", "vbscript:", "data:", "file:")


_ALIGN = re.compile(r"text-align: (left|right|center);?")


def _no_hidden_scheme(element: str, attribute: str, value: str) -> str | None:
    """A link whose scheme is only split by spaces, tabs or line breaks (`java\tscript:`, which
    markdown turns into spaces) is dropped: browsers remove some of them before parsing. The
    only style kept is a table cell's alignment, as markdown writes it."""
    if attribute in ("href", "src") and _SPACE.sub("", value).lower().startswith(_BAD_SCHEMES):
        return None
    if attribute == "style":
        return value if element in ("td", "th") and _ALIGN.fullmatch(value.strip()) else None
    return value


def _highlight_match(match: re.Match[str]) -> str:
    return render_code(html.unescape(match.group(2)), match.group(1))


def _plain_match(match: re.Match[str]) -> str:
    return PRE.format(match.group(2))


# Pygments token type -> (JupyterLab CSS variable, fallback colour)
_COLOURS = {
    "Keyword": ("--jp-mirror-editor-keyword-color", "#008000"),
    "Name.Builtin": ("--jp-mirror-editor-builtin-color", "#008000"),
    "Name.Function": ("--jp-mirror-editor-def-color", "#0000ff"),
    "Name.Class": ("--jp-mirror-editor-def-color", "#0000ff"),
    "Name.Decorator": ("--jp-mirror-editor-meta-color", "#aa22ff"),
    "Literal.String": ("--jp-mirror-editor-string-color", "#ba2121"),
    "Literal.Number": ("--jp-mirror-editor-number-color", "#080"),
    "Comment": ("--jp-mirror-editor-comment-color", "#408080"),
    "Operator": ("--jp-mirror-editor-operator-color", "#aa22ff"),
}


@lru_cache(maxsize=256)
def _style_for(token: Any) -> str | None:
    while token is not None and len(token):
        spec = _COLOURS.get(".".join(token))
        if spec:
            return f"color: var({spec[0]}, {spec[1]})"
        token = token.parent
    return None


def render_code(code: str, language: str | None = None) -> str:
    """A highlighted `<pre>`; unknown languages stay plain, escaped text."""
    lexer = _lexer(language) if language else None
    if lexer is None:
        return PRE.format(html.escape(code))
    parts = []
    run_style: str | None = None
    run: list[str] = []
    for token, value in lexer.get_tokens(code):
        style = _style_for(token) if value.strip() else run_style
        if style != run_style and run:
            parts.append(_span(run_style, "".join(run)))
            run = []
        run_style = style
        run.append(value)
    if run:
        parts.append(_span(run_style, "".join(run)))
    body = "".join(parts)
    if body.endswith("\n") and not code.endswith("\n"):
        body = body[:-1]
    return PRE.format(body)


def _span(style: str | None, text: str) -> str:
    text = html.escape(text)
    return f'<span style="{style}">{text}</span>' if style else text


@lru_cache(maxsize=64)
def _lexer(language: str) -> Any:
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound

    try:
        return get_lexer_by_name(language, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None


_INLINE = re.compile(r"`([^`\n]+)`|\*\*([^*\n]+)\*\*")
_FENCE_LINE = re.compile(r"^\s*(`{3,}|~{3,})")
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")


def _inline(line: str) -> str:
    def sub(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            return f"<code>{match.group(1)}</code>"
        return f"<strong>{match.group(2)}</strong>"

    heading = _HEADING.match(line)
    if heading:
        level = len(heading.group(1))
        return f"<h{level}>{_INLINE.sub(sub, html.escape(heading.group(2)))}</h{level}>"
    return _INLINE.sub(sub, html.escape(line)) + "\n"


def render_tail(text: str) -> str:
    """A cheap preview of the unfinished block while it streams: escaped text with code spans,
    bold and headings, and code fences as plain `<pre>`; no Markdown parser, no highlighting.
    (It is replaced by the real rendering as soon as the block is finished.)"""
    out: list[str] = []
    code: list[str] | None = None
    for line in text.split("\n"):
        if _FENCE_LINE.match(line):
            if code is None:
                code = []
            else:
                out.append(TAIL_PRE.format(html.escape("\n".join(code))))
                code = None
        elif code is not None:
            code.append(line)
        else:
            out.append(_inline(line))
    if code is not None:
        out.append(TAIL_PRE.format(html.escape("\n".join(code))))
    return f'<div style="white-space:pre-wrap">{"".join(out).rstrip()}</div>'


def reasoning_html(text: str, *, open_: bool, seconds: float | None, tokens: int | None) -> str:
    summary = "Reasoning"
    if tokens:
        summary += f" · {tokens:,} tokens"
    else:
        summary += f" · {len(text):,} chars"
    if seconds is not None:
        summary += f" · {seconds:.1f} s"
    return (
        f'<details class="ipychat-reasoning"{" open" if open_ else ""} style="margin-bottom: 6px;'
        ' color: var(--jp-content-font-color2, #666)">'
        f'<summary style="cursor: pointer">{html.escape(summary)}</summary>'
        '<div style="white-space: pre-wrap; font-size: 0.92em; border-left: 2px solid '
        f'var(--jp-border-color2, #ccc); padding-left: 8px">{html.escape(text)}</div></details>'
    )


def money(dollars: float) -> str:
    """Two significant digits under a dollar ($0.00032, not $0.0003 or $0.0000), cents above."""
    if not math.isfinite(dollars):
        return "cost unknown"
    if dollars == 0:
        return "$0"
    if abs(dollars) >= 1:
        return f"${dollars:,.2f}"
    return f"${float(f'{dollars:.2g}'):.{max(2, -math.floor(math.log10(abs(dollars))) + 1)}f}"


def footer_text(reply: Reply) -> str:
    """One line: model, tokens, cost, time to first token, speed, and how it ended."""
    items = [reply.model or "?"]
    usage = reply.usage
    if usage:
        tokens = f"{usage.prompt_tokens:,} in"
        if usage.cached_tokens:
            tokens += f" ({usage.cached_tokens:,} cached)"
        tokens += f" · {usage.completion_tokens:,} out"
        if usage.reasoning_tokens:
            tokens += f" ({usage.reasoning_tokens:,} reasoning)"
        items.append(tokens)
        if usage.cost is not None:
            items.append(money(usage.cost))
    elif reply.deltas:
        items.append(f"~{reply.deltas:,} tokens out (no usage reported)")
    if reply.ttft is not None:
        items.append(f"first token {reply.ttft:.2f} s")
    speed = reply.tokens_per_second
    if speed:
        items.append(f"{speed:.0f} tok/s")
    elif reply.elapsed is not None:
        items.append(f"{reply.elapsed:.1f} s")
    note = status_note(reply)
    if note:
        items.append(note)
    return " · ".join(items)


def status_note(reply: Reply) -> str | None:
    if reply.status == "interrupted":
        return "■ stopped" if reply.error == "stopped" else "■ interrupted"
    if reply.status == "incomplete":
        return f"⚠ incomplete: {reply.error or 'the stream broke'}"
    if reply.finish_reason == "length":
        return "✂ cut at max tokens"
    if reply.finish_reason == "content_filter":
        return "⚠ stopped by the provider's content filter"
    if reply.refusal and not reply.content:
        return "⊘ the model refused"
    if reply.error:
        return f"⚠ {reply.error}"
    return None


def tool_html(call: Any) -> str:
    """A collapsible panel for one tool call: name, arguments, duration, a result preview."""
    import json

    if call.result is None:
        state = "running…"
    elif not call.approved:
        state = "declined" + (f" ({call.extra['note']})" if call.extra.get("note") else "")
    else:
        state = ("✗ error" if call.error else "✓") + f" · {call.duration:.2f} s"
    try:
        args = json.dumps(json.loads(call.arguments or "{}"), indent=1, ensure_ascii=False)
    except ValueError:
        args = call.arguments
    short = " ".join(args.split())
    short = short if len(short) <= 60 else short[:57] + "..."
    result = call.result or ""
    preview = result if len(result) <= 2000 else result[:2000] + "…"
    return (
        '<details class="ipychat-tool" style="margin: 4px 0; color: '
        'var(--jp-content-font-color2, #666)"><summary style="cursor: pointer">'
        f"⚙ {html.escape(call.name)}({html.escape(short)}) · {html.escape(state)}</summary>"
        f"<div>arguments</div>{PRE.format(html.escape(args))}"
        f"<div>result</div>{PRE.format(html.escape(preview))}</details>"
    )


def footer_html(reply: Reply) -> str:
    return (
        '<div class="ipychat-footer" style="margin-top: 6px; font-size: 0.85em; '
        f'color: var(--jp-content-font-color3, #888)">{html.escape(footer_text(reply))}</div>'
    )


def answer_text(reply: Reply) -> str:
    """What is shown as the answer: the content, or the refusal in its place (marked by the
    footer's note)."""
    return reply.content or reply.refusal or ""


def reply_html(reply: Reply, answer_html: str | None = None) -> str:
    parts = []
    if reply.reasoning:
        tokens = reply.usage.reasoning_tokens if reply.usage else None
        parts.append(
            reasoning_html(
                reply.reasoning, open_=False, seconds=reply.reasoning_time, tokens=tokens
            )
        )
    parts.extend(tool_html(call) for call in reply.tool_runs)
    if answer_html is None:
        from ._blocks import whole_blocks

        answer_html = render_markdown(whole_blocks(answer_text(reply)))
    parts.append(answer_html)
    parts.append(footer_html(reply))
    return WRAP.format("".join(parts))


def turn_html(turn: Any) -> str:
    """A finished turn for a transcript: the user's message, tool panels, the answer, a footer
    line from the saved metadata (works for threads loaded from disk too)."""
    from ._messages import message_text

    user = html.escape(message_text(turn.user.get("content")))
    parts = [
        f'<p style="margin: 8px 0 4px"><b>You</b>: <span style="white-space: pre-wrap">'
        f"{user}</span></p>"
    ]
    meta = turn.meta
    if meta.get("reasoning"):
        parts.append(reasoning_html(meta["reasoning"], open_=False, seconds=None, tokens=None))
    for call in meta.get("tools") or []:
        parts.append(
            f'<div style="opacity: 0.7">⚙ {html.escape(str(call.get("name")))}'
            f"({html.escape(clip(str(call.get('arguments')), 80))})</div>"
        )
    answer = turn.replies[-1].get("content") if turn.replies else ""
    parts.append(render_markdown(answer if isinstance(answer, str) else ""))
    usage = meta.get("usage") or {}
    line = [str(meta.get("model") or "?")]
    if usage:
        line.append(
            f"{usage.get('prompt_tokens', 0):,} in · {usage.get('completion_tokens', 0):,} out"
        )
    if meta.get("status", "complete") != "complete":
        line.append(
            "■ stopped"
            if meta.get("error") in ("stopped", "interrupted")
            else f"⚠ {meta.get('error') or meta['status']}"
        )
    parts.append(
        '<div style="font-size: 0.85em; color: var(--jp-content-font-color3, #888)">'
        f"{html.escape(' · '.join(line))}</div>"
    )
    return "".join(parts)


def reply_bundle(reply: Reply, answer_html: str | None = None) -> dict[str, Any]:
    """The final output: rendered HTML, the raw answer as markdown, and plain text."""
    plain = answer = answer_text(reply)
    note = status_note(reply)
    if note:
        plain += f"\n[{note}]"
    from ._display import inert

    plain = inert(plain)  # what terminal IPython prints
    return {
        "text/html": reply_html(reply, answer_html),
        "text/markdown": answer,
        "text/plain": plain,
    }
