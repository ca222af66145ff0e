"""The OpenBB provider 'finrpt' over the sandbox: OpenBB's own fetcher test, and the route as
a user calls it (OpenBB's query executor and the registry the routers read) giving the same
bars as get_prices. No network."""

from __future__ import annotations

import datetime as dt

import pytest

pytest.importorskip("openbb_core", reason="the OpenBB integration is installed from integrations/openbb")

import finrpt_providers as fp  # noqa: E402
from openbb_finrpt_providers import finrpt_provider  # noqa: E402
from openbb_finrpt_providers.fetchers import (  # noqa: E402
    FinrptEquityHistoricalFetcher,
    FinrptHistoricalDividendsFetcher,
    FinrptHistoricalSplitsFetcher,
    FinrptMarketSnapshotsFetcher,
)

START, END = dt.date(2026, 4, 1), dt.date(2026, 5, 29)


@pytest.fixture(scope="module")
def box():
    from finrpt_providers.testing import SyntheticMarket
    from finrpt_providers.testing.sandbox import sandbox

    # nine months hold NVDA's split, AAPL's dividends and the range asked: a quicker start
    with sandbox(SyntheticMarket("2025-10-01", "2026-06-30"), minute_days=[]) as b:
        yield b


@pytest.fixture
def env(box, monkeypatch):
    """The sandbox's settings as the environment OpenBB's process would have, the REST key
    given as an OpenBB credential instead."""
    config, _market = box
    for k, v in config._values.items():
        if k != "MASSIVE_API_KEY":
            monkeypatch.setenv(k, v)
    monkeypatch.delenv("MASSIVE_API_KEY", raising=False)
    return {"finrpt_massive_api_key": config._values["MASSIVE_API_KEY"]}


def _execute(model: str, params: dict, credentials: dict):
    import asyncio

    from openbb_core.provider.query_executor import QueryExecutor
    from pydantic import SecretStr

    secrets = {k: SecretStr(v) for k, v in credentials.items()}  # as OpenBB's user settings hold them
    return asyncio.run(QueryExecutor().execute(provider_name="finrpt", model_name=model, params=params,
                                               credentials=secrets))


def test_openbbs_fetcher_test_passes_for_every_fetcher(env):
    FinrptEquityHistoricalFetcher.test({"symbol": "AAPL", "start_date": START, "end_date": END}, env)
    FinrptEquityHistoricalFetcher.test({"symbol": "AAPL,NVDA", "start_date": START, "end_date": END,
                                        "adjustment": "total"}, env)
    FinrptHistoricalSplitsFetcher.test({"symbol": "NVDA"}, env)
    FinrptHistoricalDividendsFetcher.test({"symbol": "AAPL"}, env)
    FinrptMarketSnapshotsFetcher.test({"date": dt.date(2026, 5, 29)}, env)


@pytest.mark.parametrize("adjustment", ["raw", "splits", "total"])
def test_the_route_gives_the_same_bars_as_get_prices(env, box, adjustment):
    config, _market = box
    got = _execute("EquityHistorical", {"symbol": "NVDA", "start_date": START, "end_date": END,
                                        "adjustment": adjustment}, env)
    want = fp.get_prices("NVDA", START, END, adjustment=adjustment, config=config)
    rows = got.result
    assert [r.date for r in rows] == [ts.date() for ts in want.index]
    assert [r.close for r in rows] == pytest.approx(want["close"].tolist(), rel=1e-12)
    assert [r.volume for r in rows] == pytest.approx(want["volume"].tolist(), rel=1e-12)
    assert got.metadata["provider"] == want.attrs["provider"] and got.metadata["adjustment"] == adjustment


def test_a_basket_through_the_route(env, box):
    config, _market = box
    got = _execute("EquityHistorical", {"symbol": "AAPL,NVDA,SPY", "start_date": START, "end_date": END}, env)
    want = fp.get_prices(["AAPL", "NVDA", "SPY"], START, END, config=config)
    assert [(r.symbol, r.date) for r in got.result] == [(t, ts.date()) for t, ts in want.index]
    assert [r.close for r in got.result] == pytest.approx(want["close"].tolist(), rel=1e-12)
    assert set(got.metadata["sources"]) == {"AAPL", "NVDA", "SPY"}


