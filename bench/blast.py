"""A loopback server that answers every POST with one pre-built SSE body, as fast as a socket
can send it: the transport floor for the streaming benchmarks."""

from __future__ import annotations

import json
import socket
import threading


def sse_body(events: int, text: str = "tok ") -> bytes:
    chunk = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "bench",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }
    line = b"data: " + json.dumps(chunk).encode() + b"\n\n"
    last = dict(chunk, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}])
    tail = b"data: " + json.dumps(last).encode() + b"\n\ndata: [DONE]\n\n"
    return line * events + tail


class BlastServer:
    """HTTP/1.1 keep-alive, Content-Length bodies: no framing work on the server side."""

    def __init__(self, body: bytes, delay: float = 0.0, pace: float = 0.0) -> None:
        self.body = body
        self.delay = delay
        self.pace = pace  # events per second; 0: as fast as the socket takes them
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        import time

        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            + f"Content-Length: {len(self.body)}\r\n\r\n".encode()
        )
        buffer = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                header, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in header.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                while len(buffer) < length:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                buffer = buffer[length:]
                if self.delay:
                    time.sleep(self.delay)
                try:
                    if self.pace:
                        self._paced(conn, head)
                    else:
                        conn.sendall(head + self.body)
                except OSError:
                    return

    def _paced(self, conn: socket.socket, head: bytes) -> None:
        import time

        conn.sendall(head)
        events = self.body.split(b"\n\n")[:-1]
        group = 5
        for i in range(0, len(events), group):
            conn.sendall(b"".join(e + b"\n\n" for e in events[i : i + group]))
            time.sleep(group / self.pace)

    def close(self) -> None:
        self.sock.close()


class BlastProcess:
    """The blast server in a process of its own, so it does not share the client's GIL."""

    def __init__(self, body: bytes, delay: float = 0.0, pace: float = 0.0) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        self.process = ctx.Process(
            target=_serve_forever, args=(body, delay, pace, queue), daemon=True
        )
        self.process.start()
        self.url = queue.get(timeout=30)

    def close(self) -> None:
        self.process.terminate()
        self.process.join(5)


def _serve_forever(body: bytes, delay: float, pace: float, queue: object) -> None:
    import time

    server = BlastServer(body, delay, pace)
    queue.put(server.url)  # type: ignore[attr-defined]
    while True:
        time.sleep(3600)
