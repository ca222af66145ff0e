"""A fake of Massive's WebSocket cluster on 127.0.0.1, replaying the synthetic market.

Two feeds on one port: ``ws://127.0.0.1:PORT/stocks`` (real-time) and
``ws://127.0.0.1:PORT/delayed/stocks`` (delayed). The protocol is Massive's: a
``connected`` status, ``auth`` -> ``auth_success`` / ``auth_failed``, ``subscribe`` /
``unsubscribe`` with ``AM.T`` / ``A.T`` / ``AM.*`` acknowledged with a ``success``
status, aggregate events with Massive's fields (``s``/``e`` in Unix ms).

The replay: one clock for the whole server, started by the first subscription. It
walks the minutes of ``day`` (default: the market's last session) from ``start``
(default 09:30 New York), ``speed`` market minutes per wall second; each minute's bars
are sent once it has closed, to every connection subscribed at that moment (a
connection that was down misses them, as with the real service). ``A`` subscribers get
the minute's three second bars (:func:`~.market.second_bars`).

Fault switches (attributes; each ``*_after`` fires on one connection, then resets):

* ``reject_auth``: every key is refused (``auth_failed``);
* ``plan``: the feeds the account includes, ``("real-time", "delayed")`` by default; a
  subscription on another feed gets an ``error`` status saying the plan lacks it;
* ``max_connections``: every connection gets the ``max_connections`` status and is
  closed (as when another process holds the account's one connection; with
  ``one_connection`` (default True), a second simultaneous connection gets it too);
* ``drop_after = N``: the connection is cut (no close frame) after N data messages;
* ``stall_after = N``: after N data messages, nothing more is sent and nothing read (no
  pong: the client's ping times out);
* ``burst = True``: every remaining minute is sent at once, as fast as the socket takes;
* ``auth_spam = True``: the auth is never answered; status messages come every few
  milliseconds instead, forever;
* ``no_ack = True``: subscriptions are never acknowledged (and nothing is sent);
* ``ping_every = S``: the server pings each connection every S seconds and records in
  ``pongs`` (sent at, monotonic; round trip in seconds, None when no pong came within 5 s):
  whether the client kept answering while busy.

A whole market: ``tape=WideTape(day, tickers=10_000)`` replays that tape's minutes (every
ticker of it under ``AM.*``, or the subscribed ones) instead of the synthetic market's
few tickers; :class:`~.fake_massive.FakeMassiveREST` given the same tape fills from it.

Hostile messages (what a broken or adversarial feed sends):

* ``hostile``: a dict ``"HH:MM"`` (a replayed minute, New York, on ``day``) -> the list of
  messages sent IN PLACE OF that minute's ``AM`` message, in order, when the replay
  reaches it (so deterministically after the earlier minutes and before the later
  ones). A message is a list of event dicts (sent as JSON; ``inf``/``nan`` go out as
  ``Infinity``/``NaN``, which ``json.loads`` reads back) or a str sent verbatim. An
  empty list withholds the minute. ``"A HH:MM"`` replaces the minute's ``A`` (second)
  messages the same way. Entries stay until :meth:`reset` (every connection reaching
  that minute sends them);
* :meth:`event` builds one event from the replay's truth (values of a minute, stamped at
  any instant, any field replaced: ``ws.event("AAPL", "09:35", h=inf)``,
  ``ws.event("AAPL", "09:35", at="2099-06-30 09:35")``; ``kind="A", index=k`` for the
  minute's k-th second bar); :meth:`minute_events` gives a minute's regular events, to
  send them along with hostile ones
  (``ws.hostile["09:35"] = [ws.minute_events("09:35") + [dup]]``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import threading
import time
from typing import Any

import pandas as pd

from .market import SyntheticMarket, second_bars


class FakeMassiveWS:
    def __init__(self, market: SyntheticMarket | None = None, api_key: str = "test-key", *,
                 day: dt.date | None = None, start: str = "09:30", speed: float = 120.0,
                 tickers: list[str] | None = None, tape: Any = None) -> None:
        self.market = market or SyntheticMarket()
        self.tape = tape
        if tape is not None:
            day, tickers = tape.day, ["-"]
        self.api_key = api_key
        self.day = day or self.market.sessions[-1]
        self.start_time = start
        self.speed = speed
        self.tickers = tickers or [t for t in self.market.tickers if self.market.specs[t].minutes]
        # switches
        self.reject_auth = False
        self.plan: tuple[str, ...] = ("real-time", "delayed")
        self.max_connections = False
        self.one_connection = True
        self.drop_after: int | None = None
        self.stall_after: int | None = None
        self.burst = False
        self.auth_spam = False
        self.no_ack = False
        self.ping_every: float | None = None
        self.pongs: list[tuple[float, float | None]] = []
        self.hostile: dict[str, list[list[dict] | str]] = {}
        # what happened
        self.connections = 0
        self.active = 0
        self.sent_messages = 0
        self.received: list[dict] = []
        self._t0: float | None = None
        self._minutes, self._bars = self._build()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- the replayed market -------------------------------------------------------------
    def _build(self) -> tuple[list[pd.Timestamp], dict[pd.Timestamp, dict[str, list[dict]]]]:
        first = pd.Timestamp(f"{self.day} {self.start_time}", tz="America/New_York")
        if self.tape is not None:
            return [m for m in self.tape.minutes if m >= first], {}
        by_minute: dict[pd.Timestamp, dict[str, list[dict]]] = {}
        for t in self.tickers:
            minutes = self.market.truth(t, self.day, self.day, "1m", "raw", extended_hours=True)
            minutes = minutes[minutes.index >= first]
            seconds = second_bars(minutes)
            for kind, frame in (("AM", minutes), ("A", seconds)):
                width = 60_000 if kind == "AM" else 1_000
                for ts, row in zip(frame.index, frame.itertuples(index=False)):
                    minute = ts.floor("min")
                    s = int(ts.value // 1_000_000)
                    ev = {"ev": kind, "sym": t, "v": float(row.volume), "av": 0.0, "op": 0.0,
                          "vw": float(row.vwap), "o": float(row.open), "c": float(row.close), "h": float(row.high),
                          "l": float(row.low), "a": 0.0, "z": 0, "s": s, "e": s + width}
                    by_minute.setdefault(minute, {}).setdefault(kind, []).append(ev)
        return sorted(by_minute), by_minute

    def _minute(self, minute: str | pd.Timestamp) -> pd.Timestamp:
        if isinstance(minute, str) and len(minute) <= 5:
            return pd.Timestamp(f"{self.day} {minute}", tz="America/New_York")
        ts = pd.Timestamp(minute)
        return ts.tz_localize("America/New_York") if ts.tz is None else ts.tz_convert("America/New_York")

    def minute_events(self, minute: str | pd.Timestamp, tickers: list[str] | None = None,
                      kind: str = "AM") -> list[dict]:
        """The ``kind`` events the replay sends for ``minute`` ("HH:MM" on ``day``), copies."""
        evs = self._bars.get(self._minute(minute), {}).get(kind, ())
        return [dict(e) for e in evs if tickers is None or e["sym"] in tickers]

    def event(self, ticker: str, minute: str | pd.Timestamp, *, at: str | pd.Timestamp | None = None,
              kind: str = "AM", index: int = 0, **fields: Any) -> dict:
        """``ticker``'s ``kind`` event of ``minute`` ("HH:MM" on ``day``, or a Timestamp; the
        ``index``-th of the minute for ``A``) as the replay has it, stamped at ``at``
        (default: its own start; a naive time is New York), with ``fields`` (Massive's
        keys: ``o h l c v vw sym``...) replaced."""
        found = self.minute_events(minute, [ticker], kind)
        if len(found) <= index:
            raise KeyError(f"the replay has no {kind} bar {index} of {ticker} at {minute}")
        ev = found[index]
        if at is not None:
            s = int(self._minute(at).value // 1_000_000)
            ev["s"], ev["e"] = s, s + ev["e"] - ev["s"]
        ev.update(fields)
        return ev

    def truth(self, ticker: str, interval: str = "1m") -> pd.DataFrame:
        """What the replay streams for ``ticker`` (all of it), as a bar frame."""
        first = pd.Timestamp(f"{self.day} {self.start_time}", tz="America/New_York")
        minutes = self.market.truth(ticker, self.day, self.day, "1m", "raw", extended_hours=True)
        minutes = minutes[minutes.index >= first]
        return minutes if interval == "1m" else second_bars(minutes)

    def _clock(self) -> int:
        """How many replayed minutes have closed by now."""
        if self._t0 is None:
            return 0
        return min(len(self._minutes), int((time.monotonic() - self._t0) * self.speed))

    # -- the server ------------------------------------------------------------------------
    def url(self, feed: str = "real-time") -> str:
        return f"ws://127.0.0.1:{self.port}/{'delayed/' if feed == 'delayed' else ''}stocks"

    def config(self) -> dict[str, str]:
        return {"MASSIVE_WS_REALTIME_URL": self.url("real-time"), "MASSIVE_WS_DELAYED_URL": self.url("delayed")}

    def __enter__(self) -> "FakeMassiveWS":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> "FakeMassiveWS":
        ready = threading.Event()

        def run() -> None:
            from websockets.asyncio.server import serve

            async def main() -> None:
                self._loop = asyncio.get_running_loop()
                # its own quiet logger: the library logs every frame at DEBUG, the auth message too
                quiet = logging.getLogger("finrpt_providers.testing.fake_ws")
                quiet.setLevel(logging.WARNING)
                async with serve(self._handler, "127.0.0.1", 0, ping_interval=None, logger=quiet) as server:
                    self._server = server
                    self.port = server.sockets[0].getsockname()[1]
                    self._stopped = asyncio.Event()
                    ready.set()
                    await self._stopped.wait()

            asyncio.run(main())

        self._thread = threading.Thread(target=run, name="fake-massive-ws", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake WebSocket server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(5)
            self._loop = None

    def reset(self) -> None:
        self.reject_auth = self.max_connections = self.burst = self.auth_spam = self.no_ack = False
        self.ping_every = None
        self.pongs = []
        self.plan = ("real-time", "delayed")
        self.one_connection = True
        self.drop_after = self.stall_after = None
        self.hostile = {}
        self.connections = self.active = self.sent_messages = 0
        self.received.clear()
        self._t0 = None

    async def _handler(self, ws) -> None:
        feed = "delayed" if ws.request.path.startswith("/delayed") else "real-time"
        self.connections += 1
        await ws.send(json.dumps([{"ev": "status", "status": "connected", "message": "Connected Successfully"}]))
        try:
            first = json.loads(await ws.recv())
        except Exception:
            return
        self.received.append({"action": first.get("action"), "feed": feed})  # the key is not kept
        if first.get("action") != "auth":
            await ws.send(json.dumps([{"ev": "status", "status": "error", "message": "please authenticate first"}]))
            return
        if self.max_connections or (self.one_connection and self.active > 0):
            await ws.send(json.dumps([{"ev": "status", "status": "max_connections", "message": "Maximum number of "
                                       "websocket connections exceeded. You have reached the connection limit for "
                                       "your account."}]))
            return
        if self.auth_spam:
            n = 0
            try:
                while True:
                    n += 1
                    await ws.send(json.dumps([{"ev": "status", "status": "info", "message": f"still working ({n})"}]))
                    await asyncio.sleep(0.005)
            except Exception:  # the client gave up: as it should
                return
        if self.reject_auth or first.get("params") != self.api_key:
            await ws.send(json.dumps([{"ev": "status", "status": "auth_failed", "message": "authentication failed"}]))
            return
        await ws.send(json.dumps([{"ev": "status", "status": "auth_success", "message": "authenticated"}]))
        self.active += 1
        state = {"counted": True}  # a stalled connection stops counting (the real one times out server-side)
        subs: dict[str, set[str]] = {"AM": set(), "A": set()}
        replay = None
        pinger = asyncio.create_task(self._pinger(ws)) if self.ping_every else None
        try:
            async for raw in ws:
                msg = json.loads(raw)
                action, params = msg.get("action"), str(msg.get("params", ""))
                self.received.append({"action": action, "params": params, "feed": feed})
                if action in ("subscribe", "unsubscribe"):
                    if feed not in self.plan:
                        await ws.send(json.dumps([{"ev": "status", "status": "error", "message": "Your plan doesn't "
                                                   f"include websocket access to {feed} data. Visit "
                                                   "https://massive.com/pricing to upgrade."}]))
                        return
                    for item in (p.strip() for p in params.split(",") if p.strip()):
                        kind, _, sym = item.partition(".")
                        if kind in subs:
                            (subs[kind].add if action == "subscribe" else subs[kind].discard)(sym)
                    if self.no_ack:
                        continue
                    await ws.send(json.dumps([{"ev": "status", "status": "success",
                                               "message": f"{action}d to: {params}"}]))
                    if replay is None and action == "subscribe":
                        if self._t0 is None:
                            self._t0 = time.monotonic()
                        replay = asyncio.create_task(self._replay(ws, subs, state))
        except Exception:
            pass
        finally:
            if state["counted"]:
                self.active -= 1
            if replay is not None:
                replay.cancel()
            if pinger is not None:
                pinger.cancel()

    async def _pinger(self, ws) -> None:
        while True:
            await asyncio.sleep(self.ping_every)
            sent = time.monotonic()
            try:
                waiter = await ws.ping()
                await asyncio.wait_for(waiter, 5)
                self.pongs.append((sent, time.monotonic() - sent))
            except asyncio.TimeoutError:
                self.pongs.append((sent, None))
            except Exception:
                return

    async def _replay(self, ws, subs: dict[str, set[str]], state: dict) -> None:
        sent = 0
        nxt = self._clock()  # a (re)connection starts at the live edge: what passed meanwhile is missed
        while True:
            now = len(self._minutes) if self.burst else self._clock()
            while nxt < now:
                minute = self._minutes[nxt]
                nxt += 1
                for kind in ("AM", "A"):
                    wanted = subs[kind]
                    if not wanted:
                        continue
                    if self.tape is not None:
                        if kind != "AM":
                            continue
                        k = int((minute - self.tape.minutes[0]) // pd.Timedelta(minutes=1))
                        only = None if "*" in wanted else {self.tape.index[t] for t in wanted if t in self.tape.index}
                        msg = self.tape.message(k, only)
                        groups = [msg] if msg else []
                    else:
                        evs = [e for e in self._bars[minute].get(kind, ()) if "*" in wanted or e["sym"] in wanted]
                        if not evs:
                            continue
                        groups = [evs] if kind == "AM" else [[e for e in evs if e["s"] == s]
                                                             for s in sorted({e["s"] for e in evs})]
                    swap = self.hostile.get(f"{minute:%H:%M}" if kind == "AM" else f"A {minute:%H:%M}")
                    if swap is not None:
                        groups = list(swap)
                    for group in groups:
                        if self.drop_after is not None and sent >= self.drop_after:
                            self.drop_after = None
                            ws.transport.abort()
                            return
                        if self.stall_after is not None and sent >= self.stall_after:
                            self.stall_after = None
                            ws.transport.pause_reading()
                            self.active -= 1
                            state["counted"] = False
                            await asyncio.sleep(60)
                            ws.transport.abort()
                            return
                        await ws.send(group if isinstance(group, str) else json.dumps(group))
                        sent += 1
                        self.sent_messages += 1
                        await asyncio.sleep(0)  # a burst still lets the loop answer pings and read
            if nxt >= len(self._minutes):
                return
            await asyncio.sleep(0.2 / max(self.speed, 1) if not self.burst else 0)
