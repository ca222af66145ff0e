"""The live stream at scale and against hostile servers: the README example as written, a
whole-market ``*`` replay read by a consumer whose memory is measured in a child process,
a source faster than the gate, one 50 MB message, a handshake that never completes, a drop
and resume of 1,200 tickers filled in bulk while pings are answered, plugins that call
``sys.exit``, and reconnecting switched off. Every wait is bounded by a deadline; nothing synchronises on a fixed sleep."""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

import finrpt_providers as fp
from finrpt_providers import (
    LiveFeed,
    PluginError,
    PriceProvider,
    ProviderUnavailable,
    hookimpl,
)
from finrpt_providers.config import Config
from finrpt_providers.live import weight
from finrpt_providers.testing import FakeMassiveREST, SyntheticMarket
from finrpt_providers.testing.fake_massive_ws import FakeMassiveWS
from finrpt_providers.testing.tape import WideTape

KEY = "ws-scale-sentinel-key-51d2"
COLS = ["open", "high", "low", "close", "volume", "vwap"]
ET = "America/New_York"


# -- fixtures and helpers ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def short_market() -> SyntheticMarket:
    return SyntheticMarket(start="2026-06-22", end="2026-06-30")


@pytest.fixture(scope="module")
def day(short_market):
    return short_market.sessions[-1]


@pytest.fixture(scope="module")
def rest(short_market):
    with FakeMassiveREST(short_market, api_key=KEY) as srv:
        yield srv


@pytest.fixture
def ws(short_market, rest):
    """The synthetic market's AAPL, SPY and NVDA replayed from 09:30, 40 minutes a second."""
    rest.reset()
    with FakeMassiveWS(short_market, api_key=KEY, speed=40.0, tickers=["AAPL", "SPY", "NVDA"]) as srv:
        yield srv
    rest.reset()


def values(rest, ws, day, **extra) -> dict[str, str]:
    out = {"MASSIVE_API_KEY": KEY, "MASSIVE_REST_BASE_URL": rest.url, "FINRPT_PRICE_PROVIDERS": "massive_rest",
           "FINRPT_PROVIDERS_TODAY": day.isoformat(), "MASSIVE_REST_BACKOFF": "0.01",
           "MASSIVE_REST_MAX_RETRIES": "1", "FINRPT_STREAM_BACKOFF": "0.02", "MASSIVE_WS_PING_INTERVAL": "1",
           "MASSIVE_WS_PING_TIMEOUT": "2", "MASSIVE_WS_OPEN_TIMEOUT": "3", **ws.config()}
    out.update({k: str(v) for k, v in extra.items()})
    return out


def cfg(rest, ws, day, **extra) -> Config:
    return Config.load(values(rest, ws, day, **extra), environ={})


@contextlib.contextmanager
def watchdog(s, seconds: float):
    """Close ``s`` when ``seconds`` pass (a blocked ``next`` then ends): yields a flag that
    tells whether it fired."""
    fired = threading.Event()

    def fire():
        fired.set()
        s.close()

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield fired
    finally:
        timer.cancel()


def next_within(s, seconds: float, describe=lambda: ""):
    """``next(s)`` in a helper thread, bounded: ("ok", frame) / ("raised", exception) /
    ("end", None) for StopIteration; a hang closes the stream and fails the test."""
    box: dict = {}

    def run():
        try:
            box["ok"] = next(s)
        except StopIteration:
            box["end"] = None
        except BaseException as e:  # noqa: BLE001 - SystemExit must be seen, not end the test run
            box["raised"] = e

    t = threading.Thread(target=run, daemon=True)
    t0 = time.monotonic()
    t.start()
    t.join(seconds)
    if t.is_alive():
        state = describe()
        s.close()
        t.join(10)
        pytest.fail(f"next() did not return within {seconds} s (stream: {s!r}) {state}")
    kind, val = next(iter(box.items()))
    return kind, val, time.monotonic() - t0


def error_after_frames(s, seconds: float, max_frames: int = 10_000):
    """Read ``s`` until it raises (bounded): (frames read, the exception, seconds)."""
    frames, t0 = [], time.monotonic()
    while len(frames) < max_frames:
        left = seconds - (time.monotonic() - t0)
        assert left > 0, f"no error within {seconds} s ({len(frames)} frame(s) read)"
        kind, val, _ = next_within(s, left)
        if kind == "ok":
            frames.append(val)
            continue
        assert kind == "raised", f"the stream ended normally after {len(frames)} frame(s): never silent"
        return frames, val, time.monotonic() - t0
    pytest.fail("the stream never failed")


def same_bars(mine: pd.DataFrame, truth: pd.DataFrame, what: str) -> None:
    assert mine.index.is_unique and mine.index.is_monotonic_increasing, f"{what}: duplicates or out of order"
    assert len(mine) == len(truth), f"{what}: {len(mine)} bars, the truth has {len(truth)}"
    assert list(mine.index) == list(truth.index), f"{what}: other timestamps than the truth"
    np.testing.assert_allclose(mine[COLS].to_numpy(dtype="float64"), truth[COLS].to_numpy(dtype="float64"),
                               rtol=1e-12, err_msg=what)


