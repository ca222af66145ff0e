"""Sync on a Dask cluster: one task per upstream file (download, check, parse, write), the
year merges as tasks after their inputs (see finrpt_providers.dask for how the
configuration, keys included, reaches the workers without travelling in a task).

* A task that fails with an error a retry may cure (a dropped connection) is retried
  (``retries``); a task on a worker that dies is re-run on another by the scheduler.
  Writes are per session and idempotent, so a task run twice writes the same object.
* A store on object storage is written by the tasks themselves; a LOCAL store (a
  ``local:N`` cluster shares this machine's disk) keeps its year files merged by this
  process: the tasks then return the parsed day files and this process merges them in
  batches, as the single-process sync does. A remote scheduler needs a store every
  worker reaches: a local path is refused before anything is submitted.
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
        return hit


def sync_file(config_name: str, dataset: str, day: dt.date, ship: bool) -> tuple:
    """On a worker: one upstream file into the store. Returns (day, status, gz bytes, CSV bytes,
    (table, source) when ``ship``: a local year-layout store merged by the client)."""
    s3, store = _parts(config_name)
    key = key_for(dataset, day)
    got = s3.get(key, dataset)
    if got is None:
        return day, "missing", 0, 0, None
    data, src = got
    table, csv_size = parse_gzip(data, dataset, key)
    table = check_aggregates(table, day, dataset, key)
    if ship:
        return day, "parsed", len(data), csv_size, (table, src)
    store.put(dataset, {day: (table, src)})
    return day, "stored", len(data), csv_size, None


def merge_year(config_name: str, dataset: str, year: int, *_inputs: Any) -> int:
    """On a worker, after every file of ``year``: rebuild its derived ticker-ordered copy."""
    return _parts(config_name)[1].merge_year(dataset, year)


def fetch_days_on(client, config, store, dataset: str, days: list[dt.date], progress=None, report=None):
    """``days`` of ``dataset`` fetched by the cluster's workers; an Outcome as ``fetch_days``."""
    from distributed import as_completed

    from ...dask import share_config
    from .mirror import DAY_BATCH, Outcome

    out = Outcome()
    if not days:
        return out
    remote = getattr(store, "remote", False)
    scheduler = str(getattr(client, "scheduler", None) and client.scheduler.address or "")
    if not remote and not _same_machine(client):
        raise ConfigurationError(f"the cluster at {scheduler} has workers on other machines, which cannot write "
                                 f"the local store {store.root}: set FINRPT_PROVIDERS_CACHE_DIR to object storage "
                                 "(s3://bucket/prefix) every worker reaches", provider=NAME)
    ship = not remote and store.per_year(dataset)
    name = share_config(config, client)
    link = getattr(client, "dashboard_link", None)
    if link and report:
        report(f"{dataset}: {len(days)} task(s) on {scheduler}; dashboard: {link}")
    futures = [client.submit(sync_file, name, dataset, d, ship, key=f"finrpt-sync-{dataset}-{d.isoformat()}",
                             pure=False, retries=RETRIES) for d in days]
    pending: dict[dt.date, tuple] = {}
    try:
        for fut in as_completed(futures, loop=client.loop):  # this client, not the default one
            day, status, nbytes, ncsv, item = fut.result()
            fut.release()
            if status == "missing":
                out.missing.append(day)
            else:
                out.fetched.append(day)
                out.bytes += nbytes
                out.csv_bytes += ncsv
                if item is not None:
                    pending[day] = item
                    if len(pending) >= DAY_BATCH:
                        store.put(dataset, dict(pending))
                        pending.clear()
            if progress:
                progress(len(out.fetched) + len(out.missing), out.bytes)
    except ProviderError:
        for f in futures:
            f.cancel()
        raise
    finally:
        if pending:
            store.put(dataset, dict(pending))  # keep what was finished
    if remote and store.per_year(dataset) and out.fetched:
        merges = [client.submit(merge_year, name, dataset, y, key=f"finrpt-merge-{dataset}-{y}", pure=False,
                                retries=RETRIES) for y in sorted({d.year for d in out.fetched})]
        for y, m in zip(sorted({d.year for d in out.fetched}), merges):
            n = m.result()
            if report:
                report(f"{dataset} {y}: merged copy rebuilt from {n} session object(s) on the cluster")
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
