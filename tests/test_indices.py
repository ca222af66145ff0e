"""US indices (``I:SPX``; Yahoo's ``^GSPC``; ``i:spx``) at every door, against the synthetic
market's truth: Massive REST, yfinance, the chain (the flat files refuse them before any I/O),
baskets mixed with stocks, FINRPT_INDEX_PROXIES, report.relative_performance, the Dataer's
S&P 500 slot, the yf facade (next to the real yfinance over the fake Yahoo), OpenBB; and the
sandbox statements (annual = the sum of the quarters) that a trailing P/E reads. No network.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import warnings

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

import finrpt_providers as fp
from finrpt_providers import (
    AllProvidersFailed,
    ConfigurationError,
    NoData,
    PriceProvider,
    report,
)
from finrpt_providers import yf as ours
from finrpt_providers.config import Config
from finrpt_providers.dataer import Dataer
from finrpt_providers.providers.yfinance import (
    _session_by_base,
    _yfinance_scope,
    to_yahoo_symbol,
)
from finrpt_providers.query import CARET_INDICES, normalize_ticker
from finrpt_providers.testing import (
    FakeMassiveREST,
    FakeYahoo,
    SyntheticMarket,
    plugin_of,
    statements,
)
from tests.conftest import REST_KEY, chain_config, report_flatfiles

TODAY = "2026-07-01"
PRICES = ["open", "high", "low", "close"]
SPELLINGS = ["I:SPX", "^GSPC", "i:spx"]
#: interval -> a range (1h: the regular session, hourly bars from 09:30; 1wk: widened to weeks)
RANGES = {"1d": ("2026-03-02", "2026-03-13"), "1h": ("2026-06-22", "2026-06-26"), "1wk": ("2026-03-02", "2026-03-27")}
US_INDICES_REASON = "us_indices"


# -- fixtures and helpers -----------------------------------------------------------------
@pytest.fixture(scope="module")
def flatfiles(market):
    """Day files of 2026-03-02..2026-03-13 (and the sessions before later ex-dates: total)."""
    with report_flatfiles(market, dt.date(2026, 3, 2), dt.date(2026, 3, 13)) as ff:
        yield ff


@pytest.fixture
def base(rest, fake_yahoo, tmp_path):
    """Massive REST and yfinance over their fakes (no flat files); pick with ``providers=``."""
    return Config.load({"MASSIVE_API_KEY": REST_KEY, "MASSIVE_REST_BASE_URL": rest.url, "MASSIVE_REST_BACKOFF": "0.01",
                        "FINRPT_YFINANCE_BASE_URL": fake_yahoo.url, "FINRPT_YFINANCE_TIMEOUT": "5",
                        "FINRPT_PRICE_PROVIDERS": "massive_rest,yfinance", "FINRPT_PROVIDERS_TODAY": TODAY,
                        "FINRPT_PROVIDERS_CACHE_DIR": str(tmp_path)}, environ={})


@pytest.fixture
def full(flatfiles, rest, fake_yahoo, tmp_path):
    """Every built-in provider, the flat files first."""
    return chain_config(flatfiles, rest, fake_yahoo, tmp_path,
                        FINRPT_PRICE_PROVIDERS="massive_flatfiles,massive_rest,yfinance")


@pytest.fixture
def flat_only(full):
    """Prices from the flat files only (they hold no index); splits and dividends from REST."""
    return full.merged({"FINRPT_PRICE_PROVIDERS": "massive_flatfiles", "FINRPT_ACTIONS_PROVIDERS": "massive_rest"})


class StocksOnly(PriceProvider):
    """Daily bars of the market's stocks and funds, every adjustment; no index (NoData)."""

    name = "stocks_only"

    def __init__(self, market):
        self.market = market

    def fetch(self, query):
        if query.ticker.startswith("I:"):
            raise NoData(f"stocks_only has no index ({query.ticker})", provider=self.name)
        return self.market.truth(query.ticker, query.start, query.end, query.interval, query.adjustment)


class NoVolume(PriceProvider):
    """The truth with the volume column missing (NaN) for every ticker."""

    name = "no_volume"

    def __init__(self, market):
        self.market = market

    def fetch(self, query):
        df = self.market.truth(query.ticker, query.start, query.end, query.interval, query.adjustment)
        df["volume"] = np.nan
        return df


class RawOnly(PriceProvider):
    """As-traded daily bars only: any other adjustment needs corporate actions."""

    name = "raw_only"
    adjustments = frozenset({"raw"})

    def __init__(self, market):
        self.market = market

    def fetch(self, query):
        return self.market.truth(query.ticker, query.start, query.end, query.interval, "raw")


@pytest.fixture
def plugin_cfg(register_plugin, market, tmp_path):
    """cfg(*providers, **settings): the given plugin providers registered, in that order."""

    def make(*providers, **extra):
        register_plugin(plugin_of(*providers), name=f"indices-test-{id(providers)}")
        return Config.load({"FINRPT_PRICE_PROVIDERS": ",".join(p.name for p in providers),
                            "FINRPT_PROVIDERS_TODAY": TODAY, "FINRPT_PROVIDERS_CACHE_DIR": str(tmp_path), **extra},
                           environ={})

    return make


