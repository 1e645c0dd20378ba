"""The `%chat` sub-commands (SPEC §4). Each takes the magics object and its argument text."""

from __future__ import annotations

import html
import re
import shlex
from collections.abc import Callable
from typing import Any

from ._errors import ConfigError
from ._messages import RETRY_PARAMS, message_text
from ._providers import get_preset
from ._threads import SESSION

__all__ = ["COMMANDS", "code_blocks", "run_command"]

Command = Callable[[Any, list[str], str], Any]
COMMANDS: dict[str, Command] = {}
MAX_ARGS: dict[str, int | None] = {}  # None: free text


def command(*names: str, max_args: int | None = 1) -> Callable[[Command], Command]:
    def register(fn: Command) -> Command:
        for name in names:
            COMMANDS[name] = fn
            MAX_ARGS[name] = max_args
        return fn

    return register


def run_command(magics: Any, line: str) -> Any:
    line = line.strip()
    if not line:
        return show_settings(magics, [], "")
    name, _, rest = line.partition(" ")
    fn = COMMANDS.get(name)
    if fn is None:
        meant = near_command(line)
        if meant is not None:
            raise ConfigError(f"did you mean {meant}? (to ask it, %chat ask {line})")
        return ask_line(magics, line)
    try:
        args = shlex.split(rest)
    except ValueError:
        args = rest.split()
    limit = MAX_ARGS[name]
    if limit is not None and len(args) > limit:
        return ask_line(magics, line)  # "%chat history of Rome" is a question
    return fn(magics, args, rest.strip())


def near_command(line: str) -> str | None:
    """The sub-command a one-word line of 4+ letters is one edit away from (`histroy`), or
    None: such a typo costs a request and a turn if it goes to the model as a question, while
    short words (`hi`, `why`) and longer lines stay questions."""
    word = line.strip()
    if len(word) < 4 or not word.isalpha() or word in COMMANDS:
        return None
    import difflib

    near = [n for n in COMMANDS if len(n) >= 4 and _one_edit(word.lower(), n)]
    if not near:
        return None
    # Of several one edit away (`mode`: code, model), the likeliest: the most alike.
    return max(near, key=lambda n: (difflib.SequenceMatcher(None, word, n).ratio(), -len(n)))


def _one_edit(a: str, b: str) -> bool:
    """Within one insertion, deletion, substitution or swap of neighbours."""
    if a == b or abs(len(a) - len(b)) > 1:
        return a == b
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]]
            and (a[diff[1]] == b[diff[0]])
        )
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def _show(text: str, html_text: str | None = None) -> None:
    from IPython.display import display

    from ._display import inert

    bundle = {"text/plain": inert(text)}
    if html_text is not None:
        bundle["text/html"] = html_text
    display(bundle, raw=True)


def _thread_name(args: list[str], index: int = 0) -> str:
    return args[index] if len(args) > index else "default"


@command("settings", max_args=0)
def show_settings(magics: Any, args: list[str], rest: str) -> None:
    settings = SESSION.thread("default").settings()
    rows = settings.describe()
    rows["threads"] = ", ".join(f"{n} ({len(c.turns)})" for n, c in SESSION.threads.items()) or "-"
    from ._cassette import active_cassette

    cassette = active_cassette()
    rows["cassette"] = f"{cassette.mode} {cassette.path}" if cassette else "off"
    width = max(map(len, rows))
    _show("\n".join(f"{k.ljust(width)}  {v}" for k, v in rows.items()))


@command("model")
def set_model(magics: Any, args: list[str], rest: str) -> None:
    if not args:
        _show(f"model: {SESSION.thread().settings().model or '(not set)'}")
        return
    SESSION.commands["model"] = args[0]
    _show(f"model: {args[0]}")


@command("provider")
def set_provider(magics: Any, args: list[str], rest: str) -> None:
    if not args:
        preset = SESSION.thread().settings().preset
        _show(f"provider: {preset.name if preset else '(none)'}")
        return
    preset = get_preset(args[0])
    note = _forget_key(f"provider {preset.name}")
    SESSION.commands["provider"] = preset.name
    SESSION.commands.pop("base_url", None)
    if preset.name == "local":
        from .local import serving

        SESSION.commands["base_url"] = serving(None).base_url
    settings = SESSION.thread().settings()
    _show(
        f"provider: {preset.name} · {settings.base_url} · model {settings.model or '(not set)'}"
        + note
    )


