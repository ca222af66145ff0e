"""The whole market: cross-sections of every ticker (look-alikes and `NA` included, a few
hundred fillers) equal to the synthetic truth, from every provider that serves them."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

import finrpt_providers as fp
from finrpt_providers import InvalidQuery
from finrpt_providers.config import Config
from finrpt_providers.testing import FakeFlatFiles, FakeMassiveREST, SyntheticMarket
from finrpt_providers.testing.market import DEFAULT_TICKERS, TickerSpec

KEY = "market-key"
LOOKALIKES = ("NA", "BRK.A", "BRKA")
TICKERS = DEFAULT_TICKERS + tuple(TickerSpec(t, 50.0 + i, 0.02, 1e6, minutes=False)
                                  for i, t in enumerate(LOOKALIKES)) + tuple(
    TickerSpec(f"F{i:03d}", 10.0 + i % 90, 0.02, 2e5 + 1000 * i, minutes=False,
               splits=((dt.date(2026, 5, 20), 2.0),) if i % 50 == 7 else (),
               dividend=0.1 if i % 3 == 0 else 0.0, dividend_months=(5, 8, 11, 2) if i % 3 == 0 else ())
    for i in range(300))
START, END, TODAY = dt.date(2026, 1, 2), dt.date(2026, 6, 30), "2026-06-30"
WEEK = ("2026-05-18", "2026-05-22")  # a split (2026-05-20) and dividends inside


@pytest.fixture(scope="module")
def big():
    return SyntheticMarket(START, END, tickers=TICKERS)


@pytest.fixture(scope="module")
def fakes(big):
    days = [d for d in big.sessions if d >= dt.date(2026, 5, 1)]
    with FakeFlatFiles(big, days=days[:-1], minute_days=[]) as ff, FakeMassiveREST(big, api_key=KEY) as rest:
        yield ff, rest


@pytest.fixture
def cfg(fakes, tmp_path):
    ff, rest = fakes
    return Config.load({**ff.config(), "MASSIVE_API_KEY": KEY, "MASSIVE_REST_BASE_URL": rest.url,
                        "FINRPT_PROVIDERS_TODAY": TODAY, "FINRPT_PROVIDERS_CACHE_DIR": str(tmp_path),
                        "FINRPT_PRICE_PROVIDERS": "massive_flatfiles,massive_rest,yfinance"}, environ={})


def _check_truth(df: pd.DataFrame, big: SyntheticMarket, start: str, end: str, adjustment: str) -> None:
    tickers = sorted(set(df.index.get_level_values("ticker")))
    expected = sorted(t for t in big.tickers
                      if len(big.truth(t, dt.date.fromisoformat(start), dt.date.fromisoformat(end), "1d", "raw")))
    assert tickers == expected
    for t in tickers:
        truth = big.truth(t, dt.date.fromisoformat(start), dt.date.fromisoformat(end), "1d", adjustment)
        got = df.xs(t, level="ticker")
        assert got.index.equals(truth.index), t
        for c in ("open", "high", "low", "close", "volume"):
            np.testing.assert_allclose(got[c].to_numpy(), truth[c].to_numpy(), rtol=1e-6, err_msg=f"{t} {c}")


@pytest.mark.parametrize("provider", ["massive_flatfiles", "massive_rest"])
@pytest.mark.parametrize("adjustment", ["raw", "splits", "total"])
def test_a_market_week_equals_the_truth_for_every_ticker(cfg, big, provider, adjustment):
    df = fp.get_market(*WEEK, adjustment=adjustment, providers=[provider], config=cfg)
    assert list(df.index.names) == ["ticker", "timestamp"] and df.index.is_monotonic_increasing
    assert df.dtypes.to_dict() == fp.empty_bars().dtypes.to_dict()
    assert df.attrs["failed"] == {} and set(df.attrs["provider"].values()) == {provider}
    _check_truth(df, big, *WEEK, adjustment)
    for t in LOOKALIKES:
        assert t in df.index.get_level_values("ticker")


def test_one_session_by_default_stamped_at_the_session_not_the_window_end(cfg, fakes):
    _ff, rest = fakes
    df = fp.get_market("2026-05-20", adjustment="raw", providers=["massive_rest"], config=cfg)
    stamps = df.index.get_level_values("timestamp").unique()
    assert list(stamps) == [pd.Timestamp("2026-05-20", tz="America/New_York")]
    assert any("/grouped/" in p for p in rest.paths())


def test_sessions_the_flat_files_lack_come_from_the_next_provider(cfg, big):
    last = big.sessions[-1].isoformat()  # not published as a flat file
    df = fp.get_market("2026-06-26", last, adjustment="raw", config=cfg)
    providers = {s["session"]: s["provider"] for s in next(iter(df.attrs["sources"].values()))}
    assert providers[dt.date.fromisoformat(last)] == "massive_rest"
    assert providers[dt.date(2026, 6, 26)] == "massive_flatfiles"
    _check_truth(df, big, "2026-06-26", last, "raw")


def test_a_provider_that_cannot_serve_the_market_is_skipped_before_calling(cfg):
    with pytest.raises(fp.AllProvidersFailed) as info:
        fp.get_market(*WEEK, providers=["yfinance"], config=cfg)
    assert "does not serve whole-market" in str(info.value)
    with pytest.raises(InvalidQuery):
        fp.get_market("2026-05-22", "2026-05-18", config=cfg)


def test_without_a_market_wide_actions_source_adjusted_markets_are_refused_but_raw_works(cfg):
    cfg = cfg.merged({"FINRPT_ACTIONS_PROVIDERS": ""})
    with pytest.raises(fp.AllProvidersFailed, match="market-wide corporate actions"):
        fp.get_market(*WEEK, adjustment="splits", providers=["massive_flatfiles"], config=cfg)
    assert len(fp.get_market(*WEEK, adjustment="raw", providers=["massive_flatfiles"], config=cfg))


def test_cli_market_forms(cfg, tmp_path, monkeypatch, big):
    import json

    from tests.test_cli import run

    for k, v in cfg._values.items():
        monkeypatch.setenv(k, v)
    code, out, err = run("market", "2026-05-20", "--adjustment", "raw", "--format", "json", "--provider",
                         "massive_rest")
    assert code == 0, err
    rows = json.loads(out)
    assert {r["ticker"] for r in rows} >= set(LOOKALIKES) and len(rows) == len(big.cross_section(dt.date(2026, 5, 20)))
    assert all(r["timestamp"].startswith("2026-05-20T00:00:00") for r in rows)
    target = tmp_path / "mkt.parquet"
    code, _out, err = run("market", "2026-05-18", "2026-05-22", "--format", "parquet", "--output", str(target))
    assert code == 0, err
    flat = pd.read_parquet(target)
    assert flat.groupby("ticker").size().max() == 5 and "BRKA" in set(flat["ticker"])
    code, _out, err = run("market", "2026-05-20", "--provider", "yfinance")
    assert code == 1 and "does not serve whole-market" in err


def test_a_minute_market_across_an_ex_date_is_adjusted_with_daily_closes(tmp_path):
    """`total` on intraday bars weighs each dividend against the session's daily close before
    the ex-date, not a minute's close (this used to end in a bare TypeError)."""
    market = SyntheticMarket(start="2025-07-01", end="2025-08-29")
    d0, d1 = dt.date(2025, 8, 8), dt.date(2025, 8, 11)  # AAPL goes ex-dividend on 2025-08-11
    assert pd.Timestamp(d1, tz="America/New_York") in market.dividends("AAPL").index
    with FakeFlatFiles(market, days=market.sessions, minute_days=[d0, d1]) as ff, \
            FakeMassiveREST(market, api_key=KEY) as rest:
        cfg = Config.load({**ff.config(), "MASSIVE_API_KEY": KEY, "MASSIVE_REST_BASE_URL": rest.url,
                           "FINRPT_PROVIDERS_TODAY": (market.sessions[-1] + dt.timedelta(days=1)).isoformat(),
                           "FINRPT_PROVIDERS_CACHE_DIR": str(tmp_path),
                           "FINRPT_PRICE_PROVIDERS": "massive_flatfiles,massive_rest"}, environ={})
        got = fp.get_market(d0, d1, interval="1m", adjustment="total", config=cfg)
    assert got.attrs["failed"] == {}
    tickers = sorted(set(got.index.get_level_values("ticker")))
    assert "AAPL" in tickers
    for t in tickers:
        want = market.truth(t, d0, d1, "1m", "total")
        mine = got.xs(t, level="ticker")
        assert mine.index.equals(want.index), t
        np.testing.assert_allclose(mine["close"].to_numpy(), want["close"].to_numpy(), rtol=1e-9, err_msg=t)
    aapl = got.xs("AAPL", level="ticker")
    raw = market.truth("AAPL", d0, d0, "1m", "raw")
    assert aapl.loc[raw.index, "close"].iloc[-1] < raw["close"].iloc[-1]  # the dividend moved the day before
