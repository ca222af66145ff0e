"""The one store engine: per-session objects, records that name them, derived year copies.

How it stays consistent with many writers (processes, machines) and no lock:

* **A session is one object written whole** (:mod:`.files`: a rename on a disk, one PUT
  on object storage) under a name derived from its upstream version, **then its record**,
  which names that exact object and its row count. A record never names an object its
  writer did not write; interleaved writers of two versions leave a record and the data
  it names, of one version (the next sync compares it with upstream). A writer that dies
  between the two leaves an object no record names: not served; ``verify`` reports it and
  ``--repair`` removes it.
* **A read serves only what a record names**, and checks the object against it (its own
  embedded record, its row count, every row on that session): anything else is an error
  naming ``verify --repair``, never an answer.
* **The derived year copy** (``year`` layout) carries its manifest (session -> ETag,
  rows) in its own footer, and its row count must equal the manifest's sum; a reader uses
  it only for sessions whose record matches, and reads the session objects for the rest.
* Marks of sessions missing upstream must parse with a zone; a damaged one is ignored
  (the session is asked again), reported and removed by ``verify --repair``.

Caches (all bounded, LRU by entries; a changed object is a new entry): parsed records
(:data:`RECORDS_MAX`), Parquet footers (:data:`FOOTERS_MAX`), a year's listing reused by
the one read that follows its plan in the same thread within :data:`LISTING_TTL` seconds.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from .. import redact
from ..errors import DataIntegrityError, ProviderError
from .files import Entry, Files, LocalFiles
from .layout import (
    MERGED, META_SESSIONS, META_SOURCE, ROW_GROUP, SOURCES, bounds, data_path, Dataset, mark_dir, mark_path,
    matches, merged_path, parse_mark, parse_record, Problem, Record, record_day, record_dir, record_path,
    session_dates, Source, year_dir,
)

if TYPE_CHECKING:
    import pyarrow as pa

log = redact.logger(__name__)
REPAIR = "run `finrpt-providers verify --repair`"
# A session missing upstream is asked for again after this long while it is recent
# (files are published the next morning), and never again once it is old.
RECHECK_SECONDS = 15 * 60
RECENT_DAYS = 5
RECORDS_MAX = 200_000  # parsed records (~80 years x 2 datasets x 252 sessions, many stores)
FOOTERS_MAX = 512  # parsed Parquet footers (derived copies and session objects)
LISTING_TTL = 2.0
IO_THREADS = 16
#: rows of new sessions merged per step (bounds the memory of a merge beyond its inputs)
MERGE_STEP = 1 << 18


class _Gone(DataIntegrityError):
    """A session's object is not there (maybe replaced by another writer a moment ago)."""


class SessionGone(DataIntegrityError):
    """A session's record names an object that is gone (two writers of two upstream versions
    at the same instant, or a hand's delete): the owner fetches ``day`` again (``forget`` it
    first), never answers without it."""

    def __init__(self, message: str, dataset: str, day: dt.date):
        super().__init__(message)
        self.dataset, self.day = dataset, day


class _LRU:
    """A bounded mapping, least recently used first out, by entries and (with ``weigh``) by
    bytes; thread-safe."""

    def __init__(self, limit: int, max_bytes: int | None = None, weigh=None):
        self.limit, self._d, self._lock = limit, OrderedDict(), threading.Lock()
        self.max_bytes, self._weigh, self.bytes = max_bytes, weigh, 0

    def get(self, key):
        with self._lock:
            v = self._d.get(key)
            if v is not None:
                self._d.move_to_end(key)
                return v[0]
            return None

    def put(self, key, value) -> None:
        w = self._weigh(value) if self._weigh is not None else 0
        with self._lock:
            old = self._d.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            self._d[key] = (value, w)
            self.bytes += w
            while len(self._d) > self.limit or (self.max_bytes is not None and self.bytes > self.max_bytes
                                                and len(self._d) > 1):
                _k, (_v, ow) = self._d.popitem(last=False)
                self.bytes -= ow

    def pop(self, key) -> None:
        with self._lock:
            old = self._d.pop(key, None)
            if old is not None:
                self.bytes -= old[1]

    def __len__(self) -> int:
        return len(self._d)


FOOTERS_MAX_BYTES = 64 << 20  # and at most this much of them (a minute session's footer is ~1.5 MiB)


def _footer_bytes(entry: tuple) -> int:
    value = entry[1]
    size = getattr(value, "serialized_size", None)
    if size is not None:
        return int(size) * 2  # parsed, a footer takes about twice its serialized size
    return 64 * (len(value) + 1) if isinstance(value, list) else 64


#: a local year's parsed records by its folder's version: a warm question stats one folder
#: instead of listing it (kept only when the folder was last changed RACY_SECONDS before)
_LISTINGS = _LRU(4096)
RACY_SECONDS = 2.0
_RECORDS = _LRU(RECORDS_MAX)
_FOOTERS = _LRU(FOOTERS_MAX, FOOTERS_MAX_BYTES, _footer_bytes)


