"""A conformance kit a provider author runs with pytest, fsspec-style.

Subclass :class:`ProviderConformance` in a test module and override the fixtures::

    from finrpt_providers.testing.conformance import ProviderConformance

    class TestMyProvider(ProviderConformance):
        @pytest.fixture
        def provider(self, market):            # a PriceProvider, configured (see .configured)
            return MyProvider().configured(Config.load({...}, environ={}))

``market`` defaults to the standard :class:`SyntheticMarket`; override it when your
provider serves another one. Point your provider at a rendering of that market (the
fakes in :mod:`finrpt_providers.testing`, or your own), and the kit checks, always
through the core's pipeline as users meet the provider: the declarations (native
intervals and adjustments, settings, capabilities), the bar frame (schema, dtypes,
time zone, order, inclusive range, OHLC sanity), that bad input is refused before
the provider is called and that the provider is only ever asked native questions,
error types for unknown tickers, corporate actions (when served) and agreement with
the market's truth for every interval (``1wk 1mo 3mo`` included) and adjustment the
pipeline can give from what the provider declares.

Class attributes tune it: ``daily_window`` and ``intraday_window`` (inclusive
dates), ``tickers``, ``price_rtol``, ``volume_atol`` (e.g. 1.5 for a source with
whole-share volumes), ``compares_vwap`` (False when the source has none).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from .. import pipeline
from ..chain import fetch_one
from ..config import Setting
from ..errors import InvalidQuery, NoData, ProviderError
from ..intervals import BASE_INTERVALS, INTERVALS, is_period
from ..provider import ADJUSTMENTS, BAR_COLUMNS, PriceProvider, PriceQuery, validate_bars
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

    def fetch(self, provider: PriceProvider, ticker, start, end, interval="1d", adjustment="splits") -> pd.DataFrame:
        """The provider's answer through the core's pipeline (as the chain asks it)."""
        df = fetch_one(provider, ticker, start, end, interval=interval, adjustment=adjustment)
        if not is_period(interval):
            validate_bars(df, PriceQuery(ticker, start, end, interval, adjustment), provider.name)
        return df

    def servable(self, provider: PriceProvider, interval: str, adjustment: str) -> str | None:
        """Why the pipeline cannot answer this pair from ``provider`` (None: it can)."""
        base = "1d" if is_period(interval) else interval
        start, end = self.window(base)
        q = PriceQuery("AAPL", start, end, base, adjustment)
        return pipeline.plan(provider, q, provider.config.today())[1]

    @staticmethod
    def spy(provider: PriceProvider) -> tuple[PriceProvider, list[PriceQuery]]:
        """A copy of ``provider`` recording every native query it is asked."""
        import copy

        calls: list[PriceQuery] = []
        clone = copy.copy(provider)
        inner = provider.fetch

        def fetch(query: PriceQuery):
            calls.append(query)
            return inner(query)

        clone.fetch = fetch  # type: ignore[method-assign]
        return clone, calls

    # -- the checks ---------------------------------------------------------------------
    def test_declares_what_it_serves(self, provider):
        assert provider.name and provider.name.replace("_", "").isalnum()
        assert provider.intervals and set(provider.intervals) <= set(BASE_INTERVALS), \
            f"native intervals must be among {BASE_INTERVALS} (periods are derived by the core)"
        assert provider.adjustments and set(provider.adjustments) <= set(ADJUSTMENTS)
        assert provider.adjustments & {"raw", "splits"}, "serve raw or splits natively: total alone derives nothing"
        assert provider.not_ready_reason(deep=True) is None, f"provider not ready: {provider.not_ready_reason()}"
        names = [s.name for s in provider.settings]
        assert len(names) == len(set(names)), "a setting is declared twice"
        for s in provider.settings:
            assert isinstance(s, Setting) and s.name == s.name.upper() and s.key == s.key.lower()
            assert not (s.secret and s.default), f"secret setting {s.name} has a default"
            if s.default is not None:
                s.parse(str(s.default))  # a default must pass its own validation
        for c in provider.credentials:
            assert c in names, f"credential {c} is not a declared setting"

    def test_only_native_questions_reach_the_provider(self, provider):
        spy, calls = self.spy(provider)
        for interval in ("1m", "5m", "1h", "1d", "1wk"):
            for adjustment in ADJUSTMENTS:
                if self.servable(provider, interval, adjustment) is None:
                    base = "1d" if is_period(interval) else interval
                    start, end = self.window(base)
                    if is_period(interval):
                        start, end = self.daily_window[1], self.daily_window[1]
                    self.fetch(spy, "AAPL", start, end, interval, adjustment)
        assert calls, "no question reached the provider"
        for q in calls:
            assert q.interval in provider.intervals and q.adjustment in provider.native_adjustments(q.interval), \
                f"the core asked {provider.name} a non-native question: {q.describe()}"

    @pytest.mark.parametrize("interval", INTERVALS)
    def test_bar_frame_schema(self, provider, interval):
        adjustment = sorted(provider.adjustments)[0]
        reason = self.servable(provider, interval, adjustment)
        if reason:
            pytest.skip(f"{provider.name} cannot give {interval}: {reason}")
        start, end = self.window("1d" if is_period(interval) else interval)
        raw = self.fetch(provider, "AAPL", start, end, interval, adjustment)
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
        spy, calls = self.spy(provider)
        bad_inputs = [(("", "2026-01-05", "2026-01-06"), {}), (("AAPL", "2026-01-06", "2026-01-05"), {}),
                      (("../x", "2026-01-05", "2026-01-06"), {}), (("AAPL", "2026-13-01", "2026-01-06"), {}),
                      (("AAPL", "2026-01-05", "2026-01-06"), {"interval": "1M"}),
                      (("AAPL", "2026-01-05", "2026-01-06"), {"adjustment": "dividends"})]
        for args, kw in bad_inputs:
            with pytest.raises(InvalidQuery):
                self.fetch(spy, *args, **kw)
        assert calls == [], f"the provider was called with a bad question: {calls[0].describe()}"
        start, end = self.window("1d")
        interval = "1d" if "1d" in provider.intervals else sorted(provider.intervals)[0]
        self.fetch(spy, "AAPL", start, start, interval, sorted(provider.adjustments)[0])
        assert calls, "a good question did not reach the provider"

    def test_unknown_ticker_is_no_data(self, provider):
        start, end = self.window("1d")
        interval = "1d" if "1d" in provider.intervals else sorted(provider.intervals)[0]
        try:
            df = self.fetch(provider, "ZZZZQ", start, end, interval, sorted(provider.adjustments)[0])
        except NoData:
            return
        except ProviderError as e:  # pragma: no cover - reported as a failure below
            pytest.fail(f"an unknown ticker should be NoData (or an empty frame), got {type(e).__name__}: {e}")
        assert df.empty, "an unknown ticker returned bars"

    def test_corporate_actions(self, provider, market):
        if not provider.serves_actions:
            pytest.skip(f"{provider.name} serves no corporate actions")
        from ..actions import normalise_dividends, normalise_splits

        for ticker in self.tickers:
            splits, dividends = provider.fetch_actions(ticker)
            # what the core makes of the records (a frame of records or a Series, repeats removed)
            splits = normalise_splits(splits, provider.name, ticker)
            dividends = normalise_dividends(dividends, provider.name, ticker)
            for got, want, what in ((splits, market.splits(ticker), "splits"),
                                    (dividends, market.dividends(ticker), "dividends")):
                lo, hi = pd.Timestamp(market.start, tz="America/New_York"), pd.Timestamp(market.end, tz="America/New_York")
                got = got[(got.index >= lo) & (got.index <= hi)]
                assert [t.date() for t in got.index] == [t.date() for t in want.index], f"{ticker} {what} dates"
                np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-6, err_msg=f"{ticker} {what}")

    @pytest.mark.parametrize("adjustment", ADJUSTMENTS)
    @pytest.mark.parametrize("interval", INTERVALS)
    def test_agrees_with_the_truth(self, provider, market, interval, adjustment):
        reason = self.servable(provider, interval, adjustment)
        if reason:
            pytest.skip(f"{provider.name} cannot give {interval} {adjustment}: {reason}")
        start, end = self.window("1d" if is_period(interval) else interval)
        tickers = self.tickers if interval == "1d" else self.tickers[:2]
        for ticker in tickers:
            got = self.fetch(provider, ticker, start, end, interval, adjustment)
            want = market.truth(ticker, start, end, interval, adjustment)
            assert list(got.index) == list(want.index), f"{ticker}: bars at other times than the truth"
            for col in ("open", "high", "low", "close"):
                np.testing.assert_allclose(got[col], want[col], rtol=self.price_rtol, err_msg=f"{ticker} {col}")
            # whole-share rounding adds up over the sessions of a period
            atol = self.volume_atol * (66 if is_period(interval) else 1)
            np.testing.assert_allclose(got["volume"], want["volume"], rtol=1e-9, atol=atol,
                                       err_msg=f"{ticker} volume")
            if self.compares_vwap:
                np.testing.assert_allclose(got["vwap"], want["vwap"], rtol=self.price_rtol, err_msg=f"{ticker} vwap")
            if self.compares_transactions:
                assert (got["transactions"].astype("float64").to_numpy()
                        == want["transactions"].astype("float64").to_numpy()).all(), f"{ticker} transactions"
