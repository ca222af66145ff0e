"""The store (``finrpt_providers.store``): one engine, four backends, real values.

Every backend (a local path, ``file://``, moto's S3 server over loopback, ``memory://``)
runs the same suite: writes and reads, replaced versions, a second engine on the same
location, two writers interleaved step by step, damaged derived copies, lost data
objects, marks of sessions missing upstream, a dead writer's object. Then: two real
processes writing the same sessions at once, a store endpoint that trickles its answers
(cut at its deadline), the previous local layout migrated in place, error messages that
name an object once, and bounded caches.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import subprocess
import sys
import threading
import time
import uuid
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import finrpt_providers
from finrpt_providers import calendar, store
from finrpt_providers.errors import DataIntegrityError, ProviderUnavailable
from finrpt_providers.store import engine
from finrpt_providers.store import layout as L
from finrpt_providers.store.layout import Record, Source

NY = ZoneInfo("America/New_York")
REPO = Path(__file__).resolve().parents[1]

COLUMNS = (("ticker", "string"), ("volume", "float64"), ("open", "float64"), ("close", "float64"),
           ("high", "float64"), ("low", "float64"), ("window_start", "timestamp"), ("transactions", "int64"))
DS = store.Dataset("bars", "year", columns=COLUMNS)
DS_SESSION = store.Dataset("minutes", "session", columns=COLUMNS)
# unsorted on purpose; "NA" must survive every write and read as the ticker it is
TICKERS = ("MSFT", "NA", "AAPL", "ZVZZT")

DAYS = calendar.sessions(dt.date(2024, 3, 1), dt.date(2024, 3, 8))  # 6 sessions
OLD = calendar.sessions(dt.date(2023, 6, 1), dt.date(2023, 6, 30))  # long past: marks never rechecked
assert len(DAYS) == 6 and DAYS[0] == dt.date(2024, 3, 1)


# -- data ----------------------------------------------------------------------------------------
def midnight_ns(day: dt.date) -> int:
    """00:00 New York of ``day`` in UTC nanoseconds."""
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=NY).timestamp()) * 10**9


def session_table(day: dt.date, version: str = "v1", tickers: tuple[str, ...] = TICKERS) -> pa.Table:
    """One session as upstream sends it: rows at 00:00 and 09:30 New York of ``day`` (the
    time as int64 ns UTC), tickers unsorted, prices that depend on day, ticker and version."""
    shift = (zlib.crc32(version.encode()) % 997) / 10 + 1
    base = midnight_ns(day)
    rows: dict[str, list] = {c: [] for c, _ in COLUMNS}
    for i, tk in enumerate(tickers):
        for j, offset in enumerate((0, (9 * 60 + 30) * 60 * 10**9)):
            p = 10.0 * (i + 1) + day.toordinal() % 50 + shift + j
            rows["ticker"].append(tk)
            rows["volume"].append(1000.0 * (i + 1) + j)
            rows["open"].append(p)
            rows["close"].append(p + 0.25)
            rows["high"].append(p + 0.5)
            rows["low"].append(p - 0.5)
            rows["window_start"].append(base + offset)
            rows["transactions"].append(7 * (i + 1) + j)
    return pa.table({"ticker": pa.array(rows["ticker"], pa.string()),
                     "volume": rows["volume"], "open": rows["open"], "close": rows["close"],
                     "high": rows["high"], "low": rows["low"],
                     "window_start": pa.array(rows["window_start"], pa.int64()),
                     "transactions": pa.array(rows["transactions"], pa.int64())})


def source(day: dt.date, version: str = "v1") -> Source:
    return Source(f"us_stocks_sip/day_aggs_v1/{day:%Y/%m}/{day}.csv.gz", version, 4096)


def truth(tables: list[pa.Table], ds: store.Dataset = DS) -> pa.Table:
    """What a read must return: the normalised inputs, sorted by ticker then time."""
    t = pa.concat_tables([store.normalise(x, ds) for x in tables])
    return t.sort_by([("ticker", "ascending"), ("window_start", "ascending")]).replace_schema_metadata(None)


def assert_same(got: pa.Table, want: pa.Table) -> None:
    got = got.replace_schema_metadata(None)
    if got.equals(want):
        return
    if got.schema != want.schema or got.num_rows != want.num_rows:
        raise AssertionError(f"read differs from the truth: got {got.num_rows} rows of {got.schema}, "
                             f"want {want.num_rows} rows of {want.schema}")
    g, w = got.to_pandas(), want.to_pandas()
    bad = (g != w).any(axis=1)
    raise AssertionError(f"read differs from the truth in {int(bad.sum())} of {len(g)} rows:\n got\n"
                         f"{g[bad].to_string()}\n want\n{w[bad].to_string()}")


def put_days(st, days, version: str = "v1", ds: store.Dataset = DS) -> dict[dt.date, pa.Table]:
    tables = {d: session_table(d, version) for d in days}
    st.put(ds.name, {d: (t, source(d, version)) for d, t in tables.items()})
    return tables


def object_bytes(t: pa.Table, metadata: dict | None = None) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(t.replace_schema_metadata(metadata), sink)
    return sink.getvalue().to_pybytes()


def read_parquet(st, path: str) -> pa.Table:
    raw = st.files.read(path)
    assert raw is not None, f"{path} is missing"
    return pq.read_table(pa.BufferReader(raw))


def rows_on(t: pa.Table, day: dt.date) -> pa.Table:
    return t.filter(pc.equal(L.session_dates(t, "window_start"), pa.scalar(day, pa.date32())))


def named(st, dataset: str, day: dt.date) -> str:
    """The object the session's record names."""
    return st.records(dataset, day.year)[day].data


