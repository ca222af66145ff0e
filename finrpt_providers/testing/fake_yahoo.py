"""A fake Yahoo Finance chart API serving the synthetic market, for the REAL yfinance code.

Point the ``yfinance`` provider at it with ``FINRPT_YFINANCE_BASE_URL=<server.url>``:
the provider's session then sends every ``https://*.yahoo.com`` request here, so
yfinance's cookie, crumb, retry, 429 and parsing code all run unpatched.

Rendered like Yahoo: prices split-adjusted, ``adjclose`` split- and
dividend-adjusted (daily only), volumes whole split-adjusted shares, dividends
split-adjusted, splits as numerator/denominator, timestamps in epoch seconds (daily
bars at the 09:30 open), unknown symbols a 404 with Yahoo's error body.

Switches (attributes, change them at any time): ``rate_limited`` (every chart
request answers 429), ``fail_status`` (chart requests answer this status with an
HTML page), ``delay`` (seconds before answering a chart request), ``malformed``
(chart requests answer cut-off JSON), and the base class's ``reset_next`` /
``hang_next``.
"""

from __future__ import annotations

import time
from urllib.parse import unquote
from fractions import Fraction

import numpy as np
import pandas as pd

from .. import calendar
from ..provider import ET
from . import statements
from .http import FakeHTTPServer, Request, Response
from .market import SyntheticMarket

_INTERVALS = {"1m": "1m", "2m": None, "5m": "5m", "15m": "15m", "30m": "30m", "60m": "1h", "1h": "1h", "1d": "1d"}


def _epoch(ts: pd.Timestamp) -> int:
    return int(ts.tz_convert("UTC").timestamp())


