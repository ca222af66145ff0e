"""Massive's WebSocket aggregates: one connection of the live stream (see finrpt_providers.live).

Protocol (Massive's docs): connect to ``wss://socket.massive.com/stocks`` (real-time) or
``wss://delayed.massive.com/stocks`` (15 minutes late; a plan includes one or the
other); the server greets with a ``connected`` status; send
``{"action":"auth","params":KEY}`` and wait for ``auth_success``; then
``{"action":"subscribe","params":"AM.AAPL,AM.MSFT"}`` (``AM`` per minute, ``A`` per
second). Messages are JSON arrays of events; an aggregate has ``sym``, ``o h l c``,
``v`` (bar volume), ``vw`` (bar VWAP), ``s``/``e`` (bar start/end, Unix ms UTC). One
connection per account at a time: another gets a ``max_connections`` status.

The key goes in one message and nowhere else: the websockets library logs frames at
DEBUG, so it is handed a logger of its own that never logs below INFO.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ... import redact
from ...errors import AuthenticationFailed, MissingCredentials, NotEntitled, ProviderError, ProviderUnavailable
from ...live import ConnectionLost, LiveFeed

if TYPE_CHECKING:
    import pandas as pd

    from ...config import Config

NAME = "massive_rest"
log = redact.logger(__name__)
#: the websockets library's own logger for our connections: frames (and so the auth message)
#: are logged at DEBUG, which this logger never emits whatever the root level
_WIRE = redact.logger(__name__ + ".wire")
_WIRE.setLevel(logging.INFO)

PREFIX = {"1m": "AM", "1s": "A"}
#: a message longer than this is parsed PART_EVENTS events at a time
SPLIT_BYTES = 4 << 20
PART_EVENTS = 20_000
#: the handshake reads this much of a message for status events (data before the auth is not ours to parse)
_STATUS_MAX = 1 << 20
FEEDS = ("real-time", "delayed")
_NOT_ENTITLED = ("plan", "not authorized", "not entitled", "entitle", "upgrade")


def _require_websockets():
    try:
        from websockets.sync.client import connect
    except ImportError:
        raise ProviderError("live bars need the websockets library: pip install 'finrpt-providers[stream]'",
                            provider=NAME) from None
    return connect


def url_of(config: "Config", feed: str) -> str:
    return config.value("MASSIVE_WS_DELAYED_URL" if feed == "delayed" else "MASSIVE_WS_REALTIME_URL")


class MassiveFeed(LiveFeed):
    provider = NAME

    def __init__(self, config: "Config", interval: str, key: str, feed: str | None = None) -> None:
        if not key:
            raise MissingCredentials("no Massive API key: set MASSIVE_API_KEY (the WebSocket authenticates with "
                                     "the REST key)", provider=NAME)
        self._config = config
        self._key = key
        self.feed = (feed or config.value("MASSIVE_WS_FEED")).lower()
        self.url = url_of(config, self.feed)
        self.prefix = PREFIX[interval]
        self.interval = interval
        self._ws = None
        self._send_lock = threading.Lock()
        self._parts = None  # the rest of a large message, as frames
        self._acked: float | None = None  # when the subscription's acknowledgement is due
        budget = int(config.value("FINRPT_STREAM_MEMORY_MB")) << 20
        #: the largest message taken: a quarter of the stream's memory budget (the socket refuses more)
        self.max_message = max(1 << 20, budget // 4)
        #: a message longer than this is parsed in parts of ``part_events`` events (parsing whole
        #: costs several times its size in Python objects): 4 MiB and 20,000 at the default budget
        self.split_bytes = max(64 << 10, min(SPLIT_BYTES, budget // 64))
        self.part_events = max(500, min(PART_EVENTS, budget // 13_000))

    def __repr__(self) -> str:
        return f"<MassiveFeed {self.feed} {self.url} key=****>"

    # -- the connection ----------------------------------------------------------------
    def connect(self) -> None:
        """Open, upgrade and authenticate within MASSIVE_WS_OPEN_TIMEOUT in all, whatever the
        server sends meanwhile (status messages, data, nothing)."""
        connect = _require_websockets()
        from websockets.exceptions import InvalidHandshake, InvalidURI

        cfg = self._config
        limit = cfg.value("MASSIVE_WS_OPEN_TIMEOUT")
        deadline = time.monotonic() + limit
        self._acked = None
        try:
            # entered by hand (closed in close()): websockets 17 wants its context manager entered,
            # older releases return the open connection, which enters as itself
            ws = connect(self.url, open_timeout=limit, ping_interval=cfg.value("MASSIVE_WS_PING_INTERVAL"),
                         ping_timeout=cfg.value("MASSIVE_WS_PING_TIMEOUT"), close_timeout=2,
                         max_size=self.max_message, logger=_WIRE).__enter__()
        except InvalidURI as e:
            raise ProviderError(f"{self.url} is not a WebSocket URL ({e}): check MASSIVE_WS_"
                                f"{'DELAYED' if self.feed == 'delayed' else 'REALTIME'}_URL", provider=NAME) from None
        except (OSError, TimeoutError, InvalidHandshake) as e:
            raise ConnectionLost(f"could not connect to {self.url} within {limit:g} s "
                                 f"(MASSIVE_WS_OPEN_TIMEOUT): {type(e).__name__}: {e}") from None
        self._ws = ws
        others = 0
        try:
            with self._send_lock:
                ws.send(json.dumps({"action": "auth", "params": self._key}))
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ConnectionLost(f"{self.url} did not answer the authentication within {limit:g} s "
                                         f"(MASSIVE_WS_OPEN_TIMEOUT)"
                                         + (f"; it sent {others} other message(s) meanwhile" if others else ""))
                try:
                    raw = ws.recv(timeout=left)
                except TimeoutError:
                    continue
                others += 1
                if len(raw) > _STATUS_MAX:  # no status message is this long: data, not the answer
                    continue
                for ev in _events(raw):
                    if ev.get("ev") != "status":
                        continue
                    status = str(ev.get("status", ""))
                    if status == "auth_success":
                        log.info("stream: authenticated on %s (%s feed)", self.url, self.feed)
                        self._acked = deadline  # the subscription's acknowledgement is due by then too
                        return
                    self._status(ev)  # raises for every failure
        except ConnectionLost:
            self.close()
            raise
        except ProviderError:
            self.close()
            raise
        except Exception as e:
            self.close()
            raise ConnectionLost(_closed_why(e, self.max_message)) from None

    def _status(self, ev: dict) -> None:
        """Map a status event: failures raise, the rest is logged."""
        status = str(ev.get("status", ""))
        message = redact.scrub(str(ev.get("message", "")))[:300]
        low = message.lower()
        if status == "auth_failed" or (status == "error" and "auth" in low and "fail" in low):
            raise AuthenticationFailed(f"Massive refused the API key on its WebSocket ({message}): check "
                                       "MASSIVE_API_KEY (the REST key; not the S3 key pair)", provider=NAME)
        if status == "max_connections" or "max" in low and "connection" in low:
            raise ProviderUnavailable(f"Massive allows one WebSocket connection per account and another process "
                                      f"holds it ({message}): stop the other stream (or the other program using "
                                      "this key), then retry", provider=NAME)
        if status == "error" and any(w in low for w in _NOT_ENTITLED):
            raise self._not_entitled(message)
        if status == "error":
            raise ProviderError(f"Massive's WebSocket answered an error: {message}", provider=NAME)
        if status == "success":
            self._acked = None
        log.debug("stream: status %s: %s", status, message)

    def _not_entitled(self, message: str) -> NotEntitled:
        hint = ""
        if self.feed == "real-time":
            other = MassiveFeed(self._config, self.interval, self._key, feed="delayed")
            if other.probe():
                hint = ("; your plan includes the DELAYED feed (15 minutes late): set MASSIVE_WS_FEED=delayed")
        return NotEntitled(f"your Massive plan does not include the {self.feed} WebSocket feed ({message})"
                           f"{hint or ': see https://massive.com/pricing'}", provider=NAME)

    def probe(self) -> bool:
        """Can this feed be authenticated and subscribed to? (one short connection)"""
        try:
            self.connect()
            self.subscribe(["SPY"])
            for _ in range(5):
                try:
                    raw = self._ws.recv(timeout=2)
                except TimeoutError:
                    return True
                for ev in _events(raw):
                    if ev.get("ev") == "status":
                        if ev.get("status") == "error":
                            return False
                        if ev.get("status") == "success":
                            return True
            return True
        except Exception:
            return False
        finally:
            self.close()

    def _send(self, action: str, tickers: Sequence[str]) -> None:
        ws = self._ws
        if ws is None:
            raise ConnectionLost("not connected")
        params = ",".join(f"{self.prefix}.{t}" for t in tickers)
        try:
            with self._send_lock:
                ws.send(json.dumps({"action": action, "params": params}))
        except Exception as e:
            raise ConnectionLost(_closed_why(e)) from None

    def subscribe(self, tickers: Sequence[str]) -> None:
        self._send("subscribe", tickers)

    def unsubscribe(self, tickers: Sequence[str]) -> None:
        self._send("unsubscribe", tickers)

    def receive(self, timeout: float) -> "pd.DataFrame | None":
        """The next frame: from the rest of a large message first, then from the socket.
        The subscription must be acknowledged (or data arrive) within MASSIVE_WS_OPEN_TIMEOUT
        of the connection's start."""
        if self._parts is not None:
            frame = next(self._parts, None)
            if frame is not None:
                return frame
            self._parts = None
        ws = self._ws
        if ws is None:
            raise ConnectionLost("not connected")
        due = self._acked
        if due is not None:
            left = due - time.monotonic()
            if left <= 0:
                raise ConnectionLost(f"{self.url} did not acknowledge the subscription within "
                                     f"{self._config.value('MASSIVE_WS_OPEN_TIMEOUT'):g} s (MASSIVE_WS_OPEN_TIMEOUT)")
            timeout = min(timeout, left)
        try:
            raw = ws.recv(timeout=timeout)
        except TimeoutError:
            return None
        except Exception as e:
            raise ConnectionLost(_closed_why(e, self.max_message)) from None
        if len(raw) > self.split_bytes:
            self._parts = self._split(raw)
            return next(self._parts, None)
        rows = []
        for ev in _events(raw):
            kind = ev.get("ev")
            if kind == self.prefix:
                rows.append(ev)
            elif kind == "status":
                self._status(ev)
        if rows:
            self._acked = None  # data flows: the subscription holds
        return events_to_bars(rows) if rows else None

    def _split(self, raw):
        """A large message's events, PART_EVENTS at a time, as frames (no message-wide list of
        dicts: a 50 MB message costs one part's worth of Python objects at a time)."""
        rows = []
        for ev in _iter_events(raw):
            kind = ev.get("ev")
            if kind == self.prefix:
                rows.append(ev)
                if len(rows) >= self.part_events:
                    self._acked = None
                    yield events_to_bars(rows)
                    rows = []
            elif kind == "status":
                self._status(ev)
        if rows:
            self._acked = None
            yield events_to_bars(rows)

    def fill(self, gaps: dict[str, tuple[Any, Any]]) -> "pd.DataFrame | None":
        """Missed bars from REST (raw, as the stream's). Massive serves minute (and second)
        aggregates one ticker per request (its grouped endpoint is daily only), so every
        hole's ticker is one request, MASSIVE_REST_WORKERS at once under the client's shared
        rate limit; the stream's reader goes on reading meanwhile."""
        from concurrent.futures import ThreadPoolExecutor

        import pandas as pd

        from . import MassiveClient, results_to_bars

        if not gaps:
            return None
        client = MassiveClient(self._config)
        mult, span = (1, "minute") if self.interval == "1m" else (1, "second")

        def one(item):
            ticker, (after, before) = item
            frm = int(after.timestamp() * 1000) + 1
            to = int(before.timestamp() * 1000) - 1
            results = []
            for page in client.pages(f"/v2/aggs/ticker/{ticker}/range/{mult}/{span}/{frm}/{to}",
                                     {"adjusted": "false", "sort": "asc", "limit": "50000"},
                                     keep=("adjusted", "limit", "sort"), max_results=200_000,
                                     key=lambda r: r.get("t")):
                results.extend(page.get("results") or [])
            return ticker, results_to_bars(results, "1m")

        items = list(gaps.items())
        workers = max(1, min(client.workers, len(items)))
        if workers == 1:
            got = [one(i) for i in items]
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="massive-fill") as pool:
                got = list(pool.map(one, items))
        parts = {t: bars for t, bars in got if len(bars)}
        if not parts:
            return None
        return pd.concat(parts, names=["ticker", "timestamp"])

    def close(self) -> None:
        self._parts = None
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                ws.close()
            except Exception:
                pass


