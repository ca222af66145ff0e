"""OpenBB fetchers over finrpt-providers (Transform the query, Extract through the chain,
Transform to OpenBB's standard models)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from openbb_core.app.model.abstract.error import OpenBBError
from openbb_core.provider.abstract.annotated_result import AnnotatedResult
from openbb_core.provider.abstract.fetcher import Fetcher
from openbb_core.provider.standard_models.equity_historical import EquityHistoricalData, EquityHistoricalQueryParams
from openbb_core.provider.standard_models.historical_dividends import (
    HistoricalDividendsData,
    HistoricalDividendsQueryParams,
)
from openbb_core.provider.standard_models.historical_splits import HistoricalSplitsData, HistoricalSplitsQueryParams
from openbb_core.provider.standard_models.market_snapshots import MarketSnapshotsData, MarketSnapshotsQueryParams
from openbb_core.provider.utils.errors import EmptyDataError
from pydantic import Field, field_validator

#: OpenBB's interval names -> ours
INTERVALS = {"1m": "1m", "5m": "5m", "15m": "15m", "30m": "30m", "60m": "1h", "1h": "1h", "1d": "1d",
             "1W": "1wk", "1M": "1mo", "1Q": "3mo"}
#: OpenBB credential names (``finrpt_`` + these) -> our settings
CREDENTIALS = {"finrpt_massive_api_key": "MASSIVE_API_KEY", "finrpt_massive_s3_access_key": "MASSIVE_S3_ACCESS_KEY",
               "finrpt_massive_s3_secret_key": "MASSIVE_S3_SECRET_KEY"}


def config_for(credentials: dict[str, str] | None):
    """Our usual configuration, with OpenBB's credentials (when set) on top."""
    from finrpt_providers.config import Config

    base = Config.load()
    extra = {ours: v for theirs, ours in CREDENTIALS.items()
             if (v := (credentials or {}).get(theirs)) not in (None, "")}
    return base.merged(extra) if extra else base


def openbb_error(e: Exception) -> OpenBBError:
    """Our errors as OpenBB's, with our message (what to do)."""
    from finrpt_providers.errors import AllProvidersFailed, NoData

    if isinstance(e, NoData) or (isinstance(e, AllProvidersFailed) and "no bars" in str(e).lower()):
        return EmptyDataError(str(e))
    return OpenBBError(f"{type(e).__name__}: {e}")


def _when(ts) -> dt.date | dt.datetime:
    return ts.date() if ts.hour == 0 and ts.minute == 0 else ts.to_pydatetime()


#: the words OpenBB's other equity providers use for ``adjustment`` (yfinance's, FMP's), so a
#: call swapped to provider="finrpt" with the same arguments means the same thing
OPENBB_ADJUSTMENTS = {"unadjusted": "raw", "splits_only": "splits", "splits_and_dividends": "total"}


class FinrptEquityHistoricalQueryParams(EquityHistoricalQueryParams):
    """``symbol`` may list several tickers (``"AAPL,MSFT"``): one basket query."""

    __json_schema_extra__ = {"symbol": {"multiple_items_allowed": True},
                             "interval": {"choices": list(INTERVALS)},
                             "adjustment": {"choices": ["raw", "splits", "total", "splits_only",
                                                        "splits_and_dividends", "unadjusted"]}}

    interval: str = Field(default="1d", description="Bar interval: " + ", ".join(INTERVALS))
    adjustment: str = Field(default="splits", description="raw (as traded), splits, or total (splits and dividends); "
                                                          "OpenBB's words too: unadjusted, splits_only, "
                                                          "splits_and_dividends")
    providers: str | None = Field(default=None, description="finrpt-providers' sources in order, comma-separated "
                                                            "(default: FINRPT_PRICE_PROVIDERS)")
    extended_hours: bool = Field(default=False, description="Intraday bars of the extended session (04:00-20:00 "
                                                             "New York, hourly bars on the clock) instead of the "
                                                             "regular one (09:30-16:00, hourly bars from 09:30)")
    as_of: dt.date | None = Field(default=None, description="Prices as known on this date: only corporate actions "
                                                            "with an ex-date on or before it adjust (past reports, "
                                                            "backtests); end_date must not be after it")
    include_actions: bool = Field(default=False, description="Add each bar's dividend (cash, in the bars' split "
                                                              "basis: today's, or as_of's) "
                                                              "and split_ratio (0 when none), as OpenBB's yfinance "
                                                              "provider does")

    @field_validator("interval", mode="before", check_fields=False)
    @classmethod
    def _interval(cls, v: str) -> str:
        if v not in INTERVALS:
            raise ValueError(f"interval {v!r} is not served: use one of {', '.join(INTERVALS)}")
        return v

    @field_validator("adjustment", mode="before", check_fields=False)
    @classmethod
    def _adjustment(cls, v: str) -> str:
        from finrpt_providers.errors import InvalidQuery
        from finrpt_providers.provider import normalize_adjustment

        v = OPENBB_ADJUSTMENTS.get(v.strip().lower(), v) if isinstance(v, str) else v
        try:
            return normalize_adjustment(v)
        except InvalidQuery as e:
            raise ValueError(f"{e} (or OpenBB's {', '.join(OPENBB_ADJUSTMENTS)})") from None


