"""ipychat: chat with any OpenAI-compatible model from Jupyter.

`%load_ext ipychat` registers `%%chat` and `%chat`; `ipychat.Chat` is the Python API. Importing
this package loads only the core's small modules; httpx, markdown and IPython load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CassetteError,
    ChatError,
    ConfigError,
    RateLimitError,
    ServerError,
    StreamError,
)
from ._messages import Event, Reply, Turn, Usage

if TYPE_CHECKING:
    from ._chat import Chat
    from ._widget import ChatPanel

__version__ = "0.1.0"

__all__ = [
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

_LAZY = {"Chat": "._chat", "ChatPanel": "._widget"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ipychat' has no attribute {name!r}")


def thread(name: str = "default") -> Chat:
    """The kernel's conversation `name`: the one `%%chat -t NAME` and the panel use."""
    from ._threads import thread as _thread

    return _thread(name)


def load_ipython_extension(ipython: Any) -> None:
    from ._magics import ChatMagics
    from ._question import keep_questions

    ipython.register_magics(ChatMagics)
    cleanup = getattr(ipython, "input_transformers_cleanup", None)
    if cleanup is not None and keep_questions not in cleanup:
        cleanup.append(keep_questions)


def unload_ipython_extension(ipython: Any) -> None:
    from ._question import keep_questions

    cleanup = getattr(ipython, "input_transformers_cleanup", None)
    if cleanup is not None and keep_questions in cleanup:
        cleanup.remove(keep_questions)