def _events(raw: Any) -> list[dict]:
    try:
        data = json.loads(raw)
    except (TypeError, ValueError, RecursionError):  # RecursionError: nested 100,000 deep
        log.warning("stream: ignored a message that is not JSON (%d bytes)", len(raw or ""))
        return []
    if isinstance(data, dict):
        data = [data]
    return [e for e in data if isinstance(e, dict)] if isinstance(data, list) else []


def _closed_why(e: BaseException, max_message: int | None = None) -> str:
    why = redact.scrub(f"{type(e).__name__}: {e}")[:300]
    if max_message and ("1009" in why or "too big" in why.lower()):
        why = (f"Massive sent a message larger than {max_message / 2**20:.0f} MiB, a quarter of the stream's memory "
               f"budget, so it was refused (raise FINRPT_STREAM_MEMORY_MB to take it): {why}")
    return why


def _iter_events(raw: Any):
    """The event objects of a JSON array message one at a time (a dict message: itself)."""
    import re

    if isinstance(raw, (bytes, bytearray)):
        raw = bytes(raw).decode("utf-8", "replace")
    skip = re.compile(r"[\s,]*")
    i = skip.match(raw, 0).end()
    if not raw.startswith("[", i):
        yield from _events(raw)
        return
    decoder = json.JSONDecoder()
    i += 1
    n = 0
    while True:
        i = skip.match(raw, i).end()
        if i >= len(raw) or raw[i] == "]":
            return
        try:
            ev, i = decoder.raw_decode(raw, i)
        except (ValueError, RecursionError):
            log.warning("stream: ignored the rest of a message that is not JSON (%d of %d bytes, after %d "
                        "event(s))", len(raw) - i, len(raw), n)
            return
        n += 1
        if isinstance(ev, dict):
            yield ev


