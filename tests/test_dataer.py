"""The finrpt surface: finrpt's signatures and date rules, its Predictor lines, pickling."""

from __future__ import annotations

import datetime as dt
import pickle

import numpy as np
import pandas as pd
import pytest

from finrpt_providers import InvalidQuery, UnsupportedQuery
from finrpt_providers.dataer import Dataer, DataerMixin, is_us_stock
from finrpt_providers.testing import FakeFlatFiles
from tests.conftest import chain_config


@pytest.fixture(scope="module")
def flatfiles(market):
    # every day file (a total adjustment needs the close before each later ex-date), no minutes
    with FakeFlatFiles(market, days=market.sessions[:-1], minute_days=[]) as ff:
        yield ff


@pytest.fixture
def cfg(flatfiles, rest, fake_yahoo, tmp_path):
    return chain_config(flatfiles, rest, fake_yahoo, tmp_path)


def predictor_prompt(fin: dict) -> tuple[str, str]:
    """finrpt's Predictor agent builds its prompt with exactly these lines."""
    stock = ", ".join(str(d) + ": " + str(p) for d, p in zip(fin["stock_data"]["date"], fin["stock_data"]["Close"]))
    bench = ", ".join(str(d) + ": " + str(p) for d, p in zip(fin["csi300_stock_data"]["date"],
                                                              fin["csi300_stock_data"]["close"]))
    return stock, bench


def test_yf_method_returns_finrpts_dict(cfg, market):
    fin = Dataer(cfg).get_finacncials_yf("NVDA", "2025-12-20", "2025-11-10")
    assert set(fin) >= {"stock_info", "stock_data", "stock_income", "stock_balance_sheet", "stock_cash_flow",
                        "sp500_stock_data", "csi300_stock_data"}
    info, sd = fin["stock_info"], fin["stock_data"]
    assert info["symbol"] == "NVDA" and info["currency"] == "USD" and info["provider"] == "massive_flatfiles"
    # yfinance's shape
    assert sd.index.name == "Date" and str(sd.index.tz) == "America/New_York"
    assert list(sd.columns) == ["Open", "High", "Low", "Close", "Volume", "Dividends", "Stock Splits", "date"]
    # end_date is exclusive; start inclusive; 'total' like yfinance's auto_adjust=True
    assert str(sd["date"].iloc[0]) == "2025-11-10" and str(sd["date"].iloc[-1]) == "2025-12-19"
    truth = market.truth("NVDA", "2025-11-10", "2025-12-19", "1d", "total")
    np.testing.assert_allclose(sd["Close"], truth["close"], rtol=1e-12)
    # corporate actions on their ex-dates: the split, and the dividend in today's split basis
    assert sd.loc["2025-11-17", "Stock Splits"] == 4.0 and sd["Stock Splits"].sum() == 4.0
    assert sd.loc["2025-12-10", "Dividends"] == pytest.approx(0.01)
    assert sd["Dividends"].sum() == pytest.approx(0.01)
    bench = fin["sp500_stock_data"]
    assert list(bench.columns[:2]) == ["date", "open"] and "close" in bench
    assert str(bench["date"].iloc[-1]) == "2025-12-19"
    # the S&P 500 itself where a provider serves it (no proxy), its level not a fund's price
    np.testing.assert_allclose(bench["close"], market.truth("I:SPX", "2025-11-10", "2025-12-19", "1d", "total")["close"],
                               rtol=1e-12)
    assert fin["stock_info"]["benchmark"]["ticker"] == "I:SPX" and fin["stock_info"]["benchmark"]["proxy"] is None


def test_predictor_lines_and_pickle(cfg):
    fin = Dataer(cfg).get_finacncials_massive("BRK.B", "2026-01-10", "2026-01-05")
    stock, bench = predictor_prompt(fin)
    assert stock.startswith("2026-01-05: ") and stock.count(", ") == 4  # 5 sessions, 01-05 .. 01-09
    assert bench.startswith("2026-01-05: ")
    back = pickle.loads(pickle.dumps(fin))
    pd.testing.assert_frame_equal(back["stock_data"], fin["stock_data"])
    assert predictor_prompt(back) == (stock, bench)


