"""Sync on a Dask cluster: one task per upstream file (download, check, parse, write), the
year merges as tasks after their inputs (see finrpt_providers.dask for how the
configuration, keys included, reaches the workers without travelling in a task).

* A task that fails with an error a retry may cure (a dropped connection) is retried
  (``retries``); a task on a worker that dies is re-run on another by the scheduler.
  Writes are per session and idempotent, so a task run twice writes the same object.
* The tasks write their sessions themselves (the store needs no lock: each session is
  its own object, then its record), then one task per year rebuilds its derived copy. A
  remote scheduler needs a store every worker reaches: a local path is refused before
  anything is submitted (a ``local:N`` cluster shares this machine's disk).
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from ... import redact
from ...errors import ConfigurationError, ProviderError
from .files import NAME, check_aggregates, key_for, parse_gzip

log = redact.logger(__name__)
RETRIES = 3


_PARTS: dict[str, tuple] = {}  # config name -> (upstream client, store), once per worker process
_PARTS_LOCK = threading.Lock()


def _parts(config_name: str) -> tuple:
    """The upstream bucket and the store for a shared configuration, built once per worker
    (a boto3 client and an S3 filesystem cost more than a day file's work)."""
    from ...dask import worker_config
    from . import store_for
    from .s3 import FlatFilesS3

    with _PARTS_LOCK:
        hit = _PARTS.get(config_name)
        if hit is None:
            cfg = worker_config(config_name)
            hit = _PARTS[config_name] = (FlatFilesS3(cfg), store_for(cfg))
            while len(_PARTS) > 16:  # the latest few configurations, not every one ever shared
                _PARTS.pop(next(iter(_PARTS)))
        return hit


def sync_file(config_name: str, dataset: str, day: dt.date) -> tuple:
    """On a worker: one upstream file into the store. Returns (day, status, gz bytes, CSV bytes)."""
    s3, store = _parts(config_name)
    key = key_for(dataset, day)
    got = s3.get(key, dataset)
    if got is None:
        return day, "missing", 0, 0
    data, src = got
    table, csv_size = parse_gzip(data, dataset, key)
    store.put(dataset, {day: (check_aggregates(table, day, dataset, key), src)})
    return day, "stored", len(data), csv_size


def merge_year(config_name: str, dataset: str, year: int, *_inputs: Any) -> int:
    """On a worker, after every file of ``year``: rebuild its derived copy by ticker."""
    return _parts(config_name)[1].merge_year(dataset, year)


def fetch_days_on(client, config, store, dataset: str, days: list[dt.date], progress=None, report=None):
    """``days`` of ``dataset`` fetched by the cluster's workers; an Outcome as ``fetch_days``."""
    from distributed import as_completed

    from ...dask import share_config
    from .mirror import Outcome

    out = Outcome()
    if not days:
        return out
    scheduler = str(getattr(client, "scheduler", None) and client.scheduler.address or "")
    if store.local and not _same_machine(client):
        raise ConfigurationError(f"the cluster at {scheduler} has workers on other machines, which cannot write "
                                 f"the local store {store.root}: set FINRPT_PROVIDERS_CACHE_DIR to object storage "
                                 "(s3://bucket/prefix) every worker reaches", provider=NAME)
    name = share_config(config, client)
    link = getattr(client, "dashboard_link", None)
    if link and report:
        report(f"{dataset}: {len(days)} task(s) on {scheduler}; dashboard: {link}")
    futures = [client.submit(sync_file, name, dataset, d, key=f"finrpt-sync-{dataset}-{d.isoformat()}",
                             pure=False, retries=RETRIES) for d in days]
    try:
        for fut in as_completed(futures, loop=client.loop):  # this client, not the default one
            day, status, nbytes, ncsv = fut.result()
            fut.release()
            if status == "missing":
                out.missing.append(day)
            else:
                out.fetched.append(day)
                out.bytes += nbytes
                out.csv_bytes += ncsv
            if progress:
                progress(len(out.fetched) + len(out.missing), out.bytes)
    except ProviderError:
        for f in futures:
            f.cancel()
        raise
    if store.per_year(dataset) and out.fetched:
        years = sorted({d.year for d in out.fetched})
        merges = [client.submit(merge_year, name, dataset, y, key=f"finrpt-merge-{dataset}-{y}", pure=False,
                                retries=RETRIES) for y in years]
        for y, m in zip(years, merges):
            n = m.result()
            if report:
                report(f"{dataset} {y}: the year's copy by ticker holds {n} session(s) (rebuilt on the cluster)")
    if out.missing:
        store.record_missing(dataset, out.missing)
    out.fetched.sort()
    out.missing.sort()
    return out


def _same_machine(client) -> bool:
    """Every worker of ``client`` on this machine (a local store is then shared)."""
    import socket

    here = {"127.0.0.1", "localhost", "::1", socket.gethostname()}
    try:
        here.add(socket.gethostbyname(socket.gethostname()))
    except OSError:
        pass
    workers = client.scheduler_info().get("workers", {})
    hosts = {addr.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]") for addr in workers}
    return bool(hosts) and hosts <= here
