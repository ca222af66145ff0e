"""One gate: every door (one ticker, a basket, the market, read_bars, the yf facade, OpenBB)
meets the same checks, the same corporate-actions normaliser and the same adjustment.

The fakes are real servers on 127.0.0.1 (flat files through moto's S3, Massive REST over
HTTP); the synthetic market knows the truth."""

from __future__ import annotations

import datetime as dt
import socket
import threading

import numpy as np
import pandas as pd
import pytest

import finrpt_providers as fp
from finrpt_providers import calendar
from finrpt_providers.config import Config
from finrpt_providers.frames import Expect, empty_bars, gate
from finrpt_providers.testing import FakeFlatFiles, FakeMassiveREST, SyntheticMarket

KEY = "gate-key-4242"
DAY = dt.date(2025, 10, 1)  # NVDA splits 4-for-1 on 2025-11-17 and RSPL 1-for-3 on 2026-01-20: both later
COLS = ["open", "high", "low", "close", "volume"]


@pytest.fixture(scope="module")
def mkt() -> SyntheticMarket:
    return SyntheticMarket("2025-09-02", "2026-03-31")


@pytest.fixture(scope="module")
def fakes(mkt):
    # the asked session, a week of history for baskets, and every session whose close a later event needs
    days = {d for d in mkt.sessions if dt.date(2025, 9, 24) <= d <= DAY}
    for t in mkt.tickers:
        for ex in [*mkt.dividends(t).index, *mkt.splits(t).index]:
            days |= {calendar.session_before(ex.date()), ex.date()}
    days = sorted(d for d in days if d is not None and mkt.sessions[0] <= d <= mkt.sessions[-1])
    with FakeFlatFiles(mkt, days=days, minute_days=[]) as ff, FakeMassiveREST(mkt, api_key=KEY) as rest:
        yield ff, rest


@pytest.fixture
def cfg(fakes, tmp_path):
    ff, rest = fakes
    rest.reset()
    from finrpt_providers import actions
    from finrpt_providers.providers import massive_rest

    actions.clear_cache()
    massive_rest.clear_caches()
    yield Config.load({**ff.config(), "MASSIVE_API_KEY": KEY, "MASSIVE_REST_BASE_URL": rest.url,
                       "FINRPT_PROVIDERS_TODAY": "2026-04-01", "FINRPT_PROVIDERS_CACHE_DIR": str(tmp_path),
                       "FINRPT_PRICE_PROVIDERS": "massive_flatfiles,massive_rest",
                       "FINRPT_ACTIONS_PROVIDERS": "massive_rest"}, environ={})
    rest.reset()
    actions.clear_cache()


def _truth(mkt, t, first, last, adjustment):
    return mkt.truth(t, first, last, "1d", adjustment)


