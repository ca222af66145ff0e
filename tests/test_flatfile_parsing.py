"""Parsing and one-ticker scans of flat files, on bytes (no S3)."""

from __future__ import annotations

import gzip
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finrpt_providers import DataIntegrityError
from finrpt_providers.providers.massive_flatfiles import files as F

HEADER = "ticker,volume,open,close,high,low,window_start,transactions"


def aggs_file(tickers, rows_each=3, newline_at_end=True, fractional=True):
    lines = [HEADER]
    for t in tickers:
        for i in range(rows_each):
            vol = f"{1000 + i}.25" if fractional else str(1000 + i)
            lines.append(f"{t},{vol},1.5,1.6,1.7,1.4,{1_700_000_000_000_000_000 + i * 60_000_000_000},{i + 1}")
    text = "\n".join(lines) + ("\n" if newline_at_end else "")
    return gzip.compress(text.encode())


def test_parse_keeps_na_tickers_and_float_volumes():
    t = F.parse_file(aggs_file(["A", "NA", "NULL", "NAN"]), "day_aggs_v1", "k")
    assert sorted(set(t.column("ticker").to_pylist())) == ["A", "NA", "NAN", "NULL"]
    assert t.schema.field("volume").type == "double" and t.column("volume")[0].as_py() == 1000.25
    assert t.schema.field("window_start").type == "int64"


def test_whole_share_volumes_still_parse_as_float():
    t = F.parse_file(aggs_file(["A"], fractional=False), "day_aggs_v1", "k")
    assert t.schema.field("volume").type == "double"


@pytest.mark.parametrize("ticker,n", [("A", 3), ("BRK.B", 3), ("NA", 3), ("ZZZ", 3), ("B", 0), ("0", 0), ("ZZZZ", 0)])
@pytest.mark.parametrize("newline_at_end", [True, False])
def test_scan_finds_exactly_the_ticker(ticker, n, newline_at_end):
    data = aggs_file(sorted(["A", "AA", "BRK.B", "BRKR", "NA", "ZZZ"]), newline_at_end=newline_at_end)
    tables = list(F.scan_ticker(io.BytesIO(data), ticker, "minute_aggs_v1", "k"))
    assert sum(t.num_rows for t in tables) == n
    assert all(set(t.column("ticker").to_pylist()) == {ticker} for t in tables)


def test_scan_stops_reading_after_the_block(monkeypatch):
    monkeypatch.setattr(F, "READ_SIZE", 16 << 10)
    data = aggs_file([f"T{i:05d}" for i in range(50_000)], rows_each=4)

    class Counting(io.BytesIO):
        read_bytes = 0

        def read(self, n=-1):
            out = super().read(n)
            Counting.read_bytes += len(out)
            return out

    src = Counting(data)
    assert sum(t.num_rows for t in F.scan_ticker(src, "T00010", "minute_aggs_v1", "k")) == 4
    assert Counting.read_bytes < len(data)  # the tail was never read


@pytest.mark.parametrize("ticker,rows", [("A", 200_000), ("B", 200_000), ("Z", 0)])
def test_scan_of_a_file_out_of_order_finds_every_row_and_says_so(ticker, rows, caplog):
    lines = [HEADER] + [f"{t},1,1,1,1,1,{i},1" for i, t in enumerate(["B"] * 200_000 + ["A"] * 200_000)]
    data = gzip.compress(("\n".join(lines) + "\n").encode())
    tables = list(F.scan_ticker(io.BytesIO(data), ticker, "minute_aggs_v1", "k"))
    assert sum(t.num_rows for t in tables) == rows
    assert all(set(t.column("ticker").to_pylist()) == {ticker} for t in tables)
    assert "not sorted by ticker" in caplog.text


def test_multi_member_gzip_and_damage():
    text = (HEADER + "\nA,1,1,1,1,1,1,1\nB,1,1,1,1,1,2,1\n").encode()
    assert F.decompress(gzip.compress(text[:30]) + gzip.compress(text[30:]), "k") == text
    good = gzip.compress(text * 1000)
    for bad, words in [(good[:-20], "truncated"), (b"", "empty"), (good[:20] + b"\xff" * 40 + good[60:], "valid gzip")]:
        with pytest.raises(DataIntegrityError, match=words):
            F.decompress(bad, "us_stocks_sip/x.csv.gz")


def test_wrong_schema_is_refused():
    with pytest.raises(DataIntegrityError, match="not the trades_v1 schema"):
        F.parse_file(aggs_file(["A"]), "trades_v1", "k")
    bad_value = gzip.compress((HEADER + "\nA,lots,1,1,1,1,1,1\n").encode())
    with pytest.raises(DataIntegrityError, match="does not parse"):
        F.parse_file(bad_value, "day_aggs_v1", "k")


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_give_only_data_integrity_errors(blob):
    for data in (blob, gzip.compress(blob)):
        try:
            F.parse_file(data, "day_aggs_v1", "k")
        except DataIntegrityError:
            pass
        try:
            list(F.scan_ticker(io.BytesIO(data), "A", "day_aggs_v1", "k"))
        except DataIntegrityError:
            pass


def test_key_layout():
    import datetime as dt

    assert F.key_for("minute_aggs_v1", dt.date(2026, 3, 2)) == "us_stocks_sip/minute_aggs_v1/2026/03/2026-03-02.csv.gz"
