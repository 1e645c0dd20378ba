"""`{name}` and `{expr}` in a prompt, expanded from the user's namespace. Pure.

Prompts are full of braces that are not meant for us (code, JSON, LaTeX), so expansion is
conservative: only the text between single braces that parses as a Python expression and
evaluates is replaced; everything else stays exactly as written. Fenced code blocks and inline
code spans are never touched. `{{` and `}}` give literal braces.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import re
from typing import Any

__all__ = ["MAX_CHARS", "MAX_ROWS", "expand", "to_text"]

MAX_ROWS = 30  # a DataFrame shows its first rows as a markdown table ...
MAX_CHARS = 8_000  # ... and any one expansion is cut to this many characters

_CODE = re.compile(
    r"(^ {0,3}(`{3,}|~{3,})[^\n]*\n.*?(?:^ {0,3}\2[ \t]*$|\Z)|`+[^`\n]*`+)", re.M | re.S
)
_FIELD = re.compile(r"\{\{|\}\}|\{([^{}\n]+)\}")


def expand(text: str, namespace: dict[str, Any]) -> str:
    out = []
    pos = 0
    for match in _CODE.finditer(text):
        out.append(_expand_prose(text[pos : match.start()], namespace))
        out.append(match.group(0))
        pos = match.end()
    out.append(_expand_prose(text[pos:], namespace))
    return "".join(out)


def _expand_prose(text: str, namespace: dict[str, Any]) -> str:
    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        expr = match.group(1).strip()
        try:
            tree = ast.parse(expr, "<chat>", "eval")
        except SyntaxError:
            return token
        if not _names_the_users(tree, namespace):
            return token
        try:
            value = eval(compile(tree, "<chat>", "eval"), namespace)  # the user's own text
        except Exception:
            return token
        if callable(value) or inspect.ismodule(value):
            return token  # {print} in prose is not a request to paste <built-in function>
        return to_text(value)

    return _FIELD.sub(replace, text)


def _names_the_users(tree: ast.Expression, namespace: dict[str, Any]) -> bool:
    """Whether an expression is about the user's own variables: it names some, and nothing
    else but builtins (`{len(xs)}`). Constants ({10} in LaTeX), builtins alone ({len}) and
    comma lists ({x, 1}, prose's set or tuple notation) stay as written."""
    if isinstance(tree.body, ast.Tuple):
        return False
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    bound = {
        node.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)
    }
    names -= bound  # a comprehension's own variables
    own = {name for name in names if name in namespace}
    return bool(own) and all(name in own or hasattr(builtins, name) for name in names)


def to_text(value: Any) -> str:
    """A value as prompt text: DataFrames and Series as markdown tables, cut to a size."""
    kind = type(value).__module__.split(".")[0]
    if kind in ("pandas", "polars") and hasattr(value, "shape"):
        text = _table(value)
    else:
        text = value if isinstance(value, str) else repr(value)
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS] + f"\n… (cut at {MAX_CHARS:,} characters)"
    return text


def _table(frame: Any) -> str:
    if hasattr(frame, "to_frame") and not hasattr(frame, "columns"):
        frame = frame.to_frame()
    rows_total = frame.shape[0]
    head = frame.head(MAX_ROWS)
    if type(head).__module__.startswith("pandas"):
        header = [str(head.index.name or "")] + [str(c) for c in head.columns]
        pairs = zip(head.index, head.values, strict=True)
        rows = [[str(i)] + [_cell(v) for v in row] for i, row in pairs]
    else:  # polars: no index
        header = [str(c) for c in head.columns]
        rows = [[_cell(v) for v in row] for row in head.rows()]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    if rows_total > MAX_ROWS:
        lines.append(f"\n({MAX_ROWS} of {rows_total:,} rows shown)")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")
