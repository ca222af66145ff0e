"""Provider ``massive_rest``: Massive (formerly Polygon.io) REST aggregates.

* ``GET /v2/aggs/ticker/{T}/range/{m}/{timespan}/{from}/{to}`` with ``sort=asc`` and
  ``limit=50000`` (the maximum: fewer pages); both dates inclusive.
* Auth by ``Authorization: Bearer`` only: a key in a URL ends up in logs.
* Pagination by ``next_url``: only its path and query are used, on the configured base
  URL (it names the production host), and only for the same endpoint: anything that
  could send the request (and its key) elsewhere is refused; key parameters are
  dropped; auth is re-sent, ``adjusted`` re-added when the cursor does not carry it.
  Bounded by progress (new results each page), by what the range can hold, and by
  ``MASSIVE_REST_LISTING_DEADLINE``. Results are sorted by time, never dropped.
* Every request: a total deadline (``MASSIVE_REST_REQUEST_DEADLINE``, see
  :mod:`finrpt_providers.deadline`) and a body cap (``MAX_BODY``).
* Intraday ranges are split into windows of 52 sessions (a full window's minutes fit
  one page of 50,000), fetched by a small bounded pool and joined in order.
* Retries: 429 honours ``Retry-After`` (else capped exponential backoff with jitter);
  5xx, HTML pages, network errors and deadlines are retried the same way; then
  ``RateLimited``/``ProviderUnavailable``. A 400 is ``UnsupportedQuery``: the question
  was validated before any request, so it is Massive refusing ours. An optional client-side limit
  (``MASSIVE_REST_REQUESTS_PER_MINUTE``, 5 on the free plan) avoids 429s altogether.
* Native adjustments: ``raw`` = ``adjusted=false``; ``splits`` = ``adjusted=true``
  (Massive adjusts prices and volume for splits). ``total`` is derived by the core.
* Corporate actions (``serves_actions``): the splits and dividends endpoints (current
  ones, legacy ones on 404), as listed; the core validates and caches them.
"""

from __future__ import annotations

import base64
import collections
import datetime as dt
import hashlib
import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from ... import deadline, redact
from ...errors import (
    AuthenticationFailed,
    DataIntegrityError,
    MissingCredentials,
    NoData,
    NotEntitled,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    UnsupportedQuery,
)
from ...config import Setting
from ...hookspecs import hookimpl
from ...provider import ET, PriceProvider, PriceQuery, report_done

if TYPE_CHECKING:
    import pandas as pd
    import requests

    from ...config import Config

NAME = "massive_rest"
log = redact.logger(__name__)

TIMESPANS = {"1m": (1, "minute"), "5m": (5, "minute"), "15m": (15, "minute"), "30m": (30, "minute"),
             "1h": (1, "hour"), "1d": (1, "day")}
MAX_LIMIT = 50000
SUCCESS = ("OK", "DELAYED")
#: the largest answer read (a page of 50,000 bars is ~7 MiB): a bigger one is refused, unread
MAX_BODY = 48 << 20
#: base minutes in a session (04:00-20:00 ET): what a range can hold, for bounding pagination
SESSION_MINUTES = 16 * 60
#: sessions per intraday window: a full window's base minutes fit one page of MAX_LIMIT (52
#: sessions, ~2.5 months), so a year of minutes is 5 requests, fetched concurrently
WINDOW_SESSIONS = MAX_LIMIT // SESSION_MINUTES
#: query-string names that carry a key: dropped from any URL a server hands us (any case)
KEY_PARAMS = frozenset({"apikey", "api_key", "api-key", "key", "token", "access_token", "accesstoken"})
#: records one ticker's splits or dividends listing may hold (a century of monthly dividends is 1,200)
MAX_REFERENCE_RECORDS = 20_000
#: records a market-wide listing may hold (every US dividend since 2003 is ~400,000)
MAX_MARKET_RECORDS = 2_000_000


SETTINGS = (
    Setting("MASSIVE_API_KEY", NAME, "api_key", secret=True, aliases=("POLYGON_API_KEY",),
            help="the REST API key from your Massive dashboard (not the S3 key pair)"),
    Setting("MASSIVE_REST_BASE_URL", NAME, "base_url", "url", "https://api.massive.com", help="REST host"),
    Setting("MASSIVE_REST_CONNECT_TIMEOUT", NAME, "connect_timeout", "float", 5.0, gt=0, le=300,
            help="seconds to connect"),
    Setting("MASSIVE_REST_READ_TIMEOUT", NAME, "read_timeout", "float", 30.0, gt=0, le=3600,
            help="seconds to wait for an answer"),
    Setting("MASSIVE_REST_MAX_RETRIES", NAME, "max_retries", "int", 4, ge=0, le=20,
            help="retries after 429, 5xx and network errors"),
    Setting("MASSIVE_REST_BACKOFF", NAME, "backoff", "float", 0.5, ge=0, le=60,
            help="first retry pause in seconds (doubles, capped at 8 s, with jitter)"),
    Setting("MASSIVE_REST_MAX_WAIT", NAME, "max_wait", "float", 60.0, ge=0, le=3600,
            help="longest Retry-After we wait for before failing"),
    Setting("MASSIVE_REST_REQUESTS_PER_MINUTE", NAME, "requests_per_minute", "int", 0, ge=0,
            help="client-side limit (5 on the free plan; 0 = none)"),
    Setting("MASSIVE_REST_WORKERS", NAME, "workers", "int", 4, ge=1, le=64,
            help="intraday windows (52 sessions each) and basket tickers fetched at once"),
    Setting("MASSIVE_REST_REQUEST_DEADLINE", NAME, "request_deadline", "float", 90.0, gt=0, le=3600,
            help="seconds one request may take in all, however slowly the server sends"),
    Setting("MASSIVE_WS_FEED", NAME, "ws_feed", "str", "real-time", choices=("real-time", "delayed"),
            help="the WebSocket feed your plan includes: real-time, or delayed (15 minutes late)"),
    Setting("MASSIVE_WS_REALTIME_URL", NAME, "ws_realtime_url", "wsurl", "wss://socket.massive.com/stocks",
            help="real-time WebSocket host"),
    Setting("MASSIVE_WS_DELAYED_URL", NAME, "ws_delayed_url", "wsurl", "wss://delayed.massive.com/stocks",
            help="delayed WebSocket host"),
    Setting("MASSIVE_WS_OPEN_TIMEOUT", NAME, "ws_open_timeout", "float", 10.0, gt=0, le=300,
            help="seconds to connect and authenticate"),
    Setting("MASSIVE_WS_PING_INTERVAL", NAME, "ws_ping_interval", "float", 20.0, gt=0, le=3600,
            help="seconds between pings on a live stream"),
    Setting("MASSIVE_WS_PING_TIMEOUT", NAME, "ws_ping_timeout", "float", 20.0, gt=0, le=3600,
            help="seconds without a pong before the connection counts as stalled and is reopened"),
    Setting("MASSIVE_REST_LISTING_DEADLINE", NAME, "listing_deadline", "float", 600.0, gt=0, le=86400,
            help="seconds one paginated listing (a month window, a ticker's splits) may take in all"),
)