def _forget_key(where: str) -> str:
    """A key typed with `%chat key` belongs to the service it was typed for: moving to another
    one drops it, so it is never sent there."""
    if SESSION.commands.pop("api_key", None) is None:
        return ""
    return f" (the key from %chat key was dropped: run %chat key again for {where})"


@command("base_url", "url")
def set_base_url(magics: Any, args: list[str], rest: str) -> None:
    if not args:
        raise ConfigError("%chat base_url takes a URL, e.g. http://localhost:8080/v1")
    url = args[0].rstrip("/")
    from ._settings import check_base_url

    check_base_url(url)
    note = _forget_key(url) if url != SESSION.commands.get("base_url") else ""
    SESSION.commands["base_url"] = url
    _show(f"base_url: {url}{note}")


@command("key", max_args=0)
def set_key(magics: Any, args: list[str], rest: str) -> None:
    import getpass

    from ._settings import Secret

    if args:
        raise ConfigError("%chat key takes no argument: it asks, so the key stays out of the cell")
    value = getpass.getpass("API key (kept in this kernel's memory only): ")
    from ._settings import host_of

    # Bound to the service it was typed for: a Chat or a setting pointing elsewhere later
    # does not get it.
    host = host_of(SESSION.thread().settings().base_url)
    SESSION.commands["api_key"] = Secret(value, host or None)
    _show("key set for this kernel")


@command("system", max_args=None)
def set_system(magics: Any, args: list[str], rest: str) -> None:
    chat = SESSION.thread()
    chat.system = rest or None
    _show(f"system prompt: {rest or '(none)'}")


@command("reset")
def reset(magics: Any, args: list[str], rest: str) -> None:
    name = _thread_name(args)
    SESSION.thread(name).reset()
    _show(f"thread {name!r} is empty")


@command("undo")
def undo(magics: Any, args: list[str], rest: str) -> None:
    name = _thread_name(args)
    turn = SESSION.thread(name).undo()
    _show(f"removed the last turn of {name!r}" if turn else f"thread {name!r} is already empty")


@command("threads", max_args=0)
def threads(magics: Any, args: list[str], rest: str) -> None:
    if not SESSION.threads:
        _show("no threads yet")
        return
    _show("\n".join(f"{name}: {len(chat.turns)} turns" for name, chat in SESSION.threads.items()))


@command("history")
def history(magics: Any, args: list[str], rest: str) -> None:
    name = _thread_name(args)
    chat = SESSION.thread(name)
    lines = []
    blocks = []
    if chat.system:
        lines.append(f"system: {chat.system}")
        blocks.append(f"<p><b>system</b>: {html.escape(chat.system)}</p>")
    for index, turn in enumerate(chat.turns, 1):
        status = "" if turn.status == "complete" else f" [{turn.status}]"
        for message in turn.messages:
            text = message_text(message.get("content"))
            role = message.get("role", "?")
            lines.append(f"[{index}] {role}{status if role == 'assistant' else ''}: {text}")
            blocks.append(
                f"<p><b>[{index}] {html.escape(role)}</b>"
                f"{html.escape(status) if role == 'assistant' else ''}: "
                f'<span style="white-space: pre-wrap">{html.escape(text)}</span></p>'
            )
    if not lines:
        _show(f"thread {name!r} is empty")
        return
    _show("\n".join(lines), "".join(blocks))


@command("save", max_args=2)
def save(magics: Any, args: list[str], rest: str) -> None:
    if not args:
        raise ConfigError("%chat save takes a path: %chat save thread.json [THREAD]")
    path = SESSION.thread(_thread_name(args, 1)).save(args[0])
    _show(f"saved to {path}")


@command("load", max_args=2)
def load(magics: Any, args: list[str], rest: str) -> None:
    if not args:
        raise ConfigError("%chat load takes a path: %chat load thread.json [THREAD]")
    chat = SESSION.thread(_thread_name(args, 1))
    chat.load_into(args[0])
    _show(f"loaded {len(chat.turns)} turns into {_thread_name(args, 1)!r}")


_FENCED = re.compile(r"^ {0,3}(`{3,}|~{3,})[^\n]*\n(.*?)^ {0,3}\1[ \t]*$", re.M | re.S)


def code_blocks(text: str) -> list[str]:
    return [m.group(2) for m in _FENCED.finditer(text)]