# -- the gate itself ------------------------------------------------------------------------------
def _bars(days, **override):
    idx = pd.DatetimeIndex([pd.Timestamp(d, tz="America/New_York") for d in days], name="timestamp")
    df = pd.DataFrame({"open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5, "volume": 100.0, "vwap": np.nan},
                      index=idx)
    df["transactions"] = pd.array([5] * len(df), dtype="Int64")
    for k, v in override.items():
        df[k] = v
    return df


@pytest.mark.parametrize("column, value, words", [
    ("high", np.inf, "infinite prices"), ("close", -5.0, "non-positive prices"), ("open", 0.0, "non-positive"),
    ("low", np.nan, "missing"), ("volume", np.inf, "volume"), ("volume", -1.0, "volume"),
    ("high", 9.5, "high/low do not bound"),
])
def test_a_bad_bar_fails_its_ticker_alone_naming_the_bar(column, value, words):
    days = [dt.date(2025, 10, 1), dt.date(2025, 10, 2)]
    good = _bars(days)
    bad = _bars(days)
    bad.loc[bad.index[1], column] = value
    long = pd.concat({"AAA": good, "BBB": bad}, names=["ticker", "timestamp"])
    out, failed = gate(long, Expect(days[0], days[1], "1d", ["AAA", "BBB"]), "p")
    assert list(failed) == ["BBB"] and words in str(failed["BBB"]) and "2025-10-02" in str(failed["BBB"])
    assert sorted(set(out.index.get_level_values(0))) == ["AAA"]
    np.testing.assert_array_equal(out["close"].to_numpy(), [10.5, 10.5])


def test_the_gate_refuses_foreign_rows_duplicates_and_bars_outside_the_range_or_the_hours():
    days = [dt.date(2025, 10, 1), dt.date(2025, 10, 2)]
    long = pd.concat({"AAA": _bars(days), "ZZZ": _bars(days), "DUP": _bars([days[0], days[0]]),
                      "LATE": _bars([days[0], dt.date(2099, 1, 2)])}, names=["ticker", "timestamp"])
    out, failed = gate(long, Expect(days[0], days[1], "1d", ["AAA", "DUP", "LATE"]), "p")
    assert sorted(failed) == ["DUP", "LATE"] and "duplicate" in str(failed["DUP"]) and "2099" in str(failed["LATE"])
    assert sorted(set(out.index.get_level_values(0))) == ["AAA"]  # ZZZ was never asked
    # identical duplicates may be dropped (a stream repeating itself), conflicting ones never
    out, failed = gate(long, Expect(days[0], days[1], "1d", ["DUP"]), "p", identical_duplicates="drop")
    assert failed == {} and len(out) == 1
    conflict = pd.concat({"C": pd.concat([_bars([days[0]]), _bars([days[0]], close=10.7)])},
                         names=["ticker", "timestamp"])
    out, failed = gate(conflict, Expect(days[0], days[0], "1d"), "p", identical_duplicates="drop")
    assert "sent twice with different values" in str(failed["C"]) and len(out) == 0
    # minute bars: 03:59 is before the extended session, 20:00 after it
    stamps = pd.DatetimeIndex(["2025-10-01 03:59", "2025-10-01 09:30", "2025-10-01 20:00"]).tz_localize(
        "America/New_York")
    mins = _bars(days[:1] * 3)
    mins.index = stamps.rename("timestamp")
    for i, ok in ((0, False), (1, True), (2, False)):
        out, failed = gate(mins.iloc[[i]], Expect(days[0], days[0], "1m"), "p", ticker="M")
        assert (not failed) is ok, stamps[i]


def test_a_single_ticker_is_a_basket_of_one_through_the_same_checks():
    days = [dt.date(2025, 10, 1), dt.date(2025, 10, 2)]
    df = _bars(days, close=[10.5, np.inf])
    with pytest.raises(fp.DataIntegrityError, match="2025-10-02"):
        fp.validate_bars(df)
    assert fp.validate_bars(_bars(days)).index.equals(_bars(days).index)
    assert fp.validate_bars(empty_bars()).empty


# -- the one-session market (some ticker splits later) --------------------------------------------
@pytest.mark.parametrize("adjustment", ["raw", "splits", "total"])
def test_a_one_session_market_from_flat_files_with_a_later_split(cfg, mkt, adjustment):
    got = fp.get_market(DAY, adjustment=adjustment, providers=["massive_flatfiles"], config=cfg)
    assert got.attrs["failed"] == {}
    tickers = sorted(set(got.index.get_level_values("ticker")))
    assert {"NVDA", "RSPL", "AAPL"} <= set(tickers)
    for t in tickers:
        want = _truth(mkt, t, DAY, DAY, adjustment)
        one = got.xs(t, level="ticker")
        assert len(one) == 1 and one.index.equals(want.index), t
        np.testing.assert_allclose(one[COLS].to_numpy(), want[COLS].to_numpy(), rtol=1e-9, err_msg=t)
    nvda = got.xs("NVDA", level="ticker")["close"].iloc[0]
    raw = _truth(mkt, "NVDA", DAY, DAY, "raw")["close"].iloc[0]
    assert nvda == pytest.approx(raw / 4 if adjustment != "raw" else raw, rel=0.02)


def test_the_cli_market_of_one_session_with_a_later_split(cfg, monkeypatch):
    import json

    from tests.test_cli import run

    for k, v in cfg._values.items():
        monkeypatch.setenv(k, v)
    code, out, err = run("market", DAY.isoformat(), "--format", "json", "--provider", "massive_flatfiles")
    assert code == 0, err
    rows = {r["ticker"]: r for r in json.loads(out)}
    assert "NVDA" in rows and "RSPL" in rows


# -- corporate actions normalised once, on every door ---------------------------------------------
def test_a_dividend_listed_twice_counts_once_on_every_path(cfg, fakes, mkt):
    _ff, rest = fakes
    rest.repeat_dividends = {"AAPL"}
    first, last = dt.date(2025, 9, 24), DAY
    want = _truth(mkt, "AAPL", first, last, "total")
    one = fp.get_prices("AAPL", first, last, adjustment="total", config=cfg)
    np.testing.assert_allclose(one[COLS].to_numpy(), want[COLS].to_numpy(), rtol=1e-9)
    basket = fp.get_prices(["AAPL", "SPY"], first, last, adjustment="total", config=cfg)
    np.testing.assert_allclose(basket.xs("AAPL", level="ticker")[COLS].to_numpy(), want[COLS].to_numpy(), rtol=1e-9)
    market = fp.get_market(first, last, adjustment="total", providers=["massive_flatfiles"], config=cfg)
    np.testing.assert_allclose(market.xs("AAPL", level="ticker")[COLS].to_numpy(), want[COLS].to_numpy(),
                               rtol=1e-9)
    shown = fp.get_actions("AAPL", config=cfg)
    assert shown.attrs["source"] == "massive_rest"
    declared = mkt.dividends("AAPL")
    assert list(shown["Dividends"][shown["Dividends"] > 0].to_numpy()) == pytest.approx(list(declared.to_numpy()))
    from finrpt_providers import yf

    divs = yf.Ticker("AAPL", config=cfg).dividends
    assert list(divs.to_numpy()) == pytest.approx([0.26] * len(declared))


def _openbb_dividends(cfg, monkeypatch, symbol):
    fetchers = pytest.importorskip("openbb_finrpt_providers.fetchers")
    for k, v in cfg._values.items():  # OpenBB's process reads our usual configuration
        monkeypatch.setenv(k, v)
    q = fetchers.FinrptHistoricalDividendsFetcher.transform_query({"symbol": symbol})
    return {r["ex_dividend_date"]: r["amount"]
            for r in fetchers.FinrptHistoricalDividendsFetcher.extract_data(q, None)}


def test_a_dividend_listed_twice_counts_once_in_read_bars_and_openbb(cfg, fakes, mkt, monkeypatch):
    pytest.importorskip("distributed")
    from finrpt_providers.dask import read_bars
    from finrpt_providers.providers.massive_flatfiles import sync

    _ff, rest = fakes
    rest.repeat_dividends = {"AAPL", "SPY"}
    first, last = dt.date(2025, 9, 24), DAY
    sync(first, last, datasets=["day_aggs_v1"], config=cfg)
    lazy = read_bars("day_aggs_v1", first, last, tickers=["AAPL", "SPY"], adjustment="total", config=cfg)
    assert lazy.attrs["failed"] == {}
    bars = lazy.compute()
    for t in ("AAPL", "SPY"):
        got = bars[bars["ticker"] == t].set_index("timestamp")
        np.testing.assert_allclose(got["close"].to_numpy(), _truth(mkt, t, first, last, "total")["close"], rtol=1e-9)
    shown = _openbb_dividends(cfg, monkeypatch, "AAPL")
    assert sorted(shown.values()) == pytest.approx([0.26] * len(mkt.dividends("AAPL")))


def test_a_dividend_in_cad_is_named_by_read_bars_and_left_out_of_openbb(cfg, fakes, mkt, monkeypatch):
    pytest.importorskip("distributed")
    from finrpt_providers.dask import read_bars
    from finrpt_providers.providers.massive_flatfiles import sync

    _ff, rest = fakes
    rest.extra_dividends = [("AAPL", "2025-12-01", 0.5, "CAD")]
    first, last = dt.date(2025, 9, 24), DAY
    sync(first, last, datasets=["day_aggs_v1"], config=cfg)
    total = read_bars("day_aggs_v1", first, last, tickers=["AAPL", "SPY"], adjustment="total", config=cfg)
    assert "CAD" in total.attrs["failed"]["AAPL"] and "SPY" not in total.attrs["failed"]
    assert set(total.compute()["ticker"]) == {"SPY"}
    splits = read_bars("day_aggs_v1", first, last, tickers=["AAPL"], adjustment="splits", config=cfg)
    assert splits.attrs["failed"] == {} and len(splits.compute()) == len(calendar.sessions(first, last))
    shown = _openbb_dividends(cfg, monkeypatch, "AAPL")
    assert dt.date(2025, 12, 1) not in shown and 0.5 not in shown.values()


def test_dividends_are_served_split_adjusted_on_every_surface(cfg, mkt, monkeypatch):
    """NVDA's pre-split 0.04 is 0.01 in today's basis: yfinance's, our facade's and get_actions'."""
    from finrpt_providers import yf

    shown = fp.get_actions("NVDA", config=cfg)["Dividends"]
    before = shown[shown.index < pd.Timestamp("2025-11-17", tz="America/New_York")]
    assert len(before) and before.iloc[0] == pytest.approx(0.01)
    facade = yf.Ticker("NVDA", config=cfg).dividends
    np.testing.assert_allclose(facade.to_numpy(), shown[shown > 0].to_numpy())
    openbb = _openbb_dividends(cfg, monkeypatch, "NVDA")
    np.testing.assert_allclose([openbb[ex.date()] for ex in shown[shown > 0].index], shown[shown > 0].to_numpy())


def test_a_split_listed_twice_is_one_event_on_every_surface(cfg, fakes, mkt):
    """Massive's legacy data lists some splits twice a week apart: history, yf's .splits and
    get_actions resolve it the same way (the date where the as-traded price moves)."""
    from finrpt_providers import yf

    _ff, rest = fakes
    rest.extra_splits = [("NVDA", "2025-11-10", 4.0)]
    want = [pd.Timestamp("2025-11-17", tz="America/New_York")]
    assert list(fp.get_actions("NVDA", config=cfg).query("`Stock Splits` > 0").index) == want
    assert list(yf.Ticker("NVDA", config=cfg).splits.index.normalize()) == [w.tz_localize(None).tz_localize(
        yf.Ticker("NVDA", config=cfg).splits.index.tz) for w in want]
    got = fp.get_prices("NVDA", "2025-11-03", "2025-11-21", config=cfg, providers=["massive_rest"])
    np.testing.assert_allclose(got["close"].to_numpy(),
                               _truth(mkt, "NVDA", dt.date(2025, 11, 3), dt.date(2025, 11, 21), "splits")["close"])


def test_a_dividend_in_cad_is_refused_and_named_never_used_as_dollars(cfg, fakes, mkt, caplog):
    _ff, rest = fakes
    rest.extra_dividends = [("AAPL", "2025-12-01", 0.5, "CAD")]
    first, last = dt.date(2025, 9, 24), DAY
    with pytest.raises(fp.AllProvidersFailed, match="CAD"):
        fp.get_prices("AAPL", first, last, adjustment="total", config=cfg)
    split_only = fp.get_prices("AAPL", first, last, adjustment="splits", config=cfg)  # dividends not needed
    np.testing.assert_allclose(split_only["close"].to_numpy(), _truth(mkt, "AAPL", first, last, "splits")["close"])
    basket = fp.get_prices(["AAPL", "SPY"], first, last, adjustment="total", config=cfg, errors="omit")
    assert "CAD" in basket.attrs["failed"]["AAPL"] and "SPY" in set(basket.index.get_level_values(0))
    market = fp.get_market(first, last, adjustment="total", providers=["massive_flatfiles"], config=cfg)
    assert "CAD" in market.attrs["failed"]["AAPL"]
    assert "AAPL" not in set(market.index.get_level_values(0))
    shown = fp.get_actions("AAPL", config=cfg)
    assert shown.attrs["refused"] == {"2025-12-01": "0.5 CAD"}
    assert 0.5 not in set(shown["Dividends"])
    assert any("CAD" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_read_bars_names_the_ticker_it_could_not_adjust(cfg, fakes, mkt, tmp_path):
    pytest.importorskip("distributed")
    from finrpt_providers.dask import read_bars
    from finrpt_providers.providers.massive_flatfiles import sync

    _ff, rest = fakes
    first, last = dt.date(2025, 9, 24), DAY
    sync(first, last, datasets=["day_aggs_v1"], config=cfg)
    rest.split_ratio_override = {"NVDA": 2.0}  # the prices move 4x: the listing is wrong
    bars = read_bars("day_aggs_v1", first, last, adjustment="splits", config=cfg)
    assert "NVDA" in bars.attrs["failed"] and "moves by" in bars.attrs["failed"]["NVDA"]
    got = bars.compute()
    assert "NVDA" not in set(got["ticker"]) and "AAPL" in set(got["ticker"])
    market = fp.get_market(first, last, adjustment="splits", providers=["massive_flatfiles"], config=cfg)
    assert "NVDA" in market.attrs["failed"]
    assert read_bars("day_aggs_v1", first, last, config=cfg).attrs["adjustment"] == "splits"  # one default


# -- sources come from configuration only ------------------------------------------------------------
class Trap:
    """A loopback listener that counts every connection and answers nothing."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def test_no_source_outside_the_configuration_is_asked(fakes, tmp_path):
    ff, _rest = fakes
    trap = Trap()
    try:
        cfg = Config.load({**ff.config(), "FINRPT_YFINANCE_BASE_URL": trap.url, "MASSIVE_API_KEY": KEY,
                           "MASSIVE_REST_BASE_URL": trap.url, "FINRPT_PROVIDERS_TODAY": "2026-04-01",
                           "FINRPT_PROVIDERS_CACHE_DIR": str(tmp_path),
                           "FINRPT_PRICE_PROVIDERS": "massive_flatfiles"}, environ={})
        with pytest.raises(fp.AllProvidersFailed) as err:
            fp.get_prices("AAPL", "2025-09-24", DAY, adjustment="splits", config=cfg)
        assert "FINRPT_ACTIONS_PROVIDERS" in str(err.value)
        raw = fp.get_prices("AAPL", "2025-09-24", DAY, adjustment="raw", config=cfg)
        assert len(raw) == len(calendar.sessions(dt.date(2025, 9, 24), DAY))
        assert trap.connections == 0
    finally:
        trap.close()


# -- what a hostile review found, by class --------------------------------------------------------
def test_an_impossible_split_ratio_fails_the_ticker_never_dropped(cfg, fakes, mkt):
    _ff, rest = fakes
    rest.split_ratio_override = {"NVDA": 0.0}
    with pytest.raises(fp.AllProvidersFailed, match="impossible ratio 0.0"):
        fp.get_prices("NVDA", "2025-09-24", DAY, providers=["massive_flatfiles"], config=cfg)
    # Massive REST adjusts natively: the chain moves on to it and says why it had to
    got = fp.get_prices("NVDA", "2025-09-24", DAY, config=cfg)
    assert got.attrs["provider"] == "massive_rest" and "impossible ratio" in got.attrs["attempts"][0]["detail"]
    market = fp.get_market("2025-09-24", DAY, providers=["massive_flatfiles"], config=cfg)
    assert "impossible ratio" in market.attrs["failed"]["NVDA"]
    assert "NVDA" not in set(market.index.get_level_values(0)) and "AAPL" in set(market.index.get_level_values(0))


def test_a_dividend_without_a_valid_amount_is_refused_and_named(cfg, fakes, mkt):
    _ff, rest = fakes
    rest.extra_dividends = [("AAPL", "2025-12-01", -0.3, "USD")]
    with pytest.raises(fp.AllProvidersFailed, match="cannot be used"):
        fp.get_prices("AAPL", "2025-09-24", DAY, adjustment="total", providers=["massive_flatfiles"], config=cfg)
    ok = fp.get_prices("AAPL", "2025-09-24", DAY, adjustment="splits", config=cfg)
    np.testing.assert_allclose(ok["close"], _truth(mkt, "AAPL", dt.date(2025, 9, 24), DAY, "splits")["close"])
    market = fp.get_market("2025-09-24", DAY, adjustment="total", providers=["massive_flatfiles"], config=cfg)
    assert "cannot be used" in market.attrs["failed"]["AAPL"]
    assert fp.get_actions("AAPL", config=cfg).attrs["refused"] == {"2025-12-01": "-0.3 USD"}


def test_an_ex_date_is_a_date_whatever_zone_it_is_written_in():
    from finrpt_providers.actions import ex_dates

    got = ex_dates(pd.DatetimeIndex(["2026-02-03 00:00", "2026-02-05 00:00"]).tz_localize("UTC"))
    assert [d.date() for d in got] == [dt.date(2026, 2, 3), dt.date(2026, 2, 5)] and str(got.tz) == "America/New_York"
    intraday = ex_dates(pd.DatetimeIndex(["2026-02-03 14:30"]).tz_localize("UTC"))  # 09:30 New York
    assert intraday[0] == pd.Timestamp("2026-02-03", tz="America/New_York")
    assert ex_dates(pd.DatetimeIndex(["2026-02-03"]))[0] == pd.Timestamp("2026-02-03", tz="America/New_York")


def test_the_gate_refuses_a_bar_on_a_day_without_a_session_and_leaves_out_bars_without_a_ticker(caplog):
    days = [dt.date(2025, 10, 3), dt.date(2025, 10, 4)]  # a Friday and a Saturday
    long = pd.concat({"AAA": _bars(days), "BBB": _bars(days[:1])}, names=["ticker", "timestamp"])
    out, failed = gate(long, Expect(days[0], days[1], "1d", sessions=(days[0],)), "p")
    assert list(failed) == ["AAA"] and "no session" in str(failed["AAA"])
    assert sorted(set(out.index.get_level_values(0))) == ["BBB"]
    orphan = long.copy()
    orphan.index = pd.MultiIndex.from_tuples([(None if i == 0 else t, ts) for i, (t, ts) in enumerate(long.index)],
                                             names=["ticker", "timestamp"])
    out, failed = gate(orphan, Expect(days[0], days[1], "1d"), "p")
    assert failed == {} and len(out) == 2 and "without a ticker" in caplog.text


def test_bars_outside_the_asked_range_fail_the_ticker_on_every_door(register_plugin, mkt):
    """A provider answering more sessions than asked: named, never clipped away in silence."""
    from finrpt_providers import PriceProvider, hookimpl

    class Sloppy(PriceProvider):
        name = "sloppy"
        adjustments = frozenset({"raw"})

        def fetch(self, query):
            first = query.start - dt.timedelta(days=1 if query.start.weekday() else 3)
            bars = mkt.truth(query.ticker, first, query.end, "1d", "raw")
            return bars if query.ticker == "NVDA" else bars[bars.index >= pd.Timestamp(query.start, tz=bars.index.tz)]

    class Plugin:
        @hookimpl
        def register_price_providers(self, register):
            register(Sloppy())

    register_plugin(Plugin(), name="sloppy-plugin")
    cfg = Config.load({"FINRPT_PRICE_PROVIDERS": "sloppy", "FINRPT_PROVIDERS_TODAY": "2026-04-01"}, environ={})
    with pytest.raises(fp.AllProvidersFailed, match="outside the asked range"):
        fp.get_prices("NVDA", "2025-10-01", "2025-10-03", adjustment="raw", config=cfg)
    got = fp.get_prices(["NVDA", "AAPL"], "2025-10-01", "2025-10-03", adjustment="raw", config=cfg, errors="omit")
    assert "outside the asked range" in got.attrs["failed"]["NVDA"]
    np.testing.assert_allclose(got.xs("AAPL", level="ticker")["close"],
                               _truth(mkt, "AAPL", dt.date(2025, 10, 1), dt.date(2025, 10, 3), "raw")["close"])


def test_closes_that_weigh_events_pass_the_gate_too():
    from finrpt_providers.market import market_session

    class Broken:
        name = "broken"
        config = None

        def fetch_market(self, *a):
            return None

    with pytest.raises(fp.DataIntegrityError, match="expected a pandas DataFrame"):
        market_session(Broken(), dt.date(2025, 10, 1), "raw")
