"""Point in time: ``as_of=DATE`` on every door.

Prices as they were known on ``as_of``: only corporate actions with an ex-date on or before it
adjust (a split after it is not applied, so a price before it is the one quoted then; a
dividend after it does not scale the total return), ``end`` after it is refused before any
I/O, raw bars are the same whatever is known. Checked against the synthetic market's own
oracle (``market.truth(..., as_of=...)``, written apart from the package) for Massive REST
(raw bars adjusted with the as-of events), yfinance (split-adjusted bars whose later splits
the core undoes), the flat files and the chain stitching them; then baskets, the whole
market, ``dask.read_bars``, the yf facade, OpenBB's fetcher and finrpt's Dataer.

The events: NVDA's 4-for-1 split (ex 2025-11-17), RSPL's 1-for-3 reverse split (ex
2026-01-20), AAPL's February 2026 dividend (ex-date read from ``market.dividends``); as_of
the session before, on and after each ex-date. Today is pinned to 2026-07-01 (yfinance keeps
15m bars 59 days and 1h bars 729 days back from it; daily bars have no limit).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

import finrpt_providers as fp
from finrpt_providers import InvalidQuery, PriceProvider, calendar
from finrpt_providers.config import Config
from finrpt_providers.frames import long_frame
from finrpt_providers.testing import FakeFlatFiles, plugin_of
from tests.conftest import REST_KEY, chain_config

ET = "America/New_York"
D = dt.date
PRICES = ["open", "high", "low", "close"]
NVDA_SPLIT = D(2025, 11, 17)  # 4-for-1: the session before it is 2025-11-14 (a Friday)
BEFORE_SPLIT = D(2025, 11, 14)
RSPL_SPLIT = D(2026, 1, 20)  # 1-for-3 reverse (2026-01-19 is Martin Luther King Jr. Day)
# yfinance scales its volumes to whole split-adjusted shares: undone by 1/3 for RSPL, 1.5 shares off
VOLUME_ATOL = {"yfinance": 1.5}
EVENTS = {"NVDA 4-for-1 split": "NVDA", "RSPL 1-for-3 reverse split": "RSPL", "AAPL dividend": "AAPL"}
WHEN = {"before": -1, "on": 0, "after": 1}  # as_of: sessions from the ex-date


def ex_date(market, ticker: str) -> dt.date:
    if ticker == "AAPL":  # its February 2026 dividend, as the market declares it
        return next(ts.date() for ts in market.dividends("AAPL").index if (ts.year, ts.month) == (2026, 2))
    return market.splits(ticker).index[0].date()


def around(market, ticker: str, when: str) -> tuple[dt.date, dt.date]:
    """(start, as_of): three sessions before the event's ex-date, and as_of relative to it."""
    ex = ex_date(market, ticker)
    i = market.sessions.index(ex)
    return market.sessions[i - 3], market.sessions[i + WHEN[when]]


def sessions(a: str, b: str) -> list[dt.date]:
    return calendar.sessions(D.fromisoformat(a), D.fromisoformat(b))


def assert_truth(df: pd.DataFrame, truth: pd.DataFrame, volume_atol: float = 0.0) -> None:
    """Same bars as the truth: prices to float rounding, volumes (to ``volume_atol`` shares),
    vwap where the source has one."""
    assert len(truth), "an empty truth proves nothing"
    assert list(df.index) == list(truth.index)
    np.testing.assert_allclose(df[PRICES].to_numpy(float), truth[PRICES].to_numpy(float), rtol=1e-9, atol=0)
    np.testing.assert_allclose(df["volume"].to_numpy(float), truth["volume"].to_numpy(float), rtol=1e-9,
                               atol=volume_atol + 1e-6)
    has = df["vwap"].notna().to_numpy()
    np.testing.assert_allclose(df["vwap"].to_numpy(float)[has], truth["vwap"].to_numpy(float)[has], rtol=1e-9)


def period_truth(market, ticker: str, start: dt.date, as_of: dt.date, interval: str, adjustment: str) -> pd.DataFrame:
    """Period bars built here with pandas Periods from the as-of daily truth: the range widened
    to whole periods at the start and cut at as_of (the last period ends there)."""
    freq = {"1wk": "W-SUN", "1mo": "M"}[interval]
    first = pd.Period(start, freq=freq).start_time.date()
    daily = market.truth(ticker, first, as_of, "1d", adjustment, as_of=as_of)
    key = daily.index.tz_localize(None).to_period(freq)
    g = daily.groupby(key)
    out = pd.DataFrame({"open": g["open"].first(), "high": g["high"].max(), "low": g["low"].min(),
                        "close": g["close"].last(), "volume": g["volume"].sum()})
    out.index = pd.DatetimeIndex([pd.Timestamp(p.start_time.date(), tz=ET) for p in out.index], name="timestamp")
    return out


# -- fixtures -----------------------------------------------------------------------------------
def flat_days(market) -> list[dt.date]:
    """Day files: the windows the tests ask (each event's sessions, NVDA's November for the
    periods, the first days of December for a stitch), not 2025-10-27..31, 2025-11-19.. nor
    2025-12-10.. (left for the sources after the flat files), plus the session before every
    ex-dividend date (a total adjustment with today's knowledge weighs each against it)."""
    days = set(sessions("2025-11-03", "2025-11-18") + sessions("2025-12-01", "2025-12-09")
               + sessions("2026-01-13", "2026-01-21") + sessions("2026-02-04", "2026-02-11"))
    for t in market.tickers:
        for ex in market.dividends(t).index:
            before = calendar.session_before(ex.date())
            if before is not None and before >= market.sessions[0]:
                days.add(before)
    return sorted(days)


@pytest.fixture(scope="module")
def flat(market):
    with FakeFlatFiles(market, days=flat_days(market), minute_days=[BEFORE_SPLIT, NVDA_SPLIT]) as ff:
        yield ff


@pytest.fixture
def cfg(flat, rest, fake_yahoo, tmp_path):
    flat.reset_counts()
    return chain_config(flat, rest, fake_yahoo, tmp_path, MASSIVE_REST_BACKOFF="0.01", FINRPT_YFINANCE_TIMEOUT="5")


def no_requests(flat, rest, fake_yahoo) -> None:
    assert flat.count() == 0 and rest.requests == [] and fake_yahoo.requests == []


