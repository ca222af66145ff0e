"""Report helpers: the key-data table, a JSON-safe performance list, labelled statement text."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from finrpt_providers import report


@pytest.fixture(scope="module")
def box(market):
    from finrpt_providers.testing.sandbox import sandbox

    with sandbox(market, minute_days=[]) as b:
        yield b


def test_key_data_from_the_chain_with_the_truth(box):
    config, market = box
    end = market.sessions[-1]
    got = report.key_data("AAPL", end.isoformat(), config=config)
    last = market.sessions[-2]
    truth = market.truth("AAPL", last - pd.DateOffset(weeks=52), last, "1d", "splits")
    assert got["as_of"] == str(last) and got["currency"] == "USD"
    assert got["last_close"] == round(truth["close"].iloc[-1], 2)
    assert got["high_52w"] == round(truth["high"].max(), 2) and got["low_52w"] == round(truth["low"].min(), 2)
    six = truth[truth.index >= truth.index[-1] - pd.DateOffset(months=6)]
    assert got["avg_volume_6m"] == int(round(six["volume"].mean()))
    json.dumps(got)  # JSON-safe


def test_performance_is_json_safe_and_rebased(box):
    config, market = box
    rows = report.performance("NVDA", "2025-11-03", "2025-12-20", config=config)
    assert rows[0]["rebased"] == 100.0 and rows[0]["date"] == "2025-11-03"
    truth = market.truth("NVDA", "2025-11-03", "2025-12-19", "1d", "total")["close"]
    assert rows[-1]["rebased"] == round(truth.iloc[-1] / truth.iloc[0] * 100, 2)
    assert json.loads(json.dumps(rows)) == rows


def test_statement_text_keeps_every_label_and_scales():
    frame = pd.DataFrame({pd.Timestamp("2026-03-31"): [96.46e9, 1.57, None],
                          pd.Timestamp("2025-12-31"): [94.64e9, 1.54, 3.1e6]},
                         index=["Total Revenue", "Diluted EPS", "Other"])
    text = report.statement_text(frame, "Income statement (quarterly)")
    assert text.splitlines() == ["Income statement (quarterly)",
                                 "Total Revenue: 2026-03-31 96.46B; 2025-12-31 94.64B",
                                 "Diluted EPS: 2026-03-31 1.57; 2025-12-31 1.54",
                                 "Other: 2025-12-31 3.10M"]
    assert report.statement_text(pd.DataFrame(), "Cash flow") == "Cash flow: no data"
    assert report.prompt_price(123.456) == 123.46 and report.prompt_price(0.123456) == 0.1235


class _Info:
    """finrpt_providers.yf.Ticker with the source's info replaced (the prices stay the chain's)."""

    def __init__(self, info):
        self._info = info

    def __call__(self, ticker, config=None):
        return self

    @property
    def info(self):
        return dict(self._info)


@pytest.mark.parametrize("shares, shown", [(float("nan"), "nan"), (float("inf"), "inf"), ("15.2B", "'15.2B'"),
                                           (True, "True"), (-5_000_000, "-5000000"), (0, "0"),
                                           (10 ** 400, "1000000")])
def test_key_data_leaves_out_a_share_count_that_is_no_positive_number(box, monkeypatch, caplog, shares, shown):
    import finrpt_providers.yf as yfmod

    config, market = box
    monkeypatch.setattr(yfmod, "Ticker", _Info({"currency": "USD", "sharesOutstanding": shares}))
    got = report.key_data("AAPL", market.sessions[-1].isoformat(), config=config)
    assert got["shares_outstanding"] is None and got["market_cap"] is None
    assert len(got["notes"]) == 1 and "sharesOutstanding" in got["notes"][0] and shown in got["notes"][0]
    assert any("sharesOutstanding" in r.getMessage() for r in caplog.records)
    json.loads(json.dumps(got, allow_nan=False))  # JSON-safe: no NaN or inf anywhere


def test_key_data_market_cap_is_close_times_shares_or_the_sources_when_shares_are_bad(box, monkeypatch):
    import finrpt_providers.yf as yfmod

    config, market = box
    end = market.sessions[-1].isoformat()
    last = market.sessions[-2]
    close = market.truth("AAPL", last, last, "1d", "splits")["close"].iloc[-1]
    monkeypatch.setattr(yfmod, "Ticker", _Info({"sharesOutstanding": 15_204_137_000}))
    got = report.key_data("AAPL", end, config=config)
    assert got["shares_outstanding"] == 15_204_137_000 and "notes" not in got
    assert got["market_cap"] == int(round(close * 15_204_137_000))
    monkeypatch.setattr(yfmod, "Ticker", _Info({"sharesOutstanding": "n/a", "marketCap": 3.1e12}))
    got = report.key_data("AAPL", end, config=config)
    assert got["shares_outstanding"] is None and got["market_cap"] == 3_100_000_000_000
    monkeypatch.setattr(yfmod, "Ticker", _Info({"marketCap": -1}))
    got = report.key_data("AAPL", end, config=config)
    assert got["market_cap"] is None and "marketCap" in got["notes"][0]
