"""The package's shape: the core imports without IPython, the public names are pinned."""

from __future__ import annotations

import subprocess
import sys

import ipychat

CORE = [
    "ipychat",
    "ipychat._chat",
    "ipychat._client",
    "ipychat._sse",
    "ipychat._accumulate",
    "ipychat._messages",
    "ipychat._errors",
    "ipychat._settings",
    "ipychat._providers",
    "ipychat._turn",
    "ipychat._tools",
    "ipychat._cassette",
    "ipychat._loop",
    "ipychat._images",
    "ipychat._threads",
    "ipychat.local",
]


def test_core_imports_without_ipython_or_httpx_loaded() -> None:
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in CORE)
        + "bad = [m for m in sys.modules if m.split('.')[0] in ('IPython', 'ipywidgets',"
        " 'markdown', 'httpx', 'nh3', 'pygments')]\nprint(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_plain_script_can_chat_without_ipython(fake) -> None:
    code = (
        f"import sys, ipychat\nc = ipychat.Chat(base_url={fake.url!r}, model='m')\n"
        "print(c.ask('from a script').content.splitlines()[0])\n"
        "print('IPython' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["Echo: from a script", "False"]


def test_exported_members() -> None:
    assert sorted(ipychat.__all__) == ipychat.__all__
    assert ipychat.__all__ == [
        "APIConnectionError",
        "APIStatusError",
        "APITimeoutError",
        "AuthenticationError",
        "BadRequestError",
        "CassetteError",
        "Chat",
        "ChatError",
        "ChatPanel",
        "ConfigError",
        "Event",
        "RateLimitError",
        "Reply",
        "ServerError",
        "StreamError",
        "Turn",
        "Usage",
        "load_ipython_extension",
        "thread",
    ]
    for name in ipychat.__all__:
        assert getattr(ipychat, name) is not None
