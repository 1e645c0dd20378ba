"""A long, realistic markdown answer: prose, lists, tables and fenced code, from a seed.

`make_answer()` gives ~80 KB with 31 code fences and 13 tables, the shape the rendering issue
measured; it is generated, not hand-picked, so the benchmark can be re-run at other sizes.
"""

from __future__ import annotations

import random

WORDS = (
    "data frame column index model kernel notebook stream token value vector matrix plot "
    "function result cache memory request answer query table series group merge filter "
    "sort window rolling mean median sample batch epoch loss metric feature label split"
).split()


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 18))]
    if rng.random() < 0.3:
        words[rng.randrange(len(words))] = f"`{rng.choice(WORDS)}()`"
    if rng.random() < 0.2:
        words[rng.randrange(len(words))] = f"**{rng.choice(WORDS)}**"
    return " ".join(words).capitalize() + "."


def _paragraph(rng: random.Random) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(2, 5)))


def _code(rng: random.Random) -> str:
    lines = ["```python", f"def {rng.choice(WORDS)}_{rng.randint(1, 99)}(df, n=10):"]
    lines.append('    """' + _sentence(rng) + '"""')
    for _ in range(rng.randint(6, 22)):
        a, b = rng.choice(WORDS), rng.choice(WORDS)
        lines.append(
            f"    {a} = df[{b!r}].{rng.choice(['sum', 'mean', 'max'])}() * {rng.randint(1, 9)}"
        )
        if rng.random() < 0.15:
            lines.append("")
    lines += ["    return df", "```"]
    return "\n".join(lines)


def _table(rng: random.Random) -> str:
    cols = rng.sample(WORDS, rng.randint(3, 5))
    rows = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _ in range(rng.randint(4, 9)):
        rows.append("| " + " | ".join(f"{rng.random() * 100:.2f}" for _ in cols) + " |")
    return "\n".join(rows)


def _list(rng: random.Random) -> str:
    marker = rng.choice(["-", "1."])
    return "\n".join(f"{marker} {_sentence(rng)}" for _ in range(rng.randint(3, 6)))


def make_answer(size: int = 80_000, fences: int = 31, tables: int = 13, seed: int = 7) -> str:
    rng = random.Random(seed)
    kinds = ["code"] * fences + ["table"] * tables
    rng.shuffle(kinds)
    blocks = [f"# {_sentence(rng)}"]
    while kinds:
        blocks.append(_paragraph(rng))
        if rng.random() < 0.4:
            blocks.append(_list(rng))
        blocks.append(_code(rng) if kinds.pop() == "code" else _table(rng))
        if rng.random() < 0.3:
            blocks.append(f"## {_sentence(rng)}")
    text = "\n\n".join(blocks)
    while len(text) < size:
        text += "\n\n" + _paragraph(rng)
    return text


def deltas(text: str, size: int = 4) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]
