"""`%chat what is a monad?`: a one-line question may end in a question mark.

IPython reads a trailing `?` as a help request (`%chat?` shows the magic's help), and its help
transformer runs on tokens, after the cleanup transformers. So this cleanup transformer turns
such a line into the call IPython itself would make for the magic, before the help
transformer can see the `?`. `%chat?` and `%chat??` alone are left to IPython's help.
"""

from __future__ import annotations

import re

__all__ = ["keep_questions"]

_QUESTION = re.compile(r"^(\s*)%chat\s+(\S.*\?)\s*$")


def keep_questions(lines: list[str]) -> list[str]:
    """Only a cell that is that one line: elsewhere such a line may be a cell magic's body or
    inside a string, and is not ours to rewrite."""
    filled = [i for i, line in enumerate(lines) if line.strip()]
    if len(filled) != 1:
        return lines
    line = lines[filled[0]]
    match = _QUESTION.match(line.rstrip("\n"))
    if match is None or not match.group(2).strip("?").strip():
        return lines
    indent, text = match.groups()
    end = "\n" if line.endswith("\n") else ""
    out = list(lines)
    out[filled[0]] = f"{indent}get_ipython().run_line_magic('chat', {text!r}){end}"
    return out
