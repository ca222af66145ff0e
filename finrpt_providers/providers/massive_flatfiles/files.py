"""Massive flat files: their schemas, gzip decompression, full parses and one-ticker scans.

Everything here works on bytes or binary streams, so it is tested without S3.
Decompression uses ISA-L (``isal``) when installed: ~3.6x the speed of zlib here,
which is the ceiling of every reader of these files (see shared performance notes).
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, BinaryIO

from ... import redact
from ...errors import DataIntegrityError
from ...store import Dataset, normalise

if TYPE_CHECKING:
    import pyarrow as pa

log = redact.logger(__name__)
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
#: how the store keeps an aggregates file: the bucket's columns, ``window_start`` (a bar's start,
#: nanoseconds UTC) dates a row, rows sorted by ticker
STORE_COLUMNS = (("ticker", "string"), ("volume", "float64"), ("open", "float64"), ("close", "float64"),
                 ("high", "float64"), ("low", "float64"), ("window_start", "timestamp"), ("transactions", "int64"))
# a day file is small (~12k rows): its sessions also kept as one copy per year, by ticker;
# a minute file is large (~1.8M rows): one object per session only
STORE_LAYOUTS = {"day_aggs_v1": "year", "minute_aggs_v1": "session"}


def store_dataset(dataset: str, check=None) -> Dataset:
    """What the store keeps of ``dataset`` (declared here, by the owner of the files)."""
    return Dataset(dataset, STORE_LAYOUTS[dataset], STORE_COLUMNS, time="window_start", key="ticker", check=check)


DATASETS = tuple(COLUMNS)
#: a file's typical compressed size in MB (2026), for estimating what a query would download
TYPICAL_MB = {"day_aggs_v1": 0.3, "minute_aggs_v1": 28.0}
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
#: the most bytes one decompressed piece holds (input beyond it waits in the decompressor)
PIECE_SIZE = 4 << 20
#: decompressed bytes allowed: this floor plus MAX_RATIO times the compressed bytes read so
#: far. Real files inflate 2-5x (minute files ~4.6x, trades ~3x; the synthetic ones 1.7-3.5x),
#: so an honest file never comes near; a gzip bomb (1 MB -> 400 MB) stops at ~20 MB.
MAX_RATIO = 12
RATIO_FLOOR = 8 << 20


def key_for(dataset: str, day) -> str:
    """S3 key of one dataset's file for one session."""
    return f"{PREFIX}/{dataset}/{day.year:04d}/{day.month:02d}/{day.isoformat()}.csv.gz"


def _decompressor():
    try:
        from isal import isal_zlib

        return isal_zlib.decompressobj(wbits=31), (isal_zlib.error, zlib.error, OSError, ValueError)
    except ImportError:
        return zlib.decompressobj(wbits=31), (zlib.error, OSError, ValueError)


def _bomb(key: str, out: int, inp: int) -> DataIntegrityError:
    return DataIntegrityError(f"{key} inflates past {out >> 20} MiB from {max(inp, 1) / 2**20:.1f} MiB compressed "
                              f"(more than {MAX_RATIO}x, which no real flat file does): refused as a "
                              "decompression bomb; it was not stored", provider=NAME)


def _check_inflation(key: str, out: int, inp: int) -> None:
    if out > RATIO_FLOOR + MAX_RATIO * inp:
        raise _bomb(key, out, inp)


def iter_decompressed(chunks: Iterator[bytes], key: str) -> Iterator[bytes]:
    """gzip (possibly multi-member) chunks -> decompressed pieces of at most PIECE_SIZE;
    truncation or corruption raises DataIntegrityError naming ``key``, and so does
    inflating past the MAX_RATIO bound (a gzip bomb), before the excess is produced."""
    d, errors = _decompressor()
    any_input = member_open = False
    total_in = total_out = 0
    try:
        for chunk in chunks:
            total_in += len(chunk)
            while chunk:
                any_input = member_open = True
                out = d.decompress(chunk, PIECE_SIZE)
                while True:
                    if out:
                        total_out += len(out)
                        _check_inflation(key, total_out, total_in)
                        yield out
                    if not d.unconsumed_tail:
                        break
                    out = d.decompress(d.unconsumed_tail, PIECE_SIZE)
                if not d.eof:
                    break
                chunk, member_open = d.unused_data, False
                if not chunk.strip(b"\0"):
                    break  # zero padding after the last member
                d, errors = _decompressor()
        if member_open:
            tail = d.flush()
            if tail:
                total_out += len(tail)
                _check_inflation(key, total_out, total_in)
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


