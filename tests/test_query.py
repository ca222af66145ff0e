import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from finrpt_providers import BAR_COLUMNS, DataIntegrityError, InvalidQuery, PriceQuery, empty_bars, validate_bars


@pytest.mark.parametrize("given_,expected", [
    ("AAPL", "AAPL"), ("aapl", "AAPL"), ("BRK.B", "BRK.B"), ("brk-b", "BRK.B"), ("BRK-B", "BRK.B"),
    ("JPMpC", "JPMpC"), ("F", "F"),
])
def test_ticker_spellings(given_, expected):
    assert PriceQuery(given_, "2024-01-02", "2024-01-03").ticker == expected


@pytest.mark.parametrize("bad,words", [
    ("", "empty"), (" AAPL", "whitespace"), ("AA PL", "whitespace"), ("AAPL\n", "control"),
    ("AA\x00PL", "control"), ("../etc", "path separator"), ("A/B", "path separator"), ("A\\B", "path separator"),
    ("600519.SS", "A-share"), ("600519", "A-share"), ("TOOLONGTICKER1", "not a US ticker"), ("A..B", "path"),
    ("$AAPL", "not a US ticker"),
])
def test_bad_tickers_name_the_problem(bad, words):
    with pytest.raises(InvalidQuery, match=words):
        PriceQuery(bad, "2024-01-02", "2024-01-03")


def test_non_string_ticker():
    with pytest.raises(InvalidQuery, match="must be a string"):
        PriceQuery(None, "2024-01-02", "2024-01-03")


def test_dates_accept_str_date_datetime_and_are_inclusive():
    q = PriceQuery("AAPL", dt.date(2024, 1, 2), dt.datetime(2024, 1, 5))
    assert (q.start, q.end) == (dt.date(2024, 1, 2), dt.date(2024, 1, 5))
    q = PriceQuery("AAPL", pd.Timestamp("2024-01-02"), "2024-01-02")
    assert q.start == q.end == dt.date(2024, 1, 2)
    # tz-aware datetimes are read in New York: 03:00 UTC on Jan 3 is Jan 2 22:00 ET
    with pytest.raises(InvalidQuery, match="time of day"):
        PriceQuery("AAPL", dt.datetime(2024, 1, 3, 3, tzinfo=dt.timezone.utc), "2024-01-05")
    q = PriceQuery("AAPL", dt.datetime(2024, 1, 3, 5, tzinfo=dt.timezone.utc), "2024-01-05")
    assert q.start == dt.date(2024, 1, 3)


@pytest.mark.parametrize("start,end,words", [
    ("2024-01-05", "2024-01-02", "after end"),
    ("2024/01/02", "2024-01-05", "YYYY-MM-DD"),
    ("1850-01-01", "2024-01-05", "before 1900"),
    ("2024-01-02 09:30", "2024-01-05", "time of day"),
    (20240102, "2024-01-05", "must be"),
])
def test_bad_dates(start, end, words):
    with pytest.raises(InvalidQuery, match=words):
        PriceQuery("AAPL", start, end)


def test_the_future_is_judged_by_the_configured_clock():
    import finrpt_providers as fp
    from finrpt_providers.config import Config

    pinned = Config.load({"FINRPT_PROVIDERS_TODAY": "2026-07-01", "FINRPT_PRICE_PROVIDERS": ""}, environ={})
    with pytest.raises(InvalidQuery, match=r"in the future \(today is 2026-07-01\)"):
        fp.get_prices("AAPL", "2026-07-03", "2026-07-06", config=pinned)
    # the day after the pinned today is still allowed (a session may be under way in another zone)
    with pytest.raises(fp.AllProvidersFailed, match="provider list is empty"):
        fp.get_prices("AAPL", "2026-07-02", "2026-07-06", config=pinned.merged({"FINRPT_PROVIDERS_TODAY": "2026-07-02"}))


