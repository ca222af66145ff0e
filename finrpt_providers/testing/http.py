"""A tiny threaded HTTP server on 127.0.0.1 for the fake services (stdlib only)."""

from __future__ import annotations

import json
import threading
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


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200, **headers: str) -> "Response":
        return cls(status, json.dumps(data).encode(), {"Content-Type": "application/json", **headers})

    @classmethod
    def text(cls, text: str, status: int = 200, content_type: str = "text/plain", **headers: str) -> "Response":
        return cls(status, text.encode(), {"Content-Type": content_type, **headers})


class FakeHTTPServer:
    """Serve ``handle(Request) -> Response`` on 127.0.0.1, port 0, in a daemon thread.

    Use as a context manager. ``requests`` logs every request (thread-safe).
    """

    def __init__(self) -> None:
        self.requests: list[Request] = []
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

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

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
                    try:
                        resp = outer.handle(req)
                    except Exception as e:  # a fake's bug shows up as a 500 with the reason
                        resp = Response.text(f"fake server error: {type(e).__name__}: {e}", 500)
                self.send_response(resp.status)
                for k, v in resp.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(resp.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(resp.body)

            do_GET = do_POST = do_HEAD = _serve

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
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
