"""Regular and extended sessions on every door.

Intraday answers hold the regular session by default (09:30-16:00 New York, 13:00 on half
days; hourly bars at 09:30 ... 15:30, the last one half an hour), as yfinance's
``prepost=False`` and OpenBB's ``extended_hours=False``; ``extended_hours=True`` gives
04:00-20:00 with buckets on the clock. Checked over a half day (2025-11-28) and across the
end of daylight saving time (2025-10-31 EDT, 2025-11-03 EST), against the synthetic
market's truth AND against bars built here by hand from its minutes with plain pandas
(the session hours written out, not read from the package's calendar), against the real
yfinance over the fake Yahoo, and through baskets, the whole market, the CLI, OpenBB and
the live stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import json
import time
from typing import ClassVar

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

import finrpt_providers as fp
from finrpt_providers import (
    AllProvidersFailed,
    DataIntegrityError,
    InvalidQuery,
    PriceProvider,
)
from finrpt_providers import yf as ours
from finrpt_providers.chain import fetch_one
from finrpt_providers.compare import Tolerances, compare
from finrpt_providers.config import Config
from finrpt_providers.live import stream
from finrpt_providers.providers.yfinance import (
    LOOKBACK_DAYS,
    _session_by_base,
    _yfinance_scope,
)
from finrpt_providers.testing import FakeFlatFiles, plugin_of
from finrpt_providers.testing.fake_massive_ws import FakeMassiveWS
from tests.conftest import REST_KEY, chain_config
from tests.test_cli import run

ET = "America/New_York"
BEFORE_HALF, HALF = dt.date(2025, 11, 26), dt.date(2025, 11, 28)  # Thanksgiving (27th) between them
EDT_DAY, EST_DAY = dt.date(2025, 10, 31), dt.date(2025, 11, 3)  # clocks went back on 2025-11-02
DAYS = [EDT_DAY, EST_DAY, BEFORE_HALF, HALF]
SPANS = {"half day": (BEFORE_HALF, HALF), "dst": (EDT_DAY, EST_DAY)}
INTRADAY = ["1m", "5m", "15m", "30m", "1h"]
WIDTH = {"1m": 1, "5m": 5, "15m": 15, "30m": 30, "1h": 60}
HALF_DAYS = {HALF}  # the close at 13:00, written out here (not read from the package's calendar)
OHLCV = ["open", "high", "low", "close", "volume"]
TODAY = "2026-07-01"  # chain_config's pinned today


def at(day: dt.date, hhmm: str) -> pd.Timestamp:
    return pd.Timestamp(f"{day} {hhmm}", tz=ET)


def close_of(day: dt.date) -> pd.Timestamp:
    return at(day, "13:00" if day in HALF_DAYS else "16:00")


def grid(day: dt.date, interval: str, extended: bool) -> list[pd.Timestamp]:
    """Every bucket start of the session: regular from 09:30 to the close, extended on the clock
    from 04:00 to 20:00 (17:00 on a half day: the synthetic market trades 4 h after the close)."""
    first = at(day, "04:00") if extended else at(day, "09:30")
    end = (close_of(day) + pd.Timedelta(hours=4)) if extended and day in HALF_DAYS else \
        (at(day, "20:00") if extended else close_of(day))
    return list(pd.date_range(first, end, freq=f"{WIDTH[interval]}min", inclusive="left"))


def by_hand(market, ticker: str, days, interval: str, extended: bool) -> pd.DataFrame:
    """Raw bars built from the market's minutes with plain pandas: regular = minutes in
    [09:30, close) bucketed from 09:30; extended = every minute bucketed from midnight."""
    frames = []
    for day in days:
        m = market.minute(ticker, day)
        origin = at(day, "00:00")
        if not extended:
            m = m[(m.index >= at(day, "09:30")) & (m.index < close_of(day))]
            origin = at(day, "09:30")
        width = pd.Timedelta(minutes=WIDTH[interval])
        key = origin + ((m.index - origin) // width) * width
        g = m.groupby(key)
        frames.append(pd.DataFrame({"open": g["open"].first(), "high": g["high"].max(), "low": g["low"].min(),
                                    "close": g["close"].last(), "volume": g["volume"].sum()}))
    return pd.concat(frames)


def assert_truth(df: pd.DataFrame, truth: pd.DataFrame) -> None:
    """Equal to the truth; the flat files carry no vwap (Massive's aggregates files have none):
    where a bar has one, it is the truth's."""
    assert list(df.index) == list(truth.index)
    has = df["vwap"].notna().to_numpy()
    np.testing.assert_allclose(df["vwap"].to_numpy()[has], truth["vwap"].to_numpy()[has], rtol=1e-12)
    if df.attrs.get("provider") == "massive_flatfiles":
        assert not has.any()
    pdt.assert_frame_equal(df.drop(columns="vwap"), truth.drop(columns="vwap"), rtol=1e-12, check_freq=False)


def day_of(df: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    return df[df.index.date == day]


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def flat(market):
    with FakeFlatFiles(market, days=DAYS, minute_days=DAYS) as ff:  # four sessions: a quick start
        yield ff


@pytest.fixture
def cfg(flat, rest, fake_yahoo, tmp_path):
    return chain_config(flat, rest, fake_yahoo, tmp_path, MASSIVE_REST_BACKOFF="0.01", FINRPT_YFINANCE_TIMEOUT="5")


def real(fake_yahoo, fn):
    """A call on the REAL yfinance, over the fake Yahoo (as tests/test_yf_facade.py)."""
    with _yfinance_scope(fake_yahoo.url, 5.0) as yf:
        return fn(yf, _session_by_base[(fake_yahoo.url, 5.0)])


# -- 1. every interval, regular and extended, REST and flat files -------------------------------
@pytest.mark.parametrize("span", list(SPANS))
@pytest.mark.parametrize("interval", INTRADAY)
@pytest.mark.parametrize("provider", ["massive_rest", "massive_flatfiles"])
def test_regular_and_extended_bars_equal_the_truth_with_their_labels(cfg, market, provider, interval, span):
    first, last = SPANS[span]
    days = [d for d in DAYS if first <= d <= last]
    got = {ext: fp.get_prices("AAPL", first, last, interval=interval, providers=[provider], config=cfg,
                              extended_hours=ext) for ext in (False, True)}
    for ext, df in got.items():
        truth = market.truth("AAPL", first, last, interval, "splits", extended_hours=ext)
        assert_truth(df, truth)
        hand = by_hand(market, "AAPL", days, interval, ext)  # AAPL: no split, splits == raw here
        assert list(df.index) == list(hand.index)
        np.testing.assert_allclose(df[OHLCV].to_numpy(), hand[OHLCV].to_numpy(), rtol=1e-12)
        assert df.attrs["extended_hours"] is ext and df.attrs["provider"] == provider
        for day in days:
            mine = day_of(df, day)
            labels = list(mine.index)
            want = grid(day, interval, ext)
            assert set(labels) <= set(want), f"{day}: labels off the {'clock' if ext else '09:30'} grid"
            assert len(labels) == len(hand[hand.index.date == day])
            if not ext:
                assert labels[0] == at(day, "09:30")
                assert labels[-1] == want[-1]  # 15:59 / 15:55 ... 15:30 (12:59 ... 12:30 on the half day)
                assert mine.index.max() < close_of(day)
                if interval != "1m":
                    assert labels == want  # every bucket of the session traded
            else:
                assert labels[0] < at(day, "04:05") and labels[-1] >= want[-1] - pd.Timedelta(minutes=5)
                if interval in ("15m", "30m", "1h"):
                    assert labels == want
            offset = -5 if day >= EST_DAY else -4
            assert {t.utcoffset() for t in labels} == {pd.Timedelta(hours=offset)}
    reg, ext = got[False], got[True]
    assert len(reg) < len(ext)
    assert reg.index.isin(ext.index).all() == (interval != "1h")  # hourly labels move from :00 to :30


def test_hourly_labels_written_out(cfg):
    reg = fp.get_prices("AAPL", BEFORE_HALF, HALF, interval="1h", providers=["massive_rest"], config=cfg)
    assert [f"{t:%m-%d %H:%M}" for t in reg.index] == [
        "11-26 09:30", "11-26 10:30", "11-26 11:30", "11-26 12:30", "11-26 13:30", "11-26 14:30", "11-26 15:30",
        "11-28 09:30", "11-28 10:30", "11-28 11:30", "11-28 12:30"]
    ext = fp.get_prices("AAPL", EDT_DAY, EDT_DAY, interval="1h", providers=["massive_flatfiles"], config=cfg,
                        extended_hours=True)
    assert [t.hour for t in ext.index] == list(range(4, 20)) and {t.minute for t in ext.index} == {0}
    half = fp.get_prices("AAPL", HALF, HALF, interval="1h", providers=["massive_flatfiles"], config=cfg,
                         extended_hours=True)
    assert [t.hour for t in half.index] == list(range(4, 17))


@pytest.mark.parametrize("provider", ["massive_rest", "massive_flatfiles"])
def test_a_regular_hour_is_the_sum_of_its_regular_minutes(cfg, provider):
    kw = {"providers": [provider], "config": cfg, "adjustment": "raw"}
    for first, last in SPANS.values():
        hours = fp.get_prices("SPY", first, last, interval="1h", **kw)
        minutes = fp.get_prices("SPY", first, last, interval="1m", **kw)
        assert minutes.index.min().time() == dt.time(9, 30)
        for start, bar in hours.iterrows():
            inside = minutes[(minutes.index >= start) & (minutes.index < start + pd.Timedelta(hours=1))]
            assert len(inside) >= 25
            assert bar["volume"] == pytest.approx(inside["volume"].sum(), rel=1e-12)
            assert bar["open"] == inside["open"].iloc[0] and bar["close"] == inside["close"].iloc[-1]
            assert bar["high"] == inside["high"].max() and bar["low"] == inside["low"].min()
            if start.time() == dt.time(15, 30) or (start.date() in HALF_DAYS and start.time() == dt.time(12, 30)):
                assert inside.index[-1] < close_of(start.date())  # the last hour is half an hour
                assert len(inside) <= 30
    # the extended 09:00 hour holds pre-market minutes the regular answer never has
    ext = fp.get_prices("SPY", HALF, HALF, interval="1h", extended_hours=True, **kw)
    ext_min = fp.get_prices("SPY", HALF, HALF, interval="1m", extended_hours=True, **kw)
    nine = ext_min[(ext_min.index >= at(HALF, "09:00")) & (ext_min.index < at(HALF, "10:00"))]
    assert ext.loc[at(HALF, "09:00"), "volume"] == pytest.approx(nine["volume"].sum(), rel=1e-12)
    assert nine.index.min() < at(HALF, "09:30")


# -- 2. the yf facade against the real yfinance -------------------------------------------------
FACADE_RANGES = {"half day": ("2025-11-26", "2025-11-29"), "dst": ("2025-10-31", "2025-11-04")}


@pytest.mark.parametrize("prepost", [False, True])
@pytest.mark.parametrize("interval", ["1h", "5m"])
@pytest.mark.parametrize("span", list(FACADE_RANGES))
@pytest.mark.parametrize("source", ["massive_flatfiles", "massive_rest", "yfinance"])
def test_the_facade_equals_the_real_yfinance(cfg, fake_yahoo, source, span, interval, prepost):
    start, end = FACADE_RANGES[span]
    today = dt.date.fromisoformat(TODAY)
    if source == "yfinance" and dt.date.fromisoformat(start) < today - dt.timedelta(days=LOOKBACK_DAYS[interval]):
        # out of the yfinance provider's lookback from the pinned today: pin today closer instead
        cfg = cfg.merged({"FINRPT_PROVIDERS_TODAY": "2025-12-10"})
    cfg = cfg.merged({"FINRPT_PRICE_PROVIDERS": source, "FINRPT_ACTIONS_PROVIDERS": "massive_rest"})
    # BRK.B: no dividend, no split (yfinance's intraday auto_adjust is splits alone: see the dividend test below)
    want = real(fake_yahoo, lambda yf, s: yf.Ticker("BRK-B", session=s).history(
        start=start, end=end, interval=interval, prepost=prepost))
    got = ours.Ticker("BRK-B", config=cfg).history(start=start, end=end, interval=interval, prepost=prepost)
    assert got.attrs["provider"] == source
    assert list(got.columns) == list(want.columns) and got.index.name == want.index.name == "Datetime"
    assert list(got.index) == list(want.index)
    pdt.assert_frame_equal(got, want, check_freq=False, rtol=1e-8)  # Volume: int64 whole shares, as yfinance's
    days = sorted(set(got.index.date))
    assert len(days) == 2
    for day in days:
        labels = got.index[got.index.date == day]
        if prepost:
            assert labels[0] < at(day, "04:10") and labels[-1] >= grid(day, interval, True)[-1] - pd.Timedelta(minutes=10)
        else:
            assert labels[0] == at(day, "09:30") and labels[-1] == grid(day, interval, False)[-1]
        if interval == "1h":
            assert {t.minute for t in labels} == ({0} if prepost else {30})


def test_the_facade_intraday_of_a_dividend_payer_equals_the_real_yfinance(cfg, fake_yahoo):
    cfg = cfg.merged({"FINRPT_PRICE_PROVIDERS": "yfinance"})
    want = real(fake_yahoo, lambda yf, s: yf.Ticker("AAPL", session=s).history(
        start="2025-11-26", end="2025-11-29", interval="1h"))
    got = ours.Ticker("AAPL", config=cfg).history(start="2025-11-26", end="2025-11-29", interval="1h")
    assert list(got.index) == list(want.index)
    pdt.assert_frame_equal(got, want, check_freq=False, rtol=1e-8)
    # auto_adjust=False: Adj Close is the close intraday (Yahoo sends no adjclose there)
    want = real(fake_yahoo, lambda yf, s: yf.Ticker("AAPL", session=s).history(
        start="2025-11-26", end="2025-11-29", interval="1h", auto_adjust=False))
    got = ours.Ticker("AAPL", config=cfg).history(start="2025-11-26", end="2025-11-29", interval="1h",
                                                  auto_adjust=False)
    pdt.assert_frame_equal(got, want, check_freq=False, rtol=1e-8)


def test_the_facade_refuses_a_prepost_that_is_no_bool(cfg):
    t = ours.Ticker("BRK-B", config=cfg)
    for bad in ("yes", "False", None, 2):
        with pytest.raises(InvalidQuery, match="prepost must be True or False"):
            t.history(start="2025-11-26", end="2025-11-29", interval="1h", prepost=bad)
        with pytest.raises(InvalidQuery, match="prepost must be True or False"):
            ours.download("BRK-B", start="2025-11-26", end="2025-11-29", interval="1h", prepost=bad, config=cfg)


# -- 3. the yfinance provider, and plugins --------------------------------------------------------
def test_the_yfinance_provider_asks_yahoo_for_the_session_natively(yf_config, fake_yahoo, market):
    cfg = yf_config.merged({"FINRPT_PROVIDERS_TODAY": "2025-12-10"})  # 1m and 5m lookbacks hold the half day
    for interval, (first, last) in [("1m", SPANS["half day"]), ("5m", SPANS["half day"]), ("1h", SPANS["half day"]),
                                    ("30m", SPANS["dst"]), ("1h", SPANS["dst"])]:
        for ext in (False, True):
            with fake_yahoo._lock:
                fake_yahoo.requests.clear()
            df = fp.get_prices("AAPL", first, last, interval=interval, providers=["yfinance"], config=cfg,
                               extended_hours=ext)
            truth = market.truth("AAPL", first, last, interval, "splits", extended_hours=ext)
            assert list(df.index) == list(truth.index)
            np.testing.assert_allclose(df[OHLCV[:4]].to_numpy(), truth[OHLCV[:4]].to_numpy(), rtol=1e-12)
            # Yahoo's whole shares (yfinance builds 30m from two rounded 15m bars: one share)
            np.testing.assert_allclose(df["volume"], truth["volume"], atol=(1.0 if interval == "30m" else 0.5) + 1e-6)
            asked = [r.query for r in fake_yahoo.chart_requests() if r.query.get("interval") != "1d"]
            assert asked, "no intraday request reached Yahoo"
            assert {q.get("includePrePost") for q in asked} == {"true" if ext else "false"}
            # a regular hour is one request of Yahoo's hours, not one of its 30m bars
            assert {q["interval"] for q in asked} == {{"1m": "1m", "5m": "5m", "30m": "15m", "1h": "60m"}[interval]}
            assert df.attrs["extended_hours"] is ext
            if interval == "1h":
                assert {t.minute for t in df.index} == ({0} if ext else {30})


class _EveryHour(PriceProvider):
    """Sends every hour (clock-aligned) whatever it is asked; records the questions."""
    adjustments = frozenset({"splits"})
    market = None
    asked: ClassVar[list] = []

    def fetch(self, query):
        type(self).asked.append(query)
        return self.market.truth(query.ticker, query.start, query.end, query.interval, query.adjustment,
                                 extended_hours=True)


class _RegularLiar(_EveryHour):
    """Says it serves the regular session itself at 1m, but sends every hour."""
    name = "regular_liar"
    intervals = frozenset({"1m", "1d"})
    regular_intervals = frozenset({"1m"})


class _ClockHours(_EveryHour):
    """Serves 1h bars on the clock only, nothing finer."""
    name = "clock_hours"
    intervals = frozenset({"1h", "1d"})


@pytest.fixture
def liar(register_plugin, market):
    _RegularLiar.market, _RegularLiar.asked = market, []
    register_plugin(plugin_of(_RegularLiar()), name="regular-liar-plugin")
    return _RegularLiar


@pytest.fixture
def clock(register_plugin, market):
    _ClockHours.market, _ClockHours.asked = market, []
    register_plugin(plugin_of(_ClockHours()), name="clock-hours-plugin")
    return _ClockHours


def test_a_provider_declaring_the_regular_session_and_sending_pre_market_fails_its_ticker(cfg, liar, market):
    with pytest.raises(AllProvidersFailed, match="regular session") as info:
        fp.get_prices("AAPL", HALF, HALF, interval="1m", providers=["regular_liar"], config=cfg)
    assert info.value.attempts[0]["outcome"] == "failed" and "DataIntegrityError" in info.value.attempts[0]["detail"]
    assert "04:0" in info.value.attempts[0]["detail"]  # names the first bar outside
    assert [q.extended_hours for q in liar.asked] == [False]  # asked for the regular session natively
    with pytest.raises(DataIntegrityError, match="regular session"):
        fetch_one(_RegularLiar(), "AAPL", HALF, HALF, interval="1m", config=cfg)
    # in a basket, that ticker fails with the reason; the chain's next provider answers it
    basket = fp.get_prices(["AAPL", "SPY"], HALF, HALF, interval="1m", providers=["regular_liar"], config=cfg,
                           errors="omit")
    assert basket.empty and set(basket.attrs["failed"]) == {"AAPL", "SPY"}
    assert "regular session" in basket.attrs["failed"]["AAPL"]
    fallback = fp.get_prices("AAPL", HALF, HALF, interval="1m", providers=["regular_liar", "massive_rest"], config=cfg)
    assert fallback.attrs["provider"] == "massive_rest"
    pdt.assert_frame_equal(fallback, market.truth("AAPL", HALF, HALF, "1m"), check_freq=False)
    # extended: asked for every hour, and served
    liar.asked.clear()
    ext = fp.get_prices("AAPL", HALF, HALF, interval="1m", providers=["regular_liar"], config=cfg, extended_hours=True)
    assert [q.extended_hours for q in liar.asked] == [True]
    pdt.assert_frame_equal(ext, market.truth("AAPL", HALF, HALF, "1m", extended_hours=True), check_freq=False)
    # 5m is not among its regular intervals: the core asks every hour of 1m and keeps the session itself
    liar.asked.clear()
    five = fp.get_prices("AAPL", HALF, HALF, interval="5m", providers=["regular_liar"], config=cfg)
    assert [(q.interval, q.extended_hours) for q in liar.asked] == [("1m", True)]
    pdt.assert_frame_equal(five, market.truth("AAPL", HALF, HALF, "5m"), check_freq=False)


def test_a_provider_of_clock_hours_alone_is_skipped_for_regular_hours(cfg, clock, market):
    with pytest.raises(AllProvidersFailed) as info:
        fp.get_prices("AAPL", HALF, HALF, interval="1h", providers=["clock_hours"], config=cfg)
    a = info.value.attempts[0]
    assert a["outcome"] == "skipped" and "09:30" in a["detail"] and "extended_hours=True" in a["detail"]
    assert clock.asked == []  # skipped before calling
    ext = fp.get_prices("AAPL", BEFORE_HALF, HALF, interval="1h", providers=["clock_hours"], config=cfg,
                        extended_hours=True)
    pdt.assert_frame_equal(ext, market.truth("AAPL", BEFORE_HALF, HALF, "1h", extended_hours=True), check_freq=False)
    assert [(q.interval, q.extended_hours) for q in clock.asked] == [("1h", True)]
    # in a chain, the next provider serves the regular hours; the skip is recorded with its reason
    df = fp.get_prices("AAPL", HALF, HALF, interval="1h", providers=["clock_hours", "massive_rest"], config=cfg)
    assert df.attrs["provider"] == "massive_rest"
    assert df.attrs["attempts"][0]["outcome"] == "skipped" and "09:30" in df.attrs["attempts"][0]["detail"]
    assert [f"{t:%H:%M}" for t in df.index] == ["09:30", "10:30", "11:30", "12:30"]


class _OffGrid(PriceProvider):
    """Serves 1h itself and, asked, the regular session; but its bars sit on the wrong grid: clock
    hours for the regular session (10:00, 11:00 ...), 09:30-aligned ones for the extended."""
    name = "off_grid"
    intervals = frozenset({"1h", "1d"})
    regular_intervals = frozenset({"1h"})
    adjustments = frozenset({"splits"})
    market = None

    def fetch(self, query):
        m = self.market
        if query.extended_hours:  # asked every hour: sends the regular session's 09:30 grid
            return m.truth(query.ticker, query.start, query.end, "1h", "splits", extended_hours=False)
        clock = m.truth(query.ticker, query.start, query.end, "1h", "splits", extended_hours=True)
        opens = pd.DatetimeIndex([fp.calendar.session_hours(d.date())[0] for d in clock.index])
        closes = pd.DatetimeIndex([fp.calendar.session_hours(d.date())[1] for d in clock.index])
        return clock[(clock.index >= opens) & (clock.index < closes)]  # 10:00..15:00, inside the session


@pytest.mark.parametrize("extended", [False, True])
def test_bars_off_the_sessions_grid_fail_their_ticker(cfg, register_plugin, market, extended):
    _OffGrid.market = market
    register_plugin(plugin_of(_OffGrid()), name="off-grid-plugin")
    grid = "clock's grid" if extended else "regular session's grid"
    with pytest.raises(AllProvidersFailed, match=grid):
        fp.get_prices("AAPL", EST_DAY, EST_DAY, interval="1h", providers=["off_grid"], config=cfg,
                      extended_hours=extended)


def test_a_market_of_clock_hours_is_skipped_for_regular_hours(cfg, register_plugin, market):
    class MarketHours(PriceProvider):
        name = "market_hours"
        intervals = frozenset({"1h", "1d"})
        adjustments = frozenset({"raw"})
        serves_market = True

        def fetch_market(self, start, end, interval, adjustment):
            return fp.frames.long_frame({"AAPL": market.truth("AAPL", start, end, interval, "raw",
                                                              extended_hours=True)})

    register_plugin(plugin_of(MarketHours()), name="market-hours-plugin")
    with pytest.raises(AllProvidersFailed, match="regular-session hourly bars start at 09:30"):
        fp.get_market(EST_DAY, interval="1h", adjustment="raw", providers=["market_hours"], config=cfg)
    got = fp.get_market(EST_DAY, interval="1h", adjustment="raw", providers=["market_hours"], config=cfg,
                        extended_hours=True)
    assert list(got.xs("AAPL", level=0).index) == list(market.truth("AAPL", EST_DAY, EST_DAY, "1h", "raw",
                                                                        extended_hours=True).index)


# -- 4. baskets and the whole market ---------------------------------------------------------------
@pytest.mark.parametrize("interval", ["1m", "30m", "1h"])
def test_a_basket_regular_and_extended(cfg, market, interval):
    tickers = ["AAPL", "SPY", "BRK.B"]
    for ext in (False, True):
        basket = fp.get_prices(tickers, EDT_DAY, EST_DAY, interval=interval, providers=["massive_flatfiles"],
                               config=cfg, extended_hours=ext)
        assert basket.attrs["extended_hours"] is ext and basket.attrs["failed"] == {}
        assert sorted(set(basket.index.get_level_values(0))) == sorted(tickers)
        for t in tickers:
            truth = market.truth(t, EDT_DAY, EST_DAY, interval, "splits", extended_hours=ext)
            assert_truth(basket.xs(t, level="ticker"), truth)
        stamps = basket.index.get_level_values(1)
        if not ext:
            assert stamps.min() == at(EDT_DAY, "09:30") and (stamps < at(EST_DAY, "16:00")).all()
            assert not ((stamps.hour < 9) | ((stamps.hour == 9) & (stamps.minute < 30)) | (stamps.hour >= 16)).any()
        else:
            assert stamps.min() < at(EDT_DAY, "04:10") and stamps.max() >= at(EST_DAY, "19:00")


@pytest.mark.parametrize("day", [HALF, EST_DAY])
def test_the_whole_market_regular_and_extended(cfg, market, day):
    got = {ext: fp.get_market(day, interval="1m", adjustment="raw", providers=["massive_flatfiles"], config=cfg,
                              extended_hours=ext) for ext in (False, True)}
    for ext, df in got.items():
        assert df.attrs["extended_hours"] is ext and df.attrs["failed"] == {}
        names = sorted(set(df.index.get_level_values(0)))
        assert names == sorted(t for t in market.tickers if market.specs[t].listed is None
                               or market.specs[t].listed <= day)
        for t in names:
            truth = market.truth(t, day, day, "1m", "raw", extended_hours=ext)
            assert_truth(df.xs(t, level="ticker"), truth)
        stamps = df.index.get_level_values(1)
        if ext:
            assert stamps.min() < at(day, "04:05") and stamps.max() > close_of(day)
        else:
            assert stamps.min() == at(day, "09:30") and stamps.max() == close_of(day) - pd.Timedelta(minutes=1)
    assert len(got[False]) < len(got[True])
    daily = fp.get_market(day, adjustment="raw", providers=["massive_flatfiles"], config=cfg)
    assert "extended_hours" not in daily.attrs


def test_compare_regular_and_extended(cfg, market):
    for ext in (False, True):
        result = compare("BRK.B", HALF, HALF, providers=["massive_flatfiles", "massive_rest"], interval="1h",
                         config=cfg, extended_hours=ext, tolerances=Tolerances(price_rtol=1e-12, volume_rtol=1e-12))
        assert result.agree and not result.errors
        truth = market.truth("BRK.B", HALF, HALF, "1h", "splits", extended_hours=ext)
        assert set(result.frames) == {"massive_flatfiles", "massive_rest"}
        for df in result.frames.values():
            assert_truth(df, truth)
        assert {t.minute for t in truth.index} == ({0} if ext else {30})


def test_a_stitched_answer_keeps_the_session_of_each_piece(cfg, market):
    """The flat files hold 11-26 and 11-28 only: REST answers 11-24 and 11-25, the chain stitches."""
    cfg = cfg.merged({"FINRPT_PRICE_PROVIDERS": "massive_flatfiles,massive_rest"})
    for interval in ("5m", "1h"):
        for ext in (False, True):
            df = fp.get_prices("AAPL", "2025-11-24", HALF, interval=interval, config=cfg, extended_hours=ext)
            assert df.attrs["provider"] == "massive_rest+massive_flatfiles"
            assert_truth(df, market.truth("AAPL", "2025-11-24", HALF, interval, "splits", extended_hours=ext))
            per_day = df.groupby(df.index.date).size().to_dict()
            if not ext:
                assert per_day == ({d: 78 for d in (dt.date(2025, 11, 24), dt.date(2025, 11, 25), BEFORE_HALF)}
                                   | {HALF: 42} if interval == "5m" else
                                   {d: 7 for d in (dt.date(2025, 11, 24), dt.date(2025, 11, 25), BEFORE_HALF)}
                                   | {HALF: 4})


def test_cli_compare_extended_hours(rest_env):
    base = ("compare", "BRK.B", "--start", str(HALF), "--end", str(HALF), "--providers", "massive_rest",
            "massive_flatfiles", "--interval", "1h", "--json")
    for extra, bars in (((), 4), (("--extended-hours",), 13)):
        code, out, err = run(*base, *extra)
        assert code == 0, err
        got = json.loads(out)
        assert got["agree"] is True
        assert {n: p["bars"] for n, p in got["providers"].items()} == {"massive_rest": bars, "massive_flatfiles": bars}


# -- 5. bad values, and daily bars ----------------------------------------------------------------
@pytest.mark.parametrize("bad", ["false", "True", 1.0, None, 0, "", [False]])
def test_extended_hours_must_be_a_bool_and_is_checked_before_any_io(cfg, rest, flat, fake_yahoo, bad):
    cfg = cfg.merged({"MASSIVE_WS_REALTIME_URL": "ws://127.0.0.1:9/stocks",  # never the real service
                      "MASSIVE_WS_DELAYED_URL": "ws://127.0.0.1:9/delayed/stocks"})
    before = len(flat.requests)
    calls = [
        lambda: fp.get_prices("AAPL", HALF, HALF, interval="1h", config=cfg, extended_hours=bad),
        lambda: fp.get_prices(["AAPL", "SPY"], HALF, HALF, interval="5m", config=cfg, extended_hours=bad),
        lambda: fp.get_prices("AAPL", HALF, HALF, config=cfg, extended_hours=bad),  # daily too
        lambda: fp.get_market(HALF, interval="1m", config=cfg, extended_hours=bad),
        lambda: compare("AAPL", HALF, HALF, interval="1h", config=cfg, extended_hours=bad),
        lambda: stream(["AAPL"], config=cfg, extended_hours=bad),
    ]
    for call in calls:
        with pytest.raises(InvalidQuery, match="extended_hours must be True or False"):
            call()
    assert rest.requests == [] and fake_yahoo.chart_requests() == [] and len(flat.requests) == before


def test_numpy_bools_are_bools(cfg, market):
    df = fp.get_prices("AAPL", HALF, HALF, interval="1h", providers=["massive_rest"], config=cfg,
                       extended_hours=np.True_)
    assert df.attrs["extended_hours"] is True and len(df) == 13
    h = ours.Ticker("BRK-B", config=cfg).history(start="2025-11-28", end="2025-11-29", interval="1h",
                                                 prepost=np.False_)
    assert [t.minute for t in h.index] == [30] * 4


@pytest.mark.parametrize("interval", ["1d", "1wk"])
def test_daily_bars_are_the_same_whatever_extended_hours_says(cfg, market, interval):
    for provider in ("massive_rest", "massive_flatfiles"):
        if provider == "massive_flatfiles" and interval == "1wk":
            continue  # the fake holds four day files, not whole weeks
        a = fp.get_prices("AAPL", BEFORE_HALF, HALF, interval=interval, providers=[provider], config=cfg)
        b = fp.get_prices("AAPL", BEFORE_HALF, HALF, interval=interval, providers=[provider], config=cfg,
                          extended_hours=True)
        pdt.assert_frame_equal(a, b)
        assert "extended_hours" not in a.attrs and "extended_hours" not in b.attrs
        if interval == "1d":
            assert_truth(a, market.truth("AAPL", BEFORE_HALF, HALF))
            assert [t.hour for t in a.index] == [0, 0]


# -- 6. the command line ------------------------------------------------------------------------
@pytest.fixture
def rest_env(monkeypatch, rest, flat, tmp_path):
    for k, v in {"MASSIVE_API_KEY": REST_KEY, "MASSIVE_REST_BASE_URL": rest.url, "FINRPT_PROVIDERS_TODAY": TODAY,
                 "FINRPT_PRICE_PROVIDERS": "massive_rest", "FINRPT_PROVIDERS_CACHE_DIR": str(tmp_path),
                 "MASSIVE_REST_BACKOFF": "0.01", **flat.config()}.items():
        monkeypatch.setenv(k, v)


def _csv(out: str) -> pd.DataFrame:
    df = pd.read_csv(io.StringIO(out))
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True).dt.tz_convert(ET)
    return df


def test_cli_fetch_hourly_regular_and_extended(rest_env, market):
    base = ("fetch", "AAPL", "--start", str(HALF), "--end", str(HALF), "--interval", "1h", "--format", "csv")
    code, out, err = run(*base)
    assert code == 0, err
    reg = _csv(out)
    assert [f"{t:%H:%M}" for t in reg["timestamp"]] == ["09:30", "10:30", "11:30", "12:30"]
    assert "2025-11-28 12:30:00-05:00" in out
    truth = market.truth("AAPL", HALF, HALF, "1h")
    np.testing.assert_allclose(reg["close"], truth["close"], rtol=1e-9)
    code, out, err = run(*base, "--extended-hours")
    assert code == 0, err
    ext = _csv(out)
    assert [f"{t:%H:%M}" for t in ext["timestamp"]] == [f"{h:02d}:00" for h in range(4, 17)]
    np.testing.assert_allclose(ext["volume"], market.truth("AAPL", HALF, HALF, "1h", extended_hours=True)["volume"],
                               rtol=1e-9)
    # JSON says which session it holds (one ticker and a basket)
    for args, want in (((), False), (("--extended-hours",), True)):
        code, out, err = run(*base[:-1], "json", *args)
        assert code == 0, err
        assert json.loads(out)["extended_hours"] is want
        code, out, err = run("fetch", "AAPL", "SPY", *base[2:-1], "json", *args)
        assert code == 0, err
        assert json.loads(out)["extended_hours"] is want


def test_cli_market_regular_and_extended(rest_env, market):
    base = ("market", str(HALF), "--interval", "1m", "--adjustment", "raw", "--provider", "massive_flatfiles",
            "--format", "csv")
    code, out, err = run(*base)
    assert code == 0, err
    reg = _csv(out)
    code, out, err = run(*base, "--extended-hours")
    assert code == 0, err
    ext = _csv(out)
    for df, extended in ((reg, False), (ext, True)):
        aapl = df[df["ticker"] == "AAPL"]
        truth = market.truth("AAPL", HALF, HALF, "1m", "raw", extended_hours=extended)
        assert list(aapl["timestamp"]) == list(truth.index)
    assert reg["timestamp"].min() == at(HALF, "09:30") and reg["timestamp"].max() == at(HALF, "12:59")
    assert ext["timestamp"].min() < at(HALF, "04:05") and ext["timestamp"].max() > at(HALF, "16:50")


# -- 7. OpenBB ------------------------------------------------------------------------------------
def test_openbb_fetcher_extended_hours(rest_env, market):
    pytest.importorskip("openbb_core", reason="the OpenBB integration is installed from integrations/openbb")
    from openbb_finrpt_providers.fetchers import FinrptEquityHistoricalFetcher

    def rows(**kw):
        params = {"symbol": "AAPL", "start_date": HALF, "end_date": HALF, "interval": "60m", **kw}
        got = asyncio.run(FinrptEquityHistoricalFetcher.fetch_data(params, {}))
        return getattr(got, "result", got), getattr(got, "metadata", {})

    reg, meta = rows()
    assert len(reg) == 4 and [r.date.strftime("%H:%M") for r in reg] == ["09:30", "10:30", "11:30", "12:30"]
    assert meta.get("extended_hours") is False
    ext, meta = rows(extended_hours=True)
    assert len(ext) == 13 and ext[0].date == at(HALF, "04:00").to_pydatetime() and meta["extended_hours"] is True
    truth = market.truth("AAPL", HALF, HALF, "1h", extended_hours=True)
    assert [r.close for r in ext] == pytest.approx(truth["close"].tolist(), rel=1e-12)
    five, _ = rows(interval="5m", symbol="AAPL,SPY")
    assert len(five) == 2 * 42 and min(r.date for r in five) == at(HALF, "09:30").to_pydatetime()
    five_ext, _ = rows(interval="5m", symbol="AAPL,SPY", extended_hours=True)
    assert len(five_ext) == len(market.truth("AAPL", HALF, HALF, "5m", extended_hours=True)) + len(
        market.truth("SPY", HALF, HALF, "5m", extended_hours=True))
    assert min(r.date for r in five_ext) == at(HALF, "04:00").to_pydatetime()


# -- 8. the live stream ---------------------------------------------------------------------------
COLS = ["open", "high", "low", "close", "volume", "vwap"]


def _ws(market, start, tickers=("AAPL", "SPY"), speed=20.0):
    """The half day replayed from ``start``, ``speed`` minutes a second (a replay starts at its clock's
    live edge: 50 ms between the subscription and its first look at the clock before a minute is missed)."""
    return FakeMassiveWS(market, api_key=REST_KEY, day=HALF, start=start, speed=speed, tickers=list(tickers))


def _stream_cfg(rest, ws, **extra) -> Config:
    return Config.load({"MASSIVE_API_KEY": REST_KEY, "MASSIVE_REST_BASE_URL": rest.url,
                        "FINRPT_PRICE_PROVIDERS": "massive_rest", "FINRPT_PROVIDERS_TODAY": str(HALF),
                        "MASSIVE_REST_BACKOFF": "0.01", "MASSIVE_REST_MAX_RETRIES": "1",
                        "FINRPT_STREAM_BACKOFF": "0.02", "MASSIVE_WS_PING_INTERVAL": "1",
                        "MASSIVE_WS_PING_TIMEOUT": "2", "MASSIVE_WS_OPEN_TIMEOUT": "3", **ws.config(), **extra},
                       environ={})


@contextlib.contextmanager
def _streaming(market, rest, start: str, until: str, tickers=("AAPL",)):
    """An extended AAPL stream of the half day replayed from ``start``, read until a bar at or
    after ``until``, left open: the config whose answers may join it."""
    with _ws(market, start, tickers=tickers) as ws:
        config = _stream_cfg(rest, ws)
        with stream(["AAPL"], config=config, extended_hours=True) as s:
            _read_until(s, lambda b: b.index.get_level_values(1).max() >= at(HALF, until))
            yield config


def _read_until(s, done, timeout=30.0) -> pd.DataFrame:
    """Frames until ``done(bars so far)`` (bounded in time)."""
    frames, t0 = [], time.monotonic()
    for frame in s:
        frames.append(frame)
        if done(pd.concat(frames)):
            break
        assert time.monotonic() - t0 < timeout, "the stream stopped delivering"
    return pd.concat(frames)


def _assert_truth(bars, ws, tickers, first_at):
    for t in tickers:
        mine = bars.xs(t, level=0)
        truth = ws.truth(t)
        truth = truth[(truth.index >= first_at) & (truth.index <= mine.index[-1])]
        assert list(mine.index) == list(truth.index)
        np.testing.assert_allclose(mine[COLS].to_numpy(), truth[COLS].to_numpy(), rtol=1e-12)


def test_a_regular_stream_starts_at_the_open_and_counts_the_pre_market(market, rest):
    with _ws(market, "09:20") as ws, stream(["AAPL", "SPY"], config=_stream_cfg(rest, ws)) as s:
        first = next(s)
        counted = s.outside_hours  # every pre-market frame went through the gate before this one
        bars = _read_until(s, lambda b: (b.index.get_level_values(1) >= at(HALF, "09:36")).sum() >= 2)
        bars = pd.concat([first, bars])
    pre = sum(((ws.truth(t).index >= at(HALF, "09:20")) & (ws.truth(t).index < at(HALF, "09:30"))).sum()
              for t in ("AAPL", "SPY"))
    assert pre >= 5 and counted == pre  # the pre-market trades thinly: not every minute has a bar
    assert first.index.get_level_values(1).min() == at(HALF, "09:30")
    assert (bars.index.get_level_values(1) >= at(HALF, "09:30")).all()
    _assert_truth(bars, ws, ["AAPL", "SPY"], at(HALF, "09:30"))
    assert s.extended_hours is False


def test_an_extended_stream_delivers_the_pre_market(market, rest):
    with _ws(market, "09:20") as ws, stream(["AAPL", "SPY"], config=_stream_cfg(rest, ws),
                                            extended_hours=True) as s:
        bars = _read_until(s, lambda b: (b.index.get_level_values(1) >= at(HALF, "09:33")).sum() >= 2)
        assert s.outside_hours == 0 and s.extended_hours is True
    stamps = bars.index.get_level_values(1)
    pre = sum(((ws.truth(t).index >= at(HALF, "09:20")) & (ws.truth(t).index < at(HALF, "09:30"))).sum()
              for t in ("AAPL", "SPY"))
    assert pre >= 5 and (stamps < at(HALF, "09:30")).sum() == pre
    _assert_truth(bars, ws, ["AAPL", "SPY"], at(HALF, "09:20"))


def test_a_regular_stream_ends_at_a_half_days_close(market, rest):
    """The first bar after 13:00 ends a regular stream on a half day: its iteration stops (as
    after close()), every bar delivered is of the session (12:50..12:59, equal to the truth),
    and the post-close bar is counted in outside_hours, never delivered."""
    with _ws(market, "12:50", tickers=("AAPL", "SPY")) as ws:
        with stream(["AAPL", "SPY"], config=_stream_cfg(rest, ws)) as s:
            frames, t0 = [], time.monotonic()
            for frame in s:  # must end by itself
                frames.append(frame)
                assert time.monotonic() - t0 < 30, "the regular stream went on after the close"
            counted = s.outside_hours
    bars = pd.concat(frames)
    stamps = bars.index.get_level_values(1)
    assert stamps.min() == at(HALF, "12:50") and stamps.max() <= at(HALF, "12:59")
    assert stamps.max() >= at(HALF, "12:58")  # the session's last minutes were delivered
    assert counted >= 1
    _assert_truth(bars, ws, ["AAPL", "SPY"], at(HALF, "12:50"))


def test_an_extended_stream_goes_on_after_the_close(market, rest):
    with _ws(market, "12:55") as ws, stream(["AAPL", "SPY"], config=_stream_cfg(rest, ws),
                                            extended_hours=True) as s:
        bars = _read_until(s, lambda b: (b.index.get_level_values(1) >= at(HALF, "13:05")).sum() >= 2)
    assert (bars.index.get_level_values(1) >= at(HALF, "13:00")).sum() >= 5
    _assert_truth(bars, ws, ["AAPL", "SPY"], at(HALF, "12:55"))


def test_hourly_answers_join_a_stream_that_starts_inside_their_last_bar(market, rest):
    """REST knows the half day up to 11:10 (its last regular hour is 10:30, its last clock hour
    11:00); an extended stream from 11:05 covers every later minute: the later closed hours come
    from it, equal to the truth, in both sessions."""
    rest.intraday_until = at(HALF, "11:10")
    with _ws(market, "11:05", tickers=("AAPL",), speed=60.0) as ws:
        config = _stream_cfg(rest, ws)
        with stream(["AAPL"], config=config, extended_hours=True) as s:
            _read_until(s, lambda b: b.index.get_level_values(1).max() >= at(HALF, "13:10"))
            got = {ext: fp.get_prices("AAPL", HALF, HALF, interval="1h", adjustment="raw", config=config,
                                      extended_hours=ext) for ext in (False, True)}
    for ext, last in ((False, "12:30"), (True, "12:00")):
        df = got[ext]
        assert df.index[-1] >= at(HALF, last), (ext, df.index[-1])
        assert [x["provider"] for x in df.attrs["sources"]][-1].endswith("(stream, real-time)")
        truth = market.truth("AAPL", HALF, HALF, "1h", "raw", extended_hours=ext)
        later = df[df.index > at(HALF, "11:00")]
        assert len(later) and list(later.index) == [t for t in truth.index if t in later.index]
        np.testing.assert_allclose(later["volume"], truth.loc[later.index, "volume"], rtol=1e-9)
        np.testing.assert_allclose(later["close"], truth.loc[later.index, "close"], rtol=1e-12)


def test_the_chain_joins_a_stream_within_the_asked_session(market, rest):
    """Today is the half day; REST knows it up to 12:40 (a delayed plan). An extended stream from
    12:35 runs past the close: a regular answer ends at 12:59, an extended one goes on."""
    rest.intraday_until = at(HALF, "12:40")
    with _streaming(market, rest, "12:35", "13:06", ("AAPL", "SPY")) as config:
        reg = fp.get_prices("AAPL", HALF, HALF, interval="1m", adjustment="raw", config=config)
        ext = fp.get_prices("AAPL", HALF, HALF, interval="1m", adjustment="raw", config=config,
                            extended_hours=True)
        five = fp.get_prices("AAPL", HALF, HALF, interval="5m", adjustment="raw", config=config)
        hour = fp.get_prices("AAPL", HALF, HALF, interval="1h", adjustment="raw", config=config)
    truth = market.truth("AAPL", HALF, HALF, "1m", "raw")
    pdt.assert_frame_equal(reg[COLS[:5]], truth[COLS[:5]], rtol=1e-12, check_freq=False)
    assert reg.index[-1] == at(HALF, "12:59")
    assert [s["provider"] for s in reg.attrs["sources"]][-1].endswith("(stream, real-time)")
    et = market.truth("AAPL", HALF, HALF, "1m", "raw", extended_hours=True)
    et = et[et.index <= ext.index[-1]]
    assert ext.index[-1] >= at(HALF, "13:05") and ext.index[0] < at(HALF, "04:05")
    pdt.assert_frame_equal(ext[COLS[:5]], et[COLS[:5]], rtol=1e-12, check_freq=False)
    t5 = market.truth("AAPL", HALF, HALF, "5m", "raw")
    pdt.assert_frame_equal(five[COLS[:5]], t5[COLS[:5]], rtol=1e-12, check_freq=False)
    assert five.index[-1] == at(HALF, "12:55")
    th = market.truth("AAPL", HALF, HALF, "1h", "raw")
    pdt.assert_frame_equal(hour[COLS[:5]], th[COLS[:5]], rtol=1e-12, check_freq=False)
    assert hour.index[-1] == at(HALF, "12:30")  # the last hour, 12:30-13:00, closed at the close


def test_a_regular_stream_is_not_used_for_an_extended_answer(market, rest):
    rest.intraday_until = at(HALF, "12:40")
    with _ws(market, "12:35") as ws:
        config = _stream_cfg(rest, ws)
        with stream(["AAPL"], config=config) as s:
            _read_until(s, lambda b: b.index.get_level_values(1).max() >= at(HALF, "12:50"))
            ext = fp.get_prices("AAPL", HALF, HALF, interval="1m", adjustment="raw", config=config,
                                extended_hours=True)
            reg = fp.get_prices("AAPL", HALF, HALF, interval="1m", adjustment="raw", config=config)
    assert ext.index[-1] < at(HALF, "12:40") and [s["provider"] for s in ext.attrs["sources"]] == ["massive_rest"]
    assert reg.index[-1] >= at(HALF, "12:50") and len(reg.attrs["sources"]) == 2


def test_a_regular_answer_of_a_pre_market_only_provider_comes_from_the_stream(market, rest):
    """REST knows today up to 09:25 (pre-market only): the regular answer is the stream's, from 09:30;
    the extended one is REST's pre-market joined with the stream's bars after it."""
    rest.intraday_until = at(HALF, "09:25")
    with _streaming(market, rest, "09:20", "09:41") as config:
        reg = fp.get_prices("AAPL", HALF, HALF, interval="1m", adjustment="raw", config=config)
        ext = fp.get_prices("AAPL", HALF, HALF, interval="5m", adjustment="raw", config=config,
                            extended_hours=True)
    assert reg.index[0] == at(HALF, "09:30") and reg.index[-1] >= at(HALF, "09:40")
    assert {src["provider"] for src in reg.attrs["sources"]} == {"massive_rest (stream, real-time)"}
    truth = market.truth("AAPL", HALF, HALF, "1m", "raw")
    truth = truth[truth.index <= reg.index[-1]]
    pdt.assert_frame_equal(reg[COLS[:5]], truth[COLS[:5]], rtol=1e-12, check_freq=False)
    assert [src["provider"] for src in ext.attrs["sources"]] == ["massive_rest", "massive_rest (stream, real-time)"]
    t5 = market.truth("AAPL", HALF, HALF, "5m", "raw", extended_hours=True)
    t5 = t5[t5.index <= ext.index[-1]]
    assert ext.index[-1] >= at(HALF, "09:35")
    pdt.assert_frame_equal(ext[COLS[:5]], t5[COLS[:5]], rtol=1e-12, check_freq=False)


@pytest.mark.parametrize("extended", [False, True])
def test_cli_stream_extended_hours(market, rest, monkeypatch, extended):
    with _ws(market, "09:25", tickers=("AAPL",)) as ws:
        for k, v in {"MASSIVE_API_KEY": REST_KEY, "MASSIVE_REST_BASE_URL": rest.url,
                     "FINRPT_PRICE_PROVIDERS": "massive_rest", "FINRPT_PROVIDERS_TODAY": str(HALF),
                     **ws.config()}.items():
            monkeypatch.setenv(k, v)
        code, out, err = run("stream", "AAPL", "--count", "3", "--format", "csv",
                             *(["--extended-hours"] if extended else []))
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith("ticker,timestamp") and len(lines) == 4
    truth = ws.truth("AAPL")
    if not extended:
        truth = truth[truth.index >= at(HALF, "09:30")]
    assert [ln.split(",")[1] for ln in lines[1:]] == [t.isoformat() for t in truth.index[:3]]
    assert ("1m bars of 04:00-20:00" in err) is extended and ("1m bars of the regular session" in err) is (not extended)


# -- dask -----------------------------------------------------------------------------------------
def test_dask_read_bars_regular_and_extended(cfg, market):
    pytest.importorskip("dask.dataframe", reason="needs finrpt-providers[dask]")
    from finrpt_providers.dask import read_bars
    from finrpt_providers.providers.massive_flatfiles import sync

    sync(EDT_DAY, EST_DAY, datasets=["minute_aggs_v1"], config=cfg)  # into this test's own store
    for ext in (False, True):
        bars = read_bars("minute_aggs_v1", EDT_DAY, EST_DAY, tickers=["AAPL", "SPY"], adjustment="raw", config=cfg,
                         extended_hours=ext)
        assert bars.attrs["extended_hours"] is ext and bars.npartitions == 2  # one per session
        got = bars.compute().set_index(["ticker", "timestamp"]).sort_index()
        for t in ("AAPL", "SPY"):
            truth = market.truth(t, EDT_DAY, EST_DAY, "1m", "raw", extended_hours=ext)
            mine = got.xs(t, level="ticker")
            assert list(mine.index) == list(truth.index)
            np.testing.assert_allclose(mine[OHLCV].to_numpy(), truth[OHLCV].to_numpy(), rtol=1e-12)
        stamps = got.index.get_level_values("timestamp")
        assert (stamps.min() == at(EDT_DAY, "09:30")) is not ext
    with pytest.raises(InvalidQuery, match="extended_hours must be True or False"):
        read_bars("minute_aggs_v1", EDT_DAY, EST_DAY, config=cfg, extended_hours="false")
