"""What a dataset is (declared by the provider that owns it) and where its objects go.

One layout for every location (a directory, ``file://``, ``s3://``, ``memory://``)::

    {dataset}/year=2026/date=2026-03-02/part-<version>.parquet   one session: ONE object (Hive)
    _sources/{dataset}/year=2026/2026-03-02.json                  its record: upstream source, rows,
                                                                  and the exact data object it names
    _merged/{dataset}/year=2026/data.parquet                      derived: the year by key ("year" layout)
    _state/{dataset}/missing/2026-03-07.json                      a session found missing upstream

``<version>`` is derived from the upstream file's ETag, size and key: writers of one
version write the same object (the same bytes); a writer of another version writes
another object, and the record it writes names its own. Everything under ``_`` is outside the
dataset's directory, so Hive readers (DuckDB, Polars, Spark, pyarrow.dataset) find the
session objects only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

YEAR, SESSION = "year", "session"
SOURCES, MERGED, STATE = "_sources", "_merged", "_state"
#: the data object's name in stores written before records named their object
LEGACY_DATA = "data.parquet"
META_SOURCE = b"finrpt.source"  # a session object's own record (JSON)
META_SESSIONS = b"finrpt.sessions"  # a derived copy's manifest: session -> {etag, rows}
ROW_GROUP = 8_192
#: temporary files older than this are a dead writer's (younger ones may be a live writer's)
STALE_TEMP_SECONDS = 3600
_TYPES = {"string", "float64", "int64", "timestamp"}


@dataclass(frozen=True)
class Dataset:
    """A dataset as its owning provider declares it.

    ``layout``: ``"year"`` (small sessions, e.g. daily bars: a derived copy of each year
    ordered by key serves one-key questions from one file) or ``"session"`` (large ones,
    e.g. minute bars). ``columns``: (name, type) with type one of string, float64, int64,
    timestamp (nanoseconds, UTC). ``time`` is the column that dates a row (its New York
    date is the row's session); ``key`` the column rows are sorted and looked up by.
    ``check(table)`` (optional) returns ``[(session or None, what is wrong)]`` for rows a
    query would refuse: ``verify`` reports them."""

    name: str
    layout: str
    columns: tuple[tuple[str, str], ...]
    time: str = "window_start"
    key: str = "ticker"
    check: Callable[[Any], list[tuple[dt.date | None, str]]] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.layout not in (YEAR, SESSION):
            raise ValueError(f"dataset {self.name!r}: layout must be {YEAR!r} or {SESSION!r}, not {self.layout!r}")
        names = [c for c, _ in self.columns]
        bad = [t for _, t in self.columns if t not in _TYPES]
        if bad or self.time not in names or self.key not in names:
            raise ValueError(f"dataset {self.name!r}: columns must include its time ({self.time}) and key "
                             f"({self.key}) columns, with types among {sorted(_TYPES)}")
        if dict(self.columns)[self.time] != "timestamp":
            raise ValueError(f"dataset {self.name!r}: its time column {self.time} must be a timestamp")

    @property
    def per_year(self) -> bool:
        return self.layout == YEAR

    def schema(self) -> pa.Schema:
        import pyarrow as pa

        types = {"string": pa.string(), "float64": pa.float64(), "int64": pa.int64(),
                 "timestamp": pa.timestamp("ns", tz="UTC")}
        return pa.schema([(c, types[t]) for c, t in self.columns])


@dataclass(frozen=True)
class Source:
    """The upstream object a session was stored from."""

    key: str
    etag: str
    size: int


@dataclass(frozen=True)
class Record:
    """A stored session: its source, its row count, and the exact data object holding it."""

    source: Source
    data: str
    rows: int | None

    def to_json(self, day: dt.date) -> dict[str, Any]:
        return {"key": self.source.key, "etag": self.source.etag, "size": self.source.size,
                "session": day.isoformat(), "data": self.data, "rows": self.rows}


@dataclass(frozen=True)
class Problem:
    dataset: str
    day: dt.date | None
    what: str
    detail: str
    year: int | None = None
    #: repair fetches this session again (its record is dropped)
    refetch: bool = False

    def __str__(self) -> str:
        return f"{self.dataset} {self.day or ''}: {self.what}: {self.detail}".replace("  ", " ")


def year_dir(dataset: str, year: int) -> str:
    return f"{dataset}/year={year:04d}"


def data_path(dataset: str, day: dt.date, src: Source) -> str:
    """A session object's name: derived from its upstream version (writers of one version
    write the same object)."""
    version = hashlib.sha256(f"{src.etag}\0{src.size}\0{src.key}".encode()).hexdigest()[:16]
    return f"{year_dir(dataset, day.year)}/date={day.isoformat()}/part-{version}.parquet"


def legacy_data_path(dataset: str, day: dt.date) -> str:
    return f"{year_dir(dataset, day.year)}/date={day.isoformat()}/{LEGACY_DATA}"


def record_dir(dataset: str, year: int) -> str:
    return f"{SOURCES}/{dataset}/year={year:04d}"


def record_path(dataset: str, day: dt.date) -> str:
    return f"{record_dir(dataset, day.year)}/{day.isoformat()}.json"


def merged_path(dataset: str, year: int) -> str:
    return f"{MERGED}/{dataset}/year={year:04d}/data.parquet"


def mark_dir(dataset: str) -> str:
    return f"{STATE}/{dataset}/missing"


def mark_path(dataset: str, day: dt.date) -> str:
    return f"{mark_dir(dataset)}/{day.isoformat()}.json"


def session_dates(table: pa.Table, time: str) -> Any:
    """The New York date (session) of each row: THE cast from a UTC time column to sessions."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.cast(pc.cast(table.column(time), pa.timestamp("ns", tz="America/New_York")), pa.date32())


