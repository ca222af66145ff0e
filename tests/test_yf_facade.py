"""finrpt_providers.yf against the real yfinance: the same calls, over the same fake Yahoo,
give equal frames; prices from the chain (also from the flat files: equal to the truth)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from finrpt_providers import yf as ours
from finrpt_providers.config import Config
from finrpt_providers.errors import InvalidQuery
from finrpt_providers.testing import statements
from finrpt_providers.providers.yfinance import _session_by_base, _yfinance_scope
from tests.conftest import report_flatfiles

START, END = "2025-11-10", "2025-12-20"


@pytest.fixture(scope="module")
def flatfiles(market):
    import datetime as dt

    with report_flatfiles(market, dt.date(2025, 11, 1), dt.date(2025, 12, 31)) as ff:
        yield ff


@pytest.fixture
def ycfg(fake_yahoo, tmp_path):
    return Config.load({"FINRPT_YFINANCE_BASE_URL": fake_yahoo.url, "FINRPT_YFINANCE_TIMEOUT": "5",
                        "FINRPT_PROVIDERS_TODAY": "2026-07-01", "FINRPT_PRICE_PROVIDERS": "yfinance",
                        "FINRPT_ACTIONS_PROVIDERS": "yfinance", "FINRPT_PROVIDERS_CACHE_DIR": str(tmp_path)},
                       environ={})


def real(fake_yahoo, fn):
    """A call on the real yfinance, over the fake Yahoo."""
    with _yfinance_scope(fake_yahoo.url, 5.0) as yf:
        return fn(yf, _session_by_base[(fake_yahoo.url, 5.0)])


@pytest.mark.parametrize("kw", [{}, {"auto_adjust": False}, {"actions": False}])
def test_history_equals_yfinance(ycfg, fake_yahoo, kw):
    want = real(fake_yahoo, lambda yf, _s: yf.Ticker("NVDA").history(start=START, end=END, **kw))
    got = ours.Ticker("NVDA", config=ycfg).history(start=START, end=END, **kw)
    assert list(got.columns) == list(want.columns) and got.index.name == want.index.name
    assert got.index.dtype == want.index.dtype and dict(got.dtypes) == dict(want.dtypes)
    pdt.assert_frame_equal(got, want, check_freq=False, rtol=1e-9)
    assert got.attrs["provider"] == "yfinance"


def test_history_from_the_flat_files_has_yfinances_shape_and_the_true_values(flatfiles, fake_yahoo, ycfg,
                                                                             market):
    cfg = ycfg.merged({**flatfiles.config(), "FINRPT_PRICE_PROVIDERS": "massive_flatfiles,yfinance"})
    want = real(fake_yahoo, lambda yf, _s: yf.Ticker("NVDA").history(start=START, end=END))
    got = ours.Ticker("NVDA", config=cfg).history(start=START, end=END)
    assert got.attrs["provider"] == "massive_flatfiles"
    pdt.assert_frame_equal(got, want, check_freq=False, rtol=1e-6)  # Yahoo's total adjustment = ours


def test_actions_dividends_and_splits_equal_yfinance(ycfg, fake_yahoo):
    t = ours.Ticker("NVDA", config=ycfg)
    for attr in ("dividends", "splits", "actions"):
        want = real(fake_yahoo, lambda yf, _s, a=attr: getattr(yf.Ticker("NVDA"), a))
        got = getattr(t, attr)
        assert got.index.dtype == want.index.dtype, attr  # the unit yfinance's pandas gives (s/us/ns)
        if isinstance(want, pd.Series):
            pdt.assert_series_equal(got, want, check_freq=False, check_index_type=False, rtol=1e-9)
        else:
            pdt.assert_frame_equal(got, want, check_freq=False, check_index_type=False, rtol=1e-9)


@pytest.mark.parametrize("group_by", ["column", "ticker"])
def test_download_equals_yfinance(ycfg, fake_yahoo, group_by):
    want = real(fake_yahoo, lambda yf, s: yf.download(["NVDA", "AAPL"], start=START, end=END, progress=False,
                                                      group_by=group_by, session=s))
    got = ours.download(["NVDA", "AAPL"], start=START, end=END, group_by=group_by, config=ycfg)
    if group_by == "ticker":  # yfinance orders the tickers as its threads finish: ours sorts them
        assert set(got.columns) == set(want.columns)
        want = want[list(got.columns)]
    assert list(got.columns) == list(want.columns) and list(got.columns.names) == list(want.columns.names)
    assert got.index.dtype == want.index.dtype and got.index.name == want.index.name
    pdt.assert_frame_equal(got, want, check_freq=False, check_dtype=False, rtol=1e-9)


def test_download_of_one_ticker_and_a_bad_one(ycfg, fake_yahoo):
    want = real(fake_yahoo, lambda yf, s: yf.download("NVDA", start=START, end=END, progress=False, session=s))
    got = ours.download("NVDA", start=START, end=END, config=ycfg)
    pdt.assert_frame_equal(got, want, check_freq=False, check_dtype=False, rtol=1e-9)
    got = ours.download("NVDA NOPE", start=START, end=END, config=ycfg)
    assert got[("Close", "NOPE")].isna().all() and "NOPE" in got.attrs["failed"]


def test_fast_info_info_periods_and_what_is_not_implemented(ycfg):
    t = ours.Ticker("BRK-B", config=ycfg)
    h = t.history(period="5d")
    assert len(h) == 5 and str(h.index[-1].date()) == "2026-06-30"
    assert t.fast_info.last_price == pytest.approx(h["Close"].iloc[-1])
    assert t.fast_info["lastPrice"] == t.fast_info.last_price and t.fast_info.currency == "USD"
    assert t.info["symbol"] and t.info["currency"] == "USD"
    month = t.history(period="1mo")
    assert str(month.index[0].date()) >= "2026-05-30"
    with pytest.raises(NotImplementedError, match=r"yfinance\.Ticker\(\.\.\.\)\.options"):
        t.options
    with pytest.raises(InvalidQuery, match="prepost must be True or False"):
        t.history(prepost="yes")
    with pytest.raises(NotImplementedError, match="interval='90m'"):
        t.history(interval="90m")
    with pytest.raises(NotImplementedError, match="yfinance.shared"):
        ours.shared
    empty = ours.Ticker("NOPE", config=ycfg).history(start=START, end=END)
    assert empty.empty and "NOPE" in empty.attrs["error"] or empty.attrs["error"]
    assert np.all(empty.columns == ["Open", "High", "Low", "Close", "Volume", "Dividends", "Stock Splits"])


@pytest.mark.parametrize("attr", ["quarterly_income_stmt", "quarterly_financials", "quarterly_balance_sheet",
                                  "quarterly_cashflow", "income_stmt", "financials", "balance_sheet", "cashflow"])
def test_statements_equal_yfinance_with_its_row_labels(ycfg, fake_yahoo, attr):
    want = real(fake_yahoo, lambda yf, _s: getattr(yf.Ticker("AAPL"), attr))
    got = getattr(ours.Ticker("AAPL", config=ycfg), attr)
    pdt.assert_frame_equal(got, want)
    if attr.startswith("quarterly_income") or attr == "quarterly_financials":
        assert len(got) and "Diluted EPS" in got.index  # what finrpt's key-data table reads


def test_info_comes_from_the_first_source_serving_it(ycfg, fake_yahoo):
    want = real(fake_yahoo, lambda yf, _s: yf.Ticker("AAPL").info)
    got = ours.Ticker("AAPL", config=ycfg).info
    assert got == want and got["currency"] == "USD"


def test_statements_from_massive_when_it_comes_first(ycfg, rest, fake_yahoo):
    from tests.conftest import REST_KEY

    cfg = ycfg.merged({"MASSIVE_API_KEY": REST_KEY, "MASSIVE_REST_BASE_URL": rest.url,
                       "FINRPT_STATEMENTS_PROVIDERS": "massive_rest,yfinance"})
    t = ours.Ticker("AAPL", config=cfg)
    q = t.quarterly_income_stmt
    assert list(q.columns.strftime("%Y-%m-%d")) == ["2026-03-31", "2025-12-31", "2025-09-30", "2025-06-30"]
    assert list(q.index) == ["Total Revenue", "Operating Income", "Net Income", "Diluted EPS"]
    assert q.loc["Total Revenue", "2025-06-30"] == 9.1e10 and q.loc["Diluted EPS", "2026-03-31"] == 1.66
    y = t.balance_sheet
    assert list(y.index) == ["Total Assets", "Total Liabilities Net Minority Interest", "Stockholders Equity"]
    assert y.loc["Total Assets", "2022-09-30"] == statements.year("assets", 3.5e11, "2022-09-30")  # a stock: Q4's
    assert list(t.quarterly_cashflow.index) == ["Operating Cash Flow"]
    # and the order is the configuration's: yfinance first gives Yahoo's frames
    yahoo_first = ours.Ticker("AAPL", config=cfg.merged({"FINRPT_STATEMENTS_PROVIDERS": "yfinance,massive_rest"}))
    pdt.assert_frame_equal(yahoo_first.quarterly_income_stmt,
                           real(fake_yahoo, lambda yf, _s: yf.Ticker("AAPL").quarterly_income_stmt))
    none = ours.Ticker("AAPL", config=cfg.merged({"FINRPT_STATEMENTS_PROVIDERS": ""}))
    assert none.income_stmt.empty


def test_fast_info_equals_yfinance_for_the_keys_it_serves(ycfg, fake_yahoo):
    keys = ["last_price", "regular_market_previous_close", "open", "day_high", "day_low", "last_volume", "currency"]
    want = real(fake_yahoo, lambda yf, _s: [yf.Ticker("AAPL").fast_info[k] for k in keys])
    fi = ours.Ticker("AAPL", config=ycfg).fast_info
    got = [fi[k] for k in keys]
    assert got[-1] == want[-1] and got[:-1] == pytest.approx(want[:-1], rel=1e-9)
    with pytest.raises(NotImplementedError, match="extended-hours"):
        fi["previous_close"]


def test_download_with_actions_equals_yfinance_volume_dtype_included(ycfg, fake_yahoo):
    want = real(fake_yahoo, lambda yf, s: yf.download(["NVDA", "AAPL"], start=START, end=END, progress=False,
                                                      actions=True, session=s))
    got = ours.download(["NVDA", "AAPL"], start=START, end=END, actions=True, config=ycfg)
    assert list(got.columns) == list(want.columns)
    assert (got["Dividends"] != 0).any().any() or (got["Stock Splits"] != 0).any().any()
    pdt.assert_frame_equal(got, want, check_freq=False, rtol=1e-9)  # dtypes too: Volume int64 as yfinance's


def test_tickers_as_in_yfinances_docs(ycfg, fake_yahoo):
    want = real(fake_yahoo, lambda yf, s: yf.Tickers("nvda aapl", session=s))
    got = ours.Tickers("nvda aapl", config=ycfg)
    assert got.symbols == want.symbols and set(got.tickers) == set(want.tickers)
    pdt.assert_frame_equal(got.tickers["NVDA"].history(start=START, end=END),
                           real(fake_yahoo, lambda yf, s: yf.Ticker("NVDA", session=s).history(start=START, end=END)),
                           check_freq=False, rtol=1e-9)
    w = real(fake_yahoo, lambda yf, s: yf.Tickers("nvda aapl", session=s).history(start=START, end=END,
                                                                                   progress=False, session=s))
    g = got.history(start=START, end=END)
    assert sorted(g.columns) == sorted(w.columns)
    pdt.assert_frame_equal(g[list(w.columns)], w, check_freq=False, rtol=1e-9)


def test_rounding_and_keepna_as_yfinance_and_repair_refused_naming_the_difference(ycfg, fake_yahoo):
    want = real(fake_yahoo, lambda yf, s: yf.Ticker("NVDA", session=s).history(start=START, end=END, rounding=True,
                                                                              keepna=True))
    got = ours.Ticker("NVDA", config=ycfg).history(start=START, end=END, rounding=True, keepna=True)
    pdt.assert_frame_equal(got, want, check_freq=False)
    d = ours.download(["NVDA", "AAPL"], start=START, end=END, rounding=True, keepna=True, config=ycfg)
    assert (d["Close"].round(2) == d["Close"]).all().all()
    with pytest.raises(NotImplementedError, match="never rewrites a source's price"):
        ours.Ticker("NVDA", config=ycfg).history(start=START, end=END, repair=True)
    with pytest.raises(NotImplementedError, match="repair=True"):
        ours.download("NVDA", start=START, end=END, repair=True, config=ycfg)
