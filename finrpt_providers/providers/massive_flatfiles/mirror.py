"""Getting flat files into the store: what a query lacks (``ensure``) and ``sync``.

Downloads run a few at a time (bounded pool); each file is checked (size, gzip,
header, schema) and parsed before anything is stored; the store writes atomically.
Day aggregates are merged into their year's file in batches (not after every
download), minute aggregates are written a session at a time, so an interrupted
sync keeps what it finished and a rerun fetches only the rest.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TextIO

from ...errors import ProviderError
from ...store import PREFIX, Source, Store
from .files import AGG_DATASETS, key_for, parse_gzip
from .s3 import FlatFilesS3

log = logging.getLogger(__name__)
# Day files are merged into their year's file in batches: each merge rewrites the year
# (~3M rows), so per-file merges would be quadratic; a batch or a minute bounds what an
# interrupted sync loses.
DAY_BATCH = 512
DAY_FLUSH_SECONDS = 20.0


@dataclass
class Outcome:
    fetched: list[dt.date] = field(default_factory=list)
    missing: list[dt.date] = field(default_factory=list)
    bytes: int = 0
    csv_bytes: int = 0


@dataclass(frozen=True)
class Planned:
    day: dt.date
    key: str
    size: int | None
    why: str  # "new" or "replaced upstream"


class ProgressBar:
    """files, bytes, rate and ETA on one line of ``stream`` (a line every few seconds when not a TTY)."""

    def __init__(self, total_files: int, total_bytes: int | None, label: str, stream: TextIO | None = None):
        self.total_files, self.total_bytes, self.label = total_files, total_bytes, label
        self.files = self.bytes = 0
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = time.monotonic()
        self._last = 0.0
        self._lock = threading.Lock()

    def advance(self, nbytes: int) -> None:
        with self._lock:
            self.files += 1
            self.bytes += nbytes
            now = time.monotonic()
            if self.tty or now - self._last >= 2.0 or self.files == self.total_files:
                self._last = now
                self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self.t0, 1e-9)
        rate = self.bytes / elapsed
        if self.total_bytes:
            left = max(self.total_bytes - self.bytes, 0) / rate if rate else float("inf")
        else:
            left = (self.total_files - self.files) * elapsed / self.files if self.files else float("inf")
        frac = self.files / self.total_files if self.total_files else 1.0
        bar = "#" * int(frac * 24)
        size = f"{self.bytes / 1e6:.1f}" + (f"/{self.total_bytes / 1e6:.1f}" if self.total_bytes else "")
        eta = "--" if left == float("inf") else f"{left:.0f}s"
        line = (f"{self.label} [{bar:<24}] {self.files}/{self.total_files} files  {size} MB  "
                f"{rate / 1e6:.1f} MB/s  ETA {eta}")
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def fetch_days(s3: FlatFilesS3, store: Store, dataset: str, days: list[dt.date], workers: int,
               progress: ProgressBar | None = None) -> Outcome:
    """Download, check, parse and store ``days`` of ``dataset``; record the missing ones."""
    out = Outcome()
    if not days:
        return out
    pending: dict[dt.date, tuple] = {}
    lock = threading.Lock()
    last_flush = [time.monotonic()]
    flush_seconds = float(os.environ.get("MASSIVE_FLATFILES_DAY_FLUSH_SECONDS", DAY_FLUSH_SECONDS))

    def one(day: dt.date):
        key = key_for(dataset, day)
        got = s3.get(key, dataset)
        if got is None:
            return day, None, None, 0, 0
        data, src = got
        table, csv_size = parse_gzip(data, dataset, key)
        return day, table, src, len(data), csv_size

    def flush() -> None:
        if pending:
            store.put(dataset, dict(pending))
            pending.clear()
        last_flush[0] = time.monotonic()

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(days))), thread_name_prefix="flatfiles") as pool:
        futures: list[Future] = [pool.submit(one, d) for d in days]
        try:
            for fut in _as_completed(futures):
                day, table, src, nbytes, ncsv = fut.result()
                with lock:
                    if table is None:
                        out.missing.append(day)
                    else:
                        out.fetched.append(day)
                        out.bytes += nbytes
                        out.csv_bytes += ncsv
                        pending[day] = (table, src)
                        if (dataset != "day_aggs_v1" or len(pending) >= DAY_BATCH
                                or time.monotonic() - last_flush[0] > flush_seconds):
                            flush()
                if progress:
                    progress.advance(nbytes)
        except BaseException:
            for f in futures:
                f.cancel()
            with lock:
                flush()  # keep what was finished before the failure
            raise
    flush()
    if out.missing:
        store.record_missing(dataset, out.missing)
    out.fetched.sort()
    out.missing.sort()
    return out


def _as_completed(futures: list[Future]):
    pending = set(futures)
    while pending:
        done, pending = wait(pending, return_when=FIRST_EXCEPTION)
        for f in done:
            yield f


def ensure(s3: FlatFilesS3, store: Store, dataset: str, days: list[dt.date], workers: int) -> Outcome:
    """Make ``days`` of ``dataset`` present in the store, fetching only what it lacks.

    ``s3`` builds its boto3 client on first use, so a warm query never builds one, let
    alone calls S3. Sessions recently found missing upstream are not asked for again
    until they may have been published.
    """
    stored = store.stored(dataset, days)
    lacking = [d for d in days if d not in stored]
    skip = store.known_missing(dataset, lacking)
    todo = [d for d in lacking if d not in skip]
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
         dry_run: bool = False, stream: TextIO | None = None) -> dict[str, Outcome]:
    """Mirror ``days`` of ``datasets`` into the store (see ``finrpt-providers sync``)."""
    stream = stream or sys.stderr
    results: dict[str, Outcome] = {}
    for dataset in datasets:
        if dataset not in AGG_DATASETS:
            raise ProviderError(f"sync stores aggregates only ({', '.join(AGG_DATASETS)}); trades and quotes are "
                                "streamed per ticker with `fetch --dataset trades`")
        todo, absent = plan(s3, store, dataset, days)
        total = sum(p.size or 0 for p in todo)
        print(f"{dataset}: {len(days)} sessions, {len(days) - len(todo) - len(absent)} already stored, "
              f"{len(todo)} to fetch ({total / 1e6:.1f} MB), {len(absent)} not published upstream",
              file=stream)
        if absent:
            print(f"  not upstream: {', '.join(d.isoformat() for d in absent[:10])}"
                  f"{' ...' if len(absent) > 10 else ''}", file=stream)
        if dry_run:
            for p in todo:
                print(f"  would fetch {p.key} ({(p.size or 0) / 1e6:.2f} MB, {p.why})", file=stream)
            results[dataset] = Outcome(missing=absent)
            continue
        bar = ProgressBar(len(todo), total, dataset, stream) if todo else None
        try:
            out = fetch_days(s3, store, dataset, [p.day for p in todo], workers, bar)
        finally:
            if bar:
                bar.close()
        if absent:
            store.record_missing(dataset, absent)
        out.missing = sorted(set(out.missing) | set(absent))
        results[dataset] = out
    return results


def verify(s3_factory, store: Store, datasets: list[str], upstream: bool, repair: bool, workers: int,
           stream: TextIO | None = None) -> list:
    """Check the store (and, with ``upstream``, each session's ETag/size against the bucket);
    with ``repair``, remove stale temp files and fetch damaged or replaced sessions again.
    Returns the problems that remain."""
    stream = stream or sys.stderr
    remaining = []
    for dataset in datasets:
        problems = store.verify(dataset, clean_temp=repair)
        if upstream:
            days = sorted(d for y in store.years(dataset)
                          for d in store.stored(dataset, _manifest_days(store, dataset, y)))
            if days:
                todo, _absent = plan(s3_factory(), store, dataset, days)
                from ...store import Problem

                problems += [Problem(dataset, p.day, "replaced upstream", p.key) for p in todo]
        for p in problems:
            print(f"  {p}", file=stream)
        damaged = sorted({p.day for p in problems if p.day is not None})
        if repair and damaged:
            store.forget(dataset, damaged)
            out = fetch_days(s3_factory(), store, dataset, damaged, workers)
            print(f"{dataset}: repaired {len(out.fetched)} session(s)"
                  + (f"; {len(out.missing)} no longer upstream" if out.missing else ""), file=stream)
            problems = store.verify(dataset)
        elif repair:
            problems = [p for p in problems if p.what != "stale temp file"]
        print(f"{dataset}: {'ok' if not problems else f'{len(problems)} problem(s)'}", file=stream)
        remaining += problems
    return remaining


def _manifest_days(store: Store, dataset: str, year: int) -> list[dt.date]:
    return [dt.date.fromisoformat(d) for d in store._manifest(dataset, year)["days"]]
