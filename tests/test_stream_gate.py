"""Live bars pass the package's one gate (frames.gate): a hostile feed (the fake Massive
WebSocket on 127.0.0.1 sending what it is told, see FakeMassiveWS.hostile) and a hostile
REST fill can refuse a ticker's bad bars, never deliver them, and never stop the good
ones. Every test reads until a named bar arrived, under a deadline (the stream is closed
when it passes, which ends the loop)."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import threading
import time

import numpy as np
import pandas as pd
import pytest

import finrpt_providers as fp
from finrpt_providers.live import stream

# the fixtures and helpers of the stream's own tests (a module-scoped market, REST and the WS fake)
from tests.test_stream import COLS, KEY, assert_exactly_the_truth, cfg, rest, short_market, ws  # noqa: F401

NY = "America/New_York"
inf, nan = float("inf"), float("nan")


def at(ws, hhmm: str) -> pd.Timestamp:
    return pd.Timestamp(f"{ws.day} {hhmm}", tz=NY)


@contextlib.contextmanager
def deadline(s, seconds: float = 20.0):
    """Close ``s`` when ``seconds`` pass: a read waiting for a bar that never comes ends."""
    timer = threading.Timer(seconds, s.close)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def read_until(s, tickers, hhmm: str, ws, seconds: float = 20.0) -> list[pd.DataFrame]:
    """Frames until every one of ``tickers`` has a delivered bar at or after ``hhmm``."""
    edge, frames, seen = at(ws, hhmm), [], {}
    t0 = time.monotonic()
    with deadline(s, seconds):
        for frame in s:
            frames.append(frame)
            long = frame if frame.index.nlevels == 2 else pd.concat({tickers[0]: frame}, names=["ticker"])
            for t, stamp in zip(long.index.get_level_values(0), long.index.get_level_values(1)):
                seen[t] = max(seen.get(t, stamp), stamp)
            if all(seen.get(t, edge - pd.Timedelta(days=1)) >= edge for t in tickers):
                return frames
    raise AssertionError(f"no bar at or after {hhmm} of every one of {tickers} within {seconds} s "
                         f"({time.monotonic() - t0:.1f} s; got {seen})")


def merged(frames, key: str) -> dict:
    out: dict = {}
    for f in frames:
        for t, v in f.attrs.get(key, {}).items():
            out[t] = f"{out[t]}; {v}" if key == "errors" and t in out else v
    return out


def assert_sane(bars: pd.DataFrame) -> None:
    assert bars.index.is_unique
    prices = bars[["open", "high", "low", "close"]].to_numpy()
    assert np.isfinite(prices).all() and (prices > 0).all()
    assert np.isfinite(bars["volume"].to_numpy()).all() and (bars["volume"] >= 0).all()


# -- duplicates in one message -----------------------------------------------------------------
def test_an_identical_duplicate_in_one_message_is_delivered_once(short_market, rest, ws, caplog):
    ws.hostile["09:33"] = [ws.minute_events("09:33") + [ws.event("AAPL", "09:33"), ws.event("SPY", "09:33")]]
    with stream(["AAPL", "SPY"], config=cfg(short_market, rest, ws)) as s:
        frames = read_until(s, ["AAPL", "SPY"], "09:38", ws)
    bars = pd.concat(frames)
    assert_exactly_the_truth(bars, ws, ["AAPL", "SPY"])  # unique, in order, the truth's values
    assert (bars.index == ("AAPL", at(ws, "09:33"))).sum() == 1
    assert not merged(frames, "errors") and not merged(frames, "late")
    assert all(f.attrs["source"] == "stream" for f in frames)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # a repeat is no news


def test_a_conflicting_duplicate_is_an_error_event_and_neither_is_delivered(short_market, rest, ws, caplog):
    """Which of two different bars of one start is right cannot be told: neither is
    delivered; the ticker's next bar fills the minute from REST (the truth)."""
    good = ws.event("AAPL", "09:33")
    other = ws.event("AAPL", "09:33", c=good["h"] if good["c"] != good["h"] else good["l"])
    ws.hostile["09:33"] = [ws.minute_events("09:33", ["SPY"]) + [good, other]]
    with stream(["AAPL", "SPY"], config=cfg(short_market, rest, ws)) as s:
        frames = read_until(s, ["AAPL", "SPY"], "09:38", ws)
    errors = merged(frames, "errors")
    assert list(errors) == ["AAPL"] and "sent twice with different values" in errors["AAPL"]
    said = [r for r in caplog.records if r.levelno == logging.WARNING and "AAPL" in r.getMessage()]
    assert said and "different values" in said[0].getMessage() and KEY not in said[0].getMessage()
    bars = pd.concat(frames)
    assert_exactly_the_truth(bars, ws, ["AAPL", "SPY"])  # the 09:33 delivered is REST's, the truth
    where = [f.attrs["source"] for f in frames if ("AAPL", at(ws, "09:33")) in f.index]
    assert where == ["fill"]
    assert bars.loc[("AAPL", at(ws, "09:33")), "close"] == good["c"] != other["c"]
    assert [f.attrs["source"] for f in frames if ("SPY", at(ws, "09:33")) in f.index] == ["stream"]


