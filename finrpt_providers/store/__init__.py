"""The store: one protocol, one engine, any filesystem.

A provider that keeps bars on disk or object storage declares its datasets
(:class:`Dataset`: columns, which one is time, which one is the key, ``year`` or
``session`` layout) and opens its store with :func:`open_store`; everything else (the
providers, ``finrpt_providers.dask.read_bars``, ``sync`` and ``verify``) uses the
operations of :class:`Store` only. One engine (:mod:`.engine`) implements them over one
small filesystem abstraction (:mod:`.files`): a local directory, ``file://``, ``s3://``
(the store's own ``FINRPT_STORE_S3_*`` credentials) or anything fsspec opens
(``memory://``), with one layout (:mod:`.layout`) and one consistency model everywhere.
Every request to object storage has a total deadline (``FINRPT_STORE_REQUEST_DEADLINE``).

The store knows no provider and no network source: it imports the base modules and
``config`` only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .engine import Engine, SessionGone, normalise
from .files import files_for
from .layout import SESSION, YEAR, Dataset, Problem, Source

if TYPE_CHECKING:
    import pyarrow as pa

    from ..config import Config


@runtime_checkable
class Store(Protocol):
    """What a store does for the providers, ``read_bars``, ``sync`` and ``verify``."""

    root: str  # where it is, fit to print (never a credential)
    local: bool  # on this machine's disk (a cluster's other machines cannot reach it)

    def per_year(self, dataset: str) -> bool: ...
    def stored(self, dataset: str, days: Iterable[dt.date]) -> dict[dt.date, Source]: ...
    def known_missing(self, dataset: str, days: Iterable[dt.date], today: dt.date,
                      now: dt.datetime | None = None) -> set[dt.date]: ...
    def record_missing(self, dataset: str, days: Iterable[dt.date]) -> None: ...
    def put(self, dataset: str, tables: dict[dt.date, tuple[pa.Table, Source]]) -> None: ...
    def merge_year(self, dataset: str, year: int) -> int: ...
    def behind(self, dataset: str, year: int) -> bool: ...
    def read_tickers(self, dataset: str, days: Iterable[dt.date], tickers: list[str] | None) -> pa.Table: ...
    def read_ticker(self, dataset: str, days: Iterable[dt.date], ticker: str) -> pa.Table: ...
    def read_days(self, dataset: str, days: Iterable[dt.date]) -> pa.Table: ...
    def years(self, dataset: str) -> list[int]: ...
    def days(self, dataset: str, year: int) -> list[dt.date]: ...
    def forget(self, dataset: str, days: Iterable[dt.date]) -> None: ...
    def verify(self, dataset: str, repair: bool = False) -> list[Problem]: ...


def open_store(location: Any, prefix: str, datasets: Iterable[Dataset], config: Config | None = None) -> Store:
    """The store of ``datasets`` under ``location`` (a path or URL) / ``prefix``."""
    where = f"{str(location).rstrip('/')}/{prefix}" if isinstance(location, str) else location / prefix
    return Engine(files_for(where, config), datasets)


__all__ = ["Store", "Dataset", "Source", "Problem", "SessionGone", "open_store", "normalise", "YEAR", "SESSION"]
