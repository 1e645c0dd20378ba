"""Where outputs go: a tiny interface over display handles, so tests and benchmarks can swap
the front end for a recording one.
"""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any, Protocol

__all__ = ["Frontend", "JupyterFrontend", "RecordingFrontend", "TerminalFrontend", "pick_frontend"]

Bundle = dict[str, Any]


class Frontend(Protocol):
    """Show bundles in the current cell and update them by id."""

    rich: bool  # False: a terminal, which gets plain text written as it arrives

    def show(self, bundle: Bundle) -> str: ...
    def update(self, handle: str, bundle: Bundle) -> None: ...
    def clear(self) -> None: ...
    def write(self, text: str) -> None: ...


class JupyterFrontend:
    rich = True

    def show(self, bundle: Bundle) -> str:
        from IPython.display import display

        handle = uuid.uuid4().hex
        display(bundle, raw=True, display_id=handle)
        return handle

    def update(self, handle: str, bundle: Bundle) -> None:
        from IPython.display import update_display

        update_display(bundle, raw=True, display_id=handle)

    def clear(self) -> None:
        from IPython.display import clear_output

        clear_output(wait=True)

    def write(self, text: str) -> None:
        sys.stdout.write(text)


# Every C0 control but tab and line feed, DEL, and the C1 controls: a model or a provider could
# otherwise clear the screen, retitle the window, move the cursor over what the user approves
# (CR), or write the clipboard (OSC 52).
# Bidi overrides and isolates are shown too: they can make text read other than it runs.
_CONTROLS = {c: f"\\x{c:02x}" for c in [*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F]}
_CONTROLS.update({c: f"\\x{c:02x}" for c in range(0x80, 0xA0)})
_CONTROLS.update({c: f"\\u{c:04x}" for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]})
_ONE_LINE = {**_CONTROLS, 0x0A: "\\n", 0x09: "\\t"}


def inert(text: str, *, one_line: bool = False) -> str:
    """`text` safe for a terminal: control characters shown as `\\xNN`, not obeyed; with
    `one_line`, line breaks and tabs too (a prompt must show all of what it asks about)."""
    return text.translate(_ONE_LINE if one_line else _CONTROLS)


class TerminalFrontend:
    """Terminal IPython: plain text, streamed; no HTML dumped on the terminal, and nothing a
    model or provider sends is obeyed as a terminal control."""

    rich = False

    def show(self, bundle: Bundle) -> str:
        text = bundle.get("text/plain", "")
        if text:
            print(inert(text))
        return ""

    def update(self, handle: str, bundle: Bundle) -> None:
        pass

    def clear(self) -> None:
        pass

    def write(self, text: str) -> None:
        sys.stdout.write(inert(text))
        sys.stdout.flush()


class RecordingFrontend:
    """Keeps every call and counts the bytes a real front end would have been sent."""

    def __init__(self, rich: bool = True) -> None:
        self.rich = rich
        self.calls: list[tuple[str, str, Bundle | str | None]] = []
        self.outputs: dict[str, Bundle] = {}
        self.order: list[str] = []
        self.bytes_sent = 0
        self.text = ""

    def _count(self, bundle: Bundle) -> None:
        self.bytes_sent += len(json.dumps(bundle, ensure_ascii=False).encode())

    def show(self, bundle: Bundle) -> str:
        handle = f"h{len(self.order)}"
        self.outputs[handle] = bundle
        self.order.append(handle)
        self.calls.append(("show", handle, bundle))
        self._count(bundle)
        return handle

    def update(self, handle: str, bundle: Bundle) -> None:
        self.outputs[handle] = bundle
        self.calls.append(("update", handle, bundle))
        self._count(bundle)

    def clear(self) -> None:
        self.outputs.clear()
        self.order.clear()
        self.calls.append(("clear", "", None))

    def write(self, text: str) -> None:
        self.text += text
        self.bytes_sent += len(text.encode())
        self.calls.append(("write", "", text))

    @property
    def updates(self) -> int:
        return sum(1 for call in self.calls if call[0] in ("show", "update", "write"))

    def visible(self) -> list[Bundle]:
        return [self.outputs[h] for h in self.order if h in self.outputs]


def pick_frontend() -> Frontend:
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None and getattr(shell, "kernel", None) is not None:
        return JupyterFrontend()
    return TerminalFrontend()
