"""The sync-to-async bridge: one private event loop in a daemon thread.

A `%%chat` cell runs synchronously inside ipykernel's own running loop, so it can neither
`asyncio.run()` nor `run_until_complete()` there. Patching the loop with nest-asyncio(2) makes that
possible but, measured in a real kernel (shared/KERNEL_NOTES.md), leaks the stream on interrupt and
can wedge the kernel's shell handler. Instead the coroutine runs on a loop of its own in another
thread, and the calling thread only waits: a Ctrl-C / kernel interrupt then always lands in our
waiting code, which cancels the coroutine and waits for it to close its connection.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["get_loop", "owns_running_loop", "run_sync"]

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None

CLEANUP_WAIT = 2.0  # seconds to let a cancelled coroutine close its connection


def get_loop() -> asyncio.AbstractEventLoop:
    """The private loop, started on first use and again if its thread has died."""
    global _loop, _thread
    with _lock:
        if _loop is None or _thread is None or not _thread.is_alive() or _loop.is_closed():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            thread = threading.Thread(target=run, name="ipychat-loop", daemon=True)
            thread.start()
            ready.wait()
            _loop, _thread = loop, thread
        return _loop


def owns_running_loop() -> bool:
    """Whether the running loop is ipychat's own (which lives as long as the process)."""
    try:
        return asyncio.get_running_loop() is _loop
    except RuntimeError:
        return False


def run_sync(
    coro: Coroutine[Any, Any, T],
    *,
    poll: Callable[[], None] | None = None,
    interval: float = 0.05,
) -> T:
    """Run `coro` on the private loop and wait for it, calling `poll()` every `interval` seconds
    in this thread (the display updates there: front ends need the caller's thread).

    On KeyboardInterrupt the coroutine is cancelled and given `CLEANUP_WAIT` seconds to finish
    its `finally` blocks before the interrupt is re-raised here.
    """
    if _thread is not None and threading.current_thread() is _thread:
        coro.close()
        from ._errors import ConfigError

        raise ConfigError(
            "Chat.ask() was called inside ipychat's own event loop (from an async tool?), "
            "where it would wait for itself; use `await chat.ask_async(...)` there"
        )
    finished = threading.Event()

    async def wrapper() -> T:
        try:
            return await coro
        finally:
            finished.set()

    future = asyncio.run_coroutine_threadsafe(wrapper(), get_loop())
    try:
        while True:
            try:
                return future.result(timeout=interval)
            except concurrent.futures.TimeoutError:
                if poll is not None:
                    poll()
    except BaseException:
        if not future.done():
            future.cancel()
            # future.cancel() reports at once; the coroutine's cleanup has not run yet.
            finished.wait(CLEANUP_WAIT)
        raise
