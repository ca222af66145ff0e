"""Live bars as they close: :func:`stream`, one connection kept up, every bar once and in order.

    >>> with finrpt_providers.stream(["AAPL", "MSFT"]) as live:
    ...     for bars in live:              # a long frame (ticker, timestamp) per batch of closed bars
    ...         print(bars.attrs["feed"], bars)

The transport is a provider's (one declaring ``serves_stream``; Massive's WebSocket
today); this module owns what every live feed needs the same way:

* **one reader thread** per stream keeps the connection, pushing frames into a
  bounded queue the consumer iterates (sync or ``async for``);
* **reconnects**: a dropped or stalled connection (no answer to a ping) is reopened
  after a capped, jittered backoff, re-authenticated and re-subscribed; after
  FINRPT_STREAM_MAX_RECONNECTS failed attempts in a row the stream fails with
  :class:`~finrpt_providers.errors.ProviderUnavailable`;
* **exactly once, in order**: per ticker, a bar at or before the last one delivered is
  dropped; the first bar after a reconnect that leaves a hole behind it makes the
  feed fill the hole (Massive: from REST) before that bar is delivered, and a log line
  says what was filled. Only bars strictly between the last delivered one and the
  first new one are filled, so every filled bar is closed. A fill that fails leaves the
  hole named in the next frame's ``attrs["gaps"]`` and in a warning: never silent;
* **a slow consumer**: when FINRPT_STREAM_QUEUE frames wait unread, the reader thread
  blocks (one warning per episode): nothing is dropped. If the server gives up on
  the blocked connection meanwhile, the reconnect fills what it missed;
* **terminal errors** (bad key, a plan without the feed, another process holding the
  account's one connection) end the stream: the next read raises them.

A stream of ``1m`` bars also serves the chain: while it is open, intraday answers about
today get its bars after the last one the providers had (``attrs["sources"]`` names
the stream). Bars are as traded; today's bars need no adjustment (adjustments scale
bars BEFORE an ex-date, and no ex-date after today is known).
"""

from __future__ import annotations

import asyncio
import queue
import random
import threading
import weakref
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from . import redact
from .errors import ConfigurationError, InvalidQuery, ProviderError, ProviderUnavailable

if TYPE_CHECKING:
    import pandas as pd

    from .config import Config
    from .provider import PriceProvider

log = redact.logger(__name__)

STREAM_INTERVALS = {"1m": 60_000_000_000, "1s": 1_000_000_000}
#: the wildcard: every ticker the feed has
EVERY = "*"


class ConnectionLost(Exception):
    """Raised by a :class:`LiveFeed` when its connection dropped or stalled: the stream
    reconnects. (Anything else a feed raises ends the stream.)"""


class LiveFeed:
    """What a provider's :meth:`~finrpt_providers.provider.PriceProvider.open_stream` returns:
    one connection's worth of a live source. Every method is called from the stream's
    reader thread, but :meth:`subscribe`, :meth:`unsubscribe` and :meth:`close`, which
    may come from the consumer's thread too (make them thread-safe)."""

    #: the provider's name, and which feed this is ("real-time", "delayed")
    provider: str = ""
    feed: str = ""

    def connect(self) -> None:
        """Open and authenticate. Raise ConnectionLost for what a retry may cure, a
        ProviderError (AuthenticationFailed, NotEntitled...) for what it cannot."""
        raise NotImplementedError

    def subscribe(self, tickers: Sequence[str]) -> None:
        raise NotImplementedError

    def unsubscribe(self, tickers: Sequence[str]) -> None:
        raise NotImplementedError

    def receive(self, timeout: float) -> pd.DataFrame | None:
        """The next batch of closed bars as a long frame indexed by (ticker, timestamp), or
        None when nothing came within ``timeout`` seconds. ConnectionLost when it dropped."""
        raise NotImplementedError

    def fill(self, gaps: dict[str, tuple[Any, Any]]) -> pd.DataFrame:
        """Bars strictly between ``after`` and ``before`` (tz-aware Timestamps) for each
        ticker of ``gaps``, as a long frame: what the connection missed."""
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
           providers: Sequence[str] | None = None) -> "Stream":
    """Bars of ``tickers`` as they close, from the first configured provider that streams.

    Returns a :class:`Stream`: iterate it (or ``async for``) for frames in the bar frame
    contract (New York start-of-bar timestamps, float volumes, ``vwap``); a string ticker
    gives single-ticker frames, a list gives long frames indexed by (``ticker``,
    ``timestamp``). ``attrs``: ``provider``, ``feed`` ("real-time"/"delayed"),
    ``source`` ("stream" or "fill"), ``interval``. Close it (or use ``with``) when done.
    Bad arguments raise InvalidQuery here, before any connection; connection errors
    surface at the first read."""
    from .chain import resolve_config

    names = _tickers(tickers)
    ivl = _interval(interval)
    cfg = resolve_config(config)
    provider = stream_source(cfg, providers)
    return Stream(provider, names, ivl, cfg, single=isinstance(tickers, str) and tickers != EVERY)