def api_key(config: Config | None) -> str | None:
    if config is None:
        return None
    return config.get("MASSIVE_API_KEY") or config.get("POLYGON_API_KEY")


class _NotFound(Exception):
    """404 from an endpoint (lets the corporate-actions API fall back to legacy endpoints)."""


class RateLimiter:
    """At most ``per_minute`` request starts in any 60 s window (thread-safe)."""

    WINDOW = 60.0  # seconds (a class attribute so a test can shrink the minute)

    def __init__(self, per_minute: float, clock=time.monotonic, sleep=time.sleep):
        self.per_minute = int(per_minute)
        self._starts: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()
        self._clock, self._sleep = clock, sleep

    def acquire(self) -> float:
        """Wait for a slot; return the seconds waited."""
        waited = 0.0
        with self._lock:
            while True:
                now = self._clock()
                while self._starts and now - self._starts[0] >= self.WINDOW:
                    self._starts.popleft()
                if len(self._starts) < self.per_minute:
                    self._starts.append(now)
                    return waited
                pause = self.WINDOW - (now - self._starts[0])
                self._sleep(pause)
                waited += pause


_shared_lock = threading.Lock()
_sessions: dict[tuple[str, int], requests.Session] = {}
_limiters: dict[tuple[str, str, int], RateLimiter] = {}


def _key_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:12]  # never keep keys as dict keys in clear


def _session(base_url: str, pool: int) -> requests.Session:
    import requests
    from requests.adapters import HTTPAdapter

    with _shared_lock:
        # one pool per (host, size): a client with more workers than the first one must not share its
        # smaller pool (urllib3 would discard a connection per extra request, with a warning each)
        s = _sessions.get((base_url, pool))
        if s is None:
            s = requests.Session()
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(pool, 4), max_retries=0)
            s.mount("http://", adapter)
            s.mount("https://", adapter)
            s.headers["User-Agent"] = "finrpt-providers"
            deadline.install_requests(s)  # every request gets a total deadline, not only per-read timeouts
            _sessions[base_url, pool] = s
        return s


def clear_caches() -> None:
    """Forget cached corporate actions (the core keeps them: one cache for every source)."""
    from ...actions import clear_cache

    clear_cache()


def _message(body: Any) -> str:
    if isinstance(body, dict):
        return str(body.get("error") or body.get("message") or body.get("status") or "")
    return ""


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, (when - dt.datetime.now(dt.timezone.utc)).total_seconds())