# -- 1. each source, before / on / after each event ----------------------------------------------
@pytest.mark.parametrize("when", list(WHEN))
@pytest.mark.parametrize("event", list(EVENTS))
@pytest.mark.parametrize("provider", ["massive_rest", "yfinance", "massive_flatfiles"])
def test_daily_bars_as_of_an_event_equal_the_truth_known_then(cfg, market, provider, event, when):
    ticker = EVENTS[event]
    start, as_of = around(market, ticker, when)
    got = {adj: fp.get_prices(ticker, start, as_of, adjustment=adj, providers=[provider], config=cfg, as_of=as_of)
           for adj in ("raw", "splits", "total")}
    for adj, df in got.items():
        assert_truth(df, market.truth(ticker, start, as_of, "1d", adj, as_of=as_of), VOLUME_ATOL.get(provider, 0))
        assert df.attrs["as_of"] == as_of and df.attrs["provider"] == provider and df.attrs["adjustment"] == adj
    raw_today = fp.get_prices(ticker, start, as_of, adjustment="raw", providers=[provider], config=cfg)
    pd.testing.assert_frame_equal(got["raw"], raw_today, check_freq=False)  # raw: as_of changes nothing
    assert "as_of" not in raw_today.attrs
    ex = pd.Timestamp(ex_date(market, ticker), tz=ET)
    pre = got["raw"].index < ex
    adjusted = got["total"]["close"].to_numpy() / got["raw"]["close"].to_numpy()
    if when == "before":  # nothing known yet: prices as quoted then, for every adjustment
        np.testing.assert_allclose(adjusted, 1.0, rtol=1e-12)
    elif ticker == "AAPL":  # the dividend known: the total return scales the sessions before it
        prev_close = got["raw"]["close"][pre].iloc[-1]
        np.testing.assert_allclose(adjusted[pre], 1 - market.dividends("AAPL")[ex] / prev_close, rtol=1e-12)
        np.testing.assert_allclose(adjusted[~pre], 1.0, rtol=1e-12)
    else:  # the split known: the sessions before it in the new share basis
        ratio = market.splits(ticker)[ex]
        np.testing.assert_allclose(adjusted[pre], 1 / ratio, rtol=1e-12)
        np.testing.assert_allclose(got["splits"]["volume"].to_numpy()[pre],
                                   got["raw"]["volume"].to_numpy()[pre] * ratio, rtol=1e-9,
                                   atol=VOLUME_ATOL.get(provider, 0) + 1e-6)


@pytest.mark.parametrize("provider", ["massive_rest", "yfinance", "massive_flatfiles", "the chain"])
def test_headline_the_day_before_the_split_as_of_that_day_is_the_raw_close(cfg, market, provider):
    providers = None if provider == "the chain" else [provider]
    pit = fp.get_prices("NVDA", BEFORE_SPLIT, BEFORE_SPLIT, providers=providers, config=cfg, as_of=BEFORE_SPLIT)
    now = fp.get_prices("NVDA", BEFORE_SPLIT, BEFORE_SPLIT, providers=providers, config=cfg)
    raw_close = market.daily("NVDA").loc[pd.Timestamp(BEFORE_SPLIT, tz=ET), "close"]
    assert pit["close"].iloc[0] == pytest.approx(raw_close, rel=1e-12)
    assert pit["close"].iloc[0] == pytest.approx(4 * now["close"].iloc[0], rel=1e-12)  # ~4x today's adjusted
    assert 350 < pit["close"].iloc[0] < 450 and 85 < now["close"].iloc[0] < 115
    assert pit.attrs["as_of"] == BEFORE_SPLIT and "as_of" not in now.attrs
    # on a Saturday (no session), as_of still knows only what happened by then
    sat = fp.get_prices("NVDA", BEFORE_SPLIT, BEFORE_SPLIT, providers=providers, config=cfg, as_of="2025-11-15")
    assert sat["close"].iloc[0] == pytest.approx(raw_close, rel=1e-12)


@pytest.mark.parametrize("provider", ["massive_rest", "yfinance"])
def test_total_as_of_applies_the_dividends_up_to_it_and_none_after(cfg, market, provider):
    """NVDA's 2025-09-10 dividend (0.04 as declared, before the split) is known on 2025-11-14;
    its 12-10 dividend and the split are not: total/raw is exactly 1 - 0.04 / close(09-09)
    before 09-10 and 1 after (yfinance: split-adjusted bars, the later split undone)."""
    start = D(2025, 9, 4)
    df = fp.get_prices("NVDA", start, BEFORE_SPLIT, adjustment="total", providers=[provider], config=cfg,
                       as_of=BEFORE_SPLIT)
    assert_truth(df, market.truth("NVDA", start, BEFORE_SPLIT, "1d", "total", as_of=BEFORE_SPLIT),
                 VOLUME_ATOL.get(provider, 0))
    raw = market.daily("NVDA")["close"]
    raw = raw[(raw.index >= pd.Timestamp(start, tz=ET)) & (raw.index <= pd.Timestamp(BEFORE_SPLIT, tz=ET))]
    ex = pd.Timestamp("2025-09-10", tz=ET)
    assert market.dividends("NVDA")[ex] == pytest.approx(0.04)
    factor = 1 - 0.04 / raw[raw.index < ex].iloc[-1]
    ratio = df["close"] / raw
    np.testing.assert_allclose(ratio[ratio.index < ex], factor, rtol=1e-12)
    np.testing.assert_allclose(ratio[ratio.index >= ex], 1.0, rtol=1e-12)
    # daily bars have no lookback limit at yfinance: this far back is served as well
    old = fp.get_prices("NVDA", "2025-06-05", "2025-06-10", adjustment="total", providers=[provider], config=cfg,
                        as_of="2025-06-10")
    assert_truth(old, market.truth("NVDA", "2025-06-05", "2025-06-10", "1d", "total", as_of="2025-06-10"),
                 VOLUME_ATOL.get(provider, 0))


# one intraday interval per source: Massive's 15m (REST and flat files' minutes of 11-14 and
# 11-17), yfinance's 1h (15m bars of November 2025 are older than Yahoo keeps)
INTRADAY = [("massive_rest", "15m"), ("massive_flatfiles", "15m"), ("yfinance", "1h")]


@pytest.mark.parametrize("when", ["before", "on"])
@pytest.mark.parametrize("provider, interval", INTRADAY)
def test_intraday_bars_across_the_split_as_of_equal_the_truth(cfg, market, provider, interval, when):
    as_of = BEFORE_SPLIT if when == "before" else NVDA_SPLIT
    for adj in ("raw", "splits", "total"):
        df = fp.get_prices("NVDA", BEFORE_SPLIT, as_of, interval=interval, adjustment=adj, providers=[provider],
                           config=cfg, as_of=as_of)
        truth = market.truth("NVDA", BEFORE_SPLIT, as_of, interval, adj, as_of=as_of)
        assert_truth(df, truth, VOLUME_ATOL.get(provider, 0))
        assert df.attrs["as_of"] == as_of and df.attrs["interval"] == interval
        assert (df.index.time >= dt.time(9, 30)).all() and (df.index.time < dt.time(16)).all()
    first = df.loc[df.index.date == BEFORE_SPLIT, "close"].iloc[0]
    raw_first = market.truth("NVDA", BEFORE_SPLIT, BEFORE_SPLIT, interval, "raw")["close"].iloc[0]
    assert first == pytest.approx(raw_first / (1 if when == "before" else 4), rel=1e-12)


