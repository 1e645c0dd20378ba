"""The display path's cost in a real kernel: kernel CPU seconds per 10,000 chunks for a
`%%chat` cell (live rendering on) vs the core alone (`ask_async`, no display), in the same
kernel, for a burst (the blast server) and for a paced stream (2,000 chunks/s) where every
read carries only a few chunks. One warm-up run each, then the median of 3. The kernel's CPU
time counts all of its threads (ipykernel's own I/O threads too)."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.blast import BlastProcess, sse_body
from tests.kernel import Kernel

RUNS = 3
CASES = [("burst", 50_000, 0.0), ("paced 2,000/s", 10_000, 2000.0)]

CORE = """
import time as _time, ipychat as _ipychat
_t = _time.process_time()
await _ipychat.Chat(model="bench").ask_async("go", history=False)
print(_time.process_time() - _t)
"""
CELL_START = "import time as _time\n_t = _time.process_time()"
CELL_END = "print(_time.process_time() - _t)"


def cpu(kernel: Kernel, code: str) -> float:
    result = kernel.run(code, timeout=300)
    assert result.status == "ok", result.text()[-500:]
    return float(result.outputs[-1]["content"]["text"].split()[-1])


def magic(kernel: Kernel) -> float:
    assert kernel.run(CELL_START).status == "ok"
    result = kernel.run("%%chat -m bench --no-history\ngo", timeout=300)
    assert result.status == "ok", result.text()[-500:]
    return cpu(kernel, CELL_END)


def main() -> None:
    print(f"kernel CPU seconds per 10,000 chunks, median of {RUNS}")
    print(f"{'stream':16}{'core alone':>12}{'%%chat':>10}{'ratio':>8}  (target <= 2x)")
    for name, events, pace in CASES:
        server = BlastProcess(sse_body(events), pace=pace)
        kernel = Kernel({"IPYCHAT_BASE_URL": server.url, "IPYCHAT_MODEL": "bench"})
        try:
            kernel.run("%load_ext ipychat")
            cpu(kernel, CORE), magic(kernel)  # warm-up: first use imports httpx, markdown, ...
            core = statistics.median(cpu(kernel, CORE) for _ in range(RUNS))
            shown = statistics.median(magic(kernel) for _ in range(RUNS))
        finally:
            kernel.stop()
            server.close()
        scale = 10_000 / events
        print(f"{name:16}{core * scale:12.3f}{shown * scale:10.3f}{shown / core:7.2f}x")


if __name__ == "__main__":
    main()
