"""Massive REST provider against the fake Massive server over loopback."""

from __future__ import annotations

import logging
import socket
import time

import pandas.testing as pdt
import pytest

import finrpt_providers as fp
from finrpt_providers import DataIntegrityError, NoData, NotEntitled, PriceQuery, ProviderUnavailable
from finrpt_providers.config import Config
from finrpt_providers.providers import massive_rest as mr
from tests.conftest import REST_KEY as KEY


@pytest.fixture
def cfg(rest, market):
    return Config.load({"MASSIVE_API_KEY": KEY, "MASSIVE_REST_BASE_URL": rest.url,
                        "FINRPT_PROVIDERS_TODAY": market.today().isoformat(), "MASSIVE_REST_BACKOFF": "0.01",
                        "FINRPT_PRICE_PROVIDERS": "massive_rest"}, environ={})


def fetch(cfg, ticker, start, end, interval="1d", adjustment="splits"):
    return fp.get_prices(ticker, start, end, interval=interval, adjustment=adjustment, providers=["massive_rest"],
                         config=cfg)


def assert_truth(df, market, ticker, start, end, interval, adjustment):
    truth = market.truth(ticker, start, end, interval, adjustment)
    pdt.assert_frame_equal(df, truth, rtol=1e-12, check_freq=False)


@pytest.mark.parametrize("adjustment", ["raw", "splits", "total"])
@pytest.mark.parametrize("interval", ["1m", "5m", "15m", "30m", "1h", "1d"])
def test_every_interval_and_adjustment_equals_the_truth(cfg, market, interval, adjustment):
    # NVDA: a 4-for-1 split (2025-11-17) and a dividend (2025-12-10) inside the range
    start, end = ("2025-10-01", "2025-12-31") if interval == "1d" else ("2025-11-13", "2025-12-11")
    df = fetch(cfg, "NVDA", start, end, interval, adjustment)
    assert_truth(df, market, "NVDA", start, end, interval, adjustment)
    assert df.attrs["provider"] == "massive_rest"


@pytest.mark.parametrize("ticker,start,end", [("RSPL", "2026-01-02", "2026-02-27"),
                                              ("AAPL", "2025-06-02", "2026-06-30"),
                                              ("BRK.B", "2026-03-02", "2026-03-31"),
                                              ("NEWC", "2026-03-02", "2026-04-30")])
@pytest.mark.parametrize("adjustment", ["raw", "splits", "total"])
def test_daily_tickers_equal_the_truth(cfg, market, ticker, start, end, adjustment):
    assert_truth(fetch(cfg, ticker, start, end, "1d", adjustment), market, ticker, start, end, "1d", adjustment)


