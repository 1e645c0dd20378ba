"""A real IPython kernel for tests: execute code (optionally with a Jupyter cellId), read its
outputs, interrupt it. nbclient runs whole notebooks; this drives single requests."""

from __future__ import annotations

import os
import queue
import time
from dataclasses import dataclass, field
from typing import Any

from jupyter_client import KernelManager


@dataclass
class Result:
    status: str
    outputs: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    reply: dict[str, Any] = field(default_factory=dict)
    prompts: list[str] = field(default_factory=list)

    def text(self) -> str:
        """Everything the cell showed, as one string (plain, html and markdown)."""
        parts = []
        for out in self.outputs:
            if out["msg_type"] == "stream":
                parts.append(out["content"]["text"])
            elif out["msg_type"] in ("display_data", "execute_result", "update_display_data"):
                data = out["content"]["data"]
                parts.extend(
                    str(data.get(k, "")) for k in ("text/plain", "text/html", "text/markdown")
                )
            elif out["msg_type"] == "error":
                parts.extend(out["content"]["traceback"])
        return "\n".join(parts)

    def final(self) -> list[dict[str, Any]]:
        """The outputs left in the cell at the end (clear_output honoured, updates applied)."""
        shown: list[dict[str, Any]] = []
        ids: dict[str, int] = {}
        for out in self.outputs:
            kind, content = out["msg_type"], out["content"]
            if kind == "clear_output":
                shown, ids = [], {}
            elif kind in ("display_data", "execute_result", "stream", "error"):
                display_id = (content.get("transient") or {}).get("display_id")
                if display_id:
                    ids[display_id] = len(shown)
                shown.append(content)
            elif kind == "update_display_data":
                display_id = (content.get("transient") or {}).get("display_id")
                if display_id in ids:
                    shown[ids[display_id]] = content
        return shown


class Kernel:
    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(env={**os.environ, **(env or {})})
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def send(self, code: str, cell_id: str | None = None, allow_stdin: bool = False) -> str:
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": allow_stdin,
            "stop_on_error": True,
        }
        metadata = {"cellId": cell_id} if cell_id else {}
        msg = self.kc.session.msg("execute_request", content, metadata=metadata)
        self.kc.shell_channel.send(msg)
        return str(msg["header"]["msg_id"])

    def collect(
        self,
        msg_id: str,
        timeout: float = 60,
        on_output: Any = None,
        answers: list[str] | None = None,
    ) -> Result:
        result = Result("?")
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no idle within {timeout} s; outputs: {result.text()[-500:]}")
            if answers is not None and self.kc.stdin_channel.msg_ready():
                request = self.kc.get_stdin_msg(timeout=1)
                result.prompts.append(request["content"]["prompt"])
                self.kc.input(answers.pop(0) if answers else "")
            try:
                msg = self.kc.get_iopub_msg(timeout=min(remaining, 0.1))
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "status" and msg["content"]["execution_state"] == "idle":
                break
            if kind in (
                "stream",
                "display_data",
                "update_display_data",
                "execute_result",
                "error",
                "clear_output",
            ):
                result.outputs.append({"msg_type": kind, "content": msg["content"]})
                if on_output is not None:
                    on_output(kind, msg["content"])
            if kind == "error":
                result.error = msg["content"]
        reply = self.kc.get_shell_msg(timeout=10)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.kc.get_shell_msg(timeout=10)
        result.status = reply["content"]["status"]
        result.reply = reply["content"]
        return result

    def run(self, code: str, cell_id: str | None = None, timeout: float = 60) -> Result:
        return self.collect(self.send(code, cell_id), timeout)

    def value(self, expr: str) -> str:
        """A Python expression's value in the kernel, as its repr text."""
        result = self.run(f"print(repr({expr}))")
        assert result.status == "ok", result.text()
        return "".join(o["content"]["text"] for o in result.outputs if o["msg_type"] == "stream")

    def interrupt(self) -> None:
        self.km.interrupt_kernel()

    def stop(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)
