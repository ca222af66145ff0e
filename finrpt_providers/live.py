"""Live bars as they close: :func:`stream`, one connection kept up, every bar once and in order.

    >>> with finrpt_providers.stream(["AAPL", "MSFT"]) as live:
    ...     for bars in live:              # a long frame (ticker, timestamp) per batch of closed bars
    ...         print(bars.attrs["feed"], bars)

The transport is a provider's (one declaring ``serves_stream``; Massive's WebSocket
today); this module owns what every live feed needs the same way:

* **two threads** per stream: the *reader* keeps the connection and only receives (so
  pings are answered and the socket drained whatever happens downstream); the
  *deliverer* gates, orders, fills and hands frames to the consumer (sync or
  ``async for``). A fill runs on the deliverer while the reader goes on reading;
* **memory bounded by a budget** (FINRPT_STREAM_MEMORY_MB, in MiB): half of it for frames
  waiting (received and not yet read by the consumer; also at most FINRPT_STREAM_QUEUE
  frames for the consumer), half for the session's delivered bars, kept columnar (one
  set of NumPy arrays per chunk of the session) for the chain's answers about today and
  for telling a re-sent bar from a late one; when that half is full the oldest bars go
  (the chain then joins the stream's bars only where they follow its own answer). Per
  ticker, nothing else is kept but its last delivered start. A provider splits a large
  message into frames, and refuses one larger than a quarter of the budget;
* **reconnects**: a dropped or stalled connection (no answer to a ping) is reopened
  after a capped, jittered backoff, re-authenticated and re-subscribed; after
  FINRPT_STREAM_MAX_RECONNECTS failed attempts in a row the stream fails with
  :class:`~finrpt_providers.errors.ProviderUnavailable`;
* **one gate**: every frame the feed receives, and every frame a fill returns, passes
  :func:`~finrpt_providers.frames.gate` before anything else looks at it (before the
  dedupe, the hole detection and the bars kept for the chain), expecting the session
  being streamed (the configured clock's day, ``config.today()``), the stream's
  interval, the subscribed tickers (any, for ``"*"``) and the extended hours
  (04:00-20:00 New York). A bad bar (missing, infinite, zero or negative price, high/low
  not bounding open/close, infinite or negative volume, another session's stamp,
  outside the hours) or two bars of one start with different values in one frame is an
  **error event for its ticker**: a WARNING names the ticker and the reason, the next
  frame delivered carries it in ``attrs["errors"]`` (ticker -> message), and none of that
  ticker's bars of that frame is delivered (neither of a conflicting pair: which one is
  right cannot be told). After the gate, a stream of the regular session (the default,
  ``extended_hours=False``) keeps the bars starting inside it (09:30-16:00, half days
  from the calendar), as every intraday answer does; the others are counted in
  ``outside_hours`` and never delivered nor filled. The first bar after the close ends a
  regular stream (its iteration stops, as after ``close()``). The ticker's bars in later frames keep flowing, and a refused
  bar never moves the ticker's last delivered start. Like a reconnect, an error event
  makes the ticker's next good bar, if it leaves a hole behind it, fill the hole first
  (so a refused minute comes from REST when REST has it; when the fill brings none of
  the hole's bars, the hole is named in ``attrs["gaps"]``). Two identical bars of one
  start in one frame are delivered once;
* **exactly once, in order**: per ticker, a bar whose start is at or before the last one
  delivered is not delivered again: an exact re-send of a delivered bar (same start, same
  values) is dropped silently; the same start with other values is an error event (as
  above); a **late bar** (a start the stream skipped, arriving after a later one, or a
  re-send of a bar no longer kept) is reported, not delivered out of order: a WARNING,
  and the next frame's ``attrs["late"]`` (ticker -> the late bars' start Timestamps);
* **fills in bulk**: the first bars after a reconnect that leave a hole behind them make
  the feed fill every such hole of the frame in ONE call (Massive: REST requests for
  the holes' tickers, MASSIVE_REST_WORKERS at once under the shared rate limit) before
  those bars are delivered, and a log line says what was filled. Only bars strictly
  between the last delivered one and the first new one are filled, so every filled bar
  is closed. Filled bars pass the same gate (expecting the holes' tickers): a bad one is
  an error event for its ticker, whose filled bars are then not delivered. A fill that
  fails, or is refused, leaves the hole named in the next frame's ``attrs["gaps"]`` and
  in a warning: never silent;
* **a slow consumer**: when the waiting half of the budget (or FINRPT_STREAM_QUEUE
  frames) is full, the reader thread blocks (one warning per episode): nothing is
  dropped. If the server gives up on the blocked connection meanwhile, the reconnect
  fills what it missed;
* **plugins contained**: whatever a feed raises other than ConnectionLost, a
  ProviderError or KeyboardInterrupt (a bug, ``sys.exit``) ends the stream with a
  :class:`~finrpt_providers.errors.PluginError` naming the plugin: never an exit of the
  process and never a normal end;
* **terminal errors** (bad key, a plan without the feed, another process holding the
  account's one connection) end the stream: the next read raises them.

A stream of ``1m`` bars also serves the chain: while it is open, intraday answers about
today get its bars after the last one the providers had (``attrs["sources"]`` names
the stream). Bars are as traded; today's bars need no adjustment (adjustments scale
bars BEFORE an ex-date, and no ex-date after today is known).
"""

from __future__ import annotations

import datetime as dt
import queue
import random
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from . import redact
from .errors import ConfigurationError, DataIntegrityError, InvalidQuery, ProviderError, ProviderUnavailable
from .timebase import EXTENDED_HOURS, MINUTE_NS

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from .config import Config
    from .provider import PriceProvider

log = redact.logger(__name__)

