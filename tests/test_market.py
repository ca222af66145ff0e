"""The synthetic market is the truth every fake renders: check it is a believable one."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from finrpt_providers import validate_bars
from finrpt_providers.testing import SyntheticMarket

ET = "America/New_York"


def test_deterministic(market):
    again = SyntheticMarket()
    pd.testing.assert_frame_equal(market.daily("AAPL"), again.daily("AAPL"))
    other = SyntheticMarket(seed=1)
    assert not np.allclose(market.daily("AAPL")["close"], other.daily("AAPL")["close"])


def test_real_nyse_sessions(market):
    days = set(market.sessions)
    assert dt.date(2025, 7, 4) not in days and dt.date(2025, 12, 25) not in days  # holidays
    assert dt.date(2026, 4, 3) not in days  # Good Friday
    assert dt.date(2025, 11, 28) in days and dt.date(2025, 11, 29) not in days  # half day; Saturday


def test_minute_bars_cover_extended_hours_and_half_days(market):
    full = market.minute("AAPL", dt.date(2026, 3, 2))
    assert full.index.min() >= pd.Timestamp("2026-03-02 04:00", tz=ET)
    assert full.index.max() <= pd.Timestamp("2026-03-02 19:59", tz=ET)
    assert full.index.max() >= pd.Timestamp("2026-03-02 19:00", tz=ET)
    assert len(full) < 16 * 60  # minutes without trades are absent
    half = market.minute("AAPL", dt.date(2025, 11, 28))
    assert half.index.max() <= pd.Timestamp("2025-11-28 16:59", tz=ET)  # 13:00 close + 4h
    regular = half[(half.index >= pd.Timestamp("2025-11-28 09:30", tz=ET))]
    assert regular.index.max() > pd.Timestamp("2025-11-28 12:55", tz=ET)


def test_daily_bars_aggregate_the_minutes(market):
    day = dt.date(2026, 3, 2)
    m = market.minute("NVDA", day)
    d = market.daily("NVDA").loc[pd.Timestamp(day, tz=ET)]
    assert d["open"] == m.loc[pd.Timestamp("2026-03-02 09:30", tz=ET), "open"]
    assert d["close"] == m[m.index < pd.Timestamp("2026-03-02 16:00", tz=ET)]["close"].iloc[-1]
    assert d["high"] == m["high"].max() and d["low"] == m["low"].min()
    assert d["volume"] == pytest.approx(m["volume"].sum(), rel=1e-12)
    assert d["transactions"] == m["transactions"].sum()


def test_frames_keep_the_bar_contract(market):
    for t in market.tickers:
        validate_bars(market.daily(t))
    validate_bars(market.raw("BRK.B", dt.date(2026, 6, 1), dt.date(2026, 6, 3), "1m"))
    validate_bars(market.truth("RSPL", "2026-01-02", "2026-02-27", "15m", "total"))


def test_volumes_become_fractional_in_2026(market):
    daily = market.daily("AAPL")
    before = daily.loc[:"2026-02-20", "volume"]
    after = daily.loc["2026-02-23":, "volume"]
    assert (before % 1 == 0).all()
    assert (after % 1 != 0).mean() > 0.9


def test_corporate_actions(market):
    raw = market.daily("NVDA")["close"]
    jump = raw.loc["2025-11-14"] / raw.loc["2025-11-17"]
    assert 3.3 < jump < 4.8  # as traded, the price falls about 4x at the 4-for-1 split
    rs = market.daily("RSPL")["close"]
    assert 2.5 < rs.loc["2026-01-20"] / rs.loc["2026-01-16"] < 3.6  # 1-for-3 reverse
    assert market.splits("RSPL").iloc[0] == pytest.approx(1 / 3)
    divs = market.dividends("AAPL")
    assert len(divs) >= 4 and (divs == 0.26).all()
    assert market.dividends("NVDA").loc[:"2025-11-14"].eq(0.04).all()  # declared pre-split: 4x
    assert market.daily("NEWC").index[0] == pd.Timestamp("2026-03-16", tz=ET)
    assert "BRK.B" in market.tickers


def test_truth_applies_the_documented_rules(market):
    raw = market.truth("NVDA", "2025-12-01", "2025-12-12", "1d", "raw")
    splits = market.truth("NVDA", "2025-12-01", "2025-12-12", "1d", "splits")
    total = market.truth("NVDA", "2025-12-01", "2025-12-12", "1d", "total")
    pd.testing.assert_frame_equal(raw, splits)  # no split after these days
    ratio = total["close"] / splits["close"]
    ex = pd.Timestamp("2025-12-10", tz=ET)
    prev_close = raw.loc[pd.Timestamp("2025-12-09", tz=ET), "close"]
    later = market.dividends("NVDA").loc["2025-12-11":]
    expected_after = np.prod([1 - c / market.daily("NVDA")["close"][market.daily("NVDA").index < e].iloc[-1]
                              for e, c in later.items()])
    assert ratio.loc[ex] == pytest.approx(expected_after, rel=1e-12)
    assert ratio.loc[pd.Timestamp("2025-12-09", tz=ET)] == pytest.approx(expected_after * (1 - 0.01 / prev_close), rel=1e-12)
    assert (total["volume"] == splits["volume"]).all()  # dividends never change volume
    pre = market.truth("NVDA", "2025-11-14", "2025-11-14", "1d", "splits")
    pre_raw = market.truth("NVDA", "2025-11-14", "2025-11-14", "1d", "raw")
    assert pre["close"].iloc[0] == pytest.approx(pre_raw["close"].iloc[0] / 4)
    assert pre["volume"].iloc[0] == pytest.approx(pre_raw["volume"].iloc[0] * 4)


def test_resampled_bars_use_bar_start_labels_and_weighted_vwap(market):
    day = dt.date(2026, 3, 2)
    m = market.raw("AAPL", day, day, "1m", extended_hours=True)
    # extended hours: buckets on the clock; the regular session: from the open (09:30)
    for extended, at in ((True, "10:00"), (False, "10:30")):
        h = market.raw("AAPL", day, day, "1h", extended_hours=extended)
        start = pd.Timestamp(f"2026-03-02 {at}", tz=ET)
        block = m[(m.index >= start) & (m.index < start + pd.Timedelta(hours=1))]
        row = h.loc[start]
        assert row["open"] == block["open"].iloc[0] and row["close"] == block["close"].iloc[-1]
        assert row["vwap"] == pytest.approx((block["vwap"] * block["volume"]).sum() / block["volume"].sum())
        assert row["transactions"] == block["transactions"].sum()
    assert list(market.raw("AAPL", day, day, "1h").index.strftime("%H:%M")) == [
        "09:30", "10:30", "11:30", "12:30", "13:30", "14:30", "15:30"]
