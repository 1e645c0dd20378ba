from __future__ import annotations

import pandas as pd

from ipychat._interpolate import MAX_CHARS, MAX_ROWS, expand

NS = {"name": "Ada", "n": 3, "items": [1, 2], "df": pd.DataFrame({"a": range(100), "b": "x"})}


def test_names_and_expressions_expand() -> None:
    assert expand("Hi {name}, {n * 2} and {items[0]}", NS) == "Hi Ada, 6 and 1"


def test_what_does_not_evaluate_stays_literal() -> None:
    assert expand("{missing} {1/0} {not python!}", NS) == "{missing} {1/0} {not python!}"


def test_double_braces_escape() -> None:
    assert expand("{{name}} is {name}", NS) == "{name} is Ada"


def test_json_and_dict_literals_in_prose_stay_as_written() -> None:
    text = 'Send {"a": 1, "name": "x"} and {}'
    assert expand(text, NS) == text


def test_code_fences_and_inline_code_are_never_touched() -> None:
    text = (
        "Fix this:\n\n```python\ndef f(d):\n    return {name: d[name] for name in d}\n"
        "print(f'{n}')\n```\n\nand `{name}` stays, but {name} expands"
    )
    out = expand(text, NS)
    assert "return {name: d[name] for name in d}" in out and "print(f'{n}')" in out
    assert "`{name}` stays, but Ada expands" in out


def test_latex_braces_stay() -> None:
    text = r"$\frac{a}{b}$ and \textbf{bold}"
    assert expand(text, NS) == text


def test_dataframe_becomes_a_cut_markdown_table() -> None:
    out = expand("{df}", NS)
    assert out.startswith("|  | a | b |\n|---|---|---|\n| 0 | 0 | x |")
    assert f"({MAX_ROWS} of 100 rows shown)" in out


def test_long_values_are_cut() -> None:
    out = expand("{big}", {"big": "x" * (MAX_CHARS + 50)})
    assert len(out) < MAX_CHARS + 100 and "cut at" in out


def test_constants_alone_are_not_expanded() -> None:
    text = "$x^{10}$ and the set {1, 2}"
    assert expand(text, NS) == text


def test_builtins_and_comma_lists_stay_as_written() -> None:
    ns = {**NS, "x": 5}
    text = "use {len} and {print}, and the pair {x, 1}"
    assert expand(text, ns) == text


def test_expressions_over_the_users_variables_still_expand() -> None:
    ns = {"xs": [1, 2, 3], "name": "Ada"}
    assert expand("{len(xs)} items, {[n * 2 for n in xs]}, {name.upper()}", ns) == (
        "3 items, [2, 4, 6], ADA"
    )