STREAM_INTERVALS = {"1m": 60_000_000_000, "1s": 1_000_000_000}
#: the wildcard: every ticker the feed has
EVERY = "*"
#: before any bar (the last delivered start of a ticker never seen)
_NEVER = -(1 << 62)
#: bytes a kept bar costs: start (int64), ticker code (int32), seven float64 columns
KEPT_ROW_BYTES = 8 + 4 + 7 * 8
#: kept chunks are merged until they hold this many bars (a market minute is ~10,000), or a
#: quarter of the kept share, whichever is less
_CHUNK_ROWS = 65_536
#: bytes a ticker's own state costs (its last start, its code, its name): charged to the kept share
TICKER_BYTES = 256
#: what a streamed ticker may look like (Massive's symbols: letters, digits, a class after a dot,
#: lowercase letters for preferred series); anything else under "*" is a hostile server's
_SYMBOL = r"^[A-Za-z][A-Za-z0-9]{0,11}([.:][A-Za-z0-9]{1,6})?$"
#: the kept columns (transactions as float64, NaN where missing: exact below 2**53)
_KEPT = ("open", "high", "low", "close", "volume", "vwap", "transactions")


class ConnectionLost(Exception):
    """Raised by a :class:`LiveFeed` when its connection dropped or stalled: the stream
    reconnects. (A ProviderError ends the stream; anything else ends it as a PluginError.)"""


class LiveFeed:
    """What a provider's :meth:`~finrpt_providers.provider.PriceProvider.open_stream` returns:
    one connection's worth of a live source. :meth:`connect` and :meth:`receive` are called
    from the stream's reader thread, :meth:`fill` from its deliverer thread (while the
    reader goes on receiving), :meth:`subscribe`, :meth:`unsubscribe` and :meth:`close`
    from any of them or the consumer's thread: make them thread-safe."""

    #: the provider's name, and which feed this is ("real-time", "delayed")
    provider: str = ""
    feed: str = ""

    def connect(self) -> None:
        """Open and authenticate, within the feed's own open timeout however the server
        behaves. Raise ConnectionLost for what a retry may cure, a ProviderError
        (AuthenticationFailed, NotEntitled...) for what it cannot."""
        raise NotImplementedError

    def subscribe(self, tickers: Sequence[str]) -> None:
        raise NotImplementedError

    def unsubscribe(self, tickers: Sequence[str]) -> None:
        raise NotImplementedError

    def receive(self, timeout: float) -> pd.DataFrame | None:
        """The next batch of closed bars as a long frame indexed by (ticker, timestamp), or
        None when nothing came within ``timeout`` seconds. ConnectionLost when it dropped.
        A large message comes as several frames (one per call), so no frame is large."""
        raise NotImplementedError

    def fill(self, gaps: dict[str, tuple[Any, Any]]) -> pd.DataFrame | None:
        """Bars strictly between ``after`` and ``before`` (tz-aware Timestamps) for each
        ticker of ``gaps``, as a long frame: what the connection missed. Called once with
        every hole of a frame (under ``"*"``: thousands of tickers): ask with as few
        requests as the source allows."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


_OPEN: "weakref.WeakSet[Stream]" = weakref.WeakSet()
_OPEN_LOCK = threading.Lock()


def _tickers(tickers: str | Iterable[str]) -> list[str]:
    from .provider import normalize_ticker

    items = [tickers] if isinstance(tickers, str) else list(tickers) if tickers is not None else []
    if not items:
        raise InvalidQuery("stream() needs at least one ticker (or '*' for every ticker)")
    out = [EVERY if t == EVERY else normalize_ticker(t) for t in items]
    return list(dict.fromkeys(out))


def _interval(interval: Any) -> str:
    if interval not in STREAM_INTERVALS:
        raise InvalidQuery(f"interval={interval!r} cannot be streamed: use '1m' (bars per minute) or '1s' (per "
                           "second); longer bars: stream '1m' and resample, or ask get_prices")
    return interval


def stream_source(config: "Config", providers: Sequence[str] | None = None) -> "PriceProvider":
    """The first provider, in the configured order, that serves a live stream and is ready."""
    from .plugins import guard, registry

    names = list(providers) if providers is not None else config.providers
    reg = registry()
    why = []
    for name in names:
        entry = reg.get(name)
        if entry is None or not entry.provider.serves_stream:
            continue
        p = guard(entry.provider, "configured()", entry.provider.configured, config)
        reason = guard(p, "not_ready_reason()", p.not_ready_reason)
        if reason is None:
            return p
        why.append(f"{name}: {reason}")
    streamers = [n for n, e in reg.items() if e.provider.serves_stream]
    if why:
        raise ConfigurationError("no provider can open a live stream: " + "; ".join(why))
    raise ConfigurationError("no configured provider serves a live stream (FINRPT_PRICE_PROVIDERS="
                             f"{','.join(names)}): add one of {', '.join(streamers) or '(none installed)'}")


def stream(tickers: str | Iterable[str], *, interval: str = "1m", config: "Config | dict | None" = None,
           providers: Sequence[str] | None = None, extended_hours: bool = False) -> "Stream":
    """Bars of ``tickers`` as they close, from the first configured provider that streams.

    Returns a :class:`Stream`: iterate it (or ``async for``) for frames in the bar frame
    contract (New York start-of-bar timestamps, float volumes, ``vwap``); a string ticker
    gives single-ticker frames, a list gives long frames indexed by (``ticker``,
    ``timestamp``). ``attrs``: ``provider``, ``feed`` ("real-time"/"delayed"),
    ``source`` ("stream" or "fill"), ``interval``. Close it (or use ``with``) when done.
    Bad arguments raise InvalidQuery here, before any connection; connection errors
    surface at the first read.

    Bars of the regular session only (09:30-16:00 New York, 13:00 on half days), as every
    intraday answer, unless ``extended_hours=True`` (04:00-20:00); the source streams every
    hour, and the others are counted in :attr:`Stream.outside_hours`, never delivered."""
    from .config import resolve_config
    from .query import normalize_extended_hours

    names = _tickers(tickers)
    ivl = _interval(interval)
    extended = normalize_extended_hours(extended_hours)
    cfg = resolve_config(config)
    provider = stream_source(cfg, providers)
    return Stream(provider, names, ivl, cfg, single=isinstance(tickers, str) and tickers != EVERY,
                  extended_hours=extended)


def weight(frame: Any) -> int:
    """Bytes a bar frame holds: its columns, 24 a row for the index, 64 a ticker name."""
    try:
        names = frame.index.levels[0] if getattr(frame.index, "nlevels", 1) > 1 else ()
        return int(frame.memory_usage(index=False, deep=False).sum()) + 24 * len(frame) + 64 * len(names)
    except (AttributeError, TypeError, ValueError):
        return 0


class _Budget:
    """Bytes of frames waiting, bounded: :meth:`take` blocks while full (one frame is always
    admitted when nothing waits, so a frame larger than the budget cannot wedge it)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.used = 0
        self._cv = threading.Condition()

    def take(self, n: int, stop: threading.Event, on_wait) -> bool:
        with self._cv:
            warned = False
            while self.used and self.used + n > self.cap:
                if stop.is_set():
                    return False
                if not warned:
                    warned = True
                    on_wait()
                self._cv.wait(0.25)
            self.used += n
            return True

    def give(self, n: int) -> None:
        if n:
            with self._cv:
                self.used -= n
                self._cv.notify_all()


