"""`Chat`: a conversation thread, its settings, and the one async streaming core.

`stream()` is the core; `ask_async()` drains it; `ask()` runs it on the private loop (_loop.py)
and, inside a Jupyter kernel, displays it live through the front-end layer.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ._cassette import Cassette, active_cassette
from ._client import Limits, Request, RetryPolicy, Timeouts
from ._errors import ConfigError
from ._files import read_text, write_atomic
from ._messages import Event, Message, Reply, Turn, estimate_tokens, wire_message
from ._settings import Settings, resolve
from ._threads import SESSION
from ._tools import Approver, Runner, tools_from
from ._turn import MAX_ROUNDS, TurnRun

__all__ = ["Chat"]

SAVE_FORMAT = "ipychat.thread/1"


class Chat:
    """A conversation with an OpenAI-compatible chat-completions endpoint.

    Arguments left `None` are resolved at each request (SPEC §2), so `%chat model …` and
    environment changes apply to threads created earlier.
    """

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        system: str | None = None,
        provider: str | None = None,
        **params: Any,
    ) -> None:
        self.name: str | None = None
        self.system = system
        self.params: dict[str, Any] = params
        self.turns: list[Turn] = []
        self.retry = RetryPolicy()
        self.timeouts = Timeouts()
        self.limits = Limits()
        self.cassette: Cassette | None = None  # else the kernel's (%chat record / replay)
        self.context_budget: int | None = None  # estimated tokens of history sent; None: all
        self.left_out = 0  # turns the last request left out to fit the budget
        self.busy = False  # a turn is streaming: a second one would race it for the thread
        # {model: {"input": $, "output": $, "cached_input": $}} per million tokens, for
        # providers that report no cost; None: the kernel's (%config ChatMagics.prices)
        self.prices: dict[str, Any] | None = None
        self._own = {"model": model, "base_url": base_url, "api_key": api_key, "provider": provider}
        if api_key:
            from ._settings import Secret

            self._own["api_key"] = Secret(api_key)

    # -- settings and state -------------------------------------------------------------
    def settings(self, overrides: Mapping[str, Any] | None = None) -> Settings:
        layers = [overrides or {}, self._own, *SESSION.layers()]
        return resolve(layers)

    @property
    def messages(self) -> list[Message]:
        """The thread as OpenAI message dicts, system prompt first."""
        out: list[Message] = [{"role": "system", "content": self.system}] if self.system else []
        for turn in self.turns:
            out.extend(turn.messages)
        return out

    def reset(self) -> None:
        self.turns.clear()
        SESSION.notify(self.name)

    def undo(self) -> Turn | None:
        turn = self.turns.pop() if self.turns else None
        SESSION.notify(self.name)
        return turn

    @property
    def last(self) -> Reply | None:
        return self.turns[-1].meta.get("reply") if self.turns else None

    def __repr__(self) -> str:
        name = f"{self.name!r}, " if self.name else ""
        return f"<Chat {name}{len(self.turns)} turns>"

    def _cassette(self) -> Cassette | None:
        return self.cassette if self.cassette is not None else active_cassette()

    # -- building a request -------------------------------------------------------------
    def _prepare(
        self,
        prompt: str,
        images: Any,
        params: dict[str, Any],
        history: bool,
        cell_id: str | None,
        rerun_by_text: bool,
        new: bool = False,
        system: str | None = None,
        replace_last: bool = False,
    ) -> tuple[Request, Message, int, Settings]:
        overrides = {k: params.pop(k) for k in ("model", "base_url", "provider") if k in params}
        if params.get("api_key"):
            from ._settings import Secret

            overrides["api_key"] = Secret(params.pop("api_key"))
        params.pop("api_key", None)
        settings = self.settings(overrides)
        cassette = self._cassette()
        replaying = cassette is not None and cassette.replaying
        settings.require(key=not replaying)
        if not isinstance(prompt, str) or not prompt.strip():
            raise ConfigError("the message is empty: write something to ask")
        user = _user_message(prompt, images)
        preset = settings.preset
        if preset is not None and not preset.images and isinstance(user["content"], list):
            raise ConfigError(
                f"the {preset.name} model takes no images; ask without -i, or pick a vision model"
            )
        cut = 0
        if history and not new:
            cut = self._replace_index(cell_id, prompt if rerun_by_text else None)
            if replace_last and self.turns:
                cut = len(self.turns) - 1
        system = self.system if system is None else system
        messages: list[Message] = [{"role": "system", "content": system}] if system else []
        self.left_out = 0
        if cut:
            kept = self._within_budget(self.turns[:cut], [*messages, user])
            self.left_out = cut - len(kept)
            for turn in kept:
                messages.extend(turn.messages)
        messages.append(user)
        echo = settings.preset is not None and settings.preset.reasoning_echo
        messages = [wire_message(m, echo) for m in messages]
        body = {"model": settings.model, "messages": messages, **self.params, **params}
        body = {k: v for k, v in body.items() if v is not None}
        body.setdefault("stream", True)
        preset = settings.preset
        if body["stream"] and (preset is None or preset.stream_usage):
            body.setdefault("stream_options", {"include_usage": True})
        if preset is not None:
            body = preset.adapt(body)
        base_url = settings.base_url
        diagnose = None
        # The local server's template leaves tool calls as text, recorded so in cassettes too.
        tool_tags = preset is not None and preset.name == "local"
        if tool_tags and not replaying:
            from .local import serving

            server = serving(base_url)
            base_url, diagnose = server.base_url, server.diagnose
        key = settings.api_key.get() if settings.api_key else None
        request = Request(
            f"{base_url}/chat/completions",
            body,
            key,
            self.timeouts,
            self.limits,
            diagnose=diagnose,
            tool_tags=tool_tags,
            reasoning_echo=echo,
        )
        return request, user, cut, settings

    def _within_budget(self, turns: list[Turn], fixed: list[Message]) -> list[Turn]:
        """The newest turns that fit `context_budget` (estimated tokens) beside the system
        prompt and the new message; older ones are left out of the request, not deleted."""
        if not self.context_budget:
            return turns
        used = estimate_tokens(fixed)
        kept: list[Turn] = []
        for turn in reversed(turns):
            size = turn.meta.get("_tokens")
            if size is None:
                size = turn.meta["_tokens"] = estimate_tokens(turn.messages)
            if used + size > self.context_budget:
                break
            used += size
            kept.append(turn)
        kept.reverse()
        return kept

    def _replace_index(self, cell_id: str | None, text: str | None) -> int:
        """Where the new turn goes: over the turn this cell made before (SPEC §3), else at the
        end."""
        if cell_id:
            for index, turn in enumerate(self.turns):
                if turn.meta.get("cell_id") == cell_id:
                    return index
        elif text is not None and self.turns and self.turns[-1].user.get("content") == text:
            return len(self.turns) - 1
        return len(self.turns)

    # -- the streaming core -------------------------------------------------------------
    def stream(
        self,
        prompt: str,
        images: Any = None,
        *,
        history: bool = True,
        cell_id: str | None = None,
        rerun_by_text: bool = False,
        new: bool = False,
        system: str | None = None,
        replace_last: bool = False,
        tools: Sequence[Callable[..., Any]] | None = None,
        approve: Approver | None = None,
        runner: Runner | None = None,
        max_rounds: int = MAX_ROUNDS,
        **params: Any,
    ) -> AsyncIterator[Event]:
        """Ask, yielding `Event`s as the answer arrives; the last one carries the `Reply`.

        `async for event in chat.stream(...)`. Bad settings or input raise here, before any
        request is sent.

        `new` empties the thread and `system` replaces its system prompt, both only once the
        turn has happened. `tools` are Python functions the model may call; each call is run
        (after `approve` says yes, when given) and its result sent back, for up to
        `max_rounds` rounds.
        Errors before the first token leave the thread unchanged. A stream that breaks later
        stores the partial turn marked incomplete and raises `StreamError` with `.reply` set;
        cancelling stores it marked interrupted.
        """
        json_mode = bool(params.pop("json", False))
        if json_mode:
            params["response_format"] = {"type": "json_object"}
        tool_map = tools_from(tools) if tools else {}
        if tool_map:
            params["tools"] = [tool.schema for tool in tool_map.values()]
        choice = params.get("tool_choice")
        if isinstance(choice, str) and choice not in ("auto", "none", "required"):
            params["tool_choice"] = {"type": "function", "function": {"name": choice}}
        request, user, cut, _ = self._prepare(
            prompt, images, params, history, cell_id, rerun_by_text, new, system, replace_last
        )

        appends = cut == len(self.turns)

        def commit(replies: list[Message], reply: Reply) -> None:
            # --new and -s change the thread only with a turn that happened (SPEC §6)
            if system is not None:
                self.system = system or None
            # A new turn goes after whatever was stored meanwhile (a stream left with `break`
            # stores its partial turn when asyncio closes it), not over it.
            at = len(self.turns) if appends else cut
            if replace_last and reply.status != "complete":
                return  # a retry replaces the old answer only with a whole new one
            self._commit(at, user, replies, reply, request, cell_id)

        run = TurnRun(
            self,
            request,
            commit if history else None,
            json_mode=json_mode,
            tools=tool_map,
            approve=approve,
            runner=runner,
            max_rounds=max_rounds,
        )
        if self.left_out:
            plural = "s" if self.left_out != 1 else ""
            run.notes.append(
                f"context budget: the oldest {self.left_out} turn{plural} "
                "were left out of this request (still in the thread)"
            )
        return run.events()

    async def ask_async(self, prompt: str, images: Any = None, **params: Any) -> Reply:
        """Ask and return the whole `Reply` (no display)."""
        reply: Reply | None = None
        async for event in self.stream(prompt, images, **params):
            if event.kind == "reply":
                reply = event.reply
        assert reply is not None
        return reply

    def ask(self, prompt: str, images: Any = None, **params: Any) -> Reply:
        """Ask and wait. In a Jupyter kernel the answer streams into the cell; elsewhere it
        returns quietly. Safe to call from a running event loop (a notebook cell)."""
        from ._loop import run_sync

        if _in_kernel():
            from ._live import ask_live

            return ask_live(self, prompt, images, **params)
        return run_sync(self.ask_async(prompt, images, **params))

    # -- the thread ---------------------------------------------------------------------
    def _commit(
        self,
        cut: int,
        user: Message,
        replies: list[Message],
        reply: Reply,
        request: Request,
        cell_id: str | None,
    ) -> None:
        body = request.body
        meta: dict[str, Any] = {
            "model": reply.model or body.get("model"),
            "request_model": body.get("model"),
            "params": {k: v for k, v in body.items() if k not in ("messages", "model")},
            "status": reply.status,
            "created": time.time(),
            "elapsed": reply.elapsed,
            "ttft": reply.ttft,
            "reply": reply,
        }
        if reply.error:
            meta["error"] = reply.error
        if reply.finish_reason:
            meta["finish_reason"] = reply.finish_reason
        if reply.usage:
            meta["usage"] = reply.usage.to_dict()
        if reply.reasoning:
            meta["reasoning"] = reply.reasoning
        if cell_id:
            meta["cell_id"] = cell_id
        del self.turns[cut:]
        if reply.tool_runs:
            meta["tools"] = [
                {
                    "name": c.name,
                    "arguments": c.arguments,
                    "duration": c.duration,
                    "error": c.error,
                    "approved": c.approved,
                }
                for c in reply.tool_runs
            ]
        self.turns.append(Turn(user, replies, meta))
        SESSION.notify(self.name)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        data = {
            "format": SAVE_FORMAT,
            "system": self.system,
            "turns": [turn.to_dict() for turn in self.turns],
        }
        write_atomic(path, json.dumps(data, indent=1, ensure_ascii=False, default=str) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path, **kwargs: Any) -> Chat:
        chat = cls(**kwargs)
        chat.load_into(path)
        return chat

    def load_into(self, path: str | Path) -> None:
        path = Path(path)
        try:
            data = json.loads(read_text(path))
        except FileNotFoundError:
            raise ConfigError(f"no saved thread at {path}") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path} is not a saved ipychat thread: {exc}") from None
        from ._validate import check_thread

        check_thread(data, path)
        turns = [Turn.from_dict(t) for t in data["turns"]]
        self.system = data.get("system")
        self.turns = turns
        SESSION.notify(self.name)


def _user_message(prompt: str, images: Any) -> Message:
    if not images:
        # Plain string content: llama.cpp-style servers reject a list of parts (LOCAL_MODEL.md).
        return {"role": "user", "content": prompt}
    from ._images import collect

    items = images if isinstance(images, (list, tuple)) else [images]
    given = [i for i in items if isinstance(i, dict)]
    parts: list[dict[str, Any]] = [{"type": "text", "text": prompt}, *given]
    parts.extend(collect([i for i in items if not isinstance(i, dict)]))
    return {"role": "user", "content": parts}


def _in_kernel() -> bool:
    import sys

    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None
