"""The store's derived year copy: merging sessions a ticker range at a time equals one full
sort, whatever the step; the copy serves one-ticker questions and a cross-section of a few
sessions reads those sessions' own objects, never the whole year."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from finrpt_providers import calendar
from finrpt_providers.store import Dataset, Source, normalise, open_store
from finrpt_providers.store import engine as E

RNG = np.random.default_rng(3)
COLS = (("ticker", "string"), ("volume", "float64"), ("open", "float64"), ("close", "float64"),
        ("high", "float64"), ("low", "float64"), ("window_start", "timestamp"), ("transactions", "int64"))
D = Dataset("d", "year", COLS)


def _day(d: dt.date, tickers: list[str], scale: float = 1.0) -> pa.Table:
    n = len(tickers)
    ws = int(dt.datetime(d.year, d.month, d.day, tzinfo=ZoneInfo("America/New_York")).timestamp()) * 10**9
    c = RNG.uniform(1, 100, n) * scale
    return pa.table({"ticker": pa.array(tickers), "volume": RNG.uniform(1, 1e6, n), "open": c, "close": c,
                     "high": c * 1.1, "low": c * 0.9,
                     "window_start": pa.array(np.full(n, ws), pa.int64()).cast(pa.timestamp("ns", tz="UTC")),
                     "transactions": pa.array(RNG.integers(1, 100, n))})


def _sorted(t: pa.Table) -> pa.Table:
    return t.sort_by([("ticker", "ascending"), ("window_start", "ascending")])


@pytest.mark.parametrize("step", [E.MERGE_STEP, 3000, 500])
def test_merging_by_ticker_ranges_equals_a_full_sort(tmp_path, monkeypatch, step):
    monkeypatch.setattr(E, "MERGE_STEP", step)
    monkeypatch.setattr(E, "ROW_GROUP", 1024)  # many old row groups: the merge reads them range by range
    universe = sorted({"".join(RNG.choice(list("ABCDEFGHIJ"), RNG.integers(1, 4))) for _ in range(2000)} | {"NA"})
    days = calendar.sessions(dt.date(2025, 1, 1), dt.date(2025, 2, 28))
    store = open_store(tmp_path, "p", [D])
    truth: dict[dt.date, pa.Table] = {}
    for batch in (days[:15], days[15:17], days[17:]):  # a first fill, a small update, the rest
        tables = {}
        for d in batch:
            tickers = sorted(RNG.choice(universe, len(universe) * 9 // 10, replace=False).tolist())
            tables[d] = (_day(d, tickers), Source(f"k{d}", "e", 1))
            truth[d] = normalise(tables[d][0], D)
        store.put("d", tables)
        assert store.merge_year("d", 2025) == len(truth)
    replaced = days[4]  # replaced upstream: a new version of a session already merged
    again = _day(replaced, universe[:40], scale=3.0)
    store.put("d", {replaced: (again, Source("k", "e2", 1))})
    store.merge_year("d", 2025)
    truth[replaced] = normalise(again, D)
    want = _sorted(pa.concat_tables(truth.values()))
    path = tmp_path / "p" / "_merged" / "d" / "year=2025" / "data.parquet"
    got = pq.read_table(path, partitioning=None).replace_schema_metadata(None)  # the file (pyarrow < 25: +year=)
    assert got.num_rows == want.num_rows and got.equals(want)
    assert pq.ParquetFile(path).metadata.row_group(0).num_rows <= 1024
    # and the store answers from it
    t = store.read_tickers("d", days, ["NA"])
    assert t.equals(want.filter(pc.equal(want.column("ticker"), "NA")))
    assert store.verify("d") == []


def test_one_ticker_reads_the_copy_and_a_cross_section_reads_its_sessions(tmp_path, monkeypatch):
    store = open_store(tmp_path, "p", [D])
    days = calendar.sessions(dt.date(2025, 3, 3), dt.date(2025, 3, 21))
    universe = sorted([f"T{i:03d}" for i in range(300)] + ["NA", "BRK.A", "BRKA"])
    truth = {d: normalise(_day(d, universe), D) for d in days}
    store.put("d", {d: (truth[d], Source(f"k{d}", "e1", 1)) for d in days})
    store.merge_year("d", 2025)
    from finrpt_providers.store.files import LocalFiles

    opened: list[str] = []
    real = LocalFiles.reader

    def spy(self, path, entry):
        opened.append(path)
        return real(self, path, entry)

    monkeypatch.setattr(LocalFiles, "reader", spy)
    got = store.read_ticker("d", days, "NA")
    assert got.equals(_sorted(pa.concat_tables([t.filter(pc.equal(t.column("ticker"), "NA")) for t in truth.values()])))
    assert opened and all("_merged" in p for p in opened)  # one file for the year, not 15
    opened.clear()
    cross = store.read_days("d", [days[5]])
    assert cross.equals(truth[days[5]])
    assert opened and not any("_merged" in p for p in opened)  # that session's own object only
