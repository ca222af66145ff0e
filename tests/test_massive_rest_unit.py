"""Massive REST: request building and the error table of the reference, with `responses`."""

from __future__ import annotations

import base64
import datetime as dt
import re

import pandas as pd
import pytest
import responses

from finrpt_providers import (
    AuthenticationFailed,
    DataIntegrityError,
    UnsupportedQuery,
    MissingCredentials,
    NoData,
    NotEntitled,
    PriceQuery,
    ProviderUnavailable,
    RateLimited,
)
from finrpt_providers.config import Config
from finrpt_providers.providers import massive_rest as mr

BASE = "http://massive.test"
KEY = "unit-key-123"
AGGS = re.compile(rf"{BASE}/v2/aggs/ticker/.*")
BAR = {"v": 135647456.5, "vw": 74.6099, "o": 74.06, "c": 75.0875, "h": 75.15, "l": 73.7975, "t": 1577941200000, "n": 1}
BAR2 = {"v": 146535512, "vw": 74.7026, "o": 74.2875, "c": 74.3575, "h": 75.145, "l": 74.125, "t": 1578027600000, "n": 1}


@pytest.fixture(autouse=True)
def fresh_caches():
    mr.clear_caches()
    yield
    mr.clear_caches()


@pytest.fixture
def sleeps(monkeypatch):
    """Record the pauses the client takes instead of sleeping."""
    pauses: list[float] = []
    monkeypatch.setattr(mr.time, "sleep", pauses.append)
    return pauses


def provider(**settings):
    values = {"MASSIVE_API_KEY": KEY, "MASSIVE_REST_BASE_URL": BASE, "FINRPT_PROVIDERS_TODAY": "2020-01-10",
              "MASSIVE_REST_MAX_RETRIES": "2", **settings}
    return mr.MassiveRESTProvider().configured(Config.load(values, environ={}))


def q(interval="1d", adjustment="splits", start="2020-01-02", end="2020-01-03", ticker="AAPL"):
    return PriceQuery(ticker, start, end, interval, adjustment)


def ok(results=(BAR, BAR2), **extra):
    body = {"ticker": "AAPL", "queryCount": len(results), "resultsCount": len(results), "adjusted": True,
            "status": "OK", "request_id": "r1", **extra}
    if results is not None:
        body["results"] = list(results)
    return body


@responses.activate
def test_request_is_built_as_massive_documents():
    responses.get(AGGS, json=ok())
    df = provider().fetch(q())
    call = responses.calls[0].request
    assert call.url.startswith(f"{BASE}/v2/aggs/ticker/AAPL/range/1/day/2020-01-02/2020-01-03?")
    assert dict(re.findall(r"(\w+)=([^&]+)", call.url.split("?")[1])) == {"adjusted": "true", "sort": "asc",
                                                                       "limit": "50000"}
    assert call.headers["Authorization"] == f"Bearer {KEY}"
    assert KEY not in call.url and "apiKey" not in call.url
    # the documented sample: t is midnight ET of the session; v stays fractional
    assert list(df.index) == [pd.Timestamp("2020-01-02", tz="America/New_York"),
                              pd.Timestamp("2020-01-03", tz="America/New_York")]
    assert df["volume"].iloc[0] == 135647456.5 and df["vwap"].iloc[1] == 74.7026
    assert df["transactions"].dtype == "Int64" and df["close"].tolist() == [75.0875, 74.3575]


@pytest.mark.parametrize("interval,path", [("1m", "1/minute"), ("5m", "5/minute"), ("15m", "15/minute"),
                                           ("30m", "30/minute"), ("1h", "1/hour"), ("1d", "1/day")])
@responses.activate
def test_intervals_map_to_multiplier_and_timespan(interval, path):
    responses.get(AGGS, json=ok(results=[{**BAR, "t": 1577975400000}]))  # 2020-01-02 09:30 ET
    provider().fetch(q(interval))
    assert f"/range/{path}/2020-01-02/2020-01-03" in responses.calls[0].request.url


