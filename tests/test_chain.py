"""The fallback chain, with in-process providers whose behaviour each test scripts."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pandas.testing as pdt
import pytest

import finrpt_providers as fp
from finrpt_providers import (
    AllProvidersFailed,
    AuthenticationFailed,
    DataIntegrityError,
    InvalidQuery,
    MissingCredentials,
    NoData,
    NotEntitled,
    PriceProvider,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    UnsupportedQuery,
)
from finrpt_providers.config import Config
from finrpt_providers.testing import plugin_of

TODAY = "2026-07-01"


class Scripted(PriceProvider):
    """Answers from the synthetic market, or as ``behaviour(query)`` says."""

    intervals = frozenset({"1d", "1m"})

    def __init__(self, name, market, behaviour=None, credentials=(), last=None, first=None, **attrs):
        self.name = name
        self.market = market
        self.behaviour = behaviour
        self.credentials = tuple(credentials)
        self.last, self.first = last, first  # limits of what this provider has
        self.calls = []
        for k, v in attrs.items():
            setattr(self, k, v)

    def configured(self, config):
        clone = super().configured(config)
        clone.calls = self.calls  # share the call log with the registered instance
        return clone

    def fetch(self, query):
        self.calls.append((query.start, query.end))
        if self.behaviour is not None:
            out = self.behaviour(query)
            if out is not None:
                return out
        start = max(query.start, self.first) if self.first else query.start
        end = min(query.end, self.last) if self.last else query.end
        return self.market.truth(query.ticker, start, end, query.interval, query.adjustment)


def raising(exc):
    def behaviour(query):
        raise exc
    return behaviour


@pytest.fixture
def chain(register_plugin, market):
    """Register scripted providers: chain(p1, p2, ...) -> the Config listing them in order."""

    def make(*providers):
        plugin = plugin_of(*providers)
        register_plugin(plugin, name=f"test-{id(plugin)}")
        return Config.load({"FINRPT_PRICE_PROVIDERS": ",".join(p.name for p in providers),
                            "FINRPT_PROVIDERS_TODAY": TODAY}, environ={})

    return make


def test_first_provider_answers_and_says_so(chain, market):
    a, b = Scripted("a", market), Scripted("b", market)
    cfg = chain(a, b)
    df = fp.get_prices("AAPL", "2026-03-02", "2026-03-13", config=cfg)
    pdt.assert_frame_equal(df, market.truth("AAPL", "2026-03-02", "2026-03-13"), check_freq=False)
    assert df.attrs["provider"] == "a" and df.attrs["ticker"] == "AAPL"
    assert df.attrs["interval"] == "1d" and df.attrs["adjustment"] == "splits"
    assert df.attrs["sources"] == [{"provider": "a", "first": df.index[0], "last": df.index[-1]}]
    assert [(x["provider"], x["outcome"]) for x in df.attrs["attempts"]] == [("a", "ok")]
    assert b.calls == []


@pytest.mark.parametrize("exc", [
    UnsupportedQuery("no"), MissingCredentials("set X"), AuthenticationFailed("bad key"),
    NotEntitled("upgrade"), RateLimited("slow down", retry_after=3), ProviderUnavailable("down"),
    NoData("nothing"), DataIntegrityError("garbled"),
])
def test_moves_on_after_each_provider_error(chain, market, exc):
    cfg = chain(Scripted("a", market, raising(exc)), Scripted("b", market))
    df = fp.get_prices("AAPL", "2026-03-02", "2026-03-06", config=cfg)
    assert df.attrs["provider"] == "b"
    first = df.attrs["attempts"][0]
    assert first["provider"] == "a" and first["outcome"] == "failed"
    assert type(exc).__name__ in first["detail"] and str(exc) in first["detail"]


def test_invalid_query_from_a_provider_stops_the_chain(chain, market):
    b = Scripted("b", market)
    cfg = chain(Scripted("a", market, raising(InvalidQuery("the service says the date is bad"))), b)
    with pytest.raises(InvalidQuery, match="date is bad"):
        fp.get_prices("AAPL", "2026-03-02", "2026-03-06", config=cfg)
    assert b.calls == []


def test_bad_question_fails_before_any_provider_is_called(chain, market):
    a = Scripted("a", market)
    cfg = chain(a)
    with pytest.raises(InvalidQuery):
        fp.get_prices("AAPL", "2026-03-06", "2026-03-02", config=cfg)
    assert a.calls == []


def test_a_provider_bug_is_recorded_and_skipped(chain, market):
    cfg = chain(Scripted("a", market, raising(KeyError("oops"))), Scripted("b", market))
    df = fp.get_prices("AAPL", "2026-03-02", "2026-03-06", config=cfg)
    assert df.attrs["provider"] == "b"
    assert "unexpected KeyError" in df.attrs["attempts"][0]["detail"]


def test_contract_breaking_output_moves_on(chain, market):
    def naive(query):
        return market.truth(query.ticker, query.start, query.end).tz_localize(None)

    cfg = chain(Scripted("a", market, naive), Scripted("b", market))
    df = fp.get_prices("AAPL", "2026-03-02", "2026-03-06", config=cfg)
    assert df.attrs["provider"] == "b"
    assert "tz-naive" in df.attrs["attempts"][0]["detail"]


def test_skips_before_calling(chain, market):
    nokey = Scripted("nokey", market, credentials=("MYPROV_API_KEY",))
    daily_only = Scripted("daily_only", market, intervals=frozenset({"1d"}))
    no_raw = Scripted("no_raw", market, adjustments=frozenset({"splits"}))
    recent = Scripted("recent", market, earliest=lambda q, today: today - dt.timedelta(days=5))
    missing_mod = Scripted("missing_mod", market, requires=("surely_not_a_module_xyz",))
    last = Scripted("last", market)
    cfg = chain(nokey, daily_only, no_raw, recent, missing_mod, last)
    # no corporate-actions source: raw cannot be derived from no_raw's split-adjusted bars
    cfg = cfg.merged({"FINRPT_PRICE_PROVIDERS": "unknown_one,nokey,daily_only,no_raw,recent,missing_mod,last",
                      "FINRPT_ACTIONS_PROVIDERS": ""})
    df = fp.get_prices("AAPL", "2026-03-02", "2026-03-02", interval="1m", adjustment="raw", config=cfg)
    assert df.attrs["provider"] == "last"
    reasons = {a["provider"]: (a["outcome"], a["detail"]) for a in df.attrs["attempts"]}
    assert reasons["unknown_one"][0] == "skipped" and "no provider named 'unknown_one'" in reasons["unknown_one"][1]
    assert "set MYPROV_API_KEY" in reasons["nokey"][1]
    assert "interval 1m not served" in reasons["daily_only"][1]
    assert "raw from no_raw's splits bars needs splits and dividends" in reasons["no_raw"][1]
    assert "FINRPT_ACTIONS_PROVIDERS is empty" in reasons["no_raw"][1]
    assert "1m bars only from 2026-06-26" in reasons["recent"][1]
    assert "pip install surely_not_a_module_xyz" in reasons["missing_mod"][1]
    for p in (nokey, daily_only, no_raw, recent, missing_mod):
        assert p.calls == []
    # with the key configured, nokey answers
    df = fp.get_prices("AAPL", "2026-03-02", "2026-03-02", config=cfg.merged({"MYPROV_API_KEY": "k"}))
    assert df.attrs["provider"] == "nokey"


def test_all_failed_lists_every_attempt(chain, market):
    cfg = chain(Scripted("a", market, raising(RateLimited("429 from a"))),
                Scripted("b", market, raising(NoData("b has nothing"))))
    with pytest.raises(AllProvidersFailed) as info:
        fp.get_prices("AAPL", "2026-03-02", "2026-03-06", config=cfg)
    e = info.value
    assert [a["provider"] for a in e.attempts] == ["a", "b"]
    assert "429 from a" in str(e) and "b has nothing" in str(e) and "\n" not in str(e)
    assert isinstance(e, ProviderError)


def test_empty_answer_moves_on(chain, market):
    cfg = chain(Scripted("a", market, lambda q: fp.empty_bars()), Scripted("b", market))
    df = fp.get_prices("AAPL", "2026-03-02", "2026-03-06", config=cfg)
    assert df.attrs["provider"] == "b" and df.attrs["attempts"][0]["outcome"] == "empty"


def test_holiday_only_range_is_an_empty_frame_without_calls(chain, market):
    a = Scripted("a", market)
    cfg = chain(a)
    df = fp.get_prices("AAPL", "2026-04-03", "2026-04-05", config=cfg)  # Good Friday + weekend
    assert df.empty and list(df.columns) == list(fp.BAR_COLUMNS)
    assert str(df.index.dtype) == "datetime64[ns, America/New_York]"
    assert a.calls == [] and df.attrs["provider"] == "" and df.attrs["attempts"] == []


def test_stitches_missing_newest_sessions_from_the_next_provider(chain, market):
    lagging = Scripted("lagging", market, last=dt.date(2026, 6, 25))  # lacks 06-26, 06-29, 06-30
    full = Scripted("full", market)
    cfg = chain(lagging, full)
    df = fp.get_prices("AAPL", "2026-06-15", "2026-06-30", adjustment="total", config=cfg)
    pdt.assert_frame_equal(df, market.truth("AAPL", "2026-06-15", "2026-06-30", "1d", "total"), check_freq=False)
    assert full.calls == [(dt.date(2026, 6, 26), dt.date(2026, 6, 30))]  # only the gap
    assert df.attrs["provider"] == "lagging+full"
    assert [(s["provider"], str(s["first"].date()), str(s["last"].date())) for s in df.attrs["sources"]] == [
        ("lagging", "2026-06-15", "2026-06-25"), ("full", "2026-06-26", "2026-06-30")]
    gap = df.attrs["attempts"][1]
    assert gap["provider"] == "full" and gap["outcome"] == "ok" and "gap 2026-06-26..2026-06-30" in gap["detail"]


def test_stitches_both_ends_and_across_several_providers(chain, market):
    middle = Scripted("middle", market, first=dt.date(2026, 3, 9), last=dt.date(2026, 3, 11))
    tail_only = Scripted("tail_only", market, first=dt.date(2026, 3, 12))
    full = Scripted("full", market)
    cfg = chain(middle, tail_only, full)
    df = fp.get_prices("AAPL", "2026-03-02", "2026-03-13", interval="1m", config=cfg)
    pdt.assert_frame_equal(df, market.truth("AAPL", "2026-03-02", "2026-03-13", "1m", "splits"), check_freq=False)
    assert df.attrs["provider"] == "full+middle+tail_only"
    # head gap: tail_only answers empty (it only has 03-12 on), full fills it
    outcomes = [(a["provider"], a["outcome"]) for a in df.attrs["attempts"]]
    assert outcomes == [("middle", "ok"), ("tail_only", "empty"), ("full", "ok"), ("tail_only", "ok")]


def test_gap_nobody_can_fill_is_left_and_recorded(chain, market):
    lagging = Scripted("lagging", market, last=dt.date(2026, 6, 25))
    cfg = chain(lagging, Scripted("down", market, raising(ProviderUnavailable("down"))))
    df = fp.get_prices("AAPL", "2026-06-22", "2026-06-30", config=cfg)
    assert df.index[-1] == pd.Timestamp("2026-06-25", tz="America/New_York")
    assert df.attrs["provider"] == "lagging"
    assert df.attrs["attempts"][-1]["outcome"] == "failed" and "gap 2026-06-26..2026-06-30" in df.attrs["attempts"][-1]["detail"]


def test_sessions_after_today_are_not_gaps(chain, market):
    full = Scripted("full", market)
    cfg = chain(Scripted("a", market), full).merged({"FINRPT_PROVIDERS_TODAY": "2026-06-26"})
    df = fp.get_prices("AAPL", "2026-06-22", "2026-06-30", config=cfg)
    assert df.attrs["provider"] == "a" and full.calls == []


def test_providers_argument_overrides_config_order(chain, market):
    cfg = chain(Scripted("a", market), Scripted("b", market))
    assert fp.get_prices("AAPL", "2026-03-02", "2026-03-03", providers=["b", "a"], config=cfg).attrs["provider"] == "b"
    assert fp.get_prices("AAPL", "2026-03-02", "2026-03-03", providers="b", config=cfg).attrs["provider"] == "b"
    with pytest.raises(AllProvidersFailed, match="provider list is empty"):
        fp.get_prices("AAPL", "2026-03-02", "2026-03-03", providers=[], config=cfg)
    with pytest.raises(InvalidQuery, match="non-empty strings"):
        fp.get_prices("AAPL", "2026-03-02", "2026-03-03", providers=[""], config=cfg)