def bounds(first: dt.date, last: dt.date) -> tuple[int, int]:
    """[00:00 New York of ``first``, 00:00 New York of the day after ``last``) in UTC ns."""
    from zoneinfo import ZoneInfo

    ny = ZoneInfo("America/New_York")

    def ns(d: dt.date) -> int:
        return int(dt.datetime(d.year, d.month, d.day, tzinfo=ny).timestamp()) * 10**9

    return ns(first), ns(last + dt.timedelta(days=1))


def parse_record(raw: bytes | None, dataset: str, day: dt.date) -> Record | None:
    """A record as written by the engine (or by the object store before records named their
    data object); None when it is damaged (the session then counts as not stored)."""
    import json

    if raw is None:
        return None
    try:
        d = json.loads(raw)
        size = d["size"]
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size < 1 << 50:
            return None
        src = Source(str(d["key"]), str(d["etag"]), size)
        data = d.get("data") or legacy_data_path(dataset, day)
        rows = d.get("rows")
        if not isinstance(data, str) or not data.startswith(f"{year_dir(dataset, day.year)}/date={day.isoformat()}/") \
                or ".." in data or "/" in data[len(year_dir(dataset, day.year)) + 17:] or not data.endswith(".parquet"):
            return None
        if rows is not None and (not isinstance(rows, int) or isinstance(rows, bool) or not 0 <= rows < 1 << 40):
            return None
        if d.get("session") not in (None, day.isoformat()):
            return None
        return Record(src, data, rows)
    except Exception:  # noqa: BLE001 - any shape, any number (1e400): damaged, never a crash
        return None


RECORD_NAME = re.compile(r"\d{4}-\d{2}-\d{2}\.json")


def record_day(path: str, dataset: str, year: int) -> dt.date | None:
    """The session a record's path is for, when it is exactly ``_sources/{dataset}/year=Y/YYYY-MM-DD.json``
    with that date in year Y; None for anything else (a stray file, never a record)."""
    folder, _, name = path.rpartition("/")
    if folder != record_dir(dataset, year) or not RECORD_NAME.fullmatch(name):
        return None
    try:
        day = dt.date.fromisoformat(name[:-5])
    except ValueError:
        return None
    return day if day.year == year else None


def parse_mark(raw: bytes | None) -> dt.datetime | None:
    """When a session was found missing upstream; None for a damaged mark (a naive time
    included: the session is then asked for again)."""
    import json

    if raw is None:
        return None
    try:
        t = dt.datetime.fromisoformat(json.loads(raw)["checked_at"])
        if t.tzinfo is None or t.utcoffset() is None:
            return None
        if t > dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1):
            return None  # in the future: it would keep a session from ever being asked again
    except Exception:  # noqa: BLE001 - any shape: damaged
        return None
    return t


def matches(held: Any, rec: Record) -> bool:
    """A derived copy's manifest entry for a session matches its record (same upstream
    version and rows)."""
    if not isinstance(held, dict) or held.get("etag") != rec.source.etag:
        return False
    return rec.rows is None or held.get("rows") == rec.rows