# -- impossible bars ---------------------------------------------------------------------------
@pytest.mark.parametrize("bad, reason", [
    ({"h": inf, "c": inf}, "infinite prices"),
    ({"o": -5.0}, "non-positive prices"),
    ({"l": 0.0}, "non-positive prices"),
    ({"o": "n/a"}, "missing prices"),  # not a number at all
    ({"v": inf}, "infinite or negative volume"),
    ({"h": 1.0}, "high/low do not bound open/close"),
], ids=["inf-price", "negative-price", "zero-price", "string-price", "inf-volume", "high-below-open"])
def test_an_impossible_bar_is_an_error_event_for_its_ticker_only(short_market, rest, ws, caplog, bad, reason):
    ws.hostile["09:33"] = [ws.minute_events("09:33", ["SPY"]) + [ws.event("AAPL", "09:33", **bad)]]
    with stream(["AAPL", "SPY"], config=cfg(short_market, rest, ws)) as s:
        frames = read_until(s, ["AAPL", "SPY"], "09:38", ws)
    bars = pd.concat(frames)
    assert_sane(bars)
    errors = merged(frames, "errors")
    assert list(errors) == ["AAPL"] and reason in errors["AAPL"] and "09:33" in errors["AAPL"]
    assert next(f for f in frames if "errors" in f.attrs).index.get_level_values(1)[0] == at(ws, "09:33")
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("AAPL" in m and reason in m for m in said) and not any(KEY in m for m in said)
    # the bad bar never went out; the minute came from REST with the next bar; SPY never noticed
    assert [f.attrs["source"] for f in frames if ("AAPL", at(ws, "09:33")) in f.index] == ["fill"]
    assert_exactly_the_truth(bars, ws, ["AAPL", "SPY"])


# -- other sessions ------------------------------------------------------------------------------
def test_bars_of_another_session_are_refused_and_later_bars_still_arrive(short_market, rest, ws, caplog):
    day = ws.day
    tomorrow, yesterday = day + dt.timedelta(days=1), short_market.sessions[-2]
    ws.hostile["09:33"] = [ws.minute_events("09:33"),
                           [ws.event("AAPL", "09:33", at="2099-06-30 09:34")],
                           [ws.event("SPY", "09:33", at=f"{tomorrow} 09:34")],
                           [ws.event("AAPL", "09:33", at=f"{yesterday} 15:59")]]
    with stream(["AAPL", "SPY"], config=cfg(short_market, rest, ws)) as s:
        frames = read_until(s, ["AAPL", "SPY"], "09:40", ws)
        last = dict(s._last)
    bars = pd.concat(frames)
    assert_exactly_the_truth(bars, ws, ["AAPL", "SPY"])  # 09:34..09:40 came: nothing hid them
    assert all(f.attrs["source"] == "stream" for f in frames)  # and nothing was missing
    assert pd.Timestamp(last["AAPL"], tz="UTC") == bars.xs("AAPL").index[-1]  # _last never went to 2099
    errors = merged(frames, "errors")
    assert set(errors) == {"AAPL", "SPY"}
    assert "2099-06-30 09:34" in errors["AAPL"] and f"{yesterday} 15:59" in errors["AAPL"]
    assert f"{tomorrow} 09:34" in errors["SPY"] and "outside the asked range" in errors["SPY"]
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("SPY" in m and str(tomorrow) in m for m in said)