def test_finrpt_is_listed_and_errors_are_openbbs(env):
    from openbb_core.app.model.abstract.error import OpenBBError
    from openbb_core.provider.registry import RegistryLoader

    assert "finrpt" in RegistryLoader.from_extensions().providers
    assert finrpt_provider.credentials == ["finrpt_massive_api_key", "finrpt_massive_s3_access_key",
                                           "finrpt_massive_s3_secret_key"]
    with pytest.raises(Exception, match="adjustment 'dividends' is not supported: use 'raw'"):
        _execute("EquityHistorical", {"symbol": "AAPL", "start_date": START, "end_date": END,
                                      "adjustment": "dividends"}, env)
    with pytest.raises(OpenBBError, match="NOPE"):
        _execute("EquityHistorical", {"symbol": "NOPE", "start_date": START, "end_date": END}, env)
    with pytest.raises(OpenBBError) as info:
        _execute("EquityHistorical", {"symbol": "AAPL", "start_date": START, "end_date": END,
                                      "providers": "massive_rest"}, {})
    assert "MASSIVE_API_KEY" in str(info.value) and env["finrpt_massive_api_key"] not in str(info.value)


@pytest.mark.parametrize("word, ours", [("splits_only", "splits"), ("splits_and_dividends", "total"),
                                        ("unadjusted", "raw")])
def test_openbbs_adjustment_words_mean_ours(env, box, word, ours):
    config, _ = box
    got = _execute("EquityHistorical", {"symbol": "NVDA", "start_date": START, "end_date": END,
                                        "adjustment": word}, env)
    want = fp.get_prices("NVDA", START, END, adjustment=ours, config=config)
    assert got.metadata["adjustment"] == ours
    assert [r.close for r in got.result] == pytest.approx(want["close"].tolist(), rel=1e-12)


def test_a_partly_answered_basket_warns_as_openbb_does(env, box):
    from openbb_core.app.model.abstract.warning import OpenBBWarning

    with pytest.warns(OpenBBWarning, match="no bars for ZZZZ"):
        got = _execute("EquityHistorical", {"symbol": "AAPL,ZZZZ", "start_date": START, "end_date": END}, env)
    assert {r.symbol for r in got.result} == {"AAPL"} and "ZZZZ" in got.metadata["failed"]


def test_a_snapshot_on_a_split_day_changes_against_the_previous_close_in_todays_basis(env, box):
    config, market = box
    day = dt.date(2025, 11, 17)  # NVDA's 4-for-1 split in the synthetic market
    got = {r.symbol: r for r in _execute("MarketSnapshots", {"date": day}, env)}
    truth = market.truth("NVDA", market.sessions[market.sessions.index(day) - 1], day, "1d", "splits")
    raw = market.truth("NVDA", day, day, "1d", "raw")
    want = truth["close"].iloc[-1] / truth["close"].iloc[-2] - 1
    assert abs(want) < 0.2  # an ordinary day, not the -75% of two share bases
    assert got["NVDA"].change_percent == pytest.approx(want, rel=1e-9)
    assert got["NVDA"].close == pytest.approx(raw["close"].iloc[-1], rel=1e-12)  # the bar stays as traded
    assert got["NVDA"].prev_close == pytest.approx(raw["close"].iloc[-1] / (1 + want), rel=1e-9)


def test_include_actions_puts_the_split_and_the_dividends_on_their_sessions(env, box):
    config, market = box
    got = _execute("EquityHistorical", {"symbol": "NVDA,AAPL", "start_date": dt.date(2025, 11, 3),
                                        "end_date": dt.date(2026, 3, 31), "include_actions": True}, env)
    splits = {(r.symbol, r.date): r.split_ratio for r in got.result if r.split_ratio}
    assert splits == {("NVDA", dt.date(2025, 11, 17)): 4.0}
    cash = {(r.symbol, r.date): r.dividend for r in got.result if r.dividend}
    want = fp.get_actions("AAPL", config=config)
    want = want[(want["Dividends"] > 0) & (want.index.date >= dt.date(2025, 11, 3))
                & (want.index.date <= dt.date(2026, 3, 31))]["Dividends"]
    assert want.size and {d: v for (t, d), v in cash.items() if t == "AAPL"} == pytest.approx(
        {ts.date(): v for ts, v in want.items()}, rel=1e-12)
    assert all(r.dividend is None for r in _execute("EquityHistorical", {"symbol": "AAPL", "start_date": START,
                                                                         "end_date": END}, env).result)


def test_an_intraday_range_across_a_dst_change_keeps_a_datetime_index():
    import pandas as pd
    from openbb_core.app.model.obbject import OBBject

    from finrpt_providers.timebase import ET
    from openbb_finrpt_providers.fetchers import FinrptEquityHistoricalData

    stamps = pd.DatetimeIndex(["2026-03-06 10:00", "2026-03-09 10:00"]).tz_localize(ET)
    rows = [FinrptEquityHistoricalData(date=t.to_pydatetime(), open=1, high=1, low=1, close=1, volume=1)
            for t in stamps]
    df = OBBject(results=rows).to_df()
    assert isinstance(df.index, pd.DatetimeIndex) and str(df.index.tz) == "America/New_York"
    assert list(df.index) == list(stamps)