@pytest.mark.parametrize("when", ["before", "on"])
def test_yfinance_intraday_within_its_lookback_applies_a_dividend_as_of(cfg, market, when):
    """SPY's 2026-06-10 dividend, 21 days before the pinned today: 15m bars are kept then."""
    ex = next(ts.date() for ts in market.dividends("SPY").index if (ts.year, ts.month) == (2026, 6))
    as_of = calendar.session_before(ex) if when == "before" else ex
    start = calendar.session_before(ex)
    df = fp.get_prices("SPY", start, as_of, interval="15m", adjustment="total", providers=["yfinance"], config=cfg,
                       as_of=as_of)
    assert_truth(df, market.truth("SPY", start, as_of, "15m", "total", as_of=as_of), VOLUME_ATOL["yfinance"])
    raw = market.truth("SPY", start, as_of, "15m", "raw")
    ratio = (df["close"] / raw["close"]).to_numpy()
    if when == "before":
        np.testing.assert_allclose(ratio, 1.0, rtol=1e-12)
    else:  # weighed against the session before's DAILY close (fetched as split-adjusted daily bars)
        prev = market.daily("SPY").loc[pd.Timestamp(start, tz=ET), "close"]
        np.testing.assert_allclose(ratio[df.index.date == start], 1 - 1.76 / prev, rtol=1e-12)


def test_yfinance_intraday_undoes_the_later_split_and_weighs_an_earlier_dividend(cfg, market):
    """1h bars of 2025-09-09..10 as of 09-10: NVDA's dividend of that day applies (its factor from
    the daily close of 09-09, which Yahoo serves split-adjusted: the 11-17 split undone), the split
    does not."""
    df = fp.get_prices("NVDA", "2025-09-09", "2025-09-10", interval="1h", adjustment="total",
                       providers=["yfinance"], config=cfg, as_of="2025-09-10")
    assert_truth(df, market.truth("NVDA", "2025-09-09", "2025-09-10", "1h", "total", as_of="2025-09-10"), 1.5)
    raw = market.truth("NVDA", "2025-09-09", "2025-09-10", "1h", "raw")
    assert df["close"].iloc[-1] == pytest.approx(raw["close"].iloc[-1], rel=1e-12)  # on the ex-date: as quoted


def test_yfinance_intraday_older_than_its_lookback_is_skipped_as_of_too(cfg, fake_yahoo):
    with pytest.raises(fp.AllProvidersFailed) as err:
        fp.get_prices("NVDA", BEFORE_SPLIT, BEFORE_SPLIT, interval="15m", providers=["yfinance"], config=cfg,
                      as_of=BEFORE_SPLIT)
    assert "15m bars only from 2026-05-03" in str(err.value) and "as of 2025-11-14" in str(err.value)
    assert fake_yahoo.chart_requests() == []


# -- 2. periods: the last one ends at as_of ---------------------------------------------------------
@pytest.mark.parametrize("interval", ["1wk", "1mo"])
@pytest.mark.parametrize("provider", ["massive_rest", "yfinance", "massive_flatfiles", "the chain"])
def test_periods_end_at_as_of_in_the_middle_of_a_week_and_month(cfg, market, provider, interval):
    as_of = D(2025, 11, 18)  # a Tuesday, the day after NVDA's split: mid-week, mid-month
    providers = None if provider == "the chain" else [provider]
    for adj in ("splits", "total"):
        df = fp.get_prices("NVDA", "2025-11-03", as_of, interval=interval, adjustment=adj, providers=providers,
                           config=cfg, as_of=as_of)
        want = period_truth(market, "NVDA", D(2025, 11, 3), as_of, interval, adj)
        assert list(df.index) == list(want.index)
        np.testing.assert_allclose(df[PRICES].to_numpy(float), want[PRICES].to_numpy(float), rtol=1e-9)
        np.testing.assert_allclose(df["volume"].to_numpy(float), want["volume"].to_numpy(float), rtol=1e-9,
                                   atol=len(sessions("2025-11-01", "2025-11-18")) * 1.5)
        # no bar after as_of: the last period closes at the as-of session's close
        assert df["close"].iloc[-1] == pytest.approx(
            market.truth("NVDA", as_of, as_of, "1d", adj, as_of=as_of)["close"].iloc[0], rel=1e-12)
        assert df.attrs["partial_last"] is True  # the period was running on the as-of date
        assert df.attrs["as_of"] == as_of and df.attrs["interval"] == interval
    # a range ending earlier, widened up to as_of: the week of 11-10 ended before 11-18, the month had not
    df = fp.get_prices("NVDA", "2025-11-10", "2025-11-12", interval=interval, providers=providers, config=cfg,
                       as_of=as_of)
    assert df.attrs["partial_last"] is (interval == "1mo")
    last_day = D(2025, 11, 14) if interval == "1wk" else as_of
    assert df["close"].iloc[-1] == pytest.approx(
        market.truth("NVDA", last_day, last_day, "1d", "splits", as_of=as_of)["close"].iloc[0], rel=1e-12)


def test_a_basket_of_periods_as_of_has_the_right_bars(cfg, market):
    as_of = D(2025, 11, 18)
    b = fp.get_prices(["NVDA", "AAPL"], "2025-11-03", as_of, interval="1wk", providers=["massive_rest"], config=cfg,
                      as_of=as_of)
    assert b.attrs["as_of"] == as_of
    for t in ("NVDA", "AAPL"):
        want = period_truth(market, t, D(2025, 11, 3), as_of, "1wk", "splits")
        np.testing.assert_allclose(b.xs(t)[PRICES].to_numpy(float), want[PRICES].to_numpy(float), rtol=1e-9)


def test_a_basket_of_periods_judges_partial_last_against_as_of(cfg):
    as_of = D(2025, 11, 18)
    one = fp.get_prices("NVDA", "2025-11-03", as_of, interval="1wk", providers=["massive_rest"], config=cfg,
                        as_of=as_of)
    b = fp.get_prices(["NVDA", "AAPL"], "2025-11-03", as_of, interval="1wk", providers=["massive_rest"], config=cfg,
                      as_of=as_of)
    assert one.attrs["partial_last"] is True
    assert b.attrs["partial_last"] == {"AAPL": True, "NVDA": True}