def test_pagination_across_many_pages_keeps_adjusted_false(cfg, rest, market):
    rest.page_size = 250  # the cursor does not carry `adjusted`: the client must re-add it
    df = fetch(cfg, "NVDA", "2025-11-12", "2025-11-18", "1m", "raw")
    assert_truth(df, market, "NVDA", "2025-11-12", "2025-11-18", "1m", "raw")
    reqs = rest.aggregate_requests()
    every_hour = market.truth("NVDA", "2025-11-12", "2025-11-18", "1m", "raw", extended_hours=True)
    assert len(reqs) == -(-len(every_hour) // 250) >= 10  # REST is asked for every hour; the core keeps 09:30-16:00
    assert all(r.query.get("adjusted") == "false" for r in reqs)
    assert all("cursor" in r.query for r in reqs[1:])


def test_cursor_that_keeps_adjusted_is_left_alone(cfg, rest, market):
    rest.page_size, rest.cursor_keeps_adjusted = 500, True
    df = fetch(cfg, "RSPL", "2026-01-15", "2026-01-21", "1m", "raw")
    assert_truth(df, market, "RSPL", "2026-01-15", "2026-01-21", "1m", "raw")
    assert all("adjusted" not in r.query for r in rest.aggregate_requests()[1:])


def test_long_minute_range_in_page_sized_windows_joined_in_order(cfg, rest, market):
    rest.page_size = 5000
    df = fetch(cfg, "AAPL", "2026-01-20", "2026-04-10", "1m", "splits")
    assert_truth(df, market, "AAPL", "2026-01-20", "2026-04-10", "1m", "splits")
    windows = {tuple(r.path.split("/")[-2:]) for r in rest.aggregate_requests() if "cursor" not in r.query}
    assert windows == {("2026-01-20", "2026-04-02"), ("2026-04-03", "2026-04-10")}  # 52 sessions, then the rest


def test_recovers_from_429s_with_retry_after(cfg, rest, market):
    rest.rate_limit_every, rest.retry_after = 3, "0"
    rest.page_size = 300
    df = fetch(cfg, "NVDA", "2025-11-17", "2025-11-18", "1m", "splits")
    assert_truth(df, market, "NVDA", "2025-11-17", "2025-11-18", "1m", "splits")
    assert len(rest.requests) > len(rest.aggregate_requests()) - 1 >= 5


def test_recovers_from_a_5xx_burst(cfg, rest, market):
    rest.fail_next = 2
    assert_truth(fetch(cfg, "AAPL", "2026-03-02", "2026-03-06"), market, "AAPL", "2026-03-02", "2026-03-06", "1d",
                 "splits")


def test_legacy_reference_endpoints(cfg, rest, market):
    rest.reference_v1 = False
    rest.reference_page_size = 2  # reference pagination too
    df = fetch(cfg, "NVDA", "2025-06-02", "2026-06-30", "1d", "total")
    assert_truth(df, market, "NVDA", "2025-06-02", "2026-06-30", "1d", "total")
    paths = rest.paths()
    assert "/stocks/v1/dividends" in paths and "/stocks/v1/splits" in paths  # tried first, 404
    assert paths.count("/v3/reference/dividends") == 3  # 5 dividends, 2 a page


def test_unknown_ticker_is_no_data_and_null_results_too(cfg, rest):
    p = fp.plugins.registry()["massive_rest"].provider.configured(cfg)
    with pytest.raises(NoData, match="ZZZZ"):
        p.fetch(PriceQuery("ZZZZ", "2026-03-02", "2026-03-06"))
    rest.null_results = True
    with pytest.raises(NoData):
        p.fetch(PriceQuery("ZZZZ", "2026-03-02", "2026-03-06", "1m"))


def test_repeated_cursor_is_an_integrity_error(cfg, rest):
    rest.page_size, rest.repeat_cursor = 2, True
    p = fp.plugins.registry()["massive_rest"].provider.configured(cfg)
    with pytest.raises(DataIntegrityError, match="cursor"):
        p.fetch(PriceQuery("AAPL", "2026-03-02", "2026-03-06"))
    assert len(rest.aggregate_requests()) == 2


def test_not_entitled_to_minutes_moves_the_chain_to_yfinance(cfg, rest, market, fake_yahoo):
    rest.entitled = {"day"}
    chain_cfg = cfg.merged({"FINRPT_YFINANCE_BASE_URL": fake_yahoo.url,
                            "FINRPT_PRICE_PROVIDERS": "massive_rest,yfinance"})
    df = fp.get_prices("AAPL", "2026-06-25", "2026-06-26", interval="5m", config=chain_cfg)
    assert df.attrs["provider"] == "yfinance"
    first = df.attrs["attempts"][0]
    assert first["outcome"] == "failed" and "NotEntitled" in first["detail"] and "minute aggregates" in first["detail"]
    daily = fp.get_prices("AAPL", "2026-06-25", "2026-06-26", config=chain_cfg)
    assert daily.attrs["provider"] == "massive_rest"


def test_plan_history_limit_is_not_entitled_then_stitched(cfg, rest, market, fake_yahoo):
    import datetime as dt

    rest.history_start = dt.date(2026, 1, 1)
    p = fp.plugins.registry()["massive_rest"].provider.configured(cfg)
    with pytest.raises(NotEntitled, match="history"):
        p.fetch(PriceQuery("AAPL", "2025-12-01", "2026-01-30"))


def test_wrong_key_is_authentication_failed(cfg, rest):
    bad = cfg.merged({"MASSIVE_API_KEY": "wrong"})
    with pytest.raises(fp.AllProvidersFailed, match="AuthenticationFailed.*set MASSIVE_API_KEY"):
        fetch(bad, "AAPL", "2026-03-02", "2026-03-06")


def test_read_timeout_is_unavailable_within_a_bound(cfg, rest):
    rest.delay = 1.0
    slow = cfg.merged({"MASSIVE_REST_READ_TIMEOUT": "0.2", "MASSIVE_REST_MAX_RETRIES": "1"})
    p = fp.plugins.registry()["massive_rest"].provider.configured(slow)
    t0 = time.monotonic()
    with pytest.raises(ProviderUnavailable, match="timed out"):
        p.fetch(PriceQuery("AAPL", "2026-03-02", "2026-03-06"))
    assert time.monotonic() - t0 < 5


def test_dead_server_is_unavailable(market):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    cfg = Config.load({"MASSIVE_API_KEY": KEY, "MASSIVE_REST_BASE_URL": f"http://127.0.0.1:{port}",
                       "MASSIVE_REST_BACKOFF": "0.01"}, environ={})
    p = fp.plugins.registry()["massive_rest"].provider.configured(cfg)
    with pytest.raises(ProviderUnavailable, match="network error"):
        p.fetch(PriceQuery("AAPL", "2026-03-02", "2026-03-06"))


def test_client_side_rate_limit_spaces_requests(cfg, rest, monkeypatch):
    waits = []
    monkeypatch.setattr(mr.RateLimiter, "acquire", lambda self: waits.append(self.per_minute) or 0.0)
    fetch(cfg.merged({"MASSIVE_REST_REQUESTS_PER_MINUTE": "5"}), "AAPL", "2026-03-02", "2026-03-06")
    assert waits == [5]


def test_api_key_never_leaks(cfg, rest, caplog, capsys):
    """Debug logging on, every failure mode: the key is in no record, exception or repr."""
    caplog.set_level(logging.DEBUG)
    p = fp.plugins.registry()["massive_rest"].provider.configured(cfg)
    texts = [repr(cfg), str(cfg), repr(p), repr(p.client())]
    setups = [
        lambda: setattr(rest, "rate_limit_all", True),
        lambda: setattr(rest, "fail_next", 10),
        lambda: setattr(rest, "entitled", set()),
        lambda: setattr(rest, "api_key", "someone-else"),
        lambda: setattr(rest, "history_start", __import__("datetime").date(2030, 1, 1)),
        lambda: None,
    ]
    for setup in setups:
        rest.reset()
        rest.retry_after = "0"
        setup()
        try:
            fetch(cfg, "AAPL", "2026-03-02", "2026-03-06", "1m")
        except fp.ProviderError as e:
            texts += [str(e), repr(e), repr(e.__cause__), repr(e.__context__)]
    rest.api_key = KEY
    texts += [r.getMessage() for r in caplog.records] + [str(r.args) for r in caplog.records]
    out = capsys.readouterr()
    texts += [out.out, out.err]
    assert caplog.records, "debug logging should have produced records"
    assert not [t for t in texts if KEY in t]
