"""Baskets: many tickers in one call, equal to the single-ticker answers, through every
provider and the chain; partial failure; the CLI forms."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pandas.testing as pdt
import pytest

import finrpt_providers as fp
from finrpt_providers import AllProvidersFailed, InvalidQuery
from finrpt_providers.config import Config
from finrpt_providers.testing import FakeFlatFiles
from tests.conftest import REST_KEY
from tests.test_cli import run

START, END = "2026-04-01", "2026-05-29"


@pytest.fixture(scope="module")
def _flat(market):
    days = [d for d in market.sessions if dt.date(2026, 3, 25) <= d <= dt.date(2026, 6, 5)]
    with FakeFlatFiles(market, days=days, minute_days=days[-6:]) as ff:
        yield ff


@pytest.fixture
def cfg(_flat, rest, fake_yahoo, market, tmp_path):
    return Config.load({**_flat.config(), "MASSIVE_API_KEY": REST_KEY, "MASSIVE_REST_BASE_URL": rest.url,
                        "FINRPT_YFINANCE_BASE_URL": fake_yahoo.url, "FINRPT_YFINANCE_TIMEOUT": "5",
                        "FINRPT_PROVIDERS_TODAY": "2026-06-05", "FINRPT_PROVIDERS_CACHE_DIR": str(tmp_path),
                        "MASSIVE_REST_BACKOFF": "0.01"}, environ={})


def _each_equals_single(basket: pd.DataFrame, tickers, cfg, **kw) -> None:
    assert list(basket.index.names) == ["ticker", "timestamp"]
    assert basket.index.is_monotonic_increasing
    assert sorted(set(basket.index.get_level_values("ticker"))) == sorted(tickers)
    for t in tickers:
        one = fp.get_prices(t, kw.pop("start", START), kw.pop("end", END), config=cfg, **kw)
        got = basket.xs(t, level="ticker")
        pdt.assert_frame_equal(got, one, check_freq=False)
        assert basket.attrs["provider"][t] == one.attrs["provider"]


@pytest.mark.parametrize("provider", ["massive_flatfiles", "massive_rest", "yfinance"])
@pytest.mark.parametrize("adjustment", ["raw", "splits", "total"])
def test_a_basket_equals_the_single_answers_for_every_provider(cfg, market, provider, adjustment):
    tickers = [t for t in market.tickers if t != "NEWC"][:5]
    basket = fp.get_prices(tickers, START, END, adjustment=adjustment, providers=[provider], config=cfg)
    assert set(basket.attrs["provider"].values()) == {provider} and basket.attrs["failed"] == {}
    _each_equals_single(basket, tickers, cfg, adjustment=adjustment, providers=[provider])


@pytest.mark.parametrize("interval", ["1m", "15m", "1wk", "1mo"])
def test_a_basket_of_derived_intervals_equals_the_single_answers(cfg, market, interval):
    tickers = ["AAPL", "NVDA", "SPY"]
    start, end = ("2026-06-01", "2026-06-02") if interval.endswith("m") and interval[-2:] != "mo" else (START, END)
    basket = fp.get_prices(tickers, start, end, interval=interval, config=cfg)
    for t in tickers:
        one = fp.get_prices(t, start, end, interval=interval, config=cfg)
        pdt.assert_frame_equal(basket.xs(t, level="ticker"), one, check_freq=False)
    if interval in ("1wk", "1mo"):
        assert set(basket.attrs["partial_last"]) == set(tickers)


def test_the_chain_falls_back_per_ticker_and_stitches(cfg, _flat, market):
    # the flat files end on 2026-06-05's eve for nobody: ask past their last file so REST fills the tail
    cfg = cfg.merged({"FINRPT_PROVIDERS_TODAY": "2026-06-12"})
    basket = fp.get_prices(["AAPL", "SPY"], "2026-06-01", "2026-06-11", adjustment="raw", config=cfg)
    for t in ("AAPL", "SPY"):
        assert basket.attrs["provider"][t] == "massive_flatfiles+massive_rest"
        truth = market.truth(t, dt.date(2026, 6, 1), dt.date(2026, 6, 11), "1d", "raw")
        pdt.assert_frame_equal(basket.xs(t, level="ticker")[["open", "close", "volume"]],
                               truth[["open", "close", "volume"]], check_freq=False)


def test_partial_failure_raise_names_every_failed_ticker_and_omit_answers_the_rest(cfg):
    tickers = ["AAPL", "NOPE1", "SPY", "NOPE2"]
    with pytest.raises(AllProvidersFailed) as info:
        fp.get_prices(tickers, START, END, config=cfg)
    assert "2 of 4" in str(info.value) and "NOPE1" in str(info.value) and "NOPE2" in str(info.value)
    assert set(info.value.attempts) == set(tickers)
    got = fp.get_prices(tickers, START, END, config=cfg, errors="omit")
    assert sorted(set(got.index.get_level_values("ticker"))) == ["AAPL", "SPY"]
    assert set(got.attrs["failed"]) == {"NOPE1", "NOPE2"} and "NoData" in got.attrs["failed"]["NOPE1"]


def test_duplicates_are_answered_once_and_bad_input_fails_before_any_request(cfg, rest):
    got = fp.get_prices(["spy", "SPY", "SPY"], START, END, config=cfg)
    assert list(got.attrs["tickers"]) == ["SPY"]
    for bad in ([], ["AAPL", "not a ticker!"], ["AAPL", 3], 42):
        with pytest.raises(InvalidQuery):
            fp.get_prices(bad, START, END, config=cfg)
    with pytest.raises(InvalidQuery, match="errors="):
        fp.get_prices(["AAPL"], START, END, config=cfg, errors="ignore")
    assert rest.aggregate_requests() == []


def test_a_ticker_listed_mid_range_is_answered_from_its_first_session(cfg, market):
    newc = market.specs["NEWC"]
    listed = getattr(newc, "listed", None) or market.truth("NEWC", market.start, market.end, "1d", "raw").index[0].date()
    start = (listed - dt.timedelta(days=20)).isoformat()
    end = (listed + dt.timedelta(days=20)).isoformat()
    cfg = cfg.merged({"FINRPT_PRICE_PROVIDERS": "massive_rest"})
    basket = fp.get_prices(["NEWC", "AAPL"], start, end, adjustment="raw", config=cfg)
    assert basket.xs("NEWC", level="ticker").index[0].date() == listed
    assert basket.xs("AAPL", level="ticker").index[0].date() < listed


def test_the_flat_file_store_reads_each_file_once_for_a_basket(cfg, _flat, monkeypatch):
    import pyarrow.parquet as pq

    fp.get_prices(["AAPL"], START, END, adjustment="raw", providers=["massive_flatfiles"], config=cfg)  # warm
    calls = []
    real = pq.ParquetFile.read_row_groups
    monkeypatch.setattr(pq.ParquetFile, "read_row_groups",
                        lambda self, groups, **k: calls.append(list(groups)) or real(self, groups, **k))
    fp.get_prices(["AAPL", "NVDA", "SPY", "BRK.B"], START, END, adjustment="raw", providers=["massive_flatfiles"],
                  config=cfg)
    assert len(calls) == 1  # the year's copy by ticker, read once for the four


def test_cli_fetch_many_tickers_and_a_tickers_file(cfg, tmp_path, monkeypatch):
    for k, v in cfg._values.items():
        monkeypatch.setenv(k, v)
    listing = tmp_path / "universe.txt"
    listing.write_text("# my universe\nSPY\nBRK.B   # a share class\n\nNOPE\n")
    code, out, err = run("fetch", "AAPL", "--tickers-file", str(listing), "--start", START, "--end", END,
                         "--format", "json", "--errors", "omit")
    assert code == 0, err
    body = json.loads(out)
    assert sorted(body["tickers"]) == ["AAPL", "BRK.B", "SPY"] and list(body["failed"]) == ["NOPE"]
    assert body["tickers"]["SPY"]["bars"][0]["timestamp"].startswith("2026-04-01")
    assert "NOPE: failed" in err
    target = tmp_path / "out.parquet"
    code, _out, err = run("fetch", "AAPL", "SPY", "--start", START, "--end", END, "--format", "parquet",
                          "--output", str(target))
    assert code == 0, err
    flat = pd.read_parquet(target)
    assert list(flat.columns[:2]) == ["ticker", "timestamp"] and set(flat["ticker"]) == {"AAPL", "SPY"}
    code, _out, err = run("fetch", "AAPL", "--start", START, "--format", "parquet")
    assert code == 2 and "--output" in err
    code, _out, err = run("fetch", "--tickers-file", str(tmp_path / "missing.txt"), "--start", START)
    assert code == 2 and "missing.txt" in err


def test_one_bad_ticker_in_a_long_basket_answer_fails_alone(cfg, monkeypatch):
    """The basket is checked as one frame; a frame breaking the contract is checked ticker by
    ticker, so the bad ticker goes to the next provider and the others are answered."""
    from finrpt_providers.providers.massive_flatfiles import MassiveFlatFilesProvider

    real = MassiveFlatFilesProvider.fetch_basket

    def corrupt(self, queries):
        long = real(self, queries).copy()
        bad = long.index.get_level_values("ticker") == "NVDA"
        long.loc[bad, "high"] = long.loc[bad, "low"] / 2  # high below low: a broken bar
        return long

    monkeypatch.setattr(MassiveFlatFilesProvider, "fetch_basket", corrupt)
    got = fp.get_prices(["AAPL", "NVDA", "SPY"], START, END, adjustment="raw",
                        providers=["massive_flatfiles", "massive_rest"], config=cfg)
    assert got.attrs["provider"] == {"AAPL": "massive_flatfiles", "NVDA": "massive_rest", "SPY": "massive_flatfiles"}
    nvda = [a for a in got.attrs["attempts"]["NVDA"] if a["provider"] == "massive_flatfiles"][0]
    assert nvda["outcome"] == "failed" and "high/low" in nvda["detail"]
    _each_equals_single(got.drop(index="NVDA", level="ticker"), ["AAPL", "SPY"], cfg, adjustment="raw")


def test_a_long_basket_answer_of_a_ticker_with_corporate_actions_failing_fails_alone(cfg, monkeypatch):
    from finrpt_providers import actions
    from finrpt_providers.errors import DataIntegrityError

    real = actions._first_valid

    def picky(ticker, *a, **kw):
        if ticker == "AAPL":
            raise DataIntegrityError("the listed split contradicts the closes", provider="massive_rest")
        return real(ticker, *a, **kw)

    monkeypatch.setattr(actions, "_first_valid", picky)
    got = fp.get_prices(["AAPL", "NVDA", "SPY"], START, END, adjustment="total", providers=["massive_flatfiles"],
                        config=cfg, errors="omit")
    assert sorted(set(got.index.get_level_values("ticker"))) == ["NVDA", "SPY"]
    assert "contradicts" in got.attrs["failed"]["AAPL"]


def test_a_rest_basket_runs_concurrently_under_one_shared_rate_limit(cfg, rest, monkeypatch):
    """Counted at the fake: with 4 workers and a limit of 3 requests per window, no window
    sees more than 3 requests, and the basket still completes (the minute is shrunk to 1 s)."""
    from finrpt_providers.providers import massive_rest

    monkeypatch.setattr(massive_rest.RateLimiter, "WINDOW", 1.0)
    rest.reset()
    tickers = ["AAPL", "SPY", "NVDA", "RSPL", "BRK.B", "NEWC"]
    cfg = cfg.merged({"MASSIVE_REST_REQUESTS_PER_MINUTE": "3", "MASSIVE_REST_WORKERS": "4",
                      "MASSIVE_API_KEY": REST_KEY, "FINRPT_ACTIONS_PROVIDERS": ""})
    got = fp.get_prices(tickers, START, END, adjustment="raw", providers=["massive_rest"], config=cfg)
    assert sorted(got.attrs["tickers"]) == sorted(tickers) and got.attrs["failed"] == {}
    arrivals = sorted(r.at for r in rest.aggregate_requests())
    assert len(arrivals) == len(tickers)
    # any 0.9 s of arrivals (a margin for the trip to the server) holds at most 3 requests
    worst = max(sum(1 for b in arrivals if a <= b < a + 0.9) for a in arrivals)
    assert worst <= 3
    assert arrivals[-1] - arrivals[0] >= 0.9  # 6 requests at 3 a window: the second three waited


def test_the_cli_draws_a_progress_bar_for_a_network_basket_only(cfg, tmp_path, monkeypatch):
    for k, v in cfg._values.items():
        monkeypatch.setenv(k, v)
    tickers = ["AAPL", "SPY", "NVDA", "RSPL", "BRK.B", "NEWC"]
    code, _out, err = run("fetch", *tickers, "--start", START, "--end", END, "--provider", "massive_rest",
                          "--adjustment", "raw", "--format", "csv")
    assert code == 0, err
    assert "6/6 tickers" in err and "ETA" in err
    code, _out, err = run("fetch", *tickers[:3], "--start", START, "--end", END, "--provider", "massive_rest",
                          "--adjustment", "raw", "--format", "csv")
    assert code == 0 and "tickers" not in err.split("\n")[0]  # a handful: no bar
    run("fetch", *tickers, "--start", START, "--end", END, "--provider", "massive_flatfiles", "--adjustment", "raw")
    code, _out, err = run("fetch", *tickers, "--start", START, "--end", END, "--provider", "massive_flatfiles",
                          "--adjustment", "raw", "--format", "csv")
    assert code == 0 and "/6 tickers" not in err  # the store answers in one read: nothing to show


def test_a_yfinance_basket_goes_through_yfinance_download_and_a_bad_ticker_is_asked_alone(cfg, monkeypatch):
    import yfinance

    calls = []
    real = yfinance.download
    monkeypatch.setattr(yfinance, "download", lambda tickers, **kw: calls.append(list(tickers)) or real(tickers, **kw))
    got = fp.get_prices(["AAPL", "SPY", "NVDA", "NOPE"], START, END, adjustment="raw", providers=["yfinance"],
                        config=cfg, errors="omit")
    assert calls == [["AAPL", "SPY", "NVDA", "NOPE"]]  # one batch (yfinance's threads, our session)
    assert sorted(got.attrs["tickers"]) == ["AAPL", "NVDA", "SPY"]
    assert "NOPE" in got.attrs["failed"] and "yfinance" in got.attrs["failed"]["NOPE"]
