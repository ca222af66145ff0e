"""The store on object storage (``s3://``, ``file://``, what pyarrow or fsspec opens): safe
with many writers on many machines, without a lock anywhere.

Same Hive layout as the local store's ``session`` layout, for every dataset::

    {url}/{prefix}/{dataset}/year=2026/date=2026-03-02/data.parquet    one session: ONE object
    {url}/{prefix}/_sources/{dataset}/year=2026/2026-03-02.json         its source record
    {url}/{prefix}/_merged/{dataset}/year=2026/data.parquet            derived: the year, by ticker
    {url}/{prefix}/_state/{dataset}/missing/2026-03-07.json            a session found missing upstream

The rules that make many writers safe:

* **A session is written once, as one object** (a single PUT; a multipart upload is
  visible only when complete), its source record (upstream key, ETag, size) both in
  the object's Parquet metadata and, after it, in its own small object under
  ``_sources/`` (outside the dataset's directory, so a reader pointed at the dataset
  finds Parquet files only). The record is the commit mark: a session counts as stored when both exist. A writer that
  dies between the two leaves a complete data object and no record: the session is
  fetched again (Hive readers see the complete object: a session fully or not at all).
* **Nothing is read-modified-written.** Two writers of the same session write the same
  bytes from the same upstream file (at worst the work is done twice); every other
  object is per session. What is shared (the year merged by ticker) is DERIVED: rebuilt
  from the session objects, carrying in its own metadata which session versions it
  holds; a reader uses it only for sessions whose record matches, and reads the session
  objects for the rest. It lives outside the dataset's directory, so Hive readers
  (DuckDB, Polars, Spark, pyarrow.dataset, dask) never see a row twice.
* ``verify`` reads every object back: record against data, rows of the session only,
  the bar rules; ``--repair`` removes what is damaged so a sync fetches it again.

Credentials are the store's own (``FINRPT_STORE_S3_*``), never a data source's.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from . import redact
from .errors import ConfigurationError, DataIntegrityError, ProviderError, ProviderUnavailable
from .store import RECENT_DAYS, RECHECK_SECONDS, ROW_GROUP, SESSION, YEAR, Problem, Source

if TYPE_CHECKING:
    import pyarrow as pa

    from .config import Config

log = redact.logger(__name__)
RECORD = "record"  # the key of a session's record in a scan
DATA = "data.parquet"
SOURCES = "_sources"
MERGED = "_merged"
STATE = "_state"
META_SOURCE = b"finrpt.source"
META_INPUTS = b"finrpt.inputs"
_IO_THREADS = 16
#: up to this many row groups of a merged copy are read one request each; more, coalesced
FEW_GROUPS = 8
#: seconds a year's listing may serve the one read that follows it in the same thread
LISTING_TTL = 2.0


#: parsed source records by (store URL, path), checked against the object's size and mtime:
#: shared by every ObjectStore of the process, so a warm store costs its listings only
_RECORDS: dict[tuple[str, str], tuple[tuple, Source]] = {}
_RECORDS_MAX = 500_000  # ~20 years x 3 datasets x 252 sessions, many times over
_FOOTERS: dict[tuple[str, str], tuple[tuple, tuple]] = {}  # merged copies' parsed footers, by version
_FILESYSTEMS: dict[tuple, Any] = {}  # one pyarrow filesystem per location and credentials
_CACHE_LOCK = threading.Lock()


def is_url(location: Any) -> bool:
    return isinstance(location, str) and "://" in location


def filesystem(url: str, config: "Config | None") -> tuple[Any, str]:
    """(a pyarrow filesystem, the base path in it) for ``url``. ``s3://`` uses the store's own
    settings (FINRPT_STORE_S3_*); other schemes pyarrow's own, then fsspec's."""
    import pyarrow.fs as pafs

    scheme, rest = url.split("://", 1)
    if scheme == "s3":
        opts: dict[str, Any] = {}
        if config is not None:
            endpoint = config.value("FINRPT_STORE_S3_ENDPOINT")
            if endpoint:
                opts["scheme"], opts["endpoint_override"] = endpoint.split("://", 1)
            key, secret = config.get("FINRPT_STORE_S3_ACCESS_KEY"), config.get("FINRPT_STORE_S3_SECRET_KEY")
            if bool(key) != bool(secret):
                raise ConfigurationError("an s3:// store needs both FINRPT_STORE_S3_ACCESS_KEY and "
                                         "FINRPT_STORE_S3_SECRET_KEY (or neither: the AWS credential chain)")
            if key:
                redact.register(key, secret)
                opts["access_key"], opts["secret_key"] = key, secret
            opts["region"] = config.value("FINRPT_STORE_S3_REGION") or "us-east-1"
        opts.setdefault("connect_timeout", 10)
        opts.setdefault("request_timeout", 60)
        ident = tuple(sorted(opts.items()))
        with _CACHE_LOCK:
            fs = _FILESYSTEMS.get(ident)
            if fs is None:
                fs = _FILESYSTEMS[ident] = pafs.S3FileSystem(**opts)
        return fs, rest.strip("/")
    if scheme == "file":
        return pafs.LocalFileSystem(), "/" + rest.lstrip("/")
    try:
        fs, path = pafs.FileSystem.from_uri(url)
        return fs, path.rstrip("/")
    except (ValueError, OSError, TypeError):
        pass
    try:
        import fsspec
        from pyarrow.fs import FSSpecHandler, PyFileSystem
    except ImportError:
        raise ConfigurationError(f"FINRPT_PROVIDERS_CACHE_DIR={scheme}://... needs fsspec for that scheme: pip "
                                 "install 'finrpt-providers[dask]' (and the fsspec driver of the scheme)") from None
    try:
        fs = fsspec.filesystem(scheme)
    except (ImportError, ValueError) as e:
        raise ConfigurationError(f"no filesystem for {scheme}:// ({e}): install its fsspec driver, or use s3:// or "
                                 "a local path") from None
    return PyFileSystem(FSSpecHandler(fs)), rest.rstrip("/")


def shown(url: str) -> str:
    """``url`` fit to print (no credentials in it, ever)."""
    return redact.scrub(url.split("@", 1)[-1] if "@" in url.split("/", 3)[2] else url) if "://" in url else url


class ObjectStore:
    """The store's interface (as :class:`~finrpt_providers.store.Store`) on object storage."""

    remote = True

    def __init__(self, url: str, prefix: str, layouts: dict[str, str], config: "Config | None" = None,
                 fs: Any = None):
        self.url = url.rstrip("/")
        self.root = shown(self.url)
        self.prefix = prefix
        bad = {d: v for d, v in layouts.items() if v not in (YEAR, SESSION)}
        if bad:
            raise ValueError(f"store layouts must be {YEAR!r} or {SESSION!r}: {bad}")
        self.layouts = dict(layouts)
        if fs is None:
            fs, base = filesystem(self.url, config)
        else:
            base = self.url.split("://", 1)[1].strip("/")
        self.fs = fs
        self.base = f"{base}/{prefix}"
        self._uploads_whole = _uploads_whole(fs)
        self._memo: dict[tuple[str, int, int], tuple[float, dict[dt.date, Source]]] = {}

    def __repr__(self) -> str:
        return f"ObjectStore({self.root!r}, {self.prefix!r})"

    def __reduce__(self):  # a store sent to a Dask worker is rebuilt there from the location only
        return (_reopen, (self.url, self.prefix, self.layouts))

    # -- layout -------------------------------------------------------------------------
    def per_year(self, dataset: str) -> bool:
        try:
            return self.layouts[dataset] == YEAR
        except KeyError:
            raise ValueError(f"{dataset!r} is not a dataset of this store ({', '.join(self.layouts)})") from None

    def _year(self, dataset: str, year: int) -> str:
        return f"{self.base}/{dataset}/year={year:04d}"

    def _session(self, dataset: str, day: dt.date) -> str:
        return f"{self._year(dataset, day.year)}/date={day.isoformat()}"

    def data_path(self, dataset: str, day: dt.date) -> str:
        return f"{self._session(dataset, day)}/{DATA}"

    def merged_path(self, dataset: str, year: int) -> str:
        return f"{self.base}/{MERGED}/{dataset}/year={year:04d}/data.parquet"

    def _record_path(self, dataset: str, day: dt.date) -> str:
        return f"{self.base}/{SOURCES}/{dataset}/year={day.year:04d}/{day.isoformat()}.json"

    def _missing_path(self, dataset: str, day: dt.date) -> str:
        return f"{self.base}/{STATE}/{dataset}/missing/{day.isoformat()}.json"

    # -- I/O helpers ----------------------------------------------------------------------
    def _err(self, e: BaseException, what: str) -> ProviderError:
        return ProviderUnavailable(f"the store at {self.root} cannot {what} ({type(e).__name__}: "
                                   f"{redact.scrub(str(e))[:200]}): check FINRPT_PROVIDERS_CACHE_DIR and the "
                                   "FINRPT_STORE_S3_* settings")

    def _list(self, path: str) -> list:
        import pyarrow.fs as pafs

        try:
            return self.fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
        except OSError as e:
            raise self._err(e, f"list {path}") from None

    def _read_bytes(self, path: str) -> bytes | None:
        try:
            with self.fs.open_input_stream(path) as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as e:
            if "not found" in str(e).lower() or "NoSuchKey" in str(e):
                return None
            raise self._err(e, f"read {path}") from None

    def _put_object(self, path: str, write) -> None:
        """One object at ``path``, seen whole or not at all: on object storage a single upload
        (a multipart one is visible only when complete); on a filesystem with directories, its
        parent made first and the object written under a temporary name, then renamed."""
        try:
            if self._uploads_whole:
                with self.fs.open_output_stream(path) as f:
                    write(f)
                return
            parent = path.rsplit("/", 1)[0]
            self.fs.create_dir(parent, recursive=True)
            tmp = f"{parent}/.{path.rsplit('/', 1)[1]}.{uuid.uuid4().hex}.tmp"  # no reader globs it
            try:
                with self.fs.open_output_stream(tmp) as f:
                    write(f)
                self.fs.move(tmp, path)
            except BaseException:
                self._delete(tmp)
                raise
        except OSError as e:
            raise self._err(e, f"write {path}") from None

    def _write_bytes(self, path: str, data: bytes) -> None:
        self._put_object(path, lambda f: f.write(data))

    def _delete(self, path: str) -> None:
        try:
            self.fs.delete_file(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            if "not found" not in str(e).lower():
                raise self._err(e, f"delete {path}") from None

    # -- what is stored -------------------------------------------------------------------
    def _scan(self, dataset: str, year: int) -> dict[dt.date, dict[str, Any]]:
        """Two listings of the year: per session, its data object and its record (FileInfo)."""
        out: dict[dt.date, dict[str, Any]] = {}
        with ThreadPoolExecutor(max_workers=2) as pool:  # the two listings at once: one round trip's wait
            sources = pool.submit(self._list, f"{self.base}/{SOURCES}/{dataset}/year={year:04d}")
            data = self._list(self._year(dataset, year))
            records = sources.result()
        for info in data:
            parts = info.path.rsplit("/", 2)
            if len(parts) < 3 or not parts[1].startswith("date=") or parts[2] != DATA:
                continue
            try:
                out.setdefault(dt.date.fromisoformat(parts[1][5:]), {})[DATA] = info
            except ValueError:
                continue
        for info in records:
            name = info.path.rsplit("/", 1)[-1]
            if not name.endswith(".json"):
                continue
            try:
                out.setdefault(dt.date.fromisoformat(name[:-5]), {})[RECORD] = info
            except ValueError:
                continue
        return out

    def _cached_record(self, info) -> Source | None:
        with _CACHE_LOCK:
            hit = _RECORDS.get((self.url, info.path))
        return hit[1] if hit is not None and hit[0] == (info.size, info.mtime_ns) else None

    def _record(self, info) -> Source | None:
        """A session's source record, parsed once per object version."""
        hit = self._cached_record(info)
        if hit is not None:
            return hit
        raw = self._read_bytes(info.path)
        if raw is None:
            return None
        try:
            d = json.loads(raw)
            src = Source(str(d["key"]), str(d["etag"]), int(d["size"]))
        except (ValueError, KeyError, TypeError):
            return None  # a damaged record: the session counts as not stored (verify names it)
        with _CACHE_LOCK:
            if len(_RECORDS) >= _RECORDS_MAX:
                _RECORDS.clear()
            _RECORDS[(self.url, info.path)] = ((info.size, info.mtime_ns), src)
        return src

    def _stored_year(self, dataset: str, year: int, reuse: bool = False) -> dict[dt.date, Source]:
        """The year's stored sessions (data object and record both there), listed now. The
        listing is left for ONE read that follows in the same thread within LISTING_TTL
        seconds (``reuse``: a question's plan and its read list once); this object's own
        writes drop it."""
        import time

        memo_key = (dataset, year, threading.get_ident())
        if reuse:
            with _CACHE_LOCK:
                hit = self._memo.pop(memo_key, None)
            if hit is not None and time.monotonic() - hit[0] < LISTING_TTL:
                return dict(hit[1])
        scan = self._scan(dataset, year)
        both = [(d, objs[RECORD]) for d, objs in sorted(scan.items()) if RECORD in objs and DATA in objs]
        recs = [(d, self._cached_record(info)) for d, info in both]
        todo = [(d, info) for (d, info), (_, src) in zip(both, recs) if src is None]
        if todo:
            with ThreadPoolExecutor(max_workers=min(_IO_THREADS, len(todo))) as pool:
                found = dict(pool.map(lambda item: (item[0], self._record(item[1])), todo))
            recs = [(d, src if src is not None else found.get(d)) for d, src in recs]
        out = {d: src for d, src in recs if src is not None}
        now = time.monotonic()
        with _CACHE_LOCK:
            for k in [k for k, (at, _) in self._memo.items() if now - at >= LISTING_TTL]:
                del self._memo[k]  # left by a plan no read followed
            self._memo[memo_key] = (now, out)
        return dict(out)

    def _forget_listing(self, dataset: str, year: int) -> None:
        with _CACHE_LOCK:
            for k in [k for k in self._memo if k[:2] == (dataset, year)]:
                del self._memo[k]

    def stored(self, dataset: str, days: Iterable[dt.date]) -> dict[dt.date, Source]:
        want = sorted(set(days))
        out: dict[dt.date, Source] = {}
        for year in sorted({d.year for d in want}):
            have = self._stored_year(dataset, year)
            out.update((d, have[d]) for d in want if d in have)
        return out

    def years(self, dataset: str) -> list[int]:
        import pyarrow.fs as pafs

        try:
            infos = self.fs.get_file_info(pafs.FileSelector(f"{self.base}/{dataset}", allow_not_found=True))
        except OSError as e:
            raise self._err(e, "list its years") from None
        out = []
        for info in infos:
            name = info.path.rsplit("/", 1)[-1]
            if name.startswith("year=") and name[5:].isdigit():
                out.append(int(name[5:]))
        return sorted(out)

    def days(self, dataset: str, year: int) -> list[dt.date]:
        return sorted(self._stored_year(dataset, year))

    def known_missing(self, dataset: str, days: Iterable[dt.date], today: dt.date,
                      now: dt.datetime | None = None) -> set[dt.date]:
        now = now or dt.datetime.now(dt.timezone.utc)
        days = list(days)
        if not days:
            return set()
        listed = {i.path.rsplit("/", 1)[-1][:-5] for i in self._list(f"{self.base}/{STATE}/{dataset}/missing")}
        out = set()
        for d in days:
            if d.isoformat() not in listed:
                continue
            if (today - d).days > RECENT_DAYS:
                out.add(d)
                continue
            raw = self._read_bytes(self._missing_path(dataset, d))
            try:
                checked = dt.datetime.fromisoformat(json.loads(raw)["checked_at"])
            except (TypeError, ValueError, KeyError):
                continue
            if (now - checked).total_seconds() < RECHECK_SECONDS:
                out.add(d)
        return out

    def record_missing(self, dataset: str, days: Iterable[dt.date]) -> None:
        stamp = dt.datetime.now(dt.timezone.utc).isoformat()
        for d in days:
            self._write_bytes(self._missing_path(dataset, d), json.dumps({"checked_at": stamp}).encode())

    # -- writing ----------------------------------------------------------------------------
    def put(self, dataset: str, tables: dict[dt.date, tuple["pa.Table", Source]]) -> None:
        """Each session as its own object, then its record. Safe to run anywhere at once."""
        items = sorted(tables.items())
        if len(items) == 1:
            self.put_session(dataset, items[0][0], *items[0][1])
            return
        with ThreadPoolExecutor(max_workers=min(_IO_THREADS, len(items))) as pool:
            list(pool.map(lambda it: self.put_session(dataset, it[0], *it[1]), items))

    def put_session(self, dataset: str, day: dt.date, table: "pa.Table", src: Source) -> None:
        import pyarrow.parquet as pq

        from .store import to_store_table

        self.per_year(dataset)  # a bad dataset fails before writing
        record = json.dumps({"key": src.key, "etag": src.etag, "size": src.size, "session": day.isoformat()})
        t = to_store_table(table)
        t = t.replace_schema_metadata({**(t.schema.metadata or {}), META_SOURCE: record.encode()})
        self._put_object(self.data_path(dataset, day), lambda f: pq.write_table(
            t, f, compression="zstd", row_group_size=ROW_GROUP, write_statistics=True))
        self._write_bytes(self._record_path(dataset, day), record.encode())
        self._forget_listing(dataset, day.year)
        self._delete(self._missing_path(dataset, day))

    def merge_year(self, dataset: str, year: int) -> int:
        """Rebuild the year's ticker-ordered copy from its session objects (a derived object:
        its metadata says which session versions it holds). Returns the sessions in it."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from .store import _sort_rows

        have = self._stored_year(dataset, year)
        if not have:
            return 0
        days = sorted(have)
        with ThreadPoolExecutor(max_workers=min(_IO_THREADS, len(days))) as pool:
            tables = list(pool.map(lambda d: self._read_data(dataset, d), days))
        t = _sort_rows(pa.concat_tables([x.replace_schema_metadata(None) for x in tables]))
        inputs = json.dumps({d.isoformat(): have[d].etag for d in days})
        t = t.replace_schema_metadata({META_INPUTS: inputs.encode()})
        self._put_object(self.merged_path(dataset, year), lambda f: pq.write_table(
            t, f, compression="zstd", row_group_size=ROW_GROUP, write_statistics=True))
        return len(days)

    # -- reading ----------------------------------------------------------------------------
    def _read_data(self, dataset: str, day: dt.date, tickers: list[str] | None = None) -> "pa.Table":
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = self.data_path(dataset, day)
        try:
            return pq.read_table(path, filesystem=self.fs,
                                 filters=[("ticker", "in", tickers)] if tickers is not None else None)
        except FileNotFoundError:
            # listed as stored a moment ago: never answer as if the session had no rows
            raise DataIntegrityError(f"the store's {dataset} object of {day} vanished while it was read (another "
                                     "process repaired or removed it): ask again, or run `finrpt-providers sync` "
                                     "for that session") from None
        except (OSError, pa.ArrowException, ValueError) as e:
            raise DataIntegrityError(f"the store's {self.root}/{path.split('/', 1)[-1]} cannot be read "
                                     f"({type(e).__name__}): run `finrpt-providers verify --repair`") from None

    def _merged_footer(self, dataset: str, year: int) -> tuple | None:
        """(FileInfo, metadata, the inputs it holds, ticker range per row group) of the year's
        merged copy: one HEAD per call, the footer fetched and parsed once per object version."""
        import pyarrow.fs as pafs
        import pyarrow.parquet as pq

        path = self.merged_path(dataset, year)
        try:
            info = self.fs.get_file_info(path)
        except OSError:
            return None
        if info.type != pafs.FileType.File:
            return None
        ident, version = (self.url, path), (info.size, info.mtime_ns)
        with _CACHE_LOCK:
            hit = _FOOTERS.get(ident)
        if hit is not None and hit[0] == version:
            return (info, *hit[1])
        from .store import ticker_ranges

        try:
            with self.fs.open_input_file(path) as f:
                meta = pq.ParquetFile(f).metadata
            inputs = json.loads((meta.metadata or {})[META_INPUTS])
        except (OSError, KeyError, ValueError):
            return None  # a damaged derived copy is only a lost shortcut
        ranges = ticker_ranges(meta)
        with _CACHE_LOCK:
            _FOOTERS[ident] = (version, (meta, inputs, ranges))
        return info, meta, inputs, ranges

    def _read_merged(self, footer: tuple, tickers: list[str] | None) -> "pa.Table":
        """Rows of ``tickers`` (all when None) from the merged copy, reading only the row groups
        whose ticker range admits one."""
        import pyarrow.parquet as pq

        from .store import groups_admitting, only_tickers

        info, meta, _inputs, ranges = footer
        wanted = sorted(set(tickers)) if tickers is not None else None
        groups = groups_admitting(ranges, wanted) if wanted is not None else list(range(len(ranges)))
        if len(groups) > FEW_GROUPS:
            # many scattered groups: one range request each would cost a round trip apiece;
            # Arrow's dataset reader coalesces them into a few large reads
            filters = [("ticker", "in", wanted)] if wanted is not None else None
            return pq.read_table(info.path, filesystem=self.fs, filters=filters)
        with self.fs.open_input_file(info.path) as f:
            pf = pq.ParquetFile(f, metadata=meta, pre_buffer=True)
            t = pf.read_row_groups(groups) if groups else pf.schema_arrow.empty_table()
        return only_tickers(t, wanted) if wanted is not None and t.num_rows else t

    def read_tickers(self, dataset: str, days: Iterable[dt.date], tickers: list[str] | None) -> "pa.Table":
        import pyarrow as pa
        import pyarrow.compute as pc

        from .store import _empty_table, _keep_sessions

        want = sorted(set(days))
        tables = []
        for year in sorted({d.year for d in want}):
            have = self._stored_year(dataset, year, reuse=True)
            ds = [d for d in want if d in have]
            if not ds:
                continue
            footer = self._merged_footer(dataset, year) if self.per_year(dataset) else None
            inputs = footer[2] if footer is not None else {}
            # the derived copy answers for the sessions it holds exactly as recorded now
            from_merged = [d for d in ds if inputs.get(d.isoformat()) == have[d].etag]
            if from_merged:
                try:
                    t = self._read_merged(footer, tickers)
                    tables.append(_keep_sessions(t.replace_schema_metadata(None), from_merged))
                except (OSError, pa.ArrowException, ValueError):
                    from_merged = []  # a damaged derived copy is only a lost shortcut
            rest = [d for d in ds if d not in set(from_merged)]
            if rest:
                with ThreadPoolExecutor(max_workers=min(_IO_THREADS, len(rest))) as pool:
                    parts = list(pool.map(lambda d: self._read_data(dataset, d, tickers), rest))
                for d, t in zip(rest, parts):
                    if t.num_rows:
                        if not pc.all(pc.equal(_local_dates(t), pa.scalar(d, pa.date32()))).as_py():
                            raise DataIntegrityError(f"the store's {dataset} object of {d} holds rows of another "
                                                     "session: run `finrpt-providers verify --repair`")
                        tables.append(t.replace_schema_metadata(None))
        if not tables:
            return _empty_table()
        out = pa.concat_tables(tables)
        return out.sort_by([("ticker", "ascending"), ("window_start", "ascending")])

    def read_ticker(self, dataset: str, days: Iterable[dt.date], ticker: str) -> "pa.Table":
        return self.read_tickers(dataset, days, [ticker])

    def read_days(self, dataset: str, days: Iterable[dt.date]) -> "pa.Table":
        return self.read_tickers(dataset, days, None)

    # -- checking ---------------------------------------------------------------------------
    def verify(self, dataset: str, clean_temp: bool = False) -> list[Problem]:
        """Every session object read back: the record against the data's own metadata, rows of
        that session only, the bar rules. ``clean_temp`` (repair) removes data objects that
        never got a record (a writer died between the two PUTs)."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        from .store import _bad_rows

        problems: list[Problem] = []
        for year in self.years(dataset):
            scan = self._scan(dataset, year)

            def check(item):
                day, objs = item
                found: list[Problem] = []
                data, rec = objs.get(DATA), objs.get(RECORD)
                if data is None:
                    if rec is not None:
                        found.append(Problem(dataset, day, "missing file", "a record without its data object"))
                    return found
                if rec is None:
                    found.append(Problem(dataset, day, "stale temp file", "a data object without its record (a "
                                         "writer stopped between the two): fetched again by the next sync"))
                    if clean_temp:
                        self._delete(data.path)
                    return found
                src = self._record(rec)
                try:
                    t = pq.read_table(data.path, filesystem=self.fs)
                except Exception as e:  # noqa: BLE001 - any failure to read is damage
                    return [Problem(dataset, day, "unreadable", f"{type(e).__name__}")]
                meta = (t.schema.metadata or {}).get(META_SOURCE)
                try:
                    inner = json.loads(meta) if meta else None
                except ValueError:
                    inner = None
                if src is None or inner is None or inner.get("etag") != src.etag or inner.get("size") != src.size:
                    found.append(Problem(dataset, day, "damaged manifest", "the record and the data's own source "
                                         "disagree (two writers of different upstream versions)"))
                local = _local_dates(t)
                if t.num_rows and not pc.all(pc.equal(local, pa.scalar(day, pa.date32()))).as_py():
                    found.append(Problem(dataset, day, "rows of another session", f"{data.path} holds rows stamped "
                                         "on another day"))
                found += _bad_rows(dataset, t.replace_schema_metadata(None), local, data.path)
                return found

            with ThreadPoolExecutor(max_workers=_IO_THREADS) as pool:
                for found in pool.map(check, sorted(scan.items())):
                    problems += found
        return problems

    def forget(self, dataset: str, days: Iterable[dt.date]) -> None:
        for d in days:
            self._delete(self._record_path(dataset, d))
            self._delete(self.data_path(dataset, d))
            self._forget_listing(dataset, d.year)

    def reset_year(self, dataset: str, year: int) -> list[dt.date]:
        return []  # no year manifest to damage: each session's record stands alone


#: object stores whose single upload appears whole or not at all (no rename needed, and a
#: rename there is a copy): pyarrow's own, and fsspec's protocols for them
_OBJECT_STORES = frozenset({"s3", "gcs", "abfs"})
_FSSPEC_OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "r2"})


