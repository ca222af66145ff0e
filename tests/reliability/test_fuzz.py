"""Bad input, hypothesis-driven: query validation and the parsers of every wire format.

Only documented error types may come out; never a hang, never a wrong frame."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finrpt_providers import InvalidQuery, PriceQuery, ProviderError, validate_bars
from finrpt_providers.config import Config
from finrpt_providers.plugins import registry
from finrpt_providers.providers import massive_rest as mr

DOCUMENTED = ProviderError  # every documented type subclasses it

text_or_other = st.one_of(st.text(max_size=30), st.integers(), st.floats(allow_nan=True), st.none(),
                          st.dates(min_value=dt.date(1, 1, 1)), st.datetimes(), st.binary(max_size=10))


@settings(max_examples=300, deadline=None)
@given(ticker=text_or_other, start=text_or_other, end=text_or_other, interval=text_or_other,
       adjustment=text_or_other)
def test_query_validation_gives_a_valid_query_or_invalid_query(ticker, start, end, interval, adjustment):
    try:
        q = PriceQuery(ticker, start, end, interval, adjustment)
    except InvalidQuery as e:
        assert str(e)
        return
    assert q.start <= q.end and q.interval in ("1m", "5m", "15m", "30m", "1h", "1d")
    assert q.adjustment in ("raw", "splits", "total") and "/" not in q.ticker and q.ticker.strip() == q.ticker


@settings(max_examples=200, deadline=None)
@given(st.dates(min_value=dt.date(1800, 1, 1), max_value=dt.date(2999, 1, 1)),
       st.dates(min_value=dt.date(1800, 1, 1), max_value=dt.date(2999, 1, 1)))
def test_any_pair_of_dates(start, end):
    try:
        q = PriceQuery("AAPL", start, end)
    except InvalidQuery:
        assert start > end or start < dt.date(1900, 1, 1) or start > dt.date.today() + dt.timedelta(days=1)
        return
    assert (q.start, q.end) == (start, end)


# -- Massive REST JSON ----------------------------------------------------------------------
value = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**63, max_value=2**63 - 1),
                  st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8))
bar = st.dictionaries(st.sampled_from(["t", "o", "h", "l", "c", "v", "vw", "n", "otc"]), value, max_size=9)
body = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda d: json.dumps(d).encode(), st.dictionaries(
        st.sampled_from(["status", "results", "next_url", "error", "message", "resultsCount"]),
        st.one_of(value, st.lists(bar, max_size=4)), max_size=5)),
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(status=st.sampled_from([200, 200, 200, 400, 401, 403, 404, 429, 500, 502]), payload=body)
def test_rest_answers_of_any_shape_give_documented_errors_or_a_valid_frame(status, payload, monkeypatch):
    monkeypatch.setattr(mr.time, "sleep", lambda s: None)
    mr.clear_caches()
    cfg = Config.load({"MASSIVE_API_KEY": "k", "MASSIVE_REST_BASE_URL": "http://massive.fuzz",
                       "MASSIVE_REST_MAX_RETRIES": "1", "FINRPT_PROVIDERS_TODAY": "2026-07-01"}, environ={})
    provider = registry()["massive_rest"].provider.configured(cfg)
    query = PriceQuery("AAPL", "2026-03-02", "2026-03-03")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(re.compile(r"http://massive\.fuzz/.*"), body=payload, status=status,
                 content_type="application/json")
        try:
            df = provider.fetch(query)
        except DOCUMENTED:
            return
        validate_bars(df, query, "massive_rest")  # a frame that came out must keep the contract


@settings(max_examples=150, deadline=None)
@given(st.lists(bar, max_size=6))
def test_results_to_bars_on_any_records(records):
    try:
        df = mr.results_to_bars(records, "1d")
    except DOCUMENTED:
        return
    try:
        validate_bars(df)
    except DOCUMENTED:
        pass


# -- Yahoo chart JSON through the real yfinance code --------------------------------------------
chart = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda d: json.dumps({"chart": d}).encode(), st.dictionaries(
        st.sampled_from(["result", "error"]),
        st.one_of(value, st.lists(st.dictionaries(st.sampled_from(["meta", "timestamp", "indicators", "events"]),
                                                  st.one_of(value, st.lists(value, max_size=3),
                                                            st.dictionaries(st.text(max_size=5), value,
                                                                            max_size=3)),
                                                  max_size=4), max_size=2)), max_size=2)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=chart)
def test_yahoo_answers_of_any_shape_give_documented_errors(payload, yf_config, fake_yahoo):
    from yfinance.data import YfData

    YfData.cache_get.cache_clear()
    fake_yahoo.chart_body = payload
    provider = registry()["yfinance"].provider.configured(yf_config)
    query = PriceQuery("AAPL", "2026-03-02", "2026-03-03")
    try:
        df = provider.fetch(query)
    except DOCUMENTED:
        return
    finally:
        fake_yahoo.chart_body = None
    validate_bars(df, query, "yfinance")


@pytest.mark.parametrize("blob", [b"", b"\x1f\x8b", b"ticker\n", b"\x00" * 100])
def test_tiny_flat_files(blob):
    from finrpt_providers.providers.massive_flatfiles import files as F

    with pytest.raises(ProviderError):
        F.parse_file(blob, "day_aggs_v1", "k")
