"""A local Parquet store of per-session bar files (every ticker of a session at once).

Generic: its owner (a provider) declares the ``prefix`` and, per dataset, the layout:
``"year"`` (one merged file per year, for small sessions such as daily bars) or
``"session"`` (one file per session, for large ones such as minute bars). Layout
(plain Hive-style Parquet: DuckDB, Polars, Spark and pyarrow read it as is)::

    {root}/{prefix}/{dataset}/year=2026/data.parquet                  ("year")
    {root}/{prefix}/{dataset}/year=2026/date=2026-03-02/data.parquet  ("session")
    {root}/{prefix}/{dataset}/year=2026/_sources.json

* Rows sorted by ``ticker`` then ``window_start``; zstd;
  row groups of 8k rows with statistics, so a one-ticker read touches one row group
  per file. Columns: ``ticker`` string, ``volume open close high low`` float64,
  ``window_start`` timestamp[ns, UTC] (bar start), ``transactions`` int64.
* ``_sources.json`` (ignored by Parquet readers) records each stored session's
  source key, ETag and size, and sessions found missing upstream (when checked).
* Writes: under an exclusive lock per year directory (``.lock``, ``fcntl``), to a
  temporary file in the same directory, then ``os.replace``: a reader sees the old
  file or the new one, never half of one, and two processes syncing at once merge
  instead of overwriting each other.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import functools
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import DataIntegrityError, ProviderUnavailable

if TYPE_CHECKING:
    import pyarrow as pa

YEAR, SESSION = "year", "session"
ROW_GROUP = 8_192
MANIFEST = "_sources.json"
# A session missing upstream is asked for again after this long while it is recent
# (files are published the next morning), and never again once it is old.
RECHECK_SECONDS = 15 * 60
RECENT_DAYS = 5
REPAIR = "run `finrpt-providers verify --repair`"
#: where year-layout datasets keep their rows ordered by session (one row group a session)
SESSION_ORDER = "_by_session"
# Parsed manifests and Parquet footers by path, each with the (mtime_ns, size, inode) of
# the file it was read from: a file replaced by a writer (os.replace: a new inode) is
# read again; our own writes drop their entry at once.
_DERIVED = " dates"  # key of the derived date -> Source map in a cached manifest (never written)
_MANIFESTS: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] = {}
_FOOTERS: dict[str, tuple[tuple[int, int, int], Any]] = {}
_SESSION_META: dict[str, tuple[tuple[int, int, int], Any]] = {}


def _unwritable(path: Path, e: OSError) -> ProviderUnavailable:
    why = e.strerror or type(e).__name__
    hint = ("a file is where a directory must be" if isinstance(e, (NotADirectoryError, FileExistsError))
            else "it is read-only or not yours" if isinstance(e, PermissionError) else "check the disk")
    return ProviderUnavailable(f"the store cannot write {path} ({why}: {hint}): set FINRPT_PROVIDERS_CACHE_DIR to a "
                               "writable directory")


def _unreadable_dir(path: Path, e: OSError) -> ProviderUnavailable:
    return ProviderUnavailable(f"the store cannot read {path} ({e.strerror or type(e).__name__}): set "
                               "FINRPT_PROVIDERS_CACHE_DIR to a directory you can read and write")


def _check_manifest(data: Any, path: Path) -> dict[str, Any]:
    """A manifest as written by put/record_missing, or DataIntegrityError saying what is wrong."""
    def bad(why: str) -> DataIntegrityError:
        return DataIntegrityError(f"the store's manifest {path} is damaged ({why}): {REPAIR}")

    if not isinstance(data, dict):
        raise bad(f"a {type(data).__name__}, not an object")
    days, missing = data.setdefault("days", {}), data.setdefault("missing", {})
    if not isinstance(days, dict) or not isinstance(missing, dict):
        raise bad("'days' and 'missing' must be objects")
    for day, rec in days.items():
        try:
            dt.date.fromisoformat(day)
            ok = (isinstance(rec, dict) and isinstance(rec.get("key"), str) and isinstance(rec.get("etag"), str)
                  and isinstance(rec.get("size"), int) and isinstance(rec.get("rows", 0), int))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise bad(f"the record of {day!r} is not {{key, etag, size, rows}}")
    for day, rec in missing.items():
        try:
            dt.date.fromisoformat(day)
            dt.datetime.fromisoformat(rec["checked_at"])
        except (TypeError, ValueError, KeyError):
            raise bad(f"the missing-upstream record of {day!r} is malformed") from None
    return data


@dataclass(frozen=True)
class Problem:
    dataset: str
    day: dt.date | None
    what: str  # "missing file", "unreadable", "row count", "stale temp file", "untracked rows",
    #            "damaged manifest", "rows of another session", "bad rows"
    detail: str
    year: int | None = None

    def __str__(self) -> str:
        return f"{self.dataset} {self.day or ''}: {self.what}: {self.detail}".replace("  ", " ")


@dataclass(frozen=True)
class Source:
    key: str
    etag: str
    size: int


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fh = open(directory / ".lock", "a+b")
    except OSError as e:
        raise _unwritable(directory, e) from None
    with fh:
        try:
            import fcntl
        except ImportError:  # Windows: one writer per process is still serialised by callers
            yield
            return
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _atomic_write(path: Path, write) -> None:
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _unwritable(path.parent, e) from None
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, DataIntegrityError):
            raise _unwritable(path, e) from None  # disk full, read-only: say where and what to do
        raise


def _is_sorted(table: pa.Table) -> bool:
    """True when rows are ordered by ticker then window_start (upstream files are)."""
    import pyarrow.compute as pc

    n = table.num_rows
    if n < 2:
        return True
    t, w = table.column("ticker"), table.column("window_start")
    a, b = t.slice(0, n - 1), t.slice(1)
    if not pc.all(pc.less_equal(a, b)).as_py():
        return False
    same = pc.equal(a, b)
    return bool(pc.all(pc.or_(pc.invert(same), pc.less(w.slice(0, n - 1), w.slice(1)))).as_py())


def to_store_table(table: pa.Table, sort: bool = True) -> pa.Table:
    """A parsed aggregates file -> the stored schema, sorted by ticker then time
    (the sort is skipped when the rows already are: it is the costly part)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ws = pc.cast(table.column("window_start"), pa.timestamp("ns", tz="UTC"))
    out = pa.table({
        "ticker": table.column("ticker"), "volume": table.column("volume"), "open": table.column("open"),
        "close": table.column("close"), "high": table.column("high"), "low": table.column("low"),
        "window_start": ws, "transactions": table.column("transactions"),
    })
    if sort and not _is_sorted(out):
        out = out.sort_by([("ticker", "ascending"), ("window_start", "ascending")])
    return out