@pytest.mark.parametrize("adjustment,flag", [("raw", "false"), ("splits", "true")])
@responses.activate
def test_adjustment_flag(adjustment, flag):
    responses.get(AGGS, json=ok())
    provider().fetch(q(adjustment=adjustment))
    assert f"adjusted={flag}" in responses.calls[0].request.url


def _cursor(text):
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor_text,expect_readded", [("limit=1&sort=asc", True),
                                                        ("limit=1&sort=asc&adjusted=false", False)])
@responses.activate
def test_next_url_resolved_against_our_base_with_auth_and_adjusted(cursor_text, expect_readded):
    nxt = f"https://api.massive.com/v2/aggs/ticker/AAPL/range/1/day/1578027600000/2020-01-03?cursor={_cursor(cursor_text)}"
    responses.get(AGGS, json=ok(results=[BAR], next_url=nxt))
    responses.get(AGGS, json=ok(results=[BAR2]))
    df = provider().fetch(q(adjustment="raw"))
    assert len(df) == 2
    second = responses.calls[1].request
    assert second.url.startswith(f"{BASE}/v2/aggs/ticker/AAPL/range/1/day/1578027600000/2020-01-03?")
    assert second.headers["Authorization"] == f"Bearer {KEY}"
    assert ("adjusted=false" in second.url) is expect_readded


@responses.activate
def test_a_repeated_cursor_stops_instead_of_looping():
    nxt = f"https://api.massive.com/v2/aggs/ticker/AAPL/range/1/day/2020-01-02/2020-01-03?cursor={_cursor('limit=1')}"
    responses.get(AGGS, json=ok(results=[BAR], next_url=nxt))
    with pytest.raises(DataIntegrityError, match="repeated a pagination cursor"):
        provider().fetch(q())
    assert len(responses.calls) == 2  # first page, then the cursor once; its page repeats it: stop


@responses.activate
def test_key_in_next_url_is_dropped():
    nxt = f"https://api.massive.com/v2/aggs/ticker/AAPL/range/1/day/1578027600000/2020-01-03?cursor=abc&apiKey=LEAK"
    responses.get(AGGS, json=ok(results=[BAR], next_url=nxt))
    responses.get(AGGS, json=ok(results=[BAR2]))
    provider().fetch(q())
    assert "LEAK" not in responses.calls[1].request.url


@pytest.mark.parametrize("status,body,exc,words", [
    (401, {"status": "ERROR", "request_id": "x", "error": "API Key was not provided"}, AuthenticationFailed,
     "set MASSIVE_API_KEY"),
    (401, {"status": "ERROR", "request_id": "x", "error": "Unknown API Key"}, AuthenticationFailed, "Unknown API Key"),
    (403, {"status": "NOT_AUTHORIZED", "request_id": "x", "message": "You are not entitled to this data. Please "
           "upgrade your plan at https://massive.com/pricing"}, NotEntitled, "does not include day aggregates"),
    (403, {"status": "NOT_AUTHORIZED", "request_id": "x", "message": "Your plan doesn't include this data "
           "timeframe. Please upgrade your plan at https://massive.com/pricing"}, NotEntitled, "history"),
    (400, {"status": "ERROR", "error": "Could not parse the time parameter: 'from'. Use YYYY-MM-DD or Unix MS "
           "Timestamps"}, UnsupportedQuery, "Could not parse the time parameter"),
    (400, {"status": "ERROR", "error": "The parameter 'to' cannot be a time that occurs before 'from'"},
     UnsupportedQuery, "cannot be a time"),
    (200, {"ticker": "X", "queryCount": 0, "resultsCount": 0, "adjusted": True, "status": "OK", "request_id": "x"},
     NoData, "check the ticker"),
    (200, {"ticker": "X", "resultsCount": 0, "status": "OK", "results": None}, NoData, "no 1d bars"),
    (200, {"status": "ERROR", "request_id": "x", "error": "something broke"}, ProviderUnavailable, "something broke"),
    (404, {"status": "NOT_FOUND", "message": "Not found"}, ProviderUnavailable, "MASSIVE_REST_BASE_URL"),
])
@responses.activate
def test_error_table(status, body, exc, words, sleeps):
    responses.get(AGGS, json=body, status=status)
    with pytest.raises(exc, match=words):
        provider().fetch(q())
    assert len(responses.calls) == 1  # none of these is retried