class FinrptEquityHistoricalData(EquityHistoricalData):
    symbol: str | None = Field(default=None, description="The ticker (in a basket answer).")
    transactions: int | None = Field(default=None, description="Trades in the bar, when the source counts them.")
    provider_used: str | None = Field(default=None, description="The finrpt-providers source of this bar's ticker.")
    @field_validator("date", mode="after", check_fields=False)
    @classmethod
    def _new_york(cls, v):
        """OpenBB's standard model parses the date from text, so an intraday range across a DST
        change holds two fixed offsets and its frame's index becomes ``object``: back to the
        one zone (a DatetimeIndex in America/New_York)."""
        if isinstance(v, dt.datetime) and v.tzinfo is not None:
            from zoneinfo import ZoneInfo

            return v.astimezone(ZoneInfo("America/New_York"))
        return v

    dividend: float | None = Field(default=None, description="Cash dividend going ex on this bar's session "
                                                             "(include_actions=True).")
    split_ratio: float | None = Field(default=None, description="Split ratio on this bar's session (4.0: 4-for-1; "
                                                                "include_actions=True).")


class FinrptEquityHistoricalFetcher(Fetcher[FinrptEquityHistoricalQueryParams, list[FinrptEquityHistoricalData]]):
    require_credentials = False

    @staticmethod
    def transform_query(params: dict[str, Any]) -> FinrptEquityHistoricalQueryParams:
        from finrpt_providers.config import resolve_config

        q = dict(params)
        today = resolve_config(None).today()  # the configured today (FINRPT_PROVIDERS_TODAY), not the machine's
        q.setdefault("start_date", None)
        q.setdefault("end_date", None)
        if q["end_date"] is None:
            as_of = q.get("as_of")
            if isinstance(as_of, str):
                try:
                    as_of = dt.date.fromisoformat(as_of.strip())
                except ValueError:
                    as_of = None  # the model's own validation names the bad value
            q["end_date"] = min(today, as_of) if isinstance(as_of, dt.date) else today
        if q["start_date"] is None:
            q["start_date"] = q["end_date"] - dt.timedelta(days=365) if isinstance(q["end_date"], dt.date) else None
        return FinrptEquityHistoricalQueryParams(**q)

    @staticmethod
    def extract_data(query: FinrptEquityHistoricalQueryParams, credentials: dict[str, str] | None, **kwargs: Any):
        import pandas as pd

        import finrpt_providers as fp

        tickers = [t.strip() for t in query.symbol.split(",") if t.strip()]
        try:
            data = fp.get_prices(tickers if len(tickers) > 1 else tickers[0], query.start_date, query.end_date,
                                 interval=INTERVALS[query.interval], adjustment=query.adjustment,
                                 providers=query.providers, config=config_for(credentials), errors="omit",
                                 extended_hours=query.extended_hours, as_of=query.as_of)
        except fp.ProviderError as e:
            raise openbb_error(e) from None
        if query.include_actions and not data.empty:
            from finrpt_providers.actions import served_dividends

            names = (sorted(set(data.index.get_level_values(0))) if isinstance(data.index, pd.MultiIndex)
                     else [data.attrs.get("ticker")])
            events = {}
            for t in names:
                acts, _cfg = _actions(t, credentials, query.as_of)
                events[t] = ({ex.date(): float(r) for ex, r in acts.splits.items()},
                             {ex.date(): float(c) for ex, c in served_dividends(acts).items()})
            data.attrs["events"] = events
        return data

    @staticmethod
    def transform_data(query: FinrptEquityHistoricalQueryParams, data: Any, **kwargs: Any
                       ) -> AnnotatedResult[list[FinrptEquityHistoricalData]]:
        import pandas as pd

        basket = isinstance(data.index, pd.MultiIndex)
        if data.empty:
            raise EmptyDataError(f"no bars for {query.symbol} from {query.start_date} to {query.end_date}"
                                 + (f": {data.attrs.get('failed')}" if data.attrs.get("failed") else ""))
        provider = data.attrs.get("provider")
        rows = []
        events = data.attrs.get("events")
        seen: set = set()
        for key, r in zip(data.index, data.itertuples(index=False)):
            ticker, ts = key if basket else (data.attrs.get("ticker"), key)
            acts = {}
            if events is not None:
                day = ts.date()
                first = (ticker, day) not in seen  # an intraday session's events sit on its first bar
                seen.add((ticker, day))
                splits, cash = events.get(ticker, ({}, {}))
                acts = {"split_ratio": splits.get(day, 0.0) if first else 0.0,
                        "dividend": cash.get(day, 0.0) if first else 0.0}
            rows.append(FinrptEquityHistoricalData(**acts,
                date=_when(ts), open=r.open, high=r.high, low=r.low, close=r.close, volume=r.volume,
                vwap=None if pd.isna(r.vwap) else r.vwap,
                transactions=None if pd.isna(r.transactions) else int(r.transactions),
                symbol=ticker if basket else None,
                provider_used=provider.get(ticker) if isinstance(provider, dict) else provider))
        failed = data.attrs.get("failed") or {}
        if failed:  # a partly answered basket: OpenBB's warnings (obbject.warnings), not metadata alone
            import warnings

            from openbb_core.app.model.abstract.warning import OpenBBWarning

            for t, why in list(failed.items())[:20]:
                warnings.warn(f"no bars for {t}: {why}", OpenBBWarning, stacklevel=2)
            if len(failed) > 20:
                warnings.warn(f"no bars for {len(failed) - 20} more ticker(s): see the metadata's 'failed'",
                              OpenBBWarning, stacklevel=2)
        meta = {"provider": provider, "adjustment": query.adjustment, "interval": query.interval,
                "extended_hours": query.extended_hours, "as_of": str(query.as_of) if query.as_of else None,
                "sources": {t: [{k: str(v) for k, v in s.items()} for s in ss]
                            for t, ss in (data.attrs.get("sources") or {}).items()}
                if basket else [{k: str(v) for k, v in s.items()} for s in data.attrs.get("sources", [])],
                "failed": failed}
        return AnnotatedResult(result=rows, metadata=meta)