# -- the child consumer (its own RSS) -------------------------------------------------------------
CHILD = r'''
import faulthandler, json, os, sys, threading, time
args = json.loads(sys.argv[1])
out = {"bars": 0, "frames": 0, "attrs": {}, "error": None}
progress = [time.monotonic()]


def watch():
    """A stalled stream (no frame for args["stall"] s) or one past its deadline: say so, show
    every thread's stack, exit (the test fails on it instead of hanging)."""
    end = time.monotonic() + args["timeout"]
    while True:
        time.sleep(0.5)
        now = time.monotonic()
        if now - progress[0] > args["stall"] or now > end:
            why = "deadline" if now > end else f"stalled: no frame for {args['stall']} s"
            print(f"RESULT " + json.dumps({**out, "error": f"{why} after {out['bars']} bar(s) in "
                                           f"{out['frames']} frame(s)"}), flush=True)
            faulthandler.dump_traceback(all_threads=True)
            sys.stderr.flush()
            os._exit(3)


threading.Thread(target=watch, daemon=True).start()


def rss():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0])  # KiB
    return out


import numpy as np
import pandas as pd
import finrpt_providers as fp
from finrpt_providers.config import Config
from finrpt_providers.live import weight

cfg = Config.load(args["config"], environ={})
heaviest = 0
base = None
with fp.stream(args["tickers"], config=cfg, extended_hours=True) as s:  # the tape starts at 04:00
    if args["mode"] == "wide":  # account per ticker, keep nothing else
        n, first_ms = args["n"], args["first_ms"]
        count = np.zeros(n, np.int64); msum = np.zeros(n, np.int64); csum = np.zeros(n); vsum = np.zeros(n)
        last = np.full(n, -1, np.int64); disorder = 0
    else:  # keep the watched tickers' bars (a few)
        keep = {t: [] for t in args["watch"]}
    try:
        for bars in s:
            progress[0] = time.monotonic()
            heaviest = max(heaviest, weight(bars))
            out["frames"] += 1
            out["bars"] += len(bars)
            for k in bars.attrs:
                if k in ("gaps", "errors", "late"):
                    out["attrs"].setdefault(k, []).append({t: str(v) for t, v in bars.attrs[k].items()})
            if base is None:
                base = rss()  # after the imports, the connection and a first frame
            if args["mode"] == "wide":
                names = bars.index.get_level_values(0)
                i = np.fromiter((int(t[1:]) for t in names), np.int64, count=len(names))
                m = (bars.index.get_level_values(1).asi8 // 1_000_000 - first_ms) // 60_000
                order = np.lexsort((m, i))
                i, m = i[order], m[order]
                same = i[1:] == i[:-1]
                disorder += int((m[1:][same] <= m[:-1][same]).sum())
                heads = np.r_[True, ~same] if len(i) else np.zeros(0, bool)
                disorder += int((m[heads] <= last[i[heads]]).sum())
                np.add.at(count, i, 1)
                np.add.at(msum, i, m)
                np.add.at(csum, i, bars["close"].to_numpy()[order])
                np.add.at(vsum, i, bars["volume"].to_numpy()[order])
                if len(i):
                    last[i[heads]] = np.maximum.reduceat(m, np.flatnonzero(heads))
                if out["bars"] >= args["expect"]:
                    break
            else:
                for t in keep:
                    if t in bars.index.get_level_values(0):
                        part = bars.xs(t, level=0)
                        keep[t].extend([[ts.isoformat(), *map(float, row), src] for ts, row, src in zip(
                            part.index, part[["open", "high", "low", "close", "volume", "vwap"]].to_numpy(),
                            [bars.attrs["source"]] * len(part))])
                w = args["watch"][0]
                if keep[w] and keep[w][-1][0] >= args["until"]:
                    break
    except Exception as e:
        out["error"] = f"{type(e).__name__}: {e}"
    end = rss()
    out.update({"base_rss_kib": base["VmRSS"] if base else None, "peak_rss_kib": end["VmHWM"],
                "end_rss_kib": end["VmRSS"], "kept_bytes": s.kept_bytes, "peak_waiting": s.peak_waiting,
                "budget": s.budget, "connections": s.connections, "fills": s.fills, "heaviest_frame": heaviest})
    if args["mode"] == "wide":
        out.update({"disorder": disorder, "count": count.tolist(), "msum": msum.tolist(), "csum": csum.tolist(),
                    "vsum": vsum.tolist()})
    else:
        out["kept"] = keep
print("RESULT " + json.dumps(out), flush=True)
'''


def run_child(tmp_path, args: dict, timeout: float) -> dict:
    script = tmp_path / "consumer.py"
    script.write_text(CHILD)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MASSIVE_", "FINRPT_", "POLYGON_"))}
    args = {"stall": 12, **args, "timeout": timeout}
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, str(script), json.dumps(args)], capture_output=True, text=True,
                       timeout=timeout + 30, env=env, cwd=tmp_path, check=False)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, f"the consumer failed (rc {p.returncode}):\n{p.stderr[-4000:]}"
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["error"] is None, f"the consumer: {out['error']}\n{p.stderr[-6000:]}"
    assert p.returncode == 0, p.stderr[-4000:]
    out["seconds"] = time.monotonic() - t0
    out["stderr"] = p.stderr
    return out


