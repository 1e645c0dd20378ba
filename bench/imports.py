"""Start-up cost: `import ipychat` and `%load_ext ipychat` against their baselines, in fresh
interpreters, median of 7. Also `jupyter_ai_magics` when it is installed."""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
import sys

RUNS = 7
TIMED = "import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"
SHELL = (
    "from IPython.core.interactiveshell import InteractiveShell; sh = InteractiveShell.instance(); "
)


def seconds(code: str, setup: str = "") -> float:
    samples = []
    for _ in range(RUNS):
        script = setup + TIMED.format(code=code)
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        )
        samples.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def main() -> None:
    rows = [
        ("import httpx", seconds("import httpx")),
        ("import ipychat", seconds("import ipychat")),
        ("import IPython (baseline for %load_ext)", seconds("import IPython")),
        ("%load_ext ipychat", seconds("sh.run_line_magic('load_ext', 'ipychat')", SHELL)),
    ]
    if importlib.util.find_spec("jupyter_ai_magics"):
        rows.append(
            (
                "%load_ext jupyter_ai_magics",
                seconds("sh.run_line_magic('load_ext', 'jupyter_ai_magics')", SHELL),
            )
        )
    else:
        rows.append(("%load_ext jupyter_ai_magics", float("nan")))
    print(f"median of {RUNS} fresh interpreters (jupyter_ai_magics: nan = not installed)")
    for name, value in rows:
        print(f"{name:45}{value * 1000:9.1f} ms")
    print("targets: import ipychat < 100 ms; %load_ext ipychat < 50 ms (IPython already loaded)")


if __name__ == "__main__":
    main()