def test_fetch_one_judges_partial_last_against_as_of(cfg, market):
    from finrpt_providers.chain import fetch_one
    from finrpt_providers.plugins import registry

    provider = registry()["massive_rest"].provider.configured(cfg)
    df = fetch_one(provider, "NVDA", "2025-11-03", "2025-11-18", interval="1wk", config=cfg, as_of="2025-11-18")
    want = period_truth(market, "NVDA", D(2025, 11, 3), D(2025, 11, 18), "1wk", "splits")
    np.testing.assert_allclose(df[PRICES].to_numpy(float), want[PRICES].to_numpy(float), rtol=1e-9)
    assert df.attrs["partial_last"] is True


# -- 3. end after as_of, and what as_of may be ----------------------------------------------------
def test_end_after_as_of_is_refused_naming_it_before_any_request(cfg, flat, rest, fake_yahoo):
    import importlib.util

    from finrpt_providers import yf as ours

    calls = [
        lambda: fp.get_prices("NVDA", "2025-11-10", "2025-11-17", config=cfg, as_of="2025-11-14"),
        lambda: fp.get_prices("NVDA", "2025-11-10", "2025-11-17", interval="15m", config=cfg, as_of="2025-11-14"),
        lambda: fp.get_prices("NVDA", "2025-11-10", "2025-11-17", interval="1wk", config=cfg, as_of="2025-11-14"),
        lambda: fp.get_prices(["NVDA", "AAPL"], "2025-11-10", "2025-11-17", config=cfg, as_of="2025-11-14",
                              errors="omit"),
        lambda: fp.get_market("2025-11-17", config=cfg, as_of="2025-11-14"),
        lambda: fp.get_market("2025-11-10", "2025-11-17", config=cfg, as_of="2025-11-14"),
        lambda: ours.Ticker("NVDA", config=cfg).history(start="2025-11-10", end="2025-11-18", as_of="2025-11-14",
                                                        raise_errors=True),
        lambda: ours.download(["NVDA", "AAPL"], start="2025-11-10", end="2025-11-18", config=cfg,
                              as_of="2025-11-14"),
    ]
    if all(importlib.util.find_spec(m) for m in ("dask", "distributed")):
        from finrpt_providers.dask import read_bars

        calls.append(lambda: read_bars("day_aggs_v1", "2025-11-10", "2025-11-17", config=cfg, as_of="2025-11-14"))
    for call in calls:
        with pytest.raises(InvalidQuery, match=r"end 2025-11-17 is after as_of 2025-11-14"):
            call()
    no_requests(flat, rest, fake_yahoo)
    # yfinance's way without raise_errors: an empty frame, the reason in attrs["error"]
    empty = ours.Ticker("NVDA", config=cfg).history(start="2025-11-10", end="2025-11-18", as_of="2025-11-14")
    assert empty.empty and "as_of 2025-11-14" in empty.attrs["error"]
    no_requests(flat, rest, fake_yahoo)


@pytest.mark.parametrize("as_of", [
    "2025-11-14", " 2025-11-14 ", D(2025, 11, 14), dt.datetime(2025, 11, 14), pd.Timestamp("2025-11-14"),
    pd.Timestamp("2025-11-14", tz=ET), pd.Timestamp("2025-11-14 05:00", tz="UTC"),
], ids=["str", "padded str", "date", "datetime", "Timestamp", "Timestamp ET", "Timestamp UTC midnight ET"])
def test_as_of_is_read_as_a_date_whatever_its_type(cfg, market, as_of):
    df = fp.get_prices("NVDA", "2025-11-12", BEFORE_SPLIT, providers=["massive_rest"], config=cfg, as_of=as_of)
    assert df.attrs["as_of"] == BEFORE_SPLIT and type(df.attrs["as_of"]) is dt.date
    assert_truth(df, market.truth("NVDA", "2025-11-12", BEFORE_SPLIT, "1d", "splits", as_of=BEFORE_SPLIT))


@pytest.mark.parametrize("bad, words", [
    ("yesterday", "not a date"), ("2025-02-30", "not a date"), ("11/14/2025", "not a date"),
    (20251114, "must be 'YYYY-MM-DD'"), (True, "must be 'YYYY-MM-DD'"), ([2025, 11, 14], "must be 'YYYY-MM-DD'"),
    (pd.NaT, "missing"), (float("nan"), "missing"), ("2025-11-14 10:30", "time of day"),
])
def test_garbage_as_of_is_refused_naming_it_before_any_request(cfg, flat, rest, fake_yahoo, bad, words):
    from finrpt_providers import yf as ours

    for call in (lambda: fp.get_prices("NVDA", "2025-11-10", "2025-11-12", config=cfg, as_of=bad),
                 lambda: fp.get_prices(["NVDA", "AAPL"], "2025-11-10", "2025-11-12", config=cfg, as_of=bad),
                 lambda: fp.get_market("2025-11-12", config=cfg, as_of=bad),
                 lambda: ours.Ticker("NVDA", config=cfg).history(start="2025-11-10", as_of=bad)):
        with pytest.raises(InvalidQuery, match="as_of") as err:
            call()
        assert words in str(err.value)
    no_requests(flat, rest, fake_yahoo)


def test_as_of_today_or_later_is_todays_knowledge(cfg, market):
    for as_of in ("2026-07-01", "2026-09-30"):
        df = fp.get_prices("NVDA", BEFORE_SPLIT, BEFORE_SPLIT, adjustment="total", providers=["massive_rest"],
                           config=cfg, as_of=as_of)
        assert_truth(df, market.truth("NVDA", BEFORE_SPLIT, BEFORE_SPLIT, "1d", "total"))
        assert df.attrs["as_of"] == D.fromisoformat(as_of)


def test_an_index_as_of_needs_no_corporate_actions(cfg, market):
    """I:SPX has no corporate actions: as of any date its level is today's, asked of no actions
    source (none configured here), beside a stock that does need them."""
    none = cfg.merged({"FINRPT_ACTIONS_PROVIDERS": ""})
    for provider in ("massive_rest", "yfinance"):
        df = fp.get_prices("I:SPX", "2025-11-10", BEFORE_SPLIT, adjustment="total", providers=[provider], config=none,
                           as_of=BEFORE_SPLIT)
        np.testing.assert_allclose(df["close"], market.truth("I:SPX", "2025-11-10", BEFORE_SPLIT, "1d", "total",
                                                             as_of=BEFORE_SPLIT)["close"], rtol=1e-12)
        assert df.attrs["as_of"] == BEFORE_SPLIT
    b = fp.get_prices(["I:SPX", "NVDA"], "2025-11-10", BEFORE_SPLIT, providers=["massive_rest"], config=cfg,
                      as_of=BEFORE_SPLIT)
    assert_truth(b.xs("NVDA"), market.truth("NVDA", "2025-11-10", BEFORE_SPLIT, "1d", "splits", as_of=BEFORE_SPLIT))
    np.testing.assert_allclose(b.xs("I:SPX")["close"], df["close"], rtol=1e-12)