class FakeYahoo(FakeHTTPServer):
    def __init__(self, market: SyntheticMarket | None = None) -> None:
        super().__init__()
        self.market = market or SyntheticMarket()
        self.rate_limited = False
        self.fail_status: int | None = None
        self.delay = 0.0
        self.malformed = False
        self.chart_body: bytes | None = None  # serve these bytes for every chart request (fuzzing)

    def chart_requests(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith("/v8/finance/chart/")]

    def handle(self, req: Request) -> Response:
        if req.path == "/v1/test/getcrumb":
            return Response.text("fake-crumb")
        if req.path.startswith("/v8/finance/chart/"):
            if self.delay:
                time.sleep(self.delay)
            if self.rate_limited:
                return Response.text("Too Many Requests\r\n", 429)
            if self.fail_status:
                return Response.text("<html><body>Will be right back...</body></html>", self.fail_status,
                                     content_type="text/html")
            if self.chart_body is not None:
                return Response(200, self.chart_body, {"Content-Type": "application/json"})
            if self.malformed:
                return Response.text('{"chart": {"result": [{"meta": {"currency": "USD"', 200,
                                     content_type="application/json")
            return self._chart(unquote(req.path.rsplit("/", 1)[-1]), req.query)
        if req.path.startswith("/ws/fundamentals-timeseries/v1/finance/timeseries/"):
            return self._timeseries(req.path.rsplit("/", 1)[-1], req.query.get("type", ""))
        if req.path.startswith("/v10/finance/quoteSummary/"):
            return self._quote_summary(unquote(req.path.rsplit("/", 1)[-1]))
        if req.path == "/v7/finance/quote":
            return self._quote(req.query.get("symbols", ""))
        return Response.text("ok")  # fc.yahoo.com, consent pages...

    # a few line items per statement, four quarters, made up but stable
    STATEMENT_ITEMS = {"TotalRevenue": 9.1e10, "NetIncome": 2.3e10, "OperatingIncome": 2.9e10,
                       "TotalAssets": 3.5e11, "StockholdersEquity": 7.4e10, "TotalDebt": 1.1e11,
                       "OperatingCashFlow": 2.8e10, "FreeCashFlow": 2.4e10, "CapitalExpenditure": -3.1e9,
                       "DilutedEPS": 1.57}
    QUARTERS = statements.QUARTERS
    YEARS = statements.YEARS

    def _timeseries(self, symbol: str, types: str) -> Response:
        ticker = symbol.replace("-", ".")
        result = []
        if ticker in self.market.specs:
            scale = 1 + list(self.market.specs).index(ticker) * 0.13
            for typ in types.split(","):
                for prefix, periods, span, value in (("quarterly", self.QUARTERS, "3M", statements.quarter),
                                                     ("annual", self.YEARS, "12M", statements.year)):
                    item = typ[len(prefix):]
                    if typ.startswith(prefix) and item in self.STATEMENT_ITEMS:
                        base = self.STATEMENT_ITEMS[item] * scale
                        values = [{"asOfDate": q, "periodType": span, "currencyCode": "USD",
                                   "reportedValue": {"raw": value(item, base, q), "fmt": ""}}
                                  for q in periods]
                        result.append({"meta": {"symbol": [symbol], "type": [typ]},
                                       "timestamp": [_epoch(pd.Timestamp(q, tz="UTC")) for q in periods],
                                       typ: values})
        return Response.json({"timeseries": {"result": result, "error": None}})

    def _info(self, symbol: str) -> dict:
        ticker = _ours(symbol)
        close = float(self.market.daily(ticker)["close"].iloc[-1])
        kind = "INDEX" if ticker.startswith("I:") else "ETF" if ticker == "SPY" else "EQUITY"
        return {"symbol": symbol, "currency": "USD", "quoteType": kind,
                "exchangeTimezoneName": ET, "exchangeTimezoneShortName": "EDT", "exchange": "NMS",
                "shortName": f"{ticker} (synthetic)", "longName": f"{ticker} synthetic test security",
                "regularMarketPrice": close, "previousClose": close, "financialCurrency": "USD"}

    def _quote_summary(self, symbol: str) -> Response:
        if not self.market.knows(_ours(symbol)):
            return Response.json({"quoteSummary": {"result": None, "error": {
                "code": "Not Found", "description": f"Quote not found for symbol: {symbol}"}}}, 404)
        info = self._info(symbol)
        return Response.json({"quoteSummary": {"result": [{
            "quoteType": {k: info[k] for k in ("symbol", "quoteType", "exchangeTimezoneName", "shortName", "longName")},
            "summaryDetail": {"currency": "USD", "previousClose": info["previousClose"]},
            "financialData": {"financialCurrency": "USD"},
            "defaultKeyStatistics": {}, "assetProfile": {},
        }], "error": None}})

    def _quote(self, symbols: str) -> Response:
        known = [s for s in unquote(symbols).split(",") if self.market.knows(_ours(s))]
        return Response.json({"quoteResponse": {"result": [self._info(s) for s in known], "error": None}})

    @staticmethod
    def _not_found() -> Response:
        return Response.json({"chart": {"result": None, "error": {
            "code": "Not Found", "description": "No data found, symbol may be delisted"}}}, 404)

    def _chart(self, symbol: str, q: dict[str, str]) -> Response:
        ticker = _ours(symbol)
        m = self.market
        if not m.knows(ticker):
            return self._not_found()
        interval = _INTERVALS.get(q.get("interval", "1d"))
        if interval is None:
            return Response.json({"chart": {"result": None, "error": {
                "code": "Bad Request", "description": f"Invalid input - interval={q.get('interval')} is not supported."}}}, 400)
        days = m.trading_days(ticker)
        if "period1" in q:
            p1 = pd.Timestamp(int(q["period1"]), unit="s", tz="UTC")
            p2 = pd.Timestamp(int(q.get("period2", _epoch(pd.Timestamp.now(tz="UTC")))), unit="s", tz="UTC")
        else:  # range=1d/5d...: the last sessions
            n = {"1d": 1, "5d": 5, "max": len(days)}.get(q.get("range", "1d"), 22)
            p1 = pd.Timestamp(days[-min(n, len(days))], tz=ET).tz_convert("UTC")
            p2 = pd.Timestamp(days[-1] + pd.Timedelta(days=1), tz=ET).tz_convert("UTC")
        first = max(p1.tz_convert(ET).date(), m.start)
        last = min((p2 - pd.Timedelta(seconds=1)).tz_convert(ET).date(), m.end)
        # Yahoo serves the regular session alone (hourly bars from 09:30) unless includePrePost
        prepost = interval != "1d" and str(q.get("includePrePost", "false")).lower() == "true"
        splits_adj = m.truth(ticker, first, last, interval, "splits", extended_hours=prepost) \
            if first <= last else None
        stamps: list[int] = []
        result: dict = {"meta": self._meta(ticker, symbol, q, interval)}
        if interval != "1d":
            days = [d for d in m.trading_days(ticker) if first <= d <= last] if first <= last else []
            result["meta"]["tradingPeriods"] = _trading_periods(days, prepost)
        if splits_adj is not None and len(splits_adj):
            idx = splits_adj.index
            if interval == "1d":  # Yahoo stamps daily bars at the open
                bar_ts = pd.DatetimeIndex([calendar.session_hours(d.date())[0] for d in idx])
            else:
                bar_ts = idx
            keep = (bar_ts >= p1) & (bar_ts < p2)
            splits_adj, bar_ts = splits_adj[keep], bar_ts[keep]
            stamps = [_epoch(t) for t in bar_ts]
            quote = {c: [float(x) for x in splits_adj[c]] for c in ("open", "high", "low", "close")}
            # an index: Yahoo's volume is 0 (^NDX) or a composite count, never the index's own
            quote["volume"] = [0 if v != v else int(v) for v in np.round(splits_adj["volume"].to_numpy())]
            result["timestamp"] = stamps
            result["indicators"] = {"quote": [quote]}
            if interval == "1d":
                total = m.truth(ticker, first, last, "1d", "total")["close"][keep]
                result["indicators"]["adjclose"] = [{"adjclose": [float(x) for x in total]}]
        else:
            result["indicators"] = {"quote": [{}]}
            if interval == "1d":
                result["indicators"]["adjclose"] = [{}]
        events = self._events(ticker, p1, p2) if "div" in q.get("events", "") else {}
        if events:
            result["events"] = events
        return Response.json({"chart": {"result": [result], "error": None}})

    def _events(self, ticker: str, p1: pd.Timestamp, p2: pd.Timestamp) -> dict:
        m = self.market
        out: dict = {}
        divs = {}
        for ex, cash in m.dividends(ticker).items():
            ts = calendar.session_hours(ex.date())[0]
            if p1 <= ts < p2:
                adj = cash / m._split_factor(ticker, ex.date())
                divs[str(_epoch(ts))] = {"amount": float(adj), "date": _epoch(ts)}
        splits = {}
        for ex, ratio in m.splits(ticker).items():
            ts = calendar.session_hours(ex.date())[0]
            if p1 <= ts < p2:
                frac = Fraction(ratio).limit_denominator(1000)
                splits[str(_epoch(ts))] = {"date": _epoch(ts), "numerator": float(frac.numerator),
                                           "denominator": float(frac.denominator),
                                           "splitRatio": f"{frac.numerator}:{frac.denominator}"}
        if divs:
            out["dividends"] = divs
        if splits:
            out["splits"] = splits
        return out

    def _meta(self, ticker: str, symbol: str, q: dict[str, str], interval: str) -> dict:
        m = self.market
        last = m.trading_days(ticker)[-1]
        o, c = calendar.session_hours(last)
        close = float(m.daily(ticker)["close"].iloc[-1])
        gmt = int(o.utcoffset().total_seconds())
        tzname = o.tzname()

        def period(a: pd.Timestamp, b: pd.Timestamp) -> dict:
            return {"timezone": tzname, "start": _epoch(a), "end": _epoch(b), "gmtoffset": gmt}

        return {
            "currency": "USD", "symbol": symbol, "exchangeName": "NMS", "fullExchangeName": "NasdaqGS",
            "instrumentType": "INDEX" if ticker.startswith("I:") else "ETF" if ticker == "SPY" else "EQUITY",
            "firstTradeDate": _epoch(pd.Timestamp(m.trading_days(ticker)[0], tz=ET)),
            "regularMarketTime": _epoch(c), "hasPrePostMarketData": True, "gmtoffset": gmt, "timezone": tzname,
            "exchangeTimezoneName": ET, "regularMarketPrice": close, "chartPreviousClose": close,
            "priceHint": 2, "dataGranularity": q.get("interval", "1d"), "range": q.get("range", ""),
            "currentTradingPeriod": {
                "pre": period(o - pd.Timedelta(hours=5, minutes=30), o),
                "regular": period(o, c),
                "post": period(c, c + pd.Timedelta(hours=4)),
            },
            "validRanges": ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"],
        }