class _Kept:
    """The session's delivered bars, columnar: chunks of NumPy arrays (one per column, every
    ticker of the chunk, sorted by ticker code then time), at most ``cap`` bytes; when full
    the oldest chunk goes. A ticker's rows are found by binary search in each chunk."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.chunk_rows = max(1024, min(_CHUNK_ROWS, cap // (4 * KEPT_ROW_BYTES)))
        self.codes: dict[str, int] = {}
        self.chunks: list[dict[str, np.ndarray]] = []
        self.day: dt.date | None = None
        self.rows = 0
        self.dropped = 0  # bars let go for room this session

    @property
    def nbytes(self) -> int:
        return self.rows * KEPT_ROW_BYTES

    def room(self, tickers: int) -> int:
        """Bytes left for bars when ``tickers`` tickers' own state is charged to this share."""
        return self.cap - tickers * TICKER_BYTES

    def add(self, frame: pd.DataFrame, tickers: int = 0) -> None:
        """Keep a gated, sorted long frame's bars (all of one session); ``tickers``: how many
        tickers the stream holds state for (charged to this share)."""
        import numpy as np

        if not len(frame) or self.cap <= 0:
            return
        stamps = frame.index.get_level_values(1)
        day = stamps[-1].date()
        if day != self.day:
            self.chunks, self.rows, self.dropped, self.day = [], 0, 0, day  # a new session: the old is history
        names = frame.index.get_level_values(0)
        local, uniq = names.factorize()
        table = np.fromiter((self.codes.setdefault(t, len(self.codes)) for t in uniq), dtype=np.int32,
                            count=len(uniq))
        code = table[local]
        chunk = {"code": code, "start": np.asarray(stamps.asi8, dtype=np.int64)}
        for c in _KEPT:
            col = frame[c]
            chunk[c] = (col.to_numpy(dtype="float64", na_value=np.nan) if c == "transactions"
                        else col.to_numpy(dtype="float64", copy=True))
        self._append(_sorted_chunk(chunk), self.room(tickers))

    def _append(self, chunk: dict, room: int) -> None:
        import numpy as np

        self.chunks.append(chunk)
        self.rows += len(chunk["code"])
        while (len(self.chunks) > 2 and len(self.chunks[-2]["code"]) + len(self.chunks[-3]["code"]) <= self.chunk_rows):
            # merge the older pairs only: the newest chunk stays whole, so eviction never takes it
            b, a = self.chunks.pop(-2), self.chunks.pop(-2)
            self.chunks.insert(len(self.chunks) - 1, _sorted_chunk({k: np.concatenate([a[k], b[k]]) for k in a}))
        while len(self.chunks) > 1 and self.nbytes > room:
            gone = self.chunks.pop(0)
            self.rows -= len(gone["code"])
            self.dropped += len(gone["code"])

    def columns(self, ticker: str) -> dict[str, np.ndarray] | None:
        """``ticker``'s kept bars, in time order, column by column (None: none kept)."""
        import numpy as np

        c = self.codes.get(ticker)
        if c is None:
            return None
        parts = []
        for chunk in self.chunks:
            lo, hi = np.searchsorted(chunk["code"], [c, c + 1])
            if hi > lo:
                parts.append({k: v[lo:hi] for k, v in chunk.items() if k != "code"})
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def frame(self, ticker: str) -> pd.DataFrame | None:
        """``ticker``'s kept bars as a bar frame (New York index)."""
        import pandas as pd

        from .timebase import ET

        cols = self.columns(ticker)
        if cols is None:
            return None
        idx = pd.DatetimeIndex(cols["start"].view("M8[ns]")).tz_localize("UTC").tz_convert(ET).rename("timestamp")
        out = pd.DataFrame({c: cols[c] for c in _KEPT[:6]}, index=idx)
        out["transactions"] = pd.array(cols["transactions"], dtype="Float64").astype("Int64")
        return out


def _sorted_chunk(chunk: dict) -> dict:
    import numpy as np

    code = chunk["code"]
    if len(code) > 1 and (code[1:] < code[:-1]).any():
        order = np.argsort(code, kind="stable")
        return {k: v[order] for k, v in chunk.items()}
    return chunk


