"""The live view of a streaming answer, and `ask_live`, which drives it from the calling thread.

Finished markdown blocks are rendered once and frozen into an output of their own; only the
unfinished tail is re-rendered (cheaply: code stays unhighlighted until its fence closes) and
re-sent, at most every `interval` seconds. So the bytes sent grow with the answer, not with its
square. When the turn ends, the pieces are replaced by one clean bundle.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import inspect
import re
import time
from collections.abc import Callable
from html import escape
from typing import Any

from ._blocks import BlockSplitter
from ._display import Frontend, inert, pick_frontend
from ._messages import Event, Reply
from ._render import (
    WRAP,
    answer_text,
    footer_text,
    reasoning_html,
    render_markdown,
    render_tail,
    reply_bundle,
    tool_html,
)

__all__ = ["LiveView", "ask_live"]

INTERVAL = 0.1  # seconds between updates: ~10 per second
_REFERENCE = re.compile(r"^ {0,3}\[[^\]\n]+\]:[ \t]*\S", re.M)  # a link reference definition
# A long tail slows its own updates, so bytes sent stay linear in the answer (bench/render.py).
BYTES_PER_SECOND = 4_000


def _html(inner: str) -> dict[str, Any]:
    return {"text/html": WRAP.format(inner)}


class LiveView:
    def __init__(
        self,
        frontend: Frontend,
        *,
        owns_cell: bool = False,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self.frontend = frontend
        self.clock = clock
        self.owns_cell = owns_cell
        self.interval = interval
        self.splitter = BlockSplitter()
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.frozen: list[str] = []  # rendered html of finished blocks
        self._pending: list[str] = []  # frozen, not yet sent
        self._handles: list[str] = []
        self._tail: str | None = None
        self._think: str | None = None
        self._note: str | None = None
        self._dirty_tail = self._dirty_think = False
        self._next = 0.0
        self._started = self.clock()
        self._answer_at: float | None = None
        self.kept: list[dict[str, Any]] = []
        self._tools: dict[str, str] = {}
        self._round = 0  # where this round's outputs start in _handles (after a tool panel)

    # -- events -----------------------------------------------------------------------
    def feed(self, event: Event) -> None:
        if event.kind == "content":
            self.drop_note()
            self._content(event.text)
        elif event.kind == "reasoning":
            self.drop_note()
            self.reasoning.append(event.text)
            if not self.frontend.rich:
                self.frontend.write(event.text)
            self._dirty_think = True
        elif event.kind == "retry":
            self.note(f"⟳ {event.text}")
        elif event.kind == "note":
            self.note(f"ℹ {event.text}", keep=True)
        elif event.kind == "tool":
            self._tool(event.data)

    def _content(self, text: str) -> None:
        if self._answer_at is None:
            self._answer_at = self.clock()
            self._dirty_think = bool(self.reasoning)
            if self.reasoning and not self.frontend.rich:
                self.frontend.write("\n\n")
        self.content.append(text)
        if not self.frontend.rich:
            self.frontend.write(text)
            return
        self._freeze(self.splitter.feed(text))
        self._dirty_tail = True

    def _freeze(self, blocks: list[str]) -> None:
        """Render finished blocks once; they are sent at the next tick and never again."""
        for block in blocks:
            html = render_markdown(block)
            self.frozen.append(html)
            self._pending.append(html)

    def _tool(self, call: Any) -> None:
        if not self.frontend.rich:
            if call.result is not None:
                self.frontend.write(f"\n[tool {call.name}: {call.result[:200]}]\n")
            return
        # What streamed before the call is finished and stays above its panel; the answer
        # (Reply.content, and the final bundle) is the last round's.
        self._freeze(self.splitter.finish())
        self.tick(force=True)
        self.frozen, self.content, self._tail = [], [], None
        bundle = _html(tool_html(call))
        handle = self._tools.get(call.id)
        if handle is None:
            self._tools[call.id] = self.frontend.show(bundle)
            self._handles.append(self._tools[call.id])
        else:
            self.frontend.update(handle, bundle)
        self._round = len(self._handles)

    def drop_note(self) -> None:
        """The passing note (a retry) has said what it had to: the answer is here, or the
        turn is over."""
        if self._note is not None:
            self.frontend.update(self._note, {"text/plain": ""})
            self._note = None

    def note(self, text: str | dict[str, Any], *, keep: bool = False) -> None:
        """A one-line note (or a ready bundle) above the answer; `keep` ones stay in the final
        output."""
        if isinstance(text, dict):
            bundle, text = text, text.get("text/plain", "")
        else:
            bundle = {"text/plain": text, "text/html": f"<div><i>{escape(text)}</i></div>"}
        if not self.frontend.rich:
            self.frontend.write(text + "\n")
        elif keep:
            self.kept.append(bundle)
            self.frontend.show(bundle)
        elif self._note is None:
            self._note = self.frontend.show(bundle)
        else:
            self.frontend.update(self._note, bundle)

    # -- sending ------------------------------------------------------------------------
    def tick(self, force: bool = False) -> None:
        now = self.clock()
        if not self.frontend.rich or (not force and now < self._next):
            return
        sent = 0
        if self._dirty_think:
            sent += self._send_reasoning()
        if self._pending or self._dirty_tail:
            sent += self._send_answer()
        self._next = now + max(self.interval, sent / BYTES_PER_SECOND)

    def _send_reasoning(self) -> int:
        self._dirty_think = False
        seconds = (self._answer_at or self.clock()) - self._started
        html = reasoning_html(
            "".join(self.reasoning), open_=self._answer_at is None, seconds=seconds, tokens=None
        )
        bundle = _html(html)
        if self._think is None:
            self._think = self.frontend.show(bundle)
        else:
            self.frontend.update(self._think, bundle)
        return len(html)

    def _send_answer(self) -> int:
        sent = 0
        if self._pending:
            html = "".join(self._pending)
            self._pending.clear()
            # The live tail's output becomes the frozen blocks; a new output takes the tail.
            if self._tail is None:
                self._handles.append(self.frontend.show(_html(html)))
            else:
                self.frontend.update(self._tail, _html(html))
                self._tail = None
            sent += len(html)
        self._dirty_tail = False
        tail = self._tail_html()
        if tail:
            if self._tail is None:
                self._tail = self.frontend.show({"text/html": tail})
                self._handles.append(self._tail)
            else:
                self.frontend.update(self._tail, {"text/html": tail})
            sent += len(tail)
        return sent

    def _tail_html(self) -> str:
        tail = self.splitter.tail
        return render_tail(tail) if tail.strip() else ""

    # -- the end ----------------------------------------------------------------------
    def finish(self, reply: Reply) -> None:
        self.drop_note()
        if not self.frontend.rich:
            self.frontend.write(f"\n[{footer_text(reply)}]\n")
            return
        if reply.reasoning_time is None and self.reasoning:
            reply.reasoning_time = (self._answer_at or self.clock()) - self._started
        self._freeze(self.splitter.finish())
        # Blocks rendered one by one cannot see a reference definition in a later block:
        # such an answer is rendered whole, once, at the end.
        shown = "".join(self.content)
        # ... and an answer whose final text differs from what streamed (a `</think>` that
        # the template opened moves what came before it into the reasoning).
        whole = _REFERENCE.search(shown) is not None or shown != answer_text(reply)
        bundle = reply_bundle(reply, None if whole else "".join(self.frozen))
        if self.owns_cell and not self._tools:
            self.frontend.clear()
            for kept in self.kept:
                self.frontend.show(kept)
            self.frontend.show(bundle)
            return
        # With tools ran, the cell also holds what they printed: only ipychat's own outputs
        # change, the last round's becoming the answer.
        handles = [h for h in (self._think, *self._handles[self._round :]) if h]
        if not handles:
            self.frontend.show(bundle)
            return
        self.frontend.update(handles[-1], bundle)
        for handle in handles[:-1]:
            self.frontend.update(handle, {"text/plain": ""})

    def partial(self, status: str, error: str | None, model: str | None) -> Reply:
        """A reply from what has been shown, for when the stream ended without one."""
        return Reply(
            content="".join(self.content),
            reasoning="".join(self.reasoning),
            model=model,
            status=status,  # type: ignore[arg-type]
            error=error,
            elapsed=self.clock() - self._started,
        )


class MainThreadJobs:
    """Work the loop thread hands back to the kernel's main thread: the user's tool functions
    (notebook code expects to run there) and approval prompts (`input()` reaches the front end
    only from there). `run_pending()` runs in the wait loop of `ask_live`."""

    def __init__(self) -> None:
        self.jobs: collections.deque[tuple[Callable[[], Any], concurrent.futures.Future[Any]]]
        self.jobs = collections.deque()

    async def call(self, job: Callable[[], Any]) -> Any:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self.jobs.append((job, future))
        return await asyncio.wrap_future(future)

    def run_pending(self) -> None:
        while self.jobs:
            job, future = self.jobs.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(job())
            except Exception as error:
                future.set_exception(error)

    async def runner(self, fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        if inspect.iscoroutinefunction(fn):
            return await fn(**kwargs)
        return await self.call(lambda: fn(**kwargs))

    async def approve(self, call: Any) -> bool:
        return bool(await self.call(lambda: _ask_approval(call)))


def _ask_approval(call: Any) -> bool:
    try:
        # Escaped: a CR or an escape in the arguments must not hide what is being approved.
        shown = inert(f"{call.name}({call.arguments})", one_line=True)
        answer = input(f"Run tool {shown}? [y/N] ")
    except Exception:  # StdinNotImplementedError: this front end cannot ask
        call.extra["note"] = "approval needs a front end that can ask; use --auto"
        return False
    return answer.strip().lower() in ("y", "yes")


class Interrupted(KeyboardInterrupt):
    """Kernel → Interrupt during an answer: what arrived is shown and kept, marked."""

    def _render_traceback_(self) -> list[str]:
        return [
            "\x1b[33m■ interrupted: the answer so far is shown above and kept in the thread\x1b[0m"
        ]


def _model_of(chat: Any) -> str | None:
    try:
        return chat.settings().model  # type: ignore[no-any-return]
    except Exception:
        return None


def ask_live(
    chat: Any,
    prompt: str,
    images: Any = None,
    *,
    frontend: Frontend | None = None,
    owns_cell: bool = False,
    notes: list[Any] | tuple[Any, ...] = (),
    auto: bool = False,
    **params: Any,
) -> Reply:
    """Ask on the private loop and stream into the cell from this (the kernel's main) thread.

    KeyboardInterrupt (Kernel → Interrupt) cancels the request, waits for its connection to
    close, shows the partial answer marked interrupted, and is re-raised so that Run All stops.
    """
    from ._errors import StreamError
    from ._loop import run_sync

    view = LiveView(frontend or pick_frontend(), owns_cell=owns_cell)
    for text in notes:
        view.note(text, keep=True)
    queue: collections.deque[Event] = collections.deque()
    result: list[Reply] = []
    jobs = MainThreadJobs()
    if params.get("tools"):
        params.setdefault("runner", jobs.runner)
        if not auto:
            params.setdefault("approve", jobs.approve)

    # Preparing the request (reading images, maybe starting the local server) happens here, in
    # the main thread, where Ctrl-C reaches it; only the streaming runs on the private loop.
    events = chat.stream(prompt, images, **params)

    async def pump() -> None:
        async for event in events:
            queue.append(event)

    def poll() -> None:
        jobs.run_pending()
        while queue:
            event = queue.popleft()
            if event.kind == "reply":
                result.append(event.reply)  # type: ignore[arg-type]
            else:
                view.feed(event)
        view.tick()

    try:
        run_sync(pump(), poll=poll)
    except KeyboardInterrupt:
        poll()
        if view.content or view.reasoning:
            model = params.get("model") or _model_of(chat)
            view.finish(view.partial("interrupted", "interrupted", model))
        # Still an error, so that Run All stops here; but one line, not our stack.
        raise Interrupted() from None
    except StreamError as error:
        poll()
        if error.reply is not None:
            view.finish(error.reply)
        raise
    finally:
        view.drop_note()  # a stale "retrying (3/3)" must not stand above an error
    poll()
    reply = result[-1]
    view.finish(reply)
    return reply