def _uploads_whole(fs: Any) -> bool:
    """True for an object store; False for a filesystem with directories (local, NFS, HDFS,
    SFTP, memory...), where an object is written under a temporary name and renamed."""
    if fs.type_name in _OBJECT_STORES:
        return True
    inner = getattr(getattr(fs, "handler", None), "fs", None)  # pyarrow over an fsspec filesystem
    proto = getattr(inner, "protocol", None)
    protos = {proto} if isinstance(proto, str) else set(proto or ())
    return bool(protos & _FSSPEC_OBJECT_STORES)


def _local_dates(t: "pa.Table"):
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.cast(pc.cast(t.column("window_start"), pa.timestamp("ns", tz="America/New_York")), pa.date32())


def _reopen(url: str, prefix: str, layouts: dict[str, str]) -> "ObjectStore":
    """On a worker: the store from its location and the credentials the worker was given
    (see :mod:`finrpt_providers.dask`), never from a pickled secret."""
    from .dask import worker_config

    return ObjectStore(url, prefix, layouts, worker_config())


def open_store(location: Any, prefix: str, layouts: dict[str, str], config: "Config | None" = None):
    """The store at ``location``: a local :class:`~finrpt_providers.store.Store` for a path, an
    :class:`ObjectStore` for a URL."""
    if is_url(location):
        return ObjectStore(str(location), prefix, layouts, config)
    from .store import Store

    return Store(location, prefix, layouts)


__all__ = ["ObjectStore", "open_store", "filesystem", "is_url"]
