"""The yfinance provider through the REAL yfinance code path against the fake Yahoo.

Nothing inside yfinance is patched: the provider's session sends every
``*.yahoo.com`` request to the fake on 127.0.0.1, so cookie, crumb, retries,
429 handling and parsing all run for real.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

import finrpt_providers as fp
from finrpt_providers import NoData, PriceQuery, ProviderUnavailable, RateLimited
from finrpt_providers.config import Config
from finrpt_providers.plugins import registry
from finrpt_providers.adjust import apply_factors, split_factor
from finrpt_providers.providers.yfinance import to_yahoo_symbol


def yahoo(config):
    return registry()["yfinance"].provider.configured(config)


def assert_matches_truth(df, truth, volume_atol):
    """Prices exactly (to float rounding); volumes as Yahoo has them: whole split-adjusted shares,
    so within half a share (times the split ratio when undone for raw)."""
    assert list(df.index) == list(truth.index)
    pdt.assert_frame_equal(df[["open", "high", "low", "close"]], truth[["open", "high", "low", "close"]],
                           rtol=1e-12, atol=0, check_freq=False)
    np.testing.assert_allclose(df["volume"], truth["volume"], rtol=0, atol=volume_atol + 1e-6)
    assert df["vwap"].isna().all() and df["transactions"].isna().all()


@pytest.mark.parametrize("adjustment", ["raw", "splits", "total"])
@pytest.mark.parametrize("ticker,start,end,why", [
    ("NVDA", "2025-11-03", "2025-12-19", "4-for-1 split on 2025-11-17 and a dividend on 2025-12-10"),
    ("RSPL", "2026-01-05", "2026-02-06", "1-for-3 reverse split on 2026-01-20"),
    ("AAPL", "2026-01-26", "2026-03-06", "dividend on 2026-02-10"),
    ("BRK.B", "2026-06-01", "2026-06-30", "share class with a dot"),
])
def test_daily_bars_equal_the_truth(yf_config, market, ticker, start, end, why, adjustment):
    df = fp.get_prices(ticker, start, end, adjustment=adjustment, providers=["yfinance"], config=yf_config)
    truth = market.truth(ticker, start, end, "1d", adjustment)
    # the 1-for-3 reverse split, undone for raw, turns half a share into one and a half
    assert_matches_truth(df, truth, volume_atol=1.5 if adjustment == "raw" and ticker == "RSPL" else 0.5)
    assert df.attrs["provider"] == "yfinance" and df.attrs["adjustment"] == adjustment


def test_adjustments_differ_where_they_should(yf_config, market):
    got = {a: fp.get_prices("NVDA", "2025-11-12", "2025-12-12", adjustment=a, providers=["yfinance"],
                            config=yf_config) for a in ("raw", "splits", "total")}
    before_split = pd.Timestamp("2025-11-14", tz="America/New_York")
    day_before_ex, ex = pd.Timestamp("2025-12-09", tz="America/New_York"), pd.Timestamp("2025-12-10", tz="America/New_York")
    assert got["raw"].loc[before_split, "close"] == pytest.approx(4 * got["splits"].loc[before_split, "close"])
    assert got["raw"].loc[before_split, "volume"] == pytest.approx(got["splits"].loc[before_split, "volume"] / 4, abs=1)
    assert got["total"].loc[before_split, "close"] < got["splits"].loc[before_split, "close"]  # dividend after
    # the 2025-12-10 dividend: Yahoo's rule, factor 1 - cash / close of the session before the ex-date
    ratio = (got["total"]["close"] / got["splits"]["close"])
    assert ratio[day_before_ex] / ratio[ex] == pytest.approx(1 - 0.01 / got["raw"].loc[day_before_ex, "close"], rel=1e-12)
    assert got["total"].loc[before_split, "volume"] == got["splits"].loc[before_split, "volume"]


def test_raw_looks_for_splits_after_the_range(yf_config, market, fake_yahoo):
    # The range ends before the split: raw must still undo it (Yahoo adjusts for it).
    df = fp.get_prices("NVDA", "2025-11-03", "2025-11-07", adjustment="raw", providers=["yfinance"], config=yf_config)
    assert_matches_truth(df, market.truth("NVDA", "2025-11-03", "2025-11-07", "1d", "raw"), 0.125)


@pytest.mark.parametrize("extended", [False, True])
@pytest.mark.parametrize("interval", ["1m", "5m", "15m", "30m", "1h"])
def test_intraday_bars_equal_the_truth(yf_config, market, fake_yahoo, interval, extended):
    start, end = ("2026-06-24", "2026-06-26") if interval == "1m" else ("2026-06-15", "2026-06-26")
    df = fp.get_prices("AAPL", start, end, interval=interval, adjustment="splits", providers=["yfinance"],
                       config=yf_config, extended_hours=extended)
    truth = market.truth("AAPL", start, end, interval, "splits", extended_hours=extended)
    # the regular session from 09:30 (hourly bars too), or pre-market from 04:00 like Massive
    assert df.index[0].hour == 4 if extended else (df.index[0].hour, df.index[0].minute) == (9, 30)
    assert df.index[-1].hour == (19 if extended else 15)
    assert df.attrs["extended_hours"] is extended
    # Yahoo is asked for what is wanted (includePrePost), not for every hour to be filtered
    charts = [r for r in fake_yahoo.requests if "/chart/" in r.path and "period1" in r.query]
    assert charts and {r.query.get("includePrePost", "").lower() for r in charts} == {str(extended).lower()}
    # yfinance builds 30m bars from two rounded 15m bars: up to one share off
    assert_matches_truth(df, truth, volume_atol=1.0 if interval == "30m" else 0.5)


def test_minute_bars_over_a_split_in_raw(market, fake_yahoo):
    cfg = Config.load({"FINRPT_YFINANCE_BASE_URL": fake_yahoo.url, "FINRPT_PROVIDERS_TODAY": "2025-11-25"},
                      environ={})
    df = fp.get_prices("NVDA", "2025-11-14", "2025-11-17", interval="1m", adjustment="raw", providers=["yfinance"],
                       config=cfg)
    assert_matches_truth(df, market.truth("NVDA", "2025-11-14", "2025-11-17", "1m", "raw"), 0.125)


def test_intraday_older_than_yahoo_keeps_is_skipped_before_calling(yf_config, fake_yahoo):
    with pytest.raises(fp.AllProvidersFailed, match="1m bars only from 2026-06-02") as info:
        fp.get_prices("AAPL", "2026-03-02", "2026-03-03", interval="1m", providers=["yfinance"], config=yf_config)
    assert info.value.attempts[0]["outcome"] == "skipped"
    assert fake_yahoo.chart_requests() == []


def test_end_is_inclusive_and_converted_to_yahoos_exclusive_end(yf_config, fake_yahoo):
    df = fp.get_prices("AAPL", "2026-03-02", "2026-03-06", providers=["yfinance"], config=yf_config)
    assert [d.day for d in df.index] == [2, 3, 4, 5, 6]
    periods = [r.query for r in fake_yahoo.chart_requests() if "period2" in r.query]
    ends = {pd.Timestamp(int(q["period2"]), unit="s", tz="UTC").tz_convert("America/New_York") for q in periods}
    assert ends == {pd.Timestamp("2026-03-07", tz="America/New_York")}


def test_dot_ticker_goes_to_yahoo_with_a_dash(yf_config, fake_yahoo):
    fp.get_prices("brk.b", "2026-03-02", "2026-03-03", providers=["yfinance"], config=yf_config)
    assert to_yahoo_symbol("BRK.B") == "BRK-B"
    assert {r.path for r in fake_yahoo.chart_requests()} == {"/v8/finance/chart/BRK-B"}


def test_unknown_ticker_is_no_data(yf_config):
    q = PriceQuery("ZZZZ", "2026-03-02", "2026-03-06")
    with pytest.raises(NoData, match="ZZZZ"):
        yahoo(yf_config).fetch(q)


def test_range_before_listing_is_no_data(yf_config):
    with pytest.raises(NoData, match="NEWC"):
        yahoo(yf_config).fetch(PriceQuery("NEWC", "2026-01-05", "2026-01-09"))


def test_rate_limit_is_rate_limited(yf_config, fake_yahoo):
    fake_yahoo.rate_limited = True
    with pytest.raises(RateLimited, match="429"):
        yahoo(yf_config).fetch(PriceQuery("AAPL", "2026-03-02", "2026-03-06"))


def test_server_error_is_unavailable(yf_config, fake_yahoo):
    fake_yahoo.fail_status = 502
    with pytest.raises(ProviderUnavailable):
        yahoo(yf_config).fetch(PriceQuery("AAPL", "2026-03-02", "2026-03-06"))


def test_dead_server_is_unavailable_quickly(market):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    cfg = Config.load({"FINRPT_YFINANCE_BASE_URL": f"http://127.0.0.1:{port}",
                       "FINRPT_PROVIDERS_TODAY": market.today().isoformat()}, environ={})
    t0 = time.monotonic()
    with pytest.raises(ProviderUnavailable, match="cannot reach Yahoo"):
        yahoo(cfg).fetch(PriceQuery("AAPL", "2026-03-02", "2026-03-06"))
    assert time.monotonic() - t0 < 30  # a bound, not a benchmark: it must not hang


def test_chain_moves_on_from_a_rate_limited_yahoo(yf_config, fake_yahoo, market, register_plugin):
    from finrpt_providers import PriceProvider
    from finrpt_providers.testing import plugin_of

    class Backup(PriceProvider):
        name = "backup"

        def fetch(self, query):
            return market.truth(query.ticker, query.start, query.end, query.interval, query.adjustment)

    register_plugin(plugin_of(Backup()), name="backup-plugin")
    fake_yahoo.rate_limited = True
    df = fp.get_prices("AAPL", "2026-03-02", "2026-03-06", providers=["yfinance", "backup"], config=yf_config)
    assert df.attrs["provider"] == "backup"
    assert df.attrs["attempts"][0]["outcome"] == "failed" and "RateLimited" in df.attrs["attempts"][0]["detail"]


def test_yfinance_global_state_is_left_as_found(yf_config):
    import yfinance as yf
    from yfinance.data import SingletonMeta, YfData

    yf.config.debug.hide_exceptions = True
    users = YfData()  # the user's own singleton, made before our call
    users_session = users._session
    fp.get_prices("AAPL", "2026-03-02", "2026-03-06", providers=["yfinance"], config=yf_config)
    with pytest.raises(NoData):
        yahoo(yf_config).fetch(PriceQuery("ZZZZ", "2026-03-02", "2026-03-06"))
    assert yf.config.debug.hide_exceptions is True
    assert SingletonMeta._instances[YfData] is users and users._session is users_session
    SingletonMeta._instances.pop(YfData, None)


def test_undo_splits_is_exact_on_a_known_case():
    idx = pd.DatetimeIndex(["2024-06-07", "2024-06-10", "2024-06-11"], tz="America/New_York", name="timestamp")
    adj = pd.DataFrame({"open": [120.0, 121.0, 122.0], "high": 125.0, "low": 119.0, "close": [121.0, 122.0, 123.0],
                        "volume": [400.0, 300.0, 200.0], "vwap": np.nan}, index=idx)
    splits = pd.Series([10.0], index=pd.DatetimeIndex(["2024-06-10"], tz="America/New_York"))
    s = split_factor(adj.index, splits)  # how the pipeline undoes splits: prices x S, volume / S
    raw = apply_factors(adj, s, 1 / s)
    assert raw["close"].tolist() == [1210.0, 122.0, 123.0]
    assert raw["volume"].tolist() == [40.0, 300.0, 200.0]
