"""Streaming render cost: ipychat's incremental view vs a naive full re-render, vs one render.

Replays a generated ~80 KB answer in 4-character deltas at a simulated 100 deltas/s (a fake
clock, so the run takes seconds, not minutes) through the real renderer and display layer into a
recording front end. Prints CPU seconds, bytes sent to the front end and update counts.
Targets: bytes sent <= 5x the final HTML; render CPU <= 3x one final render.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.answer import deltas, make_answer
from ipychat._display import RecordingFrontend
from ipychat._live import INTERVAL, LiveView
from ipychat._messages import Event, Reply
from ipychat._render import reply_bundle

RATE = 100.0  # deltas per second
NAIVE_SAMPLE = 20  # the naive loop renders every 20th update and is scaled up (it is that slow)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def ours(text: str) -> tuple[float, RecordingFrontend]:
    clock = Clock()
    front = RecordingFrontend()
    view = LiveView(front, owns_cell=True, clock=clock)
    start = time.process_time()
    for piece in deltas(text):
        clock.now += 1 / RATE
        view.feed(Event("content", piece))
        view.tick()
    view.finish(Reply(content=text, model="bench"))
    return time.process_time() - start, front


def naive(text: str) -> tuple[float, int, int]:
    """Re-render the whole answer at every throttled update, as peers do (sampled)."""
    from ipychat._render import render_markdown

    pieces = deltas(text)
    per_update = max(1, int(RATE * INTERVAL))
    cpu = 0.0
    sent = 0
    updates = 0
    for index in range(per_update, len(pieces) + 1, per_update):
        updates += 1
        if updates % NAIVE_SAMPLE:
            continue
        so_far = "".join(pieces[:index])
        start = time.process_time()
        html = render_markdown(so_far)
        cpu += time.process_time() - start
        sent += len(html)
    return cpu * NAIVE_SAMPLE, sent * NAIVE_SAMPLE, updates


def main() -> None:
    text = make_answer()
    start = time.process_time()
    final = reply_bundle(Reply(content=text, model="bench"))["text/html"]
    one = time.process_time() - start
    cpu, front = ours(text)
    naive_cpu, naive_bytes, naive_updates = naive(text)
    fences = text.count("```") // 2
    tables = text.count("|---|") and sum(1 for b in text.split("\n\n") if b.startswith("|"))
    print(
        f"answer: {len(text):,} chars, {len(deltas(text)):,} deltas of 4, {fences} fences, "
        f"{tables} tables; {RATE:.0f} deltas/s simulated, update interval {INTERVAL} s"
    )
    print(f"{'':28}{'render CPU s':>14}{'bytes sent':>14}{'updates':>10}")
    print(f"{'one final render':28}{one:14.3f}{len(final):14,}{1:10}")
    print(f"{'ipychat incremental':28}{cpu:14.3f}{front.bytes_sent:14,}{front.updates:10,}")
    print(
        f"{'naive full re-render (est.)':28}{naive_cpu:14.3f}{naive_bytes:14,}{naive_updates:10,}"
    )
    print(
        f"ipychat vs one final render: CPU {cpu / one:.2f}x (target <= 3x), "
        f"bytes {front.bytes_sent / len(final):.2f}x (target <= 5x)"
    )
    print(
        f"naive vs ipychat: CPU {naive_cpu / cpu:.0f}x, bytes {naive_bytes / front.bytes_sent:.0f}x"
    )


if __name__ == "__main__":
    main()
