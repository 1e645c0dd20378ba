"""Streaming throughput: ipychat's core vs a hand-rolled httpx loop, httpx-sse and the openai SDK.

A loopback server sends one pre-built body of N `chat.completion.chunk` events (default 200,000,
about 55 MB). Each client drains it and decodes every event; medians of 5 runs. Then the time of
one short (10-chunk) request on a kept-alive client, median of 300.
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

import ipychat
from bench.blast import BlastProcess, sse_body

EVENTS = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
RUNS = 5
BODY = {"model": "bench", "messages": [{"role": "user", "content": "go"}], "stream": True}


async def handrolled(url: str, client: httpx.AsyncClient) -> int:
    count = 0
    async with client.stream("POST", f"{url}/chat/completions", json=BODY) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                json.loads(line[6:])
                count += 1
    return count


async def with_httpx_sse(url: str, client: httpx.AsyncClient) -> int:
    from httpx_sse import aconnect_sse

    count = 0
    async with aconnect_sse(client, "POST", f"{url}/chat/completions", json=BODY) as source:
        async for sse in source.aiter_sse():
            if sse.data != "[DONE]":
                json.loads(sse.data)
                count += 1
    return count


def openai_client(url: str) -> object:
    from openai import AsyncOpenAI

    return AsyncOpenAI(base_url=url, api_key="bench", max_retries=0)


async def with_openai(url: str, client: object) -> int:
    count = 0
    stream = await client.chat.completions.create(  # type: ignore[attr-defined]
        model="bench", messages=[{"role": "user", "content": "go"}], stream=True
    )
    async for _ in stream:
        count += 1
    return count


async def with_ipychat(url: str, chat: ipychat.Chat) -> int:
    reply = None
    async for event in chat.stream("go", history=False):
        if event.kind == "reply":
            reply = event.reply
    return reply.deltas + 1  # the chunks with text, plus the finish chunk


async def measure(
    contenders: list[tuple[str, Callable[..., Awaitable[int]], str, object]], runs: int
) -> dict[str, tuple[float, int]]:
    """Median seconds per contender; the runs are interleaved so that drift in the machine's
    speed hits every contender alike."""
    times: dict[str, list[float]] = {name: [] for name, *_ in contenders}
    counts: dict[str, int] = {}
    for _ in range(runs):
        for name, fn, url, handle in contenders:
            gc.collect()  # one client's garbage must not be collected on another's time
            gc.disable()
            start = time.perf_counter()
            counts[name] = await fn(url, handle)
            times[name].append(time.perf_counter() - start)
            gc.enable()
    return {name: (statistics.median(t), counts[name]) for name, t in times.items()}


async def main() -> None:
    big = BlastProcess(sse_body(EVENTS))
    small = BlastProcess(sse_body(10))
    async with httpx.AsyncClient(timeout=None) as client:
        contenders = [
            ("hand-rolled httpx + json", handrolled, big.url, client),
            ("httpx + httpx-sse", with_httpx_sse, big.url, client),
            ("openai SDK (async)", with_openai, big.url, openai_client(big.url)),
            (
                "ipychat Chat.stream",
                with_ipychat,
                big.url,
                ipychat.Chat(base_url=big.url, model="bench"),
            ),
        ]
        print(f"{EVENTS:,} events, {len(sse_body(EVENTS)) / 1e6:.0f} MB, median of {RUNS}")
        print(f"{'client':28}{'seconds':>10}{'events/s':>12}{'vs hand-rolled':>16}")
        results = await measure(contenders, RUNS)
        base = results["hand-rolled httpx + json"][0]
        for name, (seconds, count) in results.items():
            print(f"{name:28}{seconds:10.2f}{count / seconds:12,.0f}{base / seconds:15.2f}x")
        sdk = results["openai SDK (async)"][0] / results["ipychat Chat.stream"][0]
        print(f"ipychat vs openai SDK: {sdk:.1f}x faster")

        print("\nshort stream (10 chunks) on a kept-alive client, median of 300 requests")
        shorts = [
            ("hand-rolled httpx + json", handrolled, small.url, client),
            ("openai SDK (async)", with_openai, small.url, openai_client(small.url)),
            (
                "ipychat Chat.stream",
                with_ipychat,
                small.url,
                ipychat.Chat(base_url=small.url, model="bench"),
            ),
        ]
        for _, fn, url, handle in shorts:
            await fn(url, handle)  # warm the connection
        results = await measure(shorts, 300)
        base = results["hand-rolled httpx + json"][0]
        for name, (seconds, _) in results.items():
            print(f"{name:28}{seconds * 1000:8.2f} ms{seconds / base:8.2f}x")
    big.close()
    small.close()


if __name__ == "__main__":
    asyncio.run(main())