# -- late and re-sent bars -------------------------------------------------------------------------
def test_a_late_bar_is_reported_and_logged_not_dropped_silently(short_market, rest, ws, caplog):
    """09:34 withheld, then sent after 09:35: not delivered out of order; a warning and
    ``attrs["late"]`` name it."""
    ws.hostile["09:34"] = []
    ws.hostile["09:35"] = [ws.minute_events("09:35"), ws.minute_events("09:34")]
    with stream(["AAPL", "SPY"], config=cfg(short_market, rest, ws)) as s:
        frames = read_until(s, ["AAPL", "SPY"], "09:38", ws)
    late = merged(frames, "late")
    assert late == {"AAPL": [at(ws, "09:34")], "SPY": [at(ws, "09:34")]}
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "late" in r.getMessage()]
    assert any("AAPL" in m and "09:34:00" in m for m in said) and any("SPY" in m for m in said)
    bars = pd.concat(frames)
    assert bars.index.is_unique and bars.xs("AAPL").index.is_monotonic_increasing
    for t in ("AAPL", "SPY"):
        mine = bars.xs(t)
        truth = ws.truth(t)
        truth = truth[(truth.index <= mine.index[-1]) & (truth.index != at(ws, "09:34"))]
        np.testing.assert_allclose(mine[COLS].to_numpy(), truth[COLS].to_numpy(), rtol=1e-12)
    assert not merged(frames, "errors")


def test_a_resent_bar_is_dropped_silently_and_a_changed_one_is_an_error(short_market, rest, ws, caplog):
    changed = ws.event("AAPL", "09:32")
    changed["v"] = changed["v"] + 100
    ws.hostile["09:35"] = [ws.minute_events("09:35"), ws.minute_events("09:33"), [changed]]
    with stream(["AAPL", "SPY"], config=cfg(short_market, rest, ws)) as s:
        frames = read_until(s, ["AAPL", "SPY"], "09:38", ws)
    bars = pd.concat(frames)
    assert_exactly_the_truth(bars, ws, ["AAPL", "SPY"])  # the delivered 09:32 stands, 09:33 once
    errors = merged(frames, "errors")
    assert list(errors) == ["AAPL"] and "sent again with other values" in errors["AAPL"] \
        and "09:32" in errors["AAPL"]
    assert not merged(frames, "late")  # the exact re-sends are no news
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "SPY" in r.getMessage()]


def test_good_bars_refused_with_a_bad_one_are_filled_from_rest_or_named(short_market, rest, ws, caplog):
    """A bad bar fails its ticker's whole message: its good bar of that message is withheld
    too; the ticker's next bar asks REST for the hole, and when REST has nothing (a plan
    15 minutes late) the hole is named in ``attrs["gaps"]``."""
    rest.intraday_until = at(ws, "09:00")
    ws.hostile["09:33"] = [ws.minute_events("09:33") + [ws.event("AAPL", "09:34", h=inf)]]
    with stream(["AAPL", "SPY"], config=cfg(short_market, rest, ws)) as s:
        frames = read_until(s, ["AAPL", "SPY"], "09:38", ws)
    bars = pd.concat(frames)
    assert_sane(bars)
    assert "infinite" in merged(frames, "errors")["AAPL"]
    assert merged(frames, "gaps") == {"AAPL": (at(ws, "09:32"), at(ws, "09:34"))}
    assert any("could not be filled" in r.getMessage() and "AAPL after 09:32:00 before 09:34:00" in r.getMessage()
               for r in caplog.records if r.levelno == logging.WARNING)
    assert next(f for f in frames if "gaps" in f.attrs).index.get_level_values(1)[0] == at(ws, "09:34")
    mine, truth = bars.xs("AAPL"), ws.truth("AAPL")
    assert at(ws, "09:33") not in mine.index and at(ws, "09:34") in mine.index  # the real 09:34 came later
    np.testing.assert_allclose(mine[COLS].to_numpy(), truth.loc[mine.index, COLS].to_numpy(), rtol=1e-12)
    assert_exactly_the_truth(bars, ws, ["SPY"])


# -- the REST fill ------------------------------------------------------------------------------------
@pytest.mark.parametrize("poison", [("h", inf), ("c", -5.0), ("o", nan), ("l", 0.0)],
                         ids=["inf", "minus-5", "nan", "zero"])
