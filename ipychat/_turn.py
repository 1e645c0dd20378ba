"""One user turn: one request, or several when the model calls tools, as a stream of events.

What the thread keeps depends on how the turn ends (SPEC §6): an error before anything arrived
leaves the thread as it was; a stream that broke keeps the partial answer marked incomplete; a
cancel keeps it marked interrupted. Tool rounds are kept in OpenAI form (assistant `tool_calls`,
then `tool` messages), with `reasoning_content` on the assistant messages that made calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from ._accumulate import Accumulator
from ._client import STREAM_DONE, Request, RetryNotice, iter_chunks
from ._errors import APIConnectionError, ChatError, ConfigError, StreamError
from ._messages import Event, Message, Reply, Usage, parse_json_reply, wire_message
from ._tools import Approver, Runner, Tool, ToolCall, direct_runner, run_call

if TYPE_CHECKING:
    from ._chat import Chat

__all__ = ["TurnRun"]

MAX_ROUNDS = 8
BUSY_SPINS = 20  # loop iterations to wait for an abandoned stream's cleanup
AFTER_FINISH = 2.0  # seconds to wait for a trailing usage chunk once the answer has finished


class TurnRun:
    def __init__(
        self,
        chat: Chat,
        request: Request,
        commit: Callable[[list[Message], Reply], None] | None,
        *,
        json_mode: bool = False,
        tools: dict[str, Tool] | None = None,
        approve: Approver | None = None,
        runner: Runner | None = None,
        max_rounds: int = MAX_ROUNDS,
    ) -> None:
        self.chat = chat
        self.request = request
        self.commit = commit
        self.json_mode = json_mode
        self.tools = tools or {}
        self.approve = approve
        self.runner = runner or direct_runner
        self.max_rounds = max_rounds
        self.round = 0
        self.acc = self._accumulator()
        self.extra: list[Message] = []  # earlier rounds: assistant tool_calls + tool results
        self.runs: list[ToolCall] = []
        self.reasoning: list[str] = []
        self.start = time.perf_counter()
        self.timing: dict[str, float] = {}
        self.done = False
        self.in_tools = False  # the current round's message has moved to `extra`
        self.notes: list[str] = []  # lines to show before the answer
        self.usage: Usage | None = None  # the rounds' usage so far
        self._base = list(request.body["messages"])  # the messages before any tool round

    def _accumulator(self) -> Accumulator:
        """This round's accumulator. Where the server leaves tool calls as text (the local
        GGUF template), it parses them out, with ids unique across the turn's rounds; and since
        such a template offers whatever tools it is given and ignores tool_choice, a round that
        may call none is sent none."""
        request, body = self.request, self.request.body
        ids = f"call_{self.round}_"
        if not request.tool_tags:
            return Accumulator(call_ids=ids)
        if body.get("tool_choice") == "none":
            body.pop("tools", None)
            body.pop("tool_choice", None)
        if not body.get("tools"):
            return Accumulator(call_ids=ids)
        names = frozenset(
            t.get("function", {}).get("name", "") for t in body["tools"] if isinstance(t, dict)
        )
        return Accumulator(tool_tags=names, call_ids=ids)

    def _add_usage(self, usage: Usage | None) -> None:
        if usage is not None:
            self.usage = usage if self.usage is None else self.usage + usage

    @property
    def started(self) -> bool:
        return self.acc.started or bool(self.extra)

    async def events(self) -> AsyncIterator[Event]:
        chat = self.chat
        if self.commit is None:  # --no-history: nothing to race for
            async with contextlib.aclosing(self._events()) as events:
                async for event in events:
                    yield event
            return
        for _ in range(BUSY_SPINS):
            if not chat.busy:
                break
            # A stream left with `break` is closed by asyncio's finalizer on the next turns of
            # the loop: let it finish before calling the thread busy.
            await asyncio.sleep(0)
        if chat.busy:
            raise ConfigError(
                f"thread {chat.name or ''!r} is still answering (in the chat panel, or a "
                "cell that is finishing); wait for it, or ask in another thread with -t NAME"
            )
        chat.busy = True
        try:
            # Closed here, not by the garbage collector: the partial turn is stored before the
            # thread is free again.
            async with contextlib.aclosing(self._events()) as events:
                async for event in events:
                    yield event
        finally:
            chat.busy = False

    async def _events(self) -> AsyncIterator[Event]:
        for note in self.notes:
            yield Event("note", note)
        status, error = "interrupted", None
        try:
            rounds = 0
            while True:
                async with contextlib.aclosing(self._request()) as round_events:
                    async for event in round_events:
                        yield event
                if not (self.tools and self.acc.tool_calls and rounds < self.max_rounds):
                    break
                rounds += 1
                self.in_tools = True
                async with contextlib.aclosing(self._run_tools()) as tool_events:
                    async for event in tool_events:
                        yield event
                self._add_usage(self.acc.usage)
                self.in_tools = False
                body = self.request.body
                extra = [wire_message(m, self.request.reasoning_echo) for m in self.extra]
                self.request.body = {**body, "messages": [*self._base, *extra]}
                choice = body.get("tool_choice")
                if isinstance(choice, dict) or choice == "required":
                    # A forced call has been made; forcing it again would never end.
                    self.request.body["tool_choice"] = "auto"
                if rounds == self.max_rounds:
                    self.request.body["tool_choice"] = "none"  # the last round must answer
                self.round = rounds
                self.acc = self._accumulator()
            status = "complete"
            if self.request.stream and not self.acc.complete:
                status, error = "incomplete", "the stream ended before the model finished"
        except (StreamError, APIConnectionError) as exc:
            if not self.started:
                raise
            failure = StreamError(f"the answer is incomplete: {exc.message}")
            failure.reply = self._finish("incomplete", exc.message)
            raise failure from None
        except ChatError:
            self.done = True  # e.g. a 429 in a later tool round: the thread stays as it was
            raise
        finally:
            if not self.done and status == "interrupted" and self.started:
                self._finish("interrupted", "interrupted")
        yield Event("reply", reply=self._finish(status, error))

    async def _request(self) -> AsyncIterator[Event]:
        source: AsyncIterator[Any] = iter_chunks(self.request, self.chat.retry)
        cassette = self.chat._cassette()
        if cassette is not None:
            source = cassette.play(self.request.body, source)
        acc, timing, start = self.acc, self.timing, self.start
        feed_many = acc.feed_many
        # Closed as soon as this round ends, however it ends (an error event, a cancel, the
        # consumer gone): the connection goes back at once, not when the generator is collected.
        async with contextlib.aclosing(source) as chunks:
            stream = aiter(chunks)
            while True:
                try:
                    if acc.finish_reason is None or not acc.started:
                        # (A finish with nothing before it may be followed by the plain
                        # request that asks why: that one takes as long as it takes.)
                        batch = await anext(stream)
                    else:
                        # After the finish only usage may follow: a stall there is no reason
                        # to keep the user waiting for the read timeout.
                        batch = await asyncio.wait_for(anext(stream), AFTER_FINISH)
                except StopAsyncIteration:
                    break
                except (APIConnectionError, StreamError, asyncio.TimeoutError):
                    if not (acc.complete and acc.started):
                        raise
                    # Whatever happens to the connection after the end (a drop, a stall, a
                    # line that is not JSON) changes nothing; an error the provider sends as
                    # an event is raised by the accumulator, not here.
                    break
                if batch is STREAM_DONE:
                    acc.done = True
                    continue
                if type(batch) is RetryNotice:
                    yield Event("retry", batch.text, delay=batch.delay)
                    continue
                pieces = feed_many(batch)  # one event per kind and network read
                if not pieces:
                    continue
                now = time.perf_counter() - start
                timing.setdefault("first", now)
                for kind, text in pieces:
                    if kind == "reasoning":
                        timing.setdefault("first_reasoning", now)
                        timing["last_reasoning"] = now
                    else:
                        timing.setdefault("answer", now)
                    yield Event(kind, text)  # type: ignore[arg-type]
        for kind, text in acc.flush():
            yield Event(kind, text)  # type: ignore[arg-type]

    async def _run_tools(self) -> AsyncIterator[Event]:
        reply = self.acc.reply()
        self.reasoning.append(reply.reasoning)
        self.extra.append(reply.message())
        for raw in reply.tool_calls:
            function = raw.get("function") or {}
            call = ToolCall(
                raw.get("id", ""), function.get("name", ""), function.get("arguments", "")
            )
            yield Event("tool", data=call)
            await run_call(call, self.tools, self.runner, self.approve)
            self.runs.append(call)
            self.extra.append(call.message())  # type: ignore[arg-type]
            yield Event("tool", data=call)

    def _finish(self, status: str, error: str | None) -> Reply:
        timing = self.timing
        reply = self.acc.reply(
            status=status,
            error=error,
            ttft=timing.get("first"),
            elapsed=time.perf_counter() - self.start,
            reasoning_time=timing.get("answer", timing.get("last_reasoning")),
        )
        reply.tool_runs = list(self.runs)
        if self.usage is not None:
            self._add_usage(reply.usage)
            reply.usage = self.usage  # every round's tokens and cost, not just the last
        if self.reasoning:
            reply.reasoning = "\n\n".join([*filter(None, self.reasoning), reply.reasoning])
        if reply.model is None:
            reply.model = self.request.body.get("model")
        if reply.usage is not None and reply.usage.cost is None:
            from ._threads import SESSION

            table = self.chat.prices
            if table is None:
                table = SESSION.config.get("prices")
            reply.usage.cost = reply.usage.price(table, self.request.body.get("model"))
        if reply.reasoning_time is not None and "first_reasoning" in timing:
            reply.reasoning_time -= timing["first_reasoning"]
        if self.json_mode and status == "complete":
            try:
                reply.data = parse_json_reply(reply.content)
            except StreamError as exc:
                reply.error = exc.message
        if self.tools and reply.tool_calls and status == "complete":
            reply.error = f"stopped after {self.max_rounds} tool rounds"
            reply.tool_calls = []  # asked for, never run
        if self.commit is not None and (status == "complete" or self.started):
            messages = [*self.extra, *_unanswered(self.extra)]
            if not self.in_tools:
                message = reply.message()
                # Calls nobody ran (tools passed as raw schemas) would make every later
                # request of the thread invalid: the thread keeps the text only.
                message.pop("tool_calls", None)
                message.pop("reasoning_content", None)
                messages.append(message)
            self.commit(messages, reply)
        self.done = True
        return reply


def _unanswered(messages: list[Message]) -> list[Message]:
    """Tool results for calls that never ran (a cancel during the tools), so that the thread
    stays a valid request for the next turn."""
    answered = {m.get("tool_call_id") for m in messages if m.get("role") == "tool"}
    missing: list[Message] = []
    for message in messages:
        for call in message.get("tool_calls") or []:
            if call.get("id") not in answered:
                missing.append(
                    {"role": "tool", "tool_call_id": call.get("id", ""), "content": "(not run)"}
                )
    return missing