@responses.activate
def test_delayed_status_is_success():
    responses.get(AGGS, json=ok(status="DELAYED"))
    assert len(provider().fetch(q())) == 2


@responses.activate
def test_bad_json_is_a_data_integrity_error():
    responses.get(AGGS, body="{not json", status=200, content_type="application/json")
    with pytest.raises(DataIntegrityError, match="not a JSON object"):
        provider().fetch(q())


@responses.activate
def test_malformed_bar_is_a_data_integrity_error():
    responses.get(AGGS, json=ok(results=[{"o": 1, "t": 1577941200000}]))
    with pytest.raises(DataIntegrityError, match="malformed aggregate"):
        provider().fetch(q())


@pytest.mark.parametrize("status,ctype,body", [(502, "text/html", "<html>Bad Gateway</html>"),
                                               (504, "text/html", "<html>Gateway Timeout</html>"),
                                               (500, "application/json", '{"status":"ERROR"}'),
                                               (200, "text/html", "<html>captive portal</html>")])
@responses.activate
def test_5xx_and_html_are_retried_then_unavailable(status, ctype, body, sleeps):
    responses.get(AGGS, body=body, status=status, content_type=ctype)
    with pytest.raises(ProviderUnavailable, match="3 tries"):
        provider().fetch(q())
    assert len(responses.calls) == 3 and len(sleeps) == 2
    # capped exponential backoff with jitter: base 0.5 s, doubled, times 0.5..1
    assert 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0


@responses.activate
def test_5xx_then_success_recovers(sleeps):
    responses.get(AGGS, body="<html>oops</html>", status=502, content_type="text/html")
    responses.get(AGGS, json=ok())
    assert len(provider().fetch(q())) == 2 and len(sleeps) == 1


RATE = {"status": "ERROR", "request_id": "x", "error": "You've exceeded the maximum requests per minute, please "
        "wait or upgrade your subscription to continue. https://massive.com/pricing"}


@responses.activate
def test_429_honours_retry_after_then_succeeds(sleeps):
    responses.get(AGGS, json=RATE, status=429, headers={"Retry-After": "7"})
    responses.get(AGGS, json=ok())
    assert len(provider().fetch(q())) == 2
    assert sleeps == [7.0]


@responses.activate
def test_429_without_retry_after_backs_off_then_rate_limited(sleeps):
    responses.get(AGGS, json=RATE, status=429)
    with pytest.raises(RateLimited, match="MASSIVE_REST_REQUESTS_PER_MINUTE") as info:
        provider().fetch(q())
    assert info.value.retry_after is None
    assert len(responses.calls) == 3 and len(sleeps) == 2 and sleeps[1] <= 1.0


@responses.activate
def test_429_asking_for_too_long_a_wait_gives_up_at_once(sleeps):
    responses.get(AGGS, json=RATE, status=429, headers={"Retry-After": "600"})
    with pytest.raises(RateLimited) as info:
        provider().fetch(q())
    assert info.value.retry_after == 600 and sleeps == [] and len(responses.calls) == 1


