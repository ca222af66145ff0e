"""The synthetic market as Massive's flat files, in moto's S3 server on 127.0.0.1.

:class:`FakeFlatFiles` starts moto's ``ThreadedMotoServer`` (real S3 protocol; boto3
talks to it over loopback) behind a small WSGI layer that counts requests and can
inject what moto alone does not: wrong keys (403 InvalidAccessKeyId), a prefix
outside the plan (403 AccessDenied), and 503 SlowDown bursts. It uploads the day
and minute aggregates (and, for chosen sessions, trades and quotes) rendered
exactly as Massive writes them: gzip CSV, header row, sorted by ticker then time,
``window_start`` in ns, volumes decimal from 2026-02-23. ``days`` (default: every
session) get day files, ``minute_days`` (default: ``days``) minute files.

Switches and operations: ``deny_prefixes``, ``slow_down``, ``fail_next`` (500
InternalError), ``cut_next`` (a GET's body cut mid-way, connection dropped),
``hang_next`` (accepted, not answered for ``hang_seconds``), ``trickle_next`` (a
GET's body sent one byte every ``trickle_seconds``: slow-loris), ``echo_next`` (a 403
SignatureDoesNotMatch whose code and message echo the request's Authorization header,
``Credential=AKID/...`` included) — counts of next requests —, ``check_keys``;
``remove(dataset, day)`` (a missing day), ``replace(dataset, day)`` (new content and
ETag), ``truncate(dataset, day)``, ``put_raw(key, data)``.
"""

from __future__ import annotations

import datetime as dt
import gzip
import socket
import threading
import uuid
from collections.abc import Iterable

import pandas as pd

from .market import FRACTIONAL_VOLUME_FROM, SyntheticMarket, quotes, trades

_AGG_HEADER = "ticker,volume,open,close,high,low,window_start,transactions"
_ERR = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{msg}</Message>'
        '<RequestId>{rid}</RequestId></Error>')


def _num(x: float) -> str:
    return f"{x:.6f}"  # upstream writes six decimals


def render_aggs(market: SyntheticMarket, dataset: str, day: dt.date, tickers: Iterable[str] | None = None) -> bytes:
    """One session's day or minute aggregates file (gzip CSV) for the market's tickers."""
    frames = []
    if dataset == "day_aggs_v1":  # one cross-section, not a frame per ticker (whole-market tests have hundreds)
        bars = market.cross_section(day)
        if tickers is not None:
            bars = bars[bars["ticker"].isin(list(tickers))]
        bars = bars.sort_values("ticker", kind="stable")
        frames.append(pd.DataFrame({
            "ticker": bars["ticker"].to_numpy(), "volume": bars["volume"].to_numpy(), "open": bars["open"].to_numpy(),
            "close": bars["close"].to_numpy(), "high": bars["high"].to_numpy(), "low": bars["low"].to_numpy(),
            "window_start": bars.index.as_unit("ns").asi8, "transactions": bars["transactions"].to_numpy("int64"),
        }))
    else:
        for t in sorted(tickers or market.tickers):
            bars = market.minute(t, day)
            if len(bars):
                frames.append(pd.DataFrame({
                    "ticker": t, "volume": bars["volume"].to_numpy(), "open": bars["open"].to_numpy(),
                    "close": bars["close"].to_numpy(), "high": bars["high"].to_numpy(), "low": bars["low"].to_numpy(),
                    "window_start": bars.index.as_unit("ns").asi8,
                    "transactions": bars["transactions"].to_numpy("int64"),
                }))
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        {c: pd.Series(dtype="float64" if c not in ("ticker",) else "object") for c in _AGG_HEADER.split(",")})
    if day < FRACTIONAL_VOLUME_FROM and len(df):
        df["volume"] = df["volume"].astype("int64")  # whole shares before 2026-02-23, as upstream
    return _gzip_csv(df)


def _gzip_csv(df: pd.DataFrame) -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.csv as pacsv

    buf = io.BytesIO()
    buf.write((",".join(df.columns) + "\n").encode())  # pyarrow would quote the header names
    pacsv.write_csv(pa.Table.from_pandas(df, preserve_index=False), buf,
                    write_options=pacsv.WriteOptions(include_header=False, quoting_style="none"))
    return gzip.compress(buf.getvalue(), compresslevel=6)


def render_ticks(market: SyntheticMarket, dataset: str, day: dt.date, per_day: int = 2000) -> bytes:
    """One session's trades_v1 or quotes_v1 file (gzip CSV), every ticker, sorted by ticker."""
    make = trades if dataset == "trades_v1" else quotes
    frames = [make(market, t, day, per_day) for t in sorted(market.tickers)]
    df = pd.concat([f for f in frames if len(f)], ignore_index=True)
    for col in ("size", "ask_size", "bid_size"):
        if col in df:
            df[col] = [(_num(x) if x % 1 else str(int(x))) for x in df[col].to_numpy()]
    if "price" in df:
        df["price"] = [f"{x:g}" for x in df["price"].to_numpy()]
    return gzip.compress(df.to_csv(index=False).encode(), compresslevel=6)