class Store:
    """A store under ``root``/``prefix`` whose datasets have the declared ``layouts``
    (dataset name -> ``"year"`` or ``"session"``). On object storage, see
    :class:`~finrpt_providers.objectstore.ObjectStore` (same interface)."""

    remote = False

    def __init__(self, root: str | os.PathLike, prefix: str, layouts: dict[str, str]):
        self.root = Path(root)
        self.prefix = prefix
        self.base = self.root / prefix  # built once: path joins show up on the warm path
        bad = {d: v for d, v in layouts.items() if v not in (YEAR, SESSION)}
        if bad:
            raise ValueError(f"store layouts must be {YEAR!r} or {SESSION!r}: {bad}")
        self.layouts = dict(layouts)

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r}, {self.prefix!r})"

    # -- layout -----------------------------------------------------------------
    def per_year(self, dataset: str) -> bool:
        """True when ``dataset``'s sessions are merged into one file per year."""
        try:
            return self.layouts[dataset] == YEAR
        except KeyError:
            raise ValueError(f"{dataset!r} is not a dataset of this store ({', '.join(self.layouts)})") from None

    def year_dir(self, dataset: str, year: int) -> Path:
        return _year_dir(self.base, dataset, year)

    def data_path(self, dataset: str, day: dt.date) -> Path:
        if self.per_year(dataset):
            return self.year_dir(dataset, day.year) / "data.parquet"
        return self.year_dir(dataset, day.year) / f"date={day.isoformat()}" / "data.parquet"

    def session_path(self, dataset: str, year: int) -> Path:
        """The year's rows ordered by session (a year-layout dataset's second copy, for
        cross-sections): outside the dataset's directory, so Hive readers never see it twice."""
        return self.base / SESSION_ORDER / dataset / f"year={year:04d}" / "data.parquet"

    def days(self, dataset: str, year: int) -> list[dt.date]:
        """Sessions of ``year`` the manifest records as stored."""
        return [dt.date.fromisoformat(d) for d in self._manifest(dataset, year)["days"]]

    # -- manifest ---------------------------------------------------------------
    def _manifest(self, dataset: str, year: int, fresh: bool = False) -> dict[str, Any]:
        """The year's manifest. Readers share one parsed copy per file version (the warm path
        reads it on every query); writers pass ``fresh=True`` for a private copy to edit."""
        path = self.year_dir(dataset, year) / MANIFEST
        key = str(path)
        try:
            sig = _version(path)
            hit = _MANIFESTS.get(key)
            if hit is not None and hit[0] == sig and not fresh:
                return hit[1]
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return {"days": {}, "missing": {}}
        except (NotADirectoryError, PermissionError) as e:
            raise _unreadable_dir(path, e) from None
        except (OSError, ValueError, RecursionError) as e:
            raise DataIntegrityError(f"the store's manifest {path} is unreadable ({type(e).__name__}): "
                                     f"{REPAIR}") from None
        data = _check_manifest(data, path)
        if not fresh:
            _MANIFESTS[key] = (sig, data)
        return data

    def _write_manifest(self, dataset: str, year: int, manifest: dict[str, Any]) -> None:
        path = self.year_dir(dataset, year) / MANIFEST

        def write(tmp: str) -> None:
            Path(tmp).write_text(json.dumps(manifest, indent=1, sort_keys=True))

        _MANIFESTS.pop(str(path), None)
        _atomic_write(path, write)

    def _recorded(self, dataset: str, year: int) -> dict[dt.date, Source]:
        """The sessions the year's manifest records as stored, by date (derived once per
        manifest version, like the manifest itself)."""
        m = self._manifest(dataset, year)
        got = m.get(_DERIVED)
        if got is None:
            got = {dt.date.fromisoformat(d): Source(r["key"], r["etag"], int(r["size"])) for d, r in m["days"].items()}
            m[_DERIVED] = got  # the shared reader's copy: writers read a fresh one
        return got

    def stored(self, dataset: str, days: Iterable[dt.date]) -> dict[dt.date, Source]:
        """Sessions of ``days`` present in the store, with their source records: what the
        manifest records, checked against the disk once per file (a year file) or once per
        year directory (session files), never once per session."""
        out: dict[dt.date, Source] = {}
        per_year = self.per_year(dataset)
        for year, ds in _by_year(days).items():
            m = self._recorded(dataset, year)
            recs = [(d, m[d]) for d in ds if d in m]
            if not recs:
                continue
            ydir = self.year_dir(dataset, year)
            if per_year:
                if os.path.exists(ydir / "data.parquet"):
                    out.update(recs)
                continue
            try:
                present = set(os.listdir(ydir))
            except (FileNotFoundError, NotADirectoryError):
                continue
            except PermissionError as e:
                raise _unreadable_dir(ydir, e) from None
            out.update((d, src) for d, src in recs if f"date={d.isoformat()}" in present)
        return out

    def known_missing(self, dataset: str, days: Iterable[dt.date], today: dt.date,
                      now: dt.datetime | None = None) -> set[dt.date]:
        """Sessions recorded missing upstream that need not be asked for again yet: old
        ones (by ``today``, the configured clock's date) never, recent ones after a while
        of wall-clock time."""
        now = now or dt.datetime.now(dt.timezone.utc)
        out = set()
        cache: dict[int, dict] = {}
        for d in days:
            m = cache.setdefault(d.year, self._manifest(dataset, d.year))["missing"]
            rec = m.get(d.isoformat())
            if not rec:
                continue
            checked = dt.datetime.fromisoformat(rec["checked_at"])
            if (today - d).days > RECENT_DAYS or (now - checked).total_seconds() < RECHECK_SECONDS:
                out.add(d)
        return out

    # -- writing ----------------------------------------------------------------
    def put(self, dataset: str, tables: dict[dt.date, tuple[pa.Table, Source]]) -> None:
        """Store parsed files (one table per session) atomically, merging with what is there."""
        by_year: dict[int, dict[dt.date, tuple[pa.Table, Source]]] = {}
        for d, item in tables.items():
            by_year.setdefault(d.year, {})[d] = item
        for year, items in by_year.items():
            self._put_year(dataset, year, items)

    def _put_year(self, dataset: str, year: int, items: dict[dt.date, tuple[pa.Table, Source]]) -> None:
        ydir = self.year_dir(dataset, year)
        with _locked(ydir):
            for tmp in [*ydir.rglob(".*.tmp"), *self.session_path(dataset, year).parent.glob(".*.tmp")]:
                tmp.unlink(missing_ok=True)  # left by a writer that was killed: we hold the lock
            manifest = self._manifest(dataset, year, fresh=True)
            if self.per_year(dataset):
                had_year = (ydir / "data.parquet").exists()
                self._merge_year(ydir / "data.parquet", {d: t for d, (t, _) in items.items()})
                etags = {d: r["etag"] for d, r in manifest["days"].items()}
                etags.update({d.isoformat(): src.etag for d, (_t, src) in items.items()})
                self._merge_sessions(dataset, year, {d: t for d, (t, _) in items.items()}, etags, had_year)
            else:
                for d, (t, _) in items.items():
                    path = self.data_path(dataset, d)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    _write_parquet(path, to_store_table(t))
            stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            for d, (t, src) in items.items():
                manifest["days"][d.isoformat()] = {"key": src.key, "etag": src.etag, "size": src.size,
                                                   "rows": t.num_rows, "stored_at": stamp}
                manifest["missing"].pop(d.isoformat(), None)
            self._write_manifest(dataset, year, manifest)

    def _merge_sessions(self, dataset: str, year: int, new: dict[dt.date, pa.Table], etags: dict[str, str],
                        had_year: bool) -> None:
        """The session-ordered copy: the old copy's sessions (streamed a row group, i.e. a
        session, at a time; replaced ones dropped) and the new ones, in date order, each
        session one row group sorted by ticker. Its metadata records each session's ETag, so a
        reader uses it only for sessions that match the manifest. A year stored before this
        copy existed gets none (reads fall back to the year file; `verify --repair` does not
        need it)."""
        import json as _json

        import pyarrow.parquet as pq

        path = self.session_path(dataset, year)
        old = None
        if path.exists():
            try:
                old = pq.ParquetFile(path)
            except (OSError, ValueError):
                old = None  # damaged: rebuilt below only if nothing else was stored
        if old is None and had_year:
            _SESSION_META.pop(str(path), None)
            path.unlink(missing_ok=True)
            return
        days_new = sorted(new)
        items: list[tuple[dt.date, Any]] = []
        if old is not None:
            col = old.schema_arrow.get_field_index("window_start")
            for i in range(old.metadata.num_row_groups):
                st = old.metadata.row_group(i).column(col).statistics
                d = _session_of_ns(st.min) if st is not None and st.has_min_max else None
                if d is None or d != _session_of_ns(st.max):
                    _SESSION_META.pop(str(path), None)
                    path.unlink(missing_ok=True)  # not one session a group: not ours to extend
                    return
                if d not in new:
                    items.append((d, i))
        items += [(d, None) for d in days_new]
        items.sort(key=lambda x: x[0])
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _unwritable(path.parent, e) from None
        held = sorted(d.isoformat() for d, _ in items)
        meta = {b"finrpt_sessions": _json.dumps({d: etags.get(d, "") for d in held}).encode()}

        def write(tmp: str) -> None:
            schema = _store_schema().with_metadata(meta)
            with pq.ParquetWriter(tmp, schema, compression="zstd", write_statistics=True,
                                  use_dictionary=["ticker"]) as w:
                for d, src in items:
                    t = old.read_row_group(src) if src is not None else to_store_table(new[d])
                    w.write_table(t.replace_schema_metadata(meta), row_group_size=1 << 30)

        _SESSION_META.pop(str(path), None)
        _atomic_write(path, write)

    def _merge_year(self, path: Path, new: dict[dt.date, pa.Table]) -> None:
        """Merge sessions into the year file without sorting or copying the year: every input
        (the old file and each new session) is sorted by ticker then time, so the output is
        written a ticker range at a time from the inputs' slices of that range (the old
        file's row groups read only for it). Memory: the new sessions and one range."""
        import pyarrow.parquet as pq

        parts = []
        for d in sorted(new):
            t = to_store_table(new[d], sort=True)
            if t.num_rows:
                parts.append(t)
        old = None
        if path.exists():
            try:
                old, ranges = _footer(path)
            except (OSError, ValueError) as e:
                raise DataIntegrityError(f"the store's {path} is damaged ({type(e).__name__}): {REPAIR}") from None
        replaced = sorted(new)

        def write(tmp: str) -> None:
            # the next range is merged while the last one is encoded (both release the GIL)
            import queue
            import threading

            chunks: queue.Queue = queue.Queue(maxsize=2)
            failed: list[BaseException] = []

            def writer() -> None:
                try:
                    with pq.ParquetWriter(tmp, _store_schema(), compression="zstd", write_statistics=True,
                                          use_dictionary=["ticker"]) as w:
                        while (chunk := chunks.get()) is not None:
                            w.write_table(chunk, row_group_size=ROW_GROUP)
                except BaseException as e:  # handed to the merging thread
                    failed.append(e)
                    while chunks.get() is not None:  # let the producer finish
                        pass

            th = threading.Thread(target=writer, name="store-write", daemon=True)
            th.start()
            try:
                for chunk in _merged_ranges(parts, old, replaced):
                    if failed:
                        break
                    chunks.put(chunk)
            finally:
                chunks.put(None)
                th.join()
            if failed:
                raise failed[0]

        _FOOTERS.pop(str(path), None)
        _atomic_write(path, write)

    def years(self, dataset: str) -> list[int]:
        base = self.base / dataset
        if not base.is_dir():
            return []
        return sorted(int(p.name[5:]) for p in base.glob("year=*") if p.name[5:].isdigit())

    def verify(self, dataset: str, clean_temp: bool = False) -> list[Problem]:
        """Check every stored session against the manifest and against what a query would
        refuse: file present and readable, row count as recorded, no rows the manifest does
        not know, no rows of another session, no bar twice, no missing or infinite price or
        volume, high/low bounding open/close, no temp file left by a killed writer (removed
        when ``clean_temp``), and a manifest of the right shape."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        problems: list[Problem] = []
        for year in self.years(dataset):
            ydir = self.year_dir(dataset, year)
            with _locked(ydir):
                for tmp in ydir.rglob(".*.tmp"):
                    problems.append(Problem(dataset, None, "stale temp file", str(tmp), year))
                    if clean_temp:
                        tmp.unlink(missing_ok=True)
                try:
                    days = self._manifest(dataset, year)["days"]
                except DataIntegrityError as e:
                    problems.append(Problem(dataset, None, "damaged manifest", str(e), year))
                    continue
                counts: dict[str, int] | None = {}
                if self.per_year(dataset):
                    path = ydir / "data.parquet"
                    if path.exists():
                        try:
                            table = pq.read_table(path)
                            local = pc.cast(pc.cast(table.column("window_start"),
                                                    pa.timestamp("ns", tz="America/New_York")), pa.date32())
                            vc = pc.value_counts(local)
                            counts = {str(v["values"]): int(v["counts"]) for v in vc.to_pylist()}
                            problems += _bad_rows(dataset, table, local, path)
                        except Exception as e:  # any failure to read is damage, reported, never "ok"
                            counts = None
                            problems += [Problem(dataset, dt.date.fromisoformat(d), "unreadable",
                                                 f"{path}: {type(e).__name__}: {str(e)[:120]}", year)
                                         for d in sorted(days)]
                    for day in sorted(set(counts or {}) - set(days)):
                        problems.append(Problem(dataset, dt.date.fromisoformat(day), "untracked rows",
                                                f"{counts[day]} rows not in the manifest", year))
                else:
                    for ddir in ydir.glob("date=*"):
                        if ddir.name[5:] not in days and (ddir / "data.parquet").exists():
                            problems.append(Problem(dataset, dt.date.fromisoformat(ddir.name[5:]), "untracked rows",
                                                    f"{ddir / 'data.parquet'} not in the manifest", year))
                for day, rec in sorted(days.items()):
                    d = dt.date.fromisoformat(day)
                    path = self.data_path(dataset, d)
                    if not path.exists():
                        problems.append(Problem(dataset, d, "missing file", str(path), year))
                        continue
                    if self.per_year(dataset):
                        if counts is None:
                            continue
                        got = counts.get(day, 0)
                    else:
                        try:
                            table = pq.read_table(path)
                            got = table.num_rows
                            local = pc.cast(pc.cast(table.column("window_start"),
                                                    pa.timestamp("ns", tz="America/New_York")), pa.date32())
                            other = pc.sum(pc.not_equal(local, pa.scalar(d, pa.date32()))).as_py() or 0
                            if other:
                                problems.append(Problem(dataset, d, "rows of another session",
                                                        f"{other} rows in {path}", year))
                            problems += _bad_rows(dataset, table, local, path)
                        except Exception as e:
                            problems.append(Problem(dataset, d, "unreadable", f"{path}: {type(e).__name__}: "
                                                    f"{str(e)[:120]}", year))
                            continue
                    if got != int(rec.get("rows", got)):
                        problems.append(Problem(dataset, d, "row count", f"{got} rows, {rec.get('rows')} recorded",
                                                year))
                if self.per_year(dataset):
                    problems += self._verify_sessions(dataset, year, days, clean_temp)
        return problems

    def _verify_sessions(self, dataset: str, year: int, days: dict[str, Any], repair: bool) -> list[Problem]:
        """The session-ordered copy: each session it holds as the manifest records it (same
        ETag) must have the recorded rows (repair fetches those sessions again, which rewrites
        them); an unreadable copy is reported and, with ``repair``, removed (the year file
        answers meanwhile)."""
        path = self.session_path(dataset, year)
        out = []
        for tmp in path.parent.glob(".*.tmp"):
            out.append(Problem(dataset, None, "stale temp file", str(tmp), year))
            if repair:
                tmp.unlink(missing_ok=True)
        if not path.exists():
            return out
        try:
            held, groups, pf = _session_index(path)
        except Exception as e:  # any failure to read is reported, never "ok"
            out.append(Problem(dataset, None, "session copy", f"{path} unreadable ({type(e).__name__}): it is not "
                               "used" + ("; removed" if repair else ""), year))
            if repair:
                _SESSION_META.pop(str(path), None)
                path.unlink(missing_ok=True)
            return out
        for day, rec in sorted(days.items()):
            d = dt.date.fromisoformat(day)
            if held.get(day) != rec["etag"] or d not in groups:
                continue  # not used for that session: the year file answers
            n = pf.metadata.row_group(groups[d]).num_rows
            if n != int(rec.get("rows", n)):
                out.append(Problem(dataset, d, "session copy", f"{n} rows in {path}, {rec.get('rows')} recorded",
                                   year))
        return out

    def reset_year(self, dataset: str, year: int) -> list[dt.date]:
        """Drop a year whose manifest is damaged (its manifest and data files); return the
        sessions its data held (what to fetch again), as far as they can be read."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        ydir = self.year_dir(dataset, year)
        found: set[dt.date] = set()
        with _locked(ydir):
            if self.per_year(dataset):
                path = ydir / "data.parquet"
                try:
                    ws = pq.read_table(path, columns=["window_start"]).column("window_start")
                    found = set(pc.unique(pc.cast(pc.cast(ws, pa.timestamp("ns", tz="America/New_York")),
                                                  pa.date32())).to_pylist())
                except Exception:
                    pass
                path.unlink(missing_ok=True)
            else:
                for ddir in ydir.glob("date=*"):
                    with contextlib.suppress(ValueError):
                        found.add(dt.date.fromisoformat(ddir.name[5:]))
                    (ddir / "data.parquet").unlink(missing_ok=True)
            (ydir / MANIFEST).unlink(missing_ok=True)
            if self.per_year(dataset):
                self.session_path(dataset, year).unlink(missing_ok=True)
        return sorted(found)

    def _update_manifests(self, dataset: str, days: Iterable[dt.date], edit) -> None:
        """Apply ``edit(manifest, days_of_that_year)`` to each year's manifest, under its lock."""
        for year, ds in _by_year(days).items():
            with _locked(self.year_dir(dataset, year)):
                manifest = self._manifest(dataset, year, fresh=True)
                edit(manifest, ds)
                self._write_manifest(dataset, year, manifest)

    def forget(self, dataset: str, days: Iterable[dt.date]) -> None:
        """Drop sessions from the manifest (and their minute files) so they are fetched again."""

        def edit(manifest: dict, ds: list[dt.date]) -> None:
            for d in ds:
                manifest["days"].pop(d.isoformat(), None)
                if not self.per_year(dataset):
                    self.data_path(dataset, d).unlink(missing_ok=True)
            if self.per_year(dataset) and ds:
                path = self.data_path(dataset, ds[0])
                if path.exists() and not _readable(path):
                    # a damaged year file cannot be merged into: drop it and every session it held
                    path.unlink()
                    manifest["days"].clear()

        self._update_manifests(dataset, days, edit)

    def record_missing(self, dataset: str, days: Iterable[dt.date]) -> None:
        stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")

        def edit(manifest: dict, ds: list[dt.date]) -> None:
            for d in ds:
                if d.isoformat() not in manifest["days"]:
                    manifest["missing"][d.isoformat()] = {"checked_at": stamp}

        self._update_manifests(dataset, days, edit)

    # -- reading ----------------------------------------------------------------
    def read_ticker(self, dataset: str, days: Iterable[dt.date], ticker: str) -> pa.Table:
        """``ticker``'s stored rows on ``days`` (reads only the row groups that can hold it)."""
        return self.read_tickers(dataset, days, [ticker])

    def _files(self, dataset: str, days: Iterable[dt.date]) -> dict[Path, list[dt.date]]:
        """The data files holding ``days``, each with the sessions of it asked (sorted)."""
        files: dict[Path, list[dt.date]] = {}
        if self.per_year(dataset):
            for year, ds in _by_year(sorted(set(days))).items():
                files[self.year_dir(dataset, year) / "data.parquet"] = ds
            return files
        for d in sorted(set(days)):
            files[self.data_path(dataset, d)] = [d]
        return files

    def read_days(self, dataset: str, days: Iterable[dt.date]) -> pa.Table:
        """Every stored row (every ticker) of ``days``: a whole-market cross-section."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        files = self._files(dataset, days)
        tables = []
        for path, ds in files.items():
            if self.per_year(dataset):
                t = self._read_sessions(dataset, ds)
                if t is not None:
                    tables.append(t)
                    continue
            try:
                t = pq.read_table(path)
            except FileNotFoundError:
                continue
            except (NotADirectoryError, PermissionError) as e:
                raise _unreadable_dir(path, e) from None
            except (OSError, pa.ArrowException, ValueError) as e:
                raise DataIntegrityError(f"the store's {path} is damaged ({type(e).__name__}): {REPAIR}") from None
            local = pc.cast(pc.cast(t.column("window_start"), pa.timestamp("ns", tz="America/New_York")),
                            pa.date32())
            keep = pc.is_in(local, value_set=pa.array(ds, type=pa.date32()))
            if not self.per_year(dataset) and not pc.all(keep).as_py():
                raise DataIntegrityError(f"the store's {path} holds rows of another session than {ds[0]}: {REPAIR}")
            tables.append(t.filter(keep) if self.per_year(dataset) else t)
        return pa.concat_tables(tables) if tables else _empty_table()

    def _read_sessions(self, dataset: str, ds: list[dt.date]) -> pa.Table | None:
        """Sessions ``ds`` (one year) from the session-ordered copy: one row group each; None
        when the copy is absent or does not hold every one of them as the manifest records
        it (the caller then reads the year file)."""
        import pyarrow as pa

        year = ds[0].year
        path = self.session_path(dataset, year)
        try:
            held, groups, pf = _session_index(path)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, pa.ArrowException):
            return None  # a damaged copy is only a lost shortcut
        recorded = self._recorded(dataset, year)
        want = [d for d in ds if d in recorded]
        if any(held.get(d.isoformat()) != recorded[d].etag or d not in groups for d in want):
            return None
        if not want:
            return _empty_table()
        try:
            t = pf.read_row_groups([groups[d] for d in want])
        except (OSError, pa.ArrowException, ValueError):
            return None
        return t.replace_schema_metadata(None)

    def read_tickers(self, dataset: str, days: Iterable[dt.date], tickers: list[str]) -> pa.Table:
        """The stored rows of ``tickers`` on ``days``, each file read once for all of them
        (only the row groups whose ticker range meets the basket's)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        files = self._files(dataset, days)
        tables = []
        for path, ds in files.items():
            t = _read_row_groups(path, tickers)
            if t is None or t.num_rows == 0:
                continue
            if self.per_year(dataset):
                t = _keep_sessions(t, ds)
            elif not _within(t, ds[0], ds[0]):
                raise DataIntegrityError(f"the store's {path} holds rows of another session than {ds[0]}: "
                                         f"{REPAIR}")
            tables.append(t)
        if not tables:
            return _empty_table()
        return pa.concat_tables(tables)


def _store_schema() -> pa.Schema:
    return _empty_table().schema


#: rows of new sessions merged per step (bounds the memory of a merge beyond its inputs)
MERGE_STEP = 1 << 18


def _merged_ranges(parts: list[pa.Table], old: Any, replaced: list[dt.date]) -> Iterator[pa.Table]:
    """Sorted chunks (by ticker, then time) merging ``parts`` (new sessions, each sorted)
    with the ``old`` year file (a ParquetFile, sorted; rows of ``replaced`` sessions
    dropped), one ticker range at a time."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    old_groups = old.metadata.num_row_groups if old is not None else 0
    # The new tickers, sorted, and each part's rows as ranks in them (sorted: each part is),
    # so where a range ends in a part is a binary search, not a scan of its strings.
    universe: list[str] = []
    ranks: list[Any] = []
    total = sum(p.num_rows for p in parts)
    cuts: set[str] = set()
    if total:
        every = pa.chunked_array([c for t in parts for c in t.column("ticker").chunks])
        sorted_new = pc.unique(every).sort()
        universe = sorted_new.to_pylist()
        ranks = [np.asarray(pc.index_in(p.column("ticker"), value_set=sorted_new).to_numpy(zero_copy_only=False))
                 for p in parts]
        step = max(1, total // MERGE_STEP)  # cut the new rows into steps of ~MERGE_STEP rows
        if step > 1:
            k = max(1, len(universe) // step)
            cuts.update(universe[i] for i in range(k, len(universe), k))
    ranges: list[tuple[Any, Any]] = []
    if old_groups:
        meta = old.metadata
        col = old.schema_arrow.get_field_index("ticker")
        for i in range(old_groups):
            st = meta.row_group(i).column(col).statistics
            ranges.append((st.min, st.max) if st is not None and st.has_min_max else (None, None))
        if any(r[0] is None for r in ranges):  # no statistics: read the old file whole, once
            ranges = []
        rows, since = 0, 0
        for i, r in enumerate(ranges):  # and the old rows likewise, at row-group ends
            rows += meta.row_group(i).num_rows
            if rows - since >= MERGE_STEP:
                cuts.add(r[1])
                since = rows
    drop = pa.array(replaced, type=pa.date32())
    pending_old: list[pa.Table] = []
    g = 0
    pos = [0] * len(parts)

    def take_new(upto: Any) -> list[pa.Table]:
        """Each part's rows with ticker <= upto (None: all remaining)."""
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
        if not ranges:  # read whole (no statistics), once
            if g == 0:
                pending_old.append(old.read())
                g = old_groups
        else:
            while g < old_groups and (upto is None or ranges[g][0] <= upto):
                pending_old.append(old.read_row_groups([g]))
                g += 1
        out, keep = [], []
        for t in pending_old:  # at most a few row groups
            end = t.num_rows if upto is None else int(pc.sum(pc.less_equal(t.column("ticker"), upto)).as_py() or 0)
            out.append(t.slice(0, end))
            if end < t.num_rows:
                keep.append(t.slice(end))
        pending_old[:] = keep
        return out

    for upto in [*sorted(cuts), None]:
        pieces = old_upto(upto)
        if replaced:
            pieces = [_drop_sessions(t, drop) for t in pieces]
        pieces = [t for t in [*pieces, *take_new(upto)] if t.num_rows]
        if pieces:
            yield pieces[0] if len(pieces) == 1 else _sort_rows(pa.concat_tables(pieces))


def _sort_rows(t: pa.Table) -> pa.Table:
    """``t`` by ticker then time: the tickers as ranks (a dictionary sorted once), then one
    integer lexsort (much cheaper than sorting strings row by row)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    enc = pc.dictionary_encode(t.column("ticker")).combine_chunks()
    rank_of = np.empty(len(enc.dictionary), dtype=np.int64)
    rank_of[pc.array_sort_indices(enc.dictionary).to_numpy()] = np.arange(len(enc.dictionary))
    rank = rank_of[enc.indices.to_numpy(zero_copy_only=False)]
    ws = t.column("window_start").cast(pa.int64()).to_numpy()
    # Pieces come as sorted runs, usually oldest first: a stable sort by ticker alone then
    # keeps each ticker's rows in time (checked; otherwise sort by both).
    order = np.argsort(rank, kind="stable")
    r, w = rank[order], ws[order]
    if not np.all((r[1:] != r[:-1]) | (w[1:] > w[:-1])):
        order = np.lexsort((ws, rank))
    return t.take(order)


def _drop_sessions(t: pa.Table, drop: pa.Array) -> pa.Table:
    import pyarrow as pa
    import pyarrow.compute as pc

    days = pc.cast(pc.cast(t.column("window_start"), pa.timestamp("ns", tz="America/New_York")), pa.date32())
    mask = pc.is_in(days, value_set=drop)
    return t.filter(pc.invert(mask)) if pc.any(mask).as_py() else t


def _bounds(first: dt.date, last: dt.date) -> tuple[int, int]:
    """[00:00 New York of ``first``, 00:00 New York of the day after ``last``) in UTC ns."""
    from zoneinfo import ZoneInfo

    ny = ZoneInfo("America/New_York")

    def ns(d: dt.date) -> int:
        return int(dt.datetime(d.year, d.month, d.day, tzinfo=ny).timestamp()) * 10**9

    return ns(first), ns(last + dt.timedelta(days=1))


def _within(t: pa.Table, first: dt.date, last: dt.date) -> bool:
    import pyarrow.compute as pc

    lo, hi = _bounds(first, last)
    mm = pc.min_max(t.column("window_start").cast("int64")).as_py()
    return mm["min"] is None or (lo <= mm["min"] and mm["max"] < hi)


def _keep_sessions(t: pa.Table, ds: list[dt.date]) -> pa.Table:
    """Rows of ``t`` on the sessions ``ds`` (sorted): a range test when they are every session
    from the first to the last (a year file holds nothing between sessions), else a set test."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from . import calendar

    if ds == calendar.sessions(ds[0], ds[-1]):
        if _within(t, ds[0], ds[-1]):
            return t
        lo, hi = _bounds(ds[0], ds[-1])
        ws = t.column("window_start").cast("int64")
        return t.filter(pc.and_(pc.greater_equal(ws, lo), pc.less(ws, hi)))
    local = pc.cast(pc.cast(t.column("window_start"), pa.timestamp("ns", tz="America/New_York")), pa.date32())
    return t.filter(pc.is_in(local, value_set=pa.array(ds, type=pa.date32())))


def _readable(path: Path) -> bool:
    import pyarrow.parquet as pq

    try:
        pq.read_table(path)
        return True
    except Exception:
        return False


def _bad_rows(dataset: str, table: pa.Table, local: pa.ChunkedArray, path: Path) -> list[Problem]:
    """Rows a query would refuse (the bar contract), one Problem per session and kind."""
    import numpy as np
    import pyarrow.compute as pc

    n = table.num_rows
    if not n:
        return []
    col = {c: table.column(c).to_numpy() for c in ("open", "high", "low", "close", "volume")}
    tk = table.column("ticker").to_numpy(zero_copy_only=False)
    ws = table.column("window_start").cast("int64").to_numpy()
    kinds: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore"):
        prices = np.vstack([col["open"], col["high"], col["low"], col["close"]])
        kinds["missing, infinite or non-positive price"] = ~(np.isfinite(prices).all(axis=0) & (prices > 0).all(axis=0))
        kinds["missing, infinite or negative volume"] = ~(np.isfinite(col["volume"]) & (col["volume"] >= 0))
        tol = 1e-6 * col["high"]
        kinds["high/low not bounding open/close"] = (
            (col["high"] + tol < np.maximum.reduce([col["open"], col["close"], col["low"]]))
            | (col["low"] - tol > np.minimum(col["open"], col["close"])))
    order = np.lexsort((ws, tk))
    dup = np.zeros(n, dtype=bool)
    same = (tk[order][1:] == tk[order][:-1]) & (ws[order][1:] == ws[order][:-1])
    dup[order[1:][same]] = True
    kinds["the same bar twice"] = dup
    days = np.asarray(pc.cast(local, "int32").to_numpy())
    out = []
    for what, mask in kinds.items():
        if not mask.any():
            continue
        for day in np.unique(days[mask]):
            rows = np.flatnonzero(mask & (days == day))
            d = dt.date(1970, 1, 1) + dt.timedelta(days=int(day))
            out.append(Problem(dataset, d, "bad rows", f"{len(rows)} row(s) with {what} (first: {tk[rows[0]]}) in "
                               f"{path}: queries for those tickers fail", d.year))
    return out


def _by_year(days: Iterable[dt.date]) -> dict[int, list[dt.date]]:
    out: dict[int, list[dt.date]] = {}
    for d in days:
        out.setdefault(d.year, []).append(d)
    return out


@functools.lru_cache(maxsize=1024)
def _year_dir(base: Path, dataset: str, year: int) -> Path:
    return base / dataset / f"year={year:04d}"


def _empty_table() -> pa.Table:
    import pyarrow as pa

    return pa.table({"ticker": pa.array([], pa.string()), "volume": pa.array([], pa.float64()),
                     "open": pa.array([], pa.float64()), "close": pa.array([], pa.float64()),
                     "high": pa.array([], pa.float64()), "low": pa.array([], pa.float64()),
                     "window_start": pa.array([], pa.timestamp("ns", tz="UTC")),
                     "transactions": pa.array([], pa.int64())})


def _write_parquet(path: Path, table: pa.Table) -> None:
    import pyarrow.parquet as pq

    def write(tmp: str) -> None:
        # dictionary-encode the tickers only: on prices it costs time and bytes
        pq.write_table(table, tmp, compression="zstd", row_group_size=ROW_GROUP, write_statistics=True,
                       use_dictionary=["ticker"])

    _FOOTERS.pop(str(path), None)
    _atomic_write(path, write)


def _session_of_ns(ns: Any) -> dt.date:
    """The New York session date of a UTC timestamp (ns int, or a datetime)."""
    from zoneinfo import ZoneInfo

    if isinstance(ns, dt.datetime):
        ts = ns if ns.tzinfo else ns.replace(tzinfo=dt.timezone.utc)
    else:
        ts = dt.datetime.fromtimestamp(int(ns) / 1e9, tz=dt.timezone.utc)
    return ts.astimezone(ZoneInfo("America/New_York")).date()


def _version(path: Path) -> tuple[int, int, int]:
    """What identifies a file's version: (mtime_ns, size, inode); an atomic replace is a new inode."""
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size, st.st_ino


def _parsed(cache: dict, path: Path, parse):
    """``parse(path)`` once per version of ``path`` (FileNotFoundError when it is absent)."""
    key, sig = str(path), _version(path)
    hit = cache.get(key)
    if hit is not None and hit[0] == sig:
        return hit[1]
    value = parse(path)
    cache[key] = (sig, value)
    return value


def _session_index(path: Path):
    """(session -> ETag held, session -> row group, ParquetFile) of a session-ordered copy,
    parsed once per file version."""
    import pyarrow.parquet as pq

    def parse(p: Path):
        import json as _json

        pf = pq.ParquetFile(p)
        held = _json.loads(pf.schema_arrow.metadata[b"finrpt_sessions"])
        col = pf.schema_arrow.get_field_index("window_start")
        groups = {}
        for i in range(pf.metadata.num_row_groups):
            st = pf.metadata.row_group(i).column(col).statistics
            if st is not None and st.has_min_max and _session_of_ns(st.min) == _session_of_ns(st.max):
                groups[_session_of_ns(st.min)] = i
        return held, groups, pf.metadata

    held, groups, meta = _parsed(_SESSION_META, path, parse)
    return held, groups, pq.ParquetFile(path, metadata=meta)


def ticker_ranges(meta: Any) -> list[tuple[str, str] | None]:
    """Per row group of a ticker-sorted Parquet file (its ``FileMetaData``), the (min, max)
    ticker from the statistics, or None where there are none."""
    col = meta.schema.to_arrow_schema().get_field_index("ticker")
    ranges = []
    for i in range(meta.num_row_groups):
        st = meta.row_group(i).column(col).statistics
        ranges.append((st.min, st.max) if st is not None and st.has_min_max else None)
    return ranges


def groups_admitting(ranges: list[tuple[str, str] | None], wanted: list[str]) -> list[int]:
    """The row groups whose ticker range admits one of ``wanted`` (sorted, unique)."""
    groups = []
    for i, r in enumerate(ranges):
        if r is None:
            groups.append(i)
            continue
        k = bisect.bisect_left(wanted, r[0])  # the first ticker not before the group's range
        if k < len(wanted) and wanted[k] <= r[1]:
            groups.append(i)
    return groups


def only_tickers(t: pa.Table, wanted: list[str]) -> pa.Table:
    """The rows of ``t`` whose ticker is one of ``wanted`` (sorted, unique)."""
    import pyarrow.compute as pc

    import pyarrow as pa

    if len(wanted) == 1:
        return t.filter(pc.equal(t.column("ticker"), wanted[0]))
    return t.filter(pc.is_in(t.column("ticker"), value_set=pa.array(wanted, pa.string())))


def _footer(path: Path):
    """(ParquetFile, [(min, max) ticker per row group]) of ``path``, the footer parsed once per
    file version (the warm path must not re-parse it on every query)."""
    import pyarrow.parquet as pq

    def parse(p: Path):
        meta = pq.ParquetFile(p).metadata
        return meta, ticker_ranges(meta)

    meta, ranges = _parsed(_FOOTERS, path, parse)
    return pq.ParquetFile(path, metadata=meta), ranges


def _read_row_groups(path: Path, tickers: list[str]) -> pa.Table | None:
    """Rows of ``tickers`` from one sorted file, reading only row groups whose min/max admit one."""
    import pyarrow as pa

    try:
        pf, ranges = _footer(path)
        wanted = sorted(set(tickers))
        groups = groups_admitting(ranges, wanted)
        if not groups:
            return None
        t = pf.read_row_groups(groups)
    except FileNotFoundError:
        return None
    except (NotADirectoryError, PermissionError) as e:
        raise _unreadable_dir(path, e) from None
    except (OSError, pa.ArrowException, ValueError, IndexError) as e:  # cut, overwritten, not Parquet
        _FOOTERS.pop(str(path), None)
        raise DataIntegrityError(f"the store's {path} is damaged ({type(e).__name__}: {str(e)[:120]}): "
                                 f"{REPAIR}") from None
    return only_tickers(t, wanted)
