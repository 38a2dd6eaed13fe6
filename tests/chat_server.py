"""A real OpenAI-compatible chat server on 127.0.0.1 whose answers a test scripts (``http.server``),
shared by the LLM backend tests and the fault tests."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def completion(text: str) -> dict:
    return {
        "id": "x",
        "object": "chat.completion",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
    }


WORDS = ("sort", "list", "items", "parse", "string", "value", "read", "file", "lines", "join", "path", "split",
         "number", "key", "dict", "return", "first", "last", "count", "words")


def scripted_answer(body: dict) -> str:
    """The deterministic reply to a request: five words picked by a hash of its messages and seed."""
    blob = json.dumps([body.get("messages"), body.get("seed")], sort_keys=True).encode()
    digest = hashlib.sha256(blob).digest()
    return "how to " + " ".join(WORDS[b % len(WORDS)] for b in digest[:5])


class ChatServer:
    """``ThreadingHTTPServer`` on 127.0.0.1 answering ``POST .../chat/completions``.

    ``script``: actions for the first requests in turn, then ``("answer",)`` for every later one:
    ``("answer",)`` a completion of :func:`scripted_answer`; ``("status", code, headers, body)``;
    ``("hang",)`` read the request and never answer (until the server stops); ``("truncate",)`` promise
    more bytes than are sent, then close; ``("raw", bytes)`` a 200 with that body. ``delay`` seconds pass
    before each answer. ``then="last"`` repeats the script's last action instead of answering once the
    script is used up. ``seen`` holds the request bodies in order and ``requests`` each request's
    ``time`` (monotonic), ``path``, ``auth`` header and ``json`` body; with ``log_path`` each answered
    request is also appended to that file as a JSON line (for a server in another process)."""

    def __init__(self, script=(), delay: float = 0.0, port: int = 0, log_path: str | None = None,
                 then: str = "answer"):
        self.script, self.delay, self.log_path = list(script), delay, log_path
        self.then = ("answer",) if then == "answer" or not self.script else self.script[-1]
        self.seen: list[dict] = []
        self.requests: list[dict] = []
        self.lock, self.stopping = threading.Lock(), threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with outer.lock:
                    outer.seen.append(body)
                    outer.requests.append({"time": time.monotonic(), "path": self.path,
                                           "auth": self.headers.get("Authorization"), "json": body})
                    n = len(outer.seen)
                action = outer.script[n - 1] if n <= len(outer.script) else outer.then
                if outer.delay:
                    time.sleep(outer.delay)
                kind = action[0]
                if kind == "hang":
                    outer.stopping.wait(60)
                    self.close_connection = True
                    return
                if kind == "truncate":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "400")
                    self.end_headers()
                    self.wfile.write(json.dumps(completion("cut"))[:40].encode())
                    self.wfile.flush()
                    self.close_connection = True
                    return
                status, headers, payload = {
                    "answer": lambda: (200, {}, completion(scripted_answer(body))),
                    "status": lambda: action[1:],
                    "raw": lambda: (200, {}, action[1]),
                }[kind]()
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()
                if outer.log_path:
                    with open(outer.log_path, "a") as fh:
                        fh.write(json.dumps(body) + "\n")

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> ChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def serve(port: int, log_path: str, delay: float) -> None:
    """Run a :class:`ChatServer` in this process until it is killed (the server-killed-mid-run fault)."""
    with ChatServer(delay=delay, port=port, log_path=log_path):
        print("serving", flush=True)
        threading.Event().wait()
