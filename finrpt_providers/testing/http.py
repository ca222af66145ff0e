"""A tiny threaded HTTP server on 127.0.0.1 for the fake services (stdlib only)."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    #: when it arrived (time.monotonic(): tests count requests per window)
    at: float = field(default_factory=lambda: time.monotonic())


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: send only this many body bytes (the full Content-Length announced), then drop the connection
    cut_at: int | None = None

    @classmethod
    def json(cls, data: Any, status: int = 200, **headers: str) -> "Response":
        return cls(status, json.dumps(data).encode(), {"Content-Type": "application/json", **headers})

    @classmethod
    def text(cls, text: str, status: int = 200, content_type: str = "text/plain", **headers: str) -> "Response":
        return cls(status, text.encode(), {"Content-Type": content_type, **headers})


class FakeHTTPServer:
    """Serve ``handle(Request) -> Response`` on 127.0.0.1, port 0, in a daemon thread.

    Use as a context manager. ``requests`` logs every request (thread-safe).
    Faults for every fake: ``reset_next`` (that many next answers are cut mid-body and
    the connection dropped), ``hang_next`` (that many next requests are accepted and
    never answered, until ``hang_seconds`` pass or the server stops) and
    ``trickle_next`` (that many next answers, status line to last byte, are sent one
    byte every ``trickle_seconds``: slow-loris).
    """

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.reset_next = 0
        self.hang_next = 0
        self.hang_seconds = 30.0
        self.trickle_next = 0
        self.trickle_seconds = 0.5
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def handle(self, request: Request) -> Response:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeHTTPServer":
        outer = self
        self._stopping.clear()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # headers and body go out in two writes: without this, Nagle's algorithm holds the
                # body until the client's delayed ACK of the headers (~40 ms a request on keep-alive)
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                req = Request(self.command, parts.path,
                              {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
                              {k.lower(): v for k, v in self.headers.items()})
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                if req.path == "/_fake/requests":  # for a fake in another process (benchmarks)
                    with outer._lock:
                        resp = Response.json({"count": len(outer.requests)})
                else:
                    with outer._lock:
                        outer.requests.append(req)
                    hang = cut = trickle = False
                    with outer._lock:
                        if outer.hang_next > 0:
                            outer.hang_next -= 1
                            hang = True
                        elif outer.reset_next > 0:
                            outer.reset_next -= 1
                            cut = True
                        elif outer.trickle_next > 0:
                            outer.trickle_next -= 1
                            trickle = True
                    if hang:
                        outer._stopping.wait(outer.hang_seconds)
                        self.close_connection = True
                        return
                    try:
                        resp = outer.handle(req)
                    except Exception as e:  # a fake's bug shows up as a 500 with the reason
                        resp = Response.text(f"fake server error: {type(e).__name__}: {e}", 500)
                    if cut:
                        resp.cut_at = max(1, len(resp.body) // 2)
                    if trickle:
                        self._trickle(resp)
                        return
                self.send_response(resp.status)
                for k, v in resp.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(resp.body)))
                self.end_headers()
                if self.command != "HEAD":
                    if resp.cut_at is not None:
                        self.wfile.write(resp.body[: resp.cut_at])
                        self.wfile.flush()
                        self.close_connection = True
                        try:
                            self.connection.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                        return
                    self.wfile.write(resp.body)

            def _trickle(self, resp: Response) -> None:
                head = f"HTTP/1.1 {resp.status} X\r\n" + "".join(
                    f"{k}: {v}\r\n" for k, v in {**resp.headers, "Content-Length": str(len(resp.body))}.items())
                data = head.encode() + b"\r\n" + resp.body
                self.close_connection = True
                try:
                    for i in range(len(data)):
                        if outer._stopping.wait(outer.trickle_seconds):
                            return
                        self.wfile.write(data[i:i + 1])
                except OSError:  # the client gave up: what it should do
                    pass

            do_GET = do_POST = do_HEAD = _serve

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address) -> None:
                import sys

                if isinstance(sys.exc_info()[1], OSError):
                    return  # the client hung up mid-answer (as clients facing hostile answers should)
                super().handle_error(request, client_address)

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeHTTPServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def paths(self) -> list[str]:
        with self._lock:
            return [r.path for r in self.requests]