def assert_index_bars(df, market, start, end, interval, adjustment, ticker="I:SPX"):
    """Prices equal the truth (every adjustment of an index is the identity), no volume,
    no vwap, no trade count, under the canonical name."""
    truth = market.truth(ticker, start, end, interval, adjustment)
    assert len(df) and list(df.index) == list(truth.index)
    pdt.assert_frame_equal(df[PRICES], truth[PRICES], rtol=1e-12, atol=0, check_freq=False)
    raw = market.truth(ticker, start, end, interval, "raw")
    np.testing.assert_array_equal(df["close"].to_numpy(), raw["close"].to_numpy())  # identity
    assert df["volume"].isna().all(), "an index has no volume: NaN, never 0"
    assert df["vwap"].isna().all() and df["transactions"].isna().all()
    assert df.attrs["ticker"] == ticker and df.attrs["interval"] == interval and df.attrs["adjustment"] == adjustment


def real(fake_yahoo, fn):
    """A call on the real yfinance, over the fake Yahoo."""
    with _yfinance_scope(fake_yahoo.url, 5.0) as yf:
        return fn(yf, _session_by_base[(fake_yahoo.url, 5.0)])


def actions_requests(rest):
    return [r for r in rest.requests if "split" in r.path or "dividend" in r.path]


# -- 0. spellings ---------------------------------------------------------------------------
def test_spellings_map_to_the_canonical_index():
    assert normalize_ticker("^GSPC") == normalize_ticker("^gspc") == normalize_ticker("i:spx") == "I:SPX"
    assert normalize_ticker("^SPX") == "I:SPX" and normalize_ticker("^NDX") == "I:NDX"
    assert normalize_ticker("^IXIC") == "I:COMP" and normalize_ticker("^DJI") == "I:DJI"
    assert normalize_ticker("^FOO") == "I:FOO"  # an unknown caret index: Massive's spelling of it
    assert CARET_INDICES["^GSPC"] == "I:SPX"
    # and back to Yahoo's for the yfinance provider
    assert to_yahoo_symbol("I:SPX") == "^GSPC" and to_yahoo_symbol("I:COMP") == "^IXIC"
    assert to_yahoo_symbol("I:FOO") == "^FOO"
    with pytest.raises(fp.InvalidQuery, match="I:SPX"):
        normalize_ticker("I:")


def test_the_sandbox_index_is_its_etf_times_ten(market):
    spx, spy = market.truth("I:SPX", "2026-03-02", "2026-03-13"), market.truth("SPY", "2026-03-02", "2026-03-13", "1d",
                                                                                 "raw")
    assert market.knows("I:SPX") and market.knows("I:NDX") and "I:SPX" not in market.tickers
    assert set(SyntheticMarket.INDICES) == {"I:SPX", "I:NDX"}
    np.testing.assert_allclose(spx["close"], spy["close"] * 10, rtol=1e-9)
    assert spx["volume"].isna().all() and market.splits("I:SPX").empty and market.dividends("I:SPX").empty


# -- 1. every door, every interval, every adjustment --------------------------------------
@pytest.mark.parametrize("adjustment", ["raw", "splits", "total"])
@pytest.mark.parametrize("interval", ["1d", "1h", "1wk"])
@pytest.mark.parametrize("spelling", SPELLINGS)
@pytest.mark.parametrize("door", ["massive_rest", "yfinance"])
def test_one_provider_serves_the_index(base, market, rest, fake_yahoo, door, spelling, interval, adjustment):
    start, end = RANGES[interval]
    df = fp.get_prices(spelling, start, end, interval=interval, adjustment=adjustment, providers=[door], config=base)
    assert_index_bars(df, market, start, end, interval, adjustment)
    assert df.attrs["provider"] == door and df.attrs["actions"] == ""
    assert actions_requests(rest) == []  # an index has no corporate actions: nobody is asked
    if door == "massive_rest":
        paths = {r.path for r in rest.aggregate_requests()}
        assert paths and all(p.startswith("/v2/aggs/ticker/I:SPX/") for p in paths)
    else:
        charts = {r.path for r in fake_yahoo.chart_requests()}
        assert charts == {"/v8/finance/chart/%5EGSPC"}


@pytest.mark.parametrize("adjustment", ["raw", "splits", "total"])
@pytest.mark.parametrize("interval", ["1d", "1h", "1wk"])
@pytest.mark.parametrize("spelling", SPELLINGS)
def test_the_chain_skips_the_flat_files_and_rest_answers(full, flatfiles, market, rest, spelling, interval,
                                                         adjustment):
    start, end = RANGES[interval]
    s3_before = len(flatfiles.requests)
    df = fp.get_prices(spelling, start, end, interval=interval, adjustment=adjustment, config=full)
    assert_index_bars(df, market, start, end, interval, adjustment)
    assert df.attrs["provider"] == "massive_rest" and "proxy" not in df.attrs
    first, second = df.attrs["attempts"][:2]
    assert first["provider"] == "massive_flatfiles" and first["outcome"] == "skipped"
    assert US_INDICES_REASON in first["detail"] and "massive_rest or yfinance" in first["detail"]
    assert second["provider"] == "massive_rest" and second["outcome"] == "ok"
    assert len(flatfiles.requests) == s3_before  # refused before any I/O
    assert actions_requests(rest) == []


def test_the_chain_falls_back_to_yfinance_for_the_index(full, market, rest):
    rest.entitled = set()  # a plan without aggregates: REST answers NotEntitled
    df = fp.get_prices("^GSPC", "2026-03-02", "2026-03-13", adjustment="total", config=full)
    assert_index_bars(df, market, "2026-03-02", "2026-03-13", "1d", "total")
    assert [(a["provider"], a["outcome"]) for a in df.attrs["attempts"]] == [
        ("massive_flatfiles", "skipped"), ("massive_rest", "failed"), ("yfinance", "ok")]
    assert df.attrs["provider"] == "yfinance"