def version_of(dataset: str, day: dt.date, src) -> str:
    """The part of an object's name fixed by the upstream version (the rest is its writer's)."""
    return L.data_path(dataset, day, src)


def paths(st, prefix: str) -> set[str]:
    return {e.path for e in st.files.list(prefix)}


def problems_of(st, ds: str = DS.name, repair: bool = False) -> list[tuple[str, dt.date | None]]:
    return sorted(((p.what, p.day) for p in st.verify(ds, repair=repair)), key=str)


# -- backends ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def moto_s3():
    """moto's S3 server on 127.0.0.1 (an ephemeral port), one bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        bucket = f"store-{uuid.uuid4().hex[:10]}"
        boto3.session.Session().client("s3", endpoint_url=url, aws_access_key_id="k", aws_secret_access_key="s",
                                       region_name="us-east-1").create_bucket(Bucket=bucket)
        yield url, bucket
    finally:
        server.stop()


@dataclass
class Backend:
    name: str
    location: Any
    prefix: str
    config: Any
    marker: str  # a string unique to this store's location

    def open(self, *datasets: store.Dataset):
        return store.open_store(self.location, self.prefix, datasets or (DS, DS_SESSION), self.config)


@pytest.fixture(params=["path", "file", "s3", "memory"])
def backend(request, tmp_path):
    marker = f"st{uuid.uuid4().hex[:12]}"
    if request.param == "path":
        d = tmp_path / marker
        d.mkdir()
        yield Backend("path", d, "store", None, marker)
    elif request.param == "file":
        d = tmp_path / marker
        d.mkdir()
        yield Backend("file", f"file://{d}", "store", None, marker)
    elif request.param == "s3":
        url, bucket = request.getfixturevalue("moto_s3")
        cfg = finrpt_providers.Config.exact({"FINRPT_STORE_S3_ENDPOINT": url, "FINRPT_STORE_S3_ACCESS_KEY": "k",
                                             "FINRPT_STORE_S3_SECRET_KEY": "s"})
        yield Backend("s3", f"s3://{bucket}/{marker}", "store", cfg, marker)
    else:
        import fsspec

        yield Backend("memory", f"memory://{marker}", "store", None, marker)
        fs = fsspec.filesystem("memory")
        if fs.exists(f"/{marker}"):
            fs.rm(f"/{marker}", recursive=True)


# -- one suite over four backends -----------------------------------------------------------------
def test_put_merge_and_read(backend):
    st = backend.open()
    assert isinstance(st, store.Store)
    tables = put_days(st, DAYS)
    assert st.merge_year(DS.name, 2024) == len(DAYS)

    want = truth(list(tables.values()))
    assert want.num_rows == len(DAYS) * len(TICKERS) * 2
    assert_same(st.read_days(DS.name, DAYS), want)
    assert_same(st.read_ticker(DS.name, DAYS, "NA"), want.filter(pc.equal(want["ticker"], "NA")))
    assert st.read_ticker(DS.name, DAYS, "NA").num_rows == len(DAYS) * 2  # "NA" is a ticker, not a null
    basket = ["ZVZZT", "NA", "AAPL"]
    assert_same(st.read_tickers(DS.name, DAYS, basket),
                want.filter(pc.is_in(want["ticker"], value_set=pa.array(basket))))
    # a subset of sessions, from the derived copy
    some = [DAYS[1], DAYS[4]]
    assert_same(st.read_tickers(DS.name, some, ["MSFT"]),
                truth([tables[d] for d in some]).filter(pc.equal(truth([tables[d] for d in some])["ticker"], "MSFT")))
    assert st.read_ticker(DS.name, DAYS, "NOPE").num_rows == 0

    assert st.stored(DS.name, DAYS + [dt.date(2024, 3, 11)]) == {d: source(d) for d in DAYS}
    assert st.days(DS.name, 2024) == DAYS
    assert st.years(DS.name) == [2024]
    # every object where the layout puts it
    assert paths(st, L.SOURCES) == {L.record_path(DS.name, d) for d in DAYS}
    assert paths(st, DS.name) == {named(st, DS.name, d) for d in DAYS}
    assert all(named(st, DS.name, d).startswith(version_of(DS.name, d, source(d))) for d in DAYS)
    assert paths(st, L.MERGED) == {L.merged_path(DS.name, 2024)}
    rec = json.loads(st.files.read(L.record_path(DS.name, DAYS[0])))
    assert rec["data"] == named(st, DS.name, DAYS[0]) and rec["rows"] == len(TICKERS) * 2
    assert problems_of(st) == []


def test_replaced_version_is_served(backend):
    st = backend.open()
    tables = put_days(st, DAYS)
    st.merge_year(DS.name, 2024)
    day = DAYS[2]
    old_path = named(st, DS.name, day)
    assert st.files.head(old_path) is not None

    new = session_table(day, "v2")
    assert not pc.all(pc.equal(store.normalise(new, DS)["open"], store.normalise(tables[day], DS)["open"])).as_py()
    st.put(DS.name, {day: (new, source(day, "v2"))})
    tables[day] = new
    want = truth(list(tables.values()))

    assert st.files.head(old_path) is None  # the version it replaced is gone
    assert named(st, DS.name, day).startswith(version_of(DS.name, day, source(day, "v2")))
    assert st.files.head(named(st, DS.name, day)) is not None
    assert st.stored(DS.name, [day]) == {day: source(day, "v2")}
    assert_same(st.read_days(DS.name, DAYS), want)  # the stale copy serves the other sessions only
    assert_same(st.read_ticker(DS.name, [day], "NA"), truth([new]).filter(pc.equal(truth([new])["ticker"], "NA")))

    assert st.merge_year(DS.name, 2024) == len(DAYS)
    merged = read_parquet(st, L.merged_path(DS.name, 2024))
    manifest = json.loads(merged.schema.metadata[L.META_SESSIONS])
    assert manifest[day.isoformat()] == {"etag": "v2", "rows": new.num_rows}
    assert_same(rows_on(merged, day), truth([new]))  # the derived copy holds the new rows
    assert_same(merged, want)
    assert_same(st.read_days(DS.name, DAYS), want)
    assert_same(st.read_tickers(DS.name, [day], ["AAPL", "NA"]),
                truth([new]).filter(pc.is_in(truth([new])["ticker"], value_set=pa.array(["AAPL", "NA"]))))
    assert problems_of(st) == []


def test_second_engine_sees_first_writes(backend):
    """Caches follow other writers: an engine reads what another engine (another process,
    another machine) committed since its last look, at once."""
    first, second = backend.open(), backend.open()
    tables = put_days(first, DAYS[:3])
    first.merge_year(DS.name, 2024)
    assert_same(second.read_days(DS.name, DAYS), truth(list(tables.values())))

    # the first replaces a session the second has just read: the second's next read serves it
    tables[DAYS[0]] = session_table(DAYS[0], "v2")
    v1 = named(first, DS.name, DAYS[0])
    first.put(DS.name, {DAYS[0]: (tables[DAYS[0]], source(DAYS[0], "v2"))})
    assert first.files.head(v1) is None
    want = truth(list(tables.values()))
    assert_same(second.read_days(DS.name, DAYS), want)
    assert_same(second.read_ticker(DS.name, DAYS, "NA"), want.filter(pc.equal(want["ticker"], "NA")))

    # the first adds sessions: the second's next read has them
    tables.update(put_days(first, DAYS[3:]))
    want = truth(list(tables.values()))
    assert_same(second.read_days(DS.name, DAYS), want)
    assert second.stored(DS.name, DAYS) == {**{d: source(d) for d in DAYS}, DAYS[0]: source(DAYS[0], "v2")}
    first.merge_year(DS.name, 2024)
    assert_same(second.read_days(DS.name, DAYS), want)

    # and the other way round, right after the first's own merge listed the year
    tables[DAYS[5]] = session_table(DAYS[5], "v3")
    second.put(DS.name, {DAYS[5]: (tables[DAYS[5]], source(DAYS[5], "v3"))})
    want = truth(list(tables.values()))
    assert first.stored(DS.name, [DAYS[5]]) == {DAYS[5]: source(DAYS[5], "v3")}
    assert_same(first.read_days(DS.name, DAYS), want)
    assert_same(backend.open().read_days(DS.name, DAYS), want)


def test_two_writers_interleaved(backend):
    """Writer B (eB) writes its object, writer A (eA) its object, A its record, B its record:
    the record names B's object and only B's prices are served."""
    st = backend.open()
    others = put_days(st, DAYS[:3])
    day = DAYS[3]
    ta, tb = session_table(day, "eA"), session_table(day, "eB")
    na, nb = store.normalise(ta, DS), store.normalise(tb, DS)
    assert not pc.any(pc.equal(na["open"], nb["open"])).as_py()  # different prices
    src_a, src_b = Source("day/2024-03-06.csv.gz", "eA", 2048), Source("day/2024-03-06.csv.gz", "eB", 2048)
    path_a, path_b = L.data_path(DS.name, day, src_a), L.data_path(DS.name, day, src_b)
    assert path_a != path_b
    body_a = json.dumps(Record(src_a, path_a, na.num_rows).to_json(day), sort_keys=True).encode()
    body_b = json.dumps(Record(src_b, path_b, nb.num_rows).to_json(day), sort_keys=True).encode()

    st.files.write(path_b, object_bytes(nb, {L.META_SOURCE: body_b}))  # B: data
    st.files.write(path_a, object_bytes(na, {L.META_SOURCE: body_a}))  # A: data
    st.files.write(L.record_path(DS.name, day), body_a)  # A: record
    assert st.stored(DS.name, [day]) == {day: src_a}  # (A's write is seen meanwhile)
    st.files.write(L.record_path(DS.name, day), body_b)  # B: record

    assert json.loads(st.files.read(L.record_path(DS.name, day)))["data"] == path_b
    assert st.stored(DS.name, [day]) == {day: src_b}
    assert st.stored(DS.name, [day])[day].etag == "eB"
    want_b = truth([tb])
    assert_same(st.read_days(DS.name, [day]), want_b)
    assert_same(st.read_ticker(DS.name, [day], "NA"), want_b.filter(pc.equal(want_b["ticker"], "NA")))
    assert_same(st.read_days(DS.name, DAYS), truth([*others.values(), tb]))
    st.merge_year(DS.name, 2024)
    assert_same(st.read_days(DS.name, DAYS), truth([*others.values(), tb]))
    merged = read_parquet(st, L.merged_path(DS.name, 2024))
    assert_same(rows_on(merged, day), want_b)

    problems = st.verify(DS.name)
    assert [(p.what, p.day) for p in problems] == [("unrecorded data", day)], [str(p) for p in problems]
    assert path_a in problems[0].detail and not problems[0].refetch
    assert problems_of(st, repair=True) == [("unrecorded data", day)]
    assert st.files.head(path_a) is None
    assert st.files.head(path_b) is not None
    assert problems_of(st) == []
    assert_same(st.read_days(DS.name, [day]), want_b)


def test_derived_copy_lacking_a_session(backend):
    st = backend.open()
    tables = put_days(st, DAYS)
    st.merge_year(DS.name, 2024)
    want = truth(list(tables.values()))
    path = L.merged_path(DS.name, 2024)
    merged = read_parquet(st, path)
    assert_same(merged, want)
    lost = DAYS[2]
    keep = pc.invert(pc.equal(L.session_dates(merged, "window_start"), pa.scalar(lost, pa.date32())))
    damaged = merged.filter(keep)
    assert damaged.num_rows == want.num_rows - tables[lost].num_rows
    st.files.write(path, object_bytes(damaged, merged.schema.metadata))  # same manifest, a session short

    for s in (st, backend.open()):
        assert_same(s.read_days(DS.name, DAYS), want)
        assert_same(s.read_ticker(DS.name, DAYS, "NA"), want.filter(pc.equal(want["ticker"], "NA")))
        assert_same(s.read_tickers(DS.name, [lost], ["AAPL", "ZVZZT"]),
                    truth([tables[lost]]).filter(pc.is_in(truth([tables[lost]])["ticker"],
                                                          value_set=pa.array(["AAPL", "ZVZZT"]))))
    problems = st.verify(DS.name)
    assert [p.what for p in problems] == ["derived copy"], [str(p) for p in problems]
    assert problems[0].year == 2024
    assert [p.what for p in st.verify(DS.name, repair=True)] == ["derived copy"]
    assert problems_of(st) == []
    assert_same(read_parquet(st, path), want)
    assert_same(st.read_days(DS.name, DAYS), want)


def test_every_data_object_of_a_year_deleted(backend):
    st = backend.open()
    put_days(st, DAYS)
    st.merge_year(DS.name, 2024)
    gone = sorted(paths(st, DS.name) | paths(st, L.MERGED))
    assert len(gone) == len(DAYS) + 1
    for p in gone:
        st.files.delete(p)
    assert paths(st, DS.name) == set() and len(paths(st, L.SOURCES)) == len(DAYS)  # records left

    problems = st.verify(DS.name)
    assert problems, "verify found nothing although every data object of 2024 is gone"
    assert sorted(p.day for p in problems) == DAYS, [str(p) for p in problems]  # one per session
    assert all(p.refetch and p.year == 2024 for p in problems), [str(p) for p in problems]
    for ask in (["NA"], ["AAPL", "MSFT"], None):
        with pytest.raises(DataIntegrityError, match="verify --repair") as e:
            st.read_tickers(DS.name, DAYS, ask)
        assert str(e.value).count(backend.marker) == 1, str(e.value)  # the object named once
    with pytest.raises(DataIntegrityError, match="verify --repair"):
        backend.open().read_ticker(DS.name, [DAYS[0]], "NA")
    # repair drops the records: those sessions are then fetched again
    assert len(st.verify(DS.name, repair=True)) == len(DAYS)
    assert st.stored(DS.name, DAYS) == {}
    assert problems_of(st) == []


def test_marks_of_missing_sessions(backend):
    st = backend.open()
    bad, naive, good = OLD[0], OLD[1], OLD[2]
    st.files.write(L.mark_path(DS.name, bad), b"{not json")
    st.files.write(L.mark_path(DS.name, naive), json.dumps({"checked_at": "2023-06-05T12:00:00"}).encode())
    st.record_missing(DS.name, [good])
    mark = json.loads(st.files.read(L.mark_path(DS.name, good)))
    assert dt.datetime.fromisoformat(mark["checked_at"]).utcoffset() is not None

    later = dt.date(2024, 1, 10)
    assert st.known_missing(DS.name, [bad, naive, good, OLD[3]], today=later) == {good}
    # a recent one is asked again after a quarter of an hour, an old one never
    recent = DAYS[0]
    st.record_missing(DS.name, [recent])
    now = dt.datetime.now(dt.timezone.utc)
    assert st.known_missing(DS.name, [recent], today=recent, now=now + dt.timedelta(minutes=1)) == {recent}
    assert st.known_missing(DS.name, [recent], today=recent, now=now + dt.timedelta(minutes=30)) == set()
    assert st.known_missing(DS.name, [good], today=later, now=now + dt.timedelta(days=300)) == {good}

    problems = st.verify(DS.name)
    assert sorted((p.what, p.day) for p in problems) == [("damaged mark", bad), ("damaged mark", naive)], \
        [str(p) for p in problems]
    st.verify(DS.name, repair=True)
    assert st.files.head(L.mark_path(DS.name, bad)) is None
    assert st.files.head(L.mark_path(DS.name, naive)) is None
    assert st.files.head(L.mark_path(DS.name, good)) is not None
    assert problems_of(st) == []
    assert st.known_missing(DS.name, [bad, naive, good], today=later) == {good}
    # storing a session removes its mark
    put_days(st, [recent])
    assert st.files.head(L.mark_path(DS.name, recent)) is None


def test_unrecorded_object_is_not_served(backend):
    st = backend.open()
    tables = put_days(st, DAYS[:4])
    st.merge_year(DS.name, 2024)
    dead = DAYS[4]  # a writer died between its data object and its record
    t = store.normalise(session_table(dead, "dead"), DS)
    src = source(dead, "dead")
    path = L.data_path(DS.name, dead, src)
    st.files.write(path, object_bytes(t, {L.META_SOURCE: json.dumps(Record(src, path, t.num_rows).to_json(dead),
                                                                     sort_keys=True).encode()}))
    assert st.stored(DS.name, DAYS) == {d: source(d) for d in DAYS[:4]}
    assert st.days(DS.name, 2024) == DAYS[:4]
    assert_same(st.read_days(DS.name, DAYS), truth(list(tables.values())))
    assert st.read_days(DS.name, [dead]).num_rows == 0

    problems = st.verify(DS.name)
    assert [(p.what, p.day) for p in problems] == [("unrecorded data", dead)], [str(p) for p in problems]
    assert path in problems[0].detail
    st.verify(DS.name, repair=True)
    assert st.files.head(path) is None
    assert problems_of(st) == []
    assert_same(st.read_days(DS.name, DAYS), truth(list(tables.values())))


def test_damaged_object_is_named_once(backend):
    """A session object overwritten with garbage (or cut short, or its footer broken): the
    error names the object, once, and the repair."""
    st = backend.open()
    tables = put_days(st, DAYS[:2])  # no derived copy: the session objects serve
    rec = json.loads(st.files.read(L.record_path(DS.name, DAYS[1])))
    good = st.files.read(rec["data"])
    name = rec["data"].rsplit("/", 1)[-1]
    for damage in (b"this is not a parquet file, only garbage bytes " * 20, good[: len(good) // 2],
                   good[:-40] + good[-8:], b""):
        st.files.write(rec["data"], damage)
        with pytest.raises(DataIntegrityError) as e:
            st.read_days(DS.name, DAYS[:2])
        msg = str(e.value)
        assert "verify --repair" in msg, msg
        assert msg.count(backend.marker) == 1, f"the object's path is named {msg.count(backend.marker)} times: {msg}"
        assert msg.count(name) == 1, msg
        assert st.files.shown(rec["data"]) in msg, msg
        assert_same(st.read_days(DS.name, DAYS[:1]), truth([tables[DAYS[0]]]))
        problems = st.verify(DS.name)
        damaged = [p for p in problems if p.what == "damaged session"]
        assert [(p.day, p.refetch) for p in damaged] == [(DAYS[1], True)], [str(p) for p in problems]
        assert damaged[0].detail.count(backend.marker) == 1, damaged[0].detail
    st.verify(DS.name, repair=True)
    assert st.stored(DS.name, DAYS[:2]) == {DAYS[0]: source(DAYS[0])}  # fetched again


# -- two real processes ------------------------------------------------------------------------------
#: the scenario runs this many times, each on a fresh store (what it leaves rests on how the
#: two writers' last writes of a session interleave)
ROUNDS = 2
PUTS = 20
WRITER = r"""
import datetime as dt, sys
from finrpt_providers import store
from tests.test_store import DS_SESSION, PUTS, session_table, source
location, first, second, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[5])
days = [dt.date.fromisoformat(d) for d in sys.argv[4].split(",")]
tables = {v: {d: session_table(d, v) for d in days} for v in (first, second)}
for r in range(rounds):
    st = store.open_store(location, f"round{r}", [DS_SESSION])
    for i in range(PUTS):
        v = first if i % 2 == 0 else second
        for d in days:
            print("ready", flush=True)  # both writers start each put together
            assert sys.stdin.readline().strip() == "go"
            st.put_session(DS_SESSION.name, d, tables[v][d], source(d, v))
