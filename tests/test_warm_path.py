"""The warm path's shortcuts stay correct: the store's caches follow the files on disk,
and merging sessions into a year file a ticker range at a time equals one full sort."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from finrpt_providers import calendar
from finrpt_providers import store as S
from finrpt_providers.errors import DataIntegrityError

RNG = np.random.default_rng(3)


def _day(d: dt.date, tickers: list[str], scale: float = 1.0) -> pa.Table:
    n = len(tickers)
    ws = int(dt.datetime(d.year, d.month, d.day, tzinfo=ZoneInfo("America/New_York")).timestamp()) * 10**9
    c = RNG.uniform(1, 100, n) * scale
    return pa.table({"ticker": pa.array(tickers), "volume": RNG.uniform(1, 1e6, n), "open": c, "close": c,
                     "high": c * 1.1, "low": c * 0.9,
                     "window_start": pa.array(np.full(n, ws), pa.int64()).cast(pa.timestamp("ns", tz="UTC")),
                     "transactions": pa.array(RNG.integers(1, 100, n))})


@pytest.mark.parametrize("step", [S.MERGE_STEP, 3000, 500])
def test_merging_by_ticker_ranges_equals_a_full_sort(tmp_path, monkeypatch, step):
    monkeypatch.setattr(S, "MERGE_STEP", step)
    monkeypatch.setattr(S, "ROW_GROUP", 1024)  # many old row groups: the merge reads them range by range
    universe = sorted({"".join(RNG.choice(list("ABCDEFGHIJ"), RNG.integers(1, 4))) for _ in range(2000)} | {"NA"})
    days = calendar.sessions(dt.date(2025, 1, 1), dt.date(2025, 2, 28))
    store = S.Store(tmp_path, "p", {"d": S.YEAR})
    truth: dict[dt.date, pa.Table] = {}
    for batch in (days[:15], days[15:17], days[17:]):  # a first fill, a small update, the rest
        tables = {}
        for d in batch:
            tickers = sorted(RNG.choice(universe, len(universe) * 9 // 10, replace=False).tolist())
            tables[d] = (_day(d, tickers), S.Source(f"k{d}", "e", 1))
            truth[d] = S.to_store_table(tables[d][0])
        store.put("d", tables)
    replaced = days[4]  # replaced upstream: a new version of a session already merged
    again = _day(replaced, universe[:40], scale=3.0)
    store.put("d", {replaced: (again, S.Source("k", "e2", 1))})
    truth[replaced] = S.to_store_table(again)
    want = pa.concat_tables(truth.values()).sort_by([("ticker", "ascending"), ("window_start", "ascending")])
    path = tmp_path / "p" / "d" / "year=2025" / "data.parquet"
    got = pq.read_table(path)
    assert got.num_rows == want.num_rows and got.equals(want)
    assert pq.ParquetFile(path).metadata.row_group(0).num_rows <= 1024
    # and the store answers from it
    t = store.read_tickers("d", days, ["NA"])
    assert t.equals(want.filter(pc.equal(want.column("ticker"), "NA")))


def test_the_cached_manifest_and_footer_follow_the_files(tmp_path):
    store = S.Store(tmp_path, "p", {"d": S.YEAR})
    d1, d2 = dt.date(2025, 3, 3), dt.date(2025, 3, 4)
    store.put("d", {d1: (_day(d1, ["AAPL", "MSFT"]), S.Source("k1", "e", 1))})
    assert list(store.stored("d", [d1, d2])) == [d1]
    assert store.read_tickers("d", [d1, d2], ["MSFT"]).num_rows == 1
    # another process (here: a second Store on the same directory) adds a session
    S.Store(tmp_path, "p", {"d": S.YEAR}).put("d", {d2: (_day(d2, ["MSFT"]), S.Source("k2", "e", 1))})
    assert sorted(store.stored("d", [d1, d2])) == [d1, d2]
    assert store.read_tickers("d", [d1, d2], ["MSFT"]).num_rows == 2
    # a hand-edited manifest is read again, and a damaged one is refused, not served from the cache
    manifest = tmp_path / "p" / "d" / "year=2025" / S.MANIFEST
    body = json.loads(manifest.read_text())
    del body["days"][d1.isoformat()]
    manifest.write_text(json.dumps(body, indent=2))
    assert list(store.stored("d", [d1, d2])) == [d2]
    manifest.write_text("{not json")
    with pytest.raises(DataIntegrityError, match="verify --repair"):
        store.stored("d", [d1, d2])
    # a year file deleted by hand: not stored any more (a query fetches it again)
    manifest.write_text(json.dumps(body))
    (tmp_path / "p" / "d" / "year=2025" / "data.parquet").unlink()
    assert store.stored("d", [d1, d2]) == {}


def test_session_files_are_checked_once_per_year_directory(tmp_path, monkeypatch):
    store = S.Store(tmp_path, "p", {"m": S.SESSION})
    days = calendar.sessions(dt.date(2025, 3, 3), dt.date(2025, 3, 14))
    store.put("m", {d: (_day(d, ["AAPL"]), S.Source(f"k{d}", "e", 1)) for d in days})
    import os

    listed, stats = [], []
    real_listdir, real_stat = os.listdir, os.stat
    monkeypatch.setattr(S.os, "listdir", lambda p: listed.append(p) or real_listdir(p))
    monkeypatch.setattr(S.os, "stat", lambda p, *a, **k: stats.append(p) or real_stat(p, *a, **k))
    assert sorted(store.stored("m", days)) == days
    assert len(listed) == 1 and len(stats) == 1  # the year directory once, the manifest once
    # a session directory removed by hand is no longer stored
    import shutil

    shutil.rmtree(tmp_path / "p" / "m" / "year=2025" / f"date={days[2].isoformat()}")
    assert days[2] not in store.stored("m", days)


def _cross(store, dataset, days):
    t = store.read_days(dataset, days)
    return t.sort_by([("ticker", "ascending"), ("window_start", "ascending")])


def test_a_cross_section_reads_one_row_group_of_the_session_ordered_copy(tmp_path, monkeypatch):
    store = S.Store(tmp_path, "p", {"d": S.YEAR})
    days = calendar.sessions(dt.date(2025, 3, 3), dt.date(2025, 3, 21))
    universe = [f"T{i:03d}" for i in range(300)] + ["NA", "BRK.A", "BRKA"]
    store.put("d", {d: (_day(d, sorted(universe)), S.Source(f"k{d}", "e1", 1)) for d in days[:10]})
    store.put("d", {d: (_day(d, sorted(universe[:50])), S.Source(f"k{d}", "e1", 1)) for d in days[10:]})
    replaced = days[3]
    store.put("d", {replaced: (_day(replaced, ["NA", "ZZZ"]), S.Source("k", "e2", 1))})
    copy = store.session_path("d", 2025)
    assert copy.exists() and not str(copy).startswith(str(tmp_path / "p" / "d"))  # Hive readers never see it
    assert pq.ParquetFile(copy).metadata.num_row_groups == len(days)  # one row group a session
    year = pq.read_table(tmp_path / "p" / "d" / "year=2025" / "data.parquet")
    for ask in ([days[5]], [replaced], days[8:13], days):
        got = _cross(store, "d", ask)
        local = pc.cast(pc.cast(year.column("window_start"), pa.timestamp("ns", tz="America/New_York")), pa.date32())
        want = year.filter(pc.is_in(local, value_set=pa.array(ask, pa.date32())))
        assert got.equals(want.sort_by([("ticker", "ascending"), ("window_start", "ascending")]))
    assert set(_cross(store, "d", [replaced]).column("ticker").to_pylist()) == {"NA", "ZZZ"}
    # read through the copy: one row group of it, never the year file
    reads = []
    real = pq.ParquetFile.read_row_groups
    monkeypatch.setattr(pq.ParquetFile, "read_row_groups", lambda self, g, **k: reads.append(list(g)) or real(self, g, **k))
    monkeypatch.setattr(pq, "read_table", lambda *a, **k: pytest.fail("the year file was read whole"))
    store.read_days("d", [days[5]])
    assert reads == [[5]]


def test_a_copy_that_disagrees_with_the_manifest_is_not_used(tmp_path):
    store = S.Store(tmp_path, "p", {"d": S.YEAR})
    d1, d2 = dt.date(2025, 3, 3), dt.date(2025, 3, 4)
    store.put("d", {d1: (_day(d1, ["AAPL", "MSFT"]), S.Source("k1", "e1", 1)),
                    d2: (_day(d2, ["AAPL"]), S.Source("k2", "e1", 1))})
    before = _cross(store, "d", [d1, d2])
    manifest = tmp_path / "p" / "d" / "year=2025" / S.MANIFEST
    body = json.loads(manifest.read_text())
    body["days"][d1.isoformat()]["etag"] = "another version"  # as if the copy were left stale
    manifest.write_text(json.dumps(body))
    assert _cross(store, "d", [d1, d2]).equals(before)  # served from the year file instead
    # a store from before the copy: its year file is read, and no partial copy is ever made
    store.session_path("d", 2025).unlink()
    d3 = dt.date(2025, 3, 5)
    store.put("d", {d3: (_day(d3, ["AAPL"]), S.Source("k3", "e1", 1))})
    assert not store.session_path("d", 2025).exists()
    assert _cross(store, "d", [d1, d3]).num_rows == 3
    # damaged copy: only a lost shortcut
    S.Store(tmp_path, "q", {"d": S.YEAR}).put("d", {d1: (_day(d1, ["AAPL"]), S.Source("k1", "e1", 1))})
    other = S.Store(tmp_path, "q", {"d": S.YEAR})
    other.session_path("d", 2025).write_bytes(b"not parquet")
    assert other.read_days("d", [d1]).num_rows == 1


def test_verify_checks_the_session_copy_and_repair_removes_a_damaged_one(tmp_path):
    store = S.Store(tmp_path, "p", {"d": S.YEAR})
    d1, d2 = dt.date(2025, 3, 3), dt.date(2025, 3, 4)
    store.put("d", {d1: (_day(d1, ["AAPL", "MSFT"]), S.Source("k1", "e1", 1)),
                    d2: (_day(d2, ["AAPL"]), S.Source("k2", "e1", 1))})
    assert store.verify("d") == []
    manifest = tmp_path / "p" / "d" / "year=2025" / S.MANIFEST
    body = json.loads(manifest.read_text())
    body["days"][d2.isoformat()]["rows"] = 5  # the copy (and the year file) disagree with the record
    manifest.write_text(json.dumps(body))
    found = store.verify("d")
    assert {(p.day, p.what) for p in found} == {(d2, "row count"), (d2, "session copy")}
    body["days"][d2.isoformat()]["rows"] = 1
    manifest.write_text(json.dumps(body))
    store.session_path("d", 2025).write_bytes(b"damaged")
    found = store.verify("d", clean_temp=True)
    assert [p.what for p in found] == ["session copy"] and "removed" in found[0].detail
    assert not store.session_path("d", 2025).exists() and store.verify("d") == []
