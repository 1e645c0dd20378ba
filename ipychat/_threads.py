"""The kernel's conversations and the settings its `%chat` commands and `%config` set.

One process-wide `SESSION`; `ipychat.thread(name)` and the magics share it, so a turn asked in
the panel is in the thread that `%chat history` shows.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._chat import Chat

__all__ = ["SESSION", "Session", "thread"]


class Session:
    def __init__(self) -> None:
        self.threads: dict[str, Chat] = {}
        # set by `%chat model|provider|key|system …`; beats %config, loses to flags
        self.commands: dict[str, Any] = {}
        # the ChatMagics traits (`%config ChatMagics.model = …`), mirrored by the magics
        self.config: dict[str, Any] = {}

        # methods called with a thread's name when it changes (chat panels refresh); held
        # weakly, so a panel that is gone from the notebook is not kept alive by them
        self.listeners: list[weakref.WeakMethod[Callable[[str], None]]] = []

    def listen(self, method: Callable[[str], None]) -> None:
        self.listeners.append(weakref.WeakMethod(method))  # type: ignore[arg-type]

    def unlisten(self, method: Callable[[str], None]) -> None:
        self.listeners = [ref for ref in self.listeners if ref() not in (None, method)]

    def notify(self, name: str | None) -> None:
        if name is None:
            return
        alive = []
        for ref in self.listeners:
            listener = ref()
            if listener is None:
                continue
            alive.append(ref)
            try:
                listener(name)
            except Exception:  # a broken listener must not break a turn
                pass
        self.listeners = alive

    def layers(self) -> list[dict[str, Any]]:
        return [self.commands, self.config]

    def thread(self, name: str = "default") -> Chat:
        chat = self.threads.get(name)
        if chat is None:
            from ._chat import Chat

            chat = Chat()
            chat.name = name
            self.threads[name] = chat
        return chat


SESSION = Session()


def thread(name: str = "default") -> Chat:
    """The kernel's thread `name`, the one `%%chat -t NAME` uses."""
    return SESSION.thread(name)
