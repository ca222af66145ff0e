"""A conformance kit a provider author runs with pytest, fsspec-style.

Subclass :class:`ProviderConformance` in a test module and override the fixtures::

    from finrpt_providers.testing.conformance import ProviderConformance

    class TestMyProvider(ProviderConformance):
        @pytest.fixture
        def provider(self, market):            # a PriceProvider, configured (see .configured)
            return MyProvider().configured(Config.load({...}, environ={}))

``market`` defaults to the standard :class:`SyntheticMarket`; override it when your
provider serves another one. Point your provider at a rendering of that market (the
fakes in :mod:`finrpt_providers.testing`, or your own), and the kit checks the bar
frame (schema, dtypes, time zone, order, inclusive range, OHLC sanity), error types
for bad input and unknown tickers, and agreement with the market's truth for every
interval and adjustment the provider declares.

Class attributes tune it: ``daily_window`` and ``intraday_window`` (inclusive
dates), ``tickers``, ``price_rtol``, ``volume_atol`` (e.g. 1.5 for a source with
whole-share volumes), ``compares_vwap`` (False when the source has none).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from ..errors import InvalidQuery, NoData, ProviderError
from ..provider import ADJUSTMENTS, BAR_COLUMNS, INTERVALS, PriceProvider, PriceQuery, validate_bars
from .market import SyntheticMarket


class ProviderConformance:
    daily_window: tuple[str, str] = ("2025-11-03", "2026-02-27")
    intraday_window: tuple[str, str] = ("2026-06-22", "2026-06-26")
    tickers: tuple[str, ...] = ("AAPL", "NVDA", "RSPL", "BRK.B")
    price_rtol: float = 1e-9
    volume_atol: float = 1e-6
    compares_vwap: bool = True
    compares_transactions: bool = True

    # -- fixtures to override -------------------------------------------------------
    @pytest.fixture
    def provider(self) -> PriceProvider:
        raise NotImplementedError("override the `provider` fixture: return your configured provider")

    @pytest.fixture(scope="session")
    @classmethod
    def market(cls) -> SyntheticMarket:
        return SyntheticMarket()

    # -- helpers ----------------------------------------------------------------------
    def window(self, interval: str) -> tuple[str, str]:
        return self.daily_window if interval == "1d" else self.intraday_window

    def fetch(self, provider: PriceProvider, *args) -> pd.DataFrame:
        return validate_bars(provider.fetch(PriceQuery(*args)), PriceQuery(*args), provider.name)

    # -- the checks ---------------------------------------------------------------------
    def test_declares_what_it_serves(self, provider):
        assert provider.name and provider.name.replace("_", "").isalnum()
        assert provider.intervals and set(provider.intervals) <= set(INTERVALS)
        assert provider.adjustments and set(provider.adjustments) <= set(ADJUSTMENTS)
        assert provider.not_ready_reason() is None, f"provider not ready: {provider.not_ready_reason()}"

    @pytest.mark.parametrize("interval", INTERVALS)
    def test_bar_frame_schema(self, provider, interval):
        if interval not in provider.intervals:
            pytest.skip(f"{provider.name} does not serve {interval}")
        start, end = self.window(interval)
        raw = provider.fetch(PriceQuery("AAPL", start, end, interval, sorted(provider.adjustments)[0]))
        assert list(raw.columns) == list(BAR_COLUMNS)
        assert raw.index.name == "timestamp"
        assert str(raw.index.dtype) == "datetime64[ns, America/New_York]"
        assert [str(t) for t in raw.dtypes] == ["float64"] * 6 + ["Int64"]
        assert raw.index.is_monotonic_increasing and raw.index.is_unique
        if interval == "1d":
            assert (raw.index == raw.index.normalize()).all(), "daily bars are stamped 00:00 ET"

    @pytest.mark.parametrize("interval", ["1d", "1m"])
    def test_range_is_inclusive_at_both_ends(self, provider, market, interval):
        if interval not in provider.intervals:
            pytest.skip(f"{provider.name} does not serve {interval}")
        start, end = self.window(interval)
        df = self.fetch(provider, "AAPL", start, end, interval, sorted(provider.adjustments)[0])
        days = sorted({ts.date() for ts in df.index})
        sessions = [d for d in market.trading_days("AAPL") if dt.date.fromisoformat(start) <= d
                    <= dt.date.fromisoformat(end)]
        assert days[0] == sessions[0] and days[-1] == sessions[-1]

    def test_ohlc_sanity(self, provider):
        start, end = self.window("1d")
        adj = sorted(provider.adjustments)[0]
        for ticker in self.tickers:
            df = self.fetch(provider, ticker, start, end, "1d" if "1d" in provider.intervals else
                            sorted(provider.intervals)[0], adj)
            assert (df["high"] >= df[["open", "close", "low"]].max(axis=1) * (1 - 1e-9)).all()
            assert (df["low"] <= df[["open", "close"]].min(axis=1) * (1 + 1e-9)).all()
            assert (df[["open", "high", "low", "close"]] > 0).all().all() and (df["volume"] >= 0).all()

    def test_bad_input_is_invalid_query_before_any_io(self, provider):
        for bad in [("", "2026-01-05", "2026-01-06"), ("AAPL", "2026-01-06", "2026-01-05"),
                    ("../x", "2026-01-05", "2026-01-06"), ("AAPL", "2026-13-01", "2026-01-06")]:
            with pytest.raises(InvalidQuery):
                provider.fetch(PriceQuery(*bad))

    def test_unknown_ticker_is_no_data(self, provider):
        start, end = self.window("1d")
        interval = "1d" if "1d" in provider.intervals else sorted(provider.intervals)[0]
        try:
            df = provider.fetch(PriceQuery("ZZZZQ", start, end, interval, sorted(provider.adjustments)[0]))
        except NoData:
            return
        except ProviderError as e:  # pragma: no cover - reported as a failure below
            pytest.fail(f"an unknown ticker should be NoData (or an empty frame), got {type(e).__name__}: {e}")
        assert df.empty, "an unknown ticker returned bars"

    @pytest.mark.parametrize("adjustment", ADJUSTMENTS)
    @pytest.mark.parametrize("interval", INTERVALS)
    def test_agrees_with_the_truth(self, provider, market, interval, adjustment):
        if interval not in provider.intervals or adjustment not in provider.adjustments:
            pytest.skip(f"{provider.name} does not serve {interval} {adjustment}")
        start, end = self.window(interval)
        tickers = self.tickers if interval == "1d" else self.tickers[:2]
        for ticker in tickers:
            got = self.fetch(provider, ticker, start, end, interval, adjustment)
            want = market.truth(ticker, start, end, interval, adjustment)
            assert list(got.index) == list(want.index), f"{ticker}: bars at other times than the truth"
            for col in ("open", "high", "low", "close"):
                np.testing.assert_allclose(got[col], want[col], rtol=self.price_rtol, err_msg=f"{ticker} {col}")
            np.testing.assert_allclose(got["volume"], want["volume"], rtol=1e-9, atol=self.volume_atol,
                                       err_msg=f"{ticker} volume")
            if self.compares_vwap:
                np.testing.assert_allclose(got["vwap"], want["vwap"], rtol=self.price_rtol, err_msg=f"{ticker} vwap")
            if self.compares_transactions:
                assert (got["transactions"].astype("float64").to_numpy()
                        == want["transactions"].astype("float64").to_numpy()).all(), f"{ticker} transactions"