class _Gate:
    """WSGI layer in front of moto: counts requests and injects S3 errors."""

    def __init__(self, app, fake: "FakeFlatFiles"):
        self.app, self.fake = app, fake

    def __call__(self, environ, start_response):
        fake = self.fake
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        auth = environ.get("HTTP_AUTHORIZATION", "")
        store_key = fake.store_buckets.get(path.lstrip("/").split("/", 1)[0])
        if store_key is not None:  # a store's bucket: its own key only, no upstream faults, counted apart
            with fake._lock:
                fake.store_requests.append((method, path))
            if f"Credential={store_key}/" not in auth:
                body = _ERR.format(code="InvalidAccessKeyId", msg="The AWS Access Key Id you provided does not exist "
                                   "in our records.", rid="STORE").encode()
                start_response("403 Forbidden", [("Content-Type", "application/xml"),
                                                 ("Content-Length", str(len(body)))])
                return [body]
            return self.app(environ, start_response)
        with fake._lock:
            fake.requests.append((method, path))
            slow = fake.slow_down > 0
            if slow:
                fake.slow_down -= 1
            fail = fake.fail_next > 0
            if fail:
                fake.fail_next -= 1
            hang = fake.hang_next > 0
            if hang:
                fake.hang_next -= 1
            cut = method == "GET" and fake.cut_next > 0 and not fail and not hang and not slow
            if cut:
                fake.cut_next -= 1
            trickle = method == "GET" and fake.trickle_next > 0 and not (fail or hang or slow or cut)
            if trickle:
                fake.trickle_next -= 1
            echo = fake.echo_next > 0
            if echo:
                fake.echo_next -= 1
        rid = uuid.uuid4().hex[:16].upper()

        def error(status: str, code: str, msg: str):
            body = _ERR.format(code=code, msg=msg, rid=rid).encode()
            start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
            return [body]

        if echo:
            return error("403 Forbidden", f"SignatureDoesNotMatch {auth[:200]}", f"The request signature we "
                         f"calculated does not match the signature you provided. You sent: {auth}")
        if fake.check_keys and f"Credential={fake.access_key}/" not in auth:
            return error("403 Forbidden", "InvalidAccessKeyId",
                         "The AWS Access Key Id you provided does not exist in our records.")
        if fake.delay:
            fake._stopping.wait(fake.delay)
        if hang:
            fake._stopping.wait(fake.hang_seconds)
            return error("503 Slow Down", "SlowDown", "late")
        if slow:
            return error("503 Slow Down", "SlowDown", "Please reduce your request rate.")
        if fail:
            return error("500 Internal Server Error", "InternalError", "We encountered an internal error.")
        key = path.split("/", 2)[2] if path.count("/") >= 2 else ""
        if method == "GET" and any(key.startswith(p) for p in fake.deny_prefixes):
            return error("403 Forbidden", "AccessDenied", "Access Denied")
        if cut:
            return self._cut(environ, start_response)
        if trickle:
            return self._trickle(environ, start_response)
        return self.app(environ, start_response)

    def _trickle(self, environ, start_response):
        """The answer's body one byte every ``trickle_seconds`` (slow-loris)."""
        body = b"".join(self.app(environ, start_response))
        stopping, pause = self.fake._stopping, self.fake.trickle_seconds

        def stream():
            for i in range(len(body)):
                if stopping.wait(pause):
                    return
                yield body[i:i + 1]

        return stream()

    def _cut(self, environ, start_response):
        """Send the headers and half the body, then drop the connection (a reset mid-body)."""
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        body = b"".join(self.app(environ, capture))
        start_response(captured["status"], captured["headers"])
        sock = environ.get("werkzeug.socket")

        def stream():
            yield body[: len(body) // 2]
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        return stream()


class FakeFlatFiles:
    """moto S3 server with the synthetic market's flat files. Use as a context manager."""

    def __init__(self, market: SyntheticMarket | None = None, days: Iterable[dt.date] | None = None,
                 tick_days: Iterable[dt.date] = (), minute_days: Iterable[dt.date] | None = None, access_key: str = "fake-access-key",
                 secret_key: str = "fake-secret-key", bucket: str | None = None, ticks_per_day: int = 2000):
        self.market = market or SyntheticMarket()
        self.days = list(days) if days is not None else list(self.market.sessions)
        self.minute_days = list(minute_days) if minute_days is not None else self.days
        self.tick_days = list(tick_days)
        self.access_key, self.secret_key = access_key, secret_key
        self.bucket = bucket or f"flatfiles-{uuid.uuid4().hex[:8]}"  # moto's state is per process
        self.ticks_per_day = ticks_per_day
        self.requests: list[tuple[str, str]] = []
        self.deny_prefixes: set[str] = set()
        self.slow_down = 0
        self.fail_next = 0
        self.cut_next = 0
        self.hang_next = 0
        self.hang_seconds = 30.0
        self.trickle_next = 0
        self.trickle_seconds = 0.5
        self.echo_next = 0
        self.delay = 0.0  # seconds before answering each request
        self._stopping = threading.Event()
        self.check_keys = True
        self.store_buckets: dict[str, str] = {}  # bucket -> the access key it accepts (a store, not upstream)
        self.store_requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server = None
        self._client = None

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> "FakeFlatFiles":
        from moto.moto_server.threaded_moto_server import ThreadedMotoServer
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        fake = self

        class GatedMotoServer(ThreadedMotoServer):
            def _server_entry(self) -> None:
                from moto.moto_server.threaded_moto_server import MotoRequestHandler

                class QuietHandler(MotoRequestHandler):
                    def log(self, type: str, message: str, *args) -> None:  # keep test output clean
                        if type == "error":
                            super().log(type, message, *args)

                app = _Gate(DomainDispatcherApplication(create_backend_app), fake)
                self._server = make_server(self._ip_address, self._port, app, True,
                                           request_handler=QuietHandler)
                self._server_ready_event.set()
                self._server.serve_forever()

        self._server = GatedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        self.client.create_bucket(Bucket=self.bucket)
        self.publish(self.days, ["day_aggs_v1"])
        self.publish(self.minute_days, ["minute_aggs_v1"])
        for day in self.tick_days:
            for ds in ("trades_v1", "quotes_v1"):
                self.put_raw(self.key(ds, day), render_ticks(self.market, ds, day, self.ticks_per_day))
        self.requests.clear()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> "FakeFlatFiles":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"

    @property
    def client(self):
        """A boto3 client of our own (its requests are counted too)."""
        if self._client is None:
            import boto3
            from botocore.config import Config as BotoConfig

            self._client = boto3.session.Session().client(
                "s3", endpoint_url=self.url, aws_access_key_id=self.access_key,
                aws_secret_access_key=self.secret_key, region_name="us-east-1",
                config=BotoConfig(signature_version="s3v4", s3={"addressing_style": "path"}))
        return self._client

    def add_store_bucket(self, bucket: str, access_key: str = "store-access-key",
                         secret_key: str = "store-secret-key") -> dict[str, str]:
        """Another bucket on this S3 server, for a store (``s3://bucket/...``), reachable with its
        own key pair only (Massive's keys are refused there, and its keys upstream). Returns
        the FINRPT_STORE_S3_* settings."""
        import boto3
        from botocore.config import Config as BotoConfig

        self.store_buckets[bucket] = access_key
        boto3.session.Session().client(
            "s3", endpoint_url=self.url, aws_access_key_id=access_key, aws_secret_access_key=secret_key,
            region_name="us-east-1", config=BotoConfig(s3={"addressing_style": "path"})).create_bucket(Bucket=bucket)
        return {"FINRPT_STORE_S3_ENDPOINT": self.url, "FINRPT_STORE_S3_ACCESS_KEY": access_key,
                "FINRPT_STORE_S3_SECRET_KEY": secret_key}

    def config(self) -> dict[str, str]:
        """Settings that point the flat-file provider here."""
        return {"MASSIVE_S3_ENDPOINT": self.url, "MASSIVE_S3_BUCKET": self.bucket,
                "MASSIVE_S3_ACCESS_KEY": self.access_key, "MASSIVE_S3_SECRET_KEY": self.secret_key}

    # -- content ------------------------------------------------------------------
    @staticmethod
    def key(dataset: str, day: dt.date) -> str:
        from ..providers.massive_flatfiles.files import key_for

        return key_for(dataset, day)

    def put_raw(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def publish(self, days: Iterable[dt.date], datasets=("day_aggs_v1", "minute_aggs_v1")) -> None:
        from concurrent.futures import ThreadPoolExecutor

        def one(item):
            ds, day = item
            self.put_raw(self.key(ds, day), render_aggs(self.market, ds, day))

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(one, [(ds, d) for d in days for ds in datasets]))

    def remove(self, dataset: str, day: dt.date) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(dataset, day))

    def replace(self, dataset: str, day: dt.date, scale: float = 1.01) -> bytes:
        """Re-publish a session with every price scaled (new content, new ETag); returns the file."""
        text = gzip.decompress(render_aggs(self.market, dataset, day)).decode().splitlines()
        out = [text[0]]
        for line in text[1:]:
            f = line.split(",")
            for i in (2, 3, 4, 5):
                f[i] = _num(float(f[i]) * scale)
            out.append(",".join(f))
        data = gzip.compress(("\n".join(out) + "\n").encode())
        self.put_raw(self.key(dataset, day), data)
        return data

    def truncate(self, dataset: str, day: dt.date) -> None:
        data = render_aggs(self.market, dataset, day)
        self.put_raw(self.key(dataset, day), data[: len(data) * 2 // 3])

    def count(self, method: str | None = None) -> int:
        with self._lock:
            return sum(1 for m, _ in self.requests if method is None or m == method)

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()


__all__ = ["FakeFlatFiles", "render_aggs", "render_ticks"]