# -- 4. baskets, the whole market, dask ----------------------------------------------------------
@pytest.mark.parametrize("provider", ["massive_rest", "yfinance", "massive_flatfiles", "the chain"])
def test_a_basket_as_of_equals_each_tickers_truth(cfg, market, provider):
    providers = None if provider == "the chain" else [provider]
    tickers = ["NVDA", "RSPL", "AAPL", "SPY"]  # a split and a reverse split after as_of, a dividend before
    for adj in ("splits", "total"):
        b = fp.get_prices(tickers, "2025-11-07", BEFORE_SPLIT, adjustment=adj, providers=providers, config=cfg,
                          as_of=BEFORE_SPLIT)
        assert b.attrs["as_of"] == BEFORE_SPLIT and b.attrs["failed"] == {}
        assert sorted(set(b.index.get_level_values(0))) == sorted(tickers)
        for t in tickers:
            assert_truth(b.xs(t), market.truth(t, "2025-11-07", BEFORE_SPLIT, "1d", adj, as_of=BEFORE_SPLIT),
                         VOLUME_ATOL.get(provider, 0))
    rspl = b.xs("RSPL")["close"].iloc[-1]  # as quoted before its reverse split: a third of today's adjusted
    assert rspl == pytest.approx(market.daily("RSPL").loc[pd.Timestamp(BEFORE_SPLIT, tz=ET), "close"], rel=1e-12)


@pytest.mark.parametrize("provider", ["massive_flatfiles", "massive_rest"])
def test_get_market_as_of_equals_every_tickers_truth(cfg, market, provider):
    today = fp.get_market("2025-11-12", NVDA_SPLIT, providers=[provider], config=cfg)  # today's knowledge first
    assert "as_of" not in today.attrs
    for as_of in (BEFORE_SPLIT, NVDA_SPLIT):
        for adj in ("raw", "splits", "total"):
            m = fp.get_market("2025-11-12", as_of, adjustment=adj, providers=[provider], config=cfg, as_of=as_of)
            assert m.attrs["as_of"] == as_of and m.attrs["failed"] == {}
            assert set(m.index.get_level_values(0)) >= {"NVDA", "RSPL", "AAPL", "SPY", "BRK.B"}
            for t in ("NVDA", "RSPL", "AAPL", "SPY", "BRK.B"):
                assert_truth(m.xs(t), market.truth(t, "2025-11-12", as_of, "1d", adj, as_of=as_of))
    nvda = fp.get_market(BEFORE_SPLIT, providers=[provider], config=cfg, as_of=BEFORE_SPLIT).xs("NVDA")
    assert nvda["close"].iloc[0] == pytest.approx(4 * today.xs("NVDA").loc[pd.Timestamp(BEFORE_SPLIT, tz=ET),
                                                                            "close"], rel=1e-12)


def test_get_market_intraday_as_of_from_the_flat_files(cfg, market):
    for as_of in (BEFORE_SPLIT, NVDA_SPLIT):  # the market's minutes (what it serves natively)
        m = fp.get_market(BEFORE_SPLIT, interval="1m", adjustment="total", providers=["massive_flatfiles"],
                          config=cfg, as_of=as_of)
        assert m.attrs["as_of"] == as_of and m.attrs["failed"] == {}
        for t in ("NVDA", "AAPL"):
            assert_truth(m.xs(t), market.truth(t, BEFORE_SPLIT, BEFORE_SPLIT, "1m", "total", as_of=as_of))


class SplitsOnlyMarket(PriceProvider):
    """A market served split-adjusted with today's splits only (no raw bars)."""

    name = "splits_only_market"
    intervals = frozenset({"1d"})
    adjustments = frozenset({"splits"})
    serves_market = True

    def __init__(self, market):
        self.market = market
        self.calls: list = []

    def configured(self, config):
        clone = super().configured(config)
        clone.calls = self.calls
        return clone

    def fetch(self, query):
        return self.market.truth(query.ticker, query.start, query.end, query.interval, query.adjustment)

    def fetch_market(self, start, end, interval, adjustment):
        self.calls.append((start, end, adjustment))
        return long_frame({t: self.market.truth(t, start, end, "1d", "splits") for t in self.market.tickers})


def test_get_market_as_of_skips_a_market_served_split_adjusted_only(register_plugin, rest, market):
    p = SplitsOnlyMarket(market)
    register_plugin(plugin_of(p), name="splits-only-market")
    cfg = Config.load({"FINRPT_PRICE_PROVIDERS": "splits_only_market,massive_rest", "MASSIVE_API_KEY": REST_KEY,
                       "MASSIVE_REST_BASE_URL": rest.url, "FINRPT_PROVIDERS_TODAY": "2026-07-01",
                       "MASSIVE_REST_BACKOFF": "0.01"}, environ={})
    m = fp.get_market("2025-11-12", BEFORE_SPLIT, config=cfg, as_of=BEFORE_SPLIT)
    first = m.attrs["attempts"][0]
    assert first["provider"] == "splits_only_market" and first["outcome"] == "skipped"
    assert "as of 2025-11-14 needs the market's raw bars" in first["detail"]
    assert p.calls == [] and m.attrs["provider"]["NVDA"] == "massive_rest"
    assert_truth(m.xs("NVDA"), market.truth("NVDA", "2025-11-12", BEFORE_SPLIT, "1d", "splits", as_of=BEFORE_SPLIT))
    now = fp.get_market("2025-11-12", BEFORE_SPLIT, config=cfg)  # today's knowledge: it answers
    assert len(p.calls) == 1 and now.attrs["provider"]["NVDA"] == "splits_only_market"
    assert_truth(now.xs("NVDA"), market.truth("NVDA", "2025-11-12", BEFORE_SPLIT, "1d", "splits"))