def test_massive_method_is_split_adjusted_and_default_window_is_three_months(cfg, market):
    fin = Dataer(cfg).get_finacncials_massive("NVDA", "2026-01-15")
    sd = fin["stock_data"]
    assert str(sd["date"].iloc[0]) == "2025-10-15" and str(sd["date"].iloc[-1]) == "2026-01-14"
    truth = market.truth("NVDA", "2025-10-15", "2026-01-14", "1d", "splits")
    np.testing.assert_allclose(sd["Close"], truth["close"], rtol=1e-12)
    assert fin["stock_info"]["adjustment"] == "splits"


def test_statements_are_yfinance_frames_up_to_end_date(cfg):
    fin = Dataer(cfg).get_finacncials_yf("AAPL", "2026-01-10", "2025-12-01")
    inc = fin["stock_income"]
    assert "Total Revenue" in inc.index
    assert [str(c.date()) for c in inc.columns] == ["2025-12-31", "2025-09-30", "2025-06-30"]
    assert not fin["stock_cash_flow"].empty and "Total Assets" in fin["stock_balance_sheet"].index


def test_statements_follow_their_source_order(cfg, caplog):
    only_massive = cfg.merged({"FINRPT_PRICE_PROVIDERS": "massive_flatfiles,massive_rest"})
    fin = Dataer(only_massive).get_finacncials_yf("AAPL", "2026-01-10", "2025-12-01")
    inc = fin["stock_income"]  # Massive's financials, in yfinance's labels, periods <= end_date
    assert "Diluted EPS" in inc.index and [str(c.date()) for c in inc.columns] == ["2025-12-31", "2025-09-30",
                                                                                   "2025-06-30"]
    none = only_massive.merged({"FINRPT_STATEMENTS_PROVIDERS": ""})
    with caplog.at_level("INFO"):
        fin = Dataer(none).get_finacncials_yf("AAPL", "2026-01-10", "2025-12-01")
    assert fin["stock_income"].empty and fin["stock_balance_sheet"].empty
    assert any("no source serves them (FINRPT_STATEMENTS_PROVIDERS)" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("code", ["600519.SS", "300750.SZ", "600519"])
def test_a_share_codes_are_refused_clearly(cfg, code):
    with pytest.raises(UnsupportedQuery, match=f"{code}.*A-share"):
        Dataer(cfg).get_finacncials_yf(code, "2026-01-10")
    assert not is_us_stock(code) and is_us_stock("AAPL") and is_us_stock("BRK.B")


def test_bad_dates_are_invalid(cfg):
    with pytest.raises(InvalidQuery, match="exclusive"):
        Dataer(cfg).get_finacncials_yf("AAPL", "2026-01-05", "2026-01-05")
    with pytest.raises(InvalidQuery, match="YYYY-MM-DD"):
        Dataer(cfg).get_finacncials_yf("AAPL", "05/01/2026")


def test_mixin_into_a_host_class_that_has_its_own_init(cfg):
    class HostDataer:  # stands for finrpt's Dataer: constructor needs things we never touch
        def __init__(self, database_name, openai_key):
            self.database_name = database_name

        def get_finacncials_ak(self, stock_code, end_date, start_date=None):
            return "akshare path"

    class Mixed(DataerMixin, HostDataer):
        finrpt_config = cfg

    d = Mixed("db.sqlite", "sk-...")
    fin = d.get_finacncials_yf("AAPL", "2026-01-10", "2026-01-05")
    assert len(fin["stock_data"]) == 5 and d.get_finacncials_ak("600519.SS", "2026-01-10") == "akshare path"


def test_a_split_listed_twice_shows_once_where_the_price_jumps(cfg, rest, market):
    rest.extra_splits = [("NVDA", "2025-11-12", 4.0)]  # a legacy duplicate listing, five sessions early
    fin = Dataer(cfg).get_finacncials_yf("NVDA", "2025-12-20", "2025-11-10")
    sd = fin["stock_data"]
    assert sd.loc["2025-11-17", "Stock Splits"] == 4.0 and sd["Stock Splits"].sum() == 4.0
    truth = market.truth("NVDA", "2025-11-10", "2025-12-19", "1d", "total")
    np.testing.assert_allclose(sd["Close"], truth["close"], rtol=1e-12)
