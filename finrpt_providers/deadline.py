"""A total time budget per request, whatever the server does.

A read timeout bounds each wait for a byte, not a request: a server sending one byte
every half second keeps a request with a 2 s read timeout alive for as long as it
likes (slow-loris). Here every request made inside :func:`budget` is charged, on its
socket, for all the time spent waiting on the server (connecting aside: that has its
own timeout), headers and body alike, across the retries a library makes inside; once
the budget is spent the next wait raises :class:`DeadlineExceeded` (a ``TimeoutError``,
which HTTP libraries report as a read timeout).

The budget travels with the request's socket (taken when the request is sent), so a
streamed body read later, outside the ``with`` block, is still charged; time the
consumer spends between reads is not (a slow consumer is not a slow server).

Installed on the connection classes of urllib3, which both ``requests``
(:func:`install_requests`) and botocore (:func:`install_botocore`) use. Libraries are
imported only when installing.
"""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
from collections.abc import Iterator

_local = threading.local()


class DeadlineExceeded(TimeoutError):
    """The request used up its total time budget."""


class Budget:
    """Seconds a request may spend waiting on its server (``allow`` adds to it, e.g. once a
    body's announced size is known)."""

    def __init__(self, seconds: float, what: str = "the request") -> None:
        self.seconds = float(seconds)
        self.left = float(seconds)
        self.what = what

    def allow(self, seconds: float) -> None:
        self.seconds += seconds
        self.left += seconds

    @property
    def exceeded(self) -> bool:
        return self.left <= 0

    def error(self) -> DeadlineExceeded:
        return DeadlineExceeded(f"{self.what} used up its total deadline of {self.seconds:g} s "
                                "(the server answers too slowly)")


@contextlib.contextmanager
def budget(seconds: float, what: str = "the request") -> Iterator[Budget]:
    """Requests sent in this thread inside the block are charged to one new budget."""
    b = Budget(seconds, what)
    prev = getattr(_local, "budget", None)
    _local.budget = b
    try:
        yield b
    finally:
        _local.budget = prev


def current() -> Budget | None:
    return getattr(_local, "budget", None)


class _Socket:
    """A connected socket whose waits (receiving, and sending to a server that reads slowly) are charged to the budget of
    the request it carries."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._timeout = sock.gettimeout()
        self.budget: Budget | None = None

    def __getattr__(self, name: str):
        return getattr(self._sock, name)

    def settimeout(self, value: float | None) -> None:
        self._timeout = value
        self._sock.settimeout(value)

    def gettimeout(self) -> float | None:
        return self._timeout

    def sendall(self, data, *args):
        self.budget = current()  # a new request on this connection: its budget from now on
        return self._charged(self._sock.sendall, data, *args)  # a server reading slowly is charged too

    def send(self, data, *args):
        self.budget = current()
        return self._charged(self._sock.send, data, *args)

    def _charged(self, fn, *args):
        b = self.budget
        if b is None:
            return fn(*args)
        if b.exceeded:
            raise b.error()
        self._sock.settimeout(b.left if self._timeout is None else min(self._timeout, b.left))
        t0 = time.monotonic()
        try:
            return fn(*args)
        except TimeoutError:
            b.left -= time.monotonic() - t0
            t0 = None
            if b.exceeded:
                raise b.error() from None
            raise
        finally:
            if t0 is not None:
                b.left -= time.monotonic() - t0
            self._sock.settimeout(self._timeout)

    def recv_into(self, buffer, nbytes: int = 0, flags: int = 0):
        return self._charged(self._sock.recv_into, buffer, nbytes, flags)

    def recv(self, bufsize: int, flags: int = 0):
        return self._charged(self._sock.recv, bufsize, flags)

    def makefile(self, mode: str = "r", buffering: int | None = None, **kwargs):
        # http.client reads a response through sock.makefile("rb"): make those reads ours
        if mode != "rb":
            return self._sock.makefile(mode, buffering, **kwargs)
        raw = socket.SocketIO(self, "rb")  # type: ignore[arg-type]
        # as socket.makefile does: the socket stays open until this file is closed too (http.client
        # closes the connection's socket while a response to a "Connection: close" is still read)
        if hasattr(self._sock, "_io_refs"):
            self._sock._io_refs += 1
        return io.BufferedReader(raw, buffering if buffering and buffering > 0 else io.DEFAULT_BUFFER_SIZE)


def connection_class(base: type) -> type:
    """A subclass of urllib3 connection class ``base`` whose socket is charged to budgets."""

    class DeadlineConnection(base):  # type: ignore[misc, valid-type]
        def connect(self) -> None:
            super().connect()
            if self.sock is not None and not isinstance(self.sock, _Socket):
                self.sock = _Socket(self.sock)

    DeadlineConnection.__name__ = DeadlineConnection.__qualname__ = f"Deadline{base.__name__}"
    return DeadlineConnection


def pool_class(base: type) -> type:
    """A subclass of urllib3 connection pool class ``base`` using :func:`connection_class`."""
    return type(f"Deadline{base.__name__}", (base,), {"ConnectionCls": connection_class(base.ConnectionCls)})


def install_requests(session) -> None:
    """Mount budget-aware adapters on a ``requests.Session`` (http and https)."""
    from requests.adapters import HTTPAdapter
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    classes = {"http": pool_class(HTTPConnectionPool), "https": pool_class(HTTPSConnectionPool)}
    for prefix in ("http://", "https://"):
        adapter = session.get_adapter(prefix)
        if not isinstance(adapter, HTTPAdapter):
            continue
        adapter.poolmanager.pool_classes_by_scheme = dict(classes)
        adapter.poolmanager.clear()


def install_botocore(client) -> bool:
    """Make a boto3/botocore client's requests budget-aware. False when this botocore
    keeps its pools elsewhere (then only its per-read timeouts apply)."""
    try:
        classes = client._endpoint.http_session._pool_classes_by_scheme
    except AttributeError:
        return False
    for scheme, cls in list(classes.items()):
        if not cls.__name__.startswith("Deadline"):
            classes[scheme] = pool_class(cls)  # the dict is shared with the client's pool managers
    return True


__all__ = ["Budget", "DeadlineExceeded", "budget", "current", "install_requests", "install_botocore"]