def test_the_extended_session_of_an_index_is_its_regular_session(base, market):
    # an index computes 09:30-16:00 only: extended_hours=True has nothing before or after
    for door in ("massive_rest", "yfinance"):
        df = fp.get_prices("I:SPX", "2026-06-26", "2026-06-26", interval="1m", providers=[door], config=base,
                           extended_hours=True)
        assert len(df) == 390 and str(df.index[0].time()) == "09:30:00" and str(df.index[-1].time()) == "15:59:00"
        pdt.assert_frame_equal(df[PRICES], market.truth("I:SPX", "2026-06-26", "2026-06-26", "1m")[PRICES],
                               rtol=1e-12, check_freq=False)


def test_an_unknown_index_fails_naming_it(base):
    with pytest.raises(AllProvidersFailed, match=r"I:FOO.*massive_rest.*NoData.*yfinance.*\^FOO"):
        fp.get_prices("^FOO", "2026-03-02", "2026-03-06", config=base)


def test_an_index_needs_no_corporate_actions_source(plugin_cfg, market):
    cfg = plugin_cfg(RawOnly(market), FINRPT_ACTIONS_PROVIDERS="")
    for adjustment in ("raw", "splits", "total"):  # every adjustment of an index: the identity
        df = fp.get_prices("I:SPX", "2026-03-02", "2026-03-13", adjustment=adjustment, config=cfg)
        assert_index_bars(df, market, "2026-03-02", "2026-03-13", "1d", adjustment)
        assert df.attrs["provider"] == "raw_only" and df.attrs["actions"] == ""
    with pytest.raises(AllProvidersFailed, match="FINRPT_ACTIONS_PROVIDERS is empty"):  # a stock does need one
        fp.get_prices("AAPL", "2026-03-02", "2026-03-13", adjustment="total", config=cfg)


# -- 1b. the yf facade, next to the real yfinance over the fake Yahoo ------------------------
@pytest.fixture
def ycfg(base):
    return base.merged({"FINRPT_PRICE_PROVIDERS": "yfinance", "FINRPT_ACTIONS_PROVIDERS": "yfinance"})


@pytest.mark.parametrize("source", ["yfinance", "massive_rest"])
@pytest.mark.parametrize("kw", [{"start": "2026-03-02", "end": "2026-03-14"},
                                {"start": "2026-03-02", "end": "2026-03-14", "auto_adjust": False},
                                {"start": "2026-06-22", "end": "2026-06-27", "interval": "1h"}])
def test_facade_history_of_gspc_has_yfinances_prices(base, fake_yahoo, market, source, kw):
    want = real(fake_yahoo, lambda yf, _s: yf.Ticker("^GSPC").history(**kw))
    cfg = base.merged({"FINRPT_PRICE_PROVIDERS": source, "FINRPT_ACTIONS_PROVIDERS": "yfinance"})
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no NaN cast to int64
        got = ours.Ticker("^GSPC", config=cfg).history(**kw)
    assert got.attrs["provider"] == source
    assert list(got.columns) == list(want.columns) and got.index.name == want.index.name
    assert list(got.index) == list(want.index) and got.index.dtype == want.index.dtype
    price_cols = [c for c in want.columns if c in ("Open", "High", "Low", "Close", "Adj Close")]
    pdt.assert_frame_equal(got[price_cols], want[price_cols], rtol=1e-9, check_freq=False)
    interval = "1h" if kw.get("interval") == "1h" else "1d"
    truth = market.truth("I:SPX", kw["start"], (pd.Timestamp(kw["end"]) - pd.Timedelta(days=1)).date(), interval)
    np.testing.assert_allclose(got["Close"], truth["close"], rtol=1e-12)
    # no corporate actions: zero columns, as Yahoo's
    assert (got["Dividends"] == 0).all() and (got["Stock Splits"] == 0).all()
    assert (want["Dividends"] == 0).all() and (want["Stock Splits"] == 0).all()
    # Volume: yfinance's 0 for an index (int64), as the real yfinance gives it
    assert want["Volume"].dtype == "int64" and (want["Volume"] == 0).all()
    assert got["Volume"].dtype == "int64" and (got["Volume"] == 0).all()