def test_dask_read_bars_as_of_equals_the_truth(cfg, market):
    pytest.importorskip("dask")
    pytest.importorskip("distributed")
    from finrpt_providers.dask import read_bars
    from finrpt_providers.providers.massive_flatfiles import sync

    sync(D(2025, 11, 7), NVDA_SPLIT, datasets=["day_aggs_v1", "minute_aggs_v1"], config=cfg)
    tickers = ["AAPL", "NVDA", "RSPL"]
    for as_of in (BEFORE_SPLIT, NVDA_SPLIT):
        for adj in ("raw", "splits", "total"):
            lazy = read_bars("day_aggs_v1", "2025-11-07", as_of, tickers=tickers, adjustment=adj, config=cfg,
                             as_of=as_of)
            assert lazy.attrs["as_of"] == as_of and lazy.attrs["failed"] == {}
            got = lazy.compute()
            for t in tickers:  # AAPL's 11-10 dividend is weighed against the close of 11-07
                assert_truth(got[got["ticker"] == t].set_index("timestamp"),
                             market.truth(t, "2025-11-07", as_of, "1d", adj, as_of=as_of))
    minutes = read_bars("minute_aggs_v1", BEFORE_SPLIT, BEFORE_SPLIT, tickers=["NVDA"], config=cfg,
                        as_of=BEFORE_SPLIT)
    assert minutes.attrs["as_of"] == BEFORE_SPLIT
    assert_truth(minutes.compute().set_index("timestamp"),
                 market.truth("NVDA", BEFORE_SPLIT, BEFORE_SPLIT, "1m", "splits", as_of=BEFORE_SPLIT))


# -- 5. the yf facade ----------------------------------------------------------------------------
@pytest.fixture
def ycfg(cfg):
    return cfg.merged({"FINRPT_PRICE_PROVIDERS": "yfinance"})  # split-adjusted bars: the later splits undone


def test_facade_history_as_of_is_get_prices_as_of(ycfg, market):
    from finrpt_providers import yf as ours

    t = ours.Ticker("NVDA", config=ycfg)
    h = t.history(start="2025-11-10", end="2025-11-15", as_of=BEFORE_SPLIT)  # auto_adjust=True: total
    want = fp.get_prices("NVDA", "2025-11-10", BEFORE_SPLIT, adjustment="total", config=ycfg, as_of=BEFORE_SPLIT)
    assert list(h.index) == list(want.index) and h.index.name == "Date"
    np.testing.assert_allclose(h["Close"], want["close"], rtol=1e-12)
    np.testing.assert_allclose(h["Close"], market.truth("NVDA", "2025-11-10", BEFORE_SPLIT, "1d", "raw")["close"],
                               rtol=1e-12)  # nothing known after 11-14 touches these sessions
    np.testing.assert_array_equal(h["Volume"], np.rint(want["volume"]).astype("int64"))
    assert (h["Stock Splits"] == 0).all()
    # auto_adjust=False: Close split-adjusted as of, Adj Close total as of
    h = t.history(start="2025-11-10", end="2025-11-18", auto_adjust=False, as_of=NVDA_SPLIT)
    for col, adj in (("Close", "splits"), ("Adj Close", "total")):
        want = fp.get_prices("NVDA", "2025-11-10", NVDA_SPLIT, adjustment=adj, config=ycfg, as_of=NVDA_SPLIT)
        np.testing.assert_allclose(h[col], want["close"], rtol=1e-12)
    assert h.loc["2025-11-17", "Stock Splits"].item() == 4.0
    # intraday (auto_adjust: splits, as yfinance's)
    h = t.history(start=BEFORE_SPLIT, end="2025-11-15", interval="1h", as_of=BEFORE_SPLIT)
    want = fp.get_prices("NVDA", BEFORE_SPLIT, BEFORE_SPLIT, interval="1h", adjustment="splits", config=ycfg,
                         as_of=BEFORE_SPLIT)
    assert list(h.index) == list(want.index) and h.index.name == "Datetime"
    np.testing.assert_allclose(h["Close"], want["close"], rtol=1e-12)
    np.testing.assert_allclose(h["Close"], market.truth("NVDA", BEFORE_SPLIT, BEFORE_SPLIT, "1h", "raw")["close"],
                               rtol=1e-12)


def test_facade_period_counts_back_from_as_of(ycfg, market):
    from finrpt_providers import yf as ours

    t = ours.Ticker("NVDA", config=ycfg)
    h = t.history(period="1mo", as_of=BEFORE_SPLIT)
    assert h.index[-1].date() == BEFORE_SPLIT and h.index[0].date() >= D(2025, 10, 14)
    want = fp.get_prices("NVDA", h.index[0].date(), BEFORE_SPLIT, adjustment="total", config=ycfg, as_of=BEFORE_SPLIT)
    np.testing.assert_allclose(h["Close"], want["close"], rtol=1e-12)
    h5 = t.history(period="5d", as_of="2025-11-16")  # a Sunday: the five sessions up to Friday
    assert [d.date() for d in h5.index] == sessions("2025-11-10", "2025-11-14")
    np.testing.assert_allclose(h5["Close"], market.truth("NVDA", "2025-11-10", BEFORE_SPLIT, "1d", "raw")["close"],
                               rtol=1e-12)


def test_facade_download_as_of_is_the_basket_as_of(ycfg, market):
    from finrpt_providers import yf as ours

    tickers = ["AAPL", "NVDA", "RSPL"]
    got = ours.download(tickers, start="2025-11-07", end="2025-11-15", config=ycfg, as_of=BEFORE_SPLIT)
    want = fp.get_prices(tickers, "2025-11-07", BEFORE_SPLIT, adjustment="total", config=ycfg, as_of=BEFORE_SPLIT)
    for t in tickers:
        np.testing.assert_allclose(got[("Close", t)], want.xs(t)["close"], rtol=1e-12)
        truth = market.truth(t, "2025-11-07", BEFORE_SPLIT, "1d", "total", as_of=BEFORE_SPLIT)
        np.testing.assert_allclose(got[("Close", t)], truth["close"], rtol=1e-9)
    got = ours.download(tickers, start=BEFORE_SPLIT, end="2025-11-15", interval="1h", config=ycfg, as_of=BEFORE_SPLIT)
    want = fp.get_prices(tickers, BEFORE_SPLIT, BEFORE_SPLIT, interval="1h", adjustment="splits", config=ycfg,
                         as_of=BEFORE_SPLIT)
    for t in tickers:
        np.testing.assert_allclose(got[("Close", t)], want.xs(t)["close"], rtol=1e-12)


def test_facade_download_period_counts_sessions_back_from_as_of(ycfg):
    from finrpt_providers import yf as ours

    h = ours.Ticker("NVDA", config=ycfg).history(period="5d", as_of=BEFORE_SPLIT)
    assert [d.date() for d in h.index] == sessions("2025-11-10", "2025-11-14")  # history: right
    got = ours.download("NVDA", period="5d", config=ycfg, as_of=BEFORE_SPLIT)
    assert [d.date() for d in got.index] == sessions("2025-11-10", "2025-11-14")