def events_to_bars(rows: list[dict]) -> "pd.DataFrame":
    """Aggregate events -> a long bar frame (ticker, timestamp): start-of-bar New York time,
    float volume, the bar's VWAP; no trade count (the events carry none).

    Nothing is judged here: the stream passes every frame through :func:`~finrpt_providers.frames.gate`,
    which refuses a bad bar for its ticker alone. So a field that is not a number becomes
    NaN and a start that is not one becomes NaT (the gate names the ticker's bar), and only
    an event without a ticker symbol (nobody to blame) is left out, with a warning."""
    import numpy as np
    import pandas as pd

    from ...provider import ET

    n = len(rows)
    fields = (("open", "o"), ("high", "h"), ("low", "l"), ("close", "c"), ("volume", "v"))
    try:  # the common case: well-formed events, one pass per column
        t = np.fromiter((r["s"] for r in rows), dtype="int64", count=n)
        if n and ((t >= _LIMIT_MS) | (t <= -_LIMIT_MS)).any():
            raise OverflowError("s")
        cols = {k: np.fromiter((r[c] for r in rows), dtype="float64", count=n) for k, c in fields}
        cols["vwap"] = np.fromiter((np.nan if r.get("vw") is None else r["vw"] for r in rows), dtype="float64",
                                   count=n)
        syms = [r["sym"] for r in rows]
        if not all(type(x) is str and x for x in syms):
            raise TypeError("sym")
        bad_t = None
    except (KeyError, TypeError, ValueError, OverflowError):
        rows, t, cols, syms, bad_t = _malformed(rows, fields)
        n = len(rows)
    stamps = (t * 1_000_000).view("M8[ns]")
    if bad_t is not None and bad_t.any():
        stamps = stamps.copy()
        stamps[bad_t] = np.datetime64("NaT")
    stamps = pd.DatetimeIndex(stamps).tz_localize("UTC").tz_convert(ET)
    df = pd.DataFrame(cols, index=pd.MultiIndex.from_arrays([pd.Index(syms, dtype="object"), stamps],
                                                            names=["ticker", "timestamp"]))
    df["transactions"] = pd.array([pd.NA] * n, dtype="Int64")
    return df