class Stream:
    """An open live stream (see :func:`stream`)."""

    def __init__(self, provider: "PriceProvider", tickers: list[str], interval: str, config: "Config",
                 single: bool = False, extended_hours: bool = False) -> None:
        from .plugins import guard

        self.interval = interval
        #: False: bars outside the regular session are not delivered (counted in outside_hours)
        self.extended_hours = bool(extended_hours)
        self.outside_hours = 0
        self._session_over = False  # a regular stream ends once a bar after the close arrives
        self._step = STREAM_INTERVALS[interval]
        self._single = single
        self._config = config
        self._provider = provider
        self._feed: LiveFeed = guard(provider, "open_stream()", provider.open_stream, interval)
        self.provider, self.feed = str(self._feed.provider or provider.name), str(self._feed.feed or "")
        self._subs: dict[str, None] = dict.fromkeys(tickers)
        self._lock = threading.Lock()
        budget = int(config.value("FINRPT_STREAM_MEMORY_MB")) << 20
        self.budget = budget
        #: frames for the consumer (bounded in frames) and every frame waiting (bounded in bytes)
        self._queue: queue.Queue = queue.Queue(maxsize=config.value("FINRPT_STREAM_QUEUE"))
        self._inbox: queue.Queue = queue.Queue()
        # two halves of the waiting share, so neither side can starve the other: the reader
        # fills the inbox, the deliverer the consumer's queue
        self._inbox_room = _Budget(budget // 4)
        self._waiting = _Budget(budget // 2 - budget // 4)
        self._kept = _Kept(budget - budget // 2)
        self._max_reconnects = config.value("FINRPT_STREAM_MAX_RECONNECTS")
        self._backoff = config.value("FINRPT_STREAM_BACKOFF")
        self._backoff_cap = max(self._backoff, 30.0)
        self._last: dict[str, int] = {}  # ticker -> last delivered bar start (ns)
        self._pending: set[str] = set()  # tickers whose next bar may follow a hole
        self._refused: set[str] = set()  # pending because bars were refused: a hole left is named
        self._gaps: dict[str, tuple[Any, Any]] = {}  # holes a fill could not close, for the next frame
        self._errors: dict[str, str] = {}  # ticker -> why its bars were refused, for the next frame
        self._late: dict[str, list[Any]] = {}  # ticker -> late bars' starts not delivered, for the next frame
        self._closed = threading.Event()  # closed by the consumer: nobody reads any more
        self._stop = threading.Event()  # the threads stop (closed, or the stream ended)
        self._behind = False
        self.connections = 0
        self.filled = 0
        self.fills = 0  # fill() calls made
        self.fill_seconds = 0.0  # time spent in them
        self.peak_waiting = 0  # most bytes ever waiting
        self._reader = threading.Thread(target=self._read, name="finrpt-stream-reader", daemon=True)
        self._thread = threading.Thread(target=self._work, name="finrpt-stream", daemon=True)
        with _OPEN_LOCK:
            _OPEN.add(self)
        self._thread.start()
        self._reader.start()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        subs = list(self._subs)
        shown = ",".join(subs[:10]) + (f",... ({len(subs)} tickers)" if len(subs) > 10 else "")
        return f"<Stream {self.provider} {self.feed} {self.interval} {shown} {state}>"

    # -- the consumer's side --------------------------------------------------------
    def __iter__(self) -> "Stream":
        return self

    def __next__(self) -> pd.DataFrame:
        while True:
            if self._closed.is_set():
                raise StopIteration  # closed by the consumer: what still waits is not wanted
            try:
                item, size = self._queue.get(timeout=0.25)
            except queue.Empty:
                if self._behind:
                    self._behind = False  # caught up: the next wait is a new episode
                if self._stop.is_set() and not self._thread.is_alive() and self._queue.empty():
                    raise StopIteration from None
                continue
            self._waiting.give(size)
            if self._behind and self._queue.empty():
                self._behind = False
            if isinstance(item, BaseException):
                self.close()
                raise item
            if item is None:
                raise StopIteration
            return item

    def __aiter__(self) -> "Stream":
        return self

    async def __anext__(self) -> pd.DataFrame:
        import asyncio

        def step():
            try:
                return next(self)
            except StopIteration:
                return StopAsyncIteration
        got = await asyncio.to_thread(step)
        if got is StopAsyncIteration:
            raise StopAsyncIteration
        return got

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    async def __aenter__(self) -> "Stream":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        import asyncio

        await asyncio.to_thread(self.close)

    @property
    def tickers(self) -> list[str]:
        with self._lock:
            return list(self._subs)

    @property
    def waiting_bytes(self) -> int:
        """Bytes of frames received and not yet read by the consumer."""
        return self._inbox_room.used + self._waiting.used

    @property
    def kept_bytes(self) -> int:
        """Bytes of the session's bars kept (for the chain, and to tell re-sends from late bars)."""
        return self._kept.nbytes

    def subscribe(self, tickers: str | Iterable[str]) -> None:
        """Add tickers while running (kept across reconnects)."""
        new = [t for t in _tickers(tickers) if t not in self._subs]
        with self._lock:
            self._subs.update(dict.fromkeys(new))
        if new and self.connections:
            try:
                self._call("subscribe()", self._feed.subscribe, new)
            except ConnectionLost:
                pass  # the reconnect subscribes to every ticker in the set

    def unsubscribe(self, tickers: str | Iterable[str]) -> None:
        """Stop receiving tickers; bars of them already in flight are dropped."""
        gone = [t for t in _tickers(tickers) if t in self._subs]
        with self._lock:
            for t in gone:
                self._subs.pop(t, None)
                self._pending.discard(t)
                self._refused.discard(t)
        if gone and self.connections:
            try:
                self._call("unsubscribe()", self._feed.unsubscribe, gone)
            except ConnectionLost:
                pass

    def close(self) -> None:
        """Stop both threads and close the connection (idempotent)."""
        if not self._closed.is_set():
            self._closed.set()
            self._stop.set()
            self._close_feed()
        me = threading.current_thread()
        until = time.monotonic() + 2.0  # a feed call in flight (a connect, a fill) ends on its own deadline
        for t in (self._thread, self._reader):
            if t.is_alive() and me is not t:
                t.join(timeout=max(0.0, until - time.monotonic()))
        with _OPEN_LOCK:
            _OPEN.discard(self)

    @property
    def closed(self) -> bool:
        return self._closed.is_set() or (self._stop.is_set() and not self._thread.is_alive())

    # -- calls into the plugin -----------------------------------------------------------
    def _call(self, what: str, fn, *args):
        """``fn(*args)``, a call into the feed's plugin: ConnectionLost and ProviderError pass;
        anything else but KeyboardInterrupt (a bug, ``sys.exit``) is a PluginError naming it."""
        from .plugins import plugin_failure

        try:
            return fn(*args)
        except (ConnectionLost, ProviderError, KeyboardInterrupt):
            raise
        except BaseException as e:  # noqa: B036 - SystemExit from a plugin must not end the process
            raise plugin_failure(self._provider, f"its live feed's {what}", e) from None

    def _close_feed(self) -> None:
        """Close the connection; never raises (it runs on every way out)."""
        try:
            self._call("close()", self._feed.close)
        except (ProviderError, ConnectionLost) as e:  # a broken connection's close: nothing to tell
            if isinstance(e, ProviderError) and type(e).__name__ == "PluginError":
                log.warning("stream: %s", e)
        except BaseException as e:  # noqa: B036 - a KeyboardInterrupt from a plugin's close(): it is closed anyway
            log.warning("stream: %s's live feed raised %s in close(); the stream is closed anyway", self.provider,
                        type(e).__name__)

    def _filled(self, span: dict) -> Any:
        """The feed's fill, its length taken inside the plugin's call."""
        got = self._feed.fill(span)
        return got if got is None or len(got) else None

    def _receive(self) -> tuple[Any, int]:
        """The feed's next frame and its weight (both computed inside the plugin's call: a frame
        whose length raises is the plugin's failure)."""
        import pandas as pd

        frame = self._feed.receive(0.5)
        if frame is None:
            return None, 0
        if not isinstance(frame, pd.DataFrame):
            raise DataIntegrityError(f"its live feed's receive() returned {type(frame).__name__}, not a bar frame "
                                     "(a DataFrame indexed by ticker and timestamp) or None", provider=self.provider)
        return (frame, weight(frame)) if len(frame) else (None, 0)

    # -- the reader thread: the connection, nothing else ------------------------------------
    def _read(self) -> None:
        failures = 0
        end: BaseException | None = None
        try:
            while not self._stop.is_set():
                try:
                    self._call("connect()", self._feed.connect)
                    subs = self.tickers
                    if subs:
                        self._call("subscribe()", self._feed.subscribe, subs)
                    if self.connections:
                        self._inbox.put(("reconnected", None, 0))
                        log.info("stream: reconnected to %s's %s feed (connection %d); re-subscribed %d ticker(s)",
                                 self.provider, self.feed, self.connections + 1, len(subs))
                    self.connections += 1
                    while not self._stop.is_set():
                        frame, size = self._call("receive()", self._receive)
                        if frame is None:
                            continue
                        failures = 0  # the connection works: a later drop starts the count again
                        if not self._inbox_room.take(size, self._stop, self._paused):
                            break
                        self.peak_waiting = max(self.peak_waiting, self.waiting_bytes)
                        self._inbox.put(("frame", frame, size))
                except ConnectionLost as e:
                    if self._stop.is_set():
                        break
                    failures += 1
                    self._close_feed()
                    if failures > self._max_reconnects:
                        tried = ("its connection failed and reconnecting is off (FINRPT_STREAM_MAX_RECONNECTS=0)"
                                 if not self._max_reconnects else
                                 f"its connection failed, then {self._max_reconnects} reconnect attempt"
                                 f"{'s' if self._max_reconnects > 1 else ''} in a row failed too")
                        raise ProviderUnavailable(
                            f"the live stream from {self.provider} ({self.feed}) stopped: {tried} "
                            f"(last: {e}): check the network, or raise FINRPT_STREAM_MAX_RECONNECTS",
                            provider=self.provider) from None
                    pause = min(self._backoff_cap, self._backoff * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)
                    log.warning("stream: connection to %s lost (%s); reconnecting in %.2f s (attempt %d of %d)",
                                self.provider, e, pause, failures, self._max_reconnects)
                    self._stop.wait(pause)
        except ProviderError as e:
            end = e
        except KeyboardInterrupt as e:  # raised by a plugin in this thread: the consumer's to see
            end = e
        except BaseException as e:  # noqa: B036 - a bug of ours: end the stream with it, never hang the consumer
            end = ProviderError(f"the live stream from {self.provider} failed: {type(e).__name__}: {e}",
                                provider=self.provider)
        finally:
            self._close_feed()
            self._inbox.put(("end", end, 0))

    def _paused(self) -> None:
        """The reader waits for the deliverer (a fill, or the consumer behind it)."""
        log.debug("stream: reading from %s paused: %.1f MiB received wait to be delivered", self.provider,
                  self._inbox_room.used / 2**20)

    def _slow(self) -> None:
        """The consumer's queue is full: once per episode (until it has emptied it), say so."""
        if not self._behind:
            self._behind = True
            log.warning("stream: the consumer is behind (%d frame(s), %.1f MiB waiting): reading from %s paused "
                        "until it catches up (no bar is dropped; raise FINRPT_STREAM_QUEUE or "
                        "FINRPT_STREAM_MEMORY_MB to allow more)", self._queue.qsize(), self.waiting_bytes / 2**20,
                        self.provider)

    # -- the deliverer thread: gate, order, fill, hand over ----------------------------------
    def _work(self) -> None:
        end: BaseException | None = None
        try:
            while True:
                try:
                    kind, item, size = self._inbox.get(timeout=0.25)
                except queue.Empty:
                    if self._stop.is_set() and not self._reader.is_alive():
                        return
                    continue
                if kind == "end":
                    end = item
                    break
                if kind == "reconnected":
                    with self._lock:
                        self._pending = set(self._last) & set(self._subs) if EVERY not in self._subs \
                            else set(self._last)
                    continue
                self._inbox_room.give(size)
                if self._closed.is_set():
                    continue  # closed by the consumer: nobody will read it
                self._deliver(item)
                if self._session_over:
                    log.info("stream: the regular session closed; the stream ends (extended_hours=True streams "
                             "the after-hours bars too)")
                    break
        except ProviderError as e:
            end = e
        except KeyboardInterrupt as e:
            end = e
        except BaseException as e:  # noqa: B036 - a bug of ours: end the stream with it, never hang the consumer
            end = ProviderError(f"the live stream from {self.provider} failed: {type(e).__name__}: {e}",
                                provider=self.provider)
        finally:
            self._stop.set()
            self._close_feed()
            if end is not None:
                self._put(end)
            self._put(None)

    # -- the gate ----------------------------------------------------------------------
    def _session(self) -> dt.date:
        """The session being streamed: the configured clock's day (New York)."""
        today = getattr(self._config, "today", None)
        if callable(today):
            return today()
        from .calendar import today_et

        return today_et()

    def _check(self, frame: pd.DataFrame, tickers: Sequence[str] | None,
               source: str) -> tuple[pd.DataFrame, dict[str, str]]:
        """``frame`` through :func:`frames.gate` (the session, the stream's interval, ``tickers``,
        the extended hours): the bars that passed (a sorted long frame), and ticker -> why
        its bars were refused (each also an error event: a warning and ``attrs["errors"]``).
        Raises DataIntegrityError when ``frame`` is no bar frame at all."""
        from .frames import Expect, gate

        day = self._session()
        expect = Expect(day, day, self.interval, tickers=tickers, hours=EXTENDED_HOURS)
        if self._step % MINUTE_NS == 0:
            clean, failed = gate(frame, expect, self.provider, identical_duplicates="drop")
        else:
            clean, failed = _gate_seconds(frame, expect, self.provider, self._step)
        why = {t: str(e) for t, e in failed.items()}
        if why:
            self._error_events(why, source)
        if not self.extended_hours and len(clean):  # the regular session, as every intraday answer
            from .calendar import regular_hours
            from .timebase import DAY_NS, wall_ns

            wall = wall_ns(clean.index.get_level_values(1))
            opens, closes = regular_hours(wall // DAY_NS)
            keep = (wall >= opens) & (wall < closes)
            if not keep.all():
                self.outside_hours += int((~keep).sum())
                if source == "stream" and bool((wall >= closes).any()):
                    self._session_over = True  # a bar after the close: the regular session is over
                clean = clean[keep]
        return clean, why

    def _error_events(self, why: dict[str, str], source: str) -> None:
        for t, msg in list(why.items())[:20]:
            log.warning("stream: refused %s bar(s) of %s from %s: %s", source, t, self.provider, msg)
        if len(why) > 20:
            log.warning("stream: refused %s bar(s) of %d more ticker(s) from %s (see attrs['errors'])", source,
                        len(why) - 20, self.provider)
        with self._lock:
            for t, msg in why.items():
                had = self._errors.get(t)
                self._errors[t] = msg if had is None else f"{had}; {msg}"
            if source == "stream":  # the ticker's next bar fills what was refused (as after a reconnect)
                again = {t for t in why if t in self._last}
                self._pending |= again
                self._refused |= again

    # -- delivering ------------------------------------------------------------------------
    def _deliver(self, frame: pd.DataFrame) -> None:
        import numpy as np

        from .frames import runs

        if frame is None or len(frame) == 0:
            return
        with self._lock:
            wanted = None if EVERY in self._subs else list(self._subs)
        frame, _ = self._check(frame, wanted, "stream")
        if frame.empty:
            return
        names = frame.index.get_level_values(0)
        starts = frame.index.get_level_values(1).asi8
        codes, uniq = names.factorize()  # the gate sorted by ticker: one run per ticker
        last = self._last
        if wanted is None:  # under "*" the server names the tickers: each new one is looked at once
            new = [t for t in uniq if t not in last]
            if new:
                refused = self._new_tickers(new)
                if refused:
                    frame = frame[~names.isin(refused)]
                    if frame.empty:
                        return
                    names = frame.index.get_level_values(0)
                    starts = frame.index.get_level_values(1).asi8
                    codes, uniq = names.factorize()
        prev = np.fromiter((last.get(t, _NEVER) for t in uniq), dtype=np.int64, count=len(uniq))
        fresh = starts > prev[codes]
        if not fresh.all():
            self._seen_before(frame[~fresh])
            frame = frame[fresh]
            if frame.empty:
                return
            names = frame.index.get_level_values(0)
            starts = frame.index.get_level_values(1).asi8
            codes, uniq = names.factorize()
        first, stop = runs(codes)
        heads = uniq[codes[first]]
        with self._lock:
            if self._pending:
                firsts = dict(zip(heads, starts[first].tolist()))
                holes = {t: (last[t], s) for t, s in firsts.items()
                         if t in self._pending and s - last[t] > self._step}
                named = {t for t in holes if t in self._refused}
                self._pending.difference_update(firsts)
                self._refused.difference_update(firsts)
            else:
                holes = {}
        if holes:
            self._fill(holes, named)
        last.update(zip(heads, starts[stop - 1].tolist()))
        self._emit(frame, "stream")

    def _new_tickers(self, new: list[str]) -> list[str]:
        """Tickers a ``"*"`` stream sees for the first time that it refuses: not a symbol's shape
        (a hostile server's 2,000-character names), or more than the budget holds state for
        (each ticker's state is charged to the kept half)."""
        import re

        shape = re.compile(_SYMBOL)
        bad = [t for t in new if not (isinstance(t, str) and shape.match(t))]
        room = max(0, self._kept.cap // 2 // TICKER_BYTES - len(self._last))
        badset = set(bad)
        fits = [t for t in new if t not in badset]
        over = fits[room:] if len(fits) > room else []
        why = {}
        if bad:
            shown = ", ".join(repr(t[:24] if isinstance(t, str) else t) for t in bad[:3])
            log.warning("stream: %s sent %d ticker(s) that are no symbol (e.g. %s): their bars are not delivered",
                        self.provider, len(bad), shown)
            why.update({t: "not a ticker symbol" for t in bad[:20]})
        if over:
            log.warning("stream: %s sent %d ticker(s) more than FINRPT_STREAM_MEMORY_MB=%d holds state for "
                        "(%d tickers): their bars are not delivered (raise FINRPT_STREAM_MEMORY_MB)", self.provider,
                        len(over), self.budget >> 20, len(self._last) + room)
            why[EVERY] = (f"{len(over)} ticker(s) refused: more than FINRPT_STREAM_MEMORY_MB="
                          f"{self.budget >> 20} holds state for")
        if why:
            with self._lock:
                for t, msg in why.items():
                    self._errors.setdefault(t if len(str(t)) <= 24 else str(t)[:24] + "...", msg)
        return [*bad, *over]

    def _seen_before(self, old: pd.DataFrame) -> None:
        """Bars (gated) starting at or before their ticker's last delivered one: an exact
        re-send is dropped silently, the same start with other values is an error event,
        any other start (or one no longer kept) is a late bar, reported (rare: per ticker,
        not on the happy path)."""
        import numpy as np

        from .frames import FLOAT_COLUMNS, split_long

        conflicts: dict[str, str] = {}
        late: dict[str, list[Any]] = {}
        cols = list(FLOAT_COLUMNS[:5])
        for t, part in split_long(old).items():
            sent = self._kept.columns(t)
            starts = part.index.asi8
            if sent is not None:
                pos = np.searchsorted(sent["start"], starts)
                pos = np.minimum(pos, len(sent["start"]) - 1)
                known = sent["start"][pos] == starts
            else:
                known = np.zeros(len(part), dtype=bool)
            if known.any():
                a = part[cols].to_numpy(dtype="float64")[known]
                b = np.column_stack([sent[c][pos[known]] for c in cols])
                same = ((a == b) | (np.isnan(a) & np.isnan(b))).all(axis=1)
                if not same.all():
                    i = int(np.flatnonzero(~same)[0])
                    at = part.index[known][i]
                    conflicts[t] = (f"{t}: the bar {at} was sent again with other values than the one "
                                    f"delivered (delivered o={b[i, 0]} h={b[i, 1]} l={b[i, 2]} c={b[i, 3]} "
                                    f"v={b[i, 4]}; now o={a[i, 0]} h={a[i, 1]} l={a[i, 2]} c={a[i, 3]} v={a[i, 4]}): "
                                    "the delivered one stands")
            if not known.all():
                late[t] = list(part.index[~known])
        if conflicts:
            self._error_events(conflicts, "re-sent")
        if late:
            for t, stamps in list(late.items())[:20]:
                log.warning("stream: %d late bar(s) of %s from %s not delivered (they arrived after a later bar; "
                            "see attrs['late']): %s", len(stamps), t, self.provider,
                            ", ".join(f"{x:%H:%M:%S}" for x in stamps[:5]))
            if len(late) > 20:
                log.warning("stream: late bars of %d more ticker(s) from %s not delivered (see attrs['late'])",
                            len(late) - 20, self.provider)
            with self._lock:
                for t, stamps in late.items():
                    self._late.setdefault(t, []).extend(stamps)

    def _fill(self, holes: dict[str, tuple[int, int]], named: set[str] = frozenset()) -> None:
        """Fill ``holes`` (ticker -> (after, before), ns) from the feed in one call; a hole of a
        ticker in ``named`` (bars were refused in it, so it held bars) is named in
        ``attrs["gaps"]`` when the fill brings none of its bars."""
        import numpy as np
        import pandas as pd

        from .timebase import ET

        span = {t: (pd.Timestamp(a, tz="UTC").tz_convert(ET), pd.Timestamp(b, tz="UTC").tz_convert(ET))
                for t, (a, b) in holes.items()}
        t0 = time.monotonic()
        self.fills += 1
        try:
            got = self._call("fill()", self._filled, span)
            if got is not None and len(got):
                got, refused = self._check(got, list(holes), "fill")
            else:
                got, refused = None, {}
        except (ProviderError, ConnectionLost) as e:  # a DataIntegrityError too: not a bar frame at all
            self.fill_seconds += time.monotonic() - t0
            log.warning("stream: could not fill the bars missed while reconnecting (%s): missing for %s", e,
                        _describe(span))
            with self._lock:
                self._gaps.update(span)
            return
        if refused:
            kept = {t: span[t] for t in refused if t in span}
            log.warning("stream: the bars filled for %s were refused (see attrs['errors']): missing for %s",
                        ", ".join(sorted(kept)[:20]), _describe(kept))
            with self._lock:
                self._gaps.update(kept)
        if got is not None and len(got):
            codes, uniq = got.index.get_level_values(0).factorize()
            starts = got.index.get_level_values(1).asi8
            lo = np.array([holes[t][0] for t in uniq], dtype=np.int64)[codes]
            hi = np.array([holes[t][1] for t in uniq], dtype=np.int64)[codes]
            got = got[(starts > lo) & (starts < hi)]
        n = 0 if got is None else len(got)
        empty = named - set(refused) - (set(got.index.get_level_values(0)) if n else set())
        if empty:
            kept = {t: span[t] for t in sorted(empty)}
            log.warning("stream: the bars refused for %s could not be filled (the fill has none): missing for %s",
                        ", ".join(list(kept)[:20]), _describe(kept))
            with self._lock:
                self._gaps.update(kept)
        self.filled += n
        took = time.monotonic() - t0
        self.fill_seconds += took
        log.info("stream: filled %d bar(s) missed while reconnecting from %s in %.2f s: %s", n, self.provider,
                 took, _describe(span))
        if n:
            self._emit(got, "fill")

    def _emit(self, frame: pd.DataFrame, source: str) -> None:
        """Keep ``frame``'s bars and hand it over, in parts of at most an eighth of the waiting
        share (a fill of a whole market is one frame from the feed, never one in the queue)."""
        with self._lock:
            self._kept.add(frame, len(self._last))
        size = weight(frame)
        cap = max(1, self._waiting.cap // 4)
        if size > cap and len(frame) > 1:
            rows = max(1, int(len(frame) * cap / size))
            parts = [frame.iloc[i:i + rows] for i in range(0, len(frame), rows)]
        else:
            parts = [frame]
        for part in parts:
            out = part.droplevel(0) if self._single else part
            out.attrs = {"provider": self.provider, "feed": self.feed, "source": source, "interval": self.interval}
            with self._lock:
                if self._gaps:
                    out.attrs["gaps"], self._gaps = self._gaps, {}
                if self._errors:
                    out.attrs["errors"], self._errors = self._errors, {}
                if self._late:
                    out.attrs["late"], self._late = self._late, {}
            self._put(out)

    def _put(self, item: Any) -> None:
        """Hand ``item`` (a frame, an error, or None: the end) to the consumer: a frame waits
        while the consumer's FINRPT_STREAM_QUEUE frames or the budget are full."""
        size = weight(item) if item is not None and not isinstance(item, BaseException) else 0
        if size and not self._waiting.take(size, self._closed, self._slow):
            return  # closed by the consumer: nobody will read it
        try:
            self._queue.put_nowait((item, size))
            self.peak_waiting = max(self.peak_waiting, self.waiting_bytes)
            return
        except queue.Full:
            pass
        if not self._closed.is_set():
            self._slow()
        while True:
            try:
                self._queue.put((item, size), timeout=0.25)
                return
            except queue.Full:
                if self._closed.is_set():
                    self._waiting.give(size)
                    return  # closed by the consumer: nobody will read it

    # -- today's bars for the chain ---------------------------------------------------
    def bars_today(self, ticker: str) -> pd.DataFrame | None:
        """The 1m bars this stream delivered for ``ticker`` in its latest session and still
        keeps, in order (only bars that passed the gate; None for a stream of other bars)."""
        if self.interval != "1m":
            return None
        with self._lock:
            return self._kept.frame(ticker)


def _gate_seconds(frame: pd.DataFrame, expect: Any, provider: str, step: int) -> tuple[pd.DataFrame, dict]:
    """:func:`frames.gate` for bars shorter than a minute (the gate wants minute stamps):
    the bars are gated in groups of one offset within the minute, stamped at their
    minute (unique within a group as the stamps are in the frame), then put back at
    their own instant; a bar off the interval's grid fails its ticker; a ticker failing
    in one group loses its bars of every group. Messages name the bar's own instant."""
    import re

    import numpy as np
    import pandas as pd

    from .frames import LONG_INDEX, empty_long, gate, is_long
    from .timebase import ET, wall_ns

    if not is_long(frame):
        return gate(frame, expect, provider, identical_duplicates="drop")  # raises: not a long frame
    stamps = frame.index.get_level_values(1)
    if not isinstance(stamps, pd.DatetimeIndex) or stamps.tz is None:
        return gate(frame, expect, provider, identical_duplicates="drop")  # raises, naming what is wrong
    stamps = stamps.tz_convert(ET).as_unit("ns")
    off = np.where(stamps.isna(), 0, wall_ns(stamps) % MINUTE_NS)
    names = frame.index.get_level_values(0)
    failed: dict[str, DataIntegrityError] = {}
    grid = off % step != 0
    if grid.any():
        for t in pd.unique(names[grid]):
            i = int(np.flatnonzero(grid & (names == t))[0])
            failed[t] = DataIntegrityError(f"bar frame breaks the contract: {t}: bar {stamps[i]} is off the "
                                           f"{step // 10**9} s grid", provider=provider)
    parts = []
    when = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d")
    for o in np.unique(off[~grid]):
        rows = np.flatnonzero((off == o) & ~grid)
        part = frame.iloc[rows]
        part.index = pd.MultiIndex.from_arrays([names[rows], stamps[rows] - pd.Timedelta(int(o), "ns")],
                                               names=list(LONG_INDEX))
        clean, bad = gate(part, expect, provider, identical_duplicates="drop")
        for t, e in bad.items():
            if t not in failed:
                msg = when.sub(lambda m, o=o: str(pd.Timestamp(m.group(0)) + pd.Timedelta(int(o), "ns")),
                               str(e).split(": ", 1)[1] if str(e).startswith(f"{provider}:") else str(e))
                failed[t] = DataIntegrityError(msg, provider=provider)
        if len(clean):
            clean.index = pd.MultiIndex.from_arrays(
                [clean.index.get_level_values(0), clean.index.get_level_values(1) + pd.Timedelta(int(o), "ns")],
                names=list(LONG_INDEX))
            parts.append(clean)
    if not parts:
        return empty_long(), failed
    out = parts[0] if len(parts) == 1 else pd.concat(parts)
    if failed:
        out = out[~out.index.get_level_values(0).isin(list(failed))]
    out = out.sort_index() if len(parts) > 1 else out
    out.attrs = {}
    return out, failed


def _describe(span: dict[str, tuple[Any, Any]]) -> str:
    parts = [f"{t} after {a:%H:%M:%S} before {b:%H:%M:%S}" for t, (a, b) in list(span.items())[:5]]
    more = len(span) - len(parts)
    return ", ".join(parts) + (f" and {more} more" if more > 0 else "")


def any_open() -> bool:
    """Is a stream of this process open (so answers about today may join its bars)?"""
    with _OPEN_LOCK:
        return any(not s.closed for s in _OPEN)


def live_bars(ticker: str, extended_hours: bool = False) -> tuple[pd.DataFrame, str] | None:
    """1m bars of ``ticker`` in the latest session of an open stream of this process, and the
    stream's name for ``attrs["sources"]`` (the stream with the most bars when several).
    ``extended_hours``: only streams that deliver them (a regular-session stream lacks them)."""
    with _OPEN_LOCK:
        open_ = [s for s in _OPEN if not s.closed and s.interval == "1m"
                 and (s.extended_hours or not extended_hours)]
    best = None
    for s in open_:
        bars = s.bars_today(ticker)
        if bars is not None and (best is None or (bars.index[0].date(), len(bars)) > (best[0].index[0].date(),
                                                                                      len(best[0]))):
            best = (bars, f"{s.provider} (stream, {s.feed})")
    return best


__all__ = ["stream", "Stream", "LiveFeed", "ConnectionLost", "live_bars", "any_open", "STREAM_INTERVALS"]