def test_facade_dividends_are_in_the_as_of_share_basis_as_its_prices(ycfg, market):
    from finrpt_providers import yf as ours

    h = ours.Ticker("NVDA", config=ycfg).history(start="2025-09-08", end="2025-09-12", as_of="2025-09-11")
    np.testing.assert_allclose(h["Close"], market.truth("NVDA", "2025-09-08", "2025-09-11", "1d", "total",
                                                        as_of="2025-09-11")["close"], rtol=1e-9)
    assert h.loc["2025-09-10", "Dividends"].item() == pytest.approx(0.04)  # as declared: no split known yet
    got = ours.download("NVDA", start="2025-09-08", end="2025-09-12", actions=True, config=ycfg,
                        as_of="2025-09-11")
    assert got.loc["2025-09-10", ("Dividends", "NVDA")].item() == pytest.approx(0.04)


# -- 6. OpenBB ------------------------------------------------------------------------------------
@pytest.fixture
def openbb(cfg, monkeypatch):
    pytest.importorskip("openbb_core", reason="the OpenBB integration is installed from integrations/openbb")
    fetchers = pytest.importorskip("openbb_finrpt_providers.fetchers")
    for k, v in cfg._values.items():  # OpenBB's process reads our usual configuration
        monkeypatch.setenv(k, str(v))
    return fetchers.FinrptEquityHistoricalFetcher


def _fetch(fetcher, params):
    q = fetcher.transform_query(params)
    return q, fetcher.transform_data(q, fetcher.extract_data(q, None))


def test_openbb_as_of(openbb, market, cfg):
    q, res = _fetch(openbb, {"symbol": "NVDA", "start_date": D(2025, 11, 10), "as_of": "2025-11-14"})
    assert q.end_date == BEFORE_SPLIT and q.as_of == BEFORE_SPLIT  # end_date defaults to as_of
    truth = market.truth("NVDA", "2025-11-10", BEFORE_SPLIT, "1d", "splits", as_of=BEFORE_SPLIT)
    assert [r.date for r in res.result] == [ts.date() for ts in truth.index]
    assert [r.close for r in res.result] == pytest.approx(truth["close"].tolist(), rel=1e-12)
    assert [r.volume for r in res.result] == pytest.approx(truth["volume"].tolist(), rel=1e-12)
    assert res.metadata["as_of"] == "2025-11-14"
    q, res = _fetch(openbb, {"symbol": "NVDA,RSPL", "start_date": D(2025, 11, 10), "end_date": D(2025, 11, 13),
                             "as_of": BEFORE_SPLIT, "adjustment": "splits_and_dividends"})
    want = fp.get_prices(["NVDA", "RSPL"], "2025-11-10", "2025-11-13", adjustment="total", config=cfg,
                         as_of=BEFORE_SPLIT)
    assert [(r.symbol, r.date) for r in res.result] == [(t, ts.date()) for t, ts in want.index]
    assert [r.close for r in res.result] == pytest.approx(want["close"].tolist(), rel=1e-12)
    for t in ("NVDA", "RSPL"):
        closes = [r.close for r in res.result if r.symbol == t]
        assert closes == pytest.approx(market.truth(t, "2025-11-10", "2025-11-13", "1d", "total",
                                                    as_of=BEFORE_SPLIT)["close"].tolist(), rel=1e-9)
    _q, res = _fetch(openbb, {"symbol": "NVDA", "start_date": D(2025, 11, 10), "end_date": D(2025, 11, 14)})
    assert res.metadata["as_of"] is None
    assert res.result[-1].close == pytest.approx(truth["close"].iloc[-1] / 4, rel=1e-12)


def test_openbb_end_after_as_of_is_refused(openbb, flat, rest, fake_yahoo):
    from openbb_core.app.model.abstract.error import OpenBBError

    q = openbb.transform_query({"symbol": "NVDA", "start_date": D(2025, 11, 10), "end_date": D(2025, 11, 17),
                                "as_of": "2025-11-14"})
    with pytest.raises(OpenBBError, match="end 2025-11-17 is after as_of 2025-11-14"):
        openbb.extract_data(q, None)
    no_requests(flat, rest, fake_yahoo)


def test_openbb_include_actions_as_of_is_in_the_as_of_share_basis(openbb, market):
    _q, res = _fetch(openbb, {"symbol": "NVDA", "start_date": D(2025, 9, 8), "end_date": D(2025, 9, 11),
                              "as_of": "2025-09-11", "include_actions": True, "providers": "massive_rest"})
    row = next(r for r in res.result if r.date == D(2025, 9, 10))
    assert row.close == pytest.approx(market.daily("NVDA").loc["2025-09-10", "close"].item(), rel=1e-12)
    assert row.dividend == pytest.approx(0.04)


# -- 7. finrpt's Dataer -----------------------------------------------------------------------------
def make_host(cfg):
    class FinrptDataer:  # finrpt's shape: it defines the method itself, calling Yahoo
        finrpt_config = cfg

        def get_finacncials_yf(self, stock_code, end_date, start_date=None):
            raise RuntimeError("finrpt's own yfinance path ran")

        def get_finacncials_massive(self, stock_code, end_date, start_date=None):
            raise RuntimeError("finrpt's own massive path ran")

    return FinrptDataer


