"""Tokens per second of the embedded local model, for the llama-cpp-python build ipychat ships
and, side by side in the same run, for other builds of the same version.

    python bench/local_model.py                                   # the installed (shipped) build
    python bench/local_model.py --build avx512=/tmp/avx512-site   # plus a build `pip install
                                                                  #   --target`-ed into a folder

Each build gets its own server, started as ipychat starts it (all cores; the shipped build also
once with llama-cpp-python's default of half the cores), one at a time, with one warm-up answer,
then ROUNDS answers to the same prompt at temperature 0, streamed through `ipychat.Chat`, which
measures time to first token and tokens per second as the cell footer shows them. A build that
crashes (a native build with AMX in a VM does, at the first answer) is reported as such.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import ipychat
from ipychat import local

PROMPT = "Write a Python function that checks whether a string is a palindrome, with a docstring."
ROUNDS = 3
MAX_TOKENS = 128


def system_info(site: str | None) -> str:
    env = {**os.environ, "PYTHONPATH": site} if site else None
    probe = "import llama_cpp; print(llama_cpp.llama_print_system_info().decode())"
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    return out.stdout.strip().removeprefix("CPU : ").rstrip(" |")


def measure(site: str | None, threads: int = 0) -> dict[str, float | str]:
    port = local.free_port()
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    if site:
        env["PYTHONPATH"] = site
    args = local.llama_server_args(local.model_path(), port, 4096)
    if threads:
        args = [*args, "--n_threads", str(threads)]  # the last one given wins
    command = [sys.executable, "-m", "llama_cpp.server", *args]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        url = f"http://127.0.0.1:{port}/v1"
        try:
            while not local._answers(url, 1.0):
                if process.poll() is not None:
                    return {"error": f"exited with {process.returncode} at start"}
                time.sleep(0.3)
            chat = ipychat.Chat(provider="local", base_url=url, temperature=0, seed=1)
            rates, firsts = [], []
            for number in range(ROUNDS + 1):
                try:
                    reply = chat.ask(PROMPT, max_tokens=MAX_TOKENS, history=False)
                except ipychat.ChatError as error:
                    process.poll()
                    return {"error": f"{error} (exit {process.returncode})"}
                if number:  # the first one warms up
                    rates.append(reply.tokens_per_second or 0.0)
                    firsts.append(reply.ttft or 0.0)
            return {"tokens_per_s": statistics.median(rates), "ttft_s": statistics.median(firsts)}
        finally:
            process.kill()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", action="append", default=[], metavar="NAME=SITE_DIR")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    builds: list[tuple[str, str | None, int]] = [(f"shipped, {cores} threads", None, 0)]
    if cores > 1:
        # llama-cpp-python's own default; ipychat starts the server with all cores
        builds.append(("shipped, 1 thread", None, max(1, cores // 2)))
    builds += [(*b.split("=", 1), 0) for b in args.build]  # type: ignore[misc]
    print(
        f"local model {local.MODEL_ALIAS}, {os.cpu_count()} cores, {ROUNDS} answers of up to "
        f"{MAX_TOKENS} tokens each (median)"
    )
    rows = []
    for name, site, threads in builds:
        rows.append((name, system_info(site), measure(site, threads)))
    base = rows[0][2].get("tokens_per_s")
    print(f"{'build':<22} {'tokens/s':>9} {'first token':>12} {'vs shipped':>11}  features")
    for name, features, result in rows:
        if "error" in result:
            print(f"{name:<22} {'crashed':>9} {'':>12} {'':>11}  {features}\n    {result['error']}")
            continue
        rate = float(result["tokens_per_s"])
        ratio = f"{rate / float(base):.2f}x" if isinstance(base, float) and base else "-"
        print(f"{name:<22} {rate:>9.1f} {result['ttft_s']:>11.2f}s {ratio:>11}  {features}")


if __name__ == "__main__":
    main()
