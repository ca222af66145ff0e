"""Massive flat files: their schemas, gzip decompression, full parses and one-ticker scans.

Everything here works on bytes or binary streams, so it is tested without S3.
Decompression uses ISA-L (``isal``) when installed: ~3.6x the speed of zlib here,
which is the ceiling of every reader of these files (see shared performance notes).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, BinaryIO

from ...errors import DataIntegrityError

if TYPE_CHECKING:
    import pyarrow as pa

NAME = "massive_flatfiles"
PREFIX = "us_stocks_sip"  # the bucket's prefix for US stocks, mirrored by the store

AGG_COLUMNS = ("ticker", "volume", "open", "close", "high", "low", "window_start", "transactions")
TRADE_COLUMNS = ("ticker", "conditions", "correction", "exchange", "id", "participant_timestamp", "price",
                 "sequence_number", "sip_timestamp", "size", "tape", "trf_id", "trf_timestamp")
QUOTE_COLUMNS = ("ticker", "ask_exchange", "ask_price", "ask_size", "bid_exchange", "bid_price", "bid_size",
                 "conditions", "indicators", "participant_timestamp", "sequence_number", "sip_timestamp", "tape",
                 "trf_timestamp")
COLUMNS = {"day_aggs_v1": AGG_COLUMNS, "minute_aggs_v1": AGG_COLUMNS, "trades_v1": TRADE_COLUMNS,
           "quotes_v1": QUOTE_COLUMNS}
AGG_DATASETS = ("day_aggs_v1", "minute_aggs_v1")
# How the store keeps them: a day file is small (~12k rows) and merged into its year;
# a minute file is large (~1.8M rows) and kept one per session.
STORE_LAYOUTS = {"day_aggs_v1": "year", "minute_aggs_v1": "session"}
DATASETS = tuple(COLUMNS)
# Volumes and sizes are decimals since 2026-02-23: parse them as float, never as int.
_TYPES = {
    "ticker": "string", "volume": "float64", "open": "float64", "close": "float64", "high": "float64",
    "low": "float64", "window_start": "int64", "transactions": "int64",
    "conditions": "string", "correction": "int64", "exchange": "int64", "id": "string",
    "participant_timestamp": "int64", "price": "float64", "sequence_number": "int64", "sip_timestamp": "int64",
    "size": "float64", "tape": "int64", "trf_id": "string", "trf_timestamp": "int64",
    "ask_exchange": "int64", "ask_price": "float64", "ask_size": "float64", "bid_exchange": "int64",
    "bid_price": "float64", "bid_size": "float64", "indicators": "string",
}
READ_SIZE = 1 << 20  # ISA-L is fastest fed ~1 MiB at a time


def key_for(dataset: str, day) -> str:
    """S3 key of one dataset's file for one session."""
    return f"{PREFIX}/{dataset}/{day.year:04d}/{day.month:02d}/{day.isoformat()}.csv.gz"


def _decompressor():
    try:
        from isal import isal_zlib

        return isal_zlib.decompressobj(wbits=31), (isal_zlib.error, zlib.error, OSError, ValueError)
    except ImportError:
        return zlib.decompressobj(wbits=31), (zlib.error, OSError, ValueError)


def iter_decompressed(chunks: Iterator[bytes], key: str) -> Iterator[bytes]:
    """gzip (possibly multi-member) chunks -> decompressed chunks; truncation or corruption
    raises DataIntegrityError naming ``key``."""
    d, errors = _decompressor()
    any_input = member_open = False
    try:
        for chunk in chunks:
            while chunk:
                any_input = member_open = True
                out = d.decompress(chunk)
                if out:
                    yield out
                if not d.eof:
                    break
                chunk, member_open = d.unused_data, False
                if not chunk.strip(b"\0"):
                    break  # zero padding after the last member
                d, errors = _decompressor()
        if member_open:
            tail = d.flush()
            if tail:
                yield tail
    except errors as e:
        raise DataIntegrityError(f"{key} is not a valid gzip file ({e}): it was not stored; run the "
                                 "query or sync again", provider=NAME) from None
    if not any_input:
        raise DataIntegrityError(f"{key} is empty: it was not stored", provider=NAME)
    if member_open and not d.eof:
        raise DataIntegrityError(f"{key} is truncated (the gzip stream ends early): it was not stored; "
                                 "run the query or sync again", provider=NAME)