def test_dataer_point_in_time_quotes_the_prices_of_the_reports_date(cfg, market):
    from finrpt_providers.dataer import install

    Host = install(make_host(cfg), point_in_time=True)
    assert Host.finrpt_point_in_time is True
    d = Host()
    # a report dated Saturday 2025-11-15 (end_date exclusive: its last session is 11-14), before the split
    fin = d.get_finacncials_yf("NVDA", "2025-11-15", "2025-11-03")
    sd, info = fin["stock_data"], fin["stock_info"]
    assert info["as_of"] == "2025-11-15" and info["provider"] == "massive_flatfiles"
    assert str(sd["date"].iloc[0]) == "2025-11-03" and str(sd["date"].iloc[-1]) == "2025-11-14"
    truth = market.truth("NVDA", "2025-11-03", BEFORE_SPLIT, "1d", "total", as_of="2025-11-15")
    np.testing.assert_allclose(sd["Close"], truth["close"], rtol=1e-9)
    np.testing.assert_allclose(sd["Close"], market.truth("NVDA", "2025-11-03", BEFORE_SPLIT, "1d", "raw")["close"],
                               rtol=1e-12)  # pre-split prices, as quoted then
    assert sd["Stock Splits"].sum() == 0
    assert info["benchmark"]["ticker"] == "I:SPX"  # the index: no corporate actions, the same as of any date
    np.testing.assert_allclose(fin["sp500_stock_data"]["close"],
                               market.truth("I:SPX", "2025-11-03", BEFORE_SPLIT, "1d", "total",
                                            as_of="2025-11-15")["close"], rtol=1e-9)
    # a dividend before the report: in the share basis of its prices (0.04 as declared, pre-split)
    Rest = install(make_host(cfg.merged({"FINRPT_PRICE_PROVIDERS": "massive_rest,yfinance"})), point_in_time=True)
    fin = Rest().get_finacncials_yf("NVDA", "2025-09-12", "2025-09-08")
    sd = fin["stock_data"]
    np.testing.assert_allclose(sd["Close"], market.truth("NVDA", "2025-09-08", "2025-09-11", "1d", "total",
                                                         as_of="2025-09-12")["close"], rtol=1e-9)
    assert sd.loc["2025-09-10", "Dividends"].item() == pytest.approx(0.04)
    # the split's ex-date as the report's date: as_of is that day, the split is known (ex-date <= as_of)
    fin = d.get_finacncials_yf("NVDA", "2025-11-17", "2025-11-10")
    assert fin["stock_info"]["as_of"] == "2025-11-17"
    np.testing.assert_allclose(fin["stock_data"]["Close"],
                               market.truth("NVDA", "2025-11-10", BEFORE_SPLIT, "1d", "total",
                                            as_of=NVDA_SPLIT)["close"], rtol=1e-9)
    assert fin["stock_data"]["Close"].iloc[-1] == pytest.approx(
        market.daily("NVDA").loc["2025-11-14", "close"].item() / 4, rel=1e-12)
    # Massive's method: split-adjusted as of the report's date
    fin = d.get_finacncials_massive("NVDA", "2025-11-15", "2025-11-10")
    np.testing.assert_allclose(fin["stock_data"]["Close"],
                               market.truth("NVDA", "2025-11-10", BEFORE_SPLIT, "1d", "raw")["close"], rtol=1e-12)
    assert fin["stock_info"]["as_of"] == "2025-11-15"


def test_dataer_point_in_time_benchmark_proxy_is_as_of_too(cfg, market):
    """Only the flat files (no index there): SPY answers for the S&P 500, total-adjusted as of the
    report's date as the stock is (its 2025-12-10 dividend, after the report, does not scale it)."""
    from finrpt_providers.dataer import install

    only_flat = cfg.merged({"FINRPT_PRICE_PROVIDERS": "massive_flatfiles", "FINRPT_ACTIONS_PROVIDERS": "massive_rest"})
    fin = install(make_host(only_flat), point_in_time=True)().get_finacncials_yf("NVDA", "2025-11-15", "2025-11-10")
    assert fin["stock_info"]["benchmark"]["proxy"] == "SPY"
    spy = market.truth("SPY", "2025-11-10", BEFORE_SPLIT, "1d", "total", as_of="2025-11-15")
    np.testing.assert_allclose(fin["sp500_stock_data"]["close"], spy["close"], rtol=1e-9)
    np.testing.assert_allclose(spy["close"], market.truth("SPY", "2025-11-10", BEFORE_SPLIT, "1d", "raw")["close"],
                               rtol=1e-12)  # nothing went ex between 11-10 and 11-15


def test_dataer_without_point_in_time_adjusts_with_todays_knowledge(cfg, market):
    from finrpt_providers.dataer import install

    Host = install(make_host(cfg), point_in_time=False)
    fin = Host().get_finacncials_yf("NVDA", "2025-11-15", "2025-11-10")
    assert "as_of" not in fin["stock_info"]
    truth = market.truth("NVDA", "2025-11-10", BEFORE_SPLIT, "1d", "total")
    np.testing.assert_allclose(fin["stock_data"]["Close"], truth["close"], rtol=1e-9)
    assert fin["stock_data"]["Close"].iloc[-1] < market.daily("NVDA").loc["2025-11-14", "close"].item() / 4
    with pytest.raises(TypeError, match="point_in_time must be True or False"):
        install(make_host(cfg), point_in_time="yes")


# -- 8. the chain stitching two providers as of a date ---------------------------------------------
@pytest.mark.parametrize("second", ["massive_rest", "yfinance"])
@pytest.mark.parametrize("case", ["trail after the split", "lead before the split", "trail from a dividend"])
def test_the_chain_stitches_two_sources_as_of_and_equals_the_truth(cfg, market, second, case):
    start, as_of, flat_span, other_span = {
        # the flat files end on 11-18: the next source answers 11-19..20, the split inside the flat part
        "trail after the split": ("2025-11-10", D(2025, 11, 20), ("2025-11-10", "2025-11-18"),
                                  ("2025-11-19", "2025-11-20")),
        # the flat files start on 11-03: the next source answers 10-27..31, before a split not yet known
        # (yfinance's split-adjusted bars get it undone)
        "lead before the split": ("2025-10-27", BEFORE_SPLIT, ("2025-11-03", "2025-11-14"),
                                  ("2025-10-27", "2025-10-31")),
        # NVDA's 12-10 dividend: in the next source's part, weighed against the flat files' close of 12-09
        "trail from a dividend": ("2025-12-01", D(2025, 12, 11), ("2025-12-01", "2025-12-09"),
                                  ("2025-12-10", "2025-12-11")),
    }[case]
    for adj in ("splits", "total"):
        df = fp.get_prices("NVDA", start, as_of, adjustment=adj, providers=["massive_flatfiles", second], config=cfg,
                           as_of=as_of)
        assert_truth(df, market.truth("NVDA", start, as_of, "1d", adj, as_of=as_of), VOLUME_ATOL.get(second, 0))
        spans = sorted((s["provider"], str(s["first"].date()), str(s["last"].date())) for s in df.attrs["sources"])
        assert spans == sorted([("massive_flatfiles", *flat_span), (second, *other_span)])
        assert df.attrs["as_of"] == as_of
    if case == "lead before the split":  # every session as quoted then: the raw closes
        np.testing.assert_allclose(df["close"], market.truth("NVDA", start, as_of, "1d", "raw")["close"],
                                   rtol=1e-9)


def test_the_default_chain_stitches_a_basket_as_of(cfg, market):
    tickers = ["NVDA", "RSPL", "AAPL"]
    b = fp.get_prices(tickers, "2025-10-27", BEFORE_SPLIT, adjustment="total", config=cfg, as_of=BEFORE_SPLIT)
    assert b.attrs["failed"] == {} and b.attrs["as_of"] == BEFORE_SPLIT
    for t in tickers:
        assert_truth(b.xs(t), market.truth(t, "2025-10-27", BEFORE_SPLIT, "1d", "total", as_of=BEFORE_SPLIT))
        assert set(b.attrs["provider"][t].split("+")) == {"massive_flatfiles", "massive_rest"}
