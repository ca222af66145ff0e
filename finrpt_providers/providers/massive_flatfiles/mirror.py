"""Getting flat files into the store: what a query lacks (``ensure``) and ``sync``.

Downloads run a few at a time (bounded pool); each file is checked (size, gzip,
header, schema) and parsed before anything is stored; the store writes atomically.
Day aggregates are merged into their year's file in batches (not after every
download), minute aggregates are written a session at a time, so an interrupted
sync keeps what it finished and a rerun fetches only the rest.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from ... import redact
from ...errors import DataIntegrityError, ProviderError, UnsupportedQuery
from ...store import Problem, Source, Store
from .files import AGG_DATASETS, NAME, PREFIX, TYPICAL_MB, check_aggregates, key_for, parse_gzip
from .s3 import FlatFilesS3

#: progress(files_done, bytes_done): called after each file (the CLI draws the bar)
Progress = Callable[[int, int], None]
#: report(line): what a person would want to read (the CLI prints it; default: logging)
Report = Callable[[str], None]

log = redact.logger(__name__)
# Day files are merged into their year's file in batches: each merge rewrites the year
# (streamed a ticker range at a time, so its memory is the batch), so per-file merges
# would be quadratic; a batch (~90 MB of parsed rows at 12k tickers a day) or a minute
# bounds both the memory and what an interrupted sync loses.
DAY_BATCH = 128
DAY_FLUSH_SECONDS = 20.0


@dataclass
class Outcome:
    fetched: list[dt.date] = field(default_factory=list)
    missing: list[dt.date] = field(default_factory=list)
    bytes: int = 0
    csv_bytes: int = 0
    planned: list["Planned"] = field(default_factory=list)


@dataclass(frozen=True)
class Planned:
    day: dt.date
    key: str
    size: int | None
    why: str  # "new" or "replaced upstream"


def fetch_days(s3: FlatFilesS3, store: Store, dataset: str, days: list[dt.date], workers: int,
               progress: Progress | None = None) -> Outcome:
    """Download, check, parse and store ``days`` of ``dataset``; record the missing ones."""
    out = Outcome()
    if not days:
        return out
    pending: dict[dt.date, tuple] = {}
    last_flush = [time.monotonic()]
    flush_seconds = float(os.environ.get("MASSIVE_FLATFILES_DAY_FLUSH_SECONDS", DAY_FLUSH_SECONDS))

    def one(day: dt.date):
        key = key_for(dataset, day)
        got = s3.get(key, dataset)
        if got is None:
            return day, None, None, 0, 0
        data, src = got
        table, csv_size = parse_gzip(data, dataset, key)
        return day, check_aggregates(table, day, dataset, key), src, len(data), csv_size

    def flush() -> None:
        if pending:
            store.put(dataset, dict(pending))
            pending.clear()
        last_flush[0] = time.monotonic()

    def take(day: dt.date, table, src, nbytes: int, ncsv: int) -> None:
        if table is None:
            out.missing.append(day)
        else:
            out.fetched.append(day)
            out.bytes += nbytes
            out.csv_bytes += ncsv
            pending[day] = (table, src)
            if (not store.per_year(dataset) or len(pending) >= DAY_BATCH
                    or time.monotonic() - last_flush[0] > flush_seconds):
                flush()
        if progress:
            progress(len(out.fetched) + len(out.missing), out.bytes)

    n = max(1, min(workers, len(days)))
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="flatfiles") as pool:
        # At most 2 x workers files in flight: parsed tables wait in ``pending`` (bounded by
        # the batch), never in finished futures piling up while a batch is merged. Results
        # are taken here, in this thread: the store is written by one thread.
        todo = iter(days)
        running: set[Future] = {pool.submit(one, d) for d in itertools.islice(todo, 2 * n)}
        try:
            while running:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                results = [f.result() for f in done]  # the first failure raises here
                for _ in done:
                    nxt = next(todo, None)
                    if nxt is not None:
                        running.add(pool.submit(one, nxt))
                done = set()
                while results:
                    take(*results.pop())
        except BaseException:
            for f in running:
                f.cancel()
            flush()  # keep what was finished before the failure
            raise
    flush()
    if out.missing:
        store.record_missing(dataset, out.missing)
    out.fetched.sort()
    out.missing.sort()
    return out


def ensure(s3: FlatFilesS3, store: Store, dataset: str, days: list[dt.date], workers: int,
           today: dt.date, max_mb: float | None = None) -> Outcome:
    """Make ``days`` of ``dataset`` present in the store, fetching only what it lacks.

    ``s3`` builds its boto3 client on first use, so a warm query never builds one, let
    alone calls S3. Sessions recently found missing upstream are not asked for again
    until they may have been published. A query that would download more than ``max_mb``
    (estimated from the files' typical size) is refused before any download, naming the
    ``sync`` that fetches it once (the chain then asks the next provider).
    """
    stored = store.stored(dataset, days)
    lacking = [d for d in days if d not in stored]
    skip = store.known_missing(dataset, lacking, today)
    todo = [d for d in lacking if d not in skip]
    estimate = len(todo) * TYPICAL_MB.get(dataset, 1.0)
    if max_mb is not None and estimate > max_mb:
        raise UnsupportedQuery(
            f"{len(todo)} {dataset} files (~{estimate / 1024:.1f} GB) are not in the store, more than one query "
            f"downloads (MASSIVE_FLATFILES_MAX_QUERY_MB={max_mb:g}): run `finrpt-providers sync --start {todo[0]} "
            f"--end {todo[-1]} --datasets {dataset}` once, or ask for fewer sessions", provider=NAME)
    out = fetch_days(s3, store, dataset, todo, workers) if todo else Outcome()
    out.missing = sorted(set(out.missing) | skip)
    return out


def plan(s3: FlatFilesS3, store: Store, dataset: str, days: list[dt.date]) -> tuple[list[Planned], list[dt.date]]:
    """What a sync must fetch (new, or replaced upstream: another ETag or size), and the
    sessions with no file upstream. One listing per month."""
    listing: dict[str, Source] = {}
    for year, month in sorted({(d.year, d.month) for d in days}):
        listing.update(s3.list(f"{PREFIX}/{dataset}/{year:04d}/{month:02d}/", dataset))
    have = store.stored(dataset, days)
    todo, absent = [], []
    for d in days:
        key = key_for(dataset, d)
        src = listing.get(key)
        if src is None:
            absent.append(d)
        elif d not in have:
            todo.append(Planned(d, key, src.size, "new"))
        elif (have[d].etag, have[d].size) != (src.etag, src.size):
            todo.append(Planned(d, key, src.size, "replaced upstream"))
    return todo, absent


def sync(s3: FlatFilesS3, store: Store, datasets: list[str], days: list[dt.date], workers: int,
         dry_run: bool = False, progress: Callable[[str, int, int], Progress] | None = None,
         report: Report | None = None, client=None) -> dict[str, Outcome]:
    """Mirror ``days`` of ``datasets`` into the store (see ``finrpt-providers sync``).

    ``progress(dataset, files, bytes)`` is called once per dataset with what is to be
    fetched and returns the per-file callback; ``report`` receives the plan in words.
    With ``client`` (a ``distributed.Client``) the files are fetched by the cluster's
    workers (:mod:`.cluster`). Nothing here prints."""
    report = report or log.info
    results: dict[str, Outcome] = {}
    for dataset in datasets:
        if dataset not in AGG_DATASETS:
            raise ProviderError(f"sync stores aggregates only ({', '.join(AGG_DATASETS)}); trades and quotes are "
                                "streamed per ticker with `finrpt-providers trades` / `quotes`")
        todo, absent = plan(s3, store, dataset, days)
        total = sum(p.size or 0 for p in todo)
        report(f"{dataset}: {len(days)} sessions, {len(days) - len(todo) - len(absent)} already stored, "
               f"{len(todo)} to fetch ({total / 1e6:.1f} MB), {len(absent)} not published upstream")
        if absent:
            report(f"  not upstream: {', '.join(d.isoformat() for d in absent[:10])}"
                   f"{' ...' if len(absent) > 10 else ''}")
        if dry_run:
            for p in todo:
                report(f"  would fetch {p.key} ({(p.size or 0) / 1e6:.2f} MB, {p.why})")
            results[dataset] = Outcome(missing=absent, planned=todo)
            continue
        tick = progress(dataset, len(todo), total) if progress and todo else None
        if client is not None:
            from .cluster import fetch_days_on

            out = fetch_days_on(client, s3.config, store, dataset, [p.day for p in todo], tick, report)
        else:
            out = fetch_days(s3, store, dataset, [p.day for p in todo], workers, tick)
            merge_years(store, dataset, out.fetched, report)
        if absent:
            store.record_missing(dataset, absent)
        out.missing = sorted(set(out.missing) | set(absent))
        out.planned = todo
        results[dataset] = out
    return results


def merge_years(store, dataset: str, fetched: list[dt.date], report: Report) -> None:
    """On object storage, rebuild the ticker-ordered copy of each year a sync added sessions
    to (derived from the session objects; a local store merges as it writes)."""
    if not getattr(store, "remote", False) or not store.per_year(dataset) or not fetched:
        return
    for year in sorted({d.year for d in fetched}):
        n = store.merge_year(dataset, year)
        report(f"{dataset} {year}: merged copy rebuilt from {n} session object(s)")


def verify(s3_factory, store: Store, datasets: list[str], upstream: bool, repair: bool, workers: int,
           report: Report | None = None) -> list[Problem]:
    """Check the store (and, with ``upstream``, each session's ETag/size against the bucket);
    with ``repair``, remove stale temp files and fetch damaged or replaced sessions again.
    Returns the problems that remain; ``report`` receives each finding in words."""
    report = report or log.info
    remaining: list[Problem] = []
    for dataset in datasets:
        problems = store.verify(dataset, clean_temp=repair)
        if upstream:
            days = []
            for y in store.years(dataset):
                try:
                    days += store.stored(dataset, store.days(dataset, y))
                except DataIntegrityError:
                    pass  # a damaged manifest: reported above, its sessions are not known
            days.sort()
            if days:
                todo, _absent = plan(s3_factory(), store, dataset, days)
                problems += [Problem(dataset, p.day, "replaced upstream", p.key) for p in todo]
        for p in problems:
            report(f"  {p}")
        damaged = {p.day for p in problems if p.day is not None}
        if repair:
            for year in sorted({p.year for p in problems if p.what == "damaged manifest"}):
                found = store.reset_year(dataset, year)
                report(f"{dataset} {year}: manifest damaged; {len(found)} session(s) found in the data are "
                       "fetched again" + ("" if found else ": sync the year again to restore it"))
                damaged |= set(found)
        damaged = sorted(damaged)
        if repair and damaged:
            store.forget(dataset, damaged)
            out = fetch_days(s3_factory(), store, dataset, damaged, workers)
            report(f"{dataset}: repaired {len(out.fetched)} session(s)"
                   + (f"; {len(out.missing)} no longer upstream" if out.missing else ""))
            merge_years(store, dataset, out.fetched, report)  # object storage: the derived copy again
            problems = store.verify(dataset)
        elif repair:
            problems = [p for p in problems if p.what != "stale temp file"]
        report(f"{dataset}: {'ok' if not problems else f'{len(problems)} problem(s)'}")
        remaining += problems
    return remaining