def _chunks(data: bytes | BinaryIO, size: int | None = None) -> Iterator[bytes]:
    size = size or READ_SIZE
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = memoryview(data)
        for i in range(0, len(view), size):
            yield bytes(view[i:i + size])
        return
    while True:
        block = data.read(size)
        if not block:
            return
        yield block


def decompress(data: bytes, key: str) -> bytes:
    """A whole gzip file -> its bytes (DataIntegrityError on truncation or corruption)."""
    return b"".join(iter_decompressed(_chunks(data), key))


def check_header(first_line: bytes, dataset: str, key: str) -> None:
    expected = ",".join(COLUMNS[dataset])
    got = first_line.rstrip(b"\r\n").decode("utf-8", "replace")
    if got != expected:
        raise DataIntegrityError(f"{key} has header {got[:200]!r}, not the {dataset} schema {expected!r}: "
                                 "it was not stored (is the dataset name right?)", provider=NAME)


def _convert_options(dataset: str):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    arrow = {"string": pa.string(), "float64": pa.float64(), "int64": pa.int64()}
    types = {c: arrow[_TYPES[c]] for c in COLUMNS[dataset]}
    # Tickers such as "NA" or "NULL" are real: strings are never turned into nulls.
    return pacsv.ConvertOptions(column_types=types, strings_can_be_null=False,
                                null_values=[""], quoted_strings_can_be_null=False)