def test_facade_volume_of_an_index_is_no_garbage(ycfg, fake_yahoo):
    want = real(fake_yahoo, lambda yf, _s: yf.Ticker("^GSPC").history(start="2026-03-02", end="2026-03-14"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = ours.Ticker("^GSPC", config=ycfg)
        got = t.history(start="2026-03-02", end="2026-03-14")
        last_volume = t.fast_info.last_volume
    assert (got["Volume"] >= 0).all() and last_volume >= 0, (got["Volume"].tolist(), last_volume)
    pdt.assert_series_equal(got["Volume"], want["Volume"], check_freq=False)  # yfinance's 0
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]


def test_facade_download_of_gspc_has_its_prices(ycfg, market):
    got = ours.download(["^GSPC", "AAPL"], start="2026-03-02", end="2026-03-14", config=ycfg)
    truth = market.truth("I:SPX", "2026-03-02", "2026-03-13", "1d", "total")
    np.testing.assert_allclose(got[("Close", "^GSPC")].to_numpy(), truth["close"].to_numpy(), rtol=1e-12)


# -- 2. baskets mixing an index and stocks --------------------------------------------------
@pytest.mark.parametrize("door", ["massive_rest", "yfinance"])
@pytest.mark.parametrize("order", [["AAPL", "^GSPC"], ["I:SPX", "AAPL"]])
def test_a_basket_adjusts_the_stock_and_leaves_the_index(base, market, rest, door, order):
    start, end = "2026-01-26", "2026-03-06"  # AAPL's dividend goes ex on 2026-02-10
    long = fp.get_prices(order, start, end, adjustment="total", providers=[door], config=base)
    assert long.attrs["tickers"] == ["AAPL", "I:SPX"] and long.attrs["failed"] == {}
    assert long.attrs["provider"] == {"AAPL": door, "I:SPX": door}
    aapl, spx = long.xs("AAPL"), long.xs("I:SPX")
    pdt.assert_frame_equal(aapl[PRICES], market.truth("AAPL", start, end, "1d", "total")[PRICES], rtol=1e-12,
                           check_freq=False)
    raw = market.truth("AAPL", start, end, "1d", "raw")
    before = aapl.index < pd.Timestamp("2026-02-10", tz="America/New_York")
    ratio = aapl["close"] / raw["close"]  # the dividends adjust AAPL (this one and May's) ...
    assert (ratio < 1).all() and ratio[before].max() < ratio[~before].min()
    assert aapl["volume"].notna().all()
    spx.attrs = {"ticker": "I:SPX", "interval": "1d", "adjustment": "total"}
    assert_index_bars(spx, market, start, end, "1d", "total")  # ... and leaves the index as it is
    asked = {r.query.get("ticker") for r in actions_requests(rest)}
    assert "I:SPX" not in asked and "^GSPC" not in asked


def test_a_stock_with_missing_volume_still_fails(plugin_cfg, market):
    cfg = plugin_cfg(NoVolume(market))
    with pytest.raises(AllProvidersFailed, match=r"AAPL.*DataIntegrityError.*missing, infinite or negative volume"):
        fp.get_prices("AAPL", "2026-03-02", "2026-03-06", adjustment="raw", config=cfg)
    # the same source, the same missing volume: the index passes, the stock is failed, named
    long = fp.get_prices(["AAPL", "I:SPX"], "2026-03-02", "2026-03-06", adjustment="raw", config=cfg,
                         errors="omit")
    assert long.attrs["tickers"] == ["I:SPX"] and set(long.attrs["failed"]) == {"AAPL"}
    assert "volume" in long.attrs["failed"]["AAPL"]
    spx = long.xs("I:SPX")
    spx.attrs = {"ticker": "I:SPX", "interval": "1d", "adjustment": "raw"}
    assert_index_bars(spx, market, "2026-03-02", "2026-03-06", "1d", "raw")


@pytest.mark.parametrize("order", [["I:SPX", "AAPL"], ["AAPL", "I:SPX"]])
def test_a_basket_plans_each_ticker_with_the_flat_files(full, order):
    long = fp.get_prices(order, "2026-03-02", "2026-03-13", adjustment="total", config=full)
    attempts = long.attrs["attempts"]
    assert attempts["AAPL"][0]["provider"] == "massive_flatfiles" and attempts["AAPL"][0]["outcome"] == "ok"
    assert long.attrs["provider"] == {"AAPL": "massive_flatfiles", "I:SPX": "massive_rest"}
    assert attempts["I:SPX"][0]["outcome"] == "skipped" and US_INDICES_REASON in attempts["I:SPX"][0]["detail"]


def test_a_basket_with_the_index_first_answers_the_stock_from_the_flat_files(flat_only, market):
    cfg = flat_only.merged({"FINRPT_INDEX_PROXIES": "I:SPX=SPY"})
    long = fp.get_prices(["I:SPX", "AAPL"], "2026-03-02", "2026-03-13", adjustment="splits", config=cfg)
    assert long.attrs["failed"] == {} and long.attrs["proxy"] == {"I:SPX": "SPY"}


# -- 3. FINRPT_INDEX_PROXIES ---------------------------------------------------------------
def test_without_a_proxy_an_index_nobody_serves_fails(flat_only, plugin_cfg, market):
    with pytest.raises(AllProvidersFailed, match=r"I:SPX.*massive_flatfiles skipped.*us_indices") as info:
        fp.get_prices("^GSPC", "2026-03-02", "2026-03-13", config=flat_only)
    assert [(a["provider"], a["outcome"]) for a in info.value.attempts] == [("massive_flatfiles", "skipped")]
    cfg = plugin_cfg(StocksOnly(market))
    with pytest.raises(AllProvidersFailed, match=r"I:SPX.*stocks_only has no index"):
        fp.get_prices("I:SPX", "2026-03-02", "2026-03-13", config=cfg)
    assert fp.get_prices("SPY", "2026-03-02", "2026-03-13", config=cfg).attrs["provider"] == "stocks_only"


@pytest.mark.parametrize("setting", ["I:SPX=SPY", "^GSPC=spy", " i:spx = SPY , I:NDX=SPY"])
@pytest.mark.parametrize("adjustment", ["splits", "total"])
def test_a_proxy_answers_with_the_funds_bars_named_and_warned(flat_only, market, caplog, setting, adjustment):
    cfg = flat_only.merged({"FINRPT_INDEX_PROXIES": setting})
    assert cfg.value("FINRPT_INDEX_PROXIES")["I:SPX"] == "SPY"
    with caplog.at_level(logging.WARNING, logger="finrpt_providers"):
        df = fp.get_prices("^GSPC", "2026-03-02", "2026-03-13", adjustment=adjustment, config=cfg)
    spy = market.truth("SPY", "2026-03-02", "2026-03-13", "1d", adjustment)
    # SPY's bars (its volume too), not the index's (the day files carry no vwap)
    pdt.assert_frame_equal(df.drop(columns="vwap"), spy.drop(columns="vwap"), rtol=1e-12, check_freq=False)
    assert df.attrs["proxy"] == "SPY" and df.attrs["ticker"] == "I:SPX" and df.attrs["provider"] == "massive_flatfiles"
    assert df.attrs["actions"] == "massive_rest"  # the fund's dividends adjust it (total)
    first, second = df.attrs["attempts"]
    assert first["outcome"] == "skipped" and US_INDICES_REASON in first["detail"]
    assert second["outcome"] == "ok" and second["detail"].startswith("SPY as the proxy of I:SPX (FINRPT_INDEX_PROXIES)")
    warned = [r for r in caplog.records if r.levelno == logging.WARNING and "FINRPT_INDEX_PROXIES" in r.getMessage()]
    assert len(warned) == 1 and "I:SPX" in warned[0].getMessage() and "SPY" in warned[0].getMessage()
    # and its weekly bars say so too
    with caplog.at_level(logging.WARNING, logger="finrpt_providers"):
        wk = fp.get_prices("I:SPX", "2026-03-02", "2026-03-13", interval="1wk", adjustment=adjustment, config=cfg)
    assert wk.attrs["proxy"] == "SPY"
    pdt.assert_frame_equal(wk[PRICES], market.truth("SPY", "2026-03-02", "2026-03-13", "1wk", adjustment)[PRICES],
                           rtol=1e-12, check_freq=False)


def test_a_proxy_is_not_used_when_a_provider_serves_the_index(full, market, caplog):
    cfg = full.merged({"FINRPT_INDEX_PROXIES": "I:SPX=SPY"})
    with caplog.at_level(logging.WARNING, logger="finrpt_providers"):
        df = fp.get_prices("I:SPX", "2026-03-02", "2026-03-13", config=cfg)
    assert_index_bars(df, market, "2026-03-02", "2026-03-13", "1d", "splits")
    assert "proxy" not in df.attrs and df.attrs["provider"] == "massive_rest"
    assert not [r for r in caplog.records if "FINRPT_INDEX_PROXIES" in r.getMessage()]


def test_a_basket_names_its_proxies_by_index(plugin_cfg, market, caplog):
    cfg = plugin_cfg(StocksOnly(market), FINRPT_INDEX_PROXIES="I:SPX=SPY")
    with caplog.at_level(logging.WARNING, logger="finrpt_providers"):
        long = fp.get_prices(["AAPL", "^GSPC", "^NDX"], "2026-03-02", "2026-03-13", adjustment="total", config=cfg,
                             errors="omit")
    assert long.attrs["proxy"] == {"I:SPX": "SPY"}  # a dict by index in a basket
    assert long.attrs["tickers"] == ["AAPL", "I:SPX"] and set(long.attrs["failed"]) == {"I:NDX"}  # no proxy named
    pdt.assert_frame_equal(long.xs("I:SPX"), market.truth("SPY", "2026-03-02", "2026-03-13", "1d", "total"),
                           rtol=1e-12, check_freq=False)
    pdt.assert_frame_equal(long.xs("AAPL"), market.truth("AAPL", "2026-03-02", "2026-03-13", "1d", "total"),
                           rtol=1e-12, check_freq=False)
    assert sum("FINRPT_INDEX_PROXIES" in r.getMessage() for r in caplog.records) == 1
    both = cfg.merged({"FINRPT_INDEX_PROXIES": "I:SPX=SPY,^NDX=SPY"})
    long = fp.get_prices(["I:NDX", "I:SPX"], "2026-03-02", "2026-03-13", config=both)
    assert long.attrs["proxy"] == {"I:NDX": "SPY", "I:SPX": "SPY"} and long.attrs["failed"] == {}
    with pytest.raises(AllProvidersFailed, match="I:NDX"):
        fp.get_prices(["AAPL", "I:NDX"], "2026-03-02", "2026-03-13", config=cfg)


@pytest.mark.parametrize("bad", ["SPY=I:SPX", "I:SPX", "I:SPX=^GSPC", "I:SPX=", "=SPY", "I:SPX=SPY,QQQ",
                                 "I:SPX=600519.SS"])
def test_bad_proxy_settings_are_refused_naming_the_setting(bad, tmp_path):
    with pytest.raises(ConfigurationError, match=r"FINRPT_INDEX_PROXIES \(\[chain\] index_proxies\).*INDEX=TICKER"):
        Config.load({"FINRPT_INDEX_PROXIES": bad}, environ={})
    with pytest.raises(ConfigurationError, match="FINRPT_INDEX_PROXIES"):  # from the environment too
        Config.load(environ={"FINRPT_INDEX_PROXIES": bad})


def test_proxies_from_toml(tmp_path, plugin_cfg, market):
    text = tmp_path / "a.toml"
    text.write_text('[chain]\nindex_proxies = "I:SPX=SPY, ^NDX=SPY"\n')
    assert Config.load(toml_path=text, environ={}).value("FINRPT_INDEX_PROXIES") == {"I:SPX": "SPY", "I:NDX": "SPY"}
    listed = tmp_path / "b.toml"
    listed.write_text('[chain]\nindex_proxies = ["I:SPX=SPY"]\n')
    assert Config.load(toml_path=listed, environ={}).value("FINRPT_INDEX_PROXIES") == {"I:SPX": "SPY"}
    bad = tmp_path / "c.toml"
    bad.write_text('[chain]\nindex_proxies = "SPY=I:SPX"\n')
    with pytest.raises(ConfigurationError, match=r"FINRPT_INDEX_PROXIES \(\[chain\] index_proxies\)"):
        Config.load(toml_path=bad, environ={})
    assert Config.load(environ={}).value("FINRPT_INDEX_PROXIES") == {}  # off by default
    # a finrpt_providers.toml in the working directory, used by a fetch
    (tmp_path / "finrpt_providers.toml").write_text('[chain]\nindex_proxies = "I:SPX=SPY"\n')
    cfg = plugin_cfg(StocksOnly(market))  # loaded in tmp_path (the tests' cwd)
    assert cfg.source("FINRPT_INDEX_PROXIES").startswith("toml")
    df = fp.get_prices("I:SPX", "2026-03-02", "2026-03-06", config=cfg)
    assert df.attrs["proxy"] == "SPY"


# -- 4. report.relative_performance --------------------------------------------------------
def _expected_relative(market, ticker, bench, start, end):
    a = market.truth(ticker, start, end, "1d", "total")["close"]
    b = market.truth(bench, start, end, "1d", "total")["close"]
    both = a.index.intersection(b.index)
    return a.loc[both], b.loc[both]


@pytest.mark.parametrize("benchmark, canonical", [("I:SPX", "I:SPX"), ("^GSPC", "I:SPX"), ("SPY", "SPY")])
def test_relative_performance_against_the_truth(base, market, benchmark, canonical):
    start, end = "2025-11-03", "2025-12-19"  # NVDA's 4-for-1 split and a dividend inside
    got = report.relative_performance("NVDA", benchmark, start, end, config=base)
    assert json.loads(json.dumps(got, allow_nan=False)) == got  # JSON-safe
    a, b = _expected_relative(market, "NVDA", canonical, start, end)
    assert got["ticker"] == "NVDA" and got["benchmark"] == canonical and got["benchmark_proxy"] is None
    assert got["providers"] == {"ticker": "massive_rest", "benchmark": "massive_rest"}
    s = got["series"]
    assert [r["date"] for r in s] == [str(ts.date()) for ts in a.index] and len(s) == 34
    assert s[0]["date"] == "2025-11-03" and s[0]["rebased"] == 100.0 and s[0]["benchmark_rebased"] == 100.0
    assert [r["close"] for r in s] == [round(x, 2) for x in a]
    assert [r["benchmark_close"] for r in s] == [round(x, 2) for x in b]
    assert [r["rebased"] for r in s] == [round(x / a.iloc[0] * 100, 2) for x in a]
    assert [r["benchmark_rebased"] for r in s] == [round(x / b.iloc[0] * 100, 2) for x in b]
    ra, rb = (a.iloc[-1] / a.iloc[0] - 1) * 100, (b.iloc[-1] / b.iloc[0] - 1) * 100
    assert got["return"] == round(ra, 2) and got["benchmark_return"] == round(rb, 2)
    assert got["excess_return"] == round(ra - rb, 2)
    assert got["return"] == -11.51  # the synthetic NVDA over those weeks, split and dividend adjusted
    if canonical == "I:SPX":
        assert got["benchmark_return"] == 2.08 and s[0]["benchmark_close"] == 7026.4


def test_relative_performance_rebases_on_the_first_common_session(base, market):
    # NEWC lists on 2026-03-16: both series start there, at 100
    got = report.relative_performance("NEWC", "^GSPC", "2026-03-02", "2026-03-31", config=base)
    s = got["series"]
    assert s[0]["date"] == "2026-03-16" and s[0]["rebased"] == s[0]["benchmark_rebased"] == 100.0
    _a, b = _expected_relative(market, "NEWC", "I:SPX", "2026-03-16", "2026-03-31")
    assert [r["benchmark_rebased"] for r in s] == [round(x / b.iloc[0] * 100, 2) for x in b]
    assert got["benchmark_return"] == round((b.iloc[-1] / b.iloc[0] - 1) * 100, 2)
    json.dumps(got, allow_nan=False)


def test_relative_performance_names_the_proxy(plugin_cfg, market):
    cfg = plugin_cfg(StocksOnly(market), FINRPT_INDEX_PROXIES="I:SPX=SPY")
    got = report.relative_performance("NVDA", "I:SPX", "2025-11-03", "2025-12-19", config=cfg)
    assert got["benchmark"] == "I:SPX" and got["benchmark_proxy"] == "SPY"
    _a, b = _expected_relative(market, "NVDA", "SPY", "2025-11-03", "2025-12-19")
    assert [r["benchmark_close"] for r in got["series"]] == [round(x, 2) for x in b]
    assert got["benchmark_return"] == round((b.iloc[-1] / b.iloc[0] - 1) * 100, 2)
    assert json.loads(json.dumps(got, allow_nan=False)) == got
    with pytest.raises(AllProvidersFailed, match="I:SPX"):  # without the proxy: no benchmark
        report.relative_performance("NVDA", "I:SPX", "2025-11-03", "2025-12-19",
                                    config=cfg.merged({"FINRPT_INDEX_PROXIES": ""}))


def test_performance_of_the_index_is_rebased_and_json_safe(base, market):
    rows = report.performance("^GSPC", "2026-06-22", "2026-06-27", config=base)
    truth = market.truth("I:SPX", "2026-06-22", "2026-06-26", "1d", "total")["close"]
    assert [r["date"] for r in rows] == [str(ts.date()) for ts in truth.index]
    assert [r["close"] for r in rows] == [round(x, 2) for x in truth]
    assert rows[0]["rebased"] == 100.0 and rows[-1]["rebased"] == round(truth.iloc[-1] / truth.iloc[0] * 100, 2)
    assert json.loads(json.dumps(rows, allow_nan=False)) == rows


def test_key_data_of_the_index_has_no_average_volume(base, market):
    got = report.key_data("^GSPC", "2026-07-01", config=base)
    truth = market.truth("I:SPX", "2025-06-30", "2026-06-30", "1d", "splits")
    assert got["symbol"] == "I:SPX" and got["last_close"] == round(truth["close"].iloc[-1], 2)
    assert got["avg_volume_6m"] is None
    json.dumps(got, allow_nan=False)


def test_cli_fetch_of_gspc_says_null_volume(base, market, monkeypatch, capsys):
    from finrpt_providers import cli

    for k in ("MASSIVE_API_KEY", "MASSIVE_REST_BASE_URL", "FINRPT_PROVIDERS_TODAY", "FINRPT_PROVIDERS_CACHE_DIR"):
        monkeypatch.setenv(k, base.get(k))
    monkeypatch.setenv("FINRPT_PRICE_PROVIDERS", "massive_rest")
    code = cli.main(["fetch", "^GSPC", "--start", "2026-06-22", "--end", "2026-06-26", "--format", "json",
                     "--adjustment", "total"])
    body = json.loads(capsys.readouterr().out)
    assert code == 0 and body["ticker"] == "I:SPX" and body["provider"] == "massive_rest"
    truth = market.truth("I:SPX", "2026-06-22", "2026-06-26", "1d", "total")
    assert [b["close"] for b in body["bars"]] == truth["close"].tolist()
    assert all(b["volume"] is None and b["vwap"] is None and b["transactions"] is None for b in body["bars"])


# -- 5. the Dataer's S&P 500 slot -------------------------------------------------------------
@pytest.mark.parametrize("prices, provider", [("massive_flatfiles,massive_rest,yfinance", "massive_rest"),
                                              ("yfinance", "yfinance")])
def test_dataer_benchmark_is_the_index_where_served(full, market, prices, provider):
    fin = Dataer(full.merged({"FINRPT_PRICE_PROVIDERS": prices})).get_finacncials_yf("NVDA", "2026-03-14",
                                                                                      "2026-03-02")
    assert fin["stock_info"]["benchmark"] == {"ticker": "I:SPX", "proxy": None, "provider": provider}
    truth = market.truth("I:SPX", "2026-03-02", "2026-03-13", "1d", "total")
    for slot in ("sp500_stock_data", "csi300_stock_data"):
        bench = fin[slot]
        assert [str(d) for d in bench["date"]] == [str(ts.date()) for ts in truth.index]
        np.testing.assert_allclose(bench["close"], truth["close"], rtol=1e-12)
        assert bench["volume"].isna().all()
    np.testing.assert_allclose(fin["stock_data"]["Close"],
                               market.truth("NVDA", "2026-03-02", "2026-03-13", "1d", "total")["close"], rtol=1e-12)


def test_dataer_benchmark_is_spy_named_as_proxy_where_nobody_serves_the_index(flat_only, market, caplog):
    with caplog.at_level(logging.WARNING, logger="finrpt_providers"):
        fin = Dataer(flat_only).get_finacncials_yf("NVDA", "2026-03-14", "2026-03-02")
    assert fin["stock_info"]["provider"] == "massive_flatfiles"
    assert fin["stock_info"]["benchmark"] == {"ticker": "I:SPX", "proxy": "SPY", "provider": "massive_flatfiles"}
    bench = fin["sp500_stock_data"]
    spy = market.truth("SPY", "2026-03-02", "2026-03-13", "1d", "total")
    np.testing.assert_allclose(bench["close"], spy["close"], rtol=1e-12)
    np.testing.assert_allclose(bench["volume"], spy["volume"], rtol=1e-12)
    assert any("SPY" in r.getMessage() and "FINRPT_INDEX_PROXIES" in r.getMessage() for r in caplog.records)
    # the split-adjusted method too, and the user's config is left as it was (no proxy of its own)
    fin = Dataer(flat_only).get_finacncials_massive("NVDA", "2026-03-14", "2026-03-02")
    assert fin["stock_info"]["benchmark"]["proxy"] == "SPY"
    np.testing.assert_allclose(fin["sp500_stock_data"]["close"],
                               market.truth("SPY", "2026-03-02", "2026-03-13", "1d", "splits")["close"], rtol=1e-12)
    assert flat_only.value("FINRPT_INDEX_PROXIES") == {}
    with pytest.raises(AllProvidersFailed):
        fp.get_prices("I:SPX", "2026-03-02", "2026-03-13", config=flat_only)


# -- 6. statements: annual = the sum of the quarters; a sane trailing P/E ------------------------
QUARTERS_OF_FY2025 = ("2024-12-31", "2025-03-31", "2025-06-30", "2025-09-30")
#: facade row -> (fake Massive's item, fake Yahoo's item)
ROWS = {"Total Revenue": ("revenues", "TotalRevenue"), "Operating Income": ("operating_income_loss", "OperatingIncome"),
        "Net Income": ("net_income_loss", "NetIncome"), "Diluted EPS": ("diluted_earnings_per_share", "DilutedEPS")}


def _bases(source, market, ticker):
    """facade row -> (the fake's item name, its base value) for ``ticker``."""
    if source == "massive_rest":
        items = FakeMassiveREST.FINANCIALS["income_statement"]
        return {row: (m, items[m]) for row, (m, _y) in ROWS.items()}
    scale = 1 + list(market.specs).index(ticker) * 0.13  # the fake Yahoo's per-ticker scale
    return {row: (y, FakeYahoo.STATEMENT_ITEMS[y] * scale) for row, (_m, y) in ROWS.items()}


@pytest.mark.parametrize("ticker", ["AAPL", "NVDA"])
@pytest.mark.parametrize("source", ["massive_rest", "yfinance"])
def test_statements_are_consistent_and_a_trailing_pe_is_sane(base, market, source, ticker):
    cfg = base.merged({"FINRPT_STATEMENTS_PROVIDERS": source})
    t = ours.Ticker(ticker, config=cfg)
    annual, quarterly = t.financials, t.quarterly_financials
    pdt.assert_frame_equal(t.income_stmt, annual)
    fy = pd.Timestamp("2025-09-30")
    bases = _bases(source, market, ticker)
    for row, (item, value) in bases.items():
        # the quarterly values served are statements.quarter's
        for q in statements.QUARTERS:
            assert quarterly.loc[row, pd.Timestamp(q)] == statements.quarter(item, value, q), (row, q)
        # the fiscal year ending 2025-09-30 is the sum of its four quarters (two of them not served)
        digits = 2 if row == "Diluted EPS" else 0
        want = round(sum(statements.quarter(item, value, q) for q in QUARTERS_OF_FY2025), digits)
        assert annual.loc[row, fy] == pytest.approx(want, abs=10 ** -digits / 2), row
    eps = annual.loc["Diluted EPS", fy]
    if ticker == "AAPL" or source == "massive_rest":
        assert eps == 6.22 and [statements.quarter("DilutedEPS", 1.57, q) for q in QUARTERS_OF_FY2025] == [
            1.51, 1.54, 1.57, 1.6]
    # the balance sheet's year is its last quarter's (a stock, not a flow)
    assert t.balance_sheet.loc["Total Assets", fy] == t.quarterly_balance_sheet.loc["Total Assets", fy]
    # a trailing P/E from the last close (as traded) and the annual EPS: no 4x error
    last = market.sessions[-1]
    close = fp.get_prices(ticker, last, last, adjustment="raw", config=cfg)["close"].iloc[-1]
    assert close == market.truth(ticker, last, last, "1d", "raw")["close"].iloc[-1]
    pe = close / eps
    ttm = quarterly.loc["Diluted EPS"].sum()  # the four latest quarters served
    assert 5 < pe < 80, pe
    assert 0.85 < pe / (close / ttm) < 1.15  # the fiscal year and the trailing twelve months agree
    assert close / quarterly.loc["Diluted EPS", pd.Timestamp("2025-09-30")] / pe > 3.5  # a quarter's EPS would be 4x


def test_real_yfinance_reads_the_same_annual_eps(fake_yahoo):
    fin = real(fake_yahoo, lambda yf, _s: yf.Ticker("AAPL").financials)
    assert fin.loc["Diluted EPS", pd.Timestamp("2025-09-30")] == 6.22
    q = real(fake_yahoo, lambda yf, _s: yf.Ticker("AAPL").quarterly_financials)
    assert q.loc["Diluted EPS", pd.Timestamp("2025-09-30")] == 1.6


# -- 7. OpenBB ----------------------------------------------------------------------------------
@pytest.fixture
def openbb_env(rest, monkeypatch, tmp_path):
    """OpenBB's process: settings in the environment, the REST key as an OpenBB credential."""
    pytest.importorskip("openbb_core", reason="the OpenBB integration is installed from integrations/openbb")
    for k, v in {"FINRPT_PRICE_PROVIDERS": "massive_rest", "MASSIVE_REST_BASE_URL": rest.url,
                 "FINRPT_PROVIDERS_TODAY": TODAY, "FINRPT_PROVIDERS_CACHE_DIR": str(tmp_path),
                 "MASSIVE_REST_BACKOFF": "0.01"}.items():
        monkeypatch.setenv(k, v)
    return {"finrpt_massive_api_key": REST_KEY}


def test_openbb_fetcher_serves_gspc_without_volume(openbb_env, market):
    import asyncio

    from openbb_finrpt_providers.fetchers import (
        FinrptEquityHistoricalFetcher as Fetcher,
    )

    params = {"symbol": "^GSPC", "start_date": dt.date(2026, 3, 2), "end_date": dt.date(2026, 3, 13),
              "adjustment": "total"}
    Fetcher.test(params, openbb_env)  # OpenBB's own fetcher test
    got = asyncio.run(Fetcher.fetch_data(params, openbb_env))
    rows = got.result
    truth = market.truth("I:SPX", "2026-03-02", "2026-03-13", "1d", "total")
    assert [r.date for r in rows] == [ts.date() for ts in truth.index]
    assert [r.close for r in rows] == pytest.approx(truth["close"].tolist(), rel=1e-12)
    assert [r.open for r in rows] == pytest.approx(truth["open"].tolist(), rel=1e-12)
    assert all(r.volume is None or math.isnan(r.volume) for r in rows)  # no volume, never 0
    assert all(r.vwap is None and r.transactions is None for r in rows)
    assert got.metadata["provider"] == "massive_rest"
    assert json.loads(rows[0].model_dump_json())["volume"] is None  # OpenBB's JSON: null
    # in a basket with a stock: the index's rows under its canonical name
    basket = asyncio.run(Fetcher.fetch_data({**params, "symbol": "AAPL,^GSPC"}, openbb_env)).result
    spx = [r for r in basket if r.symbol == "I:SPX"]
    assert [r.close for r in spx] == pytest.approx(truth["close"].tolist(), rel=1e-12)
    assert all(r.volume is None or math.isnan(r.volume) for r in spx)
    assert all(r.volume > 0 for r in basket if r.symbol == "AAPL")