@command("code")
def code(magics: Any, args: list[str], rest: str) -> None:
    chat = SESSION.thread()
    if not chat.turns:
        raise ConfigError("no reply yet: ask something first")
    replies = chat.turns[-1].replies
    content = replies[-1].get("content") if replies else None
    if not isinstance(content, str) or not content:
        raise ConfigError("the last turn has no answer to take code from (it failed or was empty)")
    blocks = code_blocks(content)
    if not blocks:
        raise ConfigError("the last reply has no code block")
    try:
        number = int(args[0]) if args else 1
    except ValueError:
        raise ConfigError("%chat code takes a block number, e.g. %chat code 2") from None
    if not 1 <= number <= len(blocks):
        raise ConfigError(f"the last reply has {len(blocks)} code block(s); pick 1–{len(blocks)}")
    magics.shell.set_next_input(blocks[number - 1].rstrip("\n"), replace=False)


@command("retry")
def retry(magics: Any, args: list[str], rest: str) -> Any:
    """Ask the last message again with the same settings; the new answer replaces the old one
    (which stays if the retry fails)."""
    from ._live import ask_live

    chat = SESSION.thread(_thread_name(args))
    if not chat.turns:
        raise ConfigError("nothing to retry: the thread is empty")
    turn = chat.turns[-1]
    content = turn.user.get("content")
    if isinstance(content, str):
        prompt, images = content, None
    else:
        prompt = message_text([p for p in content if p.get("type") == "text"])
        images = [p for p in content if p.get("type") == "image_url"]
    sent = turn.meta.get("params")
    sent = dict(sent) if isinstance(sent, dict) else {}
    # Only sampling settings come back from a turn (which may have been loaded from a file):
    # never where to send it, nor a key, nor anything that multiplies the cost (`n`).
    params: dict[str, Any] = {k: v for k, v in sent.items() if k in RETRY_PARAMS}
    if (sent.get("response_format") or {}).get("type") == "json_object":
        params["json"] = True
    if sent.get("tools") and "reply" in turn.meta:
        # Only a turn made in this kernel offers its tools again: a loaded file must not pick
        # which of the namespace's functions the model may call.
        names = [t["function"]["name"] for t in sent["tools"]]
        missing = [n for n in names if not callable(magics.shell.user_ns.get(n))]
        if missing:
            raise ConfigError(f"retry needs the tool functions {', '.join(missing)} defined")
        params["tools"] = [magics.shell.user_ns[n] for n in names]
        params["max_rounds"] = magics.max_tool_rounds
    choice = sent.get("tool_choice")
    if choice is not None and "tools" in params:
        params["tool_choice"] = choice["function"]["name"] if isinstance(choice, dict) else choice
    if isinstance(turn.meta.get("request_model"), str) and turn.meta["request_model"]:
        params["model"] = turn.meta["request_model"]
    # The new answer replaces the last turn only once it has succeeded; nothing is written
    # onto the old one before.
    cell_id = turn.meta.get("cell_id") if isinstance(turn.meta.get("cell_id"), str) else None
    # A line magic shares its cell with whatever else the cell prints: only ipychat's own
    # outputs are replaced at the end (owns_cell=False), never the whole cell cleared.
    ask_live(chat, prompt, images, cell_id=cell_id, replace_last=True, **params)


@command("record", max_args=2)
def record(magics: Any, args: list[str], rest: str) -> None:
    from ._cassette import Cassette, set_active

    if not args:
        raise ConfigError("%chat record takes a path (or 'off'): %chat record chat.cassette.json")
    if args[0] == "off":
        set_active(None)
        _show("recording and replay off")
        return
    cassette = Cassette(args[0], "auto" if "--auto" in args else "record")
    set_active(cassette)
    _show(f"recording to {cassette.path} ({len(cassette.entries)} entries so far)")


@command("replay")
def replay(magics: Any, args: list[str], rest: str) -> None:
    from ._cassette import Cassette, set_active

    if not args:
        raise ConfigError("%chat replay takes a path: %chat replay chat.cassette.json")
    cassette = Cassette(args[0], "replay")
    set_active(cassette)
    _show(f"replaying from {cassette.path} ({len(cassette.entries)} entries); no network, no key")


@command("ask", max_args=None)
def ask(magics: Any, args: list[str], rest: str) -> None:
    """`%chat ask TEXT`: a question, even one that starts with a command's name."""
    if not rest:
        raise ConfigError("%chat ask takes a question: %chat ask what is a monad")
    ask_line(magics, rest)


def ask_line(magics: Any, text: str) -> None:
    from ._live import ask_live

    ask_live(SESSION.thread(), text)  # (a line magic: see retry)