def parse_csv(text: bytes, dataset: str, key: str) -> pa.Table:
    """Decompressed CSV bytes (with header) -> an Arrow table with the dataset's exact types."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    end = text.find(b"\n")
    check_header(text[: end if end >= 0 else len(text)], dataset, key)
    try:
        return pacsv.read_csv(pa.BufferReader(text), convert_options=_convert_options(dataset),
                              read_options=pacsv.ReadOptions(block_size=16 << 20))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise DataIntegrityError(f"{key} does not parse as {dataset} ({e}): it was not stored", provider=NAME) from None


def parse_gzip(data: bytes, dataset: str, key: str) -> tuple[pa.Table, int]:
    """A whole downloaded gzip file -> (its table, its decompressed size).

    With ISA-L, decompression runs in its own thread while pyarrow parses (the
    fastest combination measured here); otherwise decompress, then parse.
    """
    try:
        from isal import igzip_threaded
    except ImportError:
        text = decompress(data, key)
        return parse_csv(text, dataset, key), len(text)
    import io

    import pyarrow as pa
    import pyarrow.csv as pacsv

    if not data:
        raise DataIntegrityError(f"{key} is empty: it was not stored", provider=NAME)
    fh = igzip_threaded.open(io.BytesIO(data), "rb", threads=1)
    try:
        check_header(fh.readline(), dataset, key)  # consumed: the names are given to pyarrow
        table = pacsv.read_csv(fh, convert_options=_convert_options(dataset),
                               read_options=pacsv.ReadOptions(block_size=16 << 20,
                                                              column_names=list(COLUMNS[dataset])))
        size = fh.tell()
    except EOFError:
        raise DataIntegrityError(f"{key} is truncated (the gzip stream ends early): it was not stored; "
                                 "run the query or sync again", provider=NAME) from None
    except DataIntegrityError:
        raise
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise DataIntegrityError(f"{key} does not parse as {dataset} ({e}): it was not stored",
                                 provider=NAME) from None
    except Exception as e:  # IsalError, OSError, gzip.BadGzipFile: a corrupt stream
        raise DataIntegrityError(f"{key} is not a valid gzip file ({e}): it was not stored; run the "
                                 "query or sync again", provider=NAME) from None
    finally:
        fh.close()
    return table, size


def parse_file(data: bytes, dataset: str, key: str) -> pa.Table:
    """A whole downloaded gzip file -> its table."""
    return parse_gzip(data, dataset, key)[0]


def _ticker_at(buf: bytes, start: int) -> bytes:
    comma = buf.find(b",", start, start + 64)
    return buf[start:comma if comma >= 0 else len(buf)]


def scan_ticker(source: bytes | BinaryIO, ticker: str, dataset: str, key: str,
                max_block_bytes: int = 64 << 20) -> Iterator[pa.Table]:
    """Yield tables of ``ticker``'s rows from a gzip file sorted by ticker, in bounded memory.

    Decompresses as a stream and, until a chunk can hold the ticker, looks only at the
    first and last whole line of each decompressed piece (no copy of the piece); parses
    only the ticker's block (in pieces of at most ``max_block_bytes``) and stops reading
    right after it. A file found not to be sorted raises DataIntegrityError (skipping
    would then be wrong).
    """
    import numpy as np

    target = ticker.encode()
    header: bytes | None = None
    head = b""  # bytes before the header line is complete
    carry = b""  # the partial line at the end of the previous piece
    prev_last: bytes | None = None
    block: list[bytes] = []
    block_size = 0

    def pieces() -> Iterator[bytes]:
        yield from iter_decompressed(_chunks(source), key)
        yield b"\n"  # closes a last line without a newline (an empty line is harmless)

    for piece in pieces():
        if header is None:
            head += piece
            nl = head.find(b"\n")
            if nl < 0:
                continue
            header, piece = head[: nl + 1], head[nl + 1:]
            check_header(header, dataset, key)
        last_nl = piece.rfind(b"\n")
        if last_nl < 0:
            carry += piece
            continue
        first_nl = piece.find(b"\n")
        first_line = carry + piece[:first_nl]
        prev_nl = piece.rfind(b"\n", 0, last_nl)
        last_line = piece[prev_nl + 1:last_nl] if prev_nl >= 0 else first_line
        if not first_line and not last_line:
            carry = piece[last_nl + 1:]
            continue
        first_t, last_t = _ticker_at(first_line, 0), _ticker_at(last_line, 0)
        if (prev_last is not None and first_t < prev_last) or first_t > last_t:
            raise DataIntegrityError(f"{key} is not sorted by ticker: cannot pull one ticker out of it safely",
                                     provider=NAME)
        prev_last = last_t
        if last_t < target:
            carry = piece[last_nl + 1:]
            continue  # the whole piece sorts before the ticker: nothing copied
        body = carry + piece[: last_nl + 1]
        carry = piece[last_nl + 1:]
        starts = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == 10)[:-1] + 1
        starts = np.concatenate(([0], starts))
        lo = _bisect(body, starts, target, right=False)
        hi = _bisect(body, starts, target, right=True)
        if lo < hi:
            end = int(starts[hi]) if hi < len(starts) else len(body)
            block.append(body[int(starts[lo]):end])
            block_size += end - int(starts[lo])
            if block_size >= max_block_bytes:
                yield parse_csv(header + b"".join(block), dataset, key)
                block, block_size = [], 0
        if hi < len(starts):
            break  # past the ticker: stop reading
    if header is None:
        raise DataIntegrityError(f"{key} has no header line", provider=NAME)
    if block:
        yield parse_csv(header + b"".join(block), dataset, key)


def _bisect(body: bytes, starts, target: bytes, right: bool) -> int:
    lo, hi = 0, len(starts)
    while lo < hi:
        mid = (lo + hi) // 2
        t = _ticker_at(body, int(starts[mid]))
        if t < target or (right and t == target):
            lo = mid + 1
        else:
            hi = mid
    return lo