# -- 1. the README example ------------------------------------------------------------------------
def test_the_readme_example_verbatim_and_fp_stream_stays_the_function(monkeypatch, capsys, rest, ws, day):
    for k, v in values(rest, ws, day).items():  # the settings from the environment, as a user has them
        monkeypatch.setenv(k, v)
    frames = []
    import finrpt_providers as fp  # the README's lines from here

    with fp.stream(["AAPL", "MSFT"]) as live:        # interval="1m" (default) or "1s"  # noqa: SIM117
        with watchdog(live, 30) as fired:
            for bars in live:                            # or: async for bars in live
                print(bars.attrs["feed"], bars.attrs["source"], bars)   # long frame (ticker, timestamp)
                live.subscribe("NVDA")                   # and live.unsubscribe(...), while running
                frames.append(bars)
                got = pd.concat(frames).index.get_level_values(0)
                if (got == "AAPL").sum() >= 12 and (got == "NVDA").sum() >= 5:
                    break
    assert not fired.is_set(), "the README example did not deliver 12 AAPL and 5 NVDA bars within 30 s"
    assert "real-time stream" in capsys.readouterr().out
    bars = pd.concat(frames)
    assert bars.index.names == ["ticker", "timestamp"]
    assert set(bars.index.get_level_values(0)) == {"AAPL", "NVDA"}  # the fake has no MSFT: it simply gets none
    assert all(f.attrs["provider"] == "massive_rest" and f.attrs["feed"] == "real-time" for f in frames)
    mine = bars.xs("AAPL", level=0)
    truth = ws.truth("AAPL")
    same_bars(mine, truth[truth.index <= mine.index[-1]], "AAPL")
    assert mine.index[0] == pd.Timestamp(f"{day} 09:30", tz=ET)
    nvda = bars.xs("NVDA", level=0)  # from the minute after it was subscribed, every bar
    truth = ws.truth("NVDA")
    same_bars(nvda, truth[(truth.index >= nvda.index[0]) & (truth.index <= nvda.index[-1])], "NVDA")
    assert {"action": "subscribe", "params": "AM.AAPL,AM.MSFT", "feed": "real-time"} in ws.received
    assert [r for r in ws.received if r.get("params") == "AM.NVDA"] == [
        {"action": "subscribe", "params": "AM.NVDA", "feed": "real-time"}]  # once, though asked every frame

    # importing the modules that implement it never shadows the function with a module: here, and in a
    # fresh interpreter where those imports come first
    import finrpt_providers
    import finrpt_providers.live
    import finrpt_providers.providers.massive_rest.live

    assert callable(fp.stream) and inspect.isfunction(fp.stream) and not inspect.ismodule(fp.stream)
    assert fp.stream is finrpt_providers.live.stream and finrpt_providers.stream is fp.stream
    assert "stream" in fp.__all__ and "Stream" in fp.__all__
    assert inspect.signature(fp.stream).parameters["interval"].default == "1m"
    probe = ("import inspect, json\n"
             "import finrpt_providers.providers.massive_rest.live\n"
             "import finrpt_providers.live\n"
             "import finrpt_providers as fp\n"
             "import finrpt_providers.live\n"
             "print(json.dumps([inspect.isfunction(fp.stream), fp.stream is finrpt_providers.live.stream, "
             "'stream' in fp.__all__, type(fp.stream).__name__]))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [True, True, True, "function"]


# -- 2. a fast consumer of a whole market, memory measured ----------------------------------------------
def test_a_whole_market_replay_is_delivered_exactly_once_within_the_memory_budget(tmp_path, short_market, rest,
                                                                                   day):
    n, minutes = 2000, 240
    tape = WideTape(day, tickers=n, minutes=minutes)  # 04:00-07:59
    idx = np.arange(n, dtype=np.int64)
    count = np.zeros(n, np.int64)
    msum = np.zeros(n, np.int64)
    csum = np.zeros(n)
    vsum = np.zeros(n)
    for m in range(minutes):
        traded = tape.traded(m, idx)
        i = idx[traded]
        x = tape._values(m, i)  # the tape's own values (a pure function of ticker and minute)
        count[i] += 1
        msum[i] += m
        csum[i] += x["c"]
        vsum[i] += x["v"]
    expect = int(count.sum())
    assert expect > 400_000  # ~430k bars: keeping them at the old ~2.6 KB a bar would be > 1 GB
    rest.reset()
    rest.tape = tape
    with FakeMassiveWS(short_market, api_key=KEY, tape=tape, start="04:00") as ws:
        ws.burst = True
        budget_mb = 16
        config = values(rest, ws, day, FINRPT_STREAM_MEMORY_MB=budget_mb, MASSIVE_WS_PING_INTERVAL=5,
                        MASSIVE_WS_PING_TIMEOUT=20)
        out = run_child(tmp_path, {"mode": "wide", "tickers": "*", "config": config, "n": n, "expect": expect,
                                   "first_ms": int(tape.minutes[0].value // 1_000_000)}, timeout=45)
        connections = ws.connections
    rest.reset()
    summary = {k: v for k, v in out.items() if k not in ("count", "msum", "csum", "vsum", "stderr")}
    print("whole market consumer:", summary)
    assert out["error"] is None, (out["error"], out["stderr"][-3000:])
    assert connections == 1 and out["connections"] == 1 and out["fills"] == 0
    assert out["bars"] == expect, summary
    got = np.array(out["count"])
    assert (got == count).all(), f"tickers with other counts than the tape's: {np.flatnonzero(got != count)[:10]}"
    assert (np.array(out["msum"]) == msum).all(), "some ticker got other minutes than the tape's"
    assert out["disorder"] == 0, "a ticker's bars came out of order or twice"
    np.testing.assert_allclose(out["csum"], csum, rtol=1e-9)
    np.testing.assert_allclose(out["vsum"], vsum, rtol=1e-12)
    assert not out["attrs"], f"gaps/errors/late on a clean replay: {str(out['attrs'])[:500]}"
    budget = budget_mb << 20
    assert out["budget"] == budget
    assert 0 < out["kept_bytes"] <= budget // 2
    assert 0 < out["heaviest_frame"] < budget // 8  # one minute of the whole market: ~150 bytes a bar
    assert out["peak_waiting"] <= budget // 2 + out["heaviest_frame"]
    growth_mb = (out["peak_rss_kib"] - out["base_rss_kib"]) / 1024
    assert growth_mb < 150, f"the consumer's RSS grew {growth_mb:.0f} MB for a {budget_mb} MiB budget"
    assert expect * 2600 > 1 << 30  # what keeping every bar cost before


# -- 2b. a source faster than the gate ------------------------------------------------------------
class _FastFeed(LiveFeed):
    """Hands over prepared whole-market frames as fast as the reader asks (a source faster
    than the gate), then nothing."""
    provider = "fastfeed"
    feed = "test"
    frames: ClassVar[list] = []

    def __init__(self):
        self.k = 0
        self.done = threading.Event()

    def connect(self):
        pass

    def subscribe(self, tickers):
        pass

    def unsubscribe(self, tickers):
        pass

    def receive(self, timeout):
        if self.k < len(self.frames):
            self.k += 1
            return self.frames[self.k - 1]
        self.done.wait(timeout)
        return None

    def fill(self, gaps):
        return None

    def close(self):
        self.done.set()


def test_a_source_faster_than_the_gate_never_wedges_the_stream(register_plugin, day):
    """The reader fills its share of the waiting budget with frames the deliverer has not gated
    yet; the deliverer must still hand its frames to a consumer that reads at once (one shared
    budget once deadlocked here: the reader took every byte the deliverer gave back)."""
    from finrpt_providers.providers.massive_rest.live import events_to_bars

    n, minutes = 2000, 60
    tape = WideTape(day, tickers=n, minutes=minutes)
    frames = [events_to_bars(json.loads(tape.message(m))) for m in range(minutes)]
    expect = sum(len(f) for f in frames)

    class Feed(_FastFeed):
        pass

    Feed.frames = frames

    class Provider(PriceProvider):
        name = "fastfeed"
        serves_stream = True

        def open_stream(self, interval):
            return Feed()

    register_plugin(_plugin(Provider()), name="fast-feed-plugin")
    config = Config.load({"FINRPT_PRICE_PROVIDERS": "fastfeed", "FINRPT_PROVIDERS_TODAY": day.isoformat(),
                          "FINRPT_STREAM_MEMORY_MB": "8"}, environ={})
    s = fp.stream("*", config=config, extended_hours=True)  # the tape starts at 04:00
    got, seen = 0, Counter()

    def state():
        return (f"wedged after {got} of {expect} bars: {s.waiting_bytes} bytes waiting (budget {s.budget}), "
                f"{s._inbox.qsize()} frame(s) received and not gated, {s._queue.qsize()} for the consumer")

    try:
        while got < expect:
            kind, frame, _ = next_within(s, 10, state)
            assert kind == "ok", (kind, frame)
            got += len(frame)
            seen.update(frame.index.get_level_values(1).asi8.tolist())
    finally:
        s.close()
    assert got == expect and len(seen) == minutes
    assert s.peak_waiting <= s.budget // 2 + max(weight(f) for f in frames)


# -- 3. one 50 MB message --------------------------------------------------------------------------
def big_message(ws, mb: float = 50) -> tuple[str, int]:
    """ONE JSON array of ~``mb`` MB of valid AM events of 09:35: AAPL's real one repeated
    (identical duplicates), then SPY's and NVDA's."""
    evs = ws.minute_events("09:35")
    aapl = json.dumps(next(e for e in evs if e["sym"] == "AAPL"))
    reps = int(mb * 1e6 // (len(aapl) + 1))
    others = [json.dumps(e) for e in evs if e["sym"] != "AAPL"]
    assert len(others) == 2
    text = "[" + ",".join([aapl] * reps + others) + "]"
    assert json.loads(text[:len(aapl) * 3 + 3] + "]") == [json.loads(aapl)] * 3
    return text, reps


def test_one_50_mb_message_costs_the_consumer_far_less_than_its_size_and_the_stream_goes_on(tmp_path, short_market,
                                                                                            rest, ws, day):
    big, reps = big_message(ws)
    assert len(big) > 50e6 and reps > 200_000
    ws.hostile["09:35"] = [big]
    config = values(rest, ws, day, MASSIVE_WS_PING_INTERVAL=5, MASSIVE_WS_PING_TIMEOUT=20)
    out = run_child(tmp_path, {"mode": "watch", "tickers": ["AAPL", "SPY", "NVDA"], "config": config,
                               "watch": ["AAPL", "SPY", "NVDA"], "until": f"{day}T09:45:00-04:00"}, timeout=60)
    summary = {k: v for k, v in out.items() if k not in ("kept", "stderr")}
    print("50 MB message consumer:", summary)
    assert out["error"] is None, (out["error"], out["stderr"][-3000:])
    assert out["connections"] == 1 and ws.connections == 1, "the 50 MB message (under a quarter of 256 MiB) dropped"
    growth_mb = (out["peak_rss_kib"] - out["base_rss_kib"]) / 1024
    assert growth_mb < 250, f"a 50 MB message grew the consumer's RSS by {growth_mb:.0f} MB"
    assert not out["attrs"].get("errors") and not out["attrs"].get("gaps"), out["attrs"]
    for t in ("AAPL", "SPY", "NVDA"):
        rows = out["kept"][t]
        mine = pd.DataFrame([r[1:7] for r in rows], columns=COLS,
                            index=pd.DatetimeIndex([pd.Timestamp(r[0]) for r in rows]).tz_convert(ET))
        truth = ws.truth(t)
        truth = truth[truth.index <= mine.index[-1]]
        same_bars(mine, truth, t)  # 09:35 once (the duplicates identical), and the later bars flow
        assert pd.Timestamp(f"{day} 09:35", tz=ET) in mine.index
        assert {r[7] for r in rows} == {"stream"}
    aapl = out["kept"]["AAPL"]
    assert aapl[-1][0] >= f"{day}T09:45:00-04:00"


def test_a_50_mb_message_over_a_quarter_of_the_budget_ends_the_stream_naming_the_setting(rest, ws, day):
    big, _ = big_message(ws)
    ws.hostile["09:35"] = [big]
    s = fp.stream(["AAPL", "SPY"], config=cfg(rest, ws, day, FINRPT_STREAM_MEMORY_MB=16, FINRPT_STREAM_MAX_RECONNECTS=0,
                                              MASSIVE_WS_PING_INTERVAL=5, MASSIVE_WS_PING_TIMEOUT=20))
    try:
        frames, err, _ = error_after_frames(s, 30)
    finally:
        s.close()
    assert isinstance(err, ProviderUnavailable), repr(err)
    msg = str(err)
    assert "FINRPT_STREAM_MEMORY_MB" in msg and "4 MiB" in msg, msg
    assert "reconnecting is off" in msg, msg
    bars = pd.concat(frames)
    mine = bars.xs("AAPL", level=0)
    truth = ws.truth("AAPL")
    same_bars(mine, truth[truth.index < pd.Timestamp(f"{day} 09:35", tz=ET)], "AAPL before the big message")
    assert ws.connections == 1


def test_a_refused_50_mb_message_with_reconnects_is_filled_from_rest_never_silent(rest, ws, day):
    big, _ = big_message(ws)
    ws.hostile["09:35"] = [big]
    frames = []
    config = cfg(rest, ws, day, FINRPT_STREAM_MEMORY_MB=16, MASSIVE_WS_PING_INTERVAL=5, MASSIVE_WS_PING_TIMEOUT=20)
    with fp.stream(["AAPL", "SPY"], config=config) as s, watchdog(s, 40) as fired:
        for f in s:
            frames.append(f)
            if f.attrs["source"] == "stream" and "AAPL" in f.index.get_level_values(0) and \
                    f.xs("AAPL", level=0).index[-1] >= pd.Timestamp(f"{day} 09:50", tz=ET):
                break
    assert not fired.is_set(), "the stream did not reach 09:50 within 40 s"
    assert ws.connections == 2
    bars = pd.concat(frames)
    for t in ("AAPL", "SPY"):
        mine = bars.xs(t, level=0)  # in the order delivered
        truth = ws.truth(t)
        same_bars(mine, truth[truth.index <= mine.index[-1]], t)  # 09:35 and what the reconnect missed: filled
    assert any(f.attrs["source"] == "fill" and pd.Timestamp(f"{day} 09:35", tz=ET) in
               f.index.get_level_values(1) for f in frames)


# -- 4. a handshake that never completes -----------------------------------------------------------
@pytest.mark.parametrize("switch, said", [
    ("auth_spam", "did not answer the authentication within 1 s"),
    ("no_ack", "did not acknowledge the subscription within 1 s"),
])
def test_a_handshake_that_never_completes_fails_within_the_open_timeout(rest, ws, day, switch, said):
    setattr(ws, switch, True)
    s = fp.stream(["AAPL"], config=cfg(rest, ws, day, MASSIVE_WS_OPEN_TIMEOUT=1, FINRPT_STREAM_MAX_RECONNECTS=0))
    try:
        kind, err, took = next_within(s, 20)
    finally:
        s.close()
    assert kind == "raised" and isinstance(err, ProviderUnavailable), (kind, err)
    assert 0.8 <= took < 10, f"{switch}: took {took:.1f} s with MASSIVE_WS_OPEN_TIMEOUT=1"
    assert said in str(err) and "MASSIVE_WS_OPEN_TIMEOUT" in str(err), str(err)
    assert ws.connections == 1
    if switch == "auth_spam":
        assert re.search(r"it sent \d+ other message", str(err)), str(err)


@pytest.mark.parametrize("switch, said", [
    ("auth_spam", "did not answer the authentication within 1 s"),
    ("no_ack", "did not acknowledge the subscription within 1 s"),
])
def test_cli_stream_exits_nonzero_with_the_reason_instead_of_hanging(tmp_path, rest, ws, day, switch, said):
    setattr(ws, switch, True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MASSIVE_", "FINRPT_", "POLYGON_"))}
    env.update(values(rest, ws, day, MASSIVE_WS_OPEN_TIMEOUT=1, FINRPT_STREAM_MAX_RECONNECTS=0))
    t0 = time.monotonic()
    p = subprocess.Popen([sys.executable, "-m", "finrpt_providers.cli", "stream", "AAPL"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        out, err = p.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        pytest.fail(f"finrpt-providers stream hung ({switch}): {err[-2000:]}")
    took = time.monotonic() - t0
    assert p.returncode == 1, (p.returncode, err)
    assert said in err and "error:" in err, err
    assert "AAPL" not in out
    assert took < 30
    assert KEY not in out + err


# -- 5. a drop and resume of 1,200 tickers ----------------------------------------------------------------
class _Marks(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.records: list[tuple[float, str]] = []

    def emit(self, record):
        self.records.append((time.monotonic(), record.getMessage()))


SERVERS = r'''
import json, sys
from finrpt_providers.testing import FakeMassiveREST, SyntheticMarket
from finrpt_providers.testing.fake_massive_ws import FakeMassiveWS
from finrpt_providers.testing.tape import WideTape

args = json.loads(sys.argv[1])
market = SyntheticMarket(start=args["start"], end=args["end"])
tape = WideTape(market.sessions[-1], tickers=args["n"])
with FakeMassiveREST(market, api_key=args["key"]) as rest, FakeMassiveWS(
        market, api_key=args["key"], tape=tape, speed=args["speed"], start="09:30") as ws:
    rest.tape = tape
    ws.drop_after = 5
    ws.ping_every = 0.2
    print(json.dumps({"rest": rest.url, "ws": ws.config()}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "delay":
            rest.delay = args["delay"]
            print(json.dumps({"before": len(rest.aggregate_requests())}), flush=True)
        elif cmd == "stats":
            print(json.dumps({"connections": ws.connections, "pongs": ws.pongs,
                              "asked": [[r.path, r.at] for r in rest.aggregate_requests()]}), flush=True)
            break
'''


@contextlib.contextmanager
def servers_process(tmp_path, short_market, n: int, speed: float, delay: float):
    """The fake REST and WebSocket servers over one WideTape in their own process (their
    threads do not share the client's GIL); time.monotonic() is the same clock in both."""
    script = tmp_path / "servers.py"
    script.write_text(SERVERS)
    args = {"start": str(short_market.start), "end": str(short_market.end), "n": n, "key": KEY, "speed": speed,
            "delay": delay}
    p = subprocess.Popen([sys.executable, str(script), json.dumps(args)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    answers: list = []
    got = threading.Event()

    def read():
        for line in p.stdout:
            answers.append(json.loads(line))
            got.set()

    threading.Thread(target=read, daemon=True).start()

    def ask(cmd: str | None, timeout: float = 30):
        got.clear()
        k = len(answers)
        if cmd is not None:
            p.stdin.write(cmd + "\n")
            p.stdin.flush()
        deadline = time.monotonic() + timeout
        while len(answers) <= k:
            assert p.poll() is None, f"the fake servers died: {p.stderr.read()[-3000:]}"
            assert time.monotonic() < deadline, f"the fake servers did not answer {cmd!r} within {timeout} s"
            got.wait(0.2)
            got.clear()
        return answers[k]

    try:
        yield ask
    finally:
        if p.poll() is None:
            p.kill()
        p.wait(10)


def test_a_whole_market_drop_is_filled_in_bulk_once_per_ticker_while_pings_are_answered(tmp_path, short_market,
                                                                                        day):
    n = 1200
    tape = WideTape(day, tickers=n)  # the same tape as the servers' (a pure function of ticker and minute)
    marks, pool = _Marks(), _Marks()
    logger = logging.getLogger("finrpt_providers.live")
    urllib3_log = logging.getLogger("urllib3.connectionpool")
    level = logger.level
    logger.addHandler(marks)
    logger.setLevel(logging.INFO)
    urllib3_log.addHandler(pool)
    frames = []
    try:
        # 10 market minutes a second: on two loaded cores the reader still parses 1,200-ticker messages
        # as fast as they come (so a ping is never stuck behind unread data)
        with servers_process(tmp_path, short_market, n, speed=10, delay=0.05) as ask:
            urls = ask(None)
            base = {"MASSIVE_API_KEY": KEY, "MASSIVE_REST_BASE_URL": urls["rest"],
                    "FINRPT_PRICE_PROVIDERS": "massive_rest", "FINRPT_PROVIDERS_TODAY": day.isoformat(),
                    "MASSIVE_REST_BACKOFF": "0.01", "MASSIVE_REST_MAX_RETRIES": "1", "FINRPT_STREAM_BACKOFF": "0.02",
                    "MASSIVE_WS_PING_INTERVAL": "1", "MASSIVE_WS_PING_TIMEOUT": "5", "MASSIVE_WS_OPEN_TIMEOUT": "5",
                    **urls["ws"]}
            # the process used Massive's REST before (a report with the default MASSIVE_REST_WORKERS=4)
            earlier = fp.get_prices(["W0001", "W0002"], day, day, interval="1m", adjustment="raw",
                                    config=Config.load(base, environ={}))
            assert len(earlier) > 600  # two tickers, 390 regular minutes each (the tape skips a few)
            del pool.records[:]
            skip = ask("delay")["before"]
            config = Config.load({**base, "MASSIVE_REST_WORKERS": "16"}, environ={})
            with fp.stream("*", config=config, extended_hours=True) as s:  # the tape starts at 04:00
                after_fill = None
                with watchdog(s, 60) as fired:
                    for f in s:
                        frames.append(f)
                        if f.attrs["source"] == "fill" and after_fill is None:
                            after_fill = len(frames)
                        if after_fill is not None and len(frames) >= after_fill + 12:
                            break
                fills, filled = s.fills, s.filled
            assert not fired.is_set(), f"no fill and 12 frames after it within 60 s ({len(frames)} frames)"
            stats = ask("stats")
    finally:
        logger.removeHandler(marks)
        logger.setLevel(level)
        urllib3_log.removeHandler(pool)
    connections = stats["connections"]
    pongs = [tuple(x) for x in stats["pongs"]]
    asked = [SimpleNamespace(path=path, at=at) for path, at in stats["asked"][skip:]]  # the stream's, not the report's
    assert all(re.fullmatch(r"/v2/aggs/ticker/W\d{4}/range/1/minute/\d{13}/\d{13}", r.path) for r in asked), \
        [r.path for r in asked][:5]

    assert connections == 2
    bars = pd.concat(frames)
    assert bars.index.is_unique, "a bar was delivered twice"
    names = bars.index.get_level_values(0)
    stamps = bars.index.get_level_values(1)
    src = np.concatenate([[f.attrs["source"]] * len(f) for f in frames])
    # connection 1 sent 09:30..09:34 (five messages); 09:35 was cut: every ticker's next bar leaves a hole
    cut = pd.Timestamp(f"{day} 09:35", tz=ET)
    streamed = pd.DataFrame({"t": names, "ts": stamps})[src == "stream"]
    before = streamed[streamed.ts < cut].groupby("t").ts.max()
    resumed = streamed[streamed.ts >= cut].groupby("t").ts.min()
    both = before.index.intersection(resumed.index)
    holes = {t for t in both if resumed[t] - before[t] > pd.Timedelta(minutes=1)}
    assert len(holes) >= 1000, f"only {len(holes)} tickers had a hole"

    paths = [r.path for r in asked]
    tickers = Counter(p.split("/")[4] for p in paths)
    assert not [t for t, k in tickers.items() if k > 1], "a ticker was asked twice"
    assert len(paths) == len(set(paths))
    assert set(tickers) == holes, (f"asked for {len(tickers)} tickers, {len(holes)} had a hole; "
                                   f"extra {sorted(set(tickers) - holes)[:5]}, missing {sorted(holes - set(tickers))[:5]}")
    assert len(asked) == len(holes)
    assert 1 <= fills <= 5, f"{fills} fill() calls for {len(holes)} tickers"
    assert filled == int((src == "fill").sum()) and filled > 0

    # pings answered DURING the (first, bulk) fill: its window from the log line that says what was filled
    said = [(t, m) for t, m in marks.records if m.startswith("stream: filled")]
    assert said, "no log line says what was filled"
    hi, first = said[0]
    took = float(re.search(r" in ([\d.]+) s", first).group(1))
    lo = hi - took
    more = re.search(r" and (\d+) more$", first)
    in_first = 5 + int(more.group(1)) if more else first.count(" after ")
    assert sum(lo - 0.05 <= r.at <= hi for r in asked) == in_first == sum(r.at <= hi for r in asked), \
        "the requests of the first fill are not inside the window its log line gives"
    assert took > 1.0, f"the fill took {took:.2f} s: too short to tell"
    during = [(sent, rtt) for sent, rtt in pongs if lo <= sent <= hi]
    assert len(during) >= 3, f"{len(during)} pings sent during a {took:.1f} s fill (all: {len(pongs)})"
    assert all(rtt is not None and rtt < 1.0 for _, rtt in during), f"pongs during the fill: {during}"
    assert all(rtt is not None for _, rtt in pongs), "a ping went unanswered"

    # every ticker: from 09:30 to its last bar, exactly the tape (no hole, no duplicate)
    start = pd.Timestamp(f"{day} 09:30", tz=ET)
    for t in ["W0000", f"W{n // 2:04d}", f"W{n - 1:04d}"]:
        mine = bars.xs(t, level=0)  # in the order delivered
        truth = tape.truth(t, mine.index[-1])
        same_bars(mine, truth[truth.index >= start], t)
    first_ms = int(tape.minutes[0].value // 1_000_000)
    i = np.fromiter((int(t[1:]) for t in names), np.int64, count=len(names))
    m = (stamps.asi8 // 1_000_000 - first_ms) // 60_000
    m0 = int((start.value // 1_000_000 - first_ms) // 60_000)
    lastm = np.full(n, -1, np.int64)
    np.maximum.at(lastm, i, m)
    want = np.zeros(n, np.int64)
    for k in range(m0, int(lastm.max()) + 1):
        want += tape.traded(k, np.arange(n)) & (lastm >= k)
    got = np.bincount(i, minlength=n)
    assert (got == want).all(), f"tickers with a hole or a duplicate: {np.flatnonzero(got != want)[:10]}"
    order = np.lexsort((m, i))
    for col, key in (("open", "o"), ("close", "c"), ("volume", "v")):
        vals = bars[col].to_numpy()[order]
        for k in np.unique(m):
            sel = m[order] == k
            x = tape._values(int(k), i[order][sel])
            np.testing.assert_allclose(vals[sel], x[key], rtol=1e-12, err_msg=f"{col} at minute {k}")

    # MASSIVE_REST_WORKERS=16 requests at once on a pool of 16 connections, not one sized for the earlier 4
    full = [m for _, m in pool.records if "pool is full" in m]
    assert not full, (f"{len(full)} 'Connection pool is full' warnings during the fill: the shared HTTP session "
                      f"keeps the pool size of the first client of this URL ({full[0]})")


# -- 6. plugins that exit ----------------------------------------------------------------------------
class Boom(BaseException):
    """Not an Exception: what a careless plugin might raise."""


def _streaming_provider(name: str, feed_cls=None, exit_on_open=False):
    class Provider(PriceProvider):
        serves_stream = True
        description = "a test stream"

        def open_stream(self, interval):
            if exit_on_open:
                raise SystemExit(3)
            return feed_cls()

    Provider.name = name
    return Provider()


class _ExitingFeed(LiveFeed):
    provider = "exitfeed"
    feed = "test"
    raise_in = "receive"
    error: BaseException = SystemExit(4)

    def __init__(self):
        self.closed = 0
        self.received = 0

    def connect(self):
        if self.raise_in == "connect":
            raise self.error

    def subscribe(self, tickers):
        pass

    def unsubscribe(self, tickers):
        pass

    def receive(self, timeout):
        self.received += 1
        if self.raise_in == "receive":
            raise self.error

    def fill(self, gaps):
        return None

    def close(self):
        self.closed += 1


class _ConnectBoomFeed(_ExitingFeed):
    raise_in = "connect"
    error = Boom("custom BaseException from connect()")


def _plugin(provider):
    class Plugin:
        @hookimpl
        def register_price_providers(self, register):
            register(provider)

    return Plugin()


def _config(names: str) -> Config:
    return Config.load({"FINRPT_PRICE_PROVIDERS": names, "FINRPT_PROVIDERS_TODAY": "2026-06-30"}, environ={})


def test_a_plugin_exiting_in_open_stream_is_a_plugin_error_naming_it(register_plugin):
    register_plugin(_plugin(_streaming_provider("exitopen", exit_on_open=True)), name="exit-open-plugin")
    before = threading.active_count()
    try:
        fp.stream(["AAPL"], config=_config("exitopen"))
        pytest.fail("open_stream() exited and stream() returned")
    except BaseException as e:  # noqa: BLE001 - a SystemExit here is the bug
        err = e
    assert isinstance(err, PluginError), f"{type(err).__name__}: {err}"
    assert "exit-open-plugin" in str(err) and "open_stream()" in str(err) and "exit(3)" in str(err), str(err)
    assert threading.active_count() <= before


@pytest.mark.parametrize("feed_cls, what, detail", [
    (_ExitingFeed, "receive()", "exit(4)"),
    (_ConnectBoomFeed, "connect()", "Boom"),
])
def test_a_plugin_feed_raising_a_base_exception_ends_the_stream_with_a_plugin_error(register_plugin, feed_cls, what,
                                                                                   detail):
    register_plugin(_plugin(_streaming_provider("exitfeed", feed_cls)), name="exit-feed-plugin")
    s = fp.stream(["AAPL"], config=_config("exitfeed"))
    try:
        kind, err, took = next_within(s, 15)
        assert kind == "raised", f"the stream ended with {kind!r} instead of a PluginError: never a normal end"
        assert isinstance(err, PluginError), f"{type(err).__name__}: {err}"
        assert "exit-feed-plugin" in str(err) and what in str(err) and detail in str(err), str(err)
        assert took < 10
        kind, _, _ = next_within(s, 10)
        assert kind == "end"  # then the stream is over
        assert s.closed
    finally:
        s.close()
    assert not s._reader.is_alive() and not s._thread.is_alive()
    assert s._feed.closed >= 1


# -- 7. reconnecting switched off --------------------------------------------------------------------
def test_with_reconnecting_off_a_drop_says_so_not_0_times(rest, ws, day):
    ws.drop_after = 3
    s = fp.stream(["AAPL"], config=cfg(rest, ws, day, FINRPT_STREAM_MAX_RECONNECTS=0))
    try:
        frames, err, _ = error_after_frames(s, 20)
    finally:
        s.close()
    assert isinstance(err, ProviderUnavailable), repr(err)
    msg = str(err)
    assert "reconnecting is off" in msg and "FINRPT_STREAM_MAX_RECONNECTS=0" in msg, msg
    assert not re.search(r"\b0 (times|reconnect|attempt)", msg), msg
    assert ws.connections == 1
    mine = pd.concat(frames).xs("AAPL", level=0)
    truth = ws.truth("AAPL")
    same_bars(mine, truth.iloc[:3], "AAPL before the drop")