def test_interval_and_adjustment_names():
    q = PriceQuery("AAPL", "2024-01-02", "2024-01-03", "60m", "TOTAL")
    assert (q.interval, q.adjustment) == ("1h", "total")
    with pytest.raises(InvalidQuery, match="1m, 5m, 15m, 30m, 1h, 1d"):
        PriceQuery("AAPL", "2024-01-02", "2024-01-03", "2h")
    with pytest.raises(InvalidQuery, match="'raw'.*'splits'.*'total'"):
        PriceQuery("AAPL", "2024-01-02", "2024-01-03", "1d", "dividends")


def test_invalid_query_is_a_value_error():
    assert issubclass(InvalidQuery, ValueError)


@given(st.text(max_size=20))
def test_any_text_is_a_valid_ticker_or_invalid_query(text):
    try:
        q = PriceQuery(text, "2024-01-02", "2024-01-03")
    except InvalidQuery:
        return
    assert q.ticker.replace(".", "").isalnum() and "/" not in q.ticker


def _bars(n=3, daily=True):
    idx = pd.date_range("2024-01-02", periods=n, freq="D" if daily else "min", tz="America/New_York")
    df = pd.DataFrame({"open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5, "volume": 100,
                       "vwap": np.nan, "transactions": pd.array([5] * n, dtype="Int64")}, index=idx)
    return df


def test_empty_bars_has_the_exact_schema():
    df = empty_bars()
    assert list(df.columns) == list(BAR_COLUMNS)
    assert str(df.index.dtype) == "datetime64[ns, America/New_York]" and df.index.name == "timestamp"
    assert [str(t) for t in df.dtypes] == ["float64"] * 6 + ["Int64"]


def test_validate_bars_normalises_lossless_things():
    df = _bars()[["close", "open", "high", "low", "volume", "vwap", "transactions"]]
    df.index = df.index.tz_convert("UTC").as_unit("s")
    df = df.iloc[::-1]
    df.attrs["x"] = 1
    out = validate_bars(df)
    assert list(out.columns) == list(BAR_COLUMNS)
    assert str(out.index.dtype) == "datetime64[ns, America/New_York]"
    assert out.index.is_monotonic_increasing and out["volume"].dtype == "float64"
    assert out.attrs == {"x": 1}


@pytest.mark.parametrize("breakage,words", [
    (lambda d: d.drop(columns="vwap"), "missing column"),
    (lambda d: d.tz_localize(None), "tz-naive"),
    (lambda d: d.reset_index(drop=True), "DatetimeIndex"),
    (lambda d: pd.concat([d, d.iloc[:1]]), "duplicate"),
    (lambda d: d.assign(high=9.5), "high/low"),
    (lambda d: d.assign(low=10.6), "high/low"),
    (lambda d: d.assign(close=np.nan), "missing prices"),
    (lambda d: d.assign(open=-1.0), "non-positive"),
    (lambda d: d.assign(volume=-5.0), "negative volume"),
    (lambda d: d.assign(transactions=1.5), "fractional"),
    (lambda d: d.assign(open="x"), "not numeric"),
])
def test_validate_bars_rejects_contract_breaks(breakage, words):
    with pytest.raises(DataIntegrityError, match=words):
        validate_bars(breakage(_bars()))


def test_validate_bars_checks_range_and_daily_stamps():
    q = PriceQuery("AAPL", "2024-01-02", "2024-01-03")
    with pytest.raises(DataIntegrityError, match="outside the asked range"):
        validate_bars(_bars(3), q)
    with pytest.raises(DataIntegrityError, match="00:00"):
        validate_bars(_bars(2, daily=False), q)
    assert len(validate_bars(_bars(2), q)) == 2


def test_dates_in_a_log_line_are_counted_not_listed():
    import datetime as dt

    from finrpt_providers import text

    many = [dt.date(2016, 1, 4) + dt.timedelta(days=i) for i in range(1250)]
    line = text.days(reversed(many))
    assert line == "1,250 sessions from 2016-01-04 to 2019-06-06" and len(line) < 80
    assert text.days([dt.date(2026, 6, 2), dt.date(2026, 6, 1)]) == "2026-06-01, 2026-06-02"