def test_rate_limiter_keeps_to_n_per_minute():
    now = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    lim = mr.RateLimiter(5, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        assert lim.acquire() == 0
    now[0] = 10.0
    assert lim.acquire() == pytest.approx(50.0)  # the 6th waits until the 1st is a minute old
    assert slept == [pytest.approx(50.0)]


def test_missing_key_is_missing_credentials_before_any_request():
    p = mr.MassiveRESTProvider().configured(Config.load({}, environ={}))
    assert p.missing_credentials() == ["MASSIVE_API_KEY"]
    assert "set MASSIVE_API_KEY" in p.cannot_serve(q(), dt.date(2020, 1, 10))
    with pytest.raises(MissingCredentials, match="MASSIVE_API_KEY"):
        p.client()
    legacy = mr.MassiveRESTProvider().configured(Config.load({"POLYGON_API_KEY": "old"}, environ={}))
    assert legacy.missing_credentials() == []


def test_windows_hold_at_most_a_page_of_minutes_and_tile_the_range():
    from finrpt_providers import calendar

    assert mr.WINDOW_SESSIONS * mr.SESSION_MINUTES <= mr.MAX_LIMIT
    start, end = dt.date(2024, 1, 15), dt.date(2024, 12, 31)
    windows = mr._windows(start, end, mr.WINDOW_SESSIONS)
    assert windows[0][0] == start and windows[-1][1] == end
    assert all(b[0] == a[1] + dt.timedelta(days=1) for a, b in zip(windows, windows[1:]))  # no gap, no overlap
    counts = [len(calendar.sessions(lo, hi)) for lo, hi in windows]
    assert max(counts) == mr.WINDOW_SESSIONS and sum(counts) == len(calendar.sessions(start, end))
    assert len(windows) == -(-sum(counts) // mr.WINDOW_SESSIONS)  # 5 for a year, not 12 months
    assert mr._windows(dt.date(2024, 3, 4), dt.date(2024, 3, 8), mr.WINDOW_SESSIONS) == [
        (dt.date(2024, 3, 4), dt.date(2024, 3, 8))]
    assert mr._windows(dt.date(2000, 1, 1), dt.date(2024, 1, 1), None) == [(dt.date(2000, 1, 1),
                                                                            dt.date(2024, 1, 1))]


SPLITS_V1 = {"results": [{"ticker": "AAPL", "execution_date": "2020-08-31", "split_from": 1, "split_to": 4,
                          "adjustment_type": "forward_split", "historical_adjustment_factor": 0.25}],
             "status": "OK", "request_id": "x"}
DIVS_LEGACY_P1 = {"results": [{"cash_amount": 0.82, "ex_dividend_date": "2020-02-07", "ticker": "AAPL",
                               "currency": "USD", "dividend_type": "CD"}], "status": "OK",
                  "next_url": f"https://api.massive.com/v3/reference/dividends?cursor={_cursor('offset=1')}"}
DIVS_LEGACY_P2 = {"results": [{"cash_amount": 0.77, "ex_dividend_date": "2019-11-07", "ticker": "AAPL",
                               "currency": "USD"}], "status": "OK"}


@responses.activate
def test_corporate_actions_new_endpoints_legacy_fallback_pagination_and_cache():
    responses.get(f"{BASE}/stocks/v1/splits", json=SPLITS_V1)
    responses.get(f"{BASE}/stocks/v1/dividends", json={"status": "NOT_FOUND", "message": "Not found"}, status=404)
    responses.get(f"{BASE}/v3/reference/dividends", json=DIVS_LEGACY_P1)
    responses.get(f"{BASE}/v3/reference/dividends", json=DIVS_LEGACY_P2)
    client = provider().client()
    splits = client.splits("AAPL")
    assert splits.tolist() == [4.0] and splits.index[0] == pd.Timestamp("2020-08-31", tz="America/New_York")
    assert "ticker=AAPL" in responses.calls[0].request.url and "limit=5000" in responses.calls[0].request.url
    divs = client.dividends("AAPL")
    assert divs["cash"].tolist() == [0.77, 0.82]  # sorted by ex-date across pages (records as listed)
    assert divs["currency"].tolist() == ["USD", "USD"]
    n = len(responses.calls)
    from finrpt_providers import actions

    actions.clear_cache()
    first = actions.get_actions("AAPL", provider().config)  # the core's one cache, keyed by source and ticker
    assert first.source == "massive_rest" and first.splits.tolist() == [4.0]
    m = len(responses.calls)
    assert m > n
    actions.get_actions("AAPL", provider().config)
    assert len(responses.calls) == m  # the same source and ticker: answered from the cache


@responses.activate
def test_reverse_split_ratio():
    responses.get(f"{BASE}/stocks/v1/splits", json={"status": "OK", "results": [
        {"ticker": "X", "execution_date": "2024-01-02", "split_from": 3, "split_to": 1}]})
    assert provider().client().splits("X").tolist() == [pytest.approx(1 / 3)]


def test_client_repr_hides_the_key():
    client = provider().client()
    assert KEY not in repr(client) and "****" in repr(client)