def _ours(symbol: str) -> str:
    """Yahoo's symbol -> the market's ticker (``BRK-B`` -> ``BRK.B``, ``^GSPC`` -> ``I:SPX``)."""
    if symbol.startswith("^"):
        from ..query import CARET_INDICES

        return CARET_INDICES.get(symbol.upper(), "I:" + symbol[1:].upper())
    return symbol.replace("-", ".")


def _trading_periods(days: list, prepost: bool):
    """Yahoo's ``meta.tradingPeriods`` of an intraday chart: each session's regular period (a
    list of one-element lists), or with pre/post-market ``{"pre", "regular", "post"}``; yfinance
    drops the bars outside the regular periods when prepost=False."""
    def one(a: pd.Timestamp, b: pd.Timestamp) -> list[dict]:
        return [{"timezone": a.tzname(), "start": _epoch(a), "end": _epoch(b),
                 "gmtoffset": int(a.utcoffset().total_seconds())}]

    regular, pre, post = [], [], []
    for d in days:
        o, c = calendar.session_hours(d)
        regular.append(one(o, c))
        pre.append(one(pd.Timestamp(d, tz=ET) + pd.Timedelta(hours=4), o))
        post.append(one(c, c + pd.Timedelta(hours=4)))
    return {"pre": pre, "regular": regular, "post": post} if prepost else regular