#: starts (Unix ms) at or beyond this are no instant a bar can have (datetime64[ns] ends in 2262)
_LIMIT_MS = 9_000_000_000_000


def _number(v: Any) -> float:
    import math

    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return math.nan
    try:
        return float(v)
    except OverflowError:
        return math.inf if v > 0 else -math.inf


def _malformed(rows: list[dict], fields) -> tuple:
    """The slow path for a message with a malformed event: field by field."""
    import numpy as np

    kept = [r for r in rows if isinstance(r.get("sym"), str) and r.get("sym")]
    if len(kept) < len(rows):
        log.warning("stream: left out %d aggregate event(s) without a ticker symbol", len(rows) - len(kept))
    starts = [r.get("s") for r in kept]
    bad_t = np.array([isinstance(s, bool) or not isinstance(s, int) or not -_LIMIT_MS < s < _LIMIT_MS
                      for s in starts], dtype=bool)
    t = np.array([0 if b else s for s, b in zip(starts, bad_t)], dtype="int64")
    cols = {k: np.array([_number(r.get(c)) for r in kept], dtype="float64") for k, c in fields}
    cols["vwap"] = np.array([np.nan if r.get("vw") is None else _number(r["vw"]) for r in kept], dtype="float64")
    return kept, t, cols, [r["sym"] for r in kept], bad_t
