"""A fake Massive REST API serving the synthetic market in Massive's exact formats.

Endpoints: aggregates (with ``next_url`` pagination), grouped daily, splits and
dividends (current ``/stocks/v1/...`` and legacy ``/v3/reference/...``). Auth by
``Authorization: Bearer`` or ``?apiKey=``. Error bodies as listed in the reference.

Switches (attributes; change them at any time):

* ``api_key``: the key it accepts (``None``: any key, but one must be sent);
* ``entitled``: timespans the plan includes (``None``: all) -> 403 NOT_AUTHORIZED;
* ``history_start``: first date the plan covers -> 403 "data timeframe";
* ``rate_limit_every``: every Nth request answers 429 (``retry_after`` header
  value, ``None`` to omit it); ``rate_limit_all``: every request answers 429;
* ``fail_next``: that many next requests answer ``fail_status`` with an HTML page;
* ``delay``: seconds before each answer; ``page_size``: results per page at most
  (``reference_page_size`` for the splits and dividends endpoints);
* ``null_results``: empty answers carry ``"results": null`` (older API) instead of
  no ``results`` key; ``cursor_keeps_adjusted``: whether ``next_url`` cursors carry
  ``adjusted`` (default False: a client must re-add it); ``reference_v1``: False
  makes ``/stocks/v1/*`` answer 404 (only legacy endpoints);
  ``repeat_cursor``: every ``next_url`` points to the same page (a loop);
  ``malformed_next``: that many next answers are cut-off JSON with status 200;
  ``always_null``: every aggregates answer is ``"results": null`` (OK, but no bars);
  and the base class's ``reset_next`` / ``hang_next`` / ``trickle_next``.

Hostile switches (what an adversarial server does):

* ``next_url_base``: what replaces the production host in every ``next_url`` (``""``: a
  bare path; ``"1"``, ``"@127.0.0.2:8080"``, ``".attacker.example"``: scheme-less hosts);
  ``next_url_ticker``: another ticker's path in aggregates ``next_url`` s;
  ``next_url_extra``: query text appended to every ``next_url`` (e.g. ``"&APIKEY=x"``);
* ``echo_next``: that many next answers are a 400 whose error text echoes the request's
  ``Authorization`` header and query string;
* ``results_order``: ``"asc"`` (default), ``"desc"`` or ``"shuffle"`` within each page;
* ``endless``: every aggregates page has a fresh cursor: ``"same"`` (the same bars
  again) or ``"new"`` (bars of ever later minutes);
* ``huge_body_mb``: aggregates answers padded to that many MB; ``nested_next``: that many
  next answers are 100,000 nested brackets (status 200);
* ``poison``: ``(field, value)`` put into the first bar of each aggregates page (e.g.
  ``("v", float("nan"))``, ``("h", float("inf"))``);
* ``reference_status``: the splits/dividends endpoints answer this status (e.g. 400);
  ``reference_404_after_first``: their second pages answer 404.

A whole market: ``tape`` (a :class:`~.tape.WideTape`) answers minute aggregates of its
tickers (``W0000``...), as the fake WebSocket given the same tape streams them.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
import uuid
from fractions import Fraction
from urllib.parse import parse_qsl

import numpy as np
import pandas as pd

from .. import calendar
from ..intervals import INTERVAL_MINUTES
from ..timebase import ET
from .http import FakeHTTPServer, Request, Response
from .market import SyntheticMarket

PROD = "https://api.massive.com"
_SPANS = {("1", "minute"): "1m", ("5", "minute"): "5m", ("15", "minute"): "15m", ("30", "minute"): "30m",
          ("1", "hour"): "1h", ("60", "minute"): "1h", ("1", "day"): "1d", ("1", "second"): "1s"}


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(text: str) -> str:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()


def _ms(ts: pd.Timestamp) -> int:
    return int(ts.value // 1_000_000)


def _day_or_ms(value: str, end: bool) -> pd.Timestamp:
    if value.isdigit():
        return pd.Timestamp(int(value), unit="ms", tz="UTC").tz_convert(ET)
    day = pd.Timestamp(dt.date.fromisoformat(value), tz=ET)
    return day + pd.Timedelta(days=1) - pd.Timedelta(milliseconds=1) if end else day


class FakeMassiveREST(FakeHTTPServer):
    def __init__(self, market: SyntheticMarket | None = None, api_key: str | None = "test-key") -> None:
        super().__init__()
        self.market = market or SyntheticMarket()
        self.api_key = api_key
        self.entitled: set[str] | None = None
        self.history_start: dt.date | None = None
        self.rate_limit_every = 0
        self.rate_limit_all = False
        self.retry_after: str | None = "1"
        self.fail_next = 0
        self.fail_status = 502
        self.delay = 0.0
        self.page_size = 50000
        self.reference_page_size = 5000
        self.null_results = False
        self.tape = None
        self.cursor_keeps_adjusted = False
        self.reference_v1 = True
        self.repeat_cursor = False
        self.malformed_next = 0
        self.always_null = False
        self.next_url_base: str = PROD
        self.next_url_ticker: str | None = None
        self.next_url_extra = ""
        self.echo_next = 0
        self.results_order = "asc"
        self.endless: str | None = None
        self.huge_body_mb = 0
        self.nested_next = 0
        self.poison: tuple[str, float] | None = None
        #: intraday bars starting at or after this instant are not served yet (a plan's delay)
        self.intraday_until: pd.Timestamp | None = None
        self.reference_status: int | None = None
        self.reference_404_after_first = False
        # split listings as a flawed reference feed has them: (ticker, "YYYY-MM-DD", ratio) added,
        # and ticker -> ratio replacing the market's own ratio (a wrong listing)
        self.extra_splits: list[tuple[str, str, float]] = []
        self.split_ratio_override: dict[str, float] = {}
        # dividend records added to the listing as a flawed feed has them: (ticker, "YYYY-MM-DD", cash,
        # currency); repeat_dividends lists every record of these tickers twice, verbatim
        self.extra_dividends: list[tuple[str, str, float, str]] = []
        self.repeat_dividends: set[str] = set()
        self._count = 0
        self._count_lock = threading.Lock()
        self._frames: dict[tuple[str, str, bool], pd.DataFrame] = {}

    def frame(self, ticker: str, interval: str, adjusted: bool) -> pd.DataFrame:
        """The whole range's bars for one series, built once: pages are then cheap slices."""
        key = (ticker, interval, adjusted)
        with self._count_lock:
            cached = self._frames.get(key)
        if cached is None:
            m = self.market
            if interval == "1s":  # the market's minutes split in three (testing.market.second_bars); the
                # sandbox streams only the last sessions, so only those are served by the second
                from .market import second_bars

                cached = second_bars(m.truth(ticker, m.sessions[-2], m.end, "1m", "raw", extended_hours=True))
            else:
                cached = m.truth(ticker, m.start, m.end, interval, "splits" if adjusted else "raw",
                                 extended_hours=True)
            with self._count_lock:
                if len(self._frames) > 24:
                    self._frames.clear()
                self._frames[key] = cached
        return cached

    def reset(self) -> None:
        """Switches back to defaults and the request log emptied."""
        fresh = FakeMassiveREST(self.market, self.api_key)
        for k in ("entitled", "history_start", "rate_limit_every", "rate_limit_all", "retry_after", "fail_next",
                  "fail_status", "delay", "page_size", "tape", "reference_page_size", "null_results", "malformed_next", "always_null", "cursor_keeps_adjusted", "reference_v1",
                  "repeat_cursor", "extra_splits", "split_ratio_override", "extra_dividends", "repeat_dividends", "next_url_base", "next_url_ticker",
                  "next_url_extra", "echo_next", "results_order", "endless", "huge_body_mb", "nested_next",
                  "poison", "intraday_until", "reference_status", "reference_404_after_first"):
            setattr(self, k, getattr(fresh, k))
        self.reset_next = self.hang_next = self.trickle_next = 0
        with self._lock:
            self.requests.clear()
        self._count = 0

    def aggregate_requests(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith("/v2/aggs/ticker/")]

    # -- dispatch ---------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        if self.delay:
            time.sleep(self.delay)
        with self._count_lock:
            self._count += 1
            n = self._count
            if self.fail_next > 0:
                self.fail_next -= 1
                return Response.text("<html><head><title>502 Bad Gateway</title></head><body><center><h1>"
                                     "502 Bad Gateway</h1></center></body></html>", self.fail_status,
                                     content_type="text/html")
            if self.malformed_next > 0:
                self.malformed_next -= 1
                return Response.text('{"ticker":"AAPL","status":"OK","results":[{"o":1.0,"c"', 200,
                                     content_type="application/json")
            nested = self.nested_next > 0
            if nested:
                self.nested_next -= 1
            echo = self.echo_next > 0
            if echo:
                self.echo_next -= 1
        if nested:
            return Response.text("[" * 100_000 + "]" * 100_000, 200, content_type="application/json")
        if echo:
            sent = f"Authorization: {req.headers.get('authorization', '')}; query: " + "&".join(
                f"{k}={v}" for k, v in req.query.items())
            return Response.json({"status": "ERROR", "request_id": "echo", "error": f"bad request ({sent})"}, 400)
        rid = uuid.uuid4().hex
        if self.rate_limit_all or (self.rate_limit_every and n % self.rate_limit_every == 0):
            headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
            return Response.json({"status": "ERROR", "request_id": rid, "error": "You've exceeded the maximum "
                                  "requests per minute, please wait or upgrade your subscription to continue. "
                                  "https://massive.com/pricing"}, 429, **headers)
        auth = req.headers.get("authorization", "")
        key = auth[7:] if auth.startswith("Bearer ") else req.query.get("apiKey")
        if not key:
            return Response.json({"status": "ERROR", "request_id": rid, "error": "API Key was not provided"}, 401)
        if self.api_key is not None and key != self.api_key:
            return Response.json({"status": "ERROR", "request_id": rid, "error": "Unknown API Key"}, 401)
        parts = req.path.strip("/").split("/")
        q = dict(req.query)
        if "cursor" in q:
            q = {**dict(parse_qsl(_unb64(q.pop("cursor")))), **q}
        if req.path.startswith("/v2/aggs/ticker/") and len(parts) == 9:
            return self._aggs(parts[3], parts[5], parts[6], parts[7], parts[8], q, rid)
        if req.path.startswith("/v2/aggs/grouped/locale/us/market/stocks/"):
            return self._grouped(parts[-1], q, rid)
        if req.path.startswith(("/stocks/v1/", "/v3/reference/")):
            if self.reference_status is not None:
                return Response.json({"status": "ERROR", "request_id": rid, "error": "Invalid value for "
                                      "parameter 'execution_date.gte'"}, self.reference_status)
            if self.reference_404_after_first and "cursor" in req.query:
                return Response.json({"status": "NOT_FOUND", "request_id": rid, "message": "cursor expired"}, 404)
        if req.path in ("/stocks/v1/splits", "/stocks/v1/dividends"):
            if not self.reference_v1:
                return Response.json({"status": "NOT_FOUND", "request_id": rid, "message": "Not found"}, 404)
            return self._reference(req.path, q, rid, legacy=False)
        if req.path in ("/v3/reference/splits", "/v3/reference/dividends"):
            return self._reference(req.path, q, rid, legacy=True)
        if req.path == "/vX/reference/financials":
            return self._financials(q, rid)
        return Response.json({"status": "NOT_FOUND", "request_id": rid, "message": "Not found"}, 404)

    # -- financials (a few concepts, four periods, made up but stable) ------------------
    FINANCIALS = {"income_statement": {"revenues": 9.1e10, "net_income_loss": 2.3e10,
                                       "operating_income_loss": 2.9e10, "diluted_earnings_per_share": 1.57},
                  "balance_sheet": {"assets": 3.5e11, "equity_attributable_to_parent": 7.4e10,
                                    "liabilities": 2.76e11},
                  "cash_flow_statement": {"net_cash_flow_from_operating_activities": 2.8e10}}

    def _financials(self, q: dict, rid: str) -> Response:
        ticker = q.get("ticker", "")
        annual = q.get("timeframe") == "annual"
        results = []
        if ticker in self.market.specs:
            from . import statements  # one consistent set (annual EPS = the sum of its quarters')

            ends = tuple(reversed(statements.YEARS if annual else statements.QUARTERS))
            value = statements.year if annual else statements.quarter
            for i, end in enumerate(ends):
                results.append({"end_date": end, "timeframe": "annual" if annual else "quarterly",
                                "fiscal_period": "FY" if annual else f"Q{i + 1}", "tickers": [ticker],
                                "financials": {sec: {k: {"value": value(k, v, end), "unit": "USD", "label": k}
                                                     for k, v in items.items()}
                                               for sec, items in self.FINANCIALS.items()}})
        return Response.json({"status": "OK", "request_id": rid, "results": results, "count": len(results)})

    # -- aggregates ---------------------------------------------------------------
    def _aggs(self, ticker, mult, span, frm, to, q, rid) -> Response:
        interval = _SPANS.get((mult, span))
        if interval is None:
            return Response.json({"status": "ERROR", "request_id": rid,
                                  "error": f"the fake serves {sorted(_SPANS)} only"}, 400)
        try:
            lo, hi = _day_or_ms(frm, end=False), _day_or_ms(to, end=True)
        except ValueError:
            return Response.json({"status": "ERROR", "request_id": rid, "error": "Could not parse the time "
                                  "parameter: 'from'. Use YYYY-MM-DD or Unix MS Timestamps"}, 400)
        if hi < lo:
            return Response.json({"status": "ERROR", "request_id": rid,
                                  "error": "The parameter 'to' cannot be a time that occurs before 'from'"}, 400)
        if self.entitled is not None and span not in self.entitled:
            return Response.json({"status": "NOT_AUTHORIZED", "request_id": rid, "message": "You are not entitled "
                                  "to this data. Please upgrade your plan at https://massive.com/pricing"}, 403)
        if self.history_start is not None and lo.date() < self.history_start:
            return Response.json({"status": "NOT_AUTHORIZED", "request_id": rid, "message": "Your plan doesn't "
                                  "include this data timeframe. Please upgrade your plan at "
                                  "https://massive.com/pricing"}, 403)
        adjusted = q.get("adjusted", "true") != "false"
        limit = min(int(q.get("limit", 5000)), 50000)
        if self.tape is not None and ticker in self.tape.index and interval == "1m":
            results = self.tape.results(ticker, _ms(lo), _ms(hi))[:limit]
            body = {"ticker": ticker, "queryCount": len(results), "resultsCount": len(results), "adjusted": adjusted,
                    "status": "OK", "request_id": rid}
            if results:
                body["results"], body["count"] = results, len(results)
            return Response(200, json.dumps(body).encode(), {"Content-Type": "application/json"})
        bars = pd.DataFrame()
        if self.market.knows(ticker) and not self.always_null:  # stocks, ETFs and indices (I:SPX)
            whole = self.frame(ticker, interval, adjusted)
            i, j = whole.index.searchsorted(lo, "left"), whole.index.searchsorted(hi, "right")
            bars = whole.iloc[i:j]
            if self.intraday_until is not None and interval != "1d":
                bars = bars[bars.index < self.intraday_until]
        per_page = limit if interval in ("1d", "1s") else max(1, limit // INTERVAL_MINUTES[interval])
        per_page = min(per_page, self.page_size)
        page, rest = bars.iloc[:per_page], bars.iloc[per_page:]
        body = {"ticker": ticker, "queryCount": int(len(page)), "resultsCount": int(len(page)),
                "adjusted": adjusted, "status": "OK", "request_id": rid}
        if len(page):
            results = _results(page)
            if self.endless == "new" and "page" in q:  # ever later minutes, never the end
                shift = int(q["page"]) * len(results) * 60_000
                results = [{**r, "t": r["t"] + shift} for r in results]
            if self.poison is not None:
                results[0][self.poison[0]] = self.poison[1]
            if self.results_order == "desc":
                results.reverse()
            elif self.results_order == "shuffle":
                import random

                random.Random(len(results)).shuffle(results)
            body["results"] = results
            body["count"] = len(page)
        elif self.null_results or self.always_null:
            body["results"] = None
        base = self.next_url_base
        path_ticker = self.next_url_ticker or ticker
        if self.endless:
            n = int(q.get("page", 0)) + 1
            body["next_url"] = (f"{base}/v2/aggs/ticker/{path_ticker}/range/{mult}/{span}/{frm}/{to}?cursor="
                                f"{_b64(f'limit={limit}&page={n}&nonce={uuid.uuid4().hex}')}{self.next_url_extra}")
        elif len(rest):
            nxt_from = frm if self.repeat_cursor else str(_ms(rest.index[0]))
            cursor = f"limit={limit}&sort={q.get('sort', 'asc')}"
            if self.cursor_keeps_adjusted:
                cursor += f"&adjusted={'true' if adjusted else 'false'}"
            body["next_url"] = (f"{base}/v2/aggs/ticker/{path_ticker}/range/{mult}/{span}/{nxt_from}/{to}"
                                f"?cursor={_b64(cursor)}{self.next_url_extra}")
        if self.huge_body_mb:
            body["padding"] = "x" * (self.huge_body_mb << 20)
        return Response(200, json.dumps(body, allow_nan=True).encode(), {"Content-Type": "application/json"})

    def _grouped(self, day: str, q, rid) -> Response:
        adjusted = q.get("adjusted", "true") != "false"
        d = dt.date.fromisoformat(day)
        results = []
        section = self.market.cross_section(d)  # raw bars of every ticker that day
        end_ms = _ms(calendar.session_hours(d)[1])  # grouped daily stamps the END (16:00 ET)
        for t, row in zip(section["ticker"], _results(section.drop(columns="ticker"))):
            if adjusted and len(self.market.splits(t)):
                row = _results(self.market.truth(t, d, d, "1d", "splits"))[0]
            results.append({"T": t, **row, "t": end_ms})
        body = {"queryCount": len(results), "resultsCount": len(results), "adjusted": adjusted,
                "status": "OK", "request_id": rid}
        if results:
            body["results"] = results
        return Response.json(body)

    # -- reference ----------------------------------------------------------------
    def _reference(self, path: str, q, rid, legacy: bool) -> Response:
        ticker = q.get("ticker")
        tickers = [ticker] if ticker else self.market.tickers
        rows = []
        m = self.market
        for t in tickers:
            if t not in m.specs:
                continue
            if path.endswith("splits"):
                listed = [(ex, self.split_ratio_override.get(t, r)) for ex, r in m.splits(t).items()]
                listed += [(pd.Timestamp(d, tz="America/New_York"), r) for tt, d, r in self.extra_splits if tt == t]
                for ex, ratio in listed:
                    fr = Fraction(ratio).limit_denominator(1000)
                    row = {"ticker": t, "execution_date": ex.date().isoformat(),
                           "split_from": float(fr.denominator), "split_to": float(fr.numerator)}
                    if legacy:
                        row["id"] = f"E{uuid.uuid5(uuid.NAMESPACE_URL, t + str(ex)).hex[:20]}"
                    else:
                        row["adjustment_type"] = "forward_split" if ratio > 1 else "reverse_split"
                        row["historical_adjustment_factor"] = float(1 / max(m._split_factor(t, (ex - pd.Timedelta(days=1)).date()), 1e-9))
                    rows.append(row)
            else:
                listed = [(ex, cash, "USD") for ex, cash in m.dividends(t).items()]
                listed += [(pd.Timestamp(d, tz="America/New_York"), c, cur) for tt, d, c, cur in self.extra_dividends
                           if tt == t]
                if t in self.repeat_dividends:
                    listed = [x for x in listed for _ in (0, 1)]
                for ex, cash, currency in listed:
                    ex_d = ex.date()
                    row = {"ticker": t, "cash_amount": float(cash), "currency": currency,
                           "ex_dividend_date": ex_d.isoformat(), "record_date": (ex_d + dt.timedelta(days=1)).isoformat(),
                           "pay_date": (ex_d + dt.timedelta(days=14)).isoformat(),
                           "declaration_date": (ex_d - dt.timedelta(days=20)).isoformat(), "frequency": 4}
                    if legacy:
                        row["dividend_type"] = "CD"
                    else:
                        row["distribution_type"] = "recurring"
                        row["split_adjusted_cash_amount"] = float(cash / m._split_factor(t, ex_d))
                    rows.append(row)
        key = "execution_date" if path.endswith("splits") else "ex_dividend_date"
        rows.sort(key=lambda r: (r["ticker"], r[key]))
        limit = min(int(q.get("limit", 100)), self.reference_page_size)
        offset = int(q.get("offset", 0))
        page = rows[offset:offset + limit]
        body = {"status": "OK", "request_id": rid}
        if page or not self.null_results:
            body["results"] = page
        else:
            body["results"] = None
        if offset + limit < len(rows):
            extra = "&".join(f"{k}={v}" for k, v in (("ticker", ticker),) if v)
            cursor = _b64(f"limit={limit}&offset={offset + limit}" + (f"&{extra}" if extra else ""))
            body["next_url"] = f"{PROD}{path}?cursor={cursor}"
        return Response.json(body)


def _results(bars: pd.DataFrame) -> list[dict]:
    t = (bars.index.as_unit("ns").asi8 // 1_000_000).tolist()
    o, h, lo, c, v, vw = (bars[k].to_numpy(dtype="float64").tolist() for k in ("open", "high", "low", "close",
                                                                                 "volume", "vwap"))
    n = bars["transactions"].to_numpy(dtype="float64", na_value=np.nan).tolist()
    out = [{"v": v[i], "vw": vw[i], "o": o[i], "c": c[i], "h": h[i], "l": lo[i], "t": t[i]} for i in range(len(t))]
    for r, k in zip(out, n):
        if k == k:  # Massive omits ``n`` where it has no trade count (second bars here)
            r["n"] = int(k)
        if r["v"] != r["v"]:  # an index: no volume, no vwap (Massive sends neither)
            del r["v"], r["vw"]
    return out
