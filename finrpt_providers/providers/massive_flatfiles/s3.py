"""S3 access to Massive's flat files: a lazily built, thread-safe boto3 client from config,
and S3 errors mapped to ours (404 = missing, 403 = not entitled, bad keys = auth)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ... import deadline, redact
from ...errors import (
    AuthenticationFailed,
    DataIntegrityError,
    MissingCredentials,
    NotEntitled,
    ProviderError,
    ProviderUnavailable,
)
from ...store import Source
from .files import NAME

if TYPE_CHECKING:
    from ...config import Config

log = redact.logger(__name__)
WHAT = {"day_aggs_v1": "day aggregates", "minute_aggs_v1": "minute aggregates", "trades_v1": "trades",
        "quotes_v1": "quotes"}
_AUTH_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "AuthorizationHeaderMalformed",
               "InvalidSecurity", "ExpiredToken"}
_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}
#: the slowest pace a download may keep: its deadline grows a second per this many bytes announced
MIN_RATE = 256 << 10
#: the largest file read whole, per dataset (real ones: day ~0.3 MB, minute ~30 MB); trades and
#: quotes are streamed (open), never read whole
MAX_OBJECT = {"day_aggs_v1": 64 << 20, "minute_aggs_v1": 1 << 30}
#: pages one listing may take (a month holds at most 23 session files: one page)
MAX_LIST_PAGES = 50


@dataclass
class Stream:
    body: object  # botocore StreamingBody
    source: Source
    budget: deadline.Budget | None = None  # charged while the body is read (see finrpt_providers.deadline)

    def read(self, n: int = -1) -> bytes:
        return self.body.read(n)

    def close(self) -> None:
        self.body.close()


def _read_capped(body, limit: int, key: str, dataset: str) -> bytes:
    """The whole body, never more than ``limit`` bytes whatever its framing; read to its end
    (b"") so botocore still checks its length and checksum."""
    chunks, size = [], 0
    while True:
        chunk = body.read(1 << 20)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            body.close()
            raise DataIntegrityError(f"{key} is larger than any {dataset} file can be ({limit >> 20} MiB): not "
                                     "stored", provider=NAME)
        chunks.append(chunk)


class FlatFilesS3:
    """Massive's S3 bucket, per config; the boto3 client is built on first use."""

    def __init__(self, config: Config):
        self.config = config
        self.access = config.get("MASSIVE_S3_ACCESS_KEY")
        self.secret = config.get("MASSIVE_S3_SECRET_KEY")
        missing = [n for n, v in (("MASSIVE_S3_ACCESS_KEY", self.access), ("MASSIVE_S3_SECRET_KEY", self.secret))
                   if not v]
        if missing:
            raise MissingCredentials(f"no flat-files key pair: set {' and '.join(missing)} (the S3 key pair from "
                                     "your Massive dashboard, not the REST API key)", provider=NAME)
        self.endpoint = config.value("MASSIVE_S3_ENDPOINT")
        self.bucket = config.value("MASSIVE_S3_BUCKET")
        self.timeouts = (config.value("MASSIVE_S3_CONNECT_TIMEOUT"), config.value("MASSIVE_S3_READ_TIMEOUT"))
        self.retries = config.value("MASSIVE_S3_MAX_RETRIES")
        self.deadline = config.value("MASSIVE_S3_REQUEST_DEADLINE")
        self._client = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<FlatFilesS3 {self.endpoint}/{self.bucket} key pair=****>"

    @property
    def client(self):
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config as BotoConfig

                redact.register(self.access, self.secret)  # botocore logs signed headers at DEBUG
                redact.protect(*redact.HTTP_LOGGERS)
                self._client = boto3.session.Session().client(
                    "s3", endpoint_url=self.endpoint, aws_access_key_id=self.access,
                    aws_secret_access_key=self.secret, region_name="us-east-1",
                    config=BotoConfig(signature_version="s3v4", connect_timeout=self.timeouts[0],
                                      read_timeout=self.timeouts[1], max_pool_connections=16,
                                      retries={"max_attempts": self.retries + 1, "mode": "standard"},
                                      s3={"addressing_style": "path"}))
                deadline.install_botocore(self._client)  # a total deadline per request, not only per read
            return self._client

    def error(self, e: Exception, key: str, dataset: str, budget: deadline.Budget | None = None) -> ProviderError:
        from botocore import exceptions as bx

        if isinstance(e, ProviderError):
            return e
        if budget is not None and budget.exceeded:
            return ProviderUnavailable(f"the flat-files endpoint took longer than {budget.seconds:.0f}s in all for "
                                       f"{key} (MASSIVE_S3_REQUEST_DEADLINE, plus a second per "
                                       f"{MIN_RATE >> 10} KiB of the file): it sends too slowly; try again later",
                                       provider=NAME)
        if isinstance(e, bx.ClientError):
            err = e.response.get("Error", {})
            code = str(err.get("Code", ""))[:80]
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in _AUTH_CODES:
                return AuthenticationFailed(
                    f"the flat-files endpoint rejected the key pair ({code}): set MASSIVE_S3_ACCESS_KEY and "
                    "MASSIVE_S3_SECRET_KEY to the S3 key pair from your Massive dashboard; the S3 key pair is "
                    "not the REST API key", provider=NAME)
            if code == "AccessDenied" or status == 403:
                return NotEntitled(f"your plan does not include {WHAT.get(dataset, dataset)} flat files (S3 403 on "
                                   f"{key}): upgrade the plan, or put another provider after massive_flatfiles",
                                   provider=NAME)
            if code == "NoSuchBucket":
                return ProviderUnavailable(f"bucket {self.bucket!r} does not exist at {self.endpoint}: check "
                                           "MASSIVE_S3_BUCKET and MASSIVE_S3_ENDPOINT", provider=NAME)
            return ProviderUnavailable(f"the flat-files endpoint answered {code or status} for {key} after "
                                       f"{self.retries + 1} tries: try again later", provider=NAME)
        if isinstance(e, (bx.IncompleteReadError, bx.ResponseStreamingError)):
            return DataIntegrityError(f"{key} arrived incomplete ({type(e).__name__}): it was not stored; "
                                      "try again", provider=NAME)
        if isinstance(e, (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError,
                          bx.ConnectionClosedError, bx.HTTPClientError)):
            return ProviderUnavailable(f"cannot reach the flat-files endpoint {self.endpoint} "
                                       f"({type(e).__name__}): check the network and MASSIVE_S3_ENDPOINT",
                                       provider=NAME)
        return ProviderUnavailable(f"flat-files request for {key} failed ({type(e).__name__}: {e})", provider=NAME)

    def _missing(self, e: Exception) -> bool:
        from botocore import exceptions as bx

        return isinstance(e, bx.ClientError) and str(e.response.get("Error", {}).get("Code", "")) in _MISSING_CODES

    def get(self, key: str, dataset: str) -> tuple[bytes, Source] | None:
        """The whole object, or None when it does not exist (404/NoSuchKey). Bounded in time
        (MASSIVE_S3_REQUEST_DEADLINE plus a second per MIN_RATE bytes announced) and size."""
        with deadline.budget(self.deadline, f"GET {key}") as budget:
            try:
                resp = self.client.get_object(Bucket=self.bucket, Key=key)
                size = int(resp.get("ContentLength") or 0)
                limit = MAX_OBJECT.get(dataset, 1 << 30)
                if size > limit:
                    resp["Body"].close()
                    raise DataIntegrityError(f"{key} announces {size / 2**20:.0f} MiB, more than any {dataset} file "
                                             f"can be ({limit >> 20} MiB): not downloaded", provider=NAME)
                budget.allow(size / MIN_RATE)
                data = _read_capped(resp["Body"], limit, key, dataset)
            except Exception as e:
                if self._missing(e):
                    return None
                raise self.error(e, key, dataset, budget) from None
        size = int(resp.get("ContentLength", len(data)))
        if len(data) != size:
            raise DataIntegrityError(f"{key} arrived short ({len(data)} of {size} bytes): it was not stored; "
                                     "try again", provider=NAME)
        return data, Source(key, str(resp.get("ETag", "")).strip('"'), size)

    def open(self, key: str, dataset: str) -> Stream | None:
        """A streaming body (for multi-GB trades and quotes files), or None when missing. The
        time spent waiting on the server while it is read is bounded like :meth:`get`'s."""
        with deadline.budget(self.deadline, f"GET {key}") as budget:
            try:
                resp = self.client.get_object(Bucket=self.bucket, Key=key)
            except Exception as e:
                if self._missing(e):
                    return None
                raise self.error(e, key, dataset, budget) from None
            budget.allow(int(resp.get("ContentLength") or 0) / MIN_RATE)
        return Stream(resp["Body"], Source(key, str(resp.get("ETag", "")).strip('"'),
                                           int(resp.get("ContentLength", 0))), budget)

    def list(self, prefix: str, dataset: str) -> dict[str, Source]:
        """Every object under ``prefix`` with its ETag and size."""
        out: dict[str, Source] = {}
        with deadline.budget(self.deadline, f"LIST {prefix}") as budget:
            try:
                pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
                for n, page in enumerate(pages, 1):
                    if n > MAX_LIST_PAGES:
                        raise DataIntegrityError(f"the listing of {prefix} kept going past {MAX_LIST_PAGES} pages "
                                                 "(a month holds 23 files at most): stopped", provider=NAME)
                    for obj in page.get("Contents", []) or []:
                        out[obj["Key"]] = Source(obj["Key"], str(obj.get("ETag", "")).strip('"'), int(obj["Size"]))
            except Exception as e:
                raise self.error(e, prefix, dataset, budget) from None
        return out