#: compressed files smaller than this are inflated in one call and parsed on one thread
SMALL_FILE = 2 << 20


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
                              read_options=pacsv.ReadOptions(block_size=16 << 20, use_threads=len(text) > SMALL_FILE * 4))
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
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if not data:
        raise DataIntegrityError(f"{key} is empty: it was not stored", provider=NAME)
    if (len(data) >= 18 and int.from_bytes(data[-4:], "little") > RATIO_FLOOR + MAX_RATIO * len(data)) \
            or len(data) < SMALL_FILE:
        # gzip's trailer announces more than the bound: a bomb, or a cut file whose last bytes
        # are not a trailer. Inflate first, bounded, before any parsing: either way it ends in
        # the right error, without pyarrow ever holding the excess. A small file (a day of
        # daily bars) is also inflated in one go: a decompression thread costs more than it saves.
        text = decompress(data, key)
        return parse_csv(text, dataset, key), len(text)
    fh = igzip_threaded.open(io.BytesIO(data), "rb", threads=1)
    try:
        check_header(fh.readline(PIECE_SIZE), dataset, key)  # consumed: the names are given to pyarrow
        bounded = _Inflating(fh, key, len(data))
        try:
            table = pacsv.read_csv(bounded, convert_options=_convert_options(dataset),
                                   read_options=pacsv.ReadOptions(block_size=16 << 20,
                                                                  column_names=list(COLUMNS[dataset])))
        finally:
            bounded.check()  # a bomb is reported as one, not as the parse error its cut-off tail makes
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


class _Inflating(io.RawIOBase):
    """A decompressing file that ends early (``bombed`` set) once its output passes the
    MAX_RATIO bound of the known compressed size, so pyarrow never parses a bomb. It ends
    rather than raising: an exception thrown into pyarrow's read-ahead thread can leave
    that thread stuck at interpreter exit."""

    def __init__(self, fh, key: str, compressed: int) -> None:
        super().__init__()
        self.fh, self.key, self.compressed, self.out, self.bombed = fh, key, compressed, 0, False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.bombed:
            return b""
        data = self.fh.read(PIECE_SIZE if size is None or size < 0 else min(size, PIECE_SIZE))
        self.out += len(data)
        if self.out > RATIO_FLOOR + MAX_RATIO * self.compressed:
            self.bombed = True
            return b""
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def check(self) -> None:
        if self.bombed:
            raise _bomb(self.key, self.out, self.compressed)


def parse_file(data: bytes, dataset: str, key: str) -> pa.Table:
    """A whole downloaded gzip file -> its table."""
    return parse_gzip(data, dataset, key)[0]


def _ticker_at(buf: bytes, start: int) -> bytes:
    comma = buf.find(b",", start, start + 64)
    return buf[start:comma if comma >= 0 else len(buf)]


def scan_ticker(source: bytes | BinaryIO, ticker: str, dataset: str, key: str,
                max_block_bytes: int = 64 << 20) -> Iterator[pa.Table]:
    """Yield tables of ``ticker``'s rows from a gzip file sorted by ticker, in bounded memory.

    Decompresses as a stream (pieces of at most PIECE_SIZE, the whole bounded against
    gzip bombs). While the file keeps its order, a piece is skipped after two checks
    that cost a ``bytes.find`` (its last line sorts before the ticker, and no line of it
    is the ticker's), the ticker's block is cut out by bisection and checked to hold
    every one of the piece's lines of the ticker and nothing else, and reading stops
    right after the block. The first sign of disorder (pieces out of order, a piece not
    sorted, the ticker's lines where the order says they cannot be) switches to reading
    the rest of the file and keeping every line of the ticker wherever it is, with a
    warning: never a wrong or partial answer from trusting an order that is not there.
    Rows of the ticker after the point where a sorted file ends them are not looked for
    (that is the point of the scan). Every table yielded holds only ``ticker``'s rows.
    """
    import numpy as np

    target = ticker.encode()
    line_start = b"\n" + target + b","
    header: bytes | None = None
    head = b""  # bytes before the header line is complete
    carry = b""  # the partial line at the end of the previous piece
    prev_last: bytes | None = None
    ordered = True
    block: list[bytes] = []
    block_size = 0
    stop = False

    def pieces() -> Iterator[bytes]:
        yield from iter_decompressed(_chunks(source), key)
        yield b"\n"  # closes a last line without a newline (an empty line is harmless)

    def flush() -> Iterator[pa.Table]:
        nonlocal block, block_size
        if block:
            table = parse_csv(header + b"".join(block), dataset, key)
            block, block_size = [], 0
            _check_only(table, ticker, key)
            yield table

    def disorder(why: str) -> None:
        nonlocal ordered
        ordered = False
        log.warning("%s is not sorted by ticker (%s): reading all of it to find every %s row", key, why, ticker)

    for piece in pieces():
        if header is None:
            head += piece
            nl = head.find(b"\n")
            if nl < 0:
                if len(head) > PIECE_SIZE:
                    raise DataIntegrityError(f"{key} has no header line", provider=NAME)
                continue
            header, piece = head[: nl + 1], head[nl + 1:]
            check_header(header, dataset, key)
        last_nl = piece.rfind(b"\n")
        if last_nl < 0:
            carry += piece
            if len(carry) > PIECE_SIZE:
                raise DataIntegrityError(f"{key} has a line longer than {PIECE_SIZE >> 20} MiB: not a flat file",
                                         provider=NAME)
            continue
        body = carry + piece[: last_nl + 1]  # whole lines only
        carry = piece[last_nl + 1:]
        if not body.strip(b"\n"):
            continue
        if ordered:
            prev_nl = body.rfind(b"\n", 0, len(body) - 1)
            first_t, last_t = _ticker_at(body, 0), _ticker_at(body, prev_nl + 1)
            if prev_last is not None and first_t < prev_last:
                disorder(f"a piece starts with {first_t!r} after {prev_last!r}")
            elif first_t > last_t:
                disorder(f"a piece starts with {first_t!r} and ends with {last_t!r}")
            else:
                prev_last = last_t
        if ordered and last_t < target:
            if body.startswith(target + b",") or line_start in body:
                disorder(f"{ticker} rows among tickers sorting before it")
            else:
                continue  # the whole piece sorts before the ticker, and holds none of it
        if ordered:
            starts = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == 10)[:-1] + 1
            starts = np.concatenate(([0], starts))
            lo = _bisect(body, starts, target, right=False)
            hi = _bisect(body, starts, target, right=True)
            a = int(starts[lo]) if lo < len(starts) else len(body)
            b = int(starts[hi]) if hi < len(starts) else len(body)
            inside = body.count(line_start, a - 1 if a else 0, b) + (a == 0 and body.startswith(target + b","))
            elsewhere = (line_start in body[:max(a - 1, 0)] or body.startswith(target + b",") and a > 0
                         or line_start in body[max(b - 1, 0):])
            if inside != hi - lo or elsewhere:
                disorder(f"{ticker} rows outside their sorted place")
            else:
                if a < b:
                    block.append(body[a:b])
                    block_size += b - a
                stop = hi < len(starts)  # past the ticker: stop reading
        if not ordered:  # every line of the ticker, wherever it is
            if body.startswith(target + b","):
                end = body.find(b"\n") + 1
                block.append(body[:end])
                block_size += end
            pos = body.find(line_start)
            while pos >= 0:
                end = body.find(b"\n", pos + 1) + 1
                block.append(body[pos + 1:end])
                block_size += end - pos - 1
                pos = body.find(line_start, end - 1)
        if block_size >= max_block_bytes:
            yield from flush()
        if stop:
            break
    if header is None:
        raise DataIntegrityError(f"{key} has no header line", provider=NAME)
    yield from flush()


