"""A stand-in for llama-cpp-python, written to a folder put first on PYTHONPATH: its server
answers `/v1/models`, and its chat completions can crash the process for real (a segfault,
with faulthandler's report in the log, as an AMX fault does). It lets the fast suite check how
ipychat starts, watches and diagnoses the local server without building llama.cpp."""

from __future__ import annotations

from pathlib import Path

INIT = """
def llama_print_system_info():
    return b"CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | OPENMP = 1 | "
"""

SERVER = """
import ctypes, json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

port = int(sys.argv[sys.argv.index("--port") + 1])
answered = 0


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._send({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    def do_POST(self):
        global answered
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        crash_after = int(os.environ.get("FAKE_LLAMA_CRASH_AFTER", "-1"))
        if answered == crash_after:
            print("ggml_backend_amx_mul_mat: computing", flush=True)
            ctypes.string_at(0)  # a real SIGSEGV; faulthandler writes its report to the log
        answered += 1
        message = {"role": "assistant", "content": "OK"}
        self._send({"id": "x", "object": "chat.completion", "model": "fake",
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})


print(f"INFO:     Uvicorn running on http://127.0.0.1:{port}", flush=True)
HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def install(folder: Path) -> Path:
    package = folder / "llama_cpp"
    (package / "server").mkdir(parents=True)
    (package / "__init__.py").write_text(INIT)
    (package / "server" / "__init__.py").write_text("")
    (package / "server" / "__main__.py").write_text(SERVER)
    model = folder / "fake.gguf"
    model.write_bytes(b"GGUF")
    return model
