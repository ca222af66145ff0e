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
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from ... import redact
from ...errors import ProviderError, UnsupportedQuery
from ...store import Problem, Source, Store
from .files import AGG_DATASETS, NAME, PREFIX, TYPICAL_MB, check_aggregates, key_for, parse_gzip
from .s3 import FlatFilesS3

#: progress(files_done, bytes_done): called after each file (the CLI draws the bar)
Progress = Callable[[int, int], None]
#: report(line): what a person would want to read (the CLI prints it; default: logging)
Report = Callable[[str], None]

log = redact.logger(__name__)


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
    """Download, check, parse and store ``days`` of ``dataset`` (each session its own object,
    written by the thread that fetched it: memory is a few files, whatever the range); record
    the missing ones. Derived year copies are rebuilt by the caller (:func:`merge_years`)."""
    out = Outcome()
    if not days:
        return out

    def one(day: dt.date):
        key = key_for(dataset, day)
        got = s3.get(key, dataset)
        if got is None:
            return day, False, 0, 0
        data, src = got
        table, csv_size = parse_gzip(data, dataset, key)
        store.put(dataset, {day: (check_aggregates(table, day, dataset, key), src)})
        return day, True, len(data), csv_size

    n = max(1, min(workers, len(days)))
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="flatfiles") as pool:
        todo = iter(days)
        running: set[Future] = {pool.submit(one, d) for d in itertools.islice(todo, 2 * n)}
        try:
            while running:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for f in done:
                    day, stored, nbytes, ncsv = f.result()  # the first failure raises here
                    nxt = next(todo, None)
                    if nxt is not None:
                        running.add(pool.submit(one, nxt))
                    if stored:
                        out.fetched.append(day)
                        out.bytes += nbytes
                        out.csv_bytes += ncsv
                    else:
                        out.missing.append(day)
                    if progress:
                        progress(len(out.fetched) + len(out.missing), out.bytes)
        except BaseException:
            for f in running:
                f.cancel()
            raise  # what finished is stored (each session stands alone)
    if out.missing:
        store.record_missing(dataset, out.missing)
    out.fetched.sort()
    out.missing.sort()
    return out


#: a query lacking more sessions than this lists the months first (a month of files: ~21)
LIST_FIRST = 31


def _listing(s3: FlatFilesS3, dataset: str, days: list[dt.date]) -> dict[str, Source]:
    """Upstream's files of the months of ``days`` (key -> its version): one listing per month,
    a few at once."""
    months = sorted({(d.year, d.month) for d in days})
    out: dict[str, Source] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(months))), thread_name_prefix="flatfiles-list") as pool:
        for listing in pool.map(lambda ym: s3.list(f"{PREFIX}/{dataset}/{ym[0]:04d}/{ym[1]:02d}/", dataset), months):
            out.update(listing)
    return out


def _listed(s3: FlatFilesS3, dataset: str, days: list[dt.date]) -> tuple[list[dt.date], list[dt.date]]:
    """(the ``days`` whose file is listed upstream, the others)."""
    keys = _listing(s3, dataset, days)
    have = [d for d in days if key_for(dataset, d) in keys]
    return have, [d for d in days if key_for(dataset, d) not in keys]


def ensure(s3: FlatFilesS3, store: Store, dataset: str, days: list[dt.date], workers: int,
           today: dt.date, max_mb: float | None = None) -> Outcome:
    """Make ``days`` of ``dataset`` present in the store, fetching only what it lacks.

    ``s3`` builds its boto3 client on first use, so a warm query never builds one, let
    alone calls S3. A query that fetched answers from the session objects; the next one
    (which fetches nothing) rebuilds the year's copy by ticker if it is behind. Sessions
    recently found missing upstream are not asked for again until they may have been
    published. A query that would download more than ``max_mb``
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
    absent: list[dt.date] = []
    if len(todo) > LIST_FIRST:
        # many sessions lacking (a long history, mostly before the plan's or the bucket's first
        # file): one listing per month says which exist, instead of one GET answering 404 per day
        todo, absent = _listed(s3, dataset, todo)
    if todo or absent:
        # the answer first: the year's copy by ticker is built by the next question (or a sync),
        # which finds it behind; this one reads the session objects it just wrote
        out = fetch_days(s3, store, dataset, todo, workers)
        if absent:
            store.record_missing(dataset, absent)
            out.missing = sorted([*out.missing, *absent])
    else:
        out = Outcome()
        if store.per_year(dataset):
            for year in sorted({d.year for d in days}):
                if store.behind(dataset, year):
                    store.merge_year(dataset, year)
    out.missing = sorted(set(out.missing) | skip)
    return out


def plan(s3: FlatFilesS3, store: Store, dataset: str, days: list[dt.date]) -> tuple[list[Planned], list[dt.date]]:
    """What a sync must fetch (new, or replaced upstream: another ETag or size), and the
    sessions with no file upstream. One listing per month."""
    listing = _listing(s3, dataset, days)
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
            # every year of the range: a sync killed before its merge left the copy behind
            merge_years(store, dataset, sorted(set(out.fetched) | set(days) - set(absent)), report)
        if absent:
            store.record_missing(dataset, absent)
        out.missing = sorted(set(out.missing) | set(absent))
        out.planned = todo
        results[dataset] = out
    return results


def merge_years(store: Store, dataset: str, fetched: list[dt.date], report: Report) -> None:
    """Rebuild the derived copy of each year sessions were added to (``year`` layout)."""
    if not store.per_year(dataset) or not fetched:
        return
    for year in sorted({d.year for d in fetched}):
        n = store.merge_year(dataset, year)
        report(f"{dataset} {year}: the year's copy by ticker holds {n} session(s)")


def verify(s3_factory, store: Store, datasets: list[str], upstream: bool, repair: bool, workers: int,
           report: Report | None = None) -> list[Problem]:
    """Check the store (and, with ``upstream``, each session's ETag/size against the bucket);
    with ``repair``, fix what the store can (see :mod:`finrpt_providers.store.verify`) and fetch
    damaged or replaced sessions again. Returns the problems that remain; ``report`` receives
    each finding in words."""
    report = report or log.info
    remaining: list[Problem] = []
    for dataset in datasets:
        problems = store.verify(dataset, repair=repair)
        if upstream:
            days = sorted(d for y in store.years(dataset) for d in store.days(dataset, y))
            if days:
                todo, _absent = plan(s3_factory(), store, dataset, days)
                problems += [Problem(dataset, p.day, "replaced upstream", p.key, p.day.year, refetch=True)
                             for p in todo]
        for p in problems:
            report(f"  {p}")
        if repair:
            again = sorted({p.day for p in problems if p.refetch and p.day is not None})
            if again:
                store.forget(dataset, again)
                out = fetch_days(s3_factory(), store, dataset, again, workers)
                report(f"{dataset}: repaired {len(out.fetched)} session(s)"
                       + (f"; {len(out.missing)} no longer upstream" if out.missing else ""))
                merge_years(store, dataset, out.fetched, report)
            problems = store.verify(dataset)
        report(f"{dataset}: {'ok' if not problems else f'{len(problems)} problem(s)'}")
        remaining += problems
    return remaining
