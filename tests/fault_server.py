"""A small OpenAI-compatible HTTP server on loopback, for tests and benchmarks.

It speaks POST /v1/completions and /v1/chat/completions, answers with the upper-cased item
after the prompt's last `Input:`, and can misbehave on purpose: a `plan(item, attempt)` names
what to do with the attempt-th request for that item (500, 429 with Retry-After, hang past the
client's timeout, drop the connection, garbage body, context overflow, empty text). It counts
every request it reads (`calls`, per request body) and every good answer it delivered (`answered`).

`pause()` stops it from reading new requests (they wait in their sockets, unread and uncounted)
so a test can stop a client at a moment when no request has been read and left unanswered.

Run alone (`python tests/fault_server.py --latency 0.02`) it prints its URL and serves forever.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# fault slugs a plan may return; None (or "ok") answers normally
FAULTS = ("500", "503", "429", "hang", "drop", "garbage", "overflow", "empty")
Plan = Callable[[str, int], str | None]


def item_of(prompt: str) -> str:
    tail = prompt.rsplit("Input:", 1)[-1]
    return tail.split("\nOutput:", 1)[0].strip()


def answer_for(item: str) -> str:
    return " " + item.upper()


def right_branching_answer(item: str) -> str:
    """A right-branching unlabeled tree over the item's words: a well-formed tree to repair."""
    words = item.split()
    tree = f"( {words[-1]} )" if words else "( )"
    for w in reversed(words[:-1]):
        tree = f"( ( {w} ) {tree} )"
    return " " + tree


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default 5 drops connects from a client with 32 in flight
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # clients that time out or get killed reset their connections: expected here
        pass


class FaultServer:
    """Context manager: `with FaultServer(plan) as srv: srv.url ...`."""

    def __init__(
        self,
        plan: Plan | None = None,
        *,
        latency_s: float = 0.0,
        hang_s: float = 2.0,
        retry_after: str = "0.05",
        answer: Callable[[str], str] = answer_for,
    ) -> None:
        self.plan = plan
        self.answer = answer
        self.latency_s = latency_s
        self.hang_s = hang_s
        self.retry_after = retry_after
        self.calls: Counter[str] = Counter()  # requests read, per request-body hash
        self.answered: Counter[str] = Counter()  # good 200 answers delivered, per body hash
        self.item_attempts: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.requests: list[tuple[str, dict[str, Any], str | None]] = []  # path, body, auth
        self.proxy_auth: list[str] = []  # Proxy-Authorization headers read (as a proxy)
        self.inflight = 0
        self.max_inflight = 0
        self._lock = threading.Lock()
        self._open = threading.Event()
        self._open.set()
        self._stopping = False
        self._httpd = _Server(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping = True
        self._open.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def pause(self) -> None:
        self._open.clear()

    def resume(self) -> None:
        self._open.set()

    def total_calls(self) -> int:
        with self._lock:
            return sum(self.calls.values())

    def total_answered(self) -> int:
        with self._lock:
            return sum(self.answered.values())

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as separate writes

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def handle_one_request(self) -> None:
                # Wait before reading: while paused, requests stay unread in the socket.
                while not server._open.wait(0.05):
                    if server._stopping:
                        self.close_connection = True
                        return
                if server._stopping:
                    self.close_connection = True
                    return
                super().handle_one_request()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                server._serve(self, raw)

        return Handler

    def _serve(self, h: BaseHTTPRequestHandler, raw: bytes) -> None:
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            return self._send(h, 400, {"error": {"message": "body is not JSON"}})
        chat = h.path.rstrip("/").endswith("chat/completions")
        if not chat and not h.path.rstrip("/").endswith("/completions"):
            return self._send(h, 404, {"error": {"message": f"no route {h.path}"}})
        prompt = body["messages"][-1]["content"] if chat else body.get("prompt", "")
        item = item_of(prompt)
        key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        with self._lock:
            self.calls[key] += 1
            self.item_attempts[item] += 1
            attempt = self.item_attempts[item]
            self.requests.append((h.path, body, h.headers.get("Authorization")))
            if h.headers.get("Proxy-Authorization"):
                self.proxy_auth.append(h.headers["Proxy-Authorization"])
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            self._answer(h, body, chat, prompt, item, key, attempt)
        finally:
            with self._lock:
                self.inflight -= 1

    def _answer(
        self,
        h: BaseHTTPRequestHandler,
        body: dict[str, Any],
        chat: bool,
        prompt: str,
        item: str,
        key: str,
        attempt: int,
    ) -> None:
        fault = self.plan(item, attempt) if self.plan else None
        if fault not in (None, "ok"):
            with self._lock:
                self.faults[fault] += 1
        if self.latency_s:
            time.sleep(self.latency_s)
        if fault in ("500", "503"):
            return self._send(
                h,
                int(fault),
                {"error": {"message": "injected server error"}},
                retry_after=self.retry_after if fault == "503" else None,
            )
        if fault == "429":
            return self._send(
                h, 429, {"error": {"message": "slow down"}}, retry_after=self.retry_after
            )
        if fault == "overflow":
            return self._send(
                h,
                400,
                {
                    "error": {
                        "message": "request exceeds the available context size, try increasing it",
                        "type": "exceed_context_size_error",
                    }
                },
            )
        if fault == "hang":
            time.sleep(self.hang_s)
            h.close_connection = True
            return None
        if fault == "drop":
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return None
        if fault == "garbage":
            return self._send_raw(h, 200, b"<html>\x00\xff not json")
        text = "" if fault == "empty" else self.answer(item)
        usage = {
            "prompt_tokens": len(prompt.split()),
            "completion_tokens": len(text.split()),
            "total_tokens": 0,
        }
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        out = {
            "id": "cmpl-1",
            "object": "text_completion",
            "model": body.get("model"),
            "choices": [choice],
            "usage": usage,
        }
        if self._send(h, 200, out):
            with self._lock:
                self.answered[key] += 1
        return None

    def _send(
        self,
        h: BaseHTTPRequestHandler,
        code: int,
        obj: dict[str, Any],
        *,
        retry_after: str | None = None,
    ) -> bool:
        return self._send_raw(h, code, json.dumps(obj).encode(), retry_after=retry_after)

    def _send_raw(
        self, h: BaseHTTPRequestHandler, code: int, data: bytes, *, retry_after: str | None = None
    ) -> bool:
        try:
            h.send_response(code)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            if retry_after is not None:
                h.send_header("Retry-After", retry_after)
            h.end_headers()
            h.wfile.write(data)
            h.wfile.flush()
            return True
        except OSError:
            return False


def number_of(item: str) -> int:
    m = re.search(r"\d+", item)
    return int(m.group()) if m else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    ap.add_argument(
        "--answer",
        choices=["upper", "tree"],
        default="upper",
        help="upper-cased item, or a right-branching tree over its words",
    )
    args = ap.parse_args()
    answer = right_branching_answer if args.answer == "tree" else answer_for
    with FaultServer(latency_s=args.latency, answer=answer) as srv:
        print(srv.url, flush=True)
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main()