class FinrptHistoricalSplitsQueryParams(HistoricalSplitsQueryParams):
    pass


class FinrptHistoricalSplitsData(HistoricalSplitsData):
    pass


def _actions(symbol: str, credentials: dict[str, str] | None, as_of: dt.date | None = None):
    """The symbol's events known today, or (``as_of``) known then: the dividends' split basis
    is then that date's, as the bars beside them are."""
    import finrpt_providers as fp
    from finrpt_providers.actions import get_actions

    cfg = config_for(credentials)
    from finrpt_providers.actions import closes_from, happened

    known = cfg.today() if as_of is None else min(cfg.today(), as_of)
    try:  # a split listed twice is resolved against as-traded closes, as get_prices resolves it
        return happened(get_actions(symbol, cfg, closes_from(cfg)), known), cfg
    except fp.ProviderError as e:
        raise openbb_error(e) from None


class FinrptHistoricalSplitsFetcher(Fetcher[FinrptHistoricalSplitsQueryParams, list[FinrptHistoricalSplitsData]]):
    require_credentials = False

    @staticmethod
    def transform_query(params: dict[str, Any]) -> FinrptHistoricalSplitsQueryParams:
        return FinrptHistoricalSplitsQueryParams(**params)

    @staticmethod
    def extract_data(query: FinrptHistoricalSplitsQueryParams, credentials: dict[str, str] | None,
                     **kwargs: Any) -> list[dict]:
        from fractions import Fraction

        acts, _cfg = _actions(query.symbol, credentials)
        out = []
        for ex, ratio in acts.splits.items():
            f = Fraction(float(ratio)).limit_denominator(1000)
            out.append({"date": ex.date(), "numerator": float(f.numerator), "denominator": float(f.denominator),
                        "split_ratio": f"{f.numerator}:{f.denominator}"})
        if not out:
            raise EmptyDataError(f"no splits of {query.symbol} in {acts.source}'s listing")
        return out

    @staticmethod
    def transform_data(query: FinrptHistoricalSplitsQueryParams, data: list[dict], **kwargs: Any
                       ) -> list[FinrptHistoricalSplitsData]:
        return [FinrptHistoricalSplitsData(**d) for d in data]


