"""The key never shows: a whole notebook through errors, retries, saves, cassettes and debug
logs, with a distinctive key, then a search of everything it left behind."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from tests.fakeprovider import error, sse

pytestmark = pytest.mark.kernel
KEY = "sk-ipychat-SECRET-zq8w7e6r5t4y3u2i"


def test_key_appears_nowhere(_server, fake, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("IPYCHAT_BASE_URL", _server.url)
    monkeypatch.setenv("IPYCHAT_MODEL", "fake-model")
    monkeypatch.setenv("IPYCHAT_API_KEY", KEY)
    log, saved, cassette = tmp_path / "debug.log", tmp_path / "t.json", tmp_path / "c.json"
    fake.push(
        sse(["hello"]),
        error(401, f"Incorrect API key provided: {KEY}. You can find your key at ..."),
        error(503, "busy", headers={"Retry-After": "0"}),
        sse(["after a retry"]),
        sse(["recorded"]),
    )
    cells = [
        f"import logging\nlogging.basicConfig(filename={str(log)!r}, level=logging.DEBUG, "
        "force=True)\nfor name in ('httpx', 'httpcore', 'ipychat'):\n"
        "    logging.getLogger(name).setLevel(logging.DEBUG)",
        "%load_ext ipychat\nimport ipychat",
        "%chat",
        "%%chat\nhi",
        "%%chat\nthis one fails",
        "%%chat\nthis one is retried",
        f"%chat save {saved}",
        f"%chat record {cassette}",
        "%%chat -t rec\nrecord me",
        f"%chat replay {cassette}",
        "%%chat -t rec --new\nrecord me",
        "%chat record off",
        "c = ipychat.Chat(api_key=ipychat.thread().settings().api_key.get())\n"
        "print(repr(c), c.settings(), c.settings().api_key, vars(ipychat.thread()))",
        "try:\n    ipychat.Chat(base_url='http://127.0.0.1:9/v1', model='m', api_key='"
        + KEY
        + "').ask('x')\nexcept ipychat.ChatError as e:\n    print(repr(e), e.args)",
        "%chat history",
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    NotebookClient(
        nb, timeout=90, kernel_name="python3", allow_errors=True, store_widget_state=True
    ).execute()
    # The key may appear where the notebook's *source* passes it on purpose (cell 14):
    # only outputs and metadata are checked.
    for cell in nb.cells:
        cell.source = ""
    path = tmp_path / "run.ipynb"
    nbformat.write(nb, path)
    everything = {p.name: p.read_text() for p in (path, saved, cassette, log)}
    for name, text in everything.items():
        assert KEY not in text, f"the key leaked into {name}"
    assert "after a retry" in everything["run.ipynb"] and "HTTP 401" in everything["run.ipynb"]
    assert "Bearer" not in everything["debug.log"]
    assert "recorded" in everything["c.json"]
    assert len(fake.requests) == 5  # hi, 401, 503 and its retry, record; replay sent nothing