class MassiveClient:
    """HTTP client for Massive's REST API built from config; thread-safe."""

    def __init__(self, config: Config):
        key = api_key(config)
        if not key:
            raise MissingCredentials("no Massive API key: set MASSIVE_API_KEY (or [massive_rest] api_key "
                                     "in finrpt_providers.toml)", provider=NAME)
        self._auth = {"Authorization": f"Bearer {key}"}
        self.base_url = config.value("MASSIVE_REST_BASE_URL").rstrip("/")
        self.timeout = (config.value("MASSIVE_REST_CONNECT_TIMEOUT"), config.value("MASSIVE_REST_READ_TIMEOUT"))
        self.max_retries = config.value("MASSIVE_REST_MAX_RETRIES")
        self.backoff = config.value("MASSIVE_REST_BACKOFF")
        self.max_backoff = 8.0
        self.max_wait = config.value("MASSIVE_REST_MAX_WAIT")
        self.workers = config.value("MASSIVE_REST_WORKERS")
        self.request_deadline = config.value("MASSIVE_REST_REQUEST_DEADLINE")
        self.listing_deadline = config.value("MASSIVE_REST_LISTING_DEADLINE")
        rpm = config.value("MASSIVE_REST_REQUESTS_PER_MINUTE")
        self.limiter = None
        if rpm > 0:
            ident = (self.base_url, _key_id(key), int(rpm))
            with _shared_lock:
                self.limiter = _limiters.setdefault(ident, RateLimiter(rpm))
        self._ident = _key_id(key)
        self.session = _session(self.base_url, self.workers)
        self.requests_made = 0
        self._count_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<MassiveClient {self.base_url} key=****>"

    # -- one request ------------------------------------------------------------
    def _sleep_before_retry(self, attempt: int, retry_after: float | None) -> None:
        if retry_after is not None:
            pause = retry_after
        else:
            pause = min(self.max_backoff, self.backoff * 2 ** attempt) * random.uniform(0.5, 1.0)
        time.sleep(pause)

    def get(self, path: str, params: dict[str, str] | None = None) -> dict:
        """GET ``base_url + path`` (a path of ours, or one :func:`_next_path` checked; it may
        carry a query) -> JSON body, with retries. Each attempt has a total deadline and a
        body-size cap, whatever the server does."""
        import requests

        if not path.startswith("/") or path.startswith("//"):  # our bug if it happens: never another host
            raise ValueError(f"not a path on the configured host: {path!r}")
        url = self.base_url + path
        shown = url.split("?")[0]
        last_problem = ""
        for attempt in range(self.max_retries + 1):
            if self.limiter is not None:
                waited = self.limiter.acquire()
                if waited:
                    log.info("waited %.1fs for the client-side rate limit", waited)
            with self._count_lock:
                self.requests_made += 1
            log.debug("GET %s %s (attempt %d)", url, params or "", attempt + 1)
            resp = None
            with deadline.budget(self.request_deadline, f"GET {shown}") as budget:
                try:
                    resp = self.session.get(url, params=params, headers=self._auth, timeout=self.timeout,
                                            stream=True)
                    try:
                        body = _read_body(resp, shown)
                    finally:
                        resp.close()
                except requests.RequestException as e:
                    resp = None
                    if budget.exceeded:
                        last_problem = (f"took longer than MASSIVE_REST_REQUEST_DEADLINE="
                                        f"{self.request_deadline:g}s in all")
                    elif isinstance(e, requests.Timeout) or "timed out" in str(e).lower():
                        last_problem = f"timed out after {self.timeout[1]:g}s"
                    else:
                        last_problem = f"network error ({type(e).__name__})"
            if resp is not None:
                status = resp.status_code
                ctype = resp.headers.get("Content-Type", "")
                is_html = "html" in ctype or body[:200].lstrip()[:1] == b"<"
                if status == 429:
                    ra = _retry_after(resp.headers.get("Retry-After"))
                    if attempt == self.max_retries or (ra is not None and ra > self.max_wait):
                        raise RateLimited(
                            f"Massive rate limit (HTTP 429) persisted after {attempt + 1} tries: wait "
                            f"{f'{ra:g}s' if ra else 'a minute'}, set "
                            "MASSIVE_REST_REQUESTS_PER_MINUTE (5 on the free plan), or upgrade the plan",
                            provider=NAME, retry_after=ra)
                    log.info("429 from Massive, retrying in %s", f"{ra:g}s" if ra is not None else "a moment")
                    self._sleep_before_retry(attempt, ra)
                    continue
                if status >= 500 or (is_html and status != 404):
                    last_problem = f"HTTP {status}" + (" with an HTML page" if is_html else "")
                else:
                    return _decode(status, body, shown)
            if attempt < self.max_retries:
                log.info("Massive %s on %s, retrying", last_problem, shown)
                self._sleep_before_retry(attempt, None)
        raise ProviderUnavailable(f"Massive did not answer properly ({last_problem}, {self.max_retries + 1} tries) "
                                  f"for {shown}: try again later, or check MASSIVE_REST_BASE_URL", provider=NAME)

    # -- pagination -------------------------------------------------------------
    def pages(self, path: str, params: dict[str, str], keep: tuple[str, ...] = (), *, max_results: int,
              key=None) -> list[dict]:
        """Every page of a paginated endpoint. ``keep``: params to re-add when a cursor drops them.

        Bounded whatever the server does: each ``next_url`` is reduced to a path and query
        on the configured host, for the same endpoint (anything else is refused); every
        page must bring results not seen before (by ``key``); the results may not outnumber
        ``max_results`` (what the range can hold), nor the pages what that many results
        fill at the first page's size, with slack; and the listing must end within
        MASSIVE_REST_LISTING_DEADLINE. Each page's ``results`` is checked to be a list of
        objects."""
        key = key or (lambda r: json.dumps(r, sort_keys=True, default=str))
        what = path.split("?")[0]
        started = time.monotonic()
        out = [_checked(self.get(path, params), path)]
        seen_results = {key(r) for r in out[0].get("results") or []}
        max_pages = -(-max_results // max(1, len(seen_results))) + 3
        seen_cursors: set[str] = set()
        idle = 0
        while out[-1].get("next_url"):
            nxt_path, query = _next_path(out[-1]["next_url"], what)
            cursor = query.get("cursor", "")
            marker = nxt_path + "?" + cursor
            if marker in seen_cursors:
                raise DataIntegrityError(f"Massive repeated a pagination cursor for {what}: "
                                         "stopped to avoid an endless loop", provider=NAME)
            seen_cursors.add(marker)
            if len(out) >= max_pages:
                raise DataIntegrityError(f"Massive kept paginating {what} past {len(out)} pages, more than "
                                         f"{max_results} results fill: stopped", provider=NAME)
            if time.monotonic() - started > self.listing_deadline:
                raise ProviderUnavailable(f"Massive's pages of {what} took longer than "
                                          f"MASSIVE_REST_LISTING_DEADLINE={self.listing_deadline:g}s: stopped after "
                                          f"{len(out)} pages; try again later, or ask for a shorter range",
                                          provider=NAME)
            carried = _cursor_params(cursor)
            for k in keep:
                if k not in query and k not in carried and k in params:
                    query[k] = params[k]
            try:
                page = _checked(self.get(nxt_path + ("?" + urlencode(query) if query else "")), path)
            except _NotFound:
                raise ProviderUnavailable(f"Massive answered 404 for page {len(out) + 1} of {what} (the "
                                          "pagination cursor it gave was not found: expired or wrong); try "
                                          "again", provider=NAME) from None
            new = {key(r) for r in page.get("results") or []} - seen_results
            seen_results |= new
            idle = 0 if new else idle + 1
            if idle > 2:
                raise DataIntegrityError(f"Massive's pages of {what} stopped bringing new results but kept a "
                                         "next_url: stopped to avoid an endless loop", provider=NAME)
            if len(seen_results) > max_results:
                raise DataIntegrityError(f"Massive sent more than {max_results} results for {what}, more than "
                                         "the range can hold: refused", provider=NAME)
            out.append(page)
        return out

    # -- aggregates -------------------------------------------------------------
    def aggregates(self, ticker: str, interval: str, start: dt.date, end: dt.date, adjusted: bool) -> list[dict]:
        """Raw result dicts for [start, end], sorted by time, without duplicates (in whatever
        order the server sent them: a bar is never dropped for arriving out of order)."""
        from ... import calendar
        from ...intervals import INTERVAL_MINUTES

        mult, span = TIMESPANS[interval]
        windows = _windows(start, end, None if interval == "1d" else WINDOW_SESSIONS)
        params = {"adjusted": "true" if adjusted else "false", "sort": "asc", "limit": str(MAX_LIMIT)}
        per_session = 1 if interval == "1d" else -(-SESSION_MINUTES // INTERVAL_MINUTES[interval])

        def one(window: tuple[dt.date, dt.date]) -> list[dict]:
            path = f"/v2/aggs/ticker/{ticker}/range/{mult}/{span}/{window[0].isoformat()}/{window[1].isoformat()}"
            capacity = (len(calendar.sessions(window[0], window[1])) + 1) * per_session + 10
            results: list[dict] = []
            try:
                pages = self.pages(path, params, keep=("adjusted", "limit", "sort"), max_results=capacity,
                                   key=lambda r: r.get("t"))
            except _NotFound:
                raise ProviderUnavailable(f"{self.base_url} has no aggregates endpoint (HTTP 404): check "
                                          "MASSIVE_REST_BASE_URL", provider=NAME) from None
            for page in pages:
                results.extend(page.get("results") or [])
            return results

        if len(windows) == 1:
            chunks = [one(windows[0])]
        else:
            with ThreadPoolExecutor(max_workers=min(self.workers, len(windows)),
                                    thread_name_prefix="massive-rest") as pool:
                chunks = list(pool.map(one, windows))
        return _merge_results([r for chunk in chunks for r in chunk], ticker)

    # -- corporate actions ------------------------------------------------------
    def _reference(self, new_path: str, legacy_path: str, ticker: str, sort: str) -> list[dict]:
        try:
            pages = self.pages(new_path, {"ticker": ticker, "limit": "5000", "sort": sort},
                               max_results=MAX_REFERENCE_RECORDS)
        except _NotFound:  # only the FIRST page's 404 means "no such endpoint" (a later one: see pages)
            log.info("%s answered 404; using the legacy %s", new_path, legacy_path)
            try:
                pages = self.pages(legacy_path, {"ticker": ticker, "limit": "1000"},
                                   max_results=MAX_REFERENCE_RECORDS)
            except _NotFound:
                raise ProviderUnavailable(f"Massive answered 404 for both {new_path} and {legacy_path}: check "
                                          "MASSIVE_REST_BASE_URL", provider=NAME) from None
        return [r for p in pages for r in (p.get("results") or []) if r.get("ticker", ticker) == ticker]

    def _market_reference(self, new_path: str, legacy_path: str, date_key: str, since: dt.date) -> list[dict]:
        params = {f"{date_key}.gt": since.isoformat(), "limit": "5000", "sort": f"{date_key}.asc"}
        try:
            pages = self.pages(new_path, params, max_results=MAX_MARKET_RECORDS)
        except _NotFound:
            try:
                pages = self.pages(legacy_path, {**params, "limit": "1000"}, max_results=MAX_MARKET_RECORDS)
            except _NotFound:
                raise ProviderUnavailable(f"Massive answered 404 for both {new_path} and {legacy_path}: check "
                                          "MASSIVE_REST_BASE_URL", provider=NAME) from None
        return [r for p in pages for r in (p.get("results") or [])]

    def splits(self, ticker: str) -> pd.Series:
        """Split ratio (split_to / split_from: 4.0 for 4-for-1) by ex-date (ET), all history, as
        listed (the core merges duplicates and checks ratios against prices)."""
        import pandas as pd

        rows = self._reference("/stocks/v1/splits", "/v3/reference/splits", ticker, "execution_date.asc")
        items = {}
        for r in rows:
            try:
                day = dt.date.fromisoformat(r["execution_date"])
                ratio = float(r["split_to"]) / float(r["split_from"])
            except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
                raise DataIntegrityError(f"malformed split record for {ticker}: {e}", provider=NAME) from None
            items[day] = ratio  # one event per day (the endpoints may list it twice)
        ordered = sorted(items.items())
        return pd.Series([v for _, v in ordered], dtype="float64", name="ratio",
                         index=pd.DatetimeIndex([pd.Timestamp(d) for d, _ in ordered], dtype="datetime64[ns]").tz_localize(ET))

    def dividends(self, ticker: str) -> pd.DataFrame:
        """Cash dividend records as declared (as traded then) by ex-date (ET), all history: one
        row per record with its ``cash`` and ``currency``. The core normalises them (a record
        listed twice counts once, a regular and a special on one day add up, a non-USD amount
        is never taken as dollars): :func:`finrpt_providers.actions.normalise_dividends`."""
        import pandas as pd

        rows = self._reference("/stocks/v1/dividends", "/v3/reference/dividends", ticker,
                               "ex_dividend_date.asc")
        days, cash, currency = [], [], []
        for r in rows:
            try:
                days.append(dt.date.fromisoformat(r["ex_dividend_date"]))
                cash.append(float(r["cash_amount"]))
            except (KeyError, TypeError, ValueError) as e:
                raise DataIntegrityError(f"malformed dividend record for {ticker}: {e}", provider=NAME) from None
            currency.append(r.get("currency") or "USD")
        idx = pd.DatetimeIndex([pd.Timestamp(d) for d in days], dtype="datetime64[ns]").tz_localize(ET)
        return pd.DataFrame({"cash": pd.Series(cash, dtype="float64", index=idx),
                             "currency": pd.Series(currency, dtype="object", index=idx)}).sort_index(kind="stable")


def _read_body(resp, shown: str) -> bytes:
    """The whole body (decoded if compressed), refused past MAX_BODY before it is all read."""
    announced = resp.headers.get("Content-Length", "")
    if announced.isdigit() and int(announced) > MAX_BODY:
        raise DataIntegrityError(f"Massive's answer for {shown} announces {int(announced) / 2**20:.0f} MiB, more "
                                 f"than the {MAX_BODY >> 20} MiB any page can need: refused unread", provider=NAME)
    chunks, size = [], 0
    for chunk in resp.iter_content(1 << 16):
        size += len(chunk)
        if size > MAX_BODY:
            raise DataIntegrityError(f"Massive's answer for {shown} is larger than the {MAX_BODY >> 20} MiB any "
                                     "page can need: refused", provider=NAME)
        chunks.append(chunk)
    return b"".join(chunks)


def _decode(status: int, raw: bytes, shown: str) -> dict:
    """A non-retryable answer -> its JSON object, or our error for it."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    except RecursionError:  # e.g. 100,000 nested brackets
        raise DataIntegrityError(f"Massive answered {shown} with JSON nested too deeply to be an answer",
                                 provider=NAME) from None
    msg = _message(body)[:300]
    if status == 401:
        raise AuthenticationFailed(f"Massive rejected the API key ({msg or 'HTTP 401'}): set MASSIVE_API_KEY to "
                                   "the REST key from your dashboard (it is not the S3 key pair)", provider=NAME)
    if status == 403 or (isinstance(body, dict) and body.get("status") == "NOT_AUTHORIZED"):
        if "timeframe" in msg.lower():
            raise NotEntitled(f"your Massive plan's history does not cover this range ({msg}): ask for a "
                              "later start, upgrade the plan, or put another provider after massive_rest",
                              provider=NAME)
        parts = shown.split("/")
        what = f"{parts[-3]} aggregates" if "/range/" in shown and len(parts) > 3 else "this data"
        raise NotEntitled(f"your Massive plan does not include {what} ({msg or 'HTTP 403'}): upgrade the "
                          "plan or put another provider after massive_rest", provider=NAME)
    if status == 404:
        raise _NotFound(shown)
    if status == 400:
        # The question was validated before any request: a 400 is Massive refusing OUR request
        # (a parameter we built), so it is this provider's failure and the chain moves on.
        raise UnsupportedQuery(f"Massive refused the request for {shown} ({msg or 'HTTP 400'}); another "
                               "provider may answer", provider=NAME)
    if body is None or not isinstance(body, dict):
        raise DataIntegrityError(f"Massive answered {shown} with something that is not a JSON object",
                                 provider=NAME)
    if status != 200:
        raise ProviderUnavailable(f"Massive answered HTTP {status} ({msg}) for {shown}", provider=NAME)
    if body.get("status", "OK") not in SUCCESS:
        raise ProviderUnavailable(f"Massive answered status {str(body.get('status'))[:40]} ({msg}) for {shown}",
                                  provider=NAME)
    return body


def _next_path(next_url: Any, what: str) -> tuple[str, dict[str, str]]:
    """A server's ``next_url`` -> (path, query) to ask the CONFIGURED host for: only its path
    and query are used, the path must be absolute and of the same endpoint as ``what``, and
    a key in the query (any spelling) is dropped. Anything else is a DataIntegrityError:
    the request (and its Authorization header) never goes anywhere the user did not set."""
    def refuse(why: str) -> DataIntegrityError:
        return DataIntegrityError(f"Massive sent a next_url for {what} that {why}: refused (our key is only "
                                  "ever sent to MASSIVE_REST_BASE_URL)", provider=NAME)

    if not isinstance(next_url, str) or not next_url or len(next_url) > 8192:
        raise refuse("is not a URL")
    if any(ord(c) < 0x21 or ord(c) > 0x7E for c in next_url) or "\\" in next_url:
        raise refuse("has spaces, control or non-ASCII characters")
    try:
        parts = urlsplit(next_url)
    except ValueError:
        raise refuse("does not parse") from None
    if parts.scheme and (parts.scheme not in ("http", "https") or not parts.netloc):
        raise refuse(f"has scheme {parts.scheme!r}")
    if not parts.scheme and parts.netloc:
        raise refuse("names a host without a scheme")
    path = parts.path
    if not path.startswith("/") or path.startswith("//") or "@" in path:
        raise refuse("is not an absolute path on the API host")
    if not _same_endpoint(what, path):
        raise refuse(f"points to another endpoint ({path.split('?')[0][:120]})")
    query = {k: v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() not in KEY_PARAMS}
    return path, query


def _same_endpoint(first: str, nxt: str) -> bool:
    """Aggregates pages keep ticker, multiplier and timespan (only from/to move); any other
    listing keeps its path."""
    a, b = first.split("/"), nxt.split("/")
    if first.startswith("/v2/aggs/ticker/"):
        return len(a) == len(b) == 10 and a[:8] == b[:8]
    return first == nxt


def _merge_results(results: list[dict], ticker: str) -> list[dict]:
    """Pages and windows joined: sorted by ``t``; a bar sent twice kept once; the same
    bar time with different values is a DataIntegrityError (never a silent pick)."""
    try:
        ordered = sorted(results, key=lambda r: r["t"])
    except (KeyError, TypeError):
        bad = next((r for r in results if not isinstance(r.get("t"), (int, float))), None)
        raise DataIntegrityError(f"Massive sent an aggregate of {ticker} without a usable time: {str(bad)[:120]}",
                                 provider=NAME) from None
    merged: list[dict] = []
    for r in ordered:
        if merged and merged[-1]["t"] == r["t"]:
            if merged[-1] != r:
                raise DataIntegrityError(f"Massive sent two different bars of {ticker} for the same time "
                                         f"({r['t']} ms): refused; try again", provider=NAME)
            continue
        merged.append(r)
    return merged


def _checked(page: dict, path: str) -> dict:
    results = page.get("results")
    if results is not None and not (isinstance(results, list) and all(isinstance(r, dict) for r in results)):
        raise DataIntegrityError(f"Massive's answer for {path.split('?')[0]} has malformed results "
                                 f"({type(results).__name__})", provider=NAME)
    return page


def _cursor_params(cursor: str) -> dict[str, str]:
    """Massive's cursor is base64 of a query string (e.g. ``limit=2&sort=asc``)."""
    if not cursor:
        return {}
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        return dict(parse_qsl(raw, keep_blank_values=True))
    except (ValueError, UnicodeDecodeError):
        return {}


def _windows(start: dt.date, end: dt.date, sessions_per_window: int | None) -> list[tuple[dt.date, dt.date]]:
    """Contiguous windows tiling [start, end], each holding at most ``sessions_per_window``
    sessions (one window when None): sized so that a window's bars fit one page."""
    from ... import calendar

    if sessions_per_window is None:
        return [(start, end)]
    days = calendar.sessions(start, end)
    out = []
    lo = start
    for i in range(sessions_per_window - 1, len(days) - 1, sessions_per_window):
        out.append((lo, days[i]))
        lo = days[i] + dt.timedelta(days=1)
    out.append((lo, end))
    return out


def _grouped_to_long(results: list[dict], day: dt.date) -> pd.DataFrame:
    """Grouped daily results of ``day`` -> the long frame, stamped 00:00 New York of ``day``."""
    import pandas as pd

    from ...frames import long_frame

    if not results:
        return long_frame({})
    if not all(isinstance(r, dict) and isinstance(r.get("T"), str) for r in results):
        raise DataIntegrityError(f"grouped daily bars of {day} without a ticker", provider=NAME)
    bars = results_to_bars(results, "1d")
    stamped = bars.index.normalize()
    if (stamped.date != day).any():
        raise DataIntegrityError(f"grouped daily bars of {day} stamped on another day "
                                 f"({bars.index[stamped.date != day][0]})", provider=NAME)
    tickers = [r["T"] for r in results]
    bars.index = pd.MultiIndex.from_arrays([tickers, stamped.as_unit("ns")], names=["ticker", "timestamp"])
    return bars


def results_to_bars(results: list[dict], interval: str) -> pd.DataFrame:
    """Massive aggregate results -> the bar frame (t = ms bar start, UTC)."""
    import numpy as np
    import pandas as pd

    from ...provider import empty_bars

    if not results:
        return empty_bars()
    try:
        t = np.fromiter((r["t"] for r in results), dtype="int64", count=len(results))
        cols = {k: np.fromiter((r[c] for r in results), dtype="float64", count=len(results))
                for k, c in (("open", "o"), ("high", "h"), ("low", "l"), ("close", "c"))}
        # an index has no volume (Massive sends no ``v``): missing, which the gate allows for
        # indices only (a stock's missing volume fails it there, named)
        cols["volume"] = np.fromiter((np.nan if r.get("v") is None else r["v"] for r in results), dtype="float64",
                                     count=len(results))
        cols["vwap"] = np.fromiter((r.get("vw", np.nan) if r.get("vw") is not None else np.nan for r in results),
                                   dtype="float64", count=len(results))
        tx = pd.array([r.get("n") for r in results], dtype="Int64")
        idx = pd.to_datetime(t, unit="ms", utc=True).tz_convert(ET).as_unit("ns").rename("timestamp")
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise DataIntegrityError(f"malformed aggregate in Massive's answer ({type(e).__name__}: {e})",
                                 provider=NAME) from None
    df = pd.DataFrame(cols, index=idx)
    df["transactions"] = tx
    return df


class MassiveRESTProvider(PriceProvider):
    name = NAME
    intervals = frozenset({"1m", "5m", "15m", "30m", "1h", "1d"})
    adjustments = frozenset({"raw", "splits"})
    serves_actions = True
    serves_stream = True
    settings = SETTINGS
    credentials = ("MASSIVE_API_KEY",)
    requires = ("requests",)
    description = "Massive (formerly Polygon.io) REST aggregates (API key; splits/dividends endpoints)"

    def missing_credentials(self) -> list[str]:
        return [] if api_key(self.config) else ["MASSIVE_API_KEY"]

    def client(self) -> MassiveClient:
        return MassiveClient(self.config)

    def open_stream(self, interval: str):
        """Massive's WebSocket aggregates (``AM`` per minute, ``A`` per second) on the feed
        MASSIVE_WS_FEED names; missed bars are filled from REST (:mod:`.stream`)."""
        from .live import MassiveFeed

        return MassiveFeed(self.config, interval, api_key(self.config))

    def fetch(self, query: PriceQuery) -> pd.DataFrame:
        return self._fetch(self.client(), query)

    def fetch_basket(self, queries: list[PriceQuery]) -> dict[str, pd.DataFrame | ProviderError]:
        """The basket's tickers concurrently (MASSIVE_REST_WORKERS at once), under ONE rate
        limit: the client-side limiter is shared by every request made with this key."""
        client = self.client()

        def one(query: PriceQuery):
            try:
                return query.ticker, self._fetch(client, query)
            except ProviderError as e:
                return query.ticker, e

        out: dict[str, pd.DataFrame | ProviderError] = {}
        with ThreadPoolExecutor(max_workers=min(client.workers, len(queries)), thread_name_prefix="massive-basket") as pool:
            for fut in as_completed([pool.submit(one, q) for q in queries]):
                ticker, got = fut.result()
                out[ticker] = got
                report_done(ticker)
        return out

    def _fetch(self, client: MassiveClient, query: PriceQuery) -> pd.DataFrame:
        bars = results_to_bars(client.aggregates(query.ticker, query.interval, query.start, query.end,
                                                 adjusted=query.adjustment == "splits"), query.interval)
        if bars.empty:
            raise NoData(f"Massive has no {query.interval} bars for {query.ticker} from {query.start} to "
                         f"{query.end}: check the ticker (Massive writes share classes with a dot, e.g. BRK.B)",
                         provider=NAME)
        return bars

    serves_market = True

    def fetch_market(self, start: dt.date, end: dt.date, interval: str, adjustment: str) -> pd.DataFrame:
        """Grouped daily bars (``/v2/aggs/grouped/locale/us/market/stocks/{date}``), a request
        per session, concurrently. Its ``t`` is the END of the day's window: bars are stamped
        at the session date (00:00 New York), after checking ``t`` falls on that date."""
        import pandas as pd

        from ... import calendar
        from ...frames import long_frame

        if interval != "1d":
            raise UnsupportedQuery(f"Massive's grouped bars are daily: no {interval} market", provider=NAME)
        client = self.client()
        params = {"adjusted": "true" if adjustment == "splits" else "false", "include_otc": "false"}

        def one(day: dt.date) -> pd.DataFrame:
            try:
                body = _checked(client.get(f"/v2/aggs/grouped/locale/us/market/stocks/{day.isoformat()}", params),
                                "grouped daily")
            except _NotFound:
                raise ProviderUnavailable(f"{client.base_url} has no grouped daily endpoint (HTTP 404): check "
                                          "MASSIVE_REST_BASE_URL", provider=NAME) from None
            return _grouped_to_long(body.get("results") or [], day)

        days = calendar.sessions(start, end)
        if not days:
            return long_frame({})
        with ThreadPoolExecutor(max_workers=min(client.workers, len(days)), thread_name_prefix="massive-grouped") as pool:
            parts = list(pool.map(one, days))
        return pd.concat(parts).sort_index() if parts else long_frame({})

    def fetch_market_actions(self, since: dt.date) -> tuple[pd.Series, pd.Series]:
        """Every ticker's splits and dividends with ex-dates after ``since``, from the date-filtered
        listings (one listing each, paginated)."""
        import pandas as pd

        client = self.client()
        splits = client._market_reference("/stocks/v1/splits", "/v3/reference/splits", "execution_date", since)
        divs = client._market_reference("/stocks/v1/dividends", "/v3/reference/dividends", "ex_dividend_date", since)

        def records(rows, date_key, value, name):
            names, days, values, currency = [], [], [], []
            for r in rows:
                try:
                    day = dt.date.fromisoformat(r[date_key])
                    v = value(r)
                    t = str(r["ticker"])
                except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
                    raise DataIntegrityError(f"malformed market-wide {name} record: {e}", provider=NAME) from None
                if day > since:
                    names.append(t)
                    days.append(pd.Timestamp(day))
                    values.append(v)
                    currency.append(r.get("currency") or "USD")
            idx = pd.MultiIndex.from_arrays([pd.Index(names, dtype="object"),
                                             pd.DatetimeIndex(days, dtype="datetime64[ns]").tz_localize(ET)],
                                            names=["ticker", "ex_date"])
            return pd.DataFrame({"cash" if name == "dividend" else "ratio": pd.Series(values, index=idx, dtype="float64"),
                                 "currency": pd.Series(currency, index=idx, dtype="object")})

        # records as listed: the core normalises them (actions.normalise_market)
        return (records(splits, "execution_date", lambda r: float(r["split_to"]) / float(r["split_from"]), "split"),
                records(divs, "ex_dividend_date", lambda r: float(r["cash_amount"]), "dividend"))

    def fetch_actions(self, ticker: str) -> tuple[pd.Series, pd.Series]:
        client = self.client()
        return client.splits(ticker), client.dividends(ticker)

    serves_statements = True
    statement_frequencies = frozenset({"quarterly", "yearly"})

    def fetch_statements(self, ticker: str, frequency: str = "quarterly") -> dict:
        """Massive's financials (``/vX/reference/financials``: SEC filings' XBRL mapped to
        common concepts) as filings for the core's statements gate
        (:func:`finrpt_providers.company.normalise_statements`), which makes yfinance-shaped
        frames of them: line items as rows with yfinance's labels (``Total Revenue``,
        ``Diluted EPS``...), period ends as columns, newest first."""
        timeframe = {"quarterly": "quarterly", "yearly": "annual"}.get(frequency)
        if timeframe is None:
            raise UnsupportedQuery(f"statements frequency {frequency!r}: 'quarterly' or 'yearly'", provider=NAME)
        pages = self.client().pages("/vX/reference/financials",
                                    {"ticker": ticker, "timeframe": timeframe, "limit": "100",
                                     "order": "desc", "sort": "period_of_report_date"}, max_results=400)
        rows = [r for p in pages for r in (p.get("results") or [])]
        return statements_filings(rows, ticker)


#: Massive financials concept -> yfinance's row label, per statement
STATEMENT_LABELS = {
    "income": {"revenues": "Total Revenue", "cost_of_revenue": "Cost Of Revenue", "gross_profit": "Gross Profit",
               "operating_expenses": "Operating Expense", "operating_income_loss": "Operating Income",
               "income_loss_from_continuing_operations_before_tax": "Pretax Income",
               "income_tax_expense_benefit": "Tax Provision", "net_income_loss": "Net Income",
               "basic_earnings_per_share": "Basic EPS", "diluted_earnings_per_share": "Diluted EPS",
               "diluted_average_shares": "Diluted Average Shares", "basic_average_shares": "Basic Average Shares"},
    "balance_sheet": {"assets": "Total Assets", "current_assets": "Current Assets",
                      "noncurrent_assets": "Total Non Current Assets", "liabilities":
                      "Total Liabilities Net Minority Interest", "current_liabilities": "Current Liabilities",
                      "noncurrent_liabilities": "Total Non Current Liabilities Net Minority Interest",
                      "equity_attributable_to_parent": "Stockholders Equity", "equity": "Total Equity Gross Minority Interest",
                      "long_term_debt": "Long Term Debt", "inventory": "Inventory"},
    "cash_flow": {"net_cash_flow_from_operating_activities": "Operating Cash Flow",
                  "net_cash_flow_from_investing_activities": "Investing Cash Flow",
                  "net_cash_flow_from_financing_activities": "Financing Cash Flow",
                  "net_cash_flow": "Changes In Cash"},
}
_SECTIONS = {"income": "income_statement", "balance_sheet": "balance_sheet", "cash_flow": "cash_flow_statement"}


def _financials_day(value: Any, field: str, fid: str, ticker: str, *, optional: bool = False) -> str | None:
    """A financials result's date field as YYYY-MM-DD; anything else is Massive's bad data
    (a DataIntegrityError naming the field), never a crash of this plugin."""
    if value is None and optional:
        return None
    if isinstance(value, str) and len(value) >= 10:
        try:
            return dt.date.fromisoformat(value[:10]).isoformat()
        except ValueError:
            pass
    raise DataIntegrityError(f"Massive's financials for {ticker} have {field} {str(value)[:60]!r} in {fid}, not a "
                             "date (YYYY-MM-DD): refused", provider=NAME)


def statements_filings(rows: list[dict], ticker: str = "") -> dict:
    """Massive financials results -> the core's filings form (``{"filings": [...], "rows":
    {statement: [labels]}}``): each result's period end, timeframe, filing date and values
    (with their ``unit``) as sent; the core's gate checks them (numbers, currency, one
    filing per period, timeframe). A concept it does not report is not a value (never a
    made-up zero). A result whose dates or sections are malformed is a DataIntegrityError."""
    filings = []
    for i, r in enumerate(rows):
        fid = r.get("source_filing_url") if isinstance(r.get("source_filing_url"), str) else None
        fid = (fid or f"result {i + 1} ({str(r.get('fiscal_period'))[:8]} {str(r.get('fiscal_year'))[:8]})")[:160]
        timeframe = r.get("timeframe")
        if timeframe is None and isinstance(r.get("fiscal_period"), str):
            timeframe = "annual" if r["fiscal_period"].upper() == "FY" else "quarterly"
        fin = r.get("financials")
        if fin is None:
            fin = {}
        if not isinstance(fin, dict):
            raise DataIntegrityError(f"Massive's financials for {ticker} have field financials of "
                                     f"{type(fin).__name__} in {fid}, not an object: refused", provider=NAME)
        values = {}
        for kind, labels in STATEMENT_LABELS.items():
            block = fin.get(_SECTIONS[kind])
            if block is None:
                continue
            if not isinstance(block, dict):
                raise DataIntegrityError(f"Massive's financials for {ticker} have field {_SECTIONS[kind]} of "
                                         f"{type(block).__name__} in {fid}, not an object: refused", provider=NAME)
            values[kind] = {}
            for concept, label in labels.items():
                if concept not in block:
                    continue
                if not isinstance(block[concept], dict):
                    raise DataIntegrityError(f"Massive's financials for {ticker} have field {concept} of "
                                             f"{type(block[concept]).__name__} in {fid}, not an object with a "
                                             "value and unit: refused", provider=NAME)
                values[kind][label] = block[concept]
        filings.append({"period_end": _financials_day(r.get("end_date"), "end_date", fid, ticker),
                        "timeframe": timeframe, "id": fid,
                        "filing_date": _financials_day(r.get("filing_date"), "filing_date", fid, ticker,
                                                       optional=True),
                        "accepted": r.get("acceptance_datetime") if isinstance(r.get("acceptance_datetime"), str)
                        else None,
                        "values": values})
    return {"filings": filings, "rows": {kind: list(labels.values()) for kind, labels in STATEMENT_LABELS.items()}}


@hookimpl
def register_price_providers(register):
    register(MassiveRESTProvider())


__all__ = ["MassiveClient", "MassiveRESTProvider", "RateLimiter", "results_to_bars", "clear_caches"]