def _check_only(table: pa.Table, ticker: str, key: str) -> None:
    """Every row is ``ticker``'s (a scan that yields another's would be our bug: never served)."""
    import pyarrow.compute as pc

    col = table.column("ticker")
    if table.num_rows and not pc.all(pc.equal(col, ticker)).as_py():
        other = pc.filter(col, pc.not_equal(col, ticker))[0].as_py()
        raise DataIntegrityError(f"the scan of {key} for {ticker} found a row of {other!r}: refused", provider=NAME)


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


def check_aggregates(table: pa.Table, day, dataset: str, key: str) -> pa.Table:
    """A parsed aggregates file of session ``day`` -> the rows to store, sorted by ticker then
    time. Every row must be of that session (its ``window_start`` in New York falls on
    ``day``: a row of another date, or milliseconds where nanoseconds belong, is refused
    with the key named, never served as another session's bar). The same bar listed twice
    identically is kept once (logged); twice with different values is refused."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = normalise(table, store_dataset(dataset))
    if not t.num_rows:
        return t
    local = pc.cast(pc.cast(t.column("window_start"), pa.timestamp("ns", tz="America/New_York")), pa.date32())
    other = pc.not_equal(local, pa.scalar(day, pa.date32()))
    if pc.any(other).as_py():
        i = pc.index(other, True).as_py()
        raise DataIntegrityError(
            f"{key} holds {pc.sum(other).as_py()} row(s) of another session (first: {t.column('ticker')[i]} at "
            f"{t.column('window_start')[i].as_py()}, i.e. {local[i]}; timestamps must be nanoseconds within "
            f"{day}): it was not stored", provider=NAME)
    n = t.num_rows
    tk, ws = t.column("ticker"), t.column("window_start")
    same = pc.and_(pc.equal(tk.slice(0, n - 1), tk.slice(1)), pc.equal(ws.slice(0, n - 1), ws.slice(1)))
    if not pc.any(same).as_py():
        return t
    dup = pc.indices_nonzero(same).to_pylist()  # row i equals row i + 1 by key
    a, b = t.take(pa.array(dup)), t.take(pa.array([i + 1 for i in dup]))
    if not a.equals(b):
        j = next(k for k in range(len(dup)) if a.slice(k, 1) != b.slice(k, 1))
        raise DataIntegrityError(f"{key} lists two different {dataset} bars of {a.column('ticker')[j]} at "
                                 f"{a.column('window_start')[j].as_py()}: it was not stored (which one is true "
                                 "cannot be known)", provider=NAME)
    log.warning("%s lists %d bar(s) twice, identically (first: %s at %s): each stored once", key, len(dup),
                a.column("ticker")[0], a.column("window_start")[0].as_py())
    same = same.combine_chunks() if isinstance(same, pa.ChunkedArray) else same
    return t.filter(pc.invert(pa.concat_arrays([pa.array([False]), same])))  # row i + 1 of each pair goes