class FinrptHistoricalDividendsQueryParams(HistoricalDividendsQueryParams):
    pass


class FinrptHistoricalDividendsData(HistoricalDividendsData):
    pass


class FinrptHistoricalDividendsFetcher(
        Fetcher[FinrptHistoricalDividendsQueryParams, list[FinrptHistoricalDividendsData]]):
    require_credentials = False

    @staticmethod
    def transform_query(params: dict[str, Any]) -> FinrptHistoricalDividendsQueryParams:
        return FinrptHistoricalDividendsQueryParams(**params)

    @staticmethod
    def extract_data(query: FinrptHistoricalDividendsQueryParams, credentials: dict[str, str] | None,
                     **kwargs: Any) -> list[dict]:
        from finrpt_providers.actions import served_dividends

        acts, _cfg = _actions(query.symbol, credentials)
        out = [{"symbol": query.symbol, "ex_dividend_date": ex.date(), "amount": float(cash)}
               for ex, cash in served_dividends(acts).items()
               if (query.start_date is None or ex.date() >= query.start_date)
               and (query.end_date is None or ex.date() <= query.end_date)]
        if not out:
            raise EmptyDataError(f"no dividends of {query.symbol} in the range from {acts.source}")
        return out  # split-adjusted to today, as yfinance and finrpt_providers.yf show them

    @staticmethod
    def transform_data(query: FinrptHistoricalDividendsQueryParams, data: list[dict], **kwargs: Any
                       ) -> list[FinrptHistoricalDividendsData]:
        return [FinrptHistoricalDividendsData(**d) for d in data]


class FinrptMarketSnapshotsQueryParams(MarketSnapshotsQueryParams):
    date: dt.date | None = Field(default=None, description="The session (default: the last one)")
    adjustment: str = Field(default="raw", description="raw (as traded), splits, or total")


class FinrptMarketSnapshotsData(MarketSnapshotsData):
    pass


class FinrptMarketSnapshotsFetcher(Fetcher[FinrptMarketSnapshotsQueryParams, list[FinrptMarketSnapshotsData]]):
    require_credentials = False

    @staticmethod
    def transform_query(params: dict[str, Any]) -> FinrptMarketSnapshotsQueryParams:
        return FinrptMarketSnapshotsQueryParams(**params)

    @staticmethod
    def extract_data(query: FinrptMarketSnapshotsQueryParams, credentials: dict[str, str] | None, **kwargs: Any):
        import finrpt_providers as fp
        from finrpt_providers import calendar

        cfg = config_for(credentials)
        day = query.date or calendar.sessions(cfg.today() - dt.timedelta(days=10), cfg.today() - dt.timedelta(days=1))[-1]
        prev = calendar.session_before(day)
        # the change is against the previous close in today's basis: a split on ``day`` must not
        # read as a -75% day (raw closes of two share bases); the bars shown keep the asked basis
        basis = "splits" if query.adjustment == "raw" else query.adjustment
        try:
            frame = fp.get_market(prev or day, day, adjustment=query.adjustment, config=cfg)
            ref = frame if basis == query.adjustment else fp.get_market(prev or day, day, adjustment=basis,
                                                                         config=cfg)
        except fp.ProviderError as e:
            raise openbb_error(e) from None
        ref_closes = {t: part.droplevel("ticker")["close"] for t, part in ref.groupby(level="ticker", sort=False)}
        out = []
        for ticker, part in frame.groupby(level="ticker", sort=True):
            bars = part.droplevel("ticker")
            today = bars[bars.index.date == day]
            if today.empty:
                continue
            r = today.iloc[-1]
            close = float(r["close"])
            closes = ref_closes.get(ticker)
            growth = (float(closes.iloc[-1]) / float(closes.iloc[-2])
                      if closes is not None and len(closes) > 1 and closes.index[-1].date() == day else None)
            prev_close = close / growth if growth else None
            out.append({"symbol": ticker, "open": float(r["open"]), "high": float(r["high"]), "low": float(r["low"]),
                        "close": close, "volume": int(round(float(r["volume"]))),
                        "prev_close": prev_close,
                        "change": close - prev_close if prev_close else None,
                        "change_percent": growth - 1 if growth else None})
        if not out:
            raise EmptyDataError(f"no market cross-section for {day}")
        return out

    @staticmethod
    def transform_data(query: FinrptMarketSnapshotsQueryParams, data: list[dict], **kwargs: Any
                       ) -> list[FinrptMarketSnapshotsData]:
        return [FinrptMarketSnapshotsData(**d) for d in data]
