"""`%%chat` and `%chat`: a thin front end over `Chat` and the live view."""

from __future__ import annotations

import json
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from traitlets import Bool, Dict, Float, Int, Unicode, observe

from ._commands import run_command
from ._errors import ConfigError
from ._interpolate import expand
from ._threads import SESSION

__all__ = ["ChatMagics"]

EFFORTS = ("minimal", "low", "medium", "high", "xhigh")


def _parse(magic: Any, line: str) -> Any:
    # shlex, not IPython's arg_split: -s 'two words' must arrive without its quotes.
    try:
        words = shlex.split(line)
    except ValueError as error:
        raise UsageError(f"%%chat flags: {error}") from None
    return magic.parser.parse_args(words)


@magics_class
class ChatMagics(Magics):
    """Chat with an OpenAI-compatible model. Settings here are `%config ChatMagics.<name>`."""

    model = Unicode("", help="Model used when no flag or %chat model sets one.").tag(config=True)
    base_url = Unicode("", help="Base URL of the API, e.g. http://localhost:8080/v1.").tag(
        config=True
    )
    provider = Unicode("", help="A provider preset: openai, deepseek, openrouter, ...").tag(
        config=True
    )
    system = Unicode("", help="System prompt for new threads.").tag(config=True)
    retries = Int(3, help="Retries for 429, 5xx and connection errors before the first token.").tag(
        config=True
    )
    connect_timeout = Float(10.0, help="Seconds to wait for a connection.").tag(config=True)
    read_timeout = Float(120.0, help="Seconds to wait for the next chunk of a stream.").tag(
        config=True
    )
    interpolate = Bool(True, help="Expand {name} and {expr} in cells from the namespace.").tag(
        config=True
    )
    auto_tools = Bool(False, help="Run the model's tool calls without asking (like --auto).").tag(
        config=True
    )
    context_budget = Int(
        0, help="Estimated tokens of history to send; older turns are left out (0: no limit)."
    ).tag(config=True)
    prices = Dict(
        help="Dollars per million tokens by model, for providers that report no cost: "
        '{"gpt-4o-mini": {"input": 0.15, "output": 0.6, "cached_input": 0.075}}.'
    ).tag(config=True)
    max_images = Int(10, help="Most images one message may carry.").tag(config=True)
    image_max_side = Int(
        0, help="Downscale local images to this many pixels on the longer side (0: send as is)."
    ).tag(config=True)
    max_tool_rounds = Int(8, help="Tool-call rounds in one turn before it must answer.").tag(
        config=True
    )

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._mirror()

    @observe("model", "base_url", "provider", "prices")
    def _on_setting(self, change: Any) -> None:
        self._mirror()

    def _mirror(self) -> None:
        SESSION.config.update(
            {
                "model": self.model,
                "base_url": self.base_url,
                "provider": self.provider,
                "prices": dict(self.prices),
            }
        )

    # -- %%chat -------------------------------------------------------------------------
    @magic_arguments()
    @argument("-m", "--model", help="model for this turn")
    @argument("-s", "--system", help="system prompt of the thread (replaces the old one)")
    @argument("-t", "--thread", default="default", help="conversation thread (default: default)")
    @argument("--new", action="store_true", help="empty the thread before this turn")
    @argument(
        "-i",
        "--image",
        action="append",
        default=[],
        metavar="SRC",
        help="image: URL, file path or glob, or a Python expression (repeatable)",
    )
    @argument("--detail", choices=("auto", "low", "high"), help="image detail")
    @argument("-o", "--out", metavar="NAME", help="store the Reply in this variable")
    @argument("--temperature", type=float)
    @argument("--top-p", type=float)
    @argument("--max-tokens", type=int)
    @argument("--seed", type=int)
    @argument("--stop", action="append", help="stop sequence (repeatable)")
    @argument("--reasoning-effort", choices=EFFORTS)
    @argument("--json", action="store_true", help="ask for a JSON object; the reply's .data")
    @argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other body field, JSON-decoded when it parses (repeatable)",
    )
    @argument("--tools", metavar="NAMES", help="comma-separated functions offered as tools")
    @argument("--tool-choice", metavar="auto|none|required|NAME")
    @argument("--auto", action="store_true", help="run tool calls without asking")
    @argument("--no-stream", action="store_true", help="one request, no streaming")
    @argument("--no-history", action="store_true", help="ask without reading or writing the thread")
    @argument("--no-interpolate", action="store_true", help="send {braces} as they are")
    @cell_magic
    def chat(self, line: str, cell: str) -> None:
        """Send the cell to the model and stream the answer here."""
        args = _parse(self.chat, line)
        prompt = cell.strip("\n")
        if self.interpolate and not args.no_interpolate:
            prompt = expand(prompt, self.shell.user_ns)
        self._ask(args, prompt)

    def _ask(self, args: Any, prompt: str) -> None:
        from ._display import pick_frontend
        from ._live import ask_live

        chat = SESSION.thread(args.thread)
        params = self._params(args)
        images = self._images(args) if args.image else None
        if not prompt.strip():
            raise UsageError("the cell is empty: write the message below %%chat")
        system = args.system
        if system is None and chat.system is None and self.system:
            # The configured default for a thread that has none: like -s, it becomes the
            # thread's only with a turn that succeeds.
            system = self.system
        chat.context_budget = self.context_budget or None
        chat.retry = type(chat.retry)(retries=self.retries)
        chat.timeouts = type(chat.timeouts)(connect=self.connect_timeout, read=self.read_timeout)
        cell_id = self._cell_id()
        history = not args.no_history
        frontend = pick_frontend()
        notes: list[Any] = []
        if images:
            from ._images import thumbnails_html

            labels = ", ".join(str(p.get("_source")) for p in images)
            notes.append({"text/plain": f"images: {labels}", "text/html": thumbnails_html(images)})
        if history and not args.new:
            at = chat._replace_index(cell_id, None if cell_id else prompt)
            dropped = len(chat.turns) - at
            if dropped:
                later = dropped - 1
                note = "↺ re-run: replaced this cell's earlier turn"
                if later:
                    note += f" and dropped {later} later turn{'s' if later != 1 else ''}"
                notes.append(note)
        try:
            reply = ask_live(
                chat,
                prompt,
                images,
                frontend=frontend,
                owns_cell=True,
                notes=notes,
                history=history,
                cell_id=cell_id,
                rerun_by_text=cell_id is None,
                new=args.new,
                system=system,
                auto=args.auto or self.auto_tools,
                **params,
            )
        except ConfigError as error:
            raise UsageError(str(error)) from None
        if args.out:
            self.shell.user_ns[args.out] = reply

    def _params(self, args: Any) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for name in (
            "model",
            "temperature",
            "top_p",
            "max_tokens",
            "seed",
            "reasoning_effort",
            "tool_choice",
        ):
            value = getattr(args, name)
            if value is not None:
                params[name] = value
        if args.stop:
            params["stop"] = args.stop if len(args.stop) > 1 else args.stop[0]
        if args.detail is not None and not args.image:
            raise UsageError("--detail applies to images: add -i SRC")
        if args.json:
            params["json"] = True
        if args.no_stream:
            params["stream"] = False
        if args.tools:
            params["tools"] = self._tools(args.tools)
            params["max_rounds"] = self.max_tool_rounds
        for item in args.param:
            key, sep, raw = item.partition("=")
            if not sep or not key.strip():
                raise UsageError(f"-p takes KEY=VALUE, got {item!r}")
            try:
                params[key.strip()] = json.loads(raw)
            except ValueError:
                params[key.strip()] = raw
        return params

    def _tools(self, names: str) -> list[Any]:
        functions = []
        for name in filter(None, (n.strip() for n in names.split(","))):
            fn = self.shell.user_ns.get(name)
            if not callable(fn):
                raise UsageError(f"--tools: {name!r} is not a function in this notebook")
            functions.append(fn)
        try:
            from ._tools import tools_from

            tools_from(functions)  # a parameter with no JSON schema fails here, before sending
        except ConfigError as error:
            raise UsageError(str(error)) from None
        return functions

    def _images(self, args: Any) -> list[dict[str, Any]]:
        from ._images import collect

        try:
            return collect(
                args.image,
                self.shell.user_ns,
                detail=args.detail,
                limit=self.max_images,
                max_side=self.image_max_side,
            )
        except ConfigError as error:
            raise UsageError(str(error)) from None

    def _cell_id(self) -> str | None:
        kernel = getattr(self.shell, "kernel", None)
        try:
            parent = kernel.get_parent("shell") if kernel is not None else None
        except Exception:
            parent = None
        metadata = (parent or {}).get("metadata") or {}
        cell_id = metadata.get("cellId") or metadata.get("cell_id")
        return str(cell_id) if cell_id else None

    # -- %chat --------------------------------------------------------------------------
    @line_magic("chat")
    def chat_line(self, line: str) -> Any:
        """`%chat` shows the settings; `%chat COMMAND …` runs one; any other text is asked."""
        try:
            return run_command(self, line)
        except ConfigError as error:
            raise UsageError(str(error)) from None