print("done", flush=True)
"""


def test_two_processes_write_the_same_sessions(tmp_path):
    """Two processes put the same 5 sessions 20 times each, alternating two upstream
    versions (in opposite phase), at once: each session then serves exactly the version
    its record names, and nothing but unrecorded objects is left to repair."""
    days = DAYS[:5]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FINRPT_", "MASSIVE_", "POLYGON_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    arg = ",".join(d.isoformat() for d in days)
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), a, b, arg, str(ROUNDS)], cwd=REPO,
                              env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for a, b in (("p1", "p2"), ("p2", "p1"))]
    watchdog = threading.Timer(60, lambda: [p.kill() for p in procs])  # a hung writer fails the test
    watchdog.start()
    try:
        for _ in range(ROUNDS * PUTS * len(days)):
            for p in procs:  # both ready, then both go at once
                line = p.stdout.readline()
                assert line.strip() == "ready", p.communicate()[1]
            for p in procs:
                p.stdin.write("go\n")
                p.stdin.flush()
        for p in procs:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0 and out.strip() == "done", err
    finally:
        watchdog.cancel()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    failures = {}
    for r in range(ROUNDS):
        st = store.open_store(tmp_path, f"round{r}", [DS_SESSION])
        stored = st.stored(DS_SESSION.name, days)
        assert set(stored) == set(days) and {s.etag for s in stored.values()} <= {"p1", "p2"}
        for d in days:
            try:
                got = st.read_days(DS_SESSION.name, [d]).replace_schema_metadata(None)
            except DataIntegrityError as e:
                failures[(r, d)] = f"its record names {stored[d].etag}: {e}"
                continue
            if not got.equals(truth([session_table(d, stored[d].etag)], DS_SESSION)):
                failures[(r, d)] = f"its record names {stored[d].etag}, its rows are another version's"
        other = [str(p) for p in st.verify(DS_SESSION.name) if p.what != "unrecorded data"]
        if other:
            failures[(r, None)] = other
            continue
        st.verify(DS_SESSION.name, repair=True)
        assert problems_of(st, DS_SESSION.name) == []
        # after repair, what the records name is all there is
        assert paths(st, DS_SESSION.name) == {named(st, DS_SESSION.name, d) for d in days}
    assert failures == {}, "\n".join(f"round {r} {d}: {why}" for (r, d), why in failures.items())


# -- a slow store endpoint ----------------------------------------------------------------------------
class _Trickle(BaseHTTPRequestHandler):
    """200 and headers at once, then the body one byte every half second."""

    protocol_version = "HTTP/1.1"

    def _answer(self, body: bool = True) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", "4000")
        self.send_header("ETag", '"0123456789abcdef"')
        self.end_headers()
        self.wfile.flush()
        if not body:
            return
        stop = self.server.stop  # type: ignore[attr-defined]
        try:
            for _ in range(4000):
                if stop.wait(0.5):
                    return
                self.wfile.write(b" ")
                self.wfile.flush()
        except OSError:
            return

    def do_GET(self) -> None:
        self._answer()

    do_PUT = do_POST = do_DELETE = do_GET

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def trickling_endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    server.daemon_threads = True
    server.stop = threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.stop.set()  # type: ignore[attr-defined]
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_slow_endpoint_is_cut_at_its_deadline(trickling_endpoint):
    cfg = finrpt_providers.Config.exact({"FINRPT_STORE_S3_ENDPOINT": trickling_endpoint,
                                         "FINRPT_STORE_S3_ACCESS_KEY": "k", "FINRPT_STORE_S3_SECRET_KEY": "s",
                                         "FINRPT_STORE_REQUEST_DEADLINE": "2"})
    st = store.open_store(f"s3://slow-{uuid.uuid4().hex[:8]}/x", "store", [DS], cfg)
    t0 = time.monotonic()
    with pytest.raises(ProviderUnavailable, match="FINRPT_STORE_REQUEST_DEADLINE"):
        st.stored(DS.name, DAYS)
    took = time.monotonic() - t0
    assert took < 20, f"a listing took {took:.1f} s with a 2 s deadline"

    t0 = time.monotonic()
    with pytest.raises(ProviderUnavailable, match="FINRPT_STORE_REQUEST_DEADLINE"):
        st.files.read(L.record_path(DS.name, DAYS[0]))
    took = time.monotonic() - t0
    assert took < 20, f"a read took {took:.1f} s with a 2 s deadline"


# -- the previous local layout ----------------------------------------------------------------------
def test_legacy_layout_is_migrated(tmp_path):
    base = tmp_path / "store"
    year_days, session_days = DAYS[:3], DAYS[3:5]
    # a "year" dataset: one year file sorted by ticker, its manifest with one missing mark
    ydir = base / L.year_dir(DS.name, 2024)
    ydir.mkdir(parents=True)
    year_tables = {d: session_table(d, "old") for d in year_days}
    year_truth = truth(list(year_tables.values()))
    pq.write_table(year_truth, ydir / "data.parquet")
    checked = "2024-03-04T14:00:00+00:00"
    (ydir / "_sources.json").write_text(json.dumps({
        "days": {d.isoformat(): {"key": source(d, "old").key, "etag": "old", "size": 4096,
                                 "rows": year_tables[d].num_rows} for d in year_days},
        "missing": {DAYS[5].isoformat(): {"checked_at": checked}}}))
    # a "session" dataset: date=.../data.parquet and its manifest
    sdir = base / L.year_dir(DS_SESSION.name, 2024)
    sess_tables = {d: session_table(d, "olds") for d in session_days}
    for d, t in sess_tables.items():
        (sdir / f"date={d.isoformat()}").mkdir(parents=True)
        pq.write_table(store.normalise(t, DS_SESSION), sdir / f"date={d.isoformat()}" / "data.parquet")
    (sdir / "_sources.json").write_text(json.dumps({
        "days": {d.isoformat(): {"key": source(d, "olds").key, "etag": "olds", "size": 4096,
                                 "rows": sess_tables[d].num_rows} for d in session_days}, "missing": {}}))

    st = store.open_store(tmp_path, "store", [DS, DS_SESSION])
    assert_same(st.read_days(DS.name, year_days), year_truth)
    assert_same(st.read_ticker(DS.name, year_days, "NA"), year_truth.filter(pc.equal(year_truth["ticker"], "NA")))
    sess_truth = truth(list(sess_tables.values()), DS_SESSION)
    assert_same(st.read_days(DS_SESSION.name, session_days), sess_truth)
    assert st.stored(DS.name, DAYS) == {d: Source(source(d, "old").key, "old", 4096) for d in year_days}
    assert st.stored(DS_SESSION.name, DAYS) == {d: Source(source(d, "olds").key, "olds", 4096) for d in session_days}

    assert not (ydir / "_sources.json").exists()
    assert not (sdir / "_sources.json").exists()
    assert not (ydir / "data.parquet").exists(), "the legacy year file is left: Hive readers see its rows twice"
    # a Hive reader of the dataset's directory sees every row once
    for ds, want in ((DS, year_truth), (DS_SESSION, sess_truth)):
        files = sorted((base / ds.name).rglob("*.parquet"))
        assert files and all(f.parent.name.startswith("date=") for f in files), files
        assert sum(pq.ParquetFile(f).metadata.num_rows for f in files) == want.num_rows
    # the missing mark became a _state mark, honoured
    mark = base / L.mark_path(DS.name, DAYS[5])
    assert mark.exists()
    assert dt.datetime.fromisoformat(json.loads(mark.read_text())["checked_at"]) == \
        dt.datetime.fromisoformat(checked)
    assert st.known_missing(DS.name, [DAYS[5]], today=dt.date(2024, 6, 3)) == {DAYS[5]}
    assert problems_of(st, DS.name) == []
    assert problems_of(st, DS_SESSION.name) == []
    # a fresh engine reads the migrated store as it is
    again = store.open_store(tmp_path, "store", [DS, DS_SESSION])
    assert_same(again.read_days(DS.name, year_days), year_truth)
    assert_same(again.read_days(DS_SESSION.name, session_days), sess_truth)


# -- bounded caches ----------------------------------------------------------------------------------
def test_caches_are_bounded(tmp_path, monkeypatch):
    for cache in (engine._RECORDS, engine._FOOTERS):
        assert isinstance(cache.limit, int) and math.isfinite(cache.limit) and 0 < cache.limit <= 10**7
    monkeypatch.setattr(engine._RECORDS, "limit", 3)
    monkeypatch.setattr(engine._FOOTERS, "limit", 3)
    days = calendar.sessions(dt.date(2024, 4, 1), dt.date(2024, 4, 12))
    assert len(days) == 10
    st = store.open_store(tmp_path, "store", [DS])
    tables = put_days(st, days)  # no derived copy: every read opens a session object
    for d in days:
        assert_same(st.read_days(DS.name, [d]), truth([tables[d]]))
        assert_same(st.read_ticker(DS.name, [d], "NA"), truth([tables[d]]).filter(
            pc.equal(truth([tables[d]])["ticker"], "NA")))
        assert len(engine._RECORDS) <= 3 and len(engine._FOOTERS) <= 3
    assert len(engine._FOOTERS) >= 1  # the cache is used
    assert_same(st.read_days(DS.name, days), truth(list(tables.values())))
    assert len(engine._RECORDS) <= 3 and len(engine._FOOTERS) <= 3


# -- the review's classes, again: hostile content never becomes an answer ------------------------
@pytest.mark.parametrize("stray", ["20240304.json", "2024-W10-1.json", "backup/2024-03-04.json"])
def test_a_stray_file_beside_the_records_is_never_a_record(backend, stray):
    st = backend.open()
    put_days(st, DAYS[:3])
    day = DAYS[1]
    real = st.files.read(L.record_path(DS.name, day))
    body = json.loads(real)
    body["etag"], body["data"] = "forged", L.data_path(DS.name, day, source(day, "forged"))
    st.files.write(f"{L.record_dir(DS.name, 2024)}/{stray}", json.dumps(body).encode())
    assert st.stored(DS.name, [day]) == {day: source(day)}  # the real record, not the stray one
    assert ("stray file", None) in problems_of(st)
    st.verify(DS.name, repair=True)
    assert problems_of(st) == [] and st.files.read(L.record_path(DS.name, day)) == real


def test_a_copy_whose_rows_add_up_but_sit_on_the_wrong_sessions_is_not_used(backend):
    st = backend.open()
    tables = put_days(st, DAYS)
    st.merge_year(DS.name, 2024)
    path = L.merged_path(DS.name, 2024)
    copy = read_parquet(st, path)
    # move one session's rows onto another: the same total, a lie session by session
    a, b = DAYS[1], DAYS[2]
    shift = pc.add(copy["window_start"].cast("int64"), pa.scalar(midnight_ns(b) - midnight_ns(a)))
    moved = copy.set_column(copy.schema.get_field_index("window_start"), "window_start",
                            pc.if_else(pc.equal(L.session_dates(copy, "window_start"), pa.scalar(a, pa.date32())),
                                       shift, copy["window_start"].cast("int64")).cast(copy["window_start"].type))
    st.files.write(path, object_bytes(moved, copy.schema.metadata))
    assert_same(st.read_days(DS.name, DAYS), truth(list(tables.values())))
    assert_same(st.read_ticker(DS.name, DAYS, "NA"),
                truth(list(tables.values())).filter(pc.equal(truth(list(tables.values()))["ticker"], "NA")))
    assert ("derived copy", None) in problems_of(st)


@pytest.mark.parametrize("change", ["microseconds", "string close", "extra column"])
def test_a_copy_or_session_object_of_another_schema_is_never_served(backend, change):
    st = backend.open()
    tables = put_days(st, DAYS[:3])
    st.merge_year(DS.name, 2024)
    path = L.merged_path(DS.name, 2024)
    copy = read_parquet(st, path)

    def alter(t: pa.Table) -> pa.Table:
        if change == "microseconds":
            i = t.schema.get_field_index("window_start")
            return t.set_column(i, "window_start", t["window_start"].cast(pa.timestamp("us", tz="UTC")))
        if change == "string close":
            i = t.schema.get_field_index("close")
            return t.set_column(i, "close", t["close"].cast(pa.string()))
        return t.append_column("extra", pa.array([1] * t.num_rows))

    st.files.write(path, object_bytes(alter(copy), copy.schema.metadata))
    want = truth(list(tables.values()))
    assert_same(st.read_days(DS.name, DAYS[:3]), want)  # the session objects answer
    assert ("derived copy", None) in problems_of(st)
    # and a session object of another schema is an error naming the repair, never an answer
    obj = named(st, DS.name, DAYS[0])
    own = read_parquet(st, obj)
    st.files.write(obj, object_bytes(alter(own), own.schema.metadata))
    st.files.delete(path)
    with pytest.raises(DataIntegrityError, match="another schema.*verify --repair"):
        st.read_days(DS.name, DAYS[:3])
    assert ("damaged session", DAYS[0]) in problems_of(st)


@pytest.mark.parametrize("body", ['{"key": "k", "etag": "e", "size": 1e400}', '{"key": "k", "etag": "e", "size": 1, "rows": 1e999}',
                                  '{"key": "k", "etag": "e", "size": true}', '{"key": "k", "etag": "e", "size": 1, "data": "bars/year=2024/date=2024-03-04/x/../../y.parquet"}'])
def test_a_record_of_any_number_or_path_is_damaged_never_a_crash(backend, body):
    st = backend.open()
    put_days(st, DAYS[:3])
    st.files.write(L.record_path(DS.name, DAYS[1]), body.encode())
    assert sorted(st.stored(DS.name, DAYS[:3])) == [DAYS[0], DAYS[2]]
    assert ("damaged record", DAYS[1]) in problems_of(st)


def test_a_mark_in_the_future_does_not_keep_a_session_from_being_asked(backend):
    st = backend.open()
    day = DAYS[-1]
    st.files.write(L.mark_path(DS.name, day), json.dumps({"checked_at": "2999-01-01T00:00:00+00:00"}).encode())
    assert st.known_missing(DS.name, [day], day) == set()
    assert ("damaged mark", day) in problems_of(st)


def test_temp_files_of_a_dead_writer_are_found_beside_records_copies_and_marks(tmp_path):
    st = store.open_store(tmp_path, "store", (DS, DS_SESSION))
    put_days(st, DAYS[:2])
    st.merge_year(DS.name, 2024)
    root = tmp_path / "store"
    dead = [root / L.record_dir(DS.name, 2024) / ".x.json.999999999-dead.tmp",
            root / "_merged" / DS.name / "year=2024" / ".data.parquet.999999999-dead.tmp",
            root / L.mark_dir(DS.name) / ".y.json.999999999-dead.tmp"]
    for p in dead:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"half")
    assert [w for w, _d in problems_of(st)].count("stale temp file") == 3
    st.verify(DS.name, repair=True)
    assert not any(p.exists() for p in dead) and problems_of(st) == []
