"""Reading a store back: what ``finrpt-providers verify`` checks, what ``--repair`` fixes
here, and the migration of stores written in the previous layout.

Checked, per dataset and year (years found from records, data and derived copies alike,
so deleting every data object of a year is found, not skipped):

* every record parses and names an object that exists, reads, embeds the same upstream
  version, holds the recorded rows, all on its session, and passes the owner's row check;
* no data object is left that no record names (a writer that stopped between its two
  writes, or the loser of two writers of different versions);
* the derived copy proves what it claims: its rows per session are what its manifest
  says (one behind its records is no damage: reads use it only for the sessions it holds
  as recorded; repair brings it up to date);
* every mark of a session missing upstream parses with a zone;
* no temporary file older than an hour (a dead writer's).

Repair drops what is damaged (records whose sessions are then fetched again, stray
objects, marks, stale temporary files), rebuilds derived copies, and migrates the
previous layout.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import TYPE_CHECKING

from ..errors import DataIntegrityError, ProviderError
from .files import writer_alive
from .layout import (
    MERGED, META_SESSIONS, SOURCES, STALE_TEMP_SECONDS, legacy_data_path, mark_dir, mark_path, matches,
    merged_path, parse_mark, parse_record, Problem, Record, record_day, record_dir, record_path, session_dates,
    Source, year_dir,
)

if TYPE_CHECKING:
    from .engine import Engine


def verify(store: Engine, dataset: str, repair: bool = False) -> list[Problem]:
    import pyarrow as pa
    import pyarrow.compute as pc

    ds = store.dataset(dataset)
    files = store.files
    problems: list[Problem] = []
    for year in store.years(dataset):
        store._migrate_if_legacy(dataset, year)
        listed = store._listed_records(dataset, year)
        named: set[str] = set()
        good: dict[dt.date, Record] = {}
        for day, entry in sorted(listed.items()):
            rec = parse_record(files.read(entry.path), dataset, day)
            if rec is None:
                problems.append(Problem(dataset, day, "damaged record", f"{files.shown(entry.path)} does not parse",
                                        year, refetch=True))
                if repair:
                    files.delete(entry.path)
                continue
            named.add(rec.data)
            try:
                store.forget_footer(rec.data)
                t = store._read_session(dataset, day, rec, None)
            except (DataIntegrityError, ProviderError) as e:
                problems.append(Problem(dataset, day, "damaged session", str(e), year, refetch=True))
                if repair:
                    files.delete(entry.path)
                continue
            good[day] = rec
            if ds.check is not None and t.num_rows:
                for when, what in ds.check(t.replace_schema_metadata(None)):
                    problems.append(Problem(dataset, when or day, "bad rows", f"{what} (in {files.shown(rec.data)}): "
                                            "queries for that ticker fail", year, refetch=True))
        now = time.time()
        for e in [*files.list(year_dir(dataset, year)), *files.list(record_dir(dataset, year)),
                  *files.list(f"{MERGED}/{dataset}/year={year:04d}")]:
            name = e.path.rsplit("/", 1)[-1]
            if name.startswith(".") and name.endswith(".tmp"):
                if files.local and writer_alive(name) and _age(store, e.path, now) < STALE_TEMP_SECONDS:
                    continue  # a live writer's
                problems.append(Problem(dataset, None, "stale temp file", files.shown(e.path), year))
                if repair:
                    files.delete(e.path)
            elif e.path.startswith(f"{SOURCES}/"):
                if record_day(e.path, dataset, year) is None:
                    problems.append(Problem(dataset, None, "stray file", f"{files.shown(e.path)} is not a record "
                                            "(records are exactly YYYY-MM-DD.json of their year): ignored", year))
                    if repair:
                        files.delete(e.path)
            elif e.path.startswith(f"{MERGED}/"):
                continue
            elif e.path not in named:
                day = _day_of(e.path)
                problems.append(Problem(dataset, day, "unrecorded data", f"{files.shown(e.path)}: no record names it "
                                        "(a writer stopped between its two writes, or lost to another version); "
                                        "not served", year))
                cur = store._current(dataset, day) if repair and day is not None else None
                if repair and (cur is None or cur.data != e.path):  # not a write that landed meanwhile
                    files.delete(e.path)
        if ds.per_year:
            problems += _verify_merged(store, dataset, year, good, repair, pa, pc, matches)
    marks = store.files.list(mark_dir(dataset))
    for e in marks:
        name = e.path.rsplit("/", 1)[-1]
        if name.startswith(".") and name.endswith(".tmp"):
            if files.local and writer_alive(name):
                continue
            problems.append(Problem(dataset, None, "stale temp file", files.shown(e.path), None))
            if repair:
                files.delete(e.path)
            continue
        if parse_mark(files.read(e.path)) is None:
            try:
                day = dt.date.fromisoformat(name[:-5])
            except ValueError:
                day = None
            problems.append(Problem(dataset, day, "damaged mark", f"{files.shown(e.path)} (a session found missing "
                                    "upstream) does not parse with a zone: the session is asked again", None))
            if repair:
                files.delete(e.path)
    if repair:
        for year in {p.year for p in problems if p.year is not None and p.what != "bad rows"}:
            store._forget_listing(dataset, year)
    return problems


def _verify_merged(store: Engine, dataset: str, year: int, good: dict[dt.date, Record], repair: bool, pa, pc,
                   matches) -> list[Problem]:
    ds = store.dataset(dataset)
    files = store.files
    path = merged_path(dataset, year)
    entry = files.head(path)
    out: list[Problem] = []
    if entry is None:
        if repair and good:
            store.merge_year(dataset, year)  # none yet (a fetch stopped before it): a shortcut, built
        return out
    reason = None
    try:
        pf, meta = store._footer(path, entry)
        held = json.loads((meta.metadata or {})[META_SESSIONS])
        if not pf.schema_arrow.remove_metadata().equals(ds.schema()):
            raise ValueError(f"another schema than {dataset}'s")
        t = pf.read(columns=[ds.time])
        counts = {str(v["values"]): int(v["counts"]) for v in pc.value_counts(session_dates(t, ds.time)).to_pylist()}
        claimed = {k: int(v["rows"]) for k, v in held.items()}
        if counts != {k: v for k, v in claimed.items() if v}:
            wrong = sorted(set(counts) ^ {k for k, v in claimed.items() if v}
                           | {k for k in set(counts) & set(claimed) if counts[k] != claimed[k]})
            reason = f"it does not hold what its manifest claims (sessions {', '.join(wrong[:5])})"
    except Exception as e:  # noqa: BLE001 - any failure to read is damage, reported
        reason = f"unreadable ({type(e).__name__}: {str(e)[:80]})"
    # a copy behind its records (built before the latest sessions or versions) is not damage: reads
    # use it only for the sessions it holds as recorded; repair brings it up to date
    if repair and not reason and good:
        store.merge_year(dataset, year)
    if reason:
        out.append(Problem(dataset, None, "derived copy", f"{files.shown(path)}: {reason}; "
                           + ("rebuilt" if repair else "reads use the session objects"), year))
        if repair:
            files.delete(path)
            store.merge_year(dataset, year)
    return out


def _age(store: Engine, path: str, now: float) -> float:
    import os

    try:
        return now - os.stat(store.files.base / path).st_mtime  # type: ignore[attr-defined]
    except OSError:
        return 0.0


def _day_of(path: str) -> dt.date | None:
    for part in path.split("/"):
        if part.startswith("date="):
            try:
                return dt.date.fromisoformat(part[5:])
            except ValueError:
                return None
    return None


def migrate_year(store: Engine, dataset: str, year: int) -> None:
    """A year written by the previous local layout (``_sources.json`` beside a year file or
    session directories) rewritten in this one, in place, once: nothing is downloaded. Run
    on first use (and by ``verify --repair``), under the old layout's lock."""
    import contextlib
    import logging

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    files = store.files
    ydir = files.base / year_dir(dataset, year)  # type: ignore[attr-defined]
    manifest_path = ydir / "_sources.json"
    lock = ydir / ".lock"
    try:
        fh = open(lock, "a+b")
    except OSError as e:
        raise DataIntegrityError(f"the store at {files.root} holds {dataset} {year} in the previous layout and "
                                 f"cannot rewrite it ({e.strerror}): run `finrpt-providers verify --repair` with write "
                                 "access to it") from None
    with fh:
        try:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - Windows
            pass
        if not manifest_path.exists():
            return  # another process migrated it meanwhile
        logging.getLogger(__name__).warning("the store's %s %s is in the previous layout: rewriting it in place "
                                            "(once; nothing is downloaded)", dataset, year)
        try:
            manifest = json.loads(manifest_path.read_text())
            days = {dt.date.fromisoformat(d): r for d, r in manifest.get("days", {}).items()}
            missing = manifest.get("missing", {})
        except (OSError, ValueError, AttributeError, TypeError):
            days, missing = {}, {}
        ds = store.dataset(dataset)
        year_file = ydir / "data.parquet"
        if ds.per_year and year_file.exists():
            try:
                t = pq.read_table(year_file, partitioning=None)  # the file alone (pyarrow < 25 adds year=)
                local = session_dates(t, ds.time)
                for d, r in sorted(days.items()):
                    rows = t.filter(pc.equal(local, pa.scalar(d, pa.date32())))
                    if "rows" in r and rows.num_rows != r["rows"]:
                        logging.getLogger(__name__).warning(
                            "the old %s %s held %d rows where its manifest recorded %s: not migrated, fetched "
                            "again", dataset, d, rows.num_rows, r["rows"])
                        continue
                    store.put_session(dataset, d, rows, Source(str(r["key"]), str(r["etag"]), int(r["size"])))
            except Exception as e:  # noqa: BLE001 - a damaged old year: its sessions are fetched again
                logging.getLogger(__name__).warning("the old %s %s year file is unreadable (%s): its sessions are "
                                                    "fetched again", dataset, year, type(e).__name__)
            year_file.unlink(missing_ok=True)
        elif not ds.per_year:
            for d, r in sorted(days.items()):
                old = legacy_data_path(dataset, d)
                head = files.head(old)
                if head is None:
                    continue
                try:
                    rows = pq.ParquetFile(files.reader(old, head)).metadata.num_rows
                    if "rows" in r and rows != r["rows"]:
                        raise ValueError("row count")
                except Exception:  # noqa: BLE001 - unreadable or not what was recorded: dropped, fetched again
                    files.delete(old)
                    continue
                rec = Record(Source(str(r["key"]), str(r["etag"]), int(r["size"])), old, rows)
                files.write(record_path(dataset, d), json.dumps(rec.to_json(d), sort_keys=True).encode())
        for d, m in missing.items():
            with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):
                checked = dt.datetime.fromisoformat(m["checked_at"])
                if checked.tzinfo is not None:
                    files.write(mark_path(dataset, dt.date.fromisoformat(d)),
                                json.dumps({"checked_at": checked.isoformat()}).encode())
        # the old layout's session-ordered copy of the year (outside the dataset's directory)
        (files.base / "_by_session" / dataset / f"year={year:04d}" / "data.parquet").unlink(missing_ok=True)  # type: ignore[attr-defined]
        manifest_path.unlink(missing_ok=True)
    lock.unlink(missing_ok=True)
    store._forget_listing(dataset, year)
    if ds.per_year:
        store.merge_year(dataset, year)