class Engine:
    """A store: ``datasets`` (declared by its owner) kept in ``files``. Implements
    :class:`finrpt_providers.store.Store`."""

    def __init__(self, files: Files, datasets: Iterable[Dataset]):
        self.files = files
        self.datasets = {d.name: d for d in datasets}
        self._memo: dict[tuple, tuple[float, dict[dt.date, Record]]] = {}
        self._memo_lock = threading.Lock()
        self._migrated: set[tuple[str, int]] = set()

    @property
    def root(self) -> str:
        return self.files.root

    @property
    def local(self) -> bool:
        """True when the store is on this machine's disk (workers elsewhere cannot reach it)."""
        return self.files.local

    def __repr__(self) -> str:
        return f"Store({self.root!r})"

    def __reduce__(self):
        raise TypeError("a store is not sent anywhere: a worker opens its own from the driver's configuration "
                        "(finrpt_providers.dask.share_config)")

    # -- datasets ---------------------------------------------------------------------------
    def dataset(self, name: str) -> Dataset:
        try:
            return self.datasets[name]
        except KeyError:
            raise ValueError(f"{name!r} is not a dataset of this store ({', '.join(self.datasets)})") from None

    def per_year(self, dataset: str) -> bool:
        return self.dataset(dataset).per_year

    # -- records ----------------------------------------------------------------------------
    def _record(self, dataset: str, day: dt.date, entry: Entry) -> Record | None:
        ident = (self.root, entry.path)
        hit = _RECORDS.get(ident)
        if hit is not None and hit[0] == entry.version:
            return hit[1]
        rec = parse_record(self.files.read(entry.path), dataset, day)
        if rec is not None:
            _RECORDS.put(ident, (entry.version, rec))
        return rec

    def _listed_records(self, dataset: str, year: int) -> dict[dt.date, Entry]:
        out = {}
        for e in self.files.list(record_dir(dataset, year)):
            day = record_day(e.path, dataset, year)  # exactly YYYY-MM-DD.json of that year: no stray file
            if day is not None:
                out[day] = e
        return out

    def records(self, dataset: str, year: int, reuse: bool = False,
                remember: bool = False) -> dict[dt.date, Record]:
        """The year's stored sessions, by date, listed now. A plan (``stored``) ``remember``s its
        listing for the ONE read of the same question that follows (``reuse``: same thread,
        within LISTING_TTL); nothing else reuses a listing."""
        self.dataset(dataset)
        memo_key = (dataset, year, threading.get_ident())
        if reuse:
            with self._memo_lock:
                hit = self._memo.pop(memo_key, None)
            if hit is not None and time.monotonic() - hit[0] < LISTING_TTL:
                return hit[1]
        self._migrate_if_legacy(dataset, year)
        folder = self.files.folder_version(record_dir(dataset, year)) if self.files.local else None
        if folder is not None:
            hit = _LISTINGS.get((self.root, dataset, year))
            if hit is not None and hit[0] == folder[0]:
                return hit[1]  # the folder is as it was when listed (see _LISTINGS)
        listed = self._listed_records(dataset, year)
        todo = [(d, e) for d, e in listed.items()]
        if len(todo) > 8 and not self.files.local:
            with ThreadPoolExecutor(max_workers=min(IO_THREADS, len(todo))) as pool:
                got = list(pool.map(lambda it: (it[0], self._record(dataset, *it)), todo))
        else:
            got = [(d, self._record(dataset, d, e)) for d, e in todo]
        out = {d: r for d, r in sorted(got) if r is not None}
        if folder is not None and time.time() - folder[1] > RACY_SECONDS:
            # trusted next time only if the folder was last changed well before this listing: a
            # change within the timestamp's granularity could leave the same mtime (racy-git's rule)
            _LISTINGS.put((self.root, dataset, year), (folder[0], out))
        now = time.monotonic()
        with self._memo_lock:
            for k in [k for k, (at, _) in self._memo.items() if now - at >= LISTING_TTL]:
                del self._memo[k]
            if remember:
                self._memo[memo_key] = (now, out)
        return out

    def _forget_listing(self, dataset: str, year: int) -> None:
        with self._memo_lock:
            for k in [k for k in self._memo if k[:2] == (dataset, year)]:
                del self._memo[k]

    def stored(self, dataset: str, days: Iterable[dt.date]) -> dict[dt.date, Source]:
        """Sessions of ``days`` the store holds, with their upstream sources."""
        out: dict[dt.date, Source] = {}
        for year, ds in _by_year(days).items():
            recs = self.records(dataset, year, remember=True)
            out.update((d, recs[d].source) for d in ds if d in recs)
        return out

    def years(self, dataset: str) -> list[int]:
        """Years with anything of ``dataset``: records, data, derived copies."""
        self.dataset(dataset)
        found = set()
        for prefix in (f"{SOURCES}/{dataset}", dataset, f"{MERGED}/{dataset}"):
            for e in self.files.list(prefix):
                for part in e.path.split("/"):
                    if part.startswith("year=") and part[5:].isdigit():
                        found.add(int(part[5:]))
                        break
        return sorted(found)

    def days(self, dataset: str, year: int) -> list[dt.date]:
        return sorted(self.records(dataset, year))

    # -- sessions missing upstream -------------------------------------------------------------
    def known_missing(self, dataset: str, days: Iterable[dt.date], today: dt.date,
                      now: dt.datetime | None = None) -> set[dt.date]:
        """Sessions recorded missing upstream that need not be asked for again yet: old ones
        (by ``today``) never, recent ones after RECHECK_SECONDS. A damaged mark counts as none."""
        days = list(days)
        if not days:
            return set()
        now = now or dt.datetime.now(dt.timezone.utc)
        listed = {e.path.rsplit("/", 1)[-1][:-5]: e for e in self.files.list(mark_dir(dataset))
                  if e.path.endswith(".json")}
        out = set()
        for d in days:
            e = listed.get(d.isoformat())
            if e is None:
                continue
            checked = parse_mark(self.files.read(e.path))
            if checked is None:
                continue  # damaged: asked again (verify reports it)
            if (today - d).days > RECENT_DAYS or (now - checked).total_seconds() < RECHECK_SECONDS:
                out.add(d)
        return out

    def record_missing(self, dataset: str, days: Iterable[dt.date]) -> None:
        self.dataset(dataset)
        stamp = json.dumps({"checked_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}).encode()
        for d in days:
            self.files.write(mark_path(dataset, d), stamp)

    # -- writing ----------------------------------------------------------------------------
    def normalise(self, dataset: str, table: pa.Table) -> pa.Table:
        """``table`` in the dataset's declared columns and types, sorted by key then time
        (the sort skipped when the rows already are: it is the costly part)."""
        return normalise(table, self.dataset(dataset))

    def put(self, dataset: str, tables: dict[dt.date, tuple[pa.Table, Source]]) -> None:
        """Each session as its own object, then its record. Safe to run anywhere at once."""
        self.dataset(dataset)
        items = sorted(tables.items())
        if len(items) <= 1 or (self.files.local and len(items) <= 2):
            for d, (t, src) in items:
                self.put_session(dataset, d, t, src)
            return
        with ThreadPoolExecutor(max_workers=min(IO_THREADS if not self.files.local else 4, len(items))) as pool:
            list(pool.map(lambda it: self.put_session(dataset, it[0], *it[1]), items))

    def put_session(self, dataset: str, day: dt.date, table: pa.Table, src: Source) -> None:
        """One session: its object (named after the upstream version), then its record naming
        it. Writers of one version write the same object (idempotent); a writer of another
        version removes the object it replaced only while its own record is the current one,
        and a writer whose record is current but whose object another writer removed writes it
        again: the final record always names an object that exists and that its writer wrote."""
        t = self.normalise(dataset, table)
        ds = self.dataset(dataset)
        if t.num_rows:
            lo, hi = bounds(day, day)
            mm = _min_max_ns(t, ds.time)
            if mm[0] < lo or mm[1] >= hi:
                raise DataIntegrityError(f"{dataset} of {day}: rows of another session are not stored")
        rpath = record_path(dataset, day)
        old = self._current(dataset, day)
        if old is not None and old.source == src and old.rows == t.num_rows and self.files.head(old.data):
            self._forget_listing(dataset, day.year)  # a plan's listing predates it: the read must list again
            return  # this upstream version is stored already (another writer was first): nothing to do
        path = data_path(dataset, day, src)
        rec = Record(src, path, t.num_rows)
        body = json.dumps(rec.to_json(day), sort_keys=True).encode()
        data = _parquet_bytes(t.replace_schema_metadata({META_SOURCE: body}), ds.key, ds.time)
        self.files.write(path, data)
        self.files.write(rpath, body)  # the commit: the record names that object
        self._forget_listing(dataset, day.year)
        now = self._current(dataset, day)
        if now is not None and now.data == path:
            if old is not None and old.data != path:
                again = self._current(dataset, day)  # looked at once more, right before: the window is a call
                if again is None or again.data != old.data:
                    self.files.delete(old.data)  # the version replaced (Hive readers would see both)
            if self.files.head(path) is None:  # removed by a writer of another version meanwhile
                self.files.write(path, data)
        self.files.delete(mark_path(dataset, day))

    def _current(self, dataset: str, day: dt.date) -> Record | None:
        entry = self.files.head(record_path(dataset, day))
        return self._record(dataset, day, entry) if entry is not None else None

    def behind(self, dataset: str, year: int) -> bool:
        """True when ``year``'s derived copy does not hold every stored session as recorded
        (none yet, or built before the latest writes): the next :meth:`merge_year` has work.
        Uses the listing a plan just made when there is one (no request of its own then)."""
        if not self.dataset(dataset).per_year:
            return False
        with self._memo_lock:
            hit = self._memo.get((dataset, year, threading.get_ident()))
        recs = hit[1] if hit is not None and time.monotonic() - hit[0] < LISTING_TTL else self.records(dataset, year)
        if not recs:
            return False
        merged = self._merged(dataset, year)
        if merged is None:
            return True
        held = merged[1]
        return len(held) != len(recs) or any(not matches(held.get(d.isoformat()), r) for d, r in recs.items())

    def merge_year(self, dataset: str, year: int) -> int:
        """(Re)build the year's derived copy (see :meth:`_merge_year`); another writer replacing
        the copy while this one reads it makes this one start again (a few times at most)."""
        for attempt in range(3):
            try:
                return self._merge_year(dataset, year)
            except FileNotFoundError:
                if attempt == 2:
                    raise DataIntegrityError(f"the {dataset} {year} copy kept being replaced while it was rebuilt "
                                             "(other writers): ask again") from None
        return 0

    def _merge_year(self, dataset: str, year: int) -> int:
        """(Re)build the year's derived copy, ordered by key, from the session objects (the
        sessions an existing copy holds as recorded are taken from it, streamed a key range
        at a time). Returns the sessions it holds. A ``session``-layout dataset has none."""
        import pyarrow.parquet as pq

        ds = self.dataset(dataset)
        if not ds.per_year:
            return 0
        recs = self.records(dataset, year)
        path = merged_path(dataset, year)
        if not recs:
            self.files.delete(path)
            return 0
        footer = self._merged(dataset, year)
        held = footer[1] if footer is not None else {}
        keep = {d for d in recs if matches(held.get(d.isoformat()), recs[d])}
        if keep == set(recs) and set(held) == {d.isoformat() for d in recs}:
            return len(recs)  # up to date
        new = sorted(set(recs) - keep)
        def read(d: dt.date):
            try:  # the object this listing's record names, or none: never a newer one under this label
                return d, self._read_object(dataset, d, recs[d], None)
            except _Gone:
                return d, None

        with ThreadPoolExecutor(max_workers=max(1, min(IO_THREADS if not self.files.local else 4, len(new)))) as pool:
            got = list(pool.map(read, new))
        gone = {d for d, t in got if t is None}
        recs = {d: r for d, r in recs.items() if d not in gone}  # replaced meanwhile: not in this copy
        parts = [t.replace_schema_metadata(None) for _d, t in got if t is not None and t.num_rows]
        old_pf = footer[0]() if footer is not None and keep else None
        replaced = sorted(dt.date.fromisoformat(k) for k in held if dt.date.fromisoformat(k) not in keep)
        manifest = {d.isoformat(): {"etag": recs[d].source.etag, "rows": _rows_of(recs[d], held, d, parts, ds)}
                    for d in sorted(recs)}
        schema = ds.schema().with_metadata({META_SESSIONS: json.dumps(manifest, sort_keys=True).encode()})
        want = sum(m["rows"] for m in manifest.values())

        def produce(sink) -> None:
            total = 0
            # lz4: the copy is derived (rebuilt at will) and read on every warm question, where
            # decoding speed is what counts; statistics only where a reader prunes by them
            with pq.ParquetWriter(sink, schema, compression="lz4", write_statistics=[ds.key, ds.time],
                                  use_dictionary=[ds.key]) as w:
                for chunk in _merged_ranges(parts, old_pf, replaced, ds.key, ds.time):
                    total += chunk.num_rows
                    w.write_table(chunk.replace_schema_metadata(schema.metadata), row_group_size=ROW_GROUP)
            if total != want:  # raised before the object is renamed or uploaded: nothing is written
                raise DataIntegrityError(f"the {dataset} {year} copy would hold {total} rows where its sessions "
                                         f"hold {want}: not written; {REPAIR}")

        self.files.write_stream(path, produce)
        return len(recs)

    # -- reading ----------------------------------------------------------------------------
    def _meta(self, path: str, entry: Entry):
        """An object's Parquet footer, parsed once per version of it."""
        import pyarrow.parquet as pq

        ident = (self.root, path)
        hit = _FOOTERS.get(ident)
        if hit is not None and hit[0] == entry.version:
            return hit[1]
        meta = pq.ParquetFile(self.files.reader(path, entry)).metadata
        _FOOTERS.put(ident, (entry.version, meta))
        return meta

    def _footer(self, path: str, entry: Entry):
        """(ParquetFile, its footer) of an object, the footer parsed once per version."""
        import pyarrow.parquet as pq

        meta = self._meta(path, entry)
        return pq.ParquetFile(self.files.reader(path, entry), metadata=meta, pre_buffer=not self.files.local), meta

    def _ranges(self, path: str, entry: Entry, key: str):
        ident = (self.root, path, "ranges")
        hit = _FOOTERS.get(ident)
        if hit is not None and hit[0] == entry.version:
            return hit[1]
        ranges = key_ranges(self._meta(path, entry), key)
        _FOOTERS.put(ident, (entry.version, ranges))
        return ranges

    def _merged(self, dataset: str, year: int):
        """(ParquetFile, manifest, entry) of the year's derived copy, or None when there is
        none or it does not prove what it claims (its rows must add up to its manifest)."""
        path = merged_path(dataset, year)
        entry = self.files.head(path)
        if entry is None:
            return None
        try:
            meta = self._meta(path, entry)
            held = json.loads((meta.metadata or {})[META_SESSIONS])
            if not isinstance(held, dict) or meta.num_rows != sum(int(v["rows"]) for v in held.values()):
                return None
            if not self._proven(dataset, path, entry, held):
                return None
        except (OSError, KeyError, ValueError, TypeError, ProviderError, ImportError) as e:
            log.debug("the %s %s derived copy is not used: %s", dataset, year, type(e).__name__)
            return None
        except Exception:  # noqa: BLE001 - pyarrow's own errors: a damaged copy is only a lost shortcut
            return None
        return (lambda: self._footer(path, entry)[0]), held, entry

    def _proven(self, dataset: str, path: str, entry: Entry, held: dict) -> bool:
        """The copy holds what its manifest says, session by session, in the dataset's schema:
        checked once per version of it (its time column read whole), the verdict cached."""
        import pyarrow.compute as pc

        ident = (self.root, path, "proven")
        hit = _FOOTERS.get(ident)
        if hit is not None and hit[0] == entry.version:
            return hit[1]
        ds = self.dataset(dataset)
        pf, _meta = self._footer(path, entry)
        ok = pf.schema_arrow.remove_metadata().equals(ds.schema())
        if ok:
            t = pf.read(columns=[ds.time])
            by_session = pc.value_counts(session_dates(t, ds.time)).to_pylist()
            counts = {str(v["values"]): int(v["counts"]) for v in by_session}
            ok = counts == {k: int(v["rows"]) for k, v in held.items() if int(v["rows"])}
        _FOOTERS.put(ident, (entry.version, ok))
        return ok

    def _read_session(self, dataset: str, day: dt.date, rec: Record, wanted: list[str] | None) -> pa.Table:
        """Rows (of ``wanted`` keys, all when None) of one session's object, checked against
        its record: its own embedded record, its row count, every row on that session. An
        object gone because another writer committed a newer record meanwhile is read from
        that record instead (a few times at most); gone for good, it is an error."""
        for _ in range(3):
            try:
                return self._read_object(dataset, day, rec, wanted)
            except _Gone as gone:
                entry = self.files.head(record_path(dataset, day))
                now = self._record(dataset, day, entry) if entry is not None else None
                if now is None or now.data == rec.data:
                    raise SessionGone(str(gone), dataset, day) from None
                rec = now
        return self._read_object(dataset, day, rec, wanted)

    def _read_object(self, dataset: str, day: dt.date, rec: Record, wanted: list[str] | None) -> pa.Table:
        import pyarrow as pa

        ds = self.dataset(dataset)
        shown = self.files.shown(rec.data)
        entry = self.files.head(rec.data)
        if entry is None:
            raise _Gone(f"the store's {dataset} object of {day} ({shown}) is missing although its record names it: "
                        f"{REPAIR} (it fetches the session again)")
        try:
            pf, meta = self._footer(rec.data, entry)
            if not pf.schema_arrow.remove_metadata().equals(ds.schema()):
                found = ", ".join(f"{f.name} {f.type}" for f in pf.schema_arrow)
                raise DataIntegrityError(f"the store's {shown} has another schema than {dataset}'s ({found}): "
                                         f"{REPAIR}")
            inner = (meta.metadata or {}).get(META_SOURCE)
            if inner is not None:
                own = json.loads(inner)
                if own.get("etag") != rec.source.etag or own.get("size") != rec.source.size:
                    raise DataIntegrityError(f"the store's {shown} is another upstream version than its record "
                                             f"says: {REPAIR}")
            if rec.rows is not None and meta.num_rows != rec.rows:
                raise DataIntegrityError(f"the store's {shown} holds {meta.num_rows} rows, its record {rec.rows}: "
                                         f"{REPAIR}")
            if wanted is None:
                t = pf.read()
            else:
                groups = groups_admitting(self._ranges(rec.data, entry, ds.key), wanted)
                t = pf.read_row_groups(groups) if groups else ds.schema().empty_table()
                t = only_keys(t, wanted, ds.key)
        except (DataIntegrityError, ProviderError):
            raise
        except FileNotFoundError:
            raise _Gone(f"the store's {dataset} object of {day} vanished while it was read (another process "
                        "repaired or replaced it): ask again") from None
        except (OSError, pa.ArrowException, ValueError, KeyError, IndexError) as e:
            _FOOTERS.pop((self.root, rec.data))
            raise DataIntegrityError(f"the store's {shown} cannot be read ({type(e).__name__}: "
                                     f"{redact.scrub(str(e))[:120]}): {REPAIR}") from None
        if t.num_rows:
            lo, hi = bounds(day, day)
            mm = _min_max_ns(t, ds.time)
            if mm[0] < lo or mm[1] >= hi:
                raise DataIntegrityError(f"the store's {shown} holds rows of another session than {day}: {REPAIR}")
        return t

    def read_tickers(self, dataset: str, days: Iterable[dt.date], tickers: list[str] | None) -> pa.Table:
        """The stored rows of ``tickers`` (every key when None) on ``days``, sorted by key then
        time. Only what records name is read; the derived copy serves the sessions it holds
        as recorded (only its row groups whose key range meets the question's)."""
        import pyarrow as pa

        ds = self.dataset(dataset)
        wanted = None if tickers is None else sorted(set(tickers))
        tables: list[pa.Table] = []
        for year, want in _by_year(sorted(set(days))).items():
            recs = self.records(dataset, year, reuse=True)
            got = [d for d in want if d in recs]
            if not got:
                continue
            from_merged: list[dt.date] = []
            if ds.per_year:
                merged = self._merged(dataset, year)
                if merged is not None:
                    opener, held, entry = merged
                    from_merged = [d for d in got if matches(held.get(d.isoformat()), recs[d])]
                    if wanted is None and len(from_merged) * 2 < len(held):
                        from_merged = []  # a cross-section of a few sessions: their own objects are smaller
                    if from_merged:
                        try:
                            pf = opener()
                            if wanted is None:
                                t = pf.read()
                            else:
                                groups = groups_admitting(self._ranges(merged_path(dataset, year), entry, ds.key),
                                                          wanted)
                                t = pf.read_row_groups(groups) if groups else ds.schema().empty_table()
                                t = only_keys(t, wanted, ds.key)
                            tables.append(_keep_sessions(t.replace_schema_metadata(None), from_merged, ds.time))
                        except (OSError, pa.ArrowException, ValueError, ProviderError):
                            from_merged = []  # a damaged derived copy is only a lost shortcut
            rest = [d for d in got if d not in set(from_merged)]
            if len(rest) > 1 and not self.files.local:
                with ThreadPoolExecutor(max_workers=min(IO_THREADS, len(rest))) as pool:
                    parts = list(pool.map(lambda d: self._read_session(dataset, d, recs[d], wanted), rest))
            else:
                parts = [self._read_session(dataset, d, recs[d], wanted) for d in rest]
            tables += [p.replace_schema_metadata(None) for p in parts if p.num_rows]
        tables = [t for t in tables if t.num_rows]
        if not tables:
            return ds.schema().empty_table()
        out = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        return out if _is_sorted(out, ds.key, ds.time) else _sort_rows(out, ds.key, ds.time)

    def read_ticker(self, dataset: str, days: Iterable[dt.date], ticker: str) -> pa.Table:
        return self.read_tickers(dataset, days, [ticker])

    def read_days(self, dataset: str, days: Iterable[dt.date]) -> pa.Table:
        """Every stored row of ``days``: a whole-market cross-section."""
        return self.read_tickers(dataset, days, None)

    # -- forgetting, checking, repairing ------------------------------------------------------
    def forget(self, dataset: str, days: Iterable[dt.date]) -> None:
        """Drop sessions (record first, then the object it named) so they are fetched again."""
        for d in days:
            rec = self._current(dataset, d)
            self.files.delete(record_path(dataset, d))
            now = self._current(dataset, d)  # a writer may have stored it again meanwhile
            if rec is not None and (now is None or now.data != rec.data):
                self.files.delete(rec.data)
            self._forget_listing(dataset, d.year)

    def forget_footer(self, path: str) -> None:
        _FOOTERS.pop((self.root, path))

    def verify(self, dataset: str, repair: bool = False) -> list[Problem]:
        """Read back everything of ``dataset``; with ``repair``, fix what can be fixed here.
        See :func:`finrpt_providers.store.verify.verify`."""
        from .verify import verify

        return verify(self, dataset, repair)

    # -- the previous layout --------------------------------------------------------------------
    def _migrate_if_legacy(self, dataset: str, year: int) -> None:
        if not isinstance(self.files, LocalFiles) or (dataset, year) in self._migrated:
            return
        if (self.files.base / year_dir(dataset, year) / "_sources.json").exists():
            from .verify import migrate_year

            migrate_year(self, dataset, year)
        self._migrated.add((dataset, year))


# -- helpers --------------------------------------------------------------------------------------
def normalise(table: pa.Table, ds: Dataset) -> pa.Table:
    """``table`` in ``ds``'s declared columns and types (the time column as UTC nanoseconds),
    sorted by key then time (the sort skipped when the rows already are: it is the costly part)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    schema = ds.schema()
    cols = []
    for f in schema:
        c = table.column(f.name)
        if c.type != f.type:
            c = pc.cast(c, f.type)
        cols.append(c)
    out = pa.Table.from_arrays(cols, schema=schema)
    if not _is_sorted(out, ds.key, ds.time):
        out = _sort_rows(out, ds.key, ds.time)
    return out


def _rows_of(rec: Record, held: dict, d: dt.date, parts: list, ds: Dataset) -> int:
    if matches(held.get(d.isoformat()), rec):
        return int(held[d.isoformat()]["rows"])
    if rec.rows is not None:
        return rec.rows
    import pyarrow as pa
    import pyarrow.compute as pc

    return sum(int(pc.sum(pc.equal(session_dates(p, ds.time), pa.scalar(d, pa.date32()))).as_py() or 0)
               for p in parts)


def _by_year(days: Iterable[dt.date]) -> dict[int, list[dt.date]]:
    out: dict[int, list[dt.date]] = {}
    for d in days:
        out.setdefault(d.year, []).append(d)
    return out


def _parquet_bytes(t: pa.Table, key: str, time_col: str) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    # lz4 (encoded in about half zstd's time, decoded faster, ~13% larger); dictionary for the
    # keys only (on prices it costs time and bytes); statistics where readers prune
    pq.write_table(t, sink, compression="lz4", row_group_size=ROW_GROUP, write_statistics=[key, time_col],
                   use_dictionary=[key])
    return sink.getvalue().to_pybytes()


def _min_max_ns(t: pa.Table, time_col: str) -> tuple[int, int]:
    import pyarrow.compute as pc

    mm = pc.min_max(t.column(time_col).cast("int64")).as_py()
    return mm["min"], mm["max"]


def _is_sorted(table: pa.Table, key: str, time_col: str) -> bool:
    """True when rows are ordered by key then time (upstream files are): two vectorised
    comparisons of each row with the next, no sort."""
    import pyarrow.compute as pc

    n = table.num_rows
    if n < 2:
        return True
    k, w = table.column(key), table.column(time_col).cast("int64")
    a, b = k.slice(0, n - 1), k.slice(1)
    if not pc.all(pc.less_equal(a, b)).as_py():
        return False
    return bool(pc.all(pc.or_(pc.not_equal(a, b), pc.less(w.slice(0, n - 1), w.slice(1)))).as_py())


def _ranks(t: pa.Table, key: str, time_col: str):
    import numpy as np
    import pyarrow.compute as pc

    enc = pc.dictionary_encode(t.column(key)).combine_chunks()
    rank_of = np.empty(len(enc.dictionary), dtype=np.int64)
    rank_of[pc.array_sort_indices(enc.dictionary).to_numpy()] = np.arange(len(enc.dictionary))
    rank = rank_of[enc.indices.to_numpy(zero_copy_only=False)]
    ws = t.column(time_col).cast("int64").to_numpy()
    return rank, ws


def _sort_rows(t: pa.Table, key: str, time_col: str) -> pa.Table:
    """``t`` by key then time: the keys as ranks (a dictionary sorted once), then one integer
    sort (much cheaper than sorting strings row by row)."""
    import numpy as np

    rank, ws = _ranks(t, key, time_col)
    # pieces come as sorted runs, usually oldest first: a stable sort by key alone then keeps
    # each key's rows in time (checked; otherwise sort by both)
    order = np.argsort(rank, kind="stable")
    r, w = rank[order], ws[order]
    if not np.all((r[1:] != r[:-1]) | (w[1:] > w[:-1])):
        order = np.lexsort((ws, rank))
    return t.take(order)


def _keep_sessions(t: pa.Table, ds: list[dt.date], time_col: str) -> pa.Table:
    """Rows of ``t`` on the sessions ``ds`` (sorted): a range test when they are every session
    from the first to the last (a year copy holds nothing between sessions), else a set test."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from .. import calendar

    if not t.num_rows:
        return t
    lo, hi = bounds(ds[0], ds[-1])
    if ds == calendar.sessions(ds[0], ds[-1]):
        mm = _min_max_ns(t, time_col)
        if lo <= mm[0] and mm[1] < hi:
            return t
        ws = t.column(time_col).cast("int64")
        return t.filter(pc.and_(pc.greater_equal(ws, lo), pc.less(ws, hi)))
    local = session_dates(t, time_col)
    return t.filter(pc.is_in(local, value_set=pa.array(ds, type=pa.date32())))


def _drop_sessions(t: pa.Table, drop: pa.Array, time_col: str) -> pa.Table:
    import pyarrow.compute as pc

    mask = pc.is_in(session_dates(t, time_col), value_set=drop)
    return t.filter(pc.invert(mask)) if pc.any(mask).as_py() else t


def key_ranges(meta: Any, key: str) -> list[tuple[str, str] | None]:
    """Per row group of a key-sorted Parquet file (its ``FileMetaData``), the (min, max) key
    from the statistics, or None where there are none."""
    col = meta.schema.to_arrow_schema().get_field_index(key)
    ranges = []
    for i in range(meta.num_row_groups):
        st = meta.row_group(i).column(col).statistics
        ranges.append((st.min, st.max) if st is not None and st.has_min_max else None)
    return ranges


def groups_admitting(ranges: list[tuple[str, str] | None], wanted: list[str]) -> list[int]:
    """The row groups whose key range admits one of ``wanted`` (sorted, unique)."""
    groups = []
    for i, r in enumerate(ranges):
        if r is None:
            groups.append(i)
            continue
        k = bisect.bisect_left(wanted, r[0])
        if k < len(wanted) and wanted[k] <= r[1]:
            groups.append(i)
    return groups


def only_keys(t: pa.Table, wanted: list[str], key: str) -> pa.Table:
    import pyarrow as pa
    import pyarrow.compute as pc

    if not t.num_rows:
        return t
    if len(wanted) == 1:
        return t.filter(pc.equal(t.column(key), wanted[0]))
    return t.filter(pc.is_in(t.column(key), value_set=pa.array(wanted, pa.string())))


def _merged_ranges(parts: list[pa.Table], old: Any, replaced: list[dt.date], key: str,
                   time_col: str) -> Iterator[pa.Table]:
    """Sorted chunks (by key, then time) merging ``parts`` (new sessions, each sorted) with
    the ``old`` copy (a ParquetFile sorted by key; rows of ``replaced`` sessions dropped), one
    key range at a time: memory is the new sessions and one range, never the whole year twice."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    old_groups = old.metadata.num_row_groups if old is not None else 0
    universe: list[str] = []
    ranks: list[Any] = []
    total = sum(p.num_rows for p in parts)
    cuts: set[str] = set()
    if total:
        every = pa.chunked_array([c for t in parts for c in t.column(key).chunks])
        sorted_new = pc.unique(every).sort()
        universe = sorted_new.to_pylist()
        ranks = [np.asarray(pc.index_in(p.column(key), value_set=sorted_new).to_numpy(zero_copy_only=False))
                 for p in parts]
        step = max(1, total // MERGE_STEP)
        if step > 1:
            k = max(1, len(universe) // step)
            cuts.update(universe[i] for i in range(k, len(universe), k))
    ranges: list[tuple[Any, Any]] = []
    if old_groups:
        ranges = [r if r is not None else (None, None) for r in key_ranges(old.metadata, key)]
        if any(r[0] is None for r in ranges):
            ranges = []  # no statistics: read the old copy whole, once
        rows, since = 0, 0
        for i, r in enumerate(ranges):
            rows += old.metadata.row_group(i).num_rows
            if rows - since >= MERGE_STEP:
                cuts.add(r[1])
                since = rows
    drop = pa.array(replaced, type=pa.date32())
    pending_old: list[pa.Table] = []
    g = 0
    pos = [0] * len(parts)

    def take_new(upto: Any) -> list[pa.Table]:
        out = []
        last = len(universe) - 1 if upto is None else bisect.bisect_right(universe, upto) - 1
        for k, p in enumerate(parts):
            end = int(np.searchsorted(ranks[k], last, side="right"))
            if end > pos[k]:
                out.append(p.slice(pos[k], end - pos[k]))
                pos[k] = end
        return out

    def old_upto(upto: Any) -> list[pa.Table]:
        nonlocal g
        if old is None or not old_groups:
            return []
        if not ranges:
            if g == 0:
                pending_old.append(old.read().replace_schema_metadata(None))
                g = old_groups
        else:
            while g < old_groups and (upto is None or ranges[g][0] <= upto):
                pending_old.append(old.read_row_groups([g]).replace_schema_metadata(None))
                g += 1
        out, keep = [], []
        for t in pending_old:
            end = t.num_rows if upto is None else int(pc.sum(pc.less_equal(t.column(key), upto)).as_py() or 0)
            out.append(t.slice(0, end))
            if end < t.num_rows:
                keep.append(t.slice(end))
        pending_old[:] = keep
        return out

    for upto in [*sorted(cuts), None]:
        pieces = old_upto(upto)
        if replaced:
            pieces = [_drop_sessions(t, drop, time_col) for t in pieces]
        pieces = [t for t in [*pieces, *take_new(upto)] if t.num_rows]
        if pieces:
            yield pieces[0] if len(pieces) == 1 else _sort_rows(pa.concat_tables(pieces), key, time_col)