class Stream:
    """An open live stream (see :func:`stream`)."""

    def __init__(self, provider: "PriceProvider", tickers: list[str], interval: str, config: "Config",
                 single: bool = False) -> None:
        self.interval = interval
        self._step = STREAM_INTERVALS[interval]
        self._single = single
        self._config = config
        self._feed: LiveFeed = provider.open_stream(interval)
        self.provider, self.feed = self._feed.provider, self._feed.feed
        self._subs: dict[str, None] = dict.fromkeys(tickers)
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue(maxsize=config.value("FINRPT_STREAM_QUEUE"))
        self._max_reconnects = config.value("FINRPT_STREAM_MAX_RECONNECTS")
        self._backoff = config.value("FINRPT_STREAM_BACKOFF")
        self._backoff_cap = max(self._backoff, 30.0)
        self._last: dict[str, int] = {}  # ticker -> last delivered bar start (ns)
        self._pending: set[str] = set()  # tickers whose next bar may follow a hole
        self._gaps: dict[str, tuple[Any, Any]] = {}  # holes a fill could not close, for the next frame
        self._today: dict[str, list[pd.DataFrame]] = {}  # 1m bars delivered, for the chain
        self._closed = threading.Event()
        self._behind = False
        self.connections = 0
        self.filled = 0
        self._thread = threading.Thread(target=self._run, name="finrpt-stream", daemon=True)
        with _OPEN_LOCK:
            _OPEN.add(self)
        self._thread.start()

    def __repr__(self) -> str:
        state = "closed" if self._closed.is_set() else "open"
        return f"<Stream {self.provider} {self.feed} {self.interval} {','.join(self._subs)} {state}>"

    # -- the consumer's side --------------------------------------------------------
    def __iter__(self) -> "Stream":
        return self

    def __next__(self) -> pd.DataFrame:
        while True:
            try:
                item = self._queue.get(timeout=0.25)
            except queue.Empty:
                if self._closed.is_set() and not self._thread.is_alive() and self._queue.empty():
                    raise StopIteration from None
                continue
            if isinstance(item, BaseException):
                self.close()
                raise item
            if item is None:
                raise StopIteration
            return item

    def __aiter__(self) -> "Stream":
        return self

    async def __anext__(self) -> pd.DataFrame:
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
        await asyncio.to_thread(self.close)

    @property
    def tickers(self) -> list[str]:
        with self._lock:
            return list(self._subs)

    def subscribe(self, tickers: str | Iterable[str]) -> None:
        """Add tickers while running (kept across reconnects)."""
        new = [t for t in _tickers(tickers) if t not in self._subs]
        with self._lock:
            self._subs.update(dict.fromkeys(new))
        if new and self.connections:
            try:
                self._feed.subscribe(new)
            except ConnectionLost:
                pass  # the reconnect subscribes to every ticker in the set

    def unsubscribe(self, tickers: str | Iterable[str]) -> None:
        """Stop receiving tickers; bars of them already in flight are dropped."""
        gone = [t for t in _tickers(tickers) if t in self._subs]
        with self._lock:
            for t in gone:
                self._subs.pop(t, None)
                self._pending.discard(t)
        if gone and self.connections:
            try:
                self._feed.unsubscribe(gone)
            except ConnectionLost:
                pass

    def close(self) -> None:
        """Stop the reader thread and close the connection (idempotent)."""
        if not self._closed.is_set():
            self._closed.set()
            try:
                self._feed.close()
            except Exception:  # closing a broken connection: nothing left to tell
                pass
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
        with _OPEN_LOCK:
            _OPEN.discard(self)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    # -- the reader thread -----------------------------------------------------------
    def _run(self) -> None:
        failures = 0
        try:
            while not self._closed.is_set():
                try:
                    self._feed.connect()
                    subs = self.tickers
                    if subs:
                        self._feed.subscribe(subs)
                    if self.connections:
                        with self._lock:
                            self._pending = set(self._last) & set(self._subs) if EVERY not in self._subs \
                                else set(self._last)
                        log.info("stream: reconnected to %s's %s feed (connection %d); re-subscribed %d ticker(s)",
                                 self.provider, self.feed, self.connections + 1, len(subs))
                    self.connections += 1
                    while not self._closed.is_set():
                        frame = self._feed.receive(timeout=0.5)
                        if frame is None:
                            continue
                        failures = 0  # the connection works: a later drop starts the count again
                        self._deliver(frame)
                except ConnectionLost as e:
                    if self._closed.is_set():
                        break
                    failures += 1
                    try:
                        self._feed.close()
                    except Exception:
                        pass
                    if failures > self._max_reconnects:
                        raise ProviderUnavailable(
                            f"the live stream from {self.provider} ({self.feed}) failed to reconnect "
                            f"{self._max_reconnects} times in a row (last: {e}): check the network, or raise "
                            "FINRPT_STREAM_MAX_RECONNECTS", provider=self.provider) from None
                    pause = min(self._backoff_cap, self._backoff * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)
                    log.warning("stream: connection to %s lost (%s); reconnecting in %.2f s (attempt %d of %d)",
                                self.provider, e, pause, failures, self._max_reconnects)
                    self._closed.wait(pause)
        except ProviderError as e:
            self._put(e)
        except Exception as e:  # a bug in a feed: end the stream with it, never hang the consumer
            self._put(ProviderError(f"the live stream from {self.provider} failed: {type(e).__name__}: {e}",
                                    provider=self.provider))
        finally:
            self._closed.set()
            try:
                self._feed.close()
            except Exception:
                pass
            self._put(None)

    def _deliver(self, frame: pd.DataFrame) -> None:
        import numpy as np
        import pandas as pd

        if frame.empty:
            return
        frame = frame.sort_index()
        names = frame.index.get_level_values(0)
        starts = frame.index.get_level_values(1).asi8
        with self._lock:
            wanted = None if EVERY in self._subs else set(self._subs)
            last = self._last
            keep = np.fromiter(((wanted is None or t in wanted) and s > last.get(t, -1 << 62)
                                for t, s in zip(names, starts)), dtype=bool, count=len(frame))
            if not keep.all():
                frame = frame[keep]
                if frame.empty:
                    return
                names = frame.index.get_level_values(0)
                starts = frame.index.get_level_values(1).asi8
            firsts: dict[str, int] = {}
            for t, s in zip(names, starts):
                firsts.setdefault(t, s)
            holes = {t: (last[t], s) for t, s in firsts.items()
                     if t in self._pending and s - last[t] > self._step}
            self._pending -= set(firsts)
        if holes:
            self._fill(holes)
        ends = pd.Series(starts, index=names).groupby(level=0, sort=False).max()
        with self._lock:
            for t, s in ends.items():
                self._last[t] = int(s)
        self._emit(frame, "stream")

    def _fill(self, holes: dict[str, tuple[int, int]]) -> None:
        import pandas as pd

        span = {t: (pd.Timestamp(a, tz="UTC").tz_convert("America/New_York"),
                    pd.Timestamp(b, tz="UTC").tz_convert("America/New_York")) for t, (a, b) in holes.items()}
        try:
            got = self._feed.fill(span)
        except ProviderError as e:
            log.warning("stream: could not fill the bars missed while reconnecting (%s): missing for %s", e,
                        _describe(span))
            with self._lock:
                self._gaps.update(span)
            return
        if got is not None and not got.empty:
            names = got.index.get_level_values(0)
            starts = got.index.get_level_values(1).asi8
            import numpy as np

            lo = np.array([holes.get(t, (1 << 62, 0))[0] for t in names])
            hi = np.array([holes.get(t, (0, -(1 << 62)))[1] for t in names])
            got = got[(starts > lo) & (starts < hi)].sort_index()
            got = got[~got.index.duplicated()]
        n = 0 if got is None else len(got)
        self.filled += n
        log.info("stream: filled %d bar(s) missed while reconnecting from %s: %s", n, self.provider,
                 _describe(span))
        if n:
            self._emit(got, "fill")

    def _emit(self, frame: pd.DataFrame, source: str) -> None:
        if self.interval == "1m":
            self._remember(frame)
        out = frame
        if self._single:
            out = frame.droplevel(0)
        out.attrs = {"provider": self.provider, "feed": self.feed, "source": source, "interval": self.interval}
        with self._lock:
            if self._gaps:
                out.attrs["gaps"], self._gaps = self._gaps, {}
        self._put(out)

    def _put(self, item: Any) -> None:
        try:
            if self._behind and self._queue.empty():
                self._behind = False
            self._queue.put_nowait(item)
            return
        except queue.Full:
            pass
        if not self._behind:  # once per episode: until the consumer has emptied the queue
            self._behind = True
            log.warning("stream: the consumer is %d frames behind: reading from %s paused until it catches up "
                        "(no bar is dropped; raise FINRPT_STREAM_QUEUE to allow more)", self._queue.maxsize,
                        self.provider)
        while True:
            try:
                self._queue.put(item, timeout=0.25)
                return
            except queue.Full:
                if self._closed.is_set() and item is not None and not isinstance(item, BaseException):
                    return  # closed by the consumer: nobody will read it

    # -- today's bars for the chain ---------------------------------------------------
    def _remember(self, frame: pd.DataFrame) -> None:
        day = frame.index.get_level_values(1)[-1].date()
        with self._lock:
            for t, part in frame.groupby(level=0, sort=False):
                kept = self._today.setdefault(t, [])
                if kept and kept[-1].index[-1].date() != day:
                    kept.clear()  # a new session: yesterday's bars are history now
                kept.append(part.droplevel(0))

    def bars_today(self, ticker: str) -> pd.DataFrame | None:
        """The 1m bars this stream delivered for ``ticker`` in its latest session, in order."""
        import pandas as pd

        with self._lock:
            kept = list(self._today.get(ticker, ()))
        if not kept:
            return None
        day = kept[-1].index[-1].date()
        return pd.concat([k for k in kept if k.index[0].date() == day]).sort_index()


def _describe(span: dict[str, tuple[Any, Any]]) -> str:
    parts = [f"{t} after {a:%H:%M:%S} before {b:%H:%M:%S}" for t, (a, b) in list(span.items())[:5]]
    more = len(span) - len(parts)
    return ", ".join(parts) + (f" and {more} more" if more > 0 else "")


def live_bars(ticker: str) -> tuple[pd.DataFrame, str] | None:
    """1m bars of ``ticker`` in the latest session of an open stream of this process, and the
    stream's name for ``attrs["sources"]`` (the stream with the most bars when several)."""
    with _OPEN_LOCK:
        open_ = [s for s in _OPEN if not s.closed and s.interval == "1m"]
    best = None
    for s in open_:
        bars = s.bars_today(ticker)
        if bars is not None and (best is None or (bars.index[0].date(), len(bars)) > (best[0].index[0].date(),
                                                                                      len(best[0]))):
            best = (bars, f"{s.provider} (stream, {s.feed})")
    return best


__all__ = ["stream", "Stream", "LiveFeed", "ConnectionLost", "live_bars", "STREAM_INTERVALS"]
