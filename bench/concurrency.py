"""Concurrency and memory.

1. 200 requests at once against a provider that waits 100 ms per request: wall time vs the
   ideal for the connection limit (100 connections: two waves of 100 ms), for ipychat's
   `ask_async` and for a hand-rolled httpx loop with the same limit.
2. A thread that streamed 1,000 turns of 2 KB: memory held afterwards, and the time to build
   the 1,001st request.
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

import ipychat
from bench.blast import BlastProcess, sse_body

CALLS = 200
LIMIT = 100  # ipychat's pool: httpx.Limits(max_connections=100)
WAIT = 0.1


async def handrolled(client: httpx.AsyncClient, url: str) -> None:
    body = {"model": "bench", "messages": [{"role": "user", "content": "q"}], "stream": True}
    async with client.stream("POST", f"{url}/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                json.loads(line[6:])


async def concurrency() -> None:
    server = BlastProcess(sse_body(10), delay=WAIT)
    chat = ipychat.Chat(base_url=server.url, model="bench")
    ideal = -(-CALLS // LIMIT) * WAIT
    print(
        f"{CALLS} concurrent requests, server waits {WAIT * 1000:.0f} ms, {LIMIT} connections;"
        f" ideal {ideal:.3f} s; median of 5 after a warm-up that opens the connections"
    )
    limits = httpx.Limits(max_connections=LIMIT, max_keepalive_connections=20)
    async with httpx.AsyncClient(timeout=None, limits=limits) as client:
        runs = {
            "hand-rolled httpx + json": lambda: asyncio.gather(
                *[handrolled(client, server.url) for _ in range(CALLS)]
            ),
            "ipychat ask_async": lambda: asyncio.gather(
                *[chat.ask_async(f"q{i}", history=False) for i in range(CALLS)]
            ),
        }
        for name, run in runs.items():
            await run()  # warm: open the pool's connections
            walls = []
            for _ in range(5):
                start = time.perf_counter()
                await run()
                walls.append(time.perf_counter() - start)
            wall = statistics.median(walls)
            print(f"  {name:26} wall {wall:.3f} s: {wall / ideal:.2f}x of ideal")
    print("  (target <= 1.2x of ideal)")
    server.close()


async def memory() -> None:
    server = BlastProcess(sse_body(64, "x" * 32))
    chat = ipychat.Chat(base_url=server.url, model="bench")
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for i in range(1000):
        await chat.ask_async(f"turn {i}")
    gc.collect()
    after = tracemalloc.take_snapshot()
    held = sum(s.size_diff for s in after.compare_to(before, "filename"))
    tracemalloc.stop()
    builds = []
    for _ in range(50):
        start = time.perf_counter()
        chat._prepare("the 1001st", None, {}, True, None, False)
        builds.append(time.perf_counter() - start)
    size = len(chat.turns[-1].replies[-1]["content"])
    print(f"1,000 turns of {size:,} chars each")
    print(f"  memory held after them: {held / 2**20:.1f} MB (target < 50 MB)")
    print(
        f"  building the 1,001st request: {statistics.median(builds) * 1000:.2f} ms (target < 5 ms)"
    )
    server.close()


if __name__ == "__main__":
    asyncio.run(concurrency())
    asyncio.run(memory())