def test_a_bad_filled_bar_is_refused_and_the_hole_stays_named(short_market, rest, ws, caplog, poison):
    ws.drop_after = 3  # cut before 09:33 goes out
    ws.hostile["09:34"] = ws.hostile["09:35"] = []  # and a hole after it however fast the reconnect
    rest.poison = poison  # the first bar of every REST answer
    with stream(["AAPL"], config=cfg(short_market, rest, ws)) as s:
        frames = read_until(s, ["AAPL"], "09:45", ws)
    assert ws.connections == 2 and rest.aggregate_requests()
    assert not [f for f in frames if f.attrs["source"] == "fill"]  # nothing of the refused fill went out
    bars = pd.concat(frames)
    assert_sane(bars)
    marked = [f for f in frames if "gaps" in f.attrs]
    assert marked and list(marked[0].attrs["gaps"]) == ["AAPL"]
    after, before = marked[0].attrs["gaps"]["AAPL"]
    assert after == at(ws, "09:32") and before - after > pd.Timedelta(minutes=1)
    assert "AAPL" in marked[0].attrs["errors"] and "price" in marked[0].attrs["errors"]["AAPL"]
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("AAPL" in m and "fill" in m for m in said)
    mine, truth = bars.xs("AAPL"), ws.truth("AAPL")  # the stream's own bars are the truth's, either side
    np.testing.assert_allclose(mine[COLS].to_numpy(), truth.loc[mine.index, COLS].to_numpy(), rtol=1e-12)
    assert mine.index[mine.index > after][0] == before


# -- second bars ----------------------------------------------------------------------------------
def test_a_bad_second_bar_is_refused_by_its_own_instant(short_market, rest, ws):
    seconds = ws.minute_events("09:32", ["NVDA"], kind="A")
    bad = dict(seconds[1], h=inf)
    ws.hostile["A 09:32"] = [[seconds[0]], [bad], [seconds[2]]]
    with stream(["NVDA"], interval="1s", config=cfg(short_market, rest, ws)) as s:
        frames = read_until(s, ["NVDA"], "09:36", ws)
    bars = pd.concat(frames)
    assert_sane(bars)
    stamp = pd.Timestamp(bad["s"], unit="ms", tz="UTC").tz_convert(NY)
    assert stamp.second != 0
    errors = merged(frames, "errors")
    assert list(errors) == ["NVDA"] and str(stamp) in errors["NVDA"] and "price" in errors["NVDA"]
    streamed = pd.concat([f for f in frames if f.attrs["source"] == "stream"]).xs("NVDA")
    assert stamp not in streamed.index
    truth = ws.truth("NVDA", "1s")
    np.testing.assert_allclose(streamed[COLS].to_numpy(), truth.loc[streamed.index, COLS].to_numpy(), rtol=1e-12)
    assert streamed.index[-1] >= at(ws, "09:36")  # later second bars kept flowing


# -- today's bars in the chain ------------------------------------------------------------------------
def test_the_chain_gets_only_gated_bars_from_an_open_stream(short_market, rest, ws):
    day = short_market.sessions[-1]
    rest.intraday_until = at(ws, "09:40")  # REST knows the bars before 09:40, the stream the rest
    ws.hostile["09:40"] = [ws.minute_events("09:40") + [ws.event("AAPL", "09:40")]]  # a duplicate
    ws.hostile["09:42"] = [ws.minute_events("09:42"), [ws.event("AAPL", "09:43", h=inf, c=inf)]]  # inf, early
    config = cfg(short_market, rest, ws)
    with stream(["AAPL"], config=config) as s:
        frames = read_until(s, ["AAPL"], "09:50", ws)
        kept = s.bars_today("AAPL")
        one = fp.get_prices("AAPL", day, day, interval="1m", adjustment="raw", config=config)
    assert "AAPL" in merged(frames, "errors")
    assert kept.index.is_unique and np.isfinite(kept[COLS].to_numpy()).all()
    assert [src["provider"] for src in one.attrs["sources"]] == ["massive_rest", "massive_rest (stream, real-time)"]
    assert one.attrs["sources"][1]["first"] == at(ws, "09:40")
    assert one.index.is_unique and one.index.is_monotonic_increasing
    assert np.isfinite(one[COLS].to_numpy()).all()
    assert one.index[-1] >= at(ws, "09:50")
    truth = short_market.truth("AAPL", day, day, "1m", "raw")
    truth = truth[truth.index <= one.index[-1]]
    assert (one.index == truth.index).all()
    np.testing.assert_allclose(one[COLS].to_numpy(), truth[COLS].to_numpy(), rtol=1e-12)
    assert not math.isinf(one.loc[at(ws, "09:43"), "high"])
